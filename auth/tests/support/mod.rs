//! The KYC and RBAC tests' harness: the identity and KYC routers served over loopback HTTP,
//! on a MariaDB database of the test's own, with real OpenBao (a transit mount of the test's
//! own) and the real SMTP server of `scripts/test` for sign-up codes.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use peregrine_auth::kyc::{Kyc, KycConfig};
use peregrine_auth::mail::MailConfig;
use peregrine_auth::{Clock, Identity, IdentityConfig, Role, User};
use peregrine_secrets::sys::Engine;
use peregrine_secrets::{BaoToken, OpenBao};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery";
const MAIL_WAIT: Duration = Duration::from_secs(10);

#[path = "../common/mod.rs"]
mod common;
pub use common::{mysql_url, required_env, unique};

pub fn bao() -> OpenBao {
    OpenBao::new(
        &required_env("VAULT_ADDR"),
        BaoToken::new(required_env("VAULT_TOKEN")),
    )
    .unwrap()
}

pub struct Harness {
    pub identity: Arc<Identity>,
    pub kyc: Arc<Kyc>,
    pub base: String,
    pub http: reqwest::Client,
    pub registry: prometheus::Registry,
    pub database_url: String,
    pub clock: Clock,
    pub addr: SocketAddr,
}

/// Serves identity and KYC on a database `suffix` of its own, with the shared OpenBao;
/// `tune` adjusts KYC's config.
pub async fn start(suffix: &str, tune: impl FnOnce(&mut KycConfig)) -> Harness {
    start_with(suffix, bao(), tune).await
}

/// [`start`] with the OpenBao `bao`.
pub async fn start_with(suffix: &str, bao: OpenBao, tune: impl FnOnce(&mut KycConfig)) -> Harness {
    let database_url = mysql_url(suffix).await;
    let store = peregrine_auth::Store::open(&database_url).await.unwrap();
    let mount = unique("kyc-transit");
    bao.ensure_engine(&mount, Engine::Transit).await.unwrap();
    let mut config = IdentityConfig::default();
    config.cookie_secure = false;
    config.mail = Some(MailConfig::new(
        required_env("SMTP_ADDR"),
        "noreply@peregrine.test",
    ));
    config.kyc.transit_mount = mount;
    tune(&mut config.kyc);
    config.validate().unwrap();
    let clock = Clock::manual(1_796_432_523_000);
    let registry = prometheus::Registry::new();
    let identity = Arc::new(Identity::new(store, config, clock.clone(), &registry).unwrap());
    let kyc = Arc::new(Kyc::start(identity.clone(), bao, &registry).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = peregrine_auth::http::router(identity.clone())
        .merge(peregrine_auth::http::kyc::router(kyc.clone()))
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Harness {
        identity,
        kyc,
        base: format!("http://{addr}/api/v2/barong"),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        registry,
        database_url,
        clock,
        addr,
    }
}

/// A status and a JSON (or raw) body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub bytes: Vec<u8>,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["errors"][0].as_str().unwrap_or("")
    }
}

/// A logged-in user.
#[derive(Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
    pub uid: String,
}

impl Harness {
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap().to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            bytes,
            headers,
        }
    }

    /// A request to `path` under `/api/v2/barong` with `session`'s cookie and CSRF token.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        session: Option<&Session>,
    ) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(session) = session {
            request = request
                .header("Cookie", format!("peregrine_session={}", session.cookie))
                .header("X-CSRF-Token", &session.csrf);
        }
        request
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        session: Option<&Session>,
    ) -> Answer {
        let mut request = self.request(method, path, session);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    async fn login(&self, email: &str) -> Session {
        let answer = self
            .call(
                "POST",
                "/identity/sessions",
                Some(json!({"email": email, "password": PASSWORD})),
                None,
            )
            .await;
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
            uid: answer.body["uid"].as_str().unwrap().to_owned(),
        }
    }

    /// A member who signed up and verified the e-mail address (the code read from the mail),
    /// logged in.
    pub async fn member(&self, name: &str) -> Session {
        let email = format!("{}@example.com", unique(name));
        let answer = self
            .call(
                "POST",
                "/identity/users",
                Some(json!({"email": email, "password": PASSWORD})),
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let code = mailed_code(&email).await;
        let answer = self
            .call(
                "POST",
                "/identity/users/email/confirm_code",
                Some(json!({"email": email, "token": code})),
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        self.login(&email).await
    }

    /// An operator made on the host with `role`, logged in.
    pub async fn operator(&self, role: Role) -> Session {
        let email = format!("{}@example.com", unique(role.as_str()));
        self.identity
            .create_operator(&email, PASSWORD, role)
            .await
            .unwrap();
        self.login(&email).await
    }

    pub async fn user(&self, session: &Session) -> User {
        self.identity
            .store()
            .user_by_uid(&session.uid)
            .await
            .unwrap()
            .unwrap()
    }

    pub fn metrics_text(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap()
    }
}

/// The code in the newest mail to `to`.
async fn mailed_code(to: &str) -> String {
    let dir = PathBuf::from(required_env("SMTP_MAIL_DIR"));
    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
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
        assert!(tokio::time::Instant::now() < deadline, "no mail to {to}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A dev-mode OpenBao of the test's own (so the test may seal or stop it), killed when
/// dropped.
pub struct PrivateBao {
    child: std::process::Child,
    pub client: OpenBao,
    _home: tempfile::TempDir,
}

impl PrivateBao {
    pub async fn start() -> PrivateBao {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(required_env("BAO_BIN"))
            .args(["server", "-dev", "-dev-root-token-id=kyc-private-root"])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .env("HOME", home.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let client = OpenBao::new(
            &format!("http://127.0.0.1:{port}"),
            BaoToken::new("kyc-private-root"),
        )
        .unwrap();
        let private = PrivateBao {
            child,
            client,
            _home: home,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !matches!(private.client.health().await, Ok(health) if !health.sealed) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the private OpenBao did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        private
    }
}

impl Drop for PrivateBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
