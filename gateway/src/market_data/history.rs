//! Recent fills per account, from the views' fill changes, for the REST bridge's trade lists
//! and the private streams. (Orders are the core views' own: see `peregrine_views::Orders`.)
//!
//! Bounds: fills are kept per account up to [`HistoryLimits`]'s per-account figure and in all
//! up to its total figure, oldest forgotten first. Deeper history is the replica's: a request
//! beyond what is kept here is answered from what is kept, and the REST layer says so.

use std::collections::{HashMap, VecDeque};

use peregrine_hotpath::AccountId;

/// How much is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Fills kept per account.
    pub per_account: usize,
    /// Fills kept across all accounts.
    pub total: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            per_account: 1_000,
            total: 200_000,
        }
    }
}

/// One fill of an account's order: the replica's row shape, so fills from memory and from the
/// replica merge without conversion.
pub use peregrine_replica::OwnTradeRow as OwnTrade;

#[derive(Debug, Default)]
struct Account {
    /// Trades, oldest first, with their global keys.
    trades: VecDeque<(u64, OwnTrade)>,
}

/// Every account's recent fills.
#[derive(Debug)]
pub struct History {
    limits: HistoryLimits,
    accounts: HashMap<AccountId, Account>,
    /// Fills across accounts, oldest first: (key, account).
    trades: VecDeque<(u64, AccountId)>,
    next_key: u64,
}

impl History {
    /// Empty, with `limits`.
    pub fn new(limits: HistoryLimits) -> History {
        assert!(limits.per_account > 0 && limits.total > 0);
        History {
            limits,
            accounts: HashMap::new(),
            trades: VecDeque::new(),
            next_key: 1,
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
    use peregrine_hotpath::{Amount, MarketId, OrderId, Price, Qty, Side, TradeId};

    use super::*;

    fn fill(id: u64) -> OwnTrade {
        OwnTrade {
            id: TradeId(id),
            market: MarketId(0),
            order: OrderId(id),
            side: Side::Buy,
            maker: false,
            taker_side: Side::Buy,
            price: Price(1),
            qty: Qty(1),
            quote_amount: Amount(1),
            fee: Amount(0),
            ts_ns: id,
        }
    }

    #[test]
    fn fills_are_bounded_per_account_and_in_total() {
        let mut h = History::new(HistoryLimits {
            per_account: 2,
            total: 3,
        });
        for id in 1..=3 {
            h.trade(AccountId(1), fill(id));
        }
        let ids = |h: &History, a| h.trades(AccountId(a)).map(|t| t.id.0).collect::<Vec<_>>();
        assert_eq!(ids(&h, 1), vec![2, 3]);
        h.trade(AccountId(2), fill(4));
        h.trade(AccountId(2), fill(5));
        // Total 3: the oldest kept across accounts (account 1's fill 2) went first.
        assert_eq!(ids(&h, 1), vec![3]);
        assert_eq!(ids(&h, 2), vec![4, 5]);
    }
}
