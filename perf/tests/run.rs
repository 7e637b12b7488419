#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
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

/// Runs `peregrine bench` as the binary would, stdout and stderr captured: the stdout of the
/// test's own child process.
fn run_child(argv: &[&str]) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_run", "--nocapture", "--test-threads", "1"])
        .env("PEREGRINE_PERF_CHILD_ARGS", argv.join(" "))
        .output()
        .unwrap()
}

/// The child half of the tests below: runs the bench given in `PEREGRINE_PERF_CHILD_ARGS`.
#[test]
fn child_run() {
    let Ok(argv) = std::env::var("PEREGRINE_PERF_CHILD_ARGS") else {
        return;
    };
    let argv: Vec<&str> = argv.split(' ').collect();
    run(&parse(&argv).unwrap()).unwrap();
}

/// The JSON object in a child's stdout (the test harness prints its own lines around it).
fn report_json(output: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.find("{\"workload\"").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no report in {stdout}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn a_rate_the_harness_cannot_offer_is_reported_saturated_with_a_lower_rate() {
    // 1e9 ops/s: a send costs at least two clock reads, so no machine keeps this rate.
    let output = run_child(&[
        "noop",
        "--duration",
        "0.01",
        "--warmup",
        "0",
        "--rate",
        "1000000000",
        "--json",
    ]);
    assert!(output.status.success(), "{output:?}");
    let report = report_json(&output);
    assert_eq!(report["saturated"], true, "{report}");
    assert_eq!(report["offered_ops_per_sec"], 1e9, "{report}");
    let achieved = report["achieved_ops_per_sec"].as_f64().unwrap();
    let suggested = report["suggested_rate_ops_per_sec"].as_f64().unwrap();
    assert!(suggested < achieved && achieved < 1e9 * 0.95, "{report}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SATURATED"), "{stderr}");
}

#[test]
fn a_rate_that_is_kept_is_not_saturated() {
    let output = run_child(&[
        "noop",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--rate",
        "1000",
        "--json",
    ]);
    assert!(output.status.success(), "{output:?}");
    let report = report_json(&output);
    assert_eq!(report["saturated"], false, "{report}");
    assert!(report["suggested_rate_ops_per_sec"].is_null(), "{report}");
}

#[test]
fn progress_is_printed_as_lines_when_stderr_is_not_a_terminal() {
    let output = run_child(&[
        "noop",
        "--duration",
        "3.5",
        "--warmup",
        "0",
        "--rate",
        "1000",
    ]);
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines = stderr
        .lines()
        .filter(|l| l.starts_with("bench noop: "))
        .count();
    assert!(lines >= 3, "{stderr}");
    // Lines, not a bar's carriage returns.
    assert!(!stderr.contains('\r'), "{stderr}");
}

#[test]
fn report_dir_gets_the_json_and_two_png_plots() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noop-report");
    let path_text = path.to_str().unwrap();
    let args = parse(&[
        "noop",
        "--duration",
        "0.3",
        "--warmup",
        "0",
        "--rate",
        "5000",
        "--report",
        path_text,
    ])
    .unwrap();
    run(&args).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["workload"], "noop");
    for png in ["latency.png", "throughput.png"] {
        let bytes = std::fs::read(path.join(png)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png}");
        assert!(
            bytes.len() > 5_000,
            "{png}: {} bytes, an empty plot?",
            bytes.len()
        );
    }
}
