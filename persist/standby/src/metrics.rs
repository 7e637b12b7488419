//! Prometheus metrics of both sides (`ship_*` on the primary, `standby_*` on a standby; the
//! appliance's registry adds the `peregrine_` prefix).

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use prometheus::{Registry, core::Collector};

fn register<T: Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> Result<T, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// The primary's shipping metrics.
#[derive(Clone, Debug)]
pub struct ShipMetrics {
    /// Standbys connected now.
    pub standbys: IntGauge,
    /// Sessions by outcome: `accepted`, `tls_refused`, a refusal's name, `closed`, `failed`.
    pub sessions: IntCounterVec,
    /// Records sent (to all standbys).
    pub records: IntCounter,
    /// Highest sequence a standby acknowledged as durable.
    pub replicated_seq: IntGauge,
    /// Durable records no standby has acknowledged yet.
    pub lag_records: IntGauge,
    /// Age of the oldest durable record no standby has acknowledged.
    pub lag_seconds: Gauge,
    /// A batch's send to its acknowledgement (the standby's durable write included).
    pub ack_seconds: Histogram,
    /// Snapshots sent to standbys whose start the journal no longer held.
    pub snapshots: IntCounter,
    /// Reading and sending one such snapshot.
    pub snapshot_seconds: Histogram,
    /// Durable records retention keeps for the slowest connected standby (0: none held back).
    pub retention_held_records: IntGauge,
    /// Standbys that fell more than `retention_records_max` behind and stopped holding
    /// retention back (each then catches up from a snapshot).
    pub retention_released: IntCounter,
}

impl ShipMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<ShipMetrics, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(format!("ship_{name}"), help);
        Ok(ShipMetrics {
            standbys: register(
                registry,
                IntGauge::with_opts(opts("standbys_connected", "Standbys connected now."))?,
            )?,
            sessions: register(
                registry,
                IntCounterVec::new(
                    opts("sessions_total", "Standby sessions by outcome."),
                    &["outcome"],
                )?,
            )?,
            records: register(
                registry,
                IntCounter::with_opts(opts("records_total", "Journal records shipped."))?,
            )?,
            replicated_seq: register(
                registry,
                IntGauge::with_opts(opts(
                    "replicated_seq",
                    "Highest sequence a standby acknowledged as durable.",
                ))?,
            )?,
            lag_records: register(
                registry,
                IntGauge::with_opts(opts(
                    "lag_records",
                    "Durable records no standby has acknowledged yet.",
                ))?,
            )?,
            lag_seconds: register(
                registry,
                Gauge::with_opts(opts(
                    "lag_seconds",
                    "Age of the oldest durable record no standby has acknowledged.",
                ))?,
            )?,
            ack_seconds: register(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "ship_ack_seconds",
                        "A shipped batch's send to the standby's durable acknowledgement.",
                    )
                    .buckets(prometheus::exponential_buckets(20e-6, 2.0, 18)?),
                )?,
            )?,
            snapshots: register(
                registry,
                IntCounter::with_opts(opts(
                    "snapshots_total",
                    "Snapshots sent to standbys whose start the journal no longer held.",
                ))?,
            )?,
            snapshot_seconds: register(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "ship_snapshot_seconds",
                        "Reading a snapshot and sending it to a standby that catches up.",
                    )
                    .buckets(prometheus::exponential_buckets(1e-3, 2.0, 16)?),
                )?,
            )?,
            retention_held_records: register(
                registry,
                IntGauge::with_opts(opts(
                    "retention_held_records",
                    "Durable records retention keeps for the slowest connected standby.",
                ))?,
            )?,
            retention_released: register(
                registry,
                IntCounter::with_opts(opts(
                    "retention_released_total",
                    "Standbys too far behind to hold retention back (they take a snapshot).",
                ))?,
            )?,
        })
    }
}

/// A standby's metrics.
#[derive(Clone, Debug)]
pub struct StandbyMetrics {
    /// 1 while connected to the primary.
    pub connected: IntGauge,
    /// Sessions that ended in an error (each reconnects).
    pub sessions_failed: IntCounter,
    /// Records received and journaled.
    pub records: IntCounter,
    /// The standby journal's durable sequence.
    pub durable_seq: IntGauge,
    /// The primary's durable sequence, as last heard.
    pub primary_durable_seq: IntGauge,
    /// Records the primary has made durable that this standby has not.
    pub lag_records: IntGauge,
    /// Age of the oldest such record.
    pub lag_seconds: Gauge,
    /// Sessions ended because the primary's term was older than one already seen.
    pub deposed_refused: IntCounter,
    /// Records refused because their term, or their sender's, was older than one already
    /// seen (each ends its session).
    pub stale_term_records: IntCounter,
    /// Snapshots taken from the primary (its journal no longer held this standby's start).
    pub snapshots_installed: IntCounter,
}

impl StandbyMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<StandbyMetrics, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(format!("standby_{name}"), help);
        let gauge = |name: &str, help: &str| {
            IntGauge::with_opts(opts(name, help)).and_then(|m| register(registry, m))
        };
        Ok(StandbyMetrics {
            connected: gauge("connected", "1 while connected to the primary.")?,
            sessions_failed: register(
                registry,
                IntCounter::with_opts(opts(
                    "sessions_failed_total",
                    "Sessions with the primary that failed (each reconnects).",
                ))?,
            )?,
            records: register(
                registry,
                IntCounter::with_opts(opts("records_total", "Records received and journaled."))?,
            )?,
            durable_seq: gauge("durable_seq", "The standby journal's durable sequence.")?,
            primary_durable_seq: gauge(
                "primary_durable_seq",
                "The primary's durable sequence, as last heard.",
            )?,
            lag_records: gauge(
                "lag_records",
                "Records durable on the primary and not yet on this standby.",
            )?,
            lag_seconds: register(
                registry,
                Gauge::with_opts(opts(
                    "lag_seconds",
                    "Age of the oldest record durable on the primary and not on this standby.",
                ))?,
            )?,
            deposed_refused: register(
                registry,
                IntCounter::with_opts(opts(
                    "deposed_refused_total",
                    "Sessions refused because the primary's term was older than one seen.",
                ))?,
            )?,
            stale_term_records: register(
                registry,
                IntCounter::with_opts(opts(
                    "stale_term_records_total",
                    "Records refused because their term or their sender's was older than one seen.",
                ))?,
            )?,
            snapshots_installed: register(
                registry,
                IntCounter::with_opts(opts(
                    "snapshots_installed_total",
                    "Snapshots taken from the primary to catch up (its journal no longer held \
                     this standby's start).",
                ))?,
            )?,
        })
    }
}
