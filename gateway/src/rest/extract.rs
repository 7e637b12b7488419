//! Extractors whose rejections are the bridge's JSON errors (axum's own answer in plain text):
//! a body that is not JSON, too large, of the wrong shape, a bad query or path, and the
//! authenticated account.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use peregrine_auth::api_keys::Scopes;
use peregrine_hotpath::{AccountId, Actor};
use serde::de::DeserializeOwned;

use super::Bridge;
use super::auth::{RequestFacts, body_sha256};
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

/// SHA-256 of a signed request's body, computed before the handler reads it.
#[derive(Clone, Copy, Debug)]
pub struct BodyDigest(pub [u8; 32]);

/// Buffers the body of a request carrying an API key (at most the body limit; larger is 413)
/// and records its SHA-256 for the signature check. Other requests pass untouched.
pub(crate) async fn digest_signed_body(
    axum::extract::State(bridge): axum::extract::State<Arc<Bridge>>,
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if !request.headers().contains_key(super::auth::HEADER_KEY) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, bridge.config.body_limit_bytes).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.body_too_large",
            "the request body is larger than the limit",
        )
        .into_response();
    };
    parts
        .extensions
        .insert(BodyDigest(super::auth::body_sha256(&bytes)));
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The account an API-key-signed request acts for, and the key as the actor of the commands it
/// issues.
#[derive(Clone, Copy, Debug)]
pub struct Authenticated(pub AccountId, pub Actor);

impl FromRequestParts<Arc<Bridge>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, bridge: &Arc<Bridge>) -> Result<Self, ApiError> {
        // Reads need `read`; every other method changes orders and needs `trade`.
        let scope = if parts.method == Method::GET || parts.method == Method::HEAD {
            Scopes::READ
        } else {
            Scopes::TRADE
        };
        authenticate_parts(parts, bridge, scope)
    }
}

/// [`Authenticated`] for the withdrawal routes: reads need `read`, every other method the
/// `withdraw` scope (a key that may trade may not move funds out).
#[derive(Clone, Copy, Debug)]
pub struct WithdrawAuthenticated(pub AccountId, pub Actor);

impl FromRequestParts<Arc<Bridge>> for WithdrawAuthenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, bridge: &Arc<Bridge>) -> Result<Self, ApiError> {
        let scope = if parts.method == Method::GET || parts.method == Method::HEAD {
            Scopes::READ
        } else {
            Scopes::WITHDRAW
        };
        let Authenticated(account, actor) = authenticate_parts(parts, bridge, scope)?;
        Ok(WithdrawAuthenticated(account, actor))
    }
}

/// The account a request acts for: an access JWT, or an API key's signature with `scope`.
fn authenticate_parts(
    parts: &Parts,
    bridge: &Bridge,
    scope: Scopes,
) -> Result<Authenticated, ApiError> {
    if let Some(token) = bearer(parts) {
        return bridge.authenticate_token(token);
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |p| p.as_str());
    let body_sha256 = parts
        .extensions
        .get::<BodyDigest>()
        .map_or_else(|| body_sha256(b""), |digest| digest.0);
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let facts = RequestFacts {
        method: parts.method.as_str(),
        path,
        body_sha256,
        peer,
        scope,
    };
    bridge
        .authenticate(&parts.headers, &facts)
        .map(|(account, actor)| Authenticated(account, actor))
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?;
    value.to_str().ok()?.strip_prefix("Bearer ")
}

impl Bridge {
    /// Authenticates an access JWT from memory: the account in its claims, the user's id as
    /// the actor. A token (issued to a signed-in session) may do what the session may: read,
    /// trade, and ask for a withdrawal — which takes a fresh TOTP code besides.
    fn authenticate_token(&self, token: &str) -> Result<Authenticated, ApiError> {
        let (account, claims) = self.verify_token(token)?;
        let actor = Actor::ApiKey(peregrine_hotpath::ApiKeyId::of_key(claims.sub.as_bytes()));
        Ok(Authenticated(account, actor))
    }

    /// The account and claims of a valid access JWT that names an account, verified from
    /// memory now (refusals counted by code).
    pub(crate) fn verify_token(
        &self,
        token: &str,
    ) -> Result<(AccountId, peregrine_auth::jwt::Claims), ApiError> {
        let refused = |code: &'static str, message: String| {
            self.metrics
                .auth_failures_total
                .with_label_values(&[code])
                .inc();
            ApiError::unauthorized(code, message)
        };
        let Some(tokens) = self.tokens.get() else {
            return Err(refused(
                "authz.invalid_token",
                "access tokens are not accepted here".to_owned(),
            ));
        };
        let now_s = now_ms() / 1000;
        let claims = tokens
            .current()
            .verify(token, now_s)
            .map_err(|error| refused(error.code(), error.to_string()))?;
        let account = claims.account.ok_or_else(|| {
            refused(
                "authz.invalid_token",
                "the token names no trading account".to_owned(),
            )
        })?;
        Ok((AccountId(account), claims))
    }

    /// Authenticates request headers now, counting failures.
    pub(crate) fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
        facts: &RequestFacts<'_>,
    ) -> Result<(AccountId, Actor), ApiError> {
        self.keys
            .authenticate(headers, facts, now_ms())
            .map_err(|error| {
                self.metrics
                    .auth_failures_total
                    .with_label_values(&[error.code()])
                    .inc();
                tracing::debug!(%error, "request refused");
                ApiError::from(error)
            })
    }
}
