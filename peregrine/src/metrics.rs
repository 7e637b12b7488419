//! Metrics: one Prometheus registry for the whole appliance, served as text on `/metrics`.
//!
//! Every metric name is prefixed with `peregrine_`. Parts register their collectors on
//! [`Metrics::registry`] at start-up, e.g.
//! `metrics.registry().register(Box::new(fsync_seconds.clone()))?` for a histogram named
//! `journal_fsync_seconds`, exposed as `peregrine_journal_fsync_seconds`. Label values must come
//! from small fixed sets (route templates, status codes), never from request data, so the
//! number of series stays bounded.

use std::time::{SystemTime, UNIX_EPOCH};

use peregrine_hotpath::latency::{LATENCY_BUCKETS, LatencySnapshot};

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Prefix of every metric name.
pub const NAMESPACE: &str = "peregrine";

/// Registers a counter named `name` (prefixed on export) in `registry`.
pub fn register_counter(
    registry: &Registry,
    name: &str,
    help: &str,
) -> Result<prometheus::IntCounter, prometheus::Error> {
    let counter = prometheus::IntCounter::with_opts(Opts::new(name, help))?;
    registry.register(Box::new(counter.clone()))?;
    Ok(counter)
}

/// Registers a gauge named `name` (prefixed on export) in `registry`.
pub fn register_gauge(
    registry: &Registry,
    name: &str,
    help: &str,
) -> Result<prometheus::IntGauge, prometheus::Error> {
    let gauge = prometheus::IntGauge::with_opts(Opts::new(name, help))?;
    registry.register(Box::new(gauge.clone()))?;
    Ok(gauge)
}

/// Advances a counter mirroring a monotonic atomic to `now` (a counter only goes up).
pub fn advance_counter(counter: &prometheus::IntCounter, now: u64) {
    let seen = counter.get();
    if now > seen {
        counter.inc_by(now - seen);
    }
}

/// HTTP latency buckets in seconds: 50 µs doubling to ~1.6 s (16 buckets). The operator
/// endpoints answer in microseconds; the upper buckets catch a stalled runtime.
/// A `_seconds` histogram read from [`LatencyBuckets`] kept by a thread that calls no metrics
/// library (the journal writer): at each scrape `read` takes a snapshot and this turns its
/// counts into Prometheus's cumulative buckets.
pub struct BucketsCollector {
    desc: prometheus::core::Desc,
    read: Box<dyn Fn() -> LatencySnapshot + Send + Sync>,
}

impl BucketsCollector {
    /// Registers a histogram named `name` (prefixed on export) read by `read`.
    pub fn register(
        registry: &Registry,
        name: &str,
        help: &str,
        read: impl Fn() -> LatencySnapshot + Send + Sync + 'static,
    ) -> Result<(), prometheus::Error> {
        let desc = prometheus::core::Desc::new(
            name.to_owned(),
            help.to_owned(),
            Vec::new(),
            Default::default(),
        )?;
        registry.register(Box::new(BucketsCollector {
            desc,
            read: Box::new(read),
        }))
    }
}

impl prometheus::core::Collector for BucketsCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use prometheus::proto::{Bucket, Histogram, Metric, MetricFamily, MetricType};
        let snapshot = (self.read)();
        let mut cumulative = 0_u64;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS);
        for (index, count) in snapshot.counts[..LATENCY_BUCKETS].iter().enumerate() {
            cumulative = cumulative.saturating_add(*count);
            let mut bucket = Bucket::default();
            bucket.set_cumulative_count(cumulative);
            bucket.set_upper_bound(snapshot.upper_bound_ns(index) as f64 / 1e9);
            buckets.push(bucket);
        }
        let total = cumulative.saturating_add(snapshot.counts[LATENCY_BUCKETS]);
        let mut histogram = Histogram::default();
        histogram.set_sample_count(total);
        histogram.set_sample_sum(snapshot.sum_ns as f64 / 1e9);
        histogram.set_bucket(buckets);
        let mut metric = Metric::default();
        metric.set_histogram(histogram);
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::HISTOGRAM);
        family.set_metric(vec![metric]);
        vec![family]
    }
}

fn http_duration_buckets_s() -> Vec<f64> {
    (0..16).map(|i| 50e-6 * f64::from(1u32 << i)).collect()
}

/// Why metrics could not be set up or encoded.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics: {0}")]
    Prometheus(#[from] prometheus::Error),
    #[error("metrics: encoded text is not UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
}

/// The registry and the metrics the binary itself owns. Cloning shares them.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
    /// Copied from `logging::lines_dropped` at every scrape.
    log_lines_dropped_total: prometheus::IntCounter,
}

/// Metrics recorded by the HTTP middleware (`crate::http::middleware`).
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    /// `peregrine_http_requests_total{method, route, status}`.
    pub requests_total: IntCounterVec,
    /// `peregrine_http_request_duration_seconds{method, route}`.
    pub request_duration_seconds: HistogramVec,
}

impl Metrics {
    /// Creates the registry with build info, start time and the HTTP metrics.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new_custom(Some(NAMESPACE.to_owned()), None)?;

        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "Always 1; labels say which build is running."),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(build_info))?;

        let start_time_seconds = Gauge::new(
            "start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
        )?;
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        start_time_seconds.set(now_s);
        registry.register(Box::new(start_time_seconds))?;

        let requests_total = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route and status.",
            ),
            &["method", "route", "status"],
        )?;
        registry.register(Box::new(requests_total.clone()))?;

        let request_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from request received to response headers ready, in seconds.",
            )
            .buckets(http_duration_buckets_s()),
            &["method", "route"],
        )?;
        registry.register(Box::new(request_duration_seconds.clone()))?;

        let log_lines_dropped_total = register_counter(
            &registry,
            "log_lines_dropped_total",
            "Log lines dropped because stderr refused them (a full disk, a closed pipe).",
        )?;
        Ok(Self {
            registry,
            log_lines_dropped_total,
            http: HttpMetrics {
                requests_total,
                request_duration_seconds,
            },
        })
    }

    /// The shared registry: register a part's collectors here.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn http(&self) -> &HttpMetrics {
        &self.http
    }

    /// Every registered metric in the Prometheus text exposition format.
    pub fn encode_text(&self) -> Result<String, MetricsError> {
        advance_counter(
            &self.log_lines_dropped_total,
            crate::logging::lines_dropped(),
        );
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8(buffer)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_build_info_and_http_metrics() {
        let metrics = Metrics::new().unwrap();
        metrics
            .http()
            .requests_total
            .with_label_values(&["GET", "/x", "200"])
            .inc();
        metrics
            .http()
            .request_duration_seconds
            .with_label_values(&["GET", "/x"])
            .observe(0.001);
        let text = metrics.encode_text().unwrap();
        assert!(text.contains("peregrine_build_info{version=\""), "{text}");
        assert!(text.contains(
            "peregrine_http_requests_total{method=\"GET\",route=\"/x\",status=\"200\"} 1"
        ));
        assert!(text.contains("peregrine_http_request_duration_seconds_bucket"));
    }

    #[test]
    fn buckets_are_increasing_and_bounded() {
        let buckets = http_duration_buckets_s();
        assert!(buckets.windows(2).all(|w| w[0] < w[1]));
        assert!(buckets.last().is_some_and(|&last| last > 1.0 && last < 2.0));
    }
}
