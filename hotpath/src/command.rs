//! Commands: everything that can change the engine's state. Each travels in an [`Envelope`]
//! that carries the sequencer's timestamp (so the engine never reads a clock; replaying the same
//! envelopes yields the same events) and the [`Actor`] who issued it (so every change in the
//! journal can be traced to its author).

use crate::ids::{
    AccountId, Amount, ApiKeyId, ClientOrderId, CurrencyId, DepositId, MarketId, OperatorId,
    OrderId, Price, Qty, Side, TimestampNs, UserId, WithdrawalId,
};

/// One sequenced command: the unit the sequencer journals and the engine applies.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Envelope {
    /// When the sequencer accepted it; feeds rate limits, never used for ordering.
    pub ts: TimestampNs,
    /// Who issued it. The engine never decides by it (authorisation happens at the edges, before
    /// sequencing); it is recorded so that the journal answers "who did this".
    pub actor: Actor,
    /// What to do.
    pub kind: CommandKind,
}

/// Who issued a command.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[non_exhaustive]
pub enum Actor {
    /// The appliance itself: the catalog it declares at start, and work it schedules.
    System,
    /// A client authenticated by an API key (QUIC ed25519 keys by their `key_id`; REST keys by
    /// [`ApiKeyId::of_key`] of their public key string).
    ApiKey(ApiKeyId),
    /// A user's signed-in session (the identity service's user id).
    User(UserId),
    /// An operator through the control API.
    Operator(OperatorId),
    /// A back-office service of the control plane.
    Service(Service),
}

/// The back-office services that submit commands in their own name.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[non_exhaustive]
pub enum Service {
    /// The wallet daemons: confirmed deposits, withdrawals.
    Wallet,
    /// The identity service.
    Identity,
    /// The demo market maker of `peregrine up --demo`: the deposit that funds its accounts.
    MarketMaker,
}

impl core::fmt::Display for Actor {
    /// The form `peregrine replay` prints: `system`, `api-key:7`, `user:12`, `operator:0`,
    /// `service:wallet`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::ApiKey(key) => write!(f, "api-key:{key}"),
            Actor::User(user) => write!(f, "user:{user}"),
            Actor::Operator(operator) => write!(f, "operator:{operator}"),
            Actor::Service(Service::Wallet) => f.write_str("service:wallet"),
            Actor::Service(Service::Identity) => f.write_str("service:identity"),
            Actor::Service(Service::MarketMaker) => f.write_str("service:market-maker"),
        }
    }
}

/// What a command asks for.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[non_exhaustive]
pub enum CommandKind {
    /// Place an order.
    NewOrder(NewOrder),
    /// Cancel one order of the account.
    Cancel {
        /// Whose order.
        account: AccountId,
        /// Which order.
        target: OrderRef,
    },
    /// Change the price and/or quantity of a resting order. A price change or a size increase
    /// loses time priority; a size decrease keeps it.
    CancelReplace(CancelReplace),
    /// Cancel every open order of an account, optionally only in one market and/or side.
    MassCancel {
        /// Whose orders.
        account: AccountId,
        /// Only this market.
        market: Option<MarketId>,
        /// Only this side.
        side: Option<Side>,
    },
    /// Register a currency so balances in it may exist.
    CurrencyAdd {
        /// The dense id.
        currency: CurrencyId,
    },
    /// Credit a confirmed deposit.
    Deposit {
        /// Credited account.
        account: AccountId,
        /// Currency deposited.
        currency: CurrencyId,
        /// Amount, in minor units.
        amount: Amount,
        /// The idempotency key, chosen by whoever confirmed the deposit (the wallet service, an
        /// operator): the engine credits each id at most once, also across restarts.
        deposit: DepositId,
    },
    /// Move funds from available to held for a withdrawal being processed.
    WithdrawalHold {
        /// Account withdrawing.
        account: AccountId,
        /// Currency withdrawn.
        currency: CurrencyId,
        /// Amount, in minor units.
        amount: Amount,
        /// Unique among pending withdrawals.
        withdrawal: WithdrawalId,
    },
    /// The withdrawal left the exchange: the held funds are gone.
    WithdrawalSettle {
        /// Which pending withdrawal.
        withdrawal: WithdrawalId,
    },
    /// The withdrawal failed or was cancelled: the held funds return to available.
    WithdrawalRelease {
        /// Which pending withdrawal.
        withdrawal: WithdrawalId,
    },
    /// Add a market.
    MarketAdd(MarketSpec),
    /// Change a market's risk parameters (tick and lot sizes never change).
    MarketUpdate(MarketUpdate),
    /// Stop accepting new orders in a market; cancels still work.
    MarketHalt {
        /// Which market.
        market: MarketId,
    },
    /// Resume a halted market.
    MarketResume {
        /// Which market.
        market: MarketId,
    },
    /// Turn an account's kill switch on (cancel all its orders and refuse new ones) or off.
    KillSwitch {
        /// Which account.
        account: AccountId,
        /// On or off.
        on: bool,
    },
    /// Set the maker/taker fee rates of one tier in one market.
    FeeScheduleUpdate {
        /// Which market.
        market: MarketId,
        /// Which tier (`0..MAX_FEE_TIERS`).
        tier: u8,
        /// Fee rates.
        rates: FeeRates,
    },
    /// Put an account in a fee tier.
    AccountFeeTier {
        /// Which account.
        account: AccountId,
        /// Which tier (`0..MAX_FEE_TIERS`).
        tier: u8,
    },
    /// The identity service's audit chain head, journaled so that cutting or rewriting the
    /// audit table afterwards shows (`peregrine audit verify` compares). Changes no engine
    /// state and emits no event.
    AuditAnchor(AuditAnchor),
    // New variants go last: the archived discriminant is the declaration order, and journals
    // written before them must still read.
    /// Set a market's state (`MarketHalt` is `Locked`, `MarketResume` is `Enabled`).
    MarketStateSet {
        /// Which market.
        market: MarketId,
        /// The new state.
        state: MarketState,
    },
    /// Create a currency at runtime: registered as `CurrencyAdd` registers it, with its code,
    /// display name and precision kept in the engine (and its snapshots), so replaying the
    /// journal or restoring a snapshot rebuilds the catalog. Boxed: rare, and larger than the
    /// commands of the hot path.
    CurrencyCreate(Box<crate::reference::CurrencyCreate>),
    /// Create a market at runtime: added as `MarketAdd` adds it, in its initial state, with its
    /// name and decimal tick and lot kept in the engine (and its snapshots).
    MarketCreate(Box<crate::reference::MarketCreate>),
}

/// An audit chain head as identity read it (actor `service:identity`). Its idempotency key is
/// `seq`: anchoring the same head twice journals the same fact twice, which verification
/// accepts; two anchors of one `seq` with different hashes are themselves proof of a rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct AuditAnchor {
    /// The head record's sequence number in the audit chain (from 1).
    pub seq: u64,
    /// That record's chain hash (SHA-256).
    pub hash: [u8; 32],
}

/// An order by the engine's id or by the client's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum OrderRef {
    /// The engine's id.
    Id(OrderId),
    /// The client's id (unique per account among live orders).
    Client(ClientOrderId),
}

/// A new order.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct NewOrder {
    /// Who places it.
    pub account: AccountId,
    /// Where.
    pub market: MarketId,
    /// The client's id for it.
    pub client_order_id: ClientOrderId,
    /// Buy or sell.
    pub side: Side,
    /// Limit, market, stop.
    pub kind: OrderKind,
    /// How long it lives.
    pub tif: TimeInForce,
    /// What to do when it would trade with the same account.
    pub stp: SelfTradePrevention,
}

/// The order types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[non_exhaustive]
pub enum OrderKind {
    /// Trade at `price` or better.
    Limit {
        /// Limit price.
        price: Price,
        /// Quantity.
        qty: Qty,
    },
    /// Trade now at the best prices, within the market's protection band; never rests.
    Market {
        /// By quantity, or (buy only) by quote budget.
        size: MarketSize,
    },
    /// A limit order that enters the book when the last trade price reaches `trigger`.
    StopLimit {
        /// Buy: last >= trigger; sell: last <= trigger.
        trigger: Price,
        /// Limit price once triggered.
        price: Price,
        /// Quantity.
        qty: Qty,
    },
    /// A market order sent when the last trade price reaches `trigger`.
    StopMarket {
        /// Buy: last >= trigger; sell: last <= trigger.
        trigger: Price,
        /// By quantity (sell), or by quote budget (buy).
        size: MarketSize,
    },
}

/// How big a market order is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum MarketSize {
    /// A quantity of base lots.
    Qty(Qty),
    /// Spend at most this much quote (buy only).
    QuoteBudget(Amount),
}

/// Time in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[non_exhaustive]
pub enum TimeInForce {
    /// Rests until filled or cancelled.
    Gtc,
    /// Immediate or cancel: trades what it can now, the rest is cancelled.
    Ioc,
    /// Fill or kill: trades all now or is rejected without trading.
    Fok,
    /// Good till cancelled, but rejected if any part would trade on entry.
    PostOnly,
}

/// Self-trade prevention: what happens when an order would trade with its own account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[non_exhaustive]
pub enum SelfTradePrevention {
    /// Cancel the incoming order's remainder.
    CancelNewest,
    /// Cancel the resting order and keep matching.
    CancelOldest,
    /// Cancel both.
    CancelBoth,
}

/// A cancel-replace.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct CancelReplace {
    /// Whose order.
    pub account: AccountId,
    /// Which order.
    pub target: OrderRef,
    /// New limit price; `None` keeps it.
    pub new_price: Option<Price>,
    /// New open (remaining) quantity.
    pub new_qty: Qty,
}

/// Maker and taker fee rates in parts per million of the amount received.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct FeeRates {
    /// Charged to the resting side.
    pub maker_ppm: u32,
    /// Charged to the incoming side.
    pub taker_ppm: u32,
}

/// A new market.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct MarketSpec {
    /// Dense id.
    pub market: MarketId,
    /// What is bought and sold.
    pub base: CurrencyId,
    /// What it is priced in.
    pub quote: CurrencyId,
    /// Base minor units in one lot.
    pub base_per_lot: u64,
    /// Quote minor units that one lot costs per tick of price.
    pub quote_per_tick_lot: u64,
    /// Risk parameters.
    pub risk: MarketRisk,
    /// Tier-0 fees (other tiers start equal and change with `FeeScheduleUpdate`).
    pub fees: FeeRates,
}

/// A market's risk parameters.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct MarketRisk {
    /// Highest acceptable price.
    pub max_price: Price,
    /// Largest quantity of one order.
    pub max_qty: Qty,
    /// Largest notional (quote minor units) of one order.
    pub max_notional: Amount,
    /// Price band, in basis points of the reference price, on the side that can trade at once:
    /// a limit buy above reference + band or a limit sell below reference - band is rejected
    /// (a buy below or a sell above can only rest, and is accepted anywhere in
    /// `1..=max_price`); market orders trade no further than the band from the reference.
    /// 0 is no band (market orders are then bounded by `max_price` and 1 only); at most
    /// [`BAND_BPS_MAX`](crate::BAND_BPS_MAX).
    pub band_bps: u32,
    /// Reference price until the first trade (then the last trade price is used).
    pub reference_price: Price,
}

/// What a market accepts. The engine refuses new orders (and replaces, which may trade) in
/// `Disabled` and `Locked`, and never refuses a cancel, so no funds are ever trapped in a
/// book; `Hidden` and `Disabled` are for the listings (the public market list omits them).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[non_exhaustive]
pub enum MarketState {
    /// Listed and trading.
    #[default]
    Enabled,
    /// Trading, but not listed publicly (a market being prepared, or for invited traders).
    Hidden,
    /// Not listed; new orders and replaces refused (`MarketDisabled`), cancels work.
    Disabled,
    /// Listed; cancels only: new orders and replaces refused (`MarketHalted`). A halt.
    Locked,
}

impl MarketState {
    /// Every state, in wire order.
    pub const ALL: [MarketState; 4] = [
        MarketState::Enabled,
        MarketState::Hidden,
        MarketState::Disabled,
        MarketState::Locked,
    ];

    /// Its name in the APIs: `enabled`, `hidden`, `disabled`, `locked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MarketState::Enabled => "enabled",
            MarketState::Hidden => "hidden",
            MarketState::Disabled => "disabled",
            MarketState::Locked => "locked",
        }
    }

    /// The state named `name` ([`MarketState::as_str`]).
    pub fn parse(name: &str) -> Option<MarketState> {
        MarketState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether new orders (and replaces) are refused.
    pub const fn refuses_orders(self) -> bool {
        matches!(self, MarketState::Disabled | MarketState::Locked)
    }

    /// Whether the public market list shows it.
    pub const fn listed(self) -> bool {
        matches!(self, MarketState::Enabled | MarketState::Locked)
    }
}

/// A change of a market's risk parameters.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct MarketUpdate {
    /// Which market.
    pub market: MarketId,
    /// New risk parameters.
    pub risk: MarketRisk,
}
