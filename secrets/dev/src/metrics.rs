//! Prometheus metrics of the dev store (`devsecrets_` prefix; counters `_total`, durations
//! `_seconds`).

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

/// The store's metrics.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    /// Requests answered, by HTTP status.
    pub(crate) requests_total: IntCounterVec,
    /// Request latency, body read to answer.
    pub(crate) request_duration_seconds: Histogram,
    /// State saves by outcome (`ok`, `failed`).
    pub(crate) saves_total: IntCounterVec,
    /// Time of one save: seal, write, fsync, rename, directory fsync.
    pub(crate) save_seconds: Histogram,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn new(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let buckets = prometheus::exponential_buckets(0.000_05, 2.0, 16)?;
        let metrics = Metrics {
            requests_total: IntCounterVec::new(
                Opts::new(
                    "devsecrets_requests_total",
                    "dev secret store requests answered",
                ),
                &["status"],
            )?,
            request_duration_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "devsecrets_request_duration_seconds",
                    "dev secret store request latency",
                )
                .buckets(buckets.clone()),
            )?,
            saves_total: IntCounterVec::new(
                Opts::new("devsecrets_state_saves_total", "state saves by outcome"),
                &["outcome"],
            )?,
            save_seconds: Histogram::with_opts(
                HistogramOpts::new("devsecrets_state_save_seconds", "one durable state save")
                    .buckets(buckets),
            )?,
        };
        registry.register(Box::new(metrics.requests_total.clone()))?;
        registry.register(Box::new(metrics.request_duration_seconds.clone()))?;
        registry.register(Box::new(metrics.saves_total.clone()))?;
        registry.register(Box::new(metrics.save_seconds.clone()))?;
        Ok(metrics)
    }
}
