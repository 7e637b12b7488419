//! The fee-tier job: places each account in the fee tier the fee volume tiers in force
//! ([`crate::rules`], four-eyes) give it, and journals `AccountFeeTier` (as the system) only
//! for an account whose tier changes, so a replay of the journal reproduces every account's
//! tier and a run that changes nothing journals nothing.
//!
//! An account's tier: its user group's pinned tier (the private `fee_group` label) if the
//! schedule pins that group; else the tier of the highest volume threshold its trailing 30-day
//! traded volume reaches (maker and taker both count, in the markets quoted in the schedule's
//! currency, read from the replica); else tier 0. Once a schedule is in force the job owns
//! every account's tier: an account that no longer qualifies goes back to 0.
//!
//! Bounded: one run reads at most [`VOLUME_ROWS_MAX`] accounts' volumes and
//! [`GROUP_ROWS_MAX`] group members, and journals at most [`CHANGES_PER_RUN_MAX`] commands
//! (the rest wait for the next run, in account order). Without the replica or identity's
//! store the job does not run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use peregrine_auth::store::FeeTierSchedule;
use peregrine_hotpath::{AccountId, Actor, Amount, CommandKind, MarketId};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

use crate::api::{ControlState, execute_as};
use crate::error::ControlError;

/// The trailing window volumes count over.
pub const VOLUME_WINDOW: Duration = Duration::from_secs(30 * 24 * 3_600);
/// Accounts' volumes one run reads, at most.
pub const VOLUME_ROWS_MAX: usize = 10_000;
/// Group members one run reads, at most.
pub const GROUP_ROWS_MAX: i64 = 10_000;
/// `AccountFeeTier` commands one run journals, at most.
pub const CHANGES_PER_RUN_MAX: usize = 1_000;

/// The job's metrics (the registry's namespace prefixes them: `peregrine_fee_tier_*`).
#[derive(Clone, Debug)]
pub struct FeeTierMetrics {
    /// Runs, by outcome (`ok`, `no_schedule`, `error`).
    pub runs_total: IntCounterVec,
    /// `AccountFeeTier` commands journaled.
    pub changes_total: IntCounter,
    /// How long a run took.
    pub run_duration_seconds: Histogram,
}

impl FeeTierMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<FeeTierMetrics, prometheus::Error> {
        let metrics = FeeTierMetrics {
            runs_total: IntCounterVec::new(
                Opts::new("fee_tier_runs_total", "fee-tier job runs, by outcome"),
                &["outcome"],
            )?,
            changes_total: IntCounter::new(
                "fee_tier_changes_total",
                "AccountFeeTier commands the fee-tier job journaled",
            )?,
            run_duration_seconds: Histogram::with_opts(HistogramOpts::new(
                "fee_tier_run_duration_seconds",
                "how long one fee-tier job run took",
            ))?,
        };
        registry.register(Box::new(metrics.runs_total.clone()))?;
        registry.register(Box::new(metrics.changes_total.clone()))?;
        registry.register(Box::new(metrics.run_duration_seconds.clone()))?;
        Ok(metrics)
    }
}

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Accounts whose tier was journaled.
    pub changed: usize,
    /// Accounts whose tier was wrong but left for the next run (over the per-run bound).
    pub deferred: usize,
}

/// Why a run did nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// No schedule is in force.
    #[error("no fee volume tiers are in force")]
    NoSchedule,
    /// The replica or identity's store could not answer, or a command was refused.
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// Runs the job every `interval` until the runtime stops (the first run after one interval).
pub fn spawn(state: ControlState, interval: Duration, metrics: FeeTierMetrics) {
    assert!(!interval.is_zero(), "a zero interval would spin");
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let started = Instant::now();
            let outcome = match run_once(&state).await {
                Ok(report) => {
                    metrics.changes_total.inc_by(report.changed as u64);
                    if report.changed > 0 || report.deferred > 0 {
                        tracing::info!(
                            changed = report.changed,
                            deferred = report.deferred,
                            "fee tiers applied"
                        );
                    }
                    "ok"
                }
                Err(RunError::NoSchedule) => "no_schedule",
                Err(error) => {
                    tracing::warn!(%error, "fee-tier job run failed");
                    "error"
                }
            };
            metrics.runs_total.with_label_values(&[outcome]).inc();
            metrics
                .run_duration_seconds
                .observe(started.elapsed().as_secs_f64());
        }
    });
}

/// One run: the tiers the schedule gives, compared with the views', each difference
/// journaled (at most [`CHANGES_PER_RUN_MAX`]).
pub async fn run_once(state: &ControlState) -> Result<RunReport, RunError> {
    let store = crate::adjustments::operators(state)?.identity().store();
    let schedule = store
        .fee_tiers_in_force()
        .await
        .map_err(|_| ControlError::StoreUnavailable)?
        .ok_or(RunError::NoSchedule)?;
    let wanted = wanted_tiers(state, &schedule).await?;
    let current: BTreeMap<AccountId, u8> = state
        .engine
        .read(|views| views.fee_tiered())
        .into_iter()
        .collect();
    // Every account the schedule places, then every tiered account it no longer does.
    let mut changes: Vec<(AccountId, u8)> = wanted
        .iter()
        .filter(|(account, tier)| current.get(account).copied().unwrap_or(0) != **tier)
        .map(|(account, tier)| (*account, *tier))
        .collect();
    changes.extend(
        current
            .keys()
            .filter(|account| !wanted.contains_key(account))
            .map(|account| (*account, 0)),
    );
    changes.sort_unstable();
    let mut report = RunReport {
        changed: 0,
        deferred: changes.len().saturating_sub(CHANGES_PER_RUN_MAX),
    };
    for (account, tier) in changes.into_iter().take(CHANGES_PER_RUN_MAX) {
        execute_as(
            state,
            Actor::System,
            CommandKind::AccountFeeTier { account, tier },
        )
        .await?;
        report.changed += 1;
    }
    Ok(report)
}

/// The tier the schedule gives each account it places above tier 0 (an account absent is in
/// tier 0).
async fn wanted_tiers(
    state: &ControlState,
    schedule: &FeeTierSchedule,
) -> Result<BTreeMap<AccountId, u8>, ControlError> {
    let replica = state
        .replica
        .as_ref()
        .ok_or_else(|| ControlError::ReplicaUnavailable("no [replica]".to_owned()))?;
    let thresholds = thresholds(state, schedule)?;
    let markets: Vec<MarketId> = state
        .catalog
        .load()
        .markets()
        .iter()
        .filter(|m| m.quote == schedule.currency)
        .map(|m| m.spec.market)
        .collect();
    let since_ns = now_ns().saturating_sub(VOLUME_WINDOW.as_nanos() as u64);
    let volumes = replica
        .account_volumes(&markets, since_ns, AccountId(0), VOLUME_ROWS_MAX)
        .await
        .map_err(|e| ControlError::ReplicaUnavailable(e.to_string()))?;
    let mut wanted = BTreeMap::new();
    for volume in volumes {
        let tier = thresholds
            .iter()
            .rev()
            .find(|(threshold, _)| volume.quote_minor >= u128::from(threshold.0))
            .map_or(0, |(_, tier)| *tier);
        wanted.insert(volume.account, tier);
    }
    let members = crate::adjustments::operators(state)?
        .identity()
        .store()
        .fee_group_members(0, GROUP_ROWS_MAX)
        .await
        .map_err(|_| ControlError::StoreUnavailable)?;
    for member in members {
        if let Some(pinned) = schedule.groups.iter().find(|g| g.group == member.group) {
            wanted.insert(AccountId(member.account), pinned.tier);
        }
    }
    wanted.retain(|_, tier| *tier != 0);
    Ok(wanted)
}

/// The schedule's thresholds in minor units, ascending (checked when proposed; a currency
/// gone from the catalog since is refused).
fn thresholds(
    state: &ControlState,
    schedule: &FeeTierSchedule,
) -> Result<Vec<(Amount, u8)>, ControlError> {
    let catalog = state.catalog.load();
    let currency = catalog
        .currency(&schedule.currency)
        .ok_or_else(|| ControlError::UnknownCurrency(schedule.currency.clone()))?;
    schedule
        .thresholds
        .iter()
        .map(|t| {
            let volume = crate::rules::amount_of(currency, "thresholds", &t.volume)?;
            Ok((volume, t.tier))
        })
        .collect()
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
