// Error statuses reach the SDK as its documented exception classes, with the OpenAI envelope.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import OpenAI from 'openai';

import { ECHO, INACTIVE_KEY, INACTIVE_SKIP, newClient, recordingClient, user } from './helpers.mjs';

const client = newClient();
const MESSAGES = user('hello');

/** A predicate for assert.rejects: the error is `cls` with `status` and the envelope's fields. */
function isError(cls, status, extra = {}) {
  return (e) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e?.constructor?.name}: ${e}`);
    assert.equal(e.status, status);
    // The SDK unwraps {"error": {...}} into e.error and copies its fields onto the exception.
    assert.ok(e.error && typeof e.error === 'object', `no JSON error envelope: ${e.error}`);
    for (const field of ['message', 'type', 'param', 'code']) assert.ok(field in e.error, `${field} in ${JSON.stringify(e.error)}`);
    assert.ok(typeof e.error.message === 'string' && e.error.message);
    assert.ok(e.message.includes(e.error.message), e.message);
    assert.equal(e.type, e.error.type);
    assert.equal(e.code, e.error.code);
    assert.equal(e.param, e.error.param);
    for (const [k, v] of Object.entries(extra)) assert.equal(e[k], v, k);
    return true;
  };
}

const chat = (c, body) => c.chat.completions.create({ messages: MESSAGES, model: ECHO, ...body });

for (const stream of [false, true]) {
  const kind = stream ? 'stream' : 'json';
  describe(`errors (${kind})`, () => {
    test('bad key is AuthenticationError', async () => {
      const bad = newClient({ apiKey: 'weir_dev_not_a_real_key' });
      await assert.rejects(chat(bad, { stream }), isError(OpenAI.AuthenticationError, 401, { code: 'invalid_api_key' }));
    });

    test('unknown model is NotFoundError', async () => {
      await assert.rejects(
        chat(client, { model: 'demo/no-such-model', stream }),
        isError(OpenAI.NotFoundError, 404, { code: 'model_not_found', param: 'model' }),
      );
    });

    test('temperature=5 is BadRequestError', async () => {
      await assert.rejects(
        chat(client, { temperature: 5, stream }),
        isError(OpenAI.BadRequestError, 400, { param: 'temperature' }),
      );
    });

    test('messages=[] is BadRequestError', async () => {
      await assert.rejects(
        chat(client, { messages: [], stream }),
        isError(OpenAI.BadRequestError, 400, { param: 'messages' }),
      );
    });

    for (const [model, status] of [
      ['demo/fail-503', 503],
      ['demo/fail-500', 502],
    ]) {
      test(`${model} is InternalServerError ${status}`, async () => {
        await assert.rejects(chat(client, { model, stream }), isError(OpenAI.InternalServerError, status));
      });
    }

    test('demo/fail-429 is RateLimitError', async () => {
      await assert.rejects(chat(client, { model: 'demo/fail-429', stream }), isError(OpenAI.RateLimitError, 429));
    });
  });
}

test('bad key on models.list is AuthenticationError', async () => {
  const bad = newClient({ apiKey: 'weir_dev_not_a_real_key' });
  await assert.rejects(bad.models.list(), isError(OpenAI.AuthenticationError, 401));
});

test('missing Authorization header is AuthenticationError', async () => {
  const { client: c, exchanges } = recordingClient({ apiKey: 'unused' });
  await assert.rejects(
    c.chat.completions.create({ model: ECHO, messages: MESSAGES }, { headers: { Authorization: null } }),
    isError(OpenAI.AuthenticationError, 401),
  );
  assert.equal(exchanges.length, 1);
  assert.equal(new Headers(exchanges[0].requestHeaders).get('authorization'), null, 'sent without a key');
});

test('inactive team is PermissionDeniedError', { skip: INACTIVE_SKIP }, async () => {
  const c = newClient({ apiKey: INACTIVE_KEY });
  await assert.rejects(chat(c, {}), isError(OpenAI.PermissionDeniedError, 403));
  await assert.rejects(c.models.list(), isError(OpenAI.PermissionDeniedError, 403));
});

test('errors carry the request id', async () => {
  await assert.rejects(chat(client, { model: 'demo/no-such-model' }), (e) => {
    assert.ok(e.requestID, 'x-request-id on the error response');
    return true;
  });
});

test('the client stays usable on its kept-alive connection after errors', async () => {
  for (let i = 0; i < 3; i += 1) {
    await assert.rejects(chat(client, { temperature: 5 }), OpenAI.BadRequestError);
    await assert.rejects(chat(client, { model: 'demo/fail-429' }), OpenAI.RateLimitError);
    const r = await chat(client, {});
    assert.equal(r.choices[0].message.content, 'echo: hello');
  }
});
