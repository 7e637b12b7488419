//! `peregrine bridge`: a stateless bridge node. It reads the stream an appliance publishes with
//! `[fanout]` (from the book snapshot on, see `peregrine_fanout::consumer`) and feeds the same
//! market data and WebSocket hub the appliance's own REST/WebSocket edge runs, so any number of
//! bridges behind a load balancer give the appliance's answers.
//!
//! ```text
//! JetStream ──consumer──► FeedEvent ──► FeedItem ──► market data + hub (gateway) ──► REST, WS
//! ```
//!
//! It holds no state of its own: killed and restarted, it loads the snapshot again. With
//! `[bridge] orders_url` it relays signed order entry and balances to the appliance's REST
//! edge, which verifies the user's signature (`peregrine_gateway::rest::relay`: the bridge
//! holds no key and cannot act for an account); without, it answers them 503
//! `server.not_served`. It reads account orders and trades from the replica (`[bridge]
//! accounts_from_replica`), else relays them too. Ranger's private streams (`order`, `trade`,
//! `balance`) are served from the stream's `user.<account>.*` changes, which the consumer
//! reads with the rest (no second source to keep in order with the books); their subscribers
//! are authenticated by the bridge itself, with the read keys of its own `[rest] keys`. With
//! `[bridge] jwks_url` it also accepts identity's access JWTs (`Authorization: Bearer`),
//! verified from memory against the JWKS it reloads (Barong's model: identity signs, every
//! edge verifies locally); relayed requests carry the header on, and the appliance verifies it
//! again.
//!
//! Start order: configuration, logging, listeners, metrics and readiness, the consumer, the
//! REST/WebSocket server, the health server, then the summary on stdout. Stop: not ready, the
//! REST server (WebSocket close 1001), the consumer, the health server.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peregrine_core::Executed;
use peregrine_core::catalog::Catalog;
use peregrine_fanout::{BooksSnapshot, Consumer, ConsumerConfig, ConsumerHandle, FeedEvent};
use peregrine_gateway::market_data::Seed;
use peregrine_gateway::rest::relay::{self, RelayError};
use peregrine_gateway::rest::{FeedItem, RestServer, StreamFeed};
use peregrine_hotpath::TimestampNs;
use tokio::sync::mpsc;

use crate::cli::BridgeArgs;
use crate::config::{self, ConfigError};
use crate::http::{self, AppState, HttpError};
use crate::logging::{self, LoggingError};
use crate::metrics::{Metrics, MetricsError};
use crate::readiness::{CheckStatus, Readiness, ReadinessError};
use crate::shutdown::StopSignals;

/// Items queued between the consumer and the edge's feed (the consumer has its own queue).
const FEED_CAPACITY: usize = 1_024;
/// Worker threads: the consumer, the REST/WebSocket server and the health server.
const RUNTIME_WORKER_THREADS: usize = 2;
/// Longest start-up waits to be ready before printing the summary.
const READY_WAIT: Duration = Duration::from_secs(10);
/// Pause between attempts to load identity's JWKS at start.
const JWKS_RETRY: Duration = Duration::from_secs(1);
/// Longest the health server gets to finish in-flight requests at stop.
const HTTP_DRAIN: Duration = Duration::from_secs(2);
/// Causes of an error shown at most (readiness, logs).
const CAUSES_MAX: usize = 8;

/// Why `bridge` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Logging(#[from] LoggingError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Nats(#[from] config::nats::NatsError),
    #[error(transparent)]
    Readiness(#[from] ReadinessError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("catalog: {0}")]
    Catalog(#[from] peregrine_core::catalog::CatalogError),
    #[error("rest: {0}")]
    Rest(#[from] peregrine_gateway::rest::RestError),
    #[error("stream: {0}")]
    Consumer(#[from] peregrine_fanout::ConsumerError),
    #[error("[bridge]: {0}")]
    Relay(#[from] peregrine_gateway::rest::relay::RelayError),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
}

impl BridgeError {
    /// Errors the operator fixes in the configuration (exit code 2).
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::Logging(LoggingError::Filter(_))
                | Self::Catalog(_)
                | Self::Nats(_)
                | Self::Relay(
                    RelayError::BadUrl(_)
                        | RelayError::TrustMissing(_)
                        | RelayError::TrustUnused(_)
                        | RelayError::Trust { .. }
                )
        )
    }
}

/// Runs `peregrine bridge`. `env` is the process environment.
pub fn run(
    args: &BridgeArgs,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(), BridgeError> {
    let env: Vec<(OsString, OsString)> = env.into_iter().collect();
    let loaded = config::load(
        &args.config.file_choice(),
        env.iter().cloned(),
        &args.config.overrides(),
    )?;
    logging::init_for(&loaded.config.log, args.config.log_level.is_some(), &env)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_WORKER_THREADS)
        .thread_name("bridge-rt")
        .enable_all()
        .build()
        .map_err(BridgeError::Runtime)?;
    runtime.block_on(serve_until_stopped(&loaded))
}

async fn serve_until_stopped(loaded: &config::Loaded) -> Result<(), BridgeError> {
    let config = &loaded.config;
    // Before any port is bound: a URL whose scheme disagrees with `appliance_ca_pem` is a
    // configuration error, not a relay that fails later.
    let trust = appliance_trust(config);
    for url in [&config.bridge.orders_url, &config.bridge.jwks_url] {
        if !url.is_empty() {
            relay::check_scheme(url, trust.is_some())?;
        }
    }
    let mut signals = StopSignals::install().map_err(BridgeError::Signals)?;
    let refused = |key: &str, addr: SocketAddr, error: std::io::Error| {
        BridgeError::Config(
            loaded
                .sources
                .invalid(key.to_owned(), format!("cannot listen on {addr}: {error}")),
        )
    };
    let http_listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| refused("http.listen", config.http.listen, e))?;
    let rest_listener = tokio::net::TcpListener::bind(config.rest.listen)
        .await
        .map_err(|e| refused("rest.listen", config.rest.listen, e))?;
    let catalog = Arc::new(Catalog::new(&config.currencies, &config.markets)?);
    let metrics = Metrics::new()?;
    let readiness = Readiness::new();
    let http_ready = readiness.register_flag("http")?;

    let mut consumer_config = ConsumerConfig::new(&config.bridge.url, &config.bridge.stream);
    consumer_config.ready_lag_max = config.bridge.ready_lag_max_messages;
    consumer_config.access = config.nats.access()?;
    let (consumer, events) = Consumer::start(consumer_config, metrics.registry())?;
    let consumer = Arc::new(consumer);
    let checked = Arc::clone(&consumer);
    readiness.register_check("stream", move || match checked.readiness() {
        Ok(()) => CheckStatus::Ready,
        Err(why) => CheckStatus::NotReady(why),
    })?;
    let rest = start_rest(config, rest_listener, &consumer, events, catalog, &metrics).await?;
    if !config.bridge.jwks_url.is_empty() {
        let client = relay::appliance_client(trust.as_deref())?;
        let loading = accept_tokens(&rest, config.bridge.jwks_url.clone(), client);
        readiness.register_check("tokens", move || loading.status())?;
    }
    let feed_live = rest.readiness_probe();
    readiness.register_check("rest", move || {
        if feed_live() {
            CheckStatus::Ready
        } else {
            CheckStatus::NotReady("market data is resynchronising".to_owned())
        }
    })?;

    let http_addr = http_listener
        .local_addr()
        .map_err(|source| HttpError::Bind {
            addr: config.http.listen,
            source,
        })?;
    let router = http::router(AppState {
        metrics,
        readiness: readiness.clone(),
    });
    let (stop_sender, stop_receiver) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(http::serve(http_listener, router, async move {
        let _ = stop_receiver.await;
    }));
    http_ready.set_ready();
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    while !readiness.report().is_ready() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    print_summary(http_addr, &rest, config)?;
    tracing::info!(http = %http_addr, rest = %rest.local_addr(), "bridge up");

    tokio::select! {
        signal = signals.recv() => tracing::info!(%signal, "stopping"),
        joined = &mut server => tracing::error!(?joined, "health server ended"),
    }
    http_ready.set_not_ready("shutting down");
    rest.shutdown().await;
    consumer.stop().await;
    let _ = stop_sender.send(());
    if tokio::time::timeout(HTTP_DRAIN, &mut server).await.is_err() {
        server.abort();
    }
    Ok(())
}

/// The REST/WebSocket server fed by the consumer's events.
async fn start_rest(
    config: &config::Config,
    listener: tokio::net::TcpListener,
    consumer: &Arc<ConsumerHandle>,
    mut events: mpsc::Receiver<FeedEvent>,
    catalog: Arc<Catalog>,
    metrics: &Metrics,
) -> Result<RestServer, BridgeError> {
    let (items, receiver) = mpsc::channel(FEED_CAPACITY);
    // Ends when the consumer stops (its sender drops) or the feed is gone.
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Some(item) = feed_item(event) else {
                continue;
            };
            if items.send(item).await.is_err() {
                return;
            }
        }
    });
    let resync = Arc::clone(consumer);
    let feed = StreamFeed {
        items: receiver,
        resync: Box::new(move || resync.resync()),
    };
    let replica = (config.bridge.accounts_from_replica && config.replica.enabled).then(|| {
        Arc::new(peregrine_replica::ReplicaReader::new(
            config.replica.database_url(&config.data.dir),
        ))
    });
    let rest = peregrine_gateway::rest::serve_fed(
        listener,
        config.rest.clone(),
        feed,
        catalog,
        metrics.registry(),
        replica,
    )
    .await?;
    if !config.bridge.orders_url.is_empty() {
        let trust = appliance_trust(config);
        rest.bridge().relay_to(relay::Relay::new(
            &config.bridge.orders_url,
            trust.as_deref(),
        )?);
    }
    Ok(rest)
}

/// `[bridge] appliance_ca_pem`, if set: the one certificate file the bridge trusts for the
/// appliance's `https://` addresses.
fn appliance_trust(config: &config::Config) -> Option<std::path::PathBuf> {
    let path = &config.bridge.appliance_ca_pem;
    (!path.is_empty()).then(|| std::path::PathBuf::from(path))
}

/// Where loading identity's JWKS stands, for readiness: loaded, or why not yet (the last
/// failure, e.g. a certificate the bridge does not trust).
#[derive(Debug, Default)]
struct JwksLoading {
    loaded: std::sync::atomic::AtomicBool,
    last_error: std::sync::Mutex<Option<String>>,
}

impl JwksLoading {
    fn status(&self) -> CheckStatus {
        if self.loaded.load(std::sync::atomic::Ordering::Acquire) {
            return CheckStatus::Ready;
        }
        let last_error = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        CheckStatus::NotReady(match last_error.as_deref() {
            Some(why) => format!("identity's JWKS ([bridge] jwks_url) not loaded: {why}"),
            None => "identity's JWKS ([bridge] jwks_url) not loaded yet".to_owned(),
        })
    }

    fn failed(&self, why: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
    }
}

/// An error and its causes, `: `-separated (a TLS refusal is a cause of a cause of reqwest's
/// "error sending request").
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    // Bounded: error chains are short; a cycle cannot be built from owned sources.
    for _ in 0..CAUSES_MAX {
        let Some(cause) = source else { break };
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Loads identity's JWKS from `url` until it succeeds, retrying every [`JWKS_RETRY`], then lets
/// the edge accept access JWTs (kept fresh by the refresher); readiness reads the returned
/// state. Why not fail the start: a bridge may come up before the appliance; it serves market
/// data meanwhile and answers token-authenticated requests 401 until the keys are known.
fn accept_tokens(
    rest: &RestServer,
    url: String,
    client: relay::ApplianceClient,
) -> Arc<JwksLoading> {
    let loading = Arc::new(JwksLoading::default());
    let state = Arc::clone(&loading);
    let bridge = Arc::clone(rest.bridge());
    tokio::spawn(async move {
        let reload = Duration::from_secs(config::bridge::JWKS_RELOAD_S);
        loop {
            // The appliance's identity signs with the default issuer and audience.
            let expected = peregrine_auth::jwt::TokenConfig::default();
            let started = peregrine_auth::jwt::Refresher::start_with(
                client.clone(),
                url.clone(),
                expected,
                reload,
            );
            match started.await {
                Ok(refresher) => {
                    bridge.accept_tokens(refresher);
                    state
                        .loaded
                        .store(true, std::sync::atomic::Ordering::Release);
                    tracing::info!(%url, "identity's JWKS loaded: access tokens accepted");
                    return;
                }
                Err(error) => {
                    let why = causes(&error);
                    tracing::warn!(%url, error = %why, "cannot load identity's JWKS; retrying");
                    state.failed(why);
                }
            }
            tokio::time::sleep(JWKS_RETRY).await;
        }
    });
    loading
}

/// The edge's view of one event of the stream (`None` for kinds this build does not know).
fn feed_item(event: FeedEvent) -> Option<FeedItem> {
    match event {
        FeedEvent::Seed(BooksSnapshot {
            seq, books, halted, ..
        }) => Some(FeedItem::Seed(Seed { seq, books, halted })),
        FeedEvent::Command {
            seq,
            ts_ns,
            changes,
            ..
        } => Some(FeedItem::Executed(Executed {
            seq,
            ts: TimestampNs(ts_ns),
            events: Vec::new(),
            changes,
        })),
        _ => None,
    }
}

/// The addresses, one per line, for operators and tests (`http`, `rest`, `stream`).
fn print_summary(
    http_addr: SocketAddr,
    rest: &RestServer,
    config: &config::Config,
) -> Result<(), BridgeError> {
    let text = format!(
        "http http://{http_addr}\nrest http://{}/api/v2\nstream {} on {}\n",
        rest.local_addr(),
        config.bridge.stream,
        config.bridge.url
    );
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(BridgeError::Stdout)
}
