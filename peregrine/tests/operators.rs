//! Issue #16's first slice against `peregrine up` (the binary) with identity on a real OpenBao
//! (VAULT_ADDR, mounts of this run's own) and its embedded SQLite store: operators made on the
//! host log in, enable 2FA and call the control API with their own access tokens over HTTP.
//! A member's token is 403 on every control route; expired, wrong-audience and unknown-key
//! tokens are 401; an operator without 2FA or without the route's permission is 403, and the
//! denial is in the audit chain with its actor, action, target and source; the break-glass
//! token works from loopback and is audited as `break_glass`. Four-eyes: the creator of an
//! adjustment cannot approve it, a second operator can, and the credit lands exactly once
//! however often the approval is retried; a debit beyond the balance is refused by the engine
//! and stays pending; a rejected one never applies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::path::Path;

use peregrine_auth::audit::{AuditEntry, Outcome};
use peregrine_auth::jwt::{Issuer, TokenConfig};
use peregrine_auth::vault::{Vault, VaultConfig};
use peregrine_auth::{Store, User};
use peregrine_secrets::{BaoToken, OpenBao};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::identity::{env, logged_code, now_s, totp, unique};
use support::{Trader, Up, http_client, write_config};

const BARONG: &str = "/api/v2/barong";
const PASSWORD: &str = "correct horse battery staple";
/// The account the adjustments move, traded by a QUIC key so its balance can be read.
const ACCOUNT: u32 = 7;

/// Now, Unix seconds, for tokens.
fn now_unix_s() -> u64 {
    u64::try_from(now_s()).unwrap()
}

/// `up` with identity on the real OpenBao (this run's own mounts and policy), no SMTP (codes
/// are logged), and a QUIC key for [`ACCOUNT`]. The transit mount's name, for forged tokens.
fn config(dir: &Path) -> String {
    std::fs::write(dir.join("bao-token"), env("VAULT_TOKEN")).unwrap();
    let transit = unique("transit");
    let auth = format!(
        "[auth]\nkey_poll_interval_ms = 100\n\n[auth.openbao]\naddress = \"{bao}\"\n\
         token_file = \"bao-token\"\ntotp_mount = \"{totp}\"\ntransit_mount = \"{transit}\"\n\
         policy = \"{policy}\"\n",
        bao = env("VAULT_ADDR"),
        totp = unique("totp"),
        policy = unique("identity"),
    );
    write_config(dir, &[Trader::new(ACCOUNT)], &auth);
    transit
}

/// A logged-in identity client: its session cookie and CSRF token.
struct Session {
    rest: String,
    cookie: String,
    csrf: String,
}

impl Session {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = http_client()
            .post(format!("{}{BARONG}{path}", self.rest))
            .header("Cookie", format!("peregrine_session={}", self.cookie))
            .header("X-CSRF-Token", &self.csrf)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A fresh access token for the session's user.
    async fn token(&self) -> String {
        let (status, body) = self.post("/resource/tokens", &json!({})).await;
        assert_eq!(status, 201, "token: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Enrols and enables 2FA with the current code.
    async fn enable_2fa(&self) {
        let (status, body) = self.post("/resource/otp/generate_qrcode", &json!({})).await;
        assert_eq!(status, 201, "enrol: {body}");
        let url = body["data"]["url"].as_str().unwrap().to_owned();
        let code = json!({ "code": totp(&url, 0) });
        let (status, body) = self.post("/resource/otp/enable", &code).await;
        assert_eq!(status, 201, "enable: {body}");
    }
}

async fn log_in(rest: &str, email: &str) -> Session {
    let response = http_client()
        .post(format!("{rest}{BARONG}/identity/sessions"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie
        .strip_prefix("peregrine_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    Session {
        rest: rest.to_owned(),
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

/// An operator with `role` made on the host (`peregrine admin create-operator`), logged in,
/// with 2FA enabled when `with_2fa`; its e-mail address and session.
async fn operator(up: &Up, dir: &Path, role: &str, with_2fa: bool) -> (String, Session) {
    let email = format!("{}@example.com", unique(role));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .env_clear()
        .env("PEREGRINE_OPERATOR_PASSWORD", PASSWORD)
        .current_dir(dir)
        .args(["admin", "create-operator", "--email", &email])
        .args(["--role", role, "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let session = log_in(&up.rest, &email).await;
    if with_2fa {
        session.enable_2fa().await;
    }
    (email, session)
}

/// A signed-up, verified member's session (the code read from `up`'s log).
async fn member(up: &Up, dir: &Path) -> Session {
    let email = format!("{}@example.com", unique("member"));
    let credentials = json!({ "email": email, "password": PASSWORD });
    let base = format!("{}{BARONG}/identity", up.rest);
    let response = http_client()
        .post(format!("{base}/users"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let code = logged_code(dir, &email).await;
    let response = http_client()
        .post(format!("{base}/users/email/confirm_code"))
        .json(&json!({ "email": email, "token": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    log_in(&up.rest, &email).await
}

/// `method {http}/control/v1/{path}` with `token`; status and JSON body.
async fn control(up: &Up, method: Method, path: &str, token: &str, body: Value) -> (u16, Value) {
    let mut request = http_client()
        .request(method.clone(), format!("{}/control/v1/{path}", up.http))
        .bearer_auth(token);
    if method != Method::GET {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every control operation with a well-formed request.
fn every_route() -> Vec<(Method, &'static str, Value)> {
    let deposit = json!({"account": ACCOUNT, "currency": "usd", "amount": "1", "deposit_id": 9});
    let adjustment = json!({"account": ACCOUNT, "currency": "usd", "amount": "1", "reason": "x"});
    vec![
        (Method::GET, "status", Value::Null),
        (Method::POST, "deposits", deposit),
        (Method::POST, "markets/btcusd/halt", json!({})),
        (Method::POST, "accounts/7/kill-switch", json!({"on": false})),
        (Method::POST, "accounts/7/cancel-all", json!({})),
        (Method::POST, "adjustments", adjustment),
        (Method::GET, "adjustments", Value::Null),
        (Method::POST, "adjustments/1/approve", json!({})),
        (Method::POST, "adjustments/1/reject", json!({})),
    ]
}

/// The audit records from `after` on.
async fn audit_after(dir: &Path, after: i64) -> Vec<AuditEntry> {
    let url = format!("sqlite://{}", dir.join("data/identity.db").display());
    let store = Store::open(&url).await.unwrap();
    let rows = store.audit_page(after, 10_000).await.unwrap();
    store.close().await;
    rows.into_iter().map(|row| row.entry).collect()
}

async fn audit_len(dir: &Path) -> i64 {
    audit_after(dir, 0).await.len() as i64
}

async fn user(dir: &Path, email: &str) -> User {
    let url = format!("sqlite://{}", dir.join("data/identity.db").display());
    let store = Store::open(&url).await.unwrap();
    let user = store.user_by_email(email).await.unwrap().unwrap();
    store.close().await;
    user
}

/// A token for `user` signed by identity's real transit key (or `jwt_key`) under `tokens`,
/// issued at `issued_s`: what identity would never issue, but a verifier must refuse.
async fn forged(
    transit: &str,
    jwt_key: &str,
    tokens: TokenConfig,
    user: &User,
    issued_s: u64,
) -> String {
    let client = OpenBao::new(&env("VAULT_ADDR"), BaoToken::new(env("VAULT_TOKEN"))).unwrap();
    client
        .transit_ensure_key(
            transit,
            jwt_key,
            peregrine_secrets::transit::KeyType::Ed25519,
        )
        .await
        .unwrap();
    let mut config = VaultConfig::default();
    config.transit_mount = transit.to_owned();
    config.jwt_key = jwt_key.to_owned();
    let issuer = Issuer::new(Vault { client, config }, tokens);
    issuer
        .issue(user, None, issued_s, unique("jti"))
        .await
        .unwrap()
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_bad_tokens_operators_without_2fa_or_permission_are_refused_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let transit = config(dir.path());
    let up = Up::start(dir.path());

    // A member's token: 403 on every route, whatever the route's permission.
    let member = member(&up, dir.path()).await.token().await;
    for (method, path, body) in every_route() {
        let (status, answer) = control(&up, method.clone(), path, &member, body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert_eq!(answer["errors"][0], "control.auth.not_operator", "{path}");
    }

    // Tokens identity would not issue: 401, and nothing changes.
    let (email, technical) = operator(&up, dir.path(), "technical", true).await;
    let tech = user(dir.path(), &email).await;
    let defaults = TokenConfig::default;
    let expired = forged(
        &transit,
        "identity-jwt",
        defaults(),
        &tech,
        now_unix_s() - 600,
    )
    .await;
    let mut other_audience = defaults();
    other_audience.audience = "peatio".to_owned();
    let wrong_aud = forged(
        &transit,
        "identity-jwt",
        other_audience,
        &tech,
        now_unix_s(),
    )
    .await;
    let unknown_kid = forged(&transit, "stranger-jwt", defaults(), &tech, now_unix_s()).await;
    for token in [
        &expired,
        &wrong_aud,
        &unknown_kid,
        &"not-a-token".to_owned(),
    ] {
        let (status, body) =
            control(&up, Method::POST, "markets/btcusd/halt", token, json!({})).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["errors"][0], "control.auth.invalid_token");
    }
    let status = up.control_status().await;
    assert_eq!(status["markets"][0]["state"], "enabled", "{status}");

    // An operator without 2FA: 403 whatever the role, audited as denied.
    let (_, no_2fa) = operator(&up, dir.path(), "superadmin", false).await;
    let token = no_2fa.token().await;
    let (status, body) = control(&up, Method::POST, "markets/btcusd/halt", &token, json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0], "control.auth.second_factor_required");

    // With 2FA: the technical role halts markets, but may not propose an adjustment.
    let token = technical.token().await;
    let before = audit_len(dir.path()).await;
    let (status, body) = control(&up, Method::POST, "markets/btcusd/halt", &token, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let adjustment = json!({"account": ACCOUNT, "currency": "usd", "amount": "5", "reason": "x"});
    let (status, body) = control(&up, Method::POST, "adjustments", &token, adjustment).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0], "control.auth.forbidden");
    let records = audit_after(dir.path(), before).await;
    let allowed = records
        .iter()
        .find(|r| r.action == "rbac.market.manage")
        .unwrap();
    assert_eq!(
        (
            allowed.actor.as_str(),
            allowed.target.as_str(),
            allowed.source.as_str()
        ),
        (tech.uid.as_str(), "market:btcusd", "127.0.0.1")
    );
    assert_eq!(allowed.outcome, Outcome::Allowed);
    let denied = records
        .iter()
        .find(|r| r.action == "rbac.adjustment.create")
        .unwrap();
    assert_eq!(
        (denied.actor.as_str(), denied.outcome),
        (tech.uid.as_str(), Outcome::Denied)
    );
    assert_eq!(denied.code, "authz.forbidden");
    let status = up.control_status().await;
    assert_eq!(status["markets"][0]["state"], "halted", "{status}");

    // The break-glass token, from this host: allowed, audited as `break_glass`.
    let before = audit_len(dir.path()).await;
    let (status, body) = up.control("markets/btcusd/resume", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let records = audit_after(dir.path(), before).await;
    assert!(
        records.iter().any(|r| r.actor == "break_glass"
            && r.action == "break_glass.market.manage"
            && r.outcome == Outcome::Allowed),
        "{records:?}"
    );
    up.stop();
}

/// The available `usd` of [`ACCOUNT`], over QUIC.
async fn available_usd(up: &Up) -> Decimal {
    let client = up.connect(&Trader::new(ACCOUNT)).await;
    let balance = client.balance("usd").await.unwrap().available;
    client.logout().await.ok();
    balance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adjustment_applies_once_after_a_second_operator_approves_it() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let up = Up::start(dir.path());
    up.deposit(ACCOUNT, "usd", "10", 1).await;
    let (_, first) = operator(&up, dir.path(), "accountant", true).await;
    let (_, second) = operator(&up, dir.path(), "accountant", true).await;
    let (creator, approver) = (first.token().await, second.token().await);

    let credit = json!({"account": ACCOUNT, "currency": "usd", "amount": "100.5",
                        "reason": "refund of ticket 42"});
    let (status, created) = control(&up, Method::POST, "adjustments", &creator, credit).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "pending");
    let id = created["id"].as_i64().unwrap();
    let approve = format!("adjustments/{id}/approve");

    // The creator may not approve it; it stays pending and nothing is credited.
    let (status, body) = control(&up, Method::POST, &approve, &creator, json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0], "control.adjustment.own_proposal");
    // Without [wallets] there is no withdrawal request: an empty queue, and a review is 422
    // (a fact of this appliance, not an outage: never a 5xx).
    let (status, queue) = control(
        &up,
        Method::GET,
        "withdrawal-requests",
        &approver,
        Value::Null,
    )
    .await;
    assert_eq!((status, queue.clone()), (200, json!([])), "{queue}");
    let review = "withdrawal-requests/1/approve";
    let (status, body) = control(&up, Method::POST, review, &approver, json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0], "control.wallets.unsupported");
    let (_, pending) = control(&up, Method::GET, "adjustments", &approver, Value::Null).await;
    assert!(
        pending.as_array().unwrap().iter().any(|a| a["id"] == id),
        "{pending}"
    );
    assert_eq!(available_usd(&up).await, Decimal::from(10));

    // The second operator approves: credited once, however often the approval is retried.
    for _ in 0..3 {
        let (status, body) = control(&up, Method::POST, &approve, &approver, json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["state"], "approved");
        assert_eq!(body["creator"], created["creator"]);
    }
    assert_eq!(
        available_usd(&up).await,
        "110.5".parse::<Decimal>().unwrap()
    );

    // A debit beyond the balance: the engine refuses it, and it stays pending.
    let debit = json!({"account": ACCOUNT, "currency": "usd", "amount": "-1000",
                       "reason": "chargeback"});
    let (status, created) = control(&up, Method::POST, "adjustments", &creator, debit).await;
    assert_eq!(status, 201, "{created}");
    let debit_id = created["id"].as_i64().unwrap();
    let path = format!("adjustments/{debit_id}/approve");
    let (status, body) = control(&up, Method::POST, &path, &approver, json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0], "control.command.insufficient_balance");
    let (_, pending) = control(&up, Method::GET, "adjustments", &approver, Value::Null).await;
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == debit_id),
        "{pending}"
    );

    // Rejected: it never applies, and approving it afterwards is a conflict.
    let path = format!("adjustments/{debit_id}/reject");
    let (status, body) = control(&up, Method::POST, &path, &approver, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "rejected");
    let path = format!("adjustments/{debit_id}/approve");
    let (status, body) = control(&up, Method::POST, &path, &approver, json!({})).await;
    assert_eq!(status, 409, "{body}");

    // A debit within the balance applies once too.
    let debit = json!({"account": ACCOUNT, "currency": "usd", "amount": "-0.5",
                       "reason": "fee correction"});
    let (_, created) = control(&up, Method::POST, "adjustments", &creator, debit).await;
    let path = format!("adjustments/{}/approve", created["id"]);
    for _ in 0..2 {
        let (status, body) = control(&up, Method::POST, &path, &approver, json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(available_usd(&up).await, Decimal::from(110));

    // The break-glass token may not take either four-eyes step.
    let (status, body) = up.control(&approve, json!({})).await;
    assert_eq!(status, 403, "{body}");
    up.stop();
}
