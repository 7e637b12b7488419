//! The hot standby in `up` (issue #19): the primary's shipping server, and the standby mode
//! (`up --standby-of ADDR`).
//!
//! Owns: starting `peregrine_standby`'s two ends from `[replication]`/`[standby]`, their metrics
//! on the appliance's registry (`peregrine_ship_*`, `peregrine_standby_*`) and their lag on
//! `/health/ready`. Never does: the shipping protocol, journaling or applying (the
//! `peregrine_standby` crate does), nor order entry on a standby (it opens no gateway: a standby
//! that accepted commands would fork the primary's history).
//!
//! # Catching up
//!
//! A standby started (or restarted) against a running primary recovers its own journal, then
//! asks for the records after its end; the primary reads them back from its journal files. A
//! standby whose start the primary's retention already deleted is refused
//! (`JournalGone`) and stops: seed it with a copy of the primary's newest snapshot file in its
//! `<data.dir>/journal` (recovery starts from it, and the primary ships what follows).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peregrine_persist::snapshot::RetentionFloor;
use peregrine_persist::{AckMode, Journal, WithoutStandby};
use peregrine_standby::etcd::Etcd;
use peregrine_standby::leader::{Candidacy, LeaderConfig, Leadership, try_lead};
use peregrine_standby::metrics::{ShipMetrics, StandbyMetrics};
use peregrine_standby::standby::Followed;
use peregrine_standby::{Shipper, ShipperConfig, StandbyConfig};

use crate::config::{Config, Loaded};
use crate::exchange::{JOURNAL_SUBDIR, engine_config, journal_config};
use crate::http::{self, ALIVE_PATH, AppState, METRICS_PATH, READY_PATH};
use crate::metrics::Metrics;
use crate::readiness::{CheckStatus, Readiness};
use crate::shutdown::StopSignals;

/// Why the primary's shipping or the standby could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StandbyUpError {
    /// The shipping address could not be bound.
    #[error("cannot listen on replication.listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS files could not be used.
    #[error("replication TLS: {0}")]
    Tls(#[from] peregrine_standby::TlsError),
    /// Metrics or readiness could not be registered.
    #[error("replication metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A readiness check could not be registered.
    #[error(transparent)]
    Readiness(#[from] crate::readiness::ReadinessError),
    /// The standby stopped on an error (authentication, a refusal, a journal failure).
    #[error("standby: {0}")]
    Standby(#[from] peregrine_standby::StandbyError),
    /// The operator HTTP server failed.
    #[error(transparent)]
    Http(#[from] http::HttpError),
    /// A task failed.
    #[error("standby task: {0}")]
    Task(String),
    /// etcd could not be used for leadership.
    #[error("leadership: {0}")]
    Etcd(#[from] peregrine_standby::etcd::EtcdError),
    /// Another node leads: this one must start as its standby.
    #[error(
        "leadership: node {node:?} leads (term {term}); start this node with --standby-of its \
         replication address"
    )]
    Led {
        /// The leader's name.
        node: String,
        /// Its term.
        term: u64,
    },
}

/// Exit code of a primary that lost its lease: it stops acknowledging at once, and its
/// supervisor restarts it (as a standby of the new leader).
pub const EXIT_DEPOSED: i32 = 4;

/// The pair's leadership settings, with `[leadership] etcd` set.
pub fn leader_config(config: &Config) -> Result<Option<LeaderConfig>, StandbyUpError> {
    let section = &config.leadership;
    if !section.enabled() {
        return Ok(None);
    }
    let ttl = Duration::from_millis(section.lease_ttl_ms);
    // A call must answer well within the lease, or the renewal is late anyway.
    let etcd = Etcd::new(&section.etcd, (ttl / 4).max(Duration::from_millis(100)))?;
    Ok(Some(LeaderConfig {
        etcd,
        prefix: section.prefix.clone(),
        node: section.node.clone(),
        lease_ttl: ttl,
    }))
}

/// A primary with `[leadership]`: takes the lease before its journal opens. Refused when
/// another node leads; waits (bounded by two lease times) while the holder is this node's own
/// previous run, whose lease has not expired yet.
pub async fn lead(config: &Config) -> Result<Option<Leadership>, StandbyUpError> {
    let Some(leader) = leader_config(config)? else {
        return Ok(None);
    };
    let deadline = tokio::time::Instant::now() + leader.lease_ttl * 2 + Duration::from_secs(1);
    // Bounded by the deadline.
    loop {
        let outcome = try_lead(&leader).await;
        let late = tokio::time::Instant::now() >= deadline;
        match outcome {
            Ok(Ok(leadership)) => return Ok(Some(leadership)),
            Ok(Err(Some(holder))) if holder.value != leader.node || late => {
                return Err(StandbyUpError::Led {
                    node: holder.value,
                    term: holder.term,
                });
            }
            Err(error) if late => return Err(error.into()),
            Ok(Err(_)) => tracing::info!("leadership: waiting for the previous lease to expire"),
            Err(error) => tracing::warn!(%error, "leadership: etcd not answering; retrying"),
        }
        tokio::time::sleep(leader.renew_every()).await;
    }
}

/// What `standby.of = "leader"` chose at start.
#[derive(Debug)]
pub enum Role {
    /// The lease was free and this node took it: it trades.
    Lead(Leadership),
    /// Another node holds the lease: follow it at this address (`leadership.peer_address`).
    Follow {
        /// The holder's node name.
        node: String,
        /// Its shipping address.
        address: String,
    },
}

/// `standby.of = "leader"`: takes the lease if it is free, or names its holder to follow.
/// While the holder is this node's own previous run (its lease not expired yet), waits like
/// [`lead`], bounded by two lease times.
pub async fn choose_role(config: &Config) -> Result<Role, StandbyUpError> {
    let Some(leader) = leader_config(config)? else {
        return Err(StandbyUpError::Task(
            "standby.of = \"leader\" needs leadership.etcd".to_owned(),
        ));
    };
    let deadline = tokio::time::Instant::now() + leader.lease_ttl * 2 + Duration::from_secs(1);
    // Bounded by the deadline.
    loop {
        let outcome = try_lead(&leader).await;
        let late = tokio::time::Instant::now() >= deadline;
        match outcome {
            Ok(Ok(leadership)) => return Ok(Role::Lead(leadership)),
            Ok(Err(Some(holder))) if holder.value != leader.node => {
                let address = config.leadership.peer_of(&holder.value);
                tracing::info!(node = %holder.value, %address, term = holder.term, "following the leader");
                return Ok(Role::Follow {
                    node: holder.value,
                    address,
                });
            }
            Ok(Err(Some(holder))) if late => {
                return Err(StandbyUpError::Led {
                    node: holder.value,
                    term: holder.term,
                });
            }
            Err(error) if late => return Err(error.into()),
            Ok(Err(_)) => tracing::info!("leadership: waiting for the previous lease to expire"),
            Err(error) => tracing::warn!(%error, "leadership: etcd not answering; retrying"),
        }
        tokio::time::sleep(leader.renew_every()).await;
    }
}

/// The configuration `up` goes on with once [`choose_role`] chose: a leader is no standby; a
/// follower follows the holder's address, and checks the holder's certificate against
/// `standby.primary_name` with `{node}` replaced by the holder's name.
pub fn with_role(loaded: &Loaded, role: &Role) -> Loaded {
    let mut resolved = loaded.clone();
    match role {
        Role::Lead(_) => resolved.config.standby.of.clear(),
        Role::Follow { node, address } => {
            resolved.config.standby.of.clone_from(address);
            resolved.config.standby.primary_name = resolved
                .config
                .standby
                .primary_name
                .replace(crate::config::replication::NODE_PLACEHOLDER, node);
        }
    }
    resolved
}

/// Holds the leadership while `up` trades: the process exits ([`EXIT_DEPOSED`]) at its fence
/// ([`peregrine_standby::leader::ACK_FENCE`] after the send of its last successful renewal, or
/// as soon as etcd says the lease is gone), so a deposed primary acknowledges nothing more;
/// [`Fence::resign`] hands it over at a planned stop.
#[derive(Debug)]
pub struct Fence {
    resign: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the fence of `leadership`.
pub fn fence(mut leadership: Leadership) -> Fence {
    let (resign, resigned) = tokio::sync::oneshot::channel::<()>();
    let term = leadership.term();
    let task = tokio::spawn(async move {
        let lost = tokio::select! {
            () = leadership.lost() => true,
            _ = resigned => false,
        };
        if lost {
            tracing::error!(
                term,
                "leadership lost: stopping at once, acknowledging nothing more"
            );
            std::process::exit(EXIT_DEPOSED);
        }
        leadership.resign().await;
    });
    Fence { resign, task }
}

impl Fence {
    /// Gives the lease up (the journal is closed): a standby takes over without waiting for it
    /// to expire.
    pub async fn resign(self) {
        let _ = self.resign.send(());
        let _ = self.task.await;
    }
}

/// The primary's shipping address, bound before the data directory is touched (like the
/// gateways' listeners): a port in use stops the start with nothing written.
pub fn bind_shipping(config: &Config) -> Result<Option<std::net::TcpListener>, StandbyUpError> {
    let section = &config.replication;
    if !section.ships() {
        return Ok(None);
    }
    let listener =
        std::net::TcpListener::bind(&section.listen).map_err(|source| StandbyUpError::Bind {
            addr: section.listen.clone(),
            source,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| StandbyUpError::Bind {
            addr: section.listen.clone(),
            source,
        })?;
    Ok(Some(listener))
}

/// The primary's running shipper and its metrics.
#[derive(Debug)]
pub struct Shipping {
    shipper: Shipper,
    metrics: ShipMetrics,
    /// `replicated` with `refuse`: no standby means no acknowledgement (not ready).
    refuse: bool,
    lag_max_s: f64,
}

/// Starts shipping `journal` to standbys on `listener` (from [`bind_shipping`]). Called as soon
/// as the journal is open, before the catalog's commands: in `replicated` mode with `refuse`
/// they wait for a standby. Needs the tokio runtime's context (a `spawn_blocking` thread has
/// it). Runs until dropped.
pub fn start_shipping(
    config: &Config,
    listener: std::net::TcpListener,
    journal_dir: std::path::PathBuf,
    journal: &Journal,
    term: u64,
    retention_floor: Option<RetentionFloor>,
) -> Result<Shipping, StandbyUpError> {
    let section = &config.replication;
    let tls = section.tls_files().server_config()?;
    let bind_error = |source| StandbyUpError::Bind {
        addr: section.listen.clone(),
        source,
    };
    let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_error)?;
    // Registered on the appliance's registry by `expose`, once that exists.
    let metrics = ShipMetrics::register(&prometheus::Registry::new())?;
    let shipper_config = ShipperConfig {
        journal_dir,
        standbys_max: section.standbys_max,
        heartbeat_every: Duration::from_millis(section.heartbeat_every_ms),
        term,
        retention_floor,
        retention_records_max: section.standby_retention_records_max,
    };
    let shipper = Shipper::start(
        listener,
        tls,
        shipper_config,
        journal.clone(),
        metrics.clone(),
    )
    .map_err(bind_error)?;
    tracing::info!(listen = %shipper.local_addr(), "shipping the journal to standbys");
    Ok(Shipping {
        shipper,
        metrics,
        refuse: journal.ack_mode() == AckMode::Replicated(WithoutStandby::Refuse),
        lag_max_s: Duration::from_millis(section.ready_lag_max_ms).as_secs_f64(),
    })
}

impl Shipping {
    /// Where standbys connect.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.shipper.local_addr()
    }

    /// Puts the shipping metrics on the appliance's registry (`peregrine_ship_*`) and the lag
    /// on `/health/ready`: not ready while the standby trails by more than
    /// `replication.ready_lag_max_ms`, or while none is connected in `refuse` mode.
    pub fn expose(&self, metrics: &Metrics, readiness: &Readiness) -> Result<(), StandbyUpError> {
        let m = &self.metrics;
        let registry = metrics.registry();
        registry.register(Box::new(m.standbys.clone()))?;
        registry.register(Box::new(m.sessions.clone()))?;
        registry.register(Box::new(m.records.clone()))?;
        registry.register(Box::new(m.replicated_seq.clone()))?;
        registry.register(Box::new(m.lag_records.clone()))?;
        registry.register(Box::new(m.lag_seconds.clone()))?;
        registry.register(Box::new(m.ack_seconds.clone()))?;
        registry.register(Box::new(m.snapshots.clone()))?;
        registry.register(Box::new(m.snapshot_seconds.clone()))?;
        registry.register(Box::new(m.retention_held_records.clone()))?;
        registry.register(Box::new(m.retention_released.clone()))?;
        let (refuse, lag_max_s) = (self.refuse, self.lag_max_s);
        let checked = m.clone();
        readiness.register_check("replication", move || {
            let standbys = checked.standbys.get();
            let (records, seconds) = (checked.lag_records.get(), checked.lag_seconds.get());
            if standbys == 0 && refuse {
                CheckStatus::NotReady(
                    "no standby connected: acknowledgements held (replicated, refuse)".to_owned(),
                )
            } else if standbys > 0 && seconds > lag_max_s {
                CheckStatus::NotReady(format!(
                    "standby lag {records} records, {seconds:.3} s (max {lag_max_s} s)"
                ))
            } else {
                CheckStatus::Ready
            }
        })?;
        let noted = m.clone();
        readiness.register_note("replication", move || {
            format!(
                "{} standbys connected, lag {} records, {:.3} s, replicated to seq {}",
                noted.standbys.get(),
                noted.lag_records.get(),
                noted.lag_seconds.get(),
                noted.replicated_seq.get()
            )
        })?;
        Ok(())
    }
}

/// The standby's readiness: connected to the primary and trailing it by at most
/// `replication.ready_lag_max_ms`; its lag as a note.
fn register_standby_readiness(
    config: &Config,
    metrics: &StandbyMetrics,
    readiness: &Readiness,
) -> Result<(), StandbyUpError> {
    let lag_max_s = Duration::from_millis(config.replication.ready_lag_max_ms).as_secs_f64();
    let primary = config.standby.of.clone();
    let checked = metrics.clone();
    readiness.register_check("standby", move || {
        let (records, seconds) = (checked.lag_records.get(), checked.lag_seconds.get());
        if checked.connected.get() == 0 {
            CheckStatus::NotReady(format!("not connected to the primary at {primary}"))
        } else if seconds > lag_max_s {
            CheckStatus::NotReady(format!(
                "lag {records} records, {seconds:.3} s (max {lag_max_s} s)"
            ))
        } else {
            CheckStatus::Ready
        }
    })?;
    let noted = metrics.clone();
    let primary = config.standby.of.clone();
    readiness.register_note("standby", move || {
        format!(
            "standby of {primary}: lag {} records, {:.3} s, durable seq {}, primary at {}",
            noted.lag_records.get(),
            noted.lag_seconds.get(),
            noted.durable_seq.get(),
            noted.primary_durable_seq.get()
        )
    })?;
    Ok(())
}

/// The standby's settings from the configuration: its journal under `<data.dir>/journal`
/// (where `up` would recover it, were this node to trade), the appliance's engine limits.
pub fn standby_config(config: &Config) -> StandbyConfig {
    let mut journal = journal_config(config, &config.data.dir.join(JOURNAL_SUBDIR));
    // A standby's own journal gates nothing: its acknowledgements are the ACK frames.
    journal.ack_mode = AckMode::Durable;
    StandbyConfig {
        primary_addr: config.standby.of.clone(),
        primary_name: config.standby.primary_name.clone(),
        journal,
        engine: engine_config(),
        reconnect_every: Duration::from_millis(config.standby.reconnect_every_ms),
        stop_at: None,
        term_floor: Default::default(),
        followed: Default::default(),
    }
}

/// `up` as a standby: follows the primary, serving `/health/*` and `/metrics` on
/// `http.listen`, no gateway. Returns `None` after a stop signal (its journal closed), or
/// `Some(leadership)` once promoted: the primary's lease was free and this node the best
/// candidate; everything received is then journaled and applied, the journal closed, and `up`
/// goes on to open it as the primary.
pub async fn serve_standby(
    loaded: &Loaded,
    signals: &mut StopSignals,
) -> Result<Option<Leadership>, StandbyUpError> {
    let config = &loaded.config;
    let listener = http::bind(config.http.listen).await?;
    let http_addr = listener
        .local_addr()
        .map_err(|source| http::HttpError::Bind {
            addr: config.http.listen,
            source,
        })?;
    std::fs::create_dir_all(&config.data.dir).map_err(|e| {
        StandbyUpError::Task(format!(
            "cannot create data directory {}: {e}",
            config.data.dir.display()
        ))
    })?;
    let metrics = Metrics::new().map_err(|e| StandbyUpError::Task(e.to_string()))?;
    let readiness = Readiness::new();
    let standby_metrics = StandbyMetrics::register(metrics.registry())?;
    register_standby_readiness(config, &standby_metrics, &readiness)?;
    let tls = config.replication.tls_files().client_config()?;
    let follow = standby_config(config);
    let term_floor = Arc::clone(&follow.term_floor);
    let followed = Arc::clone(&follow.followed);
    let candidacy = leader_config(config)?.map(Candidacy::new);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut follower = tokio::spawn(peregrine_standby::standby::run_until(
        follow,
        tls,
        standby_metrics.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let router = http::router(AppState {
        metrics,
        readiness: readiness.clone(),
    })
    .merge(http::serving_standby());
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(listener, router, async move {
        let _ = http_stopped.await;
    }));
    print_summary(http_addr, config);
    tracing::info!(primary = %config.standby.of, http = %http_addr, "standby up");
    let (outcome, promoted) = tokio::select! {
        signal = signals.recv() => {
            tracing::info!(%signal, "stopping the standby");
            let _ = stop_tx.send(());
            ((&mut follower).await, None)
        }
        ended = &mut follower => (ended, None),
        leadership = campaign(candidacy, &standby_metrics, &term_floor, &followed) => {
            tracing::info!(term = leadership.term(), "promoted: finishing what was received");
            let _ = stop_tx.send(());
            ((&mut follower).await, Some(leadership))
        }
    };
    let _ = http_stop.send(());
    let _ = server.await;
    let stopped = outcome.map_err(|e| StandbyUpError::Task(e.to_string()))??;
    tracing::info!(durable_seq = stopped.durable_seq, "standby journal closed");
    Ok(promoted)
}

/// Publishes this standby's durable sequence as its candidacy and takes the lead at a
/// vacancy; raises `term_floor` with every term it sees. When the followed primary's process is
/// gone (its port refuses connections), revokes its lease at once rather than wait for etcd to
/// expire it. Pending forever without `[leadership]`.
async fn campaign(
    candidacy: Option<Candidacy>,
    metrics: &StandbyMetrics,
    term_floor: &std::sync::atomic::AtomicU64,
    followed: &Followed,
) -> Leadership {
    let Some(mut candidacy) = candidacy else {
        return std::future::pending().await;
    };
    let every = candidacy.renew_every();
    let mut vacant_since: Option<tokio::time::Instant> = None;
    // Bounded by the standby's life: one look per interval or per sign of the primary's death.
    loop {
        let durable_seq = u64::try_from(metrics.durable_seq.get()).unwrap_or(0);
        // A better candidate gets one lease time to take it; then anyone does.
        let grace_over = vacant_since.is_some_and(|at| at.elapsed() > candidacy.lease_ttl());
        match candidacy.step(durable_seq, grace_over).await {
            Ok(Some(leadership)) => {
                term_floor.fetch_max(leadership.term(), std::sync::atomic::Ordering::AcqRel);
                return leadership;
            }
            Ok(None) => {
                term_floor.fetch_max(candidacy.term_seen, std::sync::atomic::Ordering::AcqRel);
                vacant_since = match (candidacy.leader_present(), vacant_since) {
                    (true, _) => None,
                    (false, None) => Some(tokio::time::Instant::now()),
                    (false, since) => since,
                };
            }
            Err(error) => tracing::warn!(%error, "standby: etcd not answering; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            term = followed.gone() => {
                if let Err(error) = candidacy.depose(term).await {
                    tracing::warn!(%error, "standby: revoking the gone leader's lease failed");
                }
            }
        }
    }
}

/// What started and where, on stdout, like the primary's summary.
fn print_summary(http_addr: SocketAddr, config: &Config) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let printed = writeln!(
        stdout,
        "peregrine {} up (standby of {})",
        env!("CARGO_PKG_VERSION"),
        config.standby.of
    )
    .and_then(|()| {
        writeln!(
            stdout,
            "http  http://{http_addr}  ({ALIVE_PATH} {READY_PATH} {METRICS_PATH})"
        )
    })
    .and_then(|()| {
        writeln!(
            stdout,
            "journal  {}  (standby: no gateway until promoted)",
            config.data.dir.join(JOURNAL_SUBDIR).display()
        )
    })
    .and_then(|()| stdout.flush());
    // A closed stdout must not stop the standby.
    if let Err(error) = printed {
        tracing::warn!(%error, "could not print the start-up summary");
    }
}
