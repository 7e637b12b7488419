//! `matching`: the engine alone, with risk and ledger on, fed a realistic seeded flow (random-walk
//! mid, power-law depth, most orders cancelled, IOC and modifies, many accounts).
//!
//! Two phases on one engine: a throughput phase applies commands as fast as the core allows
//! (commands/s), generated in batches between timed spans so that generation is not counted and
//! the simulated clients still learn of their fills with one batch of lag; then an open-loop phase
//! offers commands at `--rate` and records each one's latency from its scheduled time
//! (coordinated-omission corrected). Generating the next command happens after recording, so it
//! is charged only if it makes the next send late.
//!
//! `--shards 1` runs the same phases through the single-shard threaded runtime; `--shards N` for
//! N >= 2 through the cross-shard cluster in batches of `--batch` commands (see [`cluster`]).

mod cluster;

use std::time::Instant;

use peregrine_hotpath::runtime::{Busy, IdlePolicy, Output, Outputs, Shard, ShardConfig};
use peregrine_hotpath::sim::{self, Flow};
use peregrine_hotpath::{Engine, Event, RejectReason};

use crate::args::{BenchArgs, FlowArg, WorkloadFlag};
use crate::error::BenchError;
use crate::floor;
use crate::pacer::Pacer;
use crate::progress::Progress;
use crate::recorder::LatencyRecorder;
use crate::report::Report;

/// The registry entry.
pub const WORKLOAD: Workload = Workload {
    name: NAME,
    summary: "matching + risk + ledger on one core (--shards N>=2: the cross-shard cluster, \
              --batch commands per batch), realistic flow; floor = one clock read",
    flags: &[
        WorkloadFlag::Rate,
        WorkloadFlag::Seed,
        WorkloadFlag::Shards,
        WorkloadFlag::Batch,
        WorkloadFlag::Flow,
    ],
    run,
};

use crate::registry::Workload;

const NAME: &str = "matching";
/// Offered rate of the latency phase; exchange-core's published p99 is at 1 M/s.
pub const RATE_DEFAULT_OPS_PER_SEC: u64 = 1_000_000;
/// Most commands in the throughput phase: long enough to leave caches and the book in steady
/// state. A run applies `2 * rate * duration` of them, up to this (short runs, as in tests, stay
/// short).
const THROUGHPUT_COMMANDS_MAX: usize = 2_000_000;
/// Commands per timed batch: large enough that two clock reads per batch vanish, small enough
/// that clients learn of fills soon.
const BATCH_COMMANDS: usize = 1_024;
/// Phase sizes for a run: (warmup, throughput) commands, the throughput a whole number of batches.
fn phase_commands(args: &BenchArgs, rate: std::num::NonZeroU64) -> (usize, usize) {
    phase_commands_in(args, rate, BATCH_COMMANDS)
}

/// [`phase_commands`] for batches of `batch_commands` (at least 1).
fn phase_commands_in(
    args: &BenchArgs,
    rate: std::num::NonZeroU64,
    batch_commands: usize,
) -> (usize, usize) {
    assert!(batch_commands > 0);
    let wanted = 2.0 * rate.get() as f64 * args.duration.as_secs_f64();
    let batches = ((wanted as usize).min(THROUGHPUT_COMMANDS_MAX) / batch_commands).max(1);
    let throughput = batches * batch_commands;
    (throughput / 10, throughput)
}
const ACCOUNTS: u32 = sim::BENCH_ACCOUNTS;

/// Reject codes the tally counts one by one; a larger code (none today) counts in the last.
const REJECT_CODES_MAX: usize = 64;

/// Counts of what the flow produced, for the report's params.
struct Tally {
    commands: u64,
    events: u64,
    trades: u64,
    rejects: u64,
    /// Rejects by wire code, with the reason seen for each code.
    rejects_by_code: [(u64, Option<RejectReason>); REJECT_CODES_MAX],
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            commands: 0,
            events: 0,
            trades: 0,
            rejects: 0,
            rejects_by_code: [(0, None); REJECT_CODES_MAX],
        }
    }
}

impl Tally {
    #[inline]
    fn add(&mut self, events: &[Event]) {
        self.add_batch(1, events);
    }

    fn add_batch(&mut self, commands: u64, events: &[Event]) {
        self.commands += commands;
        self.events += events.len() as u64;
        for e in events {
            match e {
                Event::Trade(_) => self.trades += 1,
                Event::Rejected { reason } => {
                    self.rejects += 1;
                    let code = usize::from(reason.code()).min(REJECT_CODES_MAX - 1);
                    self.rejects_by_code[code].0 += 1;
                    self.rejects_by_code[code].1 = Some(*reason);
                }
                _ => {}
            }
        }
    }

    /// Rejects by reason name, for the report (`{"PriceOutOfBand": 12}`; empty when none).
    fn rejects_by_reason(&self) -> serde_json::Value {
        let counts: serde_json::Map<String, serde_json::Value> = self
            .rejects_by_code
            .iter()
            .filter_map(|&(count, reason)| reason.map(|r| (r.to_string(), count.into())))
            .collect();
        serde_json::Value::Object(counts)
    }
}

fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    match args.shards {
        // The cluster generates its own multi-market flow: never ignore a flag silently.
        Some(shards) if shards >= 2 && args.flow.is_some() => Err(BenchError::invalid(
            "--flow",
            "applies to the single engine only (no --shards, or --shards 1)",
        )),
        Some(shards) if shards >= 2 => cluster::run(args, shards),
        // Only the cluster is batched: never ignore a flag silently.
        _ if args.batch_commands.is_some() => Err(BenchError::invalid(
            "--batch",
            "applies to the cross-shard cluster only (--shards 2 or more)",
        )),
        None => run_engine(args),
        Some(1) => run_threaded(args),
        Some(_) => Err(BenchError::invalid("--shards", "must be at least 1")),
    }
}

/// The flow `--flow` names (realistic when absent).
fn flow_of(args: &BenchArgs) -> FlowArg {
    args.flow.unwrap_or(FlowArg::Realistic)
}

/// A flow and an engine with the flow's setup applied.
fn prepare(args: &BenchArgs) -> Result<(Engine, Flow), BenchError> {
    sim::bench_prepare(args.seed_or_default(), flow_of(args).shape())
        .map_err(|e| BenchError::workload(NAME, e))
}

/// Through the thread-per-core runtime: this thread generates, submits and drains; the shard
/// runs on its own (pinned) thread. Latency is from the scheduled send to the command's `Done`.
fn run_threaded(args: &BenchArgs) -> Result<Report, BenchError> {
    let rate = args.rate_or(RATE_DEFAULT_OPS_PER_SEC)?;
    let seed = args.seed_or_default();
    let (engine, mut flow) = prepare(args)?;
    // The last core: the first is where the OS tends to put everything else.
    let core = core_affinity::get_core_ids()
        .and_then(|ids| ids.last().map(|c| c.id))
        .filter(|_| std::thread::available_parallelism().map_or(1, |n| n.get()) > 1);
    let mut shard = Shard::start(
        engine,
        &ShardConfig {
            core,
            idle: IdlePolicy::Spin,
            input_capacity: 65_536,
            query_capacity: 1_024,
            output_capacity: 1 << 20,
        },
    )
    .map_err(|e| BenchError::workload(NAME, e))?;
    let mut outputs = shard
        .take_outputs()
        .ok_or_else(|| BenchError::workload(NAME, "shard outputs already taken"))?;
    let (warmup_commands, throughput_commands) = phase_commands(args, rate);
    let mut tally = Tally::default();
    let mut pending = Vec::with_capacity(64);
    let mut seq = 0u64;
    let mut done = 0u64;
    // Warmup then throughput: submit as fast as the queue takes, drain as we go.
    let mut elapsed = std::time::Duration::ZERO;
    for (phase, count) in [
        ("warmup", warmup_commands),
        ("throughput", throughput_commands),
    ] {
        let target = done + count as u64;
        let start = Instant::now();
        let mut next = flow.next_command();
        // Bounded: every pass either submits or drains; the shard makes progress on its core.
        while done < target {
            if seq < target {
                match shard.submit(seq + 1, next) {
                    Ok(()) => {
                        seq += 1;
                        next = flow.next_command();
                    }
                    Err(Busy(back)) => next = back,
                }
            }
            done += drain(&mut outputs, &mut flow, &mut tally, &mut pending, |_| {});
        }
        if phase == "throughput" {
            elapsed = start.elapsed();
        }
    }
    let ops_per_sec = throughput_commands as f64 / elapsed.as_secs_f64();

    // Latency under load: open loop at `rate`, from scheduled send to Done.
    let floor_ns = floor::clock_read_ns();
    let count = (args.duration.as_secs_f64() * rate.get() as f64) as u64;
    let mut recorder = LatencyRecorder::new()?;
    let first = seq + 1;
    let mut scheduled = Vec::with_capacity(count as usize);
    let start = Instant::now();
    let mut pacer = Pacer::new(rate, start);
    let mut next = flow.next_command();
    let target = done + count;
    while done < target {
        if seq + 1 < first + count && Instant::now() >= pacer.peek_next() {
            // A Busy send stays due: it is retried, and its wait is charged to it.
            let at = pacer.peek_next();
            match shard.submit(seq + 1, next) {
                Ok(()) => {
                    pacer.next_scheduled();
                    scheduled.push(at);
                    seq += 1;
                    next = flow.next_command();
                }
                Err(Busy(back)) => next = back,
            }
        }
        done += drain(
            &mut outputs,
            &mut flow,
            &mut tally,
            &mut pending,
            |done_seq| {
                let now = Instant::now();
                recorder.record_from_scheduled(scheduled[(done_seq - first) as usize], now);
            },
        );
    }
    let stats = pacer.stats();
    let engine = shard.stop().map_err(|e| BenchError::workload(NAME, e))?;
    engine.audit().map_err(|e| BenchError::workload(NAME, e))?;
    Ok(
        Report::new(NAME, ops_per_sec, recorder.summary(), Some(floor_ns))
            .with_pacing(&stats)
            .with_recorder(&recorder)
            .with_param("shards", 1u64)
            .with_param("shard_core", core.map_or(-1, |c| c as i64))
            .with_param("idle", "spin")
            .with_param("throughput_commands", throughput_commands as u64)
            .with_param("latency_rate_ops_per_sec", rate.get())
            .with_param("latency_commands", count)
            .with_param("sends_behind_count", stats.sends_behind_count)
            .with_param("seed", seed)
            .with_param("accounts", u64::from(ACCOUNTS))
            .with_param("risk_and_ledger", true)
            .with_param(
                "events_per_command",
                tally.events as f64 / tally.commands as f64,
            )
            .with_param(
                "trades_per_command",
                tally.trades as f64 / tally.commands as f64,
            )
            .with_param(
                "rejects_per_command",
                tally.rejects as f64 / tally.commands as f64,
            )
            .with_param("rejects_by_reason", tally.rejects_by_reason())
            .with_param("flow", flow_of(args).name()),
    )
}

/// Takes what the shard has emitted: events feed the flow (clients learn of fills), each
/// `Done` is reported to `on_done`. Returns how many commands completed.
fn drain(
    outputs: &mut Outputs,
    flow: &mut Flow,
    tally: &mut Tally,
    pending: &mut Vec<Event>,
    mut on_done: impl FnMut(u64),
) -> u64 {
    let mut completed = 0;
    // Bounded per call so sending keeps its pace.
    for _ in 0..4_096 {
        match outputs.try_next() {
            Some(Output::Event { event, .. }) => pending.push(event),
            Some(Output::Done { seq }) => {
                tally.add(pending);
                flow.observe(pending);
                pending.clear();
                on_done(seq);
                completed += 1;
            }
            Some(_) | None => break,
        }
    }
    completed
}

fn run_engine(args: &BenchArgs) -> Result<Report, BenchError> {
    let rate = args.rate_or(RATE_DEFAULT_OPS_PER_SEC)?;
    let seed = args.seed_or_default();
    let (mut engine, mut flow) = prepare(args)?;
    let mut events: Vec<Event> = Vec::with_capacity(4_096);
    let mut tally = Tally::default();
    let (warmup_commands, throughput_commands) = phase_commands(args, rate);
    for _ in 0..warmup_commands {
        engine.apply(&flow.next_command(), &mut events);
        tally.add(&events);
        flow.observe(&events);
        events.clear();
    }

    // Throughput: batches generated untimed, applied timed; the batch's events are kept (as a
    // consumer would receive them) and fed back after the batch.
    let mut batch = Vec::with_capacity(BATCH_COMMANDS);
    let mut batch_events: Vec<Event> = Vec::with_capacity(BATCH_COMMANDS * 16);
    let mut elapsed = std::time::Duration::ZERO;
    for _ in 0..throughput_commands / BATCH_COMMANDS {
        batch.clear();
        batch.extend((0..BATCH_COMMANDS).map(|_| flow.next_command()));
        batch_events.clear();
        let start = Instant::now();
        for command in &batch {
            engine.apply(command, &mut batch_events);
        }
        elapsed += start.elapsed();
        tally.add_batch(BATCH_COMMANDS as u64, &batch_events);
        flow.observe(&batch_events);
    }
    let ops_per_sec = throughput_commands as f64 / elapsed.as_secs_f64();

    // Latency under load: open loop at `rate`.
    let floor_ns = floor::clock_read_ns();
    let total = args.duration.as_secs_f64() * rate.get() as f64;
    let count = total as u64;
    let progress = Progress::new(NAME, args.duration, args.json);
    progress.set_phase("open loop");
    let mut recorder = LatencyRecorder::new()?;
    // The engine's own time per command (apply only, no queueing behind earlier sends): what the
    // open-loop percentiles would be without the pacer's preemptions. One extra clock read each.
    let mut service = LatencyRecorder::new()?;
    let mut next = flow.next_command();
    let start = Instant::now();
    let mut pacer = Pacer::new(rate, start);
    // Bounded: exactly `count` sends.
    for i in 0..count {
        let scheduled = pacer.next_scheduled();
        let begin = Instant::now();
        engine.apply(&next, &mut events);
        let done = Instant::now();
        recorder.record_from_scheduled(scheduled, done);
        service.record_ns(u64::try_from((done - begin).as_nanos()).unwrap_or(u64::MAX));
        tally.add(&events);
        flow.observe(&events);
        events.clear();
        next = flow.next_command();
        if i % 65_536 == 0 {
            progress.set_elapsed(start.elapsed());
        }
    }
    progress.finish();
    let stats = pacer.stats();
    // The run must leave a consistent engine: a benchmark of a broken engine is worthless.
    engine.audit().map_err(|e| BenchError::workload(NAME, e))?;

    Ok(
        Report::new(NAME, ops_per_sec, recorder.summary(), Some(floor_ns))
            .with_pacing(&stats)
            .with_recorder(&recorder)
            .with_param("throughput_commands", throughput_commands as u64)
            .with_param("latency_rate_ops_per_sec", rate.get())
            .with_param("latency_commands", count)
            .with_param("sends_behind_count", stats.sends_behind_count)
            .with_param(
                "service_ns",
                serde_json::to_value(service.summary()).unwrap_or_default(),
            )
            .with_param("seed", seed)
            .with_param("accounts", u64::from(ACCOUNTS))
            .with_param("risk_and_ledger", true)
            .with_param(
                "events_per_command",
                tally.events as f64 / tally.commands as f64,
            )
            .with_param(
                "trades_per_command",
                tally.trades as f64 / tally.commands as f64,
            )
            .with_param(
                "rejects_per_command",
                tally.rejects as f64 / tally.commands as f64,
            )
            .with_param("rejects_by_reason", tally.rejects_by_reason())
            .with_param("flow", flow_of(args).name())
            .with_param("live_orders_end", u64::from(engine.live_orders())),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn runs_and_reports_a_consistent_engine() {
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_millis(100);
        args.rate_ops_per_sec = Some(100_000);
        let report = run(&args).unwrap();
        assert_eq!(report.workload, NAME);
        assert!(report.ops_per_sec > 0.0);
        assert!(report.params["trades_per_command"].as_f64().unwrap() > 0.0);
        assert_eq!(report.params["latency_commands"], 10_000);
        // The engine's own time per command is under the open-loop latency at every percentile.
        let service = &report.params["service_ns"];
        assert!(service["p50"].as_u64().unwrap() > 0, "{service}");
        assert!(
            service["p99"].as_u64().unwrap() <= report.latency_ns.p99,
            "{service}"
        );
    }

    #[test]
    fn runs_the_flash_crash_and_reports_rejects_by_reason() {
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_millis(100);
        args.rate_ops_per_sec = Some(100_000);
        args.flow = Some(FlowArg::FlashCrash);
        let report = run(&args).unwrap();
        assert_eq!(report.params["flow"], "flash-crash");
        // The flow cancels orders that filled before it learnt of it: some rejects, by reason.
        let rejects = report.params["rejects_by_reason"].as_object().unwrap();
        let counted: u64 = rejects.values().map(|v| v.as_u64().unwrap()).sum();
        assert!(rejects.contains_key("UnknownOrder"), "{rejects:?}");
        let per_command = report.params["rejects_per_command"].as_f64().unwrap();
        assert!(counted > 0 && per_command > 0.0);
        // The cluster runs its own flow: `--flow` is refused there, not ignored.
        args.shards = Some(2);
        assert!(matches!(
            run(&args),
            Err(BenchError::InvalidArgument { flag: "--flow", .. })
        ));
    }

    #[test]
    fn runs_through_one_shard() {
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_millis(100);
        args.rate_ops_per_sec = Some(50_000);
        args.shards = Some(1);
        let report = run(&args).unwrap();
        assert_eq!(report.params["shards"], 1);
        assert!(report.ops_per_sec > 0.0);
        // `--batch` belongs to the cluster: refused rather than ignored.
        args.batch_commands = Some(64);
        assert!(matches!(
            run(&args),
            Err(BenchError::InvalidArgument {
                flag: "--batch",
                ..
            })
        ));
    }

    #[test]
    fn runs_through_the_cluster_and_accounts_for_every_command() {
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_millis(50);
        args.rate_ops_per_sec = Some(100_000);
        args.shards = Some(2);
        args.batch_commands = Some(256);
        let report = run(&args).unwrap();
        let param = |key: &str| report.params[key].as_u64().unwrap();
        assert_eq!(report.workload, NAME);
        assert_eq!(param("shards"), 2);
        assert_eq!(param("risk_shards"), u64::from(cluster::RISK_SHARDS));
        assert_eq!(param("batch_commands"), 256);
        // Six markets spread evenly over two shards.
        assert_eq!(param("markets"), 6);
        // 2 x rate x duration = 10 000 commands, in whole batches of 256; a tenth as warmup.
        assert_eq!(param("throughput_commands"), 39 * 256);
        assert_eq!(param("warmup_commands"), 3 * 256);
        // rate x duration = 5 000 commands: 19 whole batches.
        assert_eq!(param("latency_batches"), 19);
        assert_eq!(param("latency_commands"), 19 * 256);
        // Every command submitted came back completed (the run checks the cluster agrees and
        // audits it).
        assert_eq!(
            param("commands_completed"),
            param("setup_commands")
                + param("warmup_commands")
                + param("throughput_commands")
                + param("latency_commands")
        );
        assert_eq!(report.params["audit"], "ok");
        assert!(report.ops_per_sec > 0.0);
        assert!(report.params["reference_ops_per_sec"].as_f64().unwrap() > 0.0);
        assert!(report.params["trades_per_command"].as_f64().unwrap() > 0.0);
        assert!(report.latency_ns.max > 0);
    }

    #[test]
    fn cluster_refuses_bad_shapes() {
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_millis(10);
        args.shards = Some(cluster::SHARDS_MAX + 1);
        assert!(matches!(
            run(&args),
            Err(BenchError::InvalidArgument {
                flag: "--shards",
                ..
            })
        ));
        args.shards = Some(2);
        // The first batch must hold the setup's 2 currencies and 6 markets.
        args.batch_commands = Some(7);
        assert!(matches!(
            run(&args),
            Err(BenchError::InvalidArgument {
                flag: "--batch",
                ..
            })
        ));
    }
}
