//! The one four-eyes proposal store, on real MariaDB and on SQLite: migration 0006 moves the
//! adjustments and fee changes a store of the previous version holds into `proposals`, ids
//! kept (an adjustment's id keys its journaled commands) and counting on per kind; a proposal
//! is reviewed once and never by its creator; a claim keeps its first sequence; a fee change
//! claimed after another of the same market and group supersedes it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::borrow::Cow;

use peregrine_auth::Store;
use peregrine_auth::store::{
    NewAdjustment, NewFeeChange, ProposalKind, ProposalState, WithdrawLimit,
};
use sqlx::migrate::{Migration, MigrationType, Migrator};

type Files = [(i64, &'static str, &'static str); 5];

/// Migrations 1 to 5 as the previous version embedded them (same descriptions and SQL: the
/// checksums the store's migrator then finds match).
const MYSQL: Files = [
    (
        1,
        "identity",
        include_str!("../migrations/mysql/0001_identity.sql"),
    ),
    (
        2,
        "api keys",
        include_str!("../migrations/mysql/0002_api_keys.sql"),
    ),
    (
        3,
        "kyc rbac",
        include_str!("../migrations/mysql/0003_kyc_rbac.sql"),
    ),
    (
        4,
        "operators",
        include_str!("../migrations/mysql/0004_operators.sql"),
    ),
    (
        5,
        "fee changes",
        include_str!("../migrations/mysql/0005_fee_changes.sql"),
    ),
];
const SQLITE: Files = [
    (
        1,
        "identity",
        include_str!("../migrations/sqlite/0001_identity.sql"),
    ),
    (
        2,
        "api keys",
        include_str!("../migrations/sqlite/0002_api_keys.sql"),
    ),
    (
        3,
        "kyc rbac",
        include_str!("../migrations/sqlite/0003_kyc_rbac.sql"),
    ),
    (
        4,
        "operators",
        include_str!("../migrations/sqlite/0004_operators.sql"),
    ),
    (
        5,
        "fee changes",
        include_str!("../migrations/sqlite/0005_fee_changes.sql"),
    ),
];

fn previous(files: &Files) -> Migrator {
    let migrations = files
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// Rows a store of version 5 holds: two adjustments (one approved), two fee changes (one
/// approved and applied at sequence 42).
const OLD_ROWS: &str = "\
    INSERT INTO adjustments (account, currency, amount, reason, state, creator, created_at_ms, \
        reviewer, reviewed_at_ms) VALUES \
        (7, 'usd', '-12.5', 'chargeback', 'approved', 'IDAAAA', 1, 'IDBBBB', 2), \
        (8, 'btc', '0.1', 'goodwill', 'pending', 'IDAAAA', 3, NULL, NULL); \
    INSERT INTO fee_changes (market, fee_group, maker_ppm, taker_ppm, state, creator, \
        created_at_ms, reviewer, reviewed_at_ms, applied_seq) VALUES \
        ('btcusd', 1, 400, 500, 'approved', 'IDAAAA', 4, 'IDBBBB', 5, 42), \
        ('btcusd', 1, 0, 0, 'pending', 'IDAAAA', 6, NULL, NULL, NULL);";

/// Checks what 0006 made of [`OLD_ROWS`] and the store's rules over it.
async fn check_migrated(store: &Store) {
    let first = store.adjustment(1).await.unwrap().unwrap();
    assert_eq!(
        (first.account, first.amount.as_str(), first.state),
        (7, "-12.5", ProposalState::Approved)
    );
    assert_eq!(first.reviewer.as_deref(), Some("IDBBBB"));
    let pending = store
        .adjustments_in(ProposalState::Pending, 10)
        .await
        .unwrap();
    assert_eq!(pending.iter().map(|a| a.id).collect::<Vec<_>>(), [2]);
    let applied = store.fee_change(1).await.unwrap().unwrap();
    assert_eq!(
        (applied.applied_seq, applied.claimed_seq),
        (Some(42), Some(42))
    );
    assert_eq!(
        (applied.maker_ppm, applied.taker_ppm, applied.group),
        (400, 500, 1)
    );

    // Ids count on per kind; a new kind starts at 1.
    let adjustment = NewAdjustment {
        account: 9,
        currency: "usd",
        amount: "1",
        reason: "test",
        creator: "IDAAAA",
        now_ms: 7,
    };
    assert_eq!(store.insert_adjustment(&adjustment).await.unwrap(), 3);
    let change = NewFeeChange {
        market: "btcusd",
        group: 1,
        maker_ppm: 1,
        taker_ppm: 2,
        creator: "IDAAAA",
        now_ms: 8,
    };
    assert_eq!(store.insert_fee_change(&change).await.unwrap(), 3);
    let limit = WithdrawLimit {
        level: 1,
        currency: "eth".to_owned(),
        limit_24h: "0.1".to_owned(),
        limit_30d: "0.2".to_owned(),
    };
    let kind = ProposalKind::WithdrawLimit;
    let id = store.propose(kind, &limit, "IDAAAA", 9).await.unwrap();
    assert_eq!(id, 1);

    // Never by the creator; once.
    let approved = ProposalState::Approved;
    assert!(
        !store
            .review_proposal(kind, id, "IDAAAA", approved, 10)
            .await
            .unwrap()
    );
    assert!(
        store
            .review_proposal(kind, id, "IDBBBB", approved, 10)
            .await
            .unwrap()
    );
    let rejected = ProposalState::Rejected;
    assert!(
        !store
            .review_proposal(kind, id, "IDCCCC", rejected, 11)
            .await
            .unwrap()
    );
    assert_eq!(store.withdraw_limits_in_force().await.unwrap(), [limit]);

    // The pending fee change 2, approved and claimed, supersedes the unrecorded claim of 3.
    for id in [2, 3] {
        assert!(
            store
                .review_fee_change(id, "IDBBBB", approved, 12)
                .await
                .unwrap()
        );
    }
    assert_eq!(store.claim_fee_change(3, 50).await.unwrap(), Some(50));
    assert_eq!(store.claim_fee_change(3, 60).await.unwrap(), Some(50));
    let third = store.fee_change(3).await.unwrap().unwrap();
    assert_eq!(store.fee_change_superseded_by(&third).await.unwrap(), None);
    let second = store.fee_change(2).await.unwrap().unwrap();
    let newer = store.fee_change_superseded_by(&second).await.unwrap();
    assert_eq!(newer.map(|c| c.id), Some(3));
    assert!(store.fee_change_applied(3, 61).await.unwrap());
    assert!(!store.fee_change_applied(3, 62).await.unwrap());
    assert_eq!(
        store.fee_change(3).await.unwrap().unwrap().applied_seq,
        Some(61)
    );
}

#[tokio::test]
async fn mariadb_moves_version_5_rows_into_proposals() {
    let url = common::mysql_url("proposals_migration").await;
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    previous(&MYSQL).run(&pool).await.unwrap();
    sqlx::raw_sql(OLD_ROWS).execute(&pool).await.unwrap();
    pool.close().await;
    let store = Store::open(&url).await.unwrap();
    check_migrated(&store).await;
    store.close().await;
}

#[tokio::test]
async fn sqlite_moves_version_5_rows_into_proposals() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("identity.db").display());
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
    let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
        .await
        .unwrap();
    previous(&SQLITE).run(&pool).await.unwrap();
    sqlx::raw_sql(OLD_ROWS).execute(&pool).await.unwrap();
    pool.close().await;
    let store = Store::open(&url).await.unwrap();
    check_migrated(&store).await;
    store.close().await;
}
