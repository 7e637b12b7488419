//! Prometheus metrics of the REST/WebSocket bridge.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// The bridge's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Requests by route template and status.
    pub requests_total: IntCounterVec,
    /// Request latency by route template.
    pub request_duration_seconds: HistogramVec,
    /// Authentication failures by code.
    pub auth_failures_total: IntCounterVec,
    /// Requests accepted on Barong's weaker `nonce + key` signature (a legacy key's).
    pub legacy_signatures_total: IntCounter,
    /// Open WebSocket connections.
    pub ws_connections: IntGauge,
    /// WebSocket messages queued to clients.
    pub ws_messages_total: IntCounter,
    /// WebSocket connections closed because they fell behind.
    pub ws_slow_consumers_total: IntCounter,
    /// Access-token renewals on open private WebSocket connections, by outcome.
    pub ws_token_renewals_total: IntCounterVec,
    /// Private WebSocket connections closed because their access token expired.
    pub ws_token_expiries_total: IntCounter,
    /// Times the market-data feed fell behind the engine and re-seeded.
    pub feed_resyncs_total: IntCounter,
    /// Time to apply one batch of commands to market data and fan it out.
    pub feed_batch_seconds: Histogram,
    /// API-key changes applied from identity's key feed.
    pub key_changes_total: IntCounter,
    /// Polls of identity's key feed that failed.
    pub key_feed_failures_total: IntCounter,
    /// TLS handshakes on `[rest.tls]` by outcome (`ok`, `failed`, `timeout`, `refused`).
    pub tls_handshakes_total: IntCounterVec,
    /// Time from a TCP connection's accept to its finished TLS handshake.
    pub tls_handshake_seconds: Histogram,
}

impl Metrics {
    /// Creates and registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let buckets = prometheus::exponential_buckets(0.000_02, 2.0, 18)?;
        let metrics = Metrics {
            requests_total: IntCounterVec::new(
                Opts::new("rest_requests_total", "REST requests answered"),
                &["route", "status"],
            )?,
            request_duration_seconds: HistogramVec::new(
                HistogramOpts::new("rest_request_duration_seconds", "REST request latency")
                    .buckets(buckets.clone()),
                &["route"],
            )?,
            auth_failures_total: IntCounterVec::new(
                Opts::new(
                    "rest_auth_failures_total",
                    "requests refused by API-key authentication",
                ),
                &["code"],
            )?,
            legacy_signatures_total: IntCounter::new(
                "rest_legacy_signatures_total",
                "requests accepted on Barong's nonce + key signature (legacy keys only)",
            )?,
            ws_connections: IntGauge::new("ws_connections", "open WebSocket connections")?,
            ws_messages_total: IntCounter::new(
                "ws_messages_total",
                "WebSocket messages queued to clients",
            )?,
            ws_slow_consumers_total: IntCounter::new(
                "ws_slow_consumers_total",
                "WebSocket connections closed for falling behind",
            )?,
            ws_token_renewals_total: IntCounterVec::new(
                Opts::new(
                    "ws_token_renewals_total",
                    "access-token renewals on open private WebSocket connections",
                ),
                &["outcome"],
            )?,
            ws_token_expiries_total: IntCounter::new(
                "ws_token_expiries_total",
                "private WebSocket connections closed when their access token expired",
            )?,
            feed_resyncs_total: IntCounter::new(
                "market_data_resyncs_total",
                "market-data feed re-seeds after falling behind the engine",
            )?,
            feed_batch_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "market_data_batch_seconds",
                    "time to derive and fan out one batch of commands",
                )
                .buckets(buckets.clone()),
            )?,
            tls_handshakes_total: IntCounterVec::new(
                Opts::new(
                    "rest_tls_handshakes_total",
                    "TLS handshakes on the REST listener, by outcome",
                ),
                &["outcome"],
            )?,
            tls_handshake_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "rest_tls_handshake_seconds",
                    "time from a connection's accept to its finished TLS handshake",
                )
                .buckets(buckets),
            )?,
            key_changes_total: IntCounter::new(
                "rest_key_changes_total",
                "API-key changes applied from identity's key feed",
            )?,
            key_feed_failures_total: IntCounter::new(
                "rest_key_feed_failures_total",
                "polls of identity's key feed that failed",
            )?,
        };
        registry.register(Box::new(metrics.requests_total.clone()))?;
        registry.register(Box::new(metrics.request_duration_seconds.clone()))?;
        registry.register(Box::new(metrics.auth_failures_total.clone()))?;
        registry.register(Box::new(metrics.legacy_signatures_total.clone()))?;
        registry.register(Box::new(metrics.ws_connections.clone()))?;
        registry.register(Box::new(metrics.ws_messages_total.clone()))?;
        registry.register(Box::new(metrics.ws_slow_consumers_total.clone()))?;
        registry.register(Box::new(metrics.ws_token_renewals_total.clone()))?;
        // Both outcomes exported from the start (a dashboard reads them before any renewal).
        for outcome in ["accepted", "refused"] {
            metrics
                .ws_token_renewals_total
                .with_label_values(&[outcome]);
        }
        registry.register(Box::new(metrics.ws_token_expiries_total.clone()))?;
        registry.register(Box::new(metrics.feed_resyncs_total.clone()))?;
        registry.register(Box::new(metrics.feed_batch_seconds.clone()))?;
        registry.register(Box::new(metrics.key_changes_total.clone()))?;
        registry.register(Box::new(metrics.key_feed_failures_total.clone()))?;
        registry.register(Box::new(metrics.tls_handshakes_total.clone()))?;
        registry.register(Box::new(metrics.tls_handshake_seconds.clone()))?;
        Ok(metrics)
    }
}
