//! The supervisor of a real `peregrine up`, seen over its HTTP endpoints: a replicator whose
//! work is killed by a real fault in its MariaDB database is counted dead, restarted with
//! back-off, and, killed again beyond its restart budget, given up on with readiness 503 naming
//! it for good.
//!
//! The fault: the replica's high-water mark is moved beyond the journal's end behind the
//! replicator's back (as a replica of another journal would be). The replicator's next commit
//! finds the mark moved, reconnects, reads a mark ahead of the journal and stops with an error
//! no retry fixes: its thread ends. Repairing the mark lets a restart succeed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::time::{Duration, Instant};

use sqlx::Connection;
use support::{FreshDatabase, Up, http_client, write_config};

/// Longest wait for any one state the test expects.
const WAIT: Duration = Duration::from_secs(60);
/// How far the fault moves the mark beyond the journal.
const MARK_AHEAD: i64 = 1_000_000;

async fn metric(up: &Up, name: &str) -> u64 {
    let series = format!("{name}{{thread=\"replica\"}} ");
    up.metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.trim().parse().unwrap())
}

async fn ready(up: &Up) -> (u16, String) {
    let response = http_client()
        .get(format!("{}/health/ready", up.http))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Waits until `done` holds, at most [`WAIT`]; `what` names it in the failure, with what
/// readiness and the thread metrics said last.
async fn wait_for<F: Future<Output = bool>>(
    up: &Up,
    log: &std::path::Path,
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + WAIT;
    while !done().await {
        if Instant::now() >= deadline {
            let (_, why) = ready(up).await;
            let metrics = up.metrics().await;
            let threads: Vec<&str> = metrics
                .lines()
                .filter(|line| line.starts_with("peregrine_thread_"))
                .collect();
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("timed out waiting for {what}; readiness:\n{why}\n{threads:#?}\nlog:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn mark(url: &str) -> u64 {
    let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
    let (mark,): (i64,) =
        sqlx::query_as("SELECT high_water_seq FROM replication_state WHERE id = 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    u64::try_from(mark).unwrap()
}

/// Moves the mark by `delta` in one statement. Relative, never a value read earlier: the
/// replicator may commit between a read and a write, and a mark put back below a row it wrote
/// would make every later write a duplicate (the race that once made this test flaky).
async fn shift_mark(url: &str, delta: i64) {
    let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
    sqlx::query("UPDATE replication_state SET high_water_seq = high_water_seq + ? WHERE id = 1")
        .bind(delta)
        .execute(&mut conn)
        .await
        .unwrap();
}

/// A deposit to account 3 through the control API; the sequence it was journaled at.
async fn deposit_seq(up: &Up, deposit_id: u64) -> u64 {
    let (status, body) = up
        .control(
            "deposits",
            serde_json::json!({
                "account": 3, "currency": "usd", "amount": "100", "deposit_id": deposit_id,
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["seq"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicator_killed_by_its_database_is_restarted_then_given_up_on() {
    let database = FreshDatabase::new("supervision");
    let url = database.url.clone();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[], &format!("[replica]\nurl = \"{url}\"\n"));
    let up = Up::start(dir.path());
    let log = dir.path().join("stderr.log");
    up.deposit(3, "usd", "100", 1).await;
    wait_for(&up, &log, "the first deposit replicated", || async {
        ready(&up).await.0 == 200 && mark(&url).await > 0
    })
    .await;
    assert_eq!(metric(&up, "peregrine_thread_deaths_total").await, 0);

    // Kill the replicator's work; a new command makes it commit and find out.
    shift_mark(&url, MARK_AHEAD).await;
    let second = deposit_seq(&up, 2).await;
    wait_for(&up, &log, "the replicator's death counted", || async {
        metric(&up, "peregrine_thread_deaths_total").await >= 1
    })
    .await;
    let (status, why) = ready(&up).await;
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("replica"), "{why}");
    // Repaired within the restart budget: a restart takes over and replicates the deposit.
    shift_mark(&url, -MARK_AHEAD).await;
    wait_for(
        &up,
        &log,
        "the replicator restarted and caught up",
        || async { ready(&up).await.0 == 200 && mark(&url).await >= second },
    )
    .await;
    let restarts = metric(&up, "peregrine_thread_restarts_total").await;
    assert!(restarts >= 1, "ready again without a restart");
    assert!(ready(&up).await.1.contains("ok threads"));

    // Killed again and left broken: restarts run out and readiness names it for good.
    shift_mark(&url, MARK_AHEAD).await;
    up.deposit(3, "usd", "100", 3).await;
    wait_for(&up, &log, "the replicator given up on", || async {
        ready(&up).await.1.contains("replica stopped for good")
    })
    .await;
    let deaths = metric(&up, "peregrine_thread_deaths_total").await;
    let restarts = metric(&up, "peregrine_thread_restarts_total").await;
    assert_eq!(restarts, 4, "restarts beyond the budget of 4");
    assert!(deaths > restarts, "{deaths} deaths for {restarts} restarts");
    // And it stays so, even once the database is fine again: the operator must look.
    shift_mark(&url, -MARK_AHEAD).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, why) = ready(&up).await;
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("replica stopped for good"), "{why}");
    assert_eq!(metric(&up, "peregrine_thread_restarts_total").await, 4);
    up.stop();
}
