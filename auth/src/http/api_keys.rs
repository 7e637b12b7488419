//! The API-key routes, Barong's paths: `GET /resource/api_keys`, `POST /resource/api_keys`,
//! `PATCH /resource/api_keys/{kid}` (disable) and `DELETE /resource/api_keys/{kid}`, each
//! with the session and its CSRF token; every change also with a fresh `totp_code`.

use std::net::IpAddr;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde::Deserialize;
use serde_json::json;

use super::{Client, Shared, format, parse, session, session_with_csrf};
use crate::api_keys::{ALLOWED_IPS_MAX, CreateKey, KeyKind, Scopes};
use crate::error::AuthError;
use crate::identity::{Identity, Source};
use crate::store::ApiKeyRow;

/// The routes, full paths, for [`super::router`] to merge.
pub(super) fn routes(resource: &str) -> Router<Shared> {
    Router::new()
        .route(&format!("{resource}/api_keys"), get(list).post(create))
        .route(
            &format!("{resource}/api_keys/{{kid}}"),
            patch(disable).delete(delete),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    /// `HS256` (HMAC-SHA256, the default) or `ed25519`.
    algorithm: Option<String>,
    scope: Vec<String>,
    totp_code: String,
    /// For `ed25519`: the public key, 64 hex digits.
    public_key: Option<String>,
    allowed_ips: Option<Vec<String>>,
    /// Unix ms.
    expires_at: Option<i64>,
    /// Accept Barong's weaker `nonce + key` signature too.
    #[serde(default)]
    legacy: bool,
}

fn kind_of(request: &Create) -> Result<KeyKind, AuthError> {
    match (request.algorithm.as_deref(), &request.public_key) {
        (None | Some("HS256"), None) => Ok(KeyKind::Hmac {
            legacy: request.legacy,
        }),
        (Some("ed25519"), Some(hex)) if !request.legacy => {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(hex, &mut bytes).map_err(|_| AuthError::InvalidParams {
                field: "public_key",
            })?;
            Ok(KeyKind::Ed25519 { public_key: bytes })
        }
        _ => Err(AuthError::InvalidParams { field: "algorithm" }),
    }
}

fn key_json(row: &ApiKeyRow) -> serde_json::Value {
    let scopes = Scopes::from_csv(&row.scopes)
        .map(Scopes::names)
        .unwrap_or_default();
    json!({
        "kid": row.kid,
        "algorithm": if row.algorithm == crate::api_keys::ED25519 { "ed25519" } else { "HS256" },
        "scope": scopes,
        "state": row.state,
        "legacy": row.legacy,
        "allowed_ips": row.allowed_ips.as_deref().map(|ips| ips.split(',').collect::<Vec<_>>()),
        "expires_at": row.expires_at_ms,
        "created_at": format::iso8601(row.created_at_ms),
    })
}

async fn create(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AuthError> {
    let auth = session_with_csrf(&identity, &headers, &source, "identity.api_key.create").await?;
    let r: Create = parse(&body)?;
    let ips = r.allowed_ips.as_deref().unwrap_or_default();
    if ips.len() > ALLOWED_IPS_MAX {
        return Err(AuthError::InvalidParams {
            field: "allowed_ips",
        });
    }
    let ips = ips
        .iter()
        .map(|ip| ip.parse::<IpAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| AuthError::InvalidParams {
            field: "allowed_ips",
        })?;
    let request = CreateKey::new(
        kind_of(&r)?,
        Scopes::from_names(&r.scope)?,
        ips,
        r.expires_at,
    )?;
    let created = identity
        .create_api_key(&auth, &request, Some(&r.totp_code), &source)
        .await?;
    let row = identity.store().api_key(&created.kid).await?;
    let mut body = row.as_ref().map_or_else(|| json!({}), key_json);
    body["secret"] = json!(created.secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    let auth = session(&identity, &headers, &source, "resource.api_keys.list").await?;
    let keys = identity.api_keys(&auth).await?;
    Ok(Json(keys.iter().map(key_json).collect::<Vec<_>>()).into_response())
}

#[derive(Deserialize)]
struct Retire {
    totp_code: String,
}

async fn disable(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    Path(kid): Path<String>,
    body: Bytes,
) -> Result<Response, AuthError> {
    retire(&identity, &source, &headers, &kid, &body, false).await?;
    Ok(Json(json!({})).into_response())
}

async fn delete(
    State(identity): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    Path(kid): Path<String>,
    body: Bytes,
) -> Result<Response, AuthError> {
    retire(&identity, &source, &headers, &kid, &body, true).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Disables or deletes a key: session, CSRF token, and a fresh code in the body.
async fn retire(
    identity: &Identity,
    source: &Source,
    headers: &HeaderMap,
    kid: &str,
    body: &Bytes,
    delete: bool,
) -> Result<(), AuthError> {
    let action = if delete {
        "identity.api_key.delete"
    } else {
        "identity.api_key.disable"
    };
    let auth = session_with_csrf(identity, headers, source, action).await?;
    let r: Retire = parse(body)?;
    identity
        .retire_api_key(&auth, kid, delete, Some(&r.totp_code), source)
        .await
}
