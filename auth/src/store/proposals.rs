//! Four-eyes proposals, every kind in one table: what one operator proposes (a manual balance
//! adjustment, a fee change, withdrawal limits by KYC level, the fee volume tiers) takes effect
//! only once a second operator approves it. A proposal is its kind, its id within the kind, its
//! payload (JSON, the kind's typed layer reads and writes it), its proposer, its state and
//! reviewer, and how it was applied.
//!
//! Why one table: the review (pending -> approved or rejected, once, never by the proposer)
//! and the apply bookkeeping are the same for every kind, so they are written once and every
//! kind keeps the same guarantees. The kind's layer adds only its payload and what applying
//! it means.
//!
//! Applying an approved proposal that journals a command has a crash window between the
//! journal and the store: [`Store::claim_proposal`] records, before the command, the journal
//! sequence the appliance had applied (`claimed_seq`); [`Store::proposal_applied`] records the
//! command's sequence after it. A retry that finds a claim but no sequence knows the command
//! may be in the journal after `claimed_seq` and looks there (the kind's layer says how)
//! instead of journaling it again.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Store, StoreError, on_pool};

/// The kinds of proposal: a closed set (the stored `kind` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProposalKind {
    /// A manual balance adjustment.
    Adjustment,
    /// One market's maker and taker rates for one fee group.
    FeeChange,
    /// Withdrawal limits of one KYC level in one currency.
    WithdrawLimit,
    /// The fee volume tiers: traded-volume thresholds and pinned user groups.
    FeeTiers,
}

impl ProposalKind {
    /// Every kind.
    pub const ALL: [ProposalKind; 4] = [
        ProposalKind::Adjustment,
        ProposalKind::FeeChange,
        ProposalKind::WithdrawLimit,
        ProposalKind::FeeTiers,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalKind::Adjustment => "adjustment",
            ProposalKind::FeeChange => "fee_change",
            ProposalKind::WithdrawLimit => "withdraw_limit",
            ProposalKind::FeeTiers => "fee_tiers",
        }
    }

    /// The kind named `value`.
    pub fn parse(value: &str) -> Option<ProposalKind> {
        ProposalKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
    }
}

/// Where a proposal is in its review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProposalState {
    /// Proposed; nothing applied.
    Pending,
    /// A second operator approved it: it is (or is being) applied.
    Approved,
    /// A second operator rejected it: never applied.
    Rejected,
}

impl ProposalState {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalState::Pending => "pending",
            ProposalState::Approved => "approved",
            ProposalState::Rejected => "rejected",
        }
    }

    /// The state named `value`.
    pub fn parse(value: &str) -> Option<ProposalState> {
        [
            ProposalState::Pending,
            ProposalState::Approved,
            ProposalState::Rejected,
        ]
        .into_iter()
        .find(|state| state.as_str() == value)
    }
}

/// Longest payload stored, bytes (the kinds' payloads are a few hundred).
pub const PAYLOAD_BYTES_MAX: usize = 16 * 1024;

/// A proposal to insert.
#[derive(Clone, Debug)]
pub struct NewProposal<'a> {
    /// Its kind.
    pub kind: ProposalKind,
    /// The kind's payload, JSON.
    pub payload: &'a str,
    /// The proposing operator's uid.
    pub creator: &'a str,
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// A stored proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProposalRow {
    /// Its kind.
    pub kind: ProposalKind,
    /// Its id within the kind (an adjustment's is its journaled commands' idempotency key).
    pub id: i64,
    /// The kind's payload, JSON.
    pub payload: String,
    /// Its review state.
    pub state: ProposalState,
    /// The proposing operator's uid.
    pub creator: String,
    /// Proposed, Unix ms.
    pub created_at_ms: i64,
    /// The reviewing operator's uid, once reviewed.
    pub reviewer: Option<String>,
    /// Reviewed, Unix ms.
    pub reviewed_at_ms: Option<i64>,
    /// The journal sequence the appliance had applied when its command was first submitted.
    pub claimed_seq: Option<u64>,
    /// The journal sequence of the command it became, once applied.
    pub applied_seq: Option<u64>,
}

const COLUMNS: &str = "kind, id, payload, state, creator, created_at_ms, reviewer, \
                       reviewed_at_ms, claimed_seq, applied_seq";

type ProposalTuple = (
    String,
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn unknown(column: &'static str, value: impl ToString) -> StoreError {
    StoreError::UnknownValue {
        column,
        value: value.to_string(),
    }
}

fn sequence(column: &'static str, value: Option<i64>) -> Result<Option<u64>, StoreError> {
    value
        .map(|v| u64::try_from(v).map_err(|_| unknown(column, v)))
        .transpose()
}

fn from_tuple(row: ProposalTuple) -> Result<ProposalRow, StoreError> {
    let (kind, id, payload, state, creator, created_at_ms, reviewer, at, claimed, applied) = row;
    Ok(ProposalRow {
        kind: ProposalKind::parse(&kind).ok_or_else(|| unknown("proposals.kind", &kind))?,
        id,
        payload,
        state: ProposalState::parse(&state).ok_or_else(|| unknown("proposals.state", &state))?,
        creator,
        created_at_ms,
        reviewer,
        reviewed_at_ms: at,
        claimed_seq: sequence("proposals.claimed_seq", claimed)?,
        applied_seq: sequence("proposals.applied_seq", applied)?,
    })
}

fn seq_column(column: &'static str, seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| unknown(column, seq))
}

impl Store {
    /// Stores a pending proposal; its id, the kind's next (ids of one kind count from 1 and
    /// never repeat: an adjustment's id keys its journaled commands).
    pub async fn insert_proposal(&self, new: &NewProposal<'_>) -> Result<i64, StoreError> {
        if new.payload.len() > PAYLOAD_BYTES_MAX {
            return Err(unknown("proposals.payload", "over its bound"));
        }
        const BUMP: &str = "UPDATE proposal_ids SET last_id = last_id + 1 WHERE kind = ?";
        const READ: &str = "SELECT last_id FROM proposal_ids WHERE kind = ?";
        const INSERT: &str = "INSERT INTO proposals (kind, id, payload, state, creator, \
                              created_at_ms) VALUES (?, ?, ?, 'pending', ?, ?)";
        let kind = new.kind.as_str();
        let id: i64 = on_pool!(self, |pool, d| {
            let seed = format!(
                "INSERT INTO proposal_ids (kind, last_id) VALUES (?, 0){}",
                d.skip_duplicate("kind")
            );
            // The counter row's lock (InnoDB) or the write lock (SQLite) orders concurrent
            // proposals of one kind: each reads the number its own update wrote.
            let mut tx = pool.begin_with(d.begin).await?;
            sqlx::query(&seed).bind(kind).execute(&mut *tx).await?;
            sqlx::query(BUMP).bind(kind).execute(&mut *tx).await?;
            let id: i64 = sqlx::query_scalar(READ)
                .bind(kind)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(INSERT)
                .bind(kind)
                .bind(id)
                .bind(new.payload)
                .bind(new.creator)
                .bind(new.now_ms)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_insert)?;
            tx.commit().await?;
            id
        });
        assert!(id > 0, "proposal ids start at 1");
        Ok(id)
    }

    /// The proposal of `kind` with this id.
    pub async fn proposal(
        &self,
        kind: ProposalKind,
        id: i64,
    ) -> Result<Option<ProposalRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM proposals WHERE kind = ? AND id = ?");
        on_pool!(self, |pool, _d| {
            let row: Option<ProposalTuple> = sqlx::query_as(&sql)
                .bind(kind.as_str())
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.map(from_tuple).transpose()
        })
    }

    /// At most `limit` proposals of `kind` in `state`, oldest first.
    pub async fn proposals_in(
        &self,
        kind: ProposalKind,
        state: ProposalState,
        limit: i64,
    ) -> Result<Vec<ProposalRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM proposals WHERE kind = ? AND state = ? ORDER BY id LIMIT ?"
        );
        let rows: Vec<ProposalTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql)
                .bind(kind.as_str())
                .bind(state.as_str())
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(from_tuple).collect()
    }

    /// At most `limit` approved proposals of `kind`, newest first (what is in force: a kind
    /// whose payloads set absolute values reads the newest per key).
    pub async fn approved_newest(
        &self,
        kind: ProposalKind,
        limit: i64,
    ) -> Result<Vec<ProposalRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM proposals WHERE kind = ? AND state = 'approved' \
             ORDER BY id DESC LIMIT ?"
        );
        let rows: Vec<ProposalTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql)
                .bind(kind.as_str())
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(from_tuple).collect()
    }

    /// Moves a pending proposal to `to` as reviewed by `reviewer`, unless the reviewer is its
    /// creator (the four-eyes condition, in the same statement as the state change, so no race
    /// passes between check and write; and a proposal is reviewed once, by one operator);
    /// whether it moved.
    pub async fn review_proposal(
        &self,
        kind: ProposalKind,
        id: i64,
        reviewer: &str,
        to: ProposalState,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        assert!(
            to != ProposalState::Pending,
            "a review ends the pending state"
        );
        const SQL: &str = "UPDATE proposals SET state = ?, reviewer = ?, reviewed_at_ms = ? \
                           WHERE kind = ? AND id = ? AND state = 'pending' AND creator <> ?";
        let affected = on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(to.as_str())
                .bind(reviewer)
                .bind(now_ms)
                .bind(kind.as_str())
                .bind(id)
                .bind(reviewer)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Records, before an approved proposal's command is first submitted, the journal
    /// sequence the appliance had applied (`floor_seq`); a second claim keeps the first. The
    /// claim as stored: `Some(floor_seq)` of the first claim.
    pub async fn claim_proposal(
        &self,
        kind: ProposalKind,
        id: i64,
        floor_seq: u64,
    ) -> Result<Option<u64>, StoreError> {
        const SQL: &str = "UPDATE proposals SET claimed_seq = ? WHERE kind = ? AND id = ? \
                           AND state = 'approved' AND claimed_seq IS NULL";
        let floor = seq_column("proposals.claimed_seq", floor_seq)?;
        on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(floor)
                .bind(kind.as_str())
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(self
            .proposal(kind, id)
            .await?
            .and_then(|row| row.claimed_seq))
    }

    /// Records the journal sequence an approved proposal's command became (once: a second
    /// write, from an approval that raced this one, changes nothing); whether it was recorded
    /// now.
    pub async fn proposal_applied(
        &self,
        kind: ProposalKind,
        id: i64,
        seq: u64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE proposals SET applied_seq = ? \
                           WHERE kind = ? AND id = ? AND state = 'approved' AND applied_seq IS NULL";
        let seq = seq_column("proposals.applied_seq", seq)?;
        let affected = on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(seq)
                .bind(kind.as_str())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// The ids of approved proposals of `kind` above `id` that were claimed (their commands
    /// submitted), at most `limit`: the kind's layer reads their payloads to tell whether a
    /// newer one superseded `id`.
    pub async fn claimed_after(
        &self,
        kind: ProposalKind,
        id: i64,
        limit: i64,
    ) -> Result<Vec<ProposalRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM proposals WHERE kind = ? AND id > ? AND state = 'approved' \
             AND claimed_seq IS NOT NULL ORDER BY id LIMIT ?"
        );
        let rows: Vec<ProposalTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql)
                .bind(kind.as_str())
                .bind(id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(from_tuple).collect()
    }
}

/// A proposal with its payload read as the kind's `T`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Proposal<T> {
    /// The stored row (its `payload` the JSON `value` was read from).
    pub row: ProposalRow,
    /// The payload.
    pub value: T,
}

/// `row`'s payload as `T`.
pub(super) fn payload_of<T: DeserializeOwned>(row: &ProposalRow) -> Result<T, StoreError> {
    serde_json::from_str(&row.payload).map_err(|e| unknown("proposals.payload", e))
}

/// `payload` as the stored JSON, refused over [`PAYLOAD_BYTES_MAX`].
pub(super) fn payload_json<T: Serialize>(payload: &T) -> Result<String, StoreError> {
    let json = serde_json::to_string(payload).map_err(|e| unknown("proposals.payload", e))?;
    if json.len() > PAYLOAD_BYTES_MAX {
        return Err(unknown("proposals.payload", "over its bound"));
    }
    Ok(json)
}

impl Store {
    /// Stores a pending proposal of `kind` with `payload`; its id.
    pub async fn propose<T: Serialize>(
        &self,
        kind: ProposalKind,
        payload: &T,
        creator: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let payload = payload_json(payload)?;
        self.insert_proposal(&NewProposal {
            kind,
            payload: &payload,
            creator,
            now_ms,
        })
        .await
    }

    /// The proposal of `kind` with this id, its payload read.
    pub async fn proposal_of<T: DeserializeOwned>(
        &self,
        kind: ProposalKind,
        id: i64,
    ) -> Result<Option<Proposal<T>>, StoreError> {
        let Some(row) = self.proposal(kind, id).await? else {
            return Ok(None);
        };
        let value = payload_of(&row)?;
        Ok(Some(Proposal { row, value }))
    }

    /// [`Store::proposals_in`], payloads read.
    pub async fn proposals_of<T: DeserializeOwned>(
        &self,
        kind: ProposalKind,
        state: ProposalState,
        limit: i64,
    ) -> Result<Vec<Proposal<T>>, StoreError> {
        let rows = self.proposals_in(kind, state, limit).await?;
        typed(rows)
    }

    /// [`Store::approved_newest`], payloads read.
    pub async fn approved_newest_of<T: DeserializeOwned>(
        &self,
        kind: ProposalKind,
        limit: i64,
    ) -> Result<Vec<Proposal<T>>, StoreError> {
        let rows = self.approved_newest(kind, limit).await?;
        typed(rows)
    }
}

fn typed<T: DeserializeOwned>(rows: Vec<ProposalRow>) -> Result<Vec<Proposal<T>>, StoreError> {
    rows.into_iter()
        .map(|row| {
            let value = payload_of(&row)?;
            Ok(Proposal { row, value })
        })
        .collect()
}
