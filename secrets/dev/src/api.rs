//! OpenBao's answer shapes: `{"data": ..}` on success, `{"errors": [..]}` with a status on a
//! refusal, and the small helpers the engines share to read a request body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value, json};

/// A request body: OpenBao's parameters (an empty body is an empty object).
pub(crate) type Body = Map<String, Value>;

/// What an engine answers.
#[derive(Debug)]
pub(crate) enum Reply {
    /// 200 with `data`.
    Data(Value),
    /// 200 with `auth` (a token created).
    Auth(Value),
    /// 204, no body.
    Empty,
    /// A status and a raw JSON body (sys/health, whose status carries the state).
    Raw(u16, Value),
}

/// A refusal: a status and OpenBao's messages.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) messages: Vec<String>,
}

impl ApiError {
    /// 400 with one message: OpenBao's answer to a request it will not carry out.
    pub(crate) fn bad(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            messages: vec![message.into()],
        }
    }

    /// 403, the answer to a missing, unknown or expired token and to a path the token's
    /// policies do not grant.
    pub(crate) fn denied() -> ApiError {
        ApiError {
            status: 403,
            messages: vec!["permission denied".to_owned()],
        }
    }

    /// 404 with no message (OpenBao's "nothing here").
    pub(crate) fn not_found() -> ApiError {
        ApiError {
            status: 404,
            messages: Vec::new(),
        }
    }

    /// 404 for a path no engine serves.
    pub(crate) fn no_route(path: &str) -> ApiError {
        ApiError {
            status: 404,
            messages: vec![format!(
                "no handler for route \"{path}\". route entry not found."
            )],
        }
    }

    /// 500: the store could not keep the change (the change was not made).
    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 500,
            messages: vec![message.into()],
        }
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Value {
        json!({ "errors": self.messages })
    }
}

/// The success envelope OpenBao wraps `data` or `auth` in.
pub(crate) fn envelope(data: Value, auth: Value) -> Value {
    json!({
        "request_id": request_id(),
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": auth,
    })
}

fn request_id() -> String {
    let mut bytes = [0u8; 16];
    // An all-zero id if the generator fails: the id is informational only.
    let _ = SystemRandom::new().fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A string parameter, `None` when absent or null; another type is a 400.
pub(crate) fn opt_str<'a>(body: &'a Body, name: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ApiError::bad(format!(
            "error converting input for field {name:?}: expected a string"
        ))),
    }
}

/// An integer parameter (a JSON number or a decimal string, as OpenBao accepts).
pub(crate) fn opt_u64(body: &Body, name: &str) -> Result<Option<u64>, ApiError> {
    let invalid = || ApiError::bad(format!("error converting input for field {name:?}"));
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number.as_u64().map(Some).ok_or_else(invalid),
        Some(Value::String(text)) => text.parse().map(Some).map_err(|_| invalid()),
        Some(_) => Err(invalid()),
    }
}

/// A boolean parameter (a JSON bool or `"true"`/`"false"`).
pub(crate) fn opt_bool(body: &Body, name: &str) -> Result<Option<bool>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(Value::String(text)) if text == "true" => Ok(Some(true)),
        Some(Value::String(text)) if text == "false" => Ok(Some(false)),
        Some(_) => Err(ApiError::bad(format!(
            "error converting input for field {name:?}"
        ))),
    }
}

/// Random bytes, or a 500 when the system generator fails.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("the system random generator failed"))?;
    Ok(bytes)
}

/// Base64 (standard, padded), as OpenBao writes binary values.
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Unix seconds now.
pub(crate) fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Unix milliseconds now (token lifetimes: a second's rounding would matter for short ones).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// RFC 3339 UTC for Unix seconds (OpenBao's `creation_time`/`created_time`).
pub(crate) fn rfc3339(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// Checks a key, mount or path name the way the client does (letters, digits, `_-./`, no
/// empty or dot segment), so a request that bypasses the client cannot address another path.
pub(crate) fn valid_name(name: &str) -> bool {
    const NAME_BYTES_MAX: usize = 256;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
    !name.is_empty()
        && name.len() <= NAME_BYTES_MAX
        && name.chars().all(allowed)
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_453_467), "2026-12-05T06:51:07Z");
    }

    #[test]
    fn names_that_could_escape_their_path_are_refused() {
        for bad in ["", "/a", "a/", "a//b", "a/../b", "..", "a b", "a?x", "a%2f"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_name("wallet/eth/seed"));
    }
}
