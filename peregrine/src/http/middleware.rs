//! Tower middleware counting and timing every HTTP request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::HttpMetrics;

/// Route label for requests no route matched: the raw path would let any client create
/// unbounded label values.
const UNMATCHED_ROUTE: &str = "unmatched";

/// Records `peregrine_http_requests_total` and `peregrine_http_request_duration_seconds`,
/// labelled by the route template (not the raw path) so label values stay bounded.
pub async fn record_metrics(
    State(metrics): State<HttpMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || UNMATCHED_ROUTE.to_owned(),
        |path| path.as_str().to_owned(),
    );

    let response = next.run(request).await;

    let status = response.status();
    metrics
        .request_duration_seconds
        .with_label_values(&[method, route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests_total
        .with_label_values(&[method, route.as_str(), status.as_str()])
        .inc();
    response
}

/// The standard methods by name, anything else as `other` (bounded label values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
