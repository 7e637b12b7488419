//! Self-service API keys: create, list, disable, delete — only with 2FA enabled and a fresh
//! TOTP code. Two kinds: HMAC-SHA256 keys for the REST bridge and private WebSocket streams
//! (the secret is drawn here, shown once, and stored only as OpenBao transit ciphertext), and
//! ed25519 public keys for the QUIC logon (the client keeps the private key).
//!
//! Scopes are `read`, `trade` and `withdraw`; an optional address allowlist and expiry bound a
//! key further. Every change is written with an event ([`crate::store::KeyEvent`]) that the
//! gateways' caches follow ([`crate::key_feed`]).
//!
//! The legacy flag: Barong signed only `nonce + key`, so a captured signature fits any method,
//! path and body with that nonce. A key created with `legacy: true` is still accepted with that
//! weaker signature (for old clients); every other key must sign nonce, method, path and the
//! body's SHA-256.

use std::net::IpAddr;

use ring::rand::SystemRandom;

use crate::error::AuthError;
use crate::identity::{Identity, SessionAuth, Source};
use crate::secret;
use crate::store::{ApiKeyRow, NewApiKey};
use crate::vault::bao_error;

/// Keys one user may hold.
pub const KEYS_PER_USER_MAX: i64 = 16;
/// Addresses in one key's allowlist.
pub const ALLOWED_IPS_MAX: usize = 16;
/// Bytes of a new HMAC secret (256 bits).
pub const SECRET_BYTES: usize = 32;
/// Bytes of randomness in an HMAC key's id (16 hex digits, as Barong's).
const KID_BYTES: usize = 8;
/// Scopes named at most in one request.
const SCOPES_MAX: usize = 3;

/// What a key may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// Read accounts, orders and trades.
    pub const READ: Scopes = Scopes(1);
    /// Place and cancel orders.
    pub const TRADE: Scopes = Scopes(2);
    /// Withdraw funds.
    pub const WITHDRAW: Scopes = Scopes(4);
    const NAMES: [(Scopes, &'static str); 3] = [
        (Scopes::READ, "read"),
        (Scopes::TRADE, "trade"),
        (Scopes::WITHDRAW, "withdraw"),
    ];

    /// Whether every scope of `other` is in `self`.
    pub fn contains(self, other: Scopes) -> bool {
        self.0 & other.0 == other.0
    }

    /// From names; an unknown or empty list is `InvalidParams`.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Scopes, AuthError> {
        let invalid = AuthError::InvalidParams { field: "scopes" };
        if names.is_empty() || names.len() > SCOPES_MAX {
            return Err(invalid);
        }
        let mut scopes = Scopes(0);
        for name in names {
            let (scope, _) = Scopes::NAMES
                .iter()
                .find(|(_, known)| *known == name.as_ref())
                .ok_or(AuthError::InvalidParams { field: "scopes" })?;
            scopes.0 |= scope.0;
        }
        Ok(scopes)
    }

    /// From the stored comma-separated form.
    pub fn from_csv(text: &str) -> Result<Scopes, AuthError> {
        let names: Vec<&str> = text.split(',').take(SCOPES_MAX + 1).collect();
        Scopes::from_names(&names)
    }

    /// The names, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        Scopes::NAMES
            .iter()
            .filter(|(scope, _)| self.contains(*scope))
            .map(|(_, name)| *name)
            .collect()
    }
}

/// The kind of key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// An HMAC-SHA256 key; `legacy` also accepts Barong's `nonce + key` signature.
    Hmac {
        /// Barong's weaker signature accepted.
        legacy: bool,
    },
    /// An ed25519 public key for the QUIC logon.
    Ed25519 {
        /// The 32-byte public key.
        public_key: [u8; 32],
    },
}

/// A key to create.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CreateKey {
    /// The kind.
    pub kind: KeyKind,
    /// The scopes.
    pub scopes: Scopes,
    /// The addresses it may be used from (empty: any).
    pub allowed_ips: Vec<IpAddr>,
    /// Expiry, Unix ms.
    pub expires_at_ms: Option<i64>,
}

impl CreateKey {
    /// A request, checked.
    pub fn new(
        kind: KeyKind,
        scopes: Scopes,
        allowed_ips: Vec<IpAddr>,
        expires_at_ms: Option<i64>,
    ) -> Result<CreateKey, AuthError> {
        if allowed_ips.len() > ALLOWED_IPS_MAX {
            return Err(AuthError::InvalidParams {
                field: "allowed_ips",
            });
        }
        Ok(CreateKey {
            kind,
            scopes,
            allowed_ips,
            expires_at_ms,
        })
    }
}

/// A key just created: its id and, for HMAC, the secret — shown this once.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CreatedKey {
    /// The key's public id (for ed25519 keys, the QUIC `KeyId` in decimal).
    pub kid: String,
    /// The HMAC secret, hex; never stored in clear, never shown again.
    pub secret: Option<String>,
}

/// The algorithm names stored.
pub const HMAC_SHA256: &str = "hmac-sha256";
/// The algorithm names stored.
pub const ED25519: &str = "ed25519";

impl Identity {
    /// Creates a key for the session's user, who must have 2FA on and give a fresh code.
    pub async fn create_api_key(
        &self,
        auth: &SessionAuth,
        request: &CreateKey,
        totp_code: Option<&str>,
        source: &Source,
    ) -> Result<CreatedKey, AuthError> {
        let result = self.create_api_key_inner(auth, request, totp_code).await;
        let target = result
            .as_ref()
            .map_or("", |key| key.kid.as_str())
            .to_owned();
        let uid = &auth.user.uid;
        self.audited(uid, "identity.api_key.create", &target, source, result)
            .await
    }

    async fn create_api_key_inner(
        &self,
        auth: &SessionAuth,
        request: &CreateKey,
        totp_code: Option<&str>,
    ) -> Result<CreatedKey, AuthError> {
        let now_ms = self.now_ms();
        if request.expires_at_ms.is_some_and(|at| at <= now_ms) {
            return Err(AuthError::InvalidParams {
                field: "expires_at",
            });
        }
        let account = self.store().account_of(auth.user.id).await?;
        let account = account.ok_or(AuthError::InvalidParams { field: "account" })?;
        self.require_otp(&auth.user, totp_code).await?;
        let rng = SystemRandom::new();
        let (kid, secret, ciphertext, public_key, legacy) = match &request.kind {
            KeyKind::Hmac { legacy } => {
                let secret = secret::hex(&secret::random_bytes::<SECRET_BYTES>(&rng)?);
                let vault = self.vault()?;
                let (mount, key) = (&vault.config.transit_mount, &vault.config.secrets_key);
                let ciphertext = vault
                    .client
                    .transit_encrypt(mount, key, secret.as_bytes())
                    .await
                    .map_err(bao_error)?;
                let kid = secret::hex(&secret::random_bytes::<KID_BYTES>(&rng)?);
                (kid, Some(secret), Some(ciphertext), None, *legacy)
            }
            KeyKind::Ed25519 { public_key } => {
                // A QUIC KeyId: 2^40 and up, clear of the small ids the bootstrap config uses.
                let draw = u64::from_le_bytes(secret::random_bytes::<8>(&rng)?);
                let kid = ((1u64 << 40) | (draw >> 24)).to_string();
                (kid, None, None, Some(public_key.to_vec()), false)
            }
        };
        let scopes = request.scopes.names().join(",");
        let ips: Vec<String> = request.allowed_ips.iter().map(IpAddr::to_string).collect();
        let ips = (!ips.is_empty()).then(|| ips.join(","));
        let row = NewApiKey {
            user_id: auth.user.id,
            account_id: account,
            kid: &kid,
            algorithm: if public_key.is_some() {
                ED25519
            } else {
                HMAC_SHA256
            },
            scopes: &scopes,
            secret_ciphertext: ciphertext.as_deref(),
            public_key: public_key.as_deref(),
            legacy,
            allowed_ips: ips.as_deref(),
            expires_at_ms: request.expires_at_ms,
            now_ms,
        };
        if !self.store().insert_api_key(&row, KEYS_PER_USER_MAX).await? {
            return Err(AuthError::TooManyKeys);
        }
        Ok(CreatedKey { kid, secret })
    }

    /// The session's user's keys (never a secret).
    pub async fn api_keys(&self, auth: &SessionAuth) -> Result<Vec<ApiKeyRow>, AuthError> {
        Ok(self.store().api_keys_of(auth.user.id).await?)
    }

    /// Disables (`delete` false) or deletes one of the user's own keys, with a fresh code.
    /// Another user's key is `KeyNotFound`, exactly as a key that does not exist.
    pub async fn retire_api_key(
        &self,
        auth: &SessionAuth,
        kid: &str,
        delete: bool,
        totp_code: Option<&str>,
        source: &Source,
    ) -> Result<(), AuthError> {
        let result = async {
            self.require_otp(&auth.user, totp_code).await?;
            let done = self
                .store()
                .retire_api_key(auth.user.id, kid, delete, self.now_ms())
                .await?;
            if done {
                Ok(())
            } else {
                Err(AuthError::KeyNotFound)
            }
        }
        .await;
        let action = if delete {
            "identity.api_key.delete"
        } else {
            "identity.api_key.disable"
        };
        self.audited(&auth.user.uid, action, kid, source, result)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_refuse_unknown_names() {
        let scopes = Scopes::from_names(&["trade", "read"]).unwrap();
        assert_eq!(scopes.names(), ["read", "trade"]);
        assert_eq!(Scopes::from_csv("read,trade").unwrap(), scopes);
        assert!(scopes.contains(Scopes::TRADE) && !scopes.contains(Scopes::WITHDRAW));
        for bad in [
            &["admin"][..],
            &[][..],
            &["read", "read", "read", "read"][..],
        ] {
            assert!(Scopes::from_names(bad).is_err(), "{bad:?}");
        }
    }
}
