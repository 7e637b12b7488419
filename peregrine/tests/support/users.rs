//! A user of identity driven as a browser and an authenticator app would: sign-up with the
//! mailed code (the SMTP server's maildir), log-in (session cookie and CSRF token), TOTP
//! codes computed from the otpauth URL (RFC 6238), API keys made with a code, operators made on
//! the host. For tests that run `peregrine up` with `[auth]` on the real OpenBao and SMTP.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::http_client;
pub use crate::support::identity::{
    PASSWORD, Session, create_hmac_key, early_in_a_totp_period, enable_2fa, env, log_in,
    new_verified_user, signed, totp, unique,
};

/// How long the mail may take to arrive.
const MAIL_WAIT: Duration = Duration::from_secs(10);
const BARONG: &str = "/api/v2/barong";
/// Every test user's password.

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The code mailed to `to` (the newest), read from the SMTP server's maildir.
async fn mailed_code(to: &str) -> String {
    let dir = PathBuf::from(env("SMTP_MAIL_DIR"));
    let deadline = Instant::now() + MAIL_WAIT;
    loop {
        let mail = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
            .flat_map(|entries| entries.flatten())
            .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
            .find(|text| text.contains(&format!("To: <{to}>")));
        if let Some(text) = mail {
            return text.split(" is ").nth(1).unwrap()[..6].to_owned();
        }
        assert!(Instant::now() < deadline, "no mail to {to}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends; status, JSON (or `null`) and headers back.
async fn send(request: reqwest::RequestBuilder) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    )
}

async fn anonymous(rest: &str, path: &str, body: &Value) -> (u16, Value) {
    let (status, body, _) = send(
        http_client()
            .post(format!("{rest}{BARONG}{path}"))
            .json(body),
    )
    .await;
    (status, body)
}

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
