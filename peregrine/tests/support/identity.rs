//! Identity as a new user meets it, for the tests that run `peregrine up` with `[auth]`: sign-up
//! with the code read from the real SMTP server's maildir (SMTP_MAIL_DIR), log-in with the
//! session cookie and CSRF token, 2FA with codes an authenticator app would show, API keys,
//! and requests signed with them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peregrine_client::{Client, KeyId, ServerTrust, SigningKey};
use peregrine_gateway::rest::auth::sign_request;
use ring::hmac;
use serde_json::{Value, json};

use super::{Up, http_client, write_config};

/// How long the mail may take to arrive.
pub const MAIL_WAIT: Duration = Duration::from_secs(10);
pub const BARONG: &str = "/api/v2/barong";
pub const PASSWORD: &str = "correct horse battery staple";

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run under scripts/test"))
}

pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fresh nonce: the clock in ms, strictly above the last one given.
pub fn nonce_ms() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let next = |last: u64| clock.max(last + 1);
    let previous = LAST
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| Some(next(last)))
        .unwrap_or_else(|last| last);
    next(previous)
}

/// RFC 6238 (SHA-1, 6 digits, 30 s), `periods` from now, from an otpauth URL's secret: what
/// an authenticator app shows.
pub fn totp(url: &str, periods: i64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let text = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap();
    let (mut bits, mut value, mut secret) = (0u32, 0u64, Vec::new());
    for c in text.bytes() {
        value = (value << 5) | ALPHABET.iter().position(|&a| a == c).unwrap() as u64;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            secret.push((value >> bits) as u8);
        }
    }
    let counter = ((now_s() / 30) + periods) as u64;
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret),
        &counter.to_be_bytes(),
    );
    let mac = mac.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let word = u32::from_be_bytes(mac[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", word % 1_000_000)
}

/// Waits until the current 30 s TOTP period has at least 12 s left, so the three codes of a
/// user (previous, current, next period) stay valid through its steps.
pub async fn early_in_a_totp_period() {
    while now_s() % 30 > 18 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The code mailed to `to` (the newest), read from the SMTP server's maildir.
pub async fn mailed_code(to: &str) -> String {
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

/// A browser-like client of identity: the session cookie and CSRF token it was given.
pub struct Session {
    pub rest: String,
    pub cookie: String,
    pub csrf: String,
}

/// `METHOD {rest}{path}` with a JSON body; status and JSON (or `null`) back.
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value, reqwest::header::HeaderMap) {
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

pub async fn anonymous(rest: &str, path: &str, body: &Value) -> (u16, Value) {
    let (status, body, _) = send(
        http_client()
            .post(format!("{rest}{BARONG}{path}"))
            .json(body),
    )
    .await;
    (status, body)
}

impl Session {
    /// `method` on a session path, with the cookie and the CSRF token.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let (status, body, _) = send(
            http_client()
                .request(method, format!("{}{BARONG}{path}", self.rest))
                .header("Cookie", format!("peregrine_session={}", self.cookie))
                .header("X-CSRF-Token", &self.csrf)
                .json(body),
        )
        .await;
        (status, body)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, body).await
    }
}

/// Signs up `email`, verifies it with the mailed code and logs in; the session, account and
/// uid.
pub async fn new_verified_user(rest: &str, email: &str) -> (Session, u32, String) {
    let credentials = json!({ "email": email, "password": PASSWORD });
    let (status, body) = anonymous(rest, "/identity/users", &credentials).await;
    assert_eq!(status, 201, "sign-up: {body}");
    assert_eq!(body["state"], "pending");
    let uid = body["uid"].as_str().unwrap().to_owned();
    let code = mailed_code(email).await;
    let confirm = json!({ "email": email, "token": code });
    let (status, body) = anonymous(rest, "/identity/users/email/confirm_code", &confirm).await;
    assert_eq!(status, 201, "verify: {body}");
    assert_eq!(body["level"], 1, "{body}");
    let account = u32::try_from(body["account_id"].as_u64().unwrap()).unwrap();
    let session = log_in(rest, &credentials).await;
    (session, account, uid)
}

/// Logs in with e-mail and password; the session cookie and CSRF token it gave.
pub async fn log_in(rest: &str, credentials: &Value) -> Session {
    let (status, body, headers) = send(
        http_client()
            .post(format!("{rest}{BARONG}/identity/sessions"))
            .json(credentials),
    )
    .await;
    assert_eq!(status, 200, "login: {body}");
    let set_cookie = headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let cookie = set_cookie
        .strip_prefix("peregrine_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    Session {
        rest: rest.to_owned(),
        cookie,
        csrf,
    }
}

/// Enrols and enables 2FA; the otpauth URL (the authenticator app's secret).
pub async fn enable_2fa(session: &Session) -> String {
    let (status, body) = session
        .post("/resource/otp/generate_qrcode", &json!({}))
        .await;
    assert_eq!(status, 201, "enrol: {body}");
    let url = body["data"]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("otpauth://totp/"), "{url}");
    let (status, body) = session
        .post("/resource/otp/enable", &json!({ "code": totp(&url, 0) }))
        .await;
    assert_eq!(status, 201, "enable: {body}");
    url
}

/// A request signed with an HMAC key over nonce, method, path and the body's SHA-256.
pub async fn signed(
    rest: &str,
    (kid, secret): (&str, &str),
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let bytes = body.map(Value::to_string).unwrap_or_default();
    let nonce = nonce_ms();
    let signature = sign_request(secret, nonce, method, path, bytes.as_bytes());
    let mut request = http_client()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{rest}{path}"),
        )
        .header("X-Auth-Apikey", kid)
        .header("X-Auth-Nonce", nonce.to_string())
        .header("X-Auth-Signature", signature);
    if body.is_some() {
        request = request
            .header("Content-Type", "application/json")
            .body(bytes);
    }
    let (status, body, _) = send(request).await;
    (status, body)
}

/// How long until a signed balance read with `key` answers `status` (bounded: 5 s).
pub async fn until_balance_status(rest: &str, key: (&str, &str), status: u16) -> Duration {
    let started = Instant::now();
    loop {
        let (got, _) = signed(rest, key, "GET", "/api/v2/peatio/account/balances", None).await;
        if got == status {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `peregrine.toml` with identity on real OpenBao (names of this run's own) and SMTP.
pub fn config_with_identity(dir: &Path) {
    write_config(dir, &[], &identity_section(dir));
}

/// The `[auth]` section of [`config_with_identity`] (it writes `dir/bao-token`), for a test
/// that adds sections of its own.
pub fn identity_section(dir: &Path) -> String {
    std::fs::write(dir.join("bao-token"), env("VAULT_TOKEN")).unwrap();
    format!(
        "[auth]\nkey_poll_interval_ms = 100\n\n[auth.smtp]\nserver = \"{smtp}\"\n\
         from = \"exchange@example.com\"\n\n[auth.openbao]\naddress = \"{bao}\"\n\
         token_file = \"bao-token\"\ntotp_mount = \"{totp}\"\ntransit_mount = \"{transit}\"\n\
         policy = \"{policy}\"\n",
        smtp = env("SMTP_ADDR"),
        bao = env("VAULT_ADDR"),
        totp = unique("totp"),
        transit = unique("transit"),
        policy = unique("identity"),
    )
}

/// A new HMAC key with `scope`, made with the `period`'s code; (kid, secret).
pub async fn create_hmac_key(
    session: &Session,
    url: &str,
    scope: &[&str],
    period: i64,
) -> (String, String) {
    let create = json!({ "scope": scope, "totp_code": totp(url, period) });
    let (status, created) = session.post("/resource/api_keys", &create).await;
    assert_eq!(status, 201, "create key: {created}");
    (
        created["kid"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// A fresh ed25519 key pair registered for trading with the `period`'s code; (the QUIC key
/// id identity gave it, the private key's seed).
pub async fn register_ed25519_key(session: &Session, url: &str, period: i64) -> (u64, [u8; 32]) {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&nonce_ms().to_le_bytes());
    seed[31] = 0x14;
    let signing = SigningKey::from_seed(&seed).unwrap();
    let register = json!({
        "algorithm": "ed25519", "public_key": signing.public_key_hex(),
        "scope": ["trade"], "totp_code": totp(url, period),
    });
    let (status, registered) = session.post("/resource/api_keys", &register).await;
    assert_eq!(status, 201, "register ed25519 key: {registered}");
    (registered["kid"].as_str().unwrap().parse().unwrap(), seed)
}

/// `up` with identity, and a verified user with 2FA enabled on it: (up, session, account,
/// uid, otpauth URL). The user's codes of the previous and next periods are still unused.
pub async fn up_with_a_user(dir: &Path, who: &str) -> (Up, Session, u32, String, String) {
    config_with_identity(dir);
    let up = Up::start(dir);
    let email = format!("{}@example.com", unique(who));
    let (session, account, uid) = new_verified_user(&up.rest, &email).await;
    early_in_a_totp_period().await;
    let url = enable_2fa(&session).await;
    (up, session, account, uid, url)
}

/// How long a logged code may take to appear.
const CODE_WAIT: Duration = Duration::from_secs(10);

/// The code `up` logged for `to` (no `[auth.smtp]`): the JSON log line's `code` field.
pub async fn logged_code(dir: &Path, to: &str) -> String {
    let deadline = Instant::now() + CODE_WAIT;
    loop {
        let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
        let code = log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["fields"]["email"] == to)
            .and_then(|line| line["fields"]["code"].as_str().map(str::to_owned));
        if let Some(code) = code {
            return code;
        }
        assert!(Instant::now() < deadline, "no code logged for {to}:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A key change must take effect on the running appliance within this.
pub const CHANGE_WITHIN: Duration = Duration::from_secs(1);
pub const ORDERS: &str = "/api/v2/peatio/market/orders";

pub fn order() -> Value {
    json!({"market": "btcusd", "side": "buy", "volume": "0.01", "price": "40000"})
}

/// Logs on with a self-service key, retrying while the QUIC registry has not loaded it yet
/// (it must within `within`).
pub async fn connect_within(up: &Up, kid: u64, seed: &[u8; 32], within: Duration) -> Client {
    let started = Instant::now();
    loop {
        match Client::connect(
            up.quic,
            ServerTrust::Fingerprint(up.fingerprint),
            KeyId(kid),
            SigningKey::from_seed(seed).unwrap(),
        )
        .await
        {
            Ok(client) => return client,
            Err(error) => assert!(
                started.elapsed() < within,
                "the QUIC key did not log on within {within:?}: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
