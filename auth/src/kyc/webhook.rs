//! The KYC provider's webhook: the provider reports its checks as labels (and optionally a
//! verdict on the profile).
//!
//! A call carries `X-KYC-Timestamp` (Unix milliseconds) and `X-KYC-Signature`, the hex
//! HMAC-SHA256 under the shared secret of `<timestamp>.<body>` (the secret from OpenBao KV,
//! or the previous one within its grace window after a rotation: [`super::webhook_secret`]). The signature is checked
//! first, in constant time (`ring::hmac::verify`), before the body is parsed; then the
//! timestamp must lie within the replay window of now; then the event id must not have been
//! seen within the window (the store keeps them). Only then are labels set, in the private
//! scope, and the level recomputed.

use ring::hmac;
use serde::Deserialize;

use super::level::PRIVATE_SCOPE;
use super::profile::ProfileEvent;
use super::{Kyc, KycError, LABEL_CHANGES_MAX, check_label};
use crate::identity::Source;
use crate::store::LabelChange;

/// The header with the call's time, Unix ms.
pub const TIMESTAMP_HEADER: &str = "x-kyc-timestamp";
/// The header with the hex HMAC-SHA256 of `<timestamp>.<body>`.
pub const SIGNATURE_HEADER: &str = "x-kyc-signature";
/// Largest webhook body, bytes (a few labels).
pub const WEBHOOK_BODY_BYTES_MAX: usize = 16 * 1024;
/// Longest event id, characters (the column's width).
pub const EVENT_ID_CHARS_MAX: usize = 64;
/// Digits of a timestamp at most (Unix ms fits 13 digits until the year 2286).
const TIMESTAMP_DIGITS_MAX: usize = 15;
/// The audit actor of webhook calls.
pub const PROVIDER_ACTOR: &str = "kyc-provider";

/// A label the provider sets.
#[derive(Debug, Deserialize)]
struct WebhookLabel {
    key: String,
    value: String,
}

/// The body of a webhook call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookEvent {
    event_id: String,
    uid: String,
    #[serde(default)]
    labels: Vec<WebhookLabel>,
    /// `verified` or `rejected`: the provider's verdict on a submitted profile.
    #[serde(default)]
    profile: Option<String>,
}

/// The hex signature a provider sends for `body` at `timestamp` (for providers and tests).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.as_bytes());
    context.update(b".");
    context.update(body);
    crate::secret::hex(context.sign().as_ref())
}

/// Whether `signature_hex` is the signature of `body` at `timestamp`, compared in constant
/// time.
pub fn verify_signature(secret: &[u8], timestamp: &str, body: &[u8], signature_hex: &str) -> bool {
    let Some(signature) = decode_hex::<32>(signature_hex) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    hmac::verify(&key, &message, &signature).is_ok()
}

/// `N` bytes from `2N` hex digits, or `None`.
fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let digit = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

impl Kyc {
    /// Handles one webhook call (headers and body as received). Audited either way.
    pub async fn webhook(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        source: &Source,
    ) -> Result<(), KycError> {
        let mut target = String::new();
        let result = self
            .webhook_inner(timestamp, signature, body, &mut target)
            .await;
        let outcome = result.as_ref().map_or_else(KycError::code, |_| "ok");
        self.metrics
            .webhooks_total
            .with_label_values(&[outcome])
            .inc();
        self.audited(PROVIDER_ACTOR, "kyc.webhook", &target, source, result)
            .await
    }

    async fn webhook_inner(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        target: &mut String,
    ) -> Result<(), KycError> {
        let config = self.config();
        // Unsigned first: a call without the signature headers is refused as such (401)
        // whether the webhook is on or not; a signed one to a webhook that is off is 404.
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Err(KycError::WebhookSignature);
        };
        if !self.webhook_secrets.loaded() {
            // From KV but not read yet (OpenBao out since start): the provider retries.
            return Err(match config.webhook_secret_kv {
                Some(_) => KycError::VaultUnavailable,
                None => KycError::WebhookOff,
            });
        }
        let now_ms = self.identity.now_ms();
        if body.len() > WEBHOOK_BODY_BYTES_MAX
            || timestamp.len() > TIMESTAMP_DIGITS_MAX
            || !self.webhook_secrets.accepts(now_ms, |secret| {
                verify_signature(secret, timestamp, body, signature)
            })
        {
            return Err(KycError::WebhookSignature);
        }
        let at_ms: i64 = timestamp.parse().map_err(|_| KycError::WebhookStale)?;
        if (now_ms - at_ms).abs() > config.webhook_window_ms {
            return Err(KycError::WebhookStale);
        }
        let event: WebhookEvent =
            serde_json::from_slice(body).map_err(|_| KycError::InvalidParams { field: "body" })?;
        *target = event.uid.chars().take(64).collect();
        let verdict = self.check_event(&event)?;
        let user = self.user_by_uid(&event.uid).await?;
        // A verdict the profile cannot take is refused before anything changes.
        if let Some(verdict) = verdict {
            let state = self.profile(&user).await?.state;
            if super::profile::next(state, verdict).is_none() {
                return Err(KycError::ProfileTransition {
                    from: state,
                    to: super::profile::aim(verdict),
                });
            }
        }
        // Remembered for twice the window: a call is accepted up to a window early or late.
        let forget_before_ms = now_ms - 2 * config.webhook_window_ms;
        let store = self.identity.store();
        let fresh = store
            .record_webhook_event(&event.event_id, now_ms, forget_before_ms)
            .await?;
        if !fresh {
            return Err(KycError::WebhookReplay);
        }
        let applied = self.apply_event(&user, &event, verdict).await;
        if applied.is_err() {
            // Not applied (or not wholly): the provider's retry of this event must not be
            // refused as a replay. Labels are set, not added, so a retry is idempotent.
            store.forget_webhook_event(&event.event_id).await?;
        }
        applied
    }

    async fn apply_event(
        &self,
        user: &crate::store::User,
        event: &WebhookEvent,
        verdict: Option<ProfileEvent>,
    ) -> Result<(), KycError> {
        let changes: Vec<LabelChange<'_>> = event
            .labels
            .iter()
            .map(|label| LabelChange {
                key: &label.key,
                scope: PRIVATE_SCOPE,
                value: Some(&label.value),
            })
            .collect();
        if !changes.is_empty() {
            self.apply_labels(user.id, &changes).await?;
        }
        if let Some(verdict) = verdict {
            self.transition(user, verdict, None).await?;
        }
        Ok(())
    }

    /// Checks an event's fields; the profile verdict it carries.
    fn check_event(&self, event: &WebhookEvent) -> Result<Option<ProfileEvent>, KycError> {
        let id = &event.event_id;
        if id.is_empty()
            || id.chars().count() > EVENT_ID_CHARS_MAX
            || id.chars().any(char::is_control)
        {
            return Err(KycError::InvalidParams { field: "event_id" });
        }
        if event.labels.len() > LABEL_CHANGES_MAX {
            return Err(KycError::InvalidParams { field: "labels" });
        }
        for label in &event.labels {
            check_label(&label.key, &label.value)?;
        }
        match event.profile.as_deref() {
            None => Ok(None),
            Some("verified") => Ok(Some(ProfileEvent::Verify)),
            Some("rejected") => Ok(Some(ProfileEvent::Reject)),
            Some(_) => Err(KycError::InvalidParams { field: "profile" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_secret_time_and_body() {
        let secret = b"a provider secret of 32 bytes or more";
        let signature = sign(secret, "1700000000000", b"{}");
        assert!(verify_signature(secret, "1700000000000", b"{}", &signature));
        assert!(verify_signature(
            secret,
            "1700000000000",
            b"{}",
            &signature.to_ascii_uppercase()
        ));
        assert!(!verify_signature(
            secret,
            "1700000000001",
            b"{}",
            &signature
        ));
        assert!(!verify_signature(
            secret,
            "1700000000000",
            b"{ }",
            &signature
        ));
        assert!(!verify_signature(
            b"another secret",
            "1700000000000",
            b"{}",
            &signature
        ));
        assert!(!verify_signature(
            secret,
            "1700000000000",
            b"{}",
            &signature[..62]
        ));
        assert!(!verify_signature(secret, "1700000000000", b"{}", "zz"));
    }
}
