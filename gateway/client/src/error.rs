//! The SDK's errors. `Display` is for people: reject codes read as a message and their stable
//! Peatio-style name (`the available balance is insufficient
//! (market.account.insufficient_balance)`, the code REST answers too), never as a bare number.

use std::net::SocketAddr;
use std::time::Duration;

use peregrine_hotpath::edge::{DecimalTextError, EdgeError};
use peregrine_proto::directory::DirectoryError;
use peregrine_proto::frame::RejectCode;

/// What can go wrong talking to the gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing answered the QUIC handshake in time: no server on that address and port, or a
    /// firewall drops UDP (a closed UDP port is silent, so only a deadline can tell).
    #[error(
        "no Peregrine QUIC server answered at {addr} within {} ms: is `peregrine up` running \
         with [quic] enabled, and is that its address (`up` prints the `quic` line)?",
        .timeout.as_millis()
    )]
    ConnectTimeout {
        /// Where.
        addr: SocketAddr,
        /// How long the handshake was given ([`crate::CONNECT_TIMEOUT`]).
        timeout: Duration,
    },
    /// The QUIC connection could not be set up or broke.
    #[error("connection: {0}")]
    Connection(String),
    /// TLS configuration (the trust anchor) is invalid.
    #[error("TLS: {0}")]
    Tls(String),
    /// The signing key is invalid.
    #[error("signing key: {0}")]
    Key(String),
    /// The server refused the logon.
    #[error("logon refused: {0}")]
    LogonRefused(RejectCode),
    /// The server sent something this client does not understand.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The logon directory of currencies and markets is not valid.
    #[error("the server's market directory: {0}")]
    Directory(#[from] DirectoryError),
    /// The session ended (the code says why, when the server said).
    #[error("session closed{}", .0.map(|c| format!(": {c}")).unwrap_or_default())]
    Closed(Option<RejectCode>),
    /// No answer within [`crate::REQUEST_TIMEOUT`].
    #[error("no answer in time")]
    Timeout,
    /// The server refused a query (balance, status).
    #[error("refused: {0}")]
    Refused(RejectCode),
    /// The server lists no market of this name.
    #[error("no market `{0}` (the server lists its markets at logon)")]
    UnknownMarket(String),
    /// The server lists no currency of this code.
    #[error("no currency `{0}` (the server lists its currencies at logon)")]
    UnknownCurrency(String),
    /// A decimal price or quantity is not a plain decimal number.
    #[error("{what} `{text}`: {source}")]
    Decimal {
        /// "price" or "quantity".
        what: &'static str,
        /// What was given.
        text: String,
        /// Why.
        source: DecimalTextError,
    },
    /// A decimal price or quantity does not fit the market's tick or lot.
    #[error("{0}")]
    Units(#[from] EdgeError),
}
