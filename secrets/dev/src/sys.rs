//! The system paths: health, mounts, ACL policies, token creation and seal.

use std::collections::BTreeMap;

use axum::http::Method;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::api::{ApiError, Body, Reply, now_ms, now_s, opt_str, random, valid_name};
use crate::core::{Caller, Inner, Token, auth_block, token_digest};
use crate::policy::{self, POLICY_BYTES_MAX};
use crate::state::{MOUNTS_MAX, Mount, POLICIES_MAX, State};

/// The most live scoped tokens (each `up` start provisions a handful).
pub const TOKENS_MAX: usize = 1024;
/// The longest token lifetime (OpenBao's default `max_lease_ttl`, 768 h); longer asks are
/// capped, as OpenBao does.
pub const TOKEN_TTL_S_MAX: u64 = 768 * 3_600;
/// The most policies one token carries.
const TOKEN_POLICIES_MAX: usize = 16;
/// Random bytes of a token (24 base64url characters after `s.`).
pub(crate) const TOKEN_RANDOM_BYTES: usize = 18;
/// Mount paths OpenBao reserves.
const RESERVED_MOUNTS: [&str; 4] = ["sys", "auth", "cubbyhole", "identity"];

/// A system operation.
pub(crate) enum Op {
    Mount(String),
    Policy(String),
    Seal,
    TokenCreate,
}

/// The system operation at `path`, if it is one.
pub(crate) fn route(path: &str) -> Option<Op> {
    if let Some(mount) = path.strip_prefix("sys/mounts/") {
        return Some(Op::Mount(mount.to_owned()));
    }
    if let Some(name) = path.strip_prefix("sys/policies/acl/") {
        return Some(Op::Policy(name.to_owned()));
    }
    match path {
        "sys/seal" => Some(Op::Seal),
        "auth/token/create" => Some(Op::TokenCreate),
        _ => None,
    }
}

/// `sys/health`: 200 when serving, 503 once sealed (OpenBao's codes).
pub(crate) fn health(sealed: bool) -> Reply {
    let body = json!({
        "initialized": true,
        "sealed": sealed,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": now_s(),
        "version": concat!("peregrine-devsecrets ", env!("CARGO_PKG_VERSION")),
        "cluster_name": "peregrine-devsecrets",
    });
    Reply::Raw(if sealed { 503 } else { 200 }, body)
}

/// Runs a system operation; `save` keeps a changed state before it replaces the current one.
pub(crate) fn run(
    inner: &mut Inner,
    caller: &Caller,
    op: Op,
    method: &Method,
    body: &Body,
    save: impl FnOnce(&State) -> Result<(), ApiError>,
) -> Result<Reply, ApiError> {
    let write = matches!(*method, Method::POST | Method::PUT);
    match op {
        Op::Seal if write => {
            inner.sealed = true;
            // Nothing but health answers from now on; the secrets leave memory.
            inner.state = State::default();
            inner.tokens.clear();
            tracing::warn!("dev secret store: sealed until restarted");
            Ok(Reply::Empty)
        }
        Op::TokenCreate if write => create_token(inner, caller, body),
        Op::Mount(path) if write || *method == Method::DELETE => {
            let mut next = inner.state.clone();
            let reply = if write {
                mount(&mut next.mounts, &path, body)?
            } else {
                next.mounts.remove(&path);
                Reply::Empty
            };
            save(&next)?;
            inner.state = next;
            Ok(reply)
        }
        Op::Policy(name) if *method == Method::GET => {
            let policy = inner
                .state
                .policies
                .get(&name)
                .ok_or_else(ApiError::not_found)?;
            Ok(Reply::Data(json!({ "name": name, "policy": policy.text })))
        }
        Op::Policy(name) if write || *method == Method::DELETE => {
            let mut next = inner.state.clone();
            if write {
                put_policy(&mut next, &name, body)?;
            } else {
                next.policies.remove(&name);
            }
            save(&next)?;
            inner.state = next;
            Ok(Reply::Empty)
        }
        _ => Err(ApiError {
            status: 405,
            messages: vec!["unsupported operation".to_owned()],
        }),
    }
}

fn mount(mounts: &mut BTreeMap<String, Mount>, path: &str, body: &Body) -> Result<Reply, ApiError> {
    let first = path.split('/').next().unwrap_or(path);
    if RESERVED_MOUNTS.contains(&first) {
        return Err(ApiError::bad(format!(
            "cannot mount at the reserved path {path}/"
        )));
    }
    let clash = mounts.keys().find(|existing| {
        let (short, long) = if existing.len() <= path.len() {
            (existing.as_str(), path)
        } else {
            (path, existing.as_str())
        };
        long == short
            || long
                .strip_prefix(short)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    if let Some(existing) = clash {
        return Err(ApiError::bad(format!(
            "path is already in use at {existing}/"
        )));
    }
    if mounts.len() >= MOUNTS_MAX {
        return Err(ApiError::bad(format!(
            "the dev secret store mounts at most {MOUNTS_MAX} engines"
        )));
    }
    let engine = match opt_str(body, "type")?.unwrap_or("") {
        "transit" => Mount::Transit {
            keys: BTreeMap::new(),
        },
        "totp" => Mount::Totp {
            keys: BTreeMap::new(),
        },
        "kv" | "kv-v2" if kv_version_2(body) => Mount::Kv {
            entries: BTreeMap::new(),
        },
        "kv" => {
            return Err(ApiError::bad(
                "the dev secret store mounts kv version 2 only (options.version = \"2\")",
            ));
        }
        other => {
            return Err(ApiError::bad(format!(
                "plugin not found in the catalog: {other}"
            )));
        }
    };
    mounts.insert(path.to_owned(), engine);
    Ok(Reply::Empty)
}

fn kv_version_2(body: &Body) -> bool {
    if body.get("type").and_then(Value::as_str) == Some("kv-v2") {
        return true;
    }
    match body
        .get("options")
        .and_then(|options| options.get("version"))
    {
        Some(Value::String(version)) => version == "2",
        Some(Value::Number(version)) => version.as_u64() == Some(2),
        _ => false,
    }
}

fn put_policy(state: &mut State, name: &str, body: &Body) -> Result<(), ApiError> {
    if name == "root" {
        return Err(ApiError::bad("cannot update \"root\" policy"));
    }
    let text = opt_str(body, "policy")?
        .filter(|text| !text.is_empty())
        .ok_or_else(|| ApiError::bad("'policy' parameter not supplied or empty"))?;
    if text.len() > POLICY_BYTES_MAX {
        return Err(ApiError::bad(policy::PolicyError::TooLarge.to_string()));
    }
    let parsed = policy::parse(text).map_err(|error| ApiError::bad(error.to_string()))?;
    if !state.policies.contains_key(name) && state.policies.len() >= POLICIES_MAX {
        return Err(ApiError::bad(format!(
            "the dev secret store keeps at most {POLICIES_MAX} policies"
        )));
    }
    state.policies.insert(name.to_owned(), parsed);
    Ok(())
}

fn create_token(inner: &mut Inner, caller: &Caller, body: &Body) -> Result<Reply, ApiError> {
    let policies = requested_policies(body)?;
    if let Caller::Scoped(parent) = caller
        && !policies.iter().all(|policy| parent.contains(policy))
    {
        return Err(ApiError::bad("child policies must be subset of parent"));
    }
    let ttl_s = match opt_str(body, "ttl")? {
        None | Some("") => TOKEN_TTL_S_MAX,
        Some(text) => parse_duration_s(text)
            .ok_or_else(|| ApiError::bad(format!("time: invalid duration \"{text}\"")))?,
    };
    let ttl_s = if ttl_s == 0 {
        TOKEN_TTL_S_MAX
    } else {
        ttl_s.min(TOKEN_TTL_S_MAX)
    };
    let now = now_ms();
    inner.tokens.retain(|_, token| token.expires_ms > now);
    if inner.tokens.len() >= TOKENS_MAX {
        return Err(ApiError::bad(format!(
            "the dev secret store keeps at most {TOKENS_MAX} live tokens"
        )));
    }
    let token = format!(
        "s.{}",
        URL_SAFE_NO_PAD.encode(random::<TOKEN_RANDOM_BYTES>()?)
    );
    let auth = auth_block(&token, &policies, ttl_s);
    inner.tokens.insert(
        token_digest(&token),
        Token {
            policies,
            expires_ms: now + ttl_s * 1_000,
        },
    );
    Ok(Reply::Auth(auth))
}

fn requested_policies(body: &Body) -> Result<Vec<String>, ApiError> {
    let invalid = || ApiError::bad("policies must be a list of policy names");
    let list = match body.get("policies") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid()),
    };
    if list.len() > TOKEN_POLICIES_MAX {
        return Err(ApiError::bad(format!(
            "a token carries at most {TOKEN_POLICIES_MAX} policies"
        )));
    }
    list.iter()
        .map(|policy| match policy.as_str() {
            Some(name) if valid_name(name) => Ok(name.to_owned()),
            _ => Err(invalid()),
        })
        .collect()
}

/// Go's duration syntax as OpenBao reads a TTL (`"768h"`, `"1h30m"`, `"90s"`) or plain
/// seconds (`"300"`), in whole seconds; `None` when malformed or absurdly long.
pub(crate) fn parse_duration_s(text: &str) -> Option<u64> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(seconds);
    }
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number: u64 = rest.get(..digits)?.parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms = match &rest[..unit] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        rest = &rest[unit..];
        total_ms = total_ms.checked_add(number.checked_mul(unit_ms)?)?;
    }
    Some(total_ms / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openbao() {
        assert_eq!(parse_duration_s("768h"), Some(768 * 3_600));
        assert_eq!(parse_duration_s("1h30m"), Some(5_400));
        assert_eq!(parse_duration_s("300"), Some(300));
        assert_eq!(parse_duration_s("5m"), Some(300));
        for bad in ["", "bogus", "5x", "h", "99999999999999999999h"] {
            assert_eq!(parse_duration_s(bad), None, "{bad}");
        }
    }
}
