// Claude Code and Codex CLI, the versions pinned in package.json, run headless against a running
// Weir (`weir serve --demo`), each in its own empty home and working directory:
// - each answers a prompt through Weir, on an upstream of its own format and on a translated one;
// - each runs a tool through Weir: the demo model calls the tool the prompt names (`call <tool>
//   {args}`), the CLI runs it on this machine, sends the result back, and the model's answer
//   quotes the result. The file the tool wrote is the proof that the loop went all the way round.
//
//   BASE_URL  server root without /v1 (required)
//   WEIR_KEY  the `demo key:` printed by `weir serve --demo` (required)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

const missing = ['BASE_URL', 'WEIR_KEY'].filter((name) => !process.env[name]);
if (missing.length > 0) {
  throw new Error(`set ${missing.join(' and ')}: the root of a running \`weir serve --demo\` and its demo key`);
}
const BASE_URL = process.env.BASE_URL.replace(/\/+$/, '');
const WEIR_KEY = process.env.WEIR_KEY;
const BIN = new URL('./node_modules/.bin/', import.meta.url).pathname;
// Generous: each CLI run is a few requests to a local echo model, but a cold start of a CLI on a
// loaded CI machine takes seconds.
const RUN_TIMEOUT_MS = 120_000;

const scratch = mkdtempSync(join(tmpdir(), 'weir-cli-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A fresh home and working directory, so no user config or login is seen. */
function sandbox(name) {
  const home = join(scratch, name, 'home');
  const work = join(scratch, name, 'work');
  mkdirSync(home, { recursive: true });
  mkdirSync(work, { recursive: true });
  return { home, work };
}

/** Runs a CLI to its end; resolves with its exit code and output, never throws on a failure. */
function run(bin, args, { cwd, env }) {
  return new Promise((resolve, reject) => {
    const child = spawn(join(BIN, bin), args, {
      cwd,
      // Only what the CLI needs: nothing from the caller's environment decides where it goes.
      env: { PATH: process.env.PATH, LANG: 'C.UTF-8', TERM: 'dumb', CI: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function explain(r) {
  return `exit ${r.code} ${r.signal ?? ''}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`;
}

// ---------------------------------------------------------------------------------------------
// Claude Code: Anthropic Messages on /v1/messages (with ?beta=true, anthropic-beta, streaming).

function claude(name, { model, prompt, auth, extra = [] }) {
  const { home, work } = sandbox(name);
  const env = {
    HOME: home,
    ANTHROPIC_BASE_URL: BASE_URL,
    ANTHROPIC_MODEL: model,
    // The small model Claude Code uses for titles and summaries.
    ANTHROPIC_SMALL_FAST_MODEL: model,
    ANTHROPIC_DEFAULT_HAIKU_MODEL: model,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    ...(auth === 'x-api-key' ? { ANTHROPIC_API_KEY: WEIR_KEY } : { ANTHROPIC_AUTH_TOKEN: WEIR_KEY }),
  };
  const args = ['-p', prompt, '--output-format', 'json', '--max-turns', '4', ...extra];
  return run('claude', args, { cwd: work, env }).then((r) => ({ ...r, work }));
}

function claudeResult(r) {
  assert.equal(r.code, 0, explain(r));
  const out = JSON.parse(r.stdout);
  assert.equal(out.type, 'result', explain(r));
  assert.equal(out.is_error, false, explain(r));
  return out;
}

describe('Claude Code', () => {
  for (const [model, auth] of [
    ['demo/claude-echo', 'bearer'],
    ['demo/echo', 'x-api-key'],
  ]) {
    test(`answers a prompt on ${model} (auth by ${auth})`, async () => {
      const r = await claude(`claude-answer-${model.replace('/', '-')}`, {
        model,
        prompt: 'Say hello to Weir',
        auth,
      });
      const out = claudeResult(r);
      // The echo model answers with the prompt it was given.
      assert.match(out.result, /echo: .*Say hello to Weir/s, explain(r));
      assert.ok(out.usage?.input_tokens > 0, `usage: ${JSON.stringify(out.usage)}`);
    });
  }

  test('runs a Bash tool through Weir and answers from its result', async () => {
    const command = 'echo weir-claude-tool-ok > proof.txt && cat proof.txt';
    const r = await claude('claude-tool', {
      model: 'demo/claude-echo',
      prompt: `call Bash ${JSON.stringify({ command, description: 'Write the proof file' })}`,
      auth: 'bearer',
      extra: ['--allowedTools', 'Bash'],
    });
    const out = claudeResult(r);
    assert.equal(readFileSync(join(r.work, 'proof.txt'), 'utf8').trim(), 'weir-claude-tool-ok', explain(r));
    assert.match(out.result, /tool result: .*weir-claude-tool-ok/s, explain(r));
    assert.ok(out.num_turns >= 2, `turns: ${out.num_turns}`);
  });
});

// ---------------------------------------------------------------------------------------------
// Codex CLI: OpenAI Responses on /v1/responses (streamed, with its namespace and hosted tools).

function codex(name, { model, prompt, extra = [] }) {
  const { home, work } = sandbox(name);
  mkdirSync(join(home, '.codex'), { recursive: true });
  writeFileSync(
    join(home, '.codex', 'config.toml'),
    [
      `model = "${model}"`,
      'model_provider = "weir"',
      '',
      '[model_providers.weir]',
      'name = "Weir"',
      `base_url = "${BASE_URL}/v1"`,
      'env_key = "WEIR_KEY"',
      'wire_api = "responses"',
      '',
    ].join('\n'),
  );
  const env = { HOME: home, CODEX_HOME: join(home, '.codex'), WEIR_KEY };
  const args = ['exec', '--skip-git-repo-check', '--color', 'never', ...extra, prompt];
  return run('codex', args, { cwd: work, env }).then((r) => ({ ...r, work }));
}

describe('Codex CLI', () => {
  for (const model of ['demo/echo', 'demo/claude-echo']) {
    test(`answers a prompt on ${model}`, async () => {
      const r = await codex(`codex-answer-${model.replace('/', '-')}`, { model, prompt: 'Say hello to Weir' });
      assert.equal(r.code, 0, explain(r));
      // `codex exec` prints the last agent message on stdout.
      assert.match(r.stdout, /echo: .*Say hello to Weir/s, explain(r));
    });
  }

  test('runs exec_command through Weir and answers from its result', async () => {
    const cmd = 'echo weir-codex-tool-ok > proof.txt && cat proof.txt';
    const r = await codex('codex-tool', {
      model: 'demo/echo',
      prompt: `call exec_command ${JSON.stringify({ cmd })}`,
      // Codex's own sandbox needs user namespaces, which containers often lack; the command is
      // this test's own and runs in its scratch directory.
      extra: ['--dangerously-bypass-approvals-and-sandbox'],
    });
    assert.equal(r.code, 0, explain(r));
    assert.equal(readFileSync(join(r.work, 'proof.txt'), 'utf8').trim(), 'weir-codex-tool-ok', explain(r));
    assert.match(r.stdout, /tool result: .*weir-codex-tool-ok/s, explain(r));
  });
});
