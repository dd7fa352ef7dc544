import { test, expect, type Page } from '@playwright/test';
import path from 'node:path';

const SCREENSHOTS = path.join(__dirname, '..', 'screenshots');

/**
 * Collects uncaught page errors (a broken wasm shows up here) and failed loads of assets
 * (favicon, CSS, JS, wasm), so each test can assert there were none.
 */
function trackPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('response', (response) => {
    if (response.status() >= 400 && response.request().resourceType() !== 'document') {
      errors.push(`HTTP ${response.status()} for ${response.url()}`);
    }
  });
  return errors;
}

test('home page renders what Weir is', async ({ page }) => {
  const errors = trackPageErrors(page);
  const response = await page.goto('/');
  expect(response?.status()).toBe(200);

  await expect(page).toHaveTitle(/Weir/);
  await expect(page.getByRole('heading', { level: 1 })).toContainText('One API for every model');
  await expect(page.getByText('tops up a prepaid balance')).toBeVisible();

  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav.getByRole('link', { name: 'Home' })).toHaveAttribute('aria-current', 'page');
  await expect(nav.getByRole('link', { name: 'Pricing' })).toBeVisible();
  await expect(nav.getByRole('link', { name: 'Docs' })).toHaveAttribute('href', '/#quickstart');

  // Signed out, the header offers log-in and sign-up.
  await expect(page.locator('header').getByRole('link', { name: 'Log in' })).toHaveAttribute('href', '/login');
  await expect(page.locator('header').getByRole('link', { name: 'Sign up' })).toHaveAttribute('href', '/signup');

  await page.screenshot({ path: path.join(SCREENSHOTS, 'home.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(SCREENSHOTS, 'home-mobile.png'), fullPage: true });
  expect(errors).toEqual([]);
});

test('quickstart tabs switch after hydration', async ({ page }) => {
  const errors = trackPageErrors(page);
  await page.goto('/');

  const panel = page.getByRole('tabpanel');
  const pythonTab = page.getByRole('tab', { name: 'Python' });
  // The snippets name the address the page was served from.
  await expect(panel).toContainText(`curl ${process.env.BASE_URL ?? 'http://127.0.0.1:8080'}/v1/chat/completions`);
  await expect(pythonTab).toHaveAttribute('aria-selected', 'false');

  // Until the wasm has hydrated the page, a click does nothing; a server-only page never changes.
  await expect(async () => {
    await pythonTab.click();
    await expect(panel).toContainText('from openai import OpenAI', { timeout: 500 });
  }).toPass({ timeout: 15_000 });

  await expect(pythonTab).toHaveAttribute('aria-selected', 'true');
  await expect(panel).not.toContainText('curl ');

  await page.getByRole('tab', { name: 'Node' }).click();
  await expect(panel).toContainText('import OpenAI from "openai"');
  await page.getByRole('tab', { name: 'curl' }).click();
  await expect(panel).toContainText('Authorization: Bearer $WEIR_KEY');

  expect(errors).toEqual([]);
});

test('pricing page lists the seeded catalog with prices', async ({ page }) => {
  const errors = trackPageErrors(page);
  const response = await page.goto('/pricing');
  expect(response?.status()).toBe(200);

  await expect(page).toHaveTitle('Pricing · Weir');
  const table = page.locator('table.price-table');
  for (const column of ['Model', 'Provider', 'Context', 'Input', 'Output']) {
    await expect(table.getByRole('columnheader', { name: column, exact: true })).toBeVisible();
  }
  await expect(table.locator('tr[data-model="demo/echo"]')).toBeVisible();
  expect(await table.locator('tbody tr').count()).toBeGreaterThan(20);

  // The filters are a plain GET form: the query string is the state.
  await page.goto('/pricing?provider=demo');
  await expect(table.locator('tr[data-model="demo/echo"]')).toBeVisible();
  await expect(table.locator('tr[data-model^="openai/"]')).toHaveCount(0);

  await page.screenshot({ path: path.join(SCREENSHOTS, 'pricing.png'), fullPage: true });
  expect(errors).toEqual([]);
});

test('/pricing and GET /api/public/models list the same models at the same prices', async ({ page }) => {
  const api = await page.request.get('/api/public/models');
  expect(api.status()).toBe(200);
  const etag = api.headers()['etag'];
  expect(etag).toBeTruthy();
  const again = await page.request.get('/api/public/models', { headers: { 'If-None-Match': etag } });
  expect(again.status()).toBe(304);
  const models: { id: string; pricing: { prompt: string; completion: string } }[] = (await api.json()).data;
  const byId = new Map(models.map((m) => [m.id, m]));
  for (const demo of ['demo/echo', 'demo/claude-echo', 'demo/embed']) expect(byId.has(demo), demo).toBe(true);

  await page.goto('/pricing');
  const rows = await page.locator('table.price-table tbody tr').evaluateAll((trs) =>
    trs.map((tr) => ({
      id: (tr as HTMLElement).dataset.model ?? '',
      input: tr.children[5]?.textContent ?? '',
      output: tr.children[8]?.textContent ?? '',
    })),
  );
  expect(rows.map((r) => r.id).sort()).toEqual([...byId.keys()].sort());
  // The page shows dollars per million tokens; the JSON gives dollars per token.
  const dollars = (cell: string) => Number(cell.replace(/[$,]/g, ''));
  for (const r of rows) {
    const m = byId.get(r.id)!;
    expect(dollars(r.input), `${r.id} input`).toBeCloseTo(Number(m.pricing.prompt) * 1e6, 6);
    expect(dollars(r.output), `${r.id} output`).toBeCloseTo(Number(m.pricing.completion) * 1e6, 6);
  }
});

test('Docs link leads to the quickstart from another page', async ({ page }) => {
  const errors = trackPageErrors(page);
  await page.goto('/pricing');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Docs' }).click();

  await expect(page).toHaveURL(/\/#quickstart$/);
  await expect(page.locator('#quickstart')).toBeInViewport();
  expect(errors).toEqual([]);
});

test('unknown path answers 404 with a way home', async ({ page }) => {
  const errors = trackPageErrors(page);
  const response = await page.goto('/no-such-page');
  expect(response?.status()).toBe(404);

  await expect(page).toHaveTitle('Page not found · Weir');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Page not found');
  const home = page.getByRole('link', { name: 'Back to home' });
  await expect(home).toHaveAttribute('href', '/');

  await page.screenshot({ path: path.join(SCREENSHOTS, 'not-found.png'), fullPage: true });

  // After hydration the link navigates on the client and lands on the home page.
  await home.click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole('heading', { level: 1 })).toContainText('One API for every model');
  expect(errors).toEqual([]);
});
