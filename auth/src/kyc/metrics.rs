//! Prometheus metrics of KYC (`auth_kyc_` prefix). Request counts and latencies of the KYC
//! routes are the identity API's `auth_requests_total` and `auth_request_duration_seconds`,
//! by route template.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

/// KYC's metrics.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KycMetrics {
    /// Document uploads and reads by operation and outcome (`ok` or the refusal's code).
    pub documents_total: IntCounterVec,
    /// Time to seal a document: data key from OpenBao, AES-GCM, store.
    pub document_seal_seconds: Histogram,
    /// Time to open a document: data key unwrapped by OpenBao, AES-GCM.
    pub document_open_seconds: Histogram,
    /// Webhook calls by outcome (`ok` or the refusal's code).
    pub webhooks_total: IntCounterVec,
    /// Reads of the webhook secret from OpenBao KV by outcome (`unchanged`, `rotated` or the
    /// failure's code).
    pub webhook_secret_reads_total: IntCounterVec,
    /// Profile transitions by the state reached.
    pub profile_transitions_total: IntCounterVec,
    /// Level gate decisions by action and outcome.
    pub gate_decisions_total: IntCounterVec,
}

impl KycMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<KycMetrics, prometheus::Error> {
        let buckets = prometheus::exponential_buckets(0.000_1, 2.0, 16)?;
        let metrics = KycMetrics {
            documents_total: IntCounterVec::new(
                Opts::new(
                    "auth_kyc_documents_total",
                    "KYC document operations by outcome",
                ),
                &["operation", "outcome"],
            )?,
            document_seal_seconds: Histogram::with_opts(
                HistogramOpts::new("auth_kyc_document_seal_seconds", "KYC document seal time")
                    .buckets(buckets.clone()),
            )?,
            document_open_seconds: Histogram::with_opts(
                HistogramOpts::new("auth_kyc_document_open_seconds", "KYC document open time")
                    .buckets(buckets),
            )?,
            webhooks_total: IntCounterVec::new(
                Opts::new(
                    "auth_kyc_webhooks_total",
                    "KYC provider webhook calls by outcome",
                ),
                &["outcome"],
            )?,
            webhook_secret_reads_total: IntCounterVec::new(
                Opts::new(
                    "auth_kyc_webhook_secret_reads_total",
                    "reads of the KYC webhook secret from OpenBao KV by outcome",
                ),
                &["outcome"],
            )?,
            profile_transitions_total: IntCounterVec::new(
                Opts::new(
                    "auth_kyc_profile_transitions_total",
                    "KYC profile transitions by the state reached",
                ),
                &["state"],
            )?,
            gate_decisions_total: IntCounterVec::new(
                Opts::new("auth_kyc_gate_decisions_total", "KYC level gate decisions"),
                &["action", "outcome"],
            )?,
        };
        registry.register(Box::new(metrics.documents_total.clone()))?;
        registry.register(Box::new(metrics.document_seal_seconds.clone()))?;
        registry.register(Box::new(metrics.document_open_seconds.clone()))?;
        registry.register(Box::new(metrics.webhooks_total.clone()))?;
        registry.register(Box::new(metrics.webhook_secret_reads_total.clone()))?;
        // Exported before the first read (a dashboard reads them; the webhook may be off).
        for outcome in ["unchanged", "rotated"] {
            metrics
                .webhook_secret_reads_total
                .with_label_values(&[outcome]);
        }
        registry.register(Box::new(metrics.profile_transitions_total.clone()))?;
        registry.register(Box::new(metrics.gate_decisions_total.clone()))?;
        Ok(metrics)
    }
}
