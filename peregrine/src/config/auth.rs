//! `[auth]`: the identity service `up` runs (sign-up, sessions, 2FA, API keys, KYC levels; see
//! `peregrine_auth`), mounted on the REST listener beside the bridge it feeds keys to.
//!
//! On by default with the embedded SQLite store `<data.dir>/identity.db`. Without
//! `[auth.smtp]`, e-mailed codes are logged at INFO with their address (a development
//! appliance). Without `[auth.openbao]`, identity's routes are served but 2FA, access tokens
//! and API keys answer 503 `identity.vault_unavailable`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

/// Shortest key poll interval accepted (a bound on the store queries the followers make).
pub const KEY_POLL_INTERVAL_MS_MIN: u64 = 20;
/// Longest key poll interval accepted: a new or revoked key must take effect within 1 s.
pub const KEY_POLL_INTERVAL_MS_MAX: u64 = 500;
/// Longest OpenBao mount or policy name.
pub const NAME_BYTES_MAX: usize = 64;

/// Bounds of `jwks_refresh_ms`: each reload is an OpenBao read; a rotated key must be seen
/// well before the old one is retired.
pub const JWKS_REFRESH_MS_MIN: u64 = 1_000;
pub const JWKS_REFRESH_MS_MAX: u64 = 3_600_000;

const _: () = assert!(KEY_POLL_INTERVAL_MS_MIN < KEY_POLL_INTERVAL_MS_MAX);
// The followers refuse a shorter interval than the gateway's own floor.
const _: () = assert!(
    KEY_POLL_INTERVAL_MS_MIN >= peregrine_gateway::rest::key_follower::POLL_INTERVAL_MS_MIN
);
const _: () = assert!(JWKS_REFRESH_MS_MIN < JWKS_REFRESH_MS_MAX);

/// Bounds of `audit_anchor_interval_ms`: each anchor is one journaled command.
pub const AUDIT_ANCHOR_INTERVAL_MS_MIN: u64 = 100;
pub const AUDIT_ANCHOR_INTERVAL_MS_MAX: u64 = 3_600_000;
const _: () = assert!(AUDIT_ANCHOR_INTERVAL_MS_MIN < AUDIT_ANCHOR_INTERVAL_MS_MAX);

/// The `[auth]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Run identity in `up`.
    pub enabled: bool,
    /// `mysql://user:password@host:port/database` or `sqlite://path`. Empty: the embedded
    /// SQLite file `<data.dir>/identity.db` (the one `peregrine admin create-operator` opens
    /// by default).
    pub database_url: String,
    /// The first trading account given to a verified user; accounts below are left to the
    /// `[[rest.keys]]`/`[[quic.keys]]` bootstrap.
    pub account_id_first: u32,
    /// One past the last account given (at most the engine's 65536 accounts).
    pub account_id_end: u32,
    /// The session cookie carries `Secure` (turn off only behind plain HTTP on a trusted
    /// network: browsers then never send it over TLS-less links anyway).
    pub cookie_secure: bool,
    /// The KYC level placing an order needs (e-mail verified gives 1).
    pub trade_level_min: i64,
    /// The KYC level withdrawing needs (phone verified gives 2).
    pub withdraw_level_min: i64,
    /// How often the gateways' key caches poll identity's key events, ms (20 to 500: a new
    /// or revoked key takes effect within one interval plus a store round trip).
    #[serde(deserialize_with = "key_poll_interval_ms")]
    pub key_poll_interval_ms: u64,
    /// How often the gateways' JWT verifier reloads identity's JWKS, ms (1000 to 3600000).
    #[serde(deserialize_with = "jwks_refresh_ms")]
    pub jwks_refresh_ms: u64,
    /// Access tokens' lifetime, s (6 to 60). Browsers renew theirs, and the one on their
    /// private WebSocket, before it ends.
    #[serde(deserialize_with = "access_token_ttl_s")]
    pub access_token_ttl_s: u64,
    /// How often the audit chain's head is anchored in the journal, ms (100 to 3600000; and
    /// once more at shutdown). `peregrine audit verify` sees a cut or rewrite after an anchor.
    #[serde(deserialize_with = "audit_anchor_interval_ms")]
    pub audit_anchor_interval_ms: u64,
    /// Where codes are mailed; absent: logged at INFO with the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpSection>,
    /// OpenBao for 2FA, access tokens, API-key secrets and KYC documents; absent: those
    /// answer 503 `identity.vault_unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openbao: Option<OpenBaoSection>,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            enabled: true,
            database_url: String::new(),
            account_id_first: 1024,
            account_id_end: 1 << 16,
            cookie_secure: true,
            trade_level_min: 1,
            withdraw_level_min: 2,
            key_poll_interval_ms: 100,
            jwks_refresh_ms: 10_000,
            access_token_ttl_s: peregrine_auth::jwt::ACCESS_TTL_S_MAX,
            audit_anchor_interval_ms: 60_000,
            smtp: None,
            openbao: None,
        }
    }
}

impl AuthSection {
    /// The store's URL, with the embedded default resolved against `data_dir`.
    pub fn database_url(&self, data_dir: &std::path::Path) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", data_dir.join("identity.db").display())
        } else {
            self.database_url.clone()
        }
    }
}

/// `[auth.smtp]`: the relay codes are mailed through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    /// The relay, e.g. `127.0.0.1:25`.
    pub server: SocketAddr,
    /// The sender address.
    pub from: String,
}

/// `[auth.openbao]`: where identity keeps TOTP keys, the JWT signing key and the key that
/// encrypts API-key secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBaoSection {
    /// e.g. `http://127.0.0.1:8200`.
    pub address: String,
    /// A file holding a token allowed to make identity's mounts, keys and policy. `up` uses
    /// it once at start to make a narrow token (identity's policy only) and runs with that.
    pub token_file: PathBuf,
    /// The totp engine's mount.
    #[serde(default = "default_totp_mount", deserialize_with = "name")]
    pub totp_mount: String,
    /// The transit engine's mount.
    #[serde(default = "default_transit_mount", deserialize_with = "name")]
    pub transit_mount: String,
    /// The name of identity's policy (one per appliance sharing an OpenBao).
    #[serde(default = "default_policy", deserialize_with = "name")]
    pub policy: String,
    /// Identity's KV v2 mount (the KYC webhook secret at `kyc/webhook`, field `secret`,
    /// written there by an operator).
    #[serde(default = "default_kv_mount", deserialize_with = "name")]
    pub kv_mount: String,
    /// Turns the KYC provider webhook on, its HMAC secret read from `kv_mount`.
    #[serde(default)]
    pub kyc_webhook: bool,
    /// How long a rotated-out webhook secret is still accepted, ms.
    #[serde(default = "default_kyc_webhook_grace_ms")]
    pub kyc_webhook_grace_ms: u32,
    /// How often the webhook secret is read from KV, ms (at least 100).
    #[serde(default = "default_kyc_webhook_refresh_ms")]
    pub kyc_webhook_refresh_ms: u32,
}

fn default_kv_mount() -> String {
    "peregrine-identity".to_owned()
}

fn default_kyc_webhook_grace_ms() -> u32 {
    600_000
}

fn default_kyc_webhook_refresh_ms() -> u32 {
    5_000
}

fn default_totp_mount() -> String {
    "totp".to_owned()
}

fn default_transit_mount() -> String {
    "transit".to_owned()
}

fn default_policy() -> String {
    "peregrine-identity".to_owned()
}

fn access_token_ttl_s<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    let max = peregrine_auth::jwt::ACCESS_TTL_S_MAX;
    // Above the verifiers' clock skew, so a token is never born expired at a gateway.
    let min = peregrine_auth::jwt::SKEW_S_MAX + 1;
    if !(min..=max).contains(&value) {
        return Err(serde::de::Error::custom(format!(
            "{value} is outside {min} to {max}"
        )));
    }
    Ok(value)
}

fn audit_anchor_interval_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    if !(AUDIT_ANCHOR_INTERVAL_MS_MIN..=AUDIT_ANCHOR_INTERVAL_MS_MAX).contains(&value) {
        return Err(serde::de::Error::custom(format!(
            "{value} is outside {AUDIT_ANCHOR_INTERVAL_MS_MIN} to {AUDIT_ANCHOR_INTERVAL_MS_MAX}"
        )));
    }
    Ok(value)
}

fn key_poll_interval_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    if !(KEY_POLL_INTERVAL_MS_MIN..=KEY_POLL_INTERVAL_MS_MAX).contains(&value) {
        return Err(serde::de::Error::custom(format!(
            "{value} is outside {KEY_POLL_INTERVAL_MS_MIN} to {KEY_POLL_INTERVAL_MS_MAX}"
        )));
    }
    Ok(value)
}

fn jwks_refresh_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    if !(JWKS_REFRESH_MS_MIN..=JWKS_REFRESH_MS_MAX).contains(&value) {
        return Err(serde::de::Error::custom(format!(
            "{value} is outside {JWKS_REFRESH_MS_MIN} to {JWKS_REFRESH_MS_MAX}"
        )));
    }
    Ok(value)
}

fn name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = String::deserialize(deserializer)?;
    super::fanout::check_name(&value, "name", NAME_BYTES_MAX).map_err(serde::de::Error::custom)?;
    Ok(value)
}
