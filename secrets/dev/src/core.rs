//! One request, start to end: seal state, token, the path's capability against the token's
//! policies, the engine, and the state saved before the answer when it changed.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use axum::http::Method;
use ring::digest;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::api::{ApiError, Body, Reply, envelope, now_ms, valid_name};
use crate::file::StoreDir;
use crate::metrics::Metrics;
use crate::policy::{Capabilities, capabilities};
use crate::state::{Mount, State};
use crate::{DevSecretsError, kv, sys, totp, transit};

/// A request as the HTTP layer hands it over.
pub(crate) struct Request {
    pub(crate) method: Method,
    /// The path after `/v1/`.
    pub(crate) path: String,
    pub(crate) token: Option<String>,
    pub(crate) body: Body,
}

/// The answer: a status and an optional JSON body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Option<Value>,
}

impl From<ApiError> for Answer {
    fn from(error: ApiError) -> Answer {
        Answer {
            status: error.status,
            body: Some(error.body()),
        }
    }
}

/// A scoped token: its policies and expiry. Tokens live in memory only (see the crate doc).
pub(crate) struct Token {
    pub(crate) policies: Vec<String>,
    pub(crate) expires_ms: u64,
}

/// Who is asking.
pub(crate) enum Caller {
    Root,
    Scoped(Vec<String>),
}

/// What the lock guards.
pub(crate) struct Inner {
    pub(crate) state: State,
    /// SHA-256 of the token → the token. Looked up by digest, so the map's comparisons see a
    /// hash of the secret, never the secret.
    pub(crate) tokens: HashMap<[u8; 32], Token>,
    pub(crate) sealed: bool,
}

/// The store: its directory, its root token and its state.
pub(crate) struct Core {
    dir: StoreDir,
    pub(crate) metrics: Metrics,
    root_token: Zeroizing<String>,
    inner: Mutex<Inner>,
}

/// Where a request goes.
enum Route {
    Sys(sys::Op),
    Engine { mount: String, rest: String },
}

pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

impl Core {
    /// Opens the directory and reads its state.
    pub(crate) fn open(
        dir: &std::path::Path,
        root_token: Zeroizing<String>,
        metrics: Metrics,
    ) -> Result<Core, DevSecretsError> {
        let store = StoreDir::open(dir)?;
        let state = match store.read()? {
            None => State::default(),
            Some(json) => {
                serde_json::from_slice(&json).map_err(|error| DevSecretsError::StateMalformed {
                    path: dir.to_owned(),
                    what: error.to_string(),
                })?
            }
        };
        Ok(Core {
            dir: store,
            metrics,
            root_token,
            inner: Mutex::new(Inner {
                state,
                tokens: HashMap::new(),
                sealed: false,
            }),
        })
    }

    /// Answers one request.
    pub(crate) fn handle(&self, request: Request) -> Answer {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if request.path == "sys/health" {
            return answer(Ok(sys::health(inner.sealed)));
        }
        if inner.sealed {
            return ApiError {
                status: 503,
                messages: vec!["Vault is sealed".to_owned()],
            }
            .into();
        }
        answer(self.authorised(&mut inner, request))
    }

    fn authorised(&self, inner: &mut Inner, request: Request) -> Result<Reply, ApiError> {
        let caller = self.caller(inner, request.token.as_deref())?;
        let route = route(&inner.state, &request.path);
        if let Caller::Scoped(policies) = &caller {
            let needed = needed(&inner.state, route.as_ref(), &request.method)?;
            let rules = policies
                .iter()
                .filter_map(|name| inner.state.policies.get(name))
                .flat_map(|policy| policy.rules.iter());
            if !capabilities(rules, &request.path).allows(needed) {
                return Err(ApiError::denied());
            }
        }
        let route = route.ok_or_else(|| ApiError::no_route(&request.path))?;
        match route {
            Route::Sys(op) => sys::run(
                inner,
                &caller,
                op,
                &request.method,
                &request.body,
                |state| self.save(state),
            ),
            Route::Engine { mount, rest } => {
                self.engine(inner, &mount, &rest, &request.method, &request.body)
            }
        }
    }

    fn caller(&self, inner: &mut Inner, token: Option<&str>) -> Result<Caller, ApiError> {
        let token = token
            .filter(|token| !token.is_empty())
            .ok_or_else(ApiError::denied)?;
        if bool::from(token.as_bytes().ct_eq(self.root_token.as_bytes())) {
            return Ok(Caller::Root);
        }
        let now = now_ms();
        match inner.tokens.get(&token_digest(token)) {
            Some(entry) if entry.expires_ms > now => Ok(Caller::Scoped(entry.policies.clone())),
            _ => Err(ApiError::denied()),
        }
    }

    /// Runs an engine request; one that may change the state runs on a copy that replaces
    /// the state only once it is saved (a failed save changes nothing).
    fn engine(
        &self,
        inner: &mut Inner,
        mount: &str,
        rest: &str,
        method: &Method,
        body: &Body,
    ) -> Result<Reply, ApiError> {
        // A create-if-absent on a key that exists (transit `keys/<name>`, `encrypt/<name>`'s
        // upsert) changes nothing, so it is not saved: encryption stays off the fsync path.
        let upsert = matches!(inner.state.mounts.get(mount), Some(Mount::Transit { .. }))
            && (rest.starts_with("keys/") || rest.starts_with("encrypt/"))
            && rest.matches('/').count() == 1;
        let writes = *method != Method::GET
            && !read_only_action(rest)
            && !(upsert && exists(&inner.state, mount, rest));
        if !writes {
            return run_engine(&mut inner.state, mount, rest, method, body);
        }
        let mut next = inner.state.clone();
        let reply = run_engine(&mut next, mount, rest, method, body)?;
        self.save(&next)?;
        inner.state = next;
        Ok(reply)
    }

    /// Writes `state` to the sealed file.
    fn save(&self, state: &State) -> Result<(), ApiError> {
        let json = serde_json::to_vec(state)
            .map(Zeroizing::new)
            .map_err(|error| {
                ApiError::internal(format!("the state could not be encoded: {error}"))
            })?;
        let timer = self.metrics.save_seconds.start_timer();
        let saved = self.dir.write(&json);
        timer.observe_duration();
        let outcome = if saved.is_ok() { "ok" } else { "failed" };
        self.metrics.saves_total.with_label_values(&[outcome]).inc();
        saved.map_err(|error| {
            tracing::error!(%error, "dev secret store: the state could not be saved");
            ApiError::internal(format!("the dev secret store could not save: {error}"))
        })
    }
}

/// Transit and TOTP actions that read the state only (they are POSTs in OpenBao's API).
fn read_only_action(rest: &str) -> bool {
    ["sign/", "decrypt/", "datakey/"]
        .iter()
        .any(|prefix| rest.starts_with(prefix))
}

fn answer(result: Result<Reply, ApiError>) -> Answer {
    match result {
        Ok(Reply::Data(data)) => Answer {
            status: 200,
            body: Some(envelope(data, Value::Null)),
        },
        Ok(Reply::Auth(auth)) => Answer {
            status: 200,
            body: Some(envelope(Value::Null, auth)),
        },
        Ok(Reply::Empty) => Answer {
            status: 204,
            body: None,
        },
        Ok(Reply::Raw(status, body)) => Answer {
            status,
            body: Some(body),
        },
        Err(error) => error.into(),
    }
}

/// The route of `path`: a system path, or the longest mount it falls under.
fn route(state: &State, path: &str) -> Option<Route> {
    if !valid_name(path) {
        return None;
    }
    if let Some(op) = sys::route(path) {
        return Some(Route::Sys(op));
    }
    let mount = state
        .mounts
        .keys()
        .filter(|mount| {
            path.strip_prefix(mount.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|mount| mount.len())?;
    Some(Route::Engine {
        mount: mount.clone(),
        rest: path[mount.len() + 1..].to_owned(),
    })
}

/// The capability a request needs: `create` for a write to something that does not exist
/// yet (OpenBao's existence check, on the paths that have one), `update` for other writes.
fn needed(state: &State, route: Option<&Route>, method: &Method) -> Result<Capabilities, ApiError> {
    Ok(match *method {
        Method::GET | Method::HEAD => Capabilities::READ,
        Method::DELETE => Capabilities::DELETE,
        Method::POST | Method::PUT => match route {
            Some(Route::Sys(sys::Op::Seal)) => Capabilities::UPDATE.union(Capabilities::SUDO),
            Some(Route::Engine { mount, rest }) if !exists(state, mount, rest) => {
                Capabilities::CREATE
            }
            _ => Capabilities::UPDATE,
        },
        _ => return Err(unsupported_operation()),
    })
}

fn unsupported_operation() -> ApiError {
    ApiError {
        status: 405,
        messages: vec!["unsupported operation".to_owned()],
    }
}

/// OpenBao's existence check: true when the write would update rather than create (paths
/// without an existence check always "exist").
fn exists(state: &State, mount: &str, rest: &str) -> bool {
    let Some(engine) = state.mounts.get(mount) else {
        return true;
    };
    match engine {
        Mount::Transit { keys } => match rest.split_once('/') {
            Some(("keys" | "encrypt", name)) if !name.contains('/') => keys.contains_key(name),
            _ => true,
        },
        Mount::Totp { keys } => match rest.split_once('/') {
            Some(("keys", name)) => keys.contains_key(name),
            _ => true,
        },
        Mount::Kv { entries } => match rest.split_once('/') {
            Some(("data", path)) => entries.contains_key(path),
            _ => true,
        },
    }
}

fn run_engine(
    state: &mut State,
    mount: &str,
    rest: &str,
    method: &Method,
    body: &Body,
) -> Result<Reply, ApiError> {
    let path = || format!("{mount}/{rest}");
    let Some(engine) = state.mounts.get_mut(mount) else {
        return Err(ApiError::no_route(&path()));
    };
    let unsupported = || ApiError {
        status: 404,
        messages: vec!["unsupported path".to_owned()],
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let (get, delete) = (*method == Method::GET, *method == Method::DELETE);
    let write = matches!(*method, Method::POST | Method::PUT);
    match (engine, parts.as_slice()) {
        (Mount::Transit { keys }, ["keys", name]) if write => transit::create(keys, name, body),
        (Mount::Transit { keys }, ["keys", name]) if get => transit::read(keys, name),
        (Mount::Transit { .. }, ["keys", name]) if delete => Err(ApiError::bad(format!(
            "error deleting policy {name}: deletion is not allowed for this key"
        ))),
        (Mount::Transit { keys }, ["keys", name, "rotate"]) if write => transit::rotate(keys, name),
        (Mount::Transit { keys }, ["sign", name]) if write => transit::sign(keys, name, body),
        (Mount::Transit { keys }, ["encrypt", name]) if write => transit::encrypt(keys, name, body),
        (Mount::Transit { keys }, ["decrypt", name]) if write => transit::decrypt(keys, name, body),
        (Mount::Transit { keys }, ["datakey", kind @ ("plaintext" | "wrapped"), name]) if write => {
            transit::data_key(keys, name, *kind == "plaintext", body)
        }
        (Mount::Totp { keys }, ["keys", name]) if write => totp::generate(keys, name, body),
        (Mount::Totp { keys }, ["keys", name]) if get => totp::read(keys, name),
        (Mount::Totp { keys }, ["keys", name]) if delete => {
            keys.remove(*name);
            Ok(Reply::Empty)
        }
        (Mount::Totp { keys }, ["code", name]) if write => totp::check(keys, name, body),
        (Mount::Totp { keys }, ["code", name]) if get => totp::current(keys, name),
        (Mount::Kv { entries }, ["data", _, ..]) => {
            let key = rest.strip_prefix("data/").unwrap_or(rest);
            match *method {
                Method::GET => kv::read(entries, key),
                Method::POST | Method::PUT => kv::write(entries, key, body),
                Method::DELETE => kv::delete(entries, key),
                _ => Err(unsupported_operation()),
            }
        }
        _ => Err(unsupported()),
    }
}

/// The JSON of a new token, as OpenBao's `auth` block.
pub(crate) fn auth_block(token: &str, policies: &[String], ttl_s: u64) -> Value {
    json!({
        "client_token": token,
        "accessor": "",
        "policies": policies,
        "token_policies": policies,
        "metadata": null,
        "lease_duration": ttl_s,
        "renewable": false,
        "entity_id": "",
        "token_type": "service",
        "orphan": false,
        "num_uses": 0,
    })
}
