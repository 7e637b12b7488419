//! Snapshot files: `Engine::snapshot()` bytes behind a checksummed header, named after the last
//! sequence applied (`00000000000000001234.snapshot`), written to a temporary file, synced,
//! renamed and the directory synced, so a file with the final name is always complete.
//!
//! The engine thread only pays for `Engine::snapshot()` (the pause, measured); a helper thread
//! writes the file, but only once the journal is durable up to the snapshot's sequence (else a
//! crash could leave a snapshot ahead of the journal, whose next sequences would then collide),
//! then applies retention.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use peregrine_hotpath::{Engine, SNAPSHOT_VERSION};

use crate::config::JournalConfig;
use crate::crc32c::Crc32c;
use crate::error::SnapshotWriteError;
use crate::format::{
    RELEASE_BYTES, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_FORMATS_READ, release, versions_list,
};
use crate::io::sync_dir;
use crate::segment::{list_numbered, list_segments};
use crate::writer::{Journal, Seq};

/// Suffix of snapshot files.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Suffix of snapshots being written; recovery deletes leftovers.
pub const SNAPSHOT_TMP_SUFFIX: &str = ".snapshot-tmp";
/// First bytes of every snapshot file: `PGSNAP` and the file format version in two ASCII
/// digits (`PGSNAP01` was format 1).
pub const SNAPSHOT_MAGIC_PREFIX: [u8; 6] = *b"PGSNAP";
/// Header, format 2 (little endian):
///
/// ```text
/// offset 0   [u8; 8]  "PGSNAP02"
/// offset 8   u64      sequence of the last command applied
/// offset 16  u64      body length
/// offset 24  u32      engine image version (`peregrine_hotpath::SNAPSHOT_VERSION`)
/// offset 28  [u8; 32] the writing release, zero-padded
/// offset 60  u32      CRC32C over bytes 8..60 and the body
/// ```
pub const SNAPSHOT_HEADER_BYTES: usize = 64;
const _: () = assert!(SNAPSHOT_HEADER_BYTES == 28 + RELEASE_BYTES + 4);
const _: () = assert!(
    SNAPSHOT_FORMAT_VERSION < 100,
    "two ASCII digits in the magic"
);
/// Bound on a snapshot body: 16 GiB, well past any configured engine, so a damaged length
/// field cannot make recovery allocate without bound.
pub const SNAPSHOT_BODY_MAX_BYTES: u64 = 16 << 30;
/// How long the snapshot helper waits for the journal to catch up before giving up on one
/// snapshot: durable commits take well under a second; minutes means the device is gone.
const DURABLE_WAIT_MAX: Duration = Duration::from_secs(60);

/// The path of the snapshot at `seq`.
pub fn snapshot_path(dir: &Path, seq: Seq) -> PathBuf {
    dir.join(format!("{seq:020}{SNAPSHOT_SUFFIX}"))
}

/// The sequence of a snapshot file name, if it is one.
pub fn parse_snapshot_name(name: &str) -> Option<Seq> {
    let digits = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Snapshots in `dir`, oldest first.
pub fn list_snapshots(dir: &Path) -> std::io::Result<Vec<(Seq, PathBuf)>> {
    list_numbered(dir, parse_snapshot_name)
}

/// The magic of a snapshot file of `version`.
fn magic(version: u16) -> [u8; 8] {
    let mut out = [0_u8; 8];
    out[..6].copy_from_slice(&SNAPSHOT_MAGIC_PREFIX);
    // Two digits: the version is below 100 (a compile-time assert).
    out[6] = b'0' + (version / 10) as u8;
    out[7] = b'0' + (version % 10) as u8;
    out
}

fn header_checksum(fields: &[u8], body: &[u8]) -> u32 {
    Crc32c::new().update(fields).update(body).finish()
}

/// Why a snapshot file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotReadError {
    /// Written in a file format this release does not read. Recovery stops on it: skipping it
    /// would silently start from older state.
    #[error(
        "snapshot format version {found}, this release reads {}",
        versions_list(SNAPSHOT_FORMATS_READ)
    )]
    Version {
        /// The version in the file.
        found: u16,
    },
    /// The file holds an engine image of another version.
    #[error("snapshot engine image version {found}, this release reads {SNAPSHOT_VERSION}")]
    EngineVersion {
        /// The version in the file.
        found: u32,
    },
    /// Damaged or incomplete: recovery skips it, and says so.
    #[error("{0}")]
    Damaged(String),
}

/// Writes the snapshot of `seq` durably (temp file, sync, rename, directory sync).
pub fn write_snapshot(dir: &Path, seq: Seq, body: &[u8]) -> std::io::Result<PathBuf> {
    let path = snapshot_path(dir, seq);
    let tmp = dir.join(format!("{seq:020}{SNAPSHOT_TMP_SUFFIX}"));
    let mut file = File::create(&tmp)?;
    let mut header = [0_u8; SNAPSHOT_HEADER_BYTES];
    header[..8].copy_from_slice(&magic(SNAPSHOT_FORMAT_VERSION));
    header[8..16].copy_from_slice(&seq.to_le_bytes());
    header[16..24].copy_from_slice(&(body.len() as u64).to_le_bytes());
    header[24..28].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    header[28..60].copy_from_slice(&release());
    let crc = header_checksum(&header[8..60], body);
    header[60..64].copy_from_slice(&crc.to_le_bytes());
    file.write_all(&header)?;
    file.write_all(body)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(path)
}

/// Reads and validates a snapshot file: its sequence and engine bytes, or why it is unusable.
pub fn read_snapshot(path: &Path) -> Result<(Seq, Vec<u8>), SnapshotReadError> {
    use SnapshotReadError::Damaged;
    let bytes = std::fs::read(path).map_err(|e| Damaged(format!("read failed: {e}")))?;
    let Some(header) = bytes.get(..SNAPSHOT_HEADER_BYTES) else {
        return Err(Damaged(format!("short file: {} bytes", bytes.len())));
    };
    // The version before anything else: another format may lay the rest out differently.
    if header[..6] != SNAPSHOT_MAGIC_PREFIX {
        return Err(Damaged("bad magic".to_owned()));
    }
    let digits = [header[6], header[7]];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(Damaged("bad magic".to_owned()));
    }
    let found = u16::from(digits[0] - b'0') * 10 + u16::from(digits[1] - b'0');
    if !SNAPSHOT_FORMATS_READ.contains(&found) {
        return Err(SnapshotReadError::Version { found });
    }
    let field = |at: usize| {
        let mut le = [0_u8; 8];
        le.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(le)
    };
    let seq = field(8);
    let body_bytes = field(16);
    let stored = u32::from_le_bytes([header[60], header[61], header[62], header[63]]);
    if body_bytes > SNAPSHOT_BODY_MAX_BYTES
        || body_bytes != (bytes.len() - SNAPSHOT_HEADER_BYTES) as u64
    {
        return Err(Damaged(format!(
            "body length {body_bytes} does not match the file ({} bytes)",
            bytes.len()
        )));
    }
    let body = &bytes[SNAPSHOT_HEADER_BYTES..];
    if header_checksum(&header[8..60], body) != stored {
        return Err(Damaged("checksum mismatch".to_owned()));
    }
    let image_version = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
    if image_version != SNAPSHOT_VERSION {
        return Err(SnapshotReadError::EngineVersion {
            found: image_version,
        });
    }
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_snapshot_name);
    if named != Some(seq) {
        return Err(Damaged(format!(
            "file name does not match its sequence {seq}"
        )));
    }
    Ok((seq, body.to_vec()))
}

/// Readers of one journal that may hold a retention floor (the replica, the fan-out, tools).
pub const RETENTION_READERS_MAX: usize = 8;

/// The sequence up to which a reader of the journal outside the engine (the SQL replicator,
/// the NATS fan-out) has consumed it. Retention never deletes what any reader still needs to
/// restart: every segment after the lowest floor, and the newest snapshot at or below it.
/// Shared: the reader raises its own floor, the snapshot helper reads the lowest of the set
/// ([`RetentionFloor::sibling`] adds a reader to the set); cloning shares the same values.
#[derive(Clone, Debug)]
pub struct RetentionFloor {
    own: Arc<AtomicU64>,
    readers: Arc<std::sync::Mutex<Vec<Arc<AtomicU64>>>>,
}

impl Default for RetentionFloor {
    fn default() -> Self {
        RetentionFloor::new(0)
    }
}

impl RetentionFloor {
    /// A set of one reader's floor at `seq` (0: nothing consumed yet, so nothing may be deleted
    /// for this reader).
    pub fn new(seq: Seq) -> RetentionFloor {
        let own = Arc::new(AtomicU64::new(seq));
        RetentionFloor {
            readers: Arc::new(std::sync::Mutex::new(vec![Arc::clone(&own)])),
            own,
        }
    }

    /// Another reader's floor in the same set, at `seq`. Panics past
    /// [`RETENTION_READERS_MAX`] readers (a programming error: readers are fixed at start).
    pub fn sibling(&self, seq: Seq) -> RetentionFloor {
        let own = Arc::new(AtomicU64::new(seq));
        let mut readers = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        assert!(
            readers.len() < RETENTION_READERS_MAX,
            "too many journal readers"
        );
        readers.push(Arc::clone(&own));
        RetentionFloor {
            own,
            readers: Arc::clone(&self.readers),
        }
    }

    /// The lowest floor of the set: what retention must keep.
    pub fn get(&self) -> Seq {
        let readers = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        readers
            .iter()
            .map(|floor| floor.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    /// This reader's floor.
    pub fn own(&self) -> Seq {
        self.own.load(Ordering::Acquire)
    }

    /// Raises this reader's floor to `seq`; never lowers it (a reader that restarts lower sets a
    /// new one).
    pub fn raise(&self, seq: Seq) {
        self.own.fetch_max(seq, Ordering::AcqRel);
    }

    /// Sets this reader's floor to `seq`, lower or higher: for a reader that stands for a
    /// changing set of consumers (the standby shipper: the slowest connected standby, or
    /// [`Seq::MAX`] while none holds anything back).
    pub fn set(&self, seq: Seq) {
        self.own.store(seq, Ordering::Release);
    }
}

/// Two floors are equal when they belong to the same set (for `JournalConfig: Eq`).
impl PartialEq for RetentionFloor {
    fn eq(&self, other: &RetentionFloor) -> bool {
        Arc::ptr_eq(&self.readers, &other.readers)
    }
}

impl Eq for RetentionFloor {}

/// Keeps the newest `kept` snapshots, deletes the rest, and (if asked) deletes every segment
/// whose records are all at or below the oldest kept snapshot. The newest segment is never
/// deleted: the writer appends to it. Returns the segments deleted.
pub fn apply_retention(
    dir: &Path,
    kept: usize,
    delete_covered_segments: bool,
) -> std::io::Result<Vec<PathBuf>> {
    apply_retention_with_floor(dir, kept, delete_covered_segments, None)
}

/// [`apply_retention`] that also respects a [`RetentionFloor`] value: the newest snapshot at or
/// below `floor` is kept too, and only segments covered by it (so at or below the floor) may be
/// deleted; with no snapshot at or below the floor no segment is deleted.
pub fn apply_retention_with_floor(
    dir: &Path,
    kept: usize,
    delete_covered_segments: bool,
    floor: Option<Seq>,
) -> std::io::Result<Vec<PathBuf>> {
    assert!(kept >= 1);
    let snapshots = list_snapshots(dir)?;
    let excess = snapshots.len().saturating_sub(kept);
    let floor_index = floor.and_then(|floor| snapshots.iter().rposition(|(seq, _)| *seq <= floor));
    let mut removed_count = 0_usize;
    for (index, (_, path)) in snapshots[..excess].iter().enumerate() {
        if Some(index) != floor_index {
            std::fs::remove_file(path)?;
            removed_count += 1;
        }
    }
    // Every kept snapshot must be able to restart its reader, so segments are covered only up
    // to the oldest one kept.
    let oldest_kept_seq = match (floor, floor_index) {
        (None, _) => snapshots.get(excess).map(|(seq, _)| *seq),
        (Some(_), None) => None,
        (Some(_), Some(index)) => snapshots.get(index.min(excess)).map(|(seq, _)| *seq),
    };
    let mut deleted = Vec::new();
    if let Some(oldest_kept_seq) = oldest_kept_seq
        && delete_covered_segments
    {
        let segments = list_segments(dir)?;
        for pair in segments.windows(2) {
            let (_, path) = &pair[0];
            let (next_first_seq, _) = pair[1];
            // Segment i holds sequences below the next segment's first one.
            if next_first_seq - 1 <= oldest_kept_seq {
                std::fs::remove_file(path)?;
                deleted.push(path.clone());
            }
        }
    }
    if removed_count > 0 || !deleted.is_empty() {
        sync_dir(dir)?;
    }
    Ok(deleted)
}

/// Time the engine thread spent in `Engine::snapshot()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotPauses {
    /// Snapshots taken.
    pub count: u64,
    /// Longest pause, in nanoseconds.
    pub max_ns: u64,
    /// Sum of pauses, in nanoseconds.
    pub total_ns: u64,
    /// Pause of the last one, in nanoseconds.
    pub last_ns: u64,
}

/// The first retry after a failed snapshot write waits this long; each further failure in a row
/// doubles the wait, up to [`SNAPSHOT_RETRY_BACKOFF_MAX`]. A full disk or a transient I/O error
/// then costs a few attempts a minute, not one per poll, and never disables snapshots for good.
pub const SNAPSHOT_RETRY_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest wait between two attempts after failures.
pub const SNAPSHOT_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(60);
const _: () =
    assert!(SNAPSHOT_RETRY_BACKOFF_MIN.as_nanos() <= SNAPSHOT_RETRY_BACKOFF_MAX.as_nanos());

/// How snapshot writing is going: for logs, metrics and readiness.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotHealth {
    /// Why the last attempt failed, while the failures go on (cleared by a success).
    pub last_failure: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// Failed attempts ever.
    pub failures_total: u64,
    /// When the last failure happened.
    pub failed_at: Option<Instant>,
}

impl SnapshotHealth {
    /// How long after the last failure the next attempt may start.
    pub fn retry_backoff(&self) -> Duration {
        let doublings = self.consecutive_failures.saturating_sub(1).min(16);
        SNAPSHOT_RETRY_BACKOFF_MIN
            .saturating_mul(1_u32 << doublings)
            .min(SNAPSHOT_RETRY_BACKOFF_MAX)
    }

    /// Whether an attempt must wait for the back-off still.
    fn backing_off(&self) -> bool {
        self.failed_at
            .is_some_and(|at| self.consecutive_failures > 0 && at.elapsed() < self.retry_backoff())
    }
}

/// Takes snapshots on the engine thread when due and writes them on a helper thread.
#[derive(Debug)]
pub struct Snapshotter {
    every_commands: u64,
    every: Option<Duration>,
    last_seq: Seq,
    last_at: Instant,
    /// True while the helper holds a snapshot not yet written: a new one is not taken then
    /// (the bound on snapshot memory is one body in flight).
    in_flight: Arc<AtomicBool>,
    sender: Option<SyncSender<(Seq, Vec<u8>)>>,
    thread: Option<JoinHandle<()>>,
    written_seq: Arc<AtomicU64>,
    health: Arc<Mutex<SnapshotHealth>>,
    pauses: SnapshotPauses,
}

impl Snapshotter {
    /// Starts the helper. `last_seq` is the sequence the engine is at (from recovery).
    pub fn start(config: &JournalConfig, journal: Journal, last_seq: Seq) -> Snapshotter {
        let (sender, receiver) = sync_channel(1);
        let in_flight = Arc::new(AtomicBool::new(false));
        let written_seq = Arc::new(AtomicU64::new(0));
        let health = Arc::new(Mutex::new(SnapshotHealth::default()));
        let helper = Helper {
            dir: config.dir.clone(),
            kept: config.snapshots_kept,
            delete_covered_segments: config.delete_covered_segments,
            retention_floor: config.retention_floor.clone(),
            journal,
            in_flight: Arc::clone(&in_flight),
            written_seq: Arc::clone(&written_seq),
            health: Arc::clone(&health),
        };
        let thread = std::thread::Builder::new()
            .name("snapshot-writer".to_owned())
            .spawn(move || helper.run(&receiver))
            .ok();
        Snapshotter {
            every_commands: config.snapshot_every_commands,
            every: config.snapshot_every,
            last_seq,
            last_at: Instant::now(),
            in_flight,
            sender: thread.as_ref().map(|_| sender),
            thread,
            written_seq,
            health,
            pauses: SnapshotPauses::default(),
        }
    }

    /// Whether a snapshot is due at `applied_seq` (by count or by time), the helper is free and
    /// no back-off after a failed write is running.
    pub fn is_due(&self, applied_seq: Seq) -> bool {
        if self.in_flight.load(Ordering::Acquire) || applied_seq <= self.last_seq {
            return false;
        }
        if self.health().backing_off() {
            return false;
        }
        let by_count =
            self.every_commands > 0 && applied_seq - self.last_seq >= self.every_commands;
        let by_time = self
            .every
            .is_some_and(|every| self.last_at.elapsed() >= every);
        by_count || by_time
    }

    /// Takes a snapshot if one is due; returns the pause if it took one. Call between commands
    /// on the engine thread; `applied_seq` is the last sequence applied to `engine`.
    pub fn maybe_take(
        &mut self,
        engine: &Engine,
        applied_seq: Seq,
    ) -> Result<Option<Duration>, SnapshotWriteError> {
        if !self.is_due(applied_seq) {
            return Ok(None);
        }
        self.take(engine, applied_seq).map(Some)
    }

    /// Takes a snapshot now and hands it to the helper; returns the pause.
    pub fn take(
        &mut self,
        engine: &Engine,
        applied_seq: Seq,
    ) -> Result<Duration, SnapshotWriteError> {
        let start = Instant::now();
        let body = engine.snapshot()?;
        let pause = start.elapsed();
        let pause_ns = u64::try_from(pause.as_nanos()).unwrap_or(u64::MAX);
        self.pauses.count += 1;
        self.pauses.max_ns = self.pauses.max_ns.max(pause_ns);
        self.pauses.total_ns = self.pauses.total_ns.saturating_add(pause_ns);
        self.pauses.last_ns = pause_ns;
        self.last_seq = applied_seq;
        self.last_at = Instant::now();
        if let Some(sender) = &self.sender {
            self.in_flight.store(true, Ordering::Release);
            // Capacity 1 and `in_flight` gate: the slot is free unless the helper died.
            if sender.try_send((applied_seq, body)).is_err() {
                self.in_flight.store(false, Ordering::Release);
                return Err(SnapshotWriteError::Io {
                    path: PathBuf::from("snapshot helper"),
                    source: std::io::Error::other("snapshot helper is gone"),
                });
            }
        }
        Ok(pause)
    }

    /// Pause statistics so far.
    pub fn pauses(&self) -> SnapshotPauses {
        self.pauses
    }

    /// Sequence of the newest snapshot written durably by this snapshotter (0 if none).
    pub fn written_seq(&self) -> Seq {
        self.written_seq.load(Ordering::Acquire)
    }

    /// Why the last write failed, while writes keep failing (`None` once one succeeds).
    pub fn failure(&self) -> Option<String> {
        self.health().last_failure
    }

    /// How snapshot writing is going.
    pub fn health(&self) -> SnapshotHealth {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits for the snapshot in flight to be written and stops the helper.
    pub fn finish(mut self) -> Result<SnapshotPauses, SnapshotWriteError> {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        match self.failure() {
            Some(failure) => Err(SnapshotWriteError::Io {
                path: PathBuf::from("snapshot helper"),
                source: std::io::Error::other(failure),
            }),
            None => Ok(self.pauses),
        }
    }
}

struct Helper {
    dir: PathBuf,
    kept: usize,
    delete_covered_segments: bool,
    retention_floor: Option<RetentionFloor>,
    journal: Journal,
    in_flight: Arc<AtomicBool>,
    written_seq: Arc<AtomicU64>,
    health: Arc<Mutex<SnapshotHealth>>,
}

impl Helper {
    fn run(&self, receiver: &Receiver<(Seq, Vec<u8>)>) {
        while let Ok((seq, body)) = receiver.recv() {
            let mut file_written = false;
            let written = self.write(seq, &body, &mut file_written);
            {
                let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
                match written {
                    Ok(()) => {
                        health.last_failure = None;
                        health.consecutive_failures = 0;
                    }
                    Err(error) => {
                        health.last_failure = Some(error.to_string());
                        health.consecutive_failures = health.consecutive_failures.saturating_add(1);
                        health.failures_total = health.failures_total.saturating_add(1);
                        health.failed_at = Some(Instant::now());
                    }
                }
            }
            // Free for the next snapshot before publishing this one, so whoever sees
            // `written_seq` move may take the next at once.
            self.in_flight.store(false, Ordering::Release);
            if file_written {
                self.written_seq.store(seq, Ordering::Release);
            }
        }
    }

    fn write(
        &self,
        seq: Seq,
        body: &[u8],
        file_written: &mut bool,
    ) -> Result<(), SnapshotWriteError> {
        // Never let a snapshot get ahead of the durable journal (see the module doc).
        let durable = self.journal.wait_durable(seq, DURABLE_WAIT_MAX)?;
        if durable < seq {
            return Err(SnapshotWriteError::Io {
                path: snapshot_path(&self.dir, seq),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "journal did not become durable up to the snapshot",
                ),
            });
        }
        let io_error = |source| SnapshotWriteError::Io {
            path: snapshot_path(&self.dir, seq),
            source,
        };
        write_snapshot(&self.dir, seq, body).map_err(io_error)?;
        *file_written = true;
        let floor = self.retention_floor.as_ref().map(RetentionFloor::get);
        apply_retention_with_floor(&self.dir, self.kept, self.delete_covered_segments, floor)
            .map_err(io_error)?;
        Ok(())
    }
}

/// Suffix of the file beside a snapshot holding the core's client-order-id window at the
/// snapshot's sequence (its bytes are the views' own format; this crate only stores them).
pub const WINDOW_SUFFIX: &str = ".window";

/// The path of the window image beside the snapshot at `seq`.
pub fn window_path(dir: &Path, seq: Seq) -> PathBuf {
    dir.join(format!("{seq:020}{WINDOW_SUFFIX}"))
}

/// Writes the window image of the snapshot at `seq` durably (temp file, sync, rename,
/// directory sync), then removes the images of snapshots that no longer exist.
pub fn write_window(dir: &Path, seq: Seq, image: &[u8]) -> std::io::Result<PathBuf> {
    let path = window_path(dir, seq);
    let tmp = dir.join(format!("{seq:020}{WINDOW_SUFFIX}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(image)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    let kept: Vec<Seq> = list_snapshots(dir)?.into_iter().map(|(s, _)| s).collect();
    for (old, old_path) in list_numbered(dir, |name| {
        let digits = name.strip_suffix(WINDOW_SUFFIX)?;
        (digits.len() == 20).then(|| digits.parse().ok()).flatten()
    })? {
        if old != seq && !kept.contains(&old) {
            // Best effort: a stale image is only disk space, never read for another snapshot.
            let _ = std::fs::remove_file(old_path);
        }
    }
    Ok(path)
}

/// The window image beside the snapshot at `seq`, if one was written. A file larger than
/// `max_bytes` is refused before it is read.
pub fn read_window(dir: &Path, seq: Seq, max_bytes: u64) -> std::io::Result<Option<Vec<u8>>> {
    let path = window_path(dir, seq);
    let length = match std::fs::metadata(&path) {
        Ok(meta) => meta.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    if length > max_bytes {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is {length} bytes, more than {max_bytes}",
                path.display()
            ),
        ));
    }
    std::fs::read(&path).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::segment_path;

    /// Segments starting at 1, 101, 201, 301 and snapshots at 50, 150, 250 (names are all
    /// retention reads).
    fn journal_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for first_seq in [1, 101, 201, 301] {
            std::fs::write(segment_path(dir.path(), first_seq), b"").unwrap();
        }
        for seq in [50, 150, 250] {
            write_snapshot(dir.path(), seq, b"body").unwrap();
        }
        dir
    }

    fn names(dir: &Path) -> (Vec<Seq>, Vec<Seq>) {
        let seqs = |list: Vec<(Seq, PathBuf)>| list.into_iter().map(|(seq, _)| seq).collect();
        (
            seqs(list_segments(dir).unwrap()),
            seqs(list_snapshots(dir).unwrap()),
        )
    }

    #[test]
    fn without_a_floor_only_the_kept_snapshots_count() {
        let dir = journal_dir();
        apply_retention_with_floor(dir.path(), 1, true, None).unwrap();
        assert_eq!(names(dir.path()), (vec![201, 301], vec![250]));
    }

    #[test]
    fn a_floor_keeps_its_snapshot_and_the_segments_after_it() {
        let dir = journal_dir();
        apply_retention_with_floor(dir.path(), 1, true, Some(170)).unwrap();
        // Snapshot 150 stays for the reader at 170; segment 1..=100 is covered by it.
        assert_eq!(names(dir.path()), (vec![101, 201, 301], vec![150, 250]));
        apply_retention_with_floor(dir.path(), 1, true, Some(260)).unwrap();
        assert_eq!(names(dir.path()), (vec![201, 301], vec![250]));
    }

    #[test]
    fn a_floor_below_every_snapshot_deletes_no_segment() {
        let dir = journal_dir();
        apply_retention_with_floor(dir.path(), 1, true, Some(10)).unwrap();
        assert_eq!(names(dir.path()), (vec![1, 101, 201, 301], vec![250]));
        let floor = RetentionFloor::new(10);
        floor.raise(5);
        assert_eq!(floor.get(), 10, "a floor never goes down");
        floor.clone().raise(300);
        assert_eq!(floor.get(), 300, "clones share the value");
    }

    #[test]
    fn retention_keeps_what_the_slowest_reader_needs() {
        let replica = RetentionFloor::new(0);
        let fanout = replica.sibling(0);
        replica.raise(500);
        assert_eq!(replica.get(), 0, "the fan-out has consumed nothing");
        fanout.raise(200);
        assert_eq!((replica.get(), fanout.get()), (200, 200));
        assert_eq!((replica.own(), fanout.own()), (500, 200));
        fanout.raise(900);
        assert_eq!(replica.get(), 500);
        assert_eq!(replica, fanout, "one set");
    }

    #[test]
    fn a_set_floor_moves_both_ways_and_max_holds_nothing_back() {
        let replica = RetentionFloor::new(400);
        let standbys = replica.sibling(Seq::MAX);
        assert_eq!(replica.get(), 400, "no standby holds anything back");
        standbys.set(120);
        assert_eq!(
            replica.get(),
            120,
            "a standby that joins low lowers the set"
        );
        standbys.set(Seq::MAX);
        assert_eq!(replica.get(), 400);
        let dir = journal_dir();
        apply_retention_with_floor(dir.path(), 1, true, Some(Seq::MAX)).unwrap();
        assert_eq!(
            names(dir.path()),
            (vec![201, 301], vec![250]),
            "as with no floor"
        );
    }
}
