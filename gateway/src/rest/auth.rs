//! API-key authentication, Barong's header scheme: `X-Auth-Apikey`, `X-Auth-Nonce` (Unix ms)
//! and `X-Auth-Signature = hex(HMAC-SHA256(secret, nonce + key))`.
//!
//! A captured request cannot be replayed: the nonce must be within `nonce_window_ms` of the
//! server's clock AND above the last nonce accepted for the key (Barong only had the window,
//! inside which replays worked). The signature is checked first, in constant time, so an
//! unsigned request can neither learn anything nor advance a key's nonce.
//!
//! Keys come from configuration for now; [`KeyStore`] is the seam where the auth service takes
//! over (it answers the same question: key id -> secret and account).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use peregrine_hotpath::{AccountId, Actor, ApiKeyId};
use ring::hmac;

use super::config::RestKey;
use super::error::ApiError;
use super::nonce_floor::NonceFloor;

/// Header names.
pub const HEADER_KEY: &str = "x-auth-apikey";
/// Nonce header.
pub const HEADER_NONCE: &str = "x-auth-nonce";
/// Signature header.
pub const HEADER_SIGNATURE: &str = "x-auth-signature";
/// Hex characters of an HMAC-SHA256 signature.
const SIGNATURE_HEX_CHARS: usize = 64;

struct KeyEntry {
    key: hmac::Key,
    account: AccountId,
    /// Recorded in the journal with every command the key issues.
    actor: Actor,
    /// The last nonce accepted; the next must be higher.
    last_nonce_ms: Mutex<u64>,
}

/// The API keys and their nonce state.
pub struct KeyStore {
    keys: HashMap<String, KeyEntry>,
    window_ms: u64,
    /// At or above every nonce ever accepted, also before a restart.
    floor: NonceFloor,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.keys.len())
            .field("window_ms", &self.window_ms)
            .finish()
    }
}

/// Why a request was not authenticated; `code()` is the REST error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A header is missing or not ASCII.
    #[error("X-Auth-Apikey, X-Auth-Nonce and X-Auth-Signature are required")]
    MissingHeaders,
    /// No such key.
    #[error("unknown API key")]
    UnknownKey,
    /// The nonce is not a number.
    #[error("X-Auth-Nonce must be Unix milliseconds")]
    BadNonce,
    /// The signature does not verify.
    #[error("the signature does not match")]
    BadSignature,
    /// The nonce floor could not be raised durably: accepting the nonce could reopen it to
    /// replay after a restart, so the request is refused (503).
    #[error("the nonce could not be recorded; retry")]
    NonceFloor,
    /// The nonce is too far from the server's clock.
    #[error("the nonce is outside the accepted time window")]
    StaleNonce,
    /// The nonce is not above the last one accepted for this key (a replay).
    #[error("the nonce was not above the last one used with this key")]
    ReplayedNonce,
}

impl AuthError {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            AuthError::MissingHeaders => "authz.missing_headers",
            AuthError::UnknownKey => "authz.invalid_api_key",
            AuthError::BadNonce => "authz.invalid_nonce",
            AuthError::BadSignature => "authz.invalid_signature",
            AuthError::StaleNonce => "authz.nonce_expired",
            AuthError::ReplayedNonce => "authz.nonce_reused",
            AuthError::NonceFloor => "server.unavailable",
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        match error {
            AuthError::NonceFloor => ApiError::unavailable(error.code(), error.to_string()),
            _ => ApiError::unauthorized(error.code(), error.to_string()),
        }
    }
}

impl KeyStore {
    /// From configured keys (validated: unique, non-empty), with nonces kept in memory only.
    pub fn new(keys: &[RestKey], window_ms: u64) -> KeyStore {
        KeyStore::with_floor(keys, window_ms, NonceFloor::in_memory())
    }

    /// From configured keys, every key's nonces starting above `floor` (which every accepted
    /// nonce raises durably first).
    pub fn with_floor(keys: &[RestKey], window_ms: u64, floor: NonceFloor) -> KeyStore {
        let start_ms = floor.get();
        KeyStore {
            keys: keys
                .iter()
                .map(|k| {
                    (
                        k.key.clone(),
                        KeyEntry {
                            key: hmac::Key::new(hmac::HMAC_SHA256, k.secret.as_bytes()),
                            account: AccountId(k.account),
                            actor: Actor::ApiKey(ApiKeyId::of_key(k.key.as_bytes())),
                            last_nonce_ms: Mutex::new(start_ms),
                        },
                    )
                })
                .collect(),
            window_ms,
            floor,
        }
    }

    /// Authenticates a request's headers at `now_ms`; on success the key's nonce advances.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        now_ms: u64,
    ) -> Result<(AccountId, Actor), AuthError> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(AuthError::MissingHeaders)
        };
        let (key, nonce, signature) = (
            header(HEADER_KEY)?,
            header(HEADER_NONCE)?,
            header(HEADER_SIGNATURE)?,
        );
        let entry = self.keys.get(key).ok_or(AuthError::UnknownKey)?;
        let nonce_ms: u64 = nonce.parse().map_err(|_| AuthError::BadNonce)?;
        let tag = decode_hex(signature).ok_or(AuthError::BadSignature)?;
        let mut message = Vec::with_capacity(nonce.len() + key.len());
        message.extend_from_slice(nonce.as_bytes());
        message.extend_from_slice(key.as_bytes());
        // Constant time.
        hmac::verify(&entry.key, &message, &tag).map_err(|_| AuthError::BadSignature)?;
        if nonce_ms.abs_diff(now_ms) > self.window_ms {
            return Err(AuthError::StaleNonce);
        }
        let mut last = entry
            .last_nonce_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if nonce_ms <= *last {
            return Err(AuthError::ReplayedNonce);
        }
        self.floor.reserve(nonce_ms).map_err(|error| {
            tracing::error!(%error, "REST nonce floor not written: refusing the request");
            AuthError::NonceFloor
        })?;
        *last = nonce_ms;
        Ok((entry.account, entry.actor))
    }
}

/// The signature a client sends (for clients, tests and benchmarks).
pub fn sign(secret: &str, nonce_ms: u64, key: &str) -> String {
    let key_bytes = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let message = format!("{nonce_ms}{key}");
    let tag = hmac::sign(&key_bytes, message.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != SIGNATURE_HEX_CHARS {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
        let digit = |c: u8| char::from(c).to_digit(16);
        let byte = digit(pair[0])? * 16 + digit(pair[1])?;
        out[i] = u8::try_from(byte).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn store() -> KeyStore {
        KeyStore::new(
            &[RestKey {
                key: "k1".into(),
                secret: "0123456789abcdef".into(),
                account: 7,
            }],
            5_000,
        )
    }

    fn headers(key: &str, nonce: u64, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_KEY, HeaderValue::from_str(key).unwrap());
        h.insert(
            HEADER_NONCE,
            HeaderValue::from_str(&nonce.to_string()).unwrap(),
        );
        h.insert(HEADER_SIGNATURE, HeaderValue::from_str(signature).unwrap());
        h
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        // printf '%s%s' 1700000000000 key-1 | openssl dgst -sha256 -hmac secret-of-account-1
        assert_eq!(
            sign("secret-of-account-1", 1_700_000_000_000, "key-1"),
            "e65c210074100233a927c101cf36154ee181edcd8c52ee04f943fd758f4dd9f5"
        );
    }

    #[test]
    fn accepts_a_signed_fresh_nonce_once() {
        let s = store();
        let now = 1_000_000;
        let good = headers("k1", now, &sign("0123456789abcdef", now, "k1"));
        assert_eq!(
            s.authenticate(&good, now),
            Ok((AccountId(7), Actor::ApiKey(ApiKeyId::of_key(b"k1"))))
        );
        assert_eq!(s.authenticate(&good, now), Err(AuthError::ReplayedNonce));
        let older = headers("k1", now - 1, &sign("0123456789abcdef", now - 1, "k1"));
        assert_eq!(s.authenticate(&older, now), Err(AuthError::ReplayedNonce));
    }

    #[test]
    fn refuses_bad_signature_stale_nonce_unknown_key_and_missing_headers() {
        let s = store();
        let now = 1_000_000;
        let wrong = headers("k1", now, &sign("another secret!!", now, "k1"));
        assert_eq!(s.authenticate(&wrong, now), Err(AuthError::BadSignature));
        let not_hex = headers("k1", now, &"zz".repeat(32));
        assert_eq!(s.authenticate(&not_hex, now), Err(AuthError::BadSignature));
        let stale = now - 5_001;
        let old = headers("k1", stale, &sign("0123456789abcdef", stale, "k1"));
        assert_eq!(s.authenticate(&old, now), Err(AuthError::StaleNonce));
        let unknown = headers("k2", now, &sign("0123456789abcdef", now, "k2"));
        assert_eq!(s.authenticate(&unknown, now), Err(AuthError::UnknownKey));
        assert_eq!(
            s.authenticate(&HeaderMap::new(), now),
            Err(AuthError::MissingHeaders)
        );
        // None of the failures advanced the nonce.
        let good = headers("k1", now - 10, &sign("0123456789abcdef", now - 10, "k1"));
        assert_eq!(
            s.authenticate(&good, now),
            Ok((AccountId(7), Actor::ApiKey(ApiKeyId::of_key(b"k1"))))
        );
    }
}
