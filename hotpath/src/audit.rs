//! The full invariant audit, run on demand (tests, after recovery, `peregrine replay`). It
//! recomputes from scratch what the engine keeps incrementally and compares.

use crate::engine::Engine;
use crate::ids::{AccountId, CurrencyId, Side};
use crate::ledger::InvariantViolation;
use crate::orders::{Kind, NIL, OrderState};

/// A broken invariant. Always a bug: no input can cause one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Conservation or running totals.
    #[error(transparent)]
    Ledger(#[from] InvariantViolation),
    /// Something else, described.
    #[error("engine invariant broken: {0}")]
    Engine(String),
}

impl Engine {
    /// Checks every invariant: conservation per currency, locked balances equal to what orders
    /// and withdrawals hold, books uncrossed with consistent levels, exact locks on resting
    /// orders, open-order counts. O(state): not for the hot path.
    pub fn audit(&self) -> Result<(), AuditError> {
        self.ledger.audit()?;
        let fail = |what: String| Err(AuditError::Engine(what));
        let currencies = self.config.max_currencies as usize;
        let mut held = vec![0u128; self.config.max_accounts as usize * currencies];
        let mut open = vec![0u32; self.config.max_accounts as usize];
        let cell = |a: AccountId, c: CurrencyId| a.0 as usize * currencies + c.0 as usize;
        let mut live = 0u32;
        for slot in self.orders.slots_by_account() {
            let o = self.orders.get(slot);
            let Some(market) = self.markets[o.market.0 as usize].as_deref() else {
                return fail(format!("order {} in a missing market", o.id));
            };
            let spend = match o.side {
                Side::Buy => market.spec.quote,
                Side::Sell => market.spec.base,
            };
            held[cell(o.account, spend)] += u128::from(o.locked);
            open[o.account.0 as usize] += 1;
            live += 1;
            match o.state {
                OrderState::Resting => {
                    if o.kind != Kind::Limit || o.qty.0 == 0 {
                        return fail(format!("resting order {} is not an open limit", o.id));
                    }
                    let exact = match o.side {
                        Side::Buy => market.quote_amount(o.price, o.qty),
                        Side::Sell => market.base_amount(o.qty),
                    };
                    if o.locked != exact {
                        return fail(format!(
                            "order {} locks {} instead of {}",
                            o.id, o.locked, exact
                        ));
                    }
                }
                OrderState::PendingStop => {
                    if !matches!(o.kind, Kind::StopLimit | Kind::StopMarket { .. }) {
                        return fail(format!("pending stop {} is not a stop", o.id));
                    }
                }
                OrderState::Taking => return fail(format!("order {} left taking", o.id)),
            }
        }
        if live != self.orders.live() {
            return fail(format!(
                "{} orders listed, {} live",
                live,
                self.orders.live()
            ));
        }
        for w in self.withdrawals.values() {
            held[cell(w.account, w.currency)] += u128::from(w.amount);
        }
        for (account, currency, balance) in self.ledger.nonzero() {
            let expected = held[cell(account, currency)];
            if u128::from(balance.locked) != expected {
                return fail(format!(
                    "account {account} currency {currency}: locked {} but orders and withdrawals hold {expected}",
                    balance.locked
                ));
            }
            held[cell(account, currency)] = 0;
        }
        if held.iter().any(|&h| h != 0) {
            return fail("orders hold funds in a cell with no balance".into());
        }
        for (i, risk) in self.accounts.iter().enumerate() {
            if risk.open_orders != open[i] {
                return fail(format!(
                    "account {i}: open_orders {} but {} live",
                    risk.open_orders, open[i]
                ));
            }
        }
        let mut in_books = 0u32;
        for market in self.markets.iter().flatten() {
            for side in [Side::Buy, Side::Sell] {
                let mut previous = None;
                for level in market.own_ref(side).iter_best_first() {
                    if let Some(p) = previous {
                        let ordered = match side {
                            Side::Buy => level.price < p,
                            Side::Sell => level.price > p,
                        };
                        if !ordered {
                            return fail(format!(
                                "market {} levels out of order",
                                market.spec.market
                            ));
                        }
                    }
                    previous = Some(level.price);
                    let mut total = 0u64;
                    let mut slot = level.head;
                    let mut last = NIL;
                    for _ in 0..=self.orders.live() {
                        if slot == NIL {
                            break;
                        }
                        let o = self.orders.get(slot);
                        if o.price != level.price
                            || o.side != side
                            || o.market != market.spec.market
                            || o.prev != last
                        {
                            return fail(format!("order {} misfiled in its level", o.id));
                        }
                        total += o.qty.0;
                        in_books += 1;
                        last = slot;
                        slot = o.next;
                    }
                    if slot != NIL || last != level.tail || total != level.total || total == 0 {
                        return fail(format!(
                            "market {} level {} inconsistent",
                            market.spec.market, level.price
                        ));
                    }
                }
            }
            if let (Some(bid), Some(ask)) = (market.bids.best(), market.asks.best())
                && bid.price >= ask.price
            {
                return fail(format!(
                    "market {} crossed at rest: {} >= {}",
                    market.spec.market, bid.price, ask.price
                ));
            }
            in_books += (market.buy_stops.len() + market.sell_stops.len()) as u32;
        }
        if in_books != live {
            return fail(format!("{in_books} orders in books and stops, {live} live"));
        }
        Ok(())
    }
}
