//! Order and trade history: the bounded in-memory window merged with the SQL replica.
//!
//! Memory holds every live order and the most recent finished orders and fills; the replica
//! holds everything up to its high-water mark, possibly behind memory. A list is the union of
//! both with memory winning for every order it holds (its copy is never older), sorted by id,
//! then paged. Because both sources are sorted the same way, the first `offset + per_page` rows
//! of the union lie within the first `offset + per_page` rows of memory and the first
//! `offset + per_page + |memory|` rows of the replica: no query reads more than that.
//!
//! Memory is the core's views ([`peregrine_core::EngineHandle::read`]): every open order
//! (those from before a restart with assumed terms when their command predates the snapshot)
//! and the most recent finished ones, as released — in `durable` mode only what is durable. A finished order that memory dropped and the
//! replica has not reached yet (lag beyond the window) is missing from a list until it does;
//! the `x-peregrine-replica-seq` header says how far the replica goes.

use std::collections::HashSet;

use axum::http::{HeaderMap, HeaderValue};
use peregrine_hotpath::{AccountId, ClientOrderId, MarketId, OrderId, Qty, Side, TimeInForce};
use peregrine_replica::reader::{LIST_DEPTH_ROWS_MAX, PAGE_ROWS_MAX};
use peregrine_replica::rows::OrderStatus;
use peregrine_replica::{OrderFilter, OrderHistory, ReplicaError, TradeFilter};

use super::Bridge;
use super::error::ApiError;
use super::transactions::HIGH_WATER_HEADER;
use crate::market_data::history::OwnTrade;
use peregrine_core::{OrderRecord, OrderState};
use peregrine_views::{OrderTerms, OrderType};

/// Whether a kept record is an order a client can list or look up: accepted, and released
/// (a record still `Sequenced` is a command whose outcome is not durable yet).
pub(crate) fn listed(record: &OrderRecord) -> bool {
    record.id.0 != 0 && !matches!(record.state, OrderState::Sequenced | OrderState::Rejected)
}

/// What a list asks for, parsed.
pub(crate) struct Window {
    pub per_page: usize,
    pub page: usize,
    pub asc: bool,
    pub market: Option<MarketId>,
    /// Unix ns, inclusive.
    pub from_ns: u64,
    /// Unix ns, exclusive.
    pub to_ns: u64,
}

impl Window {
    /// Rows before the page.
    fn offset(&self) -> usize {
        (self.page - 1).saturating_mul(self.per_page)
    }

    /// Refuses pages that reach deeper than the bound on list depth.
    fn check_depth(&self) -> Result<usize, ApiError> {
        let depth = self.offset().saturating_add(self.per_page);
        if depth > LIST_DEPTH_ROWS_MAX {
            return Err(ApiError::unprocessable(
                "history.too_deep",
                format!(
                    "page * limit reaches row {depth}; lists go {LIST_DEPTH_ROWS_MAX} rows deep: \
                     narrow with time_from and time_to"
                ),
            ));
        }
        Ok(depth)
    }
}

/// A page of a list, and the replica's high-water mark when the replica was read.
pub(crate) struct Page<T> {
    pub rows: Vec<T>,
    pub high_water_seq: Option<u64>,
}

impl<T> Page<T> {
    /// The `x-peregrine-replica-seq` header when the replica was read.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(seq) = self.high_water_seq {
            headers.insert(HIGH_WATER_HEADER, HeaderValue::from(seq));
        }
        headers
    }
}

fn replica_failed(error: ReplicaError) -> ApiError {
    tracing::warn!(%error, "replica read failed");
    ApiError::unavailable("history.unavailable", "the replica cannot be read now")
}

/// The account's orders passing the filters, one page, in id order.
pub(crate) async fn orders(
    bridge: &Bridge,
    account: AccountId,
    window: &Window,
    side: Option<Side>,
    state: Option<OrderState>,
) -> Result<Page<OrderRecord>, ApiError> {
    let depth = window.check_depth()?;
    let keep = |o: &OrderRecord| {
        window.market.is_none_or(|m| o.market == m)
            && side.is_none_or(|s| o.side == s)
            && state.is_none_or(|s| o.state == s)
            && o.created_ns >= window.from_ns
            && o.created_ns < window.to_ns
    };
    let (mut selected, held): (Vec<OrderRecord>, HashSet<OrderId>) = held(bridge, |views| {
        let kept = || views.orders().of_account(account).filter(|o| listed(o));
        (
            kept().filter(|o| keep(o)).cloned().collect(),
            kept().map(|o| o.id).collect(),
        )
    })?;
    let mut high_water_seq = None;
    let mut from_replica = 0usize;
    if let Some(replica) = bridge.replica.get() {
        let found = replica
            .orders(OrderFilter {
                account,
                market: window.market,
                side,
                status: state.map(status_of),
                created_from_ns: window.from_ns,
                created_to_ns: window.to_ns,
                ascending: window.asc,
                limit: depth.saturating_add(held.len()),
            })
            .await
            .map_err(replica_failed)?;
        high_water_seq = Some(found.high_water_seq);
        for row in found.orders {
            if !held.contains(&row.order) {
                selected.push(record_of(bridge, &row));
                from_replica += 1;
            }
        }
    }
    // Engine ids increase with time.
    selected.sort_unstable_by_key(|o| o.id);
    if !window.asc {
        selected.reverse();
    }
    let mut rows: Vec<OrderRecord> = selected
        .into_iter()
        .skip(window.offset())
        .take(window.per_page)
        .collect();
    // Replica rows on the page get their fills summed (memory's already carry them).
    if from_replica > 0
        && let Some(replica) = bridge.replica.get()
    {
        let mut pending: Vec<OrderHistory> = Vec::new();
        for o in rows.iter().filter(|o| !held.contains(&o.id)) {
            pending.push(bare_history(o));
        }
        debug_assert!(pending.len() <= PAGE_ROWS_MAX);
        replica
            .fill_in(&mut pending)
            .await
            .map_err(replica_failed)?;
        for filled in &pending {
            if let Some(row) = rows.iter_mut().find(|o| o.id == filled.order) {
                apply_fills(bridge, row, filled);
            }
        }
    }
    Ok(Page {
        rows,
        high_water_seq,
    })
}

/// What memory holds: the engine's views on the appliance; nothing on a bridge node, which
/// reads accounts from the replica only (and without one, does not serve them).
fn held<T: Default>(
    bridge: &Bridge,
    read: impl FnOnce(&peregrine_core::Views) -> T,
) -> Result<T, ApiError> {
    match bridge.read_views(read) {
        Some(held) => Ok(held),
        None if bridge.replica.get().is_some() => Ok(T::default()),
        None => bridge.engine().map(|_| T::default()),
    }
}

/// The account's order `id`: memory's copy, else the replica's.
pub(crate) async fn order(
    bridge: &Bridge,
    account: AccountId,
    id: OrderId,
) -> Result<Option<OrderRecord>, ApiError> {
    let held = held(bridge, |views| {
        views
            .orders()
            .by_id(account, id)
            .filter(|o| listed(o))
            .cloned()
    })?;
    if held.is_some() {
        return Ok(held);
    }
    let Some(replica) = bridge.replica.get() else {
        return Ok(None);
    };
    let found = replica.order(account, id).await.map_err(replica_failed)?;
    Ok(found.map(|row| record_of(bridge, &row)))
}

/// The account's most recent order with client id `client_order_id`, from either source.
pub(crate) async fn order_by_client(
    bridge: &Bridge,
    account: AccountId,
    client_order_id: ClientOrderId,
) -> Result<Option<OrderRecord>, ApiError> {
    let held = held(bridge, |views| {
        views
            .orders()
            .by_client(account, client_order_id)
            .filter(|o| listed(o))
            .cloned()
    })?;
    // Client ids are unique among live orders: a live one is the most recent.
    if held
        .as_ref()
        .is_some_and(|o| matches!(o.state, OrderState::Untriggered | OrderState::Open))
    {
        return Ok(held);
    }
    let Some(replica) = bridge.replica.get() else {
        return Ok(held);
    };
    let found = replica
        .order_by_client(account, client_order_id)
        .await
        .map_err(replica_failed)?;
    // Memory holds no live order with that client id here: the newer of the two is the one.
    Ok(match (held, found) {
        (Some(h), Some(r)) if r.order > h.id => Some(record_of(bridge, &r)),
        (Some(h), _) => Some(h),
        (None, Some(r)) => Some(record_of(bridge, &r)),
        (None, None) => None,
    })
}

/// The account's fills passing the filters, one page, in trade id order.
pub(crate) async fn trades(
    bridge: &Bridge,
    account: AccountId,
    window: &Window,
) -> Result<Page<OwnTrade>, ApiError> {
    let depth = window.check_depth()?;
    let mut selected: Vec<OwnTrade> = {
        let shared = bridge.lock();
        shared
            .data
            .history()
            .trades(account)
            .filter(|t| window.market.is_none_or(|m| t.market == m))
            .filter(|t| t.ts_ns >= window.from_ns && t.ts_ns < window.to_ns)
            .cloned()
            .collect()
    };
    let mut high_water_seq = None;
    if let Some(replica) = bridge.replica.get() {
        let found = replica
            .trades(TradeFilter {
                account,
                market: window.market,
                from_ns: window.from_ns,
                to_ns: window.to_ns,
                ascending: window.asc,
                limit: depth,
            })
            .await
            .map_err(replica_failed)?;
        high_water_seq = Some(found.high_water_seq);
        // Fills never change: a fill in both sources is the same fill.
        let held: HashSet<(u64, bool)> = selected.iter().map(|t| (t.id.0, t.maker)).collect();
        selected.extend(
            found
                .trades
                .into_iter()
                .filter(|t| !held.contains(&(t.id.0, t.maker))),
        );
    }
    selected.sort_unstable_by_key(|t| (t.id, !t.maker));
    if !window.asc {
        selected.reverse();
    }
    let rows = selected
        .into_iter()
        .skip(window.offset())
        .take(window.per_page)
        .collect();
    Ok(Page {
        rows,
        high_water_seq,
    })
}

fn status_of(state: OrderState) -> OrderStatus {
    match state {
        OrderState::Untriggered => OrderStatus::PendingStop,
        OrderState::Filled => OrderStatus::Filled,
        OrderState::Cancelled => OrderStatus::Cancelled,
        _ => OrderStatus::Open,
    }
}

fn state_of(status: OrderStatus) -> OrderState {
    match status {
        OrderStatus::PendingStop => OrderState::Untriggered,
        OrderStatus::Filled => OrderState::Filled,
        OrderStatus::Cancelled => OrderState::Cancelled,
        _ => OrderState::Open,
    }
}

/// The record of a replica row (with its fills, when summed).
fn record_of(bridge: &Bridge, row: &OrderHistory) -> OrderRecord {
    let kind = match row.order_type.as_deref() {
        Some("market") => OrderType::Market,
        Some("stop_limit") => OrderType::StopLimit,
        Some("stop_market") => OrderType::StopMarket,
        _ => OrderType::Limit,
    };
    let tif = match row.time_in_force.as_deref() {
        Some("ioc") => TimeInForce::Ioc,
        Some("fok") => TimeInForce::Fok,
        Some("post_only") => TimeInForce::PostOnly,
        _ => TimeInForce::Gtc,
    };
    let limit = matches!(kind, OrderType::Limit | OrderType::StopLimit).then_some(row.price);
    let mut record = OrderRecord {
        id: row.order,
        seq: 0,
        account: row.account,
        market: row.market,
        client_order_id: row.client_order_id,
        side: row.side,
        terms: OrderTerms {
            kind,
            tif,
            trigger: row.trigger_price,
            limit,
            budget: row.quote_budget,
        },
        price: row.price,
        origin_qty: row.accepted_qty,
        remaining_qty: row.open_qty,
        executed_qty: Qty(0),
        executed_tick_lots: 0,
        trades_count: 0,
        rested: false,
        state: state_of(row.status),
        reject: None,
        cancel: None,
        created_ns: row.created_ts_ns,
        updated_ns: row.created_ts_ns,
    };
    apply_fills(bridge, &mut record, row);
    record
}

/// The replica's fills of an order, in the record's terms: as memory counts them, the
/// original quantity is what filled plus what is (or was, when cancelled) open.
fn apply_fills(bridge: &Bridge, record: &mut OrderRecord, row: &OrderHistory) {
    let fills = row.fills;
    let quote_per_tick_lot = bridge
        .catalog
        .load()
        .market_by_id(record.market)
        .map_or(1, |m| m.spec.quote_per_tick_lot.max(1));
    record.executed_qty = fills.executed_qty;
    // Quote amounts are exactly price * qty * quote_per_tick_lot per fill.
    record.executed_tick_lots = fills.executed_quote / u128::from(quote_per_tick_lot);
    record.trades_count = fills.trades_count;
    record.origin_qty = Qty(record.executed_qty.0.saturating_add(record.remaining_qty.0));
    record.updated_ns = record.updated_ns.max(fills.last_ts_ns);
}

/// A replica row standing for `record`, to have its fills summed.
fn bare_history(record: &OrderRecord) -> OrderHistory {
    OrderHistory {
        order: record.id,
        account: record.account,
        market: record.market,
        client_order_id: record.client_order_id,
        side: record.side,
        order_type: None,
        time_in_force: None,
        trigger_price: None,
        quote_budget: None,
        accepted_qty: record.origin_qty,
        status: status_of(record.state),
        price: record.price,
        open_qty: record.remaining_qty,
        created_ts_ns: record.created_ns,
        fills: Default::default(),
    }
}
