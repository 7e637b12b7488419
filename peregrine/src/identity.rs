//! Identity in `up` (`[auth]`): the store, OpenBao, the Barong-shaped routes the REST listener
//! serves, and the background tasks that keep the gateways' key caches and JWT verifier
//! current from identity in this process.
//!
//! Start: [`start`] opens the store (migrations), gets identity's OpenBao client
//! ([`admin_openbao`], the ONE place it comes from), provisions identity's mounts, keys and
//! least-privilege policy with it and continues with the narrow token only. [`Running::attach`]
//! then feeds the REST bridge's key cache, the QUIC logon's registry (each by its own key feed)
//! and the bridge's JWT verifier (reloaded from identity's JWKS in-process, never over HTTP).
//! Each task shows on `/health/ready` as `identity`: a dead task fails readiness.
//!
//! A configured OpenBao that is unreachable or sealed at start does not stop it: identity
//! starts with a client awaiting its token, [`crate::secret_store::Watcher`] provisions it once
//! OpenBao answers, and `/health/ready` shows `degraded secrets` meanwhile. What works then:
//! trading, sessions (login without 2FA, reads, access tokens signed by identity's in-memory
//! standby key, which the JWKS lists), ed25519 QUIC keys (their public key is in the store);
//! what waits for OpenBao: 2FA, API-key changes, and HMAC keys (their secret is transit
//! ciphertext: pending in the key feed until decrypted).
//!
//! Never: runs identity's HTTP on the operator listener (that one carries the control API and
//! metrics, not the retail page's cookies), or puts identity on the order path (the gateways
//! verify from memory).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use peregrine_auth::jwt::{Refresher, TokenConfig, Verifier};
use peregrine_auth::key_feed::{KeyChange, KeyFeed};
use peregrine_auth::kyc::{KvLocation, Kyc};
use peregrine_auth::mail::MailConfig;
use peregrine_auth::rbac::Authorizer;
use peregrine_auth::vault::{Vault, VaultConfig, provision};
use peregrine_auth::{Clock, Identity, IdentityConfig, Store};
use peregrine_devsecrets::DevSecrets;
use peregrine_gateway::levels::LevelGate;
use peregrine_gateway::quic::server::Server as QuicServer;
use peregrine_gateway::rest::Bridge;
use peregrine_gateway::rest::key_follower::follow_keys_into;
use peregrine_secrets::{BaoToken, OpenBao};
use prometheus::{IntCounterVec, Opts};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::AuthSection;
use crate::readiness::{CheckStatus, Readiness, ReadinessError};
use crate::secret_store::{WatchMetrics, Watcher};

/// Longest a token file may be, bytes (a token is ~100 bytes; more is the wrong file).
const TOKEN_FILE_BYTES_MAX: u64 = 4096;
/// The embedded development secret store's directory under the data directory.
pub const DEV_SECRETS_DIR: &str = "secrets";

/// Why identity did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The store could not be opened or migrated.
    #[error("identity store {url}: {source}")]
    Store {
        /// The URL, credentials redacted.
        url: String,
        /// Why.
        source: peregrine_auth::StoreError,
    },
    /// The OpenBao token file could not be read.
    #[error("auth.openbao.token_file {}: {reason}", path.display())]
    TokenFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// OpenBao refused or could not be reached while provisioning.
    #[error("OpenBao: {0}")]
    OpenBao(#[from] peregrine_secrets::BaoError),
    /// The embedded development secret store could not start.
    #[error("development secret store: {0}")]
    DevSecrets(#[from] peregrine_devsecrets::DevSecretsError),
    /// The KYC service could not start.
    #[error("KYC: {0}")]
    Kyc(#[from] peregrine_auth::kyc::StartError),
    /// Loading the first keys or JWKS failed.
    #[error("identity: {0}")]
    Auth(#[from] peregrine_auth::AuthError),
    /// identity's JWKS could not be read.
    #[error("identity JWKS: {0}")]
    Jwks(#[from] peregrine_auth::jwt::JwksError),
    /// A metric could not be registered.
    #[error("identity metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A readiness check could not be registered.
    #[error(transparent)]
    Readiness(#[from] ReadinessError),
}

/// Identity's OpenBao client for `vault`: with identity's own token when provisioning with
/// `admin` succeeds, or (a configured OpenBao that cannot answer now) awaiting it, with a
/// watch that provisions it later. The dev store answers or is broken: its errors stop `up`.
async fn provisioned_client(
    admin: &AdminOpenBao,
    vault: &VaultConfig,
    registry: &prometheus::Registry,
) -> Result<(OpenBao, Option<Watcher>), IdentityError> {
    let (client, first) = match provision(&admin.client, vault).await {
        Ok(token) => (admin.client.with_token(token), CheckStatus::Ready),
        Err(error) if error.is_unavailable() && admin.dev.is_none() => {
            tracing::warn!(
                %error,
                "OpenBao unavailable: identity starts degraded and provisions once it answers"
            );
            let status = crate::secret_store::degraded(admin.client.addr(), &error.to_string());
            (admin.client.awaiting_token(), status)
        }
        Err(error) => return Err(error.into()),
    };
    if admin.dev.is_some() {
        return Ok((client, None));
    }
    let metrics = WatchMetrics::new(registry)?;
    let watcher = Watcher::new(
        admin.client.clone(),
        client.clone(),
        vault.clone(),
        first,
        metrics,
    );
    Ok((client, Some(watcher)))
}

/// The identity service's settings from `[auth]` (validated with the rest of the
/// configuration, so `up` refuses a bad one before anything starts).
pub fn identity_config(section: &AuthSection) -> IdentityConfig {
    let mut config = IdentityConfig::default();
    config.account_id_first = section.account_id_first;
    config.account_id_end = section.account_id_end;
    config.cookie_secure = section.cookie_secure;
    config.mail = section
        .smtp
        .as_ref()
        .map(|smtp| MailConfig::new(smtp.server.to_string(), smtp.from.clone()));
    config.kyc.trade_level_min = section.trade_level_min;
    config.kyc.withdraw_level_min = section.withdraw_level_min;
    // KYC's documents key is identity's, on identity's transit mount (its policy covers it).
    let vault = vault_config(section);
    config.kyc.transit_mount = vault.transit_mount;
    config.kyc.transit_key = vault.documents_key;
    // The webhook's secret only from OpenBao KV, never from this file.
    if let Some(bao) = section.openbao.as_ref().filter(|bao| bao.kyc_webhook) {
        let location = KvLocation::new(&vault.kv_mount, &vault.webhook_secret_path);
        config.kyc.webhook_secret_kv = Some(location);
        config.kyc.webhook_secret_grace_ms = i64::from(bao.kyc_webhook_grace_ms);
        config.kyc.webhook_secret_refresh_ms = u64::from(bao.kyc_webhook_refresh_ms);
    }
    config
}

/// Where identity's secrets live in OpenBao, from `[auth.openbao]` (defaults without it).
fn vault_config(section: &AuthSection) -> VaultConfig {
    let mut config = VaultConfig::default();
    if let Some(bao) = &section.openbao {
        config.totp_mount.clone_from(&bao.totp_mount);
        config.transit_mount.clone_from(&bao.transit_mount);
        config.policy.clone_from(&bao.policy);
        config.kv_mount.clone_from(&bao.kv_mount);
    }
    config
}

/// Identity's OpenBao: the configured one, or the embedded development store.
pub struct AdminOpenBao {
    /// A client with a token allowed to make identity's mounts, keys and policy.
    pub client: OpenBao,
    /// The embedded store serving `client`, when no `[auth.openbao]` is configured.
    pub dev: Option<DevSecrets>,
}

/// THE place identity's OpenBao client comes from: `[auth.openbao]` (address and a token
/// allowed to provision identity), or without it the embedded development store under
/// `<data>/secrets` (`peregrine-devsecrets`: the same API on loopback, its master key on the
/// same disk — for a bare machine, never production).
pub async fn admin_openbao(
    section: &AuthSection,
    data_dir: &std::path::Path,
    registry: &prometheus::Registry,
) -> Result<AdminOpenBao, IdentityError> {
    if let Some(bao) = &section.openbao {
        let token = read_token_file(&bao.token_file)?;
        return Ok(AdminOpenBao {
            client: OpenBao::new(&bao.address, token)?,
            dev: None,
        });
    }
    let dir = data_dir.join(DEV_SECRETS_DIR);
    let dev = DevSecrets::start_with_metrics(&dir, registry).await?;
    tracing::warn!(
        dir = %dir.display(),
        "no [auth.openbao]: identity keeps its secrets in the embedded development store \
         (its master key is on this disk; configure [auth.openbao] for production)"
    );
    Ok(AdminOpenBao {
        client: dev.root_client()?,
        dev: Some(dev),
    })
}

fn read_token_file(path: &std::path::Path) -> Result<BaoToken, IdentityError> {
    let refused = |reason: String| IdentityError::TokenFile {
        path: path.to_owned(),
        reason,
    };
    let size_bytes = std::fs::metadata(path)
        .map_err(|e| refused(e.to_string()))?
        .len();
    if size_bytes > TOKEN_FILE_BYTES_MAX {
        return Err(refused(format!(
            "{size_bytes} bytes is above the limit of {TOKEN_FILE_BYTES_MAX}"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| refused(e.to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(refused("the file is empty".to_owned()));
    }
    Ok(BaoToken::new(token.to_owned()))
}

/// identity's background tasks by name, shared with the readiness check.
type Tasks = Arc<std::sync::Mutex<Vec<(&'static str, JoinHandle<()>)>>>;

/// Identity, started. `attach` it to the gateways, `stop` it after them.
pub struct Running {
    /// The service.
    pub identity: Arc<Identity>,
    /// Its routes (identity, 2FA, tokens, API keys, KYC), full paths
    /// from `/api/v2/barong`, for the REST listener.
    pub router: Router,
    /// The role table read at start with its decision counter (KYC's and the control API's).
    pub authorizer: Authorizer,
    store: Store,
    vault: Vault,
    /// The embedded store identity's secrets are in, when no OpenBao is configured.
    dev_secrets: Option<DevSecrets>,
    /// The watch over a configured OpenBao, until `attach` starts it.
    watcher: std::sync::Mutex<Option<Watcher>>,
    section: AuthSection,
    stop: watch::Sender<bool>,
    tasks: Tasks,
    counters: (IntCounterVec, IntCounterVec),
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("dev_secrets", &self.dev_secrets.is_some())
            .finish_non_exhaustive()
    }
}

/// Opens the store, provisions OpenBao (when there is one) and builds identity and its routes.
pub async fn start(
    section: &AuthSection,
    data_dir: &std::path::Path,
    registry: &prometheus::Registry,
) -> Result<Running, IdentityError> {
    let url = section.database_url(data_dir);
    let store = Store::open(&url)
        .await
        .map_err(|source| IdentityError::Store {
            url: crate::commands::up::redact_url(&url),
            source,
        })?;
    let config = identity_config(section);
    let mut identity = Identity::new(store.clone(), config, Clock::System, registry)?;
    let admin = admin_openbao(section, data_dir, registry).await?;
    let vault_config = vault_config(section);
    let (client, watcher) = provisioned_client(&admin, &vault_config, registry).await?;
    let vault = Vault {
        client,
        config: vault_config,
    };
    let mut tokens = TokenConfig::default();
    tokens.ttl_s = section.access_token_ttl_s;
    identity = identity.with_vault(vault.clone(), tokens);
    if section.smtp.is_none() {
        tracing::warn!("no [auth.smtp]: e-mailed codes are logged at INFO with their address");
    }
    let identity = Arc::new(identity);
    let mut router = peregrine_auth::http::router(Arc::clone(&identity));
    let kyc = Kyc::start(Arc::clone(&identity), vault.client.clone(), registry).await?;
    let authorizer = kyc.authorizer().clone();
    let kyc = Arc::new(kyc);
    router = router.merge(peregrine_auth::http::kyc::router(Arc::clone(&kyc)));
    router = router.merge(peregrine_auth::http::openapi::router());
    let counters = (
        IntCounterVec::new(
            Opts::new(
                "auth_key_feed_changes_total",
                "API-key changes applied to a gateway's cache, by cache",
            ),
            &["cache"],
        )?,
        IntCounterVec::new(
            Opts::new(
                "auth_key_feed_failures_total",
                "Failed polls of identity's key events, by cache",
            ),
            &["cache"],
        )?,
    );
    registry.register(Box::new(counters.0.clone()))?;
    registry.register(Box::new(counters.1.clone()))?;
    let running = Running {
        identity,
        router,
        authorizer,
        store,
        vault,
        dev_secrets: admin.dev,
        watcher: std::sync::Mutex::new(watcher),
        section: section.clone(),
        stop: watch::Sender::new(false),
        tasks: Arc::default(),
        counters,
    };
    if kyc.config().webhook_secret_kv.is_some() {
        let stop = running.stop.subscribe();
        let task = tokio::spawn(async move { kyc.follow_webhook_secret(stop).await });
        running.push_task("KYC webhook secret", task);
    }
    Ok(running)
}

impl Running {
    /// Feeds the REST bridge's key cache and JWT verifier and the QUIC logon's registry from
    /// identity, and registers the `identity` readiness check over the tasks doing it (and the
    /// `secrets` check when identity's secrets are in the embedded development store). The
    /// JWT verifier, kept current, for the control API too.
    pub async fn attach(
        &self,
        bridge: &Arc<Bridge>,
        quic: Option<&QuicServer>,
        readiness: &Readiness,
    ) -> Result<Arc<Refresher>, IdentityError> {
        let vault = &self.vault;
        let section = &self.section;
        let gate = Arc::new(
            LevelGate::new(
                section.account_id_first..section.account_id_end,
                section.trade_level_min,
            )
            .with_withdraw_level(section.withdraw_level_min),
        );
        // The REST feed carries the gate's levels too: one follower, one order of events.
        let (rest, levels) = (Arc::clone(bridge), Arc::clone(&gate));
        let apply = move |change: KeyChange| {
            levels.apply(&change);
            rest.apply_key_change(change);
        };
        self.follow("rest", vault, apply, true).await?;
        bridge.gate_levels(Arc::clone(&gate));
        if let Some(server) = quic {
            let registry = server.key_registry();
            self.follow("quic", vault, move |change| registry.apply(change), false)
                .await?;
            server.gate_levels(Arc::clone(&gate));
        }
        let refresher = self.verifier().await?;
        bridge.accept_tokens(Arc::clone(&refresher));
        self.spawn_jwks_refresh(Arc::clone(&refresher));
        let tasks = Arc::clone(&self.tasks);
        readiness.register_check("identity", move || tasks_status(&tasks))?;
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(watcher) = watcher {
            let status = watcher.status();
            readiness.register_check("secrets", move || {
                status
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })?;
            self.push_task("OpenBao watch", watcher.spawn(self.stop.subscribe()));
        }
        if let Some(dev) = &self.dev_secrets {
            let running = dev.running_flag();
            readiness.register_check("secrets", move || {
                if running() {
                    CheckStatus::Ready
                } else {
                    CheckStatus::NotReady("the development secret store stopped".to_owned())
                }
            })?;
        }
        Ok(refresher)
    }

    /// Loads every active key into a cache through `apply` and follows identity's key events
    /// into it, on a task of its own.
    async fn follow(
        &self,
        cache: &'static str,
        vault: &Vault,
        apply: impl Fn(KeyChange) + Send + Sync + 'static,
        with_levels: bool,
    ) -> Result<(), IdentityError> {
        let (feed, initial) = KeyFeed::start(self.store.clone(), vault.clone()).await?;
        tracing::info!(cache, keys = initial.len(), "identity's API keys loaded");
        if with_levels {
            for change in feed.levels().await? {
                apply(change);
            }
        }
        let task = follow_keys_into(
            apply,
            feed,
            initial,
            Duration::from_millis(self.section.key_poll_interval_ms),
            self.stop.subscribe(),
            (
                self.counters.0.with_label_values(&[cache]),
                self.counters.1.with_label_values(&[cache]),
            ),
        );
        self.push_task(cache_task_name(cache), task);
        Ok(())
    }

    /// The bridge's JWT verifier, from identity's JWKS read in this process (through an
    /// outage: the standby key and transit's keys as last read); without keys only when the
    /// JWKS cannot be made at all, until the refresh loads them.
    async fn verifier(&self) -> Result<Arc<Refresher>, IdentityError> {
        let verifier = match load_verifier(&self.identity).await {
            Ok(verifier) => verifier,
            Err(IdentityError::Auth(peregrine_auth::AuthError::VaultUnavailable)) => {
                tracing::warn!("OpenBao unavailable: access tokens accepted once it answers");
                Verifier::without_keys(self.identity.tokens()?.config().clone())
            }
            Err(error) => return Err(error),
        };
        Ok(Refresher::fixed(verifier))
    }

    /// Reloads the verifier every `jwks_refresh_ms` (a rotated key is accepted from the next
    /// reload; a failed reload keeps the last verifier, tokens live 60 s).
    fn spawn_jwks_refresh(&self, refresher: Arc<Refresher>) {
        let identity = Arc::clone(&self.identity);
        let interval = Duration::from_millis(self.section.jwks_refresh_ms);
        assert!(interval >= Duration::from_millis(crate::config::auth::JWKS_REFRESH_MS_MIN));
        let mut stop = self.stop.subscribe();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.wait_for(|&stop| stop) => return,
                }
                match load_verifier(&identity).await {
                    Ok(verifier) => refresher.replace(verifier),
                    Err(error) => tracing::warn!(%error, "JWKS reload failed; keeping the last"),
                }
            }
        });
        self.push_task("jwks", task);
    }

    /// Anchors the audit chain's head in the journal through `engine` every
    /// `audit_anchor_interval_ms` and once more at [`Running::stop`] (see
    /// [`crate::audit_anchor`]).
    pub fn anchor_audit(
        &self,
        engine: Arc<peregrine_core::EngineHandle>,
        registry: &prometheus::Registry,
    ) -> Result<(), IdentityError> {
        let metrics = crate::audit_anchor::AnchorMetrics::new(registry)?;
        let interval = Duration::from_millis(self.section.audit_anchor_interval_ms);
        let stop = self.stop.subscribe();
        let task = crate::audit_anchor::spawn(self.store.clone(), engine, interval, stop, metrics);
        self.push_task(AUDIT_ANCHOR_TASK, task);
        Ok(())
    }

    fn push_task(&self, name: &'static str, task: JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((name, task));
    }

    /// Stops the tasks and closes the store.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (name, task) in tasks {
            // The audit anchor's last submission waits for a journal commit: longer.
            let wait = if name == AUDIT_ANCHOR_TASK {
                crate::audit_anchor::STOP_WAIT
            } else {
                Duration::from_secs(2)
            };
            if tokio::time::timeout(wait, task).await.is_err() {
                tracing::warn!(task = name, "identity task did not stop in time");
            }
        }
        self.store.close().await;
        if let Some(dev) = self.dev_secrets {
            dev.shutdown().await;
        }
    }
}

/// The audit anchor's task name (readiness and [`Running::stop`] name it).
const AUDIT_ANCHOR_TASK: &str = "audit anchor";

/// Ready while every task runs: a task never ends on its own before `stop` (a follower
/// retries a failed poll), so one that ended panicked, and its cache or verifier is stale.
fn tasks_status(tasks: &Tasks) -> CheckStatus {
    let tasks = tasks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match tasks.iter().find(|(_, task)| task.is_finished()) {
        Some((name, _)) => CheckStatus::NotReady(format!("identity's {name} task ended")),
        None => CheckStatus::Ready,
    }
}

fn cache_task_name(cache: &'static str) -> &'static str {
    match cache {
        "rest" => "REST key feed",
        "quic" => "QUIC key feed",
        _ => "key feed",
    }
}

async fn load_verifier(identity: &Identity) -> Result<Verifier, IdentityError> {
    let issuer = identity.tokens()?;
    let jwks = issuer.jwks().await?;
    Ok(Verifier::from_jwks(
        jwks.to_string().as_bytes(),
        issuer.config().clone(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dead_task_fails_readiness_by_name() {
        let tasks: Tasks = Arc::default();
        let (keep, mut never) = watch::channel(false);
        let running = tokio::spawn(async move {
            let _ = never.wait_for(|&stop| stop).await;
        });
        tasks.lock().unwrap().push(("REST key feed", running));
        assert_eq!(tasks_status(&tasks), CheckStatus::Ready);
        let dead = tokio::spawn(async {});
        tasks.lock().unwrap().push(("QUIC key feed", dead));
        // Bounded: the empty task ends at once.
        for _ in 0..1_000 {
            if tasks_status(&tasks) != CheckStatus::Ready {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            tasks_status(&tasks),
            CheckStatus::NotReady("identity's QUIC key feed task ended".to_owned())
        );
        drop(keep);
    }
}
