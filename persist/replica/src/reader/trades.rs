//! An account's fills, from the trades table (each trade is a fill of its maker and of its
//! taker).

use peregrine_hotpath::{AccountId, Amount, MarketId, OrderId, Price, Qty, Side, TradeId};

use super::row::TextRow;
use super::{QUERY_ROWS_MAX, high_water_seq, ts_literal};
use crate::db::Conn;
use crate::error::ReplicaError;

/// Which fills of an account a list wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradeFilter {
    /// Whose.
    pub account: AccountId,
    /// Only this market.
    pub market: Option<MarketId>,
    /// At or after, Unix ns.
    pub from_ns: u64,
    /// Before, Unix ns.
    pub to_ns: u64,
    /// Oldest first (else newest first).
    pub ascending: bool,
    /// Rows at most (capped at [`QUERY_ROWS_MAX`]).
    pub limit: usize,
}

/// One fill of one of the account's orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnTradeRow {
    /// Trade id.
    pub id: TradeId,
    /// Market.
    pub market: MarketId,
    /// The account's order.
    pub order: OrderId,
    /// The account's side.
    pub side: Side,
    /// Whether the account was the maker.
    pub maker: bool,
    /// The taker's side.
    pub taker_side: Side,
    /// Price.
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
    /// Quote minor units exchanged.
    pub quote_amount: Amount,
    /// The account's fee, in the currency it received.
    pub fee: Amount,
    /// Sequencer time, Unix ns.
    pub ts_ns: u64,
}

/// A list of fills and the sequence the replica is complete up to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradesPage {
    /// Last journal sequence replicated: later fills are not here yet.
    pub high_water_seq: u64,
    /// The fills, in the order asked (by trade id, the maker's before the taker's of a trade
    /// between two orders of the account).
    pub trades: Vec<OwnTradeRow>,
}

/// Which side of the trade the account is on.
#[derive(Clone, Copy)]
enum Role {
    Maker,
    Taker,
}

pub(super) async fn list(conn: &mut Conn, filter: TradeFilter) -> Result<TradesPage, ReplicaError> {
    let high_water_seq = high_water_seq(conn).await?;
    let limit = filter.limit.min(QUERY_ROWS_MAX);
    // One query per role, each through its own index; merged here.
    let mut trades = query_role(conn, &filter, Role::Maker, limit).await?;
    trades.extend(query_role(conn, &filter, Role::Taker, limit).await?);
    trades.sort_unstable_by_key(|t| (t.id, !t.maker));
    if !filter.ascending {
        trades.reverse();
    }
    trades.truncate(limit);
    Ok(TradesPage {
        high_water_seq,
        trades,
    })
}

async fn query_role(
    conn: &mut Conn,
    filter: &TradeFilter,
    role: Role,
    limit: usize,
) -> Result<Vec<OwnTradeRow>, ReplicaError> {
    let dialect = conn.dialect();
    let (account_column, order_column, fee_column) = match role {
        Role::Maker => ("maker_account_id", "maker_order_id", "maker_fee"),
        Role::Taker => ("taker_account_id", "taker_order_id", "taker_fee"),
    };
    let mut sql = String::from("SELECT ");
    let columns = [
        "trade_id",
        "market_id",
        order_column,
        "taker_side",
        "price",
        "qty",
        "quote_amount",
        fee_column,
    ];
    for column in columns {
        sql.push_str(&dialect.cast_text(column));
        sql.push_str(", ");
    }
    sql.push_str(&dialect.cast_text("ts_ns"));
    sql.push_str(&format!(
        " FROM trades WHERE {account_column} = {}",
        filter.account.0
    ));
    if let Some(market) = filter.market {
        sql.push_str(&format!(" AND market_id = {}", market.0));
    }
    if filter.from_ns > 0 {
        sql.push_str(&format!(" AND ts_ns >= {}", ts_literal(filter.from_ns)));
    }
    if filter.to_ns < u64::MAX {
        sql.push_str(&format!(" AND ts_ns < {}", ts_literal(filter.to_ns)));
    }
    let direction = if filter.ascending { "ASC" } else { "DESC" };
    sql.push_str(&format!(" ORDER BY trade_id {direction} LIMIT {limit}"));
    let rows = conn.query_text(&sql).await?;
    let mut out = Vec::with_capacity(rows.len());
    for values in &rows {
        let row = TextRow {
            what: "trades",
            values,
        };
        let taker_side = match row.text(3)? {
            "buy" => Side::Buy,
            "sell" => Side::Sell,
            other => return Err(ReplicaError::Config(format!("taker side `{other}`"))),
        };
        let (side, maker) = match (role, taker_side) {
            (Role::Taker, s) => (s, false),
            (Role::Maker, Side::Buy) => (Side::Sell, true),
            (Role::Maker, _) => (Side::Buy, true),
        };
        out.push(OwnTradeRow {
            id: TradeId(row.unsigned(0)?),
            market: MarketId(row.narrow(1)?),
            order: OrderId(row.unsigned(2)?),
            side,
            maker,
            taker_side,
            price: Price(row.unsigned(4)?),
            qty: Qty(row.unsigned(5)?),
            quote_amount: Amount(row.unsigned(6)?),
            fee: Amount(row.unsigned(7)?),
            ts_ns: row.unsigned(8)?,
        });
    }
    Ok(out)
}
