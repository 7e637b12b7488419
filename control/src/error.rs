//! The control API's errors and their JSON body, shaped like the REST bridge's:
//! `{"errors":["<code>"],"error":{"code","message"}}` with Peatio-style dotted codes
//! (`control.<resource>.<reason>`) and a message for a person; an engine reject adds `reason`
//! (its name) and `reason_code` (its wire number).

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use peregrine_hotpath::RejectReason;
use serde::Serialize;
use utoipa::ToSchema;

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No or wrong bearer token.
    #[error("missing or wrong bearer token (Authorization: Bearer <token>)")]
    Unauthorized,
    /// The token is valid but may not do this (the wallet daemons' token anywhere but chain
    /// deposits).
    #[error("this token may not do that (the wallet token credits chain deposits only)")]
    Forbidden,
    /// An operator's deposit id in the wallet daemons' range (from 2^62): nothing changed.
    #[error("deposit_id {0} is in the wallet daemons' range (from 2^62); operators use ids below")]
    WalletDepositId(u64),
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
            Self::Forbidden => "control.auth.forbidden",
            Self::WalletDepositId(_) => "control.deposit.wallet_id",
            Self::BadRequest(_) => "control.request.malformed",
            Self::Unprocessable(_) => "control.request.invalid_value",
            Self::BodyTooLarge(_) => "control.request.body_too_large",
            Self::UnknownMarket(_) => "control.market.doesnt_exist",
            Self::UnknownCurrency(_) => "control.currency.doesnt_exist",
            Self::Rejected(reason) => {
                return Cow::Owned(format!("control.command.{}", reason.name()));
            }
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
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnknownMarket(_) | Self::UnknownCurrency(_) | Self::NotFound => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Rejected(_) | Self::Unprocessable(_) | Self::WalletDepositId(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Busy | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
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
