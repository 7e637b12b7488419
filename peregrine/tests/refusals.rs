//! What `peregrine up` refuses at start, with one clear line and without touching the data: a
//! second appliance on the same data directory, and a catalog that changes a live market's units.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use support::{Up, write_config};

/// Runs `peregrine up` in `dir` to completion (it is expected to refuse); returns exit code and
/// stderr.
fn refused_start(dir: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .env_clear()
        .current_dir(dir)
        .arg("up")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_up_and_a_changed_market_unit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[], "");
    let up = Up::start(dir.path());

    let (code, stderr) = refused_start(dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("journal directory is in use"), "{stderr}");
    // The running one is unharmed.
    let (status, _) = up
        .control("markets/btcusd/halt", serde_json::json!({}))
        .await;
    assert_eq!(status, 200);
    up.stop();

    // btcusd's lot changes from 0.0001 to 0.001: every stored quantity would be rescaled.
    let config = dir.path().join("peregrine.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../peregrine.example.toml"),
    )
    .unwrap();
    let catalog = &example[example.find("[[currencies]]").unwrap()..];
    text.push_str(&catalog.replacen("lot = \"0.0001\"", "lot = \"0.001\"", 1));
    std::fs::write(&config, text).unwrap();
    let (code, stderr) = refused_start(dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: catalog: market `btcusd` exists in the journal with other"),
        "{stderr}"
    );
}
