//! Events: everything the engine tells the world. Every command produces either exactly one
//! `Rejected` (and nothing else: a rejected command changes nothing) or its accepted events.

use crate::command::{FeeRates, MarketRisk};
use crate::ids::{
    AccountId, Amount, ClientOrderId, CurrencyId, DepositId, MarketId, OrderId, Price, Qty, Side,
    TradeId, WithdrawalId,
};

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
    },
    /// An order (or what is left of it) now rests in the book.
    OrderRested {
        /// Engine's id.
        order: OrderId,
        /// Market.
        market: MarketId,
        /// Side.
        side: Side,
        /// Price level.
        price: Price,
        /// Quantity resting.
        qty: Qty,
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
    },
    /// A mass cancel or kill switch finished; `count` orders were cancelled by it.
    MassCancelled {
        /// Whose orders.
        account: AccountId,
        /// How many.
        count: u32,
    },
    /// A balance changed; the state after the change.
    Balance {
        /// Account.
        account: AccountId,
        /// Currency.
        currency: CurrencyId,
        /// Free to trade or withdraw.
        available: Amount,
        /// Held by open orders and pending withdrawals.
        locked: Amount,
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
