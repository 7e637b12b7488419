//! Withdrawals awaiting operators' approval: `GET /control/v1/withdrawal-requests?state=` lists
//! them, `POST /control/v1/withdrawal-requests/{id}/approve|reject` reviews one.
//!
//! The paths are not under `/control/v1/withdrawals/...`: that prefix is the wallet daemons'
//! door (`/control/v1/withdrawals/{id}/{action}`, hold/settle/release, their token only), and
//! `/control/v1/withdrawals/{id}/approve` would be one more value of its `{action}` segment,
//! decided by a handler instead of the router. A request (what a user asked for, in the wallet
//! store) and a withdrawal's funds (what the engine holds) are different things: different
//! nouns, different routes, different permissions (`withdrawal.review` here,
//! `withdrawal.funds` there).
//!
//! The wallet store lives in `peregrine-wallet`, which this crate does not depend on: the
//! appliance hands in a [`WithdrawalQueue`] when `[wallets]` is on; without it the list is
//! empty and a review answers 422 `control.wallets.unsupported` (as the REST edge's
//! `withdraw.unsupported`); a wallet store that does not answer is 503
//! `control.wallets.unavailable`. Four-eyes: the reviewer is an operator (never the
//! break-glass token), never the requester (checked through [`peregrine_auth::four_eyes`],
//! audited, and again by the store inside its transaction), and reviews a request once.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use peregrine_auth::rbac::Permission;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Caller, Client};
use crate::api::ControlState;
use crate::error::{ControlError, ErrorBody};

/// Most requests one list answers.
pub const QUEUE_ROWS_MAX: u32 = 200;

/// A withdrawal request as the queue shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct QueuedWithdrawal {
    /// The request's id in the wallet store.
    pub id: u64,
    /// The account debited.
    pub account: u32,
    /// Currency code.
    pub currency: String,
    /// In the engine's minor units (the route adds the decimal amount).
    pub amount_minor: u64,
    /// The payee's address.
    pub to: String,
    /// `awaiting_approval`, `approved`, `held`, ..., `rejected`.
    pub state: String,
    /// Who asked (identity's uid).
    pub requested_by: Option<String>,
    /// Approvals the policy demands.
    pub approvals_required: u32,
    /// Operators who approved it so far.
    pub approvers: Vec<String>,
    /// Requested, Unix ms.
    pub created_at_ms: i64,
}

/// Why the wallet store refused a review; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// No such request.
    #[error("no withdrawal request {0}")]
    NotFound(u64),
    /// Not awaiting approval (its state is named).
    #[error("withdrawal request {id} is {state}, not awaiting approval")]
    NotAwaiting {
        /// Which.
        id: u64,
        /// Its state.
        state: String,
    },
    /// The reviewer asked for it.
    #[error("the requester of withdrawal request {0} may not review it")]
    OwnRequest(u64),
    /// The reviewer reviewed it before.
    #[error("this operator already reviewed withdrawal request {0}")]
    AlreadyReviewed(u64),
    /// The state filter names no state.
    #[error("no withdrawal state `{0}`")]
    UnknownState(String),
    /// The store cannot answer now.
    #[error("the wallet store is unavailable")]
    Unavailable,
}

impl QueueError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            QueueError::NotFound(_) => "control.withdrawal_request.doesnt_exist",
            QueueError::NotAwaiting { .. } => "control.withdrawal_request.not_awaiting_approval",
            QueueError::OwnRequest(_) => "control.withdrawal_request.own_request",
            QueueError::AlreadyReviewed(_) => "control.withdrawal_request.already_reviewed",
            QueueError::UnknownState(_) => "control.request.malformed",
            QueueError::Unavailable => "control.wallets.unavailable",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            QueueError::NotFound(_) => StatusCode::NOT_FOUND,
            QueueError::NotAwaiting { .. } | QueueError::AlreadyReviewed(_) => StatusCode::CONFLICT,
            QueueError::OwnRequest(_) => StatusCode::FORBIDDEN,
            QueueError::UnknownState(_) => StatusCode::BAD_REQUEST,
            QueueError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// What a queue call returns.
pub type QueueFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, QueueError>> + Send + 'a>>;

/// The wallet store's review side, as the appliance plugs it in.
pub trait WithdrawalQueue: Debug + Send + Sync {
    /// Up to `limit` requests in `state` (a state's name), oldest first.
    fn list<'a>(&'a self, state: &'a str, limit: u32) -> QueueFuture<'a, Vec<QueuedWithdrawal>>;
    /// The request `id`, if any.
    fn get(&self, id: u64) -> QueueFuture<'_, Option<QueuedWithdrawal>>;
    /// `reviewer`'s approval of `id`; the state after it.
    fn approve<'a>(&'a self, id: u64, reviewer: &'a str, now_ms: i64) -> QueueFuture<'a, String>;
    /// `reviewer`'s rejection of `id`; the state after it.
    fn reject<'a>(&'a self, id: u64, reviewer: &'a str) -> QueueFuture<'a, String>;
}

/// Which requests to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct QueueQuery {
    /// A state's name; `awaiting_approval` by default.
    state: Option<String>,
}

/// A request in the list, with its decimal amount.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueuedJson {
    #[serde(flatten)]
    request: QueuedWithdrawal,
    /// Decimal string in the currency's units.
    amount: String,
}

/// A review's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReviewedJson {
    /// The request.
    id: u64,
    /// Its state after the review (`approved` once enough operators approved it).
    state: String,
}

fn queue(state: &ControlState) -> Result<&dyn WithdrawalQueue, ControlError> {
    state
        .withdrawal_queue
        .as_deref()
        .ok_or(ControlError::WalletsOff)
}

fn decimal_of(state: &ControlState, request: QueuedWithdrawal) -> QueuedJson {
    let amount = state
        .catalog
        .load()
        .currency(&request.currency)
        .map_or_else(
            || request.amount_minor.to_string(),
            |currency| {
                let amount = peregrine_hotpath::Amount(request.amount_minor);
                currency.scale.to_decimal(amount).normalize().to_string()
            },
        );
    QueuedJson { request, amount }
}

/// Lists withdrawal requests in one state (awaiting approval by default), oldest first, at
/// most 200, with their approvers.
#[utoipa::path(get, path = "/control/v1/withdrawal-requests",
    operation_id = "withdrawal_requests_list", tag = "control",
    params(QueueQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<QueuedJson>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Result<Json<Vec<QueuedJson>>, ControlError> {
    let access = &state.access;
    access
        .admit(
            &headers,
            &client,
            Permission::WithdrawalReview,
            "withdrawal-requests",
        )
        .await?;
    let Query(query) = query.map_err(|e| ControlError::BadRequest(e.body_text()))?;
    let wanted = query.state.as_deref().unwrap_or("awaiting_approval");
    // No wallets, no requests (in any state).
    let Some(queue) = state.withdrawal_queue.as_deref() else {
        return Ok(Json(Vec::new()));
    };
    let rows = queue.list(wanted, QUEUE_ROWS_MAX).await?;
    Ok(Json(
        rows.into_iter().map(|r| decimal_of(&state, r)).collect(),
    ))
}

/// Approves or rejects another person's withdrawal request, as an operator with
/// `withdrawal.review`: never its requester, never twice by one operator. Approved by as many
/// operators as its policy demands, it is `approved` and the wallet daemon holds, signs and
/// sends it; rejected, it never moves (nothing was held while it waited).
#[utoipa::path(post, path = "/control/v1/withdrawal-requests/{id}/{action}",
    operation_id = "withdrawal_request_review", tag = "control",
    params(("id" = u64, Path, description = "the request's id", format = "uint64",
            maximum = 9223372036854775807_u64),
        ("action" = String, Path, description = "approve or reject")),
    security(("bearer" = [])),
    responses((status = 200, body = ReviewedJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn review(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    path: Result<Path<(u64, String)>, PathRejection>,
) -> Result<Json<ReviewedJson>, ControlError> {
    let target = path.as_ref().map_or_else(
        |_| "withdrawal-request".to_owned(),
        |p| format!("withdrawal-request:{}", p.0.0),
    );
    let access = &state.access;
    let caller = access
        .admit(&headers, &client, Permission::WithdrawalReview, &target)
        .await?;
    let Caller::Operator { uid, .. } = &caller else {
        // Four-eyes needs two people: the break-glass token is nobody's.
        return Err(ControlError::Forbidden(Permission::WithdrawalReview));
    };
    let Path((id, action)) = path.map_err(crate::api::path_error)?;
    let approve = match action.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(ControlError::BadRequest(format!(
                "withdrawal request action `{other}`: expected approve or reject"
            )));
        }
    };
    let queue = queue(&state)?;
    let request = queue.get(id).await?.ok_or(QueueError::NotFound(id))?;
    if let (Some(operators), Some(requester)) = (&access.operators, &request.requested_by) {
        peregrine_auth::four_eyes::refuse_own_proposal(
            operators.identity(),
            uid,
            requester,
            Permission::WithdrawalReview,
            &target,
            &client.source(),
        )
        .await
        .map_err(|_| ControlError::from(QueueError::OwnRequest(id)))?;
    }
    let state_after = if approve {
        queue.approve(id, uid, crate::adjustments::now_ms()).await?
    } else {
        queue.reject(id, uid).await?
    };
    Ok(Json(ReviewedJson {
        id,
        state: state_after,
    }))
}
