//! What `peregrine up` refuses at start, with one clear line and without touching the data: a
//! second appliance on the same data directory, a catalog that changes a live market's units,
//! and a configuration that cannot work (a short REST secret, a bad QUIC key, a port in use),
//! which is refused with exit code 2 before the data directory is created.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::process::Command;

use support::{Up, write_config};

/// Runs `peregrine up` in `dir` to completion (it is expected to refuse); returns exit code and
/// stderr.
fn refused_start(dir: &std::path::Path) -> (Option<i32>, String) {
    refused_start_with(dir, &[])
}

/// [`refused_start`] with more flags for `up`.
fn refused_start_with(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .env_clear()
        .current_dir(dir)
        .arg("up")
        .args(args)
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

/// Runs `up` on `extra` config (appended to the test config) and `args`; asserts exit code 2,
/// an error line with every one of `says`, and a data directory never created.
fn assert_refused_before_data(extra: &str, args: &[&str], says: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[], extra);
    let (code, stderr) = refused_start_with(dir.path(), args);
    assert_eq!(code, Some(2), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("error: config"), "{stderr}");
    for word in says {
        assert!(last.contains(word), "`{word}` not in: {last}");
    }
    // Nothing written: no journal, no certificate, no token (write_config's data dir is `data`).
    assert!(
        !dir.path().join("data").exists(),
        "the data directory was created"
    );
}

#[test]
fn a_short_rest_secret_is_refused_before_the_data_directory_is_touched() {
    assert_refused_before_data(
        "[[rest.keys]]\nkey = \"k1\"\nsecret = \"short\"\naccount = 1\n",
        &[],
        &[
            "peregrine.toml",
            "`rest.keys.0.secret`",
            "at least 16 bytes",
        ],
    );
}

#[test]
fn a_bad_quic_public_key_is_refused_before_the_data_directory_is_touched() {
    assert_refused_before_data(
        "[[quic.keys]]\nkey_id = 9\naccount = 1\npublic_key = \"not-hex\"\n",
        &[],
        &[
            "peregrine.toml",
            "`quic.keys.0.public_key`",
            "64 hex digits",
        ],
    );
}

#[test]
fn a_port_in_use_is_refused_before_the_data_directory_is_touched() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_refused_before_data(
        "",
        &["--rest-listen", &addr],
        &["`rest.listen`", "--rest-listen", &addr, "cannot listen"],
    );
    // From the file, the file is named.
    let http = format!("[http]\nlisten = \"{addr}\"\n");
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &[], "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("[http]\nlisten = \"127.0.0.1:0\"\n", &http);
    std::fs::write(&path, text).unwrap();
    let (code, stderr) = refused_start(dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("config peregrine.toml: invalid value for `http.listen`"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "the data directory was created"
    );
    drop(taken);
}
