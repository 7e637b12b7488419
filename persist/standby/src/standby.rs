//! The standby's side: connects to the primary over mutual TLS, asks for the records after its
//! own journal's end, journals each at the primary's sequence
//! ([`Journal::append_sequenced`](peregrine_persist::Journal::append_sequenced)), applies it to
//! its engine (the same deterministic engine, recovered from its own journal at start), and
//! acknowledges its own durable sequence.
//!
//! Fencing, per record: every record carries the term of the leader that sequenced it. A
//! record is refused ([`StaleTerm`], counted in `standby_stale_term_records_total`, the
//! session ends) when its term is older than the newest this standby's journal holds, or when
//! its sender's term is older than the newest leadership term this standby has seen (a primary
//! deposed while its session was open). The journal refuses it too
//! ([`JournalError::StaleTerm`]), as a last line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peregrine_hotpath::{Engine, EngineConfig, Event};
use peregrine_persist::payload::{self, Scratch};
use peregrine_persist::record::PAYLOAD_MAX_BYTES;
use peregrine_persist::{Journal, JournalConfig, JournalError, Seq, Snapshotter};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::lag::LagClock;
use crate::metrics::StandbyMetrics;
use crate::primary::seq_gauge;
use crate::tls::{TlsError, server_name};
use crate::wire::{
    self, BODY_MAX_BYTES, Frame, PROTOCOL_VERSION, RefuseReason, SNAPSHOT_MAX_BYTES, WireError,
};

/// Records received but not yet journaled: back-pressure on the primary past it (the socket
/// stops being read). ~4 k records is a few milliseconds of the target rate.
pub const APPLY_QUEUE_MAX: usize = 4_096;
/// A connection attempt that takes longer is abandoned and retried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Silence from the primary for this long ends the session (it heartbeats far more often).
pub const PRIMARY_SILENCE_MAX: Duration = Duration::from_secs(5);

/// A standby's settings.
#[derive(Clone, Debug)]
pub struct StandbyConfig {
    /// The primary's shipping address (`host:port`).
    pub primary_addr: String,
    /// The name the primary's certificate carries.
    pub primary_name: String,
    /// This standby's own journal.
    pub journal: JournalConfig,
    /// The engine's limits (the primary's).
    pub engine: EngineConfig,
    /// Wait between a failed session and the next attempt.
    pub reconnect_every: Duration,
    /// Stop once this sequence is applied and durable (tests and planned switch-overs); `None`
    /// follows forever.
    pub stop_at: Option<Seq>,
    /// The highest leadership term this standby has seen (raised by its etcd candidacy): a
    /// primary that says an older term is deposed and none of its records is accepted.
    pub term_floor: Arc<std::sync::atomic::AtomicU64>,
    /// What it knows of the primary it follows, for its candidacy.
    pub followed: Arc<Followed>,
}

/// The primary a standby follows, as its candidacy needs it: the term it said, and whether its
/// process is gone.
#[derive(Debug, Default)]
pub struct Followed {
    term: AtomicU64,
    gone: tokio::sync::Notify,
}

impl Followed {
    /// The term the primary said in its last session (0: none yet, or no leadership).
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    /// Resolves when the primary's shipping port refused a connection after a session with it
    /// (a process that is gone: its kernel answers for it); returns the term it had said.
    pub async fn gone(&self) -> u64 {
        self.gone.notified().await;
        self.term()
    }
}

/// Why a standby stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StandbyError {
    /// Its journal could not be opened (recovery refused, or the writer did not start).
    #[error("standby journal: {0}")]
    Open(#[from] peregrine_persist::OpenError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The primary refused its certificate, or it refused the primary's.
    #[error("TLS authentication with the primary failed: {0}")]
    Authentication(std::io::Error),
    /// The primary refused it for good.
    #[error("the primary refused this standby: {0}")]
    Refused(RefuseReason),
    /// A record could not be journaled or applied; the standby stops rather than diverge.
    #[error("applying the primary's records: {0}")]
    Apply(#[from] ApplyError),
    /// A thread could not start.
    #[error("standby thread: {0}")]
    Thread(std::io::Error),
    /// The primary's snapshot could not be made the journal's start.
    #[error("installing the primary's snapshot in {path}: {source}")]
    Install {
        /// The journal directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Why a record was refused for its term: a deposed primary's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StaleTerm {
    /// The record's term is older than the newest this standby's journal holds.
    #[error("record {seq} has term {term}, older than term {newest} this standby holds")]
    Record {
        /// Its sequence.
        seq: Seq,
        /// Its term.
        term: u64,
        /// The newest term in this standby's journal.
        newest: u64,
    },
    /// The primary that sent it said a term older than one this standby has seen since.
    #[error("record {seq} comes from a primary of term {sender}, deposed by term {seen}")]
    Sender {
        /// Its sequence.
        seq: Seq,
        /// The sender's term.
        sender: u64,
        /// The newest leadership term this standby has seen.
        seen: u64,
    },
}

/// Checks the term of record `seq` (of `term`, sent by a primary of `sender`) against the
/// newest leadership term seen (`seen`) and the newest term the journal holds (`newest`).
pub fn check_term(
    seq: Seq,
    term: u64,
    sender: u64,
    seen: u64,
    newest: u64,
) -> Result<(), StaleTerm> {
    if sender < seen {
        return Err(StaleTerm::Sender { seq, sender, seen });
    }
    if term < newest {
        return Err(StaleTerm::Record { seq, term, newest });
    }
    Ok(())
}

/// Where a standby's copy ends: the next sequence it asks for and the newest term it holds
/// (its last record's).
#[derive(Clone, Copy, Debug)]
struct Position {
    next_seq: Seq,
    term: u64,
    /// Whether `term` is its record `next_seq - 1`'s (recovery may not know it: a journal
    /// whose records a snapshot covers and retention deleted).
    term_known: bool,
}

/// Why a received record was not journaled and applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The payload is not a command (a CRC-valid record the engine cannot read).
    #[error("record {seq}: payload does not decode: {reason}")]
    Payload {
        /// Its sequence.
        seq: Seq,
        /// Why.
        reason: String,
    },
    /// The standby's journal refused it (a gap, a replay, a failed writer).
    #[error("record {seq}: {source}")]
    Journal {
        /// Its sequence.
        seq: Seq,
        /// Why.
        source: JournalError,
    },
    /// A snapshot could not be written.
    #[error("snapshot: {0}")]
    Snapshot(#[from] peregrine_persist::SnapshotWriteError),
    /// The apply thread panicked.
    #[error("the apply thread panicked")]
    Panicked,
}

/// Where a standby stopped (with [`StandbyConfig::stop_at`]).
#[derive(Debug)]
pub struct Stopped {
    /// Its engine, at `durable_seq`.
    pub engine: Engine,
    /// Its journal's durable sequence.
    pub durable_seq: Seq,
}

/// One received record on its way to the apply thread.
struct Incoming {
    seq: Seq,
    term: u64,
    payload: Vec<u8>,
}

/// Why one session ended.
enum SessionEnd {
    /// The apply side stopped (`stop_at` reached, or it failed).
    ApplyStopped,
    /// Retry after `reconnect_every`.
    Retry(String),
    /// A session that was up ended: retry at once (a primary that is gone refuses the next
    /// connection, which its candidacy waits to learn).
    Lost(String),
    /// The primary's port refused the connection: nothing listens there.
    Refused(String),
    /// The primary said an older term than this standby has seen: retry after
    /// `reconnect_every` (another address may serve the new leader by then).
    Deposed(String),
    /// The primary refused this standby for now (full, its journal unreadable, or the records
    /// it needs deleted by retention): retry after `reconnect_every`, not at once like a lost
    /// session (a primary whose journal no longer holds them then sends its newest snapshot).
    Refusal(String),
    /// Stop the standby.
    Fatal(StandbyError),
    /// The primary no longer holds this standby's next record and sent the engine image of
    /// `seq` instead: start the journal there.
    Snapshot { seq: Seq, image: Vec<u8> },
}

/// Runs a standby until `stop_at` (or forever, reconnecting after each failed session).
pub async fn run(
    config: StandbyConfig,
    tls: Arc<rustls::ClientConfig>,
    metrics: StandbyMetrics,
) -> Result<Stopped, StandbyError> {
    run_until(config, tls, metrics, std::future::pending()).await
}

/// [`run`], also stopping when `stop` completes (a SIGTERM, or a promotion to primary): the
/// session ends, what was received is journaled and applied, the journal is closed durable,
/// and the engine is returned at its durable sequence.
pub async fn run_until(
    config: StandbyConfig,
    tls: Arc<rustls::ClientConfig>,
    metrics: StandbyMetrics,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Stopped, StandbyError> {
    let name = server_name(&config.primary_name)?;
    let connector = TlsConnector::from(tls);
    let mut stop = std::pin::pin!(stop);
    // Bounded: each pass past the first starts from a snapshot newer than the journal held.
    loop {
        let pass = follow_journal(&config, &connector, &name, &metrics, stop.as_mut()).await?;
        let (seq, image) = match pass {
            Pass::Stopped(stopped) => return Ok(*stopped),
            Pass::Snapshot { seq, image } => (seq, image),
        };
        let dir = config.journal.dir.clone();
        tokio::task::spawn_blocking(move || install_snapshot(&dir, seq, &image))
            .await
            .map_err(|_| ApplyError::Panicked)?
            .map_err(|source| StandbyError::Install {
                path: config.journal.dir.clone(),
                source,
            })?;
        metrics.snapshots_installed.inc();
        tracing::info!(seq, "standby: caught up from the primary's snapshot");
    }
}

/// How one pass over the standby's journal ended.
enum Pass {
    /// Stopped (`stop`, or `stop_at`); boxed: the engine is large, and passes are few.
    Stopped(Box<Stopped>),
    /// The primary sent the engine image of `seq`: the journal is to start there.
    Snapshot { seq: Seq, image: Vec<u8> },
}

/// Makes the engine image of `seq` the start of the standby's journal in `dir` (its writer
/// stopped): the durable tip goes first (a shorter journal must not read as lost commands),
/// then the segments, newest first (a crash midway leaves a shorter journal that still
/// recovers), then the image is written durably as the snapshot of `seq`, then older
/// snapshots go.
fn install_snapshot(dir: &std::path::Path, seq: Seq, image: &[u8]) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(peregrine_persist::tip::TIP_FILE)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        Ok(()) | Err(_) => {}
    }
    for (_, path) in peregrine_persist::segment::list_segments(dir)?
        .into_iter()
        .rev()
    {
        std::fs::remove_file(path)?;
    }
    peregrine_persist::snapshot::write_snapshot(dir, seq, image)?;
    for (old, path) in peregrine_persist::snapshot::list_snapshots(dir)? {
        if old != seq {
            std::fs::remove_file(path)?;
        }
    }
    peregrine_persist::io::sync_dir(dir)
}

/// One pass: opens the journal, follows the primary until `stop`, `stop_at`, a fatal error or
/// a snapshot to start from, and closes the journal.
async fn follow_journal(
    config: &StandbyConfig,
    connector: &TlsConnector,
    name: &rustls::pki_types::ServerName<'static>,
    metrics: &StandbyMetrics,
    stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Result<Pass, StandbyError> {
    let (recovered, writer) = peregrine_persist::open(&config.journal, config.engine.clone())?;
    let journal = writer.journal().clone();
    let start_seq = recovered.last_seq;
    let position = Position {
        next_seq: start_seq + 1,
        term: journal.term(),
        term_known: recovered.tail.last_term.is_some(),
    };
    // A primary of an older term than this journal's records is deposed.
    config.term_floor.fetch_max(position.term, Ordering::AcqRel);
    let (apply_tx, apply_rx) = mpsc::channel(APPLY_QUEUE_MAX);
    let apply_config = config.clone();
    let apply_journal = journal.clone();
    let applier = std::thread::Builder::new()
        .name("standby-apply".to_owned())
        .spawn(move || {
            apply_loop(
                recovered.engine,
                &apply_journal,
                &apply_config,
                start_seq,
                apply_rx,
            )
        })
        .map_err(StandbyError::Thread)?;
    let (durable_tx, durable_rx) = watch::channel(journal.durable_seq());
    let ack_journal = journal.clone();
    std::thread::Builder::new()
        .name("standby-acks".to_owned())
        .spawn(move || publish_durable(&ack_journal, &durable_tx))
        .map_err(StandbyError::Thread)?;
    let end = follow(
        config,
        connector,
        name.clone(),
        position,
        &apply_tx,
        &durable_rx,
        metrics,
        stop,
    )
    .await;
    drop(apply_tx);
    let applied = tokio::task::spawn_blocking(move || applier.join())
        .await
        .map_err(|_| ApplyError::Panicked)?
        .map_err(|_| ApplyError::Panicked)?;
    let durable_seq = writer
        .shutdown()
        .map_err(|source| ApplyError::Journal { seq: 0, source })?;
    match (end, applied) {
        (FollowEnd::Fatal(error), _) => Err(error),
        (_, Err(error)) => Err(error.into()),
        (FollowEnd::Snapshot { seq, image }, Ok(_)) => Ok(Pass::Snapshot { seq, image }),
        (FollowEnd::Stopped, Ok(engine)) => Ok(Pass::Stopped(Box::new(Stopped {
            engine,
            durable_seq,
        }))),
    }
}

/// Why [`follow`] returned.
enum FollowEnd {
    /// `stop`, or the apply side stopped.
    Stopped,
    /// Stop the standby.
    Fatal(StandbyError),
    /// Start again from the primary's snapshot of `seq`.
    Snapshot { seq: Seq, image: Vec<u8> },
}

/// Runs sessions with the primary, one after the other, until `stop`, the apply side stops, a
/// fatal error, or a snapshot to start from.
#[allow(clippy::too_many_arguments)]
async fn follow(
    config: &StandbyConfig,
    connector: &TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
    mut position: Position,
    apply_tx: &mpsc::Sender<Incoming>,
    durable_rx: &watch::Receiver<Seq>,
    metrics: &StandbyMetrics,
    mut stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> FollowEnd {
    // Bounded by the standby's life: one pass per session.
    loop {
        let end = tokio::select! {
            end = session(
                config,
                connector,
                name.clone(),
                &mut position,
                apply_tx,
                durable_rx.clone(),
                metrics,
            ) => end,
            () = stop.as_mut() => SessionEnd::ApplyStopped,
        };
        metrics.connected.set(0);
        let pause = match end {
            SessionEnd::ApplyStopped => return FollowEnd::Stopped,
            SessionEnd::Fatal(error) => return FollowEnd::Fatal(error),
            SessionEnd::Snapshot { seq, image } => return FollowEnd::Snapshot { seq, image },
            SessionEnd::Lost(reason) => {
                metrics.sessions_failed.inc();
                tracing::warn!(%reason, "standby: session with the primary ended; reconnecting");
                false
            }
            SessionEnd::Refused(reason) => {
                // Its kernel answers for a process that is gone: the candidacy may depose it.
                if config.followed.term() != 0 {
                    config.followed.gone.notify_one();
                }
                tracing::debug!(%reason, "standby: the primary's port refuses connections");
                true
            }
            SessionEnd::Retry(reason)
            | SessionEnd::Deposed(reason)
            | SessionEnd::Refusal(reason) => {
                metrics.sessions_failed.inc();
                tracing::warn!(%reason, "standby: no session with the primary; retrying");
                true
            }
        };
        if pause {
            tokio::select! {
                () = tokio::time::sleep(config.reconnect_every) => {}
                () = stop.as_mut() => return FollowEnd::Stopped,
            }
        }
    }
}

/// Publishes the journal's durable sequence to the sessions, until no one listens.
fn publish_durable(journal: &Journal, durable: &watch::Sender<Seq>) {
    let mut seen = journal.durable_seq();
    // Bounded by the standby's life: each pass waits at most 100 ms.
    loop {
        match journal.wait_durable_after(seen, Duration::from_millis(100)) {
            Ok(now) if now > seen => {
                seen = now;
                if durable.send(now).is_err() {
                    return;
                }
            }
            Ok(_) if durable.is_closed() => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Journals and applies the received records in order; returns the engine at the end.
fn apply_loop(
    mut engine: Engine,
    journal: &Journal,
    config: &StandbyConfig,
    start_seq: Seq,
    mut incoming: mpsc::Receiver<Incoming>,
) -> Result<Engine, ApplyError> {
    let mut snapshotter = Snapshotter::start(&config.journal, journal.clone(), start_seq);
    let mut scratch = Scratch::with_capacity(PAYLOAD_MAX_BYTES);
    let mut events: Vec<Event> = Vec::with_capacity(1_024);
    let mut applied = start_seq;
    // Bounded by the channel: one pass per record, until the sessions stop or stop_at.
    while config.stop_at.is_none_or(|stop| applied < stop) {
        let Some(Incoming { seq, term, payload }) = incoming.blocking_recv() else {
            break;
        };
        // Validated before it is journaled: a record the engine cannot read never becomes
        // durable here.
        let command = payload::decode(&payload, &mut scratch)
            .map_err(|reason| ApplyError::Payload { seq, reason })?;
        // Bounded by the writer: Busy clears as soon as it commits.
        loop {
            match journal.append_sequenced(seq, term, &payload) {
                Ok(_) => break,
                Err(JournalError::Busy { .. }) => {
                    let _ = journal.wait_durable_after(journal.durable_seq(), WAIT_SLICE);
                }
                Err(source) => return Err(ApplyError::Journal { seq, source }),
            }
        }
        events.clear();
        engine.apply(&command, &mut events);
        applied = seq;
        snapshotter.maybe_take(&engine, seq)?;
    }
    if let Some(stop) = config.stop_at.filter(|stop| applied >= *stop) {
        // Durable before the sessions learn that applying stopped: their last ACK covers it.
        journal
            .wait_durable(stop, Duration::from_secs(30))
            .map_err(|source| ApplyError::Journal { seq: stop, source })?;
    }
    drop(incoming);
    snapshotter.finish()?;
    Ok(engine)
}

const WAIT_SLICE: Duration = Duration::from_millis(1);

/// Whether `error` is TLS refusing one side's certificate (a configuration error: retrying
/// cannot help).
fn is_authentication(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| {
            matches!(
                tls,
                rustls::Error::AlertReceived(_)
                    | rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
            )
        })
}

async fn session(
    config: &StandbyConfig,
    connector: &TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
    position: &mut Position,
    apply: &mpsc::Sender<Incoming>,
    durable: watch::Receiver<Seq>,
    metrics: &StandbyMetrics,
) -> SessionEnd {
    if apply.is_closed() {
        return SessionEnd::ApplyStopped;
    }
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&config.primary_addr))
        .await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
            return SessionEnd::Refused(format!("connect: {error}"));
        }
        Ok(Err(error)) => return SessionEnd::Retry(format!("connect: {error}")),
        Err(_) => return SessionEnd::Retry("connect timed out".to_owned()),
    };
    let _ = tcp.set_nodelay(true);
    let tls = match connector.connect(name, tcp).await {
        Ok(tls) => tls,
        Err(error) if is_authentication(&error) => {
            return SessionEnd::Fatal(StandbyError::Authentication(error));
        }
        Err(error) => return SessionEnd::Retry(format!("TLS: {error}")),
    };
    let (reader, mut writer) = tokio::io::split(tls);
    let final_durable = durable.clone();
    let hello = Frame::Hello {
        version: PROTOCOL_VERSION,
        next_seq: position.next_seq,
        last_term: position.term_known.then_some(position.term),
    };
    if let Err(error) = wire::write_frame(&mut writer, &hello).await {
        return wire_end(error);
    }
    metrics.connected.set(1);
    tracing::info!(
        next_seq = position.next_seq,
        "standby: connected to the primary"
    );
    let end = tokio::select! {
        end = receive(reader, config, position, apply, durable.clone(), metrics) => end,
        end = acknowledge(&mut writer, durable, metrics) => end,
    };
    match end {
        Ok(()) => {
            // Applying stopped with everything durable: say so before leaving, or the primary
            // would never hear of the last commits.
            let durable_seq = wait_published(final_durable, position.next_seq - 1).await;
            let _ = wire::write_frame(&mut writer, &Frame::Ack { durable_seq }).await;
            SessionEnd::ApplyStopped
        }
        Err(SessionEnd::Retry(reason)) => SessionEnd::Lost(reason),
        Err(error) => error,
    }
}

/// The published durable sequence once it reaches `seq` (bounded: the apply thread made `seq`
/// durable before it stopped, so the publisher is at most one wait behind).
async fn wait_published(mut durable: watch::Receiver<Seq>, seq: Seq) -> Seq {
    let waited = tokio::time::timeout(Duration::from_secs(1), durable.wait_for(|d| *d >= seq));
    let _ = waited.await;
    *durable.borrow()
}

fn wire_end(error: WireError) -> SessionEnd {
    match error {
        WireError::Io(error) if is_authentication(&error) => {
            SessionEnd::Fatal(StandbyError::Authentication(error))
        }
        other => SessionEnd::Retry(other.to_string()),
    }
}

/// Sends the standby's durable sequence now and whenever it moves.
async fn acknowledge(
    writer: &mut WriteHalf<TlsStream<TcpStream>>,
    mut durable: watch::Receiver<Seq>,
    metrics: &StandbyMetrics,
) -> Result<(), SessionEnd> {
    // Bounded by the session: one pass per durable commit.
    loop {
        let durable_seq = *durable.borrow_and_update();
        metrics.durable_seq.set(seq_gauge(durable_seq));
        wire::write_frame(writer, &Frame::Ack { durable_seq })
            .await
            .map_err(wire_end)?;
        if durable.changed().await.is_err() {
            return Ok(());
        }
    }
}

/// Reads the CHUNKs of the engine image of `seq` (`image_bytes` long) that the primary sends
/// when its journal no longer holds this standby's next record.
async fn receive_image(
    reader: &mut ReadHalf<TlsStream<TcpStream>>,
    buf: &mut Vec<u8>,
    seq: Seq,
    image_bytes: u64,
    position: &Position,
) -> Result<Vec<u8>, SessionEnd> {
    // A snapshot never takes a standby backwards, and its size is bounded before any byte.
    if seq < position.next_seq || image_bytes == 0 || image_bytes > SNAPSHOT_MAX_BYTES {
        return Err(SessionEnd::Retry(format!(
            "a snapshot of {image_bytes} bytes at sequence {seq} refused (next is {})",
            position.next_seq
        )));
    }
    // Grown as chunks arrive, never sized from the announcement alone.
    let mut image = Vec::new();
    // Bounded by image_bytes: each pass adds at least one byte.
    while (image.len() as u64) < image_bytes {
        let frame = tokio::time::timeout(PRIMARY_SILENCE_MAX, wire::read_frame(reader, buf))
            .await
            .map_err(|_| SessionEnd::Retry("the primary went silent".to_owned()))?
            .map_err(wire_end)?;
        let Frame::Chunk { bytes } = frame else {
            return Err(SessionEnd::Retry("expected a snapshot chunk".to_owned()));
        };
        if (image.len() + bytes.len()) as u64 > image_bytes {
            return Err(SessionEnd::Retry(
                "a snapshot longer than announced".to_owned(),
            ));
        }
        image.extend_from_slice(bytes);
    }
    Ok(image)
}

/// Reads the primary's frames and queues its records for the apply thread.
async fn receive(
    mut reader: ReadHalf<TlsStream<TcpStream>>,
    config: &StandbyConfig,
    position: &mut Position,
    apply: &mpsc::Sender<Incoming>,
    durable: watch::Receiver<Seq>,
    metrics: &StandbyMetrics,
) -> Result<(), SessionEnd> {
    let mut buf = Vec::with_capacity(BODY_MAX_BYTES);
    let mut lag = LagClock::new();
    // The primary says its term first; 0 until then (and without leadership).
    let mut sender_term = 0;
    // Bounded by the session: one pass per frame.
    loop {
        let frame =
            tokio::time::timeout(PRIMARY_SILENCE_MAX, wire::read_frame(&mut reader, &mut buf))
                .await
                .map_err(|_| SessionEnd::Retry("the primary went silent".to_owned()))?
                .map_err(wire_end)?;
        let primary_durable_seq = match frame {
            Frame::Record {
                seq,
                term,
                primary_durable_seq,
                payload,
            } => {
                if seq != position.next_seq || payload.len() > PAYLOAD_MAX_BYTES {
                    return Err(SessionEnd::Retry(format!(
                        "the primary sent sequence {seq}, expected {}",
                        position.next_seq
                    )));
                }
                let seen = config.term_floor.load(Ordering::Acquire);
                if let Err(stale) = check_term(seq, term, sender_term, seen, position.term) {
                    metrics.stale_term_records.inc();
                    tracing::warn!(%stale, "standby: a deposed primary's record refused");
                    return Err(SessionEnd::Deposed(stale.to_string()));
                }
                if config.stop_at.is_none_or(|stop| seq <= stop) {
                    let incoming = Incoming {
                        seq,
                        term,
                        payload: payload.to_vec(),
                    };
                    if apply.send(incoming).await.is_err() {
                        return Ok(());
                    }
                    position.next_seq += 1;
                    position.term = term;
                    position.term_known = true;
                    metrics.records.inc();
                }
                primary_durable_seq
            }
            Frame::Heartbeat {
                primary_durable_seq,
            } => primary_durable_seq,
            Frame::Refuse { reason, .. } => {
                return Err(match reason {
                    // JournalGone: retention overtook this standby (one too far behind to hold
                    // it back); the next session starts from the primary's newest snapshot.
                    RefuseReason::Full
                    | RefuseReason::PrimaryJournal
                    | RefuseReason::JournalGone => SessionEnd::Refusal(reason.to_string()),
                    _ => SessionEnd::Fatal(StandbyError::Refused(reason)),
                });
            }
            Frame::Term { term } => {
                let floor = config.term_floor.load(Ordering::Acquire);
                if term < floor {
                    metrics.deposed_refused.inc();
                    return Err(SessionEnd::Deposed(format!(
                        "the primary's term {term} is older than term {floor}: deposed, its \
                         records refused"
                    )));
                }
                config.followed.term.store(term, Ordering::Release);
                sender_term = term;
                continue;
            }
            Frame::Snapshot { seq, image_bytes } => {
                let image =
                    receive_image(&mut reader, &mut buf, seq, image_bytes, position).await?;
                return Err(SessionEnd::Snapshot { seq, image });
            }
            Frame::Hello { .. } | Frame::Ack { .. } | Frame::Chunk { .. } => {
                return Err(SessionEnd::Retry(
                    "unexpected frame from the primary".to_owned(),
                ));
            }
        };
        if apply.is_closed() {
            return Ok(());
        }
        let own = *durable.borrow();
        let (records, seconds) = lag.observe(primary_durable_seq, own, Instant::now());
        metrics
            .primary_durable_seq
            .set(seq_gauge(primary_durable_seq));
        metrics.lag_records.set(seq_gauge(records));
        metrics.lag_seconds.set(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_refused_for_an_older_term_or_a_deposed_sender() {
        // (seq, term, sender, seen, newest)
        assert_eq!(check_term(7, 3, 3, 3, 3), Ok(()));
        assert_eq!(check_term(7, 4, 4, 3, 3), Ok(()), "a newer term is taken");
        assert_eq!(
            check_term(7, 2, 3, 3, 3),
            Err(StaleTerm::Record {
                seq: 7,
                term: 2,
                newest: 3
            })
        );
        assert_eq!(
            check_term(7, 3, 3, 5, 3),
            Err(StaleTerm::Sender {
                seq: 7,
                sender: 3,
                seen: 5
            })
        );
    }
}
