//! Issue #14's "done when", tried as a new user would, against `peregrine up` (the binary) with
//! a real OpenBao (VAULT_ADDR), a real SMTP server (SMTP_ADDR; the mail read from
//! SMTP_MAIL_DIR) and the embedded SQLite identity store: sign up over HTTP, read the code from
//! the mail, verify, log in, enrol and enable 2FA, create an HMAC API key with the `trade`
//! scope, get credited through the control API, place an order over REST signed with the new
//! key, register an ed25519 key and place an order over QUIC with the Rust client, and see both
//! orders. Then: a key without `trade` is refused an order; a revoked key stops working within
//! 1 s on the running appliance. The README's walkthrough is this flow.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use peregrine_client::Placed;
use peregrine_hotpath::Side;
use peregrine_proto::frame::RejectCode;
use serde_json::{Value, json};
use support::identity::*;
use support::{Up, http_client, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_signs_up_enables_2fa_and_trades_over_rest_and_quic_with_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (up, session, account, _, url) = up_with_a_user(dir.path(), "trader").await;
    assert!(
        up.lines.iter().any(|l| l.starts_with("identity ")),
        "{:?}",
        up.lines
    );
    let rest = up.rest.clone();

    // An HMAC key that may trade, made with a fresh code.
    let (kid, secret) = create_hmac_key(&session, &url, &["read", "trade"], 1).await;
    let key = (kid.as_str(), secret.as_str());
    let waited = until_balance_status(&rest, key, 200).await;
    assert!(
        waited < CHANGE_WITHIN,
        "the new key worked after {waited:?}"
    );

    // Credited through the control API, then an order over REST with the new key.
    up.deposit(account, "usd", "100000", 1).await;
    let (status, placed) = signed(&rest, key, "POST", ORDERS, Some(&order())).await;
    assert_eq!(status, 201, "REST order: {placed}");

    // An ed25519 key for the QUIC logon, registered the same way; an order with the client.
    let (quic_kid, seed) = register_ed25519_key(&session, &url, -1).await;
    let client = connect_within(&up, quic_kid, &seed, CHANGE_WITHIN).await;
    assert_eq!(client.account().0, account);
    let quic_order = client.limit("btcusd", Side::Buy, "39000", "0.01").unwrap();
    let placed = client.place(quic_order).await.unwrap();
    assert!(
        matches!(placed, Placed::Ack { .. }),
        "QUIC order: {placed:?}"
    );

    // Both orders, read with the HMAC key.
    let (status, orders) = signed(&rest, key, "GET", ORDERS, None).await;
    assert_eq!(status, 200, "{orders}");
    let prices: Vec<&str> = orders
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["price"].as_str())
        .collect();
    assert!(
        prices.contains(&"40000") && prices.contains(&"39000"),
        "{orders}"
    );
    client.close().await;
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_trade_is_refused_an_order_and_a_revoked_key_stops_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let (up, session, account, _, url) = up_with_a_user(dir.path(), "reader").await;
    let rest = up.rest.clone();
    let (kid, secret) = create_hmac_key(&session, &url, &["read"], 1).await;
    let key = (kid.as_str(), secret.as_str());
    until_balance_status(&rest, key, 200).await;
    up.deposit(account, "usd", "100000", 1).await;

    // No `trade` scope: the order is refused, and nothing was placed.
    let (status, refused) = signed(&rest, key, "POST", ORDERS, Some(&order())).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["errors"][0], "authz.scope_denied", "{refused}");
    let (status, orders) = signed(&rest, key, "GET", ORDERS, None).await;
    assert_eq!((status, orders.as_array().map(Vec::len)), (200, Some(0)));

    // Revoked (disabled with a fresh code): refused within 1 s on the running appliance.
    let (status, body) = session
        .call(
            reqwest::Method::PATCH,
            &format!("/resource/api_keys/{kid}"),
            &json!({ "totp_code": totp(&url, -1) }),
        )
        .await;
    assert_eq!(status, 200, "disable: {body}");
    let waited = until_balance_status(&rest, key, 401).await;
    assert!(
        waited < CHANGE_WITHIN,
        "the revoked key still worked {waited:?} later"
    );
    up.stop();
}

/// An operator made on the host with `peregrine admin create-operator` (on the store `up` is
/// using), logged in.
async fn operator(dir: &Path, rest: &str) -> Session {
    let email = format!("{}@example.com", unique("ops"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .env_clear()
        .env("PEREGRINE_OPERATOR_PASSWORD", PASSWORD)
        .current_dir(dir)
        .args(["admin", "create-operator", "--email", &email])
        .args(["--role", "compliance", "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    log_in(rest, &json!({ "email": email, "password": PASSWORD })).await
}

/// The orders of `key`'s account.
async fn order_count(rest: &str, key: (&str, &str)) -> usize {
    let (status, orders) = signed(rest, key, "GET", ORDERS, None).await;
    assert_eq!(status, 200, "{orders}");
    orders.as_array().unwrap().len()
}

/// How long until a new REST order with `key` answers `status` (bounded: 5 s); the body.
async fn until_order_status(rest: &str, key: (&str, &str), status: u16) -> (Duration, Value) {
    let started = Instant::now();
    loop {
        let (got, body) = signed(rest, key, "POST", ORDERS, Some(&order())).await;
        if got == status {
            return (started.elapsed(), body);
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_change_gates_new_orders_over_rest_and_quic_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let (up, session, account, uid, url) = up_with_a_user(dir.path(), "gated").await;
    let rest = up.rest.clone();
    let (kid, secret) = create_hmac_key(&session, &url, &["read", "trade"], 1).await;
    let key = (kid.as_str(), secret.as_str());
    let (quic_kid, seed) = register_ed25519_key(&session, &url, -1).await;
    up.deposit(account, "usd", "100000", 1).await;
    until_balance_status(&rest, key, 200).await;
    let client = connect_within(&up, quic_kid, &seed, Duration::from_secs(5)).await;

    // Compliance removes the e-mail label: level 0, below trading's 1.
    let ops = operator(dir.path(), &rest).await;
    let label = json!({ "uid": uid, "key": "email" });
    let (status, body) = ops
        .call(reqwest::Method::DELETE, "/admin/users/labels", &label)
        .await;
    assert_eq!((status, &body["level"]), (200, &json!(0)), "{body}");
    let (waited, refused) = until_order_status(&rest, key, 403).await;
    assert!(waited < CHANGE_WITHIN, "REST gated only after {waited:?}");
    assert_eq!(refused["errors"][0], "identity.level_too_low", "{refused}");
    // (Orders placed while the change was on its way stand.) From now on nothing is placed.
    let placed_before = order_count(&rest, key).await;
    let (status, _) = signed(&rest, key, "POST", ORDERS, Some(&order())).await;
    assert_eq!(status, 403);
    let quic_order = client.limit("btcusd", Side::Buy, "39000", "0.01").unwrap();
    match client.place(quic_order).await.unwrap() {
        Placed::Rejected { code, seq } => {
            assert_eq!((code, seq), (RejectCode::LEVEL_TOO_LOW, 0));
        }
        other => panic!("a QUIC order below the level: {other:?}"),
    }
    assert_eq!(order_count(&rest, key).await, placed_before);

    // The label back: trading again within a second.
    let label = json!({ "uid": uid, "key": "email", "value": "verified" });
    let (status, body) = ops.post("/admin/users/labels", &label).await;
    assert_eq!((status, &body["level"]), (201, &json!(1)), "{body}");
    let (waited, _) = until_order_status(&rest, key, 201).await;
    assert!(
        waited < CHANGE_WITHIN,
        "REST open again only after {waited:?}"
    );
    let quic_order = client.limit("btcusd", Side::Buy, "39000", "0.01").unwrap();
    let placed = client.place(quic_order).await.unwrap();
    assert!(matches!(placed, Placed::Ack { .. }), "{placed:?}");
    client.close().await;
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_bare_machine_identity_logs_codes_keeps_secrets_in_the_dev_store_across_restarts() {
    // No [auth.openbao], no [auth.smtp]: what `peregrine up` does on a machine with nothing.
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[], "[auth]\nkey_poll_interval_ms = 100\n");
    let up = Up::start(dir.path());
    let rest = up.rest.clone();
    let email = format!("{}@example.com", unique("bare"));
    let credentials = json!({ "email": email, "password": PASSWORD });
    let (status, body) = anonymous(&rest, "/identity/users", &credentials).await;
    assert_eq!(status, 201, "sign-up: {body}");
    let code = logged_code(dir.path(), &email).await;
    let confirm = json!({ "email": email, "token": code });
    let (status, body) = anonymous(&rest, "/identity/users/email/confirm_code", &confirm).await;
    assert_eq!(status, 201, "verify: {body}");
    let account = u32::try_from(body["account_id"].as_u64().unwrap()).unwrap();
    let session = log_in(&rest, &credentials).await;
    // 2FA and an API key through the embedded store; an order with the key.
    early_in_a_totp_period().await;
    let url = enable_2fa(&session).await;
    let (kid, secret) = create_hmac_key(&session, &url, &["read", "trade"], 1).await;
    let key = (kid.as_str(), secret.as_str());
    until_balance_status(&rest, key, 200).await;
    up.deposit(account, "usd", "100000", 1).await;
    let (status, placed) = signed(&rest, key, "POST", ORDERS, Some(&order())).await;
    assert_eq!(status, 201, "REST order: {placed}");
    assert!(dir.path().join("data/secrets").is_dir());
    up.stop();

    // Restarted on the same data: the key's secret (sealed by the store's transit key) and
    // the TOTP enrolment are still there.
    let up = Up::start(dir.path());
    let rest = up.rest.clone();
    until_balance_status(&rest, key, 200).await;
    let (status, orders) = signed(&rest, key, "GET", ORDERS, None).await;
    assert_eq!(status, 200, "{orders}");
    assert_eq!(orders.as_array().unwrap().len(), 1, "{orders}");
    let (status, body) = anonymous(&rest, "/identity/sessions", &credentials).await;
    assert_eq!(status, 403, "a login without the code: {body}");
    assert_eq!(body["errors"][0], "identity.session.missing_otp", "{body}");
    // The codes of the enrolment's period and the next were used before the restart, and the
    // restart may have crossed a period: one of the three codes valid now is unused (at most
    // two refusals, below the lockout's five).
    let mut answers = Vec::new();
    for period in [-1, 0, 1] {
        let with_code =
            json!({ "email": email, "password": PASSWORD, "otp_code": totp(&url, period) });
        let (status, body) = anonymous(&rest, "/identity/sessions", &with_code).await;
        answers.push((status, body));
        if status == 200 {
            break;
        }
    }
    assert!(
        answers.iter().any(|(status, _)| *status == 200),
        "logins with a code: {answers:?}"
    );
    let ready = http_client()
        .get(format!("{}/health/ready", up.http))
        .send()
        .await
        .unwrap();
    let ready_status = ready.status();
    let ready_body = ready.text().await.unwrap();
    assert_eq!(ready_status, 200, "{ready_body}");
    assert!(ready_body.contains("secrets"), "{ready_body}");
    up.stop();
}
