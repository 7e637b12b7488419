//! What a gateway's in-memory key cache is fed with: every active key at start, then each
//! change in the order identity committed it (the `api_key_events` log). HMAC secrets are
//! decrypted from their OpenBao transit ciphertext here, once per key change — never per
//! request. A gateway polls [`KeyFeed::poll`] on a short interval (the changes take effect
//! within one interval plus a store round trip).
//!
//! The same log carries each change of a trading account's KYC level (`KeyChange::Level`,
//! written with the e-mail verification and every label change, keys or not), which the
//! gateways' level gate follows; [`KeyFeed::levels`] gives every account's level at start.
//!
//! OpenBao unavailable (unreachable, sealed, or identity started before it could get its
//! token): an HMAC key whose secret cannot be decrypted now is *pending* — the feed moves on
//! past its event (a later revocation must not wait behind it) and decrypts it again at each
//! poll until OpenBao answers. Ed25519 keys need no OpenBao and are never pending.

use std::net::IpAddr;

use peregrine_secrets::SecretBytes;

use crate::api_keys::{ED25519, HMAC_SHA256, Scopes};
use crate::error::AuthError;
use crate::store::{ApiKeyRow, KeyEventKind, Store, StoreError};
use crate::vault::{Vault, bao_error};

/// Events read per poll.
pub const EVENTS_PER_POLL_MAX: i64 = 256;
/// Keys loaded at start at most.
pub const KEYS_LOADED_MAX: i64 = 1 << 20;
/// Pending keys retried per poll at most (each retry is a store read and a decryption).
pub const PENDING_RETRIES_PER_POLL_MAX: usize = 256;
/// Pending keys are retried at most this often, ms: an OpenBao that does not answer holds a
/// retry up to its request timeout, and the polls in between must stay fast (a revocation
/// takes effect within 1 s).
pub const PENDING_RETRY_INTERVAL_MS: u64 = 1_000;

/// A key as a gateway uses it.
#[derive(Debug)]
#[non_exhaustive]
pub struct ResolvedKey {
    /// Public id (for ed25519 keys, the QUIC `KeyId` in decimal).
    pub kid: String,
    /// The trading account.
    pub account: u32,
    /// What it may do.
    pub scopes: Scopes,
    /// The HMAC secret (HMAC keys).
    pub hmac_secret: Option<SecretBytes>,
    /// The ed25519 public key (QUIC keys).
    pub public_key: Option<[u8; 32]>,
    /// Barong's `nonce + key` signature accepted.
    pub legacy: bool,
    /// Addresses it may be used from (empty: any).
    pub allowed_ips: Vec<IpAddr>,
    /// Expiry, Unix ms.
    pub expires_at_ms: Option<i64>,
    /// An HMAC key whose secret OpenBao could not decrypt yet: a cache refuses it with 503
    /// until an `Upsert` with the secret follows.
    pub secret_pending: bool,
}

impl ResolvedKey {
    /// A key with no scope, secret or public key yet (the caller sets what it has).
    pub fn new(kid: String, account: u32) -> ResolvedKey {
        ResolvedKey {
            kid,
            account,
            scopes: Scopes::default(),
            hmac_secret: None,
            public_key: None,
            legacy: false,
            allowed_ips: Vec::new(),
            expires_at_ms: None,
            secret_pending: false,
        }
    }
}

/// A change to apply to a cache.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyChange {
    /// A key to add (or replace).
    Upsert(ResolvedKey),
    /// A key to drop.
    Remove(String),
    /// The KYC level of the user trading with `account` is now `level` (the level gate's
    /// input; key caches ignore it).
    Level {
        /// The trading account.
        account: u32,
        /// Its user's level.
        level: i64,
    },
}

/// Follows identity's key events.
#[derive(Debug)]
pub struct KeyFeed {
    store: Store,
    vault: Vault,
    last_id: i64,
    /// HMAC keys whose secret OpenBao could not decrypt yet, in the order they were met.
    pending: Vec<String>,
    /// When pending keys were last retried.
    retried_at: std::time::Instant,
}

impl KeyFeed {
    /// Every active key now, and a feed of the changes after them. The event position is read
    /// before the keys, so a change racing the load is applied again, never missed. HMAC keys
    /// OpenBao cannot decrypt now come `secret_pending` and load at a later poll.
    pub async fn start(
        store: Store,
        vault: Vault,
    ) -> Result<(KeyFeed, Vec<ResolvedKey>), AuthError> {
        let last_id = store.last_key_event_id().await?;
        let rows = store.active_api_keys(KEYS_LOADED_MAX).await?;
        let mut feed = KeyFeed {
            store,
            vault,
            last_id,
            pending: Vec::new(),
            retried_at: std::time::Instant::now(),
        };
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            // After one unavailable answer the rest are not asked: each would wait for OpenBao
            // again (up to its request timeout), and the polls retry them anyway.
            let key = feed.resolve(row, feed.pending.is_empty()).await?;
            if key.secret_pending {
                feed.pending.push(key.kid.clone());
            }
            keys.push(key);
        }
        if !feed.pending.is_empty() {
            tracing::warn!(
                pending = feed.pending.len(),
                "OpenBao unavailable: HMAC keys load once it answers"
            );
        }
        Ok((feed, keys))
    }

    /// The last event applied.
    pub fn position(&self) -> i64 {
        self.last_id
    }

    /// The HMAC keys waiting for OpenBao to decrypt their secret.
    pub fn pending(&self) -> &[String] {
        &self.pending
    }

    /// Decrypts pending keys again and applies those OpenBao now answers for (or drops those
    /// retired since); stops at the first unavailable answer.
    async fn retry_pending(&mut self, apply: &mut impl FnMut(KeyChange)) -> Result<(), AuthError> {
        for _ in 0..PENDING_RETRIES_PER_POLL_MAX {
            let Some(kid) = self.pending.first().cloned() else {
                break;
            };
            match self.store.api_key(&kid).await? {
                Some(row) if row.state == "active" => {
                    let key = self.resolve(&row, true).await?;
                    if key.secret_pending {
                        return Ok(());
                    }
                    apply(KeyChange::Upsert(key));
                }
                // Retired meanwhile: its event removes it from the caches.
                _ => {}
            }
            self.pending.remove(0);
        }
        Ok(())
    }

    /// Applies the changes since the last poll through `apply`, in order, then (at most every
    /// [`PENDING_RETRY_INTERVAL_MS`]) the pending keys whose secret OpenBao now decrypts; on a
    /// failure (the store unavailable) the changes applied so far stay and the next poll
    /// resumes after them.
    pub async fn poll(&mut self, mut apply: impl FnMut(KeyChange)) -> Result<usize, AuthError> {
        let count = self.apply_events(&mut apply).await?;
        let interval = std::time::Duration::from_millis(PENDING_RETRY_INTERVAL_MS);
        if !self.pending.is_empty() && self.retried_at.elapsed() >= interval {
            self.retried_at = std::time::Instant::now();
            self.retry_pending(&mut apply).await?;
        }
        Ok(count)
    }

    async fn apply_events(
        &mut self,
        apply: &mut impl FnMut(KeyChange),
    ) -> Result<usize, AuthError> {
        let events = self
            .store
            .key_events_after(self.last_id, EVENTS_PER_POLL_MAX)
            .await?;
        let count = events.len();
        for event in events {
            assert!(event.id > self.last_id, "events come in id order");
            let change = match event.kind {
                KeyEventKind::Created => match self.store.api_key(&event.kid).await? {
                    Some(row) if row.state == "active" => {
                        let key = self.resolve(&row, self.pending.is_empty()).await?;
                        if key.secret_pending {
                            self.pending.push(key.kid.clone());
                        }
                        KeyChange::Upsert(key)
                    }
                    // Retired since: a later event says so too; nothing to load.
                    _ => KeyChange::Remove(event.kid),
                },
                KeyEventKind::Level => match self.level_change(&event.kid).await? {
                    Some(change) => change,
                    None => {
                        self.last_id = event.id;
                        continue;
                    }
                },
                _ => {
                    self.pending.retain(|kid| *kid != event.kid);
                    KeyChange::Remove(event.kid)
                }
            };
            apply(change);
            self.last_id = event.id;
        }
        Ok(count)
    }

    /// Every trading account's level now, for a level gate's start (with [`KeyFeed::start`]:
    /// a level changed since is in the feed).
    pub async fn levels(&self) -> Result<Vec<KeyChange>, AuthError> {
        let levels = self.store.account_levels(KEYS_LOADED_MAX).await?;
        Ok(levels
            .into_iter()
            .map(|(account, level)| KeyChange::Level { account, level })
            .collect())
    }

    /// The change a `level` event stands for; `None` for an event this version cannot read
    /// (logged and skipped: one bad row must not stop every later change) or an account no
    /// user owns any more.
    async fn level_change(&self, kid: &str) -> Result<Option<KeyChange>, AuthError> {
        let Ok(account) = kid.parse::<u32>() else {
            tracing::error!(kid, "level event without an account: skipped");
            return Ok(None);
        };
        let level = self.store.level_of_account(account).await?;
        Ok(level.map(|level| KeyChange::Level { account, level }))
    }

    /// The key of `row`, its HMAC secret decrypted by OpenBao when `ask` and OpenBao answers,
    /// else `secret_pending`.
    async fn resolve(&self, row: &ApiKeyRow, ask: bool) -> Result<ResolvedKey, AuthError> {
        let mut key = describe(row)?;
        let Some(ciphertext) = row
            .secret_ciphertext
            .as_ref()
            .filter(|_| row.algorithm == HMAC_SHA256)
        else {
            return Ok(key);
        };
        key.secret_pending = true;
        if !ask {
            return Ok(key);
        }
        let (mount, name) = (
            &self.vault.config.transit_mount,
            &self.vault.config.secrets_key,
        );
        match self
            .vault
            .client
            .transit_decrypt(mount, name, ciphertext)
            .await
            .map_err(bao_error)
        {
            Ok(secret) => {
                key.hmac_secret = Some(secret);
                key.secret_pending = false;
            }
            Err(AuthError::VaultUnavailable) => {}
            Err(error) => return Err(error),
        }
        Ok(key)
    }
}

/// The key of `row` without its secret: what needs no OpenBao.
fn describe(row: &ApiKeyRow) -> Result<ResolvedKey, AuthError> {
    // A row this version cannot use: a store fault (500), named by its key.
    let malformed = || {
        AuthError::Store(StoreError::UnknownValue {
            column: "api_keys",
            value: row.kid.clone(),
        })
    };
    let account = row
        .account_id
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(malformed)?;
    match (row.algorithm.as_str(), &row.secret_ciphertext) {
        (HMAC_SHA256, Some(_)) | (ED25519, None) => {}
        _ => return Err(malformed()),
    }
    let public_key = match &row.public_key {
        Some(bytes) => Some(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| malformed())?),
        None => None,
    };
    let allowed_ips = match &row.allowed_ips {
        Some(text) => text
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<IpAddr>, _>>()
            .map_err(|_| malformed())?,
        None => Vec::new(),
    };
    Ok(ResolvedKey {
        kid: row.kid.clone(),
        account,
        scopes: Scopes::from_csv(&row.scopes)?,
        hmac_secret: None,
        public_key,
        legacy: row.legacy,
        allowed_ips,
        expires_at_ms: row.expires_at_ms,
        secret_pending: false,
    })
}
