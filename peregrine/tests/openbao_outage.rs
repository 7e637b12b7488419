//! Issue #14's OpenBao outage at the appliance level: `peregrine up` with identity on a
//! private OpenBao of its own (raft storage on a free port, so it can be sealed, stopped and
//! started again with its keys; the shared one on 8200 is never touched), a user with a
//! session, 2FA, an HMAC key and an ed25519 key.
//!
//! - OpenBao sealed, then stopped, mid-run: 2FA logins and key creation answer 503
//!   `identity.vault_unavailable` (never 500); `/health/ready` stays 200 and says the secret
//!   store is degraded; the logged-in session still gets fresh access tokens (signed by
//!   identity's in-memory standby key) and places an order with one; trading through the HMAC
//!   key (REST), an access token issued before and the ed25519 key (QUIC) goes on; started
//!   again: 2FA works and tokens are signed by transit again.
//! - `up` started while OpenBao is down: it starts (degraded, no crash loop), the ed25519 key
//!   trades over QUIC (its public key is in identity's store), the session refreshes its token
//!   and reads its balances with it, the HMAC key answers 503 (its secret is transit
//!   ciphertext), and all recovers once OpenBao answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::bao_support;
use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use bao_support::{FileBao, RECOVERY_WITHIN};
use peregrine_client::Placed;
use peregrine_hotpath::Side;
use serde_json::{Value, json};
use support::identity::*;
use support::{Up, http_client, write_config};

const BALANCES: &str = "/api/v2/peatio/account/balances";

/// `peregrine.toml` with identity on `bao` (provisioned with its root token) and real SMTP.
fn config_with_bao(dir: &Path, bao: &FileBao) {
    std::fs::write(dir.join("bao-token"), &bao.root_token).unwrap();
    let auth = format!(
        "[auth]\nkey_poll_interval_ms = 100\n\n[auth.smtp]\nserver = \"{smtp}\"\n\
         from = \"exchange@example.com\"\n\n[auth.openbao]\naddress = \"{bao}\"\n\
         token_file = \"bao-token\"\n",
        smtp = env("SMTP_ADDR"),
        bao = bao.addr(),
    );
    write_config(dir, &[], &auth);
}

/// `/health/ready`: status and text.
async fn readiness(up: &Up) -> (u16, String) {
    let response = http_client()
        .get(format!("{}/health/ready", up.http))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Waits until `/health/ready` has the line starting with `line` (bounded).
async fn until_ready_line(up: &Up, line: &str) -> String {
    let deadline = Instant::now() + RECOVERY_WITHIN;
    loop {
        let (status, text) = readiness(up).await;
        if status == 200 && text.lines().any(|l| l.starts_with(line)) {
            return text;
        }
        assert!(Instant::now() < deadline, "never `{line}`: {status} {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_vault_unavailable(what: &str, (status, body): &(u16, Value)) {
    assert_eq!(*status, 503, "{what}: {body}");
    assert_eq!(
        body["errors"][0], "identity.vault_unavailable",
        "{what}: {body}"
    );
}

/// A login with `url`'s code of some period near now; the first answer that is not a code
/// refusal (at most two refusals: below the lockout).
async fn login_with_a_code(rest: &str, email: &str, url: &str) -> (u16, Value) {
    let mut last = (0, Value::Null);
    for period in [0, 1, -1] {
        let body = json!({ "email": email, "password": PASSWORD, "otp_code": totp(url, period) });
        last = anonymous(rest, "/identity/sessions", &body).await;
        if !last.1["errors"][0]
            .as_str()
            .is_some_and(|code| code.starts_with("identity.otp") || code.contains("invalid_otp"))
        {
            return last;
        }
    }
    last
}

/// A QUIC order with `client`, acknowledged.
async fn quic_order_acked(client: &peregrine_client::Client, what: &str) {
    let order = client.limit("btcusd", Side::Buy, "39000", "0.01").unwrap();
    let placed = client.place(order).await.unwrap();
    assert!(matches!(placed, Placed::Ack { .. }), "{what}: {placed:?}");
}

/// What the user has: e-mail, session, otpauth URL, HMAC key, ed25519 key id and seed.
struct User {
    email: String,
    session: Session,
    url: String,
    hmac: (String, String),
    quic: (u64, [u8; 32]),
}

/// A verified user with 2FA, an HMAC key that trades, an ed25519 key, and USD to trade with.
async fn trading_user(up: &Up) -> User {
    let email = format!("{}@example.com", unique("outage"));
    let (session, account, _) = new_verified_user(&up.rest, &email).await;
    early_in_a_totp_period().await;
    let url = enable_2fa(&session).await;
    let hmac = create_hmac_key(&session, &url, &["read", "trade"], 1).await;
    let quic = register_ed25519_key(&session, &url, -1).await;
    up.deposit(account, "usd", "100000", 1).await;
    until_balance_status(&up.rest, (&hmac.0, &hmac.1), 200).await;
    User {
        email,
        session,
        url,
        hmac,
        quic,
    }
}

/// While OpenBao cannot answer: every 2FA path answers 503, readiness says why and stays 200,
/// and trading through the key and the token goes on.
async fn check_outage(up: &Up, user: &User, client: &peregrine_client::Client, token: &str) {
    let text = until_ready_line(up, "degraded secrets: OpenBao").await;
    assert!(text.starts_with("ready\n"), "{text}");
    let login = login_with_a_code(&up.rest, &user.email, &user.url).await;
    assert_vault_unavailable("2FA login", &login);
    let create = json!({ "scope": ["read"], "totp_code": totp(&user.url, 0) });
    let created = user.session.post("/resource/api_keys", &create).await;
    assert_vault_unavailable("key creation", &created);
    // The session refreshes its access token and trades with the fresh one.
    let fresh = standby_token(&user.session).await;
    let (status, placed, _) = send(
        http_client()
            .post(format!("{}{ORDERS}", up.rest))
            .bearer_auth(&fresh)
            .json(&order()),
    )
    .await;
    assert_eq!(
        status, 201,
        "REST order with a token issued in the outage: {placed}"
    );
    // The session itself goes on (no OpenBao in it).
    let (status, me) = user
        .session
        .call(reqwest::Method::GET, "/resource/users/me", &Value::Null)
        .await;
    assert_eq!(status, 200, "{me}");

    let key = (user.hmac.0.as_str(), user.hmac.1.as_str());
    let (status, placed) = signed(&up.rest, key, "POST", ORDERS, Some(&order())).await;
    assert_eq!(status, 201, "REST order with the HMAC key: {placed}");
    let (status, body, _) = send(
        http_client()
            .get(format!("{}{BALANCES}", up.rest))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, 200, "balances with the access token: {body}");
    quic_order_acked(client, "QUIC order on the open session").await;
    let fresh = connect_within(up, user.quic.0, &user.quic.1, CHANGE_WITHIN).await;
    quic_order_acked(&fresh, "QUIC order on a new logon").await;
    fresh.close().await;
}

/// A token for `session` issued while OpenBao cannot answer: signed by the standby key.
async fn standby_token(session: &Session) -> String {
    let (status, issued) = session.post("/resource/tokens", &json!({})).await;
    assert_eq!(status, 201, "token issuance in the outage: {issued}");
    let kid = issued["kid"].as_str().unwrap();
    assert!(kid.contains("-standby-"), "{issued}");
    issued["token"].as_str().unwrap().to_owned()
}

/// A private OpenBao under `bao_home`, `up` in `dir` with identity on it, and a trading user.
async fn up_with_private_bao(dir: &Path, bao_home: &Path) -> (FileBao, Up, User) {
    let bao = FileBao::start(bao_home).await;
    config_with_bao(dir, &bao);
    let up = Up::start(dir);
    let user = trading_user(&up).await;
    (bao, up, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openbao_sealed_then_stopped_mid_run_answers_503_for_2fa_while_trading_goes_on() {
    let (dir, bao_home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut bao, up, user) = up_with_private_bao(dir.path(), bao_home.path()).await;
    until_ready_line(&up, "ok secrets").await;
    let client = connect_within(&up, user.quic.0, &user.quic.1, CHANGE_WITHIN).await;
    let (status, issued) = user.session.post("/resource/tokens", &json!({})).await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().unwrap().to_owned();

    bao.seal().await;
    check_outage(&up, &user, &client, &token).await;
    bao.kill();
    until_ready_line(&up, "degraded secrets: OpenBao at").await;
    let deadline = Instant::now() + RECOVERY_WITHIN;
    while !readiness(&up).await.1.contains("did not answer") {
        assert!(
            Instant::now() < deadline,
            "readiness never said OpenBao stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check_outage(&up, &user, &client, &token).await;

    // Back: 2FA logins and 2FA-protected actions work again.
    bao.spawn().await;
    bao.unseal().await;
    until_ready_line(&up, "ok secrets").await;
    let (status, body) = login_with_a_code(&up.rest, &user.email, &user.url).await;
    assert_eq!(status, 200, "2FA login after the outage: {body}");
    let (status, body) = user.session.post("/resource/tokens", &json!({})).await;
    assert_eq!(status, 201, "token after the outage: {body}");
    assert!(body["kid"].as_str().unwrap().ends_with("-v1"), "{body}");
    let metrics = up.metrics().await;
    assert!(
        metrics.contains("peregrine_auth_tokens_standby_signed_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("peregrine_auth_openbao_probes_total{outcome=\"sealed\"}")
            && metrics.contains("peregrine_auth_openbao_probes_total{outcome=\"unreachable\"}"),
        "{metrics}"
    );
    client.close().await;
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_started_while_openbao_is_down_trades_degraded_and_recovers_when_it_answers() {
    let (dir, bao_home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut bao, up, user) = up_with_private_bao(dir.path(), bao_home.path()).await;
    up.stop();
    bao.kill();

    // Started with nothing at OpenBao's address: it starts, degraded.
    let mut up = Up::start(dir.path());
    let text = until_ready_line(&up, "degraded secrets: OpenBao").await;
    assert!(text.starts_with("ready\n"), "{text}");
    // The ed25519 key needs no OpenBao: QUIC trades.
    let client = connect_within(&up, user.quic.0, &user.quic.1, CHANGE_WITHIN).await;
    quic_order_acked(&client, "QUIC order, OpenBao down since start").await;
    // The HMAC key's secret is transit ciphertext: 503, not "unknown key".
    let key = (user.hmac.0.as_str(), user.hmac.1.as_str());
    let refused = signed(&up.rest, key, "POST", ORDERS, Some(&order())).await;
    assert_vault_unavailable("REST order with a pending HMAC key", &refused);
    let login = login_with_a_code(&up.rest, &user.email, &user.url).await;
    assert_vault_unavailable("2FA login", &login);
    // The session from before the restart gets a token (only the standby key is in the JWKS).
    let session = Session {
        rest: up.rest.clone(),
        cookie: user.session.cookie.clone(),
        csrf: user.session.csrf.clone(),
    };
    let token = standby_token(&session).await;
    let (status, body, _) = send(
        http_client()
            .get(format!("{}{BALANCES}", up.rest))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(
        status, 200,
        "balances with a token issued in the outage: {body}"
    );
    assert!(up.child.try_wait().unwrap().is_none(), "up exited");

    // OpenBao answers: identity provisions itself, the HMAC key loads, 2FA works.
    bao.spawn().await;
    bao.unseal().await;
    until_ready_line(&up, "ok secrets").await;
    let waited = until_balance_status(&up.rest, key, 200).await;
    assert!(waited < RECOVERY_WITHIN, "{waited:?}");
    let (status, placed) = signed(&up.rest, key, "POST", ORDERS, Some(&order())).await;
    assert_eq!(status, 201, "REST order after recovery: {placed}");
    let (status, body) = login_with_a_code(&up.rest, &user.email, &user.url).await;
    assert_eq!(status, 200, "2FA login after recovery: {body}");
    client.close().await;
    assert!(up.child.try_wait().unwrap().is_none(), "up exited");
    up.stop();
}
