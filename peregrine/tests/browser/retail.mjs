// The retail page in real Chromium (Debian's, driven by playwright-core), run by
// peregrine/tests/retail_page.rs against a live `peregrine up`. Two users sign up, verify their
// e-mail, log in, get credited, trade against each other on the page and each sees the trade
// and the new balances; the buyer also sets up 2FA, cancels an order and asks for a deposit
// address. A screenshot per user goes to OUT_DIR.
//
// The account is read once at sign-in (three GETs: balances, orders, trades), then kept by the
// private WebSocket: every later balance, order and trade on the page must come from it. The
// script fails if the page reads the account again (polling, or a reload after an action or a
// reconnect), if its private socket was opened more than once, or if the socket never renewed
// its access token (`up` issues 15 s tokens here, so the scenario outlives several).
//
// What only the test harness can do (read the mailed code, credit through the control API) is
// asked for on stdout, one line each (`ASK code <email>`, `ASK deposit <account> <currency>
// <amount>`), and answered on stdin. Logs go to stderr. Any failed step exits non-zero.
//
// Environment: PAGE_URL (the page), OUT_DIR, PLAYWRIGHT_CORE_DIR, CHROMIUM_BIN.

import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE_DIR);
const PAGE_URL = process.env.PAGE_URL;
const OUT_DIR = process.env.OUT_DIR;
// Each wait is bounded: a page that does not show what it should within this is broken.
const STEP_MS = 10_000;
const PASSWORD = 'correct horse battery staple';
// The account reads of one sign-in: balances, the market's orders, the market's own trades.
const ACCOUNT_READS_AT_SIGN_IN = 3;
const ACCOUNT_READ = /^\/api\/v2\/peatio\/(account\/balances|market\/orders|market\/trades)$/;

const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function ask(...words) {
  process.stdout.write(`ASK ${words.join(' ')}\n`);
  const { value, done } = await answers.next();
  if (done) throw new Error(`no answer to ${words.join(' ')}`);
  if (value.startsWith('ERR')) throw new Error(value);
  return value;
}

const log = (...args) => console.error('[retail.mjs]', ...args);

// RFC 6238 (SHA-1, 6 digits, 30 s) from an otpauth URL: what an authenticator app shows.
function totp(url) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const text = new URL(url).searchParams.get('secret');
  let bits = 0; let value = 0; const bytes = [];
  for (const c of text) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) { bits -= 8; bytes.push((value >>> bits) & 0xff); }
  }
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30_000)));
  const mac = createHmac('sha1', Buffer.from(bytes)).update(counter).digest();
  const offset = mac[19] & 0x0f;
  const word = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(word % 1_000_000).padStart(6, '0');
}

// The row of `table` (an id) whose cells include every one of `texts`, once visible.
async function row(page, table, texts) {
  let locator = page.locator(`${table} tbody tr`);
  for (const text of texts) {
    const exact = new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
    locator = locator.filter({ has: page.locator('td', { hasText: exact }) });
  }
  await locator.first().waitFor({ timeout: STEP_MS });
  return locator.first();
}

async function signUp(page, email) {
  const signup = page.locator('#signup-form');
  await signup.getByLabel('E-mail').fill(email);
  await signup.getByLabel('Password').fill(PASSWORD);
  await signup.getByRole('button', { name: 'Sign up' }).click();
  await page.locator('#auth-msg', { hasText: 'We sent a code' }).waitFor({ timeout: STEP_MS });
  const code = await ask('code', email);
  const verify = page.locator('#verify-form');
  await verify.getByLabel('Code from the e-mail').fill(code);
  await verify.getByRole('button', { name: 'Verify' }).click();
  const verified = page.locator('#auth-msg', { hasText: 'E-mail verified' });
  await verified.waitFor({ timeout: STEP_MS });
  const account = (await verified.textContent()).match(/account (\d+)/)[1];
  const login = page.locator('#login-form');
  await login.getByLabel('Password').fill(PASSWORD);
  await login.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#signed-in').waitFor({ state: 'visible', timeout: STEP_MS });
  log(email, 'signed up and logged in, account', account);
  return account;
}

async function placeOrder(page, side, price, volume) {
  const form = page.locator('#order-form');
  await form.getByLabel(side === 'buy' ? 'Buy' : 'Sell').check();
  await form.getByLabel('Price').fill(price);
  await form.getByLabel('Amount').fill(volume);
  await form.getByRole('button', { name: 'Place order' }).click();
  await page.locator('#order-msg', { hasText: `${side} ${volume} at ${price}` }).waitFor({ timeout: STEP_MS });
}

async function balance(page, currency, available, locked) {
  await row(page, '#balances', [currency, available, locked]);
}

async function setUp2fa(page) {
  await page.getByRole('button', { name: 'Set up 2FA' }).click();
  const qr = page.getByRole('img', { name: /QR code of your 2FA secret/ });
  await qr.waitFor({ timeout: STEP_MS });
  await page.waitForFunction(() => document.querySelector('#otp-qr').naturalWidth > 0, null, { timeout: STEP_MS });
  const url = await page.locator('#otp-url').textContent();
  await page.getByLabel('Code from your authenticator app').fill(totp(url));
  await page.getByRole('button', { name: 'Enable 2FA' }).click();
  await page.locator('#otp-msg', { hasText: '2FA is on' }).waitFor({ timeout: STEP_MS });
}

// Counts `page`'s account reads and private WebSockets, and the token renewals they confirm.
function watchAccount(page) {
  const seen = { reads: 0, sockets: 0, renewals: 0, closes: [] };
  page.on('request', (request) => {
    if (request.method() === 'GET' && ACCOUNT_READ.test(new URL(request.url()).pathname)) seen.reads += 1;
  });
  page.on('websocket', (ws) => {
    if (!ws.url().includes('/ranger/private')) return;
    seen.sockets += 1;
    ws.on('framereceived', (frame) => {
      if (String(frame.payload).includes('token accepted')) seen.renewals += 1;
    });
    ws.on('close', () => seen.closes.push(ws.url()));
  });
  return seen;
}

// Waits (bounded) until `check()` holds.
async function until(what, check, seen) {
  const deadline = Date.now() + 3 * STEP_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`never: ${what} ${JSON.stringify(seen)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
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
    const stamp = `${process.pid}-${Date.now()}`;
    const pages = [];
    const watched = [];
    for (const who of ['buyer', 'seller']) {
      const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
      const page = await context.newPage();
      page.on('pageerror', (error) => log(who, 'page error:', error.message));
      watched.push(watchAccount(page));
      await page.goto(PAGE_URL);
      await page.locator('#feed', { hasText: 'live' }).waitFor({ timeout: STEP_MS });
      pages.push(page);
    }
    const [buyer, seller] = pages;
    const buyerAccount = await signUp(buyer, `buyer-${stamp}@example.com`);
    const sellerAccount = await signUp(seller, `seller-${stamp}@example.com`);
    for (const seen of watched) {
      await until('the account read at sign-in', () => seen.reads === ACCOUNT_READS_AT_SIGN_IN && seen.sockets === 1, seen);
    }
    await ask('deposit', buyerAccount, 'usd', '100000');
    await ask('deposit', sellerAccount, 'btc', '10');
    await balance(buyer, 'USD', '100000', '0');
    await balance(seller, 'BTC', '10', '0');

    // An order placed and cancelled from the open orders table.
    await placeOrder(buyer, 'buy', '40000', '0.1');
    const open = await row(buyer, '#open-orders', ['buy', '40000', '0.1']);
    await open.getByRole('button', { name: /Cancel order/ }).click();
    await buyer.locator('#order-msg', { hasText: 'cancelled' }).waitFor({ timeout: STEP_MS });
    await row(buyer, '#order-history', ['40000', 'cancel']);

    // The trade: the buyer's bid rests, shows in both books, the seller hits it.
    await placeOrder(buyer, 'buy', '50000', '0.5');
    await row(seller, '#bids', ['50000', '0.5']);
    await placeOrder(seller, 'sell', '50000', '0.5');
    for (const page of [buyer, seller]) {
      await row(page, '#trades', ['50000', '0.5']);
      await row(page, '#my-trades', ['btcusd', '50000', '0.5']);
    }
    // Default fees: maker 0.1 % of what the buyer receives, taker 0.2 % of the seller's.
    await balance(buyer, 'BTC', '0.4995', '0');
    await balance(buyer, 'USD', '75000', '0');
    await balance(seller, 'BTC', '9.5', '0');
    await balance(seller, 'USD', '24950', '0');
    log('both users see the trade and their new balances');

    await buyer.getByRole('button', { name: 'Show my deposit address' }).click();
    await buyer.locator('#deposit-msg', { hasText: 'not available' }).waitFor({ timeout: STEP_MS });
    await setUp2fa(buyer);

    // Everything since sign-in came over one private socket per page, which renewed its token.
    for (const seen of watched) await until('a token renewed on the open socket', () => seen.renewals >= 1, seen);
    for (const [index, seen] of watched.entries()) {
      const who = index === 0 ? 'buyer' : 'seller';
      if (seen.reads !== ACCOUNT_READS_AT_SIGN_IN) throw new Error(`${who} read the account ${seen.reads} times: the page polls`);
      if (seen.sockets !== 1 || seen.closes.length !== 0) throw new Error(`${who}'s private socket was reopened: ${JSON.stringify(seen)}`);
      log(who, 'account over the private socket:', JSON.stringify(seen));
    }

    await buyer.screenshot({ path: join(OUT_DIR, 'retail-buyer.png'), fullPage: true });
    await seller.screenshot({ path: join(OUT_DIR, 'retail-seller.png'), fullPage: true });
    process.stdout.write('DONE\n');
  } finally {
    await browser.close();
  }
}

main().then(() => process.exit(0), (error) => {
  log('FAILED:', error.stack || String(error));
  process.exit(1);
});
