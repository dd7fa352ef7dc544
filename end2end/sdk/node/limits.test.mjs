// Weir's own 429s (a key limited to one request at a time): the SDKs raise their rate-limit
// error with Retry-After and the limit headers, and their own retry loops wait it out and
// succeed. One file, so its tests run one after another on the one serial key.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import { ECHO, SERIAL_KEY, SERIAL_SKIP, newAnthropic, newClient, user } from './helpers.mjs';

// Holds the key's one slot for about a second.
const SLOW = '[[mock delay_ms=1000]] slow';

test('openai: RateLimitError with Retry-After, then the retry loop waits it out', { skip: SERIAL_SKIP }, async () => {
  const c = newClient({ apiKey: SERIAL_KEY });
  const busy = c.chat.completions.create({ model: ECHO, messages: user(SLOW) });
  await sleep(250);
  await assert.rejects(c.chat.completions.create({ model: ECHO, messages: user('hi') }), (e) => {
    assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name}: ${e}`);
    assert.equal(e.status, 429);
    assert.equal(e.code, 'rate_limit_exceeded');
    assert.ok(Number(e.headers.get('retry-after')) >= 1);
    return true;
  });
  const started = Date.now();
  const retrying = newClient({ apiKey: SERIAL_KEY, maxRetries: 3 });
  const r = await retrying.chat.completions.create({ model: ECHO, messages: user('hi') });
  assert.equal(r.object, 'chat.completion');
  assert.ok(Date.now() - started >= 400, 'the SDK waited before its retry');
  await busy;
});

test('anthropic: RateLimitError with Retry-After, then the retry loop waits it out', { skip: SERIAL_SKIP }, async () => {
  const c = newAnthropic({ apiKey: SERIAL_KEY });
  const ask = (client, text) => client.messages.create({ model: ECHO, max_tokens: 32, messages: user(text) });
  const busy = ask(c, SLOW);
  await sleep(250);
  await assert.rejects(ask(c, 'hi'), (e) => {
    assert.ok(e instanceof Anthropic.RateLimitError, `got ${e?.constructor?.name}: ${e}`);
    assert.equal(e.status, 429);
    assert.equal(e.error?.error?.type, 'rate_limit_error');
    assert.ok(Number(e.headers.get('retry-after')) >= 1);
    return true;
  });
  const r = await ask(newAnthropic({ apiKey: SERIAL_KEY, maxRetries: 3 }), 'hi');
  assert.equal(r.type, 'message');
  await busy;
});
