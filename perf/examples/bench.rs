//! `peregrine bench` without the rest of the binary:
//! `cargo run --release -p peregrine-perf --example bench -- noop --duration 2 [--json]`.

use std::process::ExitCode;

use clap::Parser;
use peregrine_perf::BenchArgs;

/// Runs one bench workload and prints its report.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match peregrine_perf::run(&cli.bench) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
