//! Fee revenue and daily volume from the replica's trades (`GET /control/v1/reports/fees`,
//! `GET /control/v1/reports/volume`). A buyer pays its fee in the base currency, a seller in
//! the quote currency: each market's fees are two amounts, and the per-currency totals add
//! every market's share of that currency.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use peregrine_core::catalog::{Catalog, Market};
use peregrine_hotpath::MarketId;
use peregrine_replica::reader::{DAILY_ROWS_MAX, NS_PER_DAY};
use peregrine_replica::{MarketTotals, ReplicaReader, TradeRange};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::format::{Format, Tabular, date_text, decimal, parse_date, reply};
use super::{admit, catalog, parameters};
use crate::access::Client;
use crate::api::ControlState;
use crate::error::{ControlError, ErrorBody};

/// The longest time range of a fee report, ms (a leap year).
pub const FEE_RANGE_MS_MAX: u64 = 366 * 86_400_000;
/// The most days of a volume report.
pub const VOLUME_DAYS_MAX: u64 = 366;
/// Nanoseconds per millisecond.
const NS_PER_MS: u64 = 1_000_000;

/// A fee report's range and market.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FeesQuery {
    /// At or after, Unix ms.
    #[param(format = "uint64", minimum = 0, maximum = 18446744073709_u64)]
    from_ms: u64,
    /// Before, Unix ms (at most 366 days after `from_ms`).
    #[param(format = "uint64", minimum = 0, maximum = 18446744073709_u64)]
    to_ms: u64,
    /// Only this market, e.g. `btcusd`.
    market: Option<String>,
    /// `json` (default) or `csv`; without it, `Accept: text/csv` asks for CSV.
    #[param(inline)]
    format: Option<Format>,
}

/// A volume report's dates and market.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VolumeQuery {
    /// The first day, UTC, `YYYY-MM-DD`.
    from: String,
    /// The last day (included), UTC, `YYYY-MM-DD`; at most 366 days from `from`.
    to: String,
    /// Only this market, e.g. `btcusd`.
    market: Option<String>,
    /// `json` (default) or `csv`; without it, `Accept: text/csv` asks for CSV.
    #[param(inline)]
    format: Option<Format>,
}

/// One market's fees over the range.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MarketFeesJson {
    /// Market name.
    market: String,
    /// Its base currency.
    base: String,
    /// Its quote currency.
    quote: String,
    /// Trades.
    trades: u64,
    /// Fees buyers paid, in the base currency's precision.
    base_fees: String,
    /// Fees sellers paid, in the quote currency's precision.
    quote_fees: String,
}

/// One currency's fees over every market.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CurrencyFeesJson {
    /// Currency code.
    currency: String,
    /// Decimals of its minor unit.
    precision: u32,
    /// Fees collected, summed over every market.
    fees: String,
}

/// Fee revenue over a time range.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FeesJson {
    /// Last journal sequence replicated: later trades are not counted.
    high_water_seq: u64,
    /// At or after, Unix ms.
    from_ms: u64,
    /// Before, Unix ms.
    to_ms: u64,
    /// Markets with trades in the range, by id.
    markets: Vec<MarketFeesJson>,
    /// Every currency of the catalog, in its order.
    currencies: Vec<CurrencyFeesJson>,
}

/// One market's trades of one day.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DailyVolumeJson {
    /// The UTC day, `YYYY-MM-DD`.
    date: String,
    /// Market name.
    market: String,
    /// Its base currency.
    base: String,
    /// Its quote currency.
    quote: String,
    /// Trades.
    trades: u64,
    /// Base exchanged, in its precision.
    base_volume: String,
    /// Quote exchanged, in its precision.
    quote_volume: String,
}

/// Daily volume over a date range.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VolumeJson {
    /// Last journal sequence replicated: later trades are not counted.
    high_water_seq: u64,
    /// The first day.
    from: String,
    /// The last day (included).
    to: String,
    /// Days and markets with trades, by day then market id.
    rows: Vec<DailyVolumeJson>,
    /// More (day, market) groups than one report holds (20 000): narrow the range.
    truncated: bool,
}

impl Tabular for FeesJson {
    const NAME: &'static str = "fees";
    /// Long form: a row per market and currency (`group` = `market`), then per currency
    /// over every market (`group` = `total`, `market` and `trades` empty).
    const COLUMNS: &'static [&'static str] =
        &["group", "market", "currency", "precision", "trades", "fees"];

    fn rows(&self) -> Vec<Vec<String>> {
        let precision = |code: &str| {
            self.currencies
                .iter()
                .find(|c| c.currency == code)
                .map_or_else(String::new, |c| c.precision.to_string())
        };
        let mut rows = Vec::with_capacity(2 * self.markets.len() + self.currencies.len());
        for m in &self.markets {
            for (currency, fees) in [(&m.base, &m.base_fees), (&m.quote, &m.quote_fees)] {
                rows.push(vec![
                    "market".to_owned(),
                    m.market.clone(),
                    currency.clone(),
                    precision(currency),
                    m.trades.to_string(),
                    fees.clone(),
                ]);
            }
        }
        for c in &self.currencies {
            rows.push(vec![
                "total".to_owned(),
                String::new(),
                c.currency.clone(),
                c.precision.to_string(),
                String::new(),
                c.fees.clone(),
            ]);
        }
        rows
    }
}

impl Tabular for VolumeJson {
    const NAME: &'static str = "volume";
    const COLUMNS: &'static [&'static str] = &[
        "date",
        "market",
        "base",
        "quote",
        "trades",
        "base_volume",
        "quote_volume",
    ];

    fn rows(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| {
                vec![
                    r.date.clone(),
                    r.market.clone(),
                    r.base.clone(),
                    r.quote.clone(),
                    r.trades.to_string(),
                    r.base_volume.clone(),
                    r.quote_volume.clone(),
                ]
            })
            .collect()
    }
}

fn market_filter(catalog: &Catalog, name: Option<&str>) -> Result<Option<MarketId>, ControlError> {
    match name.filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(name) => catalog
            .market(name)
            .map(|m| Some(m.spec.market))
            .ok_or_else(|| ControlError::UnknownMarket(name.to_owned())),
    }
}

fn replica(state: &ControlState) -> Result<&ReplicaReader, ControlError> {
    state
        .replica
        .as_deref()
        .ok_or_else(|| ControlError::ReplicaUnavailable("the replica is not enabled".to_owned()))
}

/// The fee report's range in ns, or why not (422).
fn fee_range(q: &FeesQuery, market: Option<MarketId>) -> Result<TradeRange, ControlError> {
    let bad = |why: String| ControlError::Unprocessable(why);
    if q.from_ms >= q.to_ms {
        return Err(bad(format!(
            "from_ms {} must be before to_ms {}",
            q.from_ms, q.to_ms
        )));
    }
    if q.to_ms - q.from_ms > FEE_RANGE_MS_MAX {
        return Err(bad(format!(
            "the range is {} ms: at most {FEE_RANGE_MS_MAX} (366 days)",
            q.to_ms - q.from_ms
        )));
    }
    let ns = |ms: u64, name: &str| {
        ms.checked_mul(NS_PER_MS)
            .ok_or_else(|| bad(format!("{name}: {ms} is too large")))
    };
    Ok(TradeRange {
        market,
        from_ns: ns(q.from_ms, "from_ms")?,
        to_ns: ns(q.to_ms, "to_ms")?,
    })
}

/// The precision of `code` (0 when the catalog lacks it: never for a market's currencies).
fn precision_of(catalog: &Catalog, code: &str) -> u32 {
    catalog.currency(code).map_or(0, |c| c.scale.scale)
}

fn fees_json(catalog: &Catalog, totals: &[MarketTotals]) -> Vec<MarketFeesJson> {
    totals
        .iter()
        .filter_map(|t| {
            let market: &Market = catalog.market_by_id(t.market)?;
            Some(MarketFeesJson {
                market: market.name.clone(),
                base: market.base.clone(),
                quote: market.quote.clone(),
                trades: t.trades,
                base_fees: decimal(t.base_fees, precision_of(catalog, &market.base)),
                quote_fees: decimal(t.quote_fees, precision_of(catalog, &market.quote)),
            })
        })
        .collect()
}

fn currency_fees(catalog: &Catalog, totals: &[MarketTotals]) -> Vec<CurrencyFeesJson> {
    let mut by_code: BTreeMap<&str, u128> = BTreeMap::new();
    for t in totals {
        if let Some(market) = catalog.market_by_id(t.market) {
            *by_code.entry(market.base.as_str()).or_default() += t.base_fees;
            *by_code.entry(market.quote.as_str()).or_default() += t.quote_fees;
        }
    }
    catalog
        .currencies()
        .iter()
        .map(|c| CurrencyFeesJson {
            currency: c.code.clone(),
            precision: c.scale.scale,
            fees: decimal(
                by_code.get(c.code.as_str()).copied().unwrap_or(0),
                c.scale.scale,
            ),
        })
        .collect()
}

/// Fee revenue per market and per currency over `[from_ms, to_ms)` (at most 366 days), from
/// the replica's trades: buyers pay in the base currency, sellers in the quote currency.
#[utoipa::path(get, path = "/control/v1/reports/fees", tag = "control",
    params(FeesQuery), security(("bearer" = [])),
    responses((status = 200, content((FeesJson = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn fees(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    query: Result<Query<FeesQuery>, QueryRejection>,
) -> Result<Response, ControlError> {
    admit(&state, &client, &headers, "fees").await?;
    let q = parameters(query)?;
    let format = Format::wanted(q.format, &headers);
    let catalog = catalog(&state);
    let catalog = &*catalog;
    let range = fee_range(&q, market_filter(catalog, q.market.as_deref())?)?;
    let summed = replica(&state)?
        .market_totals(range)
        .await
        .map_err(|e| ControlError::ReplicaUnavailable(e.to_string()))?;
    let report = FeesJson {
        high_water_seq: summed.high_water_seq,
        from_ms: q.from_ms,
        to_ms: q.to_ms,
        markets: fees_json(catalog, &summed.rows),
        currencies: currency_fees(catalog, &summed.rows),
    };
    Ok(reply(format, report))
}

/// The volume report's days (first, last included) and range in ns, or why not (422).
fn volume_range(
    q: &VolumeQuery,
    market: Option<MarketId>,
) -> Result<(u64, u64, TradeRange), ControlError> {
    let bad = |why: String| ControlError::Unprocessable(why);
    let first = parse_date(&q.from).map_err(|why| bad(format!("from: {why}")))?;
    let last = parse_date(&q.to).map_err(|why| bad(format!("to: {why}")))?;
    if first > last {
        return Err(bad(format!("from {} is after to {}", q.from, q.to)));
    }
    if last - first >= VOLUME_DAYS_MAX {
        return Err(bad(format!(
            "{} days: at most {VOLUME_DAYS_MAX}",
            last - first + 1
        )));
    }
    // Years up to 2500: a day's nanoseconds stay below 2^64.
    let range = TradeRange {
        market,
        from_ns: first * NS_PER_DAY,
        to_ns: (last + 1) * NS_PER_DAY,
    };
    Ok((first, last, range))
}

/// Base and quote volume and trade count per market and UTC day, from `from` to `to`
/// (included, at most 366 days), from the replica's trades; days without trades are absent.
#[utoipa::path(get, path = "/control/v1/reports/volume", tag = "control",
    params(VolumeQuery), security(("bearer" = [])),
    responses((status = 200, content((VolumeJson = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn volume(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    query: Result<Query<VolumeQuery>, QueryRejection>,
) -> Result<Response, ControlError> {
    admit(&state, &client, &headers, "volume").await?;
    let q = parameters(query)?;
    let format = Format::wanted(q.format, &headers);
    let catalog = catalog(&state);
    let catalog = &*catalog;
    let (first, last, range) = volume_range(&q, market_filter(catalog, q.market.as_deref())?)?;
    let summed = replica(&state)?
        .daily_volume(range)
        .await
        .map_err(|e| ControlError::ReplicaUnavailable(e.to_string()))?;
    let truncated = summed.rows.len() >= DAILY_ROWS_MAX;
    let rows = summed
        .rows
        .iter()
        .filter_map(|d| {
            let market = catalog.market_by_id(d.totals.market)?;
            Some(DailyVolumeJson {
                date: date_text(d.day),
                market: market.name.clone(),
                base: market.base.clone(),
                quote: market.quote.clone(),
                trades: d.totals.trades,
                base_volume: decimal(d.totals.base_volume, precision_of(catalog, &market.base)),
                quote_volume: decimal(d.totals.quote_volume, precision_of(catalog, &market.quote)),
            })
        })
        .collect();
    let report = VolumeJson {
        high_water_seq: summed.high_water_seq,
        from: date_text(first),
        to: date_text(last),
        rows,
        truncated,
    };
    Ok(reply(format, report))
}
