import { test, expect, type Browser, type Page } from '@playwright/test';
import path from 'node:path';

const SCREENSHOTS = path.join(__dirname, '..', 'screenshots');
const BASE = process.env.BASE_URL ?? 'http://127.0.0.1:8080';

function uniqueEmail(who: string): string {
  return `${who}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

async function signUp(page: Page, email: string, next = '') {
  await page.goto(next ? `/signup?next=${encodeURIComponent(next)}` : '/signup');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Sign up' }).click();
}

async function chat(key: string): Promise<number> {
  const r = await fetch(`${BASE}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'demo/echo', messages: [{ role: 'user', content: 'hello from the console test' }] }),
  });
  await r.text();
  return r.status;
}

test('a private page redirects to log-in and comes back after it', async ({ page, request }) => {
  const r = await request.get('/keys', { maxRedirects: 0 });
  expect(r.status()).toBe(303);
  expect(r.headers()['location']).toBe('/login?next=/keys');

  const email = uniqueEmail('returner');
  await signUp(page, email);
  await expect(page).toHaveURL(/\/dashboard$/);
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/$|\/login/);

  await page.goto('/keys');
  await expect(page).toHaveURL(/\/login\?next=\/keys$/);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(/\/keys$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('API keys');
});

test('wrong password and unknown email get the same answer', async ({ page }) => {
  const email = uniqueEmail('victim');
  await signUp(page, email);
  await page.getByRole('button', { name: 'Log out' }).click();
  // Log-out cycles the session: a log-in form loaded before its answer carries the old
  // session's CSRF token and is (rightly) refused, so wait for the answer first.
  await expect(page).toHaveURL(/\/$|\/login/);
  for (const who of [email, uniqueEmail('nobody')]) {
    await page.goto('/login');
    await page.getByLabel('Email').fill(who);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect(page.getByText('Wrong email or password.')).toBeVisible();
  }
});

/** The operator (`WEIR_ADMIN_EMAIL` of the server under test), signed in in its own context. */
const OPERATOR = process.env.WEIR_OPERATOR_EMAIL ?? 'operator@example.com';
async function operatorPage(browser: Browser): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto('/login?next=/admin/teams');
  await page.getByLabel('Email').fill(OPERATOR);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForLoadState('networkidle');
  if (new URL(page.url()).pathname !== '/admin/teams') {
    // A fresh server: the operator's account does not exist yet.
    await signUp(page, OPERATOR, '/admin/teams');
  }
  await expect(page).toHaveURL(`${BASE}/admin/teams`);
  return page;
}

test('sign up, create a key, call the API with it, see the usage, revoke it', async ({ page, browser }) => {
  const email = uniqueEmail('owner');
  await signUp(page, email);
  await expect(page).toHaveURL(/\/dashboard$/);

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'API keys' }).click();
  await expect(page).toHaveURL(/\/keys$/);
  await page.getByLabel('Name').fill('e2e key');
  await page.getByLabel('Environment').selectOption('staging');
  await page.getByRole('button', { name: 'Create key' }).click();

  const secret = page.getByTestId('new-key-secret');
  await expect(secret).toBeVisible();
  const key = (await secret.textContent())!.trim();
  expect(key).toMatch(/^weir_staging_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}$/);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'key-created.png') });
  await page.getByRole('link', { name: 'Done' }).click();
  await expect(secret).toHaveCount(0);

  // Shown once: a reload lists the key by prefix and last four only.
  await page.reload();
  await expect(page.getByTestId('new-key-secret')).toHaveCount(0);
  const row = page.locator('tr', { has: page.getByRole('rowheader', { name: 'e2e key' }) });
  await expect(row).toContainText(`…${key.slice(-4)}`);
  expect(await page.content()).not.toContain(key);

  // A new team has no balance: the gateway refuses with 402 before any upstream call.
  expect(await chat(key)).toBe(402);

  // The operator credits the team (its personal team is named after the email) in /admin/teams.
  const op = await operatorPage(browser);
  await op.getByLabel('Team', { exact: true }).selectOption({ label: email });
  await op.getByLabel(/^Amount/).fill('5.00');
  await op.getByLabel('Reason').fill('e2e credit');
  await op.getByRole('button', { name: 'Apply' }).click();
  await expect(op.locator('tr', { has: op.getByRole('rowheader', { name: email, exact: true }) })).toContainText('$5.00');
  await op.context().close();

  expect(await chat(key)).toBe(200);

  await page.goto('/usage');
  await expect(page.getByTestId('total-requests')).toHaveText('2');
  const ok = page.locator('table.usage-table tbody tr', { hasText: '200' });
  await expect(ok).toHaveCount(1);
  await expect(ok).toContainText('demo/echo');
  await expect(ok).toContainText('e2e key');
  const cells = await ok.locator('td').allTextContents();
  // Input and output tokens (columns 5 and 8) and a cost above zero.
  expect(Number(cells[4].replace(/,/g, ''))).toBeGreaterThan(0);
  expect(Number(cells[7].replace(/,/g, ''))).toBeGreaterThan(0);
  expect(cells[9]).toMatch(/^\$0\.0*[1-9]/);
  await expect(page.getByTestId('total-cost')).toHaveText(cells[9]);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'usage-after-request.png'), fullPage: true });

  await page.goto('/dashboard');
  await expect(page.locator('table.usage-table')).toContainText('demo/echo');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard-after-request.png'), fullPage: true });
  await page.goto('/billing');
  await expect(page.getByRole('main')).toContainText('e2e credit');

  await page.goto('/keys');
  await page.getByRole('button', { name: 'Revoke e2e key' }).click();
  await expect(row).toContainText('revoked');
  expect(await chat(key)).toBe(401);
});

async function shoot(page: Page, name: string) {
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  // Usable on a phone: wide tables scroll inside their frame, the page itself does not.
  expect(await page.evaluate(() => document.documentElement.scrollWidth), `${name} at 390 px`).toBeLessThanOrEqual(390);
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-mobile.png`), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
}

test('every console page renders for a signed-in owner, on desktop and phone', async ({ page, browser }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
  for (const [p, heading] of [
    ['/login', 'Log in'],
    ['/signup', 'Create your account'],
    ['/pricing', 'Pricing'],
  ]) {
    const r = await page.goto(p);
    expect(r?.status(), p).toBe(200);
    await expect(page.getByRole('heading', { level: 1 })).toContainText(heading);
    await shoot(page, p.slice(1));
  }
  await signUp(page, uniqueEmail('tourist'));
  await expect(page).toHaveURL(/\/dashboard$/);
  for (const [p, heading] of [
    ['/dashboard', 'Dashboard'],
    ['/keys', 'API keys'],
    ['/usage', 'Usage'],
    ['/billing', 'Billing'],
    ['/members', 'Members'],
    ['/models', 'Models'],
    ['/quickstart', 'Quickstart'],
    ['/settings', 'Settings'],
  ]) {
    const r = await page.goto(p);
    expect(r?.status(), p).toBe(200);
    await expect(page.getByRole('heading', { level: 1 })).toContainText(heading);
    await shoot(page, p.slice(1));
  }
  // Not the operator: the admin area does not exist for this user.
  const admin = await page.goto('/admin');
  expect(admin?.status()).toBe(404);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Page not found');

  // The operator's pages.
  const op = await operatorPage(browser);
  op.on('pageerror', (e) => errors.push(`${op.url()}: ${e.message}`));
  await shoot(op, 'admin-teams');
  expect((await op.goto('/admin'))?.status()).toBe(200);
  await expect(op.getByRole('heading', { level: 1 })).toHaveText('Admin');
  await shoot(op, 'admin');
  await op.context().close();
  expect(errors).toEqual([]);
});

test('an invitation link adds a member who cannot see the admin area', async ({ browser }) => {
  const owner = await browser.newPage();
  await signUp(owner, uniqueEmail('inviter'));
  await expect(owner).toHaveURL(/\/dashboard$/);
  await owner.goto('/members');
  // The link is shown by the hydrated page (a click before hydration just reloads it).
  await expect(async () => {
    await owner.getByRole('button', { name: /invite link/i }).click();
    await expect(owner.getByTestId('invite-link')).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 20_000 });
  const link = await owner.getByTestId('invite-link').inputValue();
  expect(link).toMatch(/\/invite\/[0-9A-Za-z]{32}$/);

  const ctx = await browser.newContext();
  const member = await ctx.newPage();
  const invitePath = new URL(link).pathname;
  await signUp(member, uniqueEmail('invitee'), invitePath);
  await expect(member).toHaveURL(new RegExp(`${invitePath}$`));
  await member.getByRole('button', { name: /join/i }).click();
  await expect(member).toHaveURL(/\/dashboard$/);
  // A member, not the operator: no admin area.
  expect((await member.goto('/admin'))?.status()).toBe(404);
  await expect(member.getByRole('heading', { level: 1 })).toHaveText('Page not found');

  await owner.goto('/members');
  await expect(owner.locator('table')).toContainText('invitee');
  // Used once: the link is dead now.
  const again = await ctx.newPage();
  await again.goto(invitePath);
  await expect(again.getByText(/not valid/)).toBeVisible();
  await ctx.close();
});

test('a mutation from another origin is refused with 403', async ({ request }) => {
  const r = await request.post('/api/auth/log_in', {
    headers: { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
    data: 'email=a%40example.com&password=xxxxxxxxxxxx&csrf=x',
    maxRedirects: 0,
  });
  expect(r.status()).toBe(403);
});

test('an owner limits a key and the team in the console, and the gateway enforces it at once', async ({ page }) => {
  const email = uniqueEmail('limits');
  await signUp(page, email);
  await expect(page).toHaveURL(/\/dashboard$/);
  await page.goto('/keys');
  await page.getByLabel('Name').fill('limited key');
  await page.getByRole('button', { name: 'Create key' }).click();
  const key = (await page.getByTestId('new-key-secret').textContent())!.trim();
  await page.getByRole('link', { name: 'Done' }).click();

  const row = page.locator('tr', { has: page.getByRole('rowheader', { name: 'limited key' }) });
  await expect(row.getByTestId('key-limits')).toHaveText('none');
  const edit = page.locator('details', { hasText: 'Edit limits of limited key' });
  await edit.getByText('Edit limits of limited key').click();
  await edit.getByLabel('Requests per minute').fill('1');
  await edit.getByLabel('Allowed models').fill('demo/*');
  await edit.getByRole('button', { name: 'Save limits' }).click();
  await expect(row.getByTestId('key-limits')).toHaveText('1 req/min · models demo/*');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'key-limits.png'), fullPage: true });

  // The new team has no balance: the first request is admitted by the limiter and refused
  // by billing (402); the second is over the key's one request a minute (429).
  expect(await chat(key)).toBe(402);
  expect(await chat(key)).toBe(429);

  await page.goto('/members');
  const team = page.locator('#team-limits');
  await expect(team.getByTestId('team-limits')).toHaveText('none');
  await team.getByLabel('Spend cap per day ($, UTC)').fill('2.50');
  await team.getByRole('button', { name: 'Save limits' }).click();
  await expect(team.getByTestId('team-limits')).toHaveText('$2.50/day');
  await team.getByLabel('Requests at once').fill('lots');
  await team.getByRole('button', { name: 'Save limits' }).click();
  await expect(team.getByRole('alert')).toContainText('whole number');
});
