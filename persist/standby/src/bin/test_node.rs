//! Test-only node for the multi-process shipping tests (`tests/shipping.rs`).
//!
//! `standby-test-node primary DIR CERTS COMMANDS RATE STATE_OUT [ACK]`: journals the seeded
//! flow (COMMANDS commands at about RATE per second) while shipping it on a loopback port, in ack
//! mode ACK (`durable`, the default, `replicated-degrade` or `replicated-refuse`); prints
//! `listening <addr>`, `replicated <seq>` as standbys acknowledge, `ack <seq>` as the ack mode
//! lets commands be acknowledged, and once done writes its engine snapshot to STATE_OUT and
//! prints `done <seq>`; then serves until killed.
//!
//! `standby-test-node standby DIR CERTS IDENTITY ADDR STOP_AT STATE_OUT`: follows the primary at
//! ADDR with the certificate CERTS/IDENTITY.pem until STOP_AT is durable, writes its engine
//! snapshot to STATE_OUT and prints `stopped <seq>`. Exit status 2: TLS authentication refused;
//! 3: the primary refused this standby.
//!
//! `standby-test-node recover DIR STATE_OUT`: recovers the journal in DIR alone (snapshot and
//! replay) with the nodes' engine limits, writes the engine snapshot and prints `recovered <seq>`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peregrine_hotpath::EngineConfig;
use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_persist::{AckMode, JournalConfig, JournalError, Snapshotter, WithoutStandby, open};
use peregrine_standby::metrics::{ShipMetrics, StandbyMetrics};
use peregrine_standby::{Shipper, ShipperConfig, StandbyConfig, StandbyError, TlsFiles};

type Error = Box<dyn std::error::Error>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("primary") => primary(&args[1..]),
        Some("standby") => standby(&args[1..]),
        Some("recover") => recover(&args[1..]),
        _ => Err("usage: standby-test-node primary|standby ...".into()),
    };
    if let Err(error) = outcome {
        eprintln!("test node: {error}");
        let code = match error.downcast_ref::<StandbyError>() {
            Some(StandbyError::Authentication(_)) => 2,
            Some(StandbyError::Refused(_)) => 3,
            _ => 1,
        };
        std::process::exit(code);
    }
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        max_accounts: 64,
        max_currencies: 4,
        max_markets: 2,
        max_orders: 1 << 14,
        max_levels_per_side: 1_024,
        max_open_orders_per_account: 1_000,
        ..EngineConfig::default()
    }
}

fn journal_config(dir: &Path) -> JournalConfig {
    let mut config = JournalConfig::new(dir);
    config.segment_bytes = 1 << 20;
    config.queue_bytes = 256 << 10;
    config.snapshot_every_commands = 5_000;
    config.snapshot_every = None;
    // The primary keeps its segments: a standby may join late and replay from sequence 1.
    config.delete_covered_segments = false;
    config
}

fn tls_files(certs: &Path, identity: &str) -> TlsFiles {
    TlsFiles {
        ca_cert: certs.join("ca.pem"),
        cert: certs.join(format!("{identity}.pem")),
        key: certs.join(format!("{identity}.key")),
    }
}

fn arg<'a>(args: &'a [String], index: usize, name: &str) -> Result<&'a str, Error> {
    args.get(index)
        .map(String::as_str)
        .ok_or_else(|| format!("missing {name}").into())
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn primary(args: &[String]) -> Result<(), Error> {
    let dir = PathBuf::from(arg(args, 0, "DIR")?);
    let certs = PathBuf::from(arg(args, 1, "CERTS")?);
    let commands: u64 = arg(args, 2, "COMMANDS")?.parse()?;
    let rate: u64 = arg(args, 3, "RATE")?.parse()?;
    let state_out = PathBuf::from(arg(args, 4, "STATE_OUT")?);
    let mut config = journal_config(&dir);
    config.ack_mode = match args.get(5).map(String::as_str) {
        None | Some("durable") => AckMode::Durable,
        Some("replicated-degrade") => AckMode::Replicated(WithoutStandby::Degrade),
        Some("replicated-refuse") => AckMode::Replicated(WithoutStandby::Refuse),
        Some(other) => return Err(format!("unknown ack mode {other}").into()),
    };
    let (recovered, writer) = open(&config, engine_config())?;
    let journal = writer.journal().clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let registry = prometheus::Registry::new();
    let shipper = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let shipper_config = ShipperConfig {
            journal_dir: dir.clone(),
            standbys_max: 2,
            heartbeat_every: Duration::from_millis(50),
            term: 0,
            // The primary keeps its segments (see `journal_config`).
            retention_floor: None,
            retention_records_max: peregrine_standby::primary::RETENTION_RECORDS_MAX_DEFAULT,
        };
        let tls = tls_files(&certs, "primary").server_config()?;
        let metrics = ShipMetrics::register(&registry)?;
        Ok::<_, Error>(Shipper::start(
            listener,
            tls,
            shipper_config,
            journal.clone(),
            metrics,
        )?)
    })?;
    say(&format!("listening {}", shipper.local_addr()));
    let replication = std::sync::Arc::clone(shipper.replication());
    std::thread::spawn(move || {
        let mut seen = 0;
        // Until the process is killed.
        loop {
            let now = replication.replicated_seq();
            if now > seen {
                seen = now;
                say(&format!("replicated {now}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let acks = journal.clone();
    std::thread::spawn(move || {
        let mut seen = acks.ackable_seq();
        // Until the process is killed (or the writer fails).
        while let Ok(now) = acks.wait_ackable(seen + 1, Duration::from_millis(20)) {
            if now > seen {
                seen = now;
                say(&format!("ack {now}"));
            }
        }
    });
    let mut engine = recovered.engine;
    let mut snapshotter = Snapshotter::start(&config, journal.clone(), recovered.last_seq);
    let mut flow = Flow::new(FlowParams {
        seed: 42,
        accounts: 50,
        markets: 1,
        tracked_orders: 10_000,
        ..FlowParams::default()
    });
    let mut setup = flow.setup().into_iter();
    let started = Instant::now();
    let mut events = Vec::with_capacity(1_024);
    let mut last_seq = recovered.last_seq;
    for produced in 0..commands {
        let command = setup.next().unwrap_or_else(|| flow.next_command());
        // Paced: the standby joins and leaves while the primary is still trading.
        let due = started + Duration::from_micros(produced * 1_000_000 / rate.max(1));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let seq = loop {
            match journal.append(&command) {
                Ok(seq) => break seq,
                Err(JournalError::Busy { .. }) => {
                    journal.wait_durable_after(journal.durable_seq(), Duration::from_millis(1))?;
                }
                Err(other) => return Err(other.into()),
            }
        };
        events.clear();
        engine.apply(&command, &mut events);
        snapshotter.maybe_take(&engine, seq)?;
        last_seq = seq;
    }
    journal.wait_durable(last_seq, Duration::from_secs(30))?;
    std::fs::write(&state_out, engine.snapshot()?)?;
    say(&format!("done {last_seq}"));
    // Serve until killed.
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn standby(args: &[String]) -> Result<(), Error> {
    let dir = PathBuf::from(arg(args, 0, "DIR")?);
    let certs = PathBuf::from(arg(args, 1, "CERTS")?);
    let identity = arg(args, 2, "IDENTITY")?;
    let addr = arg(args, 3, "ADDR")?.to_owned();
    let stop_at: u64 = arg(args, 4, "STOP_AT")?.parse()?;
    let state_out = PathBuf::from(arg(args, 5, "STATE_OUT")?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let config = StandbyConfig {
        primary_addr: addr,
        primary_name: "localhost".to_owned(),
        journal: journal_config(&dir),
        engine: engine_config(),
        reconnect_every: Duration::from_millis(100),
        stop_at: Some(stop_at),
        term_floor: Default::default(),
        followed: Default::default(),
    };
    let tls = tls_files(&certs, identity).client_config()?;
    let metrics = StandbyMetrics::register(&prometheus::Registry::new())?;
    let stopped = runtime.block_on(peregrine_standby::standby::run(config, tls, metrics))?;
    std::fs::write(&state_out, stopped.engine.snapshot()?)?;
    say(&format!("stopped {}", stopped.durable_seq));
    Ok(())
}

fn recover(args: &[String]) -> Result<(), Error> {
    let dir = PathBuf::from(arg(args, 0, "DIR")?);
    let state_out = PathBuf::from(arg(args, 1, "STATE_OUT")?);
    let recovered = peregrine_persist::recover(&journal_config(&dir), engine_config())?;
    std::fs::write(&state_out, recovered.engine.snapshot()?)?;
    say(&format!("recovered {}", recovered.last_seq));
    Ok(())
}
