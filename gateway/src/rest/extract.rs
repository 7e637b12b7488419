//! Extractors whose rejections are the bridge's JSON errors (axum's own answer in plain text):
//! a body that is not JSON, too large, of the wrong shape, a bad query or path, and the
//! authenticated account.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use peregrine_hotpath::{AccountId, Actor};
use serde::de::DeserializeOwned;

use super::Bridge;
use super::error::ApiError;
use super::time::now_ms;

/// A JSON body.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.body_too_large",
            "the request body is larger than the limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "request.unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::unprocessable("request.invalid_body", text),
        _ => ApiError::bad_request("request.malformed_json", text),
    }
}

/// Query parameters.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    ApiError::bad_request("request.invalid_query", rejection.body_text())
}

/// Path parameters.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    ApiError::bad_request("request.invalid_path", rejection.body_text())
}

/// The account an API-key-signed request acts for, and the key as the actor of the commands it
/// issues.
#[derive(Clone, Copy, Debug)]
pub struct Authenticated(pub AccountId, pub Actor);

impl FromRequestParts<Arc<Bridge>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, bridge: &Arc<Bridge>) -> Result<Self, ApiError> {
        bridge
            .authenticate(&parts.headers)
            .map(|(account, actor)| Authenticated(account, actor))
    }
}

impl Bridge {
    /// Authenticates request headers now, counting failures.
    pub(crate) fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<(AccountId, Actor), ApiError> {
        self.keys.authenticate(headers, now_ms()).map_err(|error| {
            self.metrics
                .auth_failures_total
                .with_label_values(&[error.code()])
                .inc();
            tracing::debug!(%error, "request refused");
            ApiError::from(error)
        })
    }
}
