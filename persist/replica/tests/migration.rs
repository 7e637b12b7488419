//! A kill during a MySQL schema migration: MySQL's DDL is not transactional, so a migration
//! killed midway leaves some of its statements applied and its record in `_sqlx_migrations`
//! marked unfinished (`success = FALSE`, written before its statements). The replicator must
//! complete that migration and replicate, not refuse it forever ("migration 1 is partially
//! applied") and never become ready.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::{Exchange, TestDb, assert_replica_matches, query, wait_replicated};
use peregrine_replica::db::Conn;
use peregrine_replica::{Dialect, DurableSource, Replicator};

/// `_sqlx_migrations` as sqlx creates it (sqlx-mysql 0.8), so that the state is exactly what a
/// killed migration leaves.
const SQLX_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// Leaves the database as a kill during migration `version` does: the migrations before it
/// applied and recorded, its record written unfinished, and its SQL run up to (not including)
/// the first occurrence of `cut_before`.
fn half_migrate(database_url: &str, version: i64, cut_before: &str) {
    let migrator = Dialect::MySql.migrator();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = Conn::connect(database_url).await.unwrap();
        conn.execute(SQLX_MIGRATIONS_TABLE).await.unwrap();
        let mut found = false;
        for migration in migrator.iter() {
            let mut checksum = String::new();
            for byte in migration.checksum.iter() {
                write!(checksum, "{byte:02x}").unwrap();
            }
            let done = migration.version < version;
            conn.execute(&format!(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                 execution_time) VALUES ({}, '{}', {done}, X'{checksum}', -1)",
                migration.version, migration.description
            ))
            .await
            .unwrap();
            if done {
                conn.execute(&migration.sql).await.unwrap();
                continue;
            }
            let cut = migration.sql.find(cut_before).unwrap();
            conn.execute(&migration.sql[..cut]).await.unwrap();
            found = true;
            break;
        }
        assert!(found, "migration {version} exists");
        conn.close().await;
    });
    let dirty = query(
        database_url,
        "SELECT CAST(version AS CHAR) FROM _sqlx_migrations WHERE success = FALSE",
    );
    assert_eq!(dirty, [[Some(version.to_string())]]);
}

/// Starts the replicator on the half-migrated database: it completes the migration, becomes
/// ready and replicates everything.
fn replicates_after_half_migration(test: &str, seed: u64, version: i64, cut_before: &str) {
    let db = TestDb::new(test);
    half_migrate(&db.url, version, cut_before);
    let mut exchange = Exchange::new(seed, |_| {});
    exchange.run(1_500);
    exchange.wait_durable();
    let handle = Replicator::start(
        exchange.replica_config(&db.url),
        DurableSource::Journal(exchange.journal.clone()),
        &prometheus::Registry::new(),
    )
    .unwrap();
    wait_replicated(&handle, exchange.last_seq, Duration::from_secs(30));
    handle.readiness().unwrap();
    handle.stop().unwrap();
    assert_replica_matches(&db.url, &exchange);
    let migrations = query(
        &db.url,
        "SELECT CAST(version AS CHAR), CAST(success AS CHAR) FROM _sqlx_migrations \
         ORDER BY version",
    );
    let want: Vec<Vec<Option<String>>> = Dialect::MySql
        .migrator()
        .iter()
        .map(|m| vec![Some(m.version.to_string()), Some("1".to_owned())])
        .collect();
    assert_eq!(migrations, want, "every migration recorded as applied");
    // The indexes of the half-applied migrations are all there.
    let indexes = query(
        &db.url,
        "SELECT CAST(COUNT(DISTINCT index_name) AS CHAR) FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND table_name = 'trades'",
    );
    // PRIMARY, by market, maker, taker (migration 1), by maker and taker order (migration 2).
    assert_eq!(indexes, [[Some("6".to_owned())]]);
}

#[test]
fn a_first_migration_killed_midway_is_completed() {
    // Killed after the seed row of replication_state and the currencies table.
    replicates_after_half_migration("half_migration_1", 71, 1, "CREATE TABLE markets");
}

#[test]
fn a_first_migration_killed_before_its_first_statement_is_completed() {
    replicates_after_half_migration("half_migration_1_empty", 72, 1, "CREATE TABLE");
}

#[test]
fn an_index_migration_killed_between_its_indexes_is_completed() {
    replicates_after_half_migration(
        "half_migration_2",
        73,
        2,
        "CREATE INDEX trades_by_taker_order",
    );
}
