//! Order entry and balances on a bridge node: the client's signed request is relayed, byte for
//! byte, to the appliance's own REST edge, which authenticates it and answers.
//!
//! ```text
//! client ──signed POST──► bridge (no keys, no engine) ──same method, path, headers, body──►
//!        appliance [rest]: HMAC over nonce + method + path + SHA-256(body), nonce floor, scopes
//! ```
//!
//! Why a relay and not a QUIC session that may act for accounts: the user's signature covers
//! the whole request, so the appliance can verify it itself with the verifier (and the
//! replay-proof nonce floor) it already runs for direct clients. The bridge then holds no key,
//! no secret and no permission at all: a compromised bridge can drop or delay requests but can
//! neither forge an order nor move one to another account, and a wrong signature is refused
//! exactly as on the appliance. A service key on QUIC would instead either trust the bridge to
//! name the account (any bridge compromise = every account) or carry the same signed facts in a
//! new frame and verify them the same way. Order entry is a small share of retail traffic
//! next to market data, so HTTP keep-alive to the appliance is not the bottleneck.
//!
//! What is relayed: every signed request that needs the engine — order entry and cancels
//! (`POST /market/...`), balances — and, when the bridge has no replica, the account's orders,
//! trades and transactions too. The client's address goes along as `X-Forwarded-For`; the
//! appliance sees the bridge's address (an address-allowlisted key is refused through a bridge:
//! it fails closed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Bridge;
use super::error::ApiError;

/// Longest a relayed request may take at the appliance (above its own execute bound).
const RELAY_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on connecting to the appliance.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest answer relayed back (a page of orders is well under it).
pub const RESPONSE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Idle keep-alive connections kept to the appliance.
const POOL_IDLE_MAX: usize = 64;
/// Request headers relayed (what authenticates and describes the request); others stay.
const HEADERS_RELAYED: [HeaderName; 5] = [
    HeaderName::from_static(super::auth::HEADER_KEY),
    HeaderName::from_static(super::auth::HEADER_NONCE),
    HeaderName::from_static(super::auth::HEADER_SIGNATURE),
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
];
/// Peatio's private prefixes.
const MARKET_PREFIX: &str = "/api/v2/peatio/market/";
const ACCOUNT_PREFIX: &str = "/api/v2/peatio/account/";
const BALANCES_PREFIX: &str = "/api/v2/peatio/account/balances";

/// Why a relay could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The appliance's address is not an `http(s)://host:port` base.
    #[error("orders url {0:?} is not an http(s)://host[:port] base without a path")]
    BadUrl(String),
    /// An `https://` address without the certificate to trust for it (this build trusts no
    /// public roots: the appliance's certificate or its CA is named explicitly).
    #[error("{0:?} is https: name the appliance's certificate or CA to trust (appliance_ca_pem)")]
    TrustMissing(String),
    /// A certificate to trust given for a plain `http://` address (it would go unused: the
    /// configuration says TLS where there is none).
    #[error("{0:?} is plain http, yet a certificate to trust is given: use https://")]
    TrustUnused(String),
    /// The certificate file could not be read or holds no certificate.
    #[error("certificate to trust {path}: {reason}")]
    Trust {
        /// The PEM file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("relay client: {0}")]
    Client(#[from] reqwest::Error),
}

/// What [`appliance_client`] makes (a cheap handle: clones share one pool).
pub type ApplianceClient = reqwest::Client;

/// The HTTP client a bridge reaches the appliance with (relayed order entry, identity's JWKS):
/// plain HTTP, or — with `trust`, a PEM file of the appliance's certificate or its CA — HTTPS
/// only, TLS 1.3, trusting that file alone (no public roots: a bridge talks to one appliance).
pub fn appliance_client(trust: Option<&std::path::Path>) -> Result<ApplianceClient, RelayError> {
    let builder = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(RELAY_TIMEOUT)
        .pool_max_idle_per_host(POOL_IDLE_MAX);
    let Some(path) = trust else {
        return Ok(builder.build()?);
    };
    let trust_error = |reason: String| RelayError::Trust {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| trust_error(e.to_string()))?;
    let certificates =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| trust_error(e.to_string()))?;
    if certificates.is_empty() {
        return Err(trust_error("no certificate in the file".to_owned()));
    }
    let mut builder = builder
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .min_tls_version(reqwest::tls::Version::TLS_1_3)
        .https_only(true);
    for certificate in certificates {
        builder = builder.add_root_certificate(certificate);
    }
    Ok(builder.build()?)
}

/// Checks that `url`'s scheme agrees with whether a certificate to trust is given.
pub fn check_scheme(url: &str, trusted: bool) -> Result<(), RelayError> {
    let scheme = reqwest::Url::parse(url)
        .map_err(|_| RelayError::BadUrl(url.to_owned()))?
        .scheme()
        .to_owned();
    match (scheme.as_str(), trusted) {
        ("https", false) => Err(RelayError::TrustMissing(url.to_owned())),
        ("http", true) => Err(RelayError::TrustUnused(url.to_owned())),
        ("http" | "https", _) => Ok(()),
        _ => Err(RelayError::BadUrl(url.to_owned())),
    }
}

/// The appliance's REST edge, as a bridge relays to it.
#[derive(Debug)]
pub struct Relay {
    /// `http(s)://host:port`, no trailing slash.
    base: String,
    client: reqwest::Client,
}

impl Relay {
    /// A relay to the appliance's `[rest]` base, e.g. `http://10.0.0.5:8081`, or
    /// `https://10.0.0.5:8081` with `trust` (see [`appliance_client`]).
    pub fn new(base: &str, trust: Option<&std::path::Path>) -> Result<Relay, RelayError> {
        let parsed = reqwest::Url::parse(base).map_err(|_| RelayError::BadUrl(base.to_owned()))?;
        let valid = parsed.host_str().is_some() && parsed.path() == "/" && parsed.query().is_none();
        if !valid {
            return Err(RelayError::BadUrl(base.to_owned()));
        }
        check_scheme(base, trust.is_some())?;
        Ok(Relay {
            base: base.trim_end_matches('/').to_owned(),
            client: appliance_client(trust)?,
        })
    }
}

/// Whether a bridge relays `method path` (see the module doc).
pub(crate) fn relayed(method: &Method, path: &str, has_replica: bool) -> bool {
    let private = path.starts_with(MARKET_PREFIX) || path.starts_with(ACCOUNT_PREFIX);
    if !private {
        return false;
    }
    *method != Method::GET || path.starts_with(BALANCES_PREFIX) || !has_replica
}

/// The middleware: relays what [`relayed`] says on a bridge with a relay; the rest goes on.
pub(crate) async fn relay_layer(
    State(bridge): State<Arc<Bridge>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(relay) = bridge.relay.get() else {
        return next.run(request).await;
    };
    let has_replica = bridge.replica.get().is_some();
    if !relayed(request.method(), request.uri().path(), has_replica) {
        return next.run(request).await;
    }
    match forward(relay, &bridge, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Sends `request` to the appliance and returns its answer.
async fn forward(relay: &Relay, bridge: &Bridge, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, bridge.config.body_limit_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request.body_too_large",
                "the request body is larger than the limit",
            )
        })?;
    // The path and query exactly as signed.
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |p| p.as_str());
    let mut outbound = relay
        .client
        .request(parts.method.clone(), format!("{}{path}", relay.base))
        .body(bytes);
    for name in &HEADERS_RELAYED {
        if let Some(value) = parts.headers.get(name) {
            outbound = outbound.header(name, value);
        }
    }
    if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        outbound = outbound.header("x-forwarded-for", peer.ip().to_string());
    }
    let unreachable = |error: reqwest::Error| {
        tracing::warn!(%error, "relay to the appliance failed");
        ApiError::unavailable(
            "server.appliance_unreachable",
            "the appliance did not answer; an order may or may not have been placed: look it \
             up by client_id before resending",
        )
    };
    let mut answer = outbound.send().await.map_err(unreachable)?;
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let mut body = Vec::new();
    // Bounded by RESPONSE_BYTES_MAX: each chunk is checked before it is kept.
    while let Some(chunk) = answer.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > RESPONSE_BYTES_MAX {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "server.answer_too_large",
                "the appliance's answer is larger than a bridge relays",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let mut response = (status, body).into_response();
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_what_needs_the_engine() {
        let post = Method::POST;
        let get = Method::GET;
        assert!(relayed(&post, "/api/v2/peatio/market/orders", true));
        assert!(relayed(
            &post,
            "/api/v2/peatio/market/orders/7/cancel",
            true
        ));
        assert!(relayed(&get, "/api/v2/peatio/account/balances", true));
        assert!(relayed(&get, "/api/v2/peatio/account/balances/btc", true));
        // Account history: from the replica when the bridge has one.
        assert!(!relayed(&get, "/api/v2/peatio/market/orders", true));
        assert!(relayed(&get, "/api/v2/peatio/market/orders", false));
        assert!(!relayed(&get, "/api/v2/peatio/public/markets", false));
        assert!(!relayed(&post, "/api/v2/ranger/public", false));
    }

    #[test]
    fn refuses_a_base_that_is_not_one() {
        assert!(Relay::new("http://127.0.0.1:8081", None).is_ok());
        assert!(Relay::new("http://127.0.0.1:8081/", None).is_ok());
        for bad in [
            "",
            "127.0.0.1:8081",
            "ftp://x",
            "ftp://x/",
            "http://x/api/v2",
            "http://x/?a=1",
        ] {
            assert!(
                matches!(Relay::new(bad, None), Err(RelayError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn https_needs_a_certificate_to_trust_and_http_takes_none() {
        let missing = std::path::Path::new("/nonexistent/ca.pem");
        assert!(matches!(
            Relay::new("https://127.0.0.1:8081", None),
            Err(RelayError::TrustMissing(_))
        ));
        assert!(matches!(
            Relay::new("http://127.0.0.1:8081", Some(missing)),
            Err(RelayError::TrustUnused(_))
        ));
        assert!(matches!(
            Relay::new("https://127.0.0.1:8081", Some(missing)),
            Err(RelayError::Trust { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            Relay::new("https://127.0.0.1:8081", Some(&empty)),
            Err(RelayError::Trust { .. })
        ));
    }
}
