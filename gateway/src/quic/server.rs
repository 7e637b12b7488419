//! The QUIC server: a quinn endpoint on tokio, one task per connection driving a sans-IO
//! [`Session`] over one bidirectional stream.
//!
//! Kernel-bypass door: everything protocol-level is in [`Session`] and [`EngineHandle`]; this
//! file only moves bytes between quinn streams and the session, performs the session's
//! [`Action`]s against the engine handle ([`perform_actions`]) and feeds the core's notices
//! back as reports (mapped by `super::report`). A busy-polling io_uring/AF_XDP
//! loop would drive `quinn-proto`'s `Endpoint`/`Connection` directly and call the same session
//! methods; nothing here needs to move.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use peregrine_core::{
    CloseReason, EngineHandle, Interest, Notice, Request, SubscribeError, Subscription,
    SubscriptionId,
};
use peregrine_hotpath::{AccountId, Actor, ApiKeyId, ClientOrderId, CommandKind};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::auth::{ApiKeyConfig, KeyError, KeyRegistry};
use super::directory::DirectorySource;
use super::metrics::{Ended, OpenConnection, QuicMetrics};
use super::report;
use super::tls::{Identity, TlsError, TlsSource};
use crate::levels::LevelGate;
use peregrine_auth::key_feed::KeyChange;
use peregrine_proto::directory::Directory;
use peregrine_proto::frame::{CHALLENGE_BYTES, KeyId, RejectCode, SIGNATURE_BYTES, SessionId};
use peregrine_proto::limits::SessionLimits;
use peregrine_proto::session::{
    Action, LoggedOn, Report, SUBSCRIPTIONS_MAX, Session, SessionError, SubmitError,
};

/// Reports queued for one session before it counts as a slow consumer.
pub const REPORT_QUEUE_CAPACITY: usize = 16_384;

/// The QUIC order-entry server's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Certificate source.
    pub tls: TlsSource,
    /// Registered API keys.
    #[serde(default)]
    pub keys: Vec<ApiKeyConfig>,
    /// Per-session limits.
    #[serde(default)]
    pub limits: SessionLimits,
    /// Concurrent sessions allowed per key (1 = a second logon is refused).
    #[serde(default = "one")]
    pub sessions_per_key: u32,
    /// Transport tuning.
    #[serde(default)]
    pub transport: TransportTuning,
}

fn one() -> u32 {
    1
}

/// QUIC/UDP knobs for small, latency-sensitive messages (documented in `proto/PROTOCOL.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportTuning {
    /// SO_RCVBUF and SO_SNDBUF requested, in bytes (the OS may cap them: see
    /// [`Server::socket_buffers`]).
    pub udp_buffer_bytes: usize,
    /// RTT assumed before the first sample, in microseconds: a LAN/colo value keeps the first
    /// loss-recovery timers short.
    pub initial_rtt_us: u64,
    /// Longest the peer may delay an ACK (ACK-frequency extension), in microseconds.
    pub max_ack_delay_us: u64,
    /// Send a keep-alive after this much silence, in milliseconds (0 = never).
    pub keep_alive_ms: u64,
    /// Close a connection silent for this long, in milliseconds.
    pub max_idle_timeout_ms: u64,
}

impl Default for TransportTuning {
    fn default() -> Self {
        TransportTuning {
            udp_buffer_bytes: 8 << 20,
            initial_rtt_us: 1_000,
            max_ack_delay_us: 1_000,
            keep_alive_ms: 1_000,
            max_idle_timeout_ms: 10_000,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// TLS material.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A configured key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The UDP socket.
    #[error("UDP socket on {addr}: {source}")]
    Socket {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A configuration value out of range.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// Metrics could not be registered (e.g. twice in one registry).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The UDP buffer sizes requested and what the OS granted (Linux caps a request at
/// `net.core.rmem_max`/`wmem_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketBuffers {
    /// Requested, bytes.
    pub requested_bytes: usize,
    /// SO_RCVBUF granted, bytes (the read-back value, halved on Linux, which reports twice the
    /// granted size to account for its bookkeeping).
    pub recv_bytes: usize,
    /// SO_SNDBUF granted, bytes (same convention).
    pub send_bytes: usize,
}

/// How much larger than the granted size the kernel reports a socket buffer.
const KERNEL_READBACK_FACTOR: usize = if cfg!(target_os = "linux") { 2 } else { 1 };

impl SocketBuffers {
    /// Whether the OS granted less than requested (raise `net.core.rmem_max`/`wmem_max`).
    pub fn capped(&self) -> bool {
        self.recv_bytes < self.requested_bytes || self.send_bytes < self.requested_bytes
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    fingerprint_sha256: [u8; 32],
    socket_buffers: SocketBuffers,
    engine: Arc<EngineHandle>,
    accept: tokio::task::JoinHandle<()>,
    /// A handle on the logon's registry (clones share identity's keys).
    keys: KeyRegistry,
    /// The KYC level gate, shared with the sessions (set once identity runs).
    levels: Arc<OnceLock<Arc<LevelGate>>>,
}

struct Shared {
    engine: Arc<EngineHandle>,
    keys: KeyRegistry,
    limits: SessionLimits,
    sessions_per_key: u32,
    sessions_by_key: Mutex<HashMap<KeyId, u32>>,
    next_session: AtomicU64,
    random: SystemRandom,
    epoch: Instant,
    directory: DirectorySource,
    metrics: QuicMetrics,
    /// New orders pass it (when set).
    levels: Arc<OnceLock<Arc<LevelGate>>>,
}

impl Shared {
    /// Nanoseconds since the server started: the sessions' clock.
    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Server {
    /// Binds and starts accepting connections with an empty logon directory (clients then
    /// speak engine ids and units only) and metrics nobody scrapes; must be called inside a
    /// tokio runtime.
    pub fn start(config: ServerConfig, engine: Arc<EngineHandle>) -> Result<Server, ServerError> {
        Server::start_with_directory(config, engine, Arc::default(), &prometheus::Registry::new())
    }

    /// As [`Server::start`], listing `directory` (see [`super::directory::directory_of`]) to
    /// every client at logon and registering the server's metrics ([`QuicMetrics`]) in
    /// `registry`.
    pub fn start_with_directory(
        config: ServerConfig,
        engine: Arc<EngineHandle>,
        directory: Arc<Directory>,
        registry: &prometheus::Registry,
    ) -> Result<Server, ServerError> {
        let source = DirectorySource::Fixed(directory);
        Server::start_with_directory_source(config, engine, source, registry)
    }

    /// As [`Server::start_with_directory`], the directory of each logon taken from `source`
    /// (a [`super::directory::LiveDirectory`] lists what the catalog holds at that logon).
    pub fn start_with_directory_source(
        config: ServerConfig,
        engine: Arc<EngineHandle>,
        directory: DirectorySource,
        registry: &prometheus::Registry,
    ) -> Result<Server, ServerError> {
        if config.sessions_per_key == 0 {
            return Err(ServerError::Config("sessions_per_key must be at least 1"));
        }
        if config.limits.max_in_flight == 0 || config.limits.rate_per_sec == 0 {
            return Err(ServerError::Config(
                "limits.max_in_flight and limits.rate_per_sec must be positive",
            ));
        }
        if config.limits.max_subscriptions > SUBSCRIPTIONS_MAX {
            return Err(ServerError::Config(
                "limits.max_subscriptions must be at most 1024 (SUBSCRIPTIONS_MAX)",
            ));
        }
        const _: () = assert!(SUBSCRIPTIONS_MAX == 1_024, "update the message above");
        let keys = KeyRegistry::new(&config.keys)?;
        let metrics = QuicMetrics::new(registry)?;
        let identity = Identity::load(&config.tls)?;
        let mut server_config = quinn::ServerConfig::with_crypto(identity.quic_server_config()?);
        server_config.transport_config(Arc::new(transport_config(&config.transport)?));
        // A retry round trip costs a client 1 RTT at connect; order-entry clients are known
        // keys, so address validation is left to the logon.
        let (socket, socket_buffers) = bind_udp(config.listen, config.transport.udp_buffer_bytes)?;
        // Debug only: the embedding binary reads `socket_buffers()` and says it once, with its
        // other host checks (`peregrine up` points at `peregrine tuning check`).
        if socket_buffers.capped() {
            tracing::debug!(
                ?socket_buffers,
                "the OS capped the UDP buffers: raise net.core.rmem_max / net.core.wmem_max"
            );
        }
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| ServerError::Socket {
            addr: config.listen,
            source,
        })?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|source| ServerError::Socket {
                addr: config.listen,
                source,
            })?;
        let levels: Arc<OnceLock<Arc<LevelGate>>> = Arc::default();
        let shared = Arc::new(Shared {
            engine: engine.clone(),
            keys: keys.clone(),
            limits: config.limits,
            sessions_per_key: config.sessions_per_key,
            sessions_by_key: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            random: SystemRandom::new(),
            epoch: Instant::now(),
            directory,
            metrics,
            levels: Arc::clone(&levels),
        });
        let accept = tokio::spawn(accept_loop(endpoint.clone(), shared));
        Ok(Server {
            endpoint,
            local_addr,
            fingerprint_sha256: identity.fingerprint_sha256(),
            socket_buffers,
            engine,
            accept,
            keys,
            levels,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// SHA-256 of the server certificate, for clients to pin (print it at start).
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        self.fingerprint_sha256
    }

    /// UDP buffer sizes as granted by the OS.
    pub fn socket_buffers(&self) -> SocketBuffers {
        self.socket_buffers
    }

    /// Applies a change from identity's key feed to the logon's key registry.
    pub fn apply_key_change(&self, change: KeyChange) {
        self.keys.apply(change);
    }

    /// Gates new orders by `gate` from now on, in every session (once; a second call is
    /// ignored).
    pub fn gate_levels(&self, gate: Arc<LevelGate>) {
        let _ = self.levels.set(gate);
    }

    /// A handle on the logon's registry: changes applied to it reach the running server (for a
    /// key follower task, which must own what it feeds).
    pub fn key_registry(&self) -> KeyRegistry {
        self.keys.clone()
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<EngineHandle> {
        &self.engine
    }

    /// Logs every session out (`ShuttingDown`), stops accepting, and waits for the endpoint to be
    /// idle (bounded by `grace`).
    pub async fn shutdown(self, grace: Duration) {
        self.engine.shutdown();
        self.accept.abort();
        // Sessions flush their Logout frame, then close; give them `grace` to do so.
        let _ = tokio::time::timeout(grace, self.endpoint.wait_idle()).await;
        self.endpoint.close(
            quinn::VarInt::from_u32(u32::from(RejectCode::SHUTTING_DOWN.0)),
            b"shutdown",
        );
    }
}

fn transport_config(t: &TransportTuning) -> Result<quinn::TransportConfig, ServerError> {
    let mut c = quinn::TransportConfig::default();
    // One order-entry stream per connection; no unidirectional streams.
    c.max_concurrent_bidi_streams(quinn::VarInt::from_u32(1));
    c.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    c.initial_rtt(Duration::from_micros(t.initial_rtt_us));
    // Small frames: GSO batching only helps bulk senders and can hold a datagram for a batch.
    c.enable_segmentation_offload(false);
    let mut ack = quinn::AckFrequencyConfig::default();
    // ACK every ack-eliciting packet and never hold one longer than `max_ack_delay_us`: the
    // peer's loss detection and congestion window never wait on a delayed ACK.
    ack.ack_eliciting_threshold(quinn::VarInt::from_u32(0));
    ack.max_ack_delay(Some(Duration::from_micros(t.max_ack_delay_us)));
    c.ack_frequency_config(Some(ack));
    c.keep_alive_interval((t.keep_alive_ms > 0).then(|| Duration::from_millis(t.keep_alive_ms)));
    let idle = quinn::IdleTimeout::try_from(Duration::from_millis(t.max_idle_timeout_ms))
        .map_err(|_| ServerError::Config("transport.max_idle_timeout_ms is too large"))?;
    c.max_idle_timeout(Some(idle));
    Ok(c)
}

fn bind_udp(
    addr: SocketAddr,
    buffer_bytes: usize,
) -> Result<(std::net::UdpSocket, SocketBuffers), ServerError> {
    let err = |source| ServerError::Socket { addr, source };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(err)?;
    // Best effort: the OS may refuse or cap; what it granted is read back and reported.
    let _ = socket.set_recv_buffer_size(buffer_bytes);
    let _ = socket.set_send_buffer_size(buffer_bytes);
    socket.bind(&addr.into()).map_err(err)?;
    let buffers = SocketBuffers {
        requested_bytes: buffer_bytes,
        recv_bytes: socket.recv_buffer_size().map_err(err)? / KERNEL_READBACK_FACTOR,
        send_bytes: socket.send_buffer_size().map_err(err)? / KERNEL_READBACK_FACTOR,
    };
    Ok((socket.into(), buffers))
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(connection) => {
                    let open = shared.metrics.accepted();
                    serve(connection, shared, open).await;
                }
                Err(error) => {
                    shared.metrics.handshake_failed();
                    tracing::debug!(%error, "handshake failed");
                }
            }
        });
    }
}

/// The engine side of one connection: the engine handle plus this session's identity. It
/// performs the session's [`Action`]s ([`perform_actions`]).
struct EngineSide {
    shared: Arc<Shared>,
    session: SessionId,
    /// Opened at logon: the account's notices and this session's replies and market data.
    subscription: Option<SubscriptionId>,
    /// The subscription's receiving end until the connection task takes it.
    opened: Option<Subscription>,
    key: Option<KeyId>,
}

impl EngineSide {
    fn logon(
        &mut self,
        key_id: KeyId,
        challenge: &[u8; CHALLENGE_BYTES],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> Result<LoggedOn, RejectCode> {
        let outcome = self.verify_and_subscribe(key_id, challenge, signature);
        self.shared
            .metrics
            .logon(outcome.as_ref().map(|_| ()).map_err(|code| *code));
        outcome
    }

    fn verify_and_subscribe(
        &mut self,
        key_id: KeyId,
        challenge: &[u8; CHALLENGE_BYTES],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> Result<LoggedOn, RejectCode> {
        let account = self.shared.keys.verify(key_id, challenge, signature)?;
        {
            let mut counts = self
                .shared
                .sessions_by_key
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let count = counts.entry(key_id).or_default();
            if *count >= self.shared.sessions_per_key {
                return Err(RejectCode::SESSION_LIMIT);
            }
            *count += 1;
        }
        // Set first: `Drop` gives the session's slot back even if the subscription fails.
        self.key = Some(key_id);
        let subscription = self
            .shared
            .engine
            .subscribe(Interest::Account(account), REPORT_QUEUE_CAPACITY)
            .map_err(|_| RejectCode::UNAVAILABLE)?;
        self.subscription = Some(subscription.id());
        self.opened = Some(subscription);
        Ok(LoggedOn {
            account,
            session: self.session,
            directory: self.shared.directory.current(),
        })
    }

    fn submit(
        &mut self,
        account: AccountId,
        new_order: Option<ClientOrderId>,
        command: CommandKind,
    ) -> Result<u64, SubmitError> {
        // A session submits only after its logon set the key and opened the subscription (the
        // session enforces the order).
        let (Some(key), Some(subscription)) = (self.key, self.subscription) else {
            return Err(SubmitError::Unavailable);
        };
        // A new order passes the KYC level gate (cancels never do: a user may always take
        // orders off the book). Refused before sequencing: nothing changes.
        if new_order.is_some()
            && let Some(gate) = self.shared.levels.get()
            && gate.check_trade(account).is_err()
        {
            return Err(SubmitError::Refused(RejectCode::LEVEL_TOO_LOW));
        }
        let mut request =
            Request::new(Actor::ApiKey(ApiKeyId(key.0)), command).reply_to(subscription);
        if let Some(client_order_id) = new_order {
            request = request.new_order(account, client_order_id);
        }
        // The ticket is dropped: the outcome reaches the session as notices, in order.
        self.shared
            .engine
            .submit(request)
            .map(|ticket| ticket.seq())
            .map_err(report::submit_error)
    }

    /// Has the session's subscription follow `market` (a snapshot is queued first).
    fn follow(&self, market: peregrine_hotpath::MarketId) -> Result<(), RejectCode> {
        let Some(subscription) = self.subscription else {
            return Err(RejectCode::NOT_LOGGED_ON);
        };
        match self.shared.engine.follow_market(subscription, market) {
            Ok(()) => Ok(()),
            Err(SubscribeError::UnknownMarket) => Err(RejectCode::UNKNOWN_MARKET),
            // The subscription was closed (the session fell behind): it closes next.
            Err(_) => Err(RejectCode::SLOW_CONSUMER),
        }
    }
}

/// Performs every action `session` has queued against the engine, feeding each result back at
/// once (which may queue more), until none is left. Every engine call is synchronous (a
/// balance is read from the core's views, never on the matching thread). The first error is
/// returned;
/// later actions are still performed (an unsubscribe queued before a close still happens).
fn perform_actions(session: &mut Session, engine: &mut EngineSide) -> Result<(), SessionError> {
    let mut result = Ok(());
    // Bounded: each result parses at most the frames already received.
    while let Some(action) = session.poll_action() {
        let performed = match action {
            Action::Logon {
                key_id,
                challenge,
                signature,
            } => session.on_logon_result(engine.logon(key_id, &challenge, &signature)),
            Action::Submit {
                request_id,
                account,
                new_order,
                command,
            } => session.on_submit_result(request_id, engine.submit(account, new_order, command)),
            Action::Status {
                request_id,
                account,
                client_order_id,
            } => {
                let status = engine.shared.engine.status(account, client_order_id);
                session.on_status_result(request_id, report::status(status))
            }
            Action::Subscribe { request_id, market } => {
                session.on_subscribe_result(request_id, engine.follow(market))
            }
            Action::Unsubscribe { market } => {
                if let Some(subscription) = engine.subscription {
                    engine.shared.engine.unfollow_market(subscription, market);
                }
                Ok(())
            }
            Action::Balance {
                request_id,
                account,
                currency,
            } => {
                // The views the REST bridge's balances read: released (in `durable` mode,
                // durable) state, answered at once.
                let view = engine
                    .shared
                    .engine
                    .read(|views| views.balance(account, currency));
                let balance = peregrine_hotpath::ledger::Balance {
                    available: view.available.0,
                    locked: view.locked.0,
                };
                session.on_balance_result(request_id, Ok(balance))
            }
            action => {
                tracing::error!(?action, "the server does not know this session action");
                Ok(())
            }
        };
        result = result.and(performed);
    }
    // Every result was fed back.
    debug_assert!(!session.awaits_result() || session.close_reason().is_some());
    result
}

impl Drop for EngineSide {
    fn drop(&mut self) {
        if let Some(subscription) = self.subscription {
            self.shared.engine.unsubscribe(subscription);
        }
        if let Some(key) = self.key {
            let mut counts = self
                .shared
                .sessions_by_key
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = counts.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&key);
                }
            }
        }
    }
}

/// Bytes read from the stream at once.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Reports folded into one write.
const REPORTS_PER_WRITE: usize = 1_024;
/// How long a closing session waits for the peer to take its last frame.
const CLOSE_LINGER: Duration = Duration::from_millis(200);

async fn serve(connection: quinn::Connection, shared: Arc<Shared>, mut open: OpenConnection) {
    let idle = Duration::from_millis(u64::from(shared.limits.idle_timeout_ms));
    let Ok(Ok((mut send, mut recv))) = tokio::time::timeout(idle, connection.accept_bi()).await
    else {
        open.ends(Ended::NoStream);
        connection.close(
            quinn::VarInt::from_u32(u32::from(RejectCode::IDLE_TIMEOUT.0)),
            b"no stream",
        );
        return;
    };
    let mut challenge = [0u8; CHALLENGE_BYTES];
    if shared.random.fill(&mut challenge).is_err() {
        tracing::error!("the OS random source failed");
        open.ends(Ended::Internal);
        connection.close(quinn::VarInt::from_u32(0), b"internal");
        return;
    }
    let session_id = SessionId(shared.next_session.fetch_add(1, Ordering::Relaxed));
    let mut engine = EngineSide {
        shared: shared.clone(),
        session: session_id,
        subscription: None,
        opened: None,
        key: None,
    };
    let mut notices: Option<Subscription> = None;
    let mut session = Session::new(shared.limits, challenge, shared.now_ns());
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    let tick_period = Duration::from_millis(u64::from(shared.limits.idle_timeout_ms.max(2) / 2));
    let mut tick = tokio::time::interval(tick_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Bounded by the session: it closes on idleness, abuse, a slow consumer or shutdown.
    let ended = loop {
        let logged_on = session.account().is_some();
        tokio::select! {
            read = recv.read(&mut buffer) => match read {
                Ok(Some(n)) => {
                    let bytes = buffer.get(..n).unwrap_or_default();
                    let handled = session
                        .on_bytes(shared.now_ns(), bytes)
                        .and(perform_actions(&mut session, &mut engine));
                    if let Err(error) = handled {
                        tracing::debug!(session = session_id.0, %error, "session closed by input");
                    }
                    if let Some(opened) = engine.opened.take() {
                        notices = Some(opened);
                    }
                }
                Ok(None) | Err(_) => break Ended::PeerClosed,
            },
            notice = next_notice(&mut notices), if logged_on => match notice {
                Ok(notice) => {
                    on_notice(&mut session, notice);
                    for _ in 1..REPORTS_PER_WRITE {
                        match notices.as_mut().and_then(Subscription::try_recv) {
                            Some(notice) => on_notice(&mut session, notice),
                            None => break,
                        }
                    }
                }
                // The core ended the subscription: it fell behind, or the exchange stops.
                Err(reason) => session.on_report(&Report::Close(report::close_code(reason))),
            },
            _ = tick.tick() => session.on_tick(shared.now_ns()),
        }
        if !flush(&mut session, &mut send, &shared).await {
            break Ended::WriteFailed;
        }
        if let Some(code) = session.close_reason() {
            let _ = send.finish();
            // Let the peer read the final frame before the connection closes.
            let _ = tokio::time::timeout(CLOSE_LINGER, connection.closed()).await;
            connection.close(quinn::VarInt::from_u32(u32::from(code.0)), b"closed");
            open.ends(Ended::Session(code));
            return;
        }
    };
    shared.metrics.add(&session.take_counts());
    open.ends(ended);
    connection.close(quinn::VarInt::from_u32(0), b"bye");
}

/// Writes the session's output, if any, and counts what the session counted; false when the
/// peer cannot be written to.
async fn flush(session: &mut Session, send: &mut quinn::SendStream, shared: &Shared) -> bool {
    let metrics = &shared.metrics;
    metrics.add(&session.take_counts());
    if session.output().is_empty() {
        return true;
    }
    if send.write_all(session.output()).await.is_err() {
        return false;
    }
    metrics.answered(shared.now_ns(), session.answered_received_ns());
    session.clear_output();
    true
}

/// The next notice of the session's subscription; never ready before logon opened it.
async fn next_notice(notices: &mut Option<Subscription>) -> Result<Notice, CloseReason> {
    match notices {
        Some(subscription) => subscription.recv().await,
        None => std::future::pending().await,
    }
}

/// Feeds one core notice to the session as the report it stands for.
fn on_notice(session: &mut Session, notice: Notice) {
    if let Some(report) = report::report(notice) {
        session.on_report(&report);
    }
}
