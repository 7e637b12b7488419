//! The audit table: append under a lock on the chain's head, read in pages.

use super::{Store, StoreError, on_pool};
use crate::audit::{AuditEntry, GENESIS_HASH, chain_hash};

/// Rounds an append retries after losing the race for the next sequence number (only on an
/// empty table, where there is no head row to lock).
const AUDIT_APPEND_ROUNDS_MAX: u32 = 8;

/// A stored audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRow {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// The entry.
    pub entry: AuditEntry,
    /// The previous record's hash (zeros for the first).
    pub prev_hash: Vec<u8>,
    /// This record's hash.
    pub hash: Vec<u8>,
}

type AuditTuple = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Vec<u8>,
    Vec<u8>,
);

impl Store {
    /// Appends `entry` to the chain; its sequence number.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        for _ in 0..AUDIT_APPEND_ROUNDS_MAX {
            match self.try_append_audit(entry).await {
                Err(StoreError::Duplicate) => continue,
                other => return other,
            }
        }
        Err(StoreError::Contention {
            what: "audit chain",
        })
    }

    async fn try_append_audit(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        const INSERT: &str = "INSERT INTO audit (seq, at_ms, actor, action, target, source, \
                              outcome, code, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin).await?;
            // The head row's lock serialises appenders on MySQL; the IMMEDIATE transaction
            // does on SQLite. On an empty table two appenders race for seq 1: the loser's
            // insert is a duplicate key, and it retries.
            let head_sql = format!(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1{}",
                d.for_update
            );
            let head: Option<(i64, Vec<u8>)> =
                sqlx::query_as(&head_sql).fetch_optional(&mut *tx).await?;
            let (seq, prev_hash) = match head {
                Some((seq, hash)) => (seq + 1, hash),
                None => (1, GENESIS_HASH.to_vec()),
            };
            let hash = chain_hash(&prev_hash, seq, entry);
            sqlx::query(INSERT)
                .bind(seq)
                .bind(entry.at_ms)
                .bind(&entry.actor)
                .bind(&entry.action)
                .bind(&entry.target)
                .bind(&entry.source)
                .bind(entry.outcome.as_str())
                .bind(&entry.code)
                .bind(&prev_hash)
                .bind(hash.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_insert)?;
            tx.commit().await?;
            Ok(seq)
        })
    }

    /// The chain's head: the last record's sequence number and hash (`None`: no record).
    pub async fn audit_head(&self) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        const SQL: &str = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
        let head: Option<(i64, Vec<u8>)> = on_pool!(self, |pool, _d| sqlx::query_as(SQL)
            .fetch_optional(pool)
            .await?);
        Ok(head)
    }

    /// The record `seq`'s hash, if the table holds it.
    pub async fn audit_hash(&self, seq: i64) -> Result<Option<Vec<u8>>, StoreError> {
        const SQL: &str = "SELECT hash FROM audit WHERE seq = ?";
        let hash: Option<(Vec<u8>,)> = on_pool!(self, |pool, _d| {
            sqlx::query_as(SQL).bind(seq).fetch_optional(pool).await?
        });
        Ok(hash.map(|(hash,)| hash))
    }

    /// Up to `limit` records below `before_seq` matching `filter`, newest first (the
    /// operator console's audit page; [`Store::audit_page`] is the chain walk's).
    pub async fn audit_search(
        &self,
        filter: &AuditFilter<'_>,
        before_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let mut sql = String::from(
            "SELECT seq, at_ms, actor, action, target, source, outcome, code, prev_hash, hash \
             FROM audit WHERE seq < ?",
        );
        // Each present filter adds one bound condition, in this order (no text is spliced).
        for (present, condition) in [
            (filter.actor.is_some(), " AND actor = ?"),
            (filter.action.is_some(), " AND action LIKE ?"),
            (filter.outcome.is_some(), " AND outcome = ?"),
            (filter.from_ms.is_some(), " AND at_ms >= ?"),
            (filter.to_ms.is_some(), " AND at_ms < ?"),
        ] {
            if present {
                sql.push_str(condition);
            }
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        // `action` matches a prefix: `rbac.` finds every RBAC decision. LIKE's wildcards in
        // the operator's text are escaped out of it by refusing them (see AuditFilter).
        let action = filter.action.map(|a| format!("{a}%"));
        let rows: Vec<AuditTuple> = on_pool!(self, |pool, _d| {
            let mut query = sqlx::query_as(&sql).bind(before_seq);
            if let Some(actor) = filter.actor {
                query = query.bind(actor);
            }
            if let Some(action) = &action {
                query = query.bind(action);
            }
            if let Some(outcome) = filter.outcome {
                query = query.bind(outcome.as_str());
            }
            if let Some(from_ms) = filter.from_ms {
                query = query.bind(from_ms);
            }
            if let Some(to_ms) = filter.to_ms {
                query = query.bind(to_ms);
            }
            query.bind(i64::from(limit)).fetch_all(pool).await?
        });
        rows.into_iter().map(audit_row).collect()
    }

    /// Up to `limit` records after `after_seq`, in order.
    pub async fn audit_page(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        const SQL: &str = "SELECT seq, at_ms, actor, action, target, source, outcome, code, \
                           prev_hash, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?";
        let rows: Vec<AuditTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(SQL)
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(audit_row).collect()
    }
}

/// Which audit records [`Store::audit_search`] answers (each `None`: any).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter<'a> {
    /// Exactly this actor (a uid, `break_glass`, `service:wallet`, `anonymous`).
    pub actor: Option<&'a str>,
    /// Actions starting with this text (no `%` or `_`: the caller refuses them).
    pub action: Option<&'a str>,
    /// This outcome.
    pub outcome: Option<crate::audit::Outcome>,
    /// At or after, Unix ms.
    pub from_ms: Option<i64>,
    /// Before, Unix ms.
    pub to_ms: Option<i64>,
}

fn audit_row(tuple: AuditTuple) -> Result<AuditRow, StoreError> {
    let (seq, at_ms, actor, action, target, source, outcome, code, prev_hash, hash) = tuple;
    let outcome = crate::audit::Outcome::parse(&outcome).ok_or(StoreError::UnknownValue {
        column: "audit.outcome",
        value: outcome,
    })?;
    Ok(AuditRow {
        seq,
        entry: AuditEntry {
            at_ms,
            actor,
            action,
            target,
            source,
            outcome,
            code,
        },
        prev_hash,
        hash,
    })
}
