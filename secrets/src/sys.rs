//! System calls: health, enabling the engines, policies and scoped tokens — what set-up (the
//! test command, `peregrine up`'s first start, an operator's bootstrap) needs.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{check_name, classify, malformed};
use crate::{BaoError, BaoToken, OpenBao};

/// What `sys/health` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// Initialised.
    pub initialized: bool,
    /// Sealed: nothing but health answers.
    pub sealed: bool,
    /// A standby (performance or DR): it forwards or refuses writes.
    pub standby: bool,
}

/// A secrets engine type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Engine {
    /// Transit.
    Transit,
    /// TOTP.
    Totp,
    /// Key-value, version 2.
    KvV2,
}

impl OpenBao {
    /// `sys/health`, which answers with a status code per state (200 active, 429 standby,
    /// 501 not initialised, 503 sealed) and needs no token.
    pub async fn health(&self) -> Result<Health, BaoError> {
        const PATH: &str = "sys/health";
        let (status, body) = self.send(Method::GET, PATH, None, false).await?;
        if !matches!(status.as_u16(), 200 | 429 | 472 | 473 | 501 | 503) {
            return Err(classify(PATH, status, &body));
        }
        let value: Value =
            serde_json::from_slice(&body).map_err(|_| malformed(PATH, "not JSON"))?;
        let flag = |name: &'static str| {
            value
                .get(name)
                .and_then(Value::as_bool)
                .ok_or_else(|| malformed(PATH, name))
        };
        Ok(Health {
            initialized: flag("initialized")?,
            sealed: flag("sealed")?,
            standby: flag("standby")?,
        })
    }

    /// Enables `engine` at `mount`, or does nothing when something is mounted there already.
    pub async fn ensure_engine(&self, mount: &str, engine: Engine) -> Result<(), BaoError> {
        let path = format!("sys/mounts/{}", check_name(mount)?);
        let body = match engine {
            Engine::Transit => json!({ "type": "transit" }),
            Engine::Totp => json!({ "type": "totp" }),
            Engine::KvV2 => json!({ "type": "kv", "options": { "version": "2" } }),
        };
        match self.call(Method::POST, &path, Some(&body)).await {
            Ok(_) => Ok(()),
            Err(BaoError::Rejected { messages, .. })
                if messages
                    .iter()
                    .any(|message| message.contains("already in use")) =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Writes the ACL policy `name` (HCL).
    pub async fn put_policy(&self, name: &str, hcl: &str) -> Result<(), BaoError> {
        let path = format!("sys/policies/acl/{}", check_name(name)?);
        self.call(Method::PUT, &path, Some(&json!({ "policy": hcl })))
            .await?;
        Ok(())
    }

    /// A new token with exactly `policies` (not the default policy) for `ttl` (OpenBao's
    /// duration syntax, e.g. `"1h"`), as a child of this client's token.
    pub async fn create_token(&self, policies: &[&str], ttl: &str) -> Result<BaoToken, BaoError> {
        const PATH: &str = "auth/token/create";
        for policy in policies {
            check_name(policy)?;
        }
        let body = json!({ "policies": policies, "ttl": ttl, "no_default_policy": true });
        let answer = self.call(Method::POST, PATH, Some(&body)).await?;
        answer
            .as_ref()
            .and_then(|value| value.pointer("/auth/client_token"))
            .and_then(Value::as_str)
            .map(BaoToken::new)
            .ok_or_else(|| malformed(PATH, "auth.client_token"))
    }
}

impl OpenBao {
    /// Seals the server (a root or `sys/seal`-capable token): nothing but health answers until
    /// it is unsealed. Operators' emergency stop; the tests' way to show a sealed store.
    pub async fn seal(&self) -> Result<(), BaoError> {
        self.call(Method::PUT, "sys/seal", None).await?;
        Ok(())
    }
}
