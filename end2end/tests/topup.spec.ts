import { test, expect, type Page } from '@playwright/test';
import path from 'node:path';

// Runs against `weir serve --demo`, which starts the fake Stripe in-process and points Weir at
// it (see .ci/test): the whole Checkout loop, webhook included, with no Stripe account.

const SCREENSHOTS = path.join(__dirname, '..', 'screenshots');

function uniqueEmail(who: string): string {
  return `${who}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

async function signUp(page: Page, email: string) {
  await page.goto('/signup');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Sign up' }).click();
  await expect(page).toHaveURL(/\/dashboard$/);
}

function balance(page: Page) {
  return page.locator('.stat').filter({ has: page.getByText('Balance', { exact: true }) }).locator('.stat-value');
}

test('a team owner tops up $25 on the fake Stripe and the balance grows after the webhook', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
  await signUp(page, uniqueEmail('topper'));

  await page.goto('/billing');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Billing');
  await expect(balance(page)).toHaveText('$0.00');
  await expect(page.getByText('From $5.00 to $10,000.00')).toBeVisible();
  await page.screenshot({ path: path.join(SCREENSHOTS, 'billing-topup.png'), fullPage: true });

  // The preset: a pending top-up, a Checkout Session, and off to (fake) Stripe.
  await page.getByRole('button', { name: '$25', exact: true }).click();
  await expect(page).toHaveURL(/\/pay\/cs_test_/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Fake Stripe Checkout');
  await expect(page.getByText('$25.00 USD')).toBeVisible();
  await page.screenshot({ path: path.join(SCREENSHOTS, 'fake-stripe-checkout.png'), fullPage: true });

  // Pay: the fake delivers the signed events to /webhooks/stripe, then sends the browser back.
  await page.getByRole('button', { name: 'Pay $25.00' }).click();
  await expect(page).toHaveURL(/\/billing\?topup=tu_[0-9a-f]+&session_id=cs_test_/);
  await expect(page.getByTestId('topup-status')).toContainText('$25.00 was added to the balance');
  await expect(balance(page)).toHaveText('$25.00');
  const row = page.getByTestId('topups').locator('tbody tr').first();
  await expect(row).toContainText('$25.00');
  await expect(row).toContainText('Credited');
  await expect(row.getByRole('link', { name: 'Receipt' })).toHaveAttribute('href', /\/receipts\/ch_/);
  // The ledger lists the credit as a Stripe top-up.
  await expect(page.getByRole('main')).toContainText('Stripe top-up');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'billing-after-topup.png'), fullPage: true });

  // Reloading the success page credits nothing more.
  await page.reload();
  await expect(balance(page)).toHaveText('$25.00');
  expect(errors).toEqual([]);
});
