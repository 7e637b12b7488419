//! Fee changes awaiting a second operator (four-eyes), proposals of kind
//! [`ProposalKind::FeeChange`]: one market's maker and taker rates for one fee group, proposed,
//! then approved or rejected once, and the journal sequence of the `FeeScheduleUpdate` an
//! approved one became (see [`super::proposals`] for the claim that keeps a retried approval
//! from journaling it twice).

use serde::{Deserialize, Serialize};

use super::proposals::{ProposalKind, ProposalRow};
use super::{AdjustmentState, Store, StoreError};

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

/// A fee change's payload.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    market: String,
    group: u8,
    maker_ppm: u32,
    taker_ppm: u32,
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
    /// The journal sequence the appliance had applied when its command was first submitted.
    pub claimed_seq: Option<u64>,
    /// The journal sequence of the command it became, once applied.
    pub applied_seq: Option<u64>,
}

fn from_proposal(row: ProposalRow) -> Result<FeeChangeRow, StoreError> {
    let payload: Payload = super::proposals::payload_of(&row)?;
    Ok(FeeChangeRow {
        id: row.id,
        market: payload.market,
        group: payload.group,
        maker_ppm: payload.maker_ppm,
        taker_ppm: payload.taker_ppm,
        state: row.state,
        creator: row.creator,
        created_at_ms: row.created_at_ms,
        reviewer: row.reviewer,
        reviewed_at_ms: row.reviewed_at_ms,
        claimed_seq: row.claimed_seq,
        applied_seq: row.applied_seq,
    })
}

const KIND: ProposalKind = ProposalKind::FeeChange;
/// Newer claimed fee changes one supersession check reads, at most.
const NEWER_ROWS_MAX: i64 = 1_000;

impl Store {
    /// Stores a pending fee change; its id.
    pub async fn insert_fee_change(&self, new: &NewFeeChange<'_>) -> Result<i64, StoreError> {
        let payload = Payload {
            market: new.market.to_owned(),
            group: new.group,
            maker_ppm: new.maker_ppm,
            taker_ppm: new.taker_ppm,
        };
        self.propose(KIND, &payload, new.creator, new.now_ms).await
    }

    /// The fee change with this id.
    pub async fn fee_change(&self, id: i64) -> Result<Option<FeeChangeRow>, StoreError> {
        self.proposal(KIND, id)
            .await?
            .map(from_proposal)
            .transpose()
    }

    /// At most `limit` fee changes in `state`, oldest first.
    pub async fn fee_changes_in(
        &self,
        state: AdjustmentState,
        limit: i64,
    ) -> Result<Vec<FeeChangeRow>, StoreError> {
        let rows = self.proposals_in(KIND, state, limit).await?;
        rows.into_iter().map(from_proposal).collect()
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
        self.review_proposal(KIND, id, reviewer, to, now_ms).await
    }

    /// Records the journal sequence an approved fee change became (once); whether it was
    /// recorded now.
    pub async fn fee_change_applied(&self, id: i64, seq: u64) -> Result<bool, StoreError> {
        self.proposal_applied(KIND, id, seq).await
    }

    /// Claims fee change `id` for journaling at `floor_seq` (see [`Store::claim_proposal`]).
    pub async fn claim_fee_change(
        &self,
        id: i64,
        floor_seq: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.claim_proposal(KIND, id, floor_seq).await
    }

    /// The newest fee change of the same market and group as `row` approved and claimed after
    /// it, if any: its values are in force (or on their way), so `row` must never be journaled
    /// again over them.
    pub async fn fee_change_superseded_by(
        &self,
        row: &FeeChangeRow,
    ) -> Result<Option<FeeChangeRow>, StoreError> {
        let newer = self.claimed_after(KIND, row.id, NEWER_ROWS_MAX).await?;
        let mut found = None;
        for proposal in newer {
            let change = from_proposal(proposal)?;
            if change.market == row.market && change.group == row.group {
                found = Some(change);
            }
        }
        Ok(found)
    }
}
