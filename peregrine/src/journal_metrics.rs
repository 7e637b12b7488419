//! Journal metrics and readiness for `up`: the writer keeps plain atomics (no metrics library
//! on its thread); a task copies them into Prometheus once a second, and readiness reports a
//! failed writer.

use std::time::Duration;

use peregrine_persist::Journal;
use prometheus::{IntCounter, IntGauge, Registry};

use crate::metrics::{advance_counter, register_counter, register_gauge};

use crate::readiness::{CheckStatus, Readiness, ReadinessError};

/// How often the atomics are copied: scrapes are seconds apart, so fresher is wasted work.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The journal's series, registered in the appliance's registry.
#[derive(Debug, Clone)]
pub struct JournalMetrics {
    commits_total: IntCounter,
    records_total: IntCounter,
    busy_total: IntCounter,
    batch_records_max: IntGauge,
    appended_seq: IntGauge,
    durable_seq: IntGauge,
}

impl JournalMetrics {
    /// Registers the series.
    pub fn register(registry: &Registry) -> Result<JournalMetrics, prometheus::Error> {
        let counter = |name: &str, help: &str| register_counter(registry, name, help);
        let gauge = |name: &str, help: &str| register_gauge(registry, name, help);
        Ok(JournalMetrics {
            commits_total: counter("journal_commits_total", "Group commits made durable.")?,
            records_total: counter("journal_records_total", "Records made durable.")?,
            busy_total: counter(
                "journal_busy_total",
                "Appends refused because the queue was full.",
            )?,
            batch_records_max: gauge(
                "journal_batch_records_max",
                "Most records in one group commit.",
            )?,
            appended_seq: gauge(
                "journal_appended_seq",
                "Sequence of the last record appended.",
            )?,
            durable_seq: gauge(
                "journal_durable_seq",
                "Sequence of the last durable record.",
            )?,
        })
    }

    /// Registers `journal_commit_seconds`, read from `journal`'s writer at each scrape: the
    /// time from taking a batch to its records being durable (write and sync), per commit.
    pub fn register_commit_latency(
        registry: &Registry,
        journal: Journal,
    ) -> Result<(), prometheus::Error> {
        crate::metrics::BucketsCollector::register(
            registry,
            "journal_commit_seconds",
            "Time to make one group commit durable (write and sync).",
            move || journal.stats().commit_latency.snapshot(),
        )
    }

    /// Copies the journal's counters (monotonic, so counters advance by the difference).
    pub fn refresh(&self, journal: &Journal) {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = journal.stats();
        advance_counter(&self.commits_total, stats.commits_count.load(Relaxed));
        advance_counter(&self.records_total, stats.records_count.load(Relaxed));
        advance_counter(&self.busy_total, stats.busy_count.load(Relaxed));
        self.batch_records_max
            .set(i64::try_from(stats.batch_records_max.load(Relaxed)).unwrap_or(i64::MAX));
        self.appended_seq
            .set(i64::try_from(journal.appended_seq()).unwrap_or(i64::MAX));
        self.durable_seq
            .set(i64::try_from(journal.durable_seq()).unwrap_or(i64::MAX));
    }

    /// Refreshes once a second until the task is aborted.
    pub fn spawn_refresh(self, journal: Journal) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_INTERVAL);
            loop {
                tick.tick().await;
                self.refresh(&journal);
            }
        })
    }
}

/// Readiness check `journal`: not ready once the writer failed.
pub fn register_readiness(readiness: &Readiness, journal: Journal) -> Result<(), ReadinessError> {
    readiness.register_check("journal", move || match journal.failed() {
        None => CheckStatus::Ready,
        Some(why) => CheckStatus::NotReady(format!("journal writer failed: {why}")),
    })?;
    Ok(())
}
