//! The few etcd v3 calls leadership needs, through etcd's JSON gateway (`POST /v3/...` with
//! base64 keys and values) over `reqwest`: zero new crates and no `protoc` (see
//! `perf/RESULTS.md`, "Hot standby, first stage", for what `etcd-client` would cost).
//!
//! Every call tries the endpoints in order and answers from the first that responds; an answer
//! is read only up to [`RESPONSE_BYTES_MAX`] (a leader key and a few candidates are bytes).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

/// Largest answer read from etcd.
pub const RESPONSE_BYTES_MAX: usize = 64 << 10;
/// Endpoints accepted in one list.
pub const ENDPOINTS_MAX: usize = 16;
/// Keys a prefix read returns at most (the candidates of one pair).
pub const RANGE_KEYS_MAX: u64 = 64;

/// An etcd lease.
pub type LeaseId = i64;

/// Why an etcd call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// The endpoint list is empty, too long, or holds a non-`http://` address.
    #[error("etcd endpoints {0:?}: a comma-separated list of http://host:port")]
    Endpoints(String),
    /// No endpoint answered.
    #[error("etcd unreachable ({path}): {reason}")]
    Unreachable {
        /// The call.
        path: &'static str,
        /// The last endpoint's failure.
        reason: String,
    },
    /// An answer that is not what etcd sends.
    #[error("etcd answer to {path} not understood: {reason}")]
    Malformed {
        /// The call.
        path: &'static str,
        /// Why.
        reason: String,
    },
}

/// A key's holder: its value and the revision that created it (the leader's term).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The value (a node's name).
    pub value: String,
    /// The key's create revision: a term, greater for every later leader.
    pub term: u64,
    /// The lease it is attached to.
    pub lease: LeaseId,
}

/// An etcd cluster's JSON gateway.
#[derive(Clone, Debug)]
pub struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<String>,
}

fn number(value: &Value, path: &'static str, field: &str) -> Result<i64, EtcdError> {
    // The gateway writes 64-bit integers as strings; absent means zero (proto3 defaults).
    match value.get(field) {
        None => Ok(0),
        Some(Value::String(text)) => text.parse().map_err(|_| EtcdError::Malformed {
            path,
            reason: format!("{field} = {text:?}"),
        }),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| EtcdError::Malformed {
            path,
            reason: format!("{field} = {n}"),
        }),
        Some(other) => Err(EtcdError::Malformed {
            path,
            reason: format!("{field} = {other}"),
        }),
    }
}

fn decoded(value: &Value, path: &'static str, field: &str) -> Result<String, EtcdError> {
    let text = value.get(field).and_then(Value::as_str).unwrap_or("");
    let bytes = B64.decode(text).map_err(|_| EtcdError::Malformed {
        path,
        reason: format!("{field} is not base64"),
    })?;
    String::from_utf8(bytes).map_err(|_| EtcdError::Malformed {
        path,
        reason: format!("{field} is not UTF-8"),
    })
}

fn held(kv: &Value, path: &'static str) -> Result<Held, EtcdError> {
    Ok(Held {
        value: decoded(kv, path, "value")?,
        term: u64::try_from(number(kv, path, "create_revision")?).unwrap_or(0),
        lease: number(kv, path, "lease")?,
    })
}

/// The key just past every key starting with `prefix` (etcd's `range_end` for a prefix).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    // Bounded by the prefix's length.
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Etcd {
    /// A client of `endpoints` (`http://host:port[,http://host:port...]`), each call bounded
    /// by `timeout`.
    pub fn new(endpoints: &str, timeout: Duration) -> Result<Etcd, EtcdError> {
        let list: Vec<String> = endpoints
            .split(',')
            .map(|e| e.trim().trim_end_matches('/').to_owned())
            .filter(|e| !e.is_empty())
            .collect();
        let valid = !list.is_empty()
            && list.len() <= ENDPOINTS_MAX
            && list.iter().all(|e| e.starts_with("http://"));
        if !valid {
            return Err(EtcdError::Endpoints(endpoints.to_owned()));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| EtcdError::Unreachable {
                path: "client",
                reason: e.to_string(),
            })?;
        Ok(Etcd {
            http,
            endpoints: list,
        })
    }

    async fn call(&self, path: &'static str, body: &Value) -> Result<Value, EtcdError> {
        let mut reason = String::new();
        for endpoint in &self.endpoints {
            match self.call_one(endpoint, path, body).await {
                Ok(value) => return Ok(value),
                Err(EtcdError::Unreachable { reason: why, .. }) => reason = why,
                Err(other) => return Err(other),
            }
        }
        Err(EtcdError::Unreachable { path, reason })
    }

    async fn call_one(
        &self,
        endpoint: &str,
        path: &'static str,
        body: &Value,
    ) -> Result<Value, EtcdError> {
        let unreachable = |e: reqwest::Error| EtcdError::Unreachable {
            path,
            reason: e.to_string(),
        };
        let mut response = self
            .http
            .post(format!("{endpoint}{path}"))
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let mut bytes = Vec::new();
        // Bounded by RESPONSE_BYTES_MAX.
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > RESPONSE_BYTES_MAX {
                return Err(EtcdError::Malformed {
                    path,
                    reason: format!("answer over {RESPONSE_BYTES_MAX} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        if status.is_server_error() {
            // A member without quorum answers 5xx: try the next one.
            return Err(EtcdError::Unreachable {
                path,
                reason: format!("status {status}"),
            });
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| EtcdError::Malformed {
            path,
            reason: format!("status {status}, not JSON"),
        })?;
        if !status.is_success() || value.get("error").is_some() {
            return Err(EtcdError::Malformed {
                path,
                reason: format!("status {status}: {value}"),
            });
        }
        Ok(value)
    }

    /// A lease of `ttl_s` seconds.
    pub async fn grant(&self, ttl_s: u64) -> Result<LeaseId, EtcdError> {
        const PATH: &str = "/v3/lease/grant";
        let answer = self.call(PATH, &json!({ "TTL": ttl_s })).await?;
        match number(&answer, PATH, "ID")? {
            0 => Err(EtcdError::Malformed {
                path: PATH,
                reason: "no lease id".to_owned(),
            }),
            id => Ok(id),
        }
    }

    /// Renews `lease`; its remaining TTL in seconds, or `None` when it is gone (expired or
    /// revoked).
    pub async fn keep_alive(&self, lease: LeaseId) -> Result<Option<u64>, EtcdError> {
        const PATH: &str = "/v3/lease/keepalive";
        let answer = self.call(PATH, &json!({ "ID": lease.to_string() })).await?;
        let result = answer.get("result").unwrap_or(&answer);
        let ttl = number(result, PATH, "TTL")?;
        Ok((ttl > 0).then(|| u64::try_from(ttl).unwrap_or(0)))
    }

    /// Revokes `lease` (its keys go at once).
    pub async fn revoke(&self, lease: LeaseId) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", &json!({ "ID": lease.to_string() }))
            .await
            .map(|_| ())
    }

    /// Creates `key` = `value` under `lease` if `key` does not exist: `Ok(term)` when this
    /// call created it (its create revision), `Err(holder)` when someone holds it.
    pub async fn create(
        &self,
        key: &str,
        value: &str,
        lease: LeaseId,
    ) -> Result<Result<u64, Option<Held>>, EtcdError> {
        const PATH: &str = "/v3/kv/txn";
        let key64 = B64.encode(key);
        let body = json!({
            "compare": [{ "key": key64, "target": "CREATE", "create_revision": "0" }],
            "success": [{ "requestPut": {
                "key": key64, "value": B64.encode(value), "lease": lease.to_string() } }],
            "failure": [{ "requestRange": { "key": key64 } }],
        });
        let answer = self.call(PATH, &body).await?;
        if answer.get("succeeded").and_then(Value::as_bool) == Some(true) {
            let header = answer.get("header").unwrap_or(&Value::Null);
            let revision = u64::try_from(number(header, PATH, "revision")?).unwrap_or(0);
            return Ok(Ok(revision));
        }
        let kv = answer
            .pointer("/responses/0/response_range/kvs/0")
            .map(|kv| held(kv, PATH))
            .transpose()?;
        Ok(Err(kv))
    }

    /// `key`'s holder, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Held>, EtcdError> {
        const PATH: &str = "/v3/kv/range";
        let answer = self.call(PATH, &json!({ "key": B64.encode(key) })).await?;
        answer
            .pointer("/kvs/0")
            .map(|kv| held(kv, PATH))
            .transpose()
    }

    /// Sets `key` = `value` under `lease` (0: none).
    pub async fn put(&self, key: &str, value: &str, lease: LeaseId) -> Result<(), EtcdError> {
        let mut body = json!({ "key": B64.encode(key), "value": B64.encode(value) });
        if lease != 0 {
            body["lease"] = json!(lease.to_string());
        }
        self.call("/v3/kv/put", &body).await.map(|_| ())
    }

    /// The keys starting with `prefix` and their values, at most [`RANGE_KEYS_MAX`].
    pub async fn prefixed(&self, prefix: &str) -> Result<Vec<(String, String)>, EtcdError> {
        const PATH: &str = "/v3/kv/range";
        let body = json!({
            "key": B64.encode(prefix),
            "range_end": B64.encode(prefix_end(prefix)),
            "limit": RANGE_KEYS_MAX.to_string(),
        });
        let answer = self.call(PATH, &body).await?;
        let kvs = answer.get("kvs").and_then(Value::as_array);
        kvs.into_iter()
            .flatten()
            .map(|kv| Ok((decoded(kv, PATH, "key")?, decoded(kv, PATH, "value")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_past_every_key_under_it() {
        assert_eq!(prefix_end("a/"), b"a0".to_vec());
        assert_eq!(prefix_end("\u{7f}"), vec![0x80]);
        assert!(Etcd::new("", Duration::from_secs(1)).is_err());
        assert!(Etcd::new("https://x:1", Duration::from_secs(1)).is_err());
        assert!(
            Etcd::new(
                "http://127.0.0.1:2379, http://[::1]:2379",
                Duration::from_secs(1)
            )
            .is_ok()
        );
    }
}
