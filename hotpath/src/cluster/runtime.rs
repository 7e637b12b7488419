//! The threaded cluster runtime: every shard on its own thread (optionally pinned), driven in
//! lockstep by a coordinator thread through bounded channels, one job per shard and phase. The
//! phases, their inputs and the merge are the reference executor's, so the event stream is equal
//! to [`Cluster::apply_batch`]'s for the same batches.
//!
//! Back-pressure, not blocking: a full input queue returns the batch to the caller
//! ([`ClusterSubmitError::Busy`]); a full output queue makes the coordinator wait before the next
//! batch, so the input fills and callers see `Busy`. Nothing is dropped. Idle threads sleep on
//! their channel, so the runtime works on a single core. Buffers travel with the jobs and come
//! back, so the steady state reuses them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{
    Receiver, RecvError, RecvTimeoutError, Sender, TryRecvError, TrySendError, bounded,
};

use crate::cluster::event::ClusterEvent;
use crate::cluster::matching::MatchingShard;
use crate::cluster::risk::RiskShard;
use crate::cluster::work::{BatchBuffers, MatchOut, MatchWork, Return, RiskItem, ScreenOut};
use crate::cluster::{Cluster, check_batch};
use crate::command::Envelope;
use crate::runtime::{IdlePolicy, RuntimeError};

/// How long the coordinator sleeps on an empty input before re-checking its stop flag.
const IDLE_WAIT: Duration = Duration::from_millis(1);

/// How the cluster runtime runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRuntimeConfig {
    /// Cores to pin threads to, in order: the coordinator, the risk shards, the matching shards;
    /// reused from the start when shorter than the thread count. Empty: no pinning.
    pub cores: Vec<usize>,
    /// Batches waiting for the coordinator, at most.
    pub input_batches: usize,
    /// Merged batches of events waiting for the consumer, at most.
    pub output_batches: usize,
    /// How shard threads wait for their next job and the coordinator for each phase's answers:
    /// spinning saves a wake-up per hand-off (three per batch) but needs a core per thread.
    /// A parked thread blocks until its next message or the channel's close (`park_us` unused).
    pub idle: IdlePolicy,
}

impl Default for ClusterRuntimeConfig {
    fn default() -> Self {
        ClusterRuntimeConfig {
            cores: Vec::new(),
            input_batches: 64,
            output_batches: 64,
            // Block at once (crossbeam backs off briefly first): on a shared machine the cluster's
            // threads outnumber the cores, and a spinning thread steals the core from the one
            // doing the phase's work.
            idle: IdlePolicy::Park {
                spins: 0,
                park_us: 1_000,
            },
        }
    }
}

/// Why a batch was not queued; carries the batch back.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterSubmitError {
    /// The input queue is full: try again later.
    Busy(Vec<Envelope>),
    /// Longer than the cluster's `max_batch_commands`: split it.
    TooLarge(Vec<Envelope>),
    /// The runtime stopped (or a shard thread failed).
    Stopped(Vec<Envelope>),
}

enum RiskJob {
    Screen {
        input: Vec<RiskItem>,
        out: ScreenOut,
    },
    Settle {
        input: Vec<Return>,
    },
}

struct MatchJob {
    input: Vec<MatchWork>,
    out: MatchOut,
}

/// The coordinator's end of one shard thread.
struct Link<Job> {
    jobs: Sender<Job>,
    done: Receiver<Job>,
}

/// A running cluster.
#[derive(Debug)]
pub struct ClusterRuntime {
    input: Sender<Vec<Envelope>>,
    output: Receiver<Vec<ClusterEvent>>,
    recycle: Sender<Vec<ClusterEvent>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Cluster, RuntimeError>>>,
    max_batch_commands: u32,
}

/// Pins the current thread if a core is given.
fn pin(core: Option<usize>) -> bool {
    core.is_none_or(|id| core_affinity::set_for_current(core_affinity::CoreId { id }))
}

/// The next message on `rx`, waiting as `idle` says. `Spin` polls until a message arrives or
/// the sender is gone (the thread owns its core); `Park` polls `spins` times, then blocks.
fn receive<T>(rx: &Receiver<T>, idle: IdlePolicy) -> Result<T, RecvError> {
    let spins = match idle {
        IdlePolicy::Park { spins, .. } => spins,
        _ => u32::MAX,
    };
    let mut polls = 0u32;
    // Bounded by `spins` for Park; for Spin by the channel's life (a closed channel ends it).
    loop {
        match rx.try_recv() {
            Ok(message) => return Ok(message),
            Err(TryRecvError::Disconnected) => return Err(RecvError),
            Err(TryRecvError::Empty) => {}
        }
        if matches!(idle, IdlePolicy::Spin) {
            std::hint::spin_loop();
            continue;
        }
        if polls >= spins {
            return rx.recv();
        }
        polls += 1;
        std::hint::spin_loop();
    }
}

/// Spawns a shard thread that answers each job on `done` until its job channel closes, then
/// returns its shard.
fn spawn_shard<S: Send + 'static, Job: Send + 'static>(
    name: String,
    core: Option<usize>,
    idle: IdlePolicy,
    mut shard: S,
    ready: Sender<bool>,
    mut work: impl FnMut(&mut S, &mut Job) + Send + 'static,
) -> Result<(Link<Job>, JoinHandle<S>), RuntimeError> {
    // One job in flight per shard and phase: the coordinator waits for every answer.
    let (jobs_tx, jobs_rx) = bounded::<Job>(1);
    let (done_tx, done_rx) = bounded::<Job>(1);
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let pinned = pin(core);
            let _ = ready.send(pinned);
            if !pinned {
                return shard;
            }
            // Bounded by the coordinator's jobs: ends when it closes the channel.
            while let Ok(mut job) = receive(&jobs_rx, idle) {
                work(&mut shard, &mut job);
                if done_tx.send(job).is_err() {
                    break;
                }
            }
            shard
        })
        .map_err(RuntimeError::Spawn)?;
    Ok((
        Link {
            jobs: jobs_tx,
            done: done_rx,
        },
        thread,
    ))
}

impl ClusterRuntime {
    /// Starts one thread per shard plus the coordinator, taking over `cluster` (returned by
    /// [`ClusterRuntime::stop`]).
    pub fn start(
        cluster: Cluster,
        config: &ClusterRuntimeConfig,
    ) -> Result<ClusterRuntime, RuntimeError> {
        if config.input_batches == 0 || config.output_batches == 0 {
            return Err(RuntimeError::ZeroCapacity);
        }
        let available: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        if let Some(&core) = config.cores.iter().find(|c| !available.contains(c)) {
            return Err(RuntimeError::NoSuchCore { core, available });
        }
        let core_of = |thread: usize| {
            (!config.cores.is_empty()).then(|| config.cores[thread % config.cores.len()])
        };
        let Cluster {
            config: cluster_config,
            risk,
            matching,
            coordinator,
            buffers,
        } = cluster;
        let threads = 1 + risk.len() + matching.len();
        let (ready_tx, ready_rx) = bounded::<bool>(threads);
        let mut risk_links = Vec::with_capacity(risk.len());
        let mut risk_threads = Vec::with_capacity(risk.len());
        for (i, shard) in risk.into_iter().enumerate() {
            let (link, thread) = spawn_shard(
                format!("peregrine-risk-{i}"),
                core_of(1 + i),
                config.idle,
                shard,
                ready_tx.clone(),
                |shard: &mut RiskShard, job: &mut RiskJob| match job {
                    RiskJob::Screen { input, out } => shard.screen(input, out),
                    RiskJob::Settle { input } => shard.settle(input),
                },
            )?;
            risk_links.push(link);
            risk_threads.push(thread);
        }
        let first_matching = 1 + risk_links.len();
        let mut matching_links = Vec::with_capacity(matching.len());
        let mut matching_threads = Vec::with_capacity(matching.len());
        for (i, shard) in matching.into_iter().enumerate() {
            let (link, thread) = spawn_shard(
                format!("peregrine-match-{i}"),
                core_of(first_matching + i),
                config.idle,
                shard,
                ready_tx.clone(),
                |shard: &mut MatchingShard, job: &mut MatchJob| shard.run(&job.input, &mut job.out),
            )?;
            matching_links.push(link);
            matching_threads.push(thread);
        }
        let (input_tx, input_rx) = bounded::<Vec<Envelope>>(config.input_batches);
        let (output_tx, output_rx) = bounded::<Vec<ClusterEvent>>(config.output_batches);
        let (recycle_tx, recycle_rx) = bounded::<Vec<ClusterEvent>>(config.output_batches + 2);
        let stop = Arc::new(AtomicBool::new(false));
        let max_batch_commands = cluster_config.max_batch_commands;
        let mut worker = Coordination {
            config: cluster_config,
            coordinator,
            buffers,
            risk: risk_links,
            matching: matching_links,
            risk_threads,
            matching_threads,
            input: input_rx,
            output: output_tx,
            recycle: recycle_rx,
            stop: stop.clone(),
            idle: config.idle,
        };
        let coordinator_core = core_of(0);
        let thread = std::thread::Builder::new()
            .name("peregrine-cluster".into())
            .spawn(move || {
                let pinned = pin(coordinator_core);
                let _ = ready_tx.send(pinned);
                if !pinned {
                    return worker.finish(Err(RuntimeError::PinFailed(
                        coordinator_core.unwrap_or_default(),
                    )));
                }
                let result = worker.run();
                worker.finish(result)
            })
            .map_err(RuntimeError::Spawn)?;
        let mut runtime = ClusterRuntime {
            input: input_tx,
            output: output_rx,
            recycle: recycle_tx,
            stop,
            thread: Some(thread),
            max_batch_commands,
        };
        for _ in 0..threads {
            if ready_rx.recv() != Ok(true) {
                let _ = runtime.join();
                return Err(RuntimeError::PinFailed(
                    config.cores.first().copied().unwrap_or_default(),
                ));
            }
        }
        Ok(runtime)
    }

    /// Queues a batch, or gives it back at once if the input queue is full.
    pub fn submit(&self, batch: Vec<Envelope>) -> Result<(), ClusterSubmitError> {
        if batch.len() > self.max_batch_commands as usize {
            return Err(ClusterSubmitError::TooLarge(batch));
        }
        match self.input.try_send(batch) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(batch)) => Err(ClusterSubmitError::Busy(batch)),
            Err(TrySendError::Disconnected(batch)) => Err(ClusterSubmitError::Stopped(batch)),
        }
    }

    /// The merged events of the next batch, if ready (one vector per batch, in batch order).
    pub fn try_next(&self) -> Option<Vec<ClusterEvent>> {
        self.output.try_recv().ok()
    }

    /// The merged events of the next batch, waiting up to `timeout`.
    pub fn next_timeout(&self, timeout: Duration) -> Option<Vec<ClusterEvent>> {
        self.output.recv_timeout(timeout).ok()
    }

    /// Gives an emptied event vector back for reuse (best effort).
    pub fn recycle(&self, mut events: Vec<ClusterEvent>) {
        events.clear();
        let _ = self.recycle.try_send(events);
    }

    /// Stops after the queued batches are applied; returns the cluster and the batches of events
    /// not yet taken.
    pub fn stop(mut self) -> Result<(Cluster, Vec<Vec<ClusterEvent>>), RuntimeError> {
        let mut pending = Vec::new();
        let cluster = self.join_draining(&mut pending)?;
        Ok((cluster, pending))
    }

    fn join_draining(
        &mut self,
        pending: &mut Vec<Vec<ClusterEvent>>,
    ) -> Result<Cluster, RuntimeError> {
        self.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return Err(RuntimeError::Stopped);
        };
        // Keep taking output while the coordinator finishes, so a full output queue never holds
        // it up.
        while !thread.is_finished() {
            match self.output.recv_timeout(IDLE_WAIT) {
                Ok(events) => pending.push(events),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let result = thread.join().map_err(|_| RuntimeError::ShardPanicked)?;
        pending.extend(self.output.try_iter());
        result
    }

    fn join(&mut self) -> Result<Cluster, RuntimeError> {
        let mut discarded = Vec::new();
        self.join_draining(&mut discarded)
    }
}

impl Drop for ClusterRuntime {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

impl std::fmt::Debug for RiskJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RiskJob::Screen { input, .. } => write!(f, "Screen({})", input.len()),
            RiskJob::Settle { input } => write!(f, "Settle({})", input.len()),
        }
    }
}

/// The coordinator thread's state.
struct Coordination {
    config: crate::cluster::ClusterConfig,
    coordinator: crate::cluster::Coordinator,
    buffers: BatchBuffers,
    risk: Vec<Link<RiskJob>>,
    matching: Vec<Link<MatchJob>>,
    risk_threads: Vec<JoinHandle<RiskShard>>,
    matching_threads: Vec<JoinHandle<MatchingShard>>,
    input: Receiver<Vec<Envelope>>,
    output: Sender<Vec<ClusterEvent>>,
    recycle: Receiver<Vec<ClusterEvent>>,
    stop: Arc<AtomicBool>,
    idle: IdlePolicy,
}

impl Coordination {
    fn run(&mut self) -> Result<(), RuntimeError> {
        // Bounded by the input: ends when stopped with an empty queue or when the caller is gone.
        loop {
            let batch = match self.input.recv_timeout(IDLE_WAIT) {
                Ok(batch) => batch,
                Err(RecvTimeoutError::Timeout) => {
                    if self.stop.load(Ordering::Acquire) {
                        return Ok(());
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            debug_assert!(check_batch(&self.config, &batch).is_ok());
            let mut events = self.recycle.try_recv().unwrap_or_default();
            events.clear();
            self.batch(&batch, &mut events)?;
            self.emit(events);
        }
    }

    /// One batch, the reference executor's steps with each shard's phase on its thread.
    fn batch(
        &mut self,
        commands: &[Envelope],
        events: &mut Vec<ClusterEvent>,
    ) -> Result<(), RuntimeError> {
        let bufs = &mut self.buffers;
        let first_seq = self.coordinator.route(commands, bufs);
        for (shard, link) in self.risk.iter().enumerate() {
            let job = RiskJob::Screen {
                input: std::mem::take(&mut bufs.risk_in[shard]),
                out: std::mem::take(&mut bufs.risk_out[shard]),
            };
            link.jobs
                .send(job)
                .map_err(|_| RuntimeError::ShardPanicked)?;
        }
        for (shard, link) in self.risk.iter().enumerate() {
            match receive(&link.done, self.idle) {
                Ok(RiskJob::Screen { input, out }) => {
                    bufs.risk_in[shard] = input;
                    bufs.risk_out[shard] = out;
                }
                _ => return Err(RuntimeError::ShardPanicked),
            }
        }
        self.coordinator.gather_matching(bufs);
        for (shard, link) in self.matching.iter().enumerate() {
            let job = MatchJob {
                input: std::mem::take(&mut bufs.match_in[shard]),
                out: std::mem::take(&mut bufs.match_out[shard]),
            };
            link.jobs
                .send(job)
                .map_err(|_| RuntimeError::ShardPanicked)?;
        }
        for (shard, link) in self.matching.iter().enumerate() {
            let job = receive(&link.done, self.idle).map_err(|_| RuntimeError::ShardPanicked)?;
            bufs.match_in[shard] = job.input;
            bufs.match_out[shard] = job.out;
        }
        self.coordinator.gather_settlements(bufs);
        for (shard, link) in self.risk.iter().enumerate() {
            let job = RiskJob::Settle {
                input: std::mem::take(&mut bufs.settle_in[shard]),
            };
            link.jobs
                .send(job)
                .map_err(|_| RuntimeError::ShardPanicked)?;
        }
        for (shard, link) in self.risk.iter().enumerate() {
            match receive(&link.done, self.idle) {
                Ok(RiskJob::Settle { input }) => bufs.settle_in[shard] = input,
                _ => return Err(RuntimeError::ShardPanicked),
            }
        }
        self.coordinator.merge(commands, first_seq, bufs, events);
        Ok(())
    }

    /// Hands a batch's events over, waiting while the output queue is full. A consumer that went
    /// away makes events unobservable, so they are discarded then (the journal is the record).
    fn emit(&self, mut events: Vec<ClusterEvent>) {
        loop {
            match self.output.send_timeout(events, IDLE_WAIT) {
                Ok(()) => return,
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return,
                Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => events = back,
            }
        }
    }

    /// Closes the shard threads and reassembles the cluster.
    fn finish(self, result: Result<(), RuntimeError>) -> Result<Cluster, RuntimeError> {
        let Coordination {
            config,
            coordinator,
            buffers,
            risk,
            matching,
            risk_threads,
            matching_threads,
            ..
        } = self;
        // Closing the job channels ends the shard threads.
        drop(risk);
        drop(matching);
        let mut risk_shards = Vec::with_capacity(risk_threads.len());
        for thread in risk_threads {
            risk_shards.push(thread.join().map_err(|_| RuntimeError::ShardPanicked)?);
        }
        let mut matching_shards = Vec::with_capacity(matching_threads.len());
        for thread in matching_threads {
            matching_shards.push(thread.join().map_err(|_| RuntimeError::ShardPanicked)?);
        }
        result?;
        Ok(Cluster {
            config,
            risk: risk_shards,
            matching: matching_shards,
            coordinator,
            buffers,
        })
    }
}
