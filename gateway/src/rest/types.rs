//! The JSON shapes of the REST bridge (Peatio's field names where Peatio has them) and their
//! rendering from engine units. Amounts and prices are decimal strings.

use peregrine_hotpath::{Amount, MarketRisk, Price, Qty, Side, TimeInForce};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::time::rfc3339;
use crate::catalog::{Catalog, Currency, Market};
use crate::market_data::PublicTrade;
use crate::market_data::history::OwnTrade;
use crate::market_data::kline::{Candle, TickerStats};
use peregrine_core::{OrderRecord, OrderState};
use peregrine_views::OrderType;

/// A decimal as Peatio writes it: a string, without trailing zeros.
pub fn dec(value: Decimal) -> String {
    value.normalize().to_string()
}

/// A price of `market` as a string.
pub fn price(market: &Market, price: Price) -> String {
    dec(market.units.price_decimal(price))
}

/// A quantity of `market` as a string.
pub fn qty(market: &Market, qty: Qty) -> String {
    dec(market.units.qty_decimal(qty))
}

/// A sum of price * qty (ticks times lots) of `market` as a quote decimal; `None` beyond what
/// a decimal holds (2^96), which no real market reaches.
pub fn notional_decimal(market: &Market, tick_lots: u128) -> Option<Decimal> {
    let unit = market.units.tick.checked_mul(market.units.lot)?;
    <Decimal as FromPrimitive>::from_u128(tick_lots)?.checked_mul(unit)
}

/// [`notional_decimal`] as a string (`"overflow"` past its range rather than a wrong number).
pub fn notional(market: &Market, tick_lots: u128) -> String {
    notional_decimal(market, tick_lots).map_or_else(|| "overflow".to_owned(), dec)
}

/// Minor units of `currency` as a string.
pub fn amount(currency: Option<&Currency>, amount: Amount) -> String {
    match currency {
        Some(c) => dec(c.scale.to_decimal(amount)),
        None => amount.0.to_string(),
    }
}

/// `buy` or `sell`.
pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// A market.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MarketJson {
    /// Name, e.g. `btcusd`.
    pub id: String,
    /// Display name, e.g. `BTC/USD`.
    pub name: String,
    /// Base currency.
    pub base_unit: String,
    /// Quote currency.
    pub quote_unit: String,
    /// Price increment (the tick): the lowest price.
    pub min_price: String,
    /// Highest price.
    pub max_price: String,
    /// Amount increment (the lot): the smallest amount.
    pub min_amount: String,
    /// Largest amount of one order.
    pub max_amount: String,
    /// Decimal places of amounts.
    pub amount_precision: u32,
    /// Decimal places of prices.
    pub price_precision: u32,
    /// `enabled`, or `halted` while an operator has halted (locked) it: the list leaves
    /// hidden and disabled markets out.
    pub state: String,
}

impl MarketJson {
    /// From the catalog, the state's name and the risk parameters as last updated (the
    /// catalog's when `None`).
    pub fn new(m: &Market, state: &str, risk: Option<MarketRisk>) -> MarketJson {
        let risk = risk.unwrap_or(m.spec.risk);
        MarketJson {
            id: m.name.clone(),
            name: format!("{}/{}", m.base.to_uppercase(), m.quote.to_uppercase()),
            base_unit: m.base.clone(),
            quote_unit: m.quote.clone(),
            min_price: dec(m.units.tick),
            max_price: price(m, risk.max_price),
            min_amount: dec(m.units.lot),
            max_amount: qty(m, risk.max_qty),
            amount_precision: m.units.lot.normalize().scale(),
            price_precision: m.units.tick.normalize().scale(),
            state: state.into(),
        }
    }
}

/// A currency.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CurrencyJson {
    /// Code, e.g. `btc`.
    pub id: String,
    /// For people: the upper-case code of a configured currency, the name given to one created
    /// at runtime.
    pub name: String,
    /// Decimal places of the minor unit.
    pub precision: u32,
    /// `coin`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl CurrencyJson {
    /// From the catalog.
    pub fn new(c: &Currency) -> CurrencyJson {
        CurrencyJson {
            id: c.code.clone(),
            name: c.display_name.clone(),
            precision: c.scale.scale,
            kind: "coin".into(),
        }
    }
}

/// 24 h statistics.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TickerStatsJson {
    /// Lowest price in 24 h.
    pub low: String,
    /// Highest price in 24 h.
    pub high: String,
    /// First price in 24 h.
    pub open: String,
    /// Last trade price.
    pub last: String,
    /// Base traded in 24 h.
    pub volume: String,
    /// Quote traded in 24 h.
    pub amount: String,
    /// Volume-weighted average price in 24 h.
    pub avg_price: String,
    /// Change from open to last, percent, signed.
    pub price_change_percent: String,
}

/// A ticker, Peatio's shape.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TickerJson {
    /// Unix seconds.
    pub at: u64,
    /// The statistics.
    pub ticker: TickerStatsJson,
}

impl TickerJson {
    /// From the derived statistics.
    pub fn new(m: &Market, stats: &TickerStats, at_s: u64) -> TickerJson {
        let open = m.units.price_decimal(stats.open);
        let last = m.units.price_decimal(stats.last);
        let volume = m.units.qty_decimal(stats.volume);
        let change = if open.is_zero() {
            Decimal::ZERO
        } else {
            ((last - open) / open * Decimal::ONE_HUNDRED).round_dp(2)
        };
        let amount_text = notional(m, stats.notional_tick_lots);
        let avg = match notional_decimal(m, stats.notional_tick_lots) {
            Some(amount) if !volume.is_zero() => {
                amount.checked_div(volume).map_or(Decimal::ZERO, |avg| {
                    avg.round_dp(m.units.tick.normalize().scale() + 4)
                })
            }
            _ => Decimal::ZERO,
        };
        let sign = if change.is_sign_negative() { "" } else { "+" };
        TickerJson {
            at: at_s,
            ticker: TickerStatsJson {
                low: price(m, stats.low),
                high: price(m, stats.high),
                open: dec(open),
                last: dec(last),
                volume: dec(volume),
                amount: amount_text,
                avg_price: dec(avg),
                price_change_percent: format!("{sign}{}%", dec(change)),
            },
        }
    }
}

/// One price level.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LevelJson {
    /// Price.
    pub price: String,
    /// Total amount at the price.
    pub volume: String,
}

/// The order book.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderBookJson {
    /// Asks, lowest first.
    pub asks: Vec<LevelJson>,
    /// Bids, highest first.
    pub bids: Vec<LevelJson>,
    /// The book's sequence (as on the `ob-inc` stream).
    pub sequence: u64,
}

/// Depth: `[price, amount]` pairs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DepthJson {
    /// Unix seconds.
    pub timestamp: u64,
    /// Asks, lowest first.
    pub asks: Vec<[String; 2]>,
    /// Bids, highest first.
    pub bids: Vec<[String; 2]>,
    /// The book's sequence.
    pub sequence: u64,
}

/// A public trade.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TradeJson {
    /// Trade id.
    pub id: u64,
    /// Price.
    pub price: String,
    /// Base amount.
    pub amount: String,
    /// Quote amount.
    pub total: String,
    /// Market.
    pub market: String,
    /// RFC 3339.
    pub created_at: String,
    /// The taker's side.
    pub taker_type: String,
}

impl TradeJson {
    /// From a derived trade.
    pub fn new(m: &Market, catalog: &Catalog, t: &PublicTrade) -> TradeJson {
        TradeJson {
            id: t.id.0,
            price: price(m, t.price),
            amount: qty(m, t.qty),
            total: amount(catalog.currency(&m.quote), t.quote_amount),
            market: m.name.clone(),
            created_at: rfc3339(t.ts_ns),
            taker_type: side_name(t.taker_side).into(),
        }
    }
}

/// A candle: `[unix seconds, open, high, low, close, volume]` (a JSON array: the time an
/// integer, the rest decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KlineJson(
    pub u64,
    pub String,
    pub String,
    pub String,
    pub String,
    pub String,
);

impl utoipa::PartialSchema for KlineJson {
    /// A six-item array typed item by item (derive cannot say that of a tuple).
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ArrayItems, ObjectBuilder, Type};
        let decimal = |what: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(format!("{what}, a decimal string")))
                .build()
        };
        let time = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .description(Some("start of the period, Unix seconds"))
            .build();
        ArrayBuilder::new()
            .description(Some("[time, open, high, low, close, volume]"))
            .prefix_items([
                time,
                decimal("open"),
                decimal("high"),
                decimal("low"),
                decimal("close"),
                decimal("volume (base)"),
            ])
            .items(ArrayItems::False)
            .min_items(Some(6))
            .max_items(Some(6))
            .build()
            .into()
    }
}

impl ToSchema for KlineJson {}

/// A candle as a row.
pub fn kline(m: &Market, c: &Candle) -> KlineJson {
    KlineJson(
        c.start_s,
        price(m, c.open),
        price(m, c.high),
        price(m, c.low),
        price(m, c.close),
        qty(m, c.volume),
    )
}

/// A market's fees.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TradingFeeJson {
    /// Market.
    pub market_id: String,
    /// Member group (`any`: one schedule for all).
    pub group: String,
    /// Maker fee, a fraction of what is received.
    pub maker: String,
    /// Taker fee, a fraction of what is received.
    pub taker: String,
}

/// Liveness and readiness.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthJson {
    /// `ok`, or why not.
    pub status: String,
}

/// A decimal in a request: a JSON string (`"0.01"`) or a JSON number (`0.01`, as Peatio takes
/// them), kept as its literal text for the edges' one parser
/// ([`peregrine_hotpath::edge::parse_decimal`]): a number is never read through `f64`, so
/// `0.1` is exactly 0.1, and `1e5` is refused for its exponent like the string `"1e5"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecimalText(pub String);

impl std::ops::Deref for DecimalText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // The value's own bytes, bounded by the body limit; only serde_json can hand them out.
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        if text.starts_with('"') {
            return serde_json::from_str::<String>(text)
                .map(DecimalText)
                .map_err(D::Error::custom);
        }
        if text.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            return Ok(DecimalText(text.to_owned()));
        }
        Err(D::Error::custom(
            "expected a decimal as a string (\"0.01\") or a number (0.01)",
        ))
    }
}

impl utoipa::PartialSchema for DecimalText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Number]))
            .description(Some(
                "a positive decimal in plain notation, as a string or a JSON number; no sign, \
                 no exponent",
            ))
            .pattern(Some(r"^[0-9]+(\.[0-9]+)?$"))
            .examples([serde_json::json!("0.01")])
            .into()
    }
}

impl ToSchema for DecimalText {}

/// A new order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// Market, e.g. `btcusd`.
    #[schema(example = "btcusd")]
    pub market: String,
    /// `buy` or `sell`.
    #[schema(example = "buy")]
    pub side: String,
    /// Base amount, a decimal string, a multiple of the market's `min_amount`. Optional only
    /// for a market buy by `quote_amount`.
    #[schema(example = "0.01")]
    pub volume: Option<DecimalText>,
    /// `limit` (default), `market`, `stop_limit`, `stop_market`.
    pub ord_type: Option<String>,
    /// Limit price (limit and stop-limit), a multiple of the market's `min_price`.
    #[schema(example = "50000")]
    pub price: Option<DecimalText>,
    /// Trigger price (stops): buy stops trigger when the last price is at or above it, sell
    /// stops at or below.
    pub stop_price: Option<DecimalText>,
    /// `gtc` (default for limit orders), `ioc` (the only one for market orders), `fok`,
    /// `post_only`.
    pub time_in_force: Option<String>,
    /// Market buys (and stop-market buys, which require it): spend at most this much quote.
    pub quote_amount: Option<DecimalText>,
    /// Client order id: decimal digits, 1 to 2^63-1, unique among the account's recent
    /// orders. Assigned by the server when absent.
    pub client_id: Option<String>,
}

/// An order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderJson {
    /// Exchange id.
    pub id: u64,
    /// Client order id.
    pub client_id: String,
    /// `buy` or `sell`.
    pub side: String,
    /// `limit`, `market`, `stop_limit` or `stop_market`.
    pub ord_type: String,
    /// `gtc`, `ioc`, `fok` or `post_only`.
    pub time_in_force: String,
    /// Limit price; null for market and stop-market orders.
    pub price: Option<String>,
    /// Trigger price of a stop, else null.
    pub stop_price: Option<String>,
    /// Average fill price (`0` without fills).
    pub avg_price: String,
    /// `pending` (stop waiting), `wait`, `done` or `cancel`.
    pub state: String,
    /// Market.
    pub market: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Amount ordered.
    pub origin_volume: String,
    /// Amount still open (for a cancelled order, what was open when cancelled).
    pub remaining_volume: String,
    /// Amount filled.
    pub executed_volume: String,
    /// Fills.
    pub trades_count: u32,
}

/// `gtc`, `ioc`, ...
pub fn tif_name(tif: TimeInForce) -> &'static str {
    match tif {
        TimeInForce::Ioc => "ioc",
        TimeInForce::Fok => "fok",
        TimeInForce::PostOnly => "post_only",
        _ => "gtc",
    }
}

impl OrderJson {
    /// From a derived order.
    pub fn new(m: &Market, o: &OrderRecord) -> OrderJson {
        let volume = m.units.qty_decimal(o.executed_qty);
        let avg = notional_decimal(m, o.executed_tick_lots)
            .and_then(|total| total.checked_div(volume))
            .map_or_else(
                || "0".to_owned(),
                |avg| dec(avg.round_dp(m.units.tick.normalize().scale() + 4)),
            );
        let ord_type = match o.terms.kind {
            OrderType::Market => "market",
            OrderType::StopLimit => "stop_limit",
            OrderType::StopMarket => "stop_market",
            _ => "limit",
        };
        let state = match o.state {
            OrderState::Untriggered => "pending",
            OrderState::Filled => "done",
            OrderState::Cancelled => "cancel",
            OrderState::Rejected => "reject",
            _ => "wait",
        };
        OrderJson {
            id: o.id.0,
            client_id: o.client_order_id.0.to_string(),
            side: side_name(o.side).into(),
            ord_type: ord_type.into(),
            time_in_force: tif_name(o.terms.tif).into(),
            price: o.shown_price().map(|p| price(m, p)),
            stop_price: o.terms.trigger.map(|trigger| price(m, trigger)),
            avg_price: avg,
            state: state.into(),
            market: m.name.clone(),
            created_at: rfc3339(o.created_ns),
            updated_at: rfc3339(o.updated_ns),
            origin_volume: qty(m, o.origin_qty),
            remaining_volume: qty(m, o.remaining_qty),
            executed_volume: qty(m, o.executed_qty),
            trades_count: o.trades_count,
        }
    }
}

/// A fill of one of the account's orders.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OwnTradeJson {
    /// Trade id.
    pub id: u64,
    /// Price.
    pub price: String,
    /// Base amount.
    pub amount: String,
    /// Quote amount.
    pub total: String,
    /// Market.
    pub market: String,
    /// RFC 3339.
    pub created_at: String,
    /// The taker's side.
    pub taker_type: String,
    /// The account's side.
    pub side: String,
    /// The account's order.
    pub order_id: u64,
    /// `maker` or `taker`.
    pub liquidity: String,
    /// Fee currency (what the account received).
    pub fee_currency: String,
    /// Fee charged.
    pub fee_amount: String,
}

impl OwnTradeJson {
    /// From a derived fill.
    pub fn new(m: &Market, catalog: &Catalog, t: &OwnTrade) -> OwnTradeJson {
        // The fee is in what the account received: base for a buy, quote for a sell.
        let fee_currency = match t.side {
            Side::Buy => &m.base,
            Side::Sell => &m.quote,
        };
        OwnTradeJson {
            id: t.id.0,
            price: price(m, t.price),
            amount: qty(m, t.qty),
            total: amount(catalog.currency(&m.quote), t.quote_amount),
            market: m.name.clone(),
            created_at: rfc3339(t.ts_ns),
            taker_type: side_name(t.taker_side).into(),
            side: side_name(t.side).into(),
            order_id: t.order.0,
            liquidity: if t.maker { "maker" } else { "taker" }.into(),
            fee_currency: fee_currency.clone(),
            fee_amount: amount(catalog.currency(fee_currency), t.fee),
        }
    }
}

/// A balance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BalanceJson {
    /// Currency code.
    pub currency: String,
    /// Available.
    pub balance: String,
    /// Held by open orders and pending withdrawals.
    pub locked: String,
}

/// Paging of lists.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MarketsQuery {
    /// Only markets with this base currency.
    pub base_unit: Option<String>,
    /// Only markets with this quote currency.
    pub quote_unit: Option<String>,
    /// Page, from 1.
    #[param(minimum = 1)]
    pub page: Option<usize>,
    /// Per page, at most 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Order book limits.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrderBookQuery {
    /// Ask levels, at most 1000 (default 20).
    #[param(minimum = 1, maximum = 1000)]
    pub asks_limit: Option<usize>,
    /// Bid levels, at most 1000 (default 20).
    #[param(minimum = 1, maximum = 1000)]
    pub bids_limit: Option<usize>,
}

/// Depth limit.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DepthQuery {
    /// Levels per side, at most 1000 (default 300).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Recent trades.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TradesQuery {
    /// At most 1000 (default 100); no more than the kept recent trades.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only trades before this Unix second.
    pub timestamp: Option<u64>,
    /// `desc` (default, newest first) or `asc`.
    #[param(pattern = "^(asc|desc)$")]
    pub order_by: Option<String>,
}

/// The k-line periods, in minutes (those `Period::from_minutes` takes).
fn kline_period() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .enum_values(Some(crate::market_data::kline::PERIODS_MIN))
        .build()
}

/// K-lines.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct KlineQuery {
    /// Minutes: 1, 5, 15, 30, 60, 120, 240, 360, 720, 1440, 4320 or 10080 (default 1).
    #[param(schema_with = kline_period)]
    pub period: Option<u32>,
    /// From this Unix second.
    pub time_from: Option<u64>,
    /// Up to this Unix second.
    pub time_to: Option<u64>,
    /// At most 10000 (default 30); the latest candles of the range.
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
}

/// Order list filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrdersQuery {
    /// Only this market.
    pub market: Option<String>,
    /// Only this state: `pending`, `wait`, `done`, `cancel`.
    #[param(pattern = "^(pending|wait|done|cancel)$")]
    pub state: Option<String>,
    /// Only this side.
    #[param(pattern = "^(buy|sell)$")]
    pub side: Option<String>,
    /// Per page, at most 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Page, from 1.
    #[param(minimum = 1)]
    pub page: Option<usize>,
    /// `desc` (default, newest first) or `asc`.
    #[param(pattern = "^(asc|desc)$")]
    pub order_by: Option<String>,
    /// Created at or after this Unix second.
    pub time_from: Option<u64>,
    /// Created before this Unix second.
    pub time_to: Option<u64>,
}

/// Own trades filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OwnTradesQuery {
    /// Only this market.
    pub market: Option<String>,
    /// Per page, at most 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Page, from 1.
    #[param(minimum = 1)]
    pub page: Option<usize>,
    /// `desc` (default) or `asc`.
    #[param(pattern = "^(asc|desc)$")]
    pub order_by: Option<String>,
    /// At or after this Unix second.
    pub time_from: Option<u64>,
    /// Before this Unix second.
    pub time_to: Option<u64>,
}

/// Cancel-all filters as a JSON body (the same fields as the query string).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelAllBody {
    /// Only this market.
    pub market: Option<String>,
    /// Only this side: `buy` or `sell`.
    #[schema(pattern = "^(buy|sell)$")]
    pub side: Option<String>,
}

/// Cancel-all filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CancelAllQuery {
    /// Only this market.
    pub market: Option<String>,
    /// Only this side.
    #[param(pattern = "^(buy|sell)$")]
    pub side: Option<String>,
}
