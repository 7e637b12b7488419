//! The operator HTTP server: `/health/alive`, `/health/ready` and `/metrics`.
//!
//! Later parts add their routes with [`Router::merge`] on [`router`]'s result. A layer covers
//! only the routes present when it is applied, so merged parts count their own requests (the
//! control API: `peregrine_control_requests_total`); `peregrine_http_requests_total` counts the
//! operator routes.

pub mod middleware;
pub mod routes;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;

use crate::metrics::Metrics;
use crate::readiness::Readiness;

pub use routes::{
    ALIVE_PATH, METRICS_PATH, READY_PATH, SERVING_PATH, serving_primary, serving_standby,
};

/// Why the HTTP server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http server: {0}")]
    Serve(std::io::Error),
}

/// State shared by the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub metrics: Metrics,
    pub readiness: Readiness,
}

/// The operator routes, instrumented by the metrics middleware.
pub fn router(state: AppState) -> Router {
    let http_metrics = state.metrics.http().clone();
    routes::routes()
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            http_metrics,
            middleware::record_metrics,
        ))
}

/// Binds `addr`. Separate from [`serve`] so the caller learns the bound address (port 0)
/// before serving.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, HttpError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves `router` until `shutdown` completes, then stops accepting and waits for in-flight
/// requests. The caller bounds that wait (`http.shutdown_timeout_ms`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    // With the peer's address: the control API audits it and takes its break-glass token
    // from loopback only.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(HttpError::Serve)
}
