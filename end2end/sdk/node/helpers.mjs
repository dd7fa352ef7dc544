// Shared by the *.test.mjs files of the official openai-node and anthropic-sdk-typescript
// acceptance suites.
//
// The suites talk to a running Weir server started with `weir serve --demo`:
//   BASE_URL           server root without /v1, e.g. http://127.0.0.1:18555 (required)
//   WEIR_KEY           the `demo key:` printed by `weir serve --demo` (required)
//   WEIR_INACTIVE_KEY  a key of a deactivated team (optional; the 403 tests skip without it)
//   WEIR_BROKE_KEY     a key of a team with no balance (optional; the 402 tests skip without it)
//   WEIR_SERIAL_KEY    a key limited to one request at a time (optional; the 429 tests skip without it)
import { readFileSync } from 'node:fs';

import Anthropic from '@anthropic-ai/sdk';
import { VERSION as ANTHROPIC_VERSION } from '@anthropic-ai/sdk/version';
import OpenAI from 'openai';
import { VERSION } from 'openai/version';

// The SDKs must be the ones pinned here, not other copies found further up (end2end/node_modules):
// run `npm ci` in end2end/sdk/node first.
const pins = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')).dependencies;
for (const [name, loaded] of [
  ['openai', VERSION],
  ['@anthropic-ai/sdk', ANTHROPIC_VERSION],
]) {
  if (loaded !== pins[name]) {
    throw new Error(`${name} ${loaded} was loaded but ${pins[name]} is pinned: run \`npm ci\` in end2end/sdk/node`);
  }
}

const missing = ['BASE_URL', 'WEIR_KEY'].filter((name) => !process.env[name]);
if (missing.length > 0) {
  throw new Error(
    `set ${missing.join(' and ')}: BASE_URL is the root of a running \`weir serve --demo\` (no /v1) ` +
      'and WEIR_KEY the `demo key:` it printed; see end2end/sdk/README.md',
  );
}

export const API_BASE = `${process.env.BASE_URL.replace(/\/+$/, '')}/v1`;
export const WEIR_KEY = process.env.WEIR_KEY;
export const INACTIVE_KEY = process.env.WEIR_INACTIVE_KEY || '';
export const INACTIVE_SKIP = INACTIVE_KEY
  ? false
  : 'WEIR_INACTIVE_KEY is not set: it must hold a key of a deactivated team ' +
    '(weir team create / key create / team deactivate, see end2end/sdk/README.md)';
export const BROKE_KEY = process.env.WEIR_BROKE_KEY || '';
export const BROKE_SKIP = BROKE_KEY
  ? false
  : 'WEIR_BROKE_KEY is not set: it must hold a key of a team with no balance ' +
    '(weir team create / key create, without crediting it, see end2end/sdk/README.md)';

export const SERIAL_KEY = process.env.WEIR_SERIAL_KEY || '';
export const SERIAL_SKIP = SERIAL_KEY
  ? false
  : 'WEIR_SERIAL_KEY is not set: it must hold a key limited to one request at a time ' +
    '(weir key create, then weir key limit <key id> --concurrency 1, see end2end/sdk/README.md)';

// Models served by `weir serve --demo`.
export const ECHO = 'demo/echo'; // OpenAI-format upstream
export const CLAUDE_ECHO = 'demo/claude-echo'; // Anthropic-format upstream, translated by Weir
export const CODENAME = 'demo-echo'; // a codename routed to both
export const EMBED = 'demo/embed';
export const CHAT_MODELS = [ECHO, CLAUDE_ECHO, CODENAME];
export const WIRE_MODELS = [ECHO, CLAUDE_ECHO];

/** An SDK client for the server under test; no retries, so a failure surfaces at once. */
export function newClient(options = {}) {
  return new OpenAI({ baseURL: API_BASE, apiKey: WEIR_KEY, maxRetries: 0, timeout: 30_000, ...options });
}

/**
 * A client whose fetch keeps every exchange: `exchanges[i]` is
 * `{ url, requestHeaders, requestBody, status, responseText }`, to look at what went over the wire.
 */
export function recordingClient(options = {}) {
  const exchanges = [];
  const client = newClient({
    ...options,
    fetch: async (url, init) => {
      const response = await fetch(url, init);
      const responseText = await response.clone().text();
      exchanges.push({
        url: String(url),
        requestHeaders: init?.headers,
        requestBody: init?.body,
        status: response.status,
        responseText,
      });
      return response;
    },
  });
  return { client, exchanges };
}

/** Collects every chunk of an SDK stream. */
export async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

export const user = (text) => [{ role: 'user', content: text }];

// The Anthropic SDK. Its paths include /v1 (`/v1/messages`), so its base URL is the server root.
export const SERVER_ROOT = process.env.BASE_URL.replace(/\/+$/, '');

/**
 * An Anthropic SDK client for the server under test; no retries, so a failure surfaces at once.
 * `apiKey` is WEIR_KEY unless `options` passes `apiKey` or `authToken`. A credential is always
 * passed, so the SDK reads no ANTHROPIC_* variable or profile for one.
 */
export function newAnthropic(options = {}) {
  const credential = 'authToken' in options ? {} : { apiKey: WEIR_KEY };
  return new Anthropic({ baseURL: SERVER_ROOT, maxRetries: 0, timeout: 30_000, ...credential, ...options });
}

/** An Anthropic client whose fetch keeps every exchange, like `recordingClient()`. */
export function recordingAnthropic(options = {}) {
  const exchanges = [];
  const client = newAnthropic({
    ...options,
    fetch: async (url, init) => {
      const response = await fetch(url, init);
      exchanges.push({
        url: String(url),
        requestHeaders: new Headers(init?.headers),
        requestBody: init?.body,
        status: response.status,
        responseHeaders: response.headers,
      });
      return response;
    },
  });
  return { client, exchanges };
}
