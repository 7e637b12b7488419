//! The control API's errors and their JSON body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use peregrine_hotpath::RejectReason;
use serde_json::json;

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No or wrong bearer token.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// The body or a parameter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed, but a value is out of what the exchange accepts (an exponent, a value too
    /// large to store): nothing changed.
    #[error("{0}")]
    Unprocessable(String),
    /// The body is above the limit.
    #[error("body above {0} bytes")]
    BodyTooLarge(usize),
    /// No market of that name.
    #[error("unknown market `{0}`")]
    UnknownMarket(String),
    /// No currency of that code.
    #[error("unknown currency `{0}`")]
    UnknownCurrency(String),
    /// The engine rejected the command (nothing changed).
    #[error("rejected: {0}")]
    Rejected(RejectReason),
    /// The engine's queue is full; retry.
    #[error("the engine is busy; retry")]
    Busy,
    /// The exchange cannot take commands (its journal failed) or is stopping.
    #[error("the exchange is unavailable")]
    Unavailable,
}

impl ControlError {
    /// The stable code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::BadRequest(_) => "bad_request",
            Self::Unprocessable(_) => "unprocessable",
            Self::BodyTooLarge(_) => "body_too_large",
            Self::UnknownMarket(_) => "unknown_market",
            Self::UnknownCurrency(_) => "unknown_currency",
            Self::Rejected(_) => "rejected",
            Self::Busy => "busy",
            Self::Unavailable => "unavailable",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnknownMarket(_) | Self::UnknownCurrency(_) => StatusCode::NOT_FOUND,
            Self::Rejected(_) | Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Busy | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        if let Self::Rejected(reason) = &self {
            error["reason"] = json!(format!("{reason:?}"));
            error["reason_code"] = json!(reason.code());
        }
        (self.status(), Json(json!({ "error": error }))).into_response()
    }
}
