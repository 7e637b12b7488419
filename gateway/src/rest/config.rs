//! `[rest]`: the REST/WebSocket bridge's listen address, limits and API keys.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// One bootstrap API key: requests carry `X-Auth-Apikey: key`, `X-Auth-Nonce` (Unix ms, above
/// the last one accepted) and `X-Auth-Signature = hex(HMAC-SHA256(secret, nonce + METHOD +
/// path + hex(SHA-256(body))))`: a signature fits one request only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestKey {
    /// The public key id.
    pub key: String,
    /// The shared secret.
    pub secret: String,
    /// The trading account it acts for.
    pub account: u32,
    /// Also accept Barong's weaker signature, `hex(HMAC-SHA256(secret, nonce + key))`. It
    /// covers neither the method, the path nor the body, so whoever sees a signed request in
    /// flight (a proxy, a log) can send any other request with its headers before it lands.
    /// Only for clients that cannot sign the whole request yet. Off unless set; a key that
    /// sets it is warned about at start, and each request signed that way counts in
    /// `rest_legacy_signatures_total`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy_signature: bool,
}

impl std::fmt::Debug for RestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("RestKey")
            .field("key", &self.key)
            .field("account", &self.account)
            .field("legacy_signature", &self.legacy_signature)
            .finish_non_exhaustive()
    }
}

/// The bridge's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Largest request body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
    /// Requests being handled at once, at most; more get 503 `server.busy` at once (a bound on
    /// the work and memory that slow or many clients can hold).
    pub requests_in_flight_max: usize,
    /// A nonce (ms) must be within this distance of the server's clock.
    pub nonce_window_ms: u64,
    /// API keys.
    pub keys: Vec<RestKey>,
    /// Messages queued per WebSocket connection before it is closed as a slow consumer.
    pub ws_buffer_messages: usize,
    /// WebSocket connections at most (further upgrades get 503).
    pub ws_connections_max: usize,
    /// Streams one connection may subscribe to.
    pub ws_streams_max: usize,
    /// Levels per side in a WebSocket book snapshot.
    pub ws_snapshot_levels: usize,
    /// Commands of slack in the event tap before the feed falls behind and resynchronises.
    pub tap_capacity: usize,
    /// Public trades kept per market.
    pub trades_per_market: usize,
    /// Finished orders and trades kept per account (each).
    pub history_per_account: usize,
    /// Finished orders and trades kept across all accounts (each).
    pub history_total: usize,
    /// Trades read from the replica at start, at most, to rebuild public trades, k-lines and
    /// tickers (see `market_data::restore`): a bound on start time.
    pub rebuild_trades_max: usize,
    /// TLS on this listener (`[rest.tls]`, e.g. `source = "files"` with `cert_chain_pem` and
    /// `private_key_pem`): what a bridge on another host relays order entry and bearer tokens
    /// over (see `tls`). None: plain HTTP, for loopback or behind a TLS-terminating balancer.
    pub tls: Option<crate::quic::tls::TlsSource>,
    /// Where the durable nonce floor is kept (see `nonce_floor`): set by `up` to a file in
    /// the data directory, never read from configuration; `None` keeps it in memory only.
    #[serde(skip)]
    pub nonce_floor_path: Option<std::path::PathBuf>,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            body_limit_bytes: 16 * 1024,
            requests_in_flight_max: 4_096,
            nonce_window_ms: 5_000,
            keys: Vec::new(),
            ws_buffer_messages: 4_096,
            ws_connections_max: 10_000,
            ws_streams_max: 64,
            ws_snapshot_levels: 100,
            tap_capacity: 65_536,
            trades_per_market: 1_000,
            history_per_account: 1_000,
            history_total: 200_000,
            rebuild_trades_max: crate::market_data::restore::REBUILD_TRADES_MAX,
            tls: None,
            nonce_floor_path: None,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit is zero.
    #[error("rest.{0} must be positive")]
    Zero(&'static str),
    /// A key is empty, too long or has characters other than printable ASCII.
    #[error("rest.keys: key `{0}` must be 1 to 64 printable ASCII characters")]
    BadKey(String),
    /// A secret is too short to be a secret.
    #[error("rest.keys: the secret of key `{0}` must be at least 16 bytes")]
    ShortSecret(String),
    /// Two keys share an id.
    #[error("rest.keys: duplicate key `{0}`")]
    DuplicateKey(String),
}

impl RestConfig {
    /// Checks limits and keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("body_limit_bytes", self.body_limit_bytes),
            ("requests_in_flight_max", self.requests_in_flight_max),
            ("ws_buffer_messages", self.ws_buffer_messages),
            ("ws_connections_max", self.ws_connections_max),
            ("ws_streams_max", self.ws_streams_max),
            ("ws_snapshot_levels", self.ws_snapshot_levels),
            ("tap_capacity", self.tap_capacity),
            ("trades_per_market", self.trades_per_market),
            ("history_per_account", self.history_per_account),
            ("history_total", self.history_total),
            ("rebuild_trades_max", self.rebuild_trades_max),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.nonce_window_ms == 0 {
            return Err(ConfigError::Zero("nonce_window_ms"));
        }
        let mut seen = std::collections::HashSet::new();
        for key in &self.keys {
            let printable = key.key.bytes().all(|b| b.is_ascii_graphic());
            if key.key.is_empty() || key.key.len() > 64 || !printable {
                return Err(ConfigError::BadKey(key.key.clone()));
            }
            if key.secret.len() < 16 {
                return Err(ConfigError::ShortSecret(key.key.clone()));
            }
            if !seen.insert(key.key.as_str()) {
                return Err(ConfigError::DuplicateKey(key.key.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_with_defaults_and_refuses_unknown_keys() {
        let config: RestConfig = toml::from_str(
            r#"
            listen = "0.0.0.0:9000"
            ws_buffer_messages = 128
            [[keys]]
            key = "k1"
            secret = "0123456789abcdef"
            account = 7
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.ws_buffer_messages, 128);
        assert_eq!(
            config.body_limit_bytes,
            RestConfig::default().body_limit_bytes
        );
        assert_eq!(config.keys[0].account, 7);
        config.validate().unwrap();
        assert!(!format!("{:?}", config.keys[0]).contains("0123456789abcdef"));
        assert!(toml::from_str::<RestConfig>("listn = \"0.0.0.0:1\"").is_err());
    }

    #[test]
    fn validate_refuses_zero_limits_short_secrets_and_duplicate_keys() {
        let key = RestKey {
            key: "k1".into(),
            secret: "0123456789abcdef".into(),
            account: 1,
            legacy_signature: false,
        };
        let mut config = RestConfig {
            keys: vec![key.clone(), key.clone()],
            ..RestConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::DuplicateKey("k1".into()))
        );
        config.keys = vec![RestKey {
            secret: "short".into(),
            ..key.clone()
        }];
        assert_eq!(
            config.validate(),
            Err(ConfigError::ShortSecret("k1".into()))
        );
        config.keys = vec![RestKey {
            key: "has space".into(),
            ..key
        }];
        assert!(matches!(config.validate(), Err(ConfigError::BadKey(_))));
        config.keys.clear();
        config.ws_buffer_messages = 0;
        assert_eq!(
            config.validate(),
            Err(ConfigError::Zero("ws_buffer_messages"))
        );
    }
}
