//! Why a request to OpenBao failed, classified for the caller's answer.

/// A failed request to OpenBao.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BaoError {
    /// No connection, or no answer within the request's time.
    #[error("OpenBao at {addr} did not answer: {source}")]
    Unreachable {
        /// The address configured.
        addr: String,
        /// The transport's error.
        source: reqwest::Error,
    },
    /// The client has no token yet: it was made while OpenBao could not issue one
    /// ([`crate::OpenBao::awaiting_token`]); nothing was sent.
    #[error("no OpenBao token yet for {addr}: OpenBao was not available to issue it")]
    NoToken {
        /// The address configured.
        addr: String,
    },
    /// OpenBao answered that it is sealed.
    #[error("OpenBao is sealed")]
    Sealed,
    /// OpenBao answered 429 or 5xx: a standby, not initialised, overloaded or failing.
    #[error("OpenBao cannot serve now (HTTP {status})")]
    Unavailable {
        /// The HTTP status.
        status: u16,
    },
    /// The token may not do this (403): a policy is missing or the token expired.
    #[error("OpenBao refused the token's permission for {path}")]
    Denied {
        /// The API path asked.
        path: String,
    },
    /// Nothing at the path (404).
    #[error("OpenBao has nothing at {path}")]
    NotFound {
        /// The API path asked.
        path: String,
    },
    /// OpenBao refused the request (4xx other than 403/404) with its own messages.
    #[error("OpenBao refused {path} (HTTP {status}): {}", messages.join("; "))]
    Rejected {
        /// The API path asked.
        path: String,
        /// The HTTP status.
        status: u16,
        /// OpenBao's `errors` array.
        messages: Vec<String>,
    },
    /// The response was larger than [`crate::RESPONSE_BYTES_MAX`].
    #[error("OpenBao's response to {path} exceeds {limit_bytes} bytes")]
    ResponseTooLarge {
        /// The API path asked.
        path: String,
        /// The limit.
        limit_bytes: usize,
    },
    /// The response did not have the shape this client expects.
    #[error("OpenBao's response to {path} is malformed: {what}")]
    Malformed {
        /// The API path asked.
        path: String,
        /// What was wrong.
        what: &'static str,
    },
    /// The configured address is not an `http://` or `https://` URL.
    #[error("OpenBao address {0:?} must start with http:// and name a host")]
    Address(String),
    /// A name given for a key, mount or path has characters outside `[A-Za-z0-9_.-/]`.
    #[error("{0:?} is not a valid OpenBao name")]
    Name(String),
}

impl BaoError {
    /// True when OpenBao cannot answer now (unreachable, sealed, standby, failing): the
    /// caller answers 503 and other work goes on. False for a refusal that retrying will not
    /// change (denied, not found, rejected, malformed).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            BaoError::Unreachable { .. }
                | BaoError::Sealed
                | BaoError::Unavailable { .. }
                | BaoError::NoToken { .. }
        )
    }
}
