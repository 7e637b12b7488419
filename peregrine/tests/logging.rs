//! Logging never stops the appliance: with stderr on a full device every log line fails, and
//! `up` still starts, serves, counts the lost lines on /metrics and stops cleanly. (The log
//! library's fallback, `eprintln!`, used to panic the logging thread.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{http_client, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_with_stderr_on_a_full_device_and_counts_the_lost_lines() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[], "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .env_clear()
        .current_dir(dir.path())
        .args(["up", "--log-level", "debug"])
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut http = None;
    while http.is_none() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let line = receiver
            .recv_timeout(remaining)
            .unwrap_or_else(|_| panic!("no summary; exit: {:?}", child.try_wait()));
        if let Some(rest) = line.strip_prefix("http ") {
            http = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    let http = http.unwrap();
    let client = http_client();
    let ready = client
        .get(format!("{http}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);
    let metrics = client
        .get(format!("{http}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("peregrine_log_lines_dropped_total "))
        .unwrap_or_else(|| panic!("no dropped-lines counter:\n{metrics}"))
        .parse()
        .unwrap();
    assert!(dropped > 0, "{metrics}");
    assert!(child.try_wait().unwrap().is_none(), "up exited");
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "up did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
