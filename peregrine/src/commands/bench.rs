//! `peregrine bench`: the bench harness lives in `peregrine-perf`; this is only the wiring.

pub use peregrine_perf::{BenchArgs, BenchError};

/// Runs the workload `args` names; the harness prints the report itself.
pub fn run(args: &BenchArgs) -> Result<(), BenchError> {
    peregrine_perf::run(args)
}

/// Errors the operator fixes on the command line (exit code 2, like clap's own).
pub fn is_usage_error(error: &BenchError) -> bool {
    matches!(
        error,
        BenchError::UnknownWorkload { .. }
            | BenchError::UnsupportedFlag { .. }
            | BenchError::InvalidArgument { .. }
    )
}
