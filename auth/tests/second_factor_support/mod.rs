//! What the identity, 2FA, token and API-key tests share: an identity over HTTP on loopback with real MariaDB,
//! real SMTP and a real OpenBao (the shared dev server, or a private one a test seals or
//! kills), users made the way a new user makes them, and RFC 6238 codes computed from the
//! enrolment URL as an authenticator app would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peregrine_auth::jwt::TokenConfig;
use peregrine_auth::mail::MailConfig;
use peregrine_auth::vault::{Vault, VaultConfig, provision};
use peregrine_auth::{Clock, Identity, IdentityConfig, Store};
use peregrine_secrets::{BaoToken, OpenBao};
use reqwest::StatusCode;
use ring::hmac;
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery";
const MAIL_WAIT: Duration = Duration::from_secs(10);

#[path = "../common/mod.rs"]
mod common;
pub use common::{mysql_url, required_env, unique};

/// The shared dev OpenBao with the root token.
pub fn shared_root() -> OpenBao {
    OpenBao::new(
        &required_env("VAULT_ADDR"),
        BaoToken::new(required_env("VAULT_TOKEN")),
    )
    .unwrap()
}

/// Mounts of this test's own, so runs do not see each other's keys.
pub fn unique_vault_config() -> VaultConfig {
    let mut config = VaultConfig::default();
    config.totp_mount = unique("totp");
    config.transit_mount = unique("transit");
    config.policy = unique("identity");
    config
}

/// Identity's narrow client: provisioned with `root`, then acting with its own token.
pub async fn identity_vault(root: &OpenBao, config: VaultConfig) -> Vault {
    let token = provision(root, &config).await.unwrap();
    Vault {
        client: root.with_token(token),
        config,
    }
}

pub struct Harness {
    pub identity: Arc<Identity>,
    pub base: String,
    pub http: reqwest::Client,
    pub registry: prometheus::Registry,
}

pub async fn start(suffix: &str, vault: Option<Vault>) -> Harness {
    let store = Store::open(&mysql_url(suffix).await).await.unwrap();
    let mut config = IdentityConfig::default();
    config.cookie_secure = false;
    config.mail = Some(MailConfig::new(
        required_env("SMTP_ADDR"),
        "noreply@peregrine.test",
    ));
    let registry = prometheus::Registry::new();
    let mut identity = Identity::new(store, config, Clock::System, &registry).unwrap();
    if let Some(vault) = vault {
        identity = identity.with_vault(vault, TokenConfig::default());
    }
    let identity = Arc::new(identity);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = peregrine_auth::http::router(identity.clone())
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Harness {
        identity,
        base: format!("http://{addr}/api/v2/barong"),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        registry,
    }
}

/// An answer: status, JSON body and headers.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["errors"][0].as_str().unwrap_or("")
    }
}

/// A logged-in client's credentials.
#[derive(Clone, Debug)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

impl Harness {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        session: Option<&Session>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(session) = session {
            request = request
                .header("Cookie", format!("peregrine_session={}", session.cookie))
                .header("X-CSRF-Token", &session.csrf);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }

    pub async fn login(&self, email: &str, otp_code: Option<&str>) -> Answer {
        let mut body = json!({"email": email, "password": PASSWORD});
        if let Some(code) = otp_code {
            body["otp_code"] = json!(code);
        }
        self.call("POST", "/identity/sessions", Some(body), None)
            .await
    }

    pub async fn login_ok(&self, email: &str, otp_code: Option<&str>) -> Session {
        let answer = self.login(email, otp_code).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let cookie = answer.headers["set-cookie"].to_str().unwrap();
        let id = cookie
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("peregrine_session=")
            .unwrap();
        Session {
            cookie: id.to_owned(),
            csrf: answer.body["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Signs up as a new user would, reads the mailed code, confirms, logs in.
    pub async fn new_user(&self, name: &str) -> (String, Session) {
        let email = email(name);
        let body = json!({"email": email, "password": PASSWORD});
        let answer = self.call("POST", "/identity/users", Some(body), None).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let code = mailed_code(&email, "confirm your e-mail").await;
        let body = json!({"email": email, "token": code});
        let answer = self
            .call(
                "POST",
                "/identity/users/email/confirm_code",
                Some(body),
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let session = self.login_ok(&email, None).await;
        (email, session)
    }

    /// Generates and enables 2FA for the session's user; the TOTP secret, as the app keeps it.
    pub async fn enable_2fa(&self, session: &Session) -> Vec<u8> {
        let answer = self
            .call("POST", "/resource/otp/generate_qrcode", None, Some(session))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let secret = secret_of(answer.body["data"]["url"].as_str().unwrap());
        let code = totp_at(&secret, 0);
        let answer = self
            .call(
                "POST",
                "/resource/otp/enable",
                Some(json!({ "code": code })),
                Some(session),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        secret
    }
}

/// A unique address per run (mail from earlier runs stays in the mail directory).
pub fn email(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}.{nanos}@example.com")
}

/// The code in the newest mail to `to` mentioning `what`, waiting for it.
pub async fn mailed_code(to: &str, what: &str) -> String {
    let dir = PathBuf::from(required_env("SMTP_MAIL_DIR"));
    let deadline = Instant::now() + MAIL_WAIT;
    loop {
        let mut found: Vec<(SystemTime, String)> = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if text.contains(&format!("To: <{to}>")) && text.contains(what) {
                    found.push((entry.metadata().unwrap().modified().unwrap(), text));
                }
            }
        }
        found.sort();
        if let Some((_, text)) = found.last() {
            let after = text.split(" is ").nth(1).unwrap();
            return after[..6].to_owned();
        }
        assert!(Instant::now() < deadline, "no mail to {to}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The secret in an `otpauth://` URL, decoded from RFC 4648 base32.
pub fn secret_of(url: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let text = url
        .split(['?', '&'])
        .find_map(|part| part.strip_prefix("secret="))
        .unwrap();
    let (mut bits, mut value, mut out) = (0u32, 0u64, Vec::new());
    for c in text.bytes().filter(|&c| c != b'=') {
        let digit = ALPHABET.iter().position(|&a| a == c).unwrap() as u64;
        value = (value << 5) | digit;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
        }
    }
    out
}

/// The RFC 6238 code (SHA-1, 6 digits, 30 s) of `secret`, `periods` periods from now
/// (OpenBao accepts the neighbouring periods: skew 1).
pub fn totp_at(secret: &[u8], periods: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let counter = (now / 30 + periods) as u64;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let word = u32::from_be_bytes(mac[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", word % 1_000_000)
}

/// Seconds into the current 30 s TOTP period.
pub fn into_period_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 30
}

/// A private dev-mode OpenBao, killed when dropped (the shared one is never stopped).
pub struct PrivateBao(Child);

impl PrivateBao {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for PrivateBao {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn start_private_bao(token: &str) -> (PrivateBao, OpenBao) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = tempfile::tempdir().unwrap();
    let child = Command::new(required_env("BAO_BIN"))
        .args(["server", "-dev"])
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .arg(format!("-dev-root-token-id={token}"))
        .env("HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let private = PrivateBao(child);
    let bao = OpenBao::new(&format!("http://127.0.0.1:{port}"), BaoToken::new(token)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(bao.health().await, Ok(health) if !health.sealed) {
        assert!(
            Instant::now() < deadline,
            "the private OpenBao did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (private, bao)
}
