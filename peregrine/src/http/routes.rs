//! Handlers for the operator routes.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// Liveness: 200 while the process can answer at all.
pub const ALIVE_PATH: &str = "/health/alive";
/// Readiness: 200 when every registered check passes, 503 otherwise; the body lists checks.
pub const READY_PATH: &str = "/health/ready";
/// Prometheus text exposition.
pub const METRICS_PATH: &str = "/metrics";

/// Content type of the Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(ALIVE_PATH, get(alive))
        .route(READY_PATH, get(ready))
        .route(METRICS_PATH, get(metrics))
}

async fn alive() -> &'static str {
    "alive\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    let report = state.readiness.report();
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, report.to_text()).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.encode_text() {
        Ok(text) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
    }
}
