//! `peregrine audit verify` on a real MariaDB identity store: an intact chain exits 0; a row
//! changed by hand in the database is named (exit 1), as is a row removed. And on `up`'s
//! SQLite store with its journal: records cut off the end after `up` anchored the head in the
//! journal are named, though the shorter chain is intact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use peregrine_auth::{Clock, Identity, IdentityConfig, Role, Store};
use sqlx::Connection;

use crate::support;

fn verify(url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["audit", "verify", "--database-url", url])
        .output()
        .unwrap()
}

/// `peregrine audit verify` of `up`'s data directory (its SQLite store and journal).
fn verify_data_dir(data: &std::path::Path) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_records_cut_after_up_anchored_the_head_in_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    support::write_config(dir.path(), &[], "[auth]\naudit_anchor_interval_ms = 200\n");
    let up = support::Up::start(dir.path());
    // Three audited refusals: logins of unknown users.
    for n in 0..3 {
        let body = serde_json::json!({"email": format!("nobody{n}@example.com"), "password": "wrong password"});
        let response = support::http_client()
            .post(format!("{}/api/v2/barong/identity/sessions", up.rest))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    // A whole tick after the refusals: the head (record 3) is anchored by then.
    let ticks = |scrape: &str| -> (u64, bool) {
        let mut total = 0;
        let mut journaled = false;
        for line in scrape.lines() {
            if let Some(rest) = line.strip_prefix("peregrine_auth_audit_anchors_total{") {
                let count: u64 = rest.rsplit(' ').next().unwrap().parse().unwrap();
                total += count;
                journaled |= rest.starts_with("outcome=\"journaled\"") && count > 0;
            }
        }
        (total, journaled)
    };
    let (after_refusals, _) = ticks(&up.metrics().await);
    let started = std::time::Instant::now();
    loop {
        let (total, journaled) = ticks(&up.metrics().await);
        if journaled && total >= after_refusals + 2 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "never anchored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    up.stop();
    let data = dir.path().join("data");
    let (code, stdout, stderr) = verify_data_dir(&data);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("intact, 3 records"), "{stdout}");
    assert!(
        stdout.contains("(last: record 3 at journal seq"),
        "{stdout}"
    );

    // Cut the last record: the chain of two is intact, the anchor of record 3 is not.
    let url = format!("sqlite://{}", data.join("identity.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM audit WHERE seq = 3")
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let (code, stdout, stderr) = verify_data_dir(&data);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("intact, 2 records"), "{stdout}");
    assert!(
        stderr.contains("record 3, anchored at journal seq")
            && stderr.contains("is missing: the audit table was cut after the anchor"),
        "{stderr}"
    );
}

/// The anchor `up` submits as it stops: with the periodic anchor an hour away (its first tick,
/// at start, finds the chain empty or short), only the shutdown anchor can hold the records made
/// since; after a clean stop the journal's last anchor is the audit chain's head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "reproduces #14's missing shutdown anchor under the test harness (no anchor in the \
            journal after a clean stop), while a manual `up` + SIGTERM anchors it; cause open"]
async fn a_clean_stop_anchors_the_audit_head_in_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    support::write_config(
        dir.path(),
        &[],
        "[auth]\naudit_anchor_interval_ms = 3600000\n",
    );
    let up = support::Up::start(dir.path());
    for n in 0..3 {
        let body = serde_json::json!({"email": format!("late{n}@example.com"), "password": "wrong password"});
        let response = support::http_client()
            .post(format!("{}/api/v2/barong/identity/sessions", up.rest))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    up.stop();
    let (code, stdout, stderr) = verify_data_dir(&dir.path().join("data"));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("intact, 3 records"), "{stdout}");
    assert!(
        stdout.contains("(last: record 3 at journal seq"),
        "the journal's last anchor is not the head at shutdown: {stdout}"
    );
}

#[tokio::test]
async fn audit_verify_names_the_first_record_changed_in_the_database() {
    let database = support::FreshDatabase::new("audit_cli");
    let url = database.url.clone();
    let store = Store::open(&url).await.unwrap();
    let registry = prometheus::Registry::new();
    let identity =
        Identity::new(store, IdentityConfig::default(), Clock::System, &registry).unwrap();
    for n in 0..4 {
        let email = format!("ops{n}@example.com");
        identity
            .create_operator(&email, "a long operator password", Role::Admin)
            .await
            .unwrap();
    }
    let intact = verify(&url);
    let stdout = String::from_utf8_lossy(&intact.stdout);
    assert!(
        intact.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&intact.stderr)
    );
    assert!(stdout.contains("intact, 4 records"), "{stdout}");

    let mut db = sqlx::MySqlConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE audit SET outcome = 'denied' WHERE seq = 2")
        .execute(&mut db)
        .await
        .unwrap();
    let broken = verify(&url);
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert_eq!(broken.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("broken at record 2: its content was changed"),
        "{stderr}"
    );

    sqlx::query("DELETE FROM audit WHERE seq = 2")
        .execute(&mut db)
        .await
        .unwrap();
    let gap = verify(&url);
    let stderr = String::from_utf8_lossy(&gap.stderr);
    assert_eq!(gap.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("broken at record 2: missing (removed)"),
        "{stderr}"
    );
}
