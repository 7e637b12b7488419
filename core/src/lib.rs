//! The exchange core: everything between "a caller wants a command applied" and "the engine's
//! outcome may be told", in the engine's own vocabulary.
//!
//! Owns:
//! - the sequencer ([`EngineHandle::submit`]): one sequence counter; each command is
//!   journaled, then handed to the hot-path shard under the same number;
//! - the durability gate: in `durable` mode no outcome, fill or market-data notice leaves
//!   before the journal's durable watermark passes its command;
//! - the views ([`Views`]: one book per market, one order record, balances), fed only what
//!   is released, read by edges through [`EngineHandle::read`]; duplicate tracking of client
//!   order ids is theirs, surviving restarts;
//! - the output router ([`RouterPlacement`]) and subscriptions ([`EngineHandle::subscribe`]);
//! - the catalog of currencies and markets ([`catalog`]).
//!
//! Never does: speak a wire protocol (QUIC frames, REST and WebSocket are the gateway's and
//! map [`Notice`]s, [`OrderStatus`] and [`SubmitError`] to their own vocabulary); block a
//! caller waiting for room (overload is [`SubmitError::Busy`] or [`QueryError::Busy`] at once,
//! and no lock is held across a wait); drop an output silently (a subscriber that falls behind
//! is closed with [`CloseReason::Lagged`]).

pub mod catalog;
mod fanout;
mod notice;
mod request;
mod router;
mod sequencer;
mod subscriptions;

pub use notice::{Fill, Liquidity, MarketNotice, MarketSeq, Notice};
pub use peregrine_views::{
    Change, DEDUP_WINDOW_ORDERS, OrderRecord, OrderState, OrderStatus, Views,
};
pub use request::{Abandoned, Executed, Request, SubmitError, Ticket};
pub use router::RouterPlacement;
pub use sequencer::{EngineError, EngineHandle, QUERY_TIMEOUT, QueryError};
pub use subscriptions::{
    CloseReason, EXECUTED_SUBSCRIPTIONS_MAX, Interest, SUBSCRIPTION_NOTICES_MAX, SUBSCRIPTIONS_MAX,
    SubscribeError, Subscription, SubscriptionId,
};
