//! Manual balance adjustments under four-eyes: `POST /control/v1/adjustments` proposes one
//! (account, currency, signed amount, reason), stored pending in identity's store; a second
//! operator approves (`.../{id}/approve`) or rejects (`.../{id}/reject`) it; `GET` lists them.
//! Both reviews go through [`peregrine_auth::four_eyes`]: the approve permission, never the
//! creator, audited.
//!
//! Only an approval journals anything, as the approver (the creator stays in the store and the
//! audit). The engine has no adjustment command: a credit is a `Deposit` and a debit a
//! `WithdrawalHold` settled at once, both keyed `ADJUSTMENT_KEYS_FROM + id`, a range no
//! other caller can use. The engine credits a key once and holds a key once, so an approval
//! retried — after a timeout, a crash, by two approvers at once — applies exactly once.
//!
//! A debit holds the funds *before* the adjustment is marked approved: when the balance is
//! short, the engine refuses the hold (`control.command.insufficient_balance`) and the
//! adjustment stays pending, unchanged. A rejection releases a hold a crashed approval may
//! have left.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use peregrine_auth::rbac::Permission;
use peregrine_auth::store::{
    AdjustmentRow, AdjustmentState, NewAdjustment, ProposalKind, ProposalState,
};
use peregrine_hotpath::edge::parse_decimal;
use peregrine_hotpath::{
    AccountId, Actor, Amount, CommandKind, CurrencyId, DepositId, RejectReason, WithdrawalId,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Caller, Client, Operators};
use crate::api::{ADJUSTMENT_KEYS_FROM, ControlState, WALLET_DEPOSIT_IDS_FROM, execute_as};
use crate::error::{ControlError, ErrorBody};

/// Longest reason kept, characters (the store's column).
pub const REASON_CHARS_MAX: usize = 255;
/// Most adjustments one list answers.
pub const LIST_ROWS_MAX: i64 = 500;

const _: () = assert!(ADJUSTMENT_KEYS_FROM + (1 << 60) < WALLET_DEPOSIT_IDS_FROM);

/// An adjustment to propose.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdjustmentRequest {
    /// The account adjusted.
    #[schema(format = "uint32", maximum = 4294967295_u64)]
    account: u32,
    /// Currency code, e.g. `usd`.
    currency: String,
    /// Signed decimal string, exact in the currency's minor units: `-12.5` debits.
    amount: String,
    /// Why, for the record (1 to 255 characters).
    reason: String,
}

/// Which adjustments to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// `pending` (the default), `approved` or `rejected`.
    state: Option<String>,
}

/// An adjustment.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AdjustmentJson {
    /// Its id.
    id: i64,
    /// The account.
    account: u32,
    /// Currency code.
    currency: String,
    /// Signed decimal string.
    amount: String,
    /// Why.
    reason: String,
    /// `pending`, `approved` or `rejected`.
    state: String,
    /// The proposing operator's uid.
    creator: String,
    /// Proposed, Unix ms.
    created_at_ms: i64,
    /// The reviewing operator's uid.
    reviewer: Option<String>,
    /// Reviewed, Unix ms.
    reviewed_at_ms: Option<i64>,
    /// The journal sequence of the command this request applied (absent when it applied
    /// nothing: a list, a rejection, a retried approval).
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

impl AdjustmentJson {
    fn of(row: AdjustmentRow, seq: Option<u64>) -> AdjustmentJson {
        AdjustmentJson {
            id: row.id,
            account: row.account,
            currency: row.currency,
            amount: row.amount,
            reason: row.reason,
            state: row.state.as_str().to_owned(),
            creator: row.creator,
            created_at_ms: row.created_at_ms,
            reviewer: row.reviewer,
            reviewed_at_ms: row.reviewed_at_ms,
            seq,
        }
    }
}

/// A parsed, checked amount: what the engine moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Movement {
    currency: CurrencyId,
    amount: Amount,
    debit: bool,
}

/// Parses `amount` (signed decimal) in `currency`: a non-zero exact amount.
fn movement(state: &ControlState, currency: &str, amount: &str) -> Result<Movement, ControlError> {
    let currency = state
        .catalog
        .load()
        .currency(currency)
        .cloned()
        .ok_or_else(|| ControlError::UnknownCurrency(currency.to_owned()))?;
    let (debit, magnitude) = match amount.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, amount),
    };
    let invalid = |why: String| ControlError::Unprocessable(format!("amount `{amount}` {why}"));
    let value = parse_decimal(magnitude).map_err(|e| invalid(e.to_string()))?;
    let minor = currency
        .scale
        .to_minor(value)
        .map_err(|e| invalid(e.to_string()))?;
    if minor == Amount::ZERO {
        return Err(invalid("is zero".to_owned()));
    }
    Ok(Movement {
        currency: currency.id,
        amount: minor,
        debit,
    })
}

pub(crate) fn operators(state: &ControlState) -> Result<&Operators, ControlError> {
    state
        .access
        .operators
        .as_ref()
        .ok_or(ControlError::StoreUnavailable)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The uid of an operator caller (the four-eyes steps admit no other).
fn uid_of(caller: &Caller) -> Result<&str, ControlError> {
    crate::proposals::uid_of(caller, Permission::AdjustmentApprove)
}

/// Proposes an adjustment; it is pending until a second operator approves it.
#[utoipa::path(post, path = "/control/v1/adjustments", tag = "control",
    request_body = AdjustmentRequest, security(("bearer" = [])),
    responses((status = 201, body = AdjustmentJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<AdjustmentJson>), ControlError> {
    let access = &state.access;
    let caller = access
        .admit(
            &headers,
            &client,
            Permission::AdjustmentCreate,
            "adjustments",
        )
        .await?;
    let creator = uid_of(&caller)?;
    let request: AdjustmentRequest = crate::api::parse_body(body).await?;
    movement(&state, &request.currency, &request.amount)?;
    let reason = request.reason.trim();
    if reason.is_empty() || reason.chars().count() > REASON_CHARS_MAX {
        return Err(ControlError::Unprocessable(format!(
            "reason: 1 to {REASON_CHARS_MAX} characters"
        )));
    }
    let store = operators(&state)?.identity().store();
    let new = NewAdjustment {
        account: request.account,
        currency: &request.currency,
        amount: &request.amount,
        reason,
        creator,
        now_ms: now_ms(),
    };
    let id = store
        .insert_adjustment(&new)
        .await
        .map_err(|_| ControlError::StoreUnavailable)?;
    let row = load(&state, id).await?;
    Ok((StatusCode::CREATED, Json(AdjustmentJson::of(row, None))))
}

/// Lists adjustments in one state (pending by default), oldest first, at most 500.
#[utoipa::path(get, path = "/control/v1/adjustments", tag = "control",
    params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<AdjustmentJson>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<AdjustmentJson>>, ControlError> {
    let access = &state.access;
    access
        .admit(&headers, &client, Permission::AdjustmentRead, "adjustments")
        .await?;
    let Query(query) = query.map_err(crate::proposals::query_error)?;
    let wanted = crate::proposals::listed_state(query.state.as_deref())?;
    let rows = operators(&state)?
        .identity()
        .store()
        .adjustments_in(wanted, LIST_ROWS_MAX)
        .await
        .map_err(|_| ControlError::StoreUnavailable)?;
    let rows = rows.into_iter().map(|r| AdjustmentJson::of(r, None));
    Ok(Json(rows.collect()))
}

async fn load(state: &ControlState, id: i64) -> Result<AdjustmentRow, ControlError> {
    operators(state)?
        .identity()
        .store()
        .adjustment(id)
        .await
        .map_err(|_| ControlError::StoreUnavailable)?
        .ok_or(ControlError::UnknownAdjustment(id))
}

/// What `POST /control/v1/adjustments/{id}/{action}` does (the handler reads the path segment
/// and refuses anything else with 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub(crate) enum ReviewAction {
    /// Apply it, as the approver.
    Approve,
    /// End it unapplied.
    Reject,
}

/// Admits a reviewer of the adjustment the path names (see
/// [`crate::proposals::admit_review`]): the action and the adjustment as it stands.
async fn admit_reviewer(
    state: &ControlState,
    client: &Client,
    headers: &HeaderMap,
    path: Result<Path<(i64, String)>, PathRejection>,
) -> Result<(Caller, ReviewAction, AdjustmentRow), ControlError> {
    let kind = ProposalKind::Adjustment;
    let permission = Permission::AdjustmentApprove;
    let admitted =
        crate::proposals::admit_review(state, client, headers, path, kind, permission).await?;
    let action = match admitted.to {
        ProposalState::Approved => ReviewAction::Approve,
        _ => ReviewAction::Reject,
    };
    let row = load(state, admitted.row.id).await?;
    Ok((admitted.caller, action, row))
}

/// Approves another operator's pending adjustment and applies it, as the approver (retried on
/// an approved adjustment, it applies nothing more and answers the same adjustment); or
/// rejects it: it will never apply.
#[utoipa::path(post, path = "/control/v1/adjustments/{id}/{action}", tag = "control",
    params(("id" = i64, Path, description = "adjustment id"),
        ("action" = ReviewAction, Path, description = "approve or reject")),
    security(("bearer" = [])),
    responses((status = 200, body = AdjustmentJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn review(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    path: Result<Path<(i64, String)>, PathRejection>,
) -> Result<Json<AdjustmentJson>, ControlError> {
    let (caller, action, row) = admit_reviewer(&state, &client, &headers, path).await?;
    match action {
        ReviewAction::Approve => approve(&state, &caller, row).await,
        ReviewAction::Reject => reject(&state, &caller, row).await,
    }
    .map(Json)
}

async fn approve(
    state: &ControlState,
    caller: &Caller,
    row: AdjustmentRow,
) -> Result<AdjustmentJson, ControlError> {
    let reviewer = uid_of(caller)?;
    let moved = movement(state, &row.currency, &row.amount)?;
    let key = key_of(row.id)?;
    let (actor, account) = (caller.actor(), AccountId(row.account));
    let mut seq = None;
    if row.state == AdjustmentState::Pending && moved.debit {
        // The hold first: a short balance leaves the adjustment pending and nothing held.
        seq = hold(state, actor, account, moved, key).await?;
    }
    if row.state == AdjustmentState::Pending {
        let store = operators(state)?.identity().store();
        let moved_now = store
            .review_adjustment(row.id, reviewer, AdjustmentState::Approved, now_ms())
            .await
            .map_err(|_| ControlError::StoreUnavailable)?;
        let now = load(state, row.id).await?;
        if !moved_now && now.state != AdjustmentState::Approved {
            // Rejected meanwhile, or the store refused the creator: nothing may apply; give
            // back what this request held.
            if moved.debit {
                release(state, actor, moved, key).await?;
            }
            not_rejected(&now)?;
            return Err(ControlError::OwnProposal);
        }
    }
    not_rejected(&row)?;
    let applied = apply(state, actor, account, moved, key).await?;
    let row = load(state, row.id).await?;
    Ok(AdjustmentJson::of(row, applied.or(seq)))
}

async fn reject(
    state: &ControlState,
    caller: &Caller,
    row: AdjustmentRow,
) -> Result<AdjustmentJson, ControlError> {
    let reviewer = uid_of(caller)?;
    let store = operators(state)?.identity().store();
    let moved_now = store
        .review_adjustment(row.id, reviewer, AdjustmentState::Rejected, now_ms())
        .await
        .map_err(|_| ControlError::StoreUnavailable)?;
    let now = load(state, row.id).await?;
    if !moved_now {
        return Err(ControlError::NotPending {
            id: now.id,
            state: now.state.as_str(),
        });
    }
    let moved = movement(state, &now.currency, &now.amount)?;
    if moved.debit {
        // A crashed approval may have held the funds before it could mark the approval.
        release(state, caller.actor(), moved, key_of(now.id)?).await?;
    }
    Ok(AdjustmentJson::of(now, None))
}

fn not_rejected(row: &AdjustmentRow) -> Result<(), ControlError> {
    match row.state {
        AdjustmentState::Rejected => Err(ControlError::NotPending {
            id: row.id,
            state: row.state.as_str(),
        }),
        _ => Ok(()),
    }
}

/// The engine's idempotency key of adjustment `id`.
fn key_of(id: i64) -> Result<u64, ControlError> {
    u64::try_from(id)
        .ok()
        .filter(|id| *id < WALLET_DEPOSIT_IDS_FROM - ADJUSTMENT_KEYS_FROM)
        .map(|id| ADJUSTMENT_KEYS_FROM + id)
        .ok_or(ControlError::UnknownAdjustment(id))
}

/// Runs `command`; `Ok(None)` when the engine refused it as `done` (already applied).
async fn idempotent(
    state: &ControlState,
    actor: Actor,
    command: CommandKind,
    done: RejectReason,
) -> Result<Option<u64>, ControlError> {
    match execute_as(state, actor, command).await {
        Ok(executed) => Ok(Some(executed.seq)),
        Err(ControlError::Rejected(reason)) if reason == done => Ok(None),
        Err(error) => Err(error),
    }
}

async fn hold(
    state: &ControlState,
    actor: Actor,
    account: AccountId,
    moved: Movement,
    key: u64,
) -> Result<Option<u64>, ControlError> {
    let command = CommandKind::WithdrawalHold {
        account,
        currency: moved.currency,
        amount: moved.amount,
        withdrawal: WithdrawalId(key),
    };
    idempotent(state, actor, command, RejectReason::DuplicateWithdrawal).await
}

async fn release(
    state: &ControlState,
    actor: Actor,
    moved: Movement,
    key: u64,
) -> Result<(), ControlError> {
    assert!(moved.debit, "only a debit holds");
    let command = CommandKind::WithdrawalRelease {
        withdrawal: WithdrawalId(key),
    };
    idempotent(state, actor, command, RejectReason::UnknownWithdrawal).await?;
    Ok(())
}

/// Applies an approved adjustment once: a credit's deposit, or a debit's hold (done before
/// approval; repeated for an approval that crashed between) and its settlement.
async fn apply(
    state: &ControlState,
    actor: Actor,
    account: AccountId,
    moved: Movement,
    key: u64,
) -> Result<Option<u64>, ControlError> {
    if !moved.debit {
        let command = CommandKind::Deposit {
            account,
            currency: moved.currency,
            amount: moved.amount,
            deposit: DepositId(key),
        };
        return idempotent(state, actor, command, RejectReason::DuplicateDeposit).await;
    }
    hold(state, actor, account, moved, key).await?;
    let settle = CommandKind::WithdrawalSettle {
        withdrawal: WithdrawalId(key),
    };
    idempotent(state, actor, settle, RejectReason::UnknownWithdrawal).await
}
