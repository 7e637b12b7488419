// The operator console (see web/src/console/mod.rs). Every rule is the control API's; this
// script only calls it and shows the answers. Secrets (the access token, the session id that
// renews it) live in this module's memory only: never in storage, never in the DOM.

/** How often the status page polls, ms. */
const STATUS_POLL_MS = 3000;
/** Renew the access token this long before it expires, ms. */
const REFRESH_AHEAD_MS = 15000;
/** The shortest wait before a renewal, ms (a token can be shorter-lived than the margin). */
const REFRESH_MIN_MS = 3000;
/** Audit records per page. */
const AUDIT_PAGE_ROWS = 50;

const auth = { token: null, session: null, expiresAt: 0, uid: null, role: null };
const timers = { status: null, refresh: null };
let auditBefore = null;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch { data = null; }
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status, error.code || `http.${response.status}`,
      error.message || response.statusText);
  }
  return data;
}

/** A control call with the current token; a 401 means the session is over: log in again. */
async function api(method, path, body) {
  try {
    return await call(method, path, body);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && auth.session) {
      loggedOut('Your session ended: log in again.');
    }
    throw error;
  }
}

function scheduleRefresh() {
  clearTimeout(timers.refresh);
  const wait = Math.max(REFRESH_MIN_MS, auth.expiresAt * 1000 - Date.now() - REFRESH_AHEAD_MS);
  timers.refresh = setTimeout(refresh, wait);
}

async function refresh() {
  if (!auth.session) return;
  try {
    const answer = await call('POST', '/control/v1/login/refresh', { session: auth.session });
    auth.token = answer.token;
    auth.expiresAt = answer.expires_at;
    scheduleRefresh();
  } catch (error) {
    loggedOut(`Your session ended (${error.message}): log in again.`);
  }
}

// ---------------------------------------------------------------- DOM helpers

function cell(content, className) {
  const td = document.createElement('td');
  if (content instanceof Node) td.append(content);
  else td.textContent = content === null || content === undefined ? '' : String(content);
  if (className) td.className = className;
  return td;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const content of cells) tr.append(content instanceof HTMLTableCellElement ? content : cell(content));
  return tr;
}

function button(text, label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try { await onClick(); } finally { b.disabled = false; }
  });
  return b;
}

function buttons(...list) {
  const td = document.createElement('td');
  td.append(...list);
  return td;
}

function fill(tableId, rows, empty) {
  const body = $(tableId).querySelector('tbody');
  body.replaceChildren(...rows);
  if (rows.length === 0 && empty) {
    const td = cell(empty);
    td.colSpan = $(tableId).querySelectorAll('thead th').length || 1;
    body.append(row([td]));
  }
}

function say(id, text, isError = false) {
  const p = $(id);
  p.textContent = text;
  p.classList.toggle('error', isError);
}

function sayError(id, error) {
  const code = error.code ? ` (${error.code})` : '';
  say(id, `${error.message}${code}`, true);
}

function time(ms) {
  if (!ms) return '';
  return new Date(Number(ms)).toISOString().replace('T', ' ').slice(0, 19);
}

function formValue(id) {
  return $(id).value.trim();
}

// ---------------------------------------------------------------- pages

const pages = ['login', 'status', 'withdrawals', 'adjustments', 'users', 'search', 'audit', 'reports'];
const loaders = {
  status: loadStatus,
  withdrawals: loadWithdrawals,
  adjustments: loadAdjustments,
  users: () => {},
  search: () => {},
  audit: () => loadAudit(true),
  reports: () => loadReport(null),
};

function show(page) {
  for (const name of pages) $(`page-${name}`).hidden = name !== page;
  for (const b of document.querySelectorAll('#nav button')) {
    if (b.dataset.page === page) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  clearInterval(timers.status);
  if (page === 'status') timers.status = setInterval(loadStatus, STATUS_POLL_MS);
  const heading = $(`page-${page}`).querySelector('h2');
  if (heading) heading.focus();
  const load = loaders[page];
  if (load) load();
}

function loggedIn(answer) {
  auth.token = answer.token;
  auth.session = answer.session;
  auth.expiresAt = answer.expires_at;
  auth.uid = answer.uid;
  auth.role = answer.role;
  $('who').textContent = `${answer.uid} (${answer.role})`;
  $('nav').hidden = false;
  $('logout').hidden = false;
  $('notice').hidden = true;
  scheduleRefresh();
  show('status');
}

function loggedOut(notice) {
  Object.assign(auth, { token: null, session: null, expiresAt: 0, uid: null, role: null });
  clearTimeout(timers.refresh);
  clearInterval(timers.status);
  $('who').textContent = '';
  $('nav').hidden = true;
  $('logout').hidden = true;
  if (notice) {
    $('notice').textContent = notice;
    $('notice').hidden = false;
  }
  show('login');
}

// ---------------------------------------------------------------- login

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  say('login-msg', 'Logging in…');
  try {
    const answer = await call('POST', '/control/v1/login', {
      email: formValue('login-email'),
      password: $('login-password').value,
      otp_code: formValue('login-otp'),
    });
    $('login-password').value = '';
    $('login-otp').value = '';
    say('login-msg', '');
    loggedIn(answer);
  } catch (error) {
    sayError('login-msg', error);
  }
});

$('logout').addEventListener('click', async () => {
  const session = auth.session;
  loggedOut('Logged out.');
  if (session) {
    try { await call('POST', '/control/v1/login/logout', { session }); } catch { /* gone */ }
  }
});

// ---------------------------------------------------------------- status

async function loadStatus() {
  try {
    const status = await api('GET', '/control/v1/status');
    $('status-summary').textContent = `Applied seq ${status.applied_seq} · engine seq ` +
      `${status.engine_seq} · ${status.live_orders} open orders · kill switches: ` +
      `${status.kill_switches.length ? status.kill_switches.join(', ') : 'none'}`;
    $('status-live').textContent = `updated ${time(Date.now())}`;
    fill('markets', status.markets.map((market) => {
      const halted = market.state === 'halted';
      const action = halted ? 'resume' : 'halt';
      const text = halted ? 'Resume' : 'Halt';
      return row([
        market.name,
        cell(market.state, `state-${market.state}`),
        cell(market.last_price ?? '—', 'num'),
        buttons(button(text, `${text} ${market.name}`, () => marketAction(market.name, action))),
      ]);
    }), 'No markets.');
  } catch (error) {
    sayError('status-msg', error);
  }
}

async function marketAction(market, action) {
  try {
    const answer = await api('POST', `/control/v1/markets/${encodeURIComponent(market)}/${action}`);
    say('status-msg', `${market}: ${action === 'halt' ? 'halted' : 'resumed'} (seq ${answer.seq}).`);
    await loadStatus();
  } catch (error) {
    sayError('status-msg', error);
  }
}

// ---------------------------------------------------------------- withdrawals

async function loadWithdrawals() {
  const wanted = $('withdrawals-state').value;
  try {
    const list = await api('GET', `/control/v1/withdrawal-requests?state=${encodeURIComponent(wanted)}`);
    fill('withdrawals', list.map((w) => row([
      cell(w.id, 'num'),
      cell(w.account, 'num'),
      cell(`${w.amount} ${w.currency}`, 'num'),
      cell(Object.assign(document.createElement('code'), { textContent: w.to })),
      w.requested_by ?? '',
      `${w.approvers.length} / ${w.approvals_required}`,
      w.state,
      w.state === 'awaiting_approval'
        ? buttons(
          button('Approve', `Approve withdrawal ${w.id}`, () => reviewWithdrawal(w.id, 'approve')),
          button('Reject', `Reject withdrawal ${w.id}`, () => reviewWithdrawal(w.id, 'reject')))
        : cell(''),
    ])), 'No withdrawal requests in this state.');
  } catch (error) {
    sayError('withdrawals-msg', error);
  }
}

async function reviewWithdrawal(id, action) {
  try {
    const answer = await api('POST', `/control/v1/withdrawal-requests/${id}/${action}`);
    say('withdrawals-msg', `Withdrawal ${id}: ${answer.state}.`);
    await loadWithdrawals();
  } catch (error) {
    sayError('withdrawals-msg', error);
  }
}

$('withdrawals-form').addEventListener('submit', (event) => {
  event.preventDefault();
  loadWithdrawals();
});

// ---------------------------------------------------------------- adjustments

async function loadAdjustments() {
  try {
    const list = await api('GET', '/control/v1/adjustments?state=pending');
    fill('adjustments', list.map((a) => row([
      cell(a.id, 'num'),
      cell(a.account, 'num'),
      cell(`${a.amount} ${a.currency}`, 'num'),
      a.reason,
      a.creator,
      buttons(
        button('Approve', `Approve adjustment ${a.id}`, () => reviewAdjustment(a.id, 'approve')),
        button('Reject', `Reject adjustment ${a.id}`, () => reviewAdjustment(a.id, 'reject'))),
    ])), 'No pending adjustments.');
  } catch (error) {
    sayError('adjustments-msg', error);
  }
}

async function reviewAdjustment(id, action) {
  try {
    const answer = await api('POST', `/control/v1/adjustments/${id}/${action}`);
    say('adjustments-msg', `Adjustment ${id}: ${answer.state}.`);
    await loadAdjustments();
  } catch (error) {
    sayError('adjustments-msg', error);
  }
}

$('adjustment-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const account = Number(formValue('adjustment-account'));
  if (!Number.isInteger(account) || account < 0) {
    say('adjustments-msg', 'The account is a whole number.', true);
    return;
  }
  try {
    const answer = await api('POST', '/control/v1/adjustments', {
      account,
      currency: formValue('adjustment-currency'),
      amount: formValue('adjustment-amount'),
      reason: formValue('adjustment-reason'),
    });
    say('adjustments-msg', `Adjustment ${answer.id} proposed: a second operator must approve it.`);
    event.target.reset();
    await loadAdjustments();
  } catch (error) {
    sayError('adjustments-msg', error);
  }
});

// ---------------------------------------------------------------- users

async function searchUsers() {
  try {
    const list = await api('GET', `/control/v1/users?email=${encodeURIComponent(formValue('users-email'))}`);
    fill('users', list.map((u) => {
      const lockable = u.state === 'active';
      const lockText = lockable ? 'Lock' : 'Unlock';
      const actions = [button('Sessions', `Sessions of ${u.email}`, () => loadSessions(u))];
      if (lockable || u.state === 'locked') {
        actions.unshift(button(lockText, `${lockText} ${u.email}`,
          () => lockUser(u, lockable ? 'lock' : 'unlock')));
      }
      return row([u.email, u.uid, u.role, u.state, cell(u.account ?? '', 'num'),
        u.otp ? 'on' : 'off', buttons(...actions)]);
    }), 'No user matches.');
  } catch (error) {
    sayError('users-msg', error);
  }
}

async function lockUser(user, action) {
  try {
    const answer = await api('POST', `/control/v1/users/${encodeURIComponent(user.uid)}/${action}`);
    const ended = action === 'lock'
      ? ` (${answer.sessions_revoked} sessions ended, ${answer.keys_disabled} API keys disabled)` : '';
    say('users-msg', `${user.email}: ${answer.state}${ended}.`);
    await searchUsers();
  } catch (error) {
    sayError('users-msg', error);
  }
}

async function loadSessions(user) {
  try {
    const list = await api('GET', `/control/v1/users/${encodeURIComponent(user.uid)}/sessions`);
    $('sessions-of').textContent = user.email;
    $('sessions-h').hidden = false;
    $('sessions').hidden = false;
    fill('sessions', list.map((s) => row([
      s.id, s.ip, s.user_agent, time(s.last_seen_ms),
      buttons(button('Revoke', `Revoke session ${s.id}`, () => revokeSession(user, s.id))),
    ])), 'No live session.');
  } catch (error) {
    sayError('users-msg', error);
  }
}

async function revokeSession(user, id) {
  try {
    await api('DELETE', `/control/v1/users/${encodeURIComponent(user.uid)}/sessions/${encodeURIComponent(id)}`);
    say('users-msg', `Session ${id} revoked.`);
    await loadSessions(user);
  } catch (error) {
    sayError('users-msg', error);
  }
}

$('users-form').addEventListener('submit', (event) => {
  event.preventDefault();
  searchUsers();
});

// ---------------------------------------------------------------- orders and trades

const SEARCH_COLUMNS = {
  orders: ['Id', 'Market', 'Side', 'Status', 'Price', 'Quantity', 'Open', 'Created'],
  trades: ['Id', 'Market', 'Order', 'Side', 'Maker', 'Price', 'Quantity', 'Time'],
};

function searchRow(kind, r) {
  if (kind === 'orders') {
    return row([cell(r.id, 'num'), r.market, r.side, r.status, cell(r.price, 'num'),
      cell(r.quantity, 'num'), cell(r.open_quantity, 'num'), time(r.created_at_ms)]);
  }
  return row([cell(r.id, 'num'), r.market, cell(r.order, 'num'), r.side, r.maker ? 'yes' : 'no',
    cell(r.price, 'num'), cell(r.quantity, 'num'), time(r.at_ms)]);
}

$('search-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const kind = $('search-kind').value;
  const query = new URLSearchParams({ account: formValue('search-account') });
  if (formValue('search-market')) query.set('market', formValue('search-market'));
  for (const [id, name] of [['search-from', 'from_ms'], ['search-to', 'to_ms']]) {
    const ms = Date.parse($(id).value);
    if (!Number.isNaN(ms)) query.set(name, String(ms));
  }
  const head = $('search-results').querySelector('thead tr');
  head.replaceChildren(...SEARCH_COLUMNS[kind].map((name) => {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = name;
    return th;
  }));
  try {
    const page = await api('GET', `/control/v1/${kind}?${query}`);
    fill('search-results', page.rows.map((r) => searchRow(kind, r)), `No ${kind}.`);
    say('search-msg', `Replicated through seq ${page.high_water_seq}.`);
  } catch (error) {
    fill('search-results', []);
    sayError('search-msg', error);
  }
});

// ---------------------------------------------------------------- audit

async function loadAudit(first) {
  if (first) auditBefore = null;
  const query = new URLSearchParams({ limit: String(AUDIT_PAGE_ROWS) });
  for (const [id, name] of [['audit-actor', 'actor'], ['audit-action', 'action'], ['audit-outcome', 'outcome']]) {
    if (formValue(id)) query.set(name, formValue(id));
  }
  if (auditBefore) query.set('before', String(auditBefore));
  try {
    const page = await api('GET', `/control/v1/audit?${query}`);
    const rows = page.records.map((r) => row([
      cell(r.seq, 'num'), time(r.at_ms), r.actor, r.action, r.target,
      cell(r.outcome, `outcome-${r.outcome}`), r.code,
    ]));
    if (first) fill('audit', rows, 'No record matches.');
    else $('audit').querySelector('tbody').append(...rows);
    auditBefore = page.next_before;
    $('audit-older').hidden = !page.next_before;
    say('audit-msg', '');
  } catch (error) {
    sayError('audit-msg', error);
  }
}

$('audit-form').addEventListener('submit', (event) => {
  event.preventDefault();
  loadAudit(true);
});
$('audit-older').addEventListener('click', () => loadAudit(false));
$('audit-verify').addEventListener('click', async () => {
  const out = $('audit-chain');
  out.textContent = 'Verifying…';
  out.className = '';
  try {
    const chain = await api('GET', '/control/v1/audit/verify');
    if (chain.intact) {
      out.textContent = `Chain intact: ${chain.records} records verified.`;
      out.className = 'chain-intact';
    } else {
      out.textContent = `Chain broken at record ${chain.broken_seq} (${chain.reason}).`;
      out.className = 'chain-broken';
    }
  } catch (error) {
    out.textContent = `${error.message} (${error.code})`;
    out.className = 'chain-broken';
  }
});

// ---------------------------------------------------------------- reports

/** Milliseconds in a day. */
const DAY_MS = 86400000;
/** Days a range form shows by default (today and the days before). */
const REPORT_DEFAULT_DAYS = 30;

/** Each report: its path, its query from the form, and its table (columns; numeric ones). */
const REPORTS = {
  balances: {
    path: () => 'balances',
    head: ['Currency', 'Accounts', 'Available', 'Held', 'Liabilities'],
    rows: (r) => r.currencies.map((c) => [c.currency, c.accounts, c.available, c.held, c.total]),
  },
  accounts: {
    path: (q, after) => {
      if (formValue('reports-account')) q.set('account', formValue('reports-account'));
      if (formValue('reports-filter')) q.set('currency', formValue('reports-filter'));
      if (after !== null) q.set('after', String(after));
      return 'balances/accounts';
    },
    head: ['Account', 'Currency', 'Available', 'Held', 'Total'],
    rows: (r) => r.rows.map((b) => [b.account, b.currency, b.available, b.held, b.total]),
  },
  assets: {
    path: () => 'assets',
    head: ['Currency', 'Liabilities', 'Assets', 'On chain', 'Owed then', 'Difference', 'Reconciled'],
    rows: (r) => r.currencies.map((c) => [c.currency, c.liabilities, c.assets,
      c.on_chain ?? '—', c.reconciled_liabilities ?? '—',
      c.difference === null ? '—' : `${c.difference}${c.exceeds ? ' (beyond tolerance)' : ''}`,
      time(c.reconciled_at_ms)]),
  },
  fees: {
    path: (q) => {
      const [from, to] = reportDates();
      q.set('from_ms', String(Date.parse(from)));
      q.set('to_ms', String(Date.parse(to) + DAY_MS));
      if (formValue('reports-filter')) q.set('market', formValue('reports-filter'));
      return 'fees';
    },
    head: ['Market', 'Currency', 'Trades', 'Fees'],
    rows: (r) => [
      ...r.markets.flatMap((m) => [[m.market, m.base, m.trades, m.base_fees],
        [m.market, m.quote, m.trades, m.quote_fees]]),
      ...r.currencies.map((c) => ['all markets', c.currency, '', c.fees]),
    ],
  },
  volume: {
    path: (q) => {
      const [from, to] = reportDates();
      q.set('from', from);
      q.set('to', to);
      if (formValue('reports-filter')) q.set('market', formValue('reports-filter'));
      return 'volume';
    },
    head: ['Date', 'Market', 'Trades', 'Base volume', 'Quote volume'],
    rows: (r) => r.rows.map((d) => [d.date, d.market, d.trades,
      `${d.base_volume} ${d.base}`, `${d.quote_volume} ${d.quote}`]),
  },
};
/** The first column of each report that is text; the others are numbers (right-aligned). */
const REPORT_TEXT_COLUMNS = 2;
let reportCsvUrl = null;

/** The form's dates, `YYYY-MM-DD`, filled with the last days when empty. */
function reportDates() {
  if (!$('reports-to').value) $('reports-to').value = new Date().toISOString().slice(0, 10);
  if (!$('reports-from').value) {
    const from = Date.parse($('reports-to').value) - (REPORT_DEFAULT_DAYS - 1) * DAY_MS;
    $('reports-from').value = new Date(from).toISOString().slice(0, 10);
  }
  return [$('reports-from').value, $('reports-to').value];
}

/** The CSV of the same report, fetched with the token, offered as a download. */
async function offerCsv(path, name) {
  const link = $('reports-csv');
  if (reportCsvUrl) URL.revokeObjectURL(reportCsvUrl);
  reportCsvUrl = null;
  link.hidden = true;
  const response = await fetch(path, {
    headers: { Accept: 'text/csv', Authorization: `Bearer ${auth.token}` },
    credentials: 'omit',
    cache: 'no-store',
  });
  if (!response.ok) return;
  reportCsvUrl = URL.createObjectURL(await response.blob());
  link.href = reportCsvUrl;
  link.download = `${name}.csv`;
  link.hidden = false;
}

async function loadReport(after) {
  const kind = $('reports-kind').value;
  const report = REPORTS[kind];
  const query = new URLSearchParams();
  const path = `/control/v1/reports/${report.path(query, after)}?${query}`;
  const head = $('reports').querySelector('thead tr');
  head.replaceChildren(...report.head.map((name) => {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = name;
    return th;
  }));
  try {
    const answer = await api('GET', path);
    const rows = report.rows(answer).map((fields) => row(fields.map((value, i) =>
      cell(value, i < REPORT_TEXT_COLUMNS ? undefined : 'num'))));
    if (after === null) fill('reports', rows, 'Nothing to report.');
    else $('reports').querySelector('tbody').append(...rows);
    $('reports-next').hidden = answer.next_after === undefined || answer.next_after === null;
    $('reports-next').dataset.after = answer.next_after ?? '';
    const seq = answer.applied_seq ?? answer.high_water_seq;
    $('reports-note').textContent = `As of journal seq ${seq}.${answer.note ? ` ${answer.note}.` : ''}`;
    say('reports-msg', '');
    await offerCsv(path, kind);
  } catch (error) {
    fill('reports', []);
    sayError('reports-msg', error);
  }
}

$('reports-form').addEventListener('submit', (event) => {
  event.preventDefault();
  loadReport(null);
});
$('reports-kind').addEventListener('change', () => loadReport(null));
$('reports-next').addEventListener('click', () => loadReport(Number($('reports-next').dataset.after)));

// ---------------------------------------------------------------- navigation

for (const b of document.querySelectorAll('#nav button')) {
  b.addEventListener('click', () => show(b.dataset.page));
}
show('login');
$('login-email').focus();
