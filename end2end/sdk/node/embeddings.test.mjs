// POST /v1/embeddings through the SDK: its default (openai-node asks for base64 and decodes),
// explicit float and explicit base64 must all give the same vectors.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import OpenAI from 'openai';

import { EMBED, newClient, recordingClient } from './helpers.mjs';

const client = newClient();
const INPUTS = ['hello world', 'a second, longer input text'];
const DIMENSIONS = 8; // the demo model's default

function decode(b64) {
  const buf = Buffer.from(b64, 'base64');
  assert.equal(buf.toString('base64'), b64, 'standard, padded base64');
  assert.equal(buf.length % 4, 0);
  const out = [];
  for (let i = 0; i < buf.length; i += 4) out.push(buf.readFloatLE(i));
  return out;
}

function assertClose(actual, expected) {
  assert.equal(actual.length, expected.length);
  actual.forEach((x, i) => {
    const y = expected[i];
    assert.ok(Math.abs(x - y) <= 1e-7 + 1e-6 * Math.abs(y), `${actual} vs ${expected}`);
  });
}

let floats; // vectors from an explicit encoding_format: "float" request

before(async () => {
  const r = await client.embeddings.create({ model: EMBED, input: INPUTS, encoding_format: 'float' });
  floats = r.data.map((d) => d.embedding);
});

test('explicit float', async () => {
  const r = await client.embeddings.create({ model: EMBED, input: INPUTS, encoding_format: 'float' });
  assert.equal(r.object, 'list');
  assert.ok(r.model);
  assert.deepEqual(
    r.data.map((d) => d.index),
    INPUTS.map((_, i) => i),
  );
  for (const d of r.data) {
    assert.equal(d.object, 'embedding');
    assert.ok(Array.isArray(d.embedding), typeof d.embedding);
    assert.equal(d.embedding.length, DIMENSIONS);
    assert.ok(d.embedding.every((x) => typeof x === 'number'));
    const norm = d.embedding.reduce((s, x) => s + x * x, 0);
    assert.ok(Math.abs(norm - 1) < 1e-4, `unit vector, got norm² ${norm}`);
  }
  assert.notDeepEqual(r.data[0].embedding, r.data[1].embedding);
  const words = INPUTS.join(' ').split(' ').length;
  assert.equal(r.usage.prompt_tokens, words);
  assert.equal(r.usage.total_tokens, words);
});

test('default encoding: base64 on the wire, floats for the caller', async () => {
  const { client: rec, exchanges } = recordingClient();
  const r = await rec.embeddings.create({ model: EMBED, input: INPUTS });
  assert.equal(exchanges.length, 1);
  const sent = JSON.parse(exchanges[0].requestBody);
  assert.equal(sent.encoding_format, 'base64', 'this SDK version asks for base64 when the caller does not choose');
  const wire = JSON.parse(exchanges[0].responseText).data.map((d) => d.embedding);
  assert.ok(
    wire.every((e) => typeof e === 'string'),
    `server answered a base64 request with ${JSON.stringify(wire)}`,
  );
  wire.forEach((e, i) => assertClose(decode(e), floats[i]));

  assert.deepEqual(
    r.data.map((d) => d.index),
    INPUTS.map((_, i) => i),
  );
  r.data.forEach((d, i) => {
    assert.ok(Array.isArray(d.embedding), 'the SDK decoded the base64');
    assertClose(d.embedding, floats[i]);
  });
});

test('explicit base64 is left encoded', async () => {
  const r = await client.embeddings.create({ model: EMBED, input: INPUTS, encoding_format: 'base64' });
  r.data.forEach((d, i) => {
    assert.equal(typeof d.embedding, 'string');
    assertClose(decode(d.embedding), floats[i]);
  });
});

for (const encoding_format of ['float', 'base64']) {
  test(`dimensions (${encoding_format})`, async () => {
    const r = await client.embeddings.create({ model: EMBED, input: 'hello world', dimensions: 16, encoding_format });
    const e = r.data[0].embedding;
    assert.equal((typeof e === 'string' ? decode(e) : e).length, 16);
  });
}

test('token-id input', async () => {
  const r = await client.embeddings.create({ model: EMBED, input: [[1, 2, 3], [4, 5]], encoding_format: 'float' });
  assert.deepEqual(
    r.data.map((d) => d.embedding.length),
    [DIMENSIONS, DIMENSIONS],
  );
  assert.notDeepEqual(r.data[0].embedding, r.data[1].embedding);
});

test('unknown embedding model is NotFoundError', async () => {
  await assert.rejects(client.embeddings.create({ model: 'demo/no-such-embedder', input: 'x' }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError, e);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
});
