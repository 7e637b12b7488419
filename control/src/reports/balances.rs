//! Balances and liabilities from the views (`GET /control/v1/reports/balances`,
//! `.../balances/accounts`), and the liabilities against the wallets' last reconciliation
//! (`GET /control/v1/reports/assets`). Each walks every balance cell once under the views'
//! lock (as the status's liabilities do): an operator's read, never the hot path.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use peregrine_core::Views;
use peregrine_core::catalog::Catalog;
use peregrine_hotpath::{AccountId, CurrencyId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::format::{Format, Tabular, decimal, or_empty, reply, signed_decimal};
use super::{RecordedAssets, admit, catalog, parameters};
use crate::access::Client;
use crate::api::ControlState;
use crate::error::{ControlError, ErrorBody};

/// Most rows one page of balances by account answers.
pub const ACCOUNT_ROWS_MAX: usize = 1_000;
/// Rows a page of balances by account answers when the caller does not say.
const ACCOUNT_ROWS_DEFAULT: usize = 100;
/// Bits of the cursor below the account: a currency id.
const CURSOR_CURRENCY_BITS: u32 = 16;
/// The largest cursor: account and currency ids both at their maximum.
const CURSOR_MAX: u64 = (1 << (32 + CURSOR_CURRENCY_BITS)) - 1;

const _: () = assert!(u16::BITS == CURSOR_CURRENCY_BITS);

/// The representation asked for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FormatQuery {
    /// `json` (default) or `csv`; without it, `Accept: text/csv` asks for CSV.
    #[param(inline)]
    format: Option<Format>,
}

/// Which balances by account.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AccountsQuery {
    /// Only this account.
    #[param(format = "uint32", minimum = 0, maximum = 4294967295_u64)]
    account: Option<u32>,
    /// Only this currency, e.g. `btc`.
    currency: Option<String>,
    /// Rows after this cursor (`next_after` of the page before).
    #[param(format = "uint64", minimum = 0, maximum = 281474976710655_u64)]
    after: Option<u64>,
    /// 1 to 1000; 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `json` (default) or `csv`; without it, `Accept: text/csv` asks for CSV.
    #[param(inline)]
    format: Option<Format>,
}

/// One currency's balances over every account.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CurrencyBalancesJson {
    /// Currency code.
    currency: String,
    /// Decimals of its minor unit (every amount here has that many).
    precision: u32,
    /// Accounts holding some of it (available or held).
    accounts: u64,
    /// Free to trade or withdraw, summed.
    available: String,
    /// Held by open orders and withdrawals, summed.
    held: String,
    /// Available plus held: what the exchange owes (liabilities).
    total: String,
}

/// Balances and liabilities per currency.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BalancesJson {
    /// The last command the views applied: the report's state.
    applied_seq: u64,
    /// Every currency of the catalog, in its order.
    currencies: Vec<CurrencyBalancesJson>,
}

/// One account's balance of one currency.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountBalanceJson {
    /// The account.
    account: u32,
    /// Currency code.
    currency: String,
    /// Free to trade or withdraw.
    available: String,
    /// Held by open orders and withdrawals.
    held: String,
    /// Available plus held.
    total: String,
}

/// A page of balances by account, ascending by account then currency id.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountBalancesJson {
    /// The last command the views applied.
    applied_seq: u64,
    /// Non-zero balances only.
    rows: Vec<AccountBalanceJson>,
    /// The cursor of the next page (`after`), null on the last one.
    next_after: Option<u64>,
}

/// One currency's liabilities against what the chain held at the last reconciliation.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AssetsRowJson {
    /// Currency code.
    currency: String,
    /// Decimals of its minor unit (`liabilities`).
    precision: u32,
    /// What the exchange owes now (every account's available plus held).
    liabilities: String,
    /// `reconciled`, `not_reconciled` (not on a chain, or no run yet) or `wallets_off`.
    assets: &'static str,
    /// When the last reconciliation ran, Unix ms.
    reconciled_at_ms: Option<i64>,
    /// Decimals of the chain's unit (every amount below has that many).
    chain_decimals: Option<u32>,
    /// Hot, warm, cold and deposit addresses together.
    on_chain: Option<String>,
    /// The hot wallet's.
    hot: Option<String>,
    /// The warm address's.
    warm: Option<String>,
    /// The cold address's.
    cold: Option<String>,
    /// The deposit addresses' (and gas on token addresses, for the chain's coin).
    deposit_addresses: Option<String>,
    /// What the ledger owed when it ran.
    reconciled_liabilities: Option<String>,
    /// On chain minus owed, when it ran.
    difference: Option<String>,
    /// The largest difference not reported.
    tolerance: Option<String>,
    /// The difference is beyond the tolerance.
    exceeds: Option<bool>,
}

/// On-chain assets against liabilities per currency.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AssetsJson {
    /// The last command the views applied (`liabilities`).
    applied_seq: u64,
    /// Whether `[wallets]` is on: without it there are no on-chain amounts.
    wallets: bool,
    /// What the numbers are, for a person.
    note: String,
    /// Every currency of the catalog, in its order.
    currencies: Vec<AssetsRowJson>,
}

impl Tabular for BalancesJson {
    const NAME: &'static str = "balances";
    const COLUMNS: &'static [&'static str] = &[
        "currency",
        "precision",
        "accounts",
        "available",
        "held",
        "total",
    ];

    fn rows(&self) -> Vec<Vec<String>> {
        self.currencies
            .iter()
            .map(|c| {
                vec![
                    c.currency.clone(),
                    c.precision.to_string(),
                    c.accounts.to_string(),
                    c.available.clone(),
                    c.held.clone(),
                    c.total.clone(),
                ]
            })
            .collect()
    }
}

impl Tabular for AccountBalancesJson {
    const NAME: &'static str = "balances-by-account";
    const COLUMNS: &'static [&'static str] = &["account", "currency", "available", "held", "total"];

    fn rows(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| {
                vec![
                    r.account.to_string(),
                    r.currency.clone(),
                    r.available.clone(),
                    r.held.clone(),
                    r.total.clone(),
                ]
            })
            .collect()
    }
}

impl Tabular for AssetsJson {
    const NAME: &'static str = "assets";
    const COLUMNS: &'static [&'static str] = &[
        "currency",
        "precision",
        "liabilities",
        "assets",
        "reconciled_at_ms",
        "chain_decimals",
        "on_chain",
        "hot",
        "warm",
        "cold",
        "deposit_addresses",
        "reconciled_liabilities",
        "difference",
        "tolerance",
        "exceeds",
    ];

    fn rows(&self) -> Vec<Vec<String>> {
        self.currencies
            .iter()
            .map(|r| {
                vec![
                    r.currency.clone(),
                    r.precision.to_string(),
                    r.liabilities.clone(),
                    r.assets.to_owned(),
                    or_empty(r.reconciled_at_ms),
                    or_empty(r.chain_decimals),
                    or_empty(r.on_chain.as_ref()),
                    or_empty(r.hot.as_ref()),
                    or_empty(r.warm.as_ref()),
                    or_empty(r.cold.as_ref()),
                    or_empty(r.deposit_addresses.as_ref()),
                    or_empty(r.reconciled_liabilities.as_ref()),
                    or_empty(r.difference.as_ref()),
                    or_empty(r.tolerance.as_ref()),
                    or_empty(r.exceeds),
                ]
            })
            .collect()
    }
}

/// One currency's cells summed: (accounts holding some, available, held), minor units.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    accounts: u64,
    available: u128,
    held: u128,
}

/// Every cell summed by currency, in one walk.
fn sums_by_currency(views: &Views) -> BTreeMap<CurrencyId, Sums> {
    let mut sums: BTreeMap<CurrencyId, Sums> = BTreeMap::new();
    for (_, currency, balance) in views.balances() {
        let (available, held) = (balance.available.0, balance.locked.0);
        let entry = sums.entry(currency).or_default();
        entry.available += u128::from(available);
        entry.held += u128::from(held);
        entry.accounts += u64::from(available > 0 || held > 0);
    }
    sums
}

fn balances_json(catalog: &Catalog, views: &Views) -> BalancesJson {
    let sums = sums_by_currency(views);
    let currencies = catalog
        .currencies()
        .iter()
        .map(|currency| {
            let sum = sums.get(&currency.id).copied().unwrap_or_default();
            let precision = currency.scale.scale;
            CurrencyBalancesJson {
                currency: currency.code.clone(),
                precision,
                accounts: sum.accounts,
                available: decimal(sum.available, precision),
                held: decimal(sum.held, precision),
                total: decimal(sum.available + sum.held, precision),
            }
        })
        .collect();
    BalancesJson {
        applied_seq: views.applied_seq(),
        currencies,
    }
}

/// Balances and liabilities per currency: every account's available and held summed.
#[utoipa::path(get, path = "/control/v1/reports/balances", tag = "control",
    params(FormatQuery), security(("bearer" = [])),
    responses((status = 200, content((BalancesJson = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn balances(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    format: Result<Query<FormatQuery>, QueryRejection>,
) -> Result<Response, ControlError> {
    admit(&state, &client, &headers, "balances").await?;
    let format = Format::wanted(parameters(format)?.format, &headers);
    let report = state
        .engine
        .read(|views| balances_json(&catalog(&state), views));
    Ok(reply(format, report))
}

/// What a page of balances by account asks for, checked.
struct AccountPage {
    account: Option<AccountId>,
    currency: Option<CurrencyId>,
    after: Option<u64>,
    limit: usize,
}

fn account_page(catalog: &Catalog, q: &AccountsQuery) -> Result<AccountPage, ControlError> {
    let currency = match q.currency.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(code) => Some(
            catalog
                .currency(code)
                .ok_or_else(|| ControlError::UnknownCurrency(code.to_owned()))?
                .id,
        ),
    };
    let limit = q.limit.unwrap_or(ACCOUNT_ROWS_DEFAULT);
    if !(1..=ACCOUNT_ROWS_MAX).contains(&limit) {
        return Err(ControlError::BadRequest(format!(
            "limit {limit}: 1 to {ACCOUNT_ROWS_MAX}"
        )));
    }
    if q.after.is_some_and(|after| after > CURSOR_MAX) {
        return Err(ControlError::BadRequest(format!(
            "after: at most {CURSOR_MAX}"
        )));
    }
    Ok(AccountPage {
        account: q.account.map(AccountId),
        currency,
        after: q.after,
        limit,
    })
}

fn cursor(account: AccountId, currency: CurrencyId) -> u64 {
    (u64::from(account.0) << CURSOR_CURRENCY_BITS) | u64::from(currency.0)
}

/// The page's non-zero cells in cursor order, and the next page's cursor.
fn page_of(views: &Views, page: &AccountPage) -> (Vec<(u64, u64, u64)>, Option<u64>) {
    let mut cells: Vec<(u64, u64, u64)> = views
        .balances()
        .filter(|(account, currency, balance)| {
            page.account.is_none_or(|a| a == *account)
                && page.currency.is_none_or(|c| c == *currency)
                && (balance.available.0 > 0 || balance.locked.0 > 0)
                && page
                    .after
                    .is_none_or(|after| cursor(*account, *currency) > after)
        })
        .map(|(account, currency, b)| (cursor(account, currency), b.available.0, b.locked.0))
        .collect();
    // The first `limit + 1` in cursor order without sorting every cell.
    if cells.len() > page.limit + 1 {
        cells.select_nth_unstable_by_key(page.limit, |cell| cell.0);
        cells.truncate(page.limit + 1);
    }
    cells.sort_unstable_by_key(|cell| cell.0);
    let more = cells.len() > page.limit;
    cells.truncate(page.limit);
    let next = more.then(|| cells.last().map(|cell| cell.0)).flatten();
    (cells, next)
}

/// Balances by account and currency (non-zero ones), ascending by account then currency id,
/// paged: `after` is the `next_after` of the page before (in CSV, the `x-next-after` header).
#[utoipa::path(get, path = "/control/v1/reports/balances/accounts", tag = "control",
    params(AccountsQuery), security(("bearer" = [])),
    responses((status = 200,
            content((AccountBalancesJson = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn accounts(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    params: Result<Query<AccountsQuery>, QueryRejection>,
) -> Result<Response, ControlError> {
    admit(&state, &client, &headers, "balances_by_account").await?;
    let params = parameters(params)?;
    let format = Format::wanted(params.format, &headers);
    let catalog = catalog(&state);
    let catalog = &*catalog;
    let page = account_page(catalog, &params)?;
    let (applied_seq, cells, next_after) = state.engine.read(|views| {
        let (cells, next) = page_of(views, &page);
        (views.applied_seq(), cells, next)
    });
    let rows = cells
        .into_iter()
        .filter_map(|(key, available, held)| {
            let id = CurrencyId(u16::try_from(key & u64::from(u16::MAX)).ok()?);
            let currency = catalog.currency_by_id(id)?;
            let precision = currency.scale.scale;
            Some(AccountBalanceJson {
                account: u32::try_from(key >> CURSOR_CURRENCY_BITS).ok()?,
                currency: currency.code.clone(),
                available: decimal(u128::from(available), precision),
                held: decimal(u128::from(held), precision),
                total: decimal(u128::from(available) + u128::from(held), precision),
            })
        })
        .collect();
    let report = AccountBalancesJson {
        applied_seq,
        rows,
        next_after,
    };
    let mut response = reply(format, report);
    if let Some(next) = next_after {
        response.headers_mut().insert("x-next-after", next.into());
    }
    Ok(response)
}

/// The wallets' last reconciliation of each currency, by code (empty without `[wallets]`).
async fn recorded(state: &ControlState) -> Result<BTreeMap<String, RecordedAssets>, ControlError> {
    let Some(book) = state.reconciliations.as_deref() else {
        return Ok(BTreeMap::new());
    };
    let list = book.last().await?;
    Ok(list.into_iter().map(|r| (r.currency.clone(), r)).collect())
}

fn assets_row(
    currency: &peregrine_core::catalog::Currency,
    owed: u128,
    wallets: bool,
    recorded: Option<&RecordedAssets>,
) -> AssetsRowJson {
    let precision = currency.scale.scale;
    let assets = match (wallets, recorded) {
        (false, _) => "wallets_off",
        (true, None) => "not_reconciled",
        (true, Some(_)) => "reconciled",
    };
    let chain = |units: u128| recorded.map(|r| decimal(units, r.chain_decimals));
    let field = |pick: fn(&RecordedAssets) -> u128| recorded.and_then(|r| chain(pick(r)));
    AssetsRowJson {
        currency: currency.code.clone(),
        precision,
        liabilities: decimal(owed, precision),
        assets,
        reconciled_at_ms: recorded.map(|r| r.reconciled_at_ms),
        chain_decimals: recorded.map(|r| r.chain_decimals),
        on_chain: field(|r| {
            r.hot
                .saturating_add(r.warm)
                .saturating_add(r.cold)
                .saturating_add(r.deposit_addresses)
        }),
        hot: field(|r| r.hot),
        warm: field(|r| r.warm),
        cold: field(|r| r.cold),
        deposit_addresses: field(|r| r.deposit_addresses),
        reconciled_liabilities: field(|r| r.liabilities),
        difference: recorded.map(|r| {
            signed_decimal(
                r.difference < 0,
                r.difference.unsigned_abs(),
                r.chain_decimals,
            )
        }),
        tolerance: field(|r| r.tolerance),
        exceeds: recorded.map(|r| r.difference.unsigned_abs() > r.tolerance),
    }
}

/// On-chain assets against liabilities per currency: the liabilities now (from the views)
/// beside the wallets' last reconciliation (the chain's balances and what the ledger owed
/// then, in the chain's decimals). Without `[wallets]`: the liabilities only, `wallets` false.
#[utoipa::path(get, path = "/control/v1/reports/assets", tag = "control",
    params(FormatQuery), security(("bearer" = [])),
    responses((status = 200, content((AssetsJson = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn assets(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    format: Result<Query<FormatQuery>, QueryRejection>,
) -> Result<Response, ControlError> {
    admit(&state, &client, &headers, "assets").await?;
    let format = Format::wanted(parameters(format)?.format, &headers);
    let recorded = recorded(&state).await?;
    let wallets = state.reconciliations.is_some();
    let (applied_seq, sums) = state
        .engine
        .read(|views| (views.applied_seq(), sums_by_currency(views)));
    let currencies = catalog(&state)
        .currencies()
        .iter()
        .map(|currency| {
            let sum = sums.get(&currency.id).copied().unwrap_or_default();
            let owed = sum.available + sum.held;
            assets_row(currency, owed, wallets, recorded.get(&currency.code))
        })
        .collect();
    let note = if wallets {
        "liabilities are now's, in each currency's precision; on-chain amounts and the \
         liabilities they were compared with are the wallets' last reconciliation's, in the \
         chain's decimals"
    } else {
        "the wallets are not configured ([wallets] is off): liabilities only, no on-chain assets"
    };
    let report = AssetsJson {
        applied_seq,
        wallets,
        note: note.to_owned(),
        currencies,
    };
    Ok(reply(format, report))
}
