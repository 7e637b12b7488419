//! Sums over the trades table for the operators' reports: fee revenue and volume per market
//! over a time range, and volume per market and day. Each sum is exact (integers of minor
//! units, `DECIMAL` on MySQL); SQLite's 64-bit `SUM` fails the query rather than wrap.
//!
//! A trade's buyer pays its fee in the base currency and its seller in the quote currency
//! (each in the currency it received): with `taker_side` the fee columns split by currency.
//! Every sum stops at the high-water mark read first, so a report is one replicated state.
//! There is no index on `ts_ns`: a range is a scan of the trades table (or of one market's,
//! by its index), acceptable for an operator's report, never for a request path.

use peregrine_hotpath::MarketId;

use super::high_water_seq;
use super::row::TextRow;
use super::ts_literal;
use crate::db::Conn;
use crate::dialect::Dialect;
use crate::error::ReplicaError;

/// Nanoseconds in a UTC day.
pub const NS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// Groups (market, day) one daily-volume query returns at most.
pub const DAILY_ROWS_MAX: usize = 20_000;

/// Groups (markets) one totals query returns at most.
pub const MARKET_ROWS_MAX: usize = 10_000;

/// Which trades a report sums: `[from_ns, to_ns)`, one market or all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TradeRange {
    /// Only this market.
    pub market: Option<MarketId>,
    /// At or after, Unix ns.
    pub from_ns: u64,
    /// Before, Unix ns.
    pub to_ns: u64,
}

/// One market's trades summed over a range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarketTotals {
    /// Market.
    pub market: MarketId,
    /// Trades.
    pub trades: u64,
    /// Base minor units exchanged.
    pub base_volume: u128,
    /// Quote minor units exchanged.
    pub quote_volume: u128,
    /// Fees paid by buyers, base minor units.
    pub base_fees: u128,
    /// Fees paid by sellers, quote minor units.
    pub quote_fees: u128,
}

/// One market's trades of one UTC day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DailyVolume {
    /// Days since 1970-01-01 (UTC).
    pub day: u64,
    /// What the day's trades add up to (fees included).
    pub totals: MarketTotals,
}

/// Sums with the high-water mark they stop at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summed<T> {
    /// Last journal sequence replicated: later trades are not counted.
    pub high_water_seq: u64,
    /// The groups, ascending (by day then market, or by market).
    pub rows: Vec<T>,
}

/// The summed columns, after the grouping ones: trades, base and quote volume, buyers' fees
/// (base), sellers' fees (quote).
const SUMS: [&str; 5] = [
    "COUNT(*)",
    "SUM(base_amount)",
    "SUM(quote_amount)",
    "SUM(CASE WHEN taker_side = 'buy' THEN taker_fee ELSE maker_fee END)",
    "SUM(CASE WHEN taker_side = 'buy' THEN maker_fee ELSE taker_fee END)",
];

fn where_clause(range: &TradeRange, high_water_seq: u64) -> String {
    assert!(
        range.from_ns < range.to_ns,
        "an empty range is the caller's 422"
    );
    let mut sql = format!(
        " FROM trades WHERE seq <= {high_water_seq} AND ts_ns >= {} AND ts_ns < {}",
        ts_literal(range.from_ns),
        ts_literal(range.to_ns)
    );
    if let Some(market) = range.market {
        sql.push_str(&format!(" AND market_id = {}", market.0));
    }
    sql
}

fn totals(row: &TextRow<'_>, first: usize, market: MarketId) -> Result<MarketTotals, ReplicaError> {
    let sum = |index: usize| -> Result<u128, ReplicaError> {
        u128::try_from(row.int(first + index)?)
            .map_err(|_| ReplicaError::Config(format!("{} sum {index} is negative", row.what)))
    };
    Ok(MarketTotals {
        market,
        trades: row.unsigned(first)?,
        base_volume: sum(1)?,
        quote_volume: sum(2)?,
        base_fees: sum(3)?,
        quote_fees: sum(4)?,
    })
}

fn sums_text(dialect: Dialect) -> String {
    let texts: Vec<String> = SUMS.iter().map(|sum| dialect.cast_text(sum)).collect();
    texts.join(", ")
}

/// Each market's trades in `range`, summed, by market ascending.
pub(super) async fn market_totals(
    conn: &mut Conn,
    range: TradeRange,
) -> Result<Summed<MarketTotals>, ReplicaError> {
    let high_water_seq = high_water_seq(conn).await?;
    let dialect = conn.dialect();
    let sql = format!(
        "SELECT {}, {}{} GROUP BY market_id ORDER BY market_id LIMIT {MARKET_ROWS_MAX}",
        dialect.cast_text("market_id"),
        sums_text(dialect),
        where_clause(&range, high_water_seq),
    );
    let rows = conn.query_text(&sql).await?;
    let mut out = Vec::with_capacity(rows.len());
    for values in &rows {
        let row = TextRow {
            what: "market totals",
            values,
        };
        out.push(totals(&row, 1, MarketId(row.narrow(0)?))?);
    }
    Ok(Summed {
        high_water_seq,
        rows: out,
    })
}

/// Each market's trades in `range` per UTC day, summed, by day then market ascending.
pub(super) async fn daily_volume(
    conn: &mut Conn,
    range: TradeRange,
) -> Result<Summed<DailyVolume>, ReplicaError> {
    let high_water_seq = high_water_seq(conn).await?;
    let dialect = conn.dialect();
    // Integer division: MySQL's `/` is a decimal one.
    let day = match dialect {
        Dialect::MySql => format!("ts_ns DIV {NS_PER_DAY}"),
        Dialect::Sqlite => format!("ts_ns / {NS_PER_DAY}"),
    };
    let sql = format!(
        "SELECT {}, {}, {}{} GROUP BY {day}, market_id ORDER BY {day}, market_id \
         LIMIT {DAILY_ROWS_MAX}",
        dialect.cast_text(&day),
        dialect.cast_text("market_id"),
        sums_text(dialect),
        where_clause(&range, high_water_seq),
    );
    let rows = conn.query_text(&sql).await?;
    let mut out = Vec::with_capacity(rows.len());
    for values in &rows {
        let row = TextRow {
            what: "daily volume",
            values,
        };
        out.push(DailyVolume {
            day: row.unsigned(0)?,
            totals: totals(&row, 2, MarketId(row.narrow(1)?))?,
        });
    }
    Ok(Summed {
        high_water_seq,
        rows: out,
    })
}
