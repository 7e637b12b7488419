//! The retail trading page (Baseapp's job, minimal): `GET /` on the REST listener, the same
//! origin as identity (`/api/v2/barong`, session cookie + CSRF token), the Peatio-shaped REST
//! bridge (`/api/v2/peatio`) and the Ranger WebSocket (`/api/v2/ranger/public`), so the page
//! needs no CORS and its cookie never leaves that origin.
//!
//! Owns: the page's static files and the deposit address's QR code (`GET /qr.svg?text=...`).
//! Never does: hold a session, a key or any state; call the engine; proxy anything. The page
//! signs in with identity's cookie, trades with identity's short-lived access JWT (`Bearer`,
//! fetched with the CSRF token) and reads the book and trades from the public Ranger streams;
//! every rule is enforced by the API it calls, never here.
//!
//! Stack: one HTML file, one stylesheet and one vanilla ES module, embedded in the binary with
//! `include_str!`. No npm build step, no front-end framework: nothing to fetch or compile at
//! build time (the workspace builds offline from crates.io alone), nothing added to the first
//! build but this small crate, and the page is 26 KB (uncompressed) that a browser parses in
//! milliseconds. The price is hand-written DOM code; the page is small enough for that to stay
//! readable.
//!
//! Metrics: `web_requests_total{route,status}` and `web_request_duration_seconds{route}`.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use qrcodegen::{QrCode, QrCodeEcc};
use serde::Deserialize;

pub mod console;

/// The page.
const INDEX_HTML: &str = include_str!("../static/index.html");
/// Its stylesheet.
const APP_CSS: &str = include_str!("../static/app.css");
/// Its script (an ES module).
const APP_JS: &str = include_str!("../static/app.js");

/// Longest text `/qr.svg` encodes, bytes: a chain address or a payment URI is under 200.
pub const QR_TEXT_BYTES_MAX: usize = 512;
/// Modules of white border around a QR code (the specification's quiet zone).
const QR_QUIET_MODULES: i32 = 4;

/// Scripts, styles, images and connections from this origin only (the WebSocket included:
/// CSP 3 lets `'self'` match `ws:` on the same host); images also as `data:` (identity's 2FA
/// QR code comes as a base64 PNG); never framed, so no page can overlay the order form.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The page's metrics. Cloning shares them.
#[derive(Clone, Debug)]
pub struct WebMetrics {
    /// `web_requests_total{route, status}`.
    requests_total: IntCounterVec,
    /// `web_request_duration_seconds{route}`.
    request_duration_seconds: HistogramVec,
}

impl WebMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<WebMetrics, prometheus::Error> {
        // 10 µs doubling to ~80 ms: a static file or a QR code, never a wait.
        let buckets: Vec<f64> = (0..14).map(|i| 10e-6 * f64::from(1u32 << i)).collect();
        let metrics = WebMetrics {
            requests_total: IntCounterVec::new(
                Opts::new(
                    "web_requests_total",
                    "retail page requests answered, by route and status",
                ),
                &["route", "status"],
            )?,
            request_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "web_request_duration_seconds",
                    "retail page request time, from request to response headers, by route",
                )
                .buckets(buckets),
                &["route"],
            )?,
        };
        registry.register(Box::new(metrics.requests_total.clone()))?;
        registry.register(Box::new(metrics.request_duration_seconds.clone()))?;
        Ok(metrics)
    }
}

/// The page's routes, for the REST listener: `/`, `/app.css`, `/app.js`, `/qr.svg`.
pub fn router(metrics: WebMetrics) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route("/qr.svg", get(qr_svg))
        .route_layer(axum::middleware::from_fn_with_state(metrics, track))
}

/// A static file with the page's security headers. `no-cache`: revalidated on every load, so
/// a new binary's page is never mixed with an old script.
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /qr.svg?text=...`.
#[derive(Debug, Deserialize)]
struct QrQuery {
    text: String,
}

/// Why a QR code was not drawn (400, plain text: the page shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QrError {
    /// Empty or over [`QR_TEXT_BYTES_MAX`].
    TextLength(usize),
    /// The text does not fit a QR code at medium error correction.
    TooLong,
}

impl std::fmt::Display for QrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TextLength(bytes) => write!(
                f,
                "text is {bytes} bytes: a QR code here holds 1 to {QR_TEXT_BYTES_MAX}"
            ),
            Self::TooLong => f.write_str("text does not fit a QR code"),
        }
    }
}

impl std::error::Error for QrError {}

async fn qr_svg(
    query: Result<Query<QrQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return (StatusCode::BAD_REQUEST, "expected ?text=...").into_response();
    };
    match qr_svg_text(&query.text) {
        Ok(svg) => {
            let mut response = svg.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            );
            response
        }
        Err(error) => (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    }
}

/// `text` as an SVG QR code (medium error correction, quiet zone included): one path of unit
/// squares, scaled by the viewBox, so it stays sharp at any size.
pub fn qr_svg_text(text: &str) -> Result<String, QrError> {
    if text.is_empty() || text.len() > QR_TEXT_BYTES_MAX {
        return Err(QrError::TextLength(text.len()));
    }
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).map_err(|_| QrError::TooLong)?;
    let side = qr.size() + 2 * QR_QUIET_MODULES;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                let (px, py) = (x + QR_QUIET_MODULES, y + QR_QUIET_MODULES);
                path.push_str(&format!("M{px},{py}h1v1h-1z"));
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" \
         fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

/// Counts and times every request by its route (the matched template, never the raw path).
pub(crate) async fn track(
    State(metrics): State<WebMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_qr_code_is_square_and_bounded() {
        let svg = qr_svg_text("0x52908400098527886E0F7030069857D2E4169EE7").unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("viewBox=\"0 0 37 37\""), "{svg}");
        assert_eq!(qr_svg_text(""), Err(QrError::TextLength(0)));
        let long = "x".repeat(QR_TEXT_BYTES_MAX + 1);
        assert_eq!(
            qr_svg_text(&long),
            Err(QrError::TextLength(QR_TEXT_BYTES_MAX + 1))
        );
    }
}
