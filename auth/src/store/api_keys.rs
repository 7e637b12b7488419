//! API keys and the event log gateways follow. Every change of a key and its event are one
//! transaction; event ids are drawn from a locked counter row, so ids rise in commit order.

use super::{Store, StoreError, on_pool};

/// A key to insert.
#[derive(Clone, Debug)]
pub struct NewApiKey<'a> {
    /// Owner.
    pub user_id: i64,
    /// The trading account it acts for.
    pub account_id: u32,
    /// Public id.
    pub kid: &'a str,
    /// `hmac-sha256` or `ed25519`.
    pub algorithm: &'a str,
    /// Comma-separated scopes.
    pub scopes: &'a str,
    /// The HMAC secret as OpenBao transit ciphertext.
    pub secret_ciphertext: Option<&'a str>,
    /// The ed25519 public key.
    pub public_key: Option<&'a [u8]>,
    /// Barong's legacy `nonce + key` signature accepted.
    pub legacy: bool,
    /// Comma-separated allowed addresses; `None`: any.
    pub allowed_ips: Option<&'a str>,
    /// Expiry, Unix ms.
    pub expires_at_ms: Option<i64>,
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// A stored key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiKeyRow {
    /// Owner.
    pub user_id: i64,
    /// The trading account.
    pub account_id: Option<i64>,
    /// Public id.
    pub kid: String,
    /// `hmac-sha256` or `ed25519`.
    pub algorithm: String,
    /// Comma-separated scopes.
    pub scopes: String,
    /// The HMAC secret's ciphertext.
    pub secret_ciphertext: Option<String>,
    /// The ed25519 public key.
    pub public_key: Option<Vec<u8>>,
    /// Legacy signature accepted.
    pub legacy: bool,
    /// Comma-separated allowed addresses.
    pub allowed_ips: Option<String>,
    /// `active` or `disabled`.
    pub state: String,
    /// Expiry, Unix ms.
    pub expires_at_ms: Option<i64>,
    /// Created, Unix ms.
    pub created_at_ms: i64,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyEventKind {
    /// Created (load it).
    Created,
    /// Disabled (drop it).
    Disabled,
    /// Deleted (drop it).
    Deleted,
    /// The KYC level of the user owning the trading account named in the event's `kid`
    /// column (in decimal) changed: the gateways' level gate reloads it. Written with every
    /// change of a level (e-mail verified, labels), whether or not the user holds keys: an
    /// access JWT trades too.
    Level,
}

impl KeyEventKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            KeyEventKind::Created => "created",
            KeyEventKind::Disabled => "disabled",
            KeyEventKind::Deleted => "deleted",
            KeyEventKind::Level => "level",
        }
    }

    fn parse(value: &str) -> Result<KeyEventKind, StoreError> {
        match value {
            "created" => Ok(KeyEventKind::Created),
            "disabled" => Ok(KeyEventKind::Disabled),
            "deleted" => Ok(KeyEventKind::Deleted),
            "level" => Ok(KeyEventKind::Level),
            _ => Err(StoreError::UnknownValue {
                column: "api_key_events.kind",
                value: value.to_owned(),
            }),
        }
    }
}

/// One change of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    /// Strictly increasing in commit order.
    pub id: i64,
    /// The key.
    pub kid: String,
    /// What happened.
    pub kind: KeyEventKind,
}

const KEY_COLUMNS: &str = "user_id, account_id, kid, algorithm, scopes, secret_ciphertext, \
                           public_key, legacy_signature, allowed_ips, state, expires_at_ms, \
                           created_at_ms";

type KeyTuple = (
    i64,
    Option<i64>,
    String,
    String,
    String,
    Option<String>,
    Option<Vec<u8>>,
    i64,
    Option<String>,
    String,
    Option<i64>,
    i64,
);

fn key_from_tuple(row: KeyTuple) -> ApiKeyRow {
    let (
        user_id,
        account_id,
        kid,
        algorithm,
        scopes,
        secret,
        public_key,
        legacy,
        ips,
        state,
        exp,
        at,
    ) = row;
    ApiKeyRow {
        user_id,
        account_id,
        kid,
        algorithm,
        scopes,
        secret_ciphertext: secret,
        public_key,
        legacy: legacy != 0,
        allowed_ips: ips,
        state,
        expires_at_ms: exp,
        created_at_ms: at,
    }
}

/// Appends an event inside the caller's transaction `$tx` (the counter row's lock orders it).
macro_rules! append_event {
    ($tx:expr, $kid:expr, $kind:expr, $now_ms:expr) => {{
        const BUMP: &str = "UPDATE api_key_event_seq SET last_id = last_id + 1 WHERE id = 1";
        const READ: &str = "SELECT last_id FROM api_key_event_seq WHERE id = 1";
        const INSERT: &str =
            "INSERT INTO api_key_events (id, kid, kind, at_ms) VALUES (?, ?, ?, ?)";
        sqlx::query(BUMP).execute(&mut *$tx).await?;
        let id: i64 = sqlx::query_scalar(READ).fetch_one(&mut *$tx).await?;
        assert!(id > 0);
        sqlx::query(INSERT)
            .bind(id)
            .bind($kid)
            .bind($kind.as_str())
            .bind($now_ms)
            .execute(&mut *$tx)
            .await?;
    }};
}
// For the users' and KYC's transactions that change a level.
pub(super) use append_event;

impl Store {
    /// Inserts a key and its `created` event; false (nothing written) when the user holds
    /// `keys_per_user_max` keys already.
    pub async fn insert_api_key(
        &self,
        key: &NewApiKey<'_>,
        keys_per_user_max: i64,
    ) -> Result<bool, StoreError> {
        const COUNT: &str = "SELECT COUNT(*) FROM api_keys WHERE user_id = ?";
        const INSERT: &str = "INSERT INTO api_keys (user_id, account_id, kid, algorithm, scopes, \
                              secret_ciphertext, public_key, legacy_signature, allowed_ips, state, \
                              last_nonce, expires_at_ms, created_at_ms, updated_at_ms) \
                              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', 0, ?, ?, ?)";
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin).await?;
            let lock = format!("SELECT id FROM users WHERE id = ?{}", d.for_update);
            sqlx::query(&lock)
                .bind(key.user_id)
                .fetch_one(&mut *tx)
                .await?;
            let count: i64 = sqlx::query_scalar(COUNT)
                .bind(key.user_id)
                .fetch_one(&mut *tx)
                .await?;
            if count >= keys_per_user_max {
                return Ok(false);
            }
            sqlx::query(INSERT)
                .bind(key.user_id)
                .bind(i64::from(key.account_id))
                .bind(key.kid)
                .bind(key.algorithm)
                .bind(key.scopes)
                .bind(key.secret_ciphertext)
                .bind(key.public_key)
                .bind(i64::from(key.legacy))
                .bind(key.allowed_ips)
                .bind(key.expires_at_ms)
                .bind(key.now_ms)
                .bind(key.now_ms)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_insert)?;
            append_event!(tx, key.kid, KeyEventKind::Created, key.now_ms);
            tx.commit().await?;
        });
        Ok(true)
    }

    /// The user's keys, oldest first.
    pub async fn api_keys_of(&self, user_id: i64) -> Result<Vec<ApiKeyRow>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = ? ORDER BY id");
        let rows: Vec<KeyTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(key_from_tuple).collect())
    }

    /// The key `kid`.
    pub async fn api_key(&self, kid: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE kid = ?");
        let row: Option<KeyTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql).bind(kid).fetch_optional(pool).await?
        });
        Ok(row.map(key_from_tuple))
    }

    /// Disables (`delete` false) or deletes the user's key `kid` with its event; false when
    /// the user has no such (active, for disabling) key.
    pub async fn retire_api_key(
        &self,
        user_id: i64,
        kid: &str,
        delete: bool,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const DISABLE: &str = "UPDATE api_keys SET state = 'disabled', updated_at_ms = ? \
                               WHERE user_id = ? AND kid = ? AND state = 'active'";
        const DELETE: &str = "DELETE FROM api_keys WHERE user_id = ? AND kid = ?";
        let kind = if delete {
            KeyEventKind::Deleted
        } else {
            KeyEventKind::Disabled
        };
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin).await?;
            let affected = if delete {
                sqlx::query(DELETE).bind(user_id).bind(kid)
            } else {
                sqlx::query(DISABLE).bind(now_ms).bind(user_id).bind(kid)
            }
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if affected == 0 {
                return Ok(false);
            }
            assert_eq!(affected, 1, "kid is unique");
            append_event!(tx, kid, kind, now_ms);
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Up to `limit` events after `after_id`, in order.
    pub async fn key_events_after(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<KeyEvent>, StoreError> {
        const SQL: &str =
            "SELECT id, kid, kind FROM api_key_events WHERE id > ? ORDER BY id LIMIT ?";
        let rows: Vec<(i64, String, String)> = on_pool!(self, |pool, _d| {
            sqlx::query_as(SQL)
                .bind(after_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(id, kid, kind)| {
                Ok(KeyEvent {
                    id,
                    kid,
                    kind: KeyEventKind::parse(&kind)?,
                })
            })
            .collect()
    }

    /// The newest event's id (0: none yet): a follower that loads every active key first
    /// follows from here.
    pub async fn last_key_event_id(&self) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT last_id FROM api_key_event_seq WHERE id = 1";
        Ok(on_pool!(self, |pool, _d| {
            sqlx::query_scalar(SQL).fetch_one(pool).await?
        }))
    }

    /// Every active key (a follower's start), at most `limit`.
    pub async fn active_api_keys(&self, limit: i64) -> Result<Vec<ApiKeyRow>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE state = 'active' ORDER BY id LIMIT ?"
        );
        let rows: Vec<KeyTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(key_from_tuple).collect())
    }

    /// The KYC level of the user owning trading account `account`, `None` when no user owns it.
    pub async fn level_of_account(&self, account: u32) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "SELECT users.level FROM users JOIN accounts \
                           ON accounts.user_id = users.id WHERE accounts.account_id = ?";
        Ok(on_pool!(self, |pool, _d| {
            sqlx::query_scalar(SQL)
                .bind(i64::from(account))
                .fetch_optional(pool)
                .await?
        }))
    }

    /// (account, level) of every user with a trading account, at most `limit` (a level gate's
    /// start).
    pub async fn account_levels(&self, limit: i64) -> Result<Vec<(u32, i64)>, StoreError> {
        const SQL: &str = "SELECT accounts.account_id, users.level FROM accounts JOIN users \
                           ON accounts.user_id = users.id ORDER BY accounts.account_id LIMIT ?";
        let rows: Vec<(i64, i64)> = on_pool!(self, |pool, _d| {
            sqlx::query_as(SQL).bind(limit).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(account, level)| {
                let account = u32::try_from(account).map_err(|_| StoreError::UnknownValue {
                    column: "accounts.account_id",
                    value: account.to_string(),
                })?;
                Ok((account, level))
            })
            .collect()
    }
}
