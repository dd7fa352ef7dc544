// GET /v1/models and GET /v1/models/{id} through the SDK.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import OpenAI from 'openai';

import { CHAT_MODELS, CLAUDE_ECHO, ECHO, EMBED, newClient } from './helpers.mjs';

const client = newClient();

test('models.list contains the demo models', async () => {
  const models = [];
  for await (const m of client.models.list()) models.push(m); // follows pagination, if offered
  const ids = models.map((m) => m.id);
  for (const wanted of [ECHO, CLAUDE_ECHO, EMBED]) assert.ok(ids.includes(wanted), `${wanted} in ${ids}`);
  assert.equal(new Set(ids).size, ids.length, `duplicate ids: ${ids}`);
  for (const m of models) {
    assert.equal(m.object, 'model');
    assert.equal(typeof m.created, 'number');
    assert.ok(typeof m.owned_by === 'string' && m.owned_by);
  }
});

for (const id of [...CHAT_MODELS, EMBED]) {
  test(`models.retrieve(${id}) with a slash in the id`, async () => {
    const m = await client.models.retrieve(id);
    assert.equal(m.id, id);
    assert.equal(m.object, 'model');
    assert.equal(typeof m.created, 'number');
    assert.ok(m.owned_by);
  });
}

test('models.retrieve of an unknown model is NotFoundError', async () => {
  await assert.rejects(client.models.retrieve('demo/no-such-model'), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError, e);
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
});
