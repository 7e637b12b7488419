//! What a gateway's in-memory key cache is fed with: every active key at start, then each
//! change in the order identity committed it (the `api_key_events` log). HMAC secrets are
//! decrypted from their OpenBao transit ciphertext here, once per key change — never per
//! request. A gateway polls [`KeyFeed::poll`] on a short interval (the changes take effect
//! within one interval plus a store round trip).
//!
//! The same log carries each change of a trading account's KYC level (`KeyChange::Level`,
//! written with the e-mail verification and every label change, keys or not), which the
//! gateways' level gate follows; [`KeyFeed::levels`] gives every account's level at start.

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
}

impl KeyFeed {
    /// Every active key now, and a feed of the changes after them. The event position is read
    /// before the keys, so a change racing the load is applied again, never missed.
    pub async fn start(
        store: Store,
        vault: Vault,
    ) -> Result<(KeyFeed, Vec<ResolvedKey>), AuthError> {
        let last_id = store.last_key_event_id().await?;
        let rows = store.active_api_keys(KEYS_LOADED_MAX).await?;
        let feed = KeyFeed {
            store,
            vault,
            last_id,
        };
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            keys.push(feed.resolve(row).await?);
        }
        Ok((feed, keys))
    }

    /// The last event applied.
    pub fn position(&self) -> i64 {
        self.last_id
    }

    /// Applies the changes since the last poll through `apply`, in order; on a failure (the
    /// store or OpenBao unavailable) the changes applied so far stay and the next poll resumes
    /// after them.
    pub async fn poll(&mut self, mut apply: impl FnMut(KeyChange)) -> Result<usize, AuthError> {
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
                        KeyChange::Upsert(self.resolve(&row).await?)
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
                _ => KeyChange::Remove(event.kid),
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

    async fn resolve(&self, row: &ApiKeyRow) -> Result<ResolvedKey, AuthError> {
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
        let hmac_secret = match (row.algorithm.as_str(), &row.secret_ciphertext) {
            (HMAC_SHA256, Some(ciphertext)) => {
                let (mount, key) = (
                    &self.vault.config.transit_mount,
                    &self.vault.config.secrets_key,
                );
                let secret = self
                    .vault
                    .client
                    .transit_decrypt(mount, key, ciphertext)
                    .await
                    .map_err(bao_error)?;
                Some(secret)
            }
            (ED25519, None) => None,
            _ => return Err(malformed()),
        };
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
            hmac_secret,
            public_key,
            legacy: row.legacy,
            allowed_ips,
            expires_at_ms: row.expires_at_ms,
        })
    }
}
