//! Access tokens: short-lived JWTs (at most [`ACCESS_TTL_S_MAX`] seconds), EdDSA (ed25519),
//! signed by OpenBao's transit engine, verified by the gateways from memory.
//!
//! Why transit and not a key kept in KV: with transit the private key never leaves OpenBao.
//! Identity holds a token that may ask for signatures (and nothing else: see
//! [`crate::vault::VaultConfig::policy_hcl`]); a compromised identity host can sign only while
//! that token lives and is not revoked, and it cannot copy the key away. Rotation is one call
//! (`transit/keys/<key>/rotate`, an operator's act) and OpenBao keeps every version's public
//! half, which is what the JWKS needs. A key in KV would be read into identity's memory and be
//! as exposed as any file. The cost is a round trip to OpenBao per token issued (once per
//! client per token lifetime, never per request); verification, the per-request part, never
//! calls OpenBao.
//!
//! `kid` is `<transit key name>-v<version>`. Rotation without downtime: after a rotation the
//! next signature comes back with the new version, the issuer notices that it differs from the
//! `kid` it wrote, and signs again under the new `kid`; the JWKS lists every version OpenBao
//! keeps, so tokens signed by the previous version verify until they expire (≤ 60 s).
//!
//! [`Verifier`] is pure and in memory: a JWKS in, `verify(token, now)` out — the algorithm
//! must be `EdDSA`, the `kid` known, `exp`/`nbf`/`iat` within a bounded skew, `iss` and `aud`
//! the configured ones. [`Refresher`] reloads the JWKS from identity periodically.
//!
//! While OpenBao cannot answer, sessions still get tokens: at start the issuer makes a
//! *standby key*, an ed25519 key pair generated in its own memory ([`StandbyKey`]), and lists
//! its public half in the JWKS next to transit's versions, so every gateway already knows it
//! before an outage. A token is signed with it only when transit answers "unavailable"; 2FA
//! and every other OpenBao-backed action still answer 503. Why this keeps the key custody:
//! the transit key still never leaves OpenBao; the standby key is never written anywhere (no
//! disk, no KV, no log, no journal), dies with the process (a restart makes a new one under
//! a new `kid`, and the old one leaves the JWKS with it), and signs nothing while transit
//! works. Whoever can read identity's memory could copy it — but that party already holds
//! identity's OpenBao token (it may ask transit for signatures for the token's whole life)
//! and serves the JWKS the gateways trust, so the standby key gives it nothing new. A key
//! loaded from KV at start would instead sit, copyable, in OpenBao and in every process that
//! ever read it. The transit keys' public halves are remembered from the last read, so the
//! JWKS keeps answering through an outage.
//!
//! A signature check costs ~30 µs, far above the ~2 µs a request may spend on its credentials,
//! and a client sends its one token with every request for up to a minute. So a [`Verifier`]
//! remembers the tokens whose signature it has checked ([`VERIFIED_TOKENS_MAX`] of them, in a
//! table allocated up front): a token seen again is compared in constant time with the one
//! remembered and only its claims are checked again (`exp`, `nbf` against the current time).
//! The table belongs to one key set: a JWKS reload that changes the keys starts a new verifier,
//! so a token of a key withdrawn from the JWKS is never accepted from memory.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::error::AuthError;
use crate::store::User;
use crate::vault::{Vault, bao_error};

/// The longest an access token lives.
pub const ACCESS_TTL_S_MAX: u64 = 60;
/// The largest clock difference tolerated between identity and a gateway.
pub const SKEW_S_MAX: u64 = 5;
/// The longest token accepted for verification (ours are ~400 bytes).
pub const TOKEN_BYTES_MAX: usize = 2048;
/// The most keys a JWKS may list (OpenBao's versions read are bounded the same way).
pub const JWKS_KEYS_MAX: usize = peregrine_secrets::transit::KEY_VERSIONS_MAX;
/// The largest JWKS document read.
pub const JWKS_BYTES_MAX: usize = 64 * 1024;
/// Signatures tried when a rotation lands between reading the version and signing.
const SIGN_ROUNDS_MAX: u32 = 3;
/// Bytes of an ed25519 public key and signature.
const PUBLIC_KEY_BYTES: usize = 32;
const SIGNATURE_BYTES: usize = 64;

/// Tokens a [`Verifier`] remembers as verified: one slot each, chosen by a keyed hash of the
/// token (a power of two, so the slot is a mask). At ~600 bytes a token with its claims, 4 096
/// live tokens hold ~2.5 MiB; the empty table is 64 KiB.
pub const VERIFIED_TOKENS_MAX: usize = 4096;

const _: () = assert!(SKEW_S_MAX < ACCESS_TTL_S_MAX);
const _: () = assert!(VERIFIED_TOKENS_MAX.is_power_of_two());
const _: () = assert!(JWKS_BYTES_MAX >= JWKS_KEYS_MAX * 256);

/// What the issuer writes and the verifier expects.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenConfig {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// Lifetime, seconds (1..=[`ACCESS_TTL_S_MAX`]).
    pub ttl_s: u64,
    /// Tolerated clock skew, seconds (≤ [`SKEW_S_MAX`]).
    pub skew_s: u64,
}

impl Default for TokenConfig {
    fn default() -> TokenConfig {
        TokenConfig {
            issuer: "peregrine-identity".to_owned(),
            audience: "peregrine".to_owned(),
            ttl_s: ACCESS_TTL_S_MAX,
            skew_s: 2,
        }
    }
}

impl TokenConfig {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.ttl_s == 0 || self.ttl_s > ACCESS_TTL_S_MAX {
            return Err("ttl_s must be 1..=60");
        }
        if self.skew_s > SKEW_S_MAX {
            return Err("skew_s must be at most 5");
        }
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err("issuer and audience must not be empty");
        }
        Ok(())
    }
}

/// An access token's claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user's public id.
    pub sub: String,
    /// The user's e-mail address.
    pub email: String,
    /// The user's role.
    pub role: String,
    /// The user's KYC level.
    pub level: i64,
    /// The user's trading account.
    pub account: Option<u32>,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not before, Unix seconds.
    pub nbf: u64,
    /// Expires, Unix seconds.
    pub exp: u64,
    /// Unique id.
    pub jti: String,
    /// Whether the user had 2FA (TOTP) enabled when the token was issued. Every live session
    /// of such a user has proved a code: at login, or when 2FA was enabled in it (enabling
    /// ends the user's other sessions). The control API refuses operators' tokens without it.
    /// Absent (a token of an older issuer) reads as `false`: refused where 2FA is required.
    #[serde(default)]
    pub otp: bool,
}

/// An issued token.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AccessToken {
    /// The compact JWT.
    pub token: String,
    /// Its `kid`.
    pub kid: String,
    /// Its expiry, Unix seconds.
    pub expires_at_s: u64,
    /// Signed by the in-memory standby key (OpenBao could not answer).
    pub standby: bool,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// Bytes of randomness in the standby key's `kid` suffix (a new one each process).
const STANDBY_KID_BYTES: usize = 6;

/// The ed25519 key that signs while OpenBao cannot answer: generated in memory at start,
/// never stored or exported (see the module docs for why this keeps the key custody).
pub struct StandbyKey {
    kid: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for StandbyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StandbyKey({})", self.kid)
    }
}

impl StandbyKey {
    /// A fresh key named `<jwt key>-standby-<random hex>` (never `-v<n>`: no transit kid).
    fn generate(jwt_key: &str) -> Result<StandbyKey, AuthError> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| AuthError::Random)?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| AuthError::Random)?;
        let suffix = crate::secret::random_bytes::<STANDBY_KID_BYTES>(&rng)?;
        let kid = format!("{jwt_key}-standby-{}", crate::secret::hex(&suffix));
        Ok(StandbyKey { kid, pair })
    }

    /// Its `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// Issues access tokens with OpenBao's transit key, or its [`StandbyKey`] while OpenBao
/// cannot answer.
#[derive(Debug)]
pub struct Issuer {
    vault: Vault,
    config: TokenConfig,
    /// The key version believed latest (0: not read yet).
    latest_version: AtomicU32,
    /// `None` only when the system's random source failed at start: then no token is issued
    /// while OpenBao is out (the behaviour before the standby key).
    standby: Option<StandbyKey>,
    /// Transit's public keys as last read, so the JWKS answers through an outage.
    transit_keys: RwLock<Vec<(u32, Vec<u8>)>>,
}

impl Issuer {
    /// An issuer signing with `vault`'s JWT key.
    pub fn new(vault: Vault, config: TokenConfig) -> Issuer {
        assert!(
            config.validate().is_ok(),
            "token settings checked by the caller"
        );
        let standby = StandbyKey::generate(&vault.config.jwt_key)
            .inspect_err(|error| tracing::error!(%error, "no standby JWT key"))
            .ok();
        Issuer {
            vault,
            config,
            latest_version: AtomicU32::new(0),
            standby,
            transit_keys: RwLock::new(Vec::new()),
        }
    }

    /// The standby key's `kid`, if there is one.
    pub fn standby_kid(&self) -> Option<&str> {
        self.standby.as_ref().map(StandbyKey::kid)
    }

    /// The settings.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    fn kid(&self, version: u32) -> String {
        format!("{}-v{version}", self.vault.config.jwt_key)
    }

    /// A token for `user` issued at `now_s` with a random `jti`.
    pub async fn issue(
        &self,
        user: &User,
        account: Option<u32>,
        now_s: u64,
        jti: String,
    ) -> Result<AccessToken, AuthError> {
        let claims = Claims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: user.uid.clone(),
            email: user.email.clone(),
            role: user.role.as_str().to_owned(),
            level: user.level,
            account,
            iat: now_s,
            nbf: now_s,
            exp: now_s + self.config.ttl_s,
            jti,
            otp: user.otp_enabled,
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| AuthError::Random)?;
        let payload = URL_SAFE_NO_PAD.encode(payload);
        match (self.sign_transit(&payload, claims.exp).await, &self.standby) {
            (Err(AuthError::VaultUnavailable), Some(standby)) => {
                Ok(sign_standby(standby, &payload, claims.exp))
            }
            (signed, _) => signed,
        }
    }

    /// `payload` signed by transit's latest key version.
    async fn sign_transit(&self, payload: &str, exp: u64) -> Result<AccessToken, AuthError> {
        let mut version = self.latest_version.load(Ordering::Acquire);
        if version == 0 {
            version = self.read_latest_version().await?;
        }
        for _ in 0..SIGN_ROUNDS_MAX {
            let kid = self.kid(version);
            let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid }).to_string();
            let input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header));
            let (mount, key) = (&self.vault.config.transit_mount, &self.vault.config.jwt_key);
            let signature = self
                .vault
                .client
                .transit_sign(mount, key, input.as_bytes())
                .await
                .map_err(bao_error)?;
            if signature.key_version == version {
                return Ok(AccessToken {
                    token: format!("{input}.{}", URL_SAFE_NO_PAD.encode(&signature.bytes)),
                    kid,
                    expires_at_s: exp,
                    standby: false,
                });
            }
            // Rotated since the version was read: sign again under the new kid.
            version = signature.key_version;
            self.latest_version.store(version, Ordering::Release);
        }
        Err(AuthError::VaultUnavailable)
    }

    async fn read_latest_version(&self) -> Result<u32, AuthError> {
        let keys = self.public_keys().await?;
        let latest = keys.iter().map(|(version, _)| *version).max();
        let latest = latest.ok_or(AuthError::VaultUnavailable)?;
        self.latest_version.store(latest, Ordering::Release);
        Ok(latest)
    }

    /// Transit's public keys, read now (and remembered), or as last read while OpenBao
    /// cannot answer (a key rotated meanwhile is an operator's act in OpenBao: none can be).
    async fn public_keys(&self) -> Result<Vec<(u32, Vec<u8>)>, AuthError> {
        let (mount, key) = (&self.vault.config.transit_mount, &self.vault.config.jwt_key);
        let read = self.vault.client.transit_public_keys(mount, key).await;
        let mut remembered = match read.map_err(bao_error) {
            Ok(versions) => {
                let keys: Vec<_> = versions
                    .into_iter()
                    .map(|v| (v.version, v.public_key))
                    .collect();
                *self
                    .transit_keys
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = keys.clone();
                return Ok(keys);
            }
            Err(AuthError::VaultUnavailable) => self
                .transit_keys
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            Err(error) => return Err(error),
        };
        if remembered.is_empty() && self.standby.is_none() {
            return Err(AuthError::VaultUnavailable);
        }
        remembered.truncate(JWKS_KEYS_MAX);
        Ok(remembered)
    }

    /// The JWKS: every version of the signing key OpenBao keeps (so a token signed before a
    /// rotation verifies until it expires), newest first, then the standby key.
    pub async fn jwks(&self) -> Result<serde_json::Value, AuthError> {
        let mut keys = self.public_keys().await?;
        keys.sort_by_key(|key| std::cmp::Reverse(key.0));
        if let Some((latest, _)) = keys.first() {
            self.latest_version.fetch_max(*latest, Ordering::AcqRel);
        }
        let transit_n = JWKS_KEYS_MAX - usize::from(self.standby.is_some());
        let mut set: Vec<_> = keys
            .iter()
            .take(transit_n)
            .map(|(version, public_key)| jwk(&self.kid(*version), public_key))
            .collect();
        if let Some(standby) = &self.standby {
            set.push(jwk(&standby.kid, standby.pair.public_key().as_ref()));
        }
        assert!(set.len() <= JWKS_KEYS_MAX);
        Ok(json!({ "keys": set }))
    }
}

/// One Ed25519 signing key of a JWKS.
fn jwk(kid: &str, public_key: &[u8]) -> serde_json::Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(public_key),
    })
}

/// `payload` signed in memory by the standby key (OpenBao cannot answer).
fn sign_standby(standby: &StandbyKey, payload: &str, exp: u64) -> AccessToken {
    let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": standby.kid }).to_string();
    let input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header));
    let signature = standby.pair.sign(input.as_bytes());
    assert_eq!(signature.as_ref().len(), SIGNATURE_BYTES);
    AccessToken {
        token: format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())),
        kid: standby.kid.clone(),
        expires_at_s: exp,
        standby: true,
    }
}

/// Why a JWKS was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Not the JSON shape of a JWKS.
    #[error("the JWKS is not a JSON document with a `keys` array")]
    Malformed,
    /// More keys than [`JWKS_KEYS_MAX`] or bytes than [`JWKS_BYTES_MAX`].
    #[error("the JWKS exceeds its bounds")]
    TooLarge,
    /// A key that is not an Ed25519 signing key with a kid and 32 bytes of `x`.
    #[error("JWKS key {index} is not an Ed25519 key with a kid")]
    Key {
        /// Its position.
        index: usize,
    },
    /// No key at all: nothing could verify.
    #[error("the JWKS has no key")]
    Empty,
    /// Fetching it failed.
    #[error("fetching the JWKS: {0}")]
    Fetch(#[from] reqwest::Error),
    /// Identity answered with an error status.
    #[error("fetching the JWKS: HTTP {0}")]
    Status(u16),
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Longer than [`TOKEN_BYTES_MAX`].
    #[error("the token is too long")]
    TooLong,
    /// Not three base64url parts with a JSON header and claims.
    #[error("the token is malformed")]
    Malformed,
    /// `alg` is not `EdDSA` (`none`, `HS256`, ...).
    #[error("the token's algorithm is not EdDSA")]
    Algorithm,
    /// No `kid`, or one the JWKS does not list.
    #[error("the token's key is unknown")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// Expired.
    #[error("the token expired")]
    Expired,
    /// `nbf` or `iat` in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Lives longer than [`ACCESS_TTL_S_MAX`].
    #[error("the token's lifetime is too long")]
    Lifetime,
    /// Another issuer.
    #[error("the token's issuer is not accepted")]
    Issuer,
    /// Another audience.
    #[error("the token's audience is not accepted")]
    Audience,
}

impl JwtError {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            JwtError::Expired => "authz.token_expired",
            _ => "authz.invalid_token",
        }
    }
}

/// Verifies access tokens from memory.
pub struct Verifier {
    keys: HashMap<String, [u8; PUBLIC_KEY_BYTES]>,
    config: TokenConfig,
    verified: VerifiedTokens,
}

impl Clone for Verifier {
    /// The same keys and configuration with an empty table of verified tokens.
    fn clone(&self) -> Verifier {
        Verifier {
            keys: self.keys.clone(),
            config: self.config.clone(),
            verified: VerifiedTokens::new(),
        }
    }
}

/// Tokens whose signature this verifier has checked, with their claims: a direct-mapped table
/// (a token displaces the one in its slot), one lock per slot so concurrent requests rarely
/// meet. The slot comes from a per-process random hash key, so a client cannot choose which
/// remembered token its own is compared with.
struct VerifiedTokens {
    hasher: RandomState,
    slots: Box<[Mutex<Option<Box<VerifiedToken>>>]>,
}

struct VerifiedToken {
    token: Box<str>,
    claims: Claims,
}

impl VerifiedTokens {
    fn new() -> VerifiedTokens {
        let slots: Box<[Mutex<Option<Box<VerifiedToken>>>]> =
            (0..VERIFIED_TOKENS_MAX).map(|_| Mutex::new(None)).collect();
        assert_eq!(slots.len(), VERIFIED_TOKENS_MAX);
        VerifiedTokens {
            hasher: RandomState::new(),
            slots,
        }
    }

    fn slot(&self, token: &str) -> &Mutex<Option<Box<VerifiedToken>>> {
        let index = self.hasher.hash_one(token) as usize & (VERIFIED_TOKENS_MAX - 1);
        &self.slots[index]
    }

    /// The claims remembered for exactly `token`, compared in constant time.
    fn get(&self, token: &str) -> Option<Claims> {
        let slot = self
            .slot(token)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let remembered = slot.as_ref()?;
        let same = remembered.token.len() == token.len()
            && bool::from(remembered.token.as_bytes().ct_eq(token.as_bytes()));
        same.then(|| remembered.claims.clone())
    }

    fn insert(&self, token: &str, claims: &Claims) {
        debug_assert!(token.len() <= TOKEN_BYTES_MAX);
        let entry = Box::new(VerifiedToken {
            token: token.into(),
            claims: claims.clone(),
        });
        *self
            .slot(token)
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(entry);
    }

    fn len(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| {
                slot.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some()
            })
            .count()
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        write!(f, "Verifier({kids:?}, {:?})", self.config)
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

impl Verifier {
    /// A verifier over the keys of a JWKS document, for tokens of `config`'s issuer and
    /// audience.
    pub fn from_jwks(jwks: &[u8], config: TokenConfig) -> Result<Verifier, JwksError> {
        if jwks.len() > JWKS_BYTES_MAX {
            return Err(JwksError::TooLarge);
        }
        let set: JwkSet = serde_json::from_slice(jwks).map_err(|_| JwksError::Malformed)?;
        if set.keys.len() > JWKS_KEYS_MAX {
            return Err(JwksError::TooLarge);
        }
        let mut keys = HashMap::with_capacity(set.keys.len());
        for (index, key) in set.keys.iter().enumerate() {
            let field = |name: &str| key.get(name).and_then(serde_json::Value::as_str);
            let usable = field("kty") == Some("OKP")
                && field("crv") == Some("Ed25519")
                && field("alg").is_none_or(|alg| alg == "EdDSA");
            let x = field("x").and_then(|x| URL_SAFE_NO_PAD.decode(x).ok());
            let x = x.and_then(|x| <[u8; PUBLIC_KEY_BYTES]>::try_from(x).ok());
            match (usable, field("kid"), x) {
                (true, Some(kid), Some(x)) => {
                    keys.insert(kid.to_owned(), x);
                }
                _ => return Err(JwksError::Key { index }),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::Empty);
        }
        Ok(Verifier {
            keys,
            config,
            verified: VerifiedTokens::new(),
        })
    }

    /// A verifier that knows no key yet (every token is refused with an unknown `kid`): for a
    /// gateway started while the JWKS could not be read, until a reload brings the keys.
    pub fn without_keys(config: TokenConfig) -> Verifier {
        Verifier {
            keys: HashMap::new(),
            config,
            verified: VerifiedTokens::new(),
        }
    }

    /// Whether `other` verifies with the same keys and configuration (a reload that changed
    /// nothing keeps the verifier, and with it the tokens it has verified).
    pub fn same_keys(&self, other: &Verifier) -> bool {
        self.keys == other.keys && self.config == other.config
    }

    /// How many verified tokens are remembered (a scan of the table: for tests and metrics).
    pub fn verified_len(&self) -> usize {
        self.verified.len()
    }

    /// The kids known.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The claims of `token` at `now_s`, if it is a valid token of this issuer and audience.
    pub fn verify(&self, token: &str, now_s: u64) -> Result<Claims, JwtError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(JwtError::TooLong);
        }
        // The signature, algorithm, key and parse were checked when it was remembered; the
        // time is not the same, so the claims are checked again.
        if let Some(claims) = self.verified.get(token) {
            self.check_claims(&claims, now_s)?;
            return Ok(claims);
        }
        let claims = self.verify_signed(token)?;
        self.check_claims(&claims, now_s)?;
        self.verified.insert(token, &claims);
        Ok(claims)
    }

    /// The claims of `token` once its form, algorithm, key and signature are checked.
    fn verify_signed(&self, token: &str) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(header_part), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwtError::Malformed)
        };
        let header: Header =
            serde_json::from_slice(&decode(header_part)?).map_err(|_| JwtError::Malformed)?;
        // Before any key is chosen: `none` and HMAC with the public key as secret end here.
        if header.alg != "EdDSA" {
            return Err(JwtError::Algorithm);
        }
        let kid = header.kid.ok_or(JwtError::UnknownKey)?;
        let public_key = self.keys.get(&kid).ok_or(JwtError::UnknownKey)?;
        let signature = decode(signature)?;
        if signature.len() != SIGNATURE_BYTES {
            return Err(JwtError::BadSignature);
        }
        // `header.payload`, the bytes the signature covers.
        let signed = &token[..header_part.len() + 1 + payload.len()];
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| JwtError::BadSignature)?;
        serde_json::from_slice(&decode(payload)?).map_err(|_| JwtError::Malformed)
    }

    fn check_claims(&self, claims: &Claims, now_s: u64) -> Result<(), JwtError> {
        let skew_s = self.config.skew_s;
        if claims.iss != self.config.issuer {
            return Err(JwtError::Issuer);
        }
        if claims.aud != self.config.audience {
            return Err(JwtError::Audience);
        }
        if claims.exp.saturating_sub(claims.iat) > ACCESS_TTL_S_MAX || claims.exp < claims.nbf {
            return Err(JwtError::Lifetime);
        }
        if claims.exp.saturating_add(skew_s) <= now_s {
            return Err(JwtError::Expired);
        }
        if claims.nbf > now_s.saturating_add(skew_s) || claims.iat > now_s.saturating_add(skew_s) {
            return Err(JwtError::NotYetValid);
        }
        Ok(())
    }
}

/// A [`Verifier`] kept fresh from identity's JWKS endpoint. When a reload fails the last good
/// verifier stays (a rotation is seen at the next success; tokens live 60 s).
#[derive(Debug)]
pub struct Refresher {
    current: RwLock<Arc<Verifier>>,
}

impl Refresher {
    /// Loads the JWKS at `url` once (it must succeed) and reloads it every `interval` on a
    /// task that ends when the refresher is dropped.
    pub async fn start(
        url: String,
        config: TokenConfig,
        interval: Duration,
    ) -> Result<Arc<Refresher>, JwksError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        Self::start_with(http, url, config, interval).await
    }

    /// [`Refresher::start`] with the caller's HTTP client (e.g. one that trusts only the
    /// appliance's certificate, for an `https://` JWKS).
    pub async fn start_with(
        http: reqwest::Client,
        url: String,
        config: TokenConfig,
        interval: Duration,
    ) -> Result<Arc<Refresher>, JwksError> {
        let first = fetch_verifier(&http, &url, &config).await?;
        let refresher = Arc::new(Refresher {
            current: RwLock::new(Arc::new(first)),
        });
        let weak = Arc::downgrade(&refresher);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(refresher) = weak.upgrade() else {
                    return;
                };
                match fetch_verifier(&http, &url, &config).await {
                    Ok(verifier) => refresher.replace(verifier),
                    Err(error) => tracing::warn!(%error, "JWKS reload failed; keeping the last"),
                }
            }
        });
        Ok(refresher)
    }

    /// A refresher that never reloads: `verifier` for good (tests, a static JWKS file).
    pub fn fixed(verifier: Verifier) -> Arc<Refresher> {
        Arc::new(Refresher {
            current: RwLock::new(Arc::new(verifier)),
        })
    }

    /// The verifier now (cheap: one read lock and a reference count).
    pub fn current(&self) -> Arc<Verifier> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `verifier` in place for every later request (a JWKS loaded some other way, e.g.
    /// from identity in the same process), unless it has the same keys as the current one,
    /// whose table of verified tokens is then kept.
    pub fn replace(&self, verifier: Verifier) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if !current.same_keys(&verifier) {
            *current = Arc::new(verifier);
        }
    }
}

/// Fetches a JWKS (at most [`JWKS_BYTES_MAX`] bytes) and builds its verifier.
pub async fn fetch_verifier(
    http: &reqwest::Client,
    url: &str,
    config: &TokenConfig,
) -> Result<Verifier, JwksError> {
    let mut response = http.get(url).send().await?;
    if !response.status().is_success() {
        return Err(JwksError::Status(response.status().as_u16()));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if bytes.len() + chunk.len() > JWKS_BYTES_MAX {
            return Err(JwksError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Verifier::from_jwks(&bytes, config.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_S: u64 = 1_800_000_000;

    fn key_pair() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn verifier(keys: &[(&str, &Ed25519KeyPair)]) -> Verifier {
        let keys: Vec<_> = keys
            .iter()
            .map(|(kid, pair)| {
                json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid,
                       "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())})
            })
            .collect();
        let jwks = serde_json::to_vec(&json!({ "keys": keys })).unwrap();
        Verifier::from_jwks(&jwks, TokenConfig::default()).unwrap()
    }

    fn token(kid: &str, pair: &Ed25519KeyPair, jti: &str) -> String {
        let config = TokenConfig::default();
        let claims = Claims {
            iss: config.issuer,
            aud: config.audience,
            sub: "ID0000000001".to_owned(),
            email: "a@example.com".to_owned(),
            role: "member".to_owned(),
            level: 1,
            account: Some(7),
            iat: NOW_S,
            nbf: NOW_S,
            exp: NOW_S + ACCESS_TTL_S_MAX,
            jti: jti.to_owned(),
            otp: false,
        };
        let header = json!({"alg": "EdDSA", "kid": kid, "typ": "JWT"}).to_string();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        let signature = pair.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    #[test]
    fn a_remembered_token_is_still_checked_against_the_clock() {
        let pair = key_pair();
        let verifier = verifier(&[("k-v1", &pair)]);
        let good = token("k-v1", &pair, "one");
        let claims = verifier.verify(&good, NOW_S).unwrap();
        assert_eq!(verifier.verified_len(), 1);
        assert_eq!(verifier.verify(&good, NOW_S + 1), Ok(claims));
        let skew_s = TokenConfig::default().skew_s;
        let expired = NOW_S + ACCESS_TTL_S_MAX + skew_s;
        assert_eq!(verifier.verify(&good, expired), Err(JwtError::Expired));
        assert_eq!(
            verifier.verify(&good, NOW_S - skew_s - 1),
            Err(JwtError::NotYetValid)
        );
    }

    #[test]
    fn only_the_exact_token_is_served_from_memory() {
        let pair = key_pair();
        let verifier = verifier(&[("k-v1", &pair)]);
        let good = token("k-v1", &pair, "one");
        verifier.verify(&good, NOW_S).unwrap();
        // Same length, one signature byte changed: must reach the signature check.
        let mut forged = good.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(verifier.verify(&forged, NOW_S), Err(JwtError::BadSignature));
        // A refused token is not remembered.
        assert_eq!(verifier.verified_len(), 1);
        let other = token("k-v1", &key_pair(), "two");
        assert_eq!(verifier.verify(&other, NOW_S), Err(JwtError::BadSignature));
        // A forgery that lands in the remembered token's slot is compared with it, whole.
        let forged = same_slot_forgery(&verifier, &good);
        assert!(verifier.verify(&forged, NOW_S).is_err());
    }

    /// `good` with one or two signature characters changed, hashing to `good`'s slot.
    fn same_slot_forgery(verifier: &Verifier, good: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let slot = |token: &str| std::ptr::from_ref(verifier.verified.slot(token));
        let target = slot(good);
        let signature_at = good.rfind('.').unwrap() + 1;
        let mut bytes = good.as_bytes().to_vec();
        // Positions well inside the signature; the first position's 64 values times the
        // second's 64 make 4 096 candidates per pair, the table's size.
        for first in signature_at..signature_at + 8 {
            for &a in ALPHABET {
                for &b in ALPHABET {
                    bytes[first] = a;
                    bytes[first + 20] = b;
                    let candidate = std::str::from_utf8(&bytes).unwrap();
                    if candidate != good && slot(candidate) == target {
                        return candidate.to_owned();
                    }
                }
            }
            bytes = good.as_bytes().to_vec();
        }
        panic!("no forgery found in 32 768 candidates");
    }

    #[test]
    fn a_reload_that_withdraws_a_key_forgets_its_tokens() {
        let (old, new) = (key_pair(), key_pair());
        let refresher = Refresher::fixed(verifier(&[("k-v1", &old), ("k-v2", &new)]));
        let good = token("k-v1", &old, "one");
        refresher.current().verify(&good, NOW_S).unwrap();
        // The same keys again: the table, and the token in it, stay.
        refresher.replace(verifier(&[("k-v1", &old), ("k-v2", &new)]));
        assert_eq!(refresher.current().verified_len(), 1);
        refresher.replace(verifier(&[("k-v2", &new)]));
        assert_eq!(
            refresher.current().verify(&good, NOW_S),
            Err(JwtError::UnknownKey)
        );
    }

    #[test]
    fn the_table_holds_at_most_its_bound() {
        let pair = key_pair();
        let verifier = verifier(&[("k-v1", &pair)]);
        let tokens_n = VERIFIED_TOKENS_MAX + VERIFIED_TOKENS_MAX / 2;
        for index in 0..tokens_n {
            let token = token("k-v1", &pair, &index.to_string());
            verifier.verify(&token, NOW_S).unwrap();
        }
        let remembered = verifier.verified_len();
        assert!(remembered <= VERIFIED_TOKENS_MAX);
        assert!(remembered > VERIFIED_TOKENS_MAX / 2, "{remembered}");
    }
}
