//! The messages of protocol `peregrine/2`, as typed values. The byte layout of each lives in
//! [`codec`](crate::codec); `proto/PROTOCOL.md` is the normative description.
//!
//! Parse, don't validate: a [`Request`] or [`Reply`] only exists once every field was checked, so
//! the rest of the gateway never sees an out-of-range enum or a non-zero padding byte.

use crate::directory::{CurrencyInfo, MarketInfo};
use peregrine_hotpath::{
    AccountId, Amount, CancelReason, ClientOrderId, CurrencyId, MarketId, OrderId, OrderKind,
    OrderRef, Price, Qty, RejectReason, SelfTradePrevention, Side, TimeInForce, TradeId,
};

/// The protocol version carried in every frame header. Version 2 added the directory after
/// `LogonAck` and the balance query (`proto/PROTOCOL.md`, "Versions").
pub const PROTOCOL_VERSION: u8 = 2;
/// The TLS ALPN identifier of this protocol version: a client of another version fails the
/// handshake instead of misreading frames.
pub const ALPN: &[u8] = b"peregrine/2";
/// Largest frame either side may send, header included. Every message is fixed-size and the
/// largest is 76 bytes; the bound leaves room for v1 additions without a version bump.
pub const MAX_FRAME_BYTES: usize = 128;
/// Bytes of the random challenge a server issues at logon.
pub const CHALLENGE_BYTES: usize = 32;
/// Bytes of an ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;
/// Domain separator prefixed to the challenge before signing, so a logon signature can never be
/// replayed as a signature of anything else.
pub const LOGON_CONTEXT: &[u8] = b"peregrine/2 logon\0";

/// A client-chosen request id, echoed in the replies to that request (0 = none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// An API key id, registered in the gateway's configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u64);

/// A session id assigned by the gateway at logon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// A per-market sequence number of market data: each trade and each level change increments it
/// by one, so a gap means a lost message and the subscriber resyncs from a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MarketSeq(pub u64);

/// The bytes the client signs at logon: [`LOGON_CONTEXT`] then the challenge.
pub fn logon_message(
    challenge: &[u8; CHALLENGE_BYTES],
) -> [u8; LOGON_CONTEXT.len() + CHALLENGE_BYTES] {
    let mut message = [0u8; LOGON_CONTEXT.len() + CHALLENGE_BYTES];
    message[..LOGON_CONTEXT.len()].copy_from_slice(LOGON_CONTEXT);
    message[LOGON_CONTEXT.len()..].copy_from_slice(challenge);
    message
}

/// A client-to-server message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// First frame of a session: asks for a challenge.
    Hello,
    /// Proves possession of the key: an ed25519 signature over [`logon_message`].
    Logon {
        /// Which key.
        key_id: KeyId,
        /// The signature.
        signature: [u8; SIGNATURE_BYTES],
    },
    /// Place an order.
    NewOrder {
        /// Correlation id.
        req: RequestId,
        /// The client's id for the order; the dedup key of resends.
        client_order_id: ClientOrderId,
        /// Where.
        market: MarketId,
        /// Buy or sell.
        side: Side,
        /// Type, price and size.
        kind: OrderKind,
        /// Time in force.
        tif: TimeInForce,
        /// Self-trade prevention.
        stp: SelfTradePrevention,
    },
    /// Cancel one order.
    Cancel {
        /// Correlation id.
        req: RequestId,
        /// Which order.
        target: OrderRef,
    },
    /// Change a resting order's price and/or quantity.
    CancelReplace {
        /// Correlation id.
        req: RequestId,
        /// Which order.
        target: OrderRef,
        /// New price; `None` keeps it.
        new_price: Option<Price>,
        /// New open quantity.
        new_qty: Qty,
    },
    /// Cancel all of the account's orders, optionally in one market and/or side.
    MassCancel {
        /// Correlation id.
        req: RequestId,
        /// Only this market.
        market: Option<MarketId>,
        /// Only this side.
        side: Option<Side>,
    },
    /// The state of an order by client order id (answers resends after a reconnect).
    OrderStatus {
        /// Correlation id.
        req: RequestId,
        /// Which order.
        client_order_id: ClientOrderId,
    },
    /// Start market data (snapshot, then trades and level deltas) for a market.
    Subscribe {
        /// Correlation id.
        req: RequestId,
        /// Which market.
        market: MarketId,
    },
    /// Stop market data for a market.
    Unsubscribe {
        /// Correlation id.
        req: RequestId,
        /// Which market.
        market: MarketId,
    },
    /// The account's balance of one currency (answered with `Balance` or `Reject`).
    Balance {
        /// Correlation id.
        req: RequestId,
        /// Which currency.
        currency: CurrencyId,
    },
    /// Liveness; the server echoes it with the same nonce.
    Heartbeat {
        /// Echoed.
        nonce: u64,
    },
    /// Orderly end of the session.
    Logout,
}

/// Maker or taker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Liquidity {
    /// The order was resting.
    Maker = 1,
    /// The order was incoming.
    Taker = 2,
}

/// Where an order stands, as a status query reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum OrderState {
    /// Sequenced, outcome not yet known.
    Pending = 1,
    /// Accepted and open (resting or waiting for its trigger).
    Live = 2,
    /// Fully filled.
    Filled = 3,
    /// Cancelled (by request, IOC remainder, self-trade prevention...).
    Cancelled = 4,
    /// Rejected by the engine; `code` says why.
    Rejected = 5,
    /// The gateway has no record of this client order id (never seen, or aged out of the
    /// dedup window).
    Unknown = 6,
}

/// A reject or close reason code: engine codes are [`RejectReason::code`] (1..=999), gateway
/// codes are 1000 and up.
/// `Display` reads `message (name)`; `Debug` shows the number and the name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RejectCode(pub u16);

impl RejectCode {
    /// The engine's input queue is full: retry later (nothing was sequenced).
    pub const BUSY: RejectCode = RejectCode(1001);
    /// The session exceeded its message rate.
    pub const RATE_LIMITED: RejectCode = RejectCode(1002);
    /// The session has too many commands awaiting `Done`.
    pub const TOO_MANY_IN_FLIGHT: RejectCode = RejectCode(1003);
    /// The frame could not be parsed (the session is closed).
    pub const MALFORMED: RejectCode = RejectCode(1004);
    /// The frame declared a length above [`MAX_FRAME_BYTES`] (the session is closed).
    pub const FRAME_TOO_LARGE: RejectCode = RejectCode(1005);
    /// The request needs a logged-on session.
    pub const NOT_LOGGED_ON: RejectCode = RejectCode(1006);
    /// The key id is not registered.
    pub const UNKNOWN_KEY: RejectCode = RejectCode(1007);
    /// The logon signature does not verify.
    pub const BAD_SIGNATURE: RejectCode = RejectCode(1008);
    /// The key already has its allowed number of sessions.
    pub const SESSION_LIMIT: RejectCode = RejectCode(1009);
    /// The frame's protocol version is not supported.
    pub const UNSUPPORTED_VERSION: RejectCode = RejectCode(1010);
    /// The request is not valid in the session's current state (e.g. a second logon).
    pub const UNEXPECTED: RejectCode = RejectCode(1011);
    /// Too many market-data subscriptions on this session.
    pub const TOO_MANY_SUBSCRIPTIONS: RejectCode = RejectCode(1012);
    /// Repeated limit violations: the session is closed.
    pub const ABUSE: RejectCode = RejectCode(1013);
    /// The session could not keep up with its reports: it is closed rather than dropping any.
    pub const SLOW_CONSUMER: RejectCode = RejectCode(1014);
    /// The gateway is shutting down.
    pub const SHUTTING_DOWN: RejectCode = RejectCode(1015);
    /// No heartbeat or request within the idle timeout.
    pub const IDLE_TIMEOUT: RejectCode = RejectCode(1016);
    /// The client order id was already used by this account (the dedup window): the status of
    /// the original follows.
    pub const DUPLICATE: RejectCode = RejectCode(1017);
    /// No such market.
    pub const UNKNOWN_MARKET: RejectCode = RejectCode(1018);
    /// The client logged out (close reason).
    pub const LOGOUT: RejectCode = RejectCode(1019);
    /// The exchange cannot take commands now (its journal failed); nothing was sequenced.
    pub const UNAVAILABLE: RejectCode = RejectCode(1020);
    /// No such currency (balance query).
    pub const UNKNOWN_CURRENCY: RejectCode = RejectCode(1021);
    /// The account's KYC level is below what placing an order needs; nothing was sequenced.
    pub const LEVEL_TOO_LOW: RejectCode = RejectCode(1022);

    /// The code of an engine reject.
    pub const fn engine(reason: RejectReason) -> RejectCode {
        RejectCode(reason.code())
    }

    /// Whether the code is the engine's (else the gateway's).
    pub const fn is_engine(self) -> bool {
        self.0 < 1000
    }
}

/// A server-to-client message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// The logon challenge.
    Challenge {
        /// Random bytes to sign.
        nonce: [u8; CHALLENGE_BYTES],
    },
    /// Logon accepted.
    LogonAck {
        /// The account the key trades for.
        account: AccountId,
        /// This session.
        session: SessionId,
        /// Send something at least this often, in milliseconds.
        heartbeat_ms: u32,
        /// Commands that may await `Done` at once.
        max_in_flight: u32,
        /// Sustained messages per second.
        rate_per_sec: u32,
        /// `Currency` frames that follow (at most [`crate::directory::CURRENCIES_MAX`]).
        currencies: u16,
        /// `Market` frames that follow the currencies (at most [`crate::directory::MARKETS_MAX`]).
        markets: u16,
    },
    /// A currency of the directory sent after `LogonAck`.
    Currency(CurrencyInfo),
    /// A market of the directory sent after `LogonAck`.
    Market(MarketInfo),
    /// Answer to `Balance`: the account's balance in minor units of the currency.
    Balance {
        /// Correlation id.
        req: RequestId,
        /// Which currency.
        currency: CurrencyId,
        /// Free to trade or withdraw.
        available: Amount,
        /// Held by open orders and pending withdrawals.
        locked: Amount,
    },
    /// A new order was accepted by the engine.
    Ack {
        /// Correlation id (0 when the order was placed by another session of the account).
        req: RequestId,
        /// The engine sequence of the command.
        seq: u64,
        /// The exchange's order id.
        order: OrderId,
        /// The client's id.
        client_order_id: ClientOrderId,
    },
    /// A request was refused.
    Reject {
        /// Correlation id.
        req: RequestId,
        /// The engine sequence, 0 when the gateway refused it before sequencing.
        seq: u64,
        /// Why.
        code: RejectCode,
    },
    /// An order traded.
    Fill(Fill),
    /// An order (or its remainder) was cancelled.
    Cancelled(Cancelled),
    /// A resting order's price/quantity changed.
    Replaced(Replaced),
    /// A mass cancel finished.
    MassCancelled {
        /// Correlation id.
        req: RequestId,
        /// Engine sequence.
        seq: u64,
        /// Orders cancelled.
        count: u32,
    },
    /// All reports of the request's command were sent.
    Done {
        /// Correlation id.
        req: RequestId,
        /// Engine sequence (0 for requests answered by the gateway alone).
        seq: u64,
    },
    /// Answer to `OrderStatus`, and to a `NewOrder` resend of a known client order id.
    Status {
        /// Correlation id.
        req: RequestId,
        /// The client's id.
        client_order_id: ClientOrderId,
        /// The exchange's id (0 if never accepted).
        order: OrderId,
        /// Sequence of the original command (0 if unknown).
        seq: u64,
        /// Quantity filled so far.
        filled: Qty,
        /// State.
        state: OrderState,
        /// Engine reject code when `state` is `Rejected`, else 0.
        code: RejectCode,
    },
    /// Market data: a trade.
    Trade {
        /// Market.
        market: MarketId,
        /// Per-market sequence.
        market_seq: MarketSeq,
        /// Trade id.
        trade: TradeId,
        /// Price.
        price: Price,
        /// Quantity.
        qty: Qty,
        /// The taker's side.
        taker_side: Side,
    },
    /// Market data: a price level's total quantity is now `qty` (0 = level gone).
    BookLevel {
        /// Market.
        market: MarketId,
        /// Per-market sequence (the snapshot's for snapshot levels).
        market_seq: MarketSeq,
        /// Side.
        side: Side,
        /// Price.
        price: Price,
        /// Total resting quantity at the level.
        qty: Qty,
        /// Part of a snapshot (else a delta).
        snapshot: bool,
    },
    /// Market data: a snapshot of `bids + asks` levels follows, as of `market_seq`.
    Snapshot {
        /// Market.
        market: MarketId,
        /// Deltas with a larger sequence follow the snapshot.
        market_seq: MarketSeq,
        /// Bid levels that follow.
        bids: u32,
        /// Ask levels that follow.
        asks: u32,
    },
    /// Liveness echo.
    Heartbeat {
        /// The client's nonce.
        nonce: u64,
    },
    /// The session ends; `code` says why ([`RejectCode::LOGOUT`] when the client asked).
    Logout {
        /// Why.
        code: RejectCode,
    },
}

/// An order traded (the payload of `Reply::Fill` and the engine-side report alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    /// The engine sequence of the command that caused it.
    pub seq: u64,
    /// The exchange's order id.
    pub order: OrderId,
    /// The client's id.
    pub client_order_id: ClientOrderId,
    /// The trade.
    pub trade: TradeId,
    /// Market.
    pub market: MarketId,
    /// The order's side.
    pub side: Side,
    /// Maker or taker.
    pub liquidity: Liquidity,
    /// Execution price.
    pub price: Price,
    /// Quantity traded.
    pub qty: Qty,
    /// Fee, in minor units of the currency received.
    pub fee: u64,
}

/// An order (or its remainder) was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancelled {
    /// Engine sequence.
    pub seq: u64,
    /// The exchange's order id.
    pub order: OrderId,
    /// The client's id.
    pub client_order_id: ClientOrderId,
    /// What was still open.
    pub remaining: Qty,
    /// Why.
    pub reason: CancelReason,
}

/// A resting order's price/quantity changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replaced {
    /// Engine sequence.
    pub seq: u64,
    /// The exchange's order id.
    pub order: OrderId,
    /// The client's id.
    pub client_order_id: ClientOrderId,
    /// Price now.
    pub price: Price,
    /// Open quantity now.
    pub qty: Qty,
    /// Whether time priority was kept.
    pub priority_kept: bool,
}
