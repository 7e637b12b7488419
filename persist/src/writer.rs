//! The journal writer: producers append framed records to a bounded in-memory queue; one writer
//! thread takes everything pending at once (group commit), writes it with one io_uring
//! submission, makes it durable with one sync, and publishes the durable sequence.
//!
//! Batch size adapts to load by construction: while one commit is in flight, new records pile up
//! and all of them go in the next commit; an idle writer wakes on the first record and commits it
//! alone at once.

use peregrine_hotpath::latency::LatencyBuckets;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use peregrine_hotpath::Envelope;

use crate::config::{AckMode, JournalConfig, WithoutStandby, WriterIdle};
use crate::error::JournalError;
use crate::io::{AlignedBuf, BLOCK_BYTES, FaultPlan, Uring, open_direct};
use crate::payload::{self, Scratch};
use crate::record::{self, PAYLOAD_MAX_BYTES};
use crate::segment::{SEGMENT_HEADER_BYTES, activate_spare, prepare_spare, segment_path};

/// A global sequence number: 1 for the first command ever, gap-free.
pub type Seq = u64;

/// Commit times kept for [`Journal::drain_commit_times`]; the oldest are dropped past it. At
/// 100 k commits/s that is 40 ms of history, far more than a reader polling it needs.
pub const COMMIT_TIMES_MAX: usize = 4_096;
/// Called on the writer thread after every commit and when the writer fails, for a waiter
/// that cannot sleep on the journal's condition variable (an async task). It must be quick and
/// must never block: the next commit waits for it.
pub type DurableWaker = Box<dyn Fn() + Send + Sync>;

/// Longest a spinning writer polls its queue before taking the lock to look for a close.
const IDLE_SPIN_SLICE: Duration = Duration::from_millis(1);

/// Where the writer resumes: the segment holding the last valid record and the offset after it,
/// as found by recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tail {
    /// First sequence of the segment to append to; `None` if there is none yet.
    pub segment_first_seq: Option<Seq>,
    /// Offset in that segment where the next record goes.
    pub offset_bytes: u64,
    /// Sequence of the last valid record (0 if none).
    pub last_seq: Seq,
    /// Term of the last valid record (0 if written without leadership), `None` when recovery
    /// read no record at the journal's end (none yet, or all covered by a snapshot whose
    /// segments retention deleted). Appends go on at this term (0 if unknown) until
    /// [`Journal::raise_term`] or a sequenced append of a newer one.
    pub last_term: Option<u64>,
}

/// Appended records waiting for the writer.
#[derive(Debug)]
struct Pending {
    /// Framed records, in sequence order; capacity fixed at `queue_bytes`.
    bytes: Vec<u8>,
    /// Sequence the next append gets.
    next_seq: Seq,
    /// Term stamped on the next append: never decreases, so a journal's terms never do.
    term: u64,
    /// Set by `shutdown`: no more appends; the writer drains and exits.
    closing: bool,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when `pending` goes from empty to non-empty, or on close.
    pending_ready: Condvar,
    /// Set (under the `pending` lock) when `pending` goes from empty to non-empty, cleared
    /// when the writer takes it: a spinning writer polls this instead of the lock.
    pending_hint: AtomicBool,
    /// `(last sequence, when it became durable)` of recent commits, oldest first, bounded by
    /// [`COMMIT_TIMES_MAX`]: the writer's own completion time, without the wake-up of whoever
    /// waits for it.
    commit_times: Mutex<VecDeque<(Seq, Instant)>>,
    /// Set at most once by [`Journal::set_durable_waker`].
    durable_waker: WakerSlot,
    /// Highest sequence whose record is durable (all before it are too).
    durable_seq: AtomicU64,
    /// Highest sequence a standby acknowledged as durable in its own journal.
    replicated_seq: AtomicU64,
    /// Standbys connected now (the shipper says).
    standbys_connected: AtomicU64,
    /// Pairs with `durable_changed` for waiters.
    durable_lock: Mutex<()>,
    durable_changed: Condvar,
    /// Set when the writer failed; `failure` says why.
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    queue_bytes: usize,
    stats: WriterStats,
}

/// The durable waker, if set; `Debug` says only whether it is.
struct WakerSlot(OnceLock<DurableWaker>);

impl std::fmt::Debug for WakerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "set"
        } else {
            "unset"
        })
    }
}

/// Counters of the writer, for reports.
#[derive(Debug)]
pub struct WriterStats {
    /// Group commits made durable.
    pub commits_count: AtomicU64,
    /// Records made durable.
    pub records_count: AtomicU64,
    /// Largest number of records in one commit.
    pub batch_records_max: AtomicU64,
    /// Appends refused with `Busy`.
    pub busy_count: AtomicU64,
    /// Writes of the durable tip (`tip`) that failed.
    pub tip_write_failures: AtomicU64,
    /// Time from taking a batch to its records being durable (write and sync), per commit.
    pub commit_latency: LatencyBuckets,
}

/// The first bound of [`WriterStats::commit_latency`]: no sync completes in under 1 µs.
pub const COMMIT_LATENCY_FIRST_NS: u64 = 1_000;

impl Default for WriterStats {
    fn default() -> Self {
        Self {
            commits_count: AtomicU64::new(0),
            records_count: AtomicU64::new(0),
            batch_records_max: AtomicU64::new(0),
            busy_count: AtomicU64::new(0),
            tip_write_failures: AtomicU64::new(0),
            commit_latency: LatencyBuckets::new(COMMIT_LATENCY_FIRST_NS),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves the data consistent (plain counters and a byte
    // queue only ever appended to or swapped out whole), so poisoning is not a reason to stop.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// Per producer thread: the serialisation buffer, reused so appends do not allocate.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::with_capacity(PAYLOAD_MAX_BYTES));
}

/// The handle producers and waiters use; cheap to clone and share between threads.
#[derive(Clone, Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    ack_mode: AckMode,
}

/// The running writer; [`JournalWriter::shutdown`] drains the queue and joins it.
#[derive(Debug)]
pub struct JournalWriter {
    journal: Journal,
    thread: Option<JoinHandle<()>>,
    /// The journal directory's lock; dropped after the writer thread is joined.
    dir_lock: Option<crate::lock::DirLock>,
    /// Keeps the durable tip; stopped after the writer thread, so its last write is the end.
    tip: Option<crate::tip::TipKeeper>,
}

impl Journal {
    /// Appends `command` and returns its sequence. Never waits for I/O: a full queue returns
    /// [`JournalError::Busy`] and appends nothing.
    pub fn append(&self, command: &Envelope) -> Result<Seq, JournalError> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            payload::encode(command, &mut scratch).map_err(JournalError::Encode)?;
            self.append_payload(&scratch)
        })
    }

    /// Appends an already serialised payload (an rkyv archive of a `Envelope`), stamped with
    /// the journal's [`term`](Journal::term).
    pub fn append_payload(&self, payload: &[u8]) -> Result<Seq, JournalError> {
        self.append_at(None, payload)
    }

    /// Appends a payload that another journal already sequenced as `seq` under `term` (a
    /// standby copying its primary's records): it must be exactly the next sequence, of a term
    /// no older than the journal's. A gap ([`JournalError::SequenceGap`]), a sequence already
    /// held ([`JournalError::SequenceBehind`]) or an older term ([`JournalError::StaleTerm`]:
    /// a deposed primary's record) is refused and nothing is appended, so the copy stays
    /// gap-free, in the primary's order, and fenced. A newer term raises the journal's. The
    /// caller checks that `payload` decodes.
    pub fn append_sequenced(
        &self,
        seq: Seq,
        term: u64,
        payload: &[u8],
    ) -> Result<Seq, JournalError> {
        self.append_at(Some((seq, term)), payload)
    }

    /// The term the next append is stamped with: the newest of the last recovered record's and
    /// every [`raise_term`](Journal::raise_term) or sequenced append since.
    pub fn term(&self) -> u64 {
        lock(&self.shared.pending).term
    }

    /// Stamps every later append with `term` if it is newer than the journal's (a primary that
    /// took the leadership of `term`); an older one changes nothing, so terms never decrease
    /// along the journal. Returns the journal's term after the call.
    pub fn raise_term(&self, term: u64) -> u64 {
        let mut pending = lock(&self.shared.pending);
        pending.term = pending.term.max(term);
        pending.term
    }

    /// Appends `payload` at the next sequence, which must equal `expected`'s when given, of a
    /// term no older than the journal's.
    fn append_at(&self, expected: Option<(Seq, u64)>, payload: &[u8]) -> Result<Seq, JournalError> {
        if payload.is_empty() || payload.len() > PAYLOAD_MAX_BYTES {
            return Err(JournalError::TooLarge(payload.len()));
        }
        let record_bytes = record::record_bytes(payload.len());
        let mut pending = lock(&self.shared.pending);
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(JournalError::WriterFailed(self.failure()));
        }
        if pending.closing {
            return Err(JournalError::Closed);
        }
        let queued_bytes = pending.bytes.len();
        if queued_bytes + record_bytes > self.shared.queue_bytes {
            self.shared.stats.busy_count.fetch_add(1, Ordering::Relaxed);
            return Err(JournalError::Busy {
                queued_bytes,
                queue_bytes: self.shared.queue_bytes,
            });
        }
        let seq = pending.next_seq;
        match expected {
            Some((got, _)) if got > seq => {
                return Err(JournalError::SequenceGap { expected: seq, got });
            }
            Some((got, _)) if got < seq => {
                return Err(JournalError::SequenceBehind { expected: seq, got });
            }
            Some((_, term)) if term < pending.term => {
                return Err(JournalError::StaleTerm {
                    seq,
                    term,
                    newest: pending.term,
                });
            }
            Some((_, term)) => pending.term = term,
            None => {}
        }
        pending.next_seq += 1;
        let term = pending.term;
        record::encode(&mut pending.bytes, seq, term, payload);
        // The queue never reallocates: the bound above keeps it within its capacity.
        assert!(pending.bytes.len() <= pending.bytes.capacity());
        let was_empty = queued_bytes == 0;
        if was_empty {
            self.shared.pending_hint.store(true, Ordering::Release);
        }
        drop(pending);
        if was_empty {
            self.shared.pending_ready.notify_one();
        }
        Ok(seq)
    }

    /// Highest durable sequence (every sequence up to it is durable).
    pub fn durable_seq(&self) -> Seq {
        self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// The last sequence handed out.
    pub fn appended_seq(&self) -> Seq {
        lock(&self.shared.pending).next_seq - 1
    }

    /// The configured acknowledgement mode.
    pub fn ack_mode(&self) -> AckMode {
        self.ack_mode
    }

    /// Whether the effects of command `seq` may leave now under the ack mode.
    pub fn is_ackable(&self, seq: Seq) -> bool {
        self.ackable_seq() >= seq
    }

    /// The highest sequence whose effects may leave now under the ack mode.
    pub fn ackable_seq(&self) -> Seq {
        match self.ack_mode {
            AckMode::Fast => Seq::MAX,
            AckMode::Durable => self.durable_seq(),
            AckMode::Replicated(WithoutStandby::Degrade)
                if self.shared.standbys_connected.load(Ordering::Acquire) == 0 =>
            {
                self.durable_seq()
            }
            AckMode::Replicated(_) => self.durable_seq().min(self.replicated_seq()),
        }
    }

    /// Highest sequence a standby acknowledged as durable in its own journal.
    pub fn replicated_seq(&self) -> Seq {
        self.shared.replicated_seq.load(Ordering::Acquire)
    }

    /// Records that a standby made every record up to `seq` durable (the shipper calls it on
    /// each acknowledgement); wakes whoever waits for acknowledgeable records.
    pub fn note_replicated(&self, seq: Seq) {
        let before = self.shared.replicated_seq.fetch_max(seq, Ordering::AcqRel);
        if seq > before {
            self.wake_waiters();
        }
    }

    /// Records how many standbys are connected (the shipper calls it as they come and go): with
    /// none, `replicated` degrades or holds per [`WithoutStandby`].
    pub fn set_standbys_connected(&self, standbys: u64) {
        self.shared
            .standbys_connected
            .store(standbys, Ordering::Release);
        self.wake_waiters();
    }

    fn wake_waiters(&self) {
        {
            let _guard = lock(&self.shared.durable_lock);
            self.shared.durable_changed.notify_all();
        }
        if let Some(wake) = self.shared.durable_waker.0.get() {
            wake();
        }
    }

    /// Waits until `seq` is acknowledgeable under the ack mode or `timeout` passes; returns the
    /// acknowledgeable sequence then (below `seq` on timeout). Fails if the writer failed.
    pub fn wait_ackable(&self, seq: Seq, timeout: Duration) -> Result<Seq, JournalError> {
        self.wait_watermark(seq, timeout, Journal::ackable_seq)
    }

    /// Waits until `seq` is durable or `timeout` passes; returns the durable sequence then
    /// (which is below `seq` on timeout). Fails if the writer failed.
    pub fn wait_durable(&self, seq: Seq, timeout: Duration) -> Result<Seq, JournalError> {
        self.wait_watermark(seq, timeout, Journal::durable_seq)
    }

    /// Waits until `watermark` reaches `seq` or `timeout` passes; returns it then. Every change
    /// of a watermark (a commit, a standby's acknowledgement) notifies `durable_changed`.
    fn wait_watermark(
        &self,
        seq: Seq,
        timeout: Duration,
        watermark: fn(&Journal) -> Seq,
    ) -> Result<Seq, JournalError> {
        let deadline = Instant::now() + timeout;
        let mut guard = lock(&self.shared.durable_lock);
        // Bounded by the deadline: each pass waits until it or until woken.
        loop {
            if self.shared.failed.load(Ordering::Acquire) {
                return Err(JournalError::WriterFailed(self.failure()));
            }
            let reached = watermark(self);
            let now = Instant::now();
            if reached >= seq || now >= deadline {
                return Ok(reached);
            }
            guard = self
                .shared
                .durable_changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until the durable sequence moves past `seen` or `timeout` passes; returns it. For a
    /// gateway thread that releases acknowledgements as the watermark moves.
    pub fn wait_durable_after(&self, seen: Seq, timeout: Duration) -> Result<Seq, JournalError> {
        self.wait_durable(seen.saturating_add(1), timeout)
    }

    /// Moves the recorded commit times (`(last sequence, durable at)`, oldest first) into `out`.
    /// Only the newest [`COMMIT_TIMES_MAX`] are kept between calls.
    pub fn drain_commit_times(&self, out: &mut Vec<(Seq, Instant)>) {
        out.extend(lock(&self.shared.commit_times).drain(..));
    }

    /// Has the writer call `waker` after every commit (and once if it fails), from then on.
    /// One waker per journal: a second is handed back.
    pub fn set_durable_waker(&self, waker: DurableWaker) -> Result<(), DurableWaker> {
        self.shared.durable_waker.0.set(waker)
    }

    /// Writer counters.
    pub fn stats(&self) -> &WriterStats {
        &self.shared.stats
    }

    /// Why the writer stopped, if it failed (readiness checks report it).
    pub fn failed(&self) -> Option<String> {
        self.shared
            .failed
            .load(Ordering::Acquire)
            .then(|| self.failure())
    }

    fn failure(&self) -> String {
        lock(&self.shared.failure)
            .clone()
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

impl JournalWriter {
    /// Starts the writer at `tail` (from recovery).
    pub fn start(config: &JournalConfig, tail: &Tail) -> Result<JournalWriter, JournalError> {
        JournalWriter::start_with(config, tail, None)
    }

    /// [`JournalWriter::start`] with a ring that injects `faults`: for tests of how the writer
    /// meets a failing disk.
    pub fn start_with_faults(
        config: &JournalConfig,
        tail: &Tail,
        faults: FaultPlan,
    ) -> Result<JournalWriter, JournalError> {
        JournalWriter::start_with(config, tail, Some(faults))
    }

    fn start_with(
        config: &JournalConfig,
        tail: &Tail,
        faults: Option<FaultPlan>,
    ) -> Result<JournalWriter, JournalError> {
        config.validate()?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                bytes: Vec::with_capacity(config.queue_bytes),
                next_seq: tail.last_seq.saturating_add(1),
                term: tail.last_term.unwrap_or(0),
                closing: false,
            }),
            pending_ready: Condvar::new(),
            pending_hint: AtomicBool::new(false),
            commit_times: Mutex::new(VecDeque::with_capacity(COMMIT_TIMES_MAX)),
            durable_waker: WakerSlot(OnceLock::new()),
            durable_seq: AtomicU64::new(tail.last_seq),
            replicated_seq: AtomicU64::new(0),
            standbys_connected: AtomicU64::new(0),
            durable_lock: Mutex::new(()),
            durable_changed: Condvar::new(),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            queue_bytes: config.queue_bytes,
            stats: WriterStats::default(),
        });
        let mut state = WriterState::open(config, tail, faults)?;
        let thread_shared = Arc::clone(&shared);
        let writer_nice = config.writer_nice;
        let writer_core = config.writer_core;
        let thread = std::thread::Builder::new()
            .name("journal-writer".to_owned())
            .spawn(move || {
                if let Some(id) = writer_core {
                    // Best effort, like the shard's pinning: a core that does not exist leaves
                    // the thread where the OS put it.
                    let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
                }
                if let Some(nice) = writer_nice {
                    // SAFETY: plain syscalls on the calling thread. Best effort: without the
                    // privilege the writer keeps the default priority.
                    unsafe {
                        let tid = libc::gettid();
                        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
                    }
                }
                if let Err(error) = state.run(&thread_shared) {
                    *lock(&thread_shared.failure) = Some(error.to_string());
                    thread_shared.failed.store(true, Ordering::Release);
                    {
                        let _guard = lock(&thread_shared.durable_lock);
                        thread_shared.durable_changed.notify_all();
                    }
                    if let Some(wake) = thread_shared.durable_waker.0.get() {
                        wake();
                    }
                }
                // The kernel may still read the state's buffer: leak it rather than free it.
                if state.ring.is_abandoned() {
                    state.leak();
                }
            })
            .map_err(|source| JournalError::Io {
                path: config.dir.clone(),
                source,
            })?;
        let journal = Journal {
            shared,
            ack_mode: config.ack_mode,
        };
        let tip = crate::tip::TipKeeper::start(&config.dir, journal.clone(), tail.last_seq)
            .map_err(|source| JournalError::Io {
                path: config.dir.join(crate::tip::TIP_FILE),
                source,
            })?;
        Ok(JournalWriter {
            journal,
            thread: Some(thread),
            dir_lock: None,
            tip: Some(tip),
        })
    }

    /// Keeps `lock` (the journal directory's) until the writer is shut down or dropped.
    pub fn hold_lock(&mut self, lock: crate::lock::DirLock) {
        self.dir_lock = Some(lock);
    }

    /// The handle for producers and waiters.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Refuses further appends, makes everything appended durable, and stops the writer.
    /// Returns the final durable sequence.
    pub fn shutdown(mut self) -> Result<Seq, JournalError> {
        self.close();
        let journal = self.journal.clone();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            return Err(JournalError::WriterFailed(
                "writer thread panicked".to_owned(),
            ));
        }
        if let Some(mut tip) = self.tip.take() {
            tip.stop();
        }
        if journal.shared.failed.load(Ordering::Acquire) {
            return Err(JournalError::WriterFailed(journal.failure()));
        }
        Ok(journal.durable_seq())
    }

    fn close(&self) {
        lock(&self.journal.shared.pending).closing = true;
        self.journal.shared.pending_ready.notify_one();
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.close();
        if let Some(thread) = self.thread.take() {
            // The writer drains and exits on close; its outcome is in `shared` for anyone still
            // holding a `Journal`.
            let _ = thread.join();
        }
        if let Some(mut tip) = self.tip.take() {
            tip.stop();
        }
    }
}

/// The writer thread's own state: the open segment and the aligned buffer mirroring the file
/// from the last block boundary at or before the end of the written data.
struct WriterState {
    dir: PathBuf,
    idle: WriterIdle,
    segment_bytes: u64,
    sync_method: crate::io::SyncMethod,
    file: File,
    /// The open segment's path, for errors.
    path: PathBuf,
    /// File offset of `buf`'s first byte; a multiple of `BLOCK_BYTES`.
    buf_file_offset: u64,
    /// Bytes of `buf` holding records; everything after them in `buf` is zero.
    buf_len: usize,
    buf: AlignedBuf,
    /// The batch taken from the queue, swapped with `Pending::bytes` (both preallocated).
    batch: Vec<u8>,
    ring: Uring,
    /// Asks the helper thread to build the next spare segment.
    spare_requests: Option<SyncSender<()>>,
    /// The helper thread, joined when the writer exits: nothing may still be writing into the
    /// journal directory once `shutdown` returns (recovery and `replay` list it right after).
    spare_thread: Option<JoinHandle<()>>,
}

impl WriterState {
    fn open(
        config: &JournalConfig,
        tail: &Tail,
        faults: Option<FaultPlan>,
    ) -> Result<WriterState, JournalError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io { path, source }
        };
        let dir = config.dir.clone();
        let first_seq = tail
            .segment_first_seq
            .unwrap_or(tail.last_seq.saturating_add(1));
        let path = segment_path(&dir, first_seq);
        let (file, offset) = match tail.segment_first_seq {
            Some(_) => {
                let file = open_direct(&path, false).map_err(io_error(&path))?;
                // Whatever recovery wrote (a truncated tail) is durable before we append.
                file.sync_all().map_err(io_error(&path))?;
                (file, tail.offset_bytes)
            }
            None => (
                activate_spare(&dir, first_seq, config.segment_bytes).map_err(io_error(&path))?,
                SEGMENT_HEADER_BYTES as u64,
            ),
        };
        let mut buf = AlignedBuf::new(config.queue_bytes + 2 * BLOCK_BYTES);
        let buf_file_offset = offset / BLOCK_BYTES as u64 * BLOCK_BYTES as u64;
        let buf_len = (offset - buf_file_offset) as usize;
        if buf_len > 0 {
            // The partial last block is rewritten whole by the next commit: load it.
            file.read_exact_at(&mut buf.bytes_mut()[..BLOCK_BYTES], buf_file_offset)
                .map_err(io_error(&path))?;
            // Recovery zeroed everything after the last valid record; anything else means the
            // file changed under us, which is refused rather than overwritten.
            if buf.bytes()[buf_len..BLOCK_BYTES].iter().any(|&b| b != 0) {
                return Err(JournalError::Io {
                    path,
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("bytes after the recovered tail (byte {offset}) are not zero"),
                    ),
                });
            }
        }
        let (sender, receiver) = sync_channel::<()>(1);
        let spare_dir = dir.clone();
        let segment_bytes = config.segment_bytes;
        let spare_thread = std::thread::Builder::new()
            .name("journal-spare".to_owned())
            .spawn(move || spare_builder(&spare_dir, segment_bytes, &receiver))
            .ok();
        let spare_requests = spare_thread.as_ref().map(|_| sender);
        let state = WriterState {
            dir,
            idle: config.writer_idle,
            segment_bytes: config.segment_bytes,
            sync_method: config.sync_method,
            file,
            path,
            buf_file_offset,
            buf_len,
            buf,
            batch: Vec::with_capacity(config.queue_bytes),
            ring: Uring::with_faults(config.writer_idle == WriterIdle::Spin, faults)
                .map_err(io_error(&config.dir))?,
            spare_requests,
            spare_thread,
        };
        state.request_spare();
        Ok(state)
    }

    fn request_spare(&self) {
        if let Some(requests) = &self.spare_requests {
            match requests.try_send(()) {
                // Full: a request is already queued. Disconnected: the helper could not start;
                // rotation then builds the spare inline.
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }

    fn run(&mut self, shared: &Shared) -> Result<(), JournalError> {
        // Bounded by the queue: each pass takes at least one record or exits on close.
        loop {
            if !self.take_batch(shared) {
                return Ok(());
            }
            let taken_at = Instant::now();
            let (last_seq, records) = self.commit_batch()?;
            let durable_at = Instant::now();
            let stats = &shared.stats;
            let commit_ns = durable_at.saturating_duration_since(taken_at).as_nanos();
            stats
                .commit_latency
                .record(u64::try_from(commit_ns).unwrap_or(u64::MAX));
            stats.commits_count.fetch_add(1, Ordering::Relaxed);
            stats.records_count.fetch_add(records, Ordering::Relaxed);
            stats
                .batch_records_max
                .fetch_max(records, Ordering::Relaxed);
            let previous = shared.durable_seq.swap(last_seq, Ordering::AcqRel);
            assert!(previous < last_seq, "durable sequence must only grow");
            {
                let mut times = lock(&shared.commit_times);
                if times.len() == COMMIT_TIMES_MAX {
                    times.pop_front();
                }
                times.push_back((last_seq, durable_at));
                assert!(times.len() <= COMMIT_TIMES_MAX, "preallocated, never grows");
            }
            {
                let _guard = lock(&shared.durable_lock);
                shared.durable_changed.notify_all();
            }
            if let Some(wake) = shared.durable_waker.0.get() {
                wake();
            }
        }
    }

    /// Waits for appended records and swaps them into `self.batch`; false once the journal is
    /// closing and everything appended has been taken.
    fn take_batch(&mut self, shared: &Shared) -> bool {
        // Bounded: each pass takes the batch, returns on close, or waits (parked until
        // signalled, or spinning for at most one slice before looking for a close).
        loop {
            if self.idle == WriterIdle::Spin {
                let slice_end = Instant::now() + IDLE_SPIN_SLICE;
                while !shared.pending_hint.load(Ordering::Acquire) && Instant::now() < slice_end {
                    // Yielding keeps kernel work bound to this core (write completions) running.
                    std::thread::yield_now();
                }
            }
            let pending = lock(&shared.pending);
            if !pending.bytes.is_empty() {
                let mut pending = pending;
                assert!(self.batch.is_empty());
                std::mem::swap(&mut pending.bytes, &mut self.batch);
                shared.pending_hint.store(false, Ordering::Release);
                return true;
            }
            if pending.closing {
                return false;
            }
            if self.idle == WriterIdle::Park {
                // Woken by the append that makes the queue non-empty, or by close.
                drop(
                    shared
                        .pending_ready
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner),
                );
            }
        }
    }

    /// Writes `self.batch` durably; returns its last sequence and record count.
    fn commit_batch(&mut self) -> Result<(Seq, u64), JournalError> {
        let mut at = 0_usize;
        let mut last_seq = 0;
        let mut records = 0_u64;
        let batch = std::mem::take(&mut self.batch);
        // Bounded by the batch's length: each pass consumes one record.
        while at < batch.len() {
            let rest = &batch[at..];
            let size = record::encoded_record_bytes(rest);
            let mut seq_le = [0_u8; 8];
            // Bytes 8..16 hold the sequence in every record format.
            seq_le.copy_from_slice(&rest[8..16]);
            let seq = u64::from_le_bytes(seq_le);
            assert!(
                last_seq == 0 || seq == last_seq + 1,
                "queue holds gap-free records"
            );
            let segment_offset = self.buf_file_offset + self.buf_len as u64;
            if segment_offset + size as u64 > self.segment_bytes {
                self.flush()?;
                self.rotate(seq)?;
            }
            if self.buf_len + size > self.buf.capacity_bytes() {
                self.flush()?;
            }
            self.buf.bytes_mut()[self.buf_len..self.buf_len + size].copy_from_slice(&rest[..size]);
            self.buf_len += size;
            at += size;
            last_seq = seq;
            records += 1;
        }
        self.flush()?;
        self.batch = batch;
        self.batch.clear();
        assert!(records > 0);
        Ok((last_seq, records))
    }

    /// Writes the buffer's blocks durably, then keeps only the partial last block (rewritten
    /// whole next time; its already-durable bytes are rewritten identical, so a torn rewrite
    /// cannot damage them).
    fn flush(&mut self) -> Result<(), JournalError> {
        if self.buf_len == 0 {
            return Ok(());
        }
        let write_bytes = self.buf_len.next_multiple_of(BLOCK_BYTES);
        self.ring
            .write_durable(
                &self.file,
                &self.buf.bytes()[..write_bytes],
                self.buf_file_offset,
                self.sync_method,
            )
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source: source.into(),
            })?;
        let full_bytes = self.buf_len / BLOCK_BYTES * BLOCK_BYTES;
        if full_bytes > 0 {
            let tail_bytes = self.buf_len - full_bytes;
            let bytes = self.buf.bytes_mut();
            bytes.copy_within(full_bytes..self.buf_len, 0);
            bytes[tail_bytes..write_bytes].fill(0);
            self.buf_file_offset += full_bytes as u64;
            self.buf_len = tail_bytes;
        }
        Ok(())
    }

    /// Closes the full segment and starts the next at `first_seq`. The old one is durable
    /// (flushed before); the rest of it stays zero, which readers take as its end.
    fn rotate(&mut self, first_seq: Seq) -> Result<(), JournalError> {
        let write_bytes = self.buf_len.next_multiple_of(BLOCK_BYTES);
        self.buf.bytes_mut()[..write_bytes].fill(0);
        self.buf_len = 0;
        self.buf_file_offset = SEGMENT_HEADER_BYTES as u64;
        self.path = segment_path(&self.dir, first_seq);
        self.file = activate_spare(&self.dir, first_seq, self.segment_bytes).map_err(|source| {
            JournalError::Io {
                path: self.path.clone(),
                source,
            }
        })?;
        self.request_spare();
        Ok(())
    }

    /// Ends the writer without freeing what the ring's abandoned write may still be reading
    /// ([`crate::io::WriteError::Abandoned`]): the aligned buffer is leaked, and the ring, file
    /// and batch with it, a one-time cost of a fatal failure. The spare helper is still
    /// stopped, so nothing writes into the directory once `shutdown` returns.
    fn leak(mut self) {
        assert!(
            self.ring.is_abandoned(),
            "only what the kernel may read is leaked"
        );
        self.stop_spare();
        std::mem::forget(self);
    }

    fn stop_spare(&mut self) {
        // Dropping the sender ends the helper's loop after the spare it is building, if any.
        self.spare_requests = None;
        if let Some(thread) = self.spare_thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for WriterState {
    fn drop(&mut self) {
        self.stop_spare();
    }
}

/// The spare-segment helper: builds one spare per request, ahead of rotation. Exits when the
/// writer drops its sender. An error leaves no spare; rotation then builds one inline.
fn spare_builder(dir: &Path, segment_bytes: u64, requests: &Receiver<()>) {
    while requests.recv().is_ok() {
        let ready = std::fs::metadata(dir.join(crate::segment::SPARE_NAME))
            .is_ok_and(|meta| meta.len() == segment_bytes);
        if !ready {
            let _ = prepare_spare(dir, segment_bytes, "helper");
        }
    }
}
