//! The error body, the REST bridge's shape (`gateway/src/rest/error.rs`):
//! `{"errors":["<code>"],"error":{"code","message"}}`, with `Retry-After` on 429 and 503.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::AuthError;

/// The error body.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// The codes (Barong's and Peatio's shape).
    pub errors: Vec<&'static str>,
    /// The code and why.
    pub error: ErrorDetail,
}

/// A code and a message.
#[derive(Debug, Serialize)]
pub struct ErrorDetail {
    /// Stable, dotted, lower case.
    pub code: &'static str,
    /// For a person.
    pub message: String,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // The cause stays in the log; the client gets the code.
            tracing::error!(error = %self, code = self.code(), "identity request failed");
        }
        let body = ErrorBody {
            errors: vec![self.code()],
            error: ErrorDetail {
                code: self.code(),
                message: self.public_message(),
            },
        };
        let retry_after_s = self.retry_after_s();
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after_s
            && let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
