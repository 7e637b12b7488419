//! Shared by the tests that run `peregrine up` as a child process and trade through it: the
//! configuration they write, the summary lines they read, the control API and QUIC clients.

#![allow(dead_code)]

pub mod dashboard;
pub mod identity;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use peregrine_client::{Client, KeyId, ServerTrust, SigningKey};

/// Bound on waiting for the binary to start or stop: generous for a loaded 2-core CI machine.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

/// An account trading through its own QUIC key.
#[derive(Clone, Copy, Debug)]
pub struct Trader {
    pub key_id: u64,
    pub account: u32,
    pub seed: [u8; 32],
}

impl Trader {
    pub fn new(account: u32) -> Trader {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&account.to_le_bytes());
        seed[31] = 0x5A;
        Trader {
            key_id: u64::from(account) + 100,
            account,
            seed,
        }
    }

    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_seed(&self.seed).unwrap()
    }
}

/// Writes `peregrine.toml` in `dir` for ephemeral ports, the data under `dir/data`, and one QUIC
/// key per trader; `extra` is appended verbatim.
pub fn write_config(dir: &Path, traders: &[Trader], extra: &str) -> PathBuf {
    let mut text = String::from(
        "[data]\ndir = \"data\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[quic]\nlisten = \"127.0.0.1:0\"\nsessions_per_key = 4\n\n[rest]\nlisten = \"127.0.0.1:0\"\n\n",
    );
    for trader in traders {
        text.push_str(&format!(
            "[[quic.keys]]\nkey_id = {}\naccount = {}\npublic_key = \"{}\"\n\n",
            trader.key_id,
            trader.account,
            trader.signing_key().public_key_hex()
        ));
    }
    text.push_str(extra);
    let path = dir.join("peregrine.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `peregrine <args>` in `dir`, stderr appended to `dir/stderr.log`; the receiver gets
/// its stdout lines.
pub fn spawn(dir: &Path, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .env_clear()
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("stderr.log"))
                .unwrap(),
        ))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        // Drains to the end even once nobody listens: a closed pipe would fail the
        // child's later writes.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    (child, receiver)
}

/// A running `peregrine up` and what its summary said.
pub struct Up {
    pub child: Child,
    pub http: String,
    /// The REST bridge's base, e.g. `http://127.0.0.1:8081` (paths start with `/api/v2`).
    pub rest: String,
    pub quic: SocketAddr,
    pub fingerprint: [u8; 32],
    pub token: String,
    pub lines: Vec<String>,
}

impl Up {
    /// Starts `peregrine up` in `dir` (which holds `peregrine.toml`) and waits for its summary.
    pub fn start(dir: &Path) -> Up {
        Up::start_with_args(dir, &[])
    }

    /// [`Up::start`] with more flags for `up`.
    pub fn start_with_args(dir: &Path, args: &[&str]) -> Up {
        let mut all = vec!["up", "--log-format", "json"];
        all.extend_from_slice(args);
        let (child, receiver) = spawn(dir, &all);
        Up::from_summary(child, &receiver, dir)
    }

    /// Reads the summary `child` (started in `dir`) prints on `receiver`: at start, or once a
    /// standby is promoted.
    pub fn from_summary(mut child: Child, receiver: &mpsc::Receiver<String>, dir: &Path) -> Up {
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        let mut lines = Vec::new();
        let (mut http, mut rest, mut quic, mut token_path) = (None, None, None, None);
        while !lines.iter().any(|l: &String| l.starts_with("data ")) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = match receiver.recv_timeout(remaining) {
                Ok(line) => line,
                Err(e) => {
                    let stderr =
                        std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
                    let _ = child.kill();
                    panic!("no summary from peregrine up ({e}); saw {lines:?}; stderr:\n{stderr}");
                }
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first() {
                Some(&"http") => http = Some(words[1].to_owned()),
                Some(&"rest") => rest = Some(words[1].trim_end_matches("/api/v2").to_owned()),
                Some(&"quic") => {
                    let hex = words[2].trim_start_matches("(sha256").trim_end_matches(';');
                    let hex = if hex.is_empty() {
                        words[3].trim_end_matches(';')
                    } else {
                        hex
                    };
                    let mut fingerprint = [0u8; 32];
                    for (i, byte) in fingerprint.iter_mut().enumerate() {
                        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
                    }
                    quic = Some((words[1].parse().unwrap(), fingerprint));
                }
                Some(&"control") => {
                    token_path = Some(words.last().unwrap().trim_end_matches(')').to_owned());
                }
                _ => {}
            }
            lines.push(line);
        }
        let (quic, fingerprint) = quic.unwrap_or_else(|| panic!("no quic line: {lines:?}"));
        let token_path = token_path.unwrap_or_else(|| panic!("no control line: {lines:?}"));
        let token = std::fs::read_to_string(dir.join(token_path))
            .unwrap()
            .trim()
            .to_owned();
        Up {
            child,
            http: http.unwrap(),
            rest: rest.unwrap_or_else(|| panic!("no rest line: {lines:?}")),
            quic,
            fingerprint,
            token,
            lines,
        }
    }

    /// Logs `trader` on over QUIC.
    pub async fn connect(&self, trader: &Trader) -> Client {
        Client::connect(
            self.quic,
            ServerTrust::Fingerprint(self.fingerprint),
            KeyId(trader.key_id),
            trader.signing_key(),
        )
        .await
        .unwrap()
    }

    /// `POST {http}/control/v1/{path}` with the token; returns status and JSON body.
    pub async fn control(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = http_client()
            .post(format!("{}/control/v1/{path}", self.http))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// `GET /control/v1/status`, as JSON.
    pub async fn control_status(&self) -> serde_json::Value {
        http_client()
            .get(format!("{}/control/v1/status", self.http))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The text of `GET {http}/metrics`.
    pub async fn metrics(&self) -> String {
        http_client()
            .get(format!("{}/metrics", self.http))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Credits `amount` of `currency` to `account` through the control API.
    pub async fn deposit(&self, account: u32, currency: &str, amount: &str, deposit_id: u64) {
        let (status, body) = self
            .control(
                "deposits",
                serde_json::json!({
                    "account": account, "currency": currency, "amount": amount,
                    "deposit_id": deposit_id,
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit after SIGTERM: {status:?}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "peregrine did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the crash the journal is for.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // Tests that fail before stopping must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate (PEM) [`http_client`] trusts besides the public roots, set once by a test
/// whose appliance serves `[rest.tls]` (nextest runs each test in a process of its own).
static EXTRA_ROOT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Makes [`http_client`] trust the certificate in `pem` too (for an `https://` appliance).
pub fn trust_also(pem: &Path) {
    let bytes = std::fs::read(pem).unwrap();
    assert!(
        EXTRA_ROOT.set(bytes.clone()).is_ok() || EXTRA_ROOT.get() == Some(&bytes),
        "another certificate is trusted already"
    );
}

pub fn http_client() -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30));
    if let Some(pem) = EXTRA_ROOT.get() {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap());
    }
    builder.build().unwrap()
}

/// A REST request with an API key's headers, signed over the whole request (nonce, method,
/// path and query, SHA-256 of `body`, which is sent as JSON). `nonce_ms`: `now_ms()` unless a
/// test needs a given one.
pub fn signed_rest(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    (key, secret): (&str, &str),
    nonce_ms: u128,
    body: Option<&serde_json::Value>,
) -> reqwest::RequestBuilder {
    let parsed = reqwest::Url::parse(url).unwrap();
    let path = match parsed.query() {
        Some(query) => format!("{}?{query}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    let bytes = body.map_or_else(Vec::new, |body| serde_json::to_vec(body).unwrap());
    let nonce = u64::try_from(nonce_ms).unwrap();
    let signature =
        peregrine_gateway::rest::auth::sign_request(secret, nonce, method.as_str(), &path, &bytes);
    let mut request = client
        .request(method, parsed)
        .header("X-Auth-Apikey", key)
        .header("X-Auth-Nonce", nonce.to_string())
        .header("X-Auth-Signature", signature);
    if body.is_some() {
        request = request
            .header("content-type", "application/json")
            .body(bytes);
    }
    request
}

/// A signed REST request of Peatio's API on `up` as a static key (`[[rest.keys]]`: key id,
/// secret, account), signed over the whole request; its status and JSON (null when none).
pub async fn peatio_rest(
    up: &Up,
    (key, secret, _): (&str, &str, u32),
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let url = format!("{}/api/v2/peatio{path}", up.rest);
    let client = http_client();
    let request = signed_rest(
        &client,
        method,
        &url,
        (key, secret),
        now_ms(),
        body.as_ref(),
    );
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// A MariaDB database of its own for one test, `<DATABASE_URL's database>_<suffix>_<pid>`,
/// created empty (dropped first if a crashed run left it); dropped again when this is dropped.
pub struct FreshDatabase {
    /// Its URL.
    pub url: String,
}

impl FreshDatabase {
    pub fn new(suffix: &str) -> FreshDatabase {
        use peregrine_replica::admin;
        let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
            panic!("DATABASE_URL is not set: run the suite with scripts/test, which exports it")
        });
        let (_, base_name) = admin::split_mysql_url(&base).unwrap();
        let name = format!("{base_name}_{suffix}_{}", std::process::id());
        let url = admin::with_database(&base, &name).unwrap();
        // The admin calls run their own runtime: off the caller's (async) threads.
        let fresh = url.clone();
        std::thread::spawn(move || {
            admin::drop_mysql_database(&fresh).unwrap();
            admin::create_mysql_database(&fresh).unwrap();
        })
        .join()
        .unwrap();
        FreshDatabase { url }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let url = self.url.clone();
        let _ =
            std::thread::spawn(move || peregrine_replica::admin::drop_mysql_database(&url)).join();
    }
}

/// The next message carrying `stream`, skipping others; bounded by a timeout.
pub async fn next_with<S>(ws: &mut S, stream: &str) -> serde_json::Value
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("no WebSocket message within 10 s")
            .expect("the WebSocket ended")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            if let Some(payload) = value.get(stream) {
                return payload.clone();
            }
        }
    }
}

/// A fresh nonce: the clock in ms, but always above the last one (nonces must increase per key,
/// and two requests may fall in the same millisecond).
pub fn now_ms() -> u128 {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let previous = LAST
        .fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |last| Some(clock.max(last + 1)),
        )
        .unwrap();
    u128::from(clock.max(previous + 1))
}
