//! `[quic]`: binary order entry for HFT clients (see `proto/PROTOCOL.md`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use peregrine_gateway::quic::auth::ApiKeyConfig;
use peregrine_gateway::quic::server::TransportTuning;
use peregrine_proto::limits::SessionLimits;
use serde::{Deserialize, Serialize};

/// The `[quic]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuicConfig {
    /// Serve QUIC order entry.
    pub enabled: bool,
    /// UDP address. Port 0 picks a free port (printed at start).
    pub listen: SocketAddr,
    /// Certificate chain (PEM, leaf first) for production. Without it (and `private_key_pem`),
    /// a self-signed development certificate is made once under `<data>/tls/` and its SHA-256
    /// fingerprint printed at start for clients to pin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_chain_pem: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<PathBuf>,
    /// Concurrent sessions per API key (1: a second logon is refused).
    pub sessions_per_key: u32,
    /// Per-session limits.
    pub limits: SessionLimits,
    /// UDP/QUIC tuning for small messages.
    pub transport: TransportTuning,
    /// API keys: `[[quic.keys]] key_id = 1, account = 7, public_key = "<64 hex digits>"`.
    pub keys: Vec<ApiKeyConfig>,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 4433)),
            cert_chain_pem: None,
            private_key_pem: None,
            sessions_per_key: 1,
            limits: SessionLimits::default(),
            transport: TransportTuning::default(),
            keys: Vec::new(),
        }
    }
}
