// Shared by the *.test.mjs files of the official openai-node SDK acceptance suite.
//
// The suite talks to a running Weir server started with `weir serve --demo`:
//   BASE_URL           server root without /v1, e.g. http://127.0.0.1:18555 (required)
//   WEIR_KEY           the `demo key:` printed by `weir serve --demo` (required)
//   WEIR_INACTIVE_KEY  a key of a deactivated team (optional; the 403 test skips without it)
import { readFileSync } from 'node:fs';

import OpenAI from 'openai';
import { VERSION } from 'openai/version';

// The SDK must be the one pinned here, not another copy found further up (end2end/node_modules):
// run `npm ci` in end2end/sdk/node first.
const pinned = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')).dependencies.openai;
if (VERSION !== pinned) {
  throw new Error(`openai ${VERSION} was loaded but ${pinned} is pinned: run \`npm ci\` in end2end/sdk/node`);
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
