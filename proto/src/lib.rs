//! The order-entry wire protocol `peregrine/1` (see `proto/PROTOCOL.md`), sans-IO in the manner
//! of `quinn-proto`.
//!
//! Owns: the typed messages ([`frame`]), their byte layout ([`codec`]), the per-session limits
//! ([`limits`]) and the session state machine ([`session`]), plus the vocabulary the engine side
//! speaks to a session ([`session::Report`], [`session::OrderStatus`], [`session::SubmitError`]).
//!
//! Never does: I/O of any kind (no sockets, no files, no threads, no async runtime), read a clock
//! (time is an argument), hold keys or verify signatures, or sequence commands. The gateway's
//! QUIC server and the client SDK drive it; tests drive it with plain values.

pub mod codec;
pub mod frame;
pub mod limits;
pub mod session;
