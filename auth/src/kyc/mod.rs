//! KYC: labels, the levels they give, profiles under review, encrypted documents and the
//! provider's webhook — over the identity store, with every change and every refusal in the
//! audit chain. HTTP lives in [`crate::http::kyc`]; this module decides.
//!
//! - Labels are (key, scope, value). `private` labels are set only by the service (e-mail
//!   verification, the provider's webhook, compliance); `public` ones by the user, and they
//!   never count towards a level. A user's level is recomputed from the labels in the same
//!   transaction that changes them ([`level::level_of`]).
//! - A profile moves drafted -> submitted (its user) -> verified or rejected (compliance or
//!   the provider); a rejected profile may be edited again (-> drafted); a verified one is
//!   final ([`profile`]).
//! - A document's content is sealed with AES-256-GCM under a fresh data key from OpenBao
//!   transit; only the wrapped data key and the ciphertext are stored ([`document`]). Nothing
//!   of a document goes to the journal: the identity service does not write there.
//! - Levels gate actions ([`Kyc::gate`]): trade >= 1 and withdraw >= 2 unless configured.
//! - The provider webhook's HMAC secret comes from OpenBao KV and is followed there, a
//!   rotated-out secret accepted for a grace window ([`webhook_secret`]).

pub mod config;
pub mod document;
pub mod error;
pub mod level;
mod metrics;
pub mod profile;
pub mod webhook;
pub mod webhook_secret;

use std::sync::Arc;

use peregrine_secrets::OpenBao;
use peregrine_secrets::transit::KeyType;
use ring::rand::SystemRandom;

pub use config::{GatedAction, KvLocation, KycConfig, LevelRule};
pub use error::KycError;
pub use metrics::KycMetrics;

use crate::identity::{Identity, Source};
use crate::rbac::{Authorizer, Permission, Rbac};
use crate::store::{LabelChange, LabelRow, StoreError, User};
use level::{PRIVATE_SCOPE, PUBLIC_SCOPE};

/// Longest label key and value, characters (the columns' width).
pub const LABEL_CHARS_MAX: usize = 64;
/// Most labels one webhook call or admin call sets.
pub const LABEL_CHANGES_MAX: usize = 16;

/// Why the KYC service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The role -> permission table could not be read, or names what this build lacks.
    #[error("RBAC table: {0}")]
    Store(#[from] StoreError),
    /// The transit key could not be made.
    #[error("OpenBao transit key: {0}")]
    Vault(#[from] peregrine_secrets::BaoError),
    /// A metric could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The KYC service.
#[derive(Debug)]
pub struct Kyc {
    identity: Arc<Identity>,
    bao: OpenBao,
    authorizer: Authorizer,
    metrics: KycMetrics,
    rng: SystemRandom,
    webhook_secrets: webhook_secret::WebhookSecrets,
}

impl Kyc {
    /// Starts the service: makes the transit key if missing and reads the RBAC table. An
    /// OpenBao that cannot answer now does not stop the start: documents answer 503 until it
    /// does, and the key is made by then (identity's provisioning makes it too).
    pub async fn start(
        identity: Arc<Identity>,
        bao: OpenBao,
        registry: &prometheus::Registry,
    ) -> Result<Kyc, StartError> {
        let config = &identity.config().kyc;
        let ensured = bao
            .transit_ensure_key(
                &config.transit_mount,
                &config.transit_key,
                KeyType::Aes256Gcm96,
            )
            .await;
        match ensured {
            Err(error) if error.is_unavailable() => {
                tracing::warn!(%error, "KYC documents' transit key not checked: OpenBao unavailable");
            }
            other => other?,
        }
        let table = Rbac::load(identity.store()).await?;
        let webhook_secrets =
            webhook_secret::WebhookSecrets::starting_with(config.webhook_secret.as_deref());
        let kyc = Kyc {
            authorizer: Authorizer::new(table, registry)?,
            metrics: KycMetrics::new(registry)?,
            identity,
            bao,
            rng: SystemRandom::new(),
            webhook_secrets,
        };
        if kyc.config().webhook_secret_kv.is_some() {
            // Not fatal: the webhook answers 503 until a later read succeeds.
            if let Err(error) = kyc.refresh_webhook_secret().await {
                tracing::warn!(%error, "KYC webhook secret not read at start");
            }
        }
        Ok(kyc)
    }

    /// The identity service.
    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// The settings.
    pub fn config(&self) -> &KycConfig {
        &self.identity.config().kyc
    }

    /// The RBAC authorizer.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// The metrics.
    pub fn metrics(&self) -> &KycMetrics {
        &self.metrics
    }

    /// Audits `result` of `action` and passes it on.
    async fn audited<T>(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        source: &Source,
        result: Result<T, KycError>,
    ) -> Result<T, KycError> {
        let code = result.as_ref().err().map(KycError::code);
        self.identity
            .audit_code(actor, action, target, source, code)
            .await;
        result
    }

    /// Checks that `actor` holds `permission` (audited either way).
    pub async fn authorize(
        &self,
        actor: &User,
        permission: Permission,
        target: &str,
        source: &Source,
    ) -> Result<(), KycError> {
        self.authorizer
            .authorize(&self.identity, actor, permission, target, source)
            .await
            .map_err(KycError::from)
    }

    /// The level gate: refuses `action` when `user`'s KYC level is below the configured one.
    /// Every refusal is audited (`kyc.gate.<action>`); passes are not, as they are as many as
    /// the actions.
    pub async fn gate(
        &self,
        user: &User,
        action: GatedAction,
        source: &Source,
    ) -> Result<(), KycError> {
        let result = level::gate(self.config(), user.level, action);
        self.metrics
            .gate_decisions_total
            .with_label_values(&[
                action.as_str(),
                if result.is_ok() { "allowed" } else { "denied" },
            ])
            .inc();
        if let Err(error) = &result {
            let action_name = format!("kyc.gate.{}", action.as_str());
            self.identity
                .audit_code(
                    &user.uid,
                    &action_name,
                    &user.uid,
                    source,
                    Some(error.code()),
                )
                .await;
        }
        result
    }

    /// The user named `uid` (for operators' calls).
    async fn user_by_uid(&self, uid: &str) -> Result<User, KycError> {
        self.identity
            .store()
            .user_by_uid(uid)
            .await?
            .ok_or(KycError::UserNotFound)
    }

    /// Applies label changes and recomputes the level; the new level.
    async fn apply_labels(
        &self,
        user_id: i64,
        changes: &[LabelChange<'_>],
    ) -> Result<(i64, u64), KycError> {
        let rules = self.config().level_rules.clone();
        let level_of = move |labels: &[LabelRow]| level::level_of(&rules, labels);
        let now_ms = self.identity.now_ms();
        Ok(self
            .identity
            .store()
            .apply_labels(user_id, changes, now_ms, &level_of)
            .await?)
    }

    /// A user's labels (both scopes).
    pub async fn labels(&self, user: &User) -> Result<Vec<LabelRow>, KycError> {
        Ok(self.identity.store().labels_of(user.id).await?)
    }

    /// Sets one of the user's own public labels. Keys that give levels (and `profile`) are
    /// the service's: refused, whatever the scope asked.
    pub async fn set_public_label(
        &self,
        user: &User,
        key: &str,
        value: &str,
        source: &Source,
    ) -> Result<(), KycError> {
        let result = async {
            check_label(key, value)?;
            self.check_not_reserved(key)?;
            let change = LabelChange {
                key,
                scope: PUBLIC_SCOPE,
                value: Some(value),
            };
            self.apply_labels(user.id, &[change]).await.map(|_| ())
        }
        .await;
        self.audited(&user.uid, "kyc.label.set", key, source, result)
            .await
    }

    /// Removes one of the user's own public labels.
    pub async fn delete_public_label(
        &self,
        user: &User,
        key: &str,
        source: &Source,
    ) -> Result<(), KycError> {
        let result = async {
            check_label(key, "x")?;
            self.check_not_reserved(key)?;
            let change = LabelChange {
                key,
                scope: PUBLIC_SCOPE,
                value: None,
            };
            let (_, removed) = self.apply_labels(user.id, &[change]).await?;
            if removed == 0 {
                return Err(KycError::LabelNotFound);
            }
            Ok(())
        }
        .await;
        self.audited(&user.uid, "kyc.label.delete", key, source, result)
            .await
    }

    fn check_not_reserved(&self, key: &str) -> Result<(), KycError> {
        let reserved = key == profile::PROFILE_LABEL
            || self.config().level_rules.iter().any(|rule| rule.key == key);
        if reserved {
            return Err(KycError::LabelReserved(key.to_owned()));
        }
        Ok(())
    }

    /// An operator sets (or, with `value` `None`, removes) a user's private label; needs
    /// [`Permission::KycLabelWrite`]. The user's new level.
    pub async fn admin_set_label(
        &self,
        actor: &User,
        uid: &str,
        key: &str,
        value: Option<&str>,
        source: &Source,
    ) -> Result<i64, KycError> {
        self.authorize(actor, Permission::KycLabelWrite, uid, source)
            .await?;
        let result = async {
            check_label(key, value.unwrap_or("x"))?;
            let user = self.user_by_uid(uid).await?;
            let change = LabelChange {
                key,
                scope: PRIVATE_SCOPE,
                value,
            };
            let (level, removed) = self.apply_labels(user.id, &[change]).await?;
            if value.is_none() && removed == 0 {
                return Err(KycError::LabelNotFound);
            }
            Ok(level)
        }
        .await;
        let target = format!("{uid}:{key}");
        self.audited(&actor.uid, "kyc.label.admin_set", &target, source, result)
            .await
    }
}

/// Checks a label's key (`[a-z0-9_.-]`, 1 to 64) and value (printable ASCII, 1 to 64).
fn check_label(key: &str, value: &str) -> Result<(), KycError> {
    let key_ok = !key.is_empty()
        && key.len() <= LABEL_CHARS_MAX
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if !key_ok {
        return Err(KycError::InvalidParams { field: "key" });
    }
    let value_ok = !value.is_empty()
        && value.len() <= LABEL_CHARS_MAX
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if !value_ok {
        return Err(KycError::InvalidParams { field: "value" });
    }
    Ok(())
}
