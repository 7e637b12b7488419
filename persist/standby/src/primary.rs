//! The primary's side: accepts standbys over mutual TLS and ships each one the durable records
//! from the sequence it asks for, read back from the journal files by a [`Tailer`] (never from
//! the hot path), and collects their durable acknowledgements into [`Replication`]. A standby
//! that asks for a sequence retention already deleted gets the newest snapshot first
//! ([`Frame::Snapshot`]), then the records after it.
//!
//! Retention floor: each connected standby holds back the journal's retention from the last
//! sequence it acknowledged ([`ShipperConfig::retention_floor`], one reader of the journal's
//! [`RetentionFloor`] set), so a standby that is slow, not gone, never finds its next record
//! deleted mid-session. A standby more than [`ShipperConfig::retention_records_max`] records
//! behind stops holding it back (a stuck standby must not fill the primary's disk): retention
//! may then delete what it lacks, its session ends
//! [`JournalGone`](RefuseReason::JournalGone), and it comes back for the newest snapshot.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use peregrine_persist::follow::{FollowError, Tailer, TornRecord};
use peregrine_persist::payload::{self, Scratch};
use peregrine_persist::record::PAYLOAD_MAX_BYTES;
use peregrine_persist::{AckMode, Journal, Seq, WithoutStandby};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::lag::LagClock;
use crate::metrics::ShipMetrics;
use crate::wire::{
    self, BODY_MAX_BYTES, Frame, PROTOCOL_VERSION, RefuseReason, SNAPSHOT_MAX_BYTES, WireError,
};
use peregrine_persist::segment::list_segments;
use peregrine_persist::snapshot::{RetentionFloor, list_snapshots, read_snapshot};

/// Bytes of records the tailer thread packs into one batch (one TLS write).
pub const BATCH_BYTES_MAX: usize = 64 << 10;
/// Batches queued between a standby's tailer thread and its socket; with the batch bound it
/// caps the memory one slow standby holds at 1 MiB.
pub const BATCHES_QUEUED_MAX: usize = 16;
/// Batches whose send time is kept for the acknowledgement histogram.
pub const SENT_TIMES_MAX: usize = 1_024;
/// A standby that has not said HELLO by then is dropped.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// [`ShipperConfig::retention_records_max`] unless configured: at ~100 to 200 bytes a record,
/// one to two GiB of journal kept for a standby that fell behind.
pub const RETENTION_RECORDS_MAX_DEFAULT: u64 = 10_000_000;
const _: () = assert!(BATCH_BYTES_MAX >= wire::HEADER_BYTES + BODY_MAX_BYTES);

/// The primary's shipping settings.
#[derive(Clone, Debug)]
pub struct ShipperConfig {
    /// Its journal directory (the tailers read it).
    pub journal_dir: PathBuf,
    /// Standbys served at once; more are refused.
    pub standbys_max: usize,
    /// A standby hears at least this often (a heartbeat when there is nothing to ship).
    pub heartbeat_every: Duration,
    /// This primary's leadership term, told to every standby first (0: no etcd leadership).
    pub term: u64,
    /// This shipper's reader in the journal's retention set (the same set as the journal's
    /// `retention_floor`, created at [`Seq::MAX`]: nothing held back): set to the lowest
    /// sequence a connected standby acknowledged, so retention keeps every record after it.
    /// `None`: retention ignores standbys (one it overtakes catches up from a snapshot).
    pub retention_floor: Option<RetentionFloor>,
    /// A standby more than this many durable records behind holds retention back no longer.
    pub retention_records_max: u64,
}

/// What the standbys have made durable: the durability gate reads [`Replication::replicated_seq`].
#[derive(Debug, Default)]
pub struct Replication {
    replicated_seq: AtomicU64,
    standbys: AtomicUsize,
}

impl Replication {
    /// Highest sequence that at least one standby acknowledged as durable in its own journal.
    pub fn replicated_seq(&self) -> Seq {
        self.replicated_seq.load(Ordering::Acquire)
    }

    /// Standbys connected now.
    pub fn standbys(&self) -> usize {
        self.standbys.load(Ordering::Acquire)
    }

    fn take_slot(&self, max: usize) -> bool {
        self.standbys
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }
}

/// Why a standby's session ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// TLS refused (no certificate, or one the CA did not sign) or the socket failed.
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    /// The stream broke or carried a bad frame.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// No HELLO in time.
    #[error("no HELLO within {HELLO_TIMEOUT:?}")]
    HelloTimeout,
    /// The standby was refused.
    #[error("standby refused: {0}")]
    Refused(RefuseReason),
    /// The standby acknowledged something it was never sent, or went backwards.
    #[error("acknowledgement {acked} out of order (sent up to {sent}, acknowledged {previous})")]
    Ack {
        /// What it acknowledged.
        acked: Seq,
        /// The last sequence sent.
        sent: Seq,
        /// Its previous acknowledgement.
        previous: Seq,
    },
    /// The standby sent a frame only a primary sends.
    #[error("unexpected frame from a standby")]
    Unexpected,
}

/// The running shipper.
#[derive(Debug)]
pub struct Shipper {
    replication: Arc<Replication>,
    accept: tokio::task::JoinHandle<()>,
    local_addr: std::net::SocketAddr,
}

impl Shipper {
    /// Serves standbys on `listener` (on the current tokio runtime) until dropped.
    pub fn start(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        config: ShipperConfig,
        journal: Journal,
        metrics: ShipMetrics,
    ) -> std::io::Result<Shipper> {
        assert!(config.standbys_max > 0 && !config.heartbeat_every.is_zero());
        let local_addr = listener.local_addr()?;
        let replication = Arc::new(Replication::default());
        let holds = std::sync::Mutex::new(Vec::with_capacity(config.standbys_max));
        let context = Arc::new(Context {
            config,
            journal,
            metrics,
            replication: Arc::clone(&replication),
            holds,
        });
        // Nothing held back until a standby connects, whatever the floor was created at.
        publish_floor(&context);
        tokio::spawn(lag_ticker(Arc::clone(&context)));
        let accept = tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), context));
        Ok(Shipper {
            replication,
            accept,
            local_addr,
        })
    }

    /// What the standbys have made durable.
    pub fn replication(&self) -> &Arc<Replication> {
        &self.replication
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[derive(Debug)]
struct Context {
    config: ShipperConfig,
    journal: Journal,
    metrics: ShipMetrics,
    replication: Arc<Replication>,
    /// One per connected standby (at most `standbys_max`).
    holds: std::sync::Mutex<Vec<Arc<Hold>>>,
}

/// What one connected standby holds back from retention: every record after `acked`.
#[derive(Debug)]
struct Hold {
    /// The last sequence it acknowledged as durable (or had when it said HELLO).
    acked: AtomicU64,
    /// Whether it is more than `retention_records_max` behind and holds nothing back (true
    /// until the first publication: one that joins further behind never held anything).
    released: AtomicBool,
}

/// A standby's [`Hold`] while its session lasts.
struct HoldGuard<'a> {
    context: &'a Context,
    hold: Arc<Hold>,
}

impl<'a> HoldGuard<'a> {
    /// Holds retention back from `acked` on (before anything is read for the standby).
    fn register(context: &'a Context, acked: Seq) -> HoldGuard<'a> {
        let hold = Arc::new(Hold {
            acked: AtomicU64::new(acked),
            released: AtomicBool::new(true),
        });
        {
            let mut holds = lock(&context.holds);
            assert!(holds.len() < context.config.standbys_max, "a hold per slot");
            holds.push(Arc::clone(&hold));
        }
        publish_floor(context);
        HoldGuard { context, hold }
    }

    /// The standby has everything up to `seq` durable (never lowers the hold).
    fn raise(&self, seq: Seq) {
        self.hold.acked.fetch_max(seq, Ordering::AcqRel);
        publish_floor(self.context);
    }
}

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        lock(&self.context.holds).retain(|hold| !Arc::ptr_eq(hold, &self.hold));
        publish_floor(self.context);
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sets the shipper's retention floor to the lowest sequence a connected standby within
/// `retention_records_max` of the durable end acknowledged ([`Seq::MAX`]: none), releasing
/// standbys further behind. Under the holds' lock, so two publications never store out of order.
fn publish_floor(context: &Context) {
    let durable = context.journal.durable_seq();
    let records_max = context.config.retention_records_max;
    let holds = lock(&context.holds);
    let mut floor = Seq::MAX;
    for hold in holds.iter() {
        let acked = hold.acked.load(Ordering::Acquire);
        let behind = durable.saturating_sub(acked);
        if behind > records_max {
            if !hold.released.swap(true, Ordering::AcqRel) {
                context.metrics.retention_released.inc();
                tracing::warn!(
                    acked,
                    durable,
                    records_max,
                    "shipping: a standby fell too far behind; retention no longer waits for it \
                     (it catches up from a snapshot)"
                );
            }
            continue;
        }
        hold.released.store(false, Ordering::Release);
        floor = floor.min(acked);
    }
    if let Some(retention) = &context.config.retention_floor {
        retention.set(floor);
    }
    let held = if floor == Seq::MAX {
        0
    } else {
        durable.saturating_sub(floor)
    };
    context.metrics.retention_held_records.set(seq_gauge(held));
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, context: Arc<Context>) {
    // Bounded by the process: one pass per connection; sessions are bounded by standbys_max.
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "shipping: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            let outcome = session(stream, acceptor, &context).await;
            let label = match &outcome {
                Ok(()) => "closed",
                Err(SessionError::Handshake(_)) => "tls_refused",
                Err(SessionError::Refused(RefuseReason::Ahead)) => "refused_ahead",
                Err(SessionError::Refused(RefuseReason::JournalGone)) => "refused_journal_gone",
                Err(SessionError::Refused(RefuseReason::Full)) => "refused_full",
                Err(SessionError::Refused(RefuseReason::Diverged)) => "refused_diverged",
                Err(SessionError::Refused(_)) => "refused",
                Err(_) => "failed",
            };
            context.metrics.sessions.with_label_values(&[label]).inc();
            match outcome {
                Ok(()) => tracing::info!(%peer, "standby session closed"),
                Err(error) => tracing::warn!(%peer, %error, "standby session ended"),
            }
        });
    }
}

/// Holds one of the `standbys_max` slots.
struct Slot<'a>(&'a Context);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let left = self.0.replication.standbys.fetch_sub(1, Ordering::AcqRel) - 1;
        self.0.metrics.standbys.dec();
        self.0.journal.set_standbys_connected(left as u64);
        if left == 0 {
            match self.0.journal.ack_mode() {
                AckMode::Replicated(WithoutStandby::Refuse) => tracing::warn!(
                    "no standby connected: acknowledgements held until one is (replicated, refuse)"
                ),
                AckMode::Replicated(_) => tracing::warn!(
                    "no standby connected: acknowledging on the local durable write alone \
                     (replicated, degrade)"
                ),
                _ => {}
            }
        }
    }
}

async fn session(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    context: &Context,
) -> Result<(), SessionError> {
    let _ = stream.set_nodelay(true);
    let tls = acceptor
        .accept(stream)
        .await
        .map_err(SessionError::Handshake)?;
    let (mut reader, mut writer) = tokio::io::split(tls);
    let mut buf = Vec::with_capacity(BODY_MAX_BYTES);
    let hello = tokio::time::timeout(HELLO_TIMEOUT, wire::read_frame(&mut reader, &mut buf))
        .await
        .map_err(|_| SessionError::HelloTimeout)??;
    let durable = context.journal.durable_seq();
    let refusal = match hello {
        Frame::Hello {
            version,
            next_seq,
            last_term,
        } if version == PROTOCOL_VERSION && next_seq > 0 => {
            if next_seq > durable.saturating_add(1) {
                Err(RefuseReason::Ahead)
            } else if diverged(context, next_seq, last_term, durable).await {
                Err(RefuseReason::Diverged)
            } else {
                Ok(next_seq)
            }
        }
        _ => Err(RefuseReason::Protocol),
    };
    let next_seq = match refusal {
        Ok(next_seq) if context.replication.take_slot(context.config.standbys_max) => next_seq,
        Ok(_) => return refuse(&mut writer, RefuseReason::Full, durable).await,
        Err(reason) => return refuse(&mut writer, reason, durable).await,
    };
    context.metrics.standbys.inc();
    let _slot = Slot(context);
    context
        .journal
        .set_standbys_connected(context.replication.standbys() as u64);
    context
        .metrics
        .sessions
        .with_label_values(&["accepted"])
        .inc();
    tracing::info!(next_seq, durable, "standby connected");
    // Before the journal is looked at for it: retention keeps what it lacks from here on.
    let hold = HoldGuard::register(context, next_seq - 1);
    let term = Frame::Term {
        term: context.config.term,
    };
    wire::write_frame(&mut writer, &term).await?;
    let next_seq = send_snapshot_if_gone(&mut writer, context, next_seq).await?;
    hold.raise(next_seq - 1);
    ship(reader, writer, next_seq, context, &hold).await
}

/// When the journal no longer holds `next_seq` (retention deleted it), sends the newest
/// snapshot, whose next record it holds; returns the sequence to ship from.
async fn send_snapshot_if_gone(
    writer: &mut WriteHalf<TlsStream<TcpStream>>,
    context: &Context,
    next_seq: Seq,
) -> Result<Seq, SessionError> {
    let dir = context.config.journal_dir.clone();
    let found = tokio::task::spawn_blocking(move || snapshot_for(&dir, next_seq))
        .await
        .map_err(|e| SessionError::Wire(WireError::Io(std::io::Error::other(e))))?;
    let (seq, image) = match found {
        Ok(None) => return Ok(next_seq),
        Ok(Some(found)) => found,
        Err(reason) => {
            tracing::warn!(%reason, next_seq, "shipping: no snapshot for a standby");
            let durable = context.journal.durable_seq();
            return refuse(writer, RefuseReason::JournalGone, durable)
                .await
                .map(|()| next_seq);
        }
    };
    let started = Instant::now();
    let image_bytes = image.len() as u64;
    let mut out = Vec::with_capacity(BATCH_BYTES_MAX);
    wire::encode(&mut out, &Frame::Snapshot { seq, image_bytes });
    // Bounded by the image: one frame per BODY_MAX_BYTES, written 64 KiB at a time.
    for bytes in image.chunks(BODY_MAX_BYTES) {
        if out.len() + wire::HEADER_BYTES + bytes.len() > BATCH_BYTES_MAX {
            writer.write_all(&out).await.map_err(WireError::Io)?;
            out.clear();
        }
        wire::encode(&mut out, &Frame::Chunk { bytes });
    }
    writer.write_all(&out).await.map_err(WireError::Io)?;
    writer.flush().await.map_err(WireError::Io)?;
    context.metrics.snapshots.inc();
    context
        .metrics
        .snapshot_seconds
        .observe(started.elapsed().as_secs_f64());
    tracing::info!(
        seq,
        image_bytes,
        "shipping: a standby catches up from a snapshot"
    );
    Ok(seq + 1)
}

/// `None` when the journal in `dir` holds `next_seq`; otherwise the newest snapshot (sequence
/// and engine image) if the journal holds the record after it, or why there is none.
fn snapshot_for(dir: &std::path::Path, next_seq: Seq) -> Result<Option<(Seq, Vec<u8>)>, String> {
    let segments = list_segments(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    let Some(&(oldest, _)) = segments.first() else {
        return Ok(None);
    };
    if next_seq >= oldest {
        return Ok(None);
    }
    let snapshots = list_snapshots(dir).map_err(|e| format!("listing snapshots: {e}"))?;
    // Newest first; one retention is deleting is skipped for the next.
    for (seq, path) in snapshots.into_iter().rev() {
        if seq + 1 < oldest {
            break;
        }
        match read_snapshot(&path) {
            Ok((seq, image)) if image.len() as u64 <= SNAPSHOT_MAX_BYTES => {
                return Ok(Some((seq, image)));
            }
            Ok((_, image)) => return Err(format!("snapshot of {} bytes", image.len())),
            Err(error) => tracing::warn!(%error, path = %path.display(), "shipping: snapshot"),
        }
    }
    Err(format!("no snapshot covers the records before {oldest}"))
}

/// Whether the standby's last record (`next_seq - 1`, of `last_term`) has another term in this
/// journal: it then holds a deposed leader's records this primary never had.
async fn diverged(context: &Context, next_seq: Seq, last_term: Option<u64>, durable: Seq) -> bool {
    let (Some(term), Some(seq)) = (last_term, next_seq.checked_sub(1).filter(|&s| s > 0)) else {
        return false;
    };
    let dir = context.config.journal_dir.clone();
    let ours = tokio::task::spawn_blocking(move || term_at(dir, seq, durable))
        .await
        .ok()
        .flatten();
    // A record retention deleted cannot be compared: the standby is taken on its word.
    ours.is_some_and(|ours| ours != term)
}

/// The term of record `seq` in the journal at `dir`, read no further than `durable`; `None`
/// when the journal no longer holds it or cannot be read.
fn term_at(dir: PathBuf, seq: Seq, durable: Seq) -> Option<u64> {
    let mut tailer = Tailer::new(dir, seq, TornRecord::IsCorruption);
    match tailer.next(durable) {
        Ok(Some(_)) => Some(tailer.term()),
        _ => None,
    }
}

async fn refuse(
    writer: &mut WriteHalf<TlsStream<TcpStream>>,
    reason: RefuseReason,
    primary_durable_seq: Seq,
) -> Result<(), SessionError> {
    let frame = Frame::Refuse {
        reason,
        primary_durable_seq,
    };
    // Best effort: the standby may already be gone; the refusal is what we report.
    let _ = wire::write_frame(writer, &frame).await;
    let _ = writer.shutdown().await;
    Err(SessionError::Refused(reason))
}

/// What the tailer thread hands the socket.
enum Shipment {
    /// Framed RECORDs, the last one's sequence, how many.
    Records(Vec<u8>, Seq, u64),
    /// The journal cannot serve this standby any more.
    Failed(RefuseReason),
}

/// Per session: sent batches and acknowledgements.
struct Progress<'a> {
    sent_seq: AtomicU64,
    sent_times: std::sync::Mutex<VecDeque<(Seq, Instant)>>,
    hold: &'a HoldGuard<'a>,
}

async fn ship(
    reader: ReadHalf<TlsStream<TcpStream>>,
    writer: WriteHalf<TlsStream<TcpStream>>,
    next_seq: Seq,
    context: &Context,
    hold: &HoldGuard<'_>,
) -> Result<(), SessionError> {
    let (sender, receiver) = mpsc::channel(BATCHES_QUEUED_MAX);
    let dir = context.config.journal_dir.clone();
    let journal = context.journal.clone();
    // A thread, not a task: the tailer reads files and waits on the journal's condition variable.
    let tailer = std::thread::Builder::new()
        .name("ship-tailer".to_owned())
        .spawn(move || tail(dir, journal, next_seq, sender))
        .map_err(|e| SessionError::Wire(WireError::Io(e)))?;
    let progress = Progress {
        sent_seq: AtomicU64::new(next_seq - 1),
        sent_times: std::sync::Mutex::new(VecDeque::with_capacity(SENT_TIMES_MAX)),
        hold,
    };
    let outcome = tokio::select! {
        sent = send(writer, receiver, context, &progress) => sent,
        acked = collect_acks(reader, context, &progress) => acked,
    };
    // Dropping the receiver (in `send`) ends the tailer at its next batch or wait.
    let _ = tokio::task::spawn_blocking(move || tailer.join()).await;
    outcome
}

async fn send(
    mut writer: WriteHalf<TlsStream<TcpStream>>,
    mut receiver: mpsc::Receiver<Shipment>,
    context: &Context,
    progress: &Progress<'_>,
) -> Result<(), SessionError> {
    let mut heartbeat = Vec::with_capacity(wire::HEADER_BYTES + 8);
    // Bounded by the session: one pass per batch or heartbeat.
    loop {
        let shipment = tokio::time::timeout(context.config.heartbeat_every, receiver.recv()).await;
        match shipment {
            Ok(Some(Shipment::Records(bytes, last_seq, records))) => {
                // Counted as sent before the write: while a large batch is still being
                // written, the standby may already have made its first records durable and
                // acknowledged them.
                progress.sent_seq.store(last_seq, Ordering::Release);
                {
                    let mut times = progress
                        .sent_times
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if times.len() < SENT_TIMES_MAX {
                        times.push_back((last_seq, Instant::now()));
                    }
                }
                writer.write_all(&bytes).await.map_err(WireError::Io)?;
                writer.flush().await.map_err(WireError::Io)?;
                context.metrics.records.inc_by(records);
            }
            Ok(Some(Shipment::Failed(reason))) => {
                return refuse(&mut writer, reason, context.journal.durable_seq()).await;
            }
            Ok(None) => return Ok(()),
            Err(_) => {
                heartbeat.clear();
                wire::encode(
                    &mut heartbeat,
                    &Frame::Heartbeat {
                        primary_durable_seq: context.journal.durable_seq(),
                    },
                );
                writer.write_all(&heartbeat).await.map_err(WireError::Io)?;
                writer.flush().await.map_err(WireError::Io)?;
            }
        }
    }
}

async fn collect_acks(
    mut reader: ReadHalf<TlsStream<TcpStream>>,
    context: &Context,
    progress: &Progress<'_>,
) -> Result<(), SessionError> {
    let mut buf = Vec::with_capacity(BODY_MAX_BYTES);
    // A restarted standby may acknowledge below where it resumes (its queue was not durable yet).
    let mut previous = 0;
    // Bounded by the session: one pass per acknowledgement.
    loop {
        let Frame::Ack { durable_seq } = wire::read_frame(&mut reader, &mut buf).await? else {
            return Err(SessionError::Unexpected);
        };
        let sent = progress.sent_seq.load(Ordering::Acquire);
        if durable_seq > sent || durable_seq < previous {
            return Err(SessionError::Ack {
                acked: durable_seq,
                sent,
                previous,
            });
        }
        previous = durable_seq;
        progress.hold.raise(durable_seq);
        let replication = &context.replication;
        let before = replication
            .replicated_seq
            .fetch_max(durable_seq, Ordering::AcqRel);
        if durable_seq > before {
            context.metrics.replicated_seq.set(seq_gauge(durable_seq));
        }
        // Releases acknowledgements held for it (`replicated` mode).
        context.journal.note_replicated(durable_seq);
        let now = Instant::now();
        let mut times = progress
            .sent_times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded by SENT_TIMES_MAX.
        while let Some(&(seq, at)) = times.front() {
            if seq > durable_seq {
                break;
            }
            times.pop_front();
            context
                .metrics
                .ack_seconds
                .observe(now.duration_since(at).as_secs_f64());
        }
    }
}

/// A sequence as a gauge value (gauges are i64; sequences never reach 2^63).
pub(crate) fn seq_gauge(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

async fn lag_ticker(context: Arc<Context>) {
    let mut clock = LagClock::new();
    let mut every = tokio::time::interval(Duration::from_millis(100));
    // Bounded by the runtime: one pass per tick.
    loop {
        every.tick().await;
        let durable = context.journal.durable_seq();
        let (records, seconds) = clock.observe(
            durable,
            context.replication.replicated_seq(),
            Instant::now(),
        );
        context.metrics.lag_records.set(seq_gauge(records));
        context.metrics.lag_seconds.set(seconds);
        // A standby that stopped acknowledging is released here once too far behind.
        publish_floor(&context);
    }
}

/// Whether the journal in `dir` starts after `seq` (retention deletes the oldest segments
/// first): `false` when it cannot be listed (the tailer reports that itself).
fn journal_lacks(dir: &std::path::Path, seq: Seq) -> bool {
    list_segments(dir).is_ok_and(|segments| segments.first().is_some_and(|&(first, _)| first > seq))
}

/// The tailer thread: reads durable records from `next_seq` on and hands them over in batches.
fn tail(dir: PathBuf, journal: Journal, next_seq: Seq, sender: mpsc::Sender<Shipment>) {
    let mut tailer = Tailer::new(dir.clone(), next_seq, TornRecord::IsCorruption);
    let mut scratch = Scratch::with_capacity(PAYLOAD_MAX_BYTES);
    // Bounded by the session: each pass ships a batch or waits (bounded) for the journal.
    loop {
        let bound = journal.durable_seq();
        let mut batch = Vec::with_capacity(BATCH_BYTES_MAX);
        let mut last_seq = 0;
        let mut records = 0_u64;
        while batch.len() + wire::HEADER_BYTES + BODY_MAX_BYTES <= BATCH_BYTES_MAX {
            let (seq, command) = match tailer.next(bound) {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(error) => {
                    // A segment retention deleted between its listing and its opening reads
                    // as an I/O error: what decides is whether the journal still holds it.
                    let gone = matches!(error, FollowError::SegmentMissing { .. })
                        || journal_lacks(&dir, tailer.next_seq());
                    let reason = if gone {
                        RefuseReason::JournalGone
                    } else {
                        RefuseReason::PrimaryJournal
                    };
                    tracing::warn!(%error, "shipping: journal read failed");
                    let _ = sender.blocking_send(Shipment::Failed(reason));
                    return;
                }
            };
            if payload::encode(&command, &mut scratch).is_err() {
                let _ = sender.blocking_send(Shipment::Failed(RefuseReason::PrimaryJournal));
                return;
            }
            wire::encode(
                &mut batch,
                &Frame::Record {
                    seq,
                    term: tailer.term(),
                    primary_durable_seq: bound,
                    payload: &scratch,
                },
            );
            last_seq = seq;
            records += 1;
        }
        if !batch.is_empty() {
            if sender
                .blocking_send(Shipment::Records(batch, last_seq, records))
                .is_err()
            {
                return;
            }
            continue;
        }
        if sender.is_closed() {
            return;
        }
        let seen = tailer.next_seq() - 1;
        if bound > seen {
            // Durable but not readable: retention deleted the segment that holds it (the
            // tailer, at the end of the one it had open, finds no successor starting there).
            if journal_lacks(&dir, seen + 1) {
                tracing::warn!(
                    seq = seen + 1,
                    "shipping: retention deleted a standby's next record"
                );
                let _ = sender.blocking_send(Shipment::Failed(RefuseReason::JournalGone));
                return;
            }
            // Otherwise a writer mid-rollover (not with a healthy one): do not spin.
            std::thread::sleep(Duration::from_millis(1));
        }
        if journal
            .wait_durable_after(seen, Duration::from_millis(100))
            .is_err()
        {
            let _ = sender.blocking_send(Shipment::Failed(RefuseReason::PrimaryJournal));
            return;
        }
    }
}
