//! Orders and trades of any account for operators, from the replica (never the matching
//! thread): `GET /control/v1/orders` and `GET /control/v1/trades` by account, market and time
//! (and orders by state), newest first, under `balance.read_any` (reading any account's records). Without a replica
//! (`[replica] enabled = false`) both answer 503 `control.replica.unavailable`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use peregrine_auth::rbac::Permission;
use peregrine_core::catalog::Market;
use peregrine_hotpath::{AccountId, MarketId, Side};
use peregrine_replica::rows::OrderStatus;
use peregrine_replica::{OrderFilter, ReplicaReader, TradeFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::Client;
use crate::api::ControlState;
use crate::error::{ControlError, ErrorBody};

/// Most rows one search answers.
pub const SEARCH_ROWS_MAX: usize = 200;
/// Nanoseconds per millisecond (the replica keeps ns, the API speaks ms).
const NS_PER_MS: u64 = 1_000_000;

/// Whose records, where and when.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchQuery {
    /// The account (required).
    #[param(format = "uint32", minimum = 0, maximum = 4294967295_u64)]
    account: Option<u32>,
    /// Only this market, e.g. `btcusd`.
    market: Option<String>,
    /// At or after, Unix ms.
    from_ms: Option<u64>,
    /// Before, Unix ms.
    to_ms: Option<u64>,
    /// 1 to 200; 50 by default.
    limit: Option<usize>,
    /// Orders only: only orders in this state now (trades refuse it with 400).
    #[param(inline)]
    state: Option<OrderStateParam>,
}

/// An order's state, as the search filters by it.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OrderStateParam {
    /// Resting in the book.
    Open,
    /// A stop waiting for its trigger.
    PendingStop,
    /// Fully filled.
    Filled,
    /// Cancelled (by its owner, a mass cancel, the kill switch, an IOC or market remainder).
    Cancelled,
}

impl OrderStateParam {
    fn status(self) -> OrderStatus {
        match self {
            OrderStateParam::Open => OrderStatus::Open,
            OrderStateParam::PendingStop => OrderStatus::PendingStop,
            OrderStateParam::Filled => OrderStatus::Filled,
            OrderStateParam::Cancelled => OrderStatus::Cancelled,
        }
    }
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderJson {
    /// Engine id.
    id: u64,
    /// Owner.
    account: u32,
    /// Market name.
    market: String,
    /// `buy` or `sell`.
    side: &'static str,
    /// `open`, `pending_stop`, `filled` or `cancelled`.
    status: &'static str,
    /// Limit price, decimal.
    price: String,
    /// Quantity at acceptance, decimal.
    quantity: String,
    /// Quantity still open, decimal.
    open_quantity: String,
    /// Accepted, Unix ms.
    created_at_ms: u64,
}

/// A fill of the account's order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TradeJson {
    /// Trade id.
    id: u64,
    /// Market name.
    market: String,
    /// The account's order.
    order: u64,
    /// The account's side.
    side: &'static str,
    /// Whether the account was the maker.
    maker: bool,
    /// Price, decimal.
    price: String,
    /// Quantity, decimal.
    quantity: String,
    /// Unix ms.
    at_ms: u64,
}

/// Orders, and how far the replica is complete.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrdersJson {
    /// Last journal sequence replicated: later changes are not here yet.
    high_water_seq: u64,
    /// Newest first.
    rows: Vec<OrderJson>,
}

/// Fills, and how far the replica is complete.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TradesJson {
    /// Last journal sequence replicated: later changes are not here yet.
    high_water_seq: u64,
    /// Newest first.
    rows: Vec<TradeJson>,
}

/// The parsed search.
struct Search {
    account: AccountId,
    market: Option<MarketId>,
    from_ns: u64,
    to_ns: u64,
    limit: usize,
    state: Option<OrderStatus>,
}

fn parse(state: &ControlState, query: SearchQuery) -> Result<Search, ControlError> {
    let bad = |text: String| ControlError::BadRequest(text);
    let account = query
        .account
        .ok_or_else(|| bad("account: required".to_owned()))?;
    let market = match query.market.as_deref().filter(|m| !m.is_empty()) {
        None => None,
        Some(name) => Some(
            state
                .catalog
                .load()
                .market(name)
                .ok_or_else(|| ControlError::UnknownMarket(name.to_owned()))?
                .spec
                .market,
        ),
    };
    let to_ns = |ms: u64, name: &str| {
        ms.checked_mul(NS_PER_MS)
            .ok_or_else(|| bad(format!("{name}: {ms} is too large")))
    };
    let from_ns = to_ns(query.from_ms.unwrap_or(0), "from_ms")?;
    let until_ns = match query.to_ms {
        None => u64::MAX,
        Some(ms) => to_ns(ms, "to_ms")?,
    };
    if from_ns >= until_ns {
        return Err(bad("from_ms must be before to_ms".to_owned()));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=SEARCH_ROWS_MAX).contains(&limit) {
        return Err(bad(format!("limit {limit}: 1 to {SEARCH_ROWS_MAX}")));
    }
    Ok(Search {
        account: AccountId(account),
        market,
        from_ns,
        to_ns: until_ns,
        limit,
        state: query.state.map(OrderStateParam::status),
    })
}

async fn admitted<'a>(
    state: &'a ControlState,
    client: &Client,
    headers: &HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<(&'a ReplicaReader, Search), ControlError> {
    let target = query
        .as_ref()
        .ok()
        .and_then(|q| q.account)
        .map_or_else(|| "account".to_owned(), |a| format!("account:{a}"));
    let access = &state.access;
    access
        .admit(headers, client, Permission::BalanceReadAny, &target)
        .await?;
    let Query(query) = query.map_err(|e| ControlError::BadRequest(e.body_text()))?;
    let search = parse(state, query)?;
    let replica = state
        .replica
        .as_deref()
        .ok_or_else(|| ControlError::ReplicaUnavailable("the replica is not enabled".to_owned()))?;
    Ok((replica, search))
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        _ => "sell",
    }
}

/// The market of `id` in the catalog as it is now (a copy: the catalog may change).
fn market_of(state: &ControlState, id: MarketId) -> Option<Market> {
    state.catalog.load().market_by_id(id).cloned()
}

/// An account's orders, newest first.
#[utoipa::path(get, path = "/control/v1/orders", tag = "control",
    params(SearchQuery), security(("bearer" = [])),
    responses((status = 200, body = OrdersJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn orders(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<OrdersJson>, ControlError> {
    let (replica, search) = admitted(&state, &client, &headers, query).await?;
    let filter = OrderFilter {
        account: search.account,
        market: search.market,
        side: None,
        status: search.state,
        created_from_ns: search.from_ns,
        created_to_ns: search.to_ns,
        ascending: false,
        limit: search.limit,
    };
    let page = replica
        .orders(filter)
        .await
        .map_err(|e| ControlError::ReplicaUnavailable(e.to_string()))?;
    let rows = page
        .orders
        .into_iter()
        .filter_map(|order| {
            let market = market_of(&state, order.market)?;
            Some(OrderJson {
                id: order.order.0,
                account: order.account.0,
                market: market.name.clone(),
                side: side_name(order.side),
                status: order.status.as_str(),
                price: market
                    .units
                    .price_decimal(order.price)
                    .normalize()
                    .to_string(),
                quantity: market
                    .units
                    .qty_decimal(order.accepted_qty)
                    .normalize()
                    .to_string(),
                open_quantity: market
                    .units
                    .qty_decimal(order.open_qty)
                    .normalize()
                    .to_string(),
                created_at_ms: order.created_ts_ns / NS_PER_MS,
            })
        })
        .collect();
    Ok(Json(OrdersJson {
        high_water_seq: page.high_water_seq,
        rows,
    }))
}

/// An account's fills, newest first.
#[utoipa::path(get, path = "/control/v1/trades", tag = "control",
    params(SearchQuery), security(("bearer" = [])),
    responses((status = 200, body = TradesJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn trades(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<TradesJson>, ControlError> {
    let (replica, search) = admitted(&state, &client, &headers, query).await?;
    if search.state.is_some() {
        return Err(ControlError::BadRequest(
            "state: trades have none (orders only)".to_owned(),
        ));
    }
    let filter = TradeFilter {
        account: search.account,
        market: search.market,
        from_ns: search.from_ns,
        to_ns: search.to_ns,
        ascending: false,
        limit: search.limit,
    };
    let page = replica
        .trades(filter)
        .await
        .map_err(|e| ControlError::ReplicaUnavailable(e.to_string()))?;
    let rows = page
        .trades
        .into_iter()
        .filter_map(|trade| {
            let market = market_of(&state, trade.market)?;
            Some(TradeJson {
                id: trade.id.0,
                market: market.name.clone(),
                order: trade.order.0,
                side: side_name(trade.side),
                maker: trade.maker,
                price: market
                    .units
                    .price_decimal(trade.price)
                    .normalize()
                    .to_string(),
                quantity: market.units.qty_decimal(trade.qty).normalize().to_string(),
                at_ms: trade.ts_ns / NS_PER_MS,
            })
        })
        .collect();
    Ok(Json(TradesJson {
        high_water_seq: page.high_water_seq,
        rows,
    }))
}
