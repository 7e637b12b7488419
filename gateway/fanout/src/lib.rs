//! The fan-out: publishes what every durable command changed to NATS JetStream, so bridge nodes
//! on other machines can serve retail reads and streams without touching the appliance.
//!
//! ```text
//! journal (durable) ──tailer──► follower Engine ──events──► Views ──changes──► subjects ──► JetStream
//! ```
//!
//! Owns:
//! - the [`Publisher`]: a journal follower of its own (like the SQL replica's), so the hot path
//!   hands nothing over and can never be slowed by NATS; it publishes only what is durable;
//! - the subjects ([`subject`]): `md.<market>.ob-inc`, `md.<market>.trades`,
//!   `md.<market>.state` for market data, `user.<account>.order|trade|balance|deposit|withdraw` for private
//!   changes — one message per command and subject, holding that command's changes for it in
//!   the order the views made them;
//! - the message format ([`message`]): the views' own [`peregrine_views::Change`]s, archived
//!   with rkyv and versioned, so a bridge feeds the same changes to the same edge code the
//!   appliance runs (identical answers by construction);
//! - exactly-once delivery into the stream: each message carries `Nats-Msg-Id` =
//!   `<command seq>.<subject>` (JetStream drops a duplicate within its window) and
//!   `Peregrine-Seq`; after a restart or an outage the publisher reads the last sequence the
//!   stream holds and republishes from that command, so a subscriber sees no gap and no
//!   duplicate.
//!
//! Never does: write the journal, block or slow the engine, interpret an engine event itself
//! (the views do), or serve clients (bridges do).

pub mod access;
pub mod consumer;
pub mod message;
mod metrics;
mod publisher;
pub mod snapshot;
pub mod subject;

pub use access::{NatsAccess, UserPassword};
pub use consumer::{Consumer, ConsumerConfig, ConsumerError, ConsumerHandle, FeedEvent};
pub use message::{DecodeError, MESSAGE_BYTES_MAX, MESSAGE_FORMAT, Part, Published};
pub use publisher::{FanoutConfig, FanoutError, Publisher, PublisherHandle};
pub use snapshot::BooksSnapshot;
pub use subject::{MarketNames, SubjectError};
