//! Authenticated endpoints: orders (create, list, get, cancel one or all), own trades and
//! balances. Writes go through [`EngineHandle::submit`](peregrine_core::EngineHandle::submit);
//! the answer waits until the feed applied the command, so reads that follow see it.
//!
//! Lists and lookups merge the bounded in-memory history (`history_per_account`,
//! `history_total`) with the SQL replica when one is configured (see [`super::history`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use peregrine_hotpath::{
    AccountId, Actor, ClientOrderId, CommandKind, Event, MarketSize, NewOrder, OrderId, OrderKind,
    OrderRef, Price, SelfTradePrevention, Side, TimeInForce,
};
use rust_decimal::Decimal;

use super::Bridge;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Authenticated};
use super::history::{self, Window};
use super::public::{LIST_LIMIT_MAX, ascending, limit, market, page};
use super::types::*;
use super::{APPLIED_TIMEOUT, EXECUTE_TIMEOUT};
use crate::catalog::Market;
use peregrine_core::{Change, Executed, OrderRecord, OrderState};
use peregrine_views::{BalanceView, OrderType};

/// Largest client order id a client may choose; above is the server's range.
const CLIENT_ID_MAX: u64 = (1 << 63) - 1;

fn parse_side(text: &str) -> Result<Side, ApiError> {
    match text {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        other => Err(ApiError::unprocessable(
            "market.order.invalid_side",
            format!("side is `buy` or `sell`, not `{other}`"),
        )),
    }
}

fn decimal(field: &'static str, code: &'static str, text: &str) -> Result<Decimal, ApiError> {
    // The edges' one parser: plain decimal notation, no exponent, no sign, bounded length.
    peregrine_hotpath::edge::parse_decimal(text)
        .map_err(|error| ApiError::unprocessable(code, format!("{field} `{text}` {error}")))
}

fn order_price(
    m: &Market,
    field: &'static str,
    text: Option<&str>,
) -> Result<Option<Price>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let value = decimal(field, "market.order.invalid_price", text)?;
    m.units.price(value).map(Some).map_err(|e| {
        ApiError::unprocessable(
            "market.order.invalid_price",
            format!("{field}: {e} (market {})", m.name),
        )
    })
}

fn required<T>(value: Option<T>, code: &'static str, what: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::unprocessable(code, format!("{what} is required")))
}

fn refuse<T>(value: Option<T>, code: &'static str, what: &str) -> Result<(), ApiError> {
    match value {
        None => Ok(()),
        Some(_) => Err(ApiError::unprocessable(code, what.to_owned())),
    }
}

/// The order a request describes, checked and converted exactly (nothing is rounded).
fn build_order(
    bridge: &Bridge,
    account: AccountId,
    req: &CreateOrder,
) -> Result<NewOrder, ApiError> {
    let m = &market(bridge, &req.market)?;
    let side = parse_side(&req.side)?;
    let kind = match req.ord_type.as_deref().unwrap_or("limit") {
        "limit" => OrderType::Limit,
        "market" => OrderType::Market,
        "stop_limit" => OrderType::StopLimit,
        "stop_market" => OrderType::StopMarket,
        other => {
            return Err(ApiError::unprocessable(
                "market.order.invalid_type",
                format!("ord_type is limit, market, stop_limit or stop_market, not `{other}`"),
            ));
        }
    };
    let is_market = matches!(kind, OrderType::Market | OrderType::StopMarket);
    let tif = match req.time_in_force.as_deref() {
        None if is_market => TimeInForce::Ioc,
        None | Some("gtc") => TimeInForce::Gtc,
        Some("ioc") => TimeInForce::Ioc,
        Some("fok") => TimeInForce::Fok,
        Some("post_only") => TimeInForce::PostOnly,
        Some(other) => {
            return Err(ApiError::unprocessable(
                "market.order.invalid_time_in_force",
                format!("time_in_force is gtc, ioc, fok or post_only, not `{other}`"),
            ));
        }
    };
    let volume = match req.volume.as_deref() {
        None => None,
        Some(text) => {
            let value = decimal("volume", "market.order.invalid_volume", text)?;
            Some(m.units.qty(value).map_err(|e| {
                ApiError::unprocessable(
                    "market.order.invalid_volume",
                    format!("volume: {e} (market {})", m.name),
                )
            })?)
        }
    };
    let quote_amount = match req.quote_amount.as_deref() {
        None => None,
        Some(text) => {
            let value = decimal("quote_amount", "market.order.invalid_quote_amount", text)?;
            let catalog = bridge.catalog.load();
            let quote = catalog.currency(&m.quote).ok_or_else(|| {
                ApiError::unavailable("server.catalog", "the market's quote currency is missing")
            })?;
            let amount = quote.scale.to_minor(value).map_err(|e| {
                ApiError::unprocessable("market.order.invalid_quote_amount", format!("{e}"))
            })?;
            Some(amount)
        }
    };
    let limit_price = order_price(m, "price", req.price.as_deref())?;
    let trigger = order_price(m, "stop_price", req.stop_price.as_deref())?;
    let size = |volume, quote_amount| match (volume, quote_amount) {
        (Some(qty), None) => Ok(MarketSize::Qty(qty)),
        (None, Some(budget)) => Ok(MarketSize::QuoteBudget(budget)),
        _ => Err(ApiError::unprocessable(
            "market.order.invalid_volume",
            "a market order takes exactly one of volume and quote_amount",
        )),
    };
    let no_price = "market orders take no price";
    let no_quote = "quote_amount is only for market orders";
    let no_stop = "stop_price is only for stop orders";
    let order_kind = match kind {
        OrderType::Limit => {
            refuse(trigger, "market.order.invalid_stop_price", no_stop)?;
            refuse(quote_amount, "market.order.invalid_quote_amount", no_quote)?;
            OrderKind::Limit {
                price: required(limit_price, "market.order.invalid_price", "price")?,
                qty: required(volume, "market.order.invalid_volume", "volume")?,
            }
        }
        OrderType::Market => {
            refuse(trigger, "market.order.invalid_stop_price", no_stop)?;
            refuse(limit_price, "market.order.invalid_price", no_price)?;
            OrderKind::Market {
                size: size(volume, quote_amount)?,
            }
        }
        OrderType::StopLimit => {
            refuse(quote_amount, "market.order.invalid_quote_amount", no_quote)?;
            OrderKind::StopLimit {
                trigger: required(trigger, "market.order.invalid_stop_price", "stop_price")?,
                price: required(limit_price, "market.order.invalid_price", "price")?,
                qty: required(volume, "market.order.invalid_volume", "volume")?,
            }
        }
        _ => {
            refuse(limit_price, "market.order.invalid_price", no_price)?;
            OrderKind::StopMarket {
                trigger: required(trigger, "market.order.invalid_stop_price", "stop_price")?,
                size: size(volume, quote_amount)?,
            }
        }
    };
    let client_order_id = match req.client_id.as_deref() {
        None => ClientOrderId(bridge.next_client_id()),
        Some(text) => {
            let id = text
                .parse::<u64>()
                .ok()
                .filter(|id| (1..=CLIENT_ID_MAX).contains(id));
            ClientOrderId(id.ok_or_else(|| {
                ApiError::unprocessable(
                    "market.order.invalid_client_id",
                    format!("client_id is decimal digits from 1 to {CLIENT_ID_MAX}"),
                )
            })?)
        }
    };
    Ok(NewOrder {
        account,
        market: m.spec.market,
        client_order_id,
        side,
        kind: order_kind,
        tif,
        stp: SelfTradePrevention::CancelNewest,
    })
}

/// Sequences `command` and waits (bounded) for its outcome and for the feed to apply it.
async fn execute(
    bridge: &Bridge,
    actor: Actor,
    new_order: Option<(AccountId, ClientOrderId)>,
    command: CommandKind,
) -> Result<Executed, ApiError> {
    let mut request = peregrine_core::Request::new(actor, command);
    request.new_order = new_order;
    let ticket = bridge.engine()?.submit(request).map_err(ApiError::submit)?;
    let executed = match tokio::time::timeout(EXECUTE_TIMEOUT, ticket).await {
        Ok(Ok(executed)) => executed,
        Ok(Err(_)) => {
            return Err(ApiError::unavailable(
                "server.unavailable",
                "the engine stopped before answering",
            ));
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "server.timeout",
                "the command was sequenced but its outcome is not known yet; look it up",
            ));
        }
    };
    if let Some(reason) = executed.rejected() {
        return Err(ApiError::rejected(reason));
    }
    if !bridge.wait_applied(executed.seq).await {
        tracing::warn!(
            seq = executed.seq,
            ?APPLIED_TIMEOUT,
            "the feed did not apply a command in time"
        );
    }
    Ok(executed)
}

/// The records of the orders `executed` touched, as the views left them after it.
fn touched(executed: &Executed) -> impl Iterator<Item = &OrderRecord> {
    executed.changes.iter().filter_map(|change| match change {
        Change::Order(record) => Some(&**record),
        _ => None,
    })
}

/// The record of exchange order `id` after `executed`.
fn touched_order(executed: &Executed, id: OrderId) -> Option<OrderRecord> {
    touched(executed).find(|record| record.id == id).cloned()
}

fn render(bridge: &Bridge, record: &OrderRecord) -> Result<OrderJson, ApiError> {
    let catalog = bridge.catalog.load();
    let m = catalog.market_by_id(record.market).ok_or_else(|| {
        ApiError::not_found(
            "market.market.doesnt_exist",
            "the order's market is not listed",
        )
    })?;
    Ok(OrderJson::new(m, record))
}

/// Places an order: `limit` (GTC, IOC, FOK, post-only), `market` (IOC; by volume, or buy by
/// `quote_amount`), `stop_limit`, `stop_market`.
#[utoipa::path(post, path = "/api/v2/peatio/market/orders", tag = "market",
    request_body = CreateOrder,
    security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 201, body = OrderJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn create_order(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, actor): Authenticated,
    ApiJson(req): ApiJson<CreateOrder>,
) -> Result<(StatusCode, Json<OrderJson>), ApiError> {
    bridge.check_trade_level(account)?;
    let order = build_order(&bridge, account, &req)?;
    let client = order.client_order_id;
    let executed = execute(
        &bridge,
        actor,
        Some((account, client)),
        CommandKind::NewOrder(order),
    )
    .await?;
    let record = touched(&executed).find(|record| record.seq == executed.seq);
    let record = record.ok_or_else(|| {
        ApiError::unavailable("server.unavailable", "the order's outcome is unknown")
    })?;
    Ok((StatusCode::CREATED, Json(render(&bridge, record)?)))
}

/// The account's orders, newest first, from memory and the replica (when configured;
/// `x-peregrine-replica-seq` says how far it goes), each order once. Lists go
/// 10,000 rows deep (`page * limit`); narrow deeper history with `time_from`/`time_to`.
#[utoipa::path(get, path = "/api/v2/peatio/market/orders", tag = "market",
    params(OrdersQuery), security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = [OrderJson]), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list_orders(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, _): Authenticated,
    ApiQuery(q): ApiQuery<OrdersQuery>,
) -> Result<(HeaderMap, Json<Vec<OrderJson>>), ApiError> {
    let window = list_window(
        &bridge,
        q.limit,
        q.page,
        q.order_by.as_deref(),
        q.market.as_deref(),
        (q.time_from, q.time_to),
    )?;
    let side = q.side.as_deref().map(parse_side).transpose()?;
    let state = match q.state.as_deref() {
        None => None,
        Some("pending") => Some(OrderState::Untriggered),
        Some("wait") => Some(OrderState::Open),
        Some("done") => Some(OrderState::Filled),
        Some("cancel") => Some(OrderState::Cancelled),
        Some(other) => {
            return Err(ApiError::unprocessable(
                "market.order.invalid_state",
                format!("state is pending, wait, done or cancel, not `{other}`"),
            ));
        }
    };
    let found = history::orders(&bridge, account, &window, side, state).await?;
    let list = found
        .rows
        .iter()
        .map(|o| render(&bridge, o))
        .collect::<Result<_, _>>()?;
    Ok((found.headers(), Json(list)))
}

/// The paging, ordering, market and time range shared by the list endpoints.
fn list_window(
    bridge: &Bridge,
    limit_value: Option<usize>,
    page_value: Option<usize>,
    order_by: Option<&str>,
    market_name: Option<&str>,
    (time_from_s, time_to_s): (Option<u64>, Option<u64>),
) -> Result<Window, ApiError> {
    Ok(Window {
        per_page: limit(limit_value, 100, LIST_LIMIT_MAX)?,
        page: page(page_value)?,
        asc: ascending(order_by)?,
        market: match market_name {
            Some(name) => Some(market(bridge, name)?.spec.market),
            None => None,
        },
        from_ns: time_from_s.map_or(0, |s| s.saturating_mul(1_000_000_000)),
        to_ns: time_to_s.map_or(u64::MAX, |s| s.saturating_mul(1_000_000_000)),
    })
}

fn order_not_found() -> ApiError {
    ApiError::not_found(
        "market.order.not_found",
        "no such order among the account's recent orders",
    )
}

/// One order by exchange id.
#[utoipa::path(get, path = "/api/v2/peatio/market/orders/{id}", tag = "market",
    params(("id" = u64, Path, description = "exchange order id")), security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = OrderJson), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn get_order(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, _): Authenticated,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<OrderJson>, ApiError> {
    let record = history::order(&bridge, account, OrderId(id)).await?;
    Ok(Json(render(&bridge, &record.ok_or_else(order_not_found)?)?))
}

/// One order by client id (the most recent with that id).
#[utoipa::path(get, path = "/api/v2/peatio/market/orders/cid/{client_id}", tag = "market",
    params(("client_id" = u64, Path, description = "client order id")),
    security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = OrderJson), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn get_order_by_client_id(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, _): Authenticated,
    ApiPath(client_id): ApiPath<u64>,
) -> Result<Json<OrderJson>, ApiError> {
    let record = history::order_by_client(&bridge, account, ClientOrderId(client_id)).await?;
    Ok(Json(render(&bridge, &record.ok_or_else(order_not_found)?)?))
}

async fn cancel(
    bridge: &Bridge,
    actor: Actor,
    account: AccountId,
    target: OrderRef,
) -> Result<Json<OrderJson>, ApiError> {
    let executed = execute(bridge, actor, None, CommandKind::Cancel { account, target }).await?;
    let id = executed.events.iter().find_map(|e| match e {
        Event::OrderCancelled { order, .. } => Some(*order),
        _ => None,
    });
    let record = id.and_then(|id| touched_order(&executed, id));
    Ok(Json(render(bridge, &record.ok_or_else(order_not_found)?)?))
}

/// Cancels one order by exchange id; answers the order as cancelled.
#[utoipa::path(post, path = "/api/v2/peatio/market/orders/{id}/cancel", tag = "market",
    params(("id" = u64, Path, description = "exchange order id")), security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = OrderJson), (status = 404, body = ErrorBody)))]
pub(crate) async fn cancel_order(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, actor): Authenticated,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<OrderJson>, ApiError> {
    cancel(&bridge, actor, account, OrderRef::Id(OrderId(id))).await
}

/// Cancels one order by client id.
#[utoipa::path(post, path = "/api/v2/peatio/market/orders/cid/{client_id}/cancel",
    tag = "market",
    params(("client_id" = u64, Path, description = "client order id")),
    security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = OrderJson), (status = 404, body = ErrorBody)))]
pub(crate) async fn cancel_order_by_client_id(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, actor): Authenticated,
    ApiPath(client_id): ApiPath<u64>,
) -> Result<Json<OrderJson>, ApiError> {
    cancel(
        &bridge,
        actor,
        account,
        OrderRef::Client(ClientOrderId(client_id)),
    )
    .await
}

/// One cancel-all filter from the query string or the body: given in both, differently, it is
/// refused rather than one silently winning.
fn one_filter(
    name: &'static str,
    query: Option<String>,
    body: Option<String>,
) -> Result<Option<String>, ApiError> {
    match (query, body) {
        (Some(q), Some(b)) if q != b => Err(ApiError::unprocessable(
            "market.order.conflicting_filter",
            format!("{name} is `{q}` in the query string but `{b}` in the body"),
        )),
        (q, b) => Ok(q.or(b)),
    }
}

/// Cancels every open order of the account, optionally only in one market and/or side (as
/// query parameters or a JSON body, as Peatio clients send them); answers the cancelled orders.
#[utoipa::path(post, path = "/api/v2/peatio/market/orders/cancel", tag = "market",
    params(CancelAllQuery), request_body(content = Option<CancelAllBody>,
        description = "the same filters as a JSON body (a filter in both must agree)"),
    security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = [OrderJson]), (status = 401, body = ErrorBody)))]
pub(crate) async fn cancel_all(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, actor): Authenticated,
    ApiQuery(q): ApiQuery<CancelAllQuery>,
    body: axum::body::Bytes,
) -> Result<Json<Vec<OrderJson>>, ApiError> {
    // Peatio clients send the filters as a JSON body; the query string works too.
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        CancelAllBody {
            market: None,
            side: None,
        }
    } else {
        serde_json::from_slice::<CancelAllBody>(&body).map_err(|error| {
            ApiError::bad_request("request.malformed_json", format!("the body: {error}"))
        })?
    };
    let market_name = one_filter("market", q.market, from_body.market)?;
    let side_name = one_filter("side", q.side, from_body.side)?;
    let market_id = match market_name.as_deref() {
        Some(name) => Some(market(&bridge, name)?.spec.market),
        None => None,
    };
    let side = side_name.as_deref().map(parse_side).transpose()?;
    let executed = execute(
        &bridge,
        actor,
        None,
        CommandKind::MassCancel {
            account,
            market: market_id,
            side,
        },
    )
    .await?;
    let mut list = Vec::new();
    for event in &executed.events {
        if let Event::OrderCancelled { order, .. } = event
            && let Some(found) = touched_order(&executed, *order)
        {
            list.push(render(&bridge, &found)?);
        }
    }
    Ok(Json(list))
}

/// The account's fills, newest first, from memory and the replica (when configured). Lists go
/// 10,000 rows deep (`page * limit`).
#[utoipa::path(get, path = "/api/v2/peatio/market/trades", tag = "market",
    params(OwnTradesQuery), security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = [OwnTradeJson]), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn own_trades(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, _): Authenticated,
    ApiQuery(q): ApiQuery<OwnTradesQuery>,
) -> Result<(HeaderMap, Json<Vec<OwnTradeJson>>), ApiError> {
    let window = list_window(
        &bridge,
        q.limit,
        q.page,
        q.order_by.as_deref(),
        q.market.as_deref(),
        (q.time_from, q.time_to),
    )?;
    let found = history::trades(&bridge, account, &window).await?;
    let catalog = bridge.catalog.load();
    let list = found
        .rows
        .iter()
        .filter_map(|t| {
            let m = catalog.market_by_id(t.market)?;
            Some(OwnTradeJson::new(m, &catalog, t))
        })
        .collect();
    Ok((found.headers(), Json(list)))
}

/// Balances as the views hold them: released (durable in `durable` mode), read without
/// touching the matching thread.
fn read_balances(
    bridge: &Bridge,
    account: AccountId,
    currencies: Vec<(String, peregrine_hotpath::CurrencyId)>,
) -> Result<Vec<(String, BalanceView)>, ApiError> {
    Ok(bridge.engine()?.read(|views| {
        currencies
            .into_iter()
            .map(|(code, id)| (code, views.balance(account, id)))
            .collect()
    }))
}

fn balance_json(bridge: &Bridge, code: &str, b: BalanceView) -> BalanceJson {
    let catalog = bridge.catalog.load();
    let currency = catalog.currency(code);
    BalanceJson {
        currency: code.to_owned(),
        balance: amount(currency, b.available),
        locked: amount(currency, b.locked),
    }
}

/// Every balance of the account.
#[utoipa::path(get, path = "/api/v2/peatio/account/balances", tag = "account",
    security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = [BalanceJson]), (status = 401, body = ErrorBody)))]
pub(crate) async fn balances(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, _): Authenticated,
) -> Result<Json<Vec<BalanceJson>>, ApiError> {
    let currencies = bridge
        .catalog
        .load()
        .currencies()
        .iter()
        .map(|c| (c.code.clone(), c.id))
        .collect();
    let list = read_balances(&bridge, account, currencies)?;
    Ok(Json(
        list.into_iter()
            .map(|(code, b)| balance_json(&bridge, &code, b))
            .collect(),
    ))
}

/// One balance of the account.
#[utoipa::path(get, path = "/api/v2/peatio/account/balances/{currency}", tag = "account",
    params(("currency" = String, Path, description = "currency code")),
    security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = BalanceJson), (status = 404, body = ErrorBody)))]
pub(crate) async fn balance(
    State(bridge): State<Arc<Bridge>>,
    Authenticated(account, _): Authenticated,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<BalanceJson>, ApiError> {
    let catalog = bridge.catalog.load();
    let currency = catalog.currency(&code).ok_or_else(|| {
        ApiError::not_found(
            "account.currency.doesnt_exist",
            format!("no currency `{code}`"),
        )
    })?;
    let list = read_balances(&bridge, account, vec![(code.clone(), currency.id)])?;
    let (code, b) = list
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::unavailable("server.unavailable", "the engine did not answer"))?;
    Ok(Json(balance_json(&bridge, &code, b)))
}
