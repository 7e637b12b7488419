//! Journal shipping between real processes over loopback, with mutual TLS: a primary trading a
//! seeded flow ships it to a standby that joins late, is SIGKILLed mid-way and restarted, and
//! must end with the primary's exact engine state; clients without the pair's certificate are
//! refused before any record leaves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use peregrine_persist::snapshot::RetentionFloor;
use peregrine_standby::primary::RETENTION_RECORDS_MAX_DEFAULT;
use peregrine_standby::wire::{self, Frame, PROTOCOL_VERSION, RefuseReason};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

const NODE: &str = env!("CARGO_BIN_EXE_standby-test-node");
const WAIT: Duration = Duration::from_secs(60);

/// A child node whose stdout lines arrive on a channel; killed when dropped.
struct Node {
    child: Child,
    lines: Receiver<String>,
}

impl Node {
    fn start(args: &[&str]) -> Node {
        let mut child = Command::new(NODE)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Node { child, lines }
    }

    /// Waits for a line `<word> <n>` with `n >= at_least`; returns `n`.
    fn wait_for(&mut self, word: &str, at_least: u64) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no `{word} >= {at_least}` line in {WAIT:?}"));
            if let Some(value) = line.strip_prefix(word).map(str::trim)
                && let Ok(value) = value.parse::<u64>()
                && value >= at_least
            {
                return value;
            }
        }
    }

    /// The largest `n` of the `<word> <n>` lines that arrive within `window`.
    fn max_within(&mut self, word: &str, window: Duration) -> Option<u64> {
        let deadline = Instant::now() + window;
        let mut max = None;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if let Some(value) = line.strip_prefix(word).map(str::trim)
                && let Ok(value) = value.parse::<u64>()
            {
                max = max.max(Some(value));
            }
        }
        max
    }

    fn wait_for_text(&mut self, word: &str) -> String {
        let line = self.lines.recv_timeout(WAIT).unwrap();
        line.strip_prefix(word)
            .unwrap_or_else(|| panic!("expected `{word}`, got {line:?}"))
            .trim()
            .to_owned()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "node did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(dir: &Path, name: &str, issuer: &CertifiedIssuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// In `root/certs`: the pair's CA with `primary` and `standby` identities, and a `rogue` one
/// from another CA.
fn write_certs(root: &Path) {
    let dir = &root.join("certs");
    std::fs::create_dir(dir).unwrap();
    let pair = ca("peregrine pair CA");
    std::fs::write(dir.join("ca.pem"), pair.pem()).unwrap();
    leaf(dir, "primary", &pair);
    leaf(dir, "standby", &pair);
    leaf(dir, "rogue", &ca("someone else's CA"));
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_standby_joining_under_load_killed_and_restarted_ends_with_the_primarys_state() {
    const COMMANDS: u64 = 40_000;
    let root = tempfile::tempdir().unwrap();
    write_certs(root.path());
    let (mut primary, addr) = start_primary(root.path(), COMMANDS, 10_000, "durable");
    // Join a primary that is already trading: the standby catches up from its journal.
    std::thread::sleep(Duration::from_millis(800));
    let mut standby = start_standby(root.path(), "standby", &addr, COMMANDS);
    let replicated = primary.wait_for("replicated", 15_000);
    assert!(replicated < COMMANDS, "the standby must die mid-stream");
    standby.child.kill().unwrap();
    standby.wait_exit();
    // The restarted standby resumes from its own journal while the primary keeps trading.
    let mut standby = start_standby(root.path(), "standby", &addr, COMMANDS);
    assert_eq!(standby.wait_for("stopped", COMMANDS), COMMANDS);
    assert!(standby.wait_exit().success());
    assert_eq!(primary.wait_for("done", COMMANDS), COMMANDS);
    let primary_bytes = std::fs::read(root.path().join("primary.state")).unwrap();
    let standby_bytes = std::fs::read(root.path().join("standby.state")).unwrap();
    assert!(
        primary_bytes == standby_bytes,
        "the standby's engine differs from the primary's at sequence {COMMANDS}"
    );
    // Its own journal alone recovers to the same state.
    assert_eq!(recover_node(root.path(), "standby"), COMMANDS);
    assert!(std::fs::read(root.path().join("standby.recovered")).unwrap() == primary_bytes);
}

fn client_without_certificate(certs: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(certs.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

#[test]
fn clients_without_the_pairs_certificate_are_refused_before_any_record() {
    let root = tempfile::tempdir().unwrap();
    write_certs(root.path());
    let certs = root.path().join("certs");
    let (mut primary, addr) = start_primary(root.path(), 2_000, 100_000, "durable");
    assert_eq!(primary.wait_for("done", 2_000), 2_000);

    // A certificate from another CA: the standby stops with an authentication error (status 2).
    let mut rogue = start_standby(root.path(), "rogue", &addr, 2_000);
    assert_eq!(rogue.wait_exit().code(), Some(2));
    assert_eq!(
        recover_node(root.path(), "rogue"),
        0,
        "a refused standby received records"
    );

    // No certificate at all: the handshake completes on the client's side, then the primary's
    // alert ends the stream before any frame.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(client_without_certificate(&certs));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let Ok(tls) = connector.connect(name, tcp).await else {
            return;
        };
        let (mut reader, mut writer) = tokio::io::split(tls);
        let hello = Frame::Hello {
            version: PROTOCOL_VERSION,
            next_seq: 1,
            last_term: None,
        };
        // The write may already fail; the read must.
        let _ = wire::write_frame(&mut writer, &hello).await;
        let mut buf = Vec::new();
        let read = tokio::time::timeout(WAIT, wire::read_frame(&mut reader, &mut buf))
            .await
            .unwrap();
        assert!(read.is_err(), "a client without certificate got {read:?}");
    });
}

/// Starts a standby `identity` (its certificate, `root/<identity>` its journal) following the
/// primary at `addr` until `stop_at`; it writes its engine to `root/<identity>.state`.
fn start_standby(root: &Path, identity: &str, addr: &str, stop_at: u64) -> Node {
    Node::start(&[
        "standby",
        path(&root.join(identity)),
        path(&root.join("certs")),
        identity,
        addr,
        &stop_at.to_string(),
        path(&root.join(format!("{identity}.state"))),
    ])
}

/// Recovers the journal `root/<name>` alone into `root/<name>.recovered`; its last sequence.
fn recover_node(root: &Path, name: &str) -> u64 {
    let mut recovery = Node::start(&[
        "recover",
        path(&root.join(name)),
        path(&root.join(format!("{name}.recovered"))),
    ]);
    recovery.wait_for("recovered", 0)
}

/// Starts a primary under `root` (certificates in `root/certs`), trading `commands` at `rate`
/// in ack mode `ack`; returns it and its shipping address.
fn start_primary(root: &Path, commands: u64, rate: u64, ack: &str) -> (Node, String) {
    let certs = root.join("certs");
    let mut primary = Node::start(&[
        "primary",
        path(&root.join("primary")),
        path(&certs),
        &commands.to_string(),
        &rate.to_string(),
        path(&root.join("primary.state")),
        ack,
    ]);
    let addr = primary.wait_for_text("listening");
    (primary, addr)
}

#[test]
fn replicated_acknowledgements_are_on_the_standbys_disk_and_held_without_one() {
    const COMMANDS: u64 = 30_000;
    let root = tempfile::tempdir().unwrap();
    write_certs(root.path());
    let (mut primary, addr) = start_primary(root.path(), COMMANDS, 10_000, "replicated-refuse");
    let mut standby = start_standby(root.path(), "standby", &addr, COMMANDS);
    primary.wait_for("ack", 5_000);
    standby.child.kill().unwrap();
    standby.wait_exit();
    // Acknowledgements the primary had received before the kill may still be released.
    let acked = primary
        .max_within("ack", Duration::from_millis(300))
        .unwrap_or(0);
    assert!(acked < COMMANDS, "the standby must die mid-stream");
    // Everything acknowledged is on the dead standby's disk.
    let on_standby = recover_node(root.path(), "standby");
    assert!(
        on_standby >= acked,
        "acknowledged up to {acked}, the standby holds {on_standby}"
    );
    // With no standby, nothing more is acknowledged although the primary keeps journaling.
    let held = primary.max_within("ack", Duration::from_millis(500));
    assert!(
        held.is_none_or(|seq| seq <= acked),
        "acknowledged {held:?} with no standby"
    );
    // A standby back: acknowledgements resume, through the end.
    let mut standby = start_standby(root.path(), "standby", &addr, COMMANDS);
    assert_eq!(primary.wait_for("ack", COMMANDS), COMMANDS);
    assert_eq!(standby.wait_for("stopped", COMMANDS), COMMANDS);
}

#[test]
fn replicated_degrades_to_durable_without_a_standby() {
    let root = tempfile::tempdir().unwrap();
    write_certs(root.path());
    let (mut primary, _) = start_primary(root.path(), 2_000, 100_000, "replicated-degrade");
    assert_eq!(primary.wait_for("ack", 2_000), 2_000);
}

/// Copies the files of `from` into a new directory `to` (a journal directory has no
/// subdirectories).
fn copy_journal(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_standby_ahead_of_the_primary_is_refused_and_stops() {
    // A standby that followed one primary to 3 000 ...
    let first = tempfile::tempdir().unwrap();
    write_certs(first.path());
    let (_primary, addr) = start_primary(first.path(), 3_000, 100_000, "durable");
    let mut standby = start_standby(first.path(), "standby", &addr, 3_000);
    assert_eq!(standby.wait_for("stopped", 3_000), 3_000);
    // ... pointed at another primary that holds 1 000: its journal is another history.
    let second = tempfile::tempdir().unwrap();
    write_certs(second.path());
    copy_journal(
        &first.path().join("standby"),
        &second.path().join("standby"),
    );
    let (mut primary, addr) = start_primary(second.path(), 1_000, 100_000, "durable");
    assert_eq!(primary.wait_for("done", 1_000), 1_000);
    let mut standby = start_standby(second.path(), "standby", &addr, 5_000);
    assert_eq!(standby.wait_exit().code(), Some(3), "refused, not retried");
    assert_eq!(
        recover_node(second.path(), "standby"),
        3_000,
        "nothing appended"
    );
}

#[test]
fn a_standby_that_saw_a_newer_term_refuses_every_record_of_an_older_primary() {
    let root = tempfile::tempdir().unwrap();
    write_certs(root.path());
    // The test node's primary runs without leadership: term 0.
    let (mut primary, addr) = start_primary(root.path(), 1_000, 100_000, "durable");
    assert_eq!(primary.wait_for("done", 1_000), 1_000);
    let files = peregrine_standby::TlsFiles {
        ca_cert: root.path().join("certs/ca.pem"),
        cert: root.path().join("certs/standby.pem"),
        key: root.path().join("certs/standby.key"),
    };
    let follow = |floor: u64| peregrine_standby::StandbyConfig {
        primary_addr: addr.clone(),
        primary_name: "localhost".to_owned(),
        journal: peregrine_persist::JournalConfig::new(root.path().join("standby")),
        engine: peregrine_hotpath::EngineConfig {
            max_accounts: 64,
            max_currencies: 4,
            max_markets: 2,
            max_orders: 1 << 14,
            max_levels_per_side: 1_024,
            max_open_orders_per_account: 1_000,
            ..peregrine_hotpath::EngineConfig::default()
        },
        reconnect_every: Duration::from_millis(50),
        stop_at: None,
        term_floor: Arc::new(std::sync::atomic::AtomicU64::new(floor)),
        followed: Default::default(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let registry = prometheus::Registry::new();
    let metrics = peregrine_standby::metrics::StandbyMetrics::register(&registry).unwrap();
    // Having seen term 5, it refuses the term-0 primary, session after session.
    let stopped = runtime
        .block_on(peregrine_standby::standby::run_until(
            follow(5),
            files.client_config().unwrap(),
            metrics.clone(),
            async { tokio::time::sleep(Duration::from_secs(1)).await },
        ))
        .unwrap();
    assert_eq!(
        stopped.durable_seq, 0,
        "records of a deposed primary accepted"
    );
    assert!(
        metrics.deposed_refused.get() > 1,
        "not refused on every session"
    );
    // The same standby without that knowledge follows it.
    let metrics =
        peregrine_standby::metrics::StandbyMetrics::register(&prometheus::Registry::new()).unwrap();
    let mut config = follow(0);
    config.stop_at = Some(1_000);
    let stopped = runtime
        .block_on(peregrine_standby::standby::run(
            config,
            files.client_config().unwrap(),
            metrics,
        ))
        .unwrap();
    assert_eq!(stopped.durable_seq, 1_000);
}

/// The nodes' engine limits (the test node's).
fn node_engine() -> peregrine_hotpath::EngineConfig {
    peregrine_hotpath::EngineConfig {
        max_accounts: 64,
        max_currencies: 4,
        max_markets: 2,
        max_orders: 1 << 14,
        max_levels_per_side: 1_024,
        max_open_orders_per_account: 1_000,
        ..peregrine_hotpath::EngineConfig::default()
    }
}

/// The first `count` commands of the test node's seeded flow.
fn node_flow(count: usize) -> Vec<peregrine_hotpath::Envelope> {
    let mut flow = peregrine_hotpath::sim::Flow::new(peregrine_hotpath::sim::FlowParams {
        seed: 42,
        accounts: 50,
        markets: 1,
        tracked_orders: 10_000,
        ..peregrine_hotpath::sim::FlowParams::default()
    });
    let mut out = flow.setup();
    out.truncate(count);
    while out.len() < count {
        out.push(flow.next_command());
    }
    out
}

/// A journal in `dir` that takes no snapshot (so it keeps every record to read back).
fn unsnapshotted(dir: std::path::PathBuf) -> peregrine_persist::JournalConfig {
    let mut config = peregrine_persist::JournalConfig::new(dir);
    config.snapshot_every_commands = 0;
    config.snapshot_every = None;
    config
}

/// Appends `commands` and waits until they are durable.
fn append_durable(journal: &peregrine_persist::Journal, commands: &[peregrine_hotpath::Envelope]) {
    let mut last = 0;
    for command in commands {
        last = journal.append(command).unwrap();
    }
    journal.wait_durable(last, WAIT).unwrap();
}

/// The terms of the records in the journal at `dir`, in sequence order.
fn record_terms(dir: &Path) -> Vec<u64> {
    let mut tailer = peregrine_persist::follow::Tailer::new(
        dir,
        1,
        peregrine_persist::follow::TornRecord::IsEnd,
    );
    let mut terms = Vec::new();
    while tailer.next(u64::MAX).unwrap().is_some() {
        terms.push(tailer.term());
    }
    terms
}

/// An in-process pair on loopback: a shipper of `journal` saying `term`, and a standby's
/// configuration for it in `root/standby` with the leadership term floor `floor`.
fn in_process_pair(
    root: &Path,
    journal: &peregrine_persist::Journal,
    term: u64,
    floor: &Arc<std::sync::atomic::AtomicU64>,
) -> (peregrine_standby::Shipper, peregrine_standby::StandbyConfig) {
    let metrics =
        peregrine_standby::metrics::ShipMetrics::register(&prometheus::Registry::new()).unwrap();
    in_process_pair_retaining(root, journal, term, floor, None, metrics)
}

/// [`in_process_pair`] whose shipper holds `retention` back for its standbys (the primary
/// journal's floor set, and how far behind a standby may fall before it holds nothing back),
/// with `metrics`.
fn in_process_pair_retaining(
    root: &Path,
    journal: &peregrine_persist::Journal,
    term: u64,
    floor: &Arc<std::sync::atomic::AtomicU64>,
    retention: Option<(RetentionFloor, u64)>,
    metrics: peregrine_standby::metrics::ShipMetrics,
) -> (peregrine_standby::Shipper, peregrine_standby::StandbyConfig) {
    let (retention_floor, retention_records_max) = match retention {
        Some((floor, max)) => (Some(floor), max),
        None => (None, RETENTION_RECORDS_MAX_DEFAULT),
    };
    let files = |identity: &str| peregrine_standby::TlsFiles {
        ca_cert: root.join("certs/ca.pem"),
        cert: root.join(format!("certs/{identity}.pem")),
        key: root.join(format!("certs/{identity}.key")),
    };
    let listener = tokio::net::TcpListener::from_std({
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    })
    .unwrap();
    let shipper = peregrine_standby::Shipper::start(
        listener,
        files("primary").server_config().unwrap(),
        peregrine_standby::ShipperConfig {
            journal_dir: root.join("primary"),
            standbys_max: 2,
            heartbeat_every: Duration::from_millis(50),
            term,
            retention_floor,
            retention_records_max,
        },
        journal.clone(),
        metrics,
    )
    .unwrap();
    let config = peregrine_standby::StandbyConfig {
        primary_addr: shipper.local_addr().to_string(),
        primary_name: "localhost".to_owned(),
        journal: unsnapshotted(root.join("standby")),
        engine: node_engine(),
        reconnect_every: Duration::from_millis(50),
        stop_at: None,
        term_floor: Arc::clone(floor),
        followed: Default::default(),
    };
    (shipper, config)
}

/// Appends `commands` to the empty `journal` at sequences 1.. as records of `term` (another
/// node's history, as a standby copies it).
fn copy_as(
    journal: &peregrine_persist::Journal,
    commands: &[peregrine_hotpath::Envelope],
    term: u64,
) {
    let mut scratch = peregrine_persist::payload::Scratch::new();
    for (index, command) in commands.iter().enumerate() {
        peregrine_persist::payload::encode(command, &mut scratch).unwrap();
        let seq = index as u64 + 1;
        assert_eq!(journal.append_sequenced(seq, term, &scratch).unwrap(), seq);
    }
}

/// Runs a standby of `config` (with the pair's certificates under `root`) on `runtime` until
/// the returned sender fires: its metrics, the sender, its task.
fn spawn_standby(
    runtime: &tokio::runtime::Runtime,
    root: &Path,
    config: peregrine_standby::StandbyConfig,
) -> (
    peregrine_standby::metrics::StandbyMetrics,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<peregrine_standby::Stopped, peregrine_standby::StandbyError>>,
) {
    let metrics =
        peregrine_standby::metrics::StandbyMetrics::register(&prometheus::Registry::new()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let standby = runtime.spawn(peregrine_standby::standby::run_until(
        config,
        files_client(root),
        metrics.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    (metrics, stop, standby)
}

/// Polls `reached` every 10 ms until it holds or [`WAIT`] passes.
fn wait_until(what: &str, reached: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !reached() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn records_keep_their_term_and_a_primary_deposed_mid_session_has_no_record_accepted() {
    let root = tempfile::tempdir().unwrap();
    write_certs(root.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let commands = node_flow(700);
    let primary_config = unsnapshotted(root.path().join("primary"));
    let (_, writer) = peregrine_persist::open(&primary_config, node_engine()).unwrap();
    let journal = writer.journal().clone();
    // Records 1..=200 written without leadership (term 0), then the leader of term 3.
    append_durable(&journal, &commands[..200]);
    assert_eq!(journal.raise_term(3), 3);
    append_durable(&journal, &commands[200..500]);
    let floor = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (_shipper, config) = in_process_pair(root.path(), &journal, 3, &floor);
    let standby_dir = config.journal.dir.clone();
    let (metrics, stop, standby) = spawn_standby(&runtime, root.path(), config);
    wait_until("the standby follows", || metrics.durable_seq.get() == 500);
    // Its etcd candidacy sees the leadership of term 5: the term-3 primary, still connected
    // and still writing, is deposed, and none of its later records may be accepted.
    floor.store(5, std::sync::atomic::Ordering::Release);
    append_durable(&journal, &commands[500..700]);
    wait_until("a deposed primary's record refused", || {
        metrics.stale_term_records.get() >= 1 && metrics.deposed_refused.get() >= 1
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.send(()).unwrap();
    let stopped = runtime.block_on(standby).unwrap().unwrap();
    assert_eq!(
        stopped.durable_seq, 500,
        "a deposed primary's record accepted"
    );
    let terms = record_terms(&standby_dir);
    assert_eq!(terms.len(), 500);
    assert!(terms[..200].iter().all(|&t| t == 0), "terms not kept");
    assert!(terms[200..].iter().all(|&t| t == 3), "terms not kept");
    assert_eq!(writer.shutdown().unwrap(), 700);
}

fn files_client(root: &Path) -> Arc<rustls::ClientConfig> {
    peregrine_standby::TlsFiles {
        ca_cert: root.join("certs/ca.pem"),
        cert: root.join("certs/standby.pem"),
        key: root.join("certs/standby.key"),
    }
    .client_config()
    .unwrap()
}

#[test]
fn a_standby_whose_last_record_has_another_term_than_the_primarys_is_refused() {
    let root = tempfile::tempdir().unwrap();
    write_certs(root.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let commands = node_flow(300);
    // The standby's journal holds records 1..=100 of term 5 (a newer leader's)...
    let standby_config = unsnapshotted(root.path().join("standby"));
    let (_, standby_writer) = peregrine_persist::open(&standby_config, node_engine()).unwrap();
    copy_as(standby_writer.journal(), &commands[..100], 5);
    let mut scratch = peregrine_persist::payload::Scratch::new();
    // ... and its journal refuses an older term itself, appending nothing.
    peregrine_persist::payload::encode(&commands[100], &mut scratch).unwrap();
    assert!(matches!(
        standby_writer.journal().append_sequenced(101, 4, &scratch),
        Err(peregrine_persist::JournalError::StaleTerm {
            seq: 101,
            term: 4,
            newest: 5
        })
    ));
    assert_eq!(standby_writer.shutdown().unwrap(), 100);
    // A primary whose records at those sequences have term 3: another history.
    let primary_config = unsnapshotted(root.path().join("primary"));
    let (_, writer) = peregrine_persist::open(&primary_config, node_engine()).unwrap();
    writer.journal().raise_term(3);
    append_durable(writer.journal(), &commands);
    let floor = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (_shipper, config) = in_process_pair(root.path(), writer.journal(), 5, &floor);
    let metrics =
        peregrine_standby::metrics::StandbyMetrics::register(&prometheus::Registry::new()).unwrap();
    let stopped = runtime.block_on(peregrine_standby::standby::run_until(
        config,
        files_client(root.path()),
        metrics.clone(),
        tokio::time::sleep(Duration::from_secs(5)),
    ));
    assert!(
        matches!(
            stopped,
            Err(peregrine_standby::StandbyError::Refused(
                peregrine_standby::wire::RefuseReason::Diverged
            ))
        ),
        "{stopped:?}"
    );
    assert_eq!(record_terms(&root.path().join("standby")), vec![5; 100]);
    assert_eq!(writer.shutdown().unwrap(), 300);
}

/// A primary trading the seeded flow in process, with a journal retention trims: 16 KiB
/// segments, a snapshot every 500 commands, one kept, under `floor` when given.
struct Trading {
    config: peregrine_persist::JournalConfig,
    writer: peregrine_persist::JournalWriter,
    journal: peregrine_persist::Journal,
    engine: peregrine_hotpath::Engine,
    snapshotter: peregrine_persist::Snapshotter,
    /// The sequence of the last snapshot taken.
    taken: u64,
}

impl Trading {
    fn open(dir: std::path::PathBuf, floor: Option<RetentionFloor>) -> Trading {
        let mut config = unsnapshotted(dir);
        config.segment_bytes = 16 << 10;
        config.snapshot_every_commands = 500;
        config.snapshots_kept = 1;
        config.retention_floor = floor;
        let (recovered, writer) = peregrine_persist::open(&config, node_engine()).unwrap();
        let journal = writer.journal().clone();
        journal.raise_term(2);
        let snapshotter =
            peregrine_persist::Snapshotter::start(&config, journal.clone(), recovered.last_seq);
        Trading {
            config,
            writer,
            journal,
            engine: recovered.engine,
            snapshotter,
            taken: 0,
        }
    }

    fn trade(&mut self, commands: &[peregrine_hotpath::Envelope]) {
        let mut events = Vec::new();
        for command in commands {
            let seq = self.journal.append(command).unwrap();
            self.engine.apply(command, &mut events);
            events.clear();
            if self
                .snapshotter
                .maybe_take(&self.engine, seq)
                .unwrap()
                .is_some()
            {
                self.taken = seq;
            }
        }
    }

    /// Takes the snapshot at `seq` (the last command traded) and waits until it is written and
    /// retention has run after it. A burst outruns the snapshot helper: waits for it first.
    fn snapshot_at(&mut self, seq: u64) {
        let snapshotter = &mut self.snapshotter;
        if self.taken != seq {
            let taken = self.taken;
            wait_until("the snapshot helper free", || {
                snapshotter.written_seq() >= taken
            });
            snapshotter.take(&self.engine, seq).unwrap();
            self.taken = seq;
        }
        wait_until("the snapshot written", || snapshotter.written_seq() == seq);
    }

    /// The first sequence the journal still holds.
    fn first_seq(&self) -> u64 {
        peregrine_persist::segment::list_segments(&self.config.dir).unwrap()[0].0
    }

    fn finish(self) -> u64 {
        self.snapshotter.finish().unwrap();
        self.writer.shutdown().unwrap()
    }
}

#[test]
fn a_standby_added_after_retention_trimmed_the_primary_catches_up_from_its_snapshot() {
    let root = tempfile::tempdir().unwrap();
    write_certs(root.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let commands = node_flow(3_000);
    // Retention trims the journal, keeping what connected standbys lack.
    let retention = RetentionFloor::new(u64::MAX);
    let mut primary = Trading::open(root.path().join("primary"), Some(retention.clone()));
    primary.trade(&commands[..2_000]);
    primary.snapshot_at(2_000);
    wait_until("retention trims the primary's journal", || {
        primary.first_seq() > 500
    });
    // The standby holds the primary's first 50 records: the snapshot replaces them.
    let standby_config = unsnapshotted(root.path().join("standby"));
    let (_, standby_writer) = peregrine_persist::open(&standby_config, node_engine()).unwrap();
    copy_as(standby_writer.journal(), &commands[..50], 2);
    assert_eq!(standby_writer.shutdown().unwrap(), 50);
    let floor = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ship_metrics =
        peregrine_standby::metrics::ShipMetrics::register(&prometheus::Registry::new()).unwrap();
    let (shipper, config) = in_process_pair_retaining(
        root.path(),
        &primary.journal,
        2,
        &floor,
        Some((retention, RETENTION_RECORDS_MAX_DEFAULT)),
        ship_metrics,
    );
    let (metrics, stop, standby) = spawn_standby(&runtime, root.path(), config);
    wait_until("the standby catches up", || {
        metrics.durable_seq.get() == 2_000
    });
    // Then it follows the primary's trading like any standby: however far it falls behind,
    // retention keeps what it lacks (one snapshot taken, never a second).
    primary.trade(&commands[2_000..]);
    wait_until("the standby follows", || metrics.durable_seq.get() == 3_000);
    stop.send(()).unwrap();
    let stopped = runtime.block_on(standby).unwrap().unwrap();
    drop(shipper);
    let image = primary.engine.snapshot().unwrap();
    assert_eq!(primary.finish(), 3_000);
    assert_eq!(metrics.snapshots_installed.get(), 1);
    assert!(
        stopped.engine.snapshot().unwrap() == image,
        "the standby's engine differs from the primary's"
    );
    // Its journal starts at the snapshot, and recovers alone to the same state.
    let standby_dir = root.path().join("standby");
    let snapshots = peregrine_persist::snapshot::list_snapshots(&standby_dir).unwrap();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    let snapshot_seq = snapshots[0].0;
    assert!(snapshot_seq >= 500, "snapshot at {snapshot_seq}");
    let segments = peregrine_persist::segment::list_segments(&standby_dir).unwrap();
    assert_eq!(segments[0].0, snapshot_seq + 1);
    let recovered = peregrine_persist::recover(&standby_config, node_engine()).unwrap();
    assert_eq!(recovered.last_seq, 3_000);
    assert!(recovered.engine.snapshot().unwrap() == image);
}

type TlsRead = tokio::io::ReadHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
type TlsWrite = tokio::io::WriteHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A standby session by hand from `next_seq`, with a 256 KiB receive buffer: a standby exactly
/// as slow as the test reads it (the primary's tailer stops once its queue and the socket
/// fill). Not smaller: a window under two loopback segments (64 KiB each) may stay shut until
/// the sender's zero-window probe, seconds later.
/// Returns once the primary said its term: it holds retention back for the session by then.
async fn raw_session(
    root: &Path,
    addr: std::net::SocketAddr,
    next_seq: u64,
) -> (TlsRead, TlsWrite) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(256 << 10).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(files_client(root));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (mut reader, mut writer) = tokio::io::split(tls);
    let hello = Frame::Hello {
        version: PROTOCOL_VERSION,
        next_seq,
        last_term: None,
    };
    wire::write_frame(&mut writer, &hello).await.unwrap();
    let mut buf = Vec::new();
    let first = tokio::time::timeout(WAIT, wire::read_frame(&mut reader, &mut buf)).await;
    assert!(
        matches!(first, Ok(Ok(Frame::Term { .. }))),
        "no TERM first: {first:?}"
    );
    (reader, writer)
}

/// How a hand-made session's reading ended.
#[derive(Debug, PartialEq)]
enum Read {
    /// Record `until` arrived; every one before it in order.
    Reached,
    /// The primary refused the session after the record given (every one before it in order).
    Refused(RefuseReason, u64),
    /// The primary sent the snapshot of this sequence.
    Snapshot(u64),
}

/// Reads frames until record `until`, a refusal or a snapshot; checks the records come in order
/// from `first` (TERM and HEARTBEAT frames are skipped).
async fn read_records(reader: &mut TlsRead, first: u64, until: u64) -> Read {
    let mut buf = Vec::new();
    let mut next = first;
    let deadline = tokio::time::Instant::now() + WAIT;
    // Bounded by the deadline (a primary that only heartbeats fails it).
    loop {
        let frame = tokio::time::timeout_at(deadline, wire::read_frame(reader, &mut buf))
            .await
            .unwrap_or_else(|_| panic!("no record {next} nor a refusal within {WAIT:?}"))
            .unwrap();
        match frame {
            Frame::Record { seq, .. } => {
                assert_eq!(seq, next, "records out of order");
                if seq == until {
                    return Read::Reached;
                }
                next += 1;
            }
            Frame::Refuse { reason, .. } => return Read::Refused(reason, next - 1),
            Frame::Snapshot { seq, .. } => return Read::Snapshot(seq),
            Frame::Term { .. } | Frame::Heartbeat { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A trimmed primary ([`Trading`]) shipping on loopback, its shipper holding retention back
/// for standbys up to `records_max` behind.
struct Held {
    root: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    primary: Trading,
    metrics: peregrine_standby::metrics::ShipMetrics,
    shipper: peregrine_standby::Shipper,
}

fn held_primary(records_max: u64) -> Held {
    let root = tempfile::tempdir().unwrap();
    write_certs(root.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let retention = RetentionFloor::new(u64::MAX);
    let primary = Trading::open(root.path().join("primary"), Some(retention.clone()));
    let metrics =
        peregrine_standby::metrics::ShipMetrics::register(&prometheus::Registry::new()).unwrap();
    let (shipper, _) = in_process_pair_retaining(
        root.path(),
        &primary.journal,
        2,
        &Arc::default(),
        Some((retention, records_max)),
        metrics.clone(),
    );
    drop(_entered);
    Held {
        root,
        runtime,
        primary,
        metrics,
        shipper,
    }
}

/// Commands the primary trades past a stalled standby: several times what its tailer reads
/// ahead into its queue (`BATCHES_QUEUED_MAX` × `BATCH_BYTES_MAX`, 1 MiB) and the socket.
const STALLED_COMMANDS: usize = 24_000;

#[test]
fn a_slow_standby_holds_retention_back_and_never_finds_its_records_deleted() {
    let Held {
        root,
        runtime,
        mut primary,
        metrics,
        shipper,
    } = held_primary(RETENTION_RECORDS_MAX_DEFAULT);
    let addr = shipper.local_addr();
    let (mut reader, mut writer) = runtime.block_on(raw_session(root.path(), addr, 1));
    // It reads nothing while the primary trades on, snapshots, and retention runs.
    let count = STALLED_COMMANDS as u64;
    let commands = node_flow(STALLED_COMMANDS + 1_000);
    primary.trade(&commands[..STALLED_COMMANDS]);
    primary.snapshot_at(count);
    assert_eq!(
        primary.first_seq(),
        1,
        "retention deleted what the standby lacks"
    );
    wait_until("the hold shown", || {
        metrics.retention_held_records.get() == count as i64
    });
    // Then it reads every record, in order: none was deleted under it.
    let read = runtime.block_on(read_records(&mut reader, 1, count));
    assert_eq!(read, Read::Reached, "a slow standby lost its records");
    // Acknowledged, it holds nothing back: retention trims again.
    let ack = Frame::Ack { durable_seq: count };
    runtime
        .block_on(wire::write_frame(&mut writer, &ack))
        .unwrap();
    wait_until("the hold released", || {
        metrics.retention_held_records.get() == 0
    });
    primary.trade(&commands[STALLED_COMMANDS..]);
    primary.snapshot_at(count + 1_000);
    let first = primary.first_seq();
    assert!(
        first > 1 && first <= count + 1,
        "retention after the acknowledgement of {count}: journal from {first}"
    );
    assert_eq!(metrics.retention_released.get(), 0);
    drop(shipper);
    primary.finish();
}

#[test]
fn a_standby_too_far_behind_holds_nothing_back_and_comes_back_for_a_snapshot() {
    // A stuck standby may hold back 1 000 records, no more.
    let Held {
        root,
        runtime,
        mut primary,
        metrics,
        shipper,
    } = held_primary(1_000);
    let addr = shipper.local_addr();
    let (mut reader, _writer) = runtime.block_on(raw_session(root.path(), addr, 1));
    let count = STALLED_COMMANDS as u64;
    primary.trade(&node_flow(STALLED_COMMANDS));
    wait_until("the stuck standby released", || {
        metrics.retention_released.get() == 1
    });
    primary.snapshot_at(count);
    assert!(
        primary.first_seq() > 1,
        "a stuck standby held retention back"
    );
    // Its session ends once the tailer reaches what retention deleted (unless the socket had
    // taken every record before retention ran: then it reads them all) ...
    let read = runtime.block_on(read_records(&mut reader, 1, count));
    let resume = match read {
        Read::Refused(RefuseReason::JournalGone, last) => last + 1,
        Read::Reached => 2,
        other => panic!("the stuck standby: {other:?}"),
    };
    eprintln!("the stuck standby's session ended {read:?}");
    // ... and from where its journal ends it gets the newest snapshot.
    let (mut reader, _writer) = runtime.block_on(raw_session(root.path(), addr, resume));
    let read = runtime.block_on(read_records(&mut reader, resume, count));
    assert_eq!(read, Read::Snapshot(count));
    drop(shipper);
    primary.finish();
}

#[test]
fn a_standby_refused_for_a_deleted_journal_retries_until_a_snapshot_covers_it() {
    let root = tempfile::tempdir().unwrap();
    write_certs(root.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let commands = node_flow(2_500);
    let mut primary = Trading::open(root.path().join("primary"), None);
    primary.trade(&commands[..2_000]);
    primary.snapshot_at(2_000);
    wait_until("retention trims the primary's journal", || {
        primary.first_seq() > 500
    });
    // No snapshot covers the trimmed records any more: a new standby is refused JournalGone.
    for (_, path) in peregrine_persist::snapshot::list_snapshots(&primary.config.dir).unwrap() {
        std::fs::remove_file(path).unwrap();
    }
    let (shipper, config) = in_process_pair(root.path(), &primary.journal, 2, &Arc::default());
    let (metrics, stop, standby) = spawn_standby(&runtime, root.path(), config);
    // It retries, rather than stop ...
    wait_until("the standby retries", || metrics.sessions_failed.get() >= 3);
    assert!(!standby.is_finished(), "the standby stopped");
    // ... and catches up from the primary's next snapshot.
    primary.trade(&commands[2_000..]);
    primary.snapshot_at(2_500);
    wait_until("the standby catches up", || {
        metrics.durable_seq.get() == 2_500
    });
    stop.send(()).unwrap();
    let stopped = runtime.block_on(standby).unwrap().unwrap();
    drop(shipper);
    assert_eq!(metrics.snapshots_installed.get(), 1);
    assert!(stopped.engine.snapshot().unwrap() == primary.engine.snapshot().unwrap());
    assert_eq!(primary.finish(), 2_500);
}
