//! The KV v2 engine: small secret documents (a wallet's HD seed), versioned by OpenBao.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::{check_name, malformed};
use crate::{BaoError, OpenBao};

/// A KV document: string keys to JSON values.
pub type Document = Map<String, Value>;

impl OpenBao {
    /// Writes `document` as the new version of `path` in the KV v2 engine at `mount`.
    pub async fn kv_put(
        &self,
        mount: &str,
        path: &str,
        document: &Document,
    ) -> Result<(), BaoError> {
        let api = format!("{}/data/{}", check_name(mount)?, check_name(path)?);
        let body = json!({ "data": document });
        self.call(Method::POST, &api, Some(&body)).await?;
        Ok(())
    }

    /// Writes `document` only if `path` holds nothing yet (check-and-set 0): two processes
    /// generating a first secret at once keep exactly one. False when a version already exists.
    pub async fn kv_create(
        &self,
        mount: &str,
        path: &str,
        document: &Document,
    ) -> Result<bool, BaoError> {
        let api = format!("{}/data/{}", check_name(mount)?, check_name(path)?);
        let body = json!({ "data": document, "options": { "cas": 0 } });
        match self.call(Method::POST, &api, Some(&body)).await {
            Ok(_) => Ok(true),
            Err(BaoError::Rejected { messages, .. })
                if messages
                    .iter()
                    .any(|message| message.contains("check-and-set")) =>
            {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// The latest version of `path`, or `None` when there is none (or it was deleted).
    pub async fn kv_get(&self, mount: &str, path: &str) -> Result<Option<Document>, BaoError> {
        let api = format!("{}/data/{}", check_name(mount)?, check_name(path)?);
        let answer = match self.call(Method::GET, &api, None).await {
            Ok(answer) => answer,
            Err(BaoError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        match answer
            .as_ref()
            .and_then(|value| value.pointer("/data/data"))
        {
            Some(Value::Object(document)) => Ok(Some(document.clone())),
            Some(Value::Null) => Ok(None),
            _ => Err(malformed(&api, "data.data")),
        }
    }
}
