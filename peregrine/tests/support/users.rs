//! A user of identity driven as a browser and an authenticator app would: sign-up with the
//! mailed code (the SMTP server's maildir), log-in (session cookie and CSRF token), TOTP
//! codes computed from the otpauth URL (RFC 6238), API keys made with a code, operators made on
//! the host. For tests that run `peregrine up` with `[auth]` on the real OpenBao and SMTP.

#![allow(dead_code)]

use std::path::Path;

use serde_json::json;

pub use crate::support::identity::{
    PASSWORD, Session, create_hmac_key, early_in_a_totp_period, enable_2fa, env, log_in,
    new_verified_user, signed, totp, unique,
};

/// `[auth]` on the real OpenBao (mounts and policy of this run's own) and SMTP, with
/// `withdraw_level_min`; the root token written to `dir/bao-token`.
pub fn auth_section(dir: &Path, withdraw_level_min: i64) -> String {
    std::fs::write(dir.join("bao-token"), env("VAULT_TOKEN")).unwrap();
    format!(
        "[auth]\nkey_poll_interval_ms = 100\nwithdraw_level_min = {withdraw_level_min}\n\n\
         [auth.smtp]\nserver = \"{smtp}\"\nfrom = \"exchange@example.com\"\n\n\
         [auth.openbao]\naddress = \"{bao}\"\ntoken_file = \"bao-token\"\n\
         totp_mount = \"{totp}\"\ntransit_mount = \"{transit}\"\npolicy = \"{policy}\"\n\n",
        smtp = env("SMTP_ADDR"),
        bao = env("VAULT_ADDR"),
        totp = unique("totp"),
        transit = unique("transit"),
        policy = unique("identity"),
    )
}

/// An operator with `role` made on the host with `peregrine admin create-operator` (on the
/// store `up` is using), logged in; the session and the operator's uid.
pub async fn operator(dir: &Path, rest: &str, role: &str) -> (Session, String) {
    let email = format!("{}@example.com", unique("ops"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .env_clear()
        .env("PEREGRINE_OPERATOR_PASSWORD", PASSWORD)
        .current_dir(dir)
        .args(["admin", "create-operator", "--email", &email])
        .args(["--role", role, "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let session = log_in(rest, &json!({ "email": email, "password": PASSWORD })).await;
    let (status, me) = session
        .call(reqwest::Method::GET, "/resource/users/me", &json!({}))
        .await;
    assert_eq!(status, 200, "{me}");
    let uid = me["uid"].as_str().unwrap().to_owned();
    (session, uid)
}

/// `method {http}/control/v1/{path}` with an operator's access token.
pub async fn control(
    up: &crate::support::Up,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = crate::support::http_client()
        .request(method, format!("{}/control/v1/{path}", up.http))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// An operator with `role` and 2FA; a fresh access token.
pub async fn operator_token(up: &crate::support::Up, dir: &Path, role: &str) -> String {
    let (session, _uid): (Session, String) = operator(dir, &up.rest, role).await;
    enable_2fa(&session).await;
    let (status, body) = session.post("/resource/tokens", &json!({})).await;
    assert_eq!(status, 201, "token: {body}");
    body["token"].as_str().unwrap().to_owned()
}
