//! Snapshots taken by a running `peregrine up`: after enough commands one is written under the
//! journal directory; a restart after SIGKILL starts from it plus the journal tail, keeps the
//! book, and still answers resends of orders placed after the snapshot with their status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::time::{Duration, Instant};

use peregrine_client::{Order, OrderState, Placed};
use peregrine_hotpath::{ClientOrderId, MarketId, Price, Qty, Side};
use support::{Trader, Up, write_config};

const BTCUSD: MarketId = MarketId(1);
/// Resting bids, each one below the last, so none trades.
const ORDERS: u64 = 60;

fn snapshot_files(journal: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(journal)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".snapshot"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_from_a_snapshot_and_the_journal_tail() {
    let dir = tempfile::tempdir().unwrap();
    let trader = Trader::new(1);
    write_config(
        dir.path(),
        &[trader],
        "[journal]\nsnapshot_every_commands = 40\nsnapshot_every_ms = 0\n",
    );
    let up = Up::start(dir.path());
    up.deposit(trader.account, "usd", "10000000", 1).await;
    let client = up.connect(&trader).await;
    // An order finished before the snapshot: after the restart its client id must still be a
    // duplicate (the window is saved beside the snapshot), not a second order.
    let finished = client
        .place(Order::limit(
            ClientOrderId(500),
            BTCUSD,
            Side::Buy,
            Price(4_700_000),
            Qty(1),
        ))
        .await
        .unwrap();
    let Placed::Ack {
        order: finished, ..
    } = finished
    else {
        panic!("refused: {finished:?}");
    };
    client
        .cancel(peregrine_hotpath::OrderRef::Id(finished))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..ORDERS {
        let placed = client
            .place(Order::limit(
                ClientOrderId(1_000 + n),
                BTCUSD,
                Side::Buy,
                Price(4_900_000 - n),
                Qty(1),
            ))
            .await
            .unwrap();
        let Placed::Ack { order, .. } = placed else {
            panic!("refused: {placed:?}");
        };
        ids.push(order);
    }
    let journal = dir.path().join("data/journal");
    let deadline = Instant::now() + Duration::from_secs(20);
    while snapshot_files(&journal).is_empty() {
        assert!(Instant::now() < deadline, "no snapshot was written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The pause it cost the engine thread is on /metrics (refreshed every second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = up.metrics().await;
        if text.contains("peregrine_engine_snapshot_pause_seconds_count 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot pause on /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One more order after the snapshot, then a crash.
    let last = client
        .place(Order::limit(
            ClientOrderId(2_000),
            BTCUSD,
            Side::Buy,
            Price(4_800_000),
            Qty(1),
        ))
        .await
        .unwrap();
    assert!(matches!(last, Placed::Ack { .. }), "{last:?}");
    drop(client);
    up.kill();

    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .env_clear()
        .current_dir(dir.path())
        .args(["replay", "--journal-dir", "data/journal"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{replay:?}");
    assert!(
        text.contains(".snapshot (seq "),
        "replay did not use the snapshot: {text}"
    );
    assert!(
        text.contains(&format!("{} live orders", ORDERS + 1)),
        "{text}"
    );

    let up = Up::start(dir.path());
    let client = up.connect(&trader).await;
    // The order placed after the snapshot is known by its client id; an older live one is
    // refused by the engine as a duplicate. Neither places a second order.
    let resend = client
        .place(Order::limit(
            ClientOrderId(2_000),
            BTCUSD,
            Side::Buy,
            Price(4_800_000),
            Qty(1),
        ))
        .await
        .unwrap();
    assert!(
        matches!(resend, Placed::Duplicate(s) if s.state == OrderState::Live),
        "{resend:?}"
    );
    let resend = client
        .place(Order::limit(
            ClientOrderId(1_000),
            BTCUSD,
            Side::Buy,
            Price(4_900_000),
            Qty(1),
        ))
        .await
        .unwrap();
    assert!(
        !matches!(resend, Placed::Ack { .. }),
        "a live order was placed twice: {resend:?}"
    );
    let resend = client
        .place(Order::limit(
            ClientOrderId(500),
            BTCUSD,
            Side::Buy,
            Price(4_700_000),
            Qty(1),
        ))
        .await
        .unwrap();
    assert!(
        matches!(resend, Placed::Duplicate(s) if s.state == OrderState::Cancelled && s.order == finished),
        "an order finished before the snapshot was placed again: {resend:?}"
    );
    let (status, body) = up
        .control("accounts/1/cancel-all", serde_json::json!({}))
        .await;
    assert_eq!(
        (status, body["cancelled"].as_u64()),
        (200, Some(ORDERS + 1)),
        "{body}"
    );
    drop(client);
    up.stop();

    // Every snapshot damaged: the start replays the whole journal, and says which snapshot it
    // skipped and why (it used to do so silently).
    let damaged = snapshot_files(&journal);
    assert!(!damaged.is_empty());
    for name in &damaged {
        let path = journal.join(name);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
    }
    let up = Up::start(dir.path());
    up.stop();
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    for name in &damaged {
        assert!(
            stderr.lines().any(|l| l.contains("snapshot skipped")
                && l.contains(name.as_str())
                && l.contains("checksum mismatch")),
            "no log line for {name}:\n{stderr}"
        );
    }
    assert!(stderr.contains("no snapshot used"), "{stderr}");
}

/// A journal that lost its acknowledged end (here: its only segment deleted) stops the start
/// with one line saying how many commands are lost, instead of reusing their sequences and
/// order ids; `--accept-journal-loss` starts anyway, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_journal_that_lost_its_end_is_refused_unless_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let trader = Trader::new(1);
    // Without a replica: one that caught up before the loss is a second witness that refuses
    // the start even when the loss is accepted (the next test), and whether it caught up
    // would be a race here.
    write_config(
        dir.path(),
        &[trader],
        "[journal]\nsnapshot_every_commands = 0\nsnapshot_every_ms = 0\n\
         [replica]\nenabled = false\n",
    );
    let up = Up::start(dir.path());
    for id in 1..=3 {
        up.deposit(trader.account, "usd", "100", id).await;
    }
    up.stop();
    let journal = dir.path().join("data/journal");
    for entry in std::fs::read_dir(&journal).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "journal") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let (status, stderr) = up_refused(dir.path(), "up started on a journal that lost its end");
    assert!(!status.success());
    let line = stderr
        .lines()
        .find(|l| l.contains("acknowledged commands are lost"))
        .unwrap_or_else(|| panic!("no loss named:\n{stderr}"));
    assert!(line.contains("--accept-journal-loss"), "{line}");
    // Accepted: it starts (from nothing: every command was lost), and later starts need no flag.
    Up::start_with_args(dir.path(), &["--accept-journal-loss"]).stop();
    Up::start(dir.path()).stop();
}

/// The replica is a second witness: with the journal's end lost and its tip gone too, a
/// replica holding sequences beyond the journal stops the start, naming both ends (trading on
/// would reuse those sequences, and the replica would skip the commands that bear them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_below_the_replicas_mark_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let trader = Trader::new(1);
    write_config(
        dir.path(),
        &[trader],
        "[journal]\nsnapshot_every_commands = 0\nsnapshot_every_ms = 0\n",
    );
    let up = Up::start(dir.path());
    for id in 1..=3 {
        up.deposit(trader.account, "usd", "100", id).await;
    }
    // Until the replica holds every command.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = up.metrics().await;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        let applied = value("peregrine_engine_applied_seq ");
        let replicated = value("peregrine_replica_commands_total ");
        if applied.is_some() && applied == replicated {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not catch up:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    up.stop();
    let journal = dir.path().join("data/journal");
    for entry in std::fs::read_dir(&journal).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".journal") || name == "durable.tip" {
            std::fs::remove_file(path).unwrap();
        }
    }
    let (status, stderr) = up_refused(dir.path(), "up started below the replica's mark");
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("the replica holds sequence") && stderr.contains("the journal ends at"),
        "{stderr}"
    );
}

/// Runs `peregrine up` in `dir`, expecting it to refuse to start: its exit status and stderr.
/// Panics with `started` if it is still running after 30 s (it started after all).
fn up_refused(dir: &std::path::Path, started: &str) -> (std::process::ExitStatus, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .env_clear()
        .current_dir(dir)
        .args(["up", "--log-format", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{started}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}
