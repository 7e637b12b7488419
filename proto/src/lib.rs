//! The order-entry wire protocol `peregrine/2` (see `proto/PROTOCOL.md`), sans-IO in the manner
//! of `quinn-proto`.
//!
//! Owns: the typed messages ([`frame`]), their byte layout ([`codec`]), the per-session limits
//! ([`limits`]), the session state machine ([`session`]) with the [`session::Action`]s it asks of
//! its driver and the results it takes back, and the vocabulary the engine side speaks to a
//! session ([`session::Report`], [`session::OrderStatus`], [`session::SubmitError`]), the hex
//! text form of keys and fingerprints ([`hex`]), the logon directory of currencies and markets
//! with their decimal units ([`directory`]), the names and messages of reject codes, and what a
//! session counts for its driver's metrics ([`counts`]).
//!
//! Never does: I/O of any kind (no sockets, no files, no threads, no async runtime, no
//! callbacks into the engine), read a clock or a random source (time and the logon challenge are
//! arguments), hold keys or verify signatures, or sequence commands. Those belong to the driver:
//! the gateway's QUIC server, or a test. The client SDK uses the frames and codec.
//!
//! Bytes from the peer never panic the crate: every byte sequence either parses into a typed value or is a
//! typed [`codec::FrameError`]; every queue and buffer has a named bound
//! ([`frame::MAX_FRAME_BYTES`], [`session::ACTIONS_MAX`], [`session::INPUT_MAX_BYTES`],
//! [`session::OUTPUT_MAX_BYTES`]).

pub mod codec;
pub mod counts;
pub mod directory;
pub mod frame;
pub mod hex;
pub mod limits;
mod reject_names;
pub mod session;
