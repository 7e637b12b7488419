//! Duplicate tracking of client order ids: order statuses by `(account, client order id)` (the
//! dedup window) and the index of live orders, kept from engine events.

use std::collections::{HashMap, VecDeque};

use peregrine_hotpath::{
    AccountId, ClientOrderId, CommandKind, Envelope, Event, OrderId, Qty, RejectReason,
};

/// Client order ids remembered for dedup of resends (oldest forgotten first).
pub const DEDUP_WINDOW_ORDERS: usize = 1 << 20;
/// Live orders indexed up front (the index grows past it if needed).
const LIVE_ORDERS_INITIAL: usize = 4_096;

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OrderState {
    /// Sequenced, outcome not yet known.
    Pending,
    /// Accepted and open (resting or waiting for its trigger).
    Live,
    /// Fully filled.
    Filled,
    /// Cancelled (by request, IOC remainder, self-trade prevention...).
    Cancelled,
    /// Rejected by the engine; the status says why.
    Rejected,
    /// No record of this client order id (never seen, or aged out of the dedup window).
    Unknown,
}

/// An order's status as the core tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderStatus {
    /// Exchange id (0 until accepted).
    pub order: OrderId,
    /// Sequence of the original command (0 if unknown).
    pub seq: u64,
    /// Filled so far.
    pub filled: Qty,
    /// State.
    pub state: OrderState,
    /// The engine's reason when rejected.
    pub reject: Option<RejectReason>,
}

impl OrderStatus {
    /// The status of an order never seen.
    pub const UNKNOWN: OrderStatus = OrderStatus {
        order: OrderId(0),
        seq: 0,
        filled: Qty(0),
        state: OrderState::Unknown,
        reject: None,
    };

    /// A sequenced order whose outcome is not known yet.
    pub(crate) const fn pending(seq: u64) -> OrderStatus {
        OrderStatus {
            seq,
            state: OrderState::Pending,
            ..OrderStatus::UNKNOWN
        }
    }
}

/// Order statuses by client order id (the dedup window) and the index of live orders, kept
/// from engine events. Built from the commands recovery replays before order entry opens, so a
/// client resending an order after a restart gets the original's status, not a second order.
#[derive(Debug)]
pub struct OrderTracker {
    orders: OrderTable,
    /// Live orders: exchange id to owner and client id (Trade events carry only exchange ids).
    live: HashMap<OrderId, (AccountId, ClientOrderId)>,
}

impl Default for OrderTracker {
    fn default() -> Self {
        OrderTracker::new()
    }
}

impl OrderTracker {
    /// An empty tracker holding at most [`DEDUP_WINDOW_ORDERS`] statuses.
    pub fn new() -> OrderTracker {
        OrderTracker {
            orders: OrderTable::new(DEDUP_WINDOW_ORDERS),
            live: HashMap::with_capacity(LIVE_ORDERS_INITIAL),
        }
    }

    /// Feeds one applied command and its events, in sequence order.
    pub fn observe(&mut self, seq: u64, command: &Envelope, events: &[Event]) {
        let new_order = match &command.kind {
            CommandKind::NewOrder(order) => Some((order.account, order.client_order_id)),
            _ => None,
        };
        if let Some((account, client_order_id)) = new_order {
            self.orders
                .insert(account, client_order_id, OrderStatus::pending(seq));
        }
        for event in events {
            self.track(seq, event, new_order);
            self.untrack(event);
        }
    }

    /// What is known of `account`'s order `client_order_id`.
    pub fn status(&self, account: AccountId, client_order_id: ClientOrderId) -> OrderStatus {
        self.orders
            .get(account, client_order_id)
            .copied()
            .unwrap_or(OrderStatus::UNKNOWN)
    }

    /// The status of a known order, if the window still holds it.
    pub(crate) fn known(&self, account: AccountId, id: ClientOrderId) -> Option<OrderStatus> {
        self.orders.get(account, id).copied()
    }

    /// Records a freshly sequenced new order as pending.
    pub(crate) fn sequenced(&mut self, seq: u64, account: AccountId, id: ClientOrderId) {
        self.orders.insert(account, id, OrderStatus::pending(seq));
    }

    /// The client order id of a live order (0 if unknown: not a tracked new order).
    pub(crate) fn client_order_id(&self, order: OrderId) -> ClientOrderId {
        self.live
            .get(&order)
            .map_or(ClientOrderId(0), |(_, id)| *id)
    }

    /// Keeps the order table and the live-order index current with one event. Used for routed
    /// events and, at start, for the events recovery replays, so both paths agree. `new_order`
    /// is the command's own (account, client id).
    pub(crate) fn track(
        &mut self,
        seq: u64,
        event: &Event,
        new_order: Option<(AccountId, ClientOrderId)>,
    ) {
        match *event {
            Event::Rejected { reason } => {
                if let Some((account, id)) = new_order
                    && let Some(record) = self.orders.get_mut(account, id)
                {
                    record.state = OrderState::Rejected;
                    record.reject = Some(reason);
                }
            }
            Event::OrderAccepted {
                order,
                account,
                client_order_id,
                ..
            } => self.accepted(seq, order, account, client_order_id),
            Event::Trade(ref trade) => {
                for (order, account) in [
                    (trade.maker_order, trade.maker_account),
                    (trade.taker_order, trade.taker_account),
                ] {
                    if let Some(&(_, client_order_id)) = self.live.get(&order)
                        && let Some(record) = self.orders.get_mut(account, client_order_id)
                    {
                        record.filled.0 = record.filled.0.saturating_add(trade.qty.0);
                    }
                }
            }
            Event::OrderFilled {
                account,
                client_order_id,
                ..
            } => self.finished(account, client_order_id, OrderState::Filled),
            Event::OrderCancelled {
                account,
                client_order_id,
                ..
            } => self.finished(account, client_order_id, OrderState::Cancelled),
            _ => {}
        }
    }

    fn accepted(&mut self, seq: u64, order: OrderId, account: AccountId, id: ClientOrderId) {
        self.live.insert(order, (account, id));
        match self.orders.get_mut(account, id) {
            Some(record) => {
                record.order = order;
                record.state = OrderState::Live;
            }
            None => self.orders.insert(
                account,
                id,
                OrderStatus {
                    order,
                    seq,
                    state: OrderState::Live,
                    ..OrderStatus::UNKNOWN
                },
            ),
        }
    }

    fn finished(&mut self, account: AccountId, id: ClientOrderId, state: OrderState) {
        if let Some(record) = self.orders.get_mut(account, id) {
            record.state = state;
        }
    }

    /// Forgets a finished order's exchange id once its command's events are all routed.
    pub(crate) fn untrack(&mut self, event: &Event) {
        if let Event::OrderFilled { order, .. } | Event::OrderCancelled { order, .. } = *event {
            self.live.remove(&order);
        }
    }
}

/// Status of recent orders by `(account, client order id)`, bounded: the oldest is forgotten.
#[derive(Debug)]
struct OrderTable {
    records: HashMap<(AccountId, ClientOrderId), OrderStatus>,
    age: VecDeque<(AccountId, ClientOrderId)>,
    capacity: usize,
}

/// Entries of the order table allocated up front (it grows to its capacity if needed).
const ORDER_TABLE_INITIAL: usize = 1 << 16;

impl OrderTable {
    fn new(capacity: usize) -> Self {
        assert!(capacity > 0);
        OrderTable {
            records: HashMap::with_capacity(capacity.min(ORDER_TABLE_INITIAL)),
            age: VecDeque::with_capacity(capacity.min(ORDER_TABLE_INITIAL)),
            capacity,
        }
    }

    fn get(&self, account: AccountId, id: ClientOrderId) -> Option<&OrderStatus> {
        self.records.get(&(account, id))
    }

    fn get_mut(&mut self, account: AccountId, id: ClientOrderId) -> Option<&mut OrderStatus> {
        self.records.get_mut(&(account, id))
    }

    fn insert(&mut self, account: AccountId, id: ClientOrderId, status: OrderStatus) {
        if self.records.insert((account, id), status).is_none() {
            self.age.push_back((account, id));
        }
        while self.age.len() > self.capacity {
            if let Some(oldest) = self.age.pop_front() {
                self.records.remove(&oldest);
            }
        }
        debug_assert_eq!(self.records.len(), self.age.len());
        debug_assert!(self.records.len() <= self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_table_forgets_the_oldest_beyond_its_capacity() {
        let mut table = OrderTable::new(2);
        for id in 1..=3 {
            table.insert(AccountId(1), ClientOrderId(id), OrderStatus::UNKNOWN);
        }
        assert!(table.get(AccountId(1), ClientOrderId(1)).is_none());
        assert!(table.get(AccountId(1), ClientOrderId(3)).is_some());
        // Re-inserting a known key does not age anything out.
        table.insert(AccountId(1), ClientOrderId(3), OrderStatus::UNKNOWN);
        assert!(table.get(AccountId(1), ClientOrderId(2)).is_some());
    }
}
