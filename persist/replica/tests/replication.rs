//! A long random run replicated into MariaDB and SQLite equals the engine; restarts from
//! snapshots with retention respecting the replica; migrations are idempotent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    Exchange, TestDb, assert_market_trades_match, assert_reader_matches, assert_replica_matches,
    assert_report_sums_match, floor, metric, sqlite_url, wait_replicated,
};
use peregrine_persist::segment::list_segments;
use peregrine_replica::{DurableSource, Replicator, migrate};

/// Replicates a live random run (the replicator follows while commands are journaled).
fn replicate_random_run(database_url: &str, exchange: &mut Exchange) {
    let registry = prometheus::Registry::new();
    let mut config = exchange.replica_config(database_url);
    // Small batches so the run spans many transactions and statements.
    config.batch_commands_max = 256;
    config.statement_rows_max = 500;
    let handle = Replicator::start(
        config,
        DurableSource::Journal(exchange.journal.clone()),
        &registry,
    )
    .unwrap();
    exchange.run(2_000);
    exchange.run(2_000);
    exchange.wait_durable();
    wait_replicated(&handle, exchange.last_seq, Duration::from_secs(40));
    assert_eq!(handle.lag().commands, 0);
    assert_eq!(handle.lag().seconds, 0.0);
    handle.readiness().unwrap();
    assert!(!exchange.reference.trades.is_empty(), "the flow trades");
    assert_eq!(
        metric(&registry, "replica_trades_total") as usize,
        exchange.reference.trades.len()
    );
    assert_eq!(
        metric(&registry, "replica_commands_total") as u64,
        exchange.last_seq
    );
    assert!(metric(&registry, "replica_batches_total") > 10.0);
    assert_eq!(handle.stop().unwrap(), exchange.last_seq);
    assert_replica_matches(database_url, exchange);
    assert_reader_matches(database_url, exchange);
    assert_market_trades_match(database_url, exchange);
    assert_report_sums_match(database_url, exchange);
    eprintln!(
        "replicated {} commands, {} trades",
        exchange.last_seq,
        exchange.reference.trades.len()
    );
}

#[test]
fn random_run_matches_the_engine_in_mariadb() {
    let db = TestDb::new("random");
    let mut exchange = Exchange::new(11, |_| {});
    replicate_random_run(&db.url, &mut exchange);
}

#[test]
fn random_run_matches_the_engine_in_sqlite() {
    let mut exchange = Exchange::new(12, |_| {});
    let url = sqlite_url(exchange.dir.path());
    replicate_random_run(&url, &mut exchange);
}

#[test]
fn migrations_apply_once_and_again() {
    let db = TestDb::new("migrate");
    migrate(&db.url).unwrap();
    migrate(&db.url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    migrate(&url).unwrap();
    migrate(&url).unwrap();
    assert_eq!(common::high_water(&db.url), 0);
    assert_eq!(common::high_water(&url), 0);
}

/// Retention deletes old segments while the replica is stopped, but keeps a snapshot at or
/// below its mark and the segments after it: the replica restarts from that snapshot.
#[test]
fn restarts_from_a_snapshot_when_retention_deleted_the_start_of_the_journal() {
    let replica_floor = floor();
    let mut exchange = Exchange::new(13, |config| {
        config.segment_bytes = 64 << 10;
        config.snapshot_every_commands = 500;
        config.snapshots_kept = 1;
        config.retention_floor = Some(replica_floor.clone());
    });
    let url = sqlite_url(exchange.dir.path());
    let registry = prometheus::Registry::new();
    let mut config = exchange.replica_config(&url);
    config.batch_commands_max = 100;
    let handle = Replicator::start(
        config,
        DurableSource::Journal(exchange.journal.clone()),
        &registry,
    )
    .unwrap();
    exchange.run(1_500);
    exchange.wait_durable();
    wait_replicated(&handle, exchange.last_seq, Duration::from_secs(20));
    let stopped_at = handle.stop().unwrap();
    assert_eq!(
        replica_floor.get(),
        stopped_at,
        "the floor follows the mark"
    );

    // The appliance goes on; snapshots and retention run while the replica is down.
    exchange.run(3_000);
    exchange.wait_durable();
    exchange.close();
    assert_eq!(
        peregrine_persist::follow::last_valid_seq(exchange.journal_dir()).unwrap(),
        exchange.last_seq
    );
    let segments = list_segments(exchange.journal_dir()).unwrap();
    eprintln!(
        "mark {stopped_at}, last {}, segments {:?}, files {:?}",
        exchange.last_seq,
        segments.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        std::fs::read_dir(exchange.journal_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    assert!(segments[0].0 > 1, "retention deleted the first segments");
    assert!(
        segments[0].0 <= stopped_at + 1,
        "retention kept every segment after the replica's mark (first {}, mark {stopped_at})",
        segments[0].0
    );

    // Restart on the closed journal: from the snapshot at or below the mark (same registry:
    // the stopped replicator removed its metrics).
    let handle = Replicator::start(
        exchange.replica_config(&url),
        DurableSource::Closed,
        &registry,
    )
    .unwrap();
    wait_replicated(&handle, exchange.last_seq, Duration::from_secs(30));
    handle.stop().unwrap();
    assert_replica_matches(&url, &exchange);
}

/// A replica ahead of the journal (another appliance's, or a journal that lost its history)
/// cannot be continued: the replicator stops with the reason, and readiness reports it.
#[test]
fn a_replica_ahead_of_its_journal_stops_and_readiness_says_why() {
    let mut first = Exchange::new(14, |_| {});
    let url = sqlite_url(first.dir.path());
    first.run(300);
    first.wait_durable();
    let handle = Replicator::start(
        first.replica_config(&url),
        DurableSource::Journal(first.journal.clone()),
        &prometheus::Registry::new(),
    )
    .unwrap();
    wait_replicated(&handle, first.last_seq, Duration::from_secs(20));
    handle.stop().unwrap();

    let mut other = Exchange::new(15, |_| {});
    other.run(0);
    other.wait_durable();
    assert!(other.last_seq < first.last_seq);
    let handle = Replicator::start(
        other.replica_config(&url),
        DurableSource::Journal(other.journal.clone()),
        &prometheus::Registry::new(),
    )
    .unwrap();
    let start = std::time::Instant::now();
    let readiness = loop {
        match handle.readiness() {
            Err(reason) if reason.contains("stopped") => break reason,
            _ if start.elapsed() > Duration::from_secs(20) => panic!("never failed"),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    // Caught at the connection, before any rebuild, naming both ends.
    assert!(
        readiness.contains(&format!(
            "the replica holds sequence {} but the journal ends at {}",
            first.last_seq, other.last_seq
        )),
        "{readiness}"
    );
    assert!(handle.is_ahead_of_journal());
    assert!(matches!(
        handle.stop(),
        Err(peregrine_replica::ReplicaError::AheadOfJournal { .. })
    ));
}
