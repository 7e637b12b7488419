// The operator console in real Chromium (Debian's, driven by playwright-core), run by
// peregrine/tests/console.rs against a live `peregrine up`. A superadmin logs in with e-mail,
// password and TOTP code, halts and resumes btcusd, approves a withdrawal request and an
// adjustment that a second operator made, finds the four actions in the audit log, whose
// chain verifies, and the credited 250 usd in the Reports page's liabilities (its table and
// the CSV it offers for download). Screenshots go to OUT_DIR.
//
// The TOTP code is asked for on stdout (`ASK otp`) and read on stdin: the test knows the
// secret and which codes are spent. Logs go to stderr. Any failed step exits non-zero.
//
// Environment: CONSOLE_URL, OUT_DIR, EMAIL, UID (the operator's), WITHDRAWAL and ADJUSTMENT
// (their ids), PLAYWRIGHT_CORE_DIR, CHROMIUM_BIN.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE_DIR);
const { CONSOLE_URL, OUT_DIR, EMAIL, UID, WITHDRAWAL, ADJUSTMENT } = process.env;
// Each wait is bounded: a page that does not show what it should within this is broken.
const STEP_MS = 10_000;
const PASSWORD = 'correct horse battery staple';

const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function ask(...words) {
  process.stdout.write(`ASK ${words.join(' ')}\n`);
  const { value, done } = await answers.next();
  if (done) throw new Error(`no answer to ${words.join(' ')}`);
  if (value.startsWith('ERR')) throw new Error(value);
  return value;
}

const log = (...args) => console.error('[console.mjs]', ...args);

// The row of `table` (a selector) whose cells include every one of `texts`, once visible.
async function row(page, table, texts) {
  let locator = page.locator(`${table} tbody tr`);
  for (const text of texts) {
    const exact = new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
    locator = locator.filter({ has: page.locator('td', { hasText: exact }) });
  }
  await locator.first().waitFor({ timeout: STEP_MS });
  return locator.first();
}

async function logIn(page) {
  await page.goto(CONSOLE_URL);
  // Keyboard only: the e-mail field has the focus, Tab moves on, Enter submits.
  await page.keyboard.type(EMAIL);
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Tab');
  await page.keyboard.type(await ask('otp'));
  await page.keyboard.press('Enter');
  await page.locator('#who', { hasText: UID }).waitFor({ timeout: STEP_MS });
  log('logged in as', UID);
}

async function haltAndResume(page) {
  const market = await row(page, '#markets', ['btcusd', 'enabled']);
  await market.getByRole('button', { name: 'Halt btcusd' }).click();
  await row(page, '#markets', ['btcusd', 'halted']);
  await page.locator('#status-msg', { hasText: 'btcusd: halted' }).waitFor({ timeout: STEP_MS });
  await page.getByRole('button', { name: 'Resume btcusd' }).click();
  await row(page, '#markets', ['btcusd', 'enabled']);
  await page.locator('#status-msg', { hasText: 'btcusd: resumed' }).waitFor({ timeout: STEP_MS });
  log('halted and resumed btcusd');
}

async function approveWithdrawal(page) {
  await page.getByRole('button', { name: 'Withdrawals' }).click();
  const request = await row(page, '#withdrawals', [WITHDRAWAL, '0.5 eth', 'awaiting_approval']);
  await page.screenshot({ path: join(OUT_DIR, 'console-withdrawals.png'), fullPage: true });
  await request.getByRole('button', { name: `Approve withdrawal ${WITHDRAWAL}` }).click();
  await page.locator('#withdrawals-msg', { hasText: `Withdrawal ${WITHDRAWAL}: approved.` })
    .waitFor({ timeout: STEP_MS });
  await page.locator('#withdrawals-state').selectOption('approved');
  await page.getByRole('button', { name: 'Show' }).click();
  await row(page, '#withdrawals', [WITHDRAWAL, '1 / 1', 'approved']);
  log('approved withdrawal', WITHDRAWAL);
}

async function approveAdjustment(page) {
  await page.getByRole('button', { name: 'Adjustments' }).click();
  const pending = await row(page, '#adjustments', [ADJUSTMENT, '250 usd', 'refund of ticket 4711']);
  await pending.getByRole('button', { name: `Approve adjustment ${ADJUSTMENT}` }).click();
  await page.locator('#adjustments-msg', { hasText: `Adjustment ${ADJUSTMENT}: approved.` })
    .waitFor({ timeout: STEP_MS });
  log('approved adjustment', ADJUSTMENT);
}

async function auditShowsItAll(page) {
  await page.getByRole('button', { name: 'Audit log' }).click();
  await page.getByLabel('Actor').fill(UID);
  await page.getByRole('button', { name: 'Filter' }).click();
  await row(page, '#audit', [UID, 'rbac.market.manage', 'market:btcusd', 'allowed']);
  await row(page, '#audit', [UID, 'rbac.withdrawal.review', `withdrawal-request:${WITHDRAWAL}`, 'allowed']);
  await row(page, '#audit', [UID, 'rbac.adjustment.approve', `adjustment:${ADJUSTMENT}`, 'allowed']);
  await row(page, '#audit', [UID, 'identity.session.create', EMAIL, 'allowed']);
  await page.getByRole('button', { name: 'Verify chain' }).click();
  await page.locator('#audit-chain', { hasText: /Chain intact: \d+ records verified/ })
    .waitFor({ timeout: STEP_MS });
  log('the audit log shows the actions and the chain verifies');
}

// The approved adjustment's 250 usd (6 decimals) is what the exchange owes in usd: the
// balances report's table shows it, and its CSV download says the same.
async function reportsShowTheCredit(page) {
  await page.getByRole('button', { name: 'Reports' }).click();
  await row(page, '#reports', ['usd', '1', '250.000000', '0.000000']);
  const link = page.locator('#reports-csv');
  await link.waitFor({ timeout: STEP_MS });
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: STEP_MS }),
    link.click()]);
  const csv = await readFile(await download.path(), 'utf8');
  const lines = csv.split('\r\n');
  if (lines[0] !== 'currency,precision,accounts,available,held,total'
    || !lines.includes('usd,6,1,250.000000,0.000000,250.000000')) {
    throw new Error(`the balances CSV does not show the credit: ${JSON.stringify(csv)}`);
  }
  log('the reports show the credited usd');
}

async function main() {
  // launch() runs Chromium on a fresh --user-data-dir of its own (a temporary directory it
  // removes at close): Playwright refuses that flag from callers.
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 },
      acceptDownloads: true });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (error) => { errors.push(error.message); log('page error:', error.message); });
    await logIn(page);
    await haltAndResume(page);
    await page.screenshot({ path: join(OUT_DIR, 'console-status.png'), fullPage: true });
    await approveWithdrawal(page);
    await approveAdjustment(page);
    await auditShowsItAll(page);
    await page.screenshot({ path: join(OUT_DIR, 'console-audit.png'), fullPage: true });
    await reportsShowTheCredit(page);
    await page.screenshot({ path: join(OUT_DIR, 'console-reports.png'), fullPage: true });
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
    process.stdout.write('DONE\n');
  } finally {
    await browser.close();
  }
}

main().then(() => process.exit(0), (error) => {
  log('FAILED:', error.stack || String(error));
  process.exit(1);
});
