//! Identity's configured OpenBao (`[auth.openbao]`) as `up` watches it: whether it answers,
//! whether identity holds its narrow token yet, and identity's provisioning retried until it
//! does.
//!
//! Why: OpenBao is not on the order path. `up` started while OpenBao is unreachable or sealed
//! runs degraded instead of failing its start (a supervisor would restart it in a loop):
//! trading, sessions and ed25519 keys go on, and what needs OpenBao (2FA, access tokens, new
//! API keys, HMAC keys' secrets) answers 503 `identity.vault_unavailable` until it answers.
//! `/health/ready` shows it as `degraded secrets: <why>`, never as not ready: a load balancer
//! must keep sending orders to an appliance whose secret store is down.
//!
//! Never: keeps the provisioning (admin) token once identity's own token is made, or retries
//! faster than [`PROBE_INTERVAL_MS`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use peregrine_auth::vault::{VaultConfig, provision};
use peregrine_secrets::{BaoError, OpenBao};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::readiness::CheckStatus;

/// How often OpenBao's health is asked (and provisioning retried while it failed), ms.
pub const PROBE_INTERVAL_MS: u64 = 1_000;

/// What readiness reads: the last probe's verdict.
pub type Status = Arc<Mutex<CheckStatus>>;

/// The watch's metrics: probes by outcome, and how long each took.
#[derive(Clone, Debug)]
pub struct WatchMetrics {
    probes_total: IntCounterVec,
    probe_seconds: HistogramVec,
}

impl WatchMetrics {
    /// Registers `auth_openbao_probes_total{outcome}` and `auth_openbao_probe_seconds{outcome}`.
    pub fn new(registry: &prometheus::Registry) -> Result<WatchMetrics, prometheus::Error> {
        let probes_total = IntCounterVec::new(
            Opts::new(
                "auth_openbao_probes_total",
                "Health probes of identity's OpenBao, by outcome (ok, sealed, unreachable, \
                 not_provisioned, ...)",
            ),
            &["outcome"],
        )?;
        let probe_seconds = HistogramVec::new(
            HistogramOpts::new(
                "auth_openbao_probe_seconds",
                "Time of one probe of identity's OpenBao (with a provisioning attempt while \
                 identity has no token), by outcome",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(probes_total.clone()))?;
        registry.register(Box::new(probe_seconds.clone()))?;
        Ok(WatchMetrics {
            probes_total,
            probe_seconds,
        })
    }
}

/// Watches identity's OpenBao and provisions identity in it once it answers.
pub struct Watcher {
    /// The provisioning client, until identity's token is made (then dropped).
    admin: Option<OpenBao>,
    /// Identity's client: the one every part of identity shares, given its token here.
    client: OpenBao,
    config: VaultConfig,
    status: Status,
    metrics: WatchMetrics,
    last_outcome: &'static str,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("addr", &self.client.addr())
            .field("provisioned", &self.client.has_token())
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watch over `client` (identity's, with or without its token yet); `admin` provisions
    /// identity while `client` has no token. `first` is the start's verdict, shown until the
    /// first probe.
    pub fn new(
        admin: OpenBao,
        client: OpenBao,
        config: VaultConfig,
        first: CheckStatus,
        metrics: WatchMetrics,
    ) -> Watcher {
        let admin = (!client.has_token()).then_some(admin);
        Watcher {
            admin,
            client,
            config,
            status: Arc::new(Mutex::new(first)),
            metrics,
            last_outcome: "start",
        }
    }

    /// The verdict readiness shows.
    pub fn status(&self) -> Status {
        Arc::clone(&self.status)
    }

    /// Probes every [`PROBE_INTERVAL_MS`] until `stop` turns true.
    pub fn spawn(mut self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(PROBE_INTERVAL_MS));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.wait_for(|&stop| stop) => return,
                }
                self.step().await;
            }
        })
    }

    /// One probe: provisions identity if it has no token yet, then asks OpenBao's health.
    pub async fn step(&mut self) {
        let started = Instant::now();
        let provisioned = self.provision_if_needed().await;
        let (outcome, status) = match provisioned {
            Err(reason) => ("not_provisioned", degraded(self.client.addr(), &reason)),
            Ok(()) => self.health().await,
        };
        self.metrics
            .probes_total
            .with_label_values(&[outcome])
            .inc();
        self.metrics
            .probe_seconds
            .with_label_values(&[outcome])
            .observe(started.elapsed().as_secs_f64());
        if outcome != self.last_outcome {
            match &status {
                CheckStatus::Ready => tracing::info!(addr = self.client.addr(), "OpenBao answers"),
                other => tracing::warn!(addr = self.client.addr(), status = ?other, "OpenBao"),
            }
            self.last_outcome = outcome;
        }
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// Makes identity's mounts, keys, policy and token with the admin client while identity
    /// has no token; the reason it could not, else `Ok`.
    async fn provision_if_needed(&mut self) -> Result<(), String> {
        let Some(admin) = &self.admin else {
            return Ok(());
        };
        match provision(admin, &self.config).await {
            Ok(token) => {
                // Only this watch gives the token, once: `false` cannot happen.
                let given = self.client.give_token(token);
                assert!(given, "identity's OpenBao token was given twice");
                self.admin = None;
                tracing::info!(
                    addr = self.client.addr(),
                    "identity provisioned in OpenBao: 2FA, tokens and API keys available"
                );
                Ok(())
            }
            Err(error) => Err(format!("identity is not provisioned yet: {error}")),
        }
    }

    async fn health(&self) -> (&'static str, CheckStatus) {
        let addr = self.client.addr();
        match self.client.health().await {
            Ok(health) if health.sealed => ("sealed", degraded(addr, "it is sealed")),
            Ok(health) if !health.initialized => {
                ("uninitialized", degraded(addr, "it is not initialised"))
            }
            Ok(_) => ("ok", CheckStatus::Ready),
            Err(error) => (outcome_of(&error), degraded(addr, &error.to_string())),
        }
    }
}

fn outcome_of(error: &BaoError) -> &'static str {
    match error {
        BaoError::Unreachable { .. } => "unreachable",
        BaoError::Sealed => "sealed",
        BaoError::Unavailable { .. } => "unavailable",
        _ => "error",
    }
}

/// The readiness line of an OpenBao that cannot serve identity, saying what still works.
pub fn degraded(addr: &str, why: &str) -> CheckStatus {
    CheckStatus::Degraded(format!(
        "OpenBao at {addr}: {why}; 2FA, access tokens and new API keys answer 503 \
         identity.vault_unavailable, trading with existing keys goes on"
    ))
}
