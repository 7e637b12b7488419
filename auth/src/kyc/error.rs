//! KYC's typed refusals and failures, each with a stable code (Barong's where it has one) and
//! an HTTP status; the body is the identity API's ([`crate::http::error::ErrorBody`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::AuthError;
use crate::http::error::{ErrorBody, ErrorDetail};
use crate::rbac::Forbidden;
use crate::store::{ProfileState, StoreError};

/// Why a KYC operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KycError {
    /// The session or a common check refused (its own code).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The role may not do this.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// A field is missing or malformed.
    #[error("invalid `{field}`")]
    InvalidParams {
        /// The field.
        field: &'static str,
    },
    /// The user has a profile already.
    #[error("the profile exists already")]
    ProfileExists,
    /// The user has no profile.
    #[error("no profile")]
    ProfileNotFound,
    /// The profile's state does not allow this.
    #[error("a {from} profile cannot become {to}", from = from.as_str(), to = to.as_str())]
    ProfileTransition {
        /// The profile's state.
        from: ProfileState,
        /// The state asked for.
        to: ProfileState,
    },
    /// The user's level is below what the action needs.
    #[error("this needs KYC level {required}; the account has {level}")]
    LevelTooLow {
        /// The level needed.
        required: i64,
        /// The user's.
        level: i64,
    },
    /// The label key is reserved for the service (private scope).
    #[error("the label `{0}` is set by the service only")]
    LabelReserved(String),
    /// No such label.
    #[error("no such label")]
    LabelNotFound,
    /// The user named does not exist.
    #[error("no such user")]
    UserNotFound,
    /// The document type is not allowed.
    #[error("document type not allowed")]
    DocumentType,
    /// The content type is not one of JPEG, PNG, PDF.
    #[error("content type not allowed (image/jpeg, image/png, application/pdf)")]
    ContentType,
    /// The content does not start as its declared type does.
    #[error("the content is not a {0}")]
    ContentMismatch(&'static str),
    /// The upload does not say its length.
    #[error("Content-Length is required")]
    LengthRequired,
    /// The upload is larger than allowed.
    #[error("the document exceeds {limit_bytes} bytes")]
    DocumentTooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// The user holds as many documents as allowed.
    #[error("too many documents")]
    DocumentsExhausted,
    /// No such document among the caller's own (or, for compliance, at all).
    #[error("no such document")]
    DocumentNotFound,
    /// The webhook is not configured.
    #[error("the KYC webhook is off")]
    WebhookOff,
    /// The webhook's signature is missing or wrong.
    #[error("invalid webhook signature")]
    WebhookSignature,
    /// The webhook's timestamp is outside the window.
    #[error("webhook timestamp outside the replay window")]
    WebhookStale,
    /// The webhook's event was received already.
    #[error("webhook event replayed")]
    WebhookReplay,
    /// The webhook secret's KV document is missing, has no `secret` field, or one outside
    /// 32..=1024 bytes (a deployment error: the secrets held are kept).
    #[error("the KYC webhook secret in OpenBao KV is missing or malformed")]
    WebhookSecretInvalid,
    /// OpenBao cannot answer now (unreachable, sealed, standby).
    #[error("the secret store is unavailable")]
    VaultUnavailable,
    /// OpenBao refused (a policy or key missing: a deployment error).
    #[error("secret store: {0}")]
    Vault(peregrine_secrets::BaoError),
    /// Sealed content did not open (a changed row or key) or could not be sealed.
    #[error("document encryption failed")]
    Crypto,
    /// The store failed.
    #[error("identity store: {0}")]
    Store(#[from] StoreError),
}

impl From<peregrine_secrets::BaoError> for KycError {
    fn from(error: peregrine_secrets::BaoError) -> KycError {
        if error.is_unavailable() {
            KycError::VaultUnavailable
        } else {
            KycError::Vault(error)
        }
    }
}

impl KycError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            KycError::Auth(error) => error.code(),
            KycError::Forbidden(_) => Forbidden::CODE,
            KycError::InvalidParams { .. } => "resource.profile.invalid_params",
            KycError::ProfileExists => "resource.profile.exist",
            KycError::ProfileNotFound => "resource.profile.doesnt_exist",
            KycError::ProfileTransition { .. } => "resource.profile.invalid_transition",
            KycError::LevelTooLow { .. } => "authz.insufficient_level",
            KycError::LabelReserved(_) => "resource.labels.private",
            KycError::LabelNotFound => "resource.labels.not_found",
            KycError::UserNotFound => "admin.user.doesnt_exist",
            KycError::DocumentType => "resource.documents.invalid_type",
            KycError::ContentType => "resource.documents.invalid_content_type",
            KycError::ContentMismatch(_) => "resource.documents.content_mismatch",
            KycError::LengthRequired => "resource.documents.length_required",
            KycError::DocumentTooLarge { .. } => "resource.documents.too_large",
            KycError::DocumentsExhausted => "resource.documents.limit_reached",
            KycError::DocumentNotFound => "resource.documents.doesnt_exist",
            KycError::WebhookOff => "kyc.webhook.off",
            KycError::WebhookSignature => "kyc.webhook.invalid_signature",
            KycError::WebhookStale => "kyc.webhook.stale",
            KycError::WebhookReplay => "kyc.webhook.replayed",
            KycError::WebhookSecretInvalid => "kyc.webhook.secret_invalid",
            KycError::VaultUnavailable => "identity.vault_unavailable",
            KycError::Vault(_) | KycError::Crypto | KycError::Store(_) => "server.internal_error",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            KycError::Auth(error) => error.status(),
            KycError::Forbidden(_) | KycError::LevelTooLow { .. } | KycError::LabelReserved(_) => {
                StatusCode::FORBIDDEN
            }
            KycError::InvalidParams { .. }
            | KycError::ProfileExists
            | KycError::ProfileTransition { .. }
            | KycError::DocumentType
            | KycError::ContentMismatch(_)
            | KycError::DocumentsExhausted => StatusCode::UNPROCESSABLE_ENTITY,
            KycError::ProfileNotFound
            | KycError::LabelNotFound
            | KycError::UserNotFound
            | KycError::DocumentNotFound
            | KycError::WebhookOff => StatusCode::NOT_FOUND,
            KycError::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            KycError::LengthRequired => StatusCode::LENGTH_REQUIRED,
            KycError::DocumentTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            KycError::WebhookSignature | KycError::WebhookStale => StatusCode::UNAUTHORIZED,
            KycError::WebhookReplay => StatusCode::CONFLICT,
            KycError::VaultUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            KycError::Vault(_)
            | KycError::Crypto
            | KycError::Store(_)
            | KycError::WebhookSecretInvalid => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for KycError {
    fn into_response(self) -> Response {
        let (status, code) = (self.status(), self.code());
        let message = match &self {
            KycError::Auth(error) => error.public_message(),
            KycError::VaultUnavailable => "the secret store is unavailable; retry later".to_owned(),
            _ if status.is_server_error() => {
                tracing::error!(error = %self, code, "KYC request failed");
                "internal error".to_owned()
            }
            _ => self.to_string(),
        };
        let retry = matches!(self, KycError::VaultUnavailable);
        let mut response = match self {
            KycError::Auth(error) => error.into_response(),
            _ => {
                let body = ErrorBody {
                    errors: vec![code],
                    error: ErrorDetail { code, message },
                };
                (status, axum::Json(body)).into_response()
            }
        };
        if retry {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}
