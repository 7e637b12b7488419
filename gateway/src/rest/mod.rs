//! The REST bridge for retail users, shaped like Peatio's API v2 (`/api/v2/peatio/...`), and
//! the server that also carries the Ranger-style WebSocket streams ([`crate::ws`]).
//!
//! - Public: markets, currencies, tickers, order book, depth, trades, k-lines, timestamp,
//!   health, trading fees. Market (API-key signed): create, list, get, cancel orders, own
//!   trades. Account: balances, transactions, chain deposits and deposit addresses
//!   ([`deposits`], from the wallet store behind a trait), beneficiaries and withdrawal
//!   requests ([`withdraws`], through a desk the appliance plugs in). OpenAPI 3 at `/api/v2/openapi.json`, generated from the
//!   handlers' annotations (the router and the document come from the same list).
//! - Market data and history are derived from the engine's event tap by the feed task
//!   ([`feed`]) into [`crate::market_data`], never by polling the engine; the engine is queried
//!   only to seed the books and for balances. A bridge node ([`serve_fed`]) runs the same
//!   market data and streams from a [`StreamFeed`] instead, with no engine: order entry and
//!   balances are relayed to the appliance ([`relay`]) or answer 503 `server.not_served`,
//!   account history comes from the replica (or is relayed).
//! - Writes are read back: an order's answer waits until the feed has applied its command, so a
//!   `GET` after a `POST` sees it.
//! - Errors: one JSON body with a stable code ([`error`]); 4xx for the client's faults.

pub mod auth;
pub mod config;
pub mod deposits;
pub mod error;
pub mod extract;
mod feed;
mod history;
pub mod key_follower;
pub mod metrics;
pub mod nonce_floor;
pub mod openapi;
mod orders;
mod public;
pub mod rebuild;
pub mod relay;
pub mod time;
pub mod tls;
pub mod transactions;
pub mod types;
pub mod withdraws;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{ConfigError, RestConfig, RestKey};
use error::ApiError;
pub use feed::{FeedItem, StreamFeed};

use crate::catalog::SharedCatalog;
use crate::market_data::history::HistoryLimits;
use crate::market_data::{MarketData, MarketDataLimits};
use crate::ws::hub::Hub;
use peregrine_core::EngineHandle;

/// Longest a request waits for its command's outcome before answering 504 (the command
/// stands; its outcome can be read by client id).
const EXECUTE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a request waits for the feed to apply its command (read-your-writes); past it the
/// answer is built from the command's own events.
const APPLIED_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest one request may take, body included: a client that sends its body slowly holds a
/// slot at most this long. Above the handlers' own bounds (execute + read-back).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a graceful shutdown waits for the server and the feed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// Invalid configuration.
    #[error("rest config: {0}")]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Metrics could not be registered (e.g. twice in one registry).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The durable nonce floor could not be read.
    #[error(transparent)]
    NonceFloor(#[from] nonce_floor::FloorError),
    /// `[rest.tls]` could not be loaded.
    #[error("rest tls: {0}")]
    Tls(#[from] crate::quic::tls::TlsError),
}

/// What the feed task and the WebSocket connections share: derived data and subscribers,
/// under one lock so a snapshot and the increments after it are queued in order.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) data: MarketData,
    pub(crate) hub: Hub,
}

/// The bridge's state, shared by handlers, the feed task and WebSocket connections.
#[derive(Debug)]
pub struct Bridge {
    /// The engine, on the appliance; `None` on a bridge node fed from the stream, which takes
    /// no orders and reads accounts only from the replica.
    pub(crate) engine: Option<Arc<EngineHandle>>,
    /// Names and units: each request loads it once (a market created at runtime shows in
    /// the next one).
    pub(crate) catalog: SharedCatalog,
    pub(crate) config: RestConfig,
    pub(crate) keys: auth::KeyStore,
    pub(crate) metrics: metrics::Metrics,
    shared: Mutex<Shared>,
    /// The last command the feed applied.
    pub(crate) applied: watch::Sender<u64>,
    /// Whether the feed follows the engine (false while it re-seeds).
    pub(crate) feed_live: AtomicBool,
    /// Server-assigned client order ids (see [`Bridge::next_client_id`]).
    next_client_id: AtomicU64,
    pub(crate) ws_connections: AtomicUsize,
    /// Requests being handled (WebSocket connections count once, while upgrading).
    requests_in_flight: AtomicUsize,
    pub(crate) shutdown: watch::Sender<bool>,
    /// The SQL replica, when one is configured: history beyond memory (orders, trades,
    /// transactions).
    pub(crate) replica: std::sync::OnceLock<Arc<peregrine_replica::ReplicaReader>>,
    /// Identity's access-token verifier, when identity runs: `Authorization: Bearer <JWT>`
    /// is then accepted for account reads and trading, verified from memory.
    pub(crate) tokens: std::sync::OnceLock<Arc<peregrine_auth::jwt::Refresher>>,
    /// The KYC level gate new orders pass, when identity runs.
    pub(crate) levels: std::sync::OnceLock<Arc<crate::levels::LevelGate>>,
    /// The wallet store's read model, when the wallets run: chain deposits and addresses.
    pub(crate) deposits: std::sync::OnceLock<Arc<dyn deposits::DepositBook>>,
    /// Beneficiaries and withdrawal requests, when the wallets run.
    pub(crate) withdraws: std::sync::OnceLock<Arc<dyn withdraws::WithdrawDesk>>,
    /// On a bridge node: the appliance's REST edge, which order entry and balances are
    /// relayed to (see [`relay`]); unset, they answer 503 `server.not_served`.
    pub(crate) relay: std::sync::OnceLock<relay::Relay>,
}

impl Bridge {
    /// Builds the state (no task started).
    pub fn new(
        config: RestConfig,
        engine: Option<Arc<EngineHandle>>,
        catalog: impl Into<SharedCatalog>,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Bridge>, RestError> {
        config.validate()?;
        let metrics = metrics::Metrics::new(registry)?;
        let limits = MarketDataLimits {
            trades_per_market: config.trades_per_market,
            history: HistoryLimits {
                per_account: config.history_per_account,
                total: config.history_total,
            },
        };
        let hub = Hub::new(metrics.clone());
        // Server-assigned ids live in the top half of the id space, starting from the clock so
        // that ids of a previous run (still live in the engine) are not reused after a restart.
        let first_id = (1u64 << 63) | (time::now_ms() << 16);
        let floor = match &config.nonce_floor_path {
            Some(path) => nonce_floor::NonceFloor::open(path)?,
            None => nonce_floor::NonceFloor::in_memory(),
        };
        Ok(Arc::new(Bridge {
            keys: auth::KeyStore::with_floor(&config.keys, config.nonce_window_ms, floor)
                .count_legacy_signatures(metrics.legacy_signatures_total.clone()),
            engine,
            catalog: catalog.into(),
            config,
            metrics,
            shared: Mutex::new(Shared {
                data: MarketData::new(limits),
                hub,
            }),
            applied: watch::Sender::new(0),
            feed_live: AtomicBool::new(false),
            next_client_id: AtomicU64::new(first_id),
            ws_connections: AtomicUsize::new(0),
            requests_in_flight: AtomicUsize::new(0),
            shutdown: watch::Sender::new(false),
            replica: std::sync::OnceLock::new(),
            tokens: std::sync::OnceLock::new(),
            levels: std::sync::OnceLock::new(),
            deposits: std::sync::OnceLock::new(),
            withdraws: std::sync::OnceLock::new(),
            relay: std::sync::OnceLock::new(),
        }))
    }

    /// The engine, or 503 on a bridge node (no engine: orders go to the appliance).
    pub(crate) fn engine(&self) -> Result<&Arc<EngineHandle>, ApiError> {
        self.engine.as_ref().ok_or_else(|| {
            ApiError::unavailable(
                "server.not_served",
                "this bridge node serves market data only: place orders and read balances on \
                 the appliance",
            )
        })
    }

    /// Reads the engine's views; `None` on a bridge node.
    pub(crate) fn read_views<T>(
        &self,
        read: impl FnOnce(&peregrine_core::Views) -> T,
    ) -> Option<T> {
        self.engine.as_ref().map(|engine| engine.read(read))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Relays order entry and balances to the appliance from now on (a bridge node; once, a
    /// second call is ignored). Meaningless on the appliance, which has the engine.
    pub fn relay_to(&self, relay: relay::Relay) {
        assert!(self.engine.is_none(), "only a bridge node relays");
        let _ = self.relay.set(relay);
    }

    /// Accepts identity's access JWTs from now on (once; a second call is ignored).
    pub fn accept_tokens(&self, refresher: Arc<peregrine_auth::jwt::Refresher>) {
        let _ = self.tokens.set(refresher);
    }

    /// Gates new orders by `gate` from now on (once; a second call is ignored).
    pub fn gate_levels(&self, gate: Arc<crate::levels::LevelGate>) {
        let _ = self.levels.set(gate);
    }

    /// Refuses a new order of `account` below the trade level (403 `identity.level_too_low`).
    pub(crate) fn check_trade_level(
        &self,
        account: peregrine_hotpath::AccountId,
    ) -> Result<(), ApiError> {
        let Some(gate) = self.levels.get() else {
            return Ok(());
        };
        gate.check_trade(account).map_err(|refused| {
            self.metrics
                .auth_failures_total
                .with_label_values(&[crate::levels::LevelTooLow::CODE])
                .inc();
            ApiError::forbidden(crate::levels::LevelTooLow::CODE, refused.to_string())
        })
    }

    /// Refuses a withdrawal (or a new beneficiary) of `account` below the withdraw level
    /// (403 `identity.level_too_low`).
    pub(crate) fn check_withdraw_level(
        &self,
        account: peregrine_hotpath::AccountId,
    ) -> Result<(), ApiError> {
        let Some(gate) = self.levels.get() else {
            return Ok(());
        };
        gate.check_withdraw(account).map_err(|refused| {
            self.metrics
                .auth_failures_total
                .with_label_values(&[crate::levels::LevelTooLow::CODE])
                .inc();
            ApiError::forbidden(crate::levels::LevelTooLow::CODE, refused.to_string())
        })
    }

    /// Serves beneficiaries and withdrawal requests through `desk` from now on (once; a second
    /// call is ignored).
    pub fn serve_withdraws(&self, desk: Arc<dyn withdraws::WithdrawDesk>) {
        let _ = self.withdraws.set(desk);
    }

    /// Serves chain deposits and deposit addresses from `book` from now on (once; a second call
    /// is ignored).
    pub fn serve_deposits(&self, book: Arc<dyn deposits::DepositBook>) {
        let _ = self.deposits.set(book);
    }

    /// Applies a change from identity's key feed to the API-key cache.
    pub fn apply_key_change(&self, change: peregrine_auth::key_feed::KeyChange) {
        self.keys.apply(change);
    }

    pub(crate) fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Waits until the feed has applied `seq` (bounded); false if it did not in time.
    pub(crate) async fn wait_applied(&self, seq: u64) -> bool {
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(APPLIED_TIMEOUT, applied.wait_for(|&done| done >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// The router: every REST route, the WebSocket endpoints and the OpenAPI document, with the
/// body limit, JSON fallbacks and metrics. Does not start the feed: see [`serve`].
pub fn router(bridge: Arc<Bridge>) -> Router {
    let (api, document) = openapi::split();
    let document = Arc::new(document);
    api.route(
        openapi::OPENAPI_PATH,
        axum::routing::get(move || {
            let document = document.clone();
            async move { axum::Json(document.as_ref().clone()) }
        }),
    )
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(axum::middleware::from_fn_with_state(
        bridge.clone(),
        extract::digest_signed_body,
    ))
    // Before the body is read for its digest: a relayed request goes on byte for byte.
    .layer(axum::middleware::from_fn_with_state(
        bridge.clone(),
        relay::relay_layer,
    ))
    .layer(axum::middleware::from_fn_with_state(bridge.clone(), track))
    .layer(DefaultBodyLimit::max(bridge.config.body_limit_bytes))
    .with_state(bridge)
}

async fn not_found() -> ApiError {
    ApiError::not_found("request.route_not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "request.method_not_allowed",
        "this route does not take this method",
    )
}

/// Counts and times every request by its route template (never the raw path: unbounded
/// label values would be unbounded memory).
async fn track(State(bridge): State<Arc<Bridge>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let max = bridge.config.requests_in_flight_max;
    let admitted = bridge
        .requests_in_flight
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok();
    let response = if admitted {
        // Released however the handler ends (including a client that goes away mid-body).
        let _slot = InFlight(&bridge.requests_in_flight);
        match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "request.timeout",
                "the request took too long (a body that does not arrive, or a stuck command: \
                 look an order up by client_id before resending it)",
            )
            .into_response(),
        }
    } else {
        ApiError::unavailable("server.busy", "too many requests in flight; retry later")
            .into_response()
    };
    let metrics = &bridge.metrics;
    metrics
        .request_duration_seconds
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests_total
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response.into_response()
}

/// Resolves once `stop` is set (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|&stop| stop).await;
}

/// One admitted request; gives its slot back when dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A running bridge.
#[derive(Debug)]
pub struct RestServer {
    local_addr: SocketAddr,
    bridge: Arc<Bridge>,
    server: Option<JoinHandle<()>>,
    feed: Option<JoinHandle<()>>,
}

/// Binds `config.listen` and starts the server and the market-data feed on the current tokio
/// runtime.
pub async fn serve(
    config: RestConfig,
    engine: Arc<EngineHandle>,
    catalog: impl Into<SharedCatalog>,
    registry: &prometheus::Registry,
) -> Result<RestServer, RestError> {
    serve_with_replica(config, engine, catalog, registry, None).await
}

/// [`serve`], reading history beyond memory (orders, trades, transactions) from `replica`.
pub async fn serve_with_replica(
    config: RestConfig,
    engine: Arc<EngineHandle>,
    catalog: impl Into<SharedCatalog>,
    registry: &prometheus::Registry,
    replica: Option<Arc<peregrine_replica::ReplicaReader>>,
) -> Result<RestServer, RestError> {
    let addr = config.listen;
    // Checked before binding: a refused configuration leaves the port alone.
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RestError::Bind { addr, source })?;
    serve_on(listener, config, engine, catalog, registry, replica).await
}

/// [`serve_with_replica`] on a listener the caller bound (`peregrine up` binds every listener
/// before it touches the data directory, so a port in use stops it before a journal exists).
/// `config.listen` is not read.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: RestConfig,
    engine: Arc<EngineHandle>,
    catalog: impl Into<SharedCatalog>,
    registry: &prometheus::Registry,
    replica: Option<Arc<peregrine_replica::ReplicaReader>>,
) -> Result<RestServer, RestError> {
    serve_on_with_routes(
        listener,
        config,
        engine,
        catalog,
        registry,
        replica,
        Router::new(),
    )
    .await
}

/// [`serve_on`], also serving `extra` (routes with their own state, layers and body limits,
/// e.g. identity's `/api/v2/barong/...`) on the same listener: one origin for the retail
/// page, so its session cookie (`Path=/api/v2`, SameSite=Strict) and CSRF header work. A path
/// both serve stops the start (axum refuses overlapping routes); `extra` passes neither the
/// bridge's layers (request metrics, body digest, body limit) nor its JSON fallbacks.
pub async fn serve_on_with_routes(
    listener: tokio::net::TcpListener,
    config: RestConfig,
    engine: Arc<EngineHandle>,
    catalog: impl Into<SharedCatalog>,
    registry: &prometheus::Registry,
    replica: Option<Arc<peregrine_replica::ReplicaReader>>,
    extra: Router,
) -> Result<RestServer, RestError> {
    let bridge = Bridge::new(config, Some(engine), catalog, registry)?;
    if let Some(replica) = replica {
        let _ = bridge.replica.set(replica);
    }
    let feed = tokio::spawn(feed::run(bridge.clone()));
    start(listener, bridge, feed, extra)
}

/// A bridge node's server: the same routes, market data and streams as [`serve_on`], fed by
/// `feed` (the commands of a stream the appliance publishes, see [`StreamFeed`]) instead of
/// the engine. Order entry and balances answer 503 `server.not_served`; account orders and
/// trades are read from `replica` when given.
pub async fn serve_fed(
    listener: tokio::net::TcpListener,
    config: RestConfig,
    feed: StreamFeed,
    catalog: impl Into<SharedCatalog>,
    registry: &prometheus::Registry,
    replica: Option<Arc<peregrine_replica::ReplicaReader>>,
) -> Result<RestServer, RestError> {
    let bridge = Bridge::new(config, None, catalog, registry)?;
    if let Some(replica) = replica {
        let _ = bridge.replica.set(replica);
    }
    let feed = tokio::spawn(feed::run_stream(bridge.clone(), feed));
    start(listener, bridge, feed, Router::new())
}

fn start(
    listener: tokio::net::TcpListener,
    bridge: Arc<Bridge>,
    feed: JoinHandle<()>,
    extra: Router,
) -> Result<RestServer, RestError> {
    let addr = bridge.config.listen;
    let local_addr = listener
        .local_addr()
        .map_err(|source| RestError::Bind { addr, source })?;
    let app = router(bridge.clone()).merge(extra);
    let stop = bridge.shutdown.subscribe();
    let server = match &bridge.config.tls {
        None => tokio::spawn(run_server(listener, app, stop)),
        Some(source) => {
            let metrics = tls::HandshakeMetrics {
                total: bridge.metrics.tls_handshakes_total.clone(),
                seconds: bridge.metrics.tls_handshake_seconds.clone(),
            };
            let listener = tls::TlsListener::new(listener, tls::server_config(source)?, metrics)
                .map_err(|source| RestError::Bind { addr, source })?;
            // Tapped: axum gives the peer's address (`ConnectInfo`) for tapped listeners.
            let listener = axum::serve::ListenerExt::tap_io(listener, |_| {});
            tokio::spawn(run_server(listener, app, stop))
        }
    };
    let scheme = if bridge.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%local_addr, scheme, "REST/WebSocket bridge listening");
    Ok(RestServer {
        local_addr,
        bridge,
        server: Some(server),
        feed: Some(feed),
    })
}

/// Serves `app` on `listener` until `stop` says so.
async fn run_server<L>(listener: L, app: Router, mut stop: watch::Receiver<bool>)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    SocketAddr: for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let graceful = async move { stopped(&mut stop).await };
    // With the peer's address: an API key's allowlist is checked against it.
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(graceful)
    .await;
    if let Err(error) = served {
        tracing::error!(%error, "REST server failed");
    }
}

impl RestServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the market-data feed follows the engine (for the appliance's readiness checks;
    /// also served at `/api/v2/peatio/public/health/ready`).
    pub fn is_ready(&self) -> bool {
        self.bridge.feed_live.load(Ordering::Acquire)
    }

    /// [`RestServer::is_ready`] as a closure that owns what it reads, for a readiness registry.
    pub fn readiness_probe(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let bridge = Arc::clone(&self.bridge);
        move || bridge.feed_live.load(Ordering::Acquire)
    }

    /// The shared state (tests, benchmarks).
    pub fn bridge(&self) -> &Arc<Bridge> {
        &self.bridge
    }

    /// Stops taking connections, closes WebSocket connections (code 1001) and the feed, and
    /// waits (bounded) for them.
    pub async fn shutdown(mut self) {
        self.bridge.shutdown.send_replace(true);
        let (feed, server) = (self.feed.take(), self.server.take());
        let waited = tokio::time::timeout(SHUTDOWN_TIMEOUT, async {
            if let Some(feed) = feed {
                let _ = feed.await;
            }
            if let Some(server) = server {
                let _ = server.await;
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!("REST bridge did not stop in time");
        }
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        self.bridge.shutdown.send_replace(true);
    }
}
