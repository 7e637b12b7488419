//! A private one-member etcd on free loopback ports, for the tests and benchmarks that kill a
//! node or etcd itself (the suite's shared etcd must never be disturbed). Killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::etcd::Etcd;

/// Longest wait for the member to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The running member.
#[derive(Debug)]
pub struct PrivateEtcd {
    child: Child,
    endpoint: String,
    port: u16,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl PrivateEtcd {
    /// Starts `$ETCD_BIN` (default `etcd`, Debian's etcd-server) with its data under
    /// `data_dir`, a 20 ms heartbeat and a 200 ms election timeout (so one-second leases are
    /// allowed), and waits until it answers.
    pub async fn start(data_dir: &Path) -> std::io::Result<PrivateEtcd> {
        PrivateEtcd::start_on(data_dir, &[]).await
    }

    /// [`PrivateEtcd::start`], also answering on each of `hosts` (IPv4 addresses of this
    /// network namespace, e.g. a veth's, for a node in another namespace) on the same port.
    pub async fn start_on(data_dir: &Path, hosts: &[&str]) -> std::io::Result<PrivateEtcd> {
        let (client, peer) = (free_port()?, free_port()?);
        let endpoint = format!("http://127.0.0.1:{client}");
        let mut listen = endpoint.clone();
        for host in hosts {
            listen.push_str(&format!(",http://{host}:{client}"));
        }
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".into()))
            .args(["--name", "private", "--data-dir"])
            .arg(data_dir)
            .args(["--listen-client-urls", &listen])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("private={peer_url}")])
            .args(["--heartbeat-interval", "20", "--election-timeout", "200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let etcd = PrivateEtcd {
            child,
            endpoint,
            port: client,
        };
        let client = Etcd::new(&etcd.endpoint, Duration::from_secs(1))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        // Bounded by the deadline.
        while client.get("/probe").await.is_err() {
            if Instant::now() >= deadline {
                return Err(std::io::Error::other("the private etcd never answered"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(etcd)
    }

    /// Its client endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Its client endpoint on `host` (one of those it was started on).
    pub fn endpoint_on(&self, host: &str) -> String {
        format!("http://{host}:{}", self.port)
    }

    /// SIGKILL (etcd gone: a partition of everyone from it).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateEtcd {
    fn drop(&mut self) {
        self.kill();
    }
}
