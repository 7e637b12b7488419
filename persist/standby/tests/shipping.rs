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

use peregrine_standby::wire::{self, Frame, PROTOCOL_VERSION};
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
