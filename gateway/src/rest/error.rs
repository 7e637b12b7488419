//! The one error body of the REST bridge: `{"errors":["<code>"],"error":{"code","message"}}`
//! (Peatio's `errors` array, plus a message saying why). Codes are stable; 4xx is the client's
//! fault, 5xx the exchange's (busy, unavailable), never bad input.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use peregrine_hotpath::RejectReason;
use serde::Serialize;
use utoipa::ToSchema;

use peregrine_core::SubmitError;

/// The error body.
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
    /// Stable, dotted, lower case (`market.order.invalid_price`).
    pub code: String,
    /// For a person.
    pub message: String,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// Why.
    pub message: String,
}

impl ApiError {
    /// An error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403: authenticated, but not allowed this.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 422: well formed, but refused (the engine's reject reasons, inexact decimals).
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 503: the exchange cannot take it now.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// The unknown market error.
    pub fn unknown_market(name: &str) -> ApiError {
        ApiError::not_found(
            RejectReason::UnknownMarket.error_code(),
            format!("no market `{name}`"),
        )
    }

    /// A sequencing refusal.
    pub fn submit(error: SubmitError) -> ApiError {
        match error {
            SubmitError::Busy => ApiError::unavailable(
                "server.busy",
                "the engine's queue is full; nothing was done, retry later",
            ),
            SubmitError::Duplicate(_) => ApiError::new(
                StatusCode::CONFLICT,
                RejectReason::DuplicateClientOrderId.error_code(),
                "this client_id was already used by a recent order",
            ),
            _ => ApiError::unavailable("server.unavailable", "the exchange is not taking commands"),
        }
    }

    /// An engine reject: its Peatio-style code and sentence from the engine's one table
    /// ([`peregrine_hotpath::reject_text`], which QUIC and the control API read too).
    pub fn rejected(reason: RejectReason) -> ApiError {
        ApiError::new(reject_status(reason), reason.error_code(), reason.message())
    }
}

/// The HTTP status of an engine reject: 404 for an order or market that does not exist, 403
/// for what the account may not do, 409 for a duplicate, 429 for a rate, 503 for the exchange's
/// capacity, else 422.
fn reject_status(reason: RejectReason) -> StatusCode {
    use RejectReason as R;
    match reason {
        R::UnknownOrder | R::UnknownMarket => StatusCode::NOT_FOUND,
        R::UnknownAccount | R::KillSwitchActive => StatusCode::FORBIDDEN,
        R::DuplicateClientOrderId => StatusCode::CONFLICT,
        R::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        R::BookFull | R::OrderCapacity => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            errors: vec![self.code.to_owned()],
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The body was not read to its end, so the connection cannot carry another request:
            // say so, or a client that pools connections sends its next request into a socket
            // the server is closing (and sees it fail with no answer).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
