//! The SDK's request and answer types.

use peregrine_hotpath::{
    Amount, ClientOrderId, MarketId, OrderId, OrderKind, Price, Qty, SelfTradePrevention, Side,
    TimeInForce,
};
use peregrine_proto::directory::{CurrencyInfo, Name};
use peregrine_proto::frame::{OrderState, RejectCode, Reply};
use rust_decimal::Decimal;

use crate::ClientError;

/// A new order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// Your id for it: unique per account; resending it after a reconnect never duplicates.
    pub client_order_id: ClientOrderId,
    /// Market.
    pub market: MarketId,
    /// Side.
    pub side: Side,
    /// Type, price and size.
    pub kind: OrderKind,
    /// Time in force.
    pub tif: TimeInForce,
    /// Self-trade prevention.
    pub stp: SelfTradePrevention,
}

impl Order {
    /// A good-till-cancelled limit order (self-trade prevention: cancel newest).
    pub fn limit(
        client_order_id: ClientOrderId,
        market: MarketId,
        side: Side,
        price: Price,
        qty: Qty,
    ) -> Order {
        Order {
            client_order_id,
            market,
            side,
            kind: OrderKind::Limit { price, qty },
            tif: TimeInForce::Gtc,
            stp: SelfTradePrevention::CancelNewest,
        }
    }
}

/// The answer to [`Client::place`](crate::Client::place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placed {
    /// Accepted: the exchange's order id and the engine sequence.
    Ack {
        /// Exchange id.
        order: OrderId,
        /// Engine sequence.
        seq: u64,
    },
    /// Refused (engine or gateway code; `seq` 0 if never sequenced).
    Rejected {
        /// Why.
        code: RejectCode,
        /// Engine sequence.
        seq: u64,
    },
    /// The client order id was used before: the original order's status (nothing new placed).
    Duplicate(StatusReply),
}

/// The answer to cancel, replace, mass cancel and subscribe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Applied; the reports (Cancelled, Replaced...) came before.
    Done {
        /// Engine sequence (0 when the gateway answered alone).
        seq: u64,
    },
    /// Refused.
    Rejected {
        /// Why.
        code: RejectCode,
        /// Engine sequence.
        seq: u64,
    },
}

impl Outcome {
    pub(crate) fn from_reply(reply: Reply) -> Result<Outcome, ClientError> {
        match reply {
            Reply::Done { seq, .. } => Ok(Outcome::Done { seq }),
            Reply::Reject { code, seq, .. } => Ok(Outcome::Rejected { code, seq }),
            other => Err(ClientError::Protocol(format!("unexpected {other:?}"))),
        }
    }
}

/// An order's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusReply {
    /// Your id.
    pub client_order_id: ClientOrderId,
    /// Exchange id (0 if never accepted).
    pub order: OrderId,
    /// Sequence of the original command.
    pub seq: u64,
    /// Filled so far.
    pub filled: Qty,
    /// State.
    pub state: OrderState,
    /// Engine reject code when rejected.
    pub code: RejectCode,
}

impl StatusReply {
    pub(crate) fn from_reply(reply: &Reply) -> StatusReply {
        match *reply {
            Reply::Status {
                client_order_id,
                order,
                seq,
                filled,
                state,
                code,
                ..
            } => StatusReply {
                client_order_id,
                order,
                seq,
                filled,
                state,
                code,
            },
            _ => StatusReply {
                client_order_id: ClientOrderId(0),
                order: OrderId(0),
                seq: 0,
                filled: Qty(0),
                state: OrderState::Unknown,
                code: RejectCode(0),
            },
        }
    }
}

/// The answer to [`Client::balance`](crate::Client::balance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceReply {
    /// The currency.
    pub currency: Name,
    /// Free to trade or withdraw.
    pub available: Decimal,
    /// Held by open orders and pending withdrawals.
    pub locked: Decimal,
    /// `available` in minor units.
    pub available_minor: Amount,
    /// `locked` in minor units.
    pub locked_minor: Amount,
}

impl BalanceReply {
    pub(crate) fn new(currency: &CurrencyInfo, available: Amount, locked: Amount) -> Self {
        BalanceReply {
            currency: currency.code,
            available: currency.scale.to_decimal(available),
            locked: currency.scale.to_decimal(locked),
            available_minor: available,
            locked_minor: locked,
        }
    }
}

impl std::fmt::Display for BalanceReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: available {}, locked {}",
            self.currency, self.available, self.locked
        )
    }
}

impl std::fmt::Display for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Placed::Ack { order, seq } => write!(f, "accepted: order {} (seq {seq})", order.0),
            Placed::Rejected { code, seq: 0 } => write!(f, "refused: {code}"),
            Placed::Rejected { code, seq } => write!(f, "rejected (seq {seq}): {code}"),
            Placed::Duplicate(status) => write!(
                f,
                "duplicate client order id {}: the original is {:?} (order {}, filled {} lots)",
                status.client_order_id.0, status.state, status.order.0, status.filled.0
            ),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Done { seq } => write!(f, "done (seq {seq})"),
            Outcome::Rejected { code, .. } => write!(f, "rejected: {code}"),
        }
    }
}
