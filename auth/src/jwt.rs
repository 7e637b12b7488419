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
//! client per token lifetime, never per request) and no issuance while OpenBao is down (503
//! `identity.vault_unavailable`); verification, the per-request part, never calls OpenBao.
//!
//! `kid` is `<transit key name>-v<version>`. Rotation without downtime: after a rotation the
//! next signature comes back with the new version, the issuer notices that it differs from the
//! `kid` it wrote, and signs again under the new `kid`; the JWKS lists every version OpenBao
//! keeps, so tokens signed by the previous version verify until they expire (≤ 60 s).
//!
//! [`Verifier`] is pure and in memory: a JWKS in, `verify(token, now)` out — the algorithm
//! must be `EdDSA`, the `kid` known, `exp`/`nbf`/`iat` within a bounded skew, `iss` and `aud`
//! the configured ones. [`Refresher`] reloads the JWKS from identity periodically.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::json;

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

const _: () = assert!(SKEW_S_MAX < ACCESS_TTL_S_MAX);
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
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// Issues access tokens with OpenBao's transit key.
#[derive(Debug)]
pub struct Issuer {
    vault: Vault,
    config: TokenConfig,
    /// The key version believed latest (0: not read yet).
    latest_version: AtomicU32,
}

impl Issuer {
    /// An issuer signing with `vault`'s JWT key.
    pub fn new(vault: Vault, config: TokenConfig) -> Issuer {
        assert!(
            config.validate().is_ok(),
            "token settings checked by the caller"
        );
        Issuer {
            vault,
            config,
            latest_version: AtomicU32::new(0),
        }
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
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| AuthError::Random)?;
        let payload = URL_SAFE_NO_PAD.encode(payload);
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
                    expires_at_s: claims.exp,
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

    async fn public_keys(&self) -> Result<Vec<(u32, Vec<u8>)>, AuthError> {
        let (mount, key) = (&self.vault.config.transit_mount, &self.vault.config.jwt_key);
        let versions = self
            .vault
            .client
            .transit_public_keys(mount, key)
            .await
            .map_err(bao_error)?;
        Ok(versions
            .into_iter()
            .map(|v| (v.version, v.public_key))
            .collect())
    }

    /// The JWKS: every version of the signing key OpenBao keeps (so a token signed before a
    /// rotation verifies until it expires), newest first.
    pub async fn jwks(&self) -> Result<serde_json::Value, AuthError> {
        let mut keys = self.public_keys().await?;
        keys.sort_by_key(|key| std::cmp::Reverse(key.0));
        if let Some((latest, _)) = keys.first() {
            self.latest_version.fetch_max(*latest, Ordering::AcqRel);
        }
        let keys: Vec<_> = keys
            .iter()
            .take(JWKS_KEYS_MAX)
            .map(|(version, public_key)| {
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": self.kid(*version),
                    "x": URL_SAFE_NO_PAD.encode(public_key),
                })
            })
            .collect();
        Ok(json!({ "keys": keys }))
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
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, [u8; PUBLIC_KEY_BYTES]>,
    config: TokenConfig,
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
        Ok(Verifier { keys, config })
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
        let claims: Claims =
            serde_json::from_slice(&decode(payload)?).map_err(|_| JwtError::Malformed)?;
        self.check_claims(&claims, now_s)?;
        Ok(claims)
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
    /// from identity in the same process).
    pub fn replace(&self, verifier: Verifier) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(verifier);
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
