//! Manual balance adjustments awaiting a second operator (four-eyes), proposals of kind
//! [`ProposalKind::Adjustment`]: proposed, then approved or rejected once. The store keeps the
//! proposal and its review; the journaled command that applies an approved one is the control
//! API's (keyed by the adjustment's id).

use serde::{Deserialize, Serialize};

use super::proposals::{ProposalKind, ProposalRow, ProposalState};
use super::{Store, StoreError};

/// Where an adjustment is in its review: a proposal's state.
pub type AdjustmentState = ProposalState;

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

/// An adjustment's payload.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    account: u32,
    currency: String,
    amount: String,
    reason: String,
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

fn from_proposal(row: ProposalRow) -> Result<AdjustmentRow, StoreError> {
    let payload: Payload = super::proposals::payload_of(&row)?;
    Ok(AdjustmentRow {
        id: row.id,
        account: payload.account,
        currency: payload.currency,
        amount: payload.amount,
        reason: payload.reason,
        state: row.state,
        creator: row.creator,
        created_at_ms: row.created_at_ms,
        reviewer: row.reviewer,
        reviewed_at_ms: row.reviewed_at_ms,
    })
}

const KIND: ProposalKind = ProposalKind::Adjustment;

impl Store {
    /// Stores a pending adjustment; its id.
    pub async fn insert_adjustment(&self, new: &NewAdjustment<'_>) -> Result<i64, StoreError> {
        let payload = Payload {
            account: new.account,
            currency: new.currency.to_owned(),
            amount: new.amount.to_owned(),
            reason: new.reason.to_owned(),
        };
        self.propose(KIND, &payload, new.creator, new.now_ms).await
    }

    /// The adjustment with this id.
    pub async fn adjustment(&self, id: i64) -> Result<Option<AdjustmentRow>, StoreError> {
        self.proposal(KIND, id)
            .await?
            .map(from_proposal)
            .transpose()
    }

    /// At most `limit` adjustments in `state`, oldest first.
    pub async fn adjustments_in(
        &self,
        state: AdjustmentState,
        limit: i64,
    ) -> Result<Vec<AdjustmentRow>, StoreError> {
        let rows = self.proposals_in(KIND, state, limit).await?;
        rows.into_iter().map(from_proposal).collect()
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
        self.review_proposal(KIND, id, reviewer, to, now_ms).await
    }
}
