//! `noop`: an open-loop paced loop whose operation does nothing. It exercises the whole harness
//! (pacer, recorder, report) and shows its own overhead: the latencies are the pacer's wake-up
//! jitter plus two clock reads, next to a floor of one clock read. Copy this module to start a
//! workload.

use std::hint::black_box;

use crate::args::{BenchArgs, WorkloadFlag};
use crate::error::BenchError;
use crate::floor;
use crate::open_loop::{OpenLoopConfig, run_open_loop};
use crate::registry::Workload;
use crate::report::Report;

/// The registry entry.
pub const WORKLOAD: Workload = Workload {
    name: NAME,
    summary: "paced loop doing nothing: the harness's own overhead; floor = one clock read",
    flags: &[WorkloadFlag::Rate],
    run,
};

const NAME: &str = "noop";

/// Default offered rate: high enough that pacing is mostly spinning, as for real hot-path
/// workloads, low enough to leave the second core to the rest of the machine.
pub const RATE_DEFAULT_OPS_PER_SEC: u64 = 50_000;

fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    let config = OpenLoopConfig::from_args(NAME, args, RATE_DEFAULT_OPS_PER_SEC)?;
    let floor_ns = floor::clock_read_ns();
    let outcome = run_open_loop(&config, |index| {
        // Keeps the loop from being optimised into nothing.
        black_box(index);
        Ok(())
    })?;
    Ok(Report::from_open_loop(&config, &outcome, Some(floor_ns)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reports_a_floor_and_the_offered_rate() {
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_millis(200);
        args.warmup = Duration::from_millis(50);
        args.rate_ops_per_sec = Some(10_000);
        let report = run(&args).unwrap();
        assert_eq!(report.workload, "noop");
        assert!(report.ops_per_sec > 0.0 && report.ops_per_sec <= 10_000.0 + 1e-6);
        assert!(report.floor_ns.is_some_and(|floor_ns| floor_ns > 0));
        let latency = report.latency_ns;
        assert!(latency.p50 <= latency.p90 && latency.p90 <= latency.p99);
        assert!(latency.p99 <= latency.p999 && latency.p999 <= latency.max);
        assert_eq!(report.params["rate_ops_per_sec"], 10_000);
        let ops_count = report.params["ops_count"].as_u64().unwrap();
        let ops_abandoned_count = report.params["ops_abandoned_count"].as_u64().unwrap();
        assert_eq!(ops_count + ops_abandoned_count, 2_000);
    }
}
