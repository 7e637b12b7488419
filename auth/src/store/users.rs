//! Users, their labels, e-mailed codes and trading accounts.

use super::api_keys::append_event;
use super::{Store, StoreError, on_pool};

/// Rounds of an account allocation that lost a race before giving up (each loss means another
/// user got the next id: progress).
const ACCOUNT_ALLOCATION_ROUNDS_MAX: u32 = 16;

/// Where a user is in its life cycle (Barong's states, plus `disabled` by an operator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserState {
    /// Signed up, e-mail not verified.
    Pending,
    /// Verified; may log in.
    Active,
    /// Banned (labels `ban`, `fraud`).
    Banned,
    /// Locked by an operator (label `lock`).
    Locked,
    /// Disabled by an operator.
    Disabled,
}

impl UserState {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Pending => "pending",
            UserState::Active => "active",
            UserState::Banned => "banned",
            UserState::Locked => "locked",
            UserState::Disabled => "disabled",
        }
    }

    fn parse(value: &str) -> Result<UserState, StoreError> {
        Ok(match value {
            "pending" => UserState::Pending,
            "active" => UserState::Active,
            "banned" => UserState::Banned,
            "locked" => UserState::Locked,
            "disabled" => UserState::Disabled,
            _ => {
                return Err(StoreError::UnknownValue {
                    column: "users.state",
                    value: value.to_owned(),
                });
            }
        })
    }
}

/// A role (Barong's, less `broker` and `maker`, which no action needs yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Every action.
    Superadmin,
    /// Operations and user administration.
    Admin,
    /// Balances, deposits and withdrawals review.
    Accountant,
    /// KYC review.
    Compliance,
    /// Read-only support.
    Support,
    /// Markets and system operations.
    Technical,
    /// Trading with higher limits.
    Trader,
    /// A signed-up user.
    Member,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 8] = [
        Role::Superadmin,
        Role::Admin,
        Role::Accountant,
        Role::Compliance,
        Role::Support,
        Role::Technical,
        Role::Trader,
        Role::Member,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Superadmin => "superadmin",
            Role::Admin => "admin",
            Role::Accountant => "accountant",
            Role::Compliance => "compliance",
            Role::Support => "support",
            Role::Technical => "technical",
            Role::Trader => "trader",
            Role::Member => "member",
        }
    }

    /// The role named `value`.
    pub fn parse(value: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == value)
    }

    /// Whether the role is staff, made on the host (`peregrine admin create-operator`): every
    /// role but the two a signed-up user can hold. Only staff reach the control API.
    pub fn is_operator(self) -> bool {
        !matches!(self, Role::Trader | Role::Member)
    }
}

/// A user row.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct User {
    /// Internal key.
    pub id: i64,
    /// Public id (`ID` + 10 hex digits, as Barong's).
    pub uid: String,
    /// Lower-cased e-mail address.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// State.
    pub state: UserState,
    /// KYC level.
    pub level: i64,
    /// Whether TOTP is enabled.
    pub otp_enabled: bool,
    /// Created, Unix ms.
    pub created_at_ms: i64,
    /// Last changed, Unix ms.
    pub updated_at_ms: i64,
}

/// A user to insert.
#[derive(Clone, Debug)]
pub struct NewUser<'a> {
    /// Public id.
    pub uid: &'a str,
    /// Lower-cased e-mail address.
    pub email: &'a str,
    /// argon2id PHC string.
    pub password_hash: &'a str,
    /// Role.
    pub role: Role,
    /// State.
    pub state: UserState,
    /// Level.
    pub level: i64,
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// An e-mailed code's row.
#[derive(Clone, Debug)]
pub struct CodeRow {
    /// Key.
    pub id: i64,
    /// SHA-256 of the code.
    pub digest: Vec<u8>,
    /// Wrong tries so far.
    pub attempts: i64,
    /// Expiry, Unix ms.
    pub expires_at_ms: i64,
}

/// What an e-mailed code is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodePurpose {
    /// Verifying the e-mail address.
    Email,
    /// Resetting the password.
    Password,
}

impl CodePurpose {
    fn as_str(self) -> &'static str {
        match self {
            CodePurpose::Email => "email",
            CodePurpose::Password => "password",
        }
    }
}

/// Drops the user's private `email` label, before [`LABEL`] sets it to `verified`.
const LABEL_DELETE: &str =
    "DELETE FROM labels WHERE user_id = ? AND label_key = 'email' AND scope = 'private'";
/// Sets the user's private `email` label to `verified` (binds: user, now, now).
const LABEL: &str = "INSERT INTO labels (user_id, label_key, scope, label_value, \
                     created_at_ms, updated_at_ms) VALUES (?, 'email', 'private', 'verified', ?, ?)";

const USER_COLUMNS: &str = "id, uid, email, password_hash, role, state, level, otp_enabled, \
                            created_at_ms, updated_at_ms";

/// A user row as read.
type UserTuple = (
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
);

fn user_from_tuple(row: UserTuple) -> Result<User, StoreError> {
    let (id, uid, email, password_hash, role, state, level, otp, created_at_ms, updated_at_ms) =
        row;
    Ok(User {
        id,
        uid,
        email,
        password_hash,
        role: Role::parse(&role).ok_or(StoreError::UnknownValue {
            column: "users.role",
            value: role,
        })?,
        state: UserState::parse(&state)?,
        level,
        otp_enabled: otp != 0,
        created_at_ms,
        updated_at_ms,
    })
}

impl Store {
    /// Inserts a user; [`StoreError::Duplicate`] when the e-mail (or uid) is taken.
    pub async fn insert_user(&self, user: &NewUser<'_>) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO users (uid, email, password_hash, role, state, level, \
                           otp_enabled, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)";
        const ID: &str = "SELECT id FROM users WHERE uid = ?";
        // Read back by the unique uid: MySQL has no `RETURNING`, and the two drivers name the
        // last insert id differently.
        let id: i64 = on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(user.uid)
                .bind(user.email)
                .bind(user.password_hash)
                .bind(user.role.as_str())
                .bind(user.state.as_str())
                .bind(user.level)
                .bind(user.now_ms)
                .bind(user.now_ms)
                .execute(pool)
                .await
                .map_err(StoreError::from_insert)?;
            sqlx::query_scalar(ID)
                .bind(user.uid)
                .fetch_one(pool)
                .await?
        });
        assert!(id > 0, "auto-increment keys start at 1");
        Ok(id)
    }

    /// The user with this (lower-cased) e-mail address.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?");
        on_pool!(self, |pool, _d| {
            let row: Option<UserTuple> = sqlx::query_as(&sql)
                .bind(email)
                .fetch_optional(pool)
                .await?;
            row.map(user_from_tuple).transpose()
        })
    }

    /// Up to `limit` users whose (lower-cased) e-mail address starts with `prefix`, by
    /// address (the operator console's user search). The caller refuses `%` and `_`.
    pub async fn users_by_email_prefix(
        &self,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let sql =
            format!("SELECT {USER_COLUMNS} FROM users WHERE email LIKE ? ORDER BY email LIMIT ?");
        let pattern = format!("{prefix}%");
        let rows: Vec<UserTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql)
                .bind(&pattern)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(user_from_tuple).collect()
    }

    /// The user with this key.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        on_pool!(self, |pool, _d| {
            let row: Option<UserTuple> = sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?;
            row.map(user_from_tuple).transpose()
        })
    }

    /// Replaces a user's password hash.
    pub async fn set_password_hash(
        &self,
        user_id: i64,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE users SET password_hash = ?, updated_at_ms = ? WHERE id = ?";
        on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(password_hash)
                .bind(now_ms)
                .bind(user_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Sets a user's state.
    pub async fn set_user_state(
        &self,
        user_id: i64,
        state: UserState,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE users SET state = ?, updated_at_ms = ? WHERE id = ?";
        on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(state.as_str())
                .bind(now_ms)
                .bind(user_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The trading account mapped to a user, if any.
    pub async fn account_of(&self, user_id: i64) -> Result<Option<u32>, StoreError> {
        const SQL: &str = "SELECT account_id FROM accounts WHERE user_id = ?";
        let found: Option<i64> = on_pool!(self, |pool, _d| {
            sqlx::query_scalar(SQL)
                .bind(user_id)
                .fetch_optional(pool)
                .await?
        });
        found
            .map(|id| {
                u32::try_from(id).map_err(|_| StoreError::UnknownValue {
                    column: "accounts.account_id",
                    value: id.to_string(),
                })
            })
            .transpose()
    }

    /// The user a trading account is mapped to, if any (the wallets ask it for the TOTP code
    /// of a withdrawal, which names an account).
    pub async fn user_by_account(&self, account: u32) -> Result<Option<User>, StoreError> {
        let columns = USER_COLUMNS
            .split(", ")
            .map(|column| format!("u.{column}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM users u JOIN accounts a ON a.user_id = u.id \
             WHERE a.account_id = ?"
        );
        on_pool!(self, |pool, _d| {
            let row: Option<UserTuple> = sqlx::query_as(&sql)
                .bind(i64::from(account))
                .fetch_optional(pool)
                .await?;
            row.map(user_from_tuple).transpose()
        })
    }

    /// Marks a pending user's e-mail verified in one transaction: state `active`, level at
    /// least 1, label `email: verified`, and a trading account from `[first, end)` (the lowest
    /// unused above the highest given). Returns the account, or `None` when the range is full
    /// (nothing then changes). Idempotent: a user already mapped keeps its account.
    pub async fn activate_user(
        &self,
        user_id: i64,
        now_ms: i64,
        account_first: u32,
        account_end: u32,
    ) -> Result<Option<u32>, StoreError> {
        assert!(account_first < account_end);
        for _ in 0..ACCOUNT_ALLOCATION_ROUNDS_MAX {
            match self
                .try_activate(user_id, now_ms, account_first, account_end)
                .await
            {
                Err(StoreError::Duplicate) => continue,
                other => return other,
            }
        }
        Err(StoreError::Contention {
            what: "account allocation",
        })
    }

    async fn try_activate(
        &self,
        user_id: i64,
        now_ms: i64,
        first: u32,
        end: u32,
    ) -> Result<Option<u32>, StoreError> {
        const MAPPED: &str = "SELECT account_id FROM accounts WHERE user_id = ?";
        const HIGHEST: &str =
            "SELECT MAX(account_id) FROM accounts WHERE account_id >= ? AND account_id < ?";
        const INSERT: &str =
            "INSERT INTO accounts (user_id, account_id, created_at_ms) VALUES (?, ?, ?)";
        const ACTIVATE: &str = "UPDATE users SET state = 'active', level = CASE WHEN level < 1 \
                                THEN 1 ELSE level END, updated_at_ms = ? WHERE id = ?";
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin).await?;
            let lock = format!("SELECT id FROM users WHERE id = ?{}", d.for_update);
            sqlx::query(&lock).bind(user_id).fetch_one(&mut *tx).await?;
            let mapped: Option<i64> = sqlx::query_scalar(MAPPED)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            let account = match mapped {
                Some(account) => account,
                None => {
                    let highest: Option<i64> = sqlx::query_scalar(HIGHEST)
                        .bind(i64::from(first))
                        .bind(i64::from(end))
                        .fetch_one(&mut *tx)
                        .await?;
                    let next = highest.map_or(i64::from(first), |h| h + 1);
                    if next >= i64::from(end) {
                        return Ok(None);
                    }
                    sqlx::query(INSERT)
                        .bind(user_id)
                        .bind(next)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from_insert)?;
                    next
                }
            };
            sqlx::query(ACTIVATE)
                .bind(now_ms)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            // The level became at least 1: the gateways' level gate follows.
            append_event!(tx, account.to_string(), super::KeyEventKind::Level, now_ms);
            sqlx::query(LABEL_DELETE)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(LABEL)
                .bind(user_id)
                .bind(now_ms)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            let account = u32::try_from(account).map_err(|_| StoreError::UnknownValue {
                column: "accounts.account_id",
                value: account.to_string(),
            })?;
            assert!(account >= first && account < end);
            Ok(Some(account))
        })
    }

    /// Stores a new code for `purpose`, voiding the user's earlier ones of that purpose.
    pub async fn replace_code(
        &self,
        user_id: i64,
        purpose: CodePurpose,
        digest: &[u8],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        const DELETE: &str = "DELETE FROM email_codes WHERE user_id = ? AND purpose = ?";
        const INSERT: &str = "INSERT INTO email_codes (user_id, purpose, code_digest, attempts, \
                              consumed, created_at_ms, expires_at_ms) VALUES (?, ?, ?, 0, 0, ?, ?)";
        assert!(expires_at_ms > now_ms);
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin).await?;
            sqlx::query(DELETE)
                .bind(user_id)
                .bind(purpose.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT)
                .bind(user_id)
                .bind(purpose.as_str())
                .bind(digest)
                .bind(now_ms)
                .bind(expires_at_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The user's live (unconsumed) code for `purpose`.
    pub async fn current_code(
        &self,
        user_id: i64,
        purpose: CodePurpose,
    ) -> Result<Option<CodeRow>, StoreError> {
        const SQL: &str = "SELECT id, code_digest, attempts, expires_at_ms FROM email_codes \
                           WHERE user_id = ? AND purpose = ? AND consumed = 0 ORDER BY id DESC LIMIT 1";
        let row: Option<(i64, Vec<u8>, i64, i64)> = on_pool!(self, |pool, _d| {
            sqlx::query_as(SQL)
                .bind(user_id)
                .bind(purpose.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(id, digest, attempts, expires_at_ms)| CodeRow {
            id,
            digest,
            attempts,
            expires_at_ms,
        }))
    }

    /// Counts a wrong try of a code.
    pub async fn count_code_attempt(&self, code_id: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE email_codes SET attempts = attempts + 1 WHERE id = ?";
        on_pool!(self, |pool, _d| {
            sqlx::query(SQL).bind(code_id).execute(pool).await?;
        });
        Ok(())
    }

    /// Consumes a code; false when it was consumed already (a concurrent use won).
    pub async fn consume_code(&self, code_id: i64) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE email_codes SET consumed = 1 WHERE id = ? AND consumed = 0";
        let affected = on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(code_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// A user's label value.
    pub async fn label(
        &self,
        user_id: i64,
        key: &str,
        scope: &str,
    ) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT label_value FROM labels WHERE user_id = ? AND label_key = ? \
                           AND scope = ?";
        Ok(on_pool!(self, |pool, _d| {
            sqlx::query_scalar(SQL)
                .bind(user_id)
                .bind(key)
                .bind(scope)
                .fetch_optional(pool)
                .await?
        }))
    }
}
