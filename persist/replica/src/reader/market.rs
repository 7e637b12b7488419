//! A market's public trades, from the trades table, for rebuilding the REST bridge's market
//! data (recent trades, k-lines, tickers) at start. Every query is bounded by a journal
//! sequence: the caller takes the trades of commands up to the one its live feed starts after,
//! and no others, so no trade is counted twice or missed.

use peregrine_hotpath::{Amount, MarketId, Price, Qty, Side, TradeId};

use super::QUERY_ROWS_MAX;
use super::row::TextRow;
use crate::db::Conn;
use crate::error::ReplicaError;

/// One trade as the public sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketTradeRow {
    /// Trade id (increases with the journal sequence).
    pub id: TradeId,
    /// The journal sequence of the command that made it.
    pub seq: u64,
    /// Market.
    pub market: MarketId,
    /// Price.
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
    /// Quote minor units exchanged.
    pub quote_amount: Amount,
    /// The taker's side.
    pub taker_side: Side,
    /// Sequencer time, Unix ns.
    pub ts_ns: u64,
}

const COLUMNS: [&str; 8] = [
    "trade_id",
    "seq",
    "market_id",
    "price",
    "qty",
    "quote_amount",
    "taker_side",
    "ts_ns",
];

/// Trades of every market with an id above `after` and a sequence at most `through_seq`, oldest
/// first, at most `limit` (capped at [`QUERY_ROWS_MAX`]): one page of a scan by primary key.
pub(super) async fn after(
    conn: &mut Conn,
    after: TradeId,
    through_seq: u64,
    limit: usize,
) -> Result<Vec<MarketTradeRow>, ReplicaError> {
    let filter = format!(
        "trade_id > {} AND seq <= {} ORDER BY trade_id ASC",
        sql_u64(after.0),
        sql_u64(through_seq)
    );
    select(conn, &filter, limit).await
}

/// `market`'s trades with an id below `before` and a sequence at most `through_seq`, newest
/// first, at most `limit` (capped at [`QUERY_ROWS_MAX`]); through the market's index.
pub(super) async fn before_in_market(
    conn: &mut Conn,
    market: MarketId,
    before: TradeId,
    through_seq: u64,
    limit: usize,
) -> Result<Vec<MarketTradeRow>, ReplicaError> {
    let filter = format!(
        "market_id = {} AND trade_id < {} AND seq <= {} ORDER BY trade_id DESC",
        market.0,
        sql_u64(before.0),
        sql_u64(through_seq)
    );
    select(conn, &filter, limit).await
}

/// The id of the trade `newer` places below the newest with a sequence at most `through_seq`
/// (0: the newest itself); `None` when there are not that many.
pub(super) async fn id_below_newest(
    conn: &mut Conn,
    through_seq: u64,
    newer: usize,
) -> Result<Option<TradeId>, ReplicaError> {
    let sql = format!(
        "SELECT {} FROM trades WHERE seq <= {} ORDER BY trade_id DESC LIMIT 1 OFFSET {newer}",
        conn.dialect().cast_text("trade_id"),
        sql_u64(through_seq)
    );
    let rows = conn.query_text(&sql).await?;
    match rows.first() {
        None => Ok(None),
        Some(values) => {
            let row = TextRow {
                what: "trades",
                values,
            };
            Ok(Some(TradeId(row.unsigned(0)?)))
        }
    }
}

async fn select(
    conn: &mut Conn,
    filter: &str,
    limit: usize,
) -> Result<Vec<MarketTradeRow>, ReplicaError> {
    let limit = limit.min(QUERY_ROWS_MAX);
    let dialect = conn.dialect();
    let columns: Vec<String> = COLUMNS.iter().map(|c| dialect.cast_text(c)).collect();
    let sql = format!(
        "SELECT {} FROM trades WHERE {filter} LIMIT {limit}",
        columns.join(", ")
    );
    let rows = conn.query_text(&sql).await?;
    let mut out = Vec::with_capacity(rows.len());
    for values in &rows {
        out.push(parse(&TextRow {
            what: "trades",
            values,
        })?);
    }
    debug_assert!(out.len() <= limit);
    Ok(out)
}

fn parse(row: &TextRow<'_>) -> Result<MarketTradeRow, ReplicaError> {
    let taker_side = match row.text(6)? {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        other => return Err(ReplicaError::Config(format!("taker side `{other}`"))),
    };
    Ok(MarketTradeRow {
        id: TradeId(row.unsigned(0)?),
        seq: row.unsigned(1)?,
        market: MarketId(row.narrow(2)?),
        price: Price(row.unsigned(3)?),
        qty: Qty(row.unsigned(4)?),
        quote_amount: Amount(row.unsigned(5)?),
        taker_side,
        ts_ns: row.unsigned(7)?,
    })
}

/// A bound as an SQL literal: SQLite's integers are signed 64-bit; ids and sequences stay far
/// below `i64::MAX`, and a larger bound means "all" either way.
fn sql_u64(value: u64) -> u64 {
    value.min(i64::MAX as u64)
}
