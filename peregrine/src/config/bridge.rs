//! `[bridge]`: a bridge node (`peregrine bridge`) that serves the REST reads and WebSocket
//! streams from the stream an appliance publishes with `[fanout]`. It listens where `[http]`
//! (health, metrics) and `[rest]` (REST, WebSocket) say, and takes the catalog from
//! `[[currencies]]` and `[[markets]]`, which must be the appliance's.

use serde::{Deserialize, Serialize};

/// The `[bridge]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeSection {
    /// The NATS server the appliance publishes to.
    pub url: String,
    /// The appliance's stream (`[fanout] stream`).
    #[serde(deserialize_with = "super::fanout::stream_name")]
    pub stream: String,
    /// Messages behind the stream's end above which `/health/ready` says not ready.
    pub ready_lag_max_messages: u64,
    /// Serve account orders and trades from the `[replica]` database (read only).
    pub accounts_from_replica: bool,
    /// The appliance's `[rest]` base (`http://host:port`) that signed order entry and balances
    /// are relayed to (the appliance verifies the user's signature; see
    /// `peregrine_gateway::rest::relay`); empty: the bridge answers them 503.
    pub orders_url: String,
    /// Identity's JWKS (`http://host:port/api/v2/barong/identity/jwks` on the appliance's
    /// `[rest]`): the bridge then accepts identity's access JWTs (`Authorization: Bearer`),
    /// verified from memory and reloaded every [`JWKS_RELOAD_S`] s; empty: tokens are refused.
    pub jwks_url: String,
    /// The appliance's certificate or its CA (PEM): with it, `orders_url` and `jwks_url` are
    /// `https://` and the bridge trusts this file alone (the appliance's `[rest.tls]`); empty:
    /// both are plain `http://` (loopback or a private network).
    pub appliance_ca_pem: String,
}

/// Seconds between reloads of `[bridge] jwks_url` (a rotated key is served by identity before
/// it signs, so one reload interval is the longest a new key goes unrecognised).
pub const JWKS_RELOAD_S: u64 = 10;

impl Default for BridgeSection {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            stream: "PEREGRINE".to_owned(),
            ready_lag_max_messages: 10_000,
            accounts_from_replica: false,
            orders_url: String::new(),
            jwks_url: String::new(),
            appliance_ca_pem: String::new(),
        }
    }
}
