//! `peregrine audit verify` on a real MariaDB identity store: an intact chain exits 0; a row
//! changed by hand in the database is named (exit 1), as is a row removed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use peregrine_auth::{Clock, Identity, IdentityConfig, Role, Store};
use sqlx::Connection;

mod support;

fn verify(url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["audit", "verify", "--database-url", url])
        .output()
        .unwrap()
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
