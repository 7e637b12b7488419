//! Peregrine's bench harness: open-loop pacing at a target rate, latency recording corrected for
//! coordinated omission, and one report shape (human table or one JSON object) for every workload.
//!
//! Owns: measuring. Never does: assert performance in tests; numbers go to `perf/RESULTS.md`.
//!
//! # How a run flows
//!
//! `peregrine bench <workload> [flags]` parses [`BenchArgs`] and calls [`run`], which:
//!
//! 1. validates the common flags ([`BenchArgs::validate`]),
//! 2. looks the workload up in the [`registry`] ([`BenchError::UnknownWorkload`] lists the known
//!    ones),
//! 3. rejects any workload-specific flag the workload does not use
//!    ([`BenchError::UnsupportedFlag`]), so `--shards 4` is never silently ignored,
//! 4. runs the workload, which returns a [`Report`],
//! 5. prints the report: a human table, or with `--json` exactly one JSON object on stdout:
//!
//! ```json
//! {"workload": "noop", "ops_per_sec": 50000.0,
//!  "latency_ns": {"p50": 110, "p90": 160, "p99": 420, "p999": 2100, "max": 38000},
//!  "floor_ns": 21, "params": {"rate_ops_per_sec": 50000, "duration_s": 5.0}}
//! ```
//!
//! Anything else a run prints (the progress bar or lines, a saturation warning) goes to stderr,
//! so stdout in JSON mode is machine-readable. A paced run's report says whether it kept its
//! offered rate (`offered_ops_per_sec`, `achieved_ops_per_sec`, `saturated`,
//! `suggested_rate_ops_per_sec`); `--report DIR` also writes the JSON and two PNG plots
//! ([`plot`]).
//!
//! # Measuring latency honestly
//!
//! Latency under load is measured open-loop: a [`Pacer`] hands out send times on a fixed grid
//! (`start + index / rate`) and [`LatencyRecorder::record_from_scheduled`] charges each operation
//! from its *scheduled* send time, not from when it was actually sent. A stall that delays later
//! sends is therefore charged to every operation it delayed — the coordinated-omission correction.
//! The grid never shifts after a stall and late sends are counted ([`PacerStats`]), so a run that
//! could not keep up says so. Closed-loop workloads may instead use
//! [`LatencyRecorder::record_correct`] (hdrhistogram's at-record correction).
//!
//! Most workloads need only [`open_loop::run_open_loop`], which combines warmup, pacing,
//! recording and the progress bar around one synchronous operation. Pipelined workloads (send
//! on one thread, receive on another) use [`Pacer`] and [`LatencyRecorder`] directly and
//! [`LatencyRecorder::merge`] the per-thread recorders.
//!
//! `floor_ns` is the physical floor measured in the same run (one fsync, one loopback round trip,
//! one clock read): see [`floor`]. It is `null` where no floor applies.
//!
//! # Adding a workload
//!
//! 1. Add `perf/src/workloads/<name>.rs` with a `pub const WORKLOAD: Workload` naming the
//!    workload, a one-line summary, the workload-specific flags it uses, and its
//!    `fn run(args: &BenchArgs) -> Result<Report, BenchError>` (see `workloads/noop.rs`, the
//!    template).
//! 2. Add `pub mod <name>;` to `perf/src/workloads/mod.rs` and one line
//!    `workloads::<name>::WORKLOAD,` to [`registry::WORKLOADS`].
//! 3. If it needs a flag that does not exist yet, add an `Option` field to [`BenchArgs`] and a
//!    variant to [`WorkloadFlag`]; `BenchArgs::workload_flags_given` destructures every field,
//!    so the compiler points at the one line to add.
//!
//! Errors from other crates travel as [`BenchError::Workload`] with the source attached.

pub mod args;
pub mod error;
pub mod floor;
pub mod open_loop;
pub mod pacer;
pub mod plot;
pub mod progress;
pub mod recorder;
pub mod registry;
pub mod report;
pub mod workloads;

pub use args::{AckMode, BenchArgs, FlowArg, WorkloadFlag};
pub use error::BenchError;
pub use open_loop::{OpenLoopConfig, OpenLoopOutcome, run_open_loop};
pub use pacer::{Pacer, PacerStats};
pub use recorder::LatencyRecorder;
pub use registry::Workload;
pub use report::{LatencySummary, Report};

/// Runs the workload `args` names and prints its report (table, or one JSON object with
/// `--json`) on stdout.
pub fn run(args: &BenchArgs) -> Result<(), BenchError> {
    args.validate()?;
    let workload = registry::find(&args.workload)?;
    workload.check_flags(args)?;
    let report = (workload.run)(args)?;
    // A workload that reports under another name would make results unattributable.
    assert_eq!(
        report.workload, workload.name,
        "workload reported under another name"
    );
    report.print(args.json)?;
    if let Some(dir) = &args.report {
        let files = plot::write_report(&report, dir)?;
        eprintln!(
            "report: {} {} {}",
            files.json.display(),
            files.latency_png.display(),
            files.throughput_png.display()
        );
    }
    Ok(())
}
