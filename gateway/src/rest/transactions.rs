//! `GET /api/v2/peatio/account/transactions`: the account's balance movements (a double-entry
//! ledger: deposits, withdrawals, locks for orders, trades and fees), read from the SQL replica
//! as of its high-water mark. Without a replica configured the route answers 503
//! `history.unavailable`: the appliance keeps no ledger history in memory.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Bridge;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, Authenticated};
use super::public::{LIST_LIMIT_MAX, ascending, limit, page};
use peregrine_replica::reader::LIST_DEPTH_ROWS_MAX;

/// Response header: the last journal sequence the replica holds (later movements are not in
/// the answer yet).
pub const HIGH_WATER_HEADER: &str = "x-peregrine-replica-seq";

/// Filters of the transaction list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TransactionsQuery {
    /// Only this currency.
    pub currency: Option<String>,
    /// Per page, at most 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Page, from 1.
    #[param(minimum = 1)]
    pub page: Option<usize>,
    /// `desc` (default, newest first) or `asc`.
    #[param(pattern = "^(asc|desc)$")]
    pub order_by: Option<String>,
}

/// One balance movement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransactionJson {
    /// The journal sequence of the command that caused it.
    pub seq: u64,
    /// Currency code.
    pub currency: String,
    /// Change of the available balance (signed decimal).
    pub amount: String,
    /// Change of the locked balance (signed decimal).
    pub locked: String,
    /// What caused it (`deposit`, `new_order`, `trade`, `cancel`, ...).
    pub reason: String,
    /// When (RFC 3339).
    pub created_at: String,
}

/// The account's balance movements, from the replica, 10,000 rows deep (`page * limit`).
#[utoipa::path(get, path = "/api/v2/peatio/account/transactions", tag = "account",
    params(TransactionsQuery), security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = [TransactionJson]), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn transactions(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, _): Authenticated,
    ApiQuery(q): ApiQuery<TransactionsQuery>,
) -> Result<(HeaderMap, Json<Vec<TransactionJson>>), ApiError> {
    let per_page = limit(q.limit, 100, LIST_LIMIT_MAX)?;
    let page = page(q.page)?;
    let asc = ascending(q.order_by.as_deref())?;
    let currency = match q.currency.as_deref() {
        None => None,
        Some(code) => Some(
            bridge
                .catalog
                .load()
                .currency(code)
                .map(|c| c.id)
                .ok_or_else(|| {
                    ApiError::not_found(
                        "account.currency.not_found",
                        format!("no currency `{code}`"),
                    )
                })?,
        ),
    };
    // As deep as the other lists go: a page far past the end would make the database skip
    // (or fail on) an offset it cannot hold.
    let offset = (page - 1).saturating_mul(per_page);
    let depth = offset.saturating_add(per_page);
    if depth > LIST_DEPTH_ROWS_MAX {
        return Err(ApiError::unprocessable(
            "history.too_deep",
            format!("page * limit reaches row {depth}; lists go {LIST_DEPTH_ROWS_MAX} rows deep"),
        ));
    }
    let Some(replica) = bridge.replica.get() else {
        return Err(ApiError::unavailable(
            "history.unavailable",
            "no replica is configured: transactions are served from it",
        ));
    };
    let found = replica
        .ledger(account, currency, asc, offset, per_page)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "replica read failed");
            ApiError::unavailable("history.unavailable", "the replica cannot be read now")
        })?;
    let list = found
        .entries
        .iter()
        .filter_map(|entry| {
            let catalog = bridge.catalog.load();
            let currency = catalog.currency_by_id(entry.currency)?;
            let decimal = |minor: i128| {
                Decimal::try_from_i128_with_scale(minor, currency.scale.scale)
                    .map(|d| d.normalize().to_string())
                    .unwrap_or_else(|_| minor.to_string())
            };
            Some(TransactionJson {
                seq: entry.seq,
                currency: currency.code.clone(),
                amount: decimal(entry.available_delta),
                locked: decimal(entry.locked_delta),
                reason: entry.cause.clone(),
                created_at: super::time::rfc3339(entry.ts_ns),
            })
        })
        .collect();
    let mut headers = HeaderMap::new();
    headers.insert(HIGH_WATER_HEADER, HeaderValue::from(found.high_water_seq));
    Ok((headers, Json(list)))
}
