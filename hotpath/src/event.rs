//! Events: everything the engine tells the world. Every command produces either exactly one
//! `Rejected` (and nothing else: a rejected command changes nothing) or its accepted events.
//!
//! Balances ride on the events that change them (event format 2): an order's lock on
//! `OrderAccepted`, what a resting, filled or cancelled order releases on `OrderRested`,
//! `OrderFilled` and `OrderCancelled`, a replace's new lock on `OrderReplaced`, both sides'
//! settlement on `Trade`, and the funds events their amounts. [`Event::balance_changes`] is the
//! one interpretation of them: every consumer that keeps balances (views, replica ledger, the
//! cluster's sweep) uses it. Format 1 had a `Balance` event per changed cell after each command
//! (the state after); it cost ~130 instructions a command to build and is gone. Events are never
//! persisted (the journal holds commands, the replica rows, snapshots state), so nothing old
//! has to be read in format 1.

use crate::command::{FeeRates, MarketRisk, MarketState};
use crate::ids::{
    AccountId, Amount, ClientOrderId, CurrencyId, DepositId, MarketId, OrderId, Price, Qty, Side,
    TradeId, WithdrawalId,
};

/// Bytes of one event: a trade (nine 8-byte fields and the rest) is the largest; events are
/// written into the caller's vector on the hot path, so a larger one costs every push.
const EVENT_BYTES_MAX: usize = 96;
const _: () = assert!(core::mem::size_of::<Event>() <= EVENT_BYTES_MAX);

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// The command was refused and changed nothing.
    Rejected {
        /// Why.
        reason: RejectReason,
    },
    /// A new order was accepted (it may trade, rest, or wait for its trigger next).
    OrderAccepted {
        /// Engine's id.
        order: OrderId,
        /// Owner.
        account: AccountId,
        /// Market.
        market: MarketId,
        /// Client's id.
        client_order_id: ClientOrderId,
        /// Side.
        side: Side,
        /// Limit price (market orders: the protection price; stop-market: 0 until triggered).
        price: Price,
        /// Quantity (0 for a market buy by quote budget).
        qty: Qty,
        /// The currency the order spends (quote for a buy, base for a sell).
        spend: CurrencyId,
        /// What the order locked: moved from available to locked in `spend`.
        locked: Amount,
    },
    /// An order (or what is left of it) now rests in the book.
    OrderRested {
        /// Engine's id.
        order: OrderId,
        /// Owner.
        account: AccountId,
        /// Market.
        market: MarketId,
        /// Side.
        side: Side,
        /// Price level.
        price: Price,
        /// Quantity resting.
        qty: Qty,
        /// The currency the order spends.
        spend: CurrencyId,
        /// The lock above what resting needs (a better fill, a market order's protection
        /// price): moved from locked back to available in `spend`.
        released: Amount,
    },
    /// A stop order's trigger was reached; it now acts as a limit or market order.
    StopTriggered {
        /// Engine's id.
        order: OrderId,
        /// Market.
        market: MarketId,
    },
    /// Two orders traded.
    Trade(Trade),
    /// An order is fully filled.
    OrderFilled {
        /// Engine's id.
        order: OrderId,
        /// Owner.
        account: AccountId,
        /// Client's id.
        client_order_id: ClientOrderId,
        /// The currency the order spent.
        spend: CurrencyId,
        /// What its lock still held (better fills): moved from locked back to available.
        released: Amount,
    },
    /// An order (or its remainder) was cancelled.
    OrderCancelled {
        /// Engine's id.
        order: OrderId,
        /// Owner.
        account: AccountId,
        /// Client's id.
        client_order_id: ClientOrderId,
        /// Market.
        market: MarketId,
        /// Side.
        side: Side,
        /// Price it rested at (0 if it never rested).
        price: Price,
        /// Quantity that was still open.
        remaining: Qty,
        /// Why.
        reason: CancelReason,
        /// The currency the order spends.
        spend: CurrencyId,
        /// What its lock held: moved from locked back to available.
        released: Amount,
    },
    /// A resting order's price and/or quantity changed.
    OrderReplaced {
        /// Engine's id.
        order: OrderId,
        /// Owner.
        account: AccountId,
        /// Market.
        market: MarketId,
        /// Side.
        side: Side,
        /// Price before.
        old_price: Price,
        /// Open quantity before.
        old_qty: Qty,
        /// Price now.
        price: Price,
        /// Open quantity now.
        qty: Qty,
        /// Whether it kept its place in the queue.
        priority_kept: bool,
        /// The currency the order spends.
        spend: CurrencyId,
        /// The order's lock before (its open quantity at its price).
        old_locked: Amount,
        /// The order's lock now; the difference moved between available and locked.
        locked: Amount,
    },
    /// A mass cancel or kill switch finished; `count` orders were cancelled by it.
    MassCancelled {
        /// Whose orders.
        account: AccountId,
        /// How many.
        count: u32,
    },
    /// A currency was registered.
    CurrencyAdded {
        /// Which.
        currency: CurrencyId,
    },
    /// A deposit was credited.
    Deposited {
        /// Account.
        account: AccountId,
        /// Currency.
        currency: CurrencyId,
        /// Amount.
        amount: Amount,
        /// Wallet service's id.
        deposit: DepositId,
    },
    /// Funds were held for a withdrawal.
    WithdrawalHeld {
        /// Which.
        withdrawal: WithdrawalId,
        /// Account.
        account: AccountId,
        /// Currency.
        currency: CurrencyId,
        /// Amount.
        amount: Amount,
    },
    /// A withdrawal left the exchange.
    WithdrawalSettled {
        /// Which.
        withdrawal: WithdrawalId,
        /// Account.
        account: AccountId,
        /// Currency.
        currency: CurrencyId,
        /// Amount.
        amount: Amount,
    },
    /// A withdrawal's held funds returned to available.
    WithdrawalReleased {
        /// Which.
        withdrawal: WithdrawalId,
        /// Account.
        account: AccountId,
        /// Currency.
        currency: CurrencyId,
        /// Amount.
        amount: Amount,
    },
    /// A market was added.
    MarketAdded {
        /// Which.
        market: MarketId,
    },
    /// A market's risk parameters changed.
    MarketUpdated {
        /// Which.
        market: MarketId,
        /// New parameters.
        risk: MarketRisk,
    },
    /// A market was halted.
    MarketHalted {
        /// Which.
        market: MarketId,
    },
    /// A market was resumed.
    MarketResumed {
        /// Which.
        market: MarketId,
    },
    /// An account's kill switch changed.
    KillSwitchSet {
        /// Which account.
        account: AccountId,
        /// On or off.
        on: bool,
    },
    /// A fee tier changed.
    FeeScheduleUpdated {
        /// Market.
        market: MarketId,
        /// Tier.
        tier: u8,
        /// New rates.
        rates: FeeRates,
    },
    /// An account moved to a fee tier.
    AccountFeeTierSet {
        /// Account.
        account: AccountId,
        /// Tier.
        tier: u8,
    },
    // New variants go last (the archived discriminant is the declaration order).
    /// A market's state changed (`MarketStateSet`; a halt or resume emits its own event).
    MarketStateChanged {
        /// Which.
        market: MarketId,
        /// The new state.
        state: MarketState,
    },
}

/// One trade between a resting (maker) and an incoming (taker) order, at the maker's price.
#[derive(Clone, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Trade {
    /// Engine's id.
    pub trade: TradeId,
    /// Market.
    pub market: MarketId,
    /// Execution price (the maker's).
    pub price: Price,
    /// Quantity traded.
    pub qty: Qty,
    /// The taker's side.
    pub taker_side: Side,
    /// Resting order.
    pub maker_order: OrderId,
    /// Incoming order.
    pub taker_order: OrderId,
    /// Resting order's owner.
    pub maker_account: AccountId,
    /// Incoming order's owner.
    pub taker_account: AccountId,
    /// Base minor units exchanged.
    pub base_amount: Amount,
    /// Quote minor units exchanged.
    pub quote_amount: Amount,
    /// Fee charged to the maker, in the currency it received.
    pub maker_fee: Amount,
    /// Fee charged to the taker, in the currency it received.
    pub taker_fee: Amount,
    /// The market's base currency (the seller pays `base_amount` of it from its lock).
    pub base: CurrencyId,
    /// The market's quote currency (the buyer pays `quote_amount` of it from its lock).
    pub quote: CurrencyId,
}

impl Trade {
    /// (buyer, seller, buyer's fee, seller's fee): the buyer pays quote and receives base less
    /// its fee, the seller the other way round.
    pub fn parties(&self) -> (AccountId, AccountId, Amount, Amount) {
        match self.taker_side {
            Side::Buy => (
                self.taker_account,
                self.maker_account,
                self.taker_fee,
                self.maker_fee,
            ),
            Side::Sell => (
                self.maker_account,
                self.taker_account,
                self.maker_fee,
                self.taker_fee,
            ),
        }
    }
}

/// One balance cell's change as an event implies it: exactly what the engine did to the cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceChange {
    /// Account.
    pub account: AccountId,
    /// Currency.
    pub currency: CurrencyId,
    /// Change of the available amount.
    pub available: i128,
    /// Change of the locked amount.
    pub locked: i128,
}

impl BalanceChange {
    /// The cell `(available, locked)` after this change; `None` if either would leave
    /// `0..=u64::MAX` (a consumer that did not start from the engine's balances).
    pub fn apply_to(&self, available: Amount, locked: Amount) -> Option<(Amount, Amount)> {
        let step = |amount: Amount, delta: i128| {
            u64::try_from(i128::from(amount.0) + delta).ok().map(Amount)
        };
        Some((step(available, self.available)?, step(locked, self.locked)?))
    }
}

/// Balance cells one event changes, at most: a trade settles four.
pub const BALANCE_CHANGES_MAX: usize = 4;

/// The balance changes of one event, in the order the engine makes them.
#[derive(Clone, Copy, Debug)]
pub struct BalanceChanges {
    items: [BalanceChange; BALANCE_CHANGES_MAX],
    len: usize,
}

impl BalanceChanges {
    const NONE: BalanceChange = BalanceChange {
        account: AccountId(0),
        currency: CurrencyId(0),
        available: 0,
        locked: 0,
    };

    fn push(&mut self, account: AccountId, currency: CurrencyId, available: i128, locked: i128) {
        assert!(
            self.len < BALANCE_CHANGES_MAX,
            "more balance changes than an event has"
        );
        self.items[self.len] = BalanceChange {
            account,
            currency,
            available,
            locked,
        };
        self.len += 1;
    }

    /// Moves `amount` from available to locked (`amount` > 0), or back (< 0).
    fn lock(&mut self, account: AccountId, currency: CurrencyId, amount: i128) {
        self.push(account, currency, -amount, amount);
    }

    /// The changes, as a slice.
    pub fn as_slice(&self) -> &[BalanceChange] {
        &self.items[..self.len]
    }
}

impl Event {
    /// The balance changes this event carries: the one interpretation of balances in events.
    /// A cell the engine changed appears here exactly when the engine changed it (a release of
    /// nothing is no change), so applying every event's changes to the balances the engine
    /// started from yields its balances after every command.
    pub fn balance_changes(&self) -> BalanceChanges {
        let mut changes = BalanceChanges {
            items: [BalanceChanges::NONE; BALANCE_CHANGES_MAX],
            len: 0,
        };
        let amount = |a: &Amount| i128::from(a.0);
        match self {
            Event::OrderAccepted {
                account,
                spend,
                locked,
                ..
            } => changes.lock(*account, *spend, amount(locked)),
            Event::OrderRested {
                account,
                spend,
                released,
                ..
            }
            | Event::OrderFilled {
                account,
                spend,
                released,
                ..
            }
            | Event::OrderCancelled {
                account,
                spend,
                released,
                ..
            } if released.0 > 0 => changes.lock(*account, *spend, -amount(released)),
            Event::OrderReplaced {
                account,
                spend,
                old_locked,
                locked,
                ..
            } if locked != old_locked => {
                changes.lock(*account, *spend, amount(locked) - amount(old_locked))
            }
            Event::Trade(trade) => {
                let (buyer, seller, buyer_fee, seller_fee) = trade.parties();
                let (base, quote) = (amount(&trade.base_amount), amount(&trade.quote_amount));
                changes.push(buyer, trade.quote, 0, -quote);
                changes.push(seller, trade.quote, quote - amount(&seller_fee), 0);
                changes.push(seller, trade.base, 0, -base);
                changes.push(buyer, trade.base, base - amount(&buyer_fee), 0);
            }
            Event::Deposited {
                account,
                currency,
                amount: a,
                ..
            } => changes.push(*account, *currency, amount(a), 0),
            Event::WithdrawalHeld {
                account,
                currency,
                amount: a,
                ..
            } => changes.lock(*account, *currency, amount(a)),
            Event::WithdrawalSettled {
                account,
                currency,
                amount: a,
                ..
            } => changes.push(*account, *currency, 0, -amount(a)),
            Event::WithdrawalReleased {
                account,
                currency,
                amount: a,
                ..
            } => changes.lock(*account, *currency, -amount(a)),
            // Everything else, and a release of nothing or a replace that keeps its lock.
            _ => {}
        }
        changes
    }
}

/// Why an order was cancelled.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[non_exhaustive]
#[repr(u8)]
pub enum CancelReason {
    /// The owner asked.
    Requested = 1,
    /// Mass cancel.
    MassCancel = 2,
    /// Kill switch.
    KillSwitch = 3,
    /// IOC or market order: the part that could not trade now.
    Unfilled = 4,
    /// Self-trade prevention.
    SelfTrade = 5,
    /// A market buy's quote budget cannot buy another lot.
    BudgetExhausted = 6,
    /// A triggered stop could not be placed (price band, post-only).
    StopRejected = 7,
}

/// Why a command was rejected. Codes are stable: clients see them on the wire.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[non_exhaustive]
#[repr(u16)]
pub enum RejectReason {
    /// The account id is outside the configured range.
    UnknownAccount = 1,
    /// No such market.
    UnknownMarket = 2,
    /// No such currency.
    UnknownCurrency = 3,
    /// No such live order for this account.
    UnknownOrder = 4,
    /// The market is halted.
    MarketHalted = 5,
    /// Not enough available balance.
    InsufficientBalance = 6,
    /// Quantity is zero.
    ZeroQty = 7,
    /// Quantity exceeds the market's maximum.
    QtyTooLarge = 8,
    /// Price is zero or above the market's maximum.
    InvalidPrice = 9,
    /// Price is further from the reference than the band allows.
    PriceOutOfBand = 10,
    /// Notional exceeds the market's maximum.
    NotionalTooLarge = 11,
    /// The account has too many open orders.
    TooManyOpenOrders = 12,
    /// The account sent orders faster than its rate limit.
    RateLimited = 13,
    /// The account's kill switch is on.
    KillSwitchActive = 14,
    /// The client order id is already used by a live order of this account.
    DuplicateClientOrderId = 15,
    /// A post-only order would have traded.
    PostOnlyWouldTake = 16,
    /// A fill-or-kill order could not fill completely.
    FokNotFillable = 17,
    /// Order type and time in force do not go together (e.g. market + GTC, FOK stop).
    InvalidOrderType = 18,
    /// The book side has no room for another price level.
    BookFull = 19,
    /// The engine has no room for another order.
    OrderCapacity = 20,
    /// The stop trigger is already reached.
    StopWouldTriggerNow = 21,
    /// A market id is already in use.
    MarketExists = 22,
    /// The market specification is invalid (sizes, currencies, band).
    InvalidMarketSpec = 23,
    /// The currency is already registered.
    CurrencyExists = 24,
    /// The withdrawal id was used before (pending or finished).
    DuplicateWithdrawal = 25,
    /// No such pending withdrawal.
    UnknownWithdrawal = 26,
    /// Too many pending withdrawals.
    WithdrawalCapacity = 27,
    /// An amount would overflow.
    AmountOverflow = 28,
    /// Zero amount.
    ZeroAmount = 29,
    /// Fee tier outside `0..MAX_FEE_TIERS` or rate above the maximum.
    InvalidFee = 30,
    /// The replace changes nothing, or targets a stop or a market order.
    InvalidReplace = 31,
    /// A quote budget is only for buys; a stop-market buy needs one.
    InvalidMarketSize = 32,
    /// The currency id is outside the configured range.
    CurrencyOutOfRange = 33,
    /// The deposit id was credited before.
    DuplicateDeposit = 34,
    /// The idempotency key (deposit or withdrawal id) is at or below the oldest the engine
    /// still remembers, so it cannot be proven new; nothing was applied.
    IdempotencyKeyExpired = 35,
    /// The market is disabled: no new orders or replaces (cancels still work).
    MarketDisabled = 36,
}

impl RejectReason {
    /// The stable wire code.
    pub const fn code(self) -> u16 {
        self as u16
    }
}

impl core::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: CurrencyId = CurrencyId(1);
    const QUOTE: CurrencyId = CurrencyId(2);

    fn trade(taker_side: Side) -> Event {
        Event::Trade(Trade {
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
        })
    }

    fn change(account: u32, currency: CurrencyId, available: i128, locked: i128) -> BalanceChange {
        BalanceChange {
            account: AccountId(account),
            currency,
            available,
            locked,
        }
    }

    #[test]
    fn a_trade_settles_four_cells_as_the_engine_does() {
        // Taker (2) buys: pays quote from its lock, gets base less its fee; the maker (1) sold
        // base from its lock and gets quote less its fee. In the engine's order.
        assert_eq!(
            trade(Side::Buy).balance_changes().as_slice(),
            [
                change(2, QUOTE, 0, -3_000),
                change(1, QUOTE, 3_000 - 7, 0),
                change(1, BASE, 0, -300),
                change(2, BASE, 300 - 11, 0),
            ]
        );
        // Taker (2) sells: the maker (1) buys and pays its fee in base.
        assert_eq!(
            trade(Side::Sell).balance_changes().as_slice(),
            [
                change(1, QUOTE, 0, -3_000),
                change(2, QUOTE, 3_000 - 11, 0),
                change(2, BASE, 0, -300),
                change(1, BASE, 300 - 7, 0),
            ]
        );
    }

    #[test]
    fn a_release_of_nothing_is_no_change_and_a_replace_moves_the_difference() {
        let filled = |released| Event::OrderFilled {
            order: OrderId(1),
            account: AccountId(4),
            client_order_id: ClientOrderId(9),
            spend: QUOTE,
            released: Amount(released),
        };
        assert!(filled(0).balance_changes().as_slice().is_empty());
        assert_eq!(
            filled(5).balance_changes().as_slice(),
            [change(4, QUOTE, 5, -5)]
        );
        let replaced = |old, new| Event::OrderReplaced {
            order: OrderId(1),
            account: AccountId(4),
            market: MarketId(0),
            side: Side::Buy,
            old_price: Price(10),
            old_qty: Qty(2),
            price: Price(10),
            qty: Qty(3),
            priority_kept: false,
            spend: QUOTE,
            old_locked: Amount(old),
            locked: Amount(new),
        };
        assert_eq!(
            replaced(20, 30).balance_changes().as_slice(),
            [change(4, QUOTE, -10, 10)]
        );
        assert_eq!(
            replaced(30, 20).balance_changes().as_slice(),
            [change(4, QUOTE, 10, -10)]
        );
        assert!(replaced(20, 20).balance_changes().as_slice().is_empty());
    }

    #[test]
    fn a_change_that_would_go_negative_does_not_apply() {
        let release = change(4, QUOTE, 5, -5);
        assert_eq!(
            release.apply_to(Amount(1), Amount(5)),
            Some((Amount(6), Amount(0)))
        );
        assert_eq!(release.apply_to(Amount(1), Amount(4)), None);
        let credit = change(4, QUOTE, 1, 0);
        assert_eq!(credit.apply_to(Amount(u64::MAX), Amount(0)), None);
    }
}
