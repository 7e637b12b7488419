//! The publisher's Prometheus metrics (`fanout_*`; the appliance's registry adds the
//! `peregrine_` prefix), updated by the publisher thread only.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};

/// The metrics.
#[derive(Clone, Debug)]
pub struct FanoutMetrics {
    /// Commands whose changes were published.
    pub commands: IntCounter,
    /// Messages acknowledged by JetStream.
    pub messages: IntCounter,
    /// Payload bytes published.
    pub bytes: IntCounter,
    /// Failed sessions (each starts over from what the stream holds).
    pub errors: IntCounter,
    /// 1 while a session is connected.
    pub connected: IntGauge,
    /// The last command all of whose messages are in the stream.
    pub published_seq: IntGauge,
    /// Book snapshots written to the bucket.
    pub snapshots: IntCounter,
    /// Book snapshots not written (too large for a message).
    pub snapshot_errors: IntCounter,
    /// Time to build and write one snapshot.
    pub snapshot_seconds: Histogram,
}

impl FanoutMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<FanoutMetrics, prometheus::Error> {
        let counter = |name: &str, help: &str| {
            IntCounter::with_opts(Opts::new(format!("fanout_{name}"), help))
        };
        let gauge =
            |name: &str, help: &str| IntGauge::with_opts(Opts::new(format!("fanout_{name}"), help));
        let metrics = FanoutMetrics {
            commands: counter("commands_total", "Commands whose changes were published.")?,
            messages: counter("messages_total", "Messages acknowledged by JetStream.")?,
            bytes: counter("bytes_total", "Payload bytes published.")?,
            errors: counter(
                "errors_total",
                "Fan-out sessions that failed and started over.",
            )?,
            connected: gauge("connected", "1 while the publisher is connected to NATS.")?,
            published_seq: gauge(
                "published_seq",
                "The last command all of whose messages are in the stream.",
            )?,
            snapshots: counter("snapshots_total", "Book snapshots written to the bucket.")?,
            snapshot_errors: counter(
                "snapshot_errors_total",
                "Book snapshots not written because they exceed a message.",
            )?,
            snapshot_seconds: Histogram::with_opts(HistogramOpts::new(
                "fanout_snapshot_seconds",
                "Time to build and write one book snapshot.",
            ))?,
        };
        registry.register(Box::new(metrics.snapshots.clone()))?;
        registry.register(Box::new(metrics.snapshot_errors.clone()))?;
        registry.register(Box::new(metrics.snapshot_seconds.clone()))?;
        registry.register(Box::new(metrics.commands.clone()))?;
        registry.register(Box::new(metrics.messages.clone()))?;
        registry.register(Box::new(metrics.bytes.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        registry.register(Box::new(metrics.connected.clone()))?;
        registry.register(Box::new(metrics.published_seq.clone()))?;
        Ok(metrics)
    }
}
