//! Chain deposits of the signed-in account, Peatio's `GET account/deposit_address/{currency}`
//! and `GET account/deposits`, read from the wallet daemons' store through a [`DepositBook`]
//! (the gateway does not depend on the wallet crate: dependencies point down, and the appliance
//! plugs the store in with [`super::Bridge::serve_deposits`]). Without a book (`[wallets]` off)
//! no currency is deposited on a chain: the list is empty and an address is refused with 422
//! `account.deposit_address.unsupported`; a store that cannot be read answers 503
//! `deposits.unavailable`.
//!
//! The appliance holds no wallet seed: an address not derived yet is recorded as asked for and
//! answered `"state": "pending"` with no address; the wallet daemon derives it at its next step.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use peregrine_hotpath::{AccountId, Amount};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Bridge;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery, Authenticated};
use super::public::{LIST_LIMIT_MAX, limit, page};

/// Deposits a list reaches at most (`page * limit`): deeper pages are refused.
pub const DEPOSITS_DEPTH_MAX: usize = 10_000;

/// A deposit as the wallet store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepositRecord {
    /// The wallet's id of the deposit.
    pub id: u64,
    /// Currency code.
    pub currency: String,
    /// In the currency's minor units.
    pub amount_minor: u64,
    /// The transaction.
    pub txid: String,
    /// Which part of the transaction (-1: its value; else the log index).
    pub leg: i64,
    /// The deposit address.
    pub address: String,
    /// The block holding it.
    pub block_number: u64,
    /// Blocks on top of it, its own included (0 once it left the chain).
    pub confirmations: u64,
    /// `seen`, `confirmed`, `credited`, `orphaned`, `dust` or `rejected`.
    pub state: String,
}

/// Why the book could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BookError {
    /// The store cannot be read now.
    #[error("the wallet store cannot be read: {0}")]
    Unavailable(String),
}

/// A boxed future of the book (object-safe: the bridge holds a `dyn DepositBook`).
pub type BookFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BookError>> + Send + 'a>>;

/// The read model of chain deposits the bridge serves.
pub trait DepositBook: Send + Sync + std::fmt::Debug {
    /// Whether `currency` is deposited on a chain (has deposit addresses).
    fn has_currency(&self, currency: &str) -> bool;

    /// The deposit address of `account` in `currency`; `None` while it is being derived (the
    /// call records the request).
    fn address<'a>(
        &'a self,
        account: AccountId,
        currency: &'a str,
    ) -> BookFuture<'a, Option<String>>;

    /// The account's deposits, newest first: `limit` after skipping `offset`, only
    /// `currency`'s when given.
    fn deposits<'a>(
        &'a self,
        account: AccountId,
        currency: Option<&'a str>,
        limit: u32,
        offset: u64,
    ) -> BookFuture<'a, Vec<DepositRecord>>;
}

/// A deposit address.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DepositAddressJson {
    /// Currency code.
    pub currency: String,
    /// Peatio's list of the currencies the address takes (this one).
    pub currencies: Vec<String>,
    /// The address; null while it is being derived.
    pub address: Option<String>,
    /// `active`, or `pending` while the wallet derives it (ask again).
    pub state: String,
}

/// One chain deposit.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DepositJson {
    /// The deposit's id.
    pub id: u64,
    /// Currency code.
    pub currency: String,
    /// Decimal string, in the currency's precision (what is credited).
    pub amount: String,
    /// Fee taken (decimal string).
    pub fee: String,
    /// The transaction.
    pub txid: String,
    /// Which transfer of the transaction: -1 its value, else the token log's index.
    pub txout: i64,
    /// The deposit address paid.
    pub address: String,
    /// The block holding it.
    pub block_number: u64,
    /// Blocks on top of it, its own included.
    pub confirmations: u64,
    /// `seen` (waiting for confirmations), `confirmed` (credit due), `credited`,
    /// `orphaned` (its block left the chain), `dust` (below one minor unit) or `rejected`.
    pub state: String,
}

/// Filters of the deposit list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DepositsQuery {
    /// Only this currency.
    pub currency: Option<String>,
    /// Per page, at most 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Page, from 1.
    #[param(minimum = 1)]
    pub page: Option<usize>,
}

fn unavailable(error: BookError) -> ApiError {
    tracing::warn!(%error, "wallet store read failed");
    ApiError::unavailable(
        "deposits.unavailable",
        "the wallet store cannot be read now",
    )
}

/// The book of the catalog's currency `code`, which must be deposited on a chain (with
/// `[wallets]` off, none is).
fn chain_currency<'a>(bridge: &'a Bridge, code: &str) -> Result<&'a dyn DepositBook, ApiError> {
    if bridge.catalog.load().currency(code).is_none() {
        return Err(ApiError::not_found(
            "account.currency.doesnt_exist",
            format!("no currency `{code}`"),
        ));
    }
    match bridge.deposits.get() {
        Some(book) if book.has_currency(code) => Ok(book.as_ref()),
        _ => Err(ApiError::unprocessable(
            "account.deposit_address.unsupported",
            format!("`{code}` is not deposited on a chain here"),
        )),
    }
}

/// The account's deposit address for a currency (Peatio `account/deposit_address`).
#[utoipa::path(get, path = "/api/v2/peatio/account/deposit_address/{currency}", tag = "account",
    params(("currency" = String, Path, description = "currency code")),
    security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = DepositAddressJson), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn deposit_address(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, _): Authenticated,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<DepositAddressJson>, ApiError> {
    let book = chain_currency(&bridge, &code)?;
    let address = book.address(account, &code).await.map_err(unavailable)?;
    Ok(Json(DepositAddressJson {
        state: if address.is_some() {
            "active"
        } else {
            "pending"
        }
        .to_owned(),
        currencies: vec![code.clone()],
        currency: code,
        address,
    }))
}

/// The account's chain deposits, newest first, 10,000 rows deep (`page * limit`).
#[utoipa::path(get, path = "/api/v2/peatio/account/deposits", tag = "account",
    params(DepositsQuery), security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = [DepositJson]), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn deposits(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, _): Authenticated,
    ApiQuery(q): ApiQuery<DepositsQuery>,
) -> Result<Json<Vec<DepositJson>>, ApiError> {
    let per_page = limit(q.limit, 100, LIST_LIMIT_MAX)?;
    let page = page(q.page)?;
    let offset = (page - 1).saturating_mul(per_page);
    let depth = offset.saturating_add(per_page);
    if depth > DEPOSITS_DEPTH_MAX {
        return Err(ApiError::unprocessable(
            "history.too_deep",
            format!("page * limit reaches row {depth}; lists go {DEPOSITS_DEPTH_MAX} rows deep"),
        ));
    }
    if let Some(code) = q.currency.as_deref() {
        chain_currency(&bridge, code)?;
    }
    // With `[wallets]` off there are no chain deposits.
    let Some(book) = bridge.deposits.get() else {
        return Ok(Json(Vec::new()));
    };
    let per_page = u32::try_from(per_page).unwrap_or(u32::MAX);
    let offset = u64::try_from(offset).unwrap_or(u64::MAX);
    let rows = book
        .deposits(account, q.currency.as_deref(), per_page, offset)
        .await
        .map_err(unavailable)?;
    let list = rows
        .into_iter()
        .map(|row| {
            let catalog = bridge.catalog.load();
            let currency = catalog.currency(&row.currency);
            DepositJson {
                id: row.id,
                amount: super::types::amount(currency, Amount(row.amount_minor)),
                currency: row.currency,
                fee: "0".to_owned(),
                txid: row.txid,
                txout: row.leg,
                address: row.address,
                block_number: row.block_number,
                confirmations: row.confirmations,
                state: row.state,
            }
        })
        .collect();
    Ok(Json(list))
}
