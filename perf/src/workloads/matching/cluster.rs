//! `matching --shards N` for N >= 2: the same realistic flow through the cross-shard cluster of
//! the hot path (`peregrine_hotpath::cluster`): risk shards by account, matching shards by market,
//! every shard on its own thread, driven in lockstep batches by the cluster's coordinator.
//!
//! The cluster is batched by design (each batch runs three phases across the shards), so this
//! workload submits batches of `--batch` commands, not single commands:
//!
//! 1. Reference: the same flow through [`Cluster::apply_batch`] on this thread (no threads, no
//!    queues), timed per batch with generation untimed. Its throughput is the baseline that the
//!    threaded run is compared with, measured in the same process minutes apart at most.
//! 2. Throughput: the threaded [`ClusterRuntime`]; this thread generates a batch, submits it
//!    (on `Busy` it drains outputs and retries) and drains. Commands/s over whole batches, from
//!    the first submit to the last batch's events.
//! 3. Latency: open loop at `--rate` commands/s. Batch `k` is due when its last command would
//!    have arrived (`start + ((k + 1) * B - 1) / rate`), so batches are offered at the command
//!    rate; its latency runs from that scheduled time to the moment this thread takes the batch's
//!    merged events. A late submit (this thread or the queue behind) is charged to the batch: the
//!    coordinated-omission correction of the harness, per batch. A command also waits for its
//!    batch to fill, up to `B / rate`, which this figure leaves out (it is in the params).
//!
//! Clients learn of their fills and cancels when the batch's events come back, so the flow lags
//! by the batches in flight; cancels of orders that ended meanwhile are refused, which shows in
//! `rejects_per_command`. The run ends with [`ClusterRuntime::stop`] and [`Cluster::audit`]: a
//! benchmark of a broken cluster is worthless, so a failed audit or a lost command is an error.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use peregrine_hotpath::cluster::{ClusterSubmitError, MAX_BATCH_COMMANDS};
use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_hotpath::{
    Cluster, ClusterConfig, ClusterEvent, ClusterEventKind, ClusterRuntime, ClusterRuntimeConfig,
    EngineConfig, Envelope, Event,
};

use super::{ACCOUNTS, NAME, RATE_DEFAULT_OPS_PER_SEC, Tally, phase_commands_in};
use crate::args::BenchArgs;
use crate::error::BenchError;
use crate::floor;
use crate::pacer::Pacer;
use crate::progress::Progress;
use crate::recorder::LatencyRecorder;
use crate::report::Report;

/// Most matching shards: each matching engine preallocates the single engine's capacity (1 Mi
/// orders) and gets its own thread; past 16 the run measures memory and the scheduler.
pub const SHARDS_MAX: usize = 16;
/// Risk shards, fixed so that runs with different `--shards` differ only in matching shards. Two,
/// as in the cluster's own tests: the smallest count that exercises cross-risk-shard settlement.
pub const RISK_SHARDS: u16 = 2;
/// Commands per batch without `--batch`: the engine path's timed batch, so that both paths
/// amortise their per-batch costs over the same number of commands.
pub const BATCH_COMMANDS_DEFAULT: usize = 1_024;
/// Markets at least: the flow spreads `markets` over the shards as market `m` on shard
/// `m % shards`, so the count is rounded up to a multiple of the shards (every shard gets the
/// same number). Six: 2, 3 and 6 shards all see the same flow, so their ratios compare like for
/// like.
const MARKETS_MIN: u32 = 6;
/// Batches queued towards the coordinator and back, at most: enough that the coordinator never
/// waits for this thread to generate the next batch; more only adds flow lag and queueing.
const QUEUE_BATCHES: usize = 4;
/// Finished batches taken per drain, at most, so a burst of outputs does not delay a due submit.
const DRAIN_BATCHES_MAX: usize = 64;
/// How long the cluster may go without finishing a batch while one is outstanding before the run
/// is declared stalled: every wait loop is bounded by it.
const STALL_MAX: Duration = Duration::from_secs(30);
/// While the next due batch is further away than this, block on the output queue (yielding the
/// core to the shards, which matters on two cores) instead of spinning.
const BLOCK_ABOVE: Duration = Duration::from_micros(200);
/// Wake this much before a due batch: the channel's timed wait overshoots by the timer slack.
const BLOCK_MARGIN: Duration = Duration::from_micros(100);
/// The longest single blocking wait for outputs when nothing is due.
const BLOCK_MAX: Duration = Duration::from_millis(1);

/// The shape of one cluster run, from the command line.
#[derive(Clone, Debug)]
struct Shape {
    matching_shards: u16,
    batch_commands: usize,
    markets: u32,
    seed: u64,
}

impl Shape {
    fn from_args(args: &BenchArgs, shards: usize) -> Result<Shape, BenchError> {
        if !(2..=SHARDS_MAX).contains(&shards) {
            return Err(BenchError::invalid(
                "--shards",
                format!("the cluster takes 2..={SHARDS_MAX} matching shards (1: the runtime)"),
            ));
        }
        let batch_commands = args.batch_commands.unwrap_or(BATCH_COMMANDS_DEFAULT);
        if batch_commands == 0 || batch_commands > MAX_BATCH_COMMANDS as usize {
            return Err(BenchError::invalid(
                "--batch",
                format!("must be in 1..={MAX_BATCH_COMMANDS}"),
            ));
        }
        let matching_shards = u16::try_from(shards)
            .map_err(|_| BenchError::invalid("--shards", "does not fit u16"))?;
        let shards_u32 = u32::from(matching_shards);
        let markets = MARKETS_MIN.div_ceil(shards_u32) * shards_u32;
        assert!(markets >= shards_u32 && markets.is_multiple_of(shards_u32));
        Ok(Shape {
            matching_shards,
            batch_commands,
            markets,
            seed: args.seed_or_default(),
        })
    }

    fn engine(&self) -> EngineConfig {
        EngineConfig {
            max_markets: self.markets,
            // The realistic flow's books stay near the touch; the single engine's 2^18 levels
            // are for the flash crash, which the cluster does not run.
            max_levels_per_side: 8_192,
            ..peregrine_hotpath::sim::bench_engine_config()
        }
    }

    fn cluster(&self) -> Result<Cluster, BenchError> {
        let batch = u32::try_from(self.batch_commands)
            .map_err(|_| BenchError::invalid("--batch", "does not fit u32"))?;
        let config = ClusterConfig {
            max_batch_commands: batch,
            ..ClusterConfig::new(self.engine(), RISK_SHARDS, self.matching_shards)
        };
        Cluster::new(config).map_err(|e| BenchError::workload(NAME, e))
    }

    fn flow(&self) -> Flow {
        Flow::new(FlowParams {
            seed: self.seed,
            accounts: ACCOUNTS,
            markets: self.markets,
            ..FlowParams::default()
        })
    }

    /// The flow's setup as batches of at most `batch_commands`, none holding a trading command.
    /// Markets reach the risk shards only at the end of the batch that adds them; the setup lists
    /// currencies and markets first, so they all sit in the first batch and every later batch
    /// (deposits, then trading) sees them.
    fn setup_batches(&self, flow: &mut Flow) -> Result<Vec<Vec<Envelope>>, BenchError> {
        let setup = flow.setup();
        let markets_and_currencies = self.markets as usize + 2;
        if self.batch_commands < markets_and_currencies {
            return Err(BenchError::invalid(
                "--batch",
                format!(
                    "must be at least {markets_and_currencies} so the setup's currencies and \
                     markets share the first batch"
                ),
            ));
        }
        Ok(setup
            .chunks(self.batch_commands)
            .map(<[Envelope]>::to_vec)
            .collect())
    }

    /// Cores for the cluster's threads (coordinator, risk shards, matching shards): one each when
    /// the machine has a core to spare for this thread and the OS, else none (on 2 cores, pinning
    /// 5+ threads would serialise shards that could otherwise run on both cores).
    fn cores(&self) -> Vec<usize> {
        let threads = self.threads();
        let available: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        if available.len() > threads {
            // The first core is where the OS tends to put everything else.
            available[1..=threads].to_vec()
        } else {
            Vec::new()
        }
    }

    fn threads(&self) -> usize {
        1 + usize::from(RISK_SHARDS) + usize::from(self.matching_shards)
    }
}

/// Phase sizes in whole batches.
#[derive(Clone, Copy, Debug)]
struct Phases {
    warmup_batches: u64,
    throughput_batches: u64,
    latency_batches: u64,
}

impl Phases {
    fn new(args: &BenchArgs, rate: NonZeroU64, batch_commands: usize) -> Phases {
        let (_, throughput_commands) = phase_commands_in(args, rate, batch_commands);
        let throughput_batches = (throughput_commands / batch_commands) as u64;
        let latency_commands = args.duration.as_secs_f64() * rate.get() as f64;
        let latency_batches = ((latency_commands as u64) / batch_commands as u64).max(1);
        assert!(throughput_batches >= 1);
        Phases {
            // A tenth, as the engine path warms up: caches, books and the flow's depth settle.
            warmup_batches: (throughput_batches / 10).max(1),
            throughput_batches,
            latency_batches,
        }
    }
}

fn run_error(what: &str, error: ClusterSubmitError) -> BenchError {
    let kind = match error {
        ClusterSubmitError::Busy(_) => "busy",
        ClusterSubmitError::TooLarge(_) => "batch too large",
        ClusterSubmitError::Stopped(_) => "runtime stopped",
        _ => "refused",
    };
    BenchError::workload(NAME, format!("{what}: {kind}"))
}

/// Where the latency phase records: batch `first_batch + i` was due at `scheduled[i]`.
struct BatchLatency {
    first_batch: u64,
    scheduled: Vec<Instant>,
    recorder: LatencyRecorder,
}

impl BatchLatency {
    fn record(&mut self, batch: u64, done: Instant) {
        if batch < self.first_batch {
            return;
        }
        let index = (batch - self.first_batch) as usize;
        // Batches come back in submission order, and a batch is submitted after it is scheduled.
        assert!(index < self.scheduled.len());
        self.recorder
            .record_from_scheduled(self.scheduled[index], done);
    }
}

/// This thread's end of the running cluster: generates batches, submits them, takes the events.
struct Driver {
    runtime: ClusterRuntime,
    flow: Flow,
    batch_commands: usize,
    tally: Tally,
    /// Fill and cancel events of one batch, for the flow (what clients would learn).
    observed: Vec<Event>,
    batches_submitted: u64,
    batches_done: u64,
    commands_submitted: u64,
    commands_completed: u64,
    busy_count: u64,
    last_progress: Instant,
}

impl Driver {
    fn generate(&mut self) -> Vec<Envelope> {
        let mut batch = Vec::with_capacity(self.batch_commands);
        batch.extend((0..self.batch_commands).map(|_| self.flow.next_command()));
        batch
    }

    fn outstanding(&self) -> u64 {
        assert!(self.batches_done <= self.batches_submitted);
        self.batches_submitted - self.batches_done
    }

    fn check_stall(&self) -> Result<(), BenchError> {
        if self.outstanding() > 0 && self.last_progress.elapsed() > STALL_MAX {
            return Err(BenchError::workload(
                NAME,
                format!(
                    "cluster stalled: no batch finished in {STALL_MAX:?} with {} outstanding",
                    self.outstanding()
                ),
            ));
        }
        Ok(())
    }

    /// Accounts for one finished batch and feeds what clients would learn back to the flow.
    fn take(&mut self, events: Vec<ClusterEvent>, latency: Option<&mut BatchLatency>) {
        let done = Instant::now();
        if let Some(latency) = latency {
            latency.record(self.batches_done, done);
        }
        for event in &events {
            match &event.kind {
                ClusterEventKind::Engine(engine_event) => {
                    self.tally.events += 1;
                    match engine_event {
                        Event::Trade(_) => self.tally.trades += 1,
                        Event::OrderFilled { .. } | Event::OrderCancelled { .. } => {
                            self.observed.push(engine_event.clone());
                        }
                        _ => {}
                    }
                }
                ClusterEventKind::Completed { rejected } => {
                    self.tally.commands += 1;
                    self.commands_completed += 1;
                    if rejected.is_some() {
                        self.tally.rejects += 1;
                    }
                }
                _ => {}
            }
        }
        self.flow.observe(&self.observed);
        self.observed.clear();
        self.runtime.recycle(events);
        self.batches_done += 1;
        self.last_progress = done;
    }

    /// Takes the batches that are ready, without waiting.
    fn drain(&mut self, mut latency: Option<&mut BatchLatency>) {
        for _ in 0..DRAIN_BATCHES_MAX {
            let Some(events) = self.runtime.try_next() else {
                return;
            };
            self.take(events, latency.as_deref_mut());
        }
    }

    /// Waits up to `timeout` for one finished batch, then takes whatever else is ready.
    fn wait(&mut self, timeout: Duration, mut latency: Option<&mut BatchLatency>) {
        if let Some(events) = self.runtime.next_timeout(timeout) {
            self.take(events, latency.as_deref_mut());
            self.drain(latency);
        }
    }

    /// Submits `batch`; while the input queue is full, takes outputs so the coordinator can move.
    fn submit(
        &mut self,
        mut batch: Vec<Envelope>,
        mut latency: Option<&mut BatchLatency>,
    ) -> Result<(), BenchError> {
        let commands = batch.len() as u64;
        // Bounded by STALL_MAX: each pass either queues the batch or waits for the coordinator to
        // finish one (it always can, since this thread keeps taking its outputs).
        loop {
            match self.runtime.submit(batch) {
                Ok(()) => {
                    // The stall clock runs only while a batch is outstanding: an idle gap
                    // between slow open-loop batches is not a stall.
                    if self.outstanding() == 0 {
                        self.last_progress = Instant::now();
                    }
                    self.batches_submitted += 1;
                    self.commands_submitted += commands;
                    return Ok(());
                }
                Err(ClusterSubmitError::Busy(back)) => {
                    self.busy_count += 1;
                    batch = back;
                    self.wait(BLOCK_MAX, latency.as_deref_mut());
                    self.check_stall()?;
                }
                Err(other) => return Err(run_error("submitting a batch", other)),
            }
        }
    }

    /// Waits until every submitted batch has come back.
    fn finish_outstanding(
        &mut self,
        mut latency: Option<&mut BatchLatency>,
    ) -> Result<(), BenchError> {
        // Bounded by STALL_MAX: each pass takes a batch or moves towards the stall deadline.
        while self.outstanding() > 0 {
            self.wait(BLOCK_MAX, latency.as_deref_mut());
            self.check_stall()?;
        }
        Ok(())
    }

    /// Submits `batches` generated batches as fast as the cluster takes them; returns the time
    /// from the first submit to the last batch's events.
    fn closed_loop(&mut self, batches: u64) -> Result<Duration, BenchError> {
        let start = Instant::now();
        for _ in 0..batches {
            let batch = self.generate();
            self.submit(batch, None)?;
            self.drain(None);
        }
        self.finish_outstanding(None)?;
        Ok(start.elapsed())
    }

    /// Offers `batches` generated batches on the command-rate grid of `pacer`, recording each
    /// batch's latency into `latency`; returns how many were submitted after the next was due.
    fn open_loop(
        &mut self,
        pacer: &Pacer,
        batches: u64,
        latency: &mut BatchLatency,
        progress: &Progress,
    ) -> Result<u64, BenchError> {
        let batch_commands = self.batch_commands as u64;
        // When batch `k` is complete: the scheduled arrival of its last command.
        let due_of = |k: u64| pacer.scheduled_at((k + 1) * batch_commands - 1);
        let mut behind_count = 0u64;
        let mut next = Some(self.generate());
        let mut k = 0u64;
        // Bounded: each pass submits a batch, takes one, or waits at most BLOCK_MAX towards the
        // next due time or the stall deadline.
        while k < batches || self.outstanding() > 0 {
            self.check_stall()?;
            let Some(batch) = next.take() else {
                self.wait(BLOCK_MAX, Some(&mut *latency));
                continue;
            };
            let due = due_of(k);
            let now = Instant::now();
            match due.checked_duration_since(now).filter(|d| !d.is_zero()) {
                None => {
                    latency.scheduled.push(due);
                    self.submit(batch, Some(&mut *latency))?;
                    if Instant::now() >= due_of(k + 1) {
                        behind_count += 1;
                    }
                    k += 1;
                    if k < batches {
                        next = Some(self.generate());
                    }
                    if k.is_multiple_of(64) {
                        progress.set_elapsed(pacer.start().elapsed());
                    }
                }
                Some(remaining) => {
                    next = Some(batch);
                    if remaining > BLOCK_ABOVE {
                        self.wait(
                            (remaining - BLOCK_MARGIN).min(BLOCK_MAX),
                            Some(&mut *latency),
                        );
                    } else {
                        self.drain(Some(&mut *latency));
                        std::hint::spin_loop();
                    }
                }
            }
            self.drain(Some(&mut *latency));
        }
        Ok(behind_count)
    }
}

/// The unthreaded baseline: the same flow and batches through [`Cluster::apply_batch`].
fn reference_ops_per_sec(shape: &Shape, phases: Phases) -> Result<f64, BenchError> {
    let mut cluster = shape.cluster()?;
    let mut flow = shape.flow();
    let mut out: Vec<ClusterEvent> = Vec::with_capacity(shape.batch_commands * 16);
    let mut observed: Vec<Event> = Vec::with_capacity(shape.batch_commands * 4);
    for batch in shape.setup_batches(&mut flow)? {
        out.clear();
        cluster
            .apply_batch(&batch, &mut out)
            .map_err(|e| BenchError::workload(NAME, e))?;
    }
    let mut batch = Vec::with_capacity(shape.batch_commands);
    let mut elapsed = Duration::ZERO;
    let total = phases.warmup_batches + phases.throughput_batches;
    for index in 0..total {
        batch.clear();
        batch.extend((0..shape.batch_commands).map(|_| flow.next_command()));
        out.clear();
        let start = Instant::now();
        cluster
            .apply_batch(&batch, &mut out)
            .map_err(|e| BenchError::workload(NAME, e))?;
        if index >= phases.warmup_batches {
            elapsed += start.elapsed();
        }
        observed.extend(out.iter().filter_map(|e| match &e.kind {
            ClusterEventKind::Engine(
                event @ (Event::OrderFilled { .. } | Event::OrderCancelled { .. }),
            ) => Some(event.clone()),
            _ => None,
        }));
        flow.observe(&observed);
        observed.clear();
    }
    cluster.audit().map_err(|e| BenchError::workload(NAME, e))?;
    let commands = phases.throughput_batches * shape.batch_commands as u64;
    Ok(commands as f64 / elapsed.as_secs_f64())
}

/// Runs the cluster path; `shards` is `--shards` (at least 2).
pub(super) fn run(args: &BenchArgs, shards: usize) -> Result<Report, BenchError> {
    let shape = Shape::from_args(args, shards)?;
    let rate = args.rate_or(RATE_DEFAULT_OPS_PER_SEC)?;
    let phases = Phases::new(args, rate, shape.batch_commands);
    let progress = Progress::new(NAME, args.duration, args.json);
    progress.set_phase("reference");
    let reference = reference_ops_per_sec(&shape, phases)?;

    let cores = shape.cores();
    let mut flow = shape.flow();
    let setup = shape.setup_batches(&mut flow)?;
    let setup_commands: usize = setup.iter().map(Vec::len).sum();
    let runtime = ClusterRuntime::start(
        shape.cluster()?,
        &ClusterRuntimeConfig {
            cores: cores.clone(),
            input_batches: QUEUE_BATCHES,
            output_batches: QUEUE_BATCHES,
            ..ClusterRuntimeConfig::default()
        },
    )
    .map_err(|e| BenchError::workload(NAME, e))?;
    let mut driver = Driver {
        runtime,
        flow,
        batch_commands: shape.batch_commands,
        tally: Tally::default(),
        observed: Vec::with_capacity(shape.batch_commands * 4),
        batches_submitted: 0,
        batches_done: 0,
        commands_submitted: 0,
        commands_completed: 0,
        busy_count: 0,
        last_progress: Instant::now(),
    };
    // Setup as its own batches, all back before trading starts.
    for batch in setup {
        driver.submit(batch, None)?;
    }
    driver.finish_outstanding(None)?;
    // Per-command figures describe the trading flow only.
    driver.tally = Tally::default();

    progress.set_phase("throughput");
    driver.closed_loop(phases.warmup_batches)?;
    let elapsed = driver.closed_loop(phases.throughput_batches)?;
    let throughput_commands = phases.throughput_batches * shape.batch_commands as u64;
    let ops_per_sec = throughput_commands as f64 / elapsed.as_secs_f64();

    progress.set_phase("open loop");
    let floor_ns = floor::clock_read_ns();
    let mut latency = BatchLatency {
        first_batch: driver.batches_submitted,
        scheduled: Vec::with_capacity(phases.latency_batches as usize),
        recorder: LatencyRecorder::new()?,
    };
    let pacer = Pacer::new(rate, Instant::now());
    let behind_count = driver.open_loop(&pacer, phases.latency_batches, &mut latency, &progress)?;
    progress.finish();
    assert_eq!(latency.recorder.count(), phases.latency_batches);

    let Driver {
        runtime,
        mut tally,
        commands_submitted,
        mut commands_completed,
        busy_count,
        ..
    } = driver;
    let (cluster, pending) = runtime.stop().map_err(|e| BenchError::workload(NAME, e))?;
    // Nothing should be pending (every batch came back), but count it if it is.
    for events in &pending {
        for event in events {
            if let ClusterEventKind::Completed { rejected } = &event.kind {
                tally.commands += 1;
                tally.rejects += u64::from(rejected.is_some());
                commands_completed += 1;
            }
        }
    }
    if commands_completed != commands_submitted || cluster.commands_applied() != commands_submitted
    {
        return Err(BenchError::workload(
            NAME,
            format!(
                "commands lost: {commands_submitted} submitted, {commands_completed} completed, \
                 {} applied",
                cluster.commands_applied()
            ),
        ));
    }
    cluster.audit().map_err(|e| BenchError::workload(NAME, e))?;

    let batch_commands = shape.batch_commands as u64;
    let latency_commands = phases.latency_batches * batch_commands;
    let per_command = |count: u64| count as f64 / tally.commands.max(1) as f64;
    Ok(Report::new(
        NAME,
        ops_per_sec,
        latency.recorder.summary(),
        Some(floor_ns),
    )
    .with_param("shards", u64::from(shape.matching_shards))
    .with_param("risk_shards", u64::from(RISK_SHARDS))
    .with_param("batch_commands", batch_commands)
    .with_param("markets", u64::from(shape.markets))
    .with_param("pinned_cores", cores)
    .with_param("cluster_threads", shape.threads() as u64)
    .with_param("queue_batches", QUEUE_BATCHES as u64)
    .with_param("reference_ops_per_sec", reference)
    .with_param("threaded_over_reference", ops_per_sec / reference)
    .with_param(
        "latency",
        "per batch: scheduled arrival of its last command -> its merged events taken",
    )
    .with_param(
        "batch_fill_ns",
        batch_commands.saturating_sub(1) * 1_000_000_000 / rate.get(),
    )
    .with_param("setup_commands", setup_commands as u64)
    .with_param("warmup_commands", phases.warmup_batches * batch_commands)
    .with_param("throughput_commands", throughput_commands)
    .with_param("latency_rate_ops_per_sec", rate.get())
    .with_param("latency_commands", latency_commands)
    .with_param("latency_batches", phases.latency_batches)
    .with_param("batches_behind_count", behind_count)
    .with_param("busy_count", busy_count)
    .with_param("commands_completed", commands_completed)
    .with_param("audit", "ok")
    .with_param("seed", shape.seed)
    .with_param("accounts", u64::from(ACCOUNTS))
    .with_param("risk_and_ledger", true)
    .with_param("engine_events_per_command", per_command(tally.events))
    .with_param("trades_per_command", per_command(tally.trades))
    .with_param("rejects_per_command", per_command(tally.rejects)))
}
