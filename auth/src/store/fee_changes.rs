//! Fee changes awaiting a second operator (four-eyes): one market's maker and taker rates for
//! one fee group, proposed, then approved or rejected once (the review is the adjustments'
//! conditional update), and the journal sequence of the `FeeScheduleUpdate` an approved one
//! became, so an approval retried after a crash applies it exactly once.

use super::adjustments::Proposals;
use super::{AdjustmentState, Store, StoreError, on_pool};

/// A fee change to insert.
#[derive(Clone, Debug)]
pub struct NewFeeChange<'a> {
    /// Market name.
    pub market: &'a str,
    /// The fee group (the engine's fee tier).
    pub group: u8,
    /// Maker rate, parts per million.
    pub maker_ppm: u32,
    /// Taker rate, parts per million.
    pub taker_ppm: u32,
    /// The proposing operator's uid.
    pub creator: &'a str,
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// A stored fee change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeeChangeRow {
    /// Its id.
    pub id: i64,
    /// Market name.
    pub market: String,
    /// The fee group.
    pub group: u8,
    /// Maker rate, parts per million.
    pub maker_ppm: u32,
    /// Taker rate, parts per million.
    pub taker_ppm: u32,
    /// Its review state (pending, approved, rejected).
    pub state: AdjustmentState,
    /// The proposing operator's uid.
    pub creator: String,
    /// Proposed, Unix ms.
    pub created_at_ms: i64,
    /// The reviewing operator's uid, once reviewed.
    pub reviewer: Option<String>,
    /// Reviewed, Unix ms.
    pub reviewed_at_ms: Option<i64>,
    /// The journal sequence of the command it became, once applied.
    pub applied_seq: Option<u64>,
}

const COLUMNS: &str = "id, market, fee_group, maker_ppm, taker_ppm, state, creator, \
                       created_at_ms, reviewer, reviewed_at_ms, applied_seq";

type FeeChangeTuple = (
    i64,
    String,
    i64,
    i64,
    i64,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

fn column<T: TryFrom<i64>>(column: &'static str, value: i64) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::UnknownValue {
        column,
        value: value.to_string(),
    })
}

fn from_tuple(row: FeeChangeTuple) -> Result<FeeChangeRow, StoreError> {
    let (id, market, group, maker, taker, state, creator, created_at_ms, reviewer, at, seq) = row;
    let state = AdjustmentState::parse(&state).ok_or(StoreError::UnknownValue {
        column: "fee_changes.state",
        value: state,
    })?;
    Ok(FeeChangeRow {
        id,
        market,
        group: column("fee_changes.fee_group", group)?,
        maker_ppm: column("fee_changes.maker_ppm", maker)?,
        taker_ppm: column("fee_changes.taker_ppm", taker)?,
        state,
        creator,
        created_at_ms,
        reviewer,
        reviewed_at_ms: at,
        applied_seq: seq
            .map(|s| column("fee_changes.applied_seq", s))
            .transpose()?,
    })
}

impl Store {
    /// Stores a pending fee change; its id.
    pub async fn insert_fee_change(&self, new: &NewFeeChange<'_>) -> Result<i64, StoreError> {
        const INSERT: &str = "INSERT INTO fee_changes (market, fee_group, maker_ppm, taker_ppm, \
                              state, creator, created_at_ms) VALUES (?, ?, ?, ?, 'pending', ?, ?)";
        let id: i64 = on_pool!(self, |pool, d| {
            // The id is read on the inserting connection, in the same transaction.
            let mut tx = pool.begin_with(d.begin).await?;
            sqlx::query(INSERT)
                .bind(new.market)
                .bind(i64::from(new.group))
                .bind(i64::from(new.maker_ppm))
                .bind(i64::from(new.taker_ppm))
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

    /// The fee change with this id.
    pub async fn fee_change(&self, id: i64) -> Result<Option<FeeChangeRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM fee_changes WHERE id = ?");
        on_pool!(self, |pool, _d| {
            let row: Option<FeeChangeTuple> =
                sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?;
            row.map(from_tuple).transpose()
        })
    }

    /// At most `limit` fee changes in `state`, oldest first.
    pub async fn fee_changes_in(
        &self,
        state: AdjustmentState,
        limit: i64,
    ) -> Result<Vec<FeeChangeRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM fee_changes WHERE state = ? ORDER BY id LIMIT ?");
        let rows: Vec<FeeChangeTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql)
                .bind(state.as_str())
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(from_tuple).collect()
    }

    /// Moves a pending fee change to `to` as reviewed by `reviewer`, unless the reviewer is its
    /// creator; whether it moved (false: not pending any more, or the creator's own).
    pub async fn review_fee_change(
        &self,
        id: i64,
        reviewer: &str,
        to: AdjustmentState,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.review_proposal(Proposals::FeeChanges, id, reviewer, to, now_ms)
            .await
    }

    /// Records the journal sequence an approved fee change became (once: a second write, from
    /// an approval that raced this one, changes nothing); whether it was recorded now.
    pub async fn fee_change_applied(&self, id: i64, seq: u64) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE fee_changes SET applied_seq = ? \
                           WHERE id = ? AND state = 'approved' AND applied_seq IS NULL";
        let seq = i64::try_from(seq).map_err(|_| StoreError::UnknownValue {
            column: "fee_changes.applied_seq",
            value: seq.to_string(),
        })?;
        let affected = on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(seq)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }
}
