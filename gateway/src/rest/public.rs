//! Public endpoints: markets, currencies, tickers, order book, depth, trades, k-lines,
//! timestamp, health and trading fees. All read the derived market data (never the engine).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rust_decimal::Decimal;

use super::Bridge;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use super::time::{now_ms, rfc3339};
use super::types::*;
use crate::catalog::Market;
use crate::market_data::kline::Period;

/// Largest `limit` of lists.
pub(crate) const LIST_LIMIT_MAX: usize = 1_000;
/// Largest `limit` of k-lines.
const KLINE_LIMIT_MAX: usize = 10_000;

/// The market named `name` in the catalog as it is now (a copy: the catalog may change).
pub(crate) fn market(bridge: &Bridge, name: &str) -> Result<Market, ApiError> {
    bridge
        .catalog
        .load()
        .market(name)
        .cloned()
        .ok_or_else(|| ApiError::unknown_market(name))
}

pub(crate) fn limit(value: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match value.unwrap_or(default) {
        0 => Err(ApiError::unprocessable(
            "request.invalid_limit",
            "limit must be positive",
        )),
        n if n > max => Err(ApiError::unprocessable(
            "request.invalid_limit",
            format!("limit must be at most {max}"),
        )),
        n => Ok(n),
    }
}

pub(crate) fn page(value: Option<usize>) -> Result<usize, ApiError> {
    match value.unwrap_or(1) {
        0 => Err(ApiError::unprocessable(
            "request.invalid_page",
            "page starts at 1",
        )),
        n => Ok(n),
    }
}

/// Whether `order_by` asks for ascending order (`asc`); `desc` is the default.
pub(crate) fn ascending(order_by: Option<&str>) -> Result<bool, ApiError> {
    match order_by {
        None | Some("desc") => Ok(false),
        Some("asc") => Ok(true),
        Some(other) => Err(ApiError::unprocessable(
            "request.invalid_order_by",
            format!("order_by is `asc` or `desc`, not `{other}`"),
        )),
    }
}

/// Markets.
#[utoipa::path(get, path = "/api/v2/peatio/public/markets", tag = "public",
    params(MarketsQuery),
    responses((status = 200, body = [MarketJson]), (status = 400, body = ErrorBody)))]
pub(crate) async fn markets(
    State(bridge): State<Arc<Bridge>>,
    ApiQuery(q): ApiQuery<MarketsQuery>,
) -> Result<Json<Vec<MarketJson>>, ApiError> {
    let per_page = limit(q.limit, 100, LIST_LIMIT_MAX)?;
    let page = page(q.page)?;
    let catalog = bridge.catalog.load();
    let matching: Vec<_> = catalog
        .markets()
        .iter()
        .filter(|m| q.base_unit.as_ref().is_none_or(|b| *b == m.base))
        .filter(|m| q.quote_unit.as_ref().is_none_or(|u| *u == m.quote))
        .collect();
    // The views follow states and risk updates as they are released; a hidden or disabled
    // market is left out before paging, so pages stay full.
    let in_views = bridge.read_views(|views| {
        matching
            .iter()
            .filter_map(|m| {
                let view = views.market(m.spec.market).unwrap_or_default();
                view.state
                    .listed()
                    .then(|| MarketJson::new(m, view.state_name(), view.risk))
            })
            .collect::<Vec<_>>()
    });
    // A bridge node follows halts (only) through the stream, into its market data.
    let listed = in_views.unwrap_or_else(|| {
        let shared = bridge.lock();
        matching
            .iter()
            .map(|m| {
                let state = if shared.data.halted(m.spec.market) {
                    "halted"
                } else {
                    "enabled"
                };
                MarketJson::new(m, state, None)
            })
            .collect()
    });
    let list = listed
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    Ok(Json(list))
}

/// Currencies.
#[utoipa::path(get, path = "/api/v2/peatio/public/currencies", tag = "public",
    responses((status = 200, body = [CurrencyJson])))]
pub(crate) async fn currencies(State(bridge): State<Arc<Bridge>>) -> Json<Vec<CurrencyJson>> {
    Json(
        bridge
            .catalog
            .load()
            .currencies()
            .iter()
            .map(CurrencyJson::new)
            .collect(),
    )
}

/// One currency.
#[utoipa::path(get, path = "/api/v2/peatio/public/currencies/{id}", tag = "public",
    params(("id" = String, Path, description = "currency code", example = "btc")),
    responses((status = 200, body = CurrencyJson), (status = 404, body = ErrorBody)))]
pub(crate) async fn currency(
    State(bridge): State<Arc<Bridge>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CurrencyJson>, ApiError> {
    bridge
        .catalog
        .load()
        .currency(&id)
        .map(|c| Json(CurrencyJson::new(c)))
        .ok_or_else(|| {
            ApiError::not_found(
                "public.currency.doesnt_exist",
                format!("no currency `{id}`"),
            )
        })
}

/// Every market's ticker.
#[utoipa::path(get, path = "/api/v2/peatio/public/markets/tickers", tag = "public",
    responses((status = 200, body = BTreeMap<String, TickerJson>)))]
pub(crate) async fn tickers(
    State(bridge): State<Arc<Bridge>>,
) -> Json<BTreeMap<String, TickerJson>> {
    let now_s = now_ms() / 1_000;
    let shared = bridge.lock();
    Json(
        bridge
            .catalog
            .load()
            .markets()
            .iter()
            .map(|m| {
                let stats = shared.data.ticker(m.spec.market, now_s);
                (m.name.clone(), TickerJson::new(m, &stats, now_s))
            })
            .collect(),
    )
}

/// One market's ticker.
#[utoipa::path(get, path = "/api/v2/peatio/public/markets/{market}/tickers", tag = "public",
    params(("market" = String, Path, description = "market id", example = "btcusd")),
    responses((status = 200, body = TickerJson), (status = 404, body = ErrorBody)))]
pub(crate) async fn ticker(
    State(bridge): State<Arc<Bridge>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TickerJson>, ApiError> {
    let m = &market(&bridge, &name)?;
    let now_s = now_ms() / 1_000;
    let stats = bridge.lock().data.ticker(m.spec.market, now_s);
    Ok(Json(TickerJson::new(m, &stats, now_s)))
}

/// The order book (aggregated levels).
#[utoipa::path(get, path = "/api/v2/peatio/public/markets/{market}/order-book", tag = "public",
    params(("market" = String, Path, description = "market id", example = "btcusd"), OrderBookQuery),
    responses((status = 200, body = OrderBookJson), (status = 404, body = ErrorBody)))]
pub(crate) async fn order_book(
    State(bridge): State<Arc<Bridge>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<OrderBookQuery>,
) -> Result<Json<OrderBookJson>, ApiError> {
    let m = &market(&bridge, &name)?;
    let asks = limit(q.asks_limit, 20, LIST_LIMIT_MAX)?;
    let bids = limit(q.bids_limit, 20, LIST_LIMIT_MAX)?;
    let book = bridge
        .lock()
        .data
        .book(m.spec.market, bids, asks)
        .unwrap_or_default();
    let levels = |levels: &[(peregrine_hotpath::Price, peregrine_hotpath::Qty)]| {
        levels
            .iter()
            .map(|(p, q)| LevelJson {
                price: price(m, *p),
                volume: qty(m, *q),
            })
            .collect()
    };
    Ok(Json(OrderBookJson {
        asks: levels(&book.asks),
        bids: levels(&book.bids),
        sequence: book.sequence,
    }))
}

/// Depth: `[price, amount]` pairs.
#[utoipa::path(get, path = "/api/v2/peatio/public/markets/{market}/depth", tag = "public",
    params(("market" = String, Path, description = "market id", example = "btcusd"), DepthQuery),
    responses((status = 200, body = DepthJson), (status = 404, body = ErrorBody)))]
pub(crate) async fn depth(
    State(bridge): State<Arc<Bridge>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<DepthQuery>,
) -> Result<Json<DepthJson>, ApiError> {
    let m = &market(&bridge, &name)?;
    let n = limit(q.limit, 300, LIST_LIMIT_MAX)?;
    let book = bridge
        .lock()
        .data
        .book(m.spec.market, n, n)
        .unwrap_or_default();
    let pairs = |levels: &[(peregrine_hotpath::Price, peregrine_hotpath::Qty)]| {
        levels
            .iter()
            .map(|(p, q)| [price(m, *p), qty(m, *q)])
            .collect()
    };
    Ok(Json(DepthJson {
        timestamp: now_ms() / 1_000,
        asks: pairs(&book.asks),
        bids: pairs(&book.bids),
        sequence: book.sequence,
    }))
}

/// Recent trades (those kept in memory: `trades_per_market`).
#[utoipa::path(get, path = "/api/v2/peatio/public/markets/{market}/trades", tag = "public",
    params(("market" = String, Path, description = "market id", example = "btcusd"), TradesQuery),
    responses((status = 200, body = [TradeJson]), (status = 404, body = ErrorBody)))]
pub(crate) async fn trades(
    State(bridge): State<Arc<Bridge>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<TradesQuery>,
) -> Result<Json<Vec<TradeJson>>, ApiError> {
    let m = &market(&bridge, &name)?;
    let n = limit(q.limit, 100, LIST_LIMIT_MAX)?;
    let asc = ascending(q.order_by.as_deref())?;
    let before_ns = q.timestamp.map(|s| s.saturating_mul(1_000_000_000));
    let kept = bridge
        .lock()
        .data
        .trades(m.spec.market, bridge.config.trades_per_market);
    let mut list: Vec<TradeJson> = kept
        .iter()
        .filter(|t| before_ns.is_none_or(|b| t.ts_ns < b))
        .take(n)
        .map(|t| TradeJson::new(m, &bridge.catalog.load(), t))
        .collect();
    if asc {
        list.reverse();
    }
    Ok(Json(list))
}

/// K-lines: `[unix seconds, open, high, low, close, volume]`, oldest first; only periods with
/// trades have a candle.
#[utoipa::path(get, path = "/api/v2/peatio/public/markets/{market}/k-line", tag = "public",
    params(("market" = String, Path, description = "market id", example = "btcusd"), KlineQuery),
    responses((status = 200, body = [KlineJson]), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub(crate) async fn k_line(
    State(bridge): State<Arc<Bridge>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<KlineQuery>,
) -> Result<Json<Vec<KlineJson>>, ApiError> {
    let m = &market(&bridge, &name)?;
    let minutes = q.period.unwrap_or(1);
    let period = Period::from_minutes(minutes).ok_or_else(|| {
        ApiError::unprocessable(
            "public.k_line.invalid_period",
            format!("period {minutes} is not one of 1, 5, 15, 30, 60, 120, 240, 360, 720, 1440, 4320, 10080"),
        )
    })?;
    let n = limit(q.limit, 30, KLINE_LIMIT_MAX)?;
    let from_s = q.time_from.unwrap_or(0);
    let to_s = q.time_to.unwrap_or(u64::MAX);
    if from_s > to_s {
        return Err(ApiError::unprocessable(
            "public.k_line.invalid_range",
            "time_from is after time_to",
        ));
    }
    let candles = bridge
        .lock()
        .data
        .klines(m.spec.market, period, from_s, to_s, n);
    Ok(Json(candles.iter().map(|c| kline(m, c)).collect()))
}

/// The server's time (RFC 3339).
#[utoipa::path(get, path = "/api/v2/peatio/public/timestamp", tag = "public",
    responses((status = 200, body = String, content_type = "application/json",
        description = "the server's time as a JSON string, RFC 3339 in UTC with milliseconds",
        example = json!("2026-01-02T03:04:05.678Z"))))]
pub(crate) async fn timestamp() -> Json<String> {
    Json(rfc3339(now_ms().saturating_mul(1_000_000)))
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/api/v2/peatio/public/health/alive", tag = "public",
    responses((status = 200, body = HealthJson)))]
pub(crate) async fn alive() -> Json<HealthJson> {
    Json(HealthJson {
        status: "ok".into(),
    })
}

/// Ready: the market-data feed follows the engine.
#[utoipa::path(get, path = "/api/v2/peatio/public/health/ready", tag = "public",
    responses((status = 200, body = HealthJson), (status = 503, body = HealthJson)))]
pub(crate) async fn ready(State(bridge): State<Arc<Bridge>>) -> (StatusCode, Json<HealthJson>) {
    if bridge.feed_live.load(Ordering::Acquire) {
        (
            StatusCode::OK,
            Json(HealthJson {
                status: "ok".into(),
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthJson {
                status: "market data is resynchronising".into(),
            }),
        )
    }
}

/// Maker and taker fees per market (one schedule for every member).
#[utoipa::path(get, path = "/api/v2/peatio/public/trading_fees", tag = "public",
    responses((status = 200, body = [TradingFeeJson])))]
pub(crate) async fn trading_fees(State(bridge): State<Arc<Bridge>>) -> Json<Vec<TradingFeeJson>> {
    let ppm = |value: u32| dec(Decimal::new(i64::from(value), 6));
    Json(
        bridge
            .catalog
            .load()
            .markets()
            .iter()
            .map(|m| TradingFeeJson {
                market_id: m.name.clone(),
                group: "any".into(),
                maker: ppm(m.spec.fees.maker_ppm),
                taker: ppm(m.spec.fees.taker_ppm),
            })
            .collect(),
    )
}
