// Routing hints through the official openai-node SDK: extra body members (OpenRouter's
// `provider` and `models`, Weir's `weir` object) on the demo codename served by two providers.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI from 'openai';

import { CODENAME, ECHO, newClient, user } from './helpers.mjs';

const client = newClient();

async function providerOf(extra) {
  const { response } = await client.chat.completions
    .create({ model: CODENAME, messages: user('hi'), ...extra })
    .withResponse();
  return response.headers.get('x-weir-provider');
}

test('provider.order and provider.ignore are obeyed', async () => {
  assert.equal(await providerOf({ provider: { order: ['demo-anthropic'] } }), 'demo-anthropic');
  assert.equal(await providerOf({ provider: { order: ['demo'] } }), 'demo');
  assert.equal(await providerOf({ provider: { ignore: ['demo'] } }), 'demo-anthropic');
});

test('weir hints steer, and a requirement nothing meets is a BadRequestError naming it', async () => {
  assert.equal(await providerOf({ weir: { optimise: 'cost', model_hints: ['demo/claude-*'] } }), 'demo-anthropic');
  await assert.rejects(
    client.chat.completions.create({ model: CODENAME, messages: user('hi'), weir: { require_json_schema: true } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'weir.require_json_schema' && e.code === 'no_candidate',
  );
});

test('the models fallback list answers when the requested model fails', async () => {
  const r = await client.chat.completions.create({ model: 'demo/fail-503', messages: user('hi'), models: [ECHO] });
  assert.equal(r.model, ECHO);
  assert.equal(r.choices[0].message.content, 'echo: hi');
});
