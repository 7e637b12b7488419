// The retail page's one script: identity (/api/v2/barong) with the session cookie and CSRF
// token, trading (/api/v2/peatio) with identity's short-lived access JWT, the book and trades
// from the public Ranger WebSocket, and the account (balances, orders, trades) read once at
// sign-in, then kept current by the private Ranger WebSocket (no polling), which carries the
// JWT and renews it on the open socket. Plain DOM, no framework, no build.

const API = '/api/v2';
// A JWT lives at most 60 s: a fresh one is fetched when less than this share of its life is
// left, and the private WebSocket's is renewed then.
const TOKEN_LEFT_SHARE = 1 / 3;
// The subprotocol that carries the JWT on the private WebSocket (browsers set no headers).
const JWT_PROTOCOL = 'peregrine.jwt';
const ORDERS_READ = 50;
const ACCOUNT_ROWS_SHOWN = 20;
const BOOK_LEVELS = 12;
const TRADES_SHOWN = 30;
const RECONNECT_MS = 1000;

const state = {
  markets: [],
  market: null,
  csrf: sessionStorage.getItem('peregrine.csrf'),
  user: null,
  token: null,
  tokenExpiresS: 0,
  tokenLifeS: 0,
  tokenPending: null,
  book: { asks: new Map(), bids: new Map(), sequence: null },
  trades: [],
  ws: null,
  // The account as the private stream keeps it: currency -> balance, id -> order, own trades.
  balances: new Map(),
  orders: new Map(),
  myTrades: new Map(),
  privateWs: null,
  renewTimer: null,
};

const $ = (selector) => document.querySelector(selector);

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// One request; JSON in and out. `auth`: 'session' (cookie + CSRF) or 'token' (Bearer JWT).
async function call(method, path, { body, auth } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth === 'session' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
  if (auth === 'token') headers.Authorization = `Bearer ${await accessToken()}`;
  const response = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!response.ok) {
    const code = json?.error?.code ?? json?.errors?.[0] ?? `http.${response.status}`;
    const message = json?.error?.message ?? (text || response.statusText);
    if (response.status === 401 && state.user) signedOut('Your session ended: log in again.');
    throw new ApiError(response.status, code, message);
  }
  return json;
}

// The session's access JWT, fetched again shortly before it expires; one fetch at a time.
async function accessToken() {
  const nowS = Date.now() / 1000;
  const leftS = state.tokenExpiresS - nowS;
  if (state.token && leftS > state.tokenLifeS * TOKEN_LEFT_SHARE) return state.token;
  if (!state.tokenPending) {
    state.tokenPending = call('POST', '/barong/resource/tokens', { auth: 'session', body: {} })
      .then((r) => {
        state.token = r.token;
        state.tokenExpiresS = r.expires_at;
        state.tokenLifeS = Math.max(1, r.expires_at - Date.now() / 1000);
        return r.token;
      })
      .finally(() => { state.tokenPending = null; });
  }
  return state.tokenPending;
}

function say(id, text, isError = false) {
  const element = $(id);
  element.textContent = text;
  element.classList.toggle('error', isError);
}

function failure(error) {
  return error instanceof ApiError ? `${error.message} (${error.code})` : String(error);
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

// Runs `action` on submit; a thrown error goes to the form's message line.
function onSubmit(selector, messageId, action) {
  $(selector).addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = event.target.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await action(formData(event.target), event.target);
    } catch (error) {
      say(messageId, failure(error), true);
    } finally {
      button.disabled = false;
    }
  });
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  if (className) td.className = className;
  return td;
}

// Replaces a table's body with one row per item, `columns(item)` giving its cells.
function fill(tableId, items, columns, empty = 'None') {
  const body = $(`${tableId} tbody`);
  const rows = items.map((item) => {
    const tr = document.createElement('tr');
    for (const c of columns(item)) tr.append(c instanceof Node ? c : cell(c));
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = cell(empty);
    td.colSpan = $(`${tableId} thead tr`).children.length;
    tr.append(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function time(value) {
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  return date.toLocaleTimeString([], { hour12: false });
}

// ---- Market data: the Ranger WebSocket ---------------------------------------------------

function connectFeed() {
  if (state.ws) {
    const old = state.ws;
    state.ws = null;
    old.close();
  }
  const market = state.market.id;
  state.book = { asks: new Map(), bids: new Map(), sequence: null };
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = `${scheme}://${location.host}${API}/ranger/public?stream=${market}.ob-inc&stream=${market}.trades`;
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => say('#feed', `live: ${state.market.name}`);
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    for (const [stream, data] of Object.entries(message)) onStream(stream, data);
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    say('#feed', 'market data disconnected: reconnecting…', true);
    setTimeout(() => { if (state.ws === ws) connectFeed(); }, RECONNECT_MS);
  };
}

function onStream(stream, data) {
  const market = state.market.id;
  const book = state.book;
  if (stream === `${market}.ob-snap`) {
    book.asks = new Map(data.asks);
    book.bids = new Map(data.bids);
    book.sequence = data.sequence;
    renderBook();
  } else if (stream === `${market}.ob-inc`) {
    if (book.sequence !== null && data.sequence !== book.sequence + 1) {
      connectFeed(); // a gap: start again from a snapshot
      return;
    }
    book.sequence = data.sequence;
    for (const side of ['asks', 'bids']) {
      if (!data[side]) continue;
      const [price, amount] = data[side];
      if (Number(amount) === 0) book[side].delete(price);
      else book[side].set(price, amount);
    }
    renderBook();
  } else if (stream === `${market}.trades`) {
    for (const t of data.trades) {
      state.trades.unshift({ time: t.date, price: t.price, amount: t.amount, taker: t.taker_type });
    }
    state.trades.length = Math.min(state.trades.length, TRADES_SHOWN);
    renderTrades();
  }
}

function renderBook() {
  const byPrice = (a, b) => Number(a[0]) - Number(b[0]);
  const asks = [...state.book.asks].sort(byPrice).slice(0, BOOK_LEVELS).reverse();
  const bids = [...state.book.bids].sort(byPrice).reverse().slice(0, BOOK_LEVELS);
  fill('#asks', asks, ([p, a]) => [p, a], 'No asks');
  fill('#bids', bids, ([p, a]) => [p, a], 'No bids');
  const best = asks.length && bids.length
    ? `spread ${(Number(asks[asks.length - 1][0]) - Number(bids[0][0])).toFixed(state.market.price_precision)}`
    : '';
  $('#spread').textContent = best;
}

function renderTrades() {
  fill('#trades', state.trades, (t) => [time(t.time), cell(t.price, t.taker), t.amount, t.taker], 'No trades yet');
}

async function loadTrades() {
  const trades = await call('GET', `/peatio/public/markets/${state.market.id}/trades?limit=${TRADES_SHOWN}`);
  state.trades = trades.map((t) => ({ time: t.created_at, price: t.price, amount: t.amount, taker: t.taker_type }));
  renderTrades();
}

async function selectMarket(id) {
  state.market = state.markets.find((m) => m.id === id) ?? state.markets[0];
  for (const span of document.querySelectorAll('.unit')) {
    const unit = span.dataset.unit === 'base' ? state.market.base_unit : state.market.quote_unit;
    span.textContent = `(${unit.toUpperCase()})`;
  }
  connectFeed();
  await loadTrades().catch((error) => notice(failure(error)));
  if (state.user) await loadAccount();
}

// ---- Identity: sign up, verify, log in, 2FA -----------------------------------------------

function notice(text) {
  const element = $('#notice');
  element.textContent = text;
  element.hidden = !text;
}

function signedIn(user) {
  state.user = user;
  $('#signed-out').hidden = true;
  $('#signed-in').hidden = false;
  $('#logout').hidden = false;
  $('#who').textContent = `${user.email} · account ${user.account_id ?? '—'}`;
  $('#otp-state').textContent = user.otp ? '2FA is on.' : '2FA is off: set it up to withdraw.';
  $('#otp-start').hidden = Boolean(user.otp);
  if (!state.privateWs) connectAccount();
}

function signedOut(message = '') {
  state.user = null;
  state.token = null;
  state.csrf = null;
  sessionStorage.removeItem('peregrine.csrf');
  clearTimeout(state.renewTimer);
  if (state.privateWs) {
    const old = state.privateWs;
    state.privateWs = null;
    old.close();
  }
  $('#signed-out').hidden = false;
  $('#signed-in').hidden = true;
  $('#logout').hidden = true;
  $('#who').textContent = '';
  say('#auth-msg', message, Boolean(message));
}

function wireIdentity() {
  onSubmit('#signup-form', '#auth-msg', async (data) => {
    await call('POST', '/barong/identity/users', { body: { email: data.email, password: data.password } });
    $('#verify-form [name=email]').value = data.email;
    $('#login-form [name=email]').value = data.email;
    say('#auth-msg', `We sent a code to ${data.email}: enter it under "Verify your e-mail".`);
    $('#verify-form [name=code]').focus();
  });
  onSubmit('#verify-form', '#auth-msg', async (data) => {
    const user = await call('POST', '/barong/identity/users/email/confirm_code', { body: { email: data.email, code: data.code } });
    say('#auth-msg', `E-mail verified: account ${user.account_id} is yours. Log in now.`);
    $('#login-form [name=password]').focus();
  });
  $('#resend').addEventListener('click', async () => {
    const email = $('#verify-form [name=email]').value;
    try {
      await call('POST', '/barong/identity/users/email/generate_code', { body: { email } });
      say('#auth-msg', `A new code is on its way to ${email}.`);
    } catch (error) {
      say('#auth-msg', failure(error), true);
    }
  });
  onSubmit('#login-form', '#auth-msg', async (data, form) => {
    const body = { email: data.email, password: data.password };
    if (data.otp_code) body.otp_code = data.otp_code;
    const user = await call('POST', '/barong/identity/sessions', { body });
    state.csrf = user.csrf_token;
    sessionStorage.setItem('peregrine.csrf', user.csrf_token);
    form.reset();
    say('#auth-msg', '');
    signedIn(user);
  });
  $('#logout').addEventListener('click', async () => {
    try { await call('DELETE', '/barong/identity/sessions', { auth: 'session' }); } catch { /* gone already */ }
    signedOut('Logged out.');
  });
  $('#otp-start').addEventListener('click', async () => {
    try {
      const r = await call('POST', '/barong/resource/otp/generate_qrcode', { auth: 'session', body: {} });
      const img = $('#otp-qr');
      img.src = `data:image/png;base64,${r.data.barcode}`;
      img.alt = 'QR code of your 2FA secret: scan it with an authenticator app';
      img.hidden = false;
      $('#otp-url').textContent = r.data.url;
      $('#otp-form').hidden = false;
      $('#otp-form [name=code]').focus();
      say('#otp-msg', 'Scan the code, then enter the 6 digits your app shows.');
    } catch (error) {
      say('#otp-msg', failure(error), true);
    }
  });
  onSubmit('#otp-form', '#otp-msg', async (data, form) => {
    await call('POST', '/barong/resource/otp/enable', { auth: 'session', body: { code: data.code } });
    form.reset();
    form.hidden = true;
    $('#otp-qr').hidden = true;
    $('#otp-url').textContent = '';
    signedIn({ ...state.user, otp: true });
    say('#otp-msg', '2FA is on: log-ins and withdrawals now ask for a code.');
  });
}

// ---- Account: balances, orders, trades, deposits, withdrawals ----------------------------

// The private Ranger WebSocket with the session's JWT: once open, the account is read once
// (what happened before the socket), then every change arrives on it. Closed by the server
// when its token expires without renewal, or by the network: opened again, and read again.
async function connectAccount() {
  clearTimeout(state.renewTimer);
  let token;
  try {
    token = await accessToken();
  } catch (error) {
    if (state.user) notice(`Account data could not be read: ${failure(error)}`);
    return;
  }
  if (!state.user) return;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = `${scheme}://${location.host}${API}/ranger/private?stream=order&stream=trade&stream=balance`;
  const ws = new WebSocket(url, [JWT_PROTOCOL, token]);
  state.privateWs = ws;
  ws.onopen = () => {
    scheduleRenewal(ws, state.tokenExpiresS);
    loadAccount();
  };
  ws.onmessage = (event) => onAccountMessage(ws, JSON.parse(event.data));
  ws.onclose = () => {
    if (state.privateWs !== ws) return;
    state.privateWs = null;
    clearTimeout(state.renewTimer);
    if (state.user) setTimeout(() => { if (state.user && !state.privateWs) connectAccount(); }, RECONNECT_MS);
  };
}

// Sends a fresh JWT on the open socket when the one it holds has a third of its life left.
function scheduleRenewal(ws, expiresAtS) {
  clearTimeout(state.renewTimer);
  const lifeLeftMs = expiresAtS * 1000 - Date.now();
  const delayMs = Math.max(0, lifeLeftMs - state.tokenLifeS * TOKEN_LEFT_SHARE * 1000);
  state.renewTimer = setTimeout(async () => {
    try {
      const token = await accessToken();
      if (state.privateWs === ws && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ event: 'token', token }));
      }
    } catch (error) {
      if (state.user) notice(`The session's token could not be renewed: ${failure(error)}`);
    }
  }, delayMs);
}

function onAccountMessage(ws, message) {
  if (message.success?.expires_at) {
    scheduleRenewal(ws, message.success.expires_at);
    return;
  }
  if (message.error) {
    notice(`Account stream: ${message.error.message}`);
    return;
  }
  if (message.balance) state.balances.set(message.balance.currency, message.balance);
  if (message.order) state.orders.set(message.order.id, message.order);
  if (message.trade) state.myTrades.set(message.trade.id, message.trade);
  renderAccount();
}

// Reads the account once: balances, the market's recent orders and own trades.
async function loadAccount() {
  if (!state.user || !state.market) return;
  const market = state.market.id;
  try {
    const [balances, orders, trades] = await Promise.all([
      call('GET', '/peatio/account/balances', { auth: 'token' }),
      call('GET', `/peatio/market/orders?market=${market}&limit=${ORDERS_READ}`, { auth: 'token' }),
      call('GET', `/peatio/market/trades?market=${market}&limit=${ACCOUNT_ROWS_SHOWN}`, { auth: 'token' }),
    ]);
    // What the stream brought meanwhile is as new as the read or newer: kept.
    for (const b of balances) if (!state.balances.has(b.currency)) state.balances.set(b.currency, b);
    for (const o of orders) if (!state.orders.has(o.id)) state.orders.set(o.id, o);
    for (const t of trades) if (!state.myTrades.has(t.id)) state.myTrades.set(t.id, t);
    renderAccount();
    notice('');
  } catch (error) {
    if (state.user) notice(`Account data could not be read: ${failure(error)}`);
  }
}

function renderAccount() {
  const market = state.market?.id;
  const newestFirst = (a, b) => b.id - a.id;
  const balances = [...state.balances.values()].sort((a, b) => a.currency.localeCompare(b.currency));
  const orders = [...state.orders.values()].filter((o) => o.market === market).sort(newestFirst);
  const trades = [...state.myTrades.values()].filter((t) => t.market === market).sort(newestFirst);
  fill('#balances', balances, (b) => [b.currency.toUpperCase(), b.balance, b.locked], 'No balances yet: deposit first');
  fill('#open-orders', orders.filter((o) => o.state === 'wait'), (o) => [
    String(o.id), o.market, cell(o.side, o.side), o.price, o.origin_volume, o.executed_volume, cancelButton(o),
  ], 'No open orders');
  fill('#order-history', orders.slice(0, ACCOUNT_ROWS_SHOWN), (o) => [
    String(o.id), o.market, cell(o.side, o.side), o.price ?? 'market', o.origin_volume, o.executed_volume, o.state,
  ], 'No orders yet');
  fill('#my-trades', trades.slice(0, ACCOUNT_ROWS_SHOWN), (t) => [
    time(t.created_at), t.market, cell(t.side, t.side), t.price, t.amount, t.total,
  ], 'No trades yet');
}

function cancelButton(order) {
  const td = document.createElement('td');
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = 'Cancel';
  button.setAttribute('aria-label', `Cancel order ${order.id}`);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await call('POST', `/peatio/market/orders/${order.id}/cancel`, { auth: 'token' });
      say('#order-msg', `Order ${order.id} cancelled.`);
    } catch (error) {
      say('#order-msg', failure(error), true);
      button.disabled = false;
    }
  });
  td.append(button);
  return td;
}

function wireAccount() {
  onSubmit('#order-form', '#order-msg', async (data) => {
    const order = await call('POST', '/peatio/market/orders', {
      auth: 'token',
      body: { market: state.market.id, side: data.side, ord_type: 'limit', price: data.price, volume: data.volume },
    });
    say('#order-msg', `Order ${order.id}: ${order.side} ${order.origin_volume} at ${order.price}, ${order.state}.`);
  });
  onSubmit('#deposit-form', '#deposit-msg', async (data) => {
    const img = $('#deposit-qr');
    img.hidden = true;
    $('#deposit-address').textContent = '';
    let answer;
    try {
      answer = await call('GET', `/peatio/account/deposit_address/${encodeURIComponent(data.currency)}`, { auth: 'token' });
    } catch (error) {
      if (error.status === 422 || error.status === 404 || error.status === 503) {
        say('#deposit-msg', `Deposits of ${data.currency.toUpperCase()} are not available: the wallets are not running on this appliance (${error.message}).`, true);
        return;
      }
      throw error;
    }
    if (!answer.address) {
      say('#deposit-msg', 'Your address is being made: ask again in a few seconds.');
      return;
    }
    $('#deposit-address').textContent = answer.address;
    img.src = `/qr.svg?text=${encodeURIComponent(answer.address)}`;
    img.alt = `QR code of your ${data.currency.toUpperCase()} deposit address`;
    img.hidden = false;
    say('#deposit-msg', `Send ${data.currency.toUpperCase()} to this address:`);
  });
  onSubmit('#withdraw-form', '#withdraw-msg', async (data, form) => {
    // Peatio's shape: a beneficiary by id, or (before beneficiaries) the address as `rid`.
    const body = { currency: data.currency, amount: data.amount, otp: data.otp };
    if (/^[0-9]+$/.test(data.to)) body.beneficiary_id = Number(data.to);
    else body.rid = data.to;
    try {
      const w = await call('POST', '/peatio/account/withdraws', { auth: 'token', body });
      say('#withdraw-msg', `Withdrawal ${w.id ?? ''} requested: ${w.state ?? 'accepted'}.`);
      form.reset();
    } catch (error) {
      if (error.code === 'request.route_not_found') {
        say('#withdraw-msg', 'Withdrawals are not available on this appliance yet.', true);
        return;
      }
      throw error;
    }
  });
}

// ---- Start ---------------------------------------------------------------------------------

async function start() {
  wireIdentity();
  wireAccount();
  const [markets, currencies] = await Promise.all([
    call('GET', '/peatio/public/markets'),
    call('GET', '/peatio/public/currencies'),
  ]);
  state.markets = markets;
  const select = $('#market');
  select.replaceChildren(...markets.map((m) => new Option(m.name, m.id)));
  select.addEventListener('change', () => selectMarket(select.value));
  for (const s of document.querySelectorAll('.currencies')) {
    s.replaceChildren(...currencies.map((c) => new Option(c.name, c.id)));
  }
  if (state.csrf) {
    try {
      signedIn(await call('GET', '/barong/resource/users/me'));
    } catch {
      signedOut();
    }
  }
  await selectMarket(markets[0]?.id);
}

start().catch((error) => notice(`The page could not start: ${failure(error)}`));
