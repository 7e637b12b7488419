//! Binary order entry over QUIC, protocol `peregrine/2` (see `proto/PROTOCOL.md`).
//!
//! Top-down: [`server`] runs quinn and drives one [`peregrine_proto::session::Session`] per
//! connection; the protocol itself (frames, codec, limits, the session state machine) is the
//! sans-IO crate `peregrine-proto`. [`directory`] lists the catalog to clients at logon; [`auth`] holds the API keys and [`tls`] the certificates;
//! [`metrics`] counts connections, logons, frames and protocol errors and times order entry;
//! `report` maps the core's protocol-neutral notices, statuses and errors to the protocol's.

pub mod auth;
pub mod directory;
pub mod metrics;
mod report;
pub mod server;
pub mod tls;

pub use metrics::QuicMetrics;
pub use server::{Server, ServerConfig, ServerError, SocketBuffers, TransportTuning};
