//! The last reconciliation of each currency in the wallet store (migration 0006), on SQLite
//! and MariaDB: recorded after a run, replaced by the next run's, read back exactly (amounts
//! beyond 2^64, a negative difference), per chain, by currency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use peregrine_wallet::reconcile::{Reconciliation, RecordedReconciliation};
use peregrine_wallet::store::WalletStore;

fn outcome(currency: &str, hot: u128, liabilities: u128) -> Reconciliation {
    let on_chain = hot + 3;
    Reconciliation {
        currency: currency.to_owned(),
        chain_decimals: 18,
        hot,
        warm: 1,
        cold: 2,
        deposits: 0,
        liabilities,
        difference: i128::try_from(on_chain).unwrap() - i128::try_from(liabilities).unwrap(),
        tolerance: 5,
    }
}

async fn last_reconciliations_round_trip(url: &str) {
    let store = WalletStore::open(url).await.unwrap();
    assert_eq!(store.reconciliations("eth").await.unwrap(), []);
    // Above 2^64 wei; then owed more than held.
    let big = outcome(
        "eth",
        40_000_000_000_000_000_000_000,
        1_500_000_000_000_000_000,
    );
    let short = outcome("usdt", 7, 2_000_000);
    store
        .record_reconciliation("eth", &big, 1_000)
        .await
        .unwrap();
    store
        .record_reconciliation("eth", &short, 1_001)
        .await
        .unwrap();
    store
        .record_reconciliation("other", &short, 1_002)
        .await
        .unwrap();
    let recorded = store.reconciliations("eth").await.unwrap();
    let want = |report: &Reconciliation, at: i64| RecordedReconciliation {
        report: report.clone(),
        reconciled_at_ms: at,
    };
    assert_eq!(recorded, [want(&big, 1_000), want(&short, 1_001)]);
    assert!(recorded[1].report.difference < 0);
    // The next run replaces the currency's row.
    let later = outcome("eth", 5, 5);
    store
        .record_reconciliation("eth", &later, 2_000)
        .await
        .unwrap();
    let recorded = store.reconciliations("eth").await.unwrap();
    assert_eq!(recorded, [want(&later, 2_000), want(&short, 1_001)]);
    store.close().await;
}

#[tokio::test]
async fn last_reconciliations_round_trip_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("wallet.db").display());
    last_reconciliations_round_trip(&url).await;
}

#[tokio::test]
async fn last_reconciliations_round_trip_in_mariadb() {
    let url = support::mysql_url("reconciliations").await;
    last_reconciliations_round_trip(&url).await;
}
