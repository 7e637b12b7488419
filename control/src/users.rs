//! Users for operators: `GET /control/v1/users?email=` (a prefix search, `user.read`),
//! `POST /control/v1/users/{uid}/lock|unlock` (`user.manage`), `GET /control/v1/users/{uid}/sessions`
//! (`user.read`) and `DELETE /control/v1/users/{uid}/sessions/{session}` (`user.manage`), all in
//! identity's store.
//!
//! A lock ends everything the user holds: state `locked` (identity refuses its logins and its
//! sessions), every live session revoked, every active API key disabled (with its key event, so
//! the gateways drop it within one key-feed poll). An unlock makes the user `active` again; its
//! keys stay disabled (the user makes new ones), so an unlock never revives a credential that
//! may have leaked. Access tokens already issued live out their short TTL (the bridge's
//! verifier reads no store per request).

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use peregrine_auth::rbac::Permission;
use peregrine_auth::{Store, User, UserState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::Client;
use crate::api::ControlState;
use crate::error::{ControlError, ErrorBody};

/// Most users one search answers.
pub const USER_ROWS_MAX: u32 = 100;
/// Longest e-mail prefix searched, bytes (the column's length).
const EMAIL_BYTES_MAX: usize = 255;

/// The search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserQuery {
    /// The start of the e-mail address (case-insensitive; no `%` or `_`); every user when
    /// empty.
    email: Option<String>,
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserJson {
    /// Public id.
    uid: String,
    /// E-mail address.
    email: String,
    /// Role.
    role: &'static str,
    /// `pending`, `active`, `locked`, `banned` or `disabled`.
    state: &'static str,
    /// KYC level.
    level: i64,
    /// TOTP on.
    otp: bool,
    /// The trading account.
    account: Option<u32>,
    /// Signed up, Unix ms.
    created_at_ms: i64,
}

/// What a lock ended.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LockJson {
    /// The user.
    uid: String,
    /// Its state now.
    state: &'static str,
    /// Sessions revoked.
    sessions_revoked: u64,
    /// API keys disabled.
    keys_disabled: u64,
}

/// A live session.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionJson {
    /// Its id (a handle, never the cookie).
    id: String,
    /// Browser.
    user_agent: String,
    /// Address.
    ip: String,
    /// Unix ms.
    created_at_ms: i64,
    /// Unix ms.
    last_seen_ms: i64,
}

fn store(state: &ControlState) -> Result<&Store, ControlError> {
    let operators = state.access.operators.as_ref();
    let operators = operators.ok_or(ControlError::StoreUnavailable)?;
    Ok(operators.identity().store())
}

fn unavailable<E>(_: E) -> ControlError {
    ControlError::StoreUnavailable
}

async fn user_json(store: &Store, user: User) -> Result<UserJson, ControlError> {
    let account = store.account_of(user.id).await.map_err(unavailable)?;
    Ok(UserJson {
        uid: user.uid,
        email: user.email,
        role: user.role.as_str(),
        state: user.state.as_str(),
        level: user.level,
        otp: user.otp_enabled,
        account,
        created_at_ms: user.created_at_ms,
    })
}

/// Users whose e-mail address starts with `email`, by address, at most 100.
#[utoipa::path(get, path = "/control/v1/users", tag = "control",
    params(UserQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<UserJson>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn search(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    query: Result<Query<UserQuery>, QueryRejection>,
) -> Result<Json<Vec<UserJson>>, ControlError> {
    let access = &state.access;
    access
        .admit(&headers, &client, Permission::UserRead, "users")
        .await?;
    let Query(query) = query.map_err(|e| ControlError::BadRequest(e.body_text()))?;
    let prefix = query.email.unwrap_or_default().trim().to_ascii_lowercase();
    if prefix.len() > EMAIL_BYTES_MAX || prefix.contains(['%', '_']) {
        return Err(ControlError::BadRequest(format!(
            "email: at most {EMAIL_BYTES_MAX} bytes, no `%` or `_`"
        )));
    }
    let store = store(&state)?;
    let users = store
        .users_by_email_prefix(&prefix, USER_ROWS_MAX)
        .await
        .map_err(unavailable)?;
    let mut found = Vec::with_capacity(users.len());
    for user in users {
        found.push(user_json(store, user).await?);
    }
    Ok(Json(found))
}

/// The user of `uid`, after the caller's admission for `permission`.
async fn admitted_user(
    state: &ControlState,
    client: &Client,
    headers: &HeaderMap,
    permission: Permission,
    uid: Result<&str, &PathRejection>,
) -> Result<User, ControlError> {
    let target = uid.map_or_else(|_| "user".to_owned(), |uid| format!("user:{uid}"));
    let access = &state.access;
    access.admit(headers, client, permission, &target).await?;
    let uid = uid.map_err(|e| ControlError::BadRequest(format!("path: {}", e.body_text())))?;
    store(state)?
        .user_by_uid(uid)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ControlError::UnknownUser(uid.to_owned()))
}

/// Locks an active user (its sessions revoked, its API keys disabled) or unlocks a locked
/// one (its keys stay disabled).
#[utoipa::path(post, path = "/control/v1/users/{uid}/{action}", tag = "control",
    params(("uid" = String, Path, description = "the user's public id"),
        ("action" = String, Path, description = "lock or unlock")),
    security(("bearer" = [])),
    responses((status = 200, body = LockJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn lock(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<LockJson>, ControlError> {
    let uid = path.as_ref().map(|p| p.0.0.as_str());
    let user = admitted_user(&state, &client, &headers, Permission::UserManage, uid).await?;
    let Ok(Path((_, action))) = path else {
        return Err(ControlError::BadRequest("path".to_owned()));
    };
    let store = store(&state)?;
    let now_ms = crate::adjustments::now_ms();
    let (from, to, wanted) = match action.as_str() {
        "lock" => (
            UserState::Active,
            UserState::Locked,
            "only an active user is locked",
        ),
        "unlock" => (
            UserState::Locked,
            UserState::Active,
            "only a locked user is unlocked",
        ),
        other => {
            return Err(ControlError::BadRequest(format!(
                "user action `{other}`: expected lock or unlock"
            )));
        }
    };
    if user.state != from {
        return Err(ControlError::UserState {
            uid: user.uid,
            state: user.state.as_str(),
            wanted,
        });
    }
    store
        .set_user_state(user.id, to, now_ms)
        .await
        .map_err(unavailable)?;
    let (mut sessions_revoked, mut keys_disabled) = (0, 0);
    if to == UserState::Locked {
        sessions_revoked = store
            .revoke_sessions_of(user.id, None, now_ms)
            .await
            .map_err(unavailable)?;
        let keys = store.api_keys_of(user.id).await.map_err(unavailable)?;
        for key in keys {
            let disabled = store.retire_api_key(user.id, &key.kid, false, now_ms).await;
            keys_disabled += u64::from(disabled.map_err(unavailable)?);
        }
    }
    Ok(Json(LockJson {
        uid: user.uid,
        state: to.as_str(),
        sessions_revoked,
        keys_disabled,
    }))
}

/// The user's live sessions, newest first.
#[utoipa::path(get, path = "/control/v1/users/{uid}/sessions", tag = "control",
    params(("uid" = String, Path, description = "the user's public id")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionJson>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn sessions(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<SessionJson>>, ControlError> {
    let uid = path.as_ref().map(|p| p.0.as_str());
    let user = admitted_user(&state, &client, &headers, Permission::UserRead, uid).await?;
    let now_ms = crate::adjustments::now_ms();
    let rows = store(&state)?
        .sessions_of(user.id, now_ms)
        .await
        .map_err(unavailable)?;
    Ok(Json(
        rows.into_iter()
            .map(|row| SessionJson {
                id: row.handle,
                user_agent: row.user_agent,
                ip: row.source,
                created_at_ms: row.created_at_ms,
                last_seen_ms: row.last_seen_ms,
            })
            .collect(),
    ))
}

/// Revokes one of the user's live sessions.
#[utoipa::path(delete, path = "/control/v1/users/{uid}/sessions/{session}", tag = "control",
    params(("uid" = String, Path, description = "the user's public id"),
        ("session" = String, Path, description = "the session's id")),
    security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn revoke_session(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<axum::http::StatusCode, ControlError> {
    let uid = path.as_ref().map(|p| p.0.0.as_str());
    let user = admitted_user(&state, &client, &headers, Permission::UserManage, uid).await?;
    let Ok(Path((_, handle))) = path else {
        return Err(ControlError::BadRequest("path".to_owned()));
    };
    let now_ms = crate::adjustments::now_ms();
    let revoked = store(&state)?
        .revoke_session_by_handle(user.id, &handle, now_ms)
        .await
        .map_err(unavailable)?;
    if !revoked {
        return Err(ControlError::UnknownSession(handle));
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}
