//! API-key authentication, Barong's headers: `X-Auth-Apikey`, `X-Auth-Nonce` (Unix ms) and
//! `X-Auth-Signature = hex(HMAC-SHA256(secret, nonce + METHOD + path + hex(SHA-256(body))))`
//! ([`sign_request`]): a signature fits one request only. Barong's own `nonce + key`
//! ([`sign`]), which fits any request with that nonce, is accepted only from a key marked
//! legacy: a self-service key created with `legacy: true`, or a bootstrap key configured with
//! `legacy_signature = true` (warned about at start; each use counts in
//! `rest_legacy_signatures_total`). Nothing is legacy by default.
//!
//! Keys come from two places: the `[[rest.keys]]` configuration (a bootstrap, every scope) and
//! identity's self-service keys, loaded and kept current by [`KeyStore::apply`] from the
//! identity key feed (`peregrine_auth::key_feed`). A key's scopes (`read` for reads, `trade`
//! for order entry), address allowlist and expiry are checked after its signature.
//!
//! A captured request cannot be replayed: the nonce must be within `nonce_window_ms` of the
//! server's clock AND above the last nonce accepted for the key (Barong only had the window,
//! inside which replays worked). The signature is checked first, in constant time, so an
//! unsigned request can neither learn anything nor advance a key's nonce.
//!
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::http::HeaderMap;
use peregrine_auth::api_keys::Scopes;
use peregrine_auth::key_feed::{KeyChange, ResolvedKey};
use peregrine_hotpath::{AccountId, Actor, ApiKeyId};
use prometheus::IntCounter;
use ring::digest::{SHA256, digest};
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
    /// What it may do.
    scopes: Scopes,
    /// Barong's `nonce + key` signature accepted.
    legacy: bool,
    /// Addresses it may be used from (empty: any).
    allowed_ips: Vec<IpAddr>,
    /// Expiry, Unix ms.
    expires_at_ms: Option<u64>,
}

/// What a request's signature covers and what it asks to do.
#[derive(Clone, Copy, Debug)]
pub struct RequestFacts<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path and query as sent.
    pub path: &'a str,
    /// SHA-256 of the body.
    pub body_sha256: [u8; 32],
    /// The client's address, when known (an allowlisted key needs it).
    pub peer: Option<IpAddr>,
    /// The scope the request needs.
    pub scope: Scopes,
}

/// SHA-256 of a body.
pub fn body_sha256(body: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, body).as_ref());
    out
}

/// Self-service keys at most in one gateway's cache.
pub const DYNAMIC_KEYS_MAX: usize = 1 << 20;

/// The API keys and their nonce state.
pub struct KeyStore {
    keys: HashMap<String, Arc<KeyEntry>>,
    /// Identity's self-service keys, changed by [`KeyStore::apply`].
    dynamic: RwLock<HashMap<String, Arc<KeyEntry>>>,
    /// Identity's HMAC keys whose secret OpenBao could not decrypt yet: refused with 503
    /// `identity.vault_unavailable` (retry later), not 401 (the key is not unknown).
    pending: RwLock<HashSet<String>>,
    window_ms: u64,
    /// At or above every nonce ever accepted, also before a restart.
    floor: NonceFloor,
    /// Requests accepted on Barong's `nonce + key` signature (`rest_legacy_signatures_total`).
    legacy_signatures: Option<IntCounter>,
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
    /// The key lacks the scope the request needs (e.g. `trade` to place an order).
    #[error("this API key's scopes do not allow this request")]
    ScopeDenied,
    /// The request comes from an address outside the key's allowlist.
    #[error("this API key may not be used from this address")]
    AddressDenied,
    /// The key expired.
    #[error("this API key expired")]
    KeyExpired,
    /// The key exists but its secret is in OpenBao, which cannot answer now (503).
    #[error("this API key's secret cannot be read while the secret store is unavailable; retry")]
    SecretPending,
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
            AuthError::ScopeDenied => "authz.scope_denied",
            AuthError::AddressDenied => "authz.address_denied",
            AuthError::KeyExpired => "authz.api_key_expired",
            AuthError::SecretPending => "identity.vault_unavailable",
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        match error {
            AuthError::NonceFloor | AuthError::SecretPending => {
                ApiError::unavailable(error.code(), error.to_string())
            }
            AuthError::ScopeDenied | AuthError::AddressDenied => {
                ApiError::forbidden(error.code(), error.to_string())
            }
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
                .map(|k| (k.key.clone(), Arc::new(bootstrap_entry(k, start_ms))))
                .collect(),
            dynamic: RwLock::new(HashMap::new()),
            pending: RwLock::new(HashSet::new()),
            window_ms,
            floor,
            legacy_signatures: None,
        }
    }

    /// Counts each request accepted on Barong's `nonce + key` signature in `counter`.
    pub fn count_legacy_signatures(mut self, counter: IntCounter) -> KeyStore {
        self.legacy_signatures = Some(counter);
        self
    }

    /// Adds, replaces or drops one of identity's self-service keys (a key without a secret
    /// is not a REST key and is ignored, unless its secret is pending). A new key's nonces
    /// start above the floor.
    pub fn apply(&self, change: KeyChange) {
        let mut pending = self.pending.write().unwrap_or_else(PoisonError::into_inner);
        let mut dynamic = self.dynamic.write().unwrap_or_else(PoisonError::into_inner);
        match change {
            KeyChange::Upsert(key) if key.secret_pending => {
                dynamic.remove(&key.kid);
                if pending.len() < DYNAMIC_KEYS_MAX {
                    pending.insert(key.kid);
                }
            }
            KeyChange::Upsert(key) => {
                pending.remove(&key.kid);
                let Some(entry) = self.entry_of(&key) else {
                    return;
                };
                if dynamic.len() >= DYNAMIC_KEYS_MAX && !dynamic.contains_key(&key.kid) {
                    tracing::error!(kid = %key.kid, "REST key cache full: key not loaded");
                    return;
                }
                dynamic.insert(key.kid, Arc::new(entry));
            }
            KeyChange::Remove(kid) => {
                dynamic.remove(&kid);
                pending.remove(&kid);
            }
            _ => {}
        }
    }

    fn entry_of(&self, key: &ResolvedKey) -> Option<KeyEntry> {
        let secret = key.hmac_secret.as_ref()?;
        Some(KeyEntry {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose()),
            account: AccountId(key.account),
            actor: Actor::ApiKey(ApiKeyId::of_key(key.kid.as_bytes())),
            last_nonce_ms: Mutex::new(self.floor.get()),
            scopes: key.scopes,
            legacy: key.legacy,
            allowed_ips: key.allowed_ips.clone(),
            expires_at_ms: key.expires_at_ms.and_then(|ms| u64::try_from(ms).ok()),
        })
    }

    /// Why `key` has no entry: its secret is pending, or it is unknown.
    fn missing(&self, key: &str) -> AuthError {
        let pending = self.pending.read().unwrap_or_else(PoisonError::into_inner);
        if pending.contains(key) {
            AuthError::SecretPending
        } else {
            AuthError::UnknownKey
        }
    }

    fn entry(&self, key: &str) -> Option<Arc<KeyEntry>> {
        if let Some(entry) = self.keys.get(key) {
            return Some(entry.clone());
        }
        let dynamic = self.dynamic.read().unwrap_or_else(PoisonError::into_inner);
        dynamic.get(key).cloned()
    }

    /// Authenticates a request at `now_ms`; on success the key's nonce advances. Nothing
    /// changes on a refusal.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        facts: &RequestFacts<'_>,
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
        let entry = self.entry(key).ok_or_else(|| self.missing(key))?;
        let nonce_ms: u64 = nonce.parse().map_err(|_| AuthError::BadNonce)?;
        let tag = decode_hex(signature).ok_or(AuthError::BadSignature)?;
        // Constant time, each.
        let message = request_message(nonce, facts);
        let strong = hmac::verify(&entry.key, message.as_bytes(), &tag).is_ok();
        let legacy = !strong
            && entry.legacy
            && hmac::verify(&entry.key, format!("{nonce}{key}").as_bytes(), &tag).is_ok();
        if !strong && !legacy {
            return Err(AuthError::BadSignature);
        }
        if nonce_ms.abs_diff(now_ms) > self.window_ms {
            return Err(AuthError::StaleNonce);
        }
        if entry.expires_at_ms.is_some_and(|at| at <= now_ms) {
            return Err(AuthError::KeyExpired);
        }
        if !entry.allowed_ips.is_empty()
            && !facts
                .peer
                .is_some_and(|peer| entry.allowed_ips.contains(&peer))
        {
            return Err(AuthError::AddressDenied);
        }
        if !entry.scopes.contains(facts.scope) {
            return Err(AuthError::ScopeDenied);
        }
        let mut last = entry
            .last_nonce_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if nonce_ms <= *last {
            return Err(AuthError::ReplayedNonce);
        }
        self.floor.reserve(nonce_ms).map_err(|error| {
            tracing::error!(%error, "REST nonce floor not written: refusing the request");
            AuthError::NonceFloor
        })?;
        *last = nonce_ms;
        if legacy && let Some(counter) = &self.legacy_signatures {
            counter.inc();
        }
        Ok((entry.account, entry.actor))
    }
}

/// A `[[rest.keys]]` bootstrap key: every scope; Barong's signature only when the key opts in,
/// loudly (see [`RestKey::legacy_signature`]).
fn bootstrap_entry(key: &RestKey, start_ms: u64) -> KeyEntry {
    if key.legacy_signature {
        tracing::warn!(
            key = %key.key,
            "rest.keys: legacy_signature = true: this key also accepts Barong's nonce + key \
             signature, which does not cover the method, path or body (a captured request's \
             headers fit any other request); sign nonce + method + path + SHA-256(body) and \
             remove the flag"
        );
    }
    KeyEntry {
        key: hmac::Key::new(hmac::HMAC_SHA256, key.secret.as_bytes()),
        account: AccountId(key.account),
        actor: Actor::ApiKey(ApiKeyId::of_key(key.key.as_bytes())),
        last_nonce_ms: Mutex::new(start_ms),
        scopes: Scopes::from_names(&["read", "trade", "withdraw"]).unwrap_or_default(),
        legacy: key.legacy_signature,
        allowed_ips: Vec::new(),
        expires_at_ms: None,
    }
}

/// What a request's signature covers: nonce, method, path and the body's SHA-256 in hex.
fn request_message(nonce: &str, facts: &RequestFacts<'_>) -> String {
    let mut message =
        String::with_capacity(nonce.len() + facts.method.len() + facts.path.len() + 64);
    message.push_str(nonce);
    message.push_str(facts.method);
    message.push_str(facts.path);
    // By table, not `format!`: 32 formatted strings were two thirds of a request's
    // authentication (callgrind: ~18 000 of ~28 000 instructions).
    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in facts.body_sha256 {
        message.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        message.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    message
}

/// The signature a client sends with a request (for clients, tests and benchmarks).
pub fn sign_request(secret: &str, nonce_ms: u64, method: &str, path: &str, body: &[u8]) -> String {
    let facts = RequestFacts {
        method,
        path,
        body_sha256: body_sha256(body),
        peer: None,
        scope: Scopes::default(),
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(
        &key,
        request_message(&nonce_ms.to_string(), &facts).as_bytes(),
    );
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
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

    use super::super::nonce_floor::RESERVATION_MS;
    use super::*;

    #[test]
    fn the_signed_message_is_nonce_method_path_and_the_body_digest_in_lower_hex() {
        let facts = RequestFacts {
            method: "POST",
            path: "/api/v2/peatio/market/orders",
            body_sha256: body_sha256(b""),
            peer: None,
            scope: Scopes::default(),
        };
        // SHA-256 of nothing, as every client library prints it.
        assert_eq!(
            request_message("1700000000000", &facts),
            "1700000000000POST/api/v2/peatio/market/orders\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    const SECRET: &str = "0123456789abcdef";

    fn bootstrap(legacy_signature: bool) -> RestKey {
        RestKey {
            key: "k1".into(),
            secret: SECRET.into(),
            account: 7,
            legacy_signature,
        }
    }

    fn store() -> KeyStore {
        KeyStore::new(&[bootstrap(false)], 5_000)
    }

    /// `k1`'s headers for [`facts`]'s request, signed in full.
    fn signed(secret: &str, nonce: u64) -> HeaderMap {
        let f = facts();
        headers(
            "k1",
            nonce,
            &sign_request(secret, nonce, f.method, f.path, b"{}"),
        )
    }

    fn facts() -> RequestFacts<'static> {
        RequestFacts {
            method: "POST",
            path: "/api/v2/peatio/market/orders",
            body_sha256: body_sha256(b"{}"),
            peer: Some(IpAddr::from([127, 0, 0, 1])),
            scope: Scopes::TRADE,
        }
    }

    fn self_service(kid: &str, secret: &str, scopes: &[&str], legacy: bool) -> KeyChange {
        let mut key = peregrine_auth::key_feed::ResolvedKey::new(kid.to_owned(), 9);
        key.hmac_secret = Some(peregrine_secrets::SecretBytes::new(
            secret.as_bytes().to_vec(),
        ));
        key.scopes = Scopes::from_names(scopes).unwrap();
        key.legacy = legacy;
        KeyChange::Upsert(key)
    }

    #[test]
    fn self_service_keys_sign_the_whole_request_and_keep_to_their_scopes() {
        let s = store();
        let now = 1_000_000;
        let f = facts();
        s.apply(self_service("hk", "s3cret", &["read", "trade"], false));
        let sign_now = |nonce: u64, method: &str, path: &str, body: &[u8]| {
            headers(
                "hk",
                nonce,
                &sign_request("s3cret", nonce, method, path, body),
            )
        };
        let good = sign_now(now, "POST", f.path, b"{}");
        assert_eq!(
            s.authenticate(&good, &f, now).map(|r| r.0),
            Ok(AccountId(9))
        );
        // The signature covers method, path and body: any other is a bad signature.
        for (method, path, body) in [
            ("GET", f.path, &b"{}"[..]),
            ("POST", "/other", b"{}"),
            ("POST", f.path, b"{\"x\":1}"),
        ] {
            let h = sign_now(now + 1, method, path, body);
            assert_eq!(s.authenticate(&h, &f, now), Err(AuthError::BadSignature));
        }
        // Barong's `nonce + key` is refused from a key not created legacy.
        let legacy = headers("hk", now + 2, &sign("s3cret", now + 2, "hk"));
        assert_eq!(
            s.authenticate(&legacy, &f, now),
            Err(AuthError::BadSignature)
        );
        // A read-only key cannot trade.
        s.apply(self_service("ro", "r34d", &["read"], true));
        let h = headers("ro", now, &sign_request("r34d", now, "POST", f.path, b"{}"));
        assert_eq!(s.authenticate(&h, &f, now), Err(AuthError::ScopeDenied));
        // A legacy key accepts both signatures. (Its nonces start above the durable floor,
        // which the first key's success raised by the reservation.)
        let later = now + 2 * RESERVATION_MS;
        let h = headers("ro", later, &sign("r34d", later, "ro"));
        let read = RequestFacts {
            scope: Scopes::READ,
            ..f
        };
        assert!(s.authenticate(&h, &read, now).is_ok());
        // Removed: unknown at once.
        s.apply(KeyChange::Remove("hk".to_owned()));
        let h = sign_now(later, "POST", f.path, b"{}");
        assert_eq!(s.authenticate(&h, &f, now), Err(AuthError::UnknownKey));
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
        let good = signed(SECRET, now);
        assert_eq!(
            s.authenticate(&good, &facts(), now),
            Ok((AccountId(7), Actor::ApiKey(ApiKeyId::of_key(b"k1"))))
        );
        assert_eq!(
            s.authenticate(&good, &facts(), now),
            Err(AuthError::ReplayedNonce)
        );
        let older = signed(SECRET, now - 1);
        assert_eq!(
            s.authenticate(&older, &facts(), now),
            Err(AuthError::ReplayedNonce)
        );
    }

    #[test]
    fn a_bootstrap_key_takes_barongs_signature_only_when_configured_to_and_counts_it() {
        let now = 1_000_000;
        let weak = |nonce: u64| headers("k1", nonce, &sign(SECRET, nonce, "k1"));
        // By default: refused as a bad signature, and the key's nonce does not move.
        let strict = store();
        assert_eq!(
            strict.authenticate(&weak(now), &facts(), now),
            Err(AuthError::BadSignature)
        );
        assert!(
            strict
                .authenticate(&signed(SECRET, now), &facts(), now)
                .is_ok()
        );
        // Opted in: accepted, and counted; a whole-request signature is not counted.
        let counter = IntCounter::new("rest_legacy_signatures_total", "test").unwrap();
        let legacy =
            KeyStore::new(&[bootstrap(true)], 5_000).count_legacy_signatures(counter.clone());
        assert!(legacy.authenticate(&weak(now), &facts(), now).is_ok());
        assert_eq!(counter.get(), 1);
        assert!(
            legacy
                .authenticate(&signed(SECRET, now + 1), &facts(), now)
                .is_ok()
        );
        assert_eq!(counter.get(), 1);
        // A weak signature is still one use per nonce.
        assert_eq!(
            legacy.authenticate(&weak(now + 1), &facts(), now),
            Err(AuthError::ReplayedNonce)
        );
        assert_eq!(counter.get(), 1);
    }

    #[test]
    fn refuses_bad_signature_stale_nonce_unknown_key_and_missing_headers() {
        let s = store();
        let now = 1_000_000;
        let wrong = signed("another secret!!", now);
        assert_eq!(
            s.authenticate(&wrong, &facts(), now),
            Err(AuthError::BadSignature)
        );
        let not_hex = headers("k1", now, &"zz".repeat(32));
        assert_eq!(
            s.authenticate(&not_hex, &facts(), now),
            Err(AuthError::BadSignature)
        );
        let stale = now - 5_001;
        let old = signed(SECRET, stale);
        assert_eq!(
            s.authenticate(&old, &facts(), now),
            Err(AuthError::StaleNonce)
        );
        let f = facts();
        let unknown = headers(
            "k2",
            now,
            &sign_request(SECRET, now, f.method, f.path, b"{}"),
        );
        assert_eq!(
            s.authenticate(&unknown, &facts(), now),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(
            s.authenticate(&HeaderMap::new(), &facts(), now),
            Err(AuthError::MissingHeaders)
        );
        // None of the failures advanced the nonce.
        let good = signed(SECRET, now - 10);
        assert_eq!(
            s.authenticate(&good, &facts(), now),
            Ok((AccountId(7), Actor::ApiKey(ApiKeyId::of_key(b"k1"))))
        );
    }
}
