//! `failover`: a primary's death -> the first acknowledged order on the new primary, with real
//! processes on loopback: two `peregrine up` nodes in `replicated` mode (one primary, one started
//! with `--standby-of`), leadership through a private one-member etcd (`$ETCD_BIN`, default
//! `etcd`), and `--cycles` failovers (default [`CYCLES_DEFAULT`]).
//!
//! Each cycle a trader places orders over QUIC for [`LOAD_TIME`], the primary is SIGKILLed, and
//! the clock runs from the kill to the `Ack` of one order placed over a fresh QUIC session on the
//! promoted standby (its connection and logon included: what a client that reconnects sees).
//! The killed node then rejoins, its data wiped, as the new primary's standby, and the next
//! cycle starts once it holds everything the primary made durable.
//!
//! - `latency_ns`: death -> first acknowledged order, one sample per cycle.
//! - `ops_per_sec`: orders acknowledged per second of trading (the load the kill interrupts).
//! - `floor_ns`: `null` (the floor is the leadership protocol's own: see `params`).
//! - `params`: cycles, the lease, the fence margins, and every cycle's figure in ms.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use peregrine_client::{Client, KeyId, Order, Placed, ServerTrust, SigningKey};
use peregrine_hotpath::{ClientOrderId, MarketId, Price, Qty, Side};
use peregrine_standby::leader::{ACK_FENCE, EXIT_SLACK, RENEW_EVERY};
use peregrine_standby::private_etcd::PrivateEtcd;

use crate::args::{BenchArgs, WorkloadFlag};
use crate::error::BenchError;
use crate::recorder::LatencyRecorder;
use crate::registry::Workload;
use crate::report::Report;
use crate::workloads::standby_pair::write_certs;

/// The registry entry.
pub const WORKLOAD: Workload = Workload {
    name: NAME,
    summary: "SIGKILL of a replicated primary -> first acknowledged order on its promoted standby (etcd leadership), per cycle",
    flags: &[WorkloadFlag::Cycles],
    run,
};

const NAME: &str = "failover";
/// Failovers by default.
pub const CYCLES_DEFAULT: u64 = 10;
/// Failovers at most (each starts a process and wipes a data directory).
pub const CYCLES_MAX: u64 = 1_000;
/// Trading before each kill.
pub const LOAD_TIME: Duration = Duration::from_millis(300);
/// The leader's lease (etcd's shortest).
const LEASE_TTL_MS: u64 = 1_000;
/// Bound on a process printing its summary, and on a standby catching up.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Summary lines read at most before giving up on a start.
const SUMMARY_LINES_MAX: usize = 64;
/// Poll interval while waiting for a standby to catch up.
const SYNC_POLL: Duration = Duration::from_millis(20);
/// btcusd in the default catalog: 50 000.00 usd in ticks of 0.01.
const MARKET: MarketId = MarketId(1);
const MID: u64 = 5_000_000;

fn failed(error: impl std::fmt::Display) -> BenchError {
    BenchError::workload(NAME, error.to_string())
}

/// A trading account with a QUIC key of its own in both nodes' configuration.
#[derive(Clone, Copy, Debug)]
struct Trader {
    key_id: u64,
    account: u32,
}

impl Trader {
    fn new(account: u32) -> Trader {
        Trader {
            key_id: u64::from(account) + 100,
            account,
        }
    }

    fn signing_key(&self) -> Result<SigningKey, BenchError> {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&self.account.to_le_bytes());
        seed[31] = 0xF0;
        SigningKey::from_seed(&seed).map_err(failed)
    }
}

/// A `peregrine up` child, killed when dropped; its stdout lines on a channel.
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    dir: PathBuf,
}

impl Process {
    fn spawn(bin: &Path, dir: &Path, args: &[&str]) -> Result<Process, BenchError> {
        let stderr = std::fs::File::create(dir.join("stderr.log")).map_err(failed)?;
        let mut child = Command::new(bin)
            .env_clear()
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(failed)?;
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = sender.send(line);
                }
            });
        }
        Ok(Process {
            child,
            lines,
            dir: dir.to_owned(),
        })
    }

    /// Summary lines until one starts with `last` (included).
    fn summary(&self, last: &str) -> Result<Vec<String>, BenchError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut lines = Vec::new();
        while lines.len() < SUMMARY_LINES_MAX {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(remaining) else {
                let log = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(failed(format!(
                    "no summary from {}: {tail:?}",
                    self.dir.display()
                )));
            };
            let done = line.starts_with(last);
            lines.push(line);
            if done {
                return Ok(lines);
            }
        }
        Err(failed("summary too long"))
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
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(key)).then(|| words.next())?
        })
        .map(str::to_owned)
        .ok_or_else(|| failed(format!("no {key} line in {lines:?}")))
}

/// A node trading as the primary, from its summary.
struct Primary {
    process: Process,
    http: String,
    quic: SocketAddr,
    fingerprint: [u8; 32],
    shipping: String,
}

impl Primary {
    fn of(process: Process) -> Result<Primary, BenchError> {
        let lines = process.summary("data ")?;
        let quic = lines
            .iter()
            .find(|l| l.starts_with("quic "))
            .and_then(|l| parse_quic(l))
            .ok_or_else(|| failed(format!("no quic line in {lines:?}")))?;
        Ok(Primary {
            http: word(&lines, "http")?,
            quic: quic.0,
            fingerprint: quic.1,
            shipping: word(&lines, "replication")?,
            process,
        })
    }

    async fn connect(&self, trader: &Trader) -> Result<Client, BenchError> {
        Client::connect(
            self.quic,
            ServerTrust::Fingerprint(self.fingerprint),
            KeyId(trader.key_id),
            trader.signing_key()?,
        )
        .await
        .map_err(failed)
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

/// Writes node `name`'s configuration under `root` (certificates in `root/certs`).
fn write_node(
    root: &Path,
    name: &str,
    etcd: &str,
    traders: &[Trader],
) -> Result<PathBuf, BenchError> {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let certs = |f: &str| root.join("certs").join(f).display().to_string();
    let mut text = format!(
        "[data]\ndir = \"data\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[quic]\nlisten = \"127.0.0.1:0\"\n\n\
         [rest]\nlisten = \"127.0.0.1:0\"\n\n[replica]\nenabled = false\n\n\
         [journal]\nack = \"replicated\"\nsnapshot_every_commands = 0\nsnapshot_every_ms = 0\n\n\
         [replication]\nlisten = \"127.0.0.1:0\"\nca_cert = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\
         heartbeat_every_ms = 20\nwithout_standby = \"degrade\"\n\n[standby]\nreconnect_every_ms = 50\n\n\
         [leadership]\netcd = \"{etcd}\"\nprefix = \"/peregrine/bench-failover/\"\nnode = \"{name}\"\n\
         lease_ttl_ms = {LEASE_TTL_MS}\n\n",
        certs("ca.pem"),
        certs("node.pem"),
        certs("node.key"),
    );
    for trader in traders {
        text.push_str(&format!(
            "[[quic.keys]]\nkey_id = {}\naccount = {}\npublic_key = \"{}\"\n\n",
            trader.key_id,
            trader.account,
            trader.signing_key()?.public_key_hex()
        ));
    }
    std::fs::write(dir.join("peregrine.toml"), text).map_err(failed)?;
    Ok(dir)
}

/// The first sample of `name` in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn get(http: &reqwest::Client, url: &str) -> String {
    match http.get(url).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until the standby at `standby_http` holds everything `primary` made durable.
async fn wait_in_sync(
    http: &reqwest::Client,
    primary: &Primary,
    standby_http: &str,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + START_TIMEOUT;
    // Bounded by the deadline.
    loop {
        let ours = get(http, &format!("{}/metrics", primary.http)).await;
        let theirs = get(http, &format!("{standby_http}/metrics")).await;
        let durable = metric(&ours, "peregrine_journal_durable_seq");
        let standby = metric(&theirs, "peregrine_standby_durable_seq");
        let connected = metric(&ours, "peregrine_ship_standbys_connected");
        if let (Some(d), Some(s), Some(c)) = (durable, standby, connected)
            && c >= 1.0
            && s >= d
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(failed(format!(
                "the standby never caught up: primary durable {durable:?}, standby {standby:?}"
            )));
        }
        tokio::time::sleep(SYNC_POLL).await;
    }
}

/// Places aggressive orders on both sides until aborted or the connection fails; counts the
/// acknowledgements in `acked`.
async fn trade(client: Client, cycle: u64, acked: Arc<AtomicU64>) {
    // Bounded: the kill ends it; the cap guards against a primary that never dies.
    for n in 0..1_000_000_u64 {
        let side = if n % 2 == 0 { Side::Buy } else { Side::Sell };
        let price = match side {
            Side::Buy => MID + 5 - n % 7,
            Side::Sell => MID - 5 + n % 7,
        };
        let id = ClientOrderId((cycle << 32) | n);
        match client
            .place(Order::limit(id, MARKET, side, Price(price), Qty(1)))
            .await
        {
            Ok(Placed::Ack { .. }) => {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    let cycles = args.cycles.unwrap_or(CYCLES_DEFAULT);
    if !(1..=CYCLES_MAX).contains(&cycles) {
        return Err(BenchError::invalid(
            "--cycles",
            format!("must be 1 to {CYCLES_MAX}"),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(failed)?;
    let scratch = tempfile::tempdir().map_err(failed)?;
    runtime.block_on(measure(scratch.path(), cycles))
}

/// One cycle's outcome.
struct Cycle {
    failover: Duration,
    acked: u64,
    traded: Duration,
}

async fn measure(root: &Path, cycles: u64) -> Result<Report, BenchError> {
    let bin = match std::env::var_os("PEREGRINE_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => std::env::current_exe().map_err(failed)?,
    };
    let etcd = PrivateEtcd::start(&root.join("etcd"))
        .await
        .map_err(|e| failed(format!("etcd (Debian's etcd-server, or $ETCD_BIN): {e}")))?;
    write_certs(&root.join("certs"))?;
    let traders = [Trader::new(1), Trader::new(2), Trader::new(3)];
    let dirs = [
        write_node(root, "a", etcd.endpoint(), &traders)?,
        write_node(root, "b", etcd.endpoint(), &traders)?,
    ];
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(failed)?;
    let mut primary = Primary::of(Process::spawn(
        &bin,
        &dirs[0],
        &["up", "--log-format", "json"],
    )?)?;
    fund(&http, &primary, &dirs[0], &traders).await?;
    let mut standby = start_standby(&bin, &dirs[1], &primary.shipping)?;
    let mut recorder = LatencyRecorder::new()?;
    let (mut acked, mut traded, mut each_ms) = (0, Duration::ZERO, Vec::new());
    for cycle in 0..cycles {
        wait_in_sync(&http, &primary, &standby.1).await?;
        let (promoted, outcome) = one_cycle(primary, standby.0, &traders, cycle).await?;
        recorder.record_ns(u64::try_from(outcome.failover.as_nanos()).unwrap_or(u64::MAX));
        each_ms.push(outcome.failover.as_millis() as u64);
        acked += outcome.acked;
        traded += outcome.traded;
        // The killed node rejoins, wiped, as the new primary's standby.
        let killed = &dirs[(cycle % 2) as usize];
        let _ = std::fs::remove_dir_all(killed.join("data"));
        standby = start_standby(&bin, killed, &promoted.shipping)?;
        primary = promoted;
    }
    drop(standby);
    drop(primary);
    let summary = recorder.summary();
    Ok(Report::new(
        NAME,
        acked as f64 / traded.as_secs_f64().max(1e-9),
        summary,
        None,
    )
    .with_param("cycles", cycles)
    .with_param("lease_ttl_ms", LEASE_TTL_MS)
    .with_param("renew_every_ms", RENEW_EVERY.as_millis() as u64)
    .with_param("ack_fence_ms", ACK_FENCE.as_millis() as u64)
    .with_param("exit_slack_ms", EXIT_SLACK.as_millis() as u64)
    .with_param("ack", "replicated")
    .with_param("orders_acknowledged", acked)
    .with_param("failover_ms", each_ms)
    .with_recorder(&recorder))
}

/// Two traders trade against each other for [`LOAD_TIME`], the primary is killed, and the third
/// (the prober) times the first order on the promoted one.
async fn one_cycle(
    primary: Primary,
    standby: Process,
    [buyer, seller, prober]: &[Trader; 3],
    cycle: u64,
) -> Result<(Primary, Cycle), BenchError> {
    let started = Instant::now();
    let acked = Arc::new(AtomicU64::new(0));
    let mut loads = Vec::new();
    for trader in [buyer, seller] {
        let client = primary.connect(trader).await?;
        loads.push(tokio::spawn(trade(client, cycle, Arc::clone(&acked))));
    }
    tokio::time::sleep(LOAD_TIME).await;
    let mut process = primary.process;
    let _ = process.child.kill();
    let died = Instant::now();
    let _ = process.child.wait();
    // Their QUIC sessions would notice the death only at their idle timeout.
    for load in &loads {
        load.abort();
    }
    let acked = acked.load(Ordering::Relaxed);
    let traded = died - started;
    let promoted = tokio::task::block_in_place(|| Primary::of(standby))?;
    let client = promoted.connect(prober).await?;
    let id = ClientOrderId((cycle << 32) | 0xFFFF_FFFF);
    let order = Order::limit(id, MARKET, Side::Buy, Price(MID - 500), Qty(1));
    match client.place(order).await.map_err(failed)? {
        Placed::Ack { .. } => {}
        other => {
            return Err(failed(format!(
                "cycle {cycle}: first order refused: {other:?}"
            )));
        }
    }
    let failover = died.elapsed();
    drop(client);
    Ok((
        promoted,
        Cycle {
            failover,
            acked,
            traded,
        },
    ))
}

/// `up --standby-of shipping` in `dir`; the process and its HTTP address.
fn start_standby(bin: &Path, dir: &Path, shipping: &str) -> Result<(Process, String), BenchError> {
    let process = Process::spawn(
        bin,
        dir,
        &["up", "--log-format", "json", "--standby-of", shipping],
    )?;
    let lines = process.summary("journal ")?;
    let http = word(&lines, "http")?;
    Ok((process, http))
}

/// Credits both traders through the control API (the token `up` wrote under `dir`).
async fn fund(
    http: &reqwest::Client,
    primary: &Primary,
    dir: &Path,
    traders: &[Trader],
) -> Result<(), BenchError> {
    let token = std::fs::read_to_string(dir.join("data/control.token")).map_err(failed)?;
    let mut deposit_id = 0;
    for trader in traders {
        for (currency, amount) in [("usd", "100000000"), ("btc", "1000")] {
            deposit_id += 1;
            let response = http
                .post(format!("{}/control/v1/deposits", primary.http))
                .bearer_auth(token.trim())
                .json(&serde_json::json!({
                    "account": trader.account, "currency": currency, "amount": amount,
                    "deposit_id": deposit_id,
                }))
                .send()
                .await
                .map_err(failed)?;
            if !response.status().is_success() {
                let body = response.text().await.unwrap_or_default();
                return Err(failed(format!("deposit: {body}")));
            }
        }
    }
    Ok(())
}
