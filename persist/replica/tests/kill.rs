//! SIGKILL at random moments while replicating into MariaDB, over many cycles: a kill may land
//! between the ledger connection's commit and the main one's, leaving a batch's ledger rows in
//! the database beyond the mark. Each restart picks another batch size (as a restart with
//! another durable bound would), so its first batch covers part of that orphan ledger part.
//! The replica must converge to the journal: no gap, no duplicate, the same rows as a fresh
//! replication of the same journal. And SIGKILL during the first migration (MySQL's DDL is not
//! transactional): the next start completes it.
//!
//! The child is this test binary itself, re-run on [`child_replicates_until_killed`] with
//! [`CHILD_ENV`] set: it shares the test's engine configuration and needs no binary of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Exchange, TestDb, assert_replica_matches, high_water, query, wait_replicated};
use peregrine_hotpath::sim::Rng;
use peregrine_replica::{DurableSource, ReplicaConfig, Replicator};

/// Set in the child only: `<database url> <journal dir> <batch commands>`.
const CHILD_ENV: &str = "PEREGRINE_REPLICA_KILL_CHILD";
/// Bound on a child's life should the parent never kill it.
const CHILD_LIFE_MAX: Duration = Duration::from_secs(60);
/// Kill cycles, at least and at most; past the minimum, cycles go on only until a kill has
/// left a ledger part beyond the mark (the state this test is about), and never past
/// `TOTAL_MAX`, so the test stays well under two minutes.
const CYCLES_MIN: usize = 12;
const CYCLES_MAX: usize = 40;
const TOTAL_MAX: Duration = Duration::from_secs(90);
/// A child lives this long at least before it is killed, plus a random part up to
/// `KILL_JITTER_MS`: long enough to connect and commit a few batches.
const KILL_AFTER_MIN_MS: u64 = 150;
const KILL_JITTER_MS: u64 = 450;
/// Batch sizes the children pick from: small, so that a child commits many batches and a kill
/// often lands inside one; different per child, so that batch boundaries move across restarts.
const BATCH_COMMANDS_MIN: u64 = 3;
const BATCH_COMMANDS_SPREAD: u64 = 30;
/// Databases migrated under kills, at least and at most; past the minimum, only until
/// `MIGRATION_UNFINISHED_MIN` kills have left a migration unfinished.
const MIGRATION_DATABASES_MIN: usize = 3;
const MIGRATION_DATABASES_MAX: usize = 15;
const MIGRATION_UNFINISHED_MIN: usize = 3;
/// Children killed per database (until one finished the migrations) before one is left to
/// run.
const MIGRATION_KILLS_PER_DATABASE: usize = 4;
/// The kill comes within this long of a child's start, at first: its migrations take tens of
/// milliseconds after a start of about as long here (the range narrows to them as it goes).
const MIGRATION_KILL_WITHIN_MS: u64 = 200;
/// The narrowed range stays at least this wide: the window moves with the load.
const MIGRATION_KILL_SPREAD_MIN_MS: u64 = 10;
/// Commands journaled: more than the children replicate in `CYCLES_MIN` cycles, with a
/// snapshot every `SNAPSHOT_EVERY_COMMANDS` so that a child's follower starts near the mark.
const COMMANDS: usize = 80_000;
const SNAPSHOT_EVERY_COMMANDS: u64 = 5_000;
/// The tables compared row by row with a fresh replication: (table, key, column not compared).
/// Every column is compared: a row depends on neither crashes nor batch boundaries (a filled
/// order's `price` once did, being 0 unless it was accepted in the batch that filled it).
const TABLES: &[(&str, &str, Option<&str>)] = &[
    ("replication_state", "id", None),
    ("currencies", "currency_id", None),
    ("markets", "market_id", None),
    ("market_fee_tiers", "market_id, tier", None),
    ("accounts", "account_id", None),
    ("orders", "order_id", None),
    ("order_events", "seq, event_index", None),
    ("trades", "trade_id", None),
    ("ledger_entries", "seq, entry_index", None),
    ("deposits", "seq", None),
    ("withdrawals", "seq", None),
];

fn replica_config(database_url: &str, journal_dir: &str, batch_commands: usize) -> ReplicaConfig {
    let mut config = ReplicaConfig::new(database_url, journal_dir, common::engine_config());
    config.batch_commands_max = batch_commands;
    config.backoff_min = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(200);
    config.poll_interval = Duration::from_millis(5);
    config.operation_timeout = Duration::from_secs(10);
    assert!(
        config.ledger_connection,
        "the ledger goes on its own connection"
    );
    config
}

/// The child: replicates the closed journal until killed. Does nothing in a normal test run.
#[test]
fn child_replicates_until_killed() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(' ').collect();
    let [url, journal_dir, batch] = parts[..] else {
        panic!("{CHILD_ENV}: {spec:?}");
    };
    let config = replica_config(url, journal_dir, batch.parse().unwrap());
    let handle =
        Replicator::start(config, DurableSource::Closed, &prometheus::Registry::new()).unwrap();
    let started = Instant::now();
    // Bounded by CHILD_LIFE_MAX; the parent kills it long before.
    while started.elapsed() < CHILD_LIFE_MAX {
        if let Err(failure) = handle.readiness()
            && failure.starts_with("replicator stopped")
        {
            eprintln!("child: {failure}");
            std::process::exit(3);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Ledger rows beyond the mark: what a kill between the two commits leaves.
fn ledger_rows_beyond_mark(database_url: &str) -> u64 {
    let rows = query(
        database_url,
        "SELECT CAST(COUNT(*) AS CHAR) FROM ledger_entries \
         WHERE seq > (SELECT high_water_seq FROM replication_state WHERE id = 1)",
    );
    rows[0][0].as_deref().unwrap().parse().unwrap()
}

/// Every row of `table` in key order, each as one text, without the column `skip`.
fn table_rows(database_url: &str, table: &str, key: &str, skip: Option<&str>) -> Vec<String> {
    let columns = query(
        database_url,
        &format!(
            "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = '{table}' \
             ORDER BY ordinal_position"
        ),
    );
    assert!(!columns.is_empty(), "table {table}");
    let fields: Vec<String> = columns
        .iter()
        .filter(|c| c[0].as_deref() != skip)
        .map(|c| format!("IFNULL(CAST({} AS CHAR), 'NULL')", c[0].as_deref().unwrap()))
        .collect();
    query(
        database_url,
        &format!(
            "SELECT CONCAT_WS('|', {}) FROM {table} ORDER BY {key}",
            fields.join(", ")
        ),
    )
    .into_iter()
    .map(|row| row[0].clone().unwrap())
    .collect()
}

#[test]
fn sigkill_at_random_moments_converges_to_the_journal() {
    let db = TestDb::new("sigkill");
    let mut exchange = Exchange::new(61, |config| {
        config.snapshot_every_commands = SNAPSHOT_EVERY_COMMANDS;
        // Nothing replicated yet: retention keeps every segment.
        config.retention_floor = Some(common::floor());
    });
    exchange.run(COMMANDS);
    exchange.wait_durable();
    exchange.close();
    let journal_dir = exchange.journal_dir().display().to_string();
    assert!(
        !journal_dir.contains(' '),
        "the child's spec splits on spaces"
    );
    // Migrated first: this test is about the batches (a kill during migration is another's).
    peregrine_replica::migrate(&db.url).unwrap();

    let mut rng = Rng::new(0x5EED_0061);
    let started = Instant::now();
    let mut cycles = 0_usize;
    let mut orphaned_kills = 0_usize;
    let mut repaired_restarts = 0_usize;
    let mut previous_orphan = false;
    while cycles < CYCLES_MAX
        && started.elapsed() < TOTAL_MAX
        && (cycles < CYCLES_MIN || orphaned_kills == 0)
    {
        cycles += 1;
        let batch = BATCH_COMMANDS_MIN + rng.below(BATCH_COMMANDS_SPREAD);
        let before = high_water(&db.url);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_replicates_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{} {journal_dir} {batch}", db.url))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(
            KILL_AFTER_MIN_MS + rng.below(KILL_JITTER_MS),
        ));
        let exited_early = child.try_wait().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            exited_early.is_none(),
            "cycle {cycles} (batch {batch}, mark {before}): the child stopped by itself \
             ({exited_early:?}): {stderr}"
        );
        let mark = high_water(&db.url);
        assert!(mark >= before, "the mark never goes back");
        if previous_orphan && mark > before {
            repaired_restarts += 1;
        }
        let beyond = ledger_rows_beyond_mark(&db.url);
        previous_orphan = beyond > 0;
        if previous_orphan {
            orphaned_kills += 1;
        }
        eprintln!(
            "cycle {cycles}: batch {batch}, mark {before} -> {mark}, ledger rows beyond the \
             mark {beyond}"
        );
        if mark == exchange.last_seq {
            // Caught up: a kill can land in no batch any more.
            break;
        }
    }
    eprintln!(
        "{cycles} kills in {:?}, {orphaned_kills} left ledger rows beyond the mark, \
         {repaired_restarts} restarts went on past them",
        started.elapsed()
    );
    assert!(
        orphaned_kills > 0,
        "no kill landed between the ledger's commit and the mark's in {cycles} cycles"
    );

    // A last run to the end, with yet another batch size, then the same journal replicated
    // fresh: the two replicas hold the same rows.
    let handle = Replicator::start(
        replica_config(&db.url, &journal_dir, 29),
        DurableSource::Closed,
        &prometheus::Registry::new(),
    )
    .unwrap();
    wait_replicated(&handle, exchange.last_seq, Duration::from_secs(60));
    handle.stop().unwrap();
    assert_eq!(ledger_rows_beyond_mark(&db.url), 0);
    assert_replica_matches(&db.url, &exchange);

    let fresh = TestDb::new("sigkill_fresh");
    let handle = Replicator::start(
        replica_config(&fresh.url, &journal_dir, 4_096),
        DurableSource::Closed,
        &prometheus::Registry::new(),
    )
    .unwrap();
    wait_replicated(&handle, exchange.last_seq, Duration::from_secs(60));
    handle.stop().unwrap();
    for &(table, key, skip) in TABLES {
        let killed = table_rows(&db.url, table, key, skip);
        let reference = table_rows(&fresh.url, table, key, skip);
        assert_eq!(killed.len(), reference.len(), "{table}: row count");
        for (index, (got, want)) in killed.iter().zip(&reference).enumerate() {
            assert_eq!(got, want, "{table}: row {index}");
        }
    }
}

/// Where a kill during the first migration left the schema.
#[derive(Debug, PartialEq)]
enum Migrated {
    /// No migration recorded: killed before the first began.
    NotStarted,
    /// A migration recorded as started and not finished: the state this test is about.
    Unfinished,
    /// Every migration finished.
    Done,
}

fn migrated(database_url: &str) -> Migrated {
    let tables = query(
        database_url,
        "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_name = '_sqlx_migrations'",
    );
    if tables[0][0].as_deref() == Some("0") {
        return Migrated::NotStarted;
    }
    let rows = query(
        database_url,
        "SELECT CAST(COUNT(*) AS CHAR), CAST(COALESCE(SUM(success), 0) AS CHAR) \
         FROM _sqlx_migrations",
    );
    let count: usize = rows[0][0].as_deref().unwrap().parse().unwrap();
    let done: usize = rows[0][1].as_deref().unwrap().parse().unwrap();
    let migrations = peregrine_replica::Dialect::MySql.migrator().iter().count();
    match (count, done) {
        (0, _) => Migrated::NotStarted,
        (count, done) if count == done && done == migrations => Migrated::Done,
        _ => Migrated::Unfinished,
    }
}

/// Kills during the first migration: per database, a few children killed within
/// `MIGRATION_KILL_WITHIN_MS` of their start (the first connects and migrates; the next ones
/// complete what the one before left), then a replicator that must reach the journal's end.
#[test]
fn sigkill_during_the_first_migration_never_bricks_the_replica() {
    let mut exchange = Exchange::new(62, |_| {});
    exchange.run(500);
    exchange.wait_durable();
    exchange.close();
    let journal_dir = exchange.journal_dir().display().to_string();
    assert!(
        !journal_dir.contains(' '),
        "the child's spec splits on spaces"
    );

    let mut rng = Rng::new(0x5EED_0062);
    let started = Instant::now();
    let mut databases = 0_usize;
    let mut unfinished_kills = 0_usize;
    // The range the kill delays are drawn from, narrowed as kills land before or after the
    // migrations: their timing depends on the machine's load.
    let mut kill_after_ms = (0_u64, MIGRATION_KILL_WITHIN_MS);
    while databases < MIGRATION_DATABASES_MAX
        && started.elapsed() < TOTAL_MAX
        && (databases < MIGRATION_DATABASES_MIN || unfinished_kills < MIGRATION_UNFINISHED_MIN)
    {
        databases += 1;
        let db = TestDb::new(&format!("sigkill_migration_{databases}"));
        let mut states = Vec::with_capacity(MIGRATION_KILLS_PER_DATABASE);
        for _ in 0..MIGRATION_KILLS_PER_DATABASE {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "child_replicates_until_killed",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, format!("{} {journal_dir} 50", db.url))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let delay_ms = kill_after_ms.0 + rng.below(kill_after_ms.1 - kill_after_ms.0 + 1);
            std::thread::sleep(Duration::from_millis(delay_ms));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            let state = migrated(&db.url);
            // Narrow the kill delays to the migrations' window on this machine, now.
            match state {
                Migrated::NotStarted => {
                    kill_after_ms.0 = delay_ms.min(kill_after_ms.1 - MIGRATION_KILL_SPREAD_MIN_MS);
                }
                Migrated::Done => {
                    kill_after_ms.1 = delay_ms.max(kill_after_ms.0 + MIGRATION_KILL_SPREAD_MIN_MS);
                }
                Migrated::Unfinished => unfinished_kills += 1,
            }
            let done = state == Migrated::Done;
            states.push((delay_ms, state));
            if done {
                break;
            }
        }
        eprintln!("database {databases}: kill delay (ms) and state after it {states:?}");
        let handle = Replicator::start(
            replica_config(&db.url, &journal_dir, 50),
            DurableSource::Closed,
            &prometheus::Registry::new(),
        )
        .unwrap();
        wait_replicated(&handle, exchange.last_seq, Duration::from_secs(15));
        handle.readiness().unwrap();
        handle.stop().unwrap();
        assert_eq!(migrated(&db.url), Migrated::Done);
        assert_replica_matches(&db.url, &exchange);
    }
    eprintln!(
        "{databases} databases in {:?}, {unfinished_kills} kills left a migration unfinished",
        started.elapsed()
    );
    assert!(
        unfinished_kills > 0,
        "no kill landed during a migration in {databases} databases"
    );
}
