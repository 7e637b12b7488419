//! The HTTP API in Barong's shape: `/api/v2/barong/identity/...` (anonymous: sign-up, codes,
//! login) and `/api/v2/barong/resource/...` (a session's own user), as an axum [`Router`] the
//! appliance mounts. JSON in and out; errors as [`error::ErrorBody`].
//!
//! A session is the `peregrine_session` cookie (HttpOnly, SameSite=Strict, Secure unless
//! configured off for plain-HTTP tests). Every state-changing request made with a session
//! also carries the session's CSRF token, returned at login, in `X-CSRF-Token`.

mod api_keys;
pub mod error;
mod format;
pub mod kyc;
pub mod openapi;
mod second_factor;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::AuthError;
use crate::identity::{Identity, LoggedIn, SessionAuth, Source};
use crate::store::User;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "peregrine_session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest request body, bytes (every request is a few short fields).
pub const REQUEST_BODY_BYTES_MAX: usize = 16 * 1024;
/// The path the session cookie is sent on (identity and, later, the REST bridge).
const COOKIE_PATH: &str = "/api/v2";

type Shared = Arc<Identity>;

/// The identity API's routes, full paths from `/api/v2/barong`.
pub fn router(identity: Arc<Identity>) -> Router {
    const IDENTITY: &str = "/api/v2/barong/identity";
    const RESOURCE: &str = "/api/v2/barong/resource";
    Router::new()
        .route(&format!("{IDENTITY}/ping"), get(ping))
        .route(&format!("{IDENTITY}/time"), get(time))
        .route(&format!("{IDENTITY}/users"), post(sign_up))
        .route(
            &format!("{IDENTITY}/users/email/generate_code"),
            post(email_generate_code),
        )
        .route(
            &format!("{IDENTITY}/users/email/confirm_code"),
            post(email_confirm_code),
        )
        .route(
            &format!("{IDENTITY}/users/password/generate_code"),
            post(password_generate_code),
        )
        .route(
            &format!("{IDENTITY}/users/password/confirm_code"),
            post(password_confirm_code),
        )
        .route(&format!("{IDENTITY}/sessions"), post(login).delete(logout))
        .route(&format!("{RESOURCE}/users/me"), get(me))
        .route(&format!("{RESOURCE}/users/password"), put(change_password))
        .route(&format!("{RESOURCE}/sessions"), get(list_sessions))
        .route(
            &format!("{RESOURCE}/sessions/{{id}}"),
            delete(revoke_session),
        )
        .merge(second_factor::routes(IDENTITY, RESOURCE))
        .merge(api_keys::routes(RESOURCE))
        .route_layer(middleware::from_fn_with_state(identity.clone(), observe))
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .with_state(identity)
}

/// Counts and times each request by route template.
async fn observe(State(identity): State<Shared>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let metrics = identity.metrics();
    let status = response.status();
    metrics
        .requests_total
        .with_label_values(&[route.as_str(), status.as_str()])
        .inc();
    metrics
        .request_duration_seconds
        .with_label_values(&[route.as_str()])
        .observe(elapsed.as_secs_f64());
    tracing::debug!(%route, status = status.as_u16(), elapsed_us = elapsed.as_micros(), "identity request");
    response
}

/// The caller's address and User-Agent.
struct Client(Source);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Client, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        Ok(Client(Source {
            address,
            user_agent,
        }))
    }
}

/// Parses a JSON body; anything malformed is `identity.user.invalid_params`.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, AuthError> {
    serde_json::from_slice(body).map_err(|_| AuthError::InvalidParams { field: "body" })
}

/// The session id in the request's cookie.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// The request's session (refusals are audited).
async fn session(
    identity: &Identity,
    headers: &HeaderMap,
    source: &Source,
    action: &str,
) -> Result<SessionAuth, AuthError> {
    let result = match session_cookie(headers) {
        Some(id) => identity.authenticate(id).await,
        None => Err(AuthError::InvalidSession),
    };
    if let Err(error) = &result {
        identity.audit_refusal(action, None, source, error).await;
    }
    result
}

/// The request's session, for a state-changing request: its CSRF token must match.
async fn session_with_csrf(
    identity: &Identity,
    headers: &HeaderMap,
    source: &Source,
    action: &str,
) -> Result<SessionAuth, AuthError> {
    let auth = session(identity, headers, source, action).await?;
    let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if let Err(error) = Identity::check_csrf(&auth, token) {
        identity
            .audit_refusal(action, Some(&auth), source, &error)
            .await;
        return Err(error);
    }
    Ok(auth)
}

/// A user as Barong shows one.
fn user_json(user: &User, account: Option<u32>) -> serde_json::Value {
    json!({
        "uid": user.uid,
        "email": user.email,
        "role": user.role.as_str(),
        "level": user.level,
        "otp": user.otp_enabled,
        "state": user.state.as_str(),
        "account_id": account,
        "created_at": format::iso8601(user.created_at_ms),
        "updated_at": format::iso8601(user.updated_at_ms),
    })
}

fn session_set_cookie(identity: &Identity, session_id: &str) -> Result<HeaderValue, AuthError> {
    let max_age_s = identity.config().session_absolute_ms / 1000;
    let secure = if identity.config().cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={session_id}; Path={COOKIE_PATH}; Max-Age={max_age_s}; HttpOnly; \
         SameSite=Strict{secure}"
    ))
    .map_err(|_| AuthError::InvalidSession)
}

fn session_clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "peregrine_session=; Path=/api/v2; Max-Age=0; HttpOnly; SameSite=Strict",
    )
}

async fn ping() -> Json<serde_json::Value> {
    Json(json!({ "ping": "pong" }))
}

async fn time(State(identity): State<Shared>) -> Json<serde_json::Value> {
    Json(json!({ "time": identity.now_ms() / 1000 }))
}

#[derive(Deserialize)]
struct SignUp {
    email: String,
    password: String,
}

async fn sign_up(
    State(identity): State<Shared>,
    Client(source): Client,
    body: Bytes,
) -> Result<Response, AuthError> {
    let request: SignUp = parse(&body)?;
    let user = identity
        .sign_up(&request.email, &request.password, &source)
        .await?;
    Ok((StatusCode::CREATED, Json(user_json(&user, None))).into_response())
}

#[derive(Deserialize)]
struct EmailOnly {
    email: String,
}

async fn email_generate_code(
    State(identity): State<Shared>,
    Client(source): Client,
    body: Bytes,
) -> Result<Response, AuthError> {
    let request: EmailOnly = parse(&body)?;
    identity.resend_email_code(&request.email, &source).await?;
    Ok((StatusCode::CREATED, Json(json!({}))).into_response())
}

#[derive(Deserialize)]
struct ConfirmEmail {
    email: String,
    /// Barong's field name for what it mailed; `code` is accepted too.
    #[serde(alias = "code")]
    token: String,
}

async fn email_confirm_code(
    State(identity): State<Shared>,
    Client(source): Client,
    body: Bytes,
) -> Result<Response, AuthError> {
    let request: ConfirmEmail = parse(&body)?;
    let (user, account) = identity
        .confirm_email(&request.email, &request.token, &source)
        .await?;
    Ok((StatusCode::CREATED, Json(user_json(&user, Some(account)))).into_response())
}

async fn password_generate_code(
    State(identity): State<Shared>,
    Client(source): Client,
    body: Bytes,
) -> Result<Response, AuthError> {
    let request: EmailOnly = parse(&body)?;
    identity
        .request_password_reset(&request.email, &source)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({}))).into_response())
}

#[derive(Deserialize)]
struct ResetPassword {
    email: String,
    reset_password_token: String,
    password: String,
    confirm_password: String,
}

async fn password_confirm_code(
    State(identity): State<Shared>,
    Client(source): Client,
    body: Bytes,
) -> Result<Response, AuthError> {
    let r: ResetPassword = parse(&body)?;
    identity
        .reset_password(
            &r.email,
            &r.reset_password_token,
            &r.password,
            &r.confirm_password,
            &source,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({}))).into_response())
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
    /// The one-time code, for a user with 2FA enabled (Barong's field name).
    otp_code: Option<String>,
}

async fn login(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AuthError> {
    let request: Login = parse(&body)?;
    let presented = session_cookie(&headers);
    let LoggedIn {
        user,
        account,
        session_id,
        csrf_token,
        ..
    } = identity
        .login_2fa(
            &request.email,
            &request.password,
            request.otp_code.as_deref(),
            presented,
            &source,
        )
        .await?;
    let mut body = user_json(&user, account);
    body["csrf_token"] = json!(csrf_token);
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_set_cookie(&identity, &session_id)?,
    );
    Ok(response)
}

async fn logout(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    let auth = session_with_csrf(&identity, &headers, &source, "identity.session.delete").await?;
    identity.logout(&auth, &source).await?;
    let mut response = Json(json!({})).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_clear_cookie());
    Ok(response)
}

async fn me(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    let auth = session(&identity, &headers, &source, "resource.users.me").await?;
    let account = identity.store().account_of(auth.user.id).await?;
    Ok(Json(user_json(&auth.user, account)).into_response())
}

#[derive(Deserialize)]
struct ChangePassword {
    old_password: String,
    new_password: String,
    confirm_password: String,
}

async fn change_password(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AuthError> {
    let auth = session_with_csrf(&identity, &headers, &source, "identity.password.change").await?;
    let r: ChangePassword = parse(&body)?;
    identity
        .change_password(
            &auth,
            &r.old_password,
            &r.new_password,
            &r.confirm_password,
            &source,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({}))).into_response())
}

async fn list_sessions(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    let auth = session(&identity, &headers, &source, "resource.sessions.list").await?;
    Ok(Json(identity.sessions(&auth).await?).into_response())
}

async fn revoke_session(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    Path(handle): Path<String>,
) -> Result<Response, AuthError> {
    let auth = session_with_csrf(&identity, &headers, &source, "identity.session.revoke").await?;
    identity.revoke_session(&auth, &handle, &source).await?;
    Ok(Json(json!({})).into_response())
}
