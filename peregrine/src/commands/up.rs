//! `peregrine up`: runs the appliance until SIGINT or SIGTERM.
//!
//! Start order: configuration (checked whole), logging, the listeners (bound before anything is
//! written, so a port in use refuses the start with the data directory untouched), data
//! directory, metrics and readiness registries, identity (`[auth]`, see [`crate::identity`]:
//! its routes go on the REST listener, its key feeds and JWT verifier to the gateways), then
//! the summary on stdout and readiness. Stop order is the reverse: not
//! ready, stop accepting, drain in-flight requests for at most `http.shutdown_timeout_ms`.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use peregrine_gateway::quic::directory::{DirectorySource, LiveDirectory};
use peregrine_gateway::quic::server::{Server as QuicServer, ServerConfig};
use peregrine_gateway::quic::tls::{TlsSource, ensure_dev_certificate};

use crate::cli::UpArgs;
use crate::config::{self, Config, ConfigError};
use crate::exchange::{Exchange, ExchangeError};
use crate::http::{self, ALIVE_PATH, AppState, HttpError, METRICS_PATH, READY_PATH};
use crate::logging::{self, LoggingError};
use crate::metrics::{Metrics, MetricsError};
use crate::readiness::{CheckStatus, Readiness, ReadinessError};
use crate::shutdown::StopSignals;
use crate::supervisor::{
    ReplicaThread, Supervisor, SupervisorError, SupervisorThread, ThreadMetrics, Watched,
};

/// Sub-directory of the data directory holding the development TLS certificate.
const TLS_SUBDIR: &str = "tls";
/// The REST bridge's durable nonce floor, under the data directory: a restart must not reopen
/// nonces accepted before it.
const REST_NONCE_FLOOR_FILE: &str = "rest-nonces";
/// Longest start-up waits for every readiness check before printing the summary.
const READY_WAIT: Duration = Duration::from_secs(10);
/// How long QUIC sessions get to be logged out at stop.
const QUIC_GRACE: Duration = Duration::from_secs(2);

/// Worker threads of the async runtime: QUIC sessions, the operator plane (health, metrics,
/// control) and the gateway's output router. The matching shard and the journal writer run on
/// their own threads.
const RUNTIME_WORKER_THREADS: usize = 2;

/// Why `up` failed.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Logging(#[from] LoggingError),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot create data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Readiness(#[from] ReadinessError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("http server stopped unexpectedly: {0}")]
    ServerTask(String),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    #[error("quic: {0}")]
    Quic(String),
    #[error("replica: {0}")]
    Replica(String),
    #[error("rest: {0}")]
    Rest(String),
    #[error("fanout: {0}")]
    Fanout(String),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Standby(#[from] crate::standby::StandbyUpError),
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    #[error("control break-glass token {}: {source}", path.display())]
    ControlToken {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl UpError {
    /// Errors the operator fixes in the configuration (exit code 2).
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::Logging(LoggingError::Filter(_))
                | Self::Exchange(ExchangeError::Catalog(_))
                | Self::Standby(crate::standby::StandbyUpError::Tls(_))
                | Self::Demo(
                    crate::demo::DemoError::QuicDisabled
                        | crate::demo::DemoError::AccountTaken { .. }
                )
        )
    }
}

/// Runs `peregrine up`. `env` is the process environment (a parameter so tests can pass
/// their own).
pub fn run(
    args: &UpArgs,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(), UpError> {
    let env: Vec<(OsString, OsString)> = env.into_iter().collect();
    let loaded = config::load(
        &args.config.file_choice(),
        env.iter().cloned(),
        &args.config.overrides(),
    )?;
    let mut loaded = loaded;
    loaded.config.journal.accept_lost_tail = args.accept_journal_loss;
    if let Some(primary) = &args.standby_of {
        loaded.config.standby.of = primary.clone();
        config::validate::replication(&loaded.config, &loaded.sources)?;
    }

    if args.print_config {
        let text = loaded.config.to_toml()?;
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(UpError::Stdout)?;
        return Ok(());
    }

    logging::init_for(&loaded.config.log, args.config.log_level.is_some(), &env)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_WORKER_THREADS)
        .thread_name("peregrine-rt")
        .enable_all()
        .build()
        .map_err(UpError::Runtime)?;
    runtime.block_on(serve_until_stopped(&loaded, args.demo))
}

/// The TCP listeners, bound before the data directory is touched: a port in use stops the
/// start (exit 2, naming the key and its source) before a journal file exists.
struct Listeners {
    http: tokio::net::TcpListener,
    rest: tokio::net::TcpListener,
    /// Where standbys connect (`[replication] listen`), if this node ships.
    shipping: Option<std::net::TcpListener>,
}

async fn bind_listeners(config: &Config, sources: &config::Sources) -> Result<Listeners, UpError> {
    let refused = |key: &str, addr: SocketAddr, error: std::io::Error| {
        UpError::Config(
            sources.invalid(key.to_owned(), format!("cannot listen on {addr}: {error}")),
        )
    };
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| refused("http.listen", config.http.listen, e))?;
    let rest = tokio::net::TcpListener::bind(config.rest.listen)
        .await
        .map_err(|e| refused("rest.listen", config.rest.listen, e))?;
    if config.quic.enabled {
        // A probe, released at once: the QUIC endpoint binds its own socket once its
        // certificate (under the data directory) is ready. A port taken in between still
        // stops the start, later.
        std::net::UdpSocket::bind(config.quic.listen)
            .map_err(|e| refused("quic.listen", config.quic.listen, e))?;
    }
    let shipping = crate::standby::bind_shipping(config).map_err(|e| {
        UpError::Config(sources.invalid("replication.listen".to_owned(), e.to_string()))
    })?;
    Ok(Listeners {
        http,
        rest,
        shipping,
    })
}

/// Waits (bounded by [`READY_WAIT`]) for the replicator's first connection and stops the start
/// if it found the replica ahead of the journal: trading on would reuse sequences and order ids
/// the replica already holds, and the replica would skip the new commands that bear them. A
/// database not reachable yet is not a reason to refuse (the replicator retries).
async fn refuse_a_replica_ahead_of_the_journal(
    handle: &peregrine_replica::ReplicatorHandle,
) -> Result<(), UpError> {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    // Bounded by the deadline.
    while handle.failure().is_none()
        && !handle.is_connected()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    match handle.failure() {
        Some(failure) if handle.is_ahead_of_journal() => Err(UpError::Replica(failure)),
        _ => Ok(()),
    }
}

async fn serve_until_stopped(loaded: &config::Loaded, demo: bool) -> Result<(), UpError> {
    // Installed first: a SIGTERM during start-up then stops gracefully instead of killing.
    let mut signals = StopSignals::install().map_err(UpError::Signals)?;
    // `standby.of = "leader"`: the lease decides which side this node starts as.
    let (chosen, taken) = if loaded.config.standby.follows_leader() {
        let role = crate::standby::choose_role(&loaded.config).await?;
        let resolved = crate::standby::with_role(loaded, &role);
        let taken = match role {
            crate::standby::Role::Lead(leadership) => Some(leadership),
            crate::standby::Role::Follow { .. } => None,
        };
        (Some(resolved), taken)
    } else {
        (None, None)
    };
    let loaded = chosen.as_ref().unwrap_or(loaded);
    let (config, config_file) = (&loaded.config, loaded.file.as_deref());
    // A standby opens no gateway: it follows the primary until stopped, or until promoted
    // (`[leadership]`), when it goes on as the primary on the journal it kept. A primary with
    // `[leadership]` takes the lease before it opens the journal.
    let leadership = if taken.is_some() {
        taken
    } else if config.standby.is_standby() {
        match crate::standby::serve_standby(loaded, &mut signals).await? {
            Some(leadership) => Some(leadership),
            None => return Ok(()),
        }
    } else {
        crate::standby::lead(config).await?
    };
    let term = leadership.as_ref().map_or(0, |l| l.term());
    let acknowledge_from = leadership
        .as_ref()
        .map(peregrine_standby::leader::Leadership::acknowledge_from);
    let fence = leadership.map(crate::standby::fence);
    let listeners = bind_listeners(config, &loaded.sources).await?;

    let data_dir = config.data.dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| UpError::DataDir {
        path: data_dir.clone(),
        source,
    })?;

    // The trading core: recover the engine (newest snapshot + journal tail; a torn tail is
    // truncated and logged, corruption stops start-up), start the shard and the sequencer, add
    // the catalog. Blocking I/O, off the runtime's workers.
    let core_config = config.clone();
    let (exchange, shipping) = tokio::task::spawn_blocking(move || {
        // Journal shipping to hot standbys (`[replication] listen`), from the journal's opening.
        Exchange::start_with(&core_config, |dir, journal, standby_floor| {
            // Every record from here on carries this leader's term, the fencing token a standby
            // checks (journal format 3); without leadership the journal's own term goes on.
            if journal.raise_term(term) > term {
                tracing::warn!(
                    term,
                    "the journal holds records of a newer term than this leader's"
                );
            }
            listeners
                .shipping
                .map(|l| {
                    let floor = standby_floor.cloned();
                    let dir = dir.to_owned();
                    crate::standby::start_shipping(&core_config, l, dir, journal, term, floor)
                })
                .transpose()
                .map_err(|e| e.to_string())
        })
    })
    .await
    .map_err(|e| UpError::ServerTask(e.to_string()))??;
    let engine = Arc::clone(&exchange.engine);
    let Some(journal) = engine.journal().cloned() else {
        return Err(UpError::ServerTask(
            "the sequencer has no journal".to_owned(),
        ));
    };

    let metrics = Metrics::new()?;
    let readiness = Readiness::new();
    let http_ready = readiness.register_flag("http")?;
    let journal_metrics = crate::journal_metrics::JournalMetrics::register(metrics.registry())
        .map_err(crate::metrics::MetricsError::from)?;
    journal_metrics.refresh(&journal);
    crate::journal_metrics::JournalMetrics::register_commit_latency(
        metrics.registry(),
        journal.clone(),
    )
    .map_err(crate::metrics::MetricsError::from)?;
    let journal_refresh = journal_metrics.spawn_refresh(journal.clone());
    crate::journal_metrics::register_readiness(&readiness, journal.clone())?;
    let engine_metrics = crate::engine_metrics::EngineMetrics::register(metrics.registry())
        .map_err(crate::metrics::MetricsError::from)?;
    engine_metrics.refresh(&engine);
    crate::engine_metrics::EngineMetrics::register_apply_latency(
        metrics.registry(),
        Arc::clone(&engine),
    )
    .map_err(crate::metrics::MetricsError::from)?;
    let engine_refresh =
        engine_metrics.spawn_refresh(Arc::clone(&engine), exchange.snapshot_pauses());
    let checked_engine = Arc::clone(&engine);
    readiness.register_check("engine", move || {
        if checked_engine.is_failed() {
            CheckStatus::NotReady("the sequencer stopped taking commands".to_owned())
        } else {
            CheckStatus::Ready
        }
    })?;
    let driver_alive = exchange.snapshot_driver_alive();
    readiness.register_check("snapshots", move || {
        if driver_alive.load(std::sync::atomic::Ordering::Acquire) {
            CheckStatus::Ready
        } else {
            CheckStatus::NotReady("the snapshot driver thread ended".to_owned())
        }
    })?;
    let checked_dir = data_dir.clone();
    readiness.register_check("data", move || {
        if checked_dir.is_dir() {
            CheckStatus::Ready
        } else {
            CheckStatus::NotReady(format!(
                "data directory {} is missing",
                checked_dir.display()
            ))
        }
    })?;

    // Replication into SQL, off the hot path: it follows the journal at its own pace.
    let replica = if config.replica.enabled {
        let mut replica_config = peregrine_replica::ReplicaConfig::new(
            config.replica.database_url(&data_dir),
            exchange.journal_dir.clone(),
            crate::exchange::engine_config(),
        );
        replica_config.ready_lag_max = Duration::from_millis(config.replica.ready_lag_max_ms);
        replica_config.retention_floor = exchange.retention_floor.clone();
        replica_config.currency_scales = exchange
            .catalog
            .load()
            .currencies()
            .iter()
            .map(|c| (c.id, u8::try_from(c.scale.scale).unwrap_or(u8::MAX)))
            .collect();
        let source = peregrine_replica::DurableSource::Journal(exchange.journal().clone());
        let registry = metrics.registry().clone();
        let restart = (replica_config.clone(), source.clone());
        let handle = tokio::task::spawn_blocking(move || {
            peregrine_replica::Replicator::start(replica_config, source, &registry)
        })
        .await
        .map_err(|e| UpError::ServerTask(e.to_string()))?
        .map_err(|e| UpError::Replica(e.to_string()))?;
        refuse_a_replica_ahead_of_the_journal(&handle).await?;
        let handle = Arc::new(std::sync::Mutex::new(Some(handle)));
        let checked = Arc::clone(&handle);
        readiness.register_check("replica", move || {
            let guard = checked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match guard.as_ref().map(|h| h.readiness()) {
                Some(Ok(())) => CheckStatus::Ready,
                Some(Err(why)) => CheckStatus::NotReady(why),
                None => CheckStatus::NotReady("replicator stopped".to_owned()),
            }
        })?;
        Some((handle, restart))
    } else {
        None
    };
    if let Some(shipping) = &shipping {
        shipping.expose(&metrics, &readiness)?;
    }
    let supervision = supervise(&exchange, &journal, &metrics, &readiness, replica.as_ref())?;
    let replica = replica.map(|(handle, _)| handle);
    let fanout = start_fanout(config, &exchange, &metrics, &readiness)?;

    // The demo market maker's keys, registered with QUIC like configured ones.
    let demo_keys = demo.then(|| demo_keys(config)).transpose()?;
    // A leader that revoked a gone predecessor's lease opens no gateway before that one's
    // fence has passed (usually already, while the journal was recovered).
    if let Some(at) = acknowledge_from {
        tokio::time::sleep_until(at).await;
    }
    // QUIC order entry.
    let quic = if config.quic.enabled {
        let tls = match (&config.quic.cert_chain_pem, &config.quic.private_key_pem) {
            (Some(cert_chain_pem), Some(private_key_pem)) => TlsSource::Files {
                cert_chain_pem: cert_chain_pem.clone(),
                private_key_pem: private_key_pem.clone(),
            },
            (None, None) => ensure_dev_certificate(
                &data_dir.join(TLS_SUBDIR),
                &["localhost".to_owned(), config.quic.listen.ip().to_string()],
            )
            .map_err(|e| UpError::Quic(e.to_string()))?,
            _ => {
                return Err(UpError::Quic(
                    "set both cert_chain_pem and private_key_pem, or neither".to_owned(),
                ));
            }
        };
        let server_config = ServerConfig {
            listen: config.quic.listen,
            tls,
            keys: match &demo_keys {
                Some(demo) => [config.quic.keys.clone(), demo.quic_keys()?].concat(),
                None => config.quic.keys.clone(),
            },
            limits: config.quic.limits,
            sessions_per_key: config.quic.sessions_per_key,
            transport: config.quic.transport,
        };
        Some(
            QuicServer::start_with_directory_source(
                server_config,
                Arc::clone(&engine),
                DirectorySource::Live(
                    LiveDirectory::new(exchange.catalog.clone())
                        .map_err(|e| UpError::Quic(e.to_string()))?,
                ),
                metrics.registry(),
            )
            .map_err(|e| UpError::Quic(e.to_string()))?,
        )
    } else {
        None
    };

    if let Some(warning) = host_tuning_warning(
        &peregrine_tuning::unisolated(
            &peregrine_tuning::Host::new("/"),
            &crate::commands::tuning::pinned_cores(config),
        ),
        quic.as_ref().map(QuicServer::socket_buffers),
    ) {
        tracing::warn!("{warning}");
    }

    // The retail REST/WebSocket bridge; its market data follows the engine's event tap.
    // Its transaction history reads the replica (a connection of its own, opened on use).
    let replica_reader = config.replica.enabled.then(|| {
        Arc::new(peregrine_replica::ReplicaReader::new(
            config.replica.database_url(&data_dir),
        ))
    });
    // The control API's orders and trades search reads the same replica.
    let control_replica = replica_reader.clone();
    let mut rest_config = config.rest.clone();
    rest_config.nonce_floor_path = Some(data_dir.join(REST_NONCE_FLOOR_FILE));
    // Identity, on the REST listener: the retail page's origin, so its session cookie and
    // CSRF header reach identity and the bridge alike.
    let identity = if config.auth.enabled {
        Some(crate::identity::start(&config.auth, &data_dir, metrics.registry()).await?)
    } else {
        None
    };
    let identity_routes = identity
        .as_ref()
        .map_or_else(axum::Router::new, |running| running.router.clone());
    // The retail trading page at `/`, on identity's origin (see `peregrine-web`).
    let web = peregrine_web::WebMetrics::new(metrics.registry()).map_err(MetricsError::from)?;
    let identity_routes = identity_routes.merge(peregrine_web::router(web.clone()));
    let rest = peregrine_gateway::rest::serve_on_with_routes(
        listeners.rest,
        rest_config,
        Arc::clone(&engine),
        exchange.catalog.clone(),
        metrics.registry(),
        replica_reader,
        identity_routes,
    )
    .await
    .map_err(|e| UpError::Rest(e.to_string()))?;
    let mut operator_tokens = None;
    if let Some(running) = &identity {
        let tokens = running
            .attach(rest.bridge(), quic.as_ref(), &readiness)
            .await?;
        operator_tokens = Some(tokens);
        running.anchor_audit(Arc::clone(&engine), metrics.registry())?;
    }
    let withdrawal_queue = crate::wallets::serve_deposits(
        config,
        &data_dir,
        &rest,
        identity
            .as_ref()
            .map(|running| Arc::clone(&running.identity)),
        metrics.registry(),
    )
    .await
    .map_err(|e| UpError::Rest(format!("wallets: {e}")))?;
    // The assets report reads the wallets' last reconciliations from the same store.
    let reconciliations = crate::wallets::reconciliation_book(config, &data_dir)
        .await
        .map_err(|e| UpError::Rest(format!("wallets: {e}")))?;
    let demo_bot = match (demo_keys, quic.as_ref()) {
        (Some(keys), Some(server)) => Some(start_demo(keys, server, &exchange, &metrics).await?),
        _ => None,
    };
    {
        let feed_live = rest.readiness_probe();
        readiness.register_check("rest", move || {
            if feed_live() {
                CheckStatus::Ready
            } else {
                CheckStatus::NotReady("market data is resynchronising".to_owned())
            }
        })?;
    }

    // The operators' control API, on the operator listener.
    let control = if config.control.enabled {
        let (break_glass, token_path) = break_glass_token(config, &data_dir)?;
        let wallet_token = crate::wallets::wallet_token(config, &data_dir)
            .map_err(|e| UpError::ServerTask(e.to_string()))?;
        // Operators by their access tokens, verified like the bridge's, decided by identity's
        // role table and audited in its chain.
        let operators = identity
            .as_ref()
            .zip(operator_tokens)
            .map(|(running, tokens)| {
                peregrine_control::Operators::new(
                    Arc::clone(&running.identity),
                    tokens,
                    running.authorizer.clone(),
                )
            });
        let access = peregrine_control::Access {
            operators,
            break_glass,
            wallet: wallet_token,
        };
        let control_state = peregrine_control::ControlState {
            engine: Arc::clone(&engine),
            catalog: exchange.catalog.clone(),
            access: Arc::new(access),
            metrics: peregrine_control::ControlMetrics::new(metrics.registry())
                .map_err(MetricsError::from)?,
            withdrawal_queue,
            replica: control_replica,
            reconciliations,
        };
        start_fee_tier_job(config, &control_state, metrics.registry())?;
        Some((
            peregrine_control::router(control_state)
                // The operator console, on the control API's origin (see `peregrine-web`).
                .merge(peregrine_web::console::router(web)),
            token_path,
        ))
    } else {
        None
    };

    let listener = listeners.http;
    let local_addr = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: config.http.listen,
        source,
    })?;
    let state = AppState {
        metrics,
        readiness: readiness.clone(),
    };
    let mut router = http::router(state.clone()).merge(http::serving_primary(state));
    let control_on = control.is_some();
    let control_token_path = control.as_ref().and_then(|(_, path)| path.clone());
    if let Some((control_router, _)) = control {
        router = router.merge(control_router);
    }
    let (stop_sender, stop_receiver) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(http::serve(listener, router, async move {
        // A dropped sender also stops the server: nobody is left to stop it otherwise.
        let _ = stop_receiver.await;
    }));

    // Ready before the summary: whoever reads the summary may probe `/health/ready` at once.
    // The market-data feed and the replicator come up asynchronously: wait for them, bounded,
    // then go on (a part still not ready shows on `/health/ready` with its reason).
    http_ready.set_ready();
    let ready_deadline = tokio::time::Instant::now() + READY_WAIT;
    while !readiness.report().is_ready() && tokio::time::Instant::now() < ready_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !readiness.report().is_ready() {
        tracing::warn!(report = %readiness.report().to_text(), "not ready after start-up");
    }
    let replica_url = config
        .replica
        .enabled
        .then(|| redact_url(&config.replica.database_url(&data_dir)));
    let identity_store = config
        .auth
        .enabled
        .then(|| redact_url(&config.auth.database_url(&data_dir)));
    let summary = Summary {
        http_addr: local_addr,
        config,
        config_file,
        exchange: &exchange,
        quic: quic.as_ref(),
        rest: &rest,
        identity_store: identity_store.as_deref(),
        control: control_on.then_some(control_token_path.as_deref()),
        replica_url: replica_url.as_deref(),
        shipping: shipping.as_ref().map(crate::standby::Shipping::local_addr),
        demo: demo_bot.is_some(),
    };
    // A closed stdout (`peregrine up | head -1`) must not stop the exchange: warn and go on.
    if let Err(error) = summary.print() {
        tracing::warn!(%error, "could not print the start-up summary");
    }
    tracing::info!(http = %local_addr, data_dir = %data_dir.display(), "up");

    let signal = tokio::select! {
        signal = signals.recv() => signal,
        joined = &mut server => return Err(server_ended(joined)),
    };
    tracing::info!(%signal, "stopping");
    http_ready.set_not_ready("shutting down");
    // First: what is stopped on purpose from here on must not be restarted.
    supervision.stop();
    // The demo's quotes go before QUIC does: it cancels them and logs out.
    if let Some(bot) = demo_bot {
        bot.stop().await;
    }
    // Order entry first: no new commands while the rest drains.
    rest.shutdown().await;
    if let Some(quic) = quic {
        quic.shutdown(QUIC_GRACE).await;
    }
    let _ = stop_sender.send(());

    let drain_timeout = Duration::from_millis(config.http.shutdown_timeout_ms);
    let drained = tokio::select! {
        joined = &mut server => match joined {
            Ok(Ok(())) => {
                tracing::info!("http stopped");
                Ok(())
            }
            other => Err(server_ended(other)),
        },
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!(timeout_ms = config.http.shutdown_timeout_ms,
                "in-flight requests did not finish in time; closing them");
            server.abort();
            Ok(())
        }
        signal = signals.recv() => {
            tracing::warn!(%signal, "second stop signal; closing in-flight requests now");
            server.abort();
            Ok(())
        }
    };
    // Identity after every edge that writes its audit chain (the REST listener's identity
    // routes, the control API's operator decisions) has stopped, and before the engine does:
    // its last anchor is then the chain's final head, and the journal still takes it.
    if let Some(running) = identity {
        running.stop().await;
    }
    drained?;
    journal_refresh.abort();
    engine_refresh.abort();
    drop(engine);
    if let Some(fanout) = fanout {
        // It resumes from what the stream holds at the next start.
        if let Err(error) = tokio::task::spawn_blocking(move || fanout.stop()).await {
            tracing::warn!(%error, "fan-out stop task failed");
        }
    }
    if let Some(replica) = replica {
        let handle = replica
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // The replicator resumes from its high-water mark at the next start.
            match tokio::task::spawn_blocking(move || handle.stop()).await {
                Ok(Ok(high_water_seq)) => tracing::info!(high_water_seq, "replicator stopped"),
                Ok(Err(error)) => tracing::warn!(%error, "replicator stopped with an error"),
                Err(error) => tracing::warn!(%error, "replicator stop task failed"),
            }
        }
    }
    // No new standby sessions while the journal closes.
    drop(shipping);
    let durable_seq = tokio::task::spawn_blocking(move || exchange.stop())
        .await
        .map_err(|e| UpError::ServerTask(e.to_string()))??;
    tracing::info!(durable_seq, "journal closed");
    if let Some(fence) = fence {
        // Everything acknowledged is durable: hand the lead over now rather than at expiry.
        fence.resign().await;
    }
    Ok(())
}

/// The demo market maker's keys (`--demo`): QUIC must run, and its accounts must stay out of
/// identity's range.
fn demo_keys(config: &Config) -> Result<crate::demo::DemoKeys, UpError> {
    if !config.quic.enabled {
        return Err(crate::demo::DemoError::QuicDisabled.into());
    }
    let identity = config
        .auth
        .enabled
        .then_some(config.auth.account_id_first..config.auth.account_id_end);
    Ok(crate::demo::DemoKeys::generate(identity)?)
}

/// Starts the fee-tier job (`[control] fee_tier_interval_ms`) when it can run: identity for
/// the schedule and the groups, the replica for the volumes.
fn start_fee_tier_job(
    config: &Config,
    state: &peregrine_control::ControlState,
    registry: &prometheus::Registry,
) -> Result<(), UpError> {
    let interval_ms = config.control.fee_tier_interval_ms;
    let operators_on = state.access.operators.is_some();
    if interval_ms == 0 || !operators_on || state.replica.is_none() {
        return Ok(());
    }
    let metrics =
        peregrine_control::fee_tiers::FeeTierMetrics::new(registry).map_err(MetricsError::from)?;
    let interval = std::time::Duration::from_millis(interval_ms);
    peregrine_control::fee_tiers::spawn(state.clone(), interval, metrics);
    tracing::info!(interval_ms, "fee-tier job started");
    Ok(())
}

/// Funds the demo's accounts (journaled, once) and starts its bot on `server`.
async fn start_demo(
    keys: crate::demo::DemoKeys,
    server: &QuicServer,
    exchange: &Exchange,
    metrics: &Metrics,
) -> Result<crate::demo::Running, UpError> {
    crate::demo::fund(&exchange.engine, &exchange.catalog.load()).await?;
    let running = crate::demo::spawn(
        keys,
        server.local_addr(),
        server.fingerprint_sha256(),
        &exchange.catalog.load(),
        metrics.registry(),
    )
    .await?;
    Ok(running)
}

/// Starts the publisher to NATS JetStream when `[fanout]` is on, with a readiness check. It
/// connects and reconnects by itself: NATS being down never stops `up`.
///
/// A NATS outage leaves the appliance *ready*, shown as `degraded fanout: <why>` on
/// `/health/ready` and as `peregrine_fanout_connected 0` on `/metrics`. Readiness decides
/// whether a load balancer (a Kubernetes Service) sends orders here; this appliance is the
/// market's only writer, so failing it would stop trading for everyone to protect only the
/// bridges' freshness, which the bridges report on their own readiness (lag, not following).
/// Nothing is lost meanwhile: the publisher republishes from the journal on reconnect, and
/// journal retention keeps what it has not published.
fn start_fanout(
    config: &Config,
    exchange: &Exchange,
    metrics: &Metrics,
    readiness: &Readiness,
) -> Result<Option<Arc<peregrine_fanout::PublisherHandle>>, UpError> {
    if !config.fanout.enabled {
        return Ok(None);
    }
    let section = &config.fanout;
    let names = config
        .markets
        .iter()
        .map(|m| (peregrine_hotpath::MarketId(m.id), m.name.clone()));
    let mut markets =
        peregrine_fanout::MarketNames::new(names).map_err(|e| UpError::Fanout(e.to_string()))?;
    if !section.prefix.is_empty() {
        markets = markets
            .with_prefix(&section.prefix)
            .map_err(|e| UpError::Fanout(e.to_string()))?;
    }
    let mut fanout_config = peregrine_fanout::FanoutConfig::new(
        section.url.clone(),
        exchange.journal_dir.clone(),
        crate::exchange::engine_config(),
    );
    fanout_config.stream = section.stream.clone();
    fanout_config.markets = markets;
    fanout_config.retention_floor = exchange.fanout_floor.clone();
    fanout_config.snapshot_interval = Duration::from_millis(section.snapshot_interval_ms);
    fanout_config.replicas = section.replicas;
    fanout_config.access = config
        .nats
        .access()
        .map_err(|e| UpError::Fanout(e.to_string()))?;
    let handle = peregrine_fanout::Publisher::start(
        fanout_config,
        peregrine_persist::follow::DurableSource::Journal(exchange.journal().clone()),
        metrics.registry(),
    )
    .map_err(|e| UpError::Fanout(e.to_string()))?;
    let handle = Arc::new(handle);
    let checked = Arc::clone(&handle);
    readiness.register_check("fanout", move || match checked.readiness() {
        Ok(()) => CheckStatus::Ready,
        Err(why) => CheckStatus::Degraded(why),
    })?;
    Ok(Some(handle))
}

/// Supervises the background threads (see [`crate::supervisor`]): the snapshot driver and the
/// replicator are restarted when they die; the journal writer and the sequencer are watched.
/// Their state shows on `/health/ready` as `threads`.
fn supervise(
    exchange: &Exchange,
    journal: &peregrine_persist::Journal,
    metrics: &Metrics,
    readiness: &Readiness,
    replica: Option<&ReplicaSlot>,
) -> Result<SupervisorThread, UpError> {
    let thread_metrics =
        ThreadMetrics::register(metrics.registry()).map_err(crate::metrics::MetricsError::from)?;
    let supervisor = Supervisor::new(thread_metrics);
    supervisor.supervise(Box::new(exchange.snapshot_driver_thread()))?;
    let watched_journal = journal.clone();
    supervisor.supervise(Box::new(Watched::new("journal-writer", move || {
        watched_journal.failed()
    })))?;
    // Weak: the supervisor must not keep the sequencer alive past `up`'s own stop.
    let watched_engine = Arc::downgrade(&exchange.engine);
    supervisor.supervise(Box::new(Watched::new("sequencer", move || {
        watched_engine
            .upgrade()
            .filter(|engine| engine.is_failed())
            .map(|_| "the sequencer stopped taking commands".to_owned())
    })))?;
    if let Some((slot, (config, source))) = replica {
        supervisor.supervise(Box::new(ReplicaThread {
            slot: Arc::clone(slot),
            config: config.clone(),
            source: source.clone(),
            registry: metrics.registry().clone(),
        }))?;
    }
    let checked = supervisor.clone();
    readiness.register_check("threads", move || checked.status())?;
    Ok(supervisor.spawn()?)
}

/// The running replicator, and how to start it again.
type ReplicaSlot = (
    Arc<std::sync::Mutex<Option<peregrine_replica::ReplicatorHandle>>>,
    (
        peregrine_replica::ReplicaConfig,
        peregrine_replica::DurableSource,
    ),
);

fn server_ended(joined: Result<Result<(), HttpError>, tokio::task::JoinError>) -> UpError {
    match joined {
        Ok(Ok(())) => UpError::ServerTask("without a stop signal".to_owned()),
        Ok(Err(e)) => UpError::Http(e),
        Err(e) => UpError::ServerTask(e.to_string()),
    }
}

/// The one start-up warning about the host: pinned cores the kernel does not isolate, and UDP
/// buffers the OS capped below what QUIC asked for. `None` when there is nothing to say.
fn host_tuning_warning(
    unisolated: &peregrine_tuning::CpuSet,
    udp: Option<peregrine_gateway::quic::server::SocketBuffers>,
) -> Option<String> {
    let mut problems = Vec::new();
    if !unisolated.is_empty() {
        problems.push(format!(
            "pinned cores {unisolated} are not isolated (isolcpus)"
        ));
    }
    if let Some(buffers) = udp.filter(|b| b.capped()) {
        let wanted = buffers.requested_bytes;
        problems.push(format!(
            "the OS capped the QUIC UDP buffers at {}/{} of {wanted} bytes (receive/send): set \
             `sysctl -w net.core.rmem_max={wanted} net.core.wmem_max={wanted}` (or lower \
             [quic.transport] udp_buffer_bytes)",
            buffers.recv_bytes, buffers.send_bytes
        ));
    }
    if problems.is_empty() {
        return None;
    }
    Some(format!(
        "host not tuned for the hot path: {}; run `peregrine tuning check` for the fixes",
        problems.join("; ")
    ))
}

/// `url` without its credentials (`mysql://user:secret@host/db` → `mysql://…@host/db`), for
/// the summary and logs.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, rest))) => format!("{scheme}://…@{rest}"),
        _ => url.to_owned(),
    }
}

/// The control API's break-glass token and its file (made on first start, mode 0600), or
/// none when `[control] break_glass_token_file` is empty.
fn break_glass_token(
    config: &Config,
    data_dir: &std::path::Path,
) -> Result<(Option<Arc<str>>, Option<PathBuf>), UpError> {
    let file = &config.control.break_glass_token_file;
    if file.as_os_str().is_empty() {
        return Ok((None, None));
    }
    let path = data_dir.join(file);
    let token =
        crate::control_token::load_or_create(&path).map_err(|source| UpError::ControlToken {
            path: path.clone(),
            source,
        })?;
    Ok((Some(token.into()), Some(path)))
}

/// What started and where, on stdout (logs go to stderr), one `name  value` line each, e.g.
/// `http  http://127.0.0.1:8080  (/health/alive /health/ready /metrics)`.
struct Summary<'a> {
    http_addr: SocketAddr,
    config: &'a Config,
    config_file: Option<&'a std::path::Path>,
    exchange: &'a Exchange,
    quic: Option<&'a QuicServer>,
    rest: &'a peregrine_gateway::rest::RestServer,
    /// The identity store's URL (credentials redacted) when identity runs.
    identity_store: Option<&'a str>,
    /// When the control API runs: its break-glass token file, if any.
    control: Option<Option<&'a std::path::Path>>,
    replica_url: Option<&'a str>,
    /// Where standbys connect (`[replication] listen`).
    shipping: Option<SocketAddr>,
    /// The demo market maker runs (`--demo`).
    demo: bool,
}

impl Summary<'_> {
    fn print(&self) -> std::io::Result<()> {
        let config_source = self.config_file.map_or_else(
            || "embedded defaults".to_owned(),
            |p| p.display().to_string(),
        );
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "peregrine {} up", env!("CARGO_PKG_VERSION"))?;
        writeln!(stdout, "config  {config_source}")?;
        writeln!(
            stdout,
            "http  http://{}  ({ALIVE_PATH} {READY_PATH} {METRICS_PATH})",
            self.http_addr
        )?;
        match self.control {
            Some(Some(path)) => writeln!(
                stdout,
                "control  http://{}/control/v1  (operators' access tokens; break-glass token in {})",
                self.http_addr,
                path.display()
            )?,
            Some(None) => writeln!(
                stdout,
                "control  http://{}/control/v1  (operators' access tokens)",
                self.http_addr
            )?,
            None => {}
        }
        if self.control.is_some() {
            writeln!(
                stdout,
                "console  http://{}/console  (operators: e-mail, password, TOTP code)",
                self.http_addr
            )?;
        }
        if let Some(quic) = self.quic {
            let fingerprint: Vec<String> = quic
                .fingerprint_sha256()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            writeln!(
                stdout,
                "quic  {}  (sha256 {}; API keys: {})",
                quic.local_addr(),
                fingerprint.join(""),
                self.config.quic.keys.len()
            )?;
        }
        // `[rest.tls]` makes the REST listener (and the page and identity on it) https.
        let scheme = if self.config.rest.tls.is_some() {
            "https"
        } else {
            "http"
        };
        writeln!(
            stdout,
            "rest  {scheme}://{}/api/v2  (ws /api/v2/ranger/public|private; API keys: {})",
            self.rest.local_addr(),
            self.config.rest.keys.len()
        )?;
        writeln!(
            stdout,
            "page  {scheme}://{}/  (retail trading)",
            self.rest.local_addr()
        )?;
        if let Some(store) = self.identity_store {
            let auth = &self.config.auth;
            writeln!(
                stdout,
                "identity  {scheme}://{}/api/v2/barong  (store {store}; openbao {}; smtp {})",
                self.rest.local_addr(),
                auth.openbao
                    .as_ref()
                    .map_or("none: 2FA and API keys off", |b| b.address.as_str()),
                auth.smtp
                    .as_ref()
                    .map_or_else(|| "none: codes logged".to_owned(), |m| m.server.to_string()),
            )?;
        }
        writeln!(
            stdout,
            "journal  {}  (ack {}, recovered to seq {})",
            self.exchange.journal_dir.display(),
            self.config.journal.ack.name(),
            self.exchange.recovered_seq
        )?;
        if let Some(url) = self.replica_url {
            writeln!(stdout, "replica  {url}")?;
        }
        if let Some(addr) = self.shipping {
            writeln!(
                stdout,
                "replication  {addr}  (standbys: up --standby-of {addr})"
            )?;
        }
        let catalog = self.exchange.catalog.load();
        let markets: Vec<&str> = catalog.markets().iter().map(|m| m.name.as_str()).collect();
        writeln!(stdout, "markets  {}", markets.join(" "))?;
        if self.demo {
            let [maker, taker] = crate::demo::DEMO_ACCOUNTS;
            writeln!(
                stdout,
                "demo  market maker quoting every market (accounts {maker} and {taker})"
            )?;
        }
        writeln!(stdout, "data  {}", self.config.data.dir.display())?;
        stdout.flush()
    }
}
