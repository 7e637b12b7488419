//! The four-eyes steps every proposal kind shares (adjustments, fee changes, withdrawal limits,
//! fee volume tiers), over identity's one proposal store: the proposer is an operator (never
//! the break-glass token, which names no person); a review admits the kind's approve
//! permission (audited), reads the action, refuses the proposer (audited as a four-eyes
//! refusal, and again inside the store's conditional update, so no race passes between check
//! and write); a proposal is reviewed once. Only what applying means is the kind's.

use axum::extract::Path;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::HeaderMap;
use peregrine_auth::rbac::Permission;
use peregrine_auth::store::{ProposalKind, ProposalRow, ProposalState};

use crate::access::{Caller, Client};
use crate::adjustments::{now_ms, operators};
use crate::api::{ControlState, path_error};
use crate::error::ControlError;

/// The error of no proposal `id` of `kind` (adjustments and fee changes keep their codes).
pub(crate) fn unknown(kind: ProposalKind, id: i64) -> ControlError {
    match kind {
        ProposalKind::Adjustment => ControlError::UnknownAdjustment(id),
        ProposalKind::FeeChange => ControlError::UnknownFeeChange(id),
        _ => ControlError::UnknownProposal {
            kind: kind.as_str(),
            id,
        },
    }
}

/// The error of a review of proposal `id` of `kind`, which is `state` already.
pub(crate) fn not_pending(kind: ProposalKind, id: i64, state: ProposalState) -> ControlError {
    let state = state.as_str();
    match kind {
        ProposalKind::Adjustment => ControlError::NotPending { id, state },
        ProposalKind::FeeChange => ControlError::FeeChangeNotPending { id, state },
        _ => ControlError::ProposalNotPending {
            kind: kind.as_str(),
            id,
            state,
        },
    }
}

/// The uid of an operator caller (the four-eyes steps admit no other).
pub(crate) fn uid_of(caller: &Caller, permission: Permission) -> Result<&str, ControlError> {
    match caller {
        Caller::Operator { uid, .. } => Ok(uid),
        _ => Err(ControlError::Forbidden(permission)),
    }
}

/// The state a list asks for: `pending` when absent.
pub(crate) fn listed_state(wanted: Option<&str>) -> Result<ProposalState, ControlError> {
    let wanted = wanted.unwrap_or("pending");
    ProposalState::parse(wanted).ok_or_else(|| {
        ControlError::BadRequest(format!(
            "state `{wanted}`: expected pending, approved or rejected"
        ))
    })
}

/// A query's rejection as a 400.
pub(crate) fn query_error(rejection: QueryRejection) -> ControlError {
    ControlError::BadRequest(rejection.body_text())
}

/// The proposal of `kind` with this id.
pub(crate) async fn load(
    state: &ControlState,
    kind: ProposalKind,
    id: i64,
) -> Result<ProposalRow, ControlError> {
    operators(state)?
        .identity()
        .store()
        .proposal(kind, id)
        .await
        .map_err(|_| ControlError::StoreUnavailable)?
        .ok_or_else(|| unknown(kind, id))
}

/// A review as admitted: who, what they asked, the proposal as it stood.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// The reviewing operator.
    pub caller: Caller,
    /// `Approved` or `Rejected`.
    pub to: ProposalState,
    /// The proposal before the review.
    pub row: ProposalRow,
}

/// Admits a reviewer of the proposal the path names (`{id}/{action}`): `permission` (audited),
/// an operator, an action of approve or reject, an existing proposal, and not its creator
/// (audited as a four-eyes refusal).
pub(crate) async fn admit_review(
    state: &ControlState,
    client: &Client,
    headers: &HeaderMap,
    path: Result<Path<(i64, String)>, PathRejection>,
    kind: ProposalKind,
    permission: Permission,
) -> Result<Admitted, ControlError> {
    let target = path.as_ref().map_or_else(
        |_| kind.as_str().to_owned(),
        |p| format!("{}:{}", kind.as_str(), p.0.0),
    );
    let caller = state
        .access
        .admit(headers, client, permission, &target)
        .await?;
    let reviewer = uid_of(&caller, permission)?.to_owned();
    let Path((id, action)) = path.map_err(path_error)?;
    let to = match action.as_str() {
        "approve" => ProposalState::Approved,
        "reject" => ProposalState::Rejected,
        other => {
            let what = kind.as_str().replace('_', " ");
            return Err(ControlError::BadRequest(format!(
                "{what} action `{other}`: expected approve or reject"
            )));
        }
    };
    let row = load(state, kind, id).await?;
    peregrine_auth::four_eyes::refuse_own_proposal(
        operators(state)?.identity(),
        &reviewer,
        &row.creator,
        permission,
        &target,
        &client.source(),
    )
    .await
    .map_err(|_| ControlError::OwnProposal)?;
    Ok(Admitted { caller, to, row })
}

/// Moves a pending proposal to `to` (conditionally: never by its creator); the row as it now
/// stands, or why it did not move. An approval of an approved proposal passes (to apply it, if
/// a crash left it unapplied); a rejection passes only when this request made it.
pub(crate) async fn review(
    state: &ControlState,
    reviewer: &str,
    row: ProposalRow,
    to: ProposalState,
) -> Result<ProposalRow, ControlError> {
    let store = operators(state)?.identity().store();
    let moved = row.state == ProposalState::Pending
        && store
            .review_proposal(row.kind, row.id, reviewer, to, now_ms())
            .await
            .map_err(|_| ControlError::StoreUnavailable)?;
    let now = load(state, row.kind, row.id).await?;
    match (to, now.state) {
        (ProposalState::Approved, ProposalState::Approved) => Ok(now),
        (ProposalState::Rejected, ProposalState::Rejected) if moved => Ok(now),
        // The store's own four-eyes condition refused it.
        (_, ProposalState::Pending) => Err(ControlError::OwnProposal),
        _ => Err(not_pending(now.kind, now.id, now.state)),
    }
}
