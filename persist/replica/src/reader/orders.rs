//! An account's orders, with what their fills add up to.

use peregrine_hotpath::{AccountId, Amount, ClientOrderId, MarketId, OrderId, Price, Qty, Side};

use super::row::TextRow;
use super::{QUERY_ROWS_MAX, high_water_seq, ts_literal};
use crate::db::Conn;
use crate::error::ReplicaError;
use crate::rows::OrderStatus;

/// Which orders of an account a list wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderFilter {
    /// Whose.
    pub account: AccountId,
    /// Only this market.
    pub market: Option<MarketId>,
    /// Only this side.
    pub side: Option<Side>,
    /// Only this status.
    pub status: Option<OrderStatus>,
    /// Created at or after, Unix ns.
    pub created_from_ns: u64,
    /// Created before, Unix ns.
    pub created_to_ns: u64,
    /// Oldest first (else newest first).
    pub ascending: bool,
    /// Rows at most (capped at [`QUERY_ROWS_MAX`]).
    pub limit: usize,
}

/// What an order's fills add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderFills {
    /// Fills.
    pub trades_count: u32,
    /// Quantity filled.
    pub executed_qty: Qty,
    /// Quote minor units exchanged over the fills.
    pub executed_quote: u128,
    /// The last fill's or state change's time, Unix ns (0 if unknown).
    pub last_ts_ns: u64,
}

/// One order as the replica has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderHistory {
    /// Engine id.
    pub order: OrderId,
    /// Owner.
    pub account: AccountId,
    /// Market.
    pub market: MarketId,
    /// Client id.
    pub client_order_id: ClientOrderId,
    /// Side.
    pub side: Side,
    /// `limit`, `market`, `stop_limit`, `stop_market` (from the command).
    pub order_type: Option<String>,
    /// `gtc`, `ioc`, `fok`, `post_only`.
    pub time_in_force: Option<String>,
    /// Stop trigger.
    pub trigger_price: Option<Price>,
    /// Quote budget of a market buy by budget.
    pub quote_budget: Option<Amount>,
    /// Quantity at acceptance.
    pub accepted_qty: Qty,
    /// Status as of the replica's high-water mark.
    pub status: OrderStatus,
    /// Current limit price (market orders: the protection price).
    pub price: Price,
    /// Quantity open (what was open when cancelled, for a cancelled order).
    pub open_qty: Qty,
    /// Acceptance time, Unix ns.
    pub created_ts_ns: u64,
    /// What its fills add up to: filled by [`ReplicaReader::orders`](super::ReplicaReader)
    /// callers through `fill_in`, and by the single-order lookups.
    pub fills: OrderFills,
}

/// A list of orders and the sequence the replica is complete up to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrdersPage {
    /// Last journal sequence replicated: later changes are not here yet.
    pub high_water_seq: u64,
    /// The orders, in the order asked, fills not yet summed.
    pub orders: Vec<OrderHistory>,
}

/// Columns of [`OrderHistory`] in `SELECT` order.
const COLUMNS: [&str; 13] = [
    "order_id",
    "account_id",
    "market_id",
    "client_order_id",
    "side",
    "order_type",
    "time_in_force",
    "trigger_price",
    "quote_budget",
    "accepted_qty",
    "status",
    "price",
    "open_qty",
];

fn select(conn: &Conn) -> String {
    let dialect = conn.dialect();
    let mut sql = String::from("SELECT ");
    for column in COLUMNS {
        sql.push_str(&dialect.cast_text(column));
        sql.push_str(", ");
    }
    sql.push_str(&dialect.cast_text("created_ts_ns"));
    sql.push_str(" FROM orders WHERE ");
    sql
}

fn parse(values: &[Option<String>]) -> Result<OrderHistory, ReplicaError> {
    let row = TextRow {
        what: "orders",
        values,
    };
    let side = match row.text(4)? {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        other => return Err(ReplicaError::Config(format!("order side `{other}`"))),
    };
    let status = OrderStatus::parse(row.text(10)?).ok_or_else(|| {
        ReplicaError::Config(format!("order status `{}`", row.opt_text(10).unwrap_or("")))
    })?;
    Ok(OrderHistory {
        order: OrderId(row.unsigned(0)?),
        account: AccountId(row.narrow(1)?),
        market: MarketId(row.narrow(2)?),
        client_order_id: ClientOrderId(row.u64_bits(3)?),
        side,
        order_type: row.opt_text(5).map(str::to_owned),
        time_in_force: row.opt_text(6).map(str::to_owned),
        trigger_price: row.opt_unsigned(7)?.map(Price),
        quote_budget: row.opt_unsigned(8)?.map(Amount),
        accepted_qty: Qty(row.unsigned(9)?),
        status,
        price: Price(row.unsigned(11)?),
        open_qty: Qty(row.unsigned(12)?),
        created_ts_ns: row.unsigned(13)?,
        fills: OrderFills::default(),
    })
}

pub(super) async fn list(conn: &mut Conn, filter: OrderFilter) -> Result<OrdersPage, ReplicaError> {
    let high_water_seq = high_water_seq(conn).await?;
    let mut sql = select(conn);
    sql.push_str(&format!("account_id = {}", filter.account.0));
    if let Some(market) = filter.market {
        sql.push_str(&format!(" AND market_id = {}", market.0));
    }
    if let Some(side) = filter.side {
        sql.push_str(match side {
            Side::Buy => " AND side = 'buy'",
            _ => " AND side = 'sell'",
        });
    }
    if let Some(status) = filter.status {
        // A fixed word of ours, never request text.
        sql.push_str(&format!(" AND status = '{}'", status.as_str()));
    }
    if filter.created_from_ns > 0 {
        sql.push_str(&format!(
            " AND created_ts_ns >= {}",
            ts_literal(filter.created_from_ns)
        ));
    }
    if filter.created_to_ns < u64::MAX {
        sql.push_str(&format!(
            " AND created_ts_ns < {}",
            ts_literal(filter.created_to_ns)
        ));
    }
    let direction = if filter.ascending { "ASC" } else { "DESC" };
    sql.push_str(&format!(
        " ORDER BY order_id {direction} LIMIT {}",
        filter.limit.min(QUERY_ROWS_MAX)
    ));
    let rows = conn.query_text(&sql).await?;
    let orders = rows.iter().map(|r| parse(r)).collect::<Result<_, _>>()?;
    Ok(OrdersPage {
        high_water_seq,
        orders,
    })
}

pub(super) async fn by_id(
    conn: &mut Conn,
    account: AccountId,
    id: OrderId,
) -> Result<Option<OrderHistory>, ReplicaError> {
    let sql = format!(
        "{}account_id = {} AND order_id = {}",
        select(conn),
        account.0,
        id.0
    );
    one(conn, &sql).await
}

pub(super) async fn by_client(
    conn: &mut Conn,
    account: AccountId,
    client_order_id: ClientOrderId,
) -> Result<Option<OrderHistory>, ReplicaError> {
    // SQLite holds ids above i64::MAX as their i64 bits (see the statements).
    let stored = match conn.dialect() {
        crate::Dialect::Sqlite => i128::from(client_order_id.0 as i64),
        _ => i128::from(client_order_id.0),
    };
    let sql = format!(
        "{}account_id = {} AND client_order_id = {stored} ORDER BY order_id DESC LIMIT 1",
        select(conn),
        account.0,
    );
    one(conn, &sql).await
}

async fn one(conn: &mut Conn, sql: &str) -> Result<Option<OrderHistory>, ReplicaError> {
    let rows = conn.query_text(sql).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut orders = [parse(first)?];
    fill_in(conn, &mut orders).await?;
    let [order] = orders;
    Ok(Some(order))
}

/// Sums the fills of `orders` (at most [`super::PAGE_ROWS_MAX`] per call) and finds when each
/// last changed.
pub(super) async fn fill_in(
    conn: &mut Conn,
    orders: &mut [OrderHistory],
) -> Result<(), ReplicaError> {
    if orders.is_empty() {
        return Ok(());
    }
    if orders.len() > super::PAGE_ROWS_MAX {
        return Err(ReplicaError::Config(format!(
            "{} orders to sum at once; at most {}",
            orders.len(),
            super::PAGE_ROWS_MAX
        )));
    }
    let ids = orders
        .iter()
        .map(|o| o.order.0.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let dialect = conn.dialect();
    let text = |e: &str| dialect.cast_text(e);
    // Both sides through their own index (trades_by_maker_order, trades_by_taker_order).
    let fills_sql = format!(
        "SELECT {}, {}, {}, {}, {} FROM (\
           SELECT maker_order_id AS order_id, qty, quote_amount, ts_ns FROM trades \
             WHERE maker_order_id IN ({ids}) \
           UNION ALL \
           SELECT taker_order_id AS order_id, qty, quote_amount, ts_ns FROM trades \
             WHERE taker_order_id IN ({ids})\
         ) fills GROUP BY order_id",
        text("order_id"),
        text("COUNT(*)"),
        text("SUM(qty)"),
        text("SUM(quote_amount)"),
        text("MAX(ts_ns)"),
    );
    for values in &conn.query_text(&fills_sql).await? {
        let row = TextRow {
            what: "fills",
            values,
        };
        let id = OrderId(row.unsigned(0)?);
        let fills = OrderFills {
            trades_count: row.narrow(1)?,
            executed_qty: Qty(row.unsigned(2)?),
            executed_quote: u128::try_from(row.int(3)?)
                .map_err(|_| ReplicaError::Config("negative fill sum".to_owned()))?,
            last_ts_ns: row.unsigned(4)?,
        };
        for order in orders.iter_mut().filter(|o| o.order == id) {
            order.fills = fills;
        }
    }
    let changed_sql = format!(
        "SELECT {}, {} FROM order_events WHERE order_id IN ({ids}) GROUP BY order_id",
        text("order_id"),
        text("MAX(ts_ns)"),
    );
    for values in &conn.query_text(&changed_sql).await? {
        let row = TextRow {
            what: "order_events",
            values,
        };
        let id = OrderId(row.unsigned(0)?);
        let ts_ns = row.unsigned(1)?;
        for order in orders.iter_mut().filter(|o| o.order == id) {
            order.fills.last_ts_ns = order.fills.last_ts_ns.max(ts_ns);
        }
    }
    Ok(())
}
