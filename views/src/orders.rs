//! Every order the views know, bounded: open orders, recent finished orders per account, and
//! the statuses of recent client order ids (the de-duplication window).
//!
//! Bounds: open orders are bounded by the engine (`max_open_orders_per_account`); finished
//! orders are kept per account up to [`OrdersLimits::per_account`] and in all up to
//! [`OrdersLimits::total`], oldest forgotten first; client order id statuses up to
//! [`OrdersLimits::window`]. Deeper history is the replica's.

use std::collections::{HashMap, VecDeque};

use peregrine_hotpath::{AccountId, ClientOrderId, OrderId, Qty, RejectReason};

use crate::order::{OrderRecord, OrderState};

/// Client order ids remembered for de-duplication of resends (oldest forgotten first).
pub const DEDUP_WINDOW_ORDERS: usize = 1 << 20;

/// How much the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrdersLimits {
    /// Finished orders kept per account.
    pub per_account: usize,
    /// Finished orders kept across all accounts.
    pub total: usize,
    /// Client order id statuses kept (the de-duplication window).
    pub window: usize,
}

impl Default for OrdersLimits {
    fn default() -> Self {
        OrdersLimits {
            per_account: 1_000,
            total: 200_000,
            window: DEDUP_WINDOW_ORDERS,
        }
    }
}

/// What is known of a client order id: compact, so the window can be long.
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
    /// Stands for an entry the window lost track of (never expected).
    fn of_unknown() -> OrderStatus {
        OrderStatus {
            order: OrderId(0),
            seq: 0,
            filled: Qty(0),
            state: OrderState::Sequenced,
            reject: None,
        }
    }

    fn of(record: &OrderRecord) -> OrderStatus {
        OrderStatus {
            order: record.id,
            seq: record.seq,
            filled: record.executed_qty,
            state: record.state,
            reject: record.reject,
        }
    }
}

/// Orders kept for one account, by the sequence of the command that placed them.
#[derive(Debug, Default)]
struct AccountOrders {
    kept: Vec<u64>,
    /// Finished ones, oldest first.
    finished: VecDeque<u64>,
}

/// The order store (see the module docs).
#[derive(Debug)]
pub struct Orders {
    limits: OrdersLimits,
    /// Every kept record by the sequence of its command.
    records: HashMap<u64, OrderRecord>,
    /// Accepted kept records by exchange id.
    by_id: HashMap<OrderId, u64>,
    accounts: HashMap<AccountId, AccountOrders>,
    /// Finished records across accounts, oldest first.
    finished: VecDeque<u64>,
    window: HashMap<(AccountId, ClientOrderId), OrderStatus>,
    window_age: VecDeque<(AccountId, ClientOrderId)>,
    /// Records open now (accepted, not final), kept in step by `insert` and `update`.
    open: usize,
}

fn is_open(state: OrderState) -> bool {
    matches!(state, OrderState::Open | OrderState::Untriggered)
}

/// Entries allocated up front (each map grows to its bound if needed).
const INITIAL_ENTRIES: usize = 1 << 12;

impl Orders {
    /// Empty, with `limits`.
    pub fn new(limits: OrdersLimits) -> Orders {
        assert!(limits.per_account > 0 && limits.total > 0 && limits.window > 0);
        Orders {
            limits,
            records: HashMap::with_capacity(INITIAL_ENTRIES),
            by_id: HashMap::with_capacity(INITIAL_ENTRIES),
            accounts: HashMap::new(),
            finished: VecDeque::with_capacity(INITIAL_ENTRIES),
            window: HashMap::with_capacity(INITIAL_ENTRIES),
            window_age: VecDeque::with_capacity(INITIAL_ENTRIES),
            open: 0,
        }
    }

    /// Keeps a new record (a sequenced command, or an order found in the engine at start).
    pub(crate) fn insert(&mut self, record: OrderRecord) {
        let seq = record.seq;
        if record.id.0 != 0 {
            self.by_id.insert(record.id, seq);
        }
        self.remember(
            record.account,
            record.client_order_id,
            OrderStatus::of(&record),
        );
        let account = record.account;
        let finished = record.state.is_final();
        let open = is_open(record.state);
        match self.records.insert(seq, record) {
            None => self.accounts.entry(account).or_default().kept.push(seq),
            Some(replaced) if is_open(replaced.state) => self.open -= 1,
            Some(_) => {}
        }
        if open {
            self.open += 1;
        }
        if finished {
            self.finish(seq);
        }
    }

    /// Changes the record placed by `seq`; keeps its client id status in step.
    pub(crate) fn update(&mut self, seq: u64, change: impl FnOnce(&mut OrderRecord)) {
        let Some(record) = self.records.get_mut(&seq) else {
            return;
        };
        let was_final = record.state.is_final();
        let was_open = is_open(record.state);
        change(record);
        match (was_open, is_open(record.state)) {
            (false, true) => self.open += 1,
            (true, false) => self.open -= 1,
            _ => {}
        }
        if record.id.0 != 0 {
            self.by_id.insert(record.id, seq);
        }
        let now_final = record.state.is_final();
        let (account, client_order_id, status) = (
            record.account,
            record.client_order_id,
            OrderStatus::of(record),
        );
        self.remember(account, client_order_id, status);
        if now_final && !was_final {
            self.finish(seq);
        }
    }

    /// The window's entries, oldest first.
    pub(crate) fn window_entries(
        &self,
    ) -> impl ExactSizeIterator<Item = ((AccountId, ClientOrderId), OrderStatus)> + '_ {
        self.window_age.iter().map(|key| {
            let status = self.window.get(key).copied();
            debug_assert!(status.is_some(), "the age list and the window agree");
            (*key, status.unwrap_or(OrderStatus::of_unknown()))
        })
    }

    /// How many statuses the window holds at most.
    pub(crate) fn window_limit(&self) -> usize {
        self.limits.window
    }

    /// Puts a restored status in the window (newest so far).
    pub(crate) fn restore_status(&mut self, key: (AccountId, ClientOrderId), status: OrderStatus) {
        self.remember(key.0, key.1, status);
    }

    /// The sequence of the kept record of exchange order `id`.
    pub(crate) fn seq_of(&self, id: OrderId) -> Option<u64> {
        self.by_id.get(&id).copied()
    }

    /// Keeps the status of a client order id (0: the client gave none, nothing to remember).
    fn remember(&mut self, account: AccountId, id: ClientOrderId, status: OrderStatus) {
        if id.0 == 0 {
            return;
        }
        let key = (account, id);
        if self.window.insert(key, status).is_none() {
            self.window_age.push_back(key);
        }
        while self.window_age.len() > self.limits.window {
            if let Some(oldest) = self.window_age.pop_front() {
                self.window.remove(&oldest);
            }
        }
        debug_assert_eq!(self.window.len(), self.window_age.len());
    }

    /// A record reached a final state: it becomes history, bounded per account and in total.
    fn finish(&mut self, seq: u64) {
        let Some(account) = self.records.get(&seq).map(|r| r.account) else {
            return;
        };
        let entry = self.accounts.entry(account).or_default();
        entry.finished.push_back(seq);
        let mut dropped = Vec::new();
        if entry.finished.len() > self.limits.per_account
            && let Some(oldest) = entry.finished.pop_front()
        {
            dropped.push(oldest);
        }
        self.finished.push_back(seq);
        while self.finished.len() > self.limits.total {
            let Some(oldest) = self.finished.pop_front() else {
                break;
            };
            dropped.push(oldest);
        }
        for seq in dropped {
            self.forget(seq);
        }
    }

    /// Drops a finished record (its client id status stays in the window).
    fn forget(&mut self, seq: u64) {
        let Some(record) = self.records.remove(&seq) else {
            return;
        };
        debug_assert!(record.state.is_final(), "an open order is never forgotten");
        if self.by_id.get(&record.id) == Some(&seq) {
            self.by_id.remove(&record.id);
        }
        if let Some(entry) = self.accounts.get_mut(&record.account) {
            entry.kept.retain(|kept| *kept != seq);
            entry.finished.retain(|kept| *kept != seq);
        }
    }

    /// What is known of `account`'s client order id `id` (None: never seen, or forgotten).
    pub fn status(&self, account: AccountId, id: ClientOrderId) -> Option<OrderStatus> {
        self.window.get(&(account, id)).copied()
    }

    /// The record placed by command `seq`.
    pub fn by_seq(&self, seq: u64) -> Option<&OrderRecord> {
        self.records.get(&seq)
    }

    /// `account`'s kept order with exchange id `id`.
    pub fn by_id(&self, account: AccountId, id: OrderId) -> Option<&OrderRecord> {
        let record = self.records.get(self.by_id.get(&id)?)?;
        (record.account == account).then_some(record)
    }

    /// `account`'s kept order with client id `id`.
    pub fn by_client(&self, account: AccountId, id: ClientOrderId) -> Option<&OrderRecord> {
        let status = self.status(account, id)?;
        self.records.get(&status.seq)
    }

    /// Every kept order of `account`, oldest command first.
    pub fn of_account(&self, account: AccountId) -> impl Iterator<Item = &OrderRecord> {
        self.accounts
            .get(&account)
            .into_iter()
            .flat_map(|a| a.kept.iter())
            .filter_map(|seq| self.records.get(seq))
    }

    /// The client id of a kept order (0 if unknown).
    pub fn client_order_id(&self, id: OrderId) -> ClientOrderId {
        self.by_id
            .get(&id)
            .and_then(|seq| self.records.get(seq))
            .map_or(ClientOrderId(0), |r| r.client_order_id)
    }

    /// Open orders (accepted, not final).
    pub fn open_count(&self) -> usize {
        debug_assert!(self.open <= self.records.len());
        self.open
    }
}

#[cfg(test)]
mod tests {
    use peregrine_hotpath::{
        MarketId, NewOrder, OrderKind, Price, SelfTradePrevention, Side, TimeInForce,
    };

    use super::*;

    fn record(seq: u64, account: u32) -> OrderRecord {
        let order = NewOrder {
            account: AccountId(account),
            market: MarketId(0),
            client_order_id: ClientOrderId(seq),
            side: Side::Buy,
            kind: OrderKind::Limit {
                price: Price(1),
                qty: Qty(1),
            },
            tif: TimeInForce::Gtc,
            stp: SelfTradePrevention::CancelNewest,
        };
        let mut record = OrderRecord::sequenced(seq, seq, &order);
        record.id = OrderId(seq);
        record.state = OrderState::Open;
        record
    }

    fn finish(orders: &mut Orders, seq: u64) {
        orders.update(seq, |r| r.state = OrderState::Filled);
    }

    #[test]
    fn finished_orders_are_bounded_per_account_and_in_total() {
        let mut orders = Orders::new(OrdersLimits {
            per_account: 2,
            total: 3,
            window: 10,
        });
        for seq in 1..=3 {
            orders.insert(record(seq, 1));
            finish(&mut orders, seq);
        }
        assert!(orders.by_id(AccountId(1), OrderId(1)).is_none());
        assert!(orders.by_id(AccountId(1), OrderId(3)).is_some());
        orders.insert(record(10, 2));
        orders.insert(record(11, 2));
        finish(&mut orders, 10);
        finish(&mut orders, 11);
        // Total 3: the oldest kept across accounts (account 1's order 2) went first.
        assert!(orders.by_id(AccountId(1), OrderId(2)).is_none());
        assert_eq!(orders.of_account(AccountId(1)).count(), 1);
        assert_eq!(orders.of_account(AccountId(2)).count(), 2);
        // An open order is never dropped, and a forgotten one's status stays in the window.
        orders.insert(record(12, 2));
        assert!(orders.by_id(AccountId(2), OrderId(12)).is_some());
        let status = orders.status(AccountId(1), ClientOrderId(1)).unwrap();
        assert_eq!(
            (status.order, status.state),
            (OrderId(1), OrderState::Filled)
        );
        // Another account's order is not found by id.
        assert!(orders.by_id(AccountId(1), OrderId(12)).is_none());
    }

    #[test]
    fn the_window_forgets_the_oldest_client_id_beyond_its_bound() {
        let mut orders = Orders::new(OrdersLimits {
            per_account: 10,
            total: 10,
            window: 2,
        });
        for seq in 1..=3 {
            orders.insert(record(seq, 1));
        }
        assert!(orders.status(AccountId(1), ClientOrderId(1)).is_none());
        assert!(orders.status(AccountId(1), ClientOrderId(3)).is_some());
        // Updating a known id does not age anything out.
        orders.update(3, |r| r.executed_qty = Qty(1));
        assert!(orders.status(AccountId(1), ClientOrderId(2)).is_some());
        assert_eq!(orders.open_count(), 3);
        orders.update(1, |r| r.state = OrderState::Cancelled);
        assert_eq!(orders.open_count(), 2);
    }
}
