//! An account cell's ledger entries for one command, split by cause.
//!
//! The mapper writes each changed cell once per command (from its state before the command to
//! its state after), but one command can change a cell for two reasons: what the command did
//! itself (a new order's lock, a cancel's release, a deposit) and what its trades settled. A user
//! reading the ledger expects fills labelled `trade`, so the mapper splits the cell's change:
//! the trades' part is the sum of the `Trade` events' balance changes
//! ([`Event::balance_changes`]: the buyer pays the quote from its lock and receives the base
//! less its fee; the seller pays the base from its lock and receives the quote less its fee),
//! and the command's own part is the rest. The two entries sum to the cell's change, so balances recomputed from the ledger
//! stay exact.

use peregrine_hotpath::{AccountId, Amount, BalanceChanges, CurrencyId};

/// The `cause` of an entry a trade settled.
pub const TRADE_CAUSE: &str = "trade";

/// Cells one command's trades touch, allocated up front (each trade touches four).
const TRADE_CELLS_INITIAL: usize = 64;

/// A change of an account cell: (available, locked).
pub type Delta = (i128, i128);

/// What the current command's trades did to each account cell.
#[derive(Debug)]
pub struct TradeCells {
    cells: Vec<((AccountId, CurrencyId), Delta)>,
    /// Whether the command traded at all (its fees are then the trades').
    traded: bool,
}

impl Default for TradeCells {
    fn default() -> Self {
        TradeCells {
            cells: Vec::with_capacity(TRADE_CELLS_INITIAL),
            traded: false,
        }
    }
}

impl TradeCells {
    /// Forgets the previous command.
    pub fn clear(&mut self) {
        self.cells.clear();
        self.traded = false;
    }

    /// Whether the command traded.
    pub fn traded(&self) -> bool {
        self.traded
    }

    /// Adds one trade's settlement: its event's balance changes.
    pub fn settled(&mut self, changes: &BalanceChanges) {
        self.traded = true;
        for change in changes.as_slice() {
            self.add(
                (change.account, change.currency),
                (change.available, change.locked),
            );
        }
    }

    fn add(&mut self, cell: (AccountId, CurrencyId), delta: Delta) {
        match self.cells.iter_mut().find(|(c, _)| *c == cell) {
            Some((_, sum)) => {
                sum.0 += delta.0;
                sum.1 += delta.1;
            }
            None => self.cells.push((cell, delta)),
        }
    }

    /// The trades' part of `cell`'s change (zero if no trade touched it).
    pub fn of(&self, cell: (AccountId, CurrencyId)) -> Delta {
        self.cells
            .iter()
            .find(|(c, _)| *c == cell)
            .map_or((0, 0), |(_, delta)| *delta)
    }
}

/// One entry of a split: its cause, change and the cell after it (none when no order of the two
/// parts passes through a state with a negative amount).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// The command's name, or [`TRADE_CAUSE`].
    pub cause: &'static str,
    /// The change.
    pub delta: Delta,
    /// Available and locked after it.
    pub after: Option<(Amount, Amount)>,
}

/// Splits a cell's change from `before` to `after` into the command's own part (`cause`) and the
/// trades' part `trade`: one entry when either part is zero, else two, the command's own first
/// (a lock precedes the fills it pays for) unless that order would pass through a negative
/// amount.
pub fn split(
    cause: &'static str,
    before: (Amount, Amount),
    after: (Amount, Amount),
    trade: Delta,
) -> ([Part; 2], usize) {
    let total = (
        i128::from(after.0.0) - i128::from(before.0.0),
        i128::from(after.1.0) - i128::from(before.1.0),
    );
    let own = (total.0 - trade.0, total.1 - trade.1);
    let last = |cause, delta| Part {
        cause,
        delta,
        after: Some(after),
    };
    if trade == (0, 0) || own == (0, 0) {
        let only = if trade == (0, 0) {
            last(cause, total)
        } else {
            last(TRADE_CAUSE, total)
        };
        return ([only, only], 1);
    }
    let own_first = step(before, own);
    let (first, second) = match (own_first, step(before, trade)) {
        (Some(_), _) | (None, None) => ((cause, own), (TRADE_CAUSE, trade)),
        (None, Some(_)) => ((TRADE_CAUSE, trade), (cause, own)),
    };
    let middle = step(before, first.1);
    let parts = [
        Part {
            cause: first.0,
            delta: first.1,
            after: middle,
        },
        last(second.0, second.1),
    ];
    debug_assert_eq!(parts[0].delta.0 + parts[1].delta.0, total.0);
    debug_assert_eq!(parts[0].delta.1 + parts[1].delta.1, total.1);
    (parts, 2)
}

/// The cell after applying `delta` to `before`, if both amounts stay within 0..=u64::MAX.
fn step(before: (Amount, Amount), delta: Delta) -> Option<(Amount, Amount)> {
    let apply =
        |amount: Amount, delta: i128| u64::try_from(i128::from(amount.0) + delta).ok().map(Amount);
    Some((apply(before.0, delta.0)?, apply(before.1, delta.1)?))
}

#[cfg(test)]
mod tests {
    use peregrine_hotpath::{Event, MarketId, OrderId, Price, Qty, Side, Trade, TradeId};

    use super::*;

    const BASE: CurrencyId = CurrencyId(1);
    const QUOTE: CurrencyId = CurrencyId(2);

    fn trade(taker_side: Side) -> Trade {
        Trade {
            trade: TradeId(1),
            market: MarketId(0),
            price: Price(10),
            qty: Qty(3),
            taker_side,
            maker_order: OrderId(1),
            taker_order: OrderId(2),
            maker_account: AccountId(1),
            taker_account: AccountId(2),
            base_amount: Amount(300),
            quote_amount: Amount(3_000),
            maker_fee: Amount(7),
            taker_fee: Amount(11),
            base: BASE,
            quote: QUOTE,
        }
    }

    fn settled(cells: &mut TradeCells, trade: Trade) {
        cells.settled(&Event::Trade(trade).balance_changes());
    }

    #[test]
    fn a_trade_settles_four_cells_as_the_engine_does() {
        let mut cells = TradeCells::default();
        // Taker buys: it pays quote from its lock and gets base less its (base) fee; the maker
        // sold base from its lock and gets quote less its (quote) fee.
        settled(&mut cells, trade(Side::Buy));
        assert!(cells.traded());
        assert_eq!(cells.of((AccountId(2), QUOTE)), (0, -3_000));
        assert_eq!(cells.of((AccountId(2), BASE)), (300 - 11, 0));
        assert_eq!(cells.of((AccountId(1), BASE)), (0, -300));
        assert_eq!(cells.of((AccountId(1), QUOTE)), (3_000 - 7, 0));
        settled(&mut cells, trade(Side::Sell));
        // Taker sells: the maker (account 1) now buys, paying its fee in base.
        assert_eq!(cells.of((AccountId(1), BASE)), (300 - 7, -300));
        assert_eq!(cells.of((AccountId(2), QUOTE)), (3_000 - 11, -3_000));
        cells.clear();
        assert!(!cells.traded());
        assert_eq!(cells.of((AccountId(1), BASE)), (0, 0));
    }

    #[test]
    fn a_taker_cell_splits_into_its_lock_then_its_fill() {
        // 5 000 available; the order locks 3 500, 3 000 of it is paid in a fill, and the
        // remaining 500 stays locked.
        let before = (Amount(5_000), Amount(0));
        let after = (Amount(1_500), Amount(500));
        let (parts, count) = split("new_order", before, after, (0, -3_000));
        assert_eq!(count, 2);
        assert_eq!(
            parts,
            [
                Part {
                    cause: "new_order",
                    delta: (-3_500, 3_500),
                    after: Some((Amount(1_500), Amount(3_500))),
                },
                Part {
                    cause: TRADE_CAUSE,
                    delta: (0, -3_000),
                    after: Some(after),
                },
            ]
        );
    }

    #[test]
    fn a_cell_only_a_trade_touched_is_one_trade_entry() {
        let before = (Amount(0), Amount(300));
        let after = (Amount(0), Amount(0));
        let (parts, count) = split("new_order", before, after, (0, -300));
        assert_eq!(count, 1);
        assert_eq!(parts[0].cause, TRADE_CAUSE);
        assert_eq!(parts[0].delta, (0, -300));
        let (parts, count) = split("cancel", after, before, (0, 0));
        assert_eq!(
            (count, parts[0].cause, parts[0].delta),
            (1, "cancel", (0, 300))
        );
    }

    #[test]
    fn proceeds_spent_in_the_same_command_put_the_trade_first() {
        // Nothing available before; a fill brings 1 000, and the command then locks 800 of it
        // (a stop triggered by the trade): the lock cannot come first.
        let before = (Amount(0), Amount(0));
        let after = (Amount(200), Amount(800));
        let (parts, count) = split("new_order", before, after, (1_000, 0));
        assert_eq!(count, 2);
        assert_eq!(parts[0].cause, TRADE_CAUSE);
        assert_eq!(parts[0].after, Some((Amount(1_000), Amount(0))));
        assert_eq!(parts[1].delta, (-800, 800));
    }
}
