//! Matching-shard metrics for `up`: the shard keeps plain atomics (no metrics library on the hot
//! path); a task copies them into Prometheus once a second.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use peregrine_core::EngineHandle;
use prometheus::{IntCounter, IntGauge, Registry};

use crate::metrics::{advance_counter, register_counter, register_gauge};

/// How often the atomics are copied.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The shard's series.
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    commands_total: IntCounter,
    events_total: IntCounter,
    busy_total: IntCounter,
    output_full_total: IntCounter,
    applied_seq: IntGauge,
    snapshot_pause_seconds: prometheus::Histogram,
    snapshots_seen: std::sync::Arc<std::sync::atomic::AtomicU64>,
    snapshot_failures_total: IntCounter,
    snapshot_failing: IntGauge,
}

impl EngineMetrics {
    /// Registers the series.
    pub fn register(registry: &Registry) -> Result<EngineMetrics, prometheus::Error> {
        let counter = |name: &str, help: &str| register_counter(registry, name, help);
        let applied_seq = register_gauge(
            registry,
            "engine_applied_seq",
            "Sequence of the last command the engine applied.",
        )?;
        // 10 µs doubling to ~0.3 s: a snapshot of a large engine pauses it for milliseconds.
        let snapshot_pause_seconds = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "engine_snapshot_pause_seconds",
                "Time the engine thread spent serialising each snapshot.",
            )
            .buckets((0..16).map(|i| 10e-6 * f64::from(1u32 << i)).collect()),
        )?;
        registry.register(Box::new(snapshot_pause_seconds.clone()))?;
        Ok(EngineMetrics {
            snapshot_pause_seconds,
            snapshots_seen: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
            commands_total: counter("engine_commands_total", "Commands applied by the engine.")?,
            events_total: counter("engine_events_total", "Events emitted by the engine.")?,
            busy_total: counter(
                "engine_busy_total",
                "Commands refused because the engine's queue was full.",
            )?,
            output_full_total: counter(
                "engine_output_full_total",
                "Times the engine waited for its output queue to drain.",
            )?,
            applied_seq,
            snapshot_failures_total: counter(
                "engine_snapshot_failures_total",
                "Snapshot writes that failed (each is retried after a back-off).",
            )?,
            snapshot_failing: register_gauge(
                registry,
                "engine_snapshot_failing",
                "1 while snapshot writes fail (cleared by the next success), else 0.",
            )?,
        })
    }

    /// Observes the last snapshot's pause if one was taken since the previous call. Snapshots
    /// are minutes (or a million commands) apart, so at most one falls in a refresh interval.
    pub fn refresh_snapshots(&self, pauses: peregrine_persist::SnapshotPauses) {
        let seen = self.snapshots_seen.swap(pauses.count, Relaxed);
        if pauses.count > seen {
            self.snapshot_pause_seconds
                .observe(pauses.last_ns as f64 / 1e9);
        }
    }

    /// Copies the snapshot writer's failure state.
    pub fn refresh_snapshot_health(&self, health: &peregrine_persist::SnapshotHealth) {
        advance_counter(&self.snapshot_failures_total, health.failures_total);
        self.snapshot_failing
            .set(i64::from(health.consecutive_failures > 0));
    }

    // The help text below names the rate.
    const _SAMPLED: () = assert!(peregrine_hotpath::runtime::APPLY_SAMPLE_EVERY == 64);

    /// Registers `engine_apply_seconds`, read from the shard's sampled apply latencies at each
    /// scrape (one command in `APPLY_SAMPLE_EVERY`, by sequence).
    pub fn register_apply_latency(
        registry: &Registry,
        engine: std::sync::Arc<EngineHandle>,
    ) -> Result<(), prometheus::Error> {
        crate::metrics::BucketsCollector::register(
            registry,
            "engine_apply_seconds",
            "Engine::apply of one command, sampled one in 64 by sequence.",
            move || engine.stats().apply_latency.snapshot(),
        )
    }

    /// Copies the shard's counters (monotonic, so counters advance by the difference).
    pub fn refresh(&self, engine: &EngineHandle) {
        let stats = engine.stats();
        advance_counter(&self.commands_total, stats.commands_total.load(Relaxed));
        advance_counter(&self.events_total, stats.events_total.load(Relaxed));
        advance_counter(&self.busy_total, stats.busy_total.load(Relaxed));
        advance_counter(
            &self.output_full_total,
            stats.output_full_total.load(Relaxed),
        );
        self.applied_seq
            .set(i64::try_from(stats.last_seq.load(Relaxed)).unwrap_or(i64::MAX));
    }

    /// Refreshes once a second until the task is aborted.
    pub fn spawn_refresh(
        self,
        engine: Arc<EngineHandle>,
        snapshots: crate::exchange::SnapshotPausesProbe,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_INTERVAL);
            loop {
                tick.tick().await;
                self.refresh(&engine);
                self.refresh_snapshots(snapshots.pauses());
                self.refresh_snapshot_health(&snapshots.health());
            }
        })
    }
}
