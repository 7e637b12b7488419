//! Prometheus metrics of the identity service (`auth_` prefix; counters `_total`, durations
//! `_seconds`).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

/// The service's metrics.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Metrics {
    /// HTTP requests by route template and status.
    pub requests_total: IntCounterVec,
    /// HTTP request latency by route template.
    pub request_duration_seconds: HistogramVec,
    /// Logins by outcome (`ok` or the error code).
    pub logins_total: IntCounterVec,
    /// Time of one argon2id hash or verification.
    pub password_hash_seconds: Histogram,
    /// Mails by outcome (`sent`, `logged`, `failed`).
    pub mails_total: IntCounterVec,
    /// Audit records by outcome (`allowed`, `denied`).
    pub audit_records_total: IntCounterVec,
    /// Audit records that could not be written.
    pub audit_failures_total: IntCounter,
    /// Access tokens issued.
    pub tokens_issued_total: IntCounter,
    /// Access tokens signed by the in-memory standby key (OpenBao could not answer).
    pub tokens_standby_signed_total: IntCounter,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let request_buckets = prometheus::exponential_buckets(0.000_1, 2.0, 16)?;
        let hash_buckets = prometheus::exponential_buckets(0.001, 2.0, 12)?;
        let metrics = Metrics {
            requests_total: IntCounterVec::new(
                Opts::new("auth_requests_total", "identity HTTP requests answered"),
                &["route", "status"],
            )?,
            request_duration_seconds: HistogramVec::new(
                HistogramOpts::new("auth_request_duration_seconds", "identity request latency")
                    .buckets(request_buckets),
                &["route"],
            )?,
            logins_total: IntCounterVec::new(
                Opts::new("auth_logins_total", "login attempts by outcome"),
                &["outcome"],
            )?,
            password_hash_seconds: Histogram::with_opts(
                HistogramOpts::new("auth_password_hash_seconds", "argon2id hash or verify time")
                    .buckets(hash_buckets),
            )?,
            mails_total: IntCounterVec::new(
                Opts::new("auth_mails_total", "code mails by outcome"),
                &["outcome"],
            )?,
            audit_records_total: IntCounterVec::new(
                Opts::new(
                    "auth_audit_records_total",
                    "audit records written by outcome",
                ),
                &["outcome"],
            )?,
            audit_failures_total: IntCounter::new(
                "auth_audit_failures_total",
                "audit records that could not be written",
            )?,
            tokens_issued_total: IntCounter::new("auth_tokens_issued_total", "access JWTs issued")?,
            tokens_standby_signed_total: IntCounter::new(
                "auth_tokens_standby_signed_total",
                "access JWTs signed by the standby key while OpenBao could not answer",
            )?,
        };
        registry.register(Box::new(metrics.requests_total.clone()))?;
        registry.register(Box::new(metrics.request_duration_seconds.clone()))?;
        registry.register(Box::new(metrics.logins_total.clone()))?;
        registry.register(Box::new(metrics.password_hash_seconds.clone()))?;
        registry.register(Box::new(metrics.mails_total.clone()))?;
        registry.register(Box::new(metrics.audit_records_total.clone()))?;
        registry.register(Box::new(metrics.audit_failures_total.clone()))?;
        registry.register(Box::new(metrics.tokens_issued_total.clone()))?;
        registry.register(Box::new(metrics.tokens_standby_signed_total.clone()))?;
        Ok(metrics)
    }
}
