//! The routes of 2FA and access tokens, Barong's paths where Barong has them:
//! `POST /resource/otp/generate_qrcode`, `/resource/otp/enable`, `/resource/otp/disable`
//! (session and CSRF token), `POST /resource/tokens` (an access JWT for the session's user)
//! and `GET /identity/jwks` (the keys that verify them; no session).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use serde::Deserialize;
use serde_json::json;

use super::{Client, Shared, parse, session_with_csrf};
use crate::error::AuthError;
use crate::secret;

/// The routes, full paths, for [`super::router`] to merge.
pub(super) fn routes(identity: &str, resource: &str) -> Router<Shared> {
    Router::new()
        .route(&format!("{identity}/jwks"), get(jwks))
        .route(
            &format!("{resource}/otp/generate_qrcode"),
            post(otp_generate),
        )
        .route(&format!("{resource}/otp/enable"), post(otp_enable))
        .route(&format!("{resource}/otp/disable"), post(otp_disable))
        .route(&format!("{resource}/tokens"), post(issue_token))
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

async fn otp_generate(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    let auth = session_with_csrf(&identity, &headers, &source, "identity.otp.generate").await?;
    let enrolment = identity.otp_generate(&auth, &source).await?;
    let body = json!({ "data": {
        "url": enrolment.url,
        "barcode": STANDARD.encode(&enrolment.qr_png),
    }});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn otp_enable(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AuthError> {
    let auth = session_with_csrf(&identity, &headers, &source, "identity.otp.enable").await?;
    let request: Code = parse(&body)?;
    identity.otp_enable(&auth, &request.code, &source).await?;
    Ok((StatusCode::CREATED, Json(json!({}))).into_response())
}

async fn otp_disable(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AuthError> {
    let auth = session_with_csrf(&identity, &headers, &source, "identity.otp.disable").await?;
    let request: Code = parse(&body)?;
    identity.otp_disable(&auth, &request.code, &source).await?;
    Ok((StatusCode::CREATED, Json(json!({}))).into_response())
}

async fn issue_token(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    let auth = session_with_csrf(&identity, &headers, &source, "identity.token.create").await?;
    let issuer = identity.tokens()?;
    let account = identity.store().account_of(auth.user.id).await?;
    let jti = secret::new_handle(&SystemRandom::new())?;
    let now_s = u64::try_from(identity.now_ms() / 1000).unwrap_or(0);
    let token = issuer.issue(&auth.user, account, now_s, jti).await?;
    identity.metrics().tokens_issued_total.inc();
    if token.standby {
        identity.metrics().tokens_standby_signed_total.inc();
    }
    let body = json!({
        "token": token.token,
        "kid": token.kid,
        "expires_at": token.expires_at_s,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn jwks(State(identity): State<Shared>) -> Result<Response, AuthError> {
    let keys = identity.tokens()?.jwks().await?;
    Ok(Json(keys).into_response())
}
