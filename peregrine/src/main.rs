//! The `peregrine` binary: `up`, `bench`, and (later) the operator commands.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

// jemalloc: steadier tail latency than the system allocator under many small allocations from
// several threads. Binary only, so libraries and tests keep the default allocator.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // clap prints usage errors and exits 2 itself; `--help` and `--version` exit 0.
    let cli = peregrine::cli::Cli::parse();
    match peregrine::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Nothing sensible is left to do if stderr itself is gone.
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
