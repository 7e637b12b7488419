//! The typed errors of the identity service, each with a stable Barong-style code and an HTTP
//! status. 4xx is the client's doing; 5xx the service's (store, mail, randomness), never bad
//! input. Messages never say whether an e-mail address is registered.

use axum::http::StatusCode;

use crate::mail::MailError;
use crate::store::StoreError;

/// Why an identity operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A request field is missing or malformed.
    #[error("invalid `{field}`")]
    InvalidParams {
        /// The field.
        field: &'static str,
    },
    /// The e-mail address is not one we accept.
    #[error("invalid e-mail address")]
    InvalidEmail,
    /// The password is too short or too long.
    #[error("the password must have 10 to 256 characters")]
    WeakPassword,
    /// The two new passwords differ.
    #[error("the passwords do not match")]
    PasswordMismatch,
    /// The address is registered already.
    #[error("this e-mail address is taken")]
    EmailTaken,
    /// Wrong e-mail or password (which one is not said).
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    /// The current password given to change it is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// The user has not verified the e-mail address yet.
    #[error("the e-mail address is not verified yet")]
    NotActive,
    /// The user is banned, locked or disabled by an operator.
    #[error("this account is disabled")]
    Disabled,
    /// Too many failures: this account or address is locked out for a while.
    #[error("too many failed attempts; retry in {retry_after_s} s")]
    LockedOut {
        /// Seconds until the lockout ends.
        retry_after_s: i64,
    },
    /// Too many requests of this kind from this address or for this account.
    #[error("too many requests; retry in {retry_after_s} s")]
    RateLimited {
        /// Seconds until the window ends.
        retry_after_s: i64,
    },
    /// The code is wrong, used, superseded or tried too often.
    #[error("the code is wrong or no longer valid")]
    InvalidCode,
    /// The code expired.
    #[error("the code expired; ask for a new one")]
    CodeExpired,
    /// No session cookie, or one that is unknown, expired or revoked.
    #[error("no valid session")]
    InvalidSession,
    /// A state-changing request without the session's CSRF token header.
    #[error("the X-CSRF-Token header is missing")]
    MissingCsrf,
    /// A state-changing request whose CSRF token is not the session's.
    #[error("the X-CSRF-Token header does not match the session")]
    CsrfMismatch,
    /// No such session among the caller's own.
    #[error("no such session")]
    SessionNotFound,
    /// Every trading account of the configured range is taken.
    #[error("no trading account left to assign")]
    AccountsExhausted,
    /// The store failed.
    #[error("identity store: {0}")]
    Store(#[from] StoreError),
    /// The mail could not be sent.
    #[error("mail: {0}")]
    Mail(#[from] MailError),
    /// Hashing a password failed (bad parameters: a bug).
    #[error("password hashing failed")]
    PasswordHash,
    /// The system's random number generator failed.
    #[error("no randomness available")]
    Random,
    /// A blocking task was lost (the runtime is shutting down).
    #[error("worker task lost")]
    TaskLost,
    /// The user has 2FA enabled and the request carries no code.
    #[error("this account requires a one-time code (otp_code)")]
    MissingOtp,
    /// The one-time code is not the current one.
    #[error("the one-time code is wrong")]
    InvalidOtp,
    /// The current one-time code was used already: wait for the next one.
    #[error("this one-time code was used already; wait for the next one")]
    OtpAlreadyUsed,
    /// The action needs 2FA enabled first.
    #[error("enable two-factor authentication first")]
    OtpNotEnabled,
    /// 2FA is enabled already.
    #[error("two-factor authentication is enabled already")]
    OtpAlreadyEnabled,
    /// OpenBao cannot answer now (unreachable, sealed, standby): 2FA and token issuance wait.
    #[error("the secret store is unavailable; retry later")]
    VaultUnavailable,
    /// No OpenBao is configured, so 2FA and tokens are off.
    #[error("two-factor authentication and tokens are not configured")]
    VaultNotConfigured,
    /// The user holds the most API keys allowed.
    #[error("too many API keys; delete one first")]
    TooManyKeys,
    /// No such API key among the caller's own.
    #[error("no such API key")]
    KeyNotFound,
    /// OpenBao refused identity's request (a policy or set-up fault).
    #[error("secret store: {0}")]
    Vault(peregrine_secrets::BaoError),
}

impl AuthError {
    /// The stable code (Barong's where Barong has one).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::InvalidParams { .. } => "identity.user.invalid_params",
            AuthError::InvalidEmail => "identity.user.invalid_email",
            AuthError::WeakPassword => "password.requirements",
            AuthError::PasswordMismatch => "identity.user.passwords_doesnt_match",
            AuthError::EmailTaken => "email.taken",
            AuthError::InvalidCredentials => "identity.session.invalid_login_params",
            AuthError::WrongPassword => "resource.password.prev_pass_not_correct",
            AuthError::NotActive => "identity.session.not_active",
            AuthError::Disabled => "identity.session.banned",
            AuthError::LockedOut { .. } => "identity.session.locked_out",
            AuthError::RateLimited { .. } => "identity.rate_limited",
            AuthError::InvalidCode => "identity.user.invalid_code",
            AuthError::CodeExpired => "identity.user.code_expired",
            AuthError::InvalidSession => "authz.invalid_session",
            AuthError::MissingCsrf => "authz.missing_csrf_token",
            AuthError::CsrfMismatch => "authz.csrf_token_mismatch",
            AuthError::SessionNotFound => "resource.session.not_found",
            AuthError::AccountsExhausted => "identity.account.exhausted",
            AuthError::Mail(_) => "identity.mail_unavailable",
            AuthError::MissingOtp => "identity.session.missing_otp",
            AuthError::InvalidOtp => "identity.session.invalid_otp",
            AuthError::OtpAlreadyUsed => "identity.otp.already_used",
            AuthError::OtpNotEnabled => "identity.otp.not_enabled",
            AuthError::OtpAlreadyEnabled => "identity.otp.already_enabled",
            AuthError::VaultUnavailable => "identity.vault_unavailable",
            // One code for "OpenBao cannot serve this now", configured or not: a client retries
            // or tells the user, either way.
            AuthError::VaultNotConfigured => "identity.vault_unavailable",
            AuthError::TooManyKeys => "resource.api_key.limit_reached",
            AuthError::KeyNotFound => "resource.api_key.doesnt_exist",
            AuthError::Store(_)
            | AuthError::Vault(_)
            | AuthError::PasswordHash
            | AuthError::Random
            | AuthError::TaskLost => "server.internal_error",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::InvalidParams { .. }
            | AuthError::InvalidEmail
            | AuthError::WeakPassword
            | AuthError::PasswordMismatch
            | AuthError::EmailTaken
            | AuthError::InvalidCode
            | AuthError::CodeExpired => StatusCode::UNPROCESSABLE_ENTITY,
            AuthError::WrongPassword => StatusCode::BAD_REQUEST,
            AuthError::InvalidCredentials
            | AuthError::NotActive
            | AuthError::InvalidSession
            | AuthError::MissingCsrf
            | AuthError::CsrfMismatch => StatusCode::UNAUTHORIZED,
            AuthError::Disabled => StatusCode::FORBIDDEN,
            AuthError::LockedOut { .. } | AuthError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AuthError::SessionNotFound | AuthError::KeyNotFound => StatusCode::NOT_FOUND,
            AuthError::TooManyKeys => StatusCode::UNPROCESSABLE_ENTITY,
            AuthError::MissingOtp | AuthError::InvalidOtp | AuthError::OtpNotEnabled => {
                StatusCode::FORBIDDEN
            }
            AuthError::OtpAlreadyUsed | AuthError::OtpAlreadyEnabled => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AuthError::AccountsExhausted
            | AuthError::Mail(_)
            | AuthError::VaultUnavailable
            | AuthError::VaultNotConfigured => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Store(_)
            | AuthError::Vault(_)
            | AuthError::PasswordHash
            | AuthError::Random
            | AuthError::TaskLost => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before retrying, when the refusal is temporary.
    pub fn retry_after_s(&self) -> Option<i64> {
        match self {
            AuthError::LockedOut { retry_after_s } | AuthError::RateLimited { retry_after_s } => {
                Some(*retry_after_s)
            }
            AuthError::AccountsExhausted | AuthError::Mail(_) | AuthError::VaultUnavailable => {
                Some(1)
            }
            _ => None,
        }
    }

    /// What a person reads: the cause for client errors; a fixed text for server errors
    /// (store or mail details go to the log, never to the client).
    pub fn public_message(&self) -> String {
        if self.status().is_server_error() {
            match self {
                AuthError::Mail(_) => "the mail server is unavailable; retry later".to_owned(),
                AuthError::AccountsExhausted
                | AuthError::VaultUnavailable
                | AuthError::VaultNotConfigured => self.to_string(),
                _ => "internal error".to_owned(),
            }
        } else {
            self.to_string()
        }
    }
}
