// POST /v1/responses with the official openai-node SDK, on both upstream formats: create,
// stream with finalResponse(), a function-call round trip, previous_response_id continuing a
// stored conversation, retrieve and delete.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import OpenAI from 'openai';

import { WIRE_MODELS, newClient } from './helpers.mjs';

const client = newClient();
const TOOLS = [
  {
    type: 'function',
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' } },
      required: ['city'],
      additionalProperties: false,
    },
    strict: true,
  },
];

for (const model of WIRE_MODELS) {
  describe(`responses ${model}`, () => {
    test('create', async () => {
      const r = await client.responses.create({ model, instructions: 'Be brief.', input: 'hello   weir   gateway' });
      assert.equal(r.object, 'response');
      assert.match(r.id, /^resp_/);
      assert.equal(r.status, 'completed');
      assert.equal(r.model, model);
      assert.equal(r.output_text, 'echo: hello weir gateway');
      assert.equal(r.usage.output_tokens, 4);
      assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
    });

    test('stream with finalResponse()', async () => {
      const stream = client.responses.stream({ model, input: 'stream this please' });
      let text = '';
      const seq = [];
      for await (const event of stream) {
        seq.push(event.sequence_number);
        if (event.type === 'response.output_text.delta') text += event.delta;
      }
      const final = await stream.finalResponse();
      assert.equal(text, 'echo: stream this please');
      assert.deepEqual(seq, [...seq.keys()]);
      assert.equal(final.status, 'completed');
      assert.equal(final.output_text, 'echo: stream this please');
    });

    for (const streamed of [false, true]) {
      test(`function call round trip (stream: ${streamed})`, async () => {
        const input = [{ role: 'user', content: 'What is the weather in Paris?' }];
        let first;
        if (streamed) {
          const s = client.responses.stream({ model, input, tools: TOOLS, tool_choice: 'required' });
          for await (const _ of s);
          first = await s.finalResponse();
        } else {
          first = await client.responses.create({ model, input, tools: TOOLS, tool_choice: 'required' });
        }
        const calls = first.output.filter((i) => i.type === 'function_call');
        assert.equal(calls.length, 1);
        assert.equal(calls[0].name, 'get_weather');
        assert.equal(typeof JSON.parse(calls[0].arguments), 'object');
        const second = await client.responses.create({
          model,
          previous_response_id: first.id,
          tools: TOOLS,
          input: [{ type: 'function_call_output', call_id: calls[0].call_id, output: '18C and sunny' }],
        });
        assert.equal(second.status, 'completed');
        assert.ok(second.output_text.includes('18C and sunny'), second.output_text);
      });
    }

    test('previous_response_id, retrieve and delete', async () => {
      const first = await client.responses.create({ model, input: 'remember this' });
      const second = await client.responses.create({ model, input: 'and this', previous_response_id: first.id });
      assert.equal(second.output_text, 'echo: and this');
      assert.ok(second.usage.input_tokens > first.usage.input_tokens);
      const got = await client.responses.retrieve(second.id);
      assert.equal(got.id, second.id);
      await client.responses.delete(first.id);
      await assert.rejects(client.responses.retrieve(first.id), OpenAI.NotFoundError);
    });
  });
}

test('built-in tools are a 400 naming the tool', async () => {
  await assert.rejects(
    client.responses.create({
      model: WIRE_MODELS[0],
      input: 'x',
      tools: [{ type: 'file_search', vector_store_ids: ['vs_1'] }],
    }),
    (e) => e instanceof OpenAI.BadRequestError && /file_search/.test(e.message),
  );
});

test('web_search, which Codex offers with every request, is left out and the answer comes', async () => {
  const r = await client.responses.create({ model: WIRE_MODELS[0], input: 'x', tools: [{ type: 'web_search' }] });
  assert.equal(r.status, 'completed');
  assert.equal(r.output_text, 'echo: x');
});
