//! `replication`: the SQL replica (`peregrine-replica`) following a journal under a steady
//! order flow, into MariaDB/MySQL.
//!
//! Open loop: the bench thread applies a seeded, trade-heavy flow to the engine and journals
//! each command at its scheduled time (`--rate`, commands per second). The replicator runs as
//! in the appliance: its own thread following the journal's durable sequence, rebuilding the
//! events with a follower engine and writing them in batches. A receiver thread watches the
//! replica's high-water mark and records, for every command, the time from its *scheduled*
//! append to the commit that made it visible in the database: the replication lag, coordinated-
//! omission corrected. `ops_per_sec` is trades replicated per second over the measured phase
//! (first scheduled append to the last commit); rows, commands and events per second are in
//! `params`. `floor_ns` is one single-row `INSERT` + `COMMIT` round trip into the same database.
//!
//! The database comes from `--database-url`, else `DATABASE_URL`, else the local MariaDB; the
//! run creates a fresh database named after it plus the process id and drops it at the end.
//!
//! Experiment switch (not `PEREGRINE_*`, the appliance's namespace): `BENCH_REPLICATION_LEDGER_CONN=0`
//! writes each batch on one connection instead of two (`ReplicaConfig::ledger_connection`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peregrine_hotpath::sim::{Flow, FlowParams, FlowShape};
use peregrine_hotpath::{EngineConfig, Envelope, Event, TimestampNs};
use peregrine_persist::{JournalConfig, JournalError, open};
use peregrine_replica::{DurableSource, ReplicaConfig, Replicator, admin};

use crate::args::{BenchArgs, WorkloadFlag};
use crate::error::BenchError;
use crate::pacer::Pacer;
use crate::progress::Progress;
use crate::recorder::LatencyRecorder;
use crate::registry::Workload;
use crate::report::Report;

/// The registry entry.
pub const WORKLOAD: Workload = Workload {
    name: NAME,
    summary: "journal -> SQL replica lag and trades/s into MySQL/MariaDB; floor = 1-row INSERT+COMMIT",
    flags: &[
        WorkloadFlag::Rate,
        WorkloadFlag::Seed,
        WorkloadFlag::DatabaseUrl,
    ],
    run,
};

const NAME: &str = "replication";
/// The local MariaDB the test command starts.
pub const DATABASE_URL_DEFAULT: &str = "mysql://root@127.0.0.1:3306/peregrine_bench";
/// Default offered rate in commands per second; with this flow about a third of the commands
/// trade, so it offers the 50 000 trades/s target.
pub const RATE_DEFAULT_OPS_PER_SEC: u64 = 150_000;
/// Bound on the commands of one run (scheduled times are kept per command).
const COMMANDS_MAX: u64 = 50_000_000;
/// How long the replica may take to catch up after the last append before the run is broken.
const DRAIN_MAX: Duration = Duration::from_secs(120);
/// Samples of the floor.
const FLOOR_SAMPLES: usize = 200;
/// How often the receiver looks at the high-water mark: fine next to a commit's milliseconds.
const RECEIVER_POLL: Duration = Duration::from_micros(500);

fn engine_config() -> EngineConfig {
    EngineConfig {
        max_accounts: 4_096,
        max_currencies: 8,
        max_markets: 16,
        max_orders: 1 << 20,
        max_levels_per_side: 4_096,
        max_pending_withdrawals: 1_024,
        max_open_orders_per_account: 1_000,
        order_rate_per_sec: 0,
        order_burst: 100,
        balance_events: true,
        ..EngineConfig::default()
    }
}

fn database_url(args: &BenchArgs) -> String {
    args.database_url
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_else(|| DATABASE_URL_DEFAULT.to_owned())
}

fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    args.validate()?;
    let rate = args.rate_or(RATE_DEFAULT_OPS_PER_SEC)?;
    let server_url = database_url(args);
    let (_, name) = admin::split_mysql_url(&server_url).map_err(|_| {
        BenchError::invalid("--database-url", "expected mysql://user@host:port/name")
    })?;
    let url = admin::with_database(&server_url, &format!("{name}_{}", std::process::id()))
        .map_err(|e| BenchError::workload(NAME, e))?;
    let dir = std::env::temp_dir().join(format!(
        "peregrine-bench-replication-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    admin::drop_mysql_database(&url).map_err(|e| BenchError::workload(NAME, e))?;
    admin::create_mysql_database(&url).map_err(|e| BenchError::workload(NAME, e))?;
    let result = run_in(args, rate, &url, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = admin::drop_mysql_database(&url);
    result
}

fn run_in(
    args: &BenchArgs,
    rate: std::num::NonZeroU64,
    url: &str,
    dir: &std::path::Path,
) -> Result<Report, BenchError> {
    let seed = args.seed_or_default();
    let floor_ns = admin::insert_commit_floor_ns(url, FLOOR_SAMPLES)
        .map_err(|e| BenchError::workload(NAME, e))?;
    let mut config = JournalConfig::new(dir);
    config.snapshot_every_commands = 0;
    config.snapshot_every = None;
    let (recovered, writer) =
        open(&config, engine_config()).map_err(|e| BenchError::workload(NAME, e))?;
    let journal = writer.journal().clone();
    let mut engine = recovered.engine;
    // Trade-heavy: many crossing orders, few cancels, so the replica writes trades, not churn.
    let mut flow = Flow::new(FlowParams {
        seed,
        accounts: 2_000,
        markets: 4,
        cancel_percent: 20,
        replace_percent: 5,
        ioc_percent: 35,
        market_percent: 5,
        tracked_orders: 20_000,
        shape: FlowShape::Realistic,
    });
    let registry = prometheus::Registry::new();
    let mut replica_config = ReplicaConfig::new(url, dir, engine_config());
    replica_config.poll_interval = Duration::from_millis(1);
    replica_config.ledger_connection =
        match std::env::var("BENCH_REPLICATION_LEDGER_CONN").as_deref() {
            Err(_) | Ok("1") => true,
            Ok("0") => false,
            Ok(_) => {
                return Err(BenchError::invalid(
                    "BENCH_REPLICATION_LEDGER_CONN",
                    "expected 0 or 1",
                ));
            }
        };
    let ledger_connection = replica_config.ledger_connection;
    let handle = Replicator::start(
        replica_config,
        DurableSource::Journal(journal.clone()),
        &registry,
    )
    .map_err(|e| BenchError::workload(NAME, e))?;

    let mut events: Vec<Event> = Vec::with_capacity(256);
    let mut trades_count = 0_u64;
    let mut busy_count = 0_u64;
    // One command: stamp, apply to the engine, journal (Busy: yield and retry; bounded by the
    // writer's progress, a failed writer errors).
    let mut send = |mut command: Envelope,
                    events: &mut Vec<Event>,
                    flow: &mut Flow,
                    trades_count: &mut u64,
                    busy_count: &mut u64|
     -> Result<u64, BenchError> {
        command.ts = TimestampNs(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        );
        let seq = loop {
            match journal.append(&command) {
                Ok(seq) => break seq,
                Err(JournalError::Busy { .. }) => {
                    *busy_count += 1;
                    std::thread::yield_now();
                }
                Err(other) => return Err(BenchError::workload(NAME, other)),
            }
        };
        events.clear();
        engine.apply(&command, events);
        flow.observe(events);
        *trades_count += events
            .iter()
            .filter(|event| matches!(event, Event::Trade(_)))
            .count() as u64;
        Ok(seq)
    };

    let progress = Progress::new(NAME, args.duration, args.json);
    progress.set_phase("warmup");
    for command in flow.setup() {
        send(
            command,
            &mut events,
            &mut flow,
            &mut trades_count,
            &mut busy_count,
        )?;
    }
    let warmup_count = (args.warmup.as_secs_f64() * rate.get() as f64) as u64;
    let mut pacer = Pacer::new(rate, Instant::now());
    for _ in 0..warmup_count {
        pacer.next_scheduled();
        let command = flow.next_command();
        send(
            command,
            &mut events,
            &mut flow,
            &mut trades_count,
            &mut busy_count,
        )?;
    }
    let base_seq = journal.appended_seq();
    let warm = handle.wait_high_water(base_seq, DRAIN_MAX);
    if warm < base_seq {
        return Err(BenchError::workload(
            NAME,
            format!("the replica did not catch up with the warmup: {warm} of {base_seq}"),
        ));
    }

    progress.set_phase("open loop");
    let count = ((args.duration.as_secs_f64() * rate.get() as f64) as u64).clamp(1, COMMANDS_MAX);
    let rows_before = gauge(&registry, "replica_rows_total");
    let events_before = gauge(&registry, "replica_events_total");
    let batches_before = gauge(&registry, "replica_batches_total");
    trades_count = 0;
    busy_count = 0;
    let start = Instant::now();
    let mut pacer = Pacer::new(rate, start);
    let grid = pacer.clone();
    let last_seq = Arc::new(AtomicU64::new(u64::MAX));
    let receiver_last = Arc::clone(&last_seq);
    let replica = Arc::new(handle);
    let receiver_replica = Arc::clone(&replica);
    let receiver = std::thread::Builder::new()
        .name("replication-bench-lag".to_owned())
        .spawn(move || -> Result<(LatencyRecorder, Instant), BenchError> {
            let mut recorder = LatencyRecorder::new()?;
            let mut seen = base_seq;
            let mut waited_since = Instant::now();
            // Bounded: ends at the last sequence, or after DRAIN_MAX without progress.
            loop {
                let high_water = receiver_replica.high_water_seq();
                let now = Instant::now();
                if high_water > seen {
                    for seq in seen + 1..=high_water {
                        let scheduled = grid.scheduled_at(seq - base_seq - 1);
                        recorder.record_from_scheduled(scheduled, now.max(scheduled));
                    }
                    seen = high_water;
                    waited_since = now;
                }
                if seen >= receiver_last.load(Ordering::Acquire) {
                    return Ok((recorder, now));
                }
                if now.duration_since(waited_since) > DRAIN_MAX {
                    return Err(BenchError::workload(
                        NAME,
                        format!(
                            "the replica stopped making progress: {:?}",
                            receiver_replica.readiness()
                        ),
                    ));
                }
                std::thread::sleep(RECEIVER_POLL);
            }
        })
        .map_err(|e| BenchError::workload(NAME, e))?;
    let mut last = base_seq;
    for index in 0..count {
        pacer.next_scheduled();
        let command = flow.next_command();
        last = send(
            command,
            &mut events,
            &mut flow,
            &mut trades_count,
            &mut busy_count,
        )?;
        if index % 65_536 == 0 {
            progress.set_elapsed(start.elapsed());
        }
    }
    assert_eq!(last, base_seq + count, "gap-free sequences");
    last_seq.store(last, Ordering::Release);
    let (recorder, replicated_at) = receiver
        .join()
        .map_err(|_| BenchError::workload(NAME, "receiver panicked"))??;
    progress.finish();
    let elapsed = replicated_at.duration_since(start).max(args.duration);
    let seconds = elapsed.as_secs_f64();
    let rows = gauge(&registry, "replica_rows_total") - rows_before;
    let replicated_events = gauge(&registry, "replica_events_total") - events_before;
    let batches = gauge(&registry, "replica_batches_total") - batches_before;
    let pacer_stats = pacer.stats();
    if let Ok(handle) = Arc::try_unwrap(replica) {
        handle.stop().map_err(|e| BenchError::workload(NAME, e))?;
    }
    writer
        .shutdown()
        .map_err(|e| BenchError::workload(NAME, e))?;
    let summary = recorder.summary();
    Ok(
        Report::new(NAME, trades_count as f64 / seconds, summary, Some(floor_ns))
            .with_pacing(&pacer_stats)
            .with_recorder(&recorder)
            .with_param("rate_ops_per_sec", rate.get())
            .with_param("ops_are", "trades replicated")
            .with_param("duration_s", args.duration.as_secs_f64())
            .with_param("warmup_s", args.warmup.as_secs_f64())
            .with_param("commands_count", count)
            .with_param("trades_count", trades_count)
            .with_param("replicated_elapsed_s", seconds)
            .with_param("commands_per_sec", count as f64 / seconds)
            .with_param("rows_count", rows)
            .with_param("rows_per_sec", rows / seconds)
            .with_param("events_per_sec", replicated_events / seconds)
            .with_param("batches_count", batches)
            .with_param("rows_per_batch_mean", rows / batches.max(1.0))
            .with_param("latency_is", "scheduled append to replica commit (lag)")
            .with_param("busy_retries_count", busy_count)
            .with_param("sends_behind_count", pacer_stats.sends_behind_count)
            .with_param(
                "database",
                url.split('@').next_back().unwrap_or_default().to_owned(),
            )
            .with_param("seed", seed)
            .with_param("ledger_connection", ledger_connection),
    )
}

/// A counter's value in the registry (summed over labels; 0 if absent).
fn gauge(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric().iter())
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicates_trades_into_mariadb_and_reports_a_floor() {
        // The test command exports DATABASE_URL; without it this must fail, not skip.
        let url = std::env::var("DATABASE_URL").expect("DATABASE_URL must be set for this test");
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_millis(300);
        args.warmup = Duration::from_millis(50);
        args.rate_ops_per_sec = Some(5_000);
        args.database_url = Some(url);
        let report = run(&args).unwrap();
        assert_eq!(report.workload, NAME);
        assert!(report.ops_per_sec > 0.0, "trades were replicated");
        assert!(report.floor_ns.is_some_and(|floor| floor > 0));
        assert_eq!(report.params["commands_count"], 1_500);
        assert!(report.latency_ns.p50 > 0);
    }
}
