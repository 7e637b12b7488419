//! `journal`: durable commits through `peregrine-persist`'s io_uring group-commit writer.
//!
//! Open loop: the bench thread appends a realistic command (seeded flow, rkyv-serialised by the
//! journal) at each scheduled time of the pacer's grid; a receiver thread follows the durable
//! watermark. Each command's latency runs from its *scheduled* append time (coordinated-omission
//! corrected: a `Busy` retry or a slow commit is charged to every command it delayed) to:
//! - `latency_ns`: the moment the writer saw the commit holding it complete (the journal's
//!   commit times): what the journal itself costs, comparable with the floor;
//! - `params.ack_seen_latency_ns`: the moment the receiver thread saw it durable, i.e. plus one
//!   thread wake-up: what an acknowledging thread that sleeps on the watermark sees.
//!
//! `ops_per_sec` is durable commands per second over the measured phase. `floor_ns` is one write + sync of one record's size (one 4 KiB block)
//! made durable exactly as the writer does it, on the same device, in the same run.
//!
//! One rate per run (`--rate`); for the maximum, offer more than the device can take
//! (`--rate 10000000`): the queue then fills and `Busy` is the back-pressure.
//!
//! Experiment switches, from the environment (not `PEREGRINE_*`, which is the appliance's):
//! `BENCH_JOURNAL_IDLE=park|spin` (the writer's [`WriterIdle`]), `BENCH_JOURNAL_CORES=S,W`
//! (pin the sending thread to core S and the writer to core W), `BENCH_JOURNAL_NICE=N` and
//! `BENCH_JOURNAL_SYNC=dsync|pwrite|fdatasync`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_persist::writer::COMMIT_TIMES_MAX;
use peregrine_persist::{JournalConfig, JournalError, SyncMethod, WriterIdle, open};

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
    summary: "durable journal appends (io_uring group commit); floor = one write+sync",
    flags: &[WorkloadFlag::Rate, WorkloadFlag::Seed],
    run,
};

const NAME: &str = "journal";
/// Default offered rate: the latency target is stated at 100 k commands/s.
pub const RATE_DEFAULT_OPS_PER_SEC: u64 = 100_000;
/// Distinct commands cycled through: enough variety of sizes, small enough to pre-generate.
const COMMANDS_COUNT: usize = 65_536;
/// Samples of the floor measurement.
const FLOOR_SAMPLES: usize = 300;
/// How long the receiver waits for a durable record at the end before calling the run broken.
const DRAIN_MAX: Duration = Duration::from_secs(30);

fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    let rate = args.rate_or(RATE_DEFAULT_OPS_PER_SEC)?;
    let seed = args.seed_or_default();
    let dir = std::env::temp_dir().join(format!("peregrine-bench-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = run_in(args, rate, seed, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(
    args: &BenchArgs,
    rate: std::num::NonZeroU64,
    seed: u64,
    dir: &std::path::Path,
) -> Result<Report, BenchError> {
    let workload_error =
        |e: Box<dyn std::error::Error + Send + Sync>| BenchError::workload(NAME, e);
    let mut flow = Flow::new(FlowParams {
        seed,
        ..FlowParams::default()
    });
    let mut commands = flow.setup();
    commands.truncate(COMMANDS_COUNT / 2);
    while commands.len() < COMMANDS_COUNT {
        commands.push(flow.next_command());
    }
    let mut config = JournalConfig::new(dir);
    // Experiment switches (see perf/RESULTS.md): writer priority, and how the writer syncs.
    // Not PEREGRINE_*: that namespace is the appliance's configuration, which refuses strangers.
    config.writer_nice = match std::env::var("BENCH_JOURNAL_NICE") {
        Err(_) => None,
        Ok(nice) => Some(nice.parse().map_err(|_| {
            BenchError::invalid("BENCH_JOURNAL_NICE", "expected an integer nice value")
        })?),
    };
    config.sync_method = match std::env::var("BENCH_JOURNAL_SYNC").as_deref() {
        Err(_) | Ok("dsync") => SyncMethod::WriteDsync,
        Ok("pwrite") => SyncMethod::PwriteFdatasync,
        Ok("fdatasync") => SyncMethod::WriteThenFdatasync,
        Ok(_) => {
            return Err(BenchError::invalid(
                "BENCH_JOURNAL_SYNC",
                "expected dsync, pwrite or fdatasync",
            ));
        }
    };
    config.writer_idle = match std::env::var("BENCH_JOURNAL_IDLE").as_deref() {
        Err(_) | Ok("park") => WriterIdle::Park,
        Ok("spin") => WriterIdle::Spin,
        Ok(_) => {
            return Err(BenchError::invalid(
                "BENCH_JOURNAL_IDLE",
                "expected park or spin",
            ));
        }
    };
    let sender_core = match std::env::var("BENCH_JOURNAL_CORES") {
        Err(_) => None,
        Ok(cores) => {
            let invalid = || BenchError::invalid("BENCH_JOURNAL_CORES", "expected SENDER,WRITER");
            let (sender, writer) = cores.split_once(',').ok_or_else(invalid)?;
            config.writer_core = Some(writer.trim().parse().map_err(|_| invalid())?);
            Some(sender.trim().parse::<usize>().map_err(|_| invalid())?)
        }
    };
    config.snapshot_every_commands = 0;
    config.snapshot_every = None;
    let (_, writer) = open(&config, peregrine_hotpath::EngineConfig::small())
        .map_err(|e| workload_error(Box::new(e)))?;
    let journal = writer.journal().clone();

    // Record size of a typical command, for the floor.
    let mut scratch = peregrine_persist::payload::Scratch::new();
    peregrine_persist::payload::encode(&commands[COMMANDS_COUNT - 1], &mut scratch)
        .map_err(|e| workload_error(e.into()))?;
    let record_bytes = peregrine_persist::record::record_bytes(scratch.len());
    let floor_ns = peregrine_persist::floor_write_sync_ns(
        dir,
        record_bytes,
        FLOOR_SAMPLES,
        config.sync_method,
    )
    .map_err(|e| workload_error(Box::new(e)))?;

    let progress = Progress::new(NAME, args.duration, args.json);
    let mut busy_count = 0_u64;
    let mut command_index = 0_usize;
    // Appends the next command; on Busy calls `on_busy` (yields the core) and retries (bounded
    // by the writer's progress: Busy clears when a commit completes; a failed writer errors).
    let mut append = |busy_count: &mut u64, on_busy: &mut dyn FnMut()| -> Result<u64, BenchError> {
        let command = &commands[command_index % COMMANDS_COUNT];
        command_index += 1;
        loop {
            match journal.append(command) {
                Ok(seq) => return Ok(seq),
                Err(JournalError::Busy { .. }) => {
                    *busy_count += 1;
                    on_busy();
                }
                Err(other) => return Err(workload_error(Box::new(other))),
            }
        }
    };

    // Warmup: paced, unrecorded.
    progress.set_phase("warmup");
    let warmup_count = (args.warmup.as_secs_f64() * rate.get() as f64) as u64;
    let mut pacer = Pacer::new(rate, Instant::now());
    for _ in 0..warmup_count {
        pacer.next_scheduled();
        append(&mut busy_count, &mut std::thread::yield_now)?;
    }
    busy_count = 0;

    // Measured phase. A receiver thread blocks on the durable watermark and records every newly
    // durable command's latency from its scheduled send time, to the writer's completion time of
    // the commit that held it and to its own wake-up. (A variant that polled the
    // watermark from the sending thread between sends was measured too: on the shared 2-vCPU
    // VM a never-yielding sender starved the writer and tails got worse; see perf/RESULTS.md.)
    progress.set_phase("open loop");
    let count = (args.duration.as_secs_f64() * rate.get() as f64).max(1.0) as u64;
    let base_seq = journal.appended_seq();
    let stats = journal.stats();
    let commits_before = stats.commits_count.load(Ordering::Relaxed);
    let records_before = stats.records_count.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut pacer = Pacer::new(rate, start);
    let grid = pacer.clone();
    let last_seq = Arc::new(AtomicU64::new(u64::MAX));
    let receiver_journal = journal.clone();
    let receiver_core = config.writer_core;
    let receiver_last = Arc::clone(&last_seq);
    let receiver = std::thread::Builder::new()
        .name("journal-bench-acks".to_owned())
        .spawn(
            move || -> Result<(LatencyRecorder, LatencyRecorder, Instant), BenchError> {
                // With pinning, the receiver shares the writer's core: the sender's stays its own.
                if let Some(id) = receiver_core {
                    let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
                }
                let mut recorder = LatencyRecorder::new()?;
                let mut seen_recorder = LatencyRecorder::new()?;
                let mut commit_times: Vec<(u64, Instant)> = Vec::with_capacity(COMMIT_TIMES_MAX);
                let mut seen = base_seq;
                let mut waited_since = Instant::now();
                // Bounded: ends at the last sequence, or after DRAIN_MAX without progress.
                loop {
                    let durable = receiver_journal
                        .wait_durable_after(seen, Duration::from_millis(50))
                        .map_err(|e| BenchError::workload(NAME, e))?;
                    let now = Instant::now();
                    if durable > seen {
                        commit_times.clear();
                        receiver_journal.drain_commit_times(&mut commit_times);
                        // Commits are in sequence order; walk them alongside the sequences.
                        let mut commit = 0_usize;
                        for seq in seen + 1..=durable {
                            let scheduled = grid.scheduled_at(seq - base_seq - 1);
                            while commit < commit_times.len() && commit_times[commit].0 < seq {
                                commit += 1;
                            }
                            // A commit time dropped from the bounded record falls back to the
                            // receiver's own (later) time: never flattering.
                            let durable_at = commit_times.get(commit).map_or(now, |&(_, at)| at);
                            // Appended at or after `scheduled`; durable no earlier than appended.
                            recorder.record_from_scheduled(scheduled, durable_at.max(scheduled));
                            seen_recorder.record_from_scheduled(scheduled, now.max(scheduled));
                        }
                        seen = durable;
                        waited_since = now;
                    }
                    if seen >= receiver_last.load(Ordering::Acquire) {
                        return Ok((recorder, seen_recorder, now));
                    }
                    if now.duration_since(waited_since) > DRAIN_MAX {
                        return Err(BenchError::workload(
                            NAME,
                            "journal stopped making progress",
                        ));
                    }
                }
            },
        )
        .map_err(|e| workload_error(Box::new(e)))?;
    if let Some(id) = sender_core {
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
    }
    let mut last = base_seq;
    for index in 0..count {
        pacer.next_scheduled();
        last = append(&mut busy_count, &mut std::thread::yield_now)?;
        if index % 65_536 == 0 {
            progress.set_elapsed(start.elapsed());
        }
    }
    assert_eq!(
        last,
        base_seq + count,
        "the journal hands out gap-free sequences"
    );
    last_seq.store(last, Ordering::Release);
    let (recorder, seen_recorder, durable_at) = receiver
        .join()
        .map_err(|_| BenchError::workload(NAME, "receiver panicked"))??;
    progress.finish();
    let elapsed = durable_at.duration_since(start);
    let commits = stats.commits_count.load(Ordering::Relaxed) - commits_before;
    let records = stats.records_count.load(Ordering::Relaxed) - records_before;
    let batch_max = stats.batch_records_max.load(Ordering::Relaxed);
    let pacer_stats = pacer.stats();
    writer.shutdown().map_err(|e| workload_error(Box::new(e)))?;
    let summary = recorder.summary();
    let seen_summary = seen_recorder.summary();
    let p99_over_floor = summary.p99 as f64 / floor_ns.max(1) as f64;
    Ok(Report::new(
        NAME,
        count as f64 / elapsed.as_secs_f64(),
        summary,
        Some(floor_ns),
    )
    .with_pacing(&pacer_stats)
    .with_recorder(&recorder)
    .with_param("rate_ops_per_sec", rate.get())
    .with_param("duration_s", args.duration.as_secs_f64())
    .with_param("warmup_s", args.warmup.as_secs_f64())
    .with_param("ops_count", count)
    .with_param("durable_elapsed_s", elapsed.as_secs_f64())
    .with_param("record_bytes", record_bytes as u64)
    .with_param("floor_write_bytes", 4_096_u64)
    .with_param("p99_over_floor", p99_over_floor)
    .with_param("group_commits_count", commits)
    .with_param(
        "records_per_commit_mean",
        records as f64 / commits.max(1) as f64,
    )
    .with_param("records_per_commit_max", batch_max)
    .with_param("busy_retries_count", busy_count)
    .with_param("sends_behind_count", pacer_stats.sends_behind_count)
    .with_param("sync", format!("{:?}", config.sync_method))
    .with_param("writer_idle", format!("{:?}", config.writer_idle))
    .with_param(
        "cores",
        sender_core.map_or("unpinned".to_owned(), |sender| {
            format!("sender {sender}, writer {:?}", config.writer_core)
        }),
    )
    .with_param(
        "ack_seen_latency_ns",
        serde_json::to_value(seen_summary).map_err(|e| workload_error(Box::new(e)))?,
    )
    .with_param(
        "ack_seen_p99_over_floor",
        seen_summary.p99 as f64 / floor_ns.max(1) as f64,
    )
    .with_param("dir", dir.display().to_string())
    .with_param("seed", seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_durable_commits_and_a_floor() {
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_millis(200);
        args.warmup = Duration::from_millis(50);
        args.rate_ops_per_sec = Some(10_000);
        let report = run(&args).unwrap();
        assert_eq!(report.workload, NAME);
        assert!(report.ops_per_sec > 0.0);
        assert!(report.floor_ns.is_some_and(|floor| floor > 0));
        assert_eq!(report.params["ops_count"], 2_000);
    }
}
