//! The real processes `fanout` measures: one `peregrine up` publishing to JetStream and `M`
//! `peregrine bridge` processes following it, each in a directory of its own under the run's
//! scratch directory, on ephemeral loopback ports read back from their start-up summaries.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use peregrine_client::SigningKey;

use super::NAME;
use crate::error::BenchError;

/// Bound on a process printing its summary (a loaded 2-core machine starts slowly).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on a bridge becoming ready (seeded from the snapshot, following the stream).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Poll interval while waiting for readiness.
const READY_POLL: Duration = Duration::from_millis(20);
/// Summary lines read at most before giving up on a start (a bound on the loop).
const SUMMARY_LINES_MAX: usize = 64;
/// WebSocket connections a bridge admits beyond its share of subscribers (the probe's).
const WS_CONNECTIONS_SLACK: usize = 16;

/// The binary to start: `PEREGRINE_BIN` if set (tests of this crate), else the running
/// executable, which is `peregrine` when run as `peregrine bench fanout`.
pub(super) fn peregrine_bin() -> Result<PathBuf, BenchError> {
    match std::env::var_os("PEREGRINE_BIN") {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => std::env::current_exe().map_err(|e| BenchError::workload(NAME, e)),
    }
}

/// A trading account with a QUIC key of its own in the appliance's configuration.
#[derive(Clone, Copy, Debug)]
pub(super) struct Trader {
    pub key_id: u64,
    pub account: u32,
    pub seed: [u8; 32],
}

impl Trader {
    pub fn new(account: u32) -> Trader {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&account.to_le_bytes());
        seed[31] = 0xB5;
        Trader {
            key_id: u64::from(account) + 100,
            account,
            seed,
        }
    }

    pub fn signing_key(&self) -> Result<SigningKey, BenchError> {
        SigningKey::from_seed(&self.seed).map_err(|e| BenchError::workload(NAME, e))
    }
}

/// A child process, killed when dropped (a failed run leaves nothing behind).
pub(super) struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `bin <args>` in `dir`; stderr goes to `dir/stderr.log`, stdout lines to `lines`.
    fn spawn(bin: &Path, dir: &Path, args: &[&str]) -> Result<Process, BenchError> {
        let fail = |e: std::io::Error| BenchError::workload(NAME, e);
        let stderr = std::fs::File::create(dir.join("stderr.log")).map_err(fail)?;
        let mut child = Command::new(bin)
            .env_clear()
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(fail)?;
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                // Drains to the end: a closed pipe would fail the child's later writes.
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = sender.send(line);
                }
            });
        }
        Ok(Process { child, lines })
    }

    /// Summary lines until one starts with `last` (included).
    fn summary(&mut self, dir: &Path, last: &str) -> Result<Vec<String>, BenchError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut lines = Vec::new();
        while lines.len() < SUMMARY_LINES_MAX {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(remaining) else {
                let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
                let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(BenchError::workload(
                    NAME,
                    format!("no summary from {}: {tail}", dir.display()),
                ));
            };
            let done = line.starts_with(last);
            lines.push(line);
            if done {
                return Ok(lines);
            }
        }
        Err(BenchError::workload(NAME, "summary too long"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The second word of the summary line starting with `key`.
fn word(lines: &[String], key: &str) -> Result<String, BenchError> {
    lines
        .iter()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(key)).then(|| words.next())?
        })
        .next()
        .map(str::to_owned)
        .ok_or_else(|| BenchError::workload(NAME, format!("no {key} line in {lines:?}")))
}

/// A running appliance.
pub(super) struct Appliance {
    _process: Process,
    pub http: String,
    pub quic: SocketAddr,
    pub fingerprint: [u8; 32],
    pub token: String,
}

/// Where the appliance publishes.
pub(super) struct Stream<'a> {
    pub url: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
}

impl Appliance {
    /// Writes the configuration (a QUIC key per trader, `[fanout]` on `stream`) and starts it.
    pub fn start(
        bin: &Path,
        dir: &Path,
        traders: &[Trader],
        stream: &Stream<'_>,
    ) -> Result<Appliance, BenchError> {
        let fail = |e: String| BenchError::workload(NAME, e);
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        let mut text = String::from(
            "[data]\ndir = \"data\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[quic]\nlisten = \"127.0.0.1:0\"\n\n[rest]\nlisten = \"127.0.0.1:0\"\n\n",
        );
        for trader in traders {
            text.push_str(&format!(
                "[[quic.keys]]\nkey_id = {}\naccount = {}\npublic_key = \"{}\"\n\n",
                trader.key_id,
                trader.account,
                trader.signing_key()?.public_key_hex()
            ));
        }
        text.push_str(&format!(
            "[fanout]\nenabled = true\nurl = \"{}\"\nstream = \"{}\"\nprefix = \"{}\"\nsnapshot_interval_ms = 1000\n",
            stream.url, stream.name, stream.prefix
        ));
        std::fs::write(dir.join("peregrine.toml"), text).map_err(|e| fail(e.to_string()))?;
        let mut process = Process::spawn(bin, dir, &["up", "--log-format", "json"])?;
        let lines = process.summary(dir, "data ")?;
        let quic = lines
            .iter()
            .find(|l| l.starts_with("quic "))
            .ok_or_else(|| fail(format!("no quic line in {lines:?}")))?;
        let (quic, fingerprint) = parse_quic(quic).ok_or_else(|| fail(quic.clone()))?;
        let control = lines
            .iter()
            .find(|l| l.starts_with("control "))
            .and_then(|l| l.split_whitespace().last())
            .ok_or_else(|| fail(format!("no control line in {lines:?}")))?;
        let token_path = dir.join(control.trim_end_matches(')'));
        let token = std::fs::read_to_string(token_path).map_err(|e| fail(e.to_string()))?;
        Ok(Appliance {
            _process: process,
            http: word(&lines, "http")?,
            quic,
            fingerprint,
            token: token.trim().to_owned(),
        })
    }

    /// Credits `amount` of `currency` to `account` through the control API.
    pub async fn deposit(
        &self,
        client: &reqwest::Client,
        account: u32,
        (currency, amount): (&str, &str),
        deposit_id: u64,
    ) -> Result<(), BenchError> {
        let response = client
            .post(format!("{}/control/v1/deposits", self.http))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({
                "account": account, "currency": currency, "amount": amount,
                "deposit_id": deposit_id,
            }))
            .send()
            .await
            .map_err(|e| BenchError::workload(NAME, e))?;
        if !response.status().is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(BenchError::workload(NAME, format!("deposit: {body}")));
        }
        Ok(())
    }
}

/// `quic  <addr>  (sha256 <hex>; ...`: the address and the certificate's fingerprint.
fn parse_quic(line: &str) -> Option<(SocketAddr, [u8; 32])> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let addr = words.get(1)?.parse().ok()?;
    let hex = words.get(3)?.trim_end_matches(';');
    let mut fingerprint = [0u8; 32];
    if hex.len() != 2 * fingerprint.len() || !hex.is_ascii() {
        return None;
    }
    for (i, byte) in fingerprint.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some((addr, fingerprint))
}

/// A running bridge.
pub(super) struct Bridge {
    _process: Process,
    pub http: String,
    /// `ws://host:port` (paths start with `/api/v2`).
    pub ws: String,
}

impl Bridge {
    /// Starts a bridge on `stream` admitting `subscribers` WebSocket connections (and a few).
    pub fn start(
        bin: &Path,
        dir: &Path,
        stream: &Stream<'_>,
        subscribers: usize,
    ) -> Result<Bridge, BenchError> {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::workload(NAME, e))?;
        let text = format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n[rest]\nlisten = \"127.0.0.1:0\"\nws_connections_max = {}\n\n[bridge]\nurl = \"{}\"\nstream = \"{}\"\n",
            subscribers + WS_CONNECTIONS_SLACK,
            stream.url,
            stream.name
        );
        std::fs::write(dir.join("peregrine.toml"), text)
            .map_err(|e| BenchError::workload(NAME, e))?;
        let mut process = Process::spawn(bin, dir, &["bridge", "--log-format", "json"])?;
        let lines = process.summary(dir, "stream ")?;
        let rest = word(&lines, "rest")?;
        Ok(Bridge {
            _process: process,
            http: word(&lines, "http")?,
            ws: rest
                .trim_end_matches("/api/v2")
                .replacen("http://", "ws://", 1),
        })
    }

    /// Waits until `/health/ready` answers 200 (seeded and following the stream).
    pub async fn ready(&self, client: &reqwest::Client) -> Result<(), BenchError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ready = client
                .get(format!("{}/health/ready", self.http))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::workload(NAME, "a bridge never became ready"));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_quic_summary_line() {
        let hex = "ab".repeat(32);
        let line = format!("quic  127.0.0.1:4433  (sha256 {hex}; API keys: 2)");
        let (addr, fingerprint) = parse_quic(&line).unwrap();
        assert_eq!(addr.port(), 4433);
        assert_eq!(fingerprint, [0xab; 32]);
        assert!(parse_quic("quic  127.0.0.1:1  (sha256 zz; API keys: 2)").is_none());
    }
}
