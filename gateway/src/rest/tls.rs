//! TLS for the REST/WebSocket listener (`[rest.tls]`): what a bridge node on another host relays
//! order entry and bearer tokens over, so neither crosses the network in the clear.
//!
//! Handshakes run off the accept path: [`TlsListener`]'s accept task takes TCP connections and
//! hands each to a task of its own, bounded in number ([`HANDSHAKES_IN_FLIGHT_MAX`]) and in time
//! ([`HANDSHAKE_TIMEOUT`]), so a client that stalls mid-handshake holds one slot for a few
//! seconds instead of stopping every other connection. Connections past the bound are closed at
//! once and counted as refused (the server is busier than its limit: clients retry).
//!
//! Never does: client certificates (API keys and tokens authenticate callers), 0-RTT, TLS 1.2.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use prometheus::{Histogram, IntCounterVec};

use crate::quic::tls::{Identity, TlsError, TlsSource};

/// Handshakes in progress at once; a connection beyond it is closed unanswered.
pub const HANDSHAKES_IN_FLIGHT_MAX: usize = 256;
/// Longest a client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Finished handshakes waiting for the server to take them.
const READY_QUEUE_MAX: usize = 64;
/// Pause after a failed TCP accept (out of descriptors, say) before the next, as axum's own
/// listener does: a tight loop would burn the core that should be closing connections.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// ALPN: HTTP/1.1 only (Ranger's WebSocket upgrade is an HTTP/1.1 mechanism).
const ALPN_HTTP1: &[u8] = b"http/1.1";

const _: () = assert!(READY_QUEUE_MAX <= HANDSHAKES_IN_FLIGHT_MAX);

/// The rustls server configuration of `source`: TLS 1.3 only, ring, ALPN `http/1.1`, no 0-RTT.
pub fn server_config(source: &TlsSource) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let identity = Identity::load(source)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_no_client_auth()
    .with_single_cert(identity.chain, identity.key)?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    // A replayed first flight would repeat a signed order: no early data.
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

/// A TCP listener whose connections are served only after a finished TLS handshake.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp` (on the current tokio runtime), counting handshakes in
    /// `metrics`.
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        metrics: HandshakeMetrics,
    ) -> io::Result<TlsListener> {
        let local_addr = tcp.local_addr()?;
        let (sender, ready) = mpsc::channel(READY_QUEUE_MAX);
        let acceptor = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), sender, metrics));
        Ok(TlsListener {
            ready,
            local_addr,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // The server stopped: stop taking connections (handshakes in flight find the queue
        // closed and drop theirs).
        self.acceptor.abort();
    }
}

/// Where handshakes are counted and timed.
#[derive(Clone, Debug)]
pub struct HandshakeMetrics {
    /// By outcome: `ok`, `failed`, `timeout`, `refused` (over [`HANDSHAKES_IN_FLIGHT_MAX`]).
    pub total: IntCounterVec,
    /// Accept to finished handshake.
    pub seconds: Histogram,
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    metrics: HandshakeMetrics,
) {
    let slots = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT_MAX));
    while !ready.is_closed() {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "REST listener: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, "REST listener: too many TLS handshakes in flight; closed");
            metrics.total.with_label_values(&["refused"]).inc();
            continue;
        };
        let (acceptor, ready, metrics) = (acceptor.clone(), ready.clone(), metrics.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let timer = metrics.seconds.start_timer();
            let outcome =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        timer.observe_duration();
                        metrics.total.with_label_values(&["ok"]).inc();
                        // Closed queue: the server stopped; the connection goes with it.
                        let _ = ready.send((tls, peer)).await;
                        return;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        "failed"
                    }
                    Err(_) => "timeout",
                };
            timer.stop_and_discard();
            metrics.total.with_label_values(&[outcome]).inc();
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task ended (it only ends when aborted, with the listener): nothing
            // more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
