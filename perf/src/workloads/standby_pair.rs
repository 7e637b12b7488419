//! For `e2e --ack replicated`: an in-process standby following the bench's journal over mutual
//! TLS on loopback (the `peregrine-standby` shipper and standby, with a throwaway CA), so every
//! Ack waits for the record to be durable in a second journal as well.

use std::path::Path;
use std::time::{Duration, Instant};

use peregrine_persist::{Journal, JournalConfig};
use peregrine_standby::metrics::{ShipMetrics, StandbyMetrics};
use peregrine_standby::{Shipper, ShipperConfig, StandbyConfig, TlsFiles};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::error::BenchError;

const NAME: &str = "e2e";
/// Longest the standby may take to connect before the run is abandoned.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// The running pair: dropping it stops the standby and the shipper.
pub struct StandbyPair {
    shipper: Shipper,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandbyPair {
    /// The highest sequence the standby acknowledged as durable.
    pub fn replicated_seq(&self) -> u64 {
        self.shipper.replication().replicated_seq()
    }
}

impl Drop for StandbyPair {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn bench_error(error: impl std::fmt::Display) -> BenchError {
    BenchError::workload(NAME, error.to_string())
}

/// A CA and one identity (`localhost`) it signs, as PEM files in `dir`; both sides use it.
pub(crate) fn write_certs(dir: &Path) -> Result<TlsFiles, BenchError> {
    std::fs::create_dir_all(dir).map_err(bench_error)?;
    let mut ca_params = CertificateParams::new(Vec::new()).map_err(bench_error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(bench_error)?)
        .map_err(bench_error)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(bench_error)?;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().map_err(bench_error)?;
    let cert = params.signed_by(&key, &ca).map_err(bench_error)?;
    let files = TlsFiles {
        ca_cert: dir.join("ca.pem"),
        cert: dir.join("node.pem"),
        key: dir.join("node.key"),
    };
    std::fs::write(&files.ca_cert, ca.pem()).map_err(bench_error)?;
    std::fs::write(&files.cert, cert.pem()).map_err(bench_error)?;
    std::fs::write(&files.key, key.serialize_pem()).map_err(bench_error)?;
    Ok(files)
}

/// Starts the shipper for `journal` (in `journal_dir`) on `runtime` and a standby with its own
/// journal under `work_dir` on a thread of its own; returns once the standby is connected.
pub fn start(
    runtime: &tokio::runtime::Runtime,
    journal: &Journal,
    journal_dir: &Path,
    work_dir: &Path,
) -> Result<StandbyPair, BenchError> {
    let tls = write_certs(&work_dir.join("certs"))?;
    let registry = prometheus::Registry::new();
    let shipper = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(bench_error)?;
        let config = ShipperConfig {
            journal_dir: journal_dir.to_path_buf(),
            standbys_max: 1,
            heartbeat_every: Duration::from_millis(100),
            term: 0,
            // The bench's journal takes no snapshot: retention never runs.
            retention_floor: None,
            retention_records_max: peregrine_standby::primary::RETENTION_RECORDS_MAX_DEFAULT,
        };
        let metrics = ShipMetrics::register(&registry).map_err(bench_error)?;
        let server = tls.server_config().map_err(bench_error)?;
        Shipper::start(listener, server, config, journal.clone(), metrics).map_err(bench_error)
    })?;
    let mut standby_journal = JournalConfig::new(work_dir.join("journal"));
    standby_journal.snapshot_every_commands = 0;
    standby_journal.snapshot_every = None;
    let config = StandbyConfig {
        primary_addr: shipper.local_addr().to_string(),
        primary_name: "localhost".to_owned(),
        journal: standby_journal,
        engine: peregrine_hotpath::EngineConfig::default(),
        reconnect_every: Duration::from_millis(100),
        stop_at: None,
        term_floor: Default::default(),
        followed: Default::default(),
    };
    let client = tls.client_config().map_err(bench_error)?;
    let metrics = StandbyMetrics::register(&registry).map_err(bench_error)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let standby_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(bench_error)?;
    let thread = std::thread::Builder::new()
        .name("e2e-standby".to_owned())
        .spawn(move || {
            standby_runtime.block_on(async move {
                tokio::select! {
                    outcome = peregrine_standby::standby::run(config, client, metrics) => {
                        if let Err(error) = outcome {
                            eprintln!("e2e standby stopped: {error}");
                        }
                    }
                    _ = stopped => {}
                }
            });
        })
        .map_err(bench_error)?;
    let pair = StandbyPair {
        shipper,
        stop: Some(stop),
        thread: Some(thread),
    };
    let deadline = Instant::now() + CONNECT_WAIT;
    // Bounded by CONNECT_WAIT.
    while pair.shipper.replication().standbys() == 0 {
        if Instant::now() >= deadline {
            return Err(bench_error("the standby did not connect"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(pair)
}
