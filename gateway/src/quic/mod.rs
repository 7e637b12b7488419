//! Binary order entry over QUIC, protocol `peregrine/1` (see `gateway/PROTOCOL.md`).
//!
//! Top-down: [`server`] runs quinn and drives one [`session::Session`] per connection; the
//! session is sans-IO (bytes and reports in, bytes out) over [`codec`], which parses the
//! messages of [`frame`]; [`limits`] holds the per-session limits, [`auth`] the API keys and
//! [`tls`] the certificates.

pub mod auth;
pub mod codec;
pub mod frame;
pub mod limits;
pub mod server;
pub mod session;
pub mod tls;

pub use server::{Server, ServerConfig, ServerError, SocketBuffers, TransportTuning};
