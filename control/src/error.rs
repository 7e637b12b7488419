//! The control API's errors and their JSON body, shaped like the REST bridge's:
//! `{"errors":["<code>"],"error":{"code","message"}}` with Peatio-style dotted codes
//! (`control.<resource>.<reason>`) and a message for a person; an engine reject adds `reason`
//! (its name) and `reason_code` (its wire number).

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use peregrine_auth::rbac::Permission;
use peregrine_hotpath::RejectReason;
use serde::Serialize;
use utoipa::ToSchema;

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No credential, or one that does not verify: a wrong token, an access token expired,
    /// for another audience, of an unknown key; the break-glass token from another host.
    #[error("missing or invalid credential (Authorization: Bearer <operator access token>)")]
    Unauthorized,
    /// The credential is valid but may not do this: the role lacks the permission, the wallet
    /// daemons' token anywhere but chain deposits, the break-glass token on a four-eyes step.
    #[error("this credential may not {}", .0.as_str())]
    Forbidden(Permission),
    /// An access token of a user who is not staff (a member or trader).
    #[error("only operators (staff roles) may use the control API")]
    NotOperator,
    /// An operator's access token without 2FA: enable TOTP, log in again, get a new token.
    #[error("operators must have two-factor authentication enabled")]
    SecondFactorRequired,
    /// The operator proposed this adjustment: a second operator must review it.
    #[error("the operator who proposed it may not review it: a second operator must")]
    OwnProposal,
    /// No adjustment with this id.
    #[error("no adjustment {0}")]
    UnknownAdjustment(i64),
    /// The adjustment was reviewed already (its state is named): nothing changed.
    #[error("adjustment {id} is {state}, not pending")]
    NotPending {
        /// Which.
        id: i64,
        /// Its state.
        state: &'static str,
    },
    /// A value of a reference data change is refused (the field is named): nothing changed.
    #[error("{field}: {why}")]
    InvalidField {
        /// The request's field.
        field: &'static str,
        /// Why, for a person.
        why: String,
    },
    /// No fee change with this id.
    #[error("no fee change {0}")]
    UnknownFeeChange(i64),
    /// The fee change was reviewed already (its state is named): nothing changed.
    #[error("fee change {id} is {state}, not pending")]
    FeeChangeNotPending {
        /// Which.
        id: i64,
        /// Its state.
        state: &'static str,
    },
    /// No proposal of this kind with this id (withdrawal limits, fee volume tiers).
    #[error("no {kind} proposal {id}")]
    UnknownProposal {
        /// The kind.
        kind: &'static str,
        /// Which.
        id: i64,
    },
    /// The proposal was reviewed already (its state is named): nothing changed.
    #[error("{kind} proposal {id} is {state}, not pending")]
    ProposalNotPending {
        /// The kind.
        kind: &'static str,
        /// Which.
        id: i64,
        /// Its state.
        state: &'static str,
    },
    /// An approved fee change whose command was submitted but not recorded, with a newer change
    /// of the same market and group applied since: journaling it again would undo the newer
    /// one, so it is not (nothing changed).
    #[error("fee change {id} was superseded by fee change {by} before it was recorded")]
    FeeChangeSuperseded {
        /// Which.
        id: i64,
        /// The newer change.
        by: i64,
    },
    /// Identity's store (audit, operators, adjustments) cannot answer now.
    #[error("the identity store is unavailable; nothing was done, retry")]
    StoreUnavailable,
    /// An operator's deposit id in the wallet daemons' range (from 2^62): nothing changed.
    #[error("deposit_id {0} is in the wallet daemons' range (from 2^62); operators use ids below")]
    WalletDepositId(u64),
    /// An operator's deposit id in the adjustments' range (2^61 to 2^62): nothing changed.
    #[error("deposit_id {0} is in the adjustments' range (2^61 to 2^62); operators use ids below")]
    ReservedDepositId(u64),
    /// The body or a parameter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed, but a value is out of what the exchange accepts (an exponent, a value too
    /// large to store): nothing changed.
    #[error("{0}")]
    Unprocessable(String),
    /// The body is above the limit.
    #[error("the body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// No market of that name.
    #[error("no market `{0}`")]
    UnknownMarket(String),
    /// No currency of that code.
    #[error("no currency `{0}`")]
    UnknownCurrency(String),
    /// The engine rejected the command (nothing changed).
    #[error("{}", .0.message())]
    Rejected(RejectReason),
    /// The engine's queue is full; retry.
    #[error("the engine is busy; nothing was done, retry")]
    Busy,
    /// The exchange cannot take commands (its journal failed) or is stopping.
    #[error("the exchange is not taking commands")]
    Unavailable,
    /// The wallet store refused a withdrawal request's review, or has no such request.
    #[error(transparent)]
    Queue(#[from] crate::withdrawal_requests::QueueError),
    /// `[wallets]` is off: nothing is withdrawn on a chain, so there is no request to review
    /// (422, as the REST edge's `withdraw.unsupported`: a fact of this appliance, not an outage).
    #[error("the wallets are not configured: there are no withdrawal requests")]
    WalletsOff,
    /// No user with that uid.
    #[error("no user {0}")]
    UnknownUser(String),
    /// The user is not in the state the change starts from (its state is named).
    #[error("user {uid} is {state}: {wanted}")]
    UserState {
        /// Which.
        uid: String,
        /// Its state.
        state: &'static str,
        /// What the change needs.
        wanted: &'static str,
    },
    /// No live session of that user with that id.
    #[error("no live session {0} of this user")]
    UnknownSession(String),
    /// Identity refused the operator's login (identity's code and status).
    #[error("{message}")]
    Login {
        /// Identity's code (`identity.session.invalid_otp`, ...).
        code: &'static str,
        /// Identity's status.
        status: StatusCode,
        /// Identity's message.
        message: String,
    },
    /// The replica (orders and trades search) is off or cannot answer.
    #[error("the replica is not available: {0}")]
    ReplicaUnavailable(String),
    /// No such control route.
    #[error("no such control route")]
    NotFound,
    /// The route does not take this method.
    #[error("this route does not take this method")]
    MethodNotAllowed,
}

impl ControlError {
    /// The stable code in the body.
    pub fn code(&self) -> Cow<'static, str> {
        let code = match self {
            Self::Unauthorized => "control.auth.invalid_token",
            Self::Forbidden(_) => "control.auth.forbidden",
            Self::NotOperator => "control.auth.not_operator",
            Self::SecondFactorRequired => "control.auth.second_factor_required",
            Self::OwnProposal => "control.adjustment.own_proposal",
            Self::UnknownAdjustment(_) => "control.adjustment.doesnt_exist",
            Self::NotPending { .. } => "control.adjustment.not_pending",
            Self::InvalidField { .. } => "control.reference.invalid_field",
            Self::UnknownFeeChange(_) => "control.fee_change.doesnt_exist",
            Self::FeeChangeNotPending { .. } => "control.fee_change.not_pending",
            Self::UnknownProposal { .. } => "control.proposal.doesnt_exist",
            Self::ProposalNotPending { .. } => "control.proposal.not_pending",
            Self::FeeChangeSuperseded { .. } => "control.fee_change.superseded",
            Self::StoreUnavailable => "control.store.unavailable",
            Self::WalletDepositId(_) => "control.deposit.wallet_id",
            Self::ReservedDepositId(_) => "control.deposit.reserved_id",
            Self::BadRequest(_) => "control.request.malformed",
            Self::Unprocessable(_) => "control.request.invalid_value",
            Self::BodyTooLarge(_) => "control.request.body_too_large",
            Self::UnknownMarket(_) => "control.market.doesnt_exist",
            Self::UnknownCurrency(_) => "control.currency.doesnt_exist",
            Self::Rejected(reason) => {
                return Cow::Owned(format!("control.command.{}", reason.name()));
            }
            Self::Queue(error) => error.code(),
            Self::WalletsOff => "control.wallets.unsupported",
            Self::UnknownUser(_) => "control.user.doesnt_exist",
            Self::UserState { .. } => "control.user.wrong_state",
            Self::UnknownSession(_) => "control.session.doesnt_exist",
            Self::Login { code, .. } => *code,
            Self::ReplicaUnavailable(_) => "control.replica.unavailable",
            Self::Busy => "control.server.busy",
            Self::Unavailable => "control.server.unavailable",
            Self::NotFound => "control.request.route_not_found",
            Self::MethodNotAllowed => "control.request.method_not_allowed",
        };
        Cow::Borrowed(code)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_)
            | Self::NotOperator
            | Self::SecondFactorRequired
            | Self::OwnProposal => StatusCode::FORBIDDEN,
            Self::NotPending { .. }
            | Self::FeeChangeNotPending { .. }
            | Self::ProposalNotPending { .. }
            | Self::FeeChangeSuperseded { .. } => StatusCode::CONFLICT,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnknownMarket(_)
            | Self::UnknownCurrency(_)
            | Self::UnknownAdjustment(_)
            | Self::UnknownFeeChange(_)
            | Self::UnknownProposal { .. }
            | Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Queue(error) => error.status(),
            Self::UnknownUser(_) | Self::UnknownSession(_) => StatusCode::NOT_FOUND,
            Self::UserState { .. } => StatusCode::CONFLICT,
            Self::Login { status, .. } => *status,
            Self::ReplicaUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Rejected(_)
            | Self::InvalidField { .. }
            | Self::Unprocessable(_)
            | Self::WalletsOff
            | Self::WalletDepositId(_)
            | Self::ReservedDepositId(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Busy | Self::Unavailable | Self::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

/// The error body (for the OpenAPI document; [`ControlError`] writes it).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Peatio's shape: the codes.
    pub errors: Vec<String>,
    /// The code and why.
    pub error: ErrorDetail,
}

/// A code and a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, dotted, lower case (`control.market.doesnt_exist`).
    pub code: String,
    /// For a person.
    pub message: String,
    /// An engine reject's name (`insufficient_balance`), only on `control.command.*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// An engine reject's wire number, only on `control.command.*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<u16>,
    /// The refused field, only on `control.reference.invalid_field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let code = self.code().into_owned();
        let rejected = match &self {
            Self::Rejected(reason) => Some(*reason),
            _ => None,
        };
        let body = ErrorBody {
            errors: vec![code.clone()],
            error: ErrorDetail {
                code,
                message: self.to_string(),
                reason: rejected.map(|r| r.name().to_owned()),
                reason_code: rejected.map(RejectReason::code),
                field: match &self {
                    Self::InvalidField { field, .. } => Some((*field).to_owned()),
                    _ => None,
                },
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, Self::BodyTooLarge(_)) {
            // The body was not read to its end: a pooled connection must not be reused.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}
