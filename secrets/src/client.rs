//! Requests to OpenBao: bounded in time and size, every failure classified.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::{BaoError, BaoToken};

/// The longest a request may take, connection included. Identity answers a user within this,
/// so it is short: an OpenBao that does not answer in 2 s is treated as unavailable (503).
pub const REQUEST_TIMEOUT_MS: u64 = 2_000;
/// The largest response read. OpenBao's answers here are small JSON documents (a QR PNG is the
/// largest, ~2 KiB); anything bigger is refused before it is buffered.
pub const RESPONSE_BYTES_MAX: usize = 1 << 20;
/// The longest key, mount or path name accepted.
pub const NAME_BYTES_MAX: usize = 256;

const _: () = assert!(REQUEST_TIMEOUT_MS >= 100 && REQUEST_TIMEOUT_MS <= 30_000);
const _: () = assert!(RESPONSE_BYTES_MAX >= 64 * 1024);

/// A client of one OpenBao server, acting with one token.
#[derive(Clone, Debug)]
pub struct OpenBao {
    /// `http://host:port`, no trailing slash.
    addr: String,
    /// Shared by the clones of a client: a client made by [`OpenBao::awaiting_token`] gets its
    /// token once ([`OpenBao::give_token`]) and every clone uses it from then on.
    token: Arc<OnceLock<BaoToken>>,
    http: reqwest::Client,
}

impl OpenBao {
    /// A client of the server at `addr` (`http://host:port`) with `token`.
    ///
    /// Plain HTTP only: OpenBao is reached on loopback or inside the pod's network namespace
    /// (the deployment runs it as a sidecar or node-local service); TLS to a remote OpenBao is
    /// not built in.
    pub fn new(addr: &str, token: BaoToken) -> Result<OpenBao, BaoError> {
        let trimmed = addr.trim_end_matches('/');
        let host = trimmed
            .strip_prefix("http://")
            .ok_or_else(|| BaoError::Address(addr.to_owned()))?;
        if host.is_empty() || host.contains('/') {
            return Err(BaoError::Address(addr.to_owned()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .connect_timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .build()
            .map_err(|source| BaoError::Unreachable {
                addr: addr.to_owned(),
                source,
            })?;
        Ok(OpenBao {
            addr: trimmed.to_owned(),
            token: Arc::new(OnceLock::from(token)),
            http,
        })
    }

    /// The same server with another token (e.g. a component's own, narrower one).
    pub fn with_token(&self, token: BaoToken) -> OpenBao {
        OpenBao {
            addr: self.addr.clone(),
            token: Arc::new(OnceLock::from(token)),
            http: self.http.clone(),
        }
    }

    /// The same server with no token yet: a component that started while OpenBao could not
    /// make its token (unreachable, sealed) holds this client and its clones, and every call
    /// needing a token fails [`BaoError::NoToken`] (unavailable, so 503) until
    /// [`OpenBao::give_token`].
    pub fn awaiting_token(&self) -> OpenBao {
        OpenBao {
            addr: self.addr.clone(),
            token: Arc::new(OnceLock::new()),
            http: self.http.clone(),
        }
    }

    /// Gives a client made by [`OpenBao::awaiting_token`] (and all its clones) its token;
    /// false, and nothing changed, when it has one already.
    pub fn give_token(&self, token: BaoToken) -> bool {
        self.token.set(token).is_ok()
    }

    /// Whether this client has a token.
    pub fn has_token(&self) -> bool {
        self.token.get().is_some()
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `method` to `/v1/<path>` with an optional JSON body; the JSON answer, or `None`
    /// for an empty one (204).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, BaoError> {
        let (status, bytes) = self.send(method, path, body, true).await?;
        if !status.is_success() {
            return Err(classify(path, status, &bytes));
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| malformed(path, "not JSON"))
    }

    /// Sends a request and reads its answer, at most [`RESPONSE_BYTES_MAX`] bytes, whatever
    /// its status.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        with_token: bool,
    ) -> Result<(StatusCode, Vec<u8>), BaoError> {
        let url = format!("{}/v1/{}", self.addr, path);
        let mut request = self.http.request(method, url);
        if with_token {
            let token = self.token.get().ok_or_else(|| BaoError::NoToken {
                addr: self.addr.clone(),
            })?;
            request = request.header("X-Vault-Token", token.expose());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |source| BaoError::Unreachable {
            addr: self.addr.clone(),
            source,
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let too_large = || BaoError::ResponseTooLarge {
            path: path.to_owned(),
            limit_bytes: RESPONSE_BYTES_MAX,
        };
        if response
            .content_length()
            .is_some_and(|length| length > RESPONSE_BYTES_MAX as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > RESPONSE_BYTES_MAX {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    }
}

/// The error for a non-success status.
pub(crate) fn classify(path: &str, status: StatusCode, body: &[u8]) -> BaoError {
    let messages = error_messages(body);
    match status.as_u16() {
        403 => BaoError::Denied {
            path: path.to_owned(),
        },
        404 => BaoError::NotFound {
            path: path.to_owned(),
        },
        503 if messages.iter().any(|message| message.contains("sealed")) => BaoError::Sealed,
        status @ (429 | 500..=599) => BaoError::Unavailable { status },
        status => BaoError::Rejected {
            path: path.to_owned(),
            status,
            messages,
        },
    }
}

/// OpenBao's `{"errors": [..]}`, or nothing when the body has another shape.
fn error_messages(body: &[u8]) -> Vec<String> {
    /// Bound on the messages kept from one answer.
    const MESSAGES_MAX: usize = 8;
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let Some(errors) = value.get("errors").and_then(Value::as_array) else {
        return Vec::new();
    };
    errors
        .iter()
        .filter_map(Value::as_str)
        .take(MESSAGES_MAX)
        .map(str::to_owned)
        .collect()
}

/// A malformed-response error.
pub(crate) fn malformed(path: &str, what: &'static str) -> BaoError {
    BaoError::Malformed {
        path: path.to_owned(),
        what,
    }
}

/// `answer["data"][field]` as a string.
pub(crate) fn data_str<'a>(
    answer: &'a Option<Value>,
    path: &str,
    field: &'static str,
) -> Result<&'a str, BaoError> {
    answer
        .as_ref()
        .and_then(|value| value.get("data"))
        .and_then(|data| data.get(field))
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(path, field))
}

/// Checks a key, mount or path name: letters, digits, `_`, `-`, `.` and `/` (not leading, no
/// `..`), so a user-derived name cannot address another path.
pub(crate) fn check_name(name: &str) -> Result<&str, BaoError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
    let valid = !name.is_empty()
        && name.len() <= NAME_BYTES_MAX
        && name.chars().all(allowed)
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if valid {
        Ok(name)
    } else {
        Err(BaoError::Name(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_their_path_are_refused() {
        for bad in [
            "", "/a", "a/", "a//b", "a/../b", "..", "a b", "a?x=1", "a%2f",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["jwt", "user-7", "wallet/eth/seed", "a.b_c"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn statuses_are_classified_for_the_callers_answer() {
        let sealed = br#"{"errors":["Vault is sealed"]}"#;
        assert!(matches!(
            classify("p", StatusCode::SERVICE_UNAVAILABLE, sealed),
            BaoError::Sealed
        ));
        assert!(classify("p", StatusCode::TOO_MANY_REQUESTS, b"").is_unavailable());
        assert!(classify("p", StatusCode::BAD_GATEWAY, b"").is_unavailable());
        assert!(!classify("p", StatusCode::FORBIDDEN, b"").is_unavailable());
        let used = br#"{"errors":["code already used; wait until the next time period"]}"#;
        match classify("p", StatusCode::BAD_REQUEST, used) {
            BaoError::Rejected {
                status, messages, ..
            } => {
                assert_eq!(status, 400);
                assert_eq!(messages.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_plain_http_addresses_are_accepted() {
        let token = BaoToken::new("t");
        assert!(OpenBao::new("http://127.0.0.1:8200/", token.clone()).is_ok());
        for bad in [
            "127.0.0.1:8200",
            "https://bao:8200",
            "http://",
            "http://a/b",
        ] {
            assert!(OpenBao::new(bad, token.clone()).is_err(), "{bad}");
        }
    }
}
