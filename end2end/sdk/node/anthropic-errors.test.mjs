// Error statuses of /v1/messages reach the official Anthropic SDK as its documented error
// classes, with the Anthropic envelope `{"type": "error", "error": {"type", "message"}}` and the
// `request-id` header; streamed requests fail the same way when the stream is opened.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';

import {
  BROKE_KEY,
  BROKE_SKIP,
  ECHO,
  INACTIVE_KEY,
  INACTIVE_SKIP,
  newAnthropic,
  recordingAnthropic,
  user,
} from './helpers.mjs';

const client = newAnthropic();
const MESSAGES = user('hello');

/** A predicate for assert.rejects: the error is `cls` with `status` and the Anthropic envelope. */
function isError(cls, status, errorType) {
  return (e) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e?.constructor?.name}: ${e}`);
    assert.equal(e.status, status);
    assert.ok(e.error && typeof e.error === 'object', `no JSON error envelope: ${e.error}`);
    assert.equal(e.error.type, 'error', JSON.stringify(e.error));
    assert.equal(e.error.error?.type, errorType, JSON.stringify(e.error));
    assert.ok(typeof e.error.error.message === 'string' && e.error.error.message, JSON.stringify(e.error));
    // The SDK copies the envelope's fields to the error, and the request id from the header.
    assert.equal(e.type, errorType);
    assert.equal(e.apiMessage, e.error.error.message);
    assert.ok(e.message.includes(e.error.error.message), e.message);
    assert.ok(e.requestID?.startsWith('req_'), `request-id header: ${e.requestID}`);
    assert.ok(e.headers.get('content-type')?.startsWith('application/json'));
    return true;
  };
}

/**
 * One request that is expected to fail: `create`, `create({ stream: true })` (the error status
 * comes before any event, so the promise rejects), or the `stream()` helper's `finalMessage()`.
 */
async function send(c, how, body = {}) {
  const params = { model: ECHO, max_tokens: 64, messages: MESSAGES, ...body };
  if (how === 'json') return c.messages.create(params);
  if (how === 'stream') {
    await c.messages.create({ ...params, stream: true });
    assert.fail('create({ stream: true }) gave a stream for an error status');
  }
  const stream = c.messages.stream(params);
  stream.on('error', () => {}); // the same error rejects finalMessage(), which is what is checked
  return stream.finalMessage();
}

for (const how of ['json', 'stream', 'helper']) {
  describe(`anthropic errors (${how})`, () => {
    test('bad key is AuthenticationError', async () => {
      const bad = newAnthropic({ apiKey: 'weir_dev_not_a_real_key' });
      await assert.rejects(send(bad, how), isError(Anthropic.AuthenticationError, 401, 'authentication_error'));
    });

    test('inactive team is PermissionDeniedError', { skip: INACTIVE_SKIP }, async () => {
      const c = newAnthropic({ apiKey: INACTIVE_KEY });
      await assert.rejects(send(c, how), isError(Anthropic.PermissionDeniedError, 403, 'permission_error'));
    });

    test('no balance is PaymentRequiredError 402 billing_error', { skip: BROKE_SKIP }, async () => {
      const c = newAnthropic({ apiKey: BROKE_KEY });
      // PaymentRequiredError in this SDK version; an APIError with status 402 like every status class.
      await assert.rejects(send(c, how), isError(Anthropic.APIError, 402, 'billing_error'));
      await assert.rejects(send(c, how), Anthropic.PaymentRequiredError);
    });

    test('unknown model is NotFoundError', async () => {
      await assert.rejects(send(client, how, { model: 'demo/no-such-model' }), (e) => {
        isError(Anthropic.NotFoundError, 404, 'not_found_error')(e);
        assert.ok(e.apiMessage.includes('demo/no-such-model'), e.apiMessage);
        return true;
      });
    });

    for (const [id, body, mentions] of [
      // This SDK version's types have no `temperature` any more; it goes in the body all the same.
      ['temperature=5', { temperature: 5 }, 'temperature'],
      ['messages=[]', { messages: [] }, 'messages'],
      // A content block type that does not exist, past the SDK's types.
      [
        'unknown content block',
        { messages: [{ role: 'user', content: [{ type: 'no_such_block', text: 'hi' }] }] },
        'no_such_block',
      ],
    ]) {
      test(`${id} is BadRequestError`, async () => {
        await assert.rejects(send(client, how, body), (e) => {
          isError(Anthropic.BadRequestError, 400, 'invalid_request_error')(e);
          assert.ok(e.apiMessage.includes(mentions), e.apiMessage);
          return true;
        });
      });
    }

    // An overloaded upstream (503) is Anthropic's 529 overloaded_error; a failed one (500) a 502 api_error.
    for (const [model, status, errorType, cls] of [
      ['demo/fail-503', 529, 'overloaded_error', Anthropic.OverloadedError],
      ['demo/fail-500', 502, 'api_error', Anthropic.InternalServerError],
    ]) {
      test(`${model} is InternalServerError ${status}`, async () => {
        await assert.rejects(send(client, how, { model }), (e) => {
          isError(Anthropic.InternalServerError, status, errorType)(e);
          assert.ok(e instanceof cls, `${e.constructor.name} is a ${cls.name}`);
          return true;
        });
      });
    }

    test('demo/fail-429 is RateLimitError', async () => {
      await assert.rejects(
        send(client, how, { model: 'demo/fail-429' }),
        isError(Anthropic.RateLimitError, 429, 'rate_limit_error'),
      );
    });
  });
}

test('bad key in x-api-key is AuthenticationError', async () => {
  const c = newAnthropic({ defaultHeaders: { 'X-Api-Key': 'weir_dev_not_a_real_key', Authorization: null } });
  await assert.rejects(send(c, 'json'), isError(Anthropic.AuthenticationError, 401, 'authentication_error'));
});

test('missing key is AuthenticationError', async () => {
  const { client: c, exchanges } = recordingAnthropic({ apiKey: 'unused' });
  await assert.rejects(
    c.messages.create({ model: ECHO, max_tokens: 64, messages: MESSAGES }, { headers: { Authorization: null } }),
    isError(Anthropic.AuthenticationError, 401, 'authentication_error'),
  );
  assert.equal(exchanges.length, 1);
  assert.equal(exchanges[0].requestHeaders.get('authorization'), null, 'sent without a key');
  assert.equal(exchanges[0].requestHeaders.get('x-api-key'), null, 'sent without a key');
});

test('max_tokens missing on the wire is BadRequestError', async () => {
  // The SDK's types require max_tokens; without it in the body, the 400 is Weir's.
  await assert.rejects(client.messages.create({ model: ECHO, messages: MESSAGES }), (e) => {
    isError(Anthropic.BadRequestError, 400, 'invalid_request_error')(e);
    assert.ok(e.apiMessage.includes('max_tokens'), e.apiMessage);
    return true;
  });
});

test('countTokens errors use the Anthropic envelope', async (t) => {
  try {
    await client.messages.countTokens({ model: 'demo/no-such-model', messages: MESSAGES });
    assert.fail('countTokens of an unknown model succeeded');
  } catch (e) {
    if (e instanceof Anthropic.NotFoundError && e.error?.error?.code === 'unknown_url') {
      t.skip('this Weir build has no POST /v1/messages/count_tokens (404 unknown_url)');
      return;
    }
    isError(Anthropic.NotFoundError, 404, 'not_found_error')(e);
  }
  const bad = newAnthropic({ apiKey: 'weir_dev_not_a_real_key' });
  await assert.rejects(
    bad.messages.countTokens({ model: ECHO, messages: MESSAGES }),
    isError(Anthropic.AuthenticationError, 401, 'authentication_error'),
  );
  await assert.rejects(
    client.messages.countTokens({ model: ECHO, messages: [] }),
    isError(Anthropic.BadRequestError, 400, 'invalid_request_error'),
  );
});

test('the client stays usable on its kept-alive connection after errors', async () => {
  for (let i = 0; i < 3; i += 1) {
    await assert.rejects(send(client, 'json', { temperature: 5 }), Anthropic.BadRequestError);
    await assert.rejects(send(client, 'json', { model: 'demo/fail-429' }), Anthropic.RateLimitError);
    const m = await send(client, 'json');
    assert.equal(m.content[0].text, 'echo: hello');
  }
});
