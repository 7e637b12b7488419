//! The replicator's Prometheus metrics. Registered once per replicator in the registry the
//! appliance exposes; updated by the replicator thread only. Names are `replica_*`: the
//! appliance's registry adds the `peregrine_` prefix.

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::error::ReplicaError;

/// The metrics.
#[derive(Clone, Debug)]
pub struct ReplicaMetrics {
    /// Commands replicated (committed to the database).
    pub commands_total: IntCounter,
    /// Events the follower emitted for replicated commands.
    pub events_total: IntCounter,
    /// Rows written, by table group.
    pub rows_total: IntCounter,
    /// Trades written.
    pub trades_total: IntCounter,
    /// Batches committed.
    pub batches_total: IntCounter,
    /// Database errors by kind (`connect`, `write`, `moved`).
    pub errors_total: IntCounterVec,
    /// Time to write and commit one batch.
    pub commit_seconds: Histogram,
    /// The high-water mark.
    pub high_water_seq: IntGauge,
    /// Durable commands not replicated yet.
    pub lag_commands: IntGauge,
    /// Age of the oldest unreplicated command (its timestamp to now), in seconds.
    pub lag_seconds: Gauge,
}

impl ReplicaMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<ReplicaMetrics, ReplicaError> {
        let name = |n: &str, help: &str| Opts::new(format!("replica_{n}"), help);
        let metrics = ReplicaMetrics {
            commands_total: IntCounter::with_opts(name(
                "commands_total",
                "Journal commands replicated to the database.",
            ))?,
            events_total: IntCounter::with_opts(name(
                "events_total",
                "Engine events of the replicated commands.",
            ))?,
            rows_total: IntCounter::with_opts(name("rows_total", "Rows written to the replica."))?,
            trades_total: IntCounter::with_opts(name(
                "trades_total",
                "Trades written to the replica.",
            ))?,
            batches_total: IntCounter::with_opts(name(
                "batches_total",
                "Replication transactions committed.",
            ))?,
            errors_total: IntCounterVec::new(
                name("errors_total", "Replication database errors, by operation."),
                &["operation"],
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "replica_commit_seconds",
                    "Time to write and commit one replication batch.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            high_water_seq: IntGauge::with_opts(name(
                "high_water_seq",
                "Last journal sequence fully replicated.",
            ))?,
            lag_commands: IntGauge::with_opts(name(
                "lag_commands",
                "Durable journal commands not yet replicated.",
            ))?,
            lag_seconds: Gauge::with_opts(name(
                "lag_seconds",
                "Age of the oldest unreplicated command (command timestamp to now).",
            ))?,
        };
        metrics.register_in(registry)?;
        Ok(metrics)
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.commands_total.clone()),
            Box::new(self.events_total.clone()),
            Box::new(self.rows_total.clone()),
            Box::new(self.trades_total.clone()),
            Box::new(self.batches_total.clone()),
            Box::new(self.errors_total.clone()),
            Box::new(self.commit_seconds.clone()),
            Box::new(self.high_water_seq.clone()),
            Box::new(self.lag_commands.clone()),
            Box::new(self.lag_seconds.clone()),
        ]
    }

    fn register_in(&self, registry: &Registry) -> Result<(), ReplicaError> {
        for collector in self.collectors() {
            if let Err(error) = registry.register(collector) {
                // Leave the registry as it was: a later replicator may register again.
                self.unregister(registry);
                return Err(error.into());
            }
        }
        Ok(())
    }

    /// Removes the metrics from `registry` (when the replicator stops, so another may start
    /// with the same registry).
    pub fn unregister(&self, registry: &Registry) {
        for collector in self.collectors() {
            // Absent (never registered) is fine: this also cleans up a partial registration.
            let _ = registry.unregister(collector);
        }
    }
}
