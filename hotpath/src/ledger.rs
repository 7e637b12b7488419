//! The balances ledger: available and locked amounts per (account, currency) in a dense table
//! allocated up front, plus per-currency totals that make the conservation invariant cheap to
//! check after every command.
//!
//! Invariant, per currency: sum(available + locked) + fees = deposits - withdrawals. The running
//! sums are kept in step with every mutation; `audit` recomputes them from the table.

use crate::ids::{AccountId, Amount, CurrencyId};

/// One balance cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    /// Free to trade or withdraw.
    pub available: u64,
    /// Held by open orders and pending withdrawals.
    pub locked: u64,
}

/// Per-currency totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CurrencyTotals {
    /// Registered with `CurrencyAdd`.
    pub registered: bool,
    /// Everything ever deposited.
    pub deposited: u128,
    /// Everything ever withdrawn (settled).
    pub withdrawn: u128,
    /// Fees collected into the fee account.
    pub fees: u128,
    /// Running sum of `available` over accounts.
    pub available: u128,
    /// Running sum of `locked` over accounts.
    pub locked: u128,
}

/// The ledger's failure to move funds; the engine maps it to a reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerError {
    /// Not enough available.
    Insufficient,
    /// A balance would exceed `u64::MAX`.
    Overflow,
}

/// A broken invariant found by `audit`: a bug, never the result of input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ledger invariant broken for currency {currency}: {what}")]
pub struct InvariantViolation {
    /// Currency concerned.
    pub currency: CurrencyId,
    /// What disagreed.
    pub what: String,
}

/// A cell's place in the table, from `Ledger::cell`: in bounds (checked there, and the table
/// never changes length). Used at once, on the ledger that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cell {
    index: usize,
    currency: CurrencyId,
}

/// The dense balances table.
#[derive(Clone, Debug)]
pub struct Ledger {
    currencies: u16,
    cells: Vec<Balance>,
    totals: Vec<CurrencyTotals>,
}

impl Ledger {
    /// Allocates `accounts * currencies` cells.
    pub fn new(accounts: u32, currencies: u16) -> Ledger {
        let cells = accounts as usize * currencies as usize;
        Ledger {
            currencies,
            cells: vec![Balance::default(); cells],
            totals: vec![CurrencyTotals::default(); currencies as usize],
        }
    }

    #[inline]
    fn index(&self, account: AccountId, currency: CurrencyId) -> usize {
        debug_assert!(currency.0 < self.currencies);
        account.0 as usize * self.currencies as usize + currency.0 as usize
    }

    /// The balance of one cell.
    #[inline]
    pub fn get(&self, account: AccountId, currency: CurrencyId) -> Balance {
        self.cells[self.index(account, currency)]
    }

    /// The running totals of a currency on the order path (lock, unlock, settlement), without
    /// a bounds check (measured, session 11 in perf/RESULTS.md). Invariant: every currency that
    /// reaches the ledger is below `currencies` (`totals.len()`, which never changes): the
    /// engine refuses any other in a command (`check_currency`, `MarketAdd`) and `restore`
    /// any other in a snapshot, and orders spend their market's currencies. Checked in debug
    /// builds.
    #[inline(always)]
    fn totals_mut(&mut self, currency: CurrencyId) -> &mut CurrencyTotals {
        debug_assert!(
            (currency.0 as usize) < self.totals.len(),
            "currency beyond the totals"
        );
        // SAFETY: in bounds by the invariant above.
        unsafe { self.totals.get_unchecked_mut(currency.0 as usize) }
    }

    /// The cell at `index` on a trade's settlement and an unlock, without a bounds check
    /// (measured, session 12 in perf/RESULTS.md). Invariant: the account of every live order
    /// and pending withdrawal, hence of every trade and unlock, is below the engine's
    /// `max_accounts` (a command's account is checked before it can place an order or hold
    /// funds, a snapshot's on restore), and its currency below `currencies`, so `index` is
    /// below `accounts * currencies`, the table's length, which never changes. Checked in
    /// debug builds.
    #[inline(always)]
    fn cell_mut(&mut self, index: usize) -> &mut Balance {
        debug_assert!(index < self.cells.len(), "balance cell beyond the table");
        // SAFETY: in bounds by the invariant above.
        unsafe { self.cells.get_unchecked_mut(index) }
    }

    /// Per-currency totals.
    pub fn totals(&self, currency: CurrencyId) -> CurrencyTotals {
        self.totals[currency.0 as usize]
    }

    /// Whether the currency was registered.
    #[inline]
    pub fn is_registered(&self, currency: CurrencyId) -> bool {
        self.totals
            .get(currency.0 as usize)
            .is_some_and(|t| t.registered)
    }

    pub(crate) fn register(&mut self, currency: CurrencyId) {
        self.totals[currency.0 as usize].registered = true;
    }

    /// How many currency slots exist.
    pub fn currency_slots(&self) -> u16 {
        self.currencies
    }

    /// Credit a deposit to available.
    pub(crate) fn deposit(
        &mut self,
        account: AccountId,
        currency: CurrencyId,
        amount: Amount,
    ) -> Result<(), LedgerError> {
        let i = self.index(account, currency);
        let cell = &mut self.cells[i];
        // The cell sum must stay within u64 so that available + locked never overflows either.
        let total = cell
            .available
            .checked_add(cell.locked)
            .and_then(|t| t.checked_add(amount.0));
        if total.is_none() {
            return Err(LedgerError::Overflow);
        }
        cell.available += amount.0;
        let t = &mut self.totals[currency.0 as usize];
        t.deposited += u128::from(amount.0);
        t.available += u128::from(amount.0);
        Ok(())
    }

    /// Where the cell of (account, currency) is, for `available_at` and `lock_at`: a new order
    /// checks and then locks the same cell, so the index (a multiply) is computed once, here,
    /// and the two read the cell without a check (516.2 -> 510.8 instructions a command,
    /// session 10 in perf/RESULTS.md). The index is in bounds by `cell_mut`'s invariant (the
    /// callers checked the account and the currency first), checked in debug builds only
    /// (445.2 -> 443.9, session 12).
    #[inline(always)]
    pub(crate) fn cell(&self, account: AccountId, currency: CurrencyId) -> Cell {
        let index = self.index(account, currency);
        debug_assert!(index < self.cells.len(), "balance cell beyond the table");
        Cell { index, currency }
    }

    /// The available amount of a cell `cell` found.
    #[inline(always)]
    pub(crate) fn available_at(&self, cell: Cell) -> u64 {
        debug_assert!(cell.index < self.cells.len());
        // SAFETY: `cell` checked the index, and the table never changes length.
        unsafe { self.cells.get_unchecked(cell.index) }.available
    }

    /// Available -> locked.
    // Always: on the order path (measured, see `Engine::market_mut`).
    #[inline(always)]
    pub(crate) fn lock(
        &mut self,
        account: AccountId,
        currency: CurrencyId,
        amount: u64,
    ) -> Result<(), LedgerError> {
        let cell = self.cell(account, currency);
        self.lock_at(cell, amount)
    }

    /// `lock` of a cell `cell` found.
    #[inline(always)]
    pub(crate) fn lock_at(&mut self, at: Cell, amount: u64) -> Result<(), LedgerError> {
        let currency = at.currency;
        debug_assert!(at.index < self.cells.len());
        // SAFETY: `cell` checked the index, and the table never changes length.
        let cell = unsafe { self.cells.get_unchecked_mut(at.index) };
        if cell.available < amount {
            return Err(LedgerError::Insufficient);
        }
        cell.available -= amount;
        cell.locked += amount;
        let t = self.totals_mut(currency);
        t.available -= u128::from(amount);
        t.locked += u128::from(amount);
        Ok(())
    }

    /// Locked -> available. Releasing more than is locked is a bug.
    #[inline]
    pub(crate) fn unlock(&mut self, account: AccountId, currency: CurrencyId, amount: u64) {
        let i = self.index(account, currency);
        let cell = self.cell_mut(i);
        assert!(cell.locked >= amount, "unlock beyond locked");
        cell.locked -= amount;
        cell.available += amount;
        let t = self.totals_mut(currency);
        t.locked -= u128::from(amount);
        t.available += u128::from(amount);
    }

    /// Locked funds leave the exchange (a settled withdrawal).
    pub(crate) fn withdraw_locked(
        &mut self,
        account: AccountId,
        currency: CurrencyId,
        amount: u64,
    ) {
        let i = self.index(account, currency);
        let cell = &mut self.cells[i];
        assert!(cell.locked >= amount, "withdraw beyond locked");
        cell.locked -= amount;
        let t = &mut self.totals[currency.0 as usize];
        t.locked -= u128::from(amount);
        t.withdrawn += u128::from(amount);
    }

    /// Settle one side of a trade: `paid` leaves the payer's locked balance, `paid - fee` reaches
    /// the payee's available balance and `fee` the fee account. Conservation holds by construction.
    // Always: on the order path (measured, see `Engine::market_mut`).
    #[inline(always)]
    pub(crate) fn transfer_locked(
        &mut self,
        payer: AccountId,
        payee: AccountId,
        currency: CurrencyId,
        paid: u64,
        fee: u64,
    ) {
        assert!(fee <= paid, "fee above amount received");
        let from = self.index(payer, currency);
        let payer_cell = self.cell_mut(from);
        assert!(payer_cell.locked >= paid, "trade beyond locked");
        payer_cell.locked -= paid;
        let to = self.index(payee, currency);
        // Cannot overflow: the amount came out of this currency's supply, which deposits bound to
        // u64 per cell only; a cell could still exceed u64 after many trades, so saturate-check.
        let net = paid - fee;
        let cell = self.cell_mut(to);
        // Summed in u128 (cannot overflow) and compared once: two checked u64 adds kept a
        // carry flag and two branches (443.8 -> 442.6 instructions a command, session 12 in
        // perf/RESULTS.md).
        let sum = u128::from(cell.available) + u128::from(cell.locked) + u128::from(net);
        assert!(sum <= u128::from(u64::MAX), "balance cell overflow");
        cell.available += net;
        let t = self.totals_mut(currency);
        t.locked -= u128::from(paid);
        t.available += u128::from(net);
        t.fees += u128::from(fee);
    }

    /// O(1) check of the conservation invariant from the running sums.
    #[inline]
    pub fn check_totals(&self) -> Result<(), InvariantViolation> {
        for (c, t) in self.totals.iter().enumerate() {
            // Checked: totals restored from a damaged snapshot may sum beyond u128.
            let spent = t
                .available
                .checked_add(t.locked)
                .and_then(|sum| sum.checked_add(t.fees))
                .and_then(|sum| sum.checked_add(t.withdrawn));
            if spent != Some(t.deposited) {
                return Err(InvariantViolation {
                    currency: CurrencyId(c as u16),
                    what: format!(
                        "available {} + locked {} + fees {} + withdrawn {} != deposited {}",
                        t.available, t.locked, t.fees, t.withdrawn, t.deposited
                    ),
                });
            }
        }
        Ok(())
    }

    /// Full audit: recompute the sums from every cell and compare with the running totals.
    pub fn audit(&self) -> Result<(), InvariantViolation> {
        self.check_totals()?;
        let n = self.currencies as usize;
        let mut available = vec![0u128; n];
        let mut locked = vec![0u128; n];
        for (i, cell) in self.cells.iter().enumerate() {
            available[i % n] += u128::from(cell.available);
            locked[i % n] += u128::from(cell.locked);
        }
        for c in 0..n {
            let t = &self.totals[c];
            if available[c] != t.available || locked[c] != t.locked {
                return Err(InvariantViolation {
                    currency: CurrencyId(c as u16),
                    what: format!(
                        "cells sum to available {} locked {}, running totals say {} {}",
                        available[c], locked[c], t.available, t.locked
                    ),
                });
            }
        }
        Ok(())
    }

    /// Non-zero cells in (account, currency) order, for snapshots and summaries.
    pub fn nonzero(&self) -> impl Iterator<Item = (AccountId, CurrencyId, Balance)> + '_ {
        let n = self.currencies as usize;
        self.cells
            .iter()
            .enumerate()
            .filter(|(_, b)| b.available != 0 || b.locked != 0)
            .map(move |(i, b)| (AccountId((i / n) as u32), CurrencyId((i % n) as u16), *b))
    }

    pub(crate) fn restore_cell(&mut self, account: AccountId, currency: CurrencyId, b: Balance) {
        let i = self.index(account, currency);
        self.cells[i] = b;
    }

    pub(crate) fn restore_totals(&mut self, currency: CurrencyId, t: CurrencyTotals) {
        self.totals[currency.0 as usize] = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `available_at` and `lock_at` read the table without a bounds check; debug builds (every
    /// test) still catch a cell beyond it where `cell` computes the index.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "balance cell beyond the table")]
    fn a_cell_beyond_the_table_is_caught_in_debug_builds() {
        let ledger = Ledger::new(2, 2);
        let _ = ledger.cell(AccountId(2), CurrencyId(0));
    }

    /// A trade's settlement and an unlock read the table without a bounds check; debug builds
    /// still catch an account beyond it.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "balance cell beyond the table")]
    fn a_settlement_beyond_the_table_is_caught_in_debug_builds() {
        let mut ledger = Ledger::new(2, 2);
        ledger.transfer_locked(AccountId(0), AccountId(2), CurrencyId(1), 0, 0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "balance cell beyond the table")]
    fn an_unlock_beyond_the_table_is_caught_in_debug_builds() {
        let mut ledger = Ledger::new(2, 2);
        ledger.unlock(AccountId(2), CurrencyId(0), 0);
    }

    /// The order path's totals are read without a bounds check; debug builds (every test)
    /// still catch a currency beyond them.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "currency beyond the totals")]
    fn a_currency_beyond_the_totals_is_caught_in_debug_builds() {
        let mut ledger = Ledger::new(2, 2);
        let _ = ledger.totals_mut(CurrencyId(2));
    }

    /// A settlement may fill a cell to exactly `u64::MAX` (available + locked), not beyond.
    #[test]
    fn a_settlement_fills_a_cell_to_the_limit() {
        let mut ledger = ledger_near_the_limit();
        ledger.transfer_locked(AccountId(0), AccountId(1), CurrencyId(0), 10, 5);
        let balance = ledger.get(AccountId(1), CurrencyId(0));
        assert_eq!(balance.available + balance.locked, u64::MAX);
        assert!(ledger.audit().is_ok());
    }

    #[test]
    #[should_panic(expected = "balance cell overflow")]
    fn a_settlement_beyond_the_limit_is_refused() {
        let mut ledger = ledger_near_the_limit();
        ledger.transfer_locked(AccountId(0), AccountId(1), CurrencyId(0), 10, 4);
    }

    /// Account 0 has 10 locked; account 1's cell is 5 below `u64::MAX` (2 of it locked).
    fn ledger_near_the_limit() -> Ledger {
        let mut ledger = Ledger::new(2, 1);
        ledger.register(CurrencyId(0));
        for (account, amount) in [(0, 10), (1, u64::MAX - 5)] {
            assert!(
                ledger
                    .deposit(AccountId(account), CurrencyId(0), Amount(amount))
                    .is_ok()
            );
        }
        assert_eq!(ledger.lock(AccountId(0), CurrencyId(0), 10), Ok(()));
        assert_eq!(ledger.lock(AccountId(1), CurrencyId(0), 2), Ok(()));
        ledger
    }

    #[test]
    fn lock_at_a_cell_moves_available_to_locked() {
        let mut ledger = Ledger::new(2, 2);
        ledger.register(CurrencyId(1));
        assert!(
            ledger
                .deposit(AccountId(1), CurrencyId(1), Amount(10))
                .is_ok()
        );
        let cell = ledger.cell(AccountId(1), CurrencyId(1));
        assert_eq!(ledger.available_at(cell), 10);
        assert_eq!(ledger.lock_at(cell, 11), Err(LedgerError::Insufficient));
        assert_eq!(ledger.lock_at(cell, 4), Ok(()));
        let balance = ledger.get(AccountId(1), CurrencyId(1));
        assert_eq!((balance.available, balance.locked), (6, 4));
        assert!(ledger.audit().is_ok());
    }
}
