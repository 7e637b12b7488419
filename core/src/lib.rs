//! The exchange core: everything between "a caller wants a command applied" and "the engine's
//! outcome may be told".
//!
//! Owns: the sequencer (one sequence counter; each command is journaled, then handed to the
//! hot-path shard under the same number), the durability gate (outputs are held until the
//! journal's durable watermark passes them in `durable` mode), duplicate tracking of client
//! order ids, the output router, subscriptions, and the catalog of currencies and markets.
//!
//! Never does: speak a wire protocol (QUIC frames, REST, WebSocket are the gateway's), block a
//! caller waiting for room (overload is a typed `Busy` returned at once), or drop an output
//! silently (a subscriber that falls behind is closed and told why).

pub mod catalog;
pub mod engine;
