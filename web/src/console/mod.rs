//! The operator console at `/console`, served by `peregrine up` on the operator HTTP listener:
//! the same origin as the control API (`/control/v1`), so the console needs no CORS and no
//! cookie. It logs in through `POST /control/v1/login` (e-mail, password, TOTP code), keeps the
//! short-lived access token and the session id that renews it in memory only (a reload logs
//! out; nothing is written to storage), and sends `Authorization: Bearer` on every call, which
//! no other site's page can make the browser attach (no CSRF surface). Every rule (role
//! permissions, four-eyes, 2FA) is the control API's: the console only shows what it answers.
//!
//! Pages: status with live market state (polled every 3 s), halt and resume; the withdrawal
//! requests awaiting approval; adjustments (propose, approve, reject); users (search, lock,
//! unlock, sessions); orders and trades by account; the audit log with "verify chain"; the
//! reports (balances and liabilities, on-chain assets against them, fee revenue, daily volume),
//! each with a CSV download (fetched with the token, offered as a `blob:` link).
//!
//! Stack: as the retail page (`crate`'s docs): one HTML file, one stylesheet, one vanilla ES
//! module, embedded with `include_str!`; no npm build, so the workspace still builds offline
//! from crates.io alone and adds nothing to the first build. Forms are real `<form>`s (Enter
//! submits), every section has an access key (Alt+1..7), focus moves to a page's heading when
//! it opens, and results are plain `<table>`s with header cells.

use axum::Router;
use axum::routing::get;

use crate::{WebMetrics, asset};

/// The console's page.
const CONSOLE_HTML: &str = include_str!("../../static/console/index.html");
/// Its stylesheet.
const CONSOLE_CSS: &str = include_str!("../../static/console/console.css");
/// Its script (an ES module).
const CONSOLE_JS: &str = include_str!("../../static/console/console.js");

/// The console's routes, for the operator listener: `/console`, `/console/console.css`,
/// `/console/console.js`, counted in `web_requests_total{route}` like the retail page's.
pub fn router(metrics: WebMetrics) -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { asset("text/html; charset=utf-8", CONSOLE_HTML) }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
        .route(
            "/console/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
        .route_layer(axum::middleware::from_fn_with_state(metrics, crate::track))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page loads only its own files (the CSP allows nothing else) and writes nothing
    /// the control API answers as HTML (`textContent` only).
    #[test]
    fn the_console_loads_its_own_files_and_never_writes_html() {
        assert!(CONSOLE_HTML.contains("src=\"/console/console.js\""));
        assert!(CONSOLE_HTML.contains("href=\"/console/console.css\""));
        assert!(!CONSOLE_HTML.contains("<script>"), "no inline script");
        assert!(!CONSOLE_JS.contains("innerHTML"), "DOM text only");
        assert!(
            !CONSOLE_JS.contains("localStorage"),
            "secrets stay in memory"
        );
        assert!(
            !CONSOLE_JS.contains("sessionStorage"),
            "secrets stay in memory"
        );
    }
}
