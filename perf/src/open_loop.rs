//! The open-loop driver most workloads need: warmup, then a paced, measured phase around one
//! synchronous operation, with the progress bar.
//!
//! Each operation is sent at its scheduled grid time (or as soon as the previous one returns, if
//! that is later) and its latency is recorded from the scheduled time. A slow operation therefore
//! delays the sends after it and is charged to each of them: the run measures what clients
//! arriving at the offered rate would see, not what one patient client sees.
//!
//! A run is bounded: the measured phase sends exactly `rate * duration` operations, and gives up
//! once it overruns its end by one more `duration`. The operations it then never sent are charged
//! the lag they had already accumulated (a lower bound) and counted in
//! [`OpenLoopOutcome::ops_abandoned_count`], so an overloaded system cannot look fast.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use crate::args::BenchArgs;
use crate::error::BenchError;
use crate::pacer::{Pacer, PacerStats};
use crate::progress::Progress;
use crate::recorder::LatencyRecorder;
use crate::report::Report;

const NANOS_PER_SEC: u128 = 1_000_000_000;
/// Progress updates per second of run: smooth to the eye, negligible next to the operations.
const PROGRESS_UPDATES_PER_SEC: u64 = 20;

/// What to run: the offered rate and how long to warm up and measure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenLoopConfig {
    /// Offered rate.
    pub rate_ops_per_sec: NonZeroU64,
    /// Paced but unrecorded run before measuring.
    pub warmup: Duration,
    /// Measured phase: `rate * duration` operations.
    pub duration: Duration,
    /// Name on the progress bar.
    pub workload: &'static str,
    /// Whether progress may show (see [`Progress::new`]: nothing for short runs, lines when
    /// stderr is not a terminal).
    pub progress: bool,
    /// `--json`: no bar on a terminal (lines still go to a non-terminal stderr).
    pub json: bool,
}

/// What a run measured.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenLoopOutcome {
    /// Latency of every measured operation from its scheduled send time (plus lower bounds for
    /// abandoned ones).
    pub recorder: LatencyRecorder,
    /// Measured operations that completed.
    pub ops_count: u64,
    /// Operations never sent because the run overran its bound; non-zero means overloaded.
    pub ops_abandoned_count: u64,
    /// From the first scheduled send to the last completion.
    pub elapsed: Duration,
    /// How well the measured phase kept its schedule.
    pub pacer: PacerStats,
}

impl OpenLoopConfig {
    /// A config for `workload` at `rate_ops_per_sec`, measuring for `duration`, no warmup, no
    /// progress bar.
    pub fn new(workload: &'static str, rate_ops_per_sec: NonZeroU64, duration: Duration) -> Self {
        OpenLoopConfig {
            rate_ops_per_sec,
            warmup: Duration::ZERO,
            duration,
            workload,
            progress: false,
            json: false,
        }
    }

    /// The config the command line asks for: `--rate` (or `rate_default_ops_per_sec`),
    /// `--duration`, `--warmup`, and progress.
    pub fn from_args(
        workload: &'static str,
        args: &BenchArgs,
        rate_default_ops_per_sec: u64,
    ) -> Result<Self, BenchError> {
        args.validate()?;
        Ok(OpenLoopConfig {
            rate_ops_per_sec: args.rate_or(rate_default_ops_per_sec)?,
            warmup: args.warmup,
            duration: args.duration,
            workload,
            progress: true,
            json: args.json,
        })
    }

    /// Operations in the measured phase.
    pub fn ops_total(&self) -> u64 {
        ops_in(self.duration, self.rate_ops_per_sec)
    }
}

impl OpenLoopOutcome {
    /// Achieved throughput: completed operations over the longer of the elapsed time and the
    /// nominal duration (so a run on schedule reports exactly its offered rate).
    pub fn ops_per_sec(&self, config: &OpenLoopConfig) -> f64 {
        let seconds = self.elapsed.max(config.duration).as_secs_f64();
        if seconds > 0.0 {
            self.ops_count as f64 / seconds
        } else {
            0.0
        }
    }
}

impl Report {
    /// A report of an open-loop run, with the parameters every open-loop run has: offered rate,
    /// durations, operation counts and how well the schedule was kept.
    pub fn from_open_loop(
        config: &OpenLoopConfig,
        outcome: &OpenLoopOutcome,
        floor_ns: Option<u64>,
    ) -> Self {
        let send_lag_max_ns =
            u64::try_from(outcome.pacer.send_lag_max.as_nanos()).unwrap_or(u64::MAX);
        Report::new(
            config.workload,
            outcome.ops_per_sec(config),
            outcome.recorder.summary(),
            floor_ns,
        )
        .with_pacing(&outcome.pacer)
        .with_recorder(&outcome.recorder)
        .with_param("rate_ops_per_sec", config.rate_ops_per_sec.get())
        .with_param("duration_s", config.duration.as_secs_f64())
        .with_param("warmup_s", config.warmup.as_secs_f64())
        .with_param("ops_count", outcome.ops_count)
        .with_param("ops_abandoned_count", outcome.ops_abandoned_count)
        .with_param("sends_behind_count", outcome.pacer.sends_behind_count)
        .with_param("send_lag_max_ns", send_lag_max_ns)
        .with_param(
            "latency_saturated_count",
            outcome.recorder.saturated_count(),
        )
    }
}

/// Runs `operation` open-loop: a paced warmup (unrecorded), then the measured phase of
/// `config.ops_total()` operations. `operation` receives the operation's index within its phase.
pub fn run_open_loop<F>(
    config: &OpenLoopConfig,
    mut operation: F,
) -> Result<OpenLoopOutcome, BenchError>
where
    F: FnMut(u64) -> Result<(), BenchError>,
{
    if config.ops_total() == 0 {
        return Err(BenchError::invalid(
            "--duration",
            format!(
                "{:?} at {} ops/s schedules no operation",
                config.duration, config.rate_ops_per_sec
            ),
        ));
    }
    let progress = if config.progress {
        Progress::new(
            config.workload,
            config.warmup + config.duration,
            config.json,
        )
    } else {
        Progress::hidden()
    };
    let mut recorder = LatencyRecorder::new()?;

    let measured = run_warmup_then_measure(config, &progress, &mut recorder, &mut operation);
    progress.finish();
    let measured = measured?;
    assert_eq!(
        measured.ops_count + measured.ops_abandoned_count,
        config.ops_total()
    );
    Ok(OpenLoopOutcome {
        recorder,
        ops_count: measured.ops_count,
        ops_abandoned_count: measured.ops_abandoned_count,
        elapsed: measured.elapsed,
        pacer: measured.pacer,
    })
}

/// The warmup phase (recorded, then forgotten: it only settles the system and its latencies may
/// be cold), then the measured phase.
fn run_warmup_then_measure<F>(
    config: &OpenLoopConfig,
    progress: &Progress,
    recorder: &mut LatencyRecorder,
    operation: &mut F,
) -> Result<Phase, BenchError>
where
    F: FnMut(u64) -> Result<(), BenchError>,
{
    let run_start = Instant::now();
    progress.set_phase("warmup");
    run_phase(
        config,
        config.warmup,
        progress,
        run_start,
        recorder,
        operation,
    )?;
    recorder.reset();
    progress.set_phase("measuring");
    run_phase(
        config,
        config.duration,
        progress,
        run_start,
        recorder,
        operation,
    )
}

/// One paced phase's counts.
#[derive(Debug)]
struct Phase {
    ops_count: u64,
    ops_abandoned_count: u64,
    elapsed: Duration,
    pacer: PacerStats,
}

/// Runs `rate * duration` paced operations into `recorder`.
fn run_phase<F>(
    config: &OpenLoopConfig,
    duration: Duration,
    progress: &Progress,
    run_start: Instant,
    recorder: &mut LatencyRecorder,
    operation: &mut F,
) -> Result<Phase, BenchError>
where
    F: FnMut(u64) -> Result<(), BenchError>,
{
    let ops_total = ops_in(duration, config.rate_ops_per_sec);
    let progress_every_ops = (config.rate_ops_per_sec.get() / PROGRESS_UPDATES_PER_SEC).max(1);
    let start = Instant::now();
    let mut pacer = Pacer::new(config.rate_ops_per_sec, start);
    // Give up once the phase has overrun its end by its own length again: bounded wall time.
    let abandon_after = start + duration + duration;
    let mut ops_count = 0;
    let mut ops_abandoned_count = 0;
    let mut completed_last = start;
    for index in 0..ops_total {
        let scheduled = pacer.next_scheduled();
        operation(index)?;
        let completed = Instant::now();
        recorder.record_from_scheduled(scheduled, completed);
        ops_count += 1;
        completed_last = completed;
        if index % progress_every_ops == 0 {
            progress.set_elapsed(completed.duration_since(run_start));
        }
        if completed > abandon_after {
            // Every remaining operation was due before `abandon_after` (the grid ends at
            // `start + duration`) and has waited at least until now: charge that lower bound.
            for index_abandoned in (index + 1)..ops_total {
                let scheduled_abandoned = pacer.scheduled_at(index_abandoned);
                recorder.record_from_scheduled(scheduled_abandoned, completed);
                ops_abandoned_count += 1;
            }
            break;
        }
    }
    assert_eq!(ops_count + ops_abandoned_count, ops_total);
    Ok(Phase {
        ops_count,
        ops_abandoned_count,
        elapsed: completed_last.duration_since(start),
        pacer: pacer.stats(),
    })
}

/// Operations a phase of `duration` holds at `rate_ops_per_sec`, rounded down.
fn ops_in(duration: Duration, rate_ops_per_sec: NonZeroU64) -> u64 {
    let ops = duration.as_nanos() * u128::from(rate_ops_per_sec.get()) / NANOS_PER_SEC;
    // At most 24 h at 1e9 ops/s (the argument bounds): 8.64e13, far below u64::MAX.
    u64::try_from(ops).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rate_ops_per_sec: u64, duration: Duration) -> OpenLoopConfig {
        OpenLoopConfig::new("test", NonZeroU64::new(rate_ops_per_sec).unwrap(), duration)
    }

    #[test]
    fn a_stall_is_charged_to_the_operations_it_delayed() {
        // 10 000 ops/s for 0.1 s: 1 000 operations, 100 µs apart. Operation 500 stalls 20 ms,
        // holding back the ~200 sends scheduled during the stall.
        let config = config(10_000, Duration::from_millis(100));
        let stall = Duration::from_millis(20);
        let mut service_recorder = LatencyRecorder::new().unwrap();
        let outcome = run_open_loop(&config, |index| {
            let sent = Instant::now();
            if index == 500 {
                std::thread::sleep(stall);
            }
            // What a closed-loop harness would measure: each operation's own service time.
            service_recorder.record_from_scheduled(sent, Instant::now());
            Ok(())
        })
        .unwrap();
        assert_eq!(outcome.ops_count, 1_000);
        assert_eq!(outcome.ops_abandoned_count, 0);
        let corrected = outcome.recorder.summary();
        let service = service_recorder.summary();
        // The service time sees the stall once (0.1 % of operations): p99 misses it.
        assert!(service.max >= 20_000_000, "{service:?}");
        // Corrected: ~20 % of operations waited behind the stall, so p99 (and p90) include it.
        // The operations right after the stall waited nearly the whole 20 ms.
        assert!(corrected.p99 >= 15_000_000, "{corrected:?}");
        assert!(
            corrected.p99 > service.p99,
            "corrected {corrected:?} vs service {service:?}"
        );
        assert!(corrected.max >= 20_000_000, "{corrected:?}");
        assert!(
            outcome.pacer.sends_behind_count >= 100,
            "{:?}",
            outcome.pacer
        );
    }

    #[test]
    fn throughput_never_exceeds_the_offered_rate() {
        let config = config(20_000, Duration::from_millis(100));
        let outcome = run_open_loop(&config, |_| Ok(())).unwrap();
        assert_eq!(outcome.ops_count + outcome.ops_abandoned_count, 2_000);
        // Never more than offered (how much less is measured, not asserted: the box is shared).
        let ops_per_sec = outcome.ops_per_sec(&config);
        assert!(
            ops_per_sec > 0.0 && ops_per_sec <= 20_000.0 + 1e-6,
            "{ops_per_sec}"
        );
        assert_eq!(outcome.recorder.count(), 2_000);
    }

    #[test]
    fn an_overloaded_run_is_bounded_and_abandoned_sends_are_charged() {
        // Each operation takes 1 ms but 10 000 are offered per second for 20 ms: the run gives
        // up after ~40 ms (at most ~40 operations done) instead of running 200 ms.
        let config = config(10_000, Duration::from_millis(20));
        let outcome = run_open_loop(&config, |_| {
            std::thread::sleep(Duration::from_millis(1));
            Ok(())
        })
        .unwrap();
        // 1 ms operations cannot finish 200 in the 40 ms allowed: abandoning proves the bound.
        assert!(outcome.ops_abandoned_count > 0, "{outcome:?}");
        assert_eq!(outcome.ops_count + outcome.ops_abandoned_count, 200);
        assert_eq!(outcome.recorder.count(), 200);
        // Every abandoned operation waited at least until the abandon point (20 ms after the
        // end of the 20 ms grid) minus its scheduled time: the slowest ones 20 ms or more.
        assert!(
            outcome.recorder.summary().p50 >= 15_000_000,
            "{:?}",
            outcome.recorder.summary()
        );
    }

    #[test]
    fn an_operation_error_stops_the_run() {
        let config = config(10_000, Duration::from_millis(10));
        let result = run_open_loop(&config, |index| {
            if index == 3 {
                Err(BenchError::invalid("--test", "boom"))
            } else {
                Ok(())
            }
        });
        assert!(matches!(
            result,
            Err(BenchError::InvalidArgument { flag: "--test", .. })
        ));
    }

    #[test]
    fn a_duration_too_short_for_one_operation_is_refused() {
        let config = config(10, Duration::from_millis(10));
        assert!(run_open_loop(&config, |_| Ok(())).is_err());
    }
}
