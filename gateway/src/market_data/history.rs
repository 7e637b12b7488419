//! Recent orders and trades per account, derived from the event stream, for the REST bridge's
//! order and trade lists and the private streams.
//!
//! Bounds: live orders are bounded by the engine (`max_open_orders_per_account`); finished
//! orders and trades are kept per account up to [`HistoryLimits`]'s per-account figure and in
//! all up to its total figure, oldest forgotten first. Deeper history is the replica's (issue
//! #7): a request beyond what is kept here is answered from what is kept, and the REST layer
//! says so in its documentation.

use std::collections::{HashMap, VecDeque};

use peregrine_hotpath::{
    AccountId, ClientOrderId, MarketId, OrderId, Price, Qty, Side, TimeInForce,
};

/// How much finished history is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Finished orders and trades kept per account (each).
    pub per_account: usize,
    /// Finished orders and trades kept across all accounts (each).
    pub total: usize,
    /// Order intents (type and time in force announced by the REST bridge before submission)
    /// awaiting their order's acceptance.
    pub intents: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            per_account: 1_000,
            total: 200_000,
            intents: 65_536,
        }
    }
}

/// The type of an order, as the client asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrderType {
    /// Limit.
    Limit,
    /// Market.
    Market,
    /// Stop-limit.
    StopLimit,
    /// Stop-market.
    StopMarket,
}

/// What the REST bridge knows of an order before the engine sees it: events do not carry the
/// type or time in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intent {
    /// Order type.
    pub kind: OrderType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Stop trigger (0 if none).
    pub trigger: Price,
}

/// An order's lifecycle state, Peatio's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrderState {
    /// A stop waiting for its trigger.
    Pending,
    /// Open in the book (or being matched).
    Wait,
    /// Fully filled.
    Done,
    /// Cancelled (possibly after partial fills).
    Cancel,
}

/// One order as the event stream describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRecord {
    /// Engine id.
    pub id: OrderId,
    /// Owner.
    pub account: AccountId,
    /// Market.
    pub market: MarketId,
    /// Client id.
    pub client_order_id: ClientOrderId,
    /// Side.
    pub side: Side,
    /// Type and time in force, when the REST bridge placed it (else a limit, GTC).
    pub intent: Intent,
    /// Limit price (market orders: the protection price).
    pub price: Price,
    /// Original quantity plus later increases (0 for a market buy by budget).
    pub origin_qty: Qty,
    /// Quantity still open (what was open when cancelled, for a cancelled order).
    pub remaining_qty: Qty,
    /// Quantity filled.
    pub executed_qty: Qty,
    /// Sum of price * qty over fills (for the average price).
    pub executed_tick_lots: u128,
    /// Fills.
    pub trades_count: u32,
    /// State.
    pub state: OrderState,
    /// Sequencer time of acceptance, Unix ns.
    pub created_ns: u64,
    /// Sequencer time of the last change, Unix ns.
    pub updated_ns: u64,
}

/// One fill of an account's order: the replica's row shape, so fills from memory and from the
/// replica merge without conversion.
pub use peregrine_replica::OwnTradeRow as OwnTrade;

#[derive(Debug, Default)]
struct Account {
    orders: HashMap<OrderId, OrderRecord>,
    /// Finished orders, oldest first, with their global keys.
    finished: VecDeque<(u64, OrderId)>,
    /// Trades, oldest first, with their global keys.
    trades: VecDeque<(u64, OwnTrade)>,
}

/// Every account's recent orders and trades.
#[derive(Debug)]
pub struct History {
    limits: HistoryLimits,
    accounts: HashMap<AccountId, Account>,
    /// Finished orders across accounts, oldest first: (key, account).
    finished: VecDeque<(u64, AccountId)>,
    trades: VecDeque<(u64, AccountId)>,
    next_key: u64,
    intents: HashMap<(AccountId, ClientOrderId), Intent>,
    intent_order: VecDeque<(AccountId, ClientOrderId)>,
    /// Live orders by id, to find their account on a trade.
    owners: HashMap<OrderId, AccountId>,
}

impl History {
    /// Empty, with `limits`.
    pub fn new(limits: HistoryLimits) -> History {
        assert!(limits.per_account > 0 && limits.total > 0 && limits.intents > 0);
        History {
            limits,
            accounts: HashMap::new(),
            finished: VecDeque::new(),
            trades: VecDeque::new(),
            next_key: 1,
            intents: HashMap::new(),
            intent_order: VecDeque::new(),
            owners: HashMap::new(),
        }
    }

    /// Announces the type of an order about to be submitted.
    pub fn intend(&mut self, account: AccountId, client_order_id: ClientOrderId, intent: Intent) {
        if self.intent_order.len() >= self.limits.intents
            && let Some(oldest) = self.intent_order.pop_front()
        {
            self.intents.remove(&oldest);
        }
        if self
            .intents
            .insert((account, client_order_id), intent)
            .is_none()
        {
            self.intent_order.push_back((account, client_order_id));
        }
    }

    /// An order was accepted.
    #[allow(clippy::too_many_arguments)]
    pub fn accepted(
        &mut self,
        id: OrderId,
        account: AccountId,
        market: MarketId,
        client_order_id: ClientOrderId,
        side: Side,
        price: Price,
        qty: Qty,
        ts_ns: u64,
    ) -> &OrderRecord {
        let intent = self
            .intents
            .remove(&(account, client_order_id))
            .unwrap_or(Intent {
                kind: OrderType::Limit,
                tif: TimeInForce::Gtc,
                trigger: Price(0),
            });
        let state = match intent.kind {
            OrderType::StopLimit | OrderType::StopMarket => OrderState::Pending,
            _ => OrderState::Wait,
        };
        self.owners.insert(id, account);
        let orders = &mut self.accounts.entry(account).or_default().orders;
        orders.entry(id).or_insert(OrderRecord {
            id,
            account,
            market,
            client_order_id,
            side,
            intent,
            price,
            origin_qty: qty,
            remaining_qty: qty,
            executed_qty: Qty(0),
            executed_tick_lots: 0,
            trades_count: 0,
            state,
            created_ns: ts_ns,
            updated_ns: ts_ns,
        })
    }

    /// The account owning live order `id`.
    pub fn owner(&self, id: OrderId) -> Option<AccountId> {
        self.owners.get(&id).copied()
    }

    /// Applies `change` to a known order; returns it after the change.
    pub fn update(
        &mut self,
        account: AccountId,
        id: OrderId,
        ts_ns: u64,
        change: impl FnOnce(&mut OrderRecord),
    ) -> Option<&OrderRecord> {
        let record = self.accounts.get_mut(&account)?.orders.get_mut(&id)?;
        change(record);
        record.updated_ns = ts_ns;
        Some(record)
    }

    /// An order reached a final state: it becomes history, bounded.
    pub fn finish(&mut self, account: AccountId, id: OrderId) {
        self.owners.remove(&id);
        let key = self.next_key;
        self.next_key += 1;
        let per_account = self.limits.per_account;
        let Some(entry) = self.accounts.get_mut(&account) else {
            return;
        };
        entry.finished.push_back((key, id));
        if entry.finished.len() > per_account
            && let Some((_, oldest)) = entry.finished.pop_front()
        {
            entry.orders.remove(&oldest);
        }
        self.finished.push_back((key, account));
        if self.finished.len() > self.limits.total
            && let Some((oldest_key, oldest_account)) = self.finished.pop_front()
            && let Some(entry) = self.accounts.get_mut(&oldest_account)
        {
            // The account may have dropped it already for its own bound.
            while entry
                .finished
                .front()
                .is_some_and(|(k, _)| *k <= oldest_key)
            {
                if let Some((_, id)) = entry.finished.pop_front() {
                    entry.orders.remove(&id);
                }
            }
        }
    }

    /// Records a fill of an account's order.
    pub fn trade(&mut self, account: AccountId, trade: OwnTrade) {
        let key = self.next_key;
        self.next_key += 1;
        let entry = self.accounts.entry(account).or_default();
        entry.trades.push_back((key, trade));
        if entry.trades.len() > self.limits.per_account {
            entry.trades.pop_front();
        }
        self.trades.push_back((key, account));
        if self.trades.len() > self.limits.total
            && let Some((oldest_key, oldest_account)) = self.trades.pop_front()
            && let Some(entry) = self.accounts.get_mut(&oldest_account)
        {
            while entry.trades.front().is_some_and(|(k, _)| *k <= oldest_key) {
                entry.trades.pop_front();
            }
        }
    }

    /// An order of `account` by id.
    pub fn order(&self, account: AccountId, id: OrderId) -> Option<&OrderRecord> {
        self.accounts.get(&account)?.orders.get(&id)
    }

    /// The most recent order of `account` with client id `client_order_id`.
    pub fn order_by_client(
        &self,
        account: AccountId,
        client_order_id: ClientOrderId,
    ) -> Option<&OrderRecord> {
        self.accounts
            .get(&account)?
            .orders
            .values()
            .filter(|o| o.client_order_id == client_order_id)
            .max_by_key(|o| o.id)
    }

    /// Every kept order of `account` (unordered).
    pub fn orders(&self, account: AccountId) -> impl Iterator<Item = &OrderRecord> {
        self.accounts
            .get(&account)
            .into_iter()
            .flat_map(|a| a.orders.values())
    }

    /// Every kept trade of `account`, oldest first.
    pub fn trades(&self, account: AccountId) -> impl DoubleEndedIterator<Item = &OwnTrade> {
        self.accounts
            .get(&account)
            .into_iter()
            .flat_map(|a| a.trades.iter().map(|(_, t)| t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(h: &mut History, account: u32, id: u64) {
        h.accepted(
            OrderId(id),
            AccountId(account),
            MarketId(0),
            ClientOrderId(id),
            Side::Buy,
            Price(1),
            Qty(1),
            id,
        );
    }

    #[test]
    fn finished_orders_are_bounded_per_account_and_in_total() {
        let mut h = History::new(HistoryLimits {
            per_account: 2,
            total: 3,
            intents: 1,
        });
        for id in 1..=3 {
            accept(&mut h, 1, id);
            h.finish(AccountId(1), OrderId(id));
        }
        assert!(h.order(AccountId(1), OrderId(1)).is_none());
        assert!(h.order(AccountId(1), OrderId(3)).is_some());
        accept(&mut h, 2, 10);
        accept(&mut h, 2, 11);
        h.finish(AccountId(2), OrderId(10));
        h.finish(AccountId(2), OrderId(11));
        // Total 3: the oldest kept across accounts (account 1's order 2) went first.
        assert!(h.order(AccountId(1), OrderId(2)).is_none());
        assert_eq!(h.orders(AccountId(1)).count(), 1);
        assert_eq!(h.orders(AccountId(2)).count(), 2);
        // A live order is never dropped.
        accept(&mut h, 2, 12);
        assert!(h.order(AccountId(2), OrderId(12)).is_some());
    }

    #[test]
    fn intents_give_the_type_and_are_bounded() {
        let mut h = History::new(HistoryLimits {
            per_account: 2,
            total: 2,
            intents: 1,
        });
        let stop = Intent {
            kind: OrderType::StopLimit,
            tif: TimeInForce::Gtc,
            trigger: Price(5),
        };
        h.intend(AccountId(1), ClientOrderId(7), stop);
        h.intend(AccountId(1), ClientOrderId(8), stop);
        accept(&mut h, 1, 7);
        accept(&mut h, 1, 8);
        // The first intent was forgotten for the bound.
        let first = h.order(AccountId(1), OrderId(7)).map(|o| o.state);
        let second = h.order(AccountId(1), OrderId(8)).map(|o| o.state);
        assert_eq!(first, Some(OrderState::Wait));
        assert_eq!(second, Some(OrderState::Pending));
    }
}
