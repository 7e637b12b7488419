//! Prometheus metrics of the control API, registered like the REST bridge's on the appliance's
//! registry: requests by route and status, and their duration by route. The route label is the
//! matched route template (`/control/v1/markets/{market}/{action}`), never the raw path, so a
//! caller cannot create series; unknown paths under `/control/v1` match the catch-all template.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Route label of a request no route matched (never seen under the control router's
/// catch-all, kept for safety).
const UNMATCHED_ROUTE: &str = "unmatched";

/// Control request latency buckets in seconds: 50 µs doubling to ~13 s (19 buckets). A command
/// waits for its journal write; the top buckets reach the 10 s outcome timeout.
fn duration_buckets_s() -> Vec<f64> {
    (0..19).map(|i| 50e-6 * f64::from(1u32 << i)).collect()
}

/// The control API's metrics. Cloning shares them.
#[derive(Clone, Debug)]
pub struct ControlMetrics {
    /// `control_requests_total{route, status}`.
    requests_total: IntCounterVec,
    /// `control_request_duration_seconds{route}`.
    request_duration_seconds: HistogramVec,
}

impl ControlMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<ControlMetrics, prometheus::Error> {
        let metrics = ControlMetrics {
            requests_total: IntCounterVec::new(
                Opts::new(
                    "control_requests_total",
                    "control API requests answered, by route template and status",
                ),
                &["route", "status"],
            )?,
            request_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "control_request_duration_seconds",
                    "control API request time, from request to response headers, by route",
                )
                .buckets(duration_buckets_s()),
                &["route"],
            )?,
        };
        registry.register(Box::new(metrics.requests_total.clone()))?;
        registry.register(Box::new(metrics.request_duration_seconds.clone()))?;
        Ok(metrics)
    }
}

/// Counts and times every control request by its route template.
pub(crate) async fn track(
    State(metrics): State<ControlMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || UNMATCHED_ROUTE.to_owned(),
        |path| path.as_str().to_owned(),
    );
    let response = next.run(request).await;
    metrics
        .request_duration_seconds
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests_total
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_increasing_and_reach_the_outcome_timeout() {
        let buckets = duration_buckets_s();
        assert!(buckets.windows(2).all(|w| w[0] < w[1]));
        assert!(
            buckets
                .last()
                .is_some_and(|&last| last > 10.0 && last < 20.0)
        );
    }
}
