//! The provider webhook's HMAC secret, read from OpenBao KV and followed there.
//!
//! Where: identity's KV v2 mount ([`crate::vault::VaultConfig::kv_mount`]) at
//! [`crate::vault::VaultConfig::webhook_secret_path`], field [`SECRET_FIELD`]; the operator who
//! signs the provider's contract writes it (identity's token may only read it). Not in
//! `peregrine.toml`: a config file is copied, diffed and backed up in clear.
//!
//! Rotation without a restart: [`Kyc::follow_webhook_secret`] reads the secret every
//! `webhook_secret_refresh_ms`; a new value becomes the current secret, and the one it
//! replaces is still accepted for `webhook_secret_grace_ms` after the switch was seen, so the
//! provider may move to the new secret at its own pace without a refused call. The previous
//! secret is held in memory only: a restart inside the grace window forgets it (the provider
//! retries a refused call with the new secret).

use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use peregrine_secrets::SecretBytes;
use serde_json::Value;
use tokio::sync::watch;

use super::{Kyc, KycError};

/// The field of the KV document that holds the secret.
pub const SECRET_FIELD: &str = "secret";
/// The shortest secret accepted, bytes (HMAC-SHA256's block is 64; 32 is its output).
pub const SECRET_BYTES_MIN: usize = 32;
/// The longest secret accepted, bytes (a bound on what a KV document may make us hold).
pub const SECRET_BYTES_MAX: usize = 1024;

/// What a read of the KV secret found (the `outcome` label of
/// `auth_kyc_webhook_secret_reads_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretRead {
    /// The same secret as before.
    Unchanged,
    /// A new secret: now current, the previous one accepted for the grace window.
    Rotated,
}

impl SecretRead {
    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretRead::Unchanged => "unchanged",
            SecretRead::Rotated => "rotated",
        }
    }
}

/// The secrets a signature may be made with now.
#[derive(Debug, Default)]
pub(crate) struct WebhookSecrets {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    current: Option<SecretBytes>,
    /// The secret replaced last, and until when (Unix ms) it is still accepted.
    previous: Option<(SecretBytes, i64)>,
}

impl WebhookSecrets {
    /// Secrets starting with `secret` (a fixed one from configuration, for embedding and
    /// tests), or none.
    pub(crate) fn starting_with(secret: Option<&str>) -> WebhookSecrets {
        let current = secret.map(|secret| SecretBytes::new(secret.as_bytes().to_vec()));
        WebhookSecrets {
            state: RwLock::new(State {
                current,
                previous: None,
            }),
        }
    }

    /// Whether any secret is held.
    pub(crate) fn loaded(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .current
            .is_some()
    }

    /// Whether `verify` accepts the current secret, or the previous one before its grace
    /// window ends at `now_ms`.
    pub(crate) fn accepts(&self, now_ms: i64, verify: impl Fn(&[u8]) -> bool) -> bool {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let current = state.current.as_ref().is_some_and(|s| verify(s.expose()));
        let previous = state
            .previous
            .as_ref()
            .is_some_and(|(secret, until_ms)| now_ms < *until_ms && verify(secret.expose()));
        current || previous
    }

    /// Makes `secret` current (if it is new), keeping the one it replaces until
    /// `now_ms + grace_ms`.
    pub(crate) fn update(&self, secret: SecretBytes, now_ms: i64, grace_ms: i64) -> SecretRead {
        assert!(grace_ms >= 0);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.current.as_ref() == Some(&secret) {
            return SecretRead::Unchanged;
        }
        let replaced = state.current.replace(secret);
        // A first load (nothing replaced) keeps no previous secret.
        state.previous = replaced.map(|old| (old, now_ms.saturating_add(grace_ms)));
        SecretRead::Rotated
    }
}

/// The secret in a KV document, checked for its bounds.
fn secret_of(document: &serde_json::Map<String, Value>) -> Result<SecretBytes, KycError> {
    let secret = document
        .get(SECRET_FIELD)
        .and_then(Value::as_str)
        .ok_or(KycError::WebhookSecretInvalid)?;
    if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&secret.len()) {
        return Err(KycError::WebhookSecretInvalid);
    }
    Ok(SecretBytes::new(secret.as_bytes().to_vec()))
}

impl Kyc {
    /// Reads the webhook secret from KV once and takes it if it changed. `WebhookOff` when
    /// no KV location is configured; a missing or malformed document is
    /// `WebhookSecretInvalid` and keeps the secrets held.
    pub async fn refresh_webhook_secret(&self) -> Result<SecretRead, KycError> {
        let config = self.config();
        let location = config
            .webhook_secret_kv
            .as_ref()
            .ok_or(KycError::WebhookOff)?;
        let read = self.bao.kv_get(&location.mount, &location.path).await;
        let result = match read {
            Ok(Some(document)) => secret_of(&document).map(|secret| {
                let now_ms = self.identity.now_ms();
                let grace_ms = config.webhook_secret_grace_ms;
                self.webhook_secrets.update(secret, now_ms, grace_ms)
            }),
            Ok(None) => Err(KycError::WebhookSecretInvalid),
            Err(error) => Err(KycError::from(error)),
        };
        let outcome = result
            .as_ref()
            .map_or_else(|e| e.code(), |read| read.as_str());
        self.metrics
            .webhook_secret_reads_total
            .with_label_values(&[outcome])
            .inc();
        result
    }

    /// Follows the KV secret every `webhook_secret_refresh_ms` until `stop` turns true (a
    /// failed read keeps the secrets held and is logged). Returns at once when no KV location
    /// is configured.
    pub async fn follow_webhook_secret(&self, mut stop: watch::Receiver<bool>) {
        let config = self.config();
        if config.webhook_secret_kv.is_none() {
            return;
        }
        let interval = Duration::from_millis(config.webhook_secret_refresh_ms);
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|&stop| stop) => return,
            }
            match self.refresh_webhook_secret().await {
                Ok(SecretRead::Rotated) => tracing::info!("KYC webhook secret rotated"),
                Ok(SecretRead::Unchanged) => {}
                Err(error) => tracing::warn!(%error, "KYC webhook secret not read"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretBytes {
        SecretBytes::new(text.as_bytes().to_vec())
    }

    #[test]
    fn the_previous_secret_is_accepted_only_within_the_grace_window() {
        let secrets = WebhookSecrets::starting_with(None);
        assert!(!secrets.loaded());
        assert_eq!(
            secrets.update(secret("old"), 1_000, 500),
            SecretRead::Rotated
        );
        assert!(secrets.accepts(1_000, |s| s == b"old"));
        assert_eq!(
            secrets.update(secret("old"), 1_100, 500),
            SecretRead::Unchanged
        );
        assert_eq!(
            secrets.update(secret("new"), 2_000, 500),
            SecretRead::Rotated
        );
        assert!(secrets.accepts(2_499, |s| s == b"old"));
        assert!(!secrets.accepts(2_500, |s| s == b"old"));
        assert!(secrets.accepts(9_999, |s| s == b"new"));
        assert!(!secrets.accepts(2_000, |s| s == b"other"));
    }
}
