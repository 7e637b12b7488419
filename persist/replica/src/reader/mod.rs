//! Reads history back from the replica for the REST bridge: an account's ledger entries (its
//! transactions), orders and trades, as of the replica's high-water mark. One connection,
//! opened on first use and reopened after an error; queries are built from integers and fixed
//! words only (ids, limits, enum names), never from request text.

mod ledger;
mod market;
mod orders;
mod reports;
mod row;
mod trades;
mod volumes;

use peregrine_hotpath::{AccountId, ClientOrderId, CurrencyId, MarketId, OrderId, TradeId};
use tokio::sync::{Mutex, MutexGuard};

use crate::db::Conn;
use crate::error::ReplicaError;

pub use ledger::{LedgerEntry, LedgerPage};
pub use market::MarketTradeRow;
pub use orders::{OrderFills, OrderFilter, OrderHistory, OrdersPage};
pub use reports::{
    DAILY_ROWS_MAX, DailyVolume, MARKET_ROWS_MAX, MarketTotals, NS_PER_DAY, Summed, TradeRange,
};
pub use trades::{OwnTradeRow, TradeFilter, TradesPage};
pub use volumes::AccountVolume;

/// Rows one query may return, at most.
pub const PAGE_ROWS_MAX: usize = 1_000;

/// Rows a list query may reach into its result (offset plus page), at most: deeper paging
/// would make each request scan and sort ever more rows; narrow by time instead.
pub const LIST_DEPTH_ROWS_MAX: usize = 10_000;

/// Rows one list query may fetch, at most: the list depth plus what the caller's own, newer
/// copy of the same history may shadow.
pub const QUERY_ROWS_MAX: usize = 4 * LIST_DEPTH_ROWS_MAX;

/// A reader of the replica.
#[derive(Debug)]
pub struct ReplicaReader {
    database_url: String,
    conn: Mutex<Option<Conn>>,
}

impl ReplicaReader {
    /// A reader of the replica at `database_url` (connected on first use).
    pub fn new(database_url: impl Into<String>) -> ReplicaReader {
        ReplicaReader {
            database_url: database_url.into(),
            conn: Mutex::new(None),
        }
    }

    /// `account`'s ledger entries (optionally in one currency), by sequence, `offset` rows in,
    /// at most `limit` (capped at [`PAGE_ROWS_MAX`]).
    pub async fn ledger(
        &self,
        account: AccountId,
        currency: Option<CurrencyId>,
        ascending: bool,
        offset: usize,
        limit: usize,
    ) -> Result<LedgerPage, ReplicaError> {
        self.with_conn(async |conn| {
            ledger::query(conn, account, currency, ascending, offset, limit).await
        })
        .await
    }

    /// `account`'s orders that pass `filter`, the first `filter.limit` in its order.
    pub async fn orders(&self, filter: OrderFilter) -> Result<OrdersPage, ReplicaError> {
        self.with_conn(async |conn| orders::list(conn, filter).await)
            .await
    }

    /// Sums the fills of `orders` (from [`ReplicaReader::orders`]; at most [`PAGE_ROWS_MAX`])
    /// and finds when each last changed.
    pub async fn fill_in(&self, orders: &mut [OrderHistory]) -> Result<(), ReplicaError> {
        self.with_conn(async |conn| orders::fill_in(conn, orders).await)
            .await
    }

    /// `account`'s order `id`, if the replica has it.
    pub async fn order(
        &self,
        account: AccountId,
        id: OrderId,
    ) -> Result<Option<OrderHistory>, ReplicaError> {
        self.with_conn(async |conn| orders::by_id(conn, account, id).await)
            .await
    }

    /// `account`'s most recent order with client id `client_order_id`, if the replica has one.
    pub async fn order_by_client(
        &self,
        account: AccountId,
        client_order_id: ClientOrderId,
    ) -> Result<Option<OrderHistory>, ReplicaError> {
        self.with_conn(async |conn| orders::by_client(conn, account, client_order_id).await)
            .await
    }

    /// `account`'s fills that pass `filter`, the first `filter.limit` in its order.
    pub async fn trades(&self, filter: TradeFilter) -> Result<TradesPage, ReplicaError> {
        self.with_conn(async |conn| trades::list(conn, filter).await)
            .await
    }

    /// The last journal sequence the replica holds (0 before the first).
    pub async fn high_water_seq(&self) -> Result<u64, ReplicaError> {
        self.with_conn(async |conn| high_water_seq(conn).await)
            .await
    }

    /// Public trades of every market with an id above `after` and a sequence at most
    /// `through_seq`, oldest first, at most `limit` (capped at [`QUERY_ROWS_MAX`]).
    pub async fn market_trades_after(
        &self,
        after: TradeId,
        through_seq: u64,
        limit: usize,
    ) -> Result<Vec<MarketTradeRow>, ReplicaError> {
        self.with_conn(async |conn| market::after(conn, after, through_seq, limit).await)
            .await
    }

    /// `market`'s public trades with an id below `before` and a sequence at most
    /// `through_seq`, newest first, at most `limit` (capped at [`QUERY_ROWS_MAX`]).
    pub async fn market_trades_before(
        &self,
        market: MarketId,
        before: TradeId,
        through_seq: u64,
        limit: usize,
    ) -> Result<Vec<MarketTradeRow>, ReplicaError> {
        self.with_conn(async |conn| {
            market::before_in_market(conn, market, before, through_seq, limit).await
        })
        .await
    }

    /// The id of the trade `newer` places below the newest of every market with a sequence at
    /// most `through_seq` (0: the newest); `None` when there are not that many trades.
    pub async fn trade_id_below_newest(
        &self,
        through_seq: u64,
        newer: usize,
    ) -> Result<Option<TradeId>, ReplicaError> {
        self.with_conn(async |conn| market::id_below_newest(conn, through_seq, newer).await)
            .await
    }

    /// Each market's trades in `range` summed (count, volumes, fees by currency), by market,
    /// as of the high-water mark: for the operators' fee revenue report.
    pub async fn market_totals(
        &self,
        range: TradeRange,
    ) -> Result<Summed<MarketTotals>, ReplicaError> {
        self.with_conn(async |conn| reports::market_totals(conn, range).await)
            .await
    }

    /// [`ReplicaReader::market_totals`] per UTC day, by day then market (at most
    /// [`DAILY_ROWS_MAX`] groups): for the operators' daily volume report.
    pub async fn daily_volume(
        &self,
        range: TradeRange,
    ) -> Result<Summed<DailyVolume>, ReplicaError> {
        self.with_conn(async |conn| reports::daily_volume(conn, range).await)
            .await
    }

    /// The traded volume of each account above `after` in `markets` since `since_ns` (maker and
    /// taker both count), by account, at most `limit` (capped at [`QUERY_ROWS_MAX`]).
    pub async fn account_volumes(
        &self,
        markets: &[MarketId],
        since_ns: u64,
        after: AccountId,
        limit: usize,
    ) -> Result<Vec<AccountVolume>, ReplicaError> {
        self.with_conn(async |conn| {
            volumes::by_account(conn, markets, since_ns, after, limit).await
        })
        .await
    }

    /// Runs `query` on the connection (opened first if needed); drops the connection when it
    /// fails, so that the next call reconnects.
    async fn with_conn<T>(
        &self,
        query: impl AsyncFnOnce(&mut Conn) -> Result<T, ReplicaError>,
    ) -> Result<T, ReplicaError> {
        let mut guard = self.connected().await?;
        let result = match guard.as_mut() {
            Some(conn) => query(conn).await,
            None => Err(ReplicaError::Config("no replica connection".to_owned())),
        };
        forget_on_error(&mut guard, result)
    }

    /// The connection, opened first if needed.
    async fn connected(&self) -> Result<MutexGuard<'_, Option<Conn>>, ReplicaError> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = Some(Conn::connect(&self.database_url).await?);
        }
        Ok(guard)
    }
}

/// Drops the connection after a failed query, so that the next call reconnects.
fn forget_on_error<T>(
    guard: &mut MutexGuard<'_, Option<Conn>>,
    result: Result<T, ReplicaError>,
) -> Result<T, ReplicaError> {
    if result.is_err() {
        **guard = None;
    }
    result
}

/// The last journal sequence the replica holds.
async fn high_water_seq(conn: &mut Conn) -> Result<u64, ReplicaError> {
    let sql = format!(
        "SELECT {} FROM replication_state WHERE id = 1",
        conn.dialect().cast_text("high_water_seq")
    );
    let rows = conn.query_text(&sql).await?;
    Ok(rows
        .first()
        .and_then(|row| row.first().cloned().flatten())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0))
}

/// A Unix-nanosecond bound as an SQL literal: SQLite's integers are signed 64-bit, and
/// timestamps fit them until 2262.
fn ts_literal(ts_ns: u64) -> u64 {
    ts_ns.min(i64::MAX as u64)
}
