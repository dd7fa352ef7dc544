// POST /v1/chat/completions text replies, streamed and not, on both upstream formats.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import OpenAI from 'openai';

import { CHAT_MODELS, WIRE_MODELS, collect, newClient, user } from './helpers.mjs';

const client = newClient();
const PROMPT = 'hello   weir   gateway'; // the echo normalises whitespace
const REPLY = 'echo: hello weir gateway';
const REPLY_WORDS = REPLY.split(' ').length;

for (const model of CHAT_MODELS) {
  describe(`chat ${model}`, () => {
    test('non-streaming', async () => {
      const r = await client.chat.completions.create({ model, messages: user(PROMPT) });
      assert.equal(r.object, 'chat.completion');
      assert.ok(r.id);
      assert.equal(typeof r.created, 'number');
      assert.ok(r.model);
      assert.equal(r.choices.length, 1);
      const [choice] = r.choices;
      assert.equal(choice.index, 0);
      assert.equal(choice.finish_reason, 'stop');
      assert.equal(choice.message.role, 'assistant');
      assert.equal(choice.message.content, REPLY);
      assert.ok(!choice.message.tool_calls?.length);
      assert.equal(r.usage.prompt_tokens, 3); // the mock counts words
      assert.equal(r.usage.completion_tokens, REPLY_WORDS);
      assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    });

    test('system message, history and content parts', async () => {
      const r = await client.chat.completions.create({
        model,
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'user', content: 'first question' },
          { role: 'assistant', content: 'echo: first question' },
          { role: 'user', content: [{ type: 'text', text: 'second' }, { type: 'text', text: 'part' }] },
        ],
      });
      assert.equal(r.choices[0].message.content, 'echo: second part');
      assert.equal(r.choices[0].finish_reason, 'stop');
    });

    test('max_completion_tokens ends with finish_reason length', async () => {
      const r = await client.chat.completions.create({ model, messages: user(PROMPT), max_completion_tokens: 2 });
      assert.equal(r.choices[0].message.content, 'echo: hello');
      assert.equal(r.choices[0].finish_reason, 'length');
      assert.equal(r.usage.completion_tokens, 2);
    });

    test('streaming with stream_options.include_usage', async () => {
      const chunks = await collect(
        await client.chat.completions.create({
          model,
          messages: user(PROMPT),
          stream: true,
          stream_options: { include_usage: true },
        }),
      );
      assert.ok(chunks.length >= 3, JSON.stringify(chunks));
      assert.deepEqual([...new Set(chunks.map((c) => c.object))], ['chat.completion.chunk']);
      assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'every chunk carries the same id');

      const last = chunks.at(-1);
      const body = chunks.slice(0, -1);
      // The usage chunk comes last, with no choices; every earlier chunk has usage null.
      assert.deepEqual(last.choices, []);
      assert.ok(last.usage, 'usage on the last chunk');
      assert.equal(last.usage.prompt_tokens, 3);
      assert.equal(last.usage.completion_tokens, REPLY_WORDS);
      assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
      for (const c of body) {
        assert.equal(c.usage ?? null, null, JSON.stringify(c));
        assert.equal(c.choices.length, 1, JSON.stringify(c));
        assert.equal(c.choices[0].index, 0);
      }
      assert.equal(body[0].choices[0].delta.role, 'assistant');
      assert.equal(body.map((c) => c.choices[0].delta.content ?? '').join(''), REPLY);
      const finishes = body.map((c) => c.choices[0].finish_reason).filter(Boolean);
      assert.deepEqual(finishes, ['stop']);
      assert.equal(body.at(-1).choices[0].finish_reason, 'stop');
    });

    test('streaming without include_usage has no usage chunk', async () => {
      const chunks = await collect(await client.chat.completions.create({ model, messages: user(PROMPT), stream: true }));
      assert.ok(chunks.length > 0);
      for (const c of chunks) {
        assert.equal(c.usage ?? null, null, JSON.stringify(c));
        assert.equal(c.choices.length, 1, 'no usage-only chunk without include_usage');
      }
      assert.equal(chunks.map((c) => c.choices[0].delta.content ?? '').join(''), REPLY);
      assert.deepEqual(chunks.map((c) => c.choices[0].finish_reason).filter(Boolean), ['stop']);
    });

    for (const stream of [false, true]) {
      for (const stop of ['gateway', ['weir', 'gateway']]) {
        test(`stop sequence ${JSON.stringify(stop)} (${stream ? 'stream' : 'json'})`, async () => {
          // The text ends before the earliest stop sequence, which is not included; reason stop.
          const expected = stop === 'gateway' ? 'echo: hello weir ' : 'echo: hello ';
          let text;
          let finishes;
          if (stream) {
            const chunks = await collect(
              await client.chat.completions.create({ model, messages: user(PROMPT), stop, stream: true }),
            );
            const choices = chunks.filter((c) => c.choices.length).map((c) => c.choices[0]);
            text = choices.map((c) => c.delta.content ?? '').join('');
            finishes = choices.map((c) => c.finish_reason).filter(Boolean);
          } else {
            const r = await client.chat.completions.create({ model, messages: user(PROMPT), stop });
            text = r.choices[0].message.content;
            finishes = [r.choices[0].finish_reason];
          }
          assert.equal(text, expected);
          assert.deepEqual(finishes, ['stop']);
        });
      }
    }

    test('chat.completions.stream() helper builds the final completion', async () => {
      const stream = client.chat.completions.stream({
        model,
        messages: user(PROMPT),
        stream_options: { include_usage: true },
      });
      const deltas = [];
      stream.on('content.delta', ({ delta }) => deltas.push(delta));
      const final = await stream.finalChatCompletion();
      assert.equal(deltas.join(''), REPLY);
      assert.equal(final.choices[0].message.content, REPLY);
      assert.equal(final.choices[0].finish_reason, 'stop');
      assert.equal(final.usage?.completion_tokens, REPLY_WORDS);
    });
  });
}

for (const model of WIRE_MODELS) {
  test(`chat ${model}: an upstream error after the 200 header throws APIError mid-stream`, async () => {
    const stream = await client.chat.completions.create({
      model,
      messages: user('one two three four [[mock error_after=2]]'),
      stream: true,
    });
    const received = [];
    await assert.rejects(
      (async () => {
        for await (const c of stream) if (c.choices.length) received.push(c.choices[0].delta.content ?? '');
      })(),
      (e) => {
        assert.ok(e instanceof OpenAI.APIError, e);
        return true;
      },
    );
    assert.ok(received.join('').startsWith('echo:'), received.join(''));
  });
}
