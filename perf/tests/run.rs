//! `peregrine_perf::run` end to end, as the `peregrine bench` subcommand calls it.

use clap::Parser;
use peregrine_perf::{BenchArgs, BenchError, run};

/// Stands in for the `peregrine bench` subcommand.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn parse(argv: &[&str]) -> Result<BenchArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied())).map(|cli| cli.bench)
}

#[test]
fn noop_runs_in_json_and_table_mode() {
    for json in [true, false] {
        let mut argv = vec![
            "noop",
            "--duration",
            "0.2",
            "--warmup",
            "0.05",
            "--rate",
            "10000",
        ];
        if json {
            argv.push("--json");
        }
        run(&parse(&argv).unwrap()).unwrap();
    }
}

#[test]
fn unknown_workload_is_refused_with_the_known_ones() {
    let error = run(&parse(&["no-such-workload", "--duration", "0.1"]).unwrap()).unwrap_err();
    assert!(
        matches!(&error, BenchError::UnknownWorkload { name, .. } if name == "no-such-workload")
    );
    assert!(error.to_string().contains("noop"), "{error}");
}

#[test]
fn unused_workload_flag_is_refused_before_running() {
    let error = run(&parse(&["noop", "--ack", "fast"]).unwrap()).unwrap_err();
    assert!(
        matches!(error, BenchError::UnsupportedFlag { flag: "--ack", .. }),
        "{error:?}"
    );
}
