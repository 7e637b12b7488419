//! The thread-per-core runtime: an engine shard on its own thread, pinned to a core, fed by a
//! bounded lock-free queue, emitting events into a bounded queue. The engine stays a pure state
//! machine; this module is the only part of the crate that touches threads.
//!
//! Events leave in batches (one queue operation per batch, not per event): the shard hands a
//! batch over once it holds `OUTPUT_BATCH_ITEMS` items or its input queue is empty, so a lone
//! command is never held back. The consumer returns empty batches for reuse, so the steady
//! state allocates nothing.
//!
//! Back-pressure, not blocking: a full input queue returns `Busy` to the caller at once; a full
//! output queue makes the shard stop taking input (so callers see `Busy`) until its consumer
//! catches up. Nothing is ever dropped. Between commands the shard also answers queries and
//! snapshot requests, so readers see a state that is consistent with a command boundary.
//!
//! Commands and queries arrive on two bounded queues, polled alternately: a query never takes a
//! command's slot, so a sequencer that is the only producer of the command queue and finds room
//! in it (`input_full` is `false`) knows its next `submit` succeeds, whatever readers do.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError, TrySendError, bounded};

use crate::command::Envelope;
use crate::engine::Engine;
use crate::event::Event;
use crate::latency::LatencyBuckets;

/// What a shard thread does when it has nothing to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdlePolicy {
    /// Poll without pause: lowest latency, one core fully used. For pinned, isolated cores.
    Spin,
    /// Poll `spins` times, then sleep on the queue for at most `park_us`: frees the core when
    /// idle at the cost of a wake-up on the next command. For shared machines and laptops.
    Park {
        /// Polls before parking.
        spins: u32,
        /// Longest park, in microseconds (the shard re-checks its stop flag at least this often).
        park_us: u64,
    },
}

/// How a shard runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardConfig {
    /// Core to pin the shard thread to; `None` leaves placement to the OS.
    pub core: Option<usize>,
    /// Idle behaviour.
    pub idle: IdlePolicy,
    /// Commands waiting for the shard, at most.
    pub input_capacity: usize,
    /// Queries waiting for the shard, at most (a queue of their own: they never take a
    /// command's room).
    pub query_capacity: usize,
    /// Events waiting for the consumer, at most.
    pub output_capacity: usize,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            core: None,
            idle: IdlePolicy::Park {
                spins: 10_000,
                park_us: 1_000,
            },
            input_capacity: 65_536,
            query_capacity: 1_024,
            output_capacity: 262_144,
        }
    }
}

/// Why the runtime could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The requested core does not exist (or this process may not use it).
    #[error("core {core} is not available to this process (available: {available:?})")]
    NoSuchCore {
        /// Requested.
        core: usize,
        /// What the OS offers.
        available: Vec<usize>,
    },
    /// Pinning failed.
    #[error("could not pin the shard thread to core {0}")]
    PinFailed(usize),
    /// A capacity of zero.
    #[error("queue capacities must be positive")]
    ZeroCapacity,
    /// The OS refused a thread.
    #[error("could not spawn the shard thread: {0}")]
    Spawn(std::io::Error),
    /// The shard thread panicked (a broken engine invariant).
    #[error("the shard thread panicked")]
    ShardPanicked,
    /// The shard is gone (stopped or panicked).
    #[error("the shard is not running")]
    Stopped,
}

/// The input queue is full (or the shard is stopping): try again later. Carries the command back.
#[derive(Debug)]
pub struct Busy(pub Envelope);

/// The query queue is full (or the shard is stopping): try again later. Carries the query back.
pub struct QueryBusy(pub Query);

impl std::fmt::Debug for QueryBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueryBusy")
    }
}

/// One item on the output queue.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// An event of the command with sequence `seq`.
    Event {
        /// The command's sequence.
        seq: u64,
        /// The event.
        event: Event,
    },
    /// All events of command `seq` were emitted.
    Done {
        /// The command's sequence.
        seq: u64,
    },
}

/// Items in one output batch before it is handed over even if more input waits.
pub const OUTPUT_BATCH_ITEMS: usize = 512;

/// Called on the shard thread each time a batch of outputs is handed over, for a consumer that
/// waits where a channel cannot wake it (an async task). It runs on the shard's core between
/// commands, so it must be quick and must never block.
pub type OutputWaker = Box<dyn Fn() + Send + Sync>;

/// The consumer's end of a shard's output: yields items in order and recycles batches.
pub struct Outputs {
    batches: Receiver<Vec<Output>>,
    recycle: Sender<Vec<Output>>,
    /// Shared with the shard thread; set at most once, then read without a lock.
    waker: Arc<OnceLock<OutputWaker>>,
    /// The batch being read, reversed so that `pop` yields items in order.
    current: Vec<Output>,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("batches_queued", &self.batches.len())
            .field("current_items", &self.current.len())
            .field("waker_set", &self.waker.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Outputs {
    /// Has the shard call `waker` after every batch it hands over, from then on. Only one
    /// waker per shard: a second is handed back.
    pub fn set_waker(&self, waker: OutputWaker) -> Result<(), OutputWaker> {
        self.waker.set(waker)
    }

    /// The next item if one is ready.
    pub fn try_next(&mut self) -> Option<Output> {
        if self.current.is_empty() {
            let batch = self.batches.try_recv().ok()?;
            self.load(batch);
        }
        self.current.pop()
    }

    /// The next item, waiting until `deadline` at most.
    pub fn next_deadline(&mut self, deadline: std::time::Instant) -> Option<Output> {
        if self.current.is_empty() {
            let batch = self.batches.recv_deadline(deadline).ok()?;
            self.load(batch);
        }
        self.current.pop()
    }

    fn load(&mut self, mut batch: Vec<Output>) {
        debug_assert!(self.current.is_empty());
        batch.reverse();
        let empty = std::mem::replace(&mut self.current, batch);
        // The recycle queue is as large as the batch queue; if it is full the buffer is freed.
        let _ = self.recycle.try_send(empty);
    }
}

/// A query run on the shard thread between two commands.
pub type Query = Box<dyn FnOnce(&Engine) + Send>;

/// A sequenced command on its way to the shard.
struct Input {
    seq: u64,
    command: Envelope,
}

/// One command in this many (by sequence) is timed into [`ShardStats::apply_latency`]: two
/// clock reads per command would cost more than a tenth of an apply; one in 64 costs a mask
/// test, and still gives thousands of samples a second under load.
pub const APPLY_SAMPLE_EVERY: u64 = 64;
/// The first bound of [`ShardStats::apply_latency`] (a command applies in about 100 ns).
pub const APPLY_LATENCY_FIRST_NS: u64 = 64;

const _: () = assert!(APPLY_SAMPLE_EVERY.is_power_of_two());

/// Counters a metrics exporter reads.
#[derive(Debug)]
pub struct ShardStats {
    /// Commands applied.
    pub commands_total: AtomicU64,
    /// Events emitted.
    pub events_total: AtomicU64,
    /// Submissions refused with `Busy`.
    pub busy_total: AtomicU64,
    /// Times the shard waited for room on the output queue.
    pub output_full_total: AtomicU64,
    /// Sequence of the last command applied.
    pub last_seq: AtomicU64,
    /// `Engine::apply` of every [`APPLY_SAMPLE_EVERY`]th command (by sequence), ns.
    pub apply_latency: LatencyBuckets,
}

impl Default for ShardStats {
    fn default() -> Self {
        Self {
            commands_total: AtomicU64::new(0),
            events_total: AtomicU64::new(0),
            busy_total: AtomicU64::new(0),
            output_full_total: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
            apply_latency: LatencyBuckets::new(APPLY_LATENCY_FIRST_NS),
        }
    }
}

/// A running shard.
#[derive(Debug)]
pub struct Shard {
    input: Sender<Input>,
    queries: Sender<Query>,
    outputs: Option<Outputs>,
    stop: Arc<AtomicBool>,
    stats: Arc<ShardStats>,
    thread: Option<JoinHandle<Engine>>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Command({})", self.seq)
    }
}

impl Shard {
    /// Starts a shard thread that owns `engine`, a fresh engine (no command applied yet).
    pub fn start(engine: Engine, config: &ShardConfig) -> Result<Shard, RuntimeError> {
        Shard::start_at(engine, 0, config)
    }

    /// Starts a shard thread that owns `engine`, which has applied every command up to
    /// `applied_seq` (a recovered engine): the next command must have a higher sequence.
    pub fn start_at(
        engine: Engine,
        applied_seq: u64,
        config: &ShardConfig,
    ) -> Result<Shard, RuntimeError> {
        if config.input_capacity == 0 || config.query_capacity == 0 || config.output_capacity == 0 {
            return Err(RuntimeError::ZeroCapacity);
        }
        let core = match config.core {
            None => None,
            Some(core) => {
                let available: Vec<usize> = core_affinity::get_core_ids()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| c.id)
                    .collect();
                if !available.contains(&core) {
                    return Err(RuntimeError::NoSuchCore { core, available });
                }
                Some(core)
            }
        };
        let (input_tx, input_rx) = bounded(config.input_capacity);
        let (query_tx, query_rx) = bounded(config.query_capacity);
        // Capacity in batches; at least two so the shard can fill one while one is read.
        let batches = config.output_capacity.div_ceil(OUTPUT_BATCH_ITEMS).max(2);
        let (output_tx, output_rx) = bounded(batches);
        let (recycle_tx, recycle_rx) = bounded(batches + 2);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ShardStats::default());
        stats.last_seq.store(applied_seq, Ordering::Release);
        let (pinned_tx, pinned_rx) = bounded::<bool>(1);
        let waker: Arc<OnceLock<OutputWaker>> = Arc::new(OnceLock::new());
        let worker = Worker {
            waker: Arc::clone(&waker),
            engine,
            input: input_rx,
            queries: query_rx,
            output: output_tx,
            recycle: recycle_rx,
            batch: Vec::with_capacity(OUTPUT_BATCH_ITEMS),
            stop: stop.clone(),
            stats: stats.clone(),
            idle: config.idle,
            applied_seq,
        };
        let thread = std::thread::Builder::new()
            .name("peregrine-shard".into())
            .spawn(move || {
                let pinned = core
                    .is_none_or(|id| core_affinity::set_for_current(core_affinity::CoreId { id }));
                let _ = pinned_tx.send(pinned);
                if !pinned {
                    return worker.engine;
                }
                worker.run()
            })
            .map_err(RuntimeError::Spawn)?;
        let mut shard = Shard {
            input: input_tx,
            queries: query_tx,
            outputs: Some(Outputs {
                batches: output_rx,
                recycle: recycle_tx,
                waker,
                current: Vec::new(),
            }),
            stop,
            stats,
            thread: Some(thread),
        };
        if pinned_rx.recv() != Ok(true) {
            let _ = shard.join();
            return Err(RuntimeError::PinFailed(core.unwrap_or_default()));
        }
        Ok(shard)
    }

    /// Queues a command; `Busy` if the queue is full. `seq` must increase with every call (the
    /// caller is the sequencer); the shard checks it.
    pub fn submit(&self, seq: u64, command: Envelope) -> Result<(), Busy> {
        match self.input.try_send(Input { seq, command }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(input) | TrySendError::Disconnected(input)) => {
                self.stats.busy_total.fetch_add(1, Ordering::Relaxed);
                Err(Busy(input.command))
            }
        }
    }

    /// Whether the command queue is full now (a submit would be `Busy`). Queries have a queue of
    /// their own, so for a caller that is the command queue's only producer `false` means its
    /// next submit finds room: the shard only ever takes commands out.
    pub fn input_full(&self) -> bool {
        self.input.is_full()
    }

    /// Queues `query` to run on the shard thread between two commands, without waiting:
    /// `QueryBusy` (the query handed back) if the query queue is full or the shard is gone.
    /// The query reports its own answer (e.g. through a channel it captured).
    pub fn try_query(&self, query: Query) -> Result<(), QueryBusy> {
        match self.queries.try_send(query) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(query) | TrySendError::Disconnected(query)) => {
                Err(QueryBusy(query))
            }
        }
    }

    /// Runs `query` on the shard thread between two commands and returns its answer, blocking
    /// the calling thread for at most `timeout` (the query queue may be full or the shard
    /// busy). For threads that may block; async callers use [`Shard::try_query`].
    pub fn query<T: Send + 'static>(
        &self,
        timeout: Duration,
        query: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Result<T, RuntimeError> {
        let (tx, rx) = bounded(1);
        let boxed: Query = Box::new(move |engine| {
            let _ = tx.send(query(engine));
        });
        self.queries
            .send_timeout(boxed, timeout)
            .map_err(|_| RuntimeError::Stopped)?;
        rx.recv_timeout(timeout).map_err(|_| RuntimeError::Stopped)
    }

    /// The output queue's consumer end; there is one, so the first call takes it.
    pub fn take_outputs(&mut self) -> Option<Outputs> {
        self.outputs.take()
    }

    /// The shard's counters.
    pub fn stats(&self) -> &Arc<ShardStats> {
        &self.stats
    }

    /// Stops after the commands already queued are applied, and returns the engine.
    pub fn stop(mut self) -> Result<Engine, RuntimeError> {
        self.join()
    }

    fn join(&mut self) -> Result<Engine, RuntimeError> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            None => Err(RuntimeError::Stopped),
            Some(thread) => thread.join().map_err(|_| RuntimeError::ShardPanicked),
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

struct Worker {
    engine: Engine,
    input: Receiver<Input>,
    queries: Receiver<Query>,
    output: Sender<Vec<Output>>,
    recycle: Receiver<Vec<Output>>,
    batch: Vec<Output>,
    stop: Arc<AtomicBool>,
    stats: Arc<ShardStats>,
    idle: IdlePolicy,
    /// The sequence the engine had applied at start.
    applied_seq: u64,
    /// The consumer's waker, if it set one (see [`Outputs::set_waker`]).
    waker: Arc<OnceLock<OutputWaker>>,
}

impl Worker {
    fn run(mut self) -> Engine {
        // Allocated once: the events of one command (grows only for a rare huge sweep).
        let mut events: Vec<Event> = Vec::with_capacity(4_096);
        let mut last_seq = self.applied_seq;
        let mut idle_polls = 0u32;
        loop {
            // One query per command at most, so neither queue starves the other.
            let query = self.queries.try_recv().ok();
            let queried = query.is_some();
            if let Some(query) = query {
                query(&self.engine);
            }
            match self.input.try_recv() {
                Ok(Input { seq, command }) => {
                    idle_polls = 0;
                    assert!(
                        seq > last_seq,
                        "command sequence went backwards: {seq} after {last_seq}"
                    );
                    last_seq = seq;
                    self.apply(seq, &command, &mut events);
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) if queried => idle_polls = 0,
                Err(TryRecvError::Empty) => {
                    // Nothing waiting: hand over what is batched so no event is held back.
                    self.flush();
                    // Stop only once the queue is drained: nothing accepted is dropped.
                    if self.stop.load(Ordering::Acquire) {
                        break;
                    }
                    self.park(&mut idle_polls);
                }
            }
        }
        self.flush();
        self.engine
    }

    /// Applies one command and emits its events, then its `Done`.
    fn apply(&mut self, seq: u64, command: &Envelope, events: &mut Vec<Event>) {
        debug_assert!(events.is_empty());
        // Sampled by sequence, so which commands are timed does not depend on timing.
        let started = (seq & (APPLY_SAMPLE_EVERY - 1) == 0).then(Instant::now);
        self.engine.apply(command, events);
        if let Some(started) = started {
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.stats.apply_latency.record(ns);
        }
        self.stats.commands_total.fetch_add(1, Ordering::Relaxed);
        self.stats
            .events_total
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        self.stats.last_seq.store(seq, Ordering::Release);
        for event in events.drain(..) {
            self.emit(Output::Event { seq, event });
        }
        self.emit(Output::Done { seq });
    }

    /// One idle step: spin, or after enough spins wait on both queues for a bounded time (what
    /// arrives is taken by the next poll).
    fn park(&self, idle_polls: &mut u32) {
        match self.idle {
            IdlePolicy::Spin => std::hint::spin_loop(),
            IdlePolicy::Park { spins, park_us } => {
                if *idle_polls < spins {
                    *idle_polls += 1;
                    std::hint::spin_loop();
                    return;
                }
                let mut select = Select::new();
                select.recv(&self.input);
                select.recv(&self.queries);
                let _ = select.ready_timeout(Duration::from_micros(park_us));
            }
        }
    }

    /// Adds an item to the current batch, handing the batch over when it is full.
    #[inline]
    fn emit(&mut self, item: Output) {
        self.batch.push(item);
        if self.batch.len() >= OUTPUT_BATCH_ITEMS {
            self.flush();
        }
    }

    /// Hands the current batch to the consumer, waiting (without taking input) while the queue is
    /// full. A consumer that went away makes events unobservable, so they are discarded then
    /// (the journal, not the event stream, is the record).
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let fresh = self
            .recycle
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(OUTPUT_BATCH_ITEMS));
        let mut batch = std::mem::replace(&mut self.batch, fresh);
        let mut counted = false;
        loop {
            match self.output.try_send(batch) {
                Ok(()) => {
                    if let Some(wake) = self.waker.get() {
                        wake();
                    }
                    return;
                }
                Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) => {
                    batch = back;
                    if !counted {
                        self.stats.output_full_total.fetch_add(1, Ordering::Relaxed);
                        counted = true;
                    }
                    match self.idle {
                        IdlePolicy::Spin => std::hint::spin_loop(),
                        IdlePolicy::Park { .. } => std::thread::yield_now(),
                    }
                }
            }
        }
    }
}
