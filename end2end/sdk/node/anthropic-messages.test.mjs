// POST /v1/messages and /v1/messages/count_tokens through the official Anthropic SDK, streamed
// and not, on both upstream formats: `demo/claude-echo` relayed to an Anthropic-format upstream,
// `demo/echo` translated to an OpenAI-format one.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';

import { CLAUDE_ECHO, WEIR_KEY, WIRE_MODELS, collect, newAnthropic, recordingAnthropic, user } from './helpers.mjs';

const client = newAnthropic();
const PROMPT = 'hello   weir   gateway'; // the echo normalises whitespace
const REPLY = 'echo: hello weir gateway';
const REPLY_WORDS = REPLY.split(' ').length;
const MAX_TOKENS = 256;

const textOf = (message) =>
  message.content
    .filter((b) => b.type === 'text')
    .map((b) => b.text)
    .join('');

// Every way the SDK can carry the key. This SDK version sends both `apiKey` and `authToken` as
// `Authorization: Bearer`; `x-api-key` (the header of Anthropic's API reference, and of older
// SDKs) is sent through `defaultHeaders` with Authorization left out.
const AUTH = [
  { id: 'apiKey', options: { apiKey: WEIR_KEY }, header: 'authorization', value: `Bearer ${WEIR_KEY}` },
  { id: 'authToken', options: { authToken: WEIR_KEY }, header: 'authorization', value: `Bearer ${WEIR_KEY}` },
  {
    id: 'x-api-key',
    options: { apiKey: WEIR_KEY, defaultHeaders: { 'X-Api-Key': WEIR_KEY, Authorization: null } },
    header: 'x-api-key',
    value: WEIR_KEY,
  },
];

async function countTokensOrSkip(t, c, body) {
  try {
    return await c.messages.countTokens(body).withResponse();
  } catch (e) {
    if (e instanceof Anthropic.NotFoundError && e.error?.error?.code === 'unknown_url') {
      t.skip('this Weir build has no POST /v1/messages/count_tokens (404 unknown_url)');
      return null;
    }
    throw e;
  }
}

for (const model of WIRE_MODELS) {
  describe(`anthropic messages ${model}`, () => {
    for (const auth of AUTH) {
      test(`messages.create with ${auth.id}`, async () => {
        const { client: c, exchanges } = recordingAnthropic(auth.options);
        const { data: m, response, request_id } = await c.messages
          .create({ model, max_tokens: MAX_TOKENS, messages: user(PROMPT) })
          .withResponse();

        // The key went in the header this case is about, and only there.
        assert.equal(exchanges.length, 1);
        const sent = exchanges[0].requestHeaders;
        assert.equal(sent.get(auth.header), auth.value);
        const other = auth.header === 'authorization' ? 'x-api-key' : 'authorization';
        assert.equal(sent.get(other), null, `no ${other} header`);
        assert.ok(sent.get('anthropic-version'));

        assert.equal(response.status, 200);
        assert.ok(request_id?.startsWith('req_'), `request-id header: ${request_id}`);
        assert.equal(m.type, 'message');
        assert.ok(m.id);
        assert.equal(m.role, 'assistant');
        assert.equal(m.model, model);
        assert.deepEqual(
          m.content.map((b) => b.type),
          ['text'],
        );
        assert.equal(textOf(m), REPLY);
        assert.equal(m.stop_reason, 'end_turn');
        assert.equal(m.stop_sequence, null);
        assert.equal(m.usage.input_tokens, 3); // the mock counts words
        assert.equal(m.usage.output_tokens, REPLY_WORDS);
      });
    }

    test('system prompt, history and content blocks', async () => {
      const m = await client.messages.create({
        model,
        max_tokens: MAX_TOKENS,
        system: 'You are terse.',
        messages: [
          { role: 'user', content: 'first question' },
          { role: 'assistant', content: 'echo: first question' },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'second' },
              { type: 'text', text: 'part' },
            ],
          },
        ],
      });
      assert.equal(textOf(m), 'echo: second part');
      assert.equal(m.stop_reason, 'end_turn');
    });

    for (const stream of [false, true]) {
      test(`tiny max_tokens ends with stop_reason max_tokens (${stream ? 'stream' : 'json'})`, async () => {
        const body = { model, max_tokens: 2, messages: user(PROMPT) };
        const m = stream ? await client.messages.stream(body).finalMessage() : await client.messages.create(body);
        assert.equal(textOf(m), 'echo: hello');
        assert.equal(m.stop_reason, 'max_tokens');
        assert.equal(m.usage.output_tokens, 2);
      });
    }

    test('messages.stream() helper: events, text deltas, finalMessage()', async () => {
      const stream = client.messages.stream({ model, max_tokens: MAX_TOKENS, messages: user(PROMPT) });
      const deltas = [];
      stream.on('text', (delta) => deltas.push(delta));
      const events = await collect(stream);
      const final = await stream.finalMessage();
      const text = await stream.finalText();

      const types = events.map((e) => e.type);
      assert.equal(types[0], 'message_start', types.join());
      assert.equal(types[1], 'content_block_start', types.join());
      assert.deepEqual(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
      assert.deepEqual([...new Set(types.slice(2, -3))], ['content_block_delta']);
      // (The helper builds its snapshot in the message_start event's own message, so that one's
      // content is not looked at here but in the raw events below.)
      assert.equal(events[0].message.model, model);

      assert.equal(deltas.join(''), REPLY);
      assert.ok(deltas.length > 1, 'the text came in several deltas');
      assert.equal(text, REPLY);
      assert.equal(final.model, model);
      assert.equal(final.role, 'assistant');
      assert.equal(textOf(final), REPLY);
      assert.equal(final.stop_reason, 'end_turn');
      // The final usage is the message_delta's (cumulative), the same as without streaming.
      assert.equal(final.usage.input_tokens, 3);
      assert.equal(final.usage.output_tokens, REPLY_WORDS);
      assert.ok(stream.request_id?.startsWith('req_'), `request-id header: ${stream.request_id}`);
    });

    test('messages.create({ stream: true }): the raw events', async () => {
      const events = await collect(
        await client.messages.create({ model, max_tokens: MAX_TOKENS, messages: user(PROMPT), stream: true }),
      );
      const types = events.map((e) => e.type);
      assert.equal(types[0], 'message_start');
      assert.equal(types.at(-1), 'message_stop');
      assert.equal(events[0].message.model, model);
      assert.equal(events[0].message.role, 'assistant');
      assert.deepEqual(events[0].message.content, []);
      assert.equal(events[0].message.stop_reason, null);
      assert.equal(types.filter((t) => t === 'message_delta').length, 1, types.join());
      const text = events
        .filter((e) => e.type === 'content_block_delta' && e.delta.type === 'text_delta')
        .map((e) => e.delta.text)
        .join('');
      assert.equal(text, REPLY);
      const delta = events.find((e) => e.type === 'message_delta');
      assert.equal(delta.delta.stop_reason, 'end_turn');
      assert.equal(delta.usage.output_tokens, REPLY_WORDS);
      assert.equal(delta.usage.input_tokens, 3);
    });

    for (const directive of ['error_after=2', 'words=40 reset_after=3']) {
      test(`an upstream failure after the 200 header (${directive}) throws APIError mid-stream`, async () => {
        const stream = client.messages.stream({
          model,
          max_tokens: MAX_TOKENS,
          messages: user(`one two three four [[mock ${directive}]]`),
        });
        const received = [];
        stream.on('text', (delta) => received.push(delta));
        // Swallowed here: the same error rejects the iteration below, which is what is checked.
        stream.on('error', () => {});
        await assert.rejects(collect(stream), (e) => {
          assert.ok(e instanceof Anthropic.APIError, `expected APIError, got ${e?.constructor?.name}: ${e}`);
          assert.equal(e.error?.type, 'error', JSON.stringify(e.error));
          assert.ok(['api_error', 'overloaded_error'].includes(e.type), e.type);
          assert.ok(e.apiMessage);
          return true;
        });
        assert.ok(received.length > 0, 'some text arrived before the failure');
      });
    }

    test('messages.countTokens', async (t) => {
      const answer = await countTokensOrSkip(t, client, {
        model,
        system: 'Be brief.',
        messages: user('hello there world'),
      });
      if (answer === null) return;
      assert.ok(answer.data.input_tokens > 0, JSON.stringify(answer.data));
      // Exact when an Anthropic channel serves the model (Weir asks it), an estimate otherwise.
      assert.equal(answer.response.headers.get('x-weir-token-count'), model === CLAUDE_ECHO ? 'exact' : 'estimated');
    });
  });
}

// Extended thinking on the Anthropic channel: the thinking block and its signature reach the SDK
// (whole, and through the stream helper's thinking deltas), and sent back with the next turn they
// reach the upstream untouched: the mock refuses a block whose signature does not match its
// text, as Anthropic does.
for (const stream of [false, true]) {
  test(`thinking round trip (${stream ? 'messages.stream' : 'messages.create'})`, async () => {
    const ask = {
      model: CLAUDE_ECHO,
      max_tokens: 2048,
      thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: user(PROMPT),
    };
    let m;
    if (stream) {
      const s = client.messages.stream(ask);
      const deltas = [];
      s.on('thinking', (delta) => deltas.push(delta));
      m = await s.finalMessage();
      assert.equal(deltas.join(''), 'Thinking about: hello weir gateway');
    } else {
      m = await client.messages.create(ask);
    }
    assert.deepEqual(
      m.content.map((b) => b.type),
      ['thinking', 'text'],
    );
    const [block] = m.content;
    assert.equal(block.thinking, 'Thinking about: hello weir gateway');
    assert.ok(block.signature.startsWith('EqMock'), block.signature);
    assert.equal(textOf(m), REPLY);

    const history = [...user(PROMPT), { role: 'assistant', content: m.content }, ...user('and again')];
    const again = await client.messages.create({ ...ask, messages: history });
    assert.equal(textOf(again), 'echo: and again');

    history[1] = {
      role: 'assistant',
      content: [{ type: 'thinking', thinking: block.thinking, signature: 'EqMock0000000000000000' }, m.content[1]],
    };
    await assert.rejects(client.messages.create({ ...ask, messages: history }), (e) => {
      assert.ok(e instanceof Anthropic.BadRequestError, `expected BadRequestError, got ${e?.constructor?.name}`);
      assert.match(e.message, /signature/);
      return true;
    });
  });
}
