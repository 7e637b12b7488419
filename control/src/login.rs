//! How an operator's browser gets access tokens on the control API's own origin (the console
//! at `/console` is served there, identity's cookie lives on the REST origin):
//! `POST /control/v1/login` (e-mail, password, TOTP code) logs in through identity — its
//! throttles, lockouts, TOTP check and audit — and answers an access JWT (at most 60 s) and the
//! session's id; `POST /control/v1/login/refresh` trades the session id for a fresh token while
//! the session lives (identity's idle and absolute expiries, revoked by a lock or by
//! `POST /control/v1/login/logout`).
//!
//! Only staff with TOTP on get a token: a member, or an operator without 2FA, is refused and
//! the session just opened is revoked at once. The session id travels in a JSON body, never in
//! a cookie, so no other site's page can make the browser present it (no CSRF surface); the
//! console keeps it in memory only (a reload logs out).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use peregrine_auth::{AuthError, Identity, LoggedIn, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Client, Operators};
use crate::api::{ControlState, parse_body};
use crate::error::{ControlError, ErrorBody};

/// An operator's login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// E-mail address.
    email: String,
    /// Password.
    password: String,
    /// The current TOTP code (operators must have 2FA on).
    otp_code: Option<String>,
}

/// A session's id, to refresh the token or log out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionRequest {
    /// What login answered as `session`.
    session: String,
}

/// An access token and the session that renews it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenJson {
    /// The access JWT: `Authorization: Bearer <token>` on every control route.
    token: String,
    /// Its expiry, Unix seconds (renew before).
    expires_at: u64,
    /// The session's id: keep it in memory, send it to refresh and log out.
    session: String,
    /// The operator's public id.
    uid: String,
    /// The operator's role.
    role: &'static str,
}

fn operators(state: &ControlState) -> Result<&Operators, ControlError> {
    let operators = state.access.operators.as_ref();
    operators.ok_or(ControlError::StoreUnavailable)
}

fn refused(error: &AuthError) -> ControlError {
    // Identity's own faults (store, OpenBao's answer, hashing) are 500 there; here, as for
    // every control route, a dependency that cannot answer is 503 and nothing was done.
    if error.status().is_server_error() {
        return ControlError::StoreUnavailable;
    }
    ControlError::Login {
        code: error.code(),
        status: error.status(),
        message: error.to_string(),
    }
}

/// A token for `user` of the session `handle`, if `user` may use the control API.
async fn token_for(
    identity: &Identity,
    user: &User,
    handle: &str,
) -> Result<(String, u64), ControlError> {
    if !user.role.is_operator() {
        return Err(ControlError::NotOperator);
    }
    if !user.otp_enabled {
        return Err(ControlError::SecondFactorRequired);
    }
    let issuer = identity.tokens().map_err(|e| refused(&e))?;
    let account = identity
        .store()
        .account_of(user.id)
        .await
        .map_err(|_| ControlError::StoreUnavailable)?;
    let now_s = u64::try_from(identity.now_ms() / 1000).unwrap_or(0);
    // The token's id is the session's public handle plus the time: unique per issue, and the
    // audit can tie a token to the session that asked for it.
    let jti = format!("{handle}.{now_s}");
    let token = issuer
        .issue(user, account, now_s, jti)
        .await
        .map_err(|e| refused(&e))?;
    identity.metrics().tokens_issued_total.inc();
    Ok((token.token, token.expires_at_s))
}

/// Logs an operator in (e-mail, password, TOTP code): an access token and the session id
/// that renews it. Identity's refusals keep their codes (`identity.session.invalid_otp`, ...);
/// a member is 403 `control.auth.not_operator`, an operator without 2FA 403
/// `control.auth.second_factor_required` (their session is revoked at once).
#[utoipa::path(post, path = "/control/v1/login", tag = "control",
    request_body = LoginRequest,
    responses((status = 200, body = TokenJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<ControlState>,
    client: Client,
    body: Body,
) -> Result<Json<TokenJson>, ControlError> {
    let request: LoginRequest = parse_body(body).await?;
    let identity = operators(&state)?.identity();
    let source = client.source();
    let otp = request.otp_code.as_deref().filter(|c| !c.is_empty());
    let logged: LoggedIn = identity
        .login_2fa(&request.email, &request.password, otp, None, &source)
        .await
        .map_err(|e| refused(&e))?;
    let issued = token_for(identity, &logged.user, &logged.handle).await;
    let (token, expires_at) = match issued {
        Ok(issued) => issued,
        Err(error) => {
            // Not an operator (or no 2FA): the session identity just opened ends here.
            let now_ms = identity.now_ms();
            let store = identity.store();
            let _ = store
                .revoke_session_by_handle(logged.user.id, &logged.handle, now_ms)
                .await;
            let code = error.code();
            identity
                .audit_code(
                    &logged.user.uid,
                    "control.login",
                    "console",
                    &source,
                    Some(&code),
                )
                .await;
            return Err(error);
        }
    };
    identity
        .audit_code(&logged.user.uid, "control.login", "console", &source, None)
        .await;
    Ok(Json(TokenJson {
        token,
        expires_at,
        session: logged.session_id,
        uid: logged.user.uid,
        role: logged.user.role.as_str(),
    }))
}

/// A fresh access token for a live session of an operator (what login answered).
#[utoipa::path(post, path = "/control/v1/login/refresh", tag = "control",
    request_body = SessionRequest,
    responses((status = 200, body = TokenJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn refresh(
    State(state): State<ControlState>,
    body: Body,
) -> Result<Json<TokenJson>, ControlError> {
    let request: SessionRequest = parse_body(body).await?;
    let identity = operators(&state)?.identity();
    let auth = identity
        .authenticate(&request.session)
        .await
        .map_err(|_| ControlError::Unauthorized)?;
    let (token, expires_at) = token_for(identity, &auth.user, &auth.session.handle).await?;
    Ok(Json(TokenJson {
        token,
        expires_at,
        session: request.session,
        uid: auth.user.uid,
        role: auth.user.role.as_str(),
    }))
}

/// Ends the session (tokens already issued live out their TTL, at most 60 s).
#[utoipa::path(post, path = "/control/v1/login/logout", tag = "control",
    request_body = SessionRequest,
    responses((status = 204), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn logout(
    State(state): State<ControlState>,
    client: Client,
    body: Body,
) -> Result<axum::http::StatusCode, ControlError> {
    let request: SessionRequest = parse_body(body).await?;
    let identity = operators(&state)?.identity();
    let auth = identity
        .authenticate(&request.session)
        .await
        .map_err(|_| ControlError::Unauthorized)?;
    identity
        .logout(&auth, &client.source())
        .await
        .map_err(|e| refused(&e))?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
