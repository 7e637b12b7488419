//! How much an order carries from the master balance to its matching shard, and the two internal
//! ledger moves (credit in, debit out) that carry funds between engines.
//!
//! The escrow of a new order is the engine's own lock formula, computed from the risk shard's view
//! of the market: buy limit `price * qty * quote_per_tick_lot`, market buy by budget the budget,
//! market buy by quantity at the protection price of the view's reference (last trade seen at the
//! last batch boundary, else the configured reference), sell `qty * base_per_lot`. An order the
//! engine would refuse for its size or notional carries nothing: the matching engine refuses it
//! for the engine's own reason (it validates size and notional before funds). Safety never depends
//! on this computation: a matching engine holds no available funds between commands, so an order
//! can only ever lock what it carried.

use crate::command::{MarketRisk, MarketSize, MarketSpec, NewOrder, OrderKind};
use crate::engine::Engine;
use crate::event::RejectReason;
use crate::ids::{AccountId, Amount, CurrencyId, Price, Qty, Side};
use crate::ledger::LedgerError;

/// A risk shard's view of a market: its units and risk parameters, and the last trade price as
/// of the last batch boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MarketView {
    pub base: CurrencyId,
    pub quote: CurrencyId,
    pub base_per_lot: u64,
    pub quote_per_tick_lot: u64,
    pub risk: MarketRisk,
    pub last_price: Option<Price>,
}

impl MarketView {
    pub fn from_spec(spec: &MarketSpec) -> MarketView {
        MarketView {
            base: spec.base,
            quote: spec.quote,
            base_per_lot: spec.base_per_lot,
            quote_per_tick_lot: spec.quote_per_tick_lot,
            risk: spec.risk,
            last_price: None,
        }
    }

    /// The currency an order on `side` spends.
    #[inline]
    pub fn spend_currency(&self, side: Side) -> CurrencyId {
        match side {
            Side::Buy => self.quote,
            Side::Sell => self.base,
        }
    }

    /// The engine's protection price (`Market::band`), from this view's reference.
    fn protection_price(&self, side: Side) -> Price {
        let reference = self.last_price.unwrap_or(self.risk.reference_price);
        let (low, high) =
            crate::market::band_limits(reference, self.risk.band_bps, self.risk.max_price);
        match side {
            Side::Buy => high,
            Side::Sell => low,
        }
    }

    /// The engine's lock of a limit-priced order, or `None` where the engine refuses the size,
    /// price or notional.
    fn limit_lock(&self, side: Side, price: Price, qty: Qty) -> Option<u64> {
        let risk = &self.risk;
        if qty.0 == 0 || qty > risk.max_qty || price.0 == 0 || price > risk.max_price {
            return None;
        }
        let notional =
            u128::from(price.0) * u128::from(qty.0) * u128::from(self.quote_per_tick_lot);
        if notional > u128::from(risk.max_notional.0) {
            return None;
        }
        let lock = match side {
            Side::Buy => notional,
            Side::Sell => u128::from(qty.0) * u128::from(self.base_per_lot),
        };
        u64::try_from(lock).ok()
    }

    /// What a new order carries: the engine's lock for it, 0 when the engine would refuse it.
    pub fn order_escrow(&self, o: &NewOrder) -> u64 {
        let budget = |budget: Amount| {
            (budget.0 > 0 && budget <= self.risk.max_notional && o.side == Side::Buy)
                .then_some(budget.0)
        };
        let escrow = match o.kind {
            OrderKind::Limit { price, qty } | OrderKind::StopLimit { price, qty, .. } => {
                self.limit_lock(o.side, price, qty)
            }
            OrderKind::Market { size } => match size {
                MarketSize::Qty(qty) => self.limit_lock(o.side, self.protection_price(o.side), qty),
                MarketSize::QuoteBudget(b) => budget(b),
            },
            // A stop-market sell is checked at the maximum price, as the engine does; a
            // stop-market buy must be sized by budget.
            OrderKind::StopMarket { size, .. } => match (size, o.side) {
                (MarketSize::Qty(qty), Side::Sell) => {
                    self.limit_lock(o.side, self.risk.max_price, qty)
                }
                (MarketSize::QuoteBudget(b), Side::Buy) => budget(b),
                _ => None,
            },
        };
        escrow.unwrap_or(0)
    }

    /// The full lock of a replaced order at `price` and `qty` (no validation: the matching engine
    /// validates; the unused part returns in the same batch).
    pub fn replace_lock(&self, side: Side, price: Price, qty: Qty) -> u128 {
        match side {
            Side::Buy => {
                u128::from(price.0) * u128::from(qty.0) * u128::from(self.quote_per_tick_lot)
            }
            Side::Sell => u128::from(qty.0) * u128::from(self.base_per_lot),
        }
    }
}

/// Checks the cell exists in this engine.
fn check_cell(
    engine: &Engine,
    account: AccountId,
    currency: CurrencyId,
) -> Result<(), RejectReason> {
    if account.0 >= engine.config().max_accounts {
        return Err(RejectReason::UnknownAccount);
    }
    if currency.0 >= engine.config().max_currencies {
        return Err(RejectReason::CurrencyOutOfRange);
    }
    if !engine.ledger.is_registered(currency) {
        return Err(RejectReason::UnknownCurrency);
    }
    Ok(())
}

/// Funds arriving from another shard: credited to available, counted as an internal deposit so
/// the engine's own conservation check holds.
pub(crate) fn credit(
    engine: &mut Engine,
    account: AccountId,
    currency: CurrencyId,
    amount: Amount,
) -> Result<(), RejectReason> {
    debug_assert!(amount.0 > 0);
    check_cell(engine, account, currency)?;
    engine
        .ledger
        .deposit(account, currency, amount)
        .map_err(|e| match e {
            LedgerError::Overflow => RejectReason::AmountOverflow,
            LedgerError::Insufficient => RejectReason::InsufficientBalance,
        })
}

/// Funds leaving for another shard: taken from available, counted as an internal withdrawal.
pub(crate) fn debit(
    engine: &mut Engine,
    account: AccountId,
    currency: CurrencyId,
    amount: Amount,
) -> Result<(), RejectReason> {
    debug_assert!(amount.0 > 0);
    check_cell(engine, account, currency)?;
    engine
        .ledger
        .lock(account, currency, amount.0)
        .map_err(|_| RejectReason::InsufficientBalance)?;
    // Locked a moment ago, so it is there to leave: nothing below fails.
    engine.ledger.withdraw_locked(account, currency, amount.0);
    Ok(())
}
