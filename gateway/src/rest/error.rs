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
        ApiError::not_found("market.market.doesnt_exist", format!("no market `{name}`"))
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
                "market.order.duplicate_client_id",
                "this client_id was already used by a recent order",
            ),
            _ => ApiError::unavailable("server.unavailable", "the exchange is not taking commands"),
        }
    }

    /// An engine reject: a Peatio-style code and the reason in words.
    pub fn rejected(reason: RejectReason) -> ApiError {
        let (status, code) = reject_code(reason);
        ApiError::new(status, code, reason.message())
    }
}

/// The stable REST code of an engine reject: Peatio's where Peatio has one
/// (`market.account.insufficient_balance`, `market.order.open_orders_limit`,
/// `market.trade.not_permitted`), else `market.order.<reason>`.
fn reject_code(reason: RejectReason) -> (StatusCode, &'static str) {
    use RejectReason as R;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    match reason {
        R::UnknownOrder => (StatusCode::NOT_FOUND, "market.order.not_found"),
        R::UnknownMarket => (StatusCode::NOT_FOUND, "market.market.doesnt_exist"),
        R::UnknownAccount => (StatusCode::FORBIDDEN, "market.account.doesnt_exist"),
        R::MarketHalted => (unprocessable, "market.order.market_halted"),
        R::InsufficientBalance => (unprocessable, "market.account.insufficient_balance"),
        R::ZeroQty | R::QtyTooLarge => (unprocessable, "market.order.invalid_volume"),
        R::InvalidPrice | R::PriceOutOfBand => (unprocessable, "market.order.invalid_price"),
        R::NotionalTooLarge => (unprocessable, "market.order.notional_too_large"),
        R::TooManyOpenOrders => (unprocessable, "market.order.open_orders_limit"),
        R::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "market.order.rate_limited"),
        R::KillSwitchActive => (StatusCode::FORBIDDEN, "market.trade.not_permitted"),
        R::DuplicateClientOrderId => (StatusCode::CONFLICT, "market.order.duplicate_client_id"),
        R::PostOnlyWouldTake => (unprocessable, "market.order.post_only_would_take"),
        R::FokNotFillable => (unprocessable, "market.order.fok_not_fillable"),
        R::InvalidOrderType | R::InvalidMarketSize => (unprocessable, "market.order.invalid_type"),
        R::StopWouldTriggerNow => (unprocessable, "market.order.stop_would_trigger"),
        R::BookFull | R::OrderCapacity => (StatusCode::SERVICE_UNAVAILABLE, "server.capacity"),
        _ => (unprocessable, "market.order.rejected"),
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
