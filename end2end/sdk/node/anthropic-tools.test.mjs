// Tool use through the official Anthropic SDK on both upstream formats, streamed and not: the
// model's tool_use block, then the assistant content and a tool_result block sent back, then the
// model's answer to it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { WIRE_MODELS, newAnthropic } from './helpers.mjs';

const client = newAnthropic();
const MAX_TOKENS = 256;

const TOOLS = [
  {
    name: 'get_weather',
    description: 'Current weather for a city.',
    input_schema: {
      type: 'object',
      properties: { city: { type: 'string' }, days: { type: 'integer' } },
      required: ['city'],
    },
  },
  {
    name: 'get_time',
    description: 'Current time in a time zone.',
    input_schema: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] },
  },
];

const TOOL_RESULT = '{"temp_c": 18, "sky": "clear"}';

const CASES = [
  // A named tool: the mock calls it with "test" in each required string field.
  {
    id: 'tool',
    prompt: 'What time is it?',
    toolChoice: { type: 'tool', name: 'get_time' },
    name: 'get_time',
    input: { zone: 'test' },
  },
  // "any": the mock calls the first tool.
  { id: 'any', prompt: 'What is the weather?', toolChoice: { type: 'any' }, name: 'get_weather', input: { city: 'test' } },
  // The model chooses (auto) because the prompt asks for the call, with these arguments.
  {
    id: 'auto',
    prompt: 'please call get_time {"zone": "Europe/Paris"}',
    toolChoice: { type: 'auto' },
    name: 'get_time',
    input: { zone: 'Europe/Paris' },
  },
];

/** One message, through `messages.create` or the `messages.stream()` helper's `finalMessage()`. */
async function ask(model, messages, stream, extra = {}) {
  const body = { model, max_tokens: MAX_TOKENS, messages, tools: TOOLS, ...extra };
  if (!stream) return client.messages.create(body);
  const s = client.messages.stream(body);
  // The helper's inputJson events carry the fragments of the tool input, and the input parsed so
  // far; joined, the fragments are the input of the final tool_use block.
  const fragments = [];
  s.on('inputJson', (partial, snapshot) => fragments.push({ partial, snapshot }));
  const final = await s.finalMessage();
  const uses = final.content.filter((b) => b.type === 'tool_use');
  if (uses.length) {
    assert.equal(uses.length, 1);
    assert.ok(fragments.length > 0, 'the tool input arrived as input_json_delta fragments');
    assert.deepEqual(JSON.parse(fragments.map((f) => f.partial).join('')), uses[0].input);
    assert.deepEqual(fragments.at(-1).snapshot, uses[0].input);
  } else {
    assert.equal(fragments.length, 0);
  }
  return final;
}

for (const model of WIRE_MODELS) {
  describe(`anthropic tools ${model}`, () => {
    for (const stream of [false, true]) {
      for (const c of CASES) {
        test(`tool_use round trip, tool_choice ${c.id} (${stream ? 'stream' : 'json'})`, async () => {
          const messages = [{ role: 'user', content: c.prompt }];
          const first = await ask(model, messages, stream, { tool_choice: c.toolChoice });

          assert.equal(first.stop_reason, 'tool_use');
          assert.equal(first.model, model);
          const uses = first.content.filter((b) => b.type === 'tool_use');
          assert.equal(uses.length, 1, JSON.stringify(first.content));
          const [use] = uses;
          assert.ok(use.id);
          assert.equal(use.name, c.name);
          assert.deepEqual(use.input, c.input);
          assert.ok(first.usage.input_tokens > 0 && first.usage.output_tokens > 0, JSON.stringify(first.usage));

          // The SDK idiom: the assistant turn is the response's content as it came, then a user
          // turn with the tool_result, with the tools still offered (tool_choice left to auto).
          messages.push({ role: 'assistant', content: first.content });
          messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: TOOL_RESULT }] });
          const second = await ask(model, messages, stream);
          assert.deepEqual(
            second.content.map((b) => b.type),
            ['text'],
          );
          assert.ok(second.content[0].text.startsWith('tool result:'), second.content[0].text);
          assert.equal(second.content[0].text, `tool result: ${TOOL_RESULT}`);
          assert.equal(second.stop_reason, 'end_turn');
        });
      }
    }

    test('a tool_result with content blocks, after an assistant turn written by hand', async () => {
      const m = await client.messages.create({
        model,
        max_tokens: MAX_TOKENS,
        tools: TOOLS,
        messages: [
          { role: 'user', content: 'What is the weather?' },
          {
            role: 'assistant',
            content: [
              { type: 'text', text: 'Let me check.' },
              { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } },
            ],
          },
          {
            role: 'user',
            content: [{ type: 'tool_result', tool_use_id: 'toolu_01', content: [{ type: 'text', text: TOOL_RESULT }] }],
          },
        ],
      });
      assert.equal(m.content[0].type, 'text');
      assert.equal(m.content[0].text, `tool result: ${TOOL_RESULT}`);
    });

    test('tool_choice none answers in text', async () => {
      const m = await client.messages.create({
        model,
        max_tokens: MAX_TOKENS,
        messages: [{ role: 'user', content: 'call get_time now' }],
        tools: TOOLS,
        tool_choice: { type: 'none' },
      });
      assert.deepEqual(
        m.content.map((b) => b.type),
        ['text'],
      );
      assert.equal(m.content[0].text, 'echo: call get_time now');
      assert.equal(m.stop_reason, 'end_turn');
    });
  });
}
