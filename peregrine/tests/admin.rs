//! `peregrine admin create-operator` on a real SQLite identity store: the operator exists with
//! its role, active; a taken address, a member role or no password are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

use peregrine_auth::{Role, Store, UserState};

fn create_operator(
    data_dir: &std::path::Path,
    email: &str,
    role: &str,
    password: Option<&str>,
) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["admin", "create-operator", "--email", email, "--role", role])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("PEREGRINE_OPERATOR_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(password) = password {
        writeln!(stdin, "{password}").unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn an_operator_is_made_on_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let out = create_operator(
        dir.path(),
        "Ops@Example.com",
        "admin",
        Some("a long operator password"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("sqlite://{}", dir.path().join("identity.db").display());
    let store = Store::open(&url).await.unwrap();
    let user = store
        .user_by_email("ops@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.role, Role::Admin);
    assert_eq!(user.state, UserState::Active);
    store.close().await;

    let again = create_operator(
        dir.path(),
        "ops@example.com",
        "admin",
        Some("a long operator password"),
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("email.taken"));
    let member = create_operator(
        dir.path(),
        "m@example.com",
        "member",
        Some("a long operator password"),
    );
    assert_eq!(member.status.code(), Some(2));
    let no_password = create_operator(dir.path(), "n@example.com", "admin", None);
    assert_eq!(no_password.status.code(), Some(2));
    let store = Store::open(&url).await.unwrap();
    assert!(
        store
            .user_by_email("m@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .user_by_email("n@example.com")
            .await
            .unwrap()
            .is_none()
    );
}
