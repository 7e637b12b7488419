//! The OpenAPI 3.1 document of identity's routes (Barong's `identity`, `resource` and `admin`
//! paths, and the KYC webhook), served by `up` at [`OPENAPI_PATH`] beside the REST bridge's
//! own document, for clients and for schemathesis (`scripts/schemathesis/run`).
//!
//! Written as a table ([`OPERATIONS`]): one row per route with who may call it, its body, its
//! success answer and the refusals its handler can give; [`document`] adds what every route of
//! its kind can answer (a session refused, a body that does not parse, a rate limit, OpenBao or
//! the mail server unavailable). `peregrine/tests/openapi.rs` checks that `up` serves every
//! operation of the table and that the document is valid OpenAPI; schemathesis checks the
//! answers against it.

use axum::Router;
use axum::routing::get;
use serde_json::{Map, Value, json};

/// Where `up` serves the document.
pub const OPENAPI_PATH: &str = "/api/v2/barong/openapi.json";

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Anyone.
    Anonymous,
    /// A session (the cookie).
    Session,
    /// A session and its CSRF token (state-changing requests).
    SessionCsrf,
    /// The KYC provider, by the webhook's HMAC signature headers.
    Webhook,
}

/// The body a route takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// None.
    None,
    /// JSON of the named component schema.
    Json(&'static str),
    /// The raw bytes of a document (its content type is the document's).
    Document,
}

/// One route.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Operation {
    /// `get`, `post`, ...
    pub method: &'static str,
    /// The full path, with `{name}` parameters.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What it takes.
    pub body: Body,
    /// The success status and its component schema (`None`: no content).
    pub ok: (u16, Option<&'static str>),
    /// The refusals of its own (beyond those of its kind, see [`document`]).
    pub refusals: &'static [u16],
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
    body: Body,
    ok: (u16, Option<&'static str>),
    refusals: &'static [u16],
) -> Operation {
    Operation {
        method,
        path,
        summary,
        access,
        body,
        ok,
        refusals,
    }
}

use Access::{Anonymous, Session, SessionCsrf, Webhook};
use Body::{Document, Json, None as NoBody};

const ID: &str = "/api/v2/barong/identity";

/// Every identity route.
#[rustfmt::skip]
pub const OPERATIONS: &[Operation] = &[
    op("get", "/api/v2/barong/identity/ping", "liveness", Anonymous, NoBody, (200, Some("Ping")), &[]),
    op("get", "/api/v2/barong/identity/time", "server time, Unix seconds", Anonymous, NoBody, (200, Some("Time")), &[]),
    op("post", "/api/v2/barong/identity/users", "sign up: a pending member; a code is mailed", Anonymous, Json("SignUp"), (201, Some("User")), &[]),
    op("post", "/api/v2/barong/identity/users/email/generate_code", "mail a new verification code", Anonymous, Json("EmailOnly"), (201, Some("Empty")), &[]),
    op("post", "/api/v2/barong/identity/users/email/confirm_code", "verify the e-mail: active, level 1, a trading account", Anonymous, Json("ConfirmEmail"), (201, Some("User")), &[]),
    op("post", "/api/v2/barong/identity/users/password/generate_code", "mail a password-reset code", Anonymous, Json("EmailOnly"), (201, Some("Empty")), &[]),
    op("post", "/api/v2/barong/identity/users/password/confirm_code", "reset the password with the mailed code", Anonymous, Json("ResetPassword"), (201, Some("Empty")), &[]),
    op("post", "/api/v2/barong/identity/sessions", "log in (with the TOTP code once 2FA is on): the session cookie and the CSRF token", Anonymous, Json("Login"), (200, Some("LoggedIn")), &[401, 403]),
    op("delete", "/api/v2/barong/identity/sessions", "log out", SessionCsrf, NoBody, (200, Some("Empty")), &[]),
    op("get", "/api/v2/barong/identity/jwks", "the access tokens' public keys (JWKS)", Anonymous, NoBody, (200, Some("Jwks")), &[]),
    op("post", "/api/v2/barong/identity/kyc/webhook", "the KYC provider's verdict, HMAC-signed", Webhook, Json("Webhook"), (200, Some("Empty")), &[401, 404, 409]),
    op("get", "/api/v2/barong/resource/users/me", "the session's user", Session, NoBody, (200, Some("User")), &[]),
    op("put", "/api/v2/barong/resource/users/password", "change the password", SessionCsrf, Json("ChangePassword"), (201, Some("Empty")), &[400]),
    op("get", "/api/v2/barong/resource/sessions", "the user's sessions", Session, NoBody, (200, Some("Sessions")), &[]),
    op("delete", "/api/v2/barong/resource/sessions/{id}", "revoke one of the user's sessions", SessionCsrf, NoBody, (200, Some("Empty")), &[404]),
    op("post", "/api/v2/barong/resource/otp/generate_qrcode", "a new TOTP key: otpauth URL and QR PNG", SessionCsrf, NoBody, (201, Some("Enrolment")), &[422]),
    op("post", "/api/v2/barong/resource/otp/enable", "turn 2FA on with a code of the new key", SessionCsrf, Json("Code"), (201, Some("Empty")), &[403]),
    op("post", "/api/v2/barong/resource/otp/disable", "turn 2FA off with a current code", SessionCsrf, Json("Code"), (201, Some("Empty")), &[403]),
    op("post", "/api/v2/barong/resource/tokens", "a short-lived access JWT for the REST bridge", SessionCsrf, NoBody, (201, Some("AccessToken")), &[]),
    op("get", "/api/v2/barong/resource/api_keys", "the user's API keys", Session, NoBody, (200, Some("ApiKeys")), &[]),
    op("post", "/api/v2/barong/resource/api_keys", "create an API key (2FA on, a fresh code); an HMAC secret is shown once", SessionCsrf, Json("CreateApiKey"), (201, Some("CreatedApiKey")), &[403]),
    op("patch", "/api/v2/barong/resource/api_keys/{kid}", "disable an API key (a fresh code)", SessionCsrf, Json("TotpCode"), (200, Some("Empty")), &[403, 404]),
    op("delete", "/api/v2/barong/resource/api_keys/{kid}", "delete an API key (a fresh code)", SessionCsrf, Json("TotpCode"), (204, None), &[403, 404]),
    op("get", "/api/v2/barong/resource/profiles/me", "the user's KYC profile", Session, NoBody, (200, Some("Profile")), &[404]),
    op("post", "/api/v2/barong/resource/profiles", "create the KYC profile (`confirm`: submit it)", SessionCsrf, Json("ProfileFields"), (201, Some("Profile")), &[403]),
    op("put", "/api/v2/barong/resource/profiles", "update the KYC profile (`confirm`: submit it)", SessionCsrf, Json("ProfileFields"), (200, Some("Profile")), &[403, 404]),
    op("get", "/api/v2/barong/resource/labels", "the user's labels", Session, NoBody, (200, Some("Labels")), &[]),
    op("post", "/api/v2/barong/resource/labels", "set a public label", SessionCsrf, Json("Label"), (201, Some("Empty")), &[403]),
    op("delete", "/api/v2/barong/resource/labels/{key}", "delete a public label", SessionCsrf, NoBody, (200, Some("Empty")), &[403, 404]),
    op("get", "/api/v2/barong/resource/documents", "the user's KYC documents", Session, NoBody, (200, Some("Documents")), &[]),
    op("post", "/api/v2/barong/resource/documents", "upload a KYC document (the body is the file; `doc_type` etc. in the query)", SessionCsrf, Document, (201, Some("Document")), &[403, 411, 413, 415]),
    op("get", "/api/v2/barong/resource/documents/{id}", "one of the user's documents (the file)", Session, NoBody, (200, None), &[404]),
    op("put", "/api/v2/barong/admin/profiles", "review a submitted profile (operators)", SessionCsrf, Json("Review"), (200, Some("Reviewed")), &[403, 404]),
    op("post", "/api/v2/barong/admin/users/labels", "set a user's label (operators)", SessionCsrf, Json("AdminLabel"), (201, Some("Level")), &[403, 404]),
    op("delete", "/api/v2/barong/admin/users/labels", "delete a user's label (operators)", SessionCsrf, Json("AdminLabel"), (200, Some("Level")), &[403, 404]),
    op("get", "/api/v2/barong/admin/users/{uid}/documents", "a user's documents (operators)", Session, NoBody, (200, Some("Documents")), &[403, 404]),
    op("get", "/api/v2/barong/admin/documents/{id}", "any document (operators)", Session, NoBody, (200, None), &[403, 404]),
    op("get", "/api/v2/barong/admin/permissions", "the role -> permissions table (operators)", Session, NoBody, (200, Some("Permissions")), &[403]),
];

const _: () = assert!(OPERATIONS.len() == 38);

/// A router serving the document at [`OPENAPI_PATH`].
pub fn router() -> Router {
    let document = document();
    Router::new().route(
        OPENAPI_PATH,
        get(move || {
            let document = document.clone();
            async move { axum::Json(document) }
        }),
    )
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for operation in OPERATIONS {
        let item = paths
            .entry(operation.path.to_owned())
            .or_insert_with(|| json!({}));
        item[operation.method] = operation_json(operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Peregrine identity API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Barong-compatible identity: users, sessions (the `peregrine_session` \
                cookie, HttpOnly, SameSite=Strict, Path=/api/v2), the CSRF token given at login \
                (`X-CSRF-Token` on state-changing requests), 2FA by TOTP in OpenBao, access \
                tokens, API keys, KYC. Errors are `{\"errors\":[code],\"error\":{\"code\",\
                \"message\"}}`; 429 and 503 carry Retry-After. OpenBao unavailable is 503 \
                `identity.vault_unavailable`.",
        },
        "servers": [{ "url": "/", "description": "this server (paths are absolute)" }],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": "peregrine_session" },
                "csrf": { "type": "apiKey", "in": "header", "name": "X-CSRF-Token" },
                "webhookTimestamp": { "type": "apiKey", "in": "header", "name": "X-Kyc-Timestamp" },
                "webhookSignature": { "type": "apiKey", "in": "header", "name": "X-Kyc-Signature" },
            },
        },
    })
}

fn operation_json(operation: &Operation) -> Value {
    let mut responses = Map::new();
    let (ok, schema) = operation.ok;
    responses.insert(ok.to_string(), ok_response(schema));
    for (status, why) in refusals(operation) {
        responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(why));
    }
    let mut json = json!({
        "summary": operation.summary,
        "tags": [tag_of(operation.path)],
        "operationId": format!("{}{}", operation.method, operation.path.replace(['/', '{', '}'], "_")),
        "responses": responses,
    });
    let security = match operation.access {
        Anonymous => json!([]),
        Session => json!([{ "session": [] }]),
        SessionCsrf => json!([{ "session": [], "csrf": [] }]),
        Webhook => json!([{ "webhookTimestamp": [], "webhookSignature": [] }]),
    };
    json["security"] = security;
    let parameters = path_parameters(operation.path);
    if !parameters.is_empty() {
        json["parameters"] = Value::Array(parameters);
    }
    match operation.body {
        NoBody => {}
        Json(schema) => {
            json["requestBody"] = json!({ "required": true, "content": {
                "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } }
            }});
        }
        Document => {
            json["parameters"] = Value::Array(upload_parameters());
            json["requestBody"] = json!({ "required": true, "content": {
                "image/jpeg": { "schema": { "type": "string", "format": "binary" } },
                "image/png": { "schema": { "type": "string", "format": "binary" } },
                "application/pdf": { "schema": { "type": "string", "format": "binary" } },
            }});
        }
    }
    json
}

/// The refusals an operation can give: its own, then those of its kind.
fn refusals(operation: &Operation) -> Vec<(u16, &'static str)> {
    let mut out: Vec<(u16, &'static str)> = operation
        .refusals
        .iter()
        .map(|&status| (status, reason(status)))
        .collect();
    if operation.access != Anonymous {
        out.push((
            401,
            "no session, an expired one, or a missing or wrong CSRF token",
        ));
    }
    if operation.body != NoBody || !path_parameters(operation.path).is_empty() {
        out.push((422, "the body or a parameter is malformed or refused"));
        out.push((413, "the body is larger than the limit"));
    }
    if operation.path.starts_with(ID) && operation.method == "post" {
        out.push((
            429,
            "too many attempts: locked out or rate-limited (Retry-After)",
        ));
    }
    out.push((
        503,
        "OpenBao, the mail server or the store cannot serve this now (Retry-After)",
    ));
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "the current password is wrong",
        401 => "refused credentials",
        403 => {
            "not allowed: a missing or wrong TOTP code, a role or level too low, a reserved label"
        }
        404 => "no such resource (of this user)",
        409 => "a replayed webhook delivery",
        422 => "refused in the current state (e.g. 2FA already on)",
        411 => "no Content-Length",
        413 => "the document is larger than the limit",
        415 => "a document type that is not accepted",
        _ => "refused",
    }
}

fn tag_of(path: &str) -> &'static str {
    if path.starts_with("/api/v2/barong/admin") {
        "admin"
    } else if path.starts_with("/api/v2/barong/resource") {
        "resource"
    } else {
        "identity"
    }
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({ "name": name, "in": "path", "required": true,
                "schema": { "type": "string", "minLength": 1 } })
        })
        .collect()
}

fn upload_parameters() -> Vec<Value> {
    let query = |name: &str, required: bool| json!({ "name": name, "in": "query", "required": required, "schema": { "type": "string" } });
    vec![
        query("doc_type", true),
        query("doc_number", false),
        query("doc_expire", false),
    ]
}

fn ok_response(schema: Option<&str>) -> Value {
    match schema {
        Some(name) => json!({ "description": "done", "content": { "application/json": {
            "schema": { "$ref": format!("#/components/schemas/{name}") } } } }),
        None => json!({ "description": "done" }),
    }
}

fn error_response(why: &str) -> Value {
    json!({ "description": why, "content": { "application/json": {
        "schema": { "$ref": "#/components/schemas/ErrorBody" } } } })
}

/// An object schema with `required` string properties and `optional` ones of the given JSON
/// schemas; `closed` refuses other properties (the handler does: `deny_unknown_fields`).
fn object(required: &[(&str, Value)], optional: &[(&str, Value)], closed: bool) -> Value {
    let mut properties = Map::new();
    for (name, schema) in required.iter().chain(optional) {
        properties.insert((*name).to_owned(), schema.clone());
    }
    let names: Vec<&str> = required.iter().map(|(name, _)| *name).collect();
    let mut schema = json!({ "type": "object", "properties": properties, "required": names });
    if closed {
        schema["additionalProperties"] = json!(false);
    }
    schema
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn nullable(kind: &str) -> Value {
    json!({ "type": [kind, "null"] })
}

fn array_of(name: &str) -> Value {
    json!({ "type": "array", "items": { "$ref": format!("#/components/schemas/{name}") } })
}

fn schemas() -> Value {
    let named = identity_schemas().into_iter().chain(kyc_schemas());
    Value::Object(
        named
            .map(|(name, schema)| (name.to_owned(), schema))
            .collect(),
    )
}

/// Users, sessions, 2FA, tokens and API keys.
fn identity_schemas() -> Vec<(&'static str, Value)> {
    let user_fields = [
        ("uid", string()),
        ("email", string()),
        ("role", string()),
        ("level", json!({ "type": "integer" })),
        ("otp", json!({ "type": "boolean" })),
        ("state", string()),
        ("account_id", nullable("integer")),
        ("created_at", string()),
        ("updated_at", string()),
    ];
    let mut logged_in = user_fields.to_vec();
    logged_in.push(("csrf_token", string()));
    let session = [
        ("id", string()),
        ("user_agent", string()),
        ("ip", string()),
        ("created_at_ms", json!({ "type": "integer" })),
        ("last_seen_ms", json!({ "type": "integer" })),
        ("expires_at_ms", json!({ "type": "integer" })),
        ("current", json!({ "type": "boolean" })),
    ];
    let strings = |names: &[&'static str]| -> Vec<(&'static str, Value)> {
        names.iter().map(|name| (*name, string())).collect()
    };
    let mut named = vec![
        (
            "ErrorBody",
            object(
                &[
                    (
                        "errors",
                        json!({ "type": "array", "items": { "type": "string" }, "minItems": 1 }),
                    ),
                    ("error", object(&strings(&["code", "message"]), &[], false)),
                ],
                &[],
                false,
            ),
        ),
        ("Empty", json!({ "type": "object" })),
        ("Ping", object(&strings(&["ping"]), &[], false)),
        (
            "Time",
            object(&[("time", json!({ "type": "integer" }))], &[], false),
        ),
        (
            "SignUp",
            object(&strings(&["email", "password"]), &[], false),
        ),
        ("EmailOnly", object(&strings(&["email"]), &[], false)),
        (
            "ConfirmEmail",
            object(&strings(&["email", "token"]), &[], false),
        ),
        (
            "ResetPassword",
            object(
                &strings(&[
                    "email",
                    "reset_password_token",
                    "password",
                    "confirm_password",
                ]),
                &[],
                false,
            ),
        ),
        (
            "Login",
            object(
                &strings(&["email", "password"]),
                &[("otp_code", nullable("string"))],
                false,
            ),
        ),
        (
            "ChangePassword",
            object(
                &strings(&["old_password", "new_password", "confirm_password"]),
                &[],
                false,
            ),
        ),
        ("Code", object(&strings(&["code"]), &[], false)),
        ("TotpCode", object(&strings(&["totp_code"]), &[], false)),
        ("User", object(&user_fields, &[], false)),
        ("LoggedIn", object(&logged_in, &[], false)),
        ("Session", object(&session, &[], false)),
        ("Sessions", array_of("Session")),
        (
            "Enrolment",
            object(
                &[("data", object(&strings(&["url", "barcode"]), &[], false))],
                &[],
                false,
            ),
        ),
        (
            "AccessToken",
            object(
                &[
                    ("token", string()),
                    ("kid", string()),
                    ("expires_at", json!({ "type": "integer" })),
                ],
                &[],
                false,
            ),
        ),
        (
            "Jwks",
            object(
                &[(
                    "keys",
                    json!({ "type": "array", "items": { "type": "object" } }),
                )],
                &[],
                false,
            ),
        ),
    ];
    named.extend(api_key_schemas());
    named
}

/// API keys: what is created, listed and shown once.
fn api_key_schemas() -> Vec<(&'static str, Value)> {
    let key_fields = [
        ("kid", string()),
        ("algorithm", json!({ "enum": ["HS256", "ed25519"] })),
        (
            "scope",
            json!({ "type": "array", "items": { "type": "string" } }),
        ),
        ("state", string()),
        ("legacy", json!({ "type": "boolean" })),
        (
            "allowed_ips",
            json!({ "type": ["array", "null"], "items": { "type": "string" } }),
        ),
        ("expires_at", nullable("integer")),
        ("created_at", string()),
    ];
    let mut created_key = key_fields.to_vec();
    created_key.push(("secret", nullable("string")));
    vec![
        (
            "CreateApiKey",
            object(
                &[
                    (
                        "scope",
                        json!({ "type": "array", "items": { "type": "string" } }),
                    ),
                    ("totp_code", string()),
                ],
                &[
                    ("algorithm", nullable("string")),
                    ("public_key", nullable("string")),
                    (
                        "allowed_ips",
                        json!({ "type": ["array", "null"], "items": { "type": "string" } }),
                    ),
                    ("expires_at", nullable("integer")),
                    ("legacy", json!({ "type": "boolean" })),
                ],
                true,
            ),
        ),
        ("ApiKey", object(&key_fields, &[], false)),
        ("ApiKeys", array_of("ApiKey")),
        ("CreatedApiKey", object(&created_key, &[], false)),
    ]
}

/// Profiles, labels, documents and the operators' views.
fn kyc_schemas() -> Vec<(&'static str, Value)> {
    let profile_fields = [
        "first_name",
        "last_name",
        "dob",
        "address",
        "postcode",
        "city",
        "country",
        "metadata",
    ];
    let profile_in: Vec<(&str, Value)> = profile_fields
        .iter()
        .map(|name| (*name, string()))
        .chain([("confirm", json!({ "type": "boolean" }))])
        .collect();
    let profile_out: Vec<(&str, Value)> = profile_fields
        .iter()
        .map(|name| (*name, nullable("string")))
        .chain([
            ("state", string()),
            ("created_at", string()),
            ("updated_at", string()),
        ])
        .collect();
    let document = [
        ("id", json!({ "type": "integer" })),
        ("doc_type", string()),
        ("doc_number", nullable("string")),
        ("doc_expire", nullable("string")),
        ("content_type", string()),
        ("size", json!({ "type": "integer" })),
        ("created_at", string()),
    ];
    let pair =
        |a: &'static str, b: &'static str| object(&[(a, string()), (b, string())], &[], false);
    vec![
        ("ProfileFields", object(&[], &profile_in, true)),
        ("Profile", object(&profile_out, &[], false)),
        ("Label", pair("key", "value")),
        (
            "LabelView",
            object(
                &[
                    ("key", string()),
                    ("value", string()),
                    ("scope", string()),
                    ("created_at", string()),
                    ("updated_at", string()),
                ],
                &[],
                false,
            ),
        ),
        ("Labels", array_of("LabelView")),
        ("Document", object(&document, &[], false)),
        ("Documents", array_of("Document")),
        ("Review", pair("uid", "state")),
        ("Reviewed", pair("uid", "state")),
        (
            "AdminLabel",
            object(
                &[("uid", string()), ("key", string())],
                &[("value", nullable("string"))],
                false,
            ),
        ),
        (
            "Level",
            object(&[("level", json!({ "type": "integer" }))], &[], false),
        ),
        (
            "Permissions",
            json!({ "type": "object",
            "additionalProperties": { "type": "array", "items": { "type": "string" } } }),
        ),
        ("Webhook", json!({ "type": "object" })),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AuthError;
    use crate::kyc::KycError;
    use crate::store::ProfileState;

    /// The statuses `document` lists for `method path`.
    fn documented(method: &str, path: &str) -> Vec<u16> {
        let document = document();
        let responses = document["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("no {method} {path}"));
        responses.keys().map(|k| k.parse().unwrap()).collect()
    }

    fn assert_documented(method: &str, path: &str, answers: &[u16]) {
        let listed = documented(method, path);
        for status in answers {
            assert!(
                listed.contains(status),
                "{method} {path} answers {status}, not in its document ({listed:?})"
            );
        }
    }

    /// Each status of the errors the route's handler returns, by the errors' own mapping (a
    /// changed mapping shows here): what schemathesis would find undocumented.
    #[test]
    fn every_refusal_a_route_can_give_is_documented() {
        let webhook = [
            KycError::WebhookOff,
            KycError::WebhookSignature,
            KycError::WebhookStale,
            KycError::WebhookReplay,
            KycError::VaultUnavailable,
            KycError::InvalidParams { field: "labels" },
            KycError::ProfileTransition {
                from: ProfileState::Verified,
                to: ProfileState::Rejected,
            },
        ];
        let statuses: Vec<u16> = webhook.iter().map(|e| e.status().as_u16()).collect();
        assert_documented("post", "/api/v2/barong/identity/kyc/webhook", &statuses);

        let session = [
            AuthError::InvalidSession,
            AuthError::MissingCsrf,
            AuthError::CsrfMismatch,
            AuthError::VaultUnavailable,
        ];
        let otp_generate = [AuthError::OtpAlreadyEnabled];
        let statuses: Vec<u16> = session
            .iter()
            .chain(&otp_generate)
            .map(|e| e.status().as_u16())
            .collect();
        assert_documented(
            "post",
            "/api/v2/barong/resource/otp/generate_qrcode",
            &statuses,
        );
        let login = [
            AuthError::InvalidCredentials,
            AuthError::NotActive,
            AuthError::Disabled,
            AuthError::MissingOtp,
            AuthError::InvalidOtp,
            AuthError::LockedOut { retry_after_s: 1 },
            AuthError::VaultUnavailable,
            AuthError::InvalidParams { field: "body" },
        ];
        let statuses: Vec<u16> = login.iter().map(|e| e.status().as_u16()).collect();
        assert_documented("post", "/api/v2/barong/identity/sessions", &statuses);
        let create_key = [
            AuthError::OtpNotEnabled,
            AuthError::InvalidOtp,
            AuthError::OtpAlreadyUsed,
            AuthError::TooManyKeys,
            AuthError::VaultUnavailable,
        ];
        let statuses: Vec<u16> = session
            .iter()
            .chain(&create_key)
            .map(|e| e.status().as_u16())
            .collect();
        assert_documented("post", "/api/v2/barong/resource/api_keys", &statuses);
        // Every route: the store or OpenBao unavailable.
        for operation in OPERATIONS {
            assert_documented(operation.method, operation.path, &[503]);
        }
    }
}
