//! Sessions, keyed by the SHA-256 digest of the cookie's id (a leaked table opens none).

use super::{Store, StoreError, on_pool};

/// A session to insert.
#[derive(Clone, Debug)]
pub struct NewSession<'a> {
    /// SHA-256 of the session id.
    pub digest: &'a [u8],
    /// Public handle.
    pub handle: &'a str,
    /// Owner.
    pub user_id: i64,
    /// SHA-256 of the CSRF token.
    pub csrf_digest: &'a [u8],
    /// The client's User-Agent, cut to 255 bytes.
    pub user_agent: &'a str,
    /// The client's address.
    pub source: &'a str,
    /// Now, Unix ms.
    pub now_ms: i64,
    /// Idle expiry, Unix ms.
    pub expires_at_ms: i64,
    /// Absolute expiry, Unix ms.
    pub absolute_expires_at_ms: i64,
}

/// A live session's row.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionRow {
    /// SHA-256 of the session id.
    pub digest: Vec<u8>,
    /// Public handle.
    pub handle: String,
    /// Owner.
    pub user_id: i64,
    /// SHA-256 of the CSRF token.
    pub csrf_digest: Vec<u8>,
    /// User-Agent at login.
    pub user_agent: String,
    /// Address at login.
    pub source: String,
    /// Login time, Unix ms.
    pub created_at_ms: i64,
    /// Last use, Unix ms (to the touch interval).
    pub last_seen_ms: i64,
    /// Idle expiry, Unix ms.
    pub expires_at_ms: i64,
    /// Absolute expiry, Unix ms.
    pub absolute_expires_at_ms: i64,
}

type SessionTuple = (
    Vec<u8>,
    String,
    i64,
    Vec<u8>,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
);

fn session_from_tuple(row: SessionTuple) -> SessionRow {
    let (digest, handle, user_id, csrf_digest, user_agent, source, created, seen, idle, absolute) =
        row;
    SessionRow {
        digest,
        handle,
        user_id,
        csrf_digest,
        user_agent,
        source,
        created_at_ms: created,
        last_seen_ms: seen,
        expires_at_ms: idle,
        absolute_expires_at_ms: absolute,
    }
}

const SESSION_COLUMNS: &str = "digest, handle, user_id, csrf_digest, user_agent, source, \
                               created_at_ms, last_seen_ms, expires_at_ms, absolute_expires_at_ms";
/// The condition of a live session at `?` (now, twice).
const LIVE: &str = "revoked_at_ms IS NULL AND expires_at_ms > ? AND absolute_expires_at_ms > ?";

impl Store {
    /// Inserts a session and revokes the owner's oldest live ones beyond `sessions_max`.
    pub async fn insert_session(
        &self,
        session: &NewSession<'_>,
        sessions_max: u32,
    ) -> Result<(), StoreError> {
        const INSERT: &str = "INSERT INTO sessions (digest, handle, user_id, csrf_digest, \
                              user_agent, source, created_at_ms, last_seen_ms, expires_at_ms, \
                              absolute_expires_at_ms, revoked_at_ms) \
                              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)";
        assert!(session.expires_at_ms <= session.absolute_expires_at_ms);
        assert!(sessions_max > 0);
        let live = format!(
            "SELECT digest FROM sessions WHERE user_id = ? AND {LIVE} \
             ORDER BY created_at_ms DESC, digest"
        );
        const REVOKE: &str = "UPDATE sessions SET revoked_at_ms = ? WHERE digest = ?";
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin).await?;
            sqlx::query(INSERT)
                .bind(session.digest)
                .bind(session.handle)
                .bind(session.user_id)
                .bind(session.csrf_digest)
                .bind(session.user_agent)
                .bind(session.source)
                .bind(session.now_ms)
                .bind(session.now_ms)
                .bind(session.expires_at_ms)
                .bind(session.absolute_expires_at_ms)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_insert)?;
            let digests: Vec<Vec<u8>> = sqlx::query_scalar(&live)
                .bind(session.user_id)
                .bind(session.now_ms)
                .bind(session.now_ms)
                .fetch_all(&mut *tx)
                .await?;
            for digest in digests.iter().skip(sessions_max as usize) {
                sqlx::query(REVOKE)
                    .bind(session.now_ms)
                    .bind(digest)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The live session with this digest.
    pub async fn live_session(
        &self,
        digest: &[u8],
        now_ms: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE digest = ? AND {LIVE}");
        let row: Option<SessionTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql)
                .bind(digest)
                .bind(now_ms)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(session_from_tuple))
    }

    /// Records a use: the idle expiry moves to `expires_at_ms` (never past the absolute one).
    pub async fn touch_session(
        &self,
        digest: &[u8],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE sessions SET last_seen_ms = ?, expires_at_ms = CASE WHEN ? < \
                           absolute_expires_at_ms THEN ? ELSE absolute_expires_at_ms END \
                           WHERE digest = ? AND revoked_at_ms IS NULL";
        on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(now_ms)
                .bind(expires_at_ms)
                .bind(expires_at_ms)
                .bind(digest)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A user's live sessions, newest first.
    pub async fn sessions_of(
        &self,
        user_id: i64,
        now_ms: i64,
    ) -> Result<Vec<SessionRow>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ? AND {LIVE} \
             ORDER BY created_at_ms DESC, handle"
        );
        let rows: Vec<SessionTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql)
                .bind(user_id)
                .bind(now_ms)
                .bind(now_ms)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(session_from_tuple).collect())
    }

    /// Revokes the session named `handle` if `user_id` owns it and it is not revoked yet;
    /// whether one was revoked.
    pub async fn revoke_session_by_handle(
        &self,
        user_id: i64,
        handle: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE sessions SET revoked_at_ms = ? WHERE handle = ? AND user_id = ? \
                           AND revoked_at_ms IS NULL";
        let affected = on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(now_ms)
                .bind(handle)
                .bind(user_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Revokes every live session of a user but `keep` (a digest); how many.
    pub async fn revoke_sessions_of(
        &self,
        user_id: i64,
        keep: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "UPDATE sessions SET revoked_at_ms = ? WHERE user_id = ? \
                           AND revoked_at_ms IS NULL AND digest <> ?";
        // No session has an empty digest: with no session to keep, every one matches `<>`.
        let keep = keep.unwrap_or(&[]);
        Ok(on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(now_ms)
                .bind(user_id)
                .bind(keep)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Revokes the session with this digest, whoever owns it.
    pub async fn revoke_session_digest(
        &self,
        digest: &[u8],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE sessions SET revoked_at_ms = ? WHERE digest = ? AND revoked_at_ms IS NULL";
        on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(now_ms)
                .bind(digest)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
