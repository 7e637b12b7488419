//! What the store keeps across restarts: mounts with their keys and entries, and policies.
//! Serialised as JSON, then sealed whole by [`crate::file`] (so every secret in it is
//! encrypted at rest under the master key).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroize;

use crate::policy::Policy;

/// The most mounts.
pub const MOUNTS_MAX: usize = 64;
/// The most policies.
pub const POLICIES_MAX: usize = 256;
/// The most transit keys in one mount.
pub const TRANSIT_KEYS_MAX: usize = 1024;
/// The most versions of a transit key (the client reads at most this many too).
pub const KEY_VERSIONS_MAX: usize = peregrine_secrets::transit::KEY_VERSIONS_MAX;
/// The most TOTP keys in one mount (one per user with 2FA: a development population).
pub const TOTP_KEYS_MAX: usize = 10_000;
/// The most KV paths in one mount.
pub const KV_ENTRIES_MAX: usize = 10_000;

const _: () = assert!(KEY_VERSIONS_MAX <= u32::MAX as usize);

/// The whole persistent state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
    pub(crate) mounts: BTreeMap<String, Mount>,
    pub(crate) policies: BTreeMap<String, Policy>,
}

/// A mounted engine and what it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Mount {
    Transit { keys: BTreeMap<String, TransitKey> },
    Totp { keys: BTreeMap<String, TotpKey> },
    Kv { entries: BTreeMap<String, KvEntry> },
}

/// The transit key types served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum KeyKind {
    #[serde(rename = "ed25519")]
    Ed25519,
    #[serde(rename = "aes256-gcm96")]
    Aes256Gcm96,
}

impl KeyKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Aes256Gcm96 => "aes256-gcm96",
        }
    }
}

/// A transit key: its versions, oldest first (version = index + 1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TransitKey {
    pub(crate) kind: KeyKind,
    pub(crate) versions: Vec<KeyVersion>,
}

/// One version: the secret (PKCS#8 for ed25519, the 32 raw bytes for AES) and, for ed25519,
/// the public key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct KeyVersion {
    pub(crate) secret: Vec<u8>,
    pub(crate) public: Vec<u8>,
    pub(crate) created_s: u64,
}

impl Drop for KeyVersion {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// A TOTP key (SHA-1, 6 digits, 30 s, skew 1: OpenBao's defaults, the only ones served).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TotpKey {
    pub(crate) secret: Vec<u8>,
    pub(crate) issuer: String,
    pub(crate) account_name: String,
    /// Codes accepted recently, with the Unix second after which they may be forgotten.
    pub(crate) used: Vec<(String, u64)>,
}

impl Drop for TotpKey {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// A KV v2 path: its latest version (the store keeps no history), `None` once deleted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct KvEntry {
    pub(crate) version: u64,
    pub(crate) created_s: u64,
    pub(crate) data: Option<Map<String, Value>>,
}
