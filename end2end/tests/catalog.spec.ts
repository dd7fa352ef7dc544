import { test, expect, type Browser, type Page } from '@playwright/test';

// The operator's catalog journey (issue 15): an OpenAI-compatible channel pointing at the demo's
// mock upstream (on loopback, so marked local), a model and a tariff added in /admin; a key's
// request to that model is answered and charged at the new tariff plus markup; a price scheduled
// for later leaves the requests before it alone.

const BASE = process.env.BASE_URL ?? 'http://127.0.0.1:8080';
const KEY = process.env.WEIR_KEY ?? '';
const OPERATOR = process.env.WEIR_OPERATOR_EMAIL ?? 'operator@example.com';
const PASSWORD = 'correct horse battery';

async function operatorPage(browser: Browser): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto('/login?next=/admin');
  await page.getByLabel('Email').fill(OPERATOR);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForLoadState('networkidle');
  if (new URL(page.url()).pathname !== '/admin') {
    // A fresh server: the operator's account does not exist yet.
    await page.goto('/signup?next=/admin');
    await page.getByLabel('Email').fill(OPERATOR);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign up' }).click();
  }
  await expect(page).toHaveURL(`${BASE}/admin`);
  return page;
}

/** Opens an admin page and waits for the wasm, so forms answer in place. */
async function open(page: Page, path: string) {
  await page.goto(path);
  await page.waitForLoadState('networkidle');
}

/** Asks `model` for "one two three" (the mock answers 3 input and 4 output tokens). */
async function chat(model: string): Promise<{ status: number; cost: string | null }> {
  const r = await fetch(`${BASE}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, max_tokens: 20, messages: [{ role: 'user', content: 'one two three' }] }),
  });
  await r.text();
  return { status: r.status, cost: r.headers.get('x-weir-cost') };
}

test('the operator adds a channel, a model and a tariff; requests are charged at it, and a later price waits', async ({ browser }) => {
  test.skip(!KEY, 'WEIR_KEY (the demo key) is needed');
  test.setTimeout(90_000);
  const n = `${Date.now()}`;
  const provider = `ops${n}`;
  const model = `${provider}/echo`;
  const op = await operatorPage(browser);

  // The demo's mock upstream, as its channel lists it.
  await open(op, '/admin/channels');
  const demoRow = op.locator('tr[data-channel="demo"]');
  const mockBase = (await demoRow.locator('td.base-url').innerText()).trim();
  expect(mockBase).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);

  const fill = async (local: boolean) => {
    await op.getByLabel('Name', { exact: true }).fill(`mock-${n}`);
    await op.getByLabel('Provider id').fill(provider);
    await op.getByLabel('Kind').selectOption('openai');
    await op.getByLabel('Base URL').fill(mockBase);
    await op.getByLabel('Upstream API key').fill(`sk-e2e-${n}-abcd`);
    await op.getByLabel('Priority (higher first)').fill('5');
    await op.getByLabel(/Local \(allow/).setChecked(local);
    await op.getByRole('button', { name: 'Add channel' }).click();
  };
  // Loopback is refused unless the channel is marked local (the SSRF guard).
  await fill(false);
  await expect(op.getByText(/is a private, loopback or metadata address/)).toBeVisible();
  await fill(true);
  await expect(op.getByText(/Channel added \(id \d+\)/)).toBeVisible();
  const row = op.locator(`tr[data-channel="mock-${n}"]`);
  await expect(row).toContainText('…abcd (encrypted)');
  expect(await op.content()).not.toContain(`sk-e2e-${n}-abcd`);

  // A model of that provider, and its price: $10 / $20 per million tokens, 15 % markup.
  await open(op, '/admin/models');
  await op.getByLabel('Model id (what clients ask for)').fill(model);
  await op.getByLabel('Provider id').fill(provider);
  await op.getByLabel('Upstream model name').fill('echo');
  await op.getByLabel('Context window (tokens)').fill('32000');
  await op.getByRole('button', { name: 'Add model' }).click();
  await expect(op.getByText('Model added.')).toBeVisible();
  await expect(op.locator(`tr[data-model="${model}"]`)).toContainText('active');

  await open(op, '/admin/tariffs');
  await op.getByLabel('Model id', { exact: true }).fill(model);
  await op.getByLabel('Input $ / Mtok', { exact: true }).fill('10');
  await op.getByLabel('Output $ / Mtok', { exact: true }).fill('20');
  await op.getByLabel('Markup (basis points)').fill('1500');
  await op.getByRole('button', { name: 'Save price' }).click();
  await expect(op.getByText(/Tariff version \d+ saved\./)).toBeVisible();

  // 3 input tokens × $10/M = 30 µ$ + 15 % (4.5 → 5) and 4 output × $20/M = 80 µ$ + 12: $0.000127.
  // The gateway picks the change up at its next catalog poll (2 s).
  await expect(async () => {
    expect(await chat(model)).toEqual({ status: 200, cost: '0.000127' });
  }).toPass({ timeout: 15_000 });

  // A price scheduled two hours ahead is listed as scheduled and does not touch requests now.
  const later = new Date(Date.now() + 2 * 3600_000).toISOString().slice(0, 16);
  await open(op, '/admin/tariffs');
  await op.getByLabel('Model id', { exact: true }).fill(model);
  await op.getByLabel('Input $ / Mtok', { exact: true }).fill('100');
  await op.getByLabel('Output $ / Mtok', { exact: true }).fill('100');
  await op.getByLabel('Markup (basis points)').fill('0');
  await op.getByLabel('Takes effect (UTC; empty: now)').fill(later);
  await op.getByRole('button', { name: 'Save price' }).click();
  await expect(op.getByText(/Tariff version \d+ saved\./)).toBeVisible();
  await expect(op.locator(`tr[data-model="${model}"][data-state="scheduled"]`)).toHaveCount(1);
  await expect(op.locator(`tr[data-model="${model}"][data-state="in force"]`)).toHaveCount(1);
  await op.waitForTimeout(2_500); // one catalog poll
  expect(await chat(model)).toEqual({ status: 200, cost: '0.000127' });

  // The Test button and the health columns.
  await open(op, '/admin/channels');
  await row.getByRole('button', { name: 'Test' }).click();
  await expect(op.locator('.test-result')).toContainText('HTTP 200');
  await open(op, '/admin/channels');
  await expect(row).toContainText('closed');

  // Every change is in the audit log, with the operator as the actor.
  await open(op, '/admin/audit');
  for (const action of ['channel.add', 'model.add', 'tariff.set', 'tariff.schedule']) {
    await expect(op.locator('tr', { hasText: action }).filter({ hasText: provider }).first()).toContainText(OPERATOR);
  }
  await op.context().close();
});
