//! The trading core `up` runs: journal recovery, the matching shard, the sequencer in front of
//! it, the catalog brought into the engine, and periodic snapshots.
//!
//! Start order: recover (newest snapshot + journal tail) → start the shard at the recovered
//! sequence → the sequencer (journals every command before the engine sees it) → add what the
//! catalog has and the engine lacks, as journaled commands → snapshots. Stop order is the
//! reverse; the journal closes last, so everything appended is durable when `stop` returns.
//!
//! Blocking: call [`Exchange::start`] and [`Exchange::stop`] off the async runtime's workers
//! (`spawn_blocking`), since they wait for disk and for the engine.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use peregrine_core::catalog::{Catalog, CatalogError, SharedCatalog};
use peregrine_core::{EngineError, EngineHandle, Request, RouterPlacement, Ticket, Views};
use peregrine_hotpath::Actor;
use peregrine_hotpath::runtime::{RuntimeError, Shard};
use peregrine_persist::snapshot::RetentionFloor;
use peregrine_persist::{JournalConfig, JournalWriter, RecoveryReport, Snapshotter};

use crate::config::Config;
use crate::supervisor::{RestartError, Supervised};

/// Sub-directory of the data directory holding journal segments and snapshots.
pub const JOURNAL_SUBDIR: &str = "journal";
/// How often the snapshot driver checks whether a snapshot is due.
const SNAPSHOT_POLL: Duration = Duration::from_millis(100);
/// Longest the catalog's start-up commands may take to be acknowledged.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the trading core could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    #[error("journal: {0}")]
    Open(#[from] peregrine_persist::OpenError),
    #[error("journal: {0}")]
    Journal(#[from] peregrine_persist::JournalError),
    #[error("matching shard: {0}")]
    Shard(#[from] RuntimeError),
    #[error("sequencer: {0}")]
    Engine(#[from] EngineError),
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("catalog: adding `{what}` failed: {reason}")]
    CatalogApply { what: String, reason: String },
    #[error("snapshots: {0}")]
    Snapshot(String),
    /// What [`Exchange::start_with`] ran once the journal was open failed.
    #[error("{0}")]
    Started(String),
}

/// The engine limits the appliance runs with; `up` and `replay` must agree on them.
pub fn engine_config() -> peregrine_hotpath::EngineConfig {
    peregrine_hotpath::EngineConfig::default()
}

/// The journal settings of `config` for the journal in `dir`.
pub fn journal_config(config: &Config, dir: &Path) -> JournalConfig {
    let section = &config.journal;
    let mut journal = JournalConfig::new(dir);
    journal.ack_mode = section
        .ack
        .mode(config.replication.without_standby.policy());
    journal.snapshot_every_commands = section.snapshot_every_commands;
    journal.snapshot_every =
        (section.snapshot_every_ms > 0).then(|| Duration::from_millis(section.snapshot_every_ms));
    journal.snapshots_kept = section.snapshots_kept;
    journal.delete_covered_segments = section.delete_covered_segments;
    journal.writer_core = usize::try_from(section.core).ok();
    journal.accept_lost_tail = section.accept_lost_tail;
    journal.writer_idle = match section.idle {
        crate::config::hotpath::IdleName::Park => peregrine_persist::WriterIdle::Park,
        crate::config::hotpath::IdleName::Spin => peregrine_persist::WriterIdle::Spin,
    };
    journal
}

/// The running trading core.
#[derive(Debug)]
pub struct Exchange {
    /// The sequencer and router (shared with the gateways).
    pub engine: Arc<EngineHandle>,
    /// Names and units: the configured ones and those created at runtime (from the journal
    /// and snapshots); the control API publishes each new one here.
    pub catalog: SharedCatalog,
    /// The journal directory.
    pub journal_dir: PathBuf,
    /// What recovery found.
    pub recovery: RecoveryReport,
    /// The sequence recovery ended at.
    pub recovered_seq: u64,
    /// What the replicator has consumed, which journal retention keeps (with `[replica]` on).
    pub retention_floor: Option<RetentionFloor>,
    /// What the fan-out has published, which journal retention keeps (with `[fanout]` on).
    pub fanout_floor: Option<RetentionFloor>,
    /// What connected standbys have not acknowledged, which journal retention keeps (with
    /// `[replication] listen` set; the shipper sets it).
    pub standby_floor: Option<RetentionFloor>,
    writer: JournalWriter,
    snapshots: SnapshotDriver,
}

impl Exchange {
    /// Starts the core from the data directory in `config`.
    pub fn start(config: &Config) -> Result<Exchange, ExchangeError> {
        Exchange::start_with(config, |_, _, _| Ok(())).map(|(exchange, ())| exchange)
    }

    /// [`Exchange::start`], running `on_journal` (with the journal directory, the journal and
    /// the standbys' retention floor) once the journal is open and before the catalog's
    /// commands, which wait for their acknowledgement: in `replicated` mode the standbys'
    /// shipping must run by then.
    pub fn start_with<T>(
        config: &Config,
        on_journal: impl FnOnce(
            &Path,
            &peregrine_persist::Journal,
            Option<&RetentionFloor>,
        ) -> Result<T, String>,
    ) -> Result<(Exchange, T), ExchangeError> {
        let configured = Catalog::new(&config.currencies, &config.markets)?;
        let journal_dir = config.data.dir.join(JOURNAL_SUBDIR);
        let mut journal_config = journal_config(config, &journal_dir);
        // With a replicator, retention keeps every segment it has not consumed; it starts at 0
        // (keep everything) and the replicator raises it after each commit.
        let retention_floor = config.replica.enabled.then(|| RetentionFloor::new(0));
        // The fan-out is a second such reader: retention keeps what the slower one needs.
        let fanout_floor = config.fanout.enabled.then(|| match &retention_floor {
            Some(replica) => replica.sibling(0),
            None => RetentionFloor::new(0),
        });
        // Connected standbys are a third: the shipper sets it (at the maximum, nothing held
        // back, while none is connected).
        let standby_floor = config.replication.ships().then(|| {
            match retention_floor.as_ref().or(fanout_floor.as_ref()) {
                Some(reader) => reader.sibling(u64::MAX),
                None => RetentionFloor::new(u64::MAX),
            }
        });
        journal_config.retention_floor = retention_floor
            .clone()
            .or_else(|| fanout_floor.clone())
            .or_else(|| standby_floor.clone());
        // Order statuses from the replayed commands: a client resending an order after the
        // restart gets the original's status, not a second order. This covers orders since the
        // snapshot used; an older order still live is refused by the engine as a duplicate.
        let mut views = Views::default();
        // The window image of the snapshot recovery starts from is loaded before the first
        // command after it is observed: resends of orders from before the snapshot stay
        // duplicates (when no command follows the snapshot, it is loaded right after).
        let mut window_loaded = false;
        let (recovered, writer) = peregrine_persist::open_observed(
            &journal_config,
            engine_config(),
            &mut |seq, command, events| {
                if !window_loaded {
                    window_loaded = true;
                    load_window(&journal_dir, seq.saturating_sub(1), &mut views);
                }
                views.observe(seq, command, events);
            },
        )?;
        if !window_loaded && let Some((_, snapshot_seq)) = &recovered.report.snapshot {
            load_window(&journal_dir, *snapshot_seq, &mut views);
        }
        if let Some(torn) = &recovered.report.torn_tail {
            tracing::warn!(file = %torn.path.display(), offset = torn.offset,
                zeroed_bytes = torn.zeroed_bytes, reason = %torn.reason,
                "journal torn tail truncated");
        }
        log_recovery_report(&recovered.report);
        tracing::info!(dir = %journal_dir.display(), last_seq = recovered.last_seq,
            replayed = recovered.report.replayed_count, "journal recovered");
        // The catalog is checked against the recovered engine before anything runs: a changed
        // market unit is refused here, not discovered in a mis-scaled price later.
        let missing = configured.missing_in(&recovered.engine)?;
        // Entries created at runtime come from the engine (its snapshot and the commands
        // replayed): a configured entry that reuses one of their codes, names or ids is refused.
        let catalog = configured.with_runtime(recovered.engine.runtime_reference())?;
        tracing::info!(
            currencies = catalog.currencies().len(),
            markets = catalog.markets().len(),
            runtime_created = recovered.engine.runtime_reference().currencies.len()
                + recovered.engine.runtime_reference().markets.len(),
            "catalog loaded"
        );
        let catalog = SharedCatalog::new(catalog);
        let recovered_seq = recovered.last_seq;
        let started = on_journal(&journal_dir, writer.journal(), standby_floor.as_ref())
            .map_err(ExchangeError::Started)?;
        let shard = Shard::start_at(
            recovered.engine,
            recovered_seq,
            &config.hotpath.shard_config(),
        )?;
        // Inside the appliance's runtime the router is a task on it (one thread wake-up fewer
        // per reply); elsewhere (e.g. a tool without a runtime) it gets a thread.
        let placement = match tokio::runtime::Handle::try_current() {
            Ok(runtime)
                if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                RouterPlacement::Task(runtime)
            }
            _ => RouterPlacement::Thread,
        };
        let engine =
            EngineHandle::start_placed(shard, Some(writer.journal().clone()), views, placement)?;
        for command in missing {
            let what = format!("{command:?}");
            let outcome = engine
                .submit(Request::new(Actor::System, command))
                .map_err(|e| ExchangeError::CatalogApply {
                    what: what.clone(),
                    reason: e.to_string(),
                })?;
            let executed = wait_blocking(outcome, CATALOG_TIMEOUT).ok_or_else(|| {
                ExchangeError::CatalogApply {
                    what: what.clone(),
                    reason: "no outcome in time".to_owned(),
                }
            })?;
            if let Some(reason) = executed.rejected() {
                return Err(ExchangeError::CatalogApply {
                    what,
                    reason: reason.to_string(),
                });
            }
            tracing::info!(seq = executed.seq, command = %what, "catalog entry added");
        }
        let snapshots = SnapshotDriver::start(&journal_config, &engine, writer.journal().clone())?;
        let exchange = Exchange {
            engine,
            catalog,
            journal_dir,
            recovery: recovered.report,
            recovered_seq,
            retention_floor,
            fanout_floor,
            standby_floor,
            writer,
            snapshots,
        };
        Ok((exchange, started))
    }

    /// Whether the snapshot driver thread still runs (for readiness: a dead background thread
    /// must show, or snapshots silently stop and every restart replays more).
    pub fn snapshot_driver_alive(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.snapshots.alive)
    }

    /// The snapshot driver's thread, for the supervisor to restart when it dies.
    pub fn snapshot_driver_thread(&self) -> SnapshotDriverThread {
        SnapshotDriverThread(self.snapshots.handle())
    }

    /// Pauses of the engine thread for snapshots so far (for metrics), readable after start.
    pub fn snapshot_pauses(&self) -> SnapshotPausesProbe {
        SnapshotPausesProbe(Arc::clone(&self.snapshots.snapshotter))
    }

    /// The journal commands are appended to.
    pub fn journal(&self) -> &peregrine_persist::Journal {
        self.writer.journal()
    }

    /// Stops snapshots and the router, then closes the journal (everything appended becomes
    /// durable). Returns the final durable sequence.
    pub fn stop(self) -> Result<u64, ExchangeError> {
        let snapshots = self.snapshots.stop();
        self.engine.shutdown();
        let durable_seq = self.writer.shutdown()?;
        snapshots.map_err(ExchangeError::Snapshot)?;
        Ok(durable_seq)
    }
}

/// Logs what recovery skipped or repaired besides a torn tail: every snapshot it could not use
/// (with file and reason: with all of them damaged the whole journal is replayed, which an
/// operator must hear about), the snapshot it started from, and an extended short segment.
fn log_recovery_report(report: &peregrine_persist::RecoveryReport) {
    for (path, reason) in &report.snapshots_skipped {
        tracing::warn!(file = %path.display(), %reason, "snapshot skipped");
    }
    match &report.snapshot {
        Some((path, seq)) => tracing::info!(file = %path.display(), seq, "started from snapshot"),
        None => tracing::info!("no snapshot used: replaying the whole journal"),
    }
    if let Some((tip, end)) = report.lost_tail {
        tracing::warn!(
            tip,
            journal_end = end,
            lost = tip - end,
            "journal loss accepted (--accept-journal-loss): continuing from its end"
        );
    }
    if let Some((path, from, to)) = &report.segment_extended {
        tracing::warn!(file = %path.display(), from_bytes = from, to_bytes = to,
            "short journal segment extended with zeros");
    }
}

/// Reads the snapshotter's pause statistics; zero once snapshots have stopped.
#[derive(Clone, Debug)]
pub struct SnapshotPausesProbe(Arc<Mutex<Option<Snapshotter>>>);

impl SnapshotPausesProbe {
    /// Snapshots taken and their pauses.
    pub fn pauses(&self) -> peregrine_persist::SnapshotPauses {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(Snapshotter::pauses)
            .unwrap_or_default()
    }

    /// How snapshot writing is going; healthy once snapshots have stopped.
    pub fn health(&self) -> peregrine_persist::SnapshotHealth {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(Snapshotter::health)
            .unwrap_or_default()
    }
}

/// Waits for a oneshot from a plain thread, bounded by `timeout`.
fn wait_blocking(mut ticket: Ticket, timeout: Duration) -> Option<peregrine_core::Executed> {
    let deadline = Instant::now() + timeout;
    // Bounded by the deadline; a millisecond poll is plenty for start-up commands.
    loop {
        match ticket.try_outcome() {
            Some(outcome) => return outcome.ok(),
            None => {
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// Takes snapshots on the engine thread (through a shard query, between two commands) when
/// the snapshotter says one is due; the snapshotter's helper writes them once durable.
///
/// Its thread holds no state of its own (the snapshotter is shared), so the supervisor restarts
/// it in place when it dies ([`SnapshotDriverThread`]).
#[derive(Debug)]
struct SnapshotDriver {
    /// True while the driver thread runs.
    alive: Arc<AtomicBool>,
    snapshotter: Arc<Mutex<Option<Snapshotter>>>,
    stop: Arc<AtomicBool>,
    engine: Arc<EngineHandle>,
    /// The journal directory, where each snapshot's client-order-id window goes.
    dir: std::path::PathBuf,
    /// The running thread; replaced by a restart.
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl SnapshotDriver {
    fn start(
        config: &JournalConfig,
        engine: &Arc<EngineHandle>,
        journal: peregrine_persist::Journal,
    ) -> Result<SnapshotDriver, ExchangeError> {
        let stats = Arc::clone(engine.stats());
        let applied_seq = stats.last_seq.load(Ordering::Acquire);
        let snapshotter = Arc::new(Mutex::new(Some(Snapshotter::start(
            config,
            journal,
            applied_seq,
        ))));
        let driver = SnapshotDriver {
            alive: Arc::new(AtomicBool::new(false)),
            snapshotter,
            stop: Arc::new(AtomicBool::new(false)),
            engine: Arc::clone(engine),
            dir: config.dir.clone(),
            thread: Arc::new(Mutex::new(None)),
        };
        let thread = driver
            .spawn()
            .map_err(|e| ExchangeError::Snapshot(e.to_string()))?;
        *lock(&driver.thread) = Some(thread);
        Ok(driver)
    }

    /// Starts a driver thread on the shared state.
    fn spawn(&self) -> std::io::Result<JoinHandle<()>> {
        self.alive.store(true, Ordering::Release);
        let alive_guard = AliveGuard(Arc::clone(&self.alive));
        let (snapshotter, stop, engine, dir) = (
            Arc::clone(&self.snapshotter),
            Arc::clone(&self.stop),
            Arc::clone(&self.engine),
            self.dir.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("snapshot-driver".into())
            .spawn(move || {
                // Cleared however the thread ends, a panic included: readiness shows it.
                let _alive = alive_guard;
                drive_snapshots(&snapshotter, &stop, &engine, &dir);
            });
        if spawned.is_err() {
            self.alive.store(false, Ordering::Release);
        }
        spawned
    }

    fn handle(&self) -> SnapshotDriver {
        SnapshotDriver {
            alive: Arc::clone(&self.alive),
            snapshotter: Arc::clone(&self.snapshotter),
            stop: Arc::clone(&self.stop),
            engine: Arc::clone(&self.engine),
            dir: self.dir.clone(),
            thread: Arc::clone(&self.thread),
        }
    }

    /// Stops the driver and waits for the snapshot in flight, if any, to be written.
    fn stop(self) -> Result<(), String> {
        self.stop.store(true, Ordering::Release);
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        let snapshotter = lock(&self.snapshotter).take();
        match snapshotter {
            Some(snapshotter) => snapshotter.finish().map(|_| ()).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain values only: a panic while holding the lock leaves nothing inconsistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The snapshot driver's thread as the supervisor sees it: ended when its thread finished
/// without being asked to stop; restarted on the same snapshotter.
#[derive(Debug)]
pub struct SnapshotDriverThread(SnapshotDriver);

impl Supervised for SnapshotDriverThread {
    fn name(&self) -> &'static str {
        "snapshot-driver"
    }

    fn ended(&mut self) -> Option<String> {
        if self.0.stop.load(Ordering::Acquire) {
            return None;
        }
        let mut slot = lock(&self.0.thread);
        if !slot.as_ref().is_some_and(JoinHandle::is_finished) {
            return None;
        }
        let joined = slot.take()?.join();
        Some(match joined {
            Ok(()) => "the thread returned".to_owned(),
            Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
        })
    }

    fn restart(&mut self) -> Result<(), RestartError> {
        if self.0.stop.load(Ordering::Acquire) {
            return Err(RestartError::Failed("the exchange is stopping".to_owned()));
        }
        let thread = self
            .0
            .spawn()
            .map_err(|e| RestartError::Failed(e.to_string()))?;
        *lock(&self.0.thread) = Some(thread);
        Ok(())
    }
}

/// The text of a panic's payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Clears its flag when dropped: when the thread that holds it ends, by return or by panic.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn drive_snapshots(
    snapshotter: &Arc<Mutex<Option<Snapshotter>>>,
    stop: &AtomicBool,
    engine: &Arc<EngineHandle>,
    dir: &std::path::Path,
) {
    let stats = Arc::clone(engine.stats());
    let probe = SnapshotPausesProbe(Arc::clone(snapshotter));
    let mut failures_logged = 0_u64;
    // Bounded by the stop flag, checked every poll.
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(SNAPSHOT_POLL);
        let health = probe.health();
        if health.failures_total > failures_logged {
            // Once per failed write (the helper retries after a back-off), not once per poll.
            failures_logged = health.failures_total;
            tracing::error!(
                error = health.last_failure.as_deref().unwrap_or("unknown"),
                consecutive = health.consecutive_failures,
                retry_in_s = health.retry_backoff().as_secs(),
                "snapshot write failed"
            );
        }
        let due = snapshotter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|s| s.is_due(stats.last_seq.load(Ordering::Acquire)));
        if !due {
            continue;
        }
        let (snapshotter, stats, handle) = (
            Arc::clone(snapshotter),
            Arc::clone(&stats),
            Arc::clone(engine),
        );
        // On the engine thread, between two commands: `last_seq` is exactly what `engine` has
        // applied. The pause is the snapshot's serialisation, measured by the snapshotter; the
        // window of client order ids at the same sequence is asked of the core there too.
        let taken = engine.query(move |engine| {
            let applied_seq = stats.last_seq.load(Ordering::Acquire);
            let mut guard = snapshotter.lock().unwrap_or_else(PoisonError::into_inner);
            guard.as_mut().map(|s| {
                s.maybe_take(engine, applied_seq)
                    .map(|taken| {
                        taken.map(|pause| (pause, applied_seq, handle.request_window(applied_seq)))
                    })
                    .map_err(|e| e.to_string())
            })
        });
        match taken {
            Ok(Some(Ok(Some((pause, seq, window))))) => {
                tracing::info!(pause_us = pause.as_micros() as u64, "snapshot taken");
                engine.capture_window_now();
                save_window(dir, seq, window);
            }
            Ok(Some(Err(error))) => tracing::error!(%error, "snapshot failed"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "snapshot query did not run"),
        }
    }
}

/// Longest the snapshot driver waits for the core's views to reach a snapshot's sequence (they
/// follow the engine by the durability wait: milliseconds).
const WINDOW_CAPTURE_WAIT: Duration = Duration::from_secs(10);
/// How often the driver looks for the window's image while it waits.
const WINDOW_CAPTURE_POLL: Duration = Duration::from_millis(5);
/// Largest window image read back: the window's bound in entries times an entry, with room.
const WINDOW_IMAGE_MAX_BYTES: u64 = 64 << 20;
const _: () = assert!(
    WINDOW_IMAGE_MAX_BYTES >= 48 * peregrine_core::DEDUP_WINDOW_ORDERS as u64,
    "a full window's image must be readable"
);

/// Writes the window image `window` brings beside the snapshot at `seq`. A missing image (the
/// views passed `seq` before the request, or never reached it in time) only narrows dedup
/// after a restart from this snapshot, so it is logged, not fatal.
fn save_window(
    dir: &std::path::Path,
    seq: u64,
    mut window: tokio::sync::oneshot::Receiver<Vec<u8>>,
) {
    let deadline = std::time::Instant::now() + WINDOW_CAPTURE_WAIT;
    let image = loop {
        match window.try_recv() {
            Ok(image) => break Some(image),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => break None,
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                if std::time::Instant::now() >= deadline {
                    break None;
                }
                std::thread::sleep(WINDOW_CAPTURE_POLL);
            }
        }
    };
    let Some(image) = image else {
        tracing::warn!(
            seq,
            "no client-order-id window for this snapshot: a restart from it \
            forgets the client ids of orders before it"
        );
        return;
    };
    match peregrine_persist::snapshot::write_window(dir, seq, &image) {
        Ok(path) => {
            tracing::debug!(seq, path = %path.display(), bytes = image.len(), "window saved")
        }
        Err(error) => tracing::error!(seq, %error, "could not write the client-order-id window"),
    }
}

/// Loads the window image of the snapshot at `seq` into `views`, if there is one.
fn load_window(dir: &std::path::Path, seq: u64, views: &mut Views) {
    if seq == 0 {
        return;
    }
    match peregrine_persist::snapshot::read_window(dir, seq, WINDOW_IMAGE_MAX_BYTES) {
        Ok(Some(image)) => match views.restore_window(&image) {
            Ok(count) => tracing::info!(seq, entries = count, "client-order-id window restored"),
            Err(error) => tracing::warn!(seq, %error,
                "client-order-id window unusable: client ids before the snapshot are forgotten"),
        },
        Ok(None) => tracing::warn!(
            seq,
            "no client-order-id window beside the snapshot: client ids before it are forgotten"
        ),
        Err(error) => tracing::warn!(seq, %error,
            "client-order-id window unreadable: client ids before the snapshot are forgotten"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_panics_clears_its_alive_flag() {
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard(Arc::clone(&alive));
        let thread = std::thread::spawn(move || {
            let _alive = guard;
            panic!("a background thread dies");
        });
        assert!(thread.join().is_err());
        assert!(!alive.load(Ordering::Acquire));
    }
}
