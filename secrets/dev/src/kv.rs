//! The KV v2 engine's `data/` paths: write with an optional check-and-set, read the latest
//! version, delete it. The store keeps the latest version only (its number still counts up,
//! so `cas` means what it means in OpenBao).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::api::{ApiError, Body, Reply, now_s, opt_u64, rfc3339};
use crate::state::{KV_ENTRIES_MAX, KvEntry};

type Entries = BTreeMap<String, KvEntry>;

fn metadata(entry: &KvEntry) -> Value {
    json!({
        "created_time": rfc3339(entry.created_s),
        "custom_metadata": null,
        "deletion_time": if entry.data.is_some() { String::new() } else { rfc3339(entry.created_s) },
        "destroyed": false,
        "version": entry.version,
    })
}

/// `POST|PUT data/<path>`: a new version holding `data`; with `options.cas`, only if the
/// current version is that number (0: only if there is none).
pub(crate) fn write(entries: &mut Entries, path: &str, body: &Body) -> Result<Reply, ApiError> {
    let data = match body.get("data") {
        None | Some(Value::Null) => return Err(ApiError::bad("no data provided")),
        Some(Value::Object(data)) => data.clone(),
        Some(_) => {
            return Err(ApiError::bad(
                "error converting input for field \"data\": expected an object",
            ));
        }
    };
    let current = entries.get(path).map_or(0, |entry| entry.version);
    let cas = match body.get("options") {
        Some(Value::Object(options)) => opt_u64(options, "cas")?,
        _ => None,
    };
    if cas.is_some_and(|cas| cas != current) {
        return Err(ApiError::bad(
            "check-and-set parameter did not match the current version",
        ));
    }
    if current == 0 && entries.len() >= KV_ENTRIES_MAX {
        return Err(ApiError::bad(format!(
            "the dev secret store keeps at most {KV_ENTRIES_MAX} KV paths per mount"
        )));
    }
    let entry = KvEntry {
        version: current + 1,
        created_s: now_s(),
        data: Some(data),
    };
    let answer = metadata(&entry);
    entries.insert(path.to_owned(), entry);
    Ok(Reply::Data(answer))
}

/// `GET data/<path>`: the latest version, 404 when there is none or it was deleted.
pub(crate) fn read(entries: &Entries, path: &str) -> Result<Reply, ApiError> {
    match entries.get(path) {
        Some(
            entry @ KvEntry {
                data: Some(data), ..
            },
        ) => Ok(Reply::Data(json!({
            "data": data,
            "metadata": metadata(entry),
        }))),
        _ => Err(ApiError::not_found()),
    }
}

/// `DELETE data/<path>`: deletes the latest version (a later write makes the next one).
pub(crate) fn delete(entries: &mut Entries, path: &str) -> Result<Reply, ApiError> {
    if let Some(entry) = entries.get_mut(path) {
        entry.data = None;
    }
    Ok(Reply::Empty)
}
