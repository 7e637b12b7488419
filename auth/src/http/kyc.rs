//! KYC's routes in Barong's shape: a user's own profile, labels and documents under
//! `/api/v2/barong/resource/...`, operators' review under `/api/v2/barong/admin/...` (each
//! gated by a typed [`crate::rbac::Permission`]), and the provider's webhook under
//! `/api/v2/barong/identity/kyc/webhook`. Mounted beside [`super::router`]:
//! `router(identity).merge(kyc::router(kyc))`.
//!
//! A document is uploaded as the raw request body with its `Content-Type` (JPEG, PNG or PDF)
//! and `Content-Length`, its fields in the query (`doc_type`, `doc_number`, `doc_expire`):
//! unlike Barong's multipart form, the type and the length are known, and checked, before a
//! byte of the body is read.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::json;

use super::{Client, REQUEST_BODY_BYTES_MAX, format, parse, session, session_with_csrf};
use crate::kyc::document::UploadRequest;
use crate::kyc::profile::ProfileEvent;
use crate::kyc::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, WEBHOOK_BODY_BYTES_MAX};
use crate::kyc::{Kyc, KycError};
use crate::rbac::Permission;
use crate::store::{DocumentMeta, LabelRow, ProfileFields, ProfileRow};

type Shared = Arc<Kyc>;

const _: () = assert!(WEBHOOK_BODY_BYTES_MAX <= REQUEST_BODY_BYTES_MAX);

/// KYC's routes, full paths from `/api/v2/barong`.
pub fn router(kyc: Arc<Kyc>) -> Router {
    const IDENTITY: &str = "/api/v2/barong/identity";
    const RESOURCE: &str = "/api/v2/barong/resource";
    const ADMIN: &str = "/api/v2/barong/admin";
    let identity = kyc.identity().clone();
    Router::new()
        .route(&format!("{RESOURCE}/profiles/me"), get(profile_me))
        .route(
            &format!("{RESOURCE}/profiles"),
            post(profile_create).put(profile_update),
        )
        .route(
            &format!("{RESOURCE}/labels"),
            get(labels_list).post(label_set),
        )
        .route(
            &format!("{RESOURCE}/labels/{{key}}"),
            axum::routing::delete(label_delete),
        )
        .route(
            &format!("{RESOURCE}/documents"),
            get(documents_list).post(document_upload),
        )
        .route(&format!("{RESOURCE}/documents/{{id}}"), get(document_read))
        .route(&format!("{ADMIN}/profiles"), put(admin_profile_review))
        .route(
            &format!("{ADMIN}/users/labels"),
            post(admin_label_set).delete(admin_label_delete),
        )
        .route(
            &format!("{ADMIN}/users/{{uid}}/documents"),
            get(admin_documents_list),
        )
        .route(
            &format!("{ADMIN}/documents/{{id}}"),
            get(admin_document_read),
        )
        .route(&format!("{ADMIN}/permissions"), get(admin_permissions))
        .route(&format!("{IDENTITY}/kyc/webhook"), post(webhook))
        .route_layer(middleware::from_fn_with_state(identity, super::observe))
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .with_state(kyc)
}

fn profile_json(profile: &ProfileRow) -> serde_json::Value {
    let f = &profile.fields;
    json!({
        "first_name": f.first_name,
        "last_name": f.last_name,
        "dob": f.dob,
        "address": f.address,
        "postcode": f.postcode,
        "city": f.city,
        "country": f.country,
        "metadata": f.metadata,
        "state": profile.state.as_str(),
        "created_at": format::iso8601(profile.created_at_ms),
        "updated_at": format::iso8601(profile.updated_at_ms),
    })
}

fn label_json(label: &LabelRow) -> serde_json::Value {
    json!({
        "key": label.key,
        "value": label.value,
        "scope": label.scope,
        "created_at": format::iso8601(label.created_at_ms),
        "updated_at": format::iso8601(label.updated_at_ms),
    })
}

fn document_json(doc: &DocumentMeta) -> serde_json::Value {
    json!({
        "id": doc.id,
        "doc_type": doc.doc_type,
        "doc_number": doc.doc_number,
        "doc_expire": doc.doc_expire,
        "content_type": doc.content_type,
        "size": doc.size_bytes,
        "created_at": format::iso8601(doc.created_at_ms),
    })
}

/// A document's content, never cached, never rendered in place.
fn document_response(meta: &DocumentMeta, content: Vec<u8>) -> Response {
    let mut response = content.into_response();
    let headers = response.headers_mut();
    // The stored type is one of the allowlist's constants.
    if let Ok(value) = HeaderValue::from_str(&meta.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn profile_me(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
) -> Result<Response, KycError> {
    let auth = session(kyc.identity(), &headers, &source, "kyc.profile.read").await?;
    Ok(Json(profile_json(&kyc.profile(&auth.user).await?)).into_response())
}

/// A profile's fields, and whether to submit it (Barong's `confirm`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    first_name: Option<String>,
    last_name: Option<String>,
    dob: Option<String>,
    address: Option<String>,
    postcode: Option<String>,
    city: Option<String>,
    country: Option<String>,
    metadata: Option<String>,
    #[serde(default)]
    confirm: bool,
}

impl ProfileBody {
    fn fields(self) -> (ProfileFields, bool) {
        let fields = ProfileFields {
            first_name: self.first_name,
            last_name: self.last_name,
            dob: self.dob,
            address: self.address,
            postcode: self.postcode,
            city: self.city,
            country: self.country,
            metadata: self.metadata,
        };
        (fields, self.confirm)
    }
}

async fn profile_create(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, KycError> {
    let auth = session_with_csrf(kyc.identity(), &headers, &source, "kyc.profile.create").await?;
    let (fields, confirm) = parse::<ProfileBody>(&body)?.fields();
    let profile = kyc
        .create_profile(&auth.user, &fields, confirm, &source)
        .await?;
    Ok((StatusCode::CREATED, Json(profile_json(&profile))).into_response())
}

async fn profile_update(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, KycError> {
    let auth = session_with_csrf(kyc.identity(), &headers, &source, "kyc.profile.update").await?;
    let (fields, confirm) = parse::<ProfileBody>(&body)?.fields();
    let profile = kyc
        .update_profile(&auth.user, &fields, confirm, &source)
        .await?;
    Ok(Json(profile_json(&profile)).into_response())
}

async fn labels_list(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
) -> Result<Response, KycError> {
    let auth = session(kyc.identity(), &headers, &source, "kyc.label.list").await?;
    let labels = kyc.labels(&auth.user).await?;
    let body: Vec<_> = labels.iter().map(label_json).collect();
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
struct LabelBody {
    key: String,
    value: String,
}

async fn label_set(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, KycError> {
    let auth = session_with_csrf(kyc.identity(), &headers, &source, "kyc.label.set").await?;
    let request: LabelBody = parse(&body)?;
    kyc.set_public_label(&auth.user, &request.key, &request.value, &source)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({}))).into_response())
}

async fn label_delete(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, KycError> {
    let auth = session_with_csrf(kyc.identity(), &headers, &source, "kyc.label.delete").await?;
    kyc.delete_public_label(&auth.user, &key, &source).await?;
    Ok(Json(json!({})).into_response())
}

async fn documents_list(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
) -> Result<Response, KycError> {
    let auth = session(kyc.identity(), &headers, &source, "kyc.document.list").await?;
    let documents = kyc.documents(&auth.user).await?;
    let body: Vec<_> = documents.iter().map(document_json).collect();
    Ok(Json(body).into_response())
}

/// An upload. A refusal may come before the body is read (the session, the headers): the
/// answer then closes the connection, or a client reusing it would send its next request
/// into the rest of this body.
async fn document_upload(
    state: State<Shared>,
    client: Client,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    match document_upload_inner(state, client, headers, uri, body).await {
        Ok(response) => response,
        Err(error) => {
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

async fn document_upload_inner(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response, KycError> {
    let auth = session_with_csrf(kyc.identity(), &headers, &source, "kyc.document.upload").await?;
    let request = Query::<UploadRequest>::try_from_uri(&uri)
        .map_err(|_| KycError::InvalidParams { field: "query" })?
        .0;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let read_body = |limit_bytes: usize| async move {
        // Stops at the limit whatever the declared length said.
        axum::body::to_bytes(body, limit_bytes)
            .await
            .map_err(|_| KycError::DocumentTooLarge { limit_bytes })
    };
    let meta = kyc
        .upload_document(
            &auth.user,
            &request,
            content_type,
            content_length,
            read_body,
            &source,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(document_json(&meta))).into_response())
}

/// A document id from the path; anything else is "not found", as an id that does not exist.
fn document_id(id: &str) -> Result<i64, KycError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(KycError::DocumentNotFound)
}

async fn document_read(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, KycError> {
    let auth = session(kyc.identity(), &headers, &source, "kyc.document.read").await?;
    let id = document_id(&id)?;
    let (meta, content) = kyc.read_document(&auth.user, id, &source).await?;
    Ok(document_response(&meta, content))
}

#[derive(Deserialize)]
struct ReviewBody {
    uid: String,
    state: String,
}

async fn admin_profile_review(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, KycError> {
    let auth = session_with_csrf(kyc.identity(), &headers, &source, "kyc.profile.review").await?;
    let request: ReviewBody = parse(&body)?;
    let verdict = match request.state.as_str() {
        "verified" => ProfileEvent::Verify,
        "rejected" => ProfileEvent::Reject,
        _ => return Err(KycError::InvalidParams { field: "state" }),
    };
    let state = kyc
        .review_profile(&auth.user, &request.uid, verdict, &source)
        .await?;
    Ok(Json(json!({ "uid": request.uid, "state": state.as_str() })).into_response())
}

#[derive(Deserialize)]
struct AdminLabelBody {
    uid: String,
    key: String,
    value: Option<String>,
}

async fn admin_label_set(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, KycError> {
    let auth = session_with_csrf(kyc.identity(), &headers, &source, "kyc.label.admin_set").await?;
    let request: AdminLabelBody = parse(&body)?;
    let value = request
        .value
        .as_deref()
        .ok_or(KycError::InvalidParams { field: "value" })?;
    let level = kyc
        .admin_set_label(&auth.user, &request.uid, &request.key, Some(value), &source)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "level": level }))).into_response())
}

async fn admin_label_delete(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, KycError> {
    let auth = session_with_csrf(kyc.identity(), &headers, &source, "kyc.label.admin_set").await?;
    let request: AdminLabelBody = parse(&body)?;
    let level = kyc
        .admin_set_label(&auth.user, &request.uid, &request.key, None, &source)
        .await?;
    Ok(Json(json!({ "level": level })).into_response())
}

async fn admin_documents_list(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Result<Response, KycError> {
    let auth = session(kyc.identity(), &headers, &source, "kyc.document.list_any").await?;
    let documents = kyc.admin_documents(&auth.user, &uid, &source).await?;
    let body: Vec<_> = documents.iter().map(document_json).collect();
    Ok(Json(body).into_response())
}

async fn admin_document_read(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, KycError> {
    let auth = session(kyc.identity(), &headers, &source, "kyc.document.read_any").await?;
    let id = document_id(&id)?;
    let (meta, content) = kyc.admin_read_document(&auth.user, id, &source).await?;
    Ok(document_response(&meta, content))
}

/// The role -> permission table, for operators who may read users.
async fn admin_permissions(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
) -> Result<Response, KycError> {
    let auth = session(kyc.identity(), &headers, &source, "rbac.permissions.read").await?;
    kyc.authorize(&auth.user, Permission::UserRead, "permissions", &source)
        .await?;
    let table = kyc.authorizer().table();
    let body: serde_json::Map<String, serde_json::Value> = crate::store::Role::ALL
        .into_iter()
        .map(|role| {
            let names: Vec<&str> = table
                .permissions_of(role)
                .into_iter()
                .map(Permission::as_str)
                .collect();
            (role.as_str().to_owned(), json!(names))
        })
        .collect();
    Ok(Json(body).into_response())
}

async fn webhook(
    State(kyc): State<Shared>,
    Client(source): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, KycError> {
    let header_str = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    kyc.webhook(
        header_str(TIMESTAMP_HEADER),
        header_str(SIGNATURE_HEADER),
        &body,
        &source,
    )
    .await?;
    Ok(Json(json!({})).into_response())
}
