//! Manual balance adjustments awaiting a second operator (four-eyes): proposed, then approved
//! or rejected once. The store keeps the proposal and its review; the journaled command that
//! applies an approved one is the control API's (keyed by the adjustment's id). The review's
//! conditional update serves every four-eyes table ([`Proposals`]).

use super::{Store, StoreError, on_pool};

/// Where an adjustment is in its review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdjustmentState {
    /// Proposed; nothing applied.
    Pending,
    /// A second operator approved it: its command is (or is being) applied.
    Approved,
    /// A second operator rejected it: never applied.
    Rejected,
}

impl AdjustmentState {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            AdjustmentState::Pending => "pending",
            AdjustmentState::Approved => "approved",
            AdjustmentState::Rejected => "rejected",
        }
    }

    /// The state named `value`.
    pub fn parse(value: &str) -> Option<AdjustmentState> {
        [
            AdjustmentState::Pending,
            AdjustmentState::Approved,
            AdjustmentState::Rejected,
        ]
        .into_iter()
        .find(|state| state.as_str() == value)
    }
}

/// An adjustment to insert.
#[derive(Clone, Debug)]
pub struct NewAdjustment<'a> {
    /// The trading account.
    pub account: u32,
    /// Currency code.
    pub currency: &'a str,
    /// Signed decimal string (`-1.5`: a debit).
    pub amount: &'a str,
    /// Why, for the record.
    pub reason: &'a str,
    /// The proposing operator's uid.
    pub creator: &'a str,
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// A stored adjustment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdjustmentRow {
    /// Its id: the journaled command's idempotency key.
    pub id: i64,
    /// The trading account.
    pub account: u32,
    /// Currency code.
    pub currency: String,
    /// Signed decimal string.
    pub amount: String,
    /// Why.
    pub reason: String,
    /// Its review state.
    pub state: AdjustmentState,
    /// The proposing operator's uid.
    pub creator: String,
    /// Proposed, Unix ms.
    pub created_at_ms: i64,
    /// The reviewing operator's uid, once reviewed.
    pub reviewer: Option<String>,
    /// Reviewed, Unix ms.
    pub reviewed_at_ms: Option<i64>,
}

const COLUMNS: &str = "id, account, currency, amount, reason, state, creator, created_at_ms, \
                       reviewer, reviewed_at_ms";

type AdjustmentTuple = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
);

fn from_tuple(row: AdjustmentTuple) -> Result<AdjustmentRow, StoreError> {
    let (id, account, currency, amount, reason, state, creator, created_at_ms, reviewer, at) = row;
    let account = u32::try_from(account).map_err(|_| StoreError::UnknownValue {
        column: "adjustments.account",
        value: account.to_string(),
    })?;
    let state = AdjustmentState::parse(&state).ok_or(StoreError::UnknownValue {
        column: "adjustments.state",
        value: state,
    })?;
    Ok(AdjustmentRow {
        id,
        account,
        currency,
        amount,
        reason,
        state,
        creator,
        created_at_ms,
        reviewer,
        reviewed_at_ms: at,
    })
}

impl Store {
    /// Stores a pending adjustment; its id.
    pub async fn insert_adjustment(&self, new: &NewAdjustment<'_>) -> Result<i64, StoreError> {
        const INSERT: &str = "INSERT INTO adjustments (account, currency, amount, reason, state, \
                              creator, created_at_ms) VALUES (?, ?, ?, ?, 'pending', ?, ?)";
        let id: i64 = on_pool!(self, |pool, d| {
            // The id is read on the inserting connection, in the same transaction.
            let mut tx = pool.begin_with(d.begin).await?;
            sqlx::query(INSERT)
                .bind(i64::from(new.account))
                .bind(new.currency)
                .bind(new.amount)
                .bind(new.reason)
                .bind(new.creator)
                .bind(new.now_ms)
                .execute(&mut *tx)
                .await?;
            let id: i64 = sqlx::query_scalar(d.last_insert_id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            id
        });
        assert!(id > 0, "auto-increment keys start at 1");
        Ok(id)
    }

    /// The adjustment with this id.
    pub async fn adjustment(&self, id: i64) -> Result<Option<AdjustmentRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM adjustments WHERE id = ?");
        on_pool!(self, |pool, _d| {
            let row: Option<AdjustmentTuple> =
                sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?;
            row.map(from_tuple).transpose()
        })
    }

    /// At most `limit` adjustments in `state`, oldest first.
    pub async fn adjustments_in(
        &self,
        state: AdjustmentState,
        limit: i64,
    ) -> Result<Vec<AdjustmentRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM adjustments WHERE state = ? ORDER BY id LIMIT ?");
        let rows: Vec<AdjustmentTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql)
                .bind(state.as_str())
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(from_tuple).collect()
    }

    /// Moves a pending adjustment to `to` as reviewed by `reviewer`, unless the reviewer is its
    /// creator; whether it moved (false: not pending any more, or the creator's own).
    pub async fn review_adjustment(
        &self,
        id: i64,
        reviewer: &str,
        to: AdjustmentState,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.review_proposal(Proposals::Adjustments, id, reviewer, to, now_ms)
            .await
    }

    /// Moves a pending proposal of `table` to `to` as reviewed by `reviewer`, unless the
    /// reviewer is its creator (the four-eyes condition, in the same statement as the state
    /// change, so no race passes between check and write); whether it moved.
    pub(super) async fn review_proposal(
        &self,
        table: Proposals,
        id: i64,
        reviewer: &str,
        to: AdjustmentState,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        assert!(
            to != AdjustmentState::Pending,
            "a review ends the pending state"
        );
        let sql = format!(
            "UPDATE {} SET state = ?, reviewer = ?, reviewed_at_ms = ? \
             WHERE id = ? AND state = 'pending' AND creator <> ?",
            table.name()
        );
        let affected = on_pool!(self, |pool, _d| {
            sqlx::query(&sql)
                .bind(to.as_str())
                .bind(reviewer)
                .bind(now_ms)
                .bind(id)
                .bind(reviewer)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }
}

/// The tables of four-eyes proposals (each with `id`, `state`, `creator`, `reviewer`,
/// `reviewed_at_ms`): a closed set, so no table name is ever built from input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Proposals {
    /// Manual balance adjustments.
    Adjustments,
    /// Fee changes.
    FeeChanges,
}

impl Proposals {
    fn name(self) -> &'static str {
        match self {
            Proposals::Adjustments => "adjustments",
            Proposals::FeeChanges => "fee_changes",
        }
    }
}
