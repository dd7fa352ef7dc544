// Tool calling through the SDK on both upstream formats, streamed and not: the model's call,
// then the assistant message and the tool result sent back, then the model's answer to it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { WIRE_MODELS, collect, newClient } from './helpers.mjs';

const client = newClient();

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather for a city.',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string' }, days: { type: 'integer' } },
        required: ['city'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'get_time',
      description: 'Current time in a time zone.',
      parameters: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] },
    },
  },
];

const TOOL_RESULT = '{"temp_c": 18, "sky": "clear"}';

const CASES = [
  // "required": the mock calls the first tool, with "test" in each required string field.
  { id: 'required', prompt: 'What is the weather?', toolChoice: 'required', name: 'get_weather', args: { city: 'test' } },
  // A named function.
  {
    id: 'named',
    prompt: 'What time is it?',
    toolChoice: { type: 'function', function: { name: 'get_time' } },
    name: 'get_time',
    args: { zone: 'test' },
  },
  // The model chooses (auto) because the prompt asks for the call, with these arguments.
  {
    id: 'auto',
    prompt: 'please call get_time {"zone": "Europe/Paris"}',
    toolChoice: 'auto',
    name: 'get_time',
    args: { zone: 'Europe/Paris' },
  },
];

/** One completion, streamed or not: `{ content, calls: [{id, name, arguments}], finish }`. */
async function ask(model, messages, stream, extra = {}) {
  if (!stream) {
    const r = await client.chat.completions.create({ model, messages, tools: TOOLS, ...extra });
    assert.equal(r.choices.length, 1);
    const m = r.choices[0].message;
    assert.equal(m.role, 'assistant');
    const calls = (m.tool_calls ?? []).map((tc) => {
      assert.equal(tc.type, 'function');
      return { id: tc.id, name: tc.function.name, arguments: tc.function.arguments };
    });
    return { content: m.content, calls, finish: r.choices[0].finish_reason };
  }

  // Accumulate deltas the way the API reference says clients must: by tool-call index, with
  // id/type/name on the first delta of an index and argument fragments concatenated.
  const chunks = await collect(
    await client.chat.completions.create({
      model,
      messages,
      tools: TOOLS,
      stream: true,
      stream_options: { include_usage: true },
      ...extra,
    }),
  );
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage);
  const content = [];
  const byIndex = new Map();
  const finishes = [];
  for (const c of chunks.slice(0, -1)) {
    assert.equal(c.choices.length, 1, JSON.stringify(c));
    const [choice] = c.choices;
    if (choice.delta.content) content.push(choice.delta.content);
    for (const tc of choice.delta.tool_calls ?? []) {
      if (!byIndex.has(tc.index)) {
        assert.ok(tc.id, `first delta of tool call ${tc.index} has no id: ${JSON.stringify(tc)}`);
        assert.equal(tc.type, 'function');
        assert.ok(tc.function?.name);
        byIndex.set(tc.index, { id: tc.id, name: tc.function.name, arguments: '' });
      } else {
        assert.ok(!tc.id, `id repeated on a later delta: ${JSON.stringify(tc)}`);
      }
      if (tc.function?.arguments) byIndex.get(tc.index).arguments += tc.function.arguments;
    }
    if (choice.finish_reason) finishes.push(choice.finish_reason);
  }
  assert.equal(finishes.length, 1, `finish reasons: ${finishes}`);
  const indexes = [...byIndex.keys()].sort((a, b) => a - b);
  assert.deepEqual(indexes, indexes.map((_, i) => i));
  return { content: content.join('') || null, calls: indexes.map((i) => byIndex.get(i)), finish: finishes[0] };
}

for (const model of WIRE_MODELS) {
  describe(`tools ${model}`, () => {
    for (const stream of [false, true]) {
      for (const c of CASES) {
        test(`${c.id} tool call round trip (${stream ? 'stream' : 'json'})`, async () => {
          const messages = [{ role: 'user', content: c.prompt }];
          let reply = await ask(model, messages, stream, { tool_choice: c.toolChoice });
          assert.equal(reply.finish, 'tool_calls');
          assert.ok(!reply.content);
          assert.equal(reply.calls.length, 1, JSON.stringify(reply.calls));
          const [call] = reply.calls;
          assert.ok(call.id);
          assert.equal(call.name, c.name);
          assert.deepEqual(JSON.parse(call.arguments), c.args);

          // Send the call back as the assistant turn, then the tool's result, with the tools
          // still offered (tool_choice left to its default, auto).
          messages.push({
            role: 'assistant',
            content: null,
            tool_calls: [{ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }],
          });
          messages.push({ role: 'tool', tool_call_id: call.id, content: TOOL_RESULT });
          reply = await ask(model, messages, stream);
          assert.deepEqual(reply.calls, []);
          assert.equal(reply.content, `tool result: ${TOOL_RESULT}`);
          assert.equal(reply.finish, 'stop');
        });
      }
    }

    test('round trip appending the SDK message object itself', async () => {
      const messages = [{ role: 'user', content: 'What is the weather?' }];
      const first = await client.chat.completions.create({ model, messages, tools: TOOLS, tool_choice: 'required' });
      const { message } = first.choices[0];
      assert.ok(message.tool_calls?.length);
      messages.push(message);
      for (const tc of message.tool_calls) messages.push({ role: 'tool', tool_call_id: tc.id, content: TOOL_RESULT });
      const second = await client.chat.completions.create({ model, messages, tools: TOOLS });
      assert.equal(second.choices[0].message.content, `tool result: ${TOOL_RESULT}`);
      assert.ok(!second.choices[0].message.tool_calls?.length);
    });

    test('chat.completions.stream() helper assembles the tool call', async () => {
      const stream = client.chat.completions.stream({
        model,
        messages: [{ role: 'user', content: 'call get_weather {"city": "Paris", "days": 3}' }],
        tools: TOOLS,
      });
      const done = [];
      stream.on('tool_calls.function.arguments.done', (e) => done.push([e.name, JSON.parse(e.arguments)]));
      const final = await stream.finalChatCompletion();
      assert.deepEqual(done, [['get_weather', { city: 'Paris', days: 3 }]]);
      const calls = final.choices[0].message.tool_calls;
      assert.equal(calls?.length, 1);
      assert.equal(calls[0].function.name, 'get_weather');
      assert.deepEqual(JSON.parse(calls[0].function.arguments), { city: 'Paris', days: 3 });
      assert.equal(final.choices[0].finish_reason, 'tool_calls');
    });

    test('tool_choice none answers in text', async () => {
      const r = await client.chat.completions.create({
        model,
        messages: [{ role: 'user', content: 'call get_time now' }],
        tools: TOOLS,
        tool_choice: 'none',
      });
      assert.equal(r.choices[0].message.content, 'echo: call get_time now');
      assert.ok(!r.choices[0].message.tool_calls?.length);
      assert.equal(r.choices[0].finish_reason, 'stop');
    });
  });
}
