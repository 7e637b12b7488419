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
/// Serving, what a load balancer asks of a node of a pair: on the primary, its readiness
/// (`/health/ready`); on a standby, 503 however well it follows (its gateways are closed
/// until it is promoted). A standby's `/health/ready` says whether it keeps up instead.
pub const SERVING_PATH: &str = "/health/serving";

/// Content type of the Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(ALIVE_PATH, get(alive))
        .route(READY_PATH, get(ready))
        .route(METRICS_PATH, get(metrics))
}

/// [`SERVING_PATH`] on a node whose gateways are open: its readiness decides.
pub fn serving_primary(state: AppState) -> Router {
    Router::new()
        .route(SERVING_PATH, get(ready))
        .with_state(state)
}

/// [`SERVING_PATH`] on a standby: never serving.
pub fn serving_standby() -> Router {
    Router::new().route(SERVING_PATH, get(standby_serving))
}

async fn standby_serving() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "standby: its gateways open only once it is promoted\n",
    )
        .into_response()
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
