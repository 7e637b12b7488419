//! Killing the replicator (between batches, or inside a transaction by cutting its connection
//! before or right after `COMMIT`) or restarting the appliance loses and duplicates nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::{Exchange, TestDb, assert_replica_matches, high_water, metric, wait_replicated};
use peregrine_replica::{DurableSource, Replicator};

#[test]
fn stopping_between_batches_and_restarting_the_appliance_loses_nothing() {
    let db = TestDb::new("kill");
    let mut exchange = Exchange::new(21, |_| {});
    exchange.run(3_000);
    exchange.wait_durable();
    let mut config = exchange.replica_config(&db.url);
    config.batch_commands_max = 20;
    let handle = Replicator::start(
        config.clone(),
        DurableSource::Journal(exchange.journal.clone()),
        &prometheus::Registry::new(),
    )
    .unwrap();
    handle.wait_high_water(500, Duration::from_secs(20));
    // Dropped mid-run: whatever batch was being read or written is abandoned.
    drop(handle);
    let killed_at = high_water(&db.url);
    assert!(
        killed_at >= 500 && killed_at < exchange.last_seq,
        "stopped mid-run at {killed_at}"
    );

    // The appliance restarts too (recovery from the journal), then trades on.
    exchange.restart();
    exchange.run(1_000);
    exchange.wait_durable();
    let handle = Replicator::start(
        config,
        DurableSource::Journal(exchange.journal.clone()),
        &prometheus::Registry::new(),
    )
    .unwrap();
    wait_replicated(&handle, exchange.last_seq, Duration::from_secs(30));
    handle.stop().unwrap();
    assert_replica_matches(&db.url, &exchange);
}

/// Cuts the connection when the client sends `COMMIT`: before it reaches the server (the
/// transaction is rolled back) or right after (the commit's answer is lost). With the ledger on
/// its own connection, the first `COMMIT` is the ledger's (the main one waits for it), so a
/// forwarded cut leaves a batch's ledger rows committed without its mark.
fn cut_at_commit(test: &str, seed: u64, forward_commit: bool, ledger_connection: bool) {
    let db = TestDb::new(test);
    let proxy = Proxy::start(&db.url);
    let mut exchange = Exchange::new(seed, |_| {});
    exchange.run(2_500);
    exchange.wait_durable();
    let registry = prometheus::Registry::new();
    let mut config = exchange.replica_config(&proxy.url(&db.url));
    config.batch_commands_max = 40;
    config.ledger_connection = ledger_connection;
    let handle = Replicator::start(
        config,
        DurableSource::Journal(exchange.journal.clone()),
        &registry,
    )
    .unwrap();
    handle.wait_high_water(1, Duration::from_secs(20));
    // COM_QUERY (0x03) "COMMIT": only the replicator's commits look like this.
    proxy.arm_cut_on(b"\x03COMMIT", forward_commit);
    let cut_before = handle.high_water_seq();
    assert!(cut_before < exchange.last_seq, "the cut lands mid-run");
    exchange.run(500);
    exchange.wait_durable();
    wait_replicated(&handle, exchange.last_seq, Duration::from_secs(40));
    assert!(!proxy.is_armed(), "the cut happened");
    assert!(
        metric(&registry, "replica_errors_total") >= 1.0,
        "the replicator saw the cut"
    );
    assert!(proxy.accepted() >= 2, "the replicator reconnected");
    handle.stop().unwrap();
    assert_replica_matches(&db.url, &exchange);
}

#[test]
fn cut_before_commit_rolls_back_and_retries() {
    cut_at_commit("cut_before", 22, false, false);
}

#[test]
fn cut_after_commit_is_resolved_by_the_high_water_mark() {
    cut_at_commit("cut_after", 23, true, false);
}

#[test]
fn cut_before_the_ledger_commit_rolls_both_back_and_retries() {
    cut_at_commit("cut_ledger_before", 24, false, true);
}

#[test]
fn a_ledger_committed_without_its_mark_is_kept_by_the_retry() {
    cut_at_commit("cut_ledger_after", 25, true, true);
}

/// Ledger rows beyond the mark: what a kill between the ledger's commit and the mark's leaves.
fn ledger_rows_beyond_mark(database_url: &str) -> u64 {
    let rows = common::query(
        database_url,
        "SELECT CAST(COUNT(*) AS CHAR) FROM ledger_entries \
         WHERE seq > (SELECT high_water_seq FROM replication_state WHERE id = 1)",
    );
    rows[0][0].as_deref().unwrap().parse().unwrap()
}

/// A replicator stopped for good right after its ledger's commit (as a SIGKILL there leaves
/// it), then started again with other batch boundaries, so that its first batch holds that
/// orphan ledger part and more: the range holds some but not all of its ledger rows. Every
/// start refused it (`LedgerPartial`) until the range was repaired instead.
#[test]
fn a_ledger_part_orphaned_by_a_crash_is_repaired_after_a_restart() {
    let db = TestDb::new("orphan_ledger");
    let proxy = Proxy::start(&db.url);
    let mut exchange = Exchange::new(26, |_| {});
    exchange.run(2_500);
    exchange.wait_durable();
    let mut config = exchange.replica_config(&proxy.url(&db.url));
    config.batch_commands_max = 40;
    // After the cut the replicator waits this long before reconnecting: the test stops it
    // first, as a kill would have.
    config.backoff_min = Duration::from_secs(60);
    config.backoff_max = Duration::from_secs(60);
    // The first COMMIT after arming is a ledger commit only when the batch in flight has
    // ledger rows and its ledger commit had not passed yet; otherwise the cut lands after a
    // main commit and orphans nothing. So cut again, at most this many times, until it does.
    const CUT_ATTEMPTS_MAX: u32 = 10;
    let mut orphans = 0;
    for _ in 0..CUT_ATTEMPTS_MAX {
        let handle = Replicator::start(
            config.clone(),
            DurableSource::Journal(exchange.journal.clone()),
            &prometheus::Registry::new(),
        )
        .unwrap();
        handle.wait_high_water(1, Duration::from_secs(20));
        // COM_QUERY "COMMIT", forwarded: when it is the ledger's (the main one waits for it),
        // the ledger part is in and the connections die before the mark moves.
        proxy.arm_cut_on(b"\x03COMMIT", true);
        exchange.run(500);
        exchange.wait_durable();
        let start = std::time::Instant::now();
        // Bounded: the cut and the error it causes come within a batch.
        while proxy.is_armed() || handle.last_error().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no cut at a commit"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(handle);
        orphans = ledger_rows_beyond_mark(&db.url);
        if orphans > 0 {
            break;
        }
    }
    assert!(
        orphans > 0,
        "no cut in {CUT_ATTEMPTS_MAX} left a ledger part beyond the mark"
    );

    // Started again with larger batches: the first one covers the orphan part and more.
    let mut config = exchange.replica_config(&db.url);
    config.batch_commands_max = 97;
    let handle = Replicator::start(
        config,
        DurableSource::Journal(exchange.journal.clone()),
        &prometheus::Registry::new(),
    )
    .unwrap();
    wait_replicated(&handle, exchange.last_seq, Duration::from_secs(40));
    handle.stop().unwrap();
    assert_eq!(ledger_rows_beyond_mark(&db.url), 0);
    assert_replica_matches(&db.url, &exchange);
}

/// The ledger part on its own: written once, found whole on a retry, and a partial range (the
/// rows of an earlier, shorter batch whose main part never committed: a kill between the two
/// commits) repaired by the retry, not refused. It was refused (`LedgerPartial`) until a
/// replicator killed there could never start again.
#[test]
fn the_ledger_part_is_written_once_and_a_partial_one_is_repaired() {
    let db = TestDb::new("ledger_part");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = peregrine_replica::db::Conn::connect(&db.url).await.unwrap();
        conn.migrate().await.unwrap();
        let row = |seq: u64, index: u32| {
            format!(
                "INSERT INTO ledger_entries VALUES ({seq}, {index}, 'account', 1, 1, 5, -5, 5, \
                 0, 'test', 0)"
            )
        };
        let statements = vec![row(11, 0), row(12, 0)];
        conn.write_ledger(10, 12, 2, &statements).await.unwrap();
        // A retry of the same part finds it whole and writes nothing (a second insert of the
        // same keys would fail).
        conn.write_ledger(10, 12, 2, &statements).await.unwrap();
        // The range (12, 15] holds the rows of (12, 13] only, as a batch that ended at 13 and
        // committed its ledger part but not its mark leaves it: the range is rewritten whole
        // (inserting row 13 again without removing it first would fail on its key).
        conn.execute(&row(13, 0)).await.unwrap();
        let batch = vec![row(13, 0), row(14, 0), row(15, 0)];
        conn.write_ledger(12, 15, 3, &batch).await.unwrap();
        // Statements that disagree with the batch's row count are a bug: refused, nothing
        // written, and not retried.
        let error = conn
            .write_ledger(15, 16, 2, &[row(16, 0)])
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                peregrine_replica::ReplicaError::LedgerMismatch {
                    from_seq: 15,
                    to_seq: 16,
                    written: 1,
                    expected: 2,
                }
            ),
            "{error}"
        );
        assert!(!error.is_retryable());
        conn.close().await;
    });
    let rows = common::query(
        &db.url,
        "SELECT CONCAT(CAST(seq AS CHAR), ':', CAST(entry_index AS CHAR)) FROM ledger_entries \
         ORDER BY seq, entry_index",
    );
    let keys: Vec<String> = rows.into_iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(keys, ["11:0", "12:0", "13:0", "14:0", "15:0"]);
}
