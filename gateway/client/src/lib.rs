//! Client SDK for Peregrine's binary order entry over QUIC (protocol `peregrine/1`, see
//! `proto/PROTOCOL.md`).
//!
//! ```no_run
//! # async fn run() -> Result<(), peregrine_client::ClientError> {
//! use peregrine_client::{Client, Order, ServerTrust, SigningKey};
//! use peregrine_hotpath::{ClientOrderId, MarketId, Price, Qty, Side};
//! let key = SigningKey::from_seed(&[7; 32])?;
//! let client = Client::connect(
//!     "127.0.0.1:7100".parse().unwrap(),
//!     ServerTrust::Fingerprint([0; 32]),
//!     peregrine_client::KeyId(1),
//!     key,
//! )
//! .await?;
//! let placed = client
//!     .place(Order::limit(ClientOrderId(1), MarketId(0), Side::Buy, Price(100), Qty(1)))
//!     .await?;
//! println!("{placed:?}");
//! # Ok(()) }
//! ```
//!
//! Requests are pipelined: each call sends at once and waits only for its own answer, so many
//! may be in flight from many tasks. Every report (acks, fills, cancels, market data) also goes
//! to the stream returned by [`Client::reports`].
//!
//! The frames and codec come from the sans-IO crate `peregrine-proto`; the SDK does not depend on
//! the gateway (only its end-to-end tests start one).

mod connect;
mod types;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use peregrine_hotpath::{AccountId, ClientOrderId, MarketId, OrderRef, Price, Qty, Side};
pub use peregrine_proto::codec::FrameError;
use peregrine_proto::codec::{self, Decoded};
pub use peregrine_proto::frame::{
    Cancelled, Fill, KeyId, Liquidity, MarketSeq, OrderState, RejectCode, Replaced, Reply, Request,
    RequestId, SessionId,
};
use tokio::sync::{mpsc, oneshot};

pub use connect::{ServerTrust, SigningKey, open_stream};
pub use types::{Order, Outcome, Placed, StatusReply};

/// Reports buffered for [`Client::reports`] before new ones are counted as lagged.
pub const REPORTS_CAPACITY: usize = 65_536;
/// Longest a request waits for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong talking to the gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The QUIC connection could not be set up or broke.
    #[error("connection: {0}")]
    Connection(String),
    /// TLS configuration (the trust anchor) is invalid.
    #[error("TLS: {0}")]
    Tls(String),
    /// The signing key is invalid.
    #[error("signing key: {0}")]
    Key(String),
    /// The server refused the logon.
    #[error("logon refused with code {}", .0.0)]
    LogonRefused(RejectCode),
    /// The server sent something this client does not understand.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The session ended (the code says why, when the server said).
    #[error("session closed (code {:?})", .0.map(|c| c.0))]
    Closed(Option<RejectCode>),
    /// No answer within [`REQUEST_TIMEOUT`].
    #[error("no answer in time")]
    Timeout,
}

struct Inner {
    send: tokio::sync::Mutex<quinn::SendStream>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    pings: Mutex<HashMap<u64, oneshot::Sender<Instant>>>,
    next_req: AtomicU64,
    lagged: AtomicU64,
    closed: Mutex<Option<Option<RejectCode>>>,
}

/// A logged-on session.
pub struct Client {
    inner: Arc<Inner>,
    connection: quinn::Connection,
    // Kept so the endpoint's driver lives as long as the client.
    _endpoint: quinn::Endpoint,
    reports: Mutex<Option<mpsc::Receiver<Reply>>>,
    account: AccountId,
    session: SessionId,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("account", &self.account)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `addr`, checks the server against `trust`, and logs on with `key_id` by
    /// signing the server's challenge with `signing_key`.
    pub async fn connect(
        addr: SocketAddr,
        trust: ServerTrust,
        key_id: KeyId,
        signing_key: SigningKey,
    ) -> Result<Client, ClientError> {
        let (endpoint, connection, mut send, mut recv) = open_stream(addr, &trust).await?;
        let mut input = Vec::with_capacity(4096);
        write_request(&mut send, &Request::Hello).await?;
        let Reply::Challenge { nonce } = read_reply(&mut recv, &mut input).await? else {
            return Err(ClientError::Protocol("expected a challenge".into()));
        };
        let signature = signing_key.sign_challenge(&nonce);
        write_request(&mut send, &Request::Logon { key_id, signature }).await?;
        let (account, session, heartbeat_ms) = match read_reply(&mut recv, &mut input).await? {
            Reply::LogonAck {
                account,
                session,
                heartbeat_ms,
                ..
            } => (account, session, heartbeat_ms),
            Reply::Reject { code, .. } | Reply::Logout { code } => {
                return Err(ClientError::LogonRefused(code));
            }
            other => return Err(ClientError::Protocol(format!("unexpected {other:?}"))),
        };
        let inner = Arc::new(Inner {
            send: tokio::sync::Mutex::new(send),
            pending: Mutex::new(HashMap::new()),
            pings: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(1),
            lagged: AtomicU64::new(0),
            closed: Mutex::new(None),
        });
        let (reports_tx, reports_rx) = mpsc::channel(REPORTS_CAPACITY);
        tokio::spawn(read_loop(inner.clone(), recv, input, reports_tx));
        tokio::spawn(heartbeat_loop(
            Arc::downgrade(&inner),
            Duration::from_millis(u64::from(heartbeat_ms.max(1))),
        ));
        Ok(Client {
            inner,
            connection,
            _endpoint: endpoint,
            reports: Mutex::new(Some(reports_rx)),
            account,
            session,
        })
    }

    /// The account this session trades for.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// The gateway's id of this session.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Places an order; answers with the exchange's Ack, the Reject, or (for a client order id
    /// already used) the status of the original order.
    pub async fn place(&self, order: Order) -> Result<Placed, ClientError> {
        let reply = self
            .request(|req| Request::NewOrder {
                req,
                client_order_id: order.client_order_id,
                market: order.market,
                side: order.side,
                kind: order.kind,
                tif: order.tif,
                stp: order.stp,
            })
            .await?;
        Ok(match reply {
            Reply::Ack { seq, order, .. } => Placed::Ack { order, seq },
            Reply::Reject { seq, code, .. } => Placed::Rejected { code, seq },
            Reply::Status { .. } => Placed::Duplicate(StatusReply::from_reply(&reply)),
            other => return Err(ClientError::Protocol(format!("unexpected {other:?}"))),
        })
    }

    /// Cancels an order; `Done` once the engine applied it.
    pub async fn cancel(&self, target: OrderRef) -> Result<Outcome, ClientError> {
        let reply = self.request(|req| Request::Cancel { req, target }).await?;
        Outcome::from_reply(reply)
    }

    /// Changes a resting order's price (`None` keeps it) and open quantity.
    pub async fn replace(
        &self,
        target: OrderRef,
        new_price: Option<Price>,
        new_qty: Qty,
    ) -> Result<Outcome, ClientError> {
        let reply = self
            .request(|req| Request::CancelReplace {
                req,
                target,
                new_price,
                new_qty,
            })
            .await?;
        Outcome::from_reply(reply)
    }

    /// Cancels all of the account's orders, optionally only in one market and/or side.
    pub async fn mass_cancel(
        &self,
        market: Option<MarketId>,
        side: Option<Side>,
    ) -> Result<Outcome, ClientError> {
        let reply = self
            .request(|req| Request::MassCancel { req, market, side })
            .await?;
        Outcome::from_reply(reply)
    }

    /// The status of an order by client order id (e.g. after a reconnect).
    pub async fn status(&self, client_order_id: ClientOrderId) -> Result<StatusReply, ClientError> {
        let reply = self
            .request(|req| Request::OrderStatus {
                req,
                client_order_id,
            })
            .await?;
        match reply {
            Reply::Status { .. } => Ok(StatusReply::from_reply(&reply)),
            Reply::Reject { code, .. } => Err(ClientError::Protocol(format!(
                "status rejected with code {}",
                code.0
            ))),
            other => Err(ClientError::Protocol(format!("unexpected {other:?}"))),
        }
    }

    /// Subscribes to a market's trades and book deltas; the snapshot and then the deltas arrive
    /// on [`Client::reports`].
    pub async fn subscribe(&self, market: MarketId) -> Result<Outcome, ClientError> {
        let reply = self
            .request(|req| Request::Subscribe { req, market })
            .await?;
        Outcome::from_reply(reply)
    }

    /// One heartbeat round trip: the protocol-level ping.
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let nonce = self.inner.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pings).insert(nonce, tx);
        let start = Instant::now();
        self.send(&Request::Heartbeat { nonce }).await?;
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(at)) => Ok(at.saturating_duration_since(start)),
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => {
                lock(&self.inner.pings).remove(&nonce);
                Err(ClientError::Timeout)
            }
        }
    }

    /// The stream of every report (execution reports and market data), once: later calls get
    /// `None`. Reports arriving while it is full are counted in [`Client::reports_lagged`];
    /// dropping the receiver turns reports off.
    pub fn reports(&self) -> Option<mpsc::Receiver<Reply>> {
        lock(&self.reports).take()
    }

    /// Reports not queued because the report stream was full.
    pub fn reports_lagged(&self) -> u64 {
        self.inner.lagged.load(Ordering::Relaxed)
    }

    /// Logs out and closes the connection.
    pub async fn logout(self) -> Result<(), ClientError> {
        self.send(&Request::Logout).await?;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.connection.closed()).await;
        self.connection.close(quinn::VarInt::from_u32(0), b"logout");
        Ok(())
    }

    /// Sends one request built around a fresh request id and waits for its answer.
    async fn request(
        &self,
        build: impl FnOnce(RequestId) -> Request,
    ) -> Result<Reply, ClientError> {
        let req = self.inner.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(req, tx);
        if let Err(error) = self.send(&build(RequestId(req))).await {
            lock(&self.inner.pending).remove(&req);
            return Err(error);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => {
                lock(&self.inner.pending).remove(&req);
                Err(ClientError::Timeout)
            }
        }
    }

    async fn send(&self, request: &Request) -> Result<(), ClientError> {
        if let Some(code) = *lock(&self.inner.closed) {
            return Err(ClientError::Closed(code));
        }
        write_request(&mut *self.inner.send.lock().await, request).await
    }

    fn closed_error(&self) -> ClientError {
        ClientError::Closed(lock(&self.inner.closed).flatten())
    }
}

impl Drop for Client {
    /// Closes the connection at once, so the server ends the session (and frees the key's
    /// session slot) without waiting for an idle timeout.
    fn drop(&mut self) {
        self.connection
            .close(quinn::VarInt::from_u32(0), b"client dropped");
    }
}

/// Sends a heartbeat every `period` (as the server asked at logon) so an idle session is not
/// timed out; ends with the client or the session.
async fn heartbeat_loop(inner: std::sync::Weak<Inner>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if lock(&inner.closed).is_some() {
            return;
        }
        // Nonce 0 is never used by `ping`, so its echo is ignored.
        let mut send = inner.send.lock().await;
        let sent = write_request(&mut send, &Request::Heartbeat { nonce: 0 }).await;
        drop(send);
        if sent.is_err() {
            return;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn write_request(send: &mut quinn::SendStream, request: &Request) -> Result<(), ClientError> {
    let mut frame = Vec::with_capacity(128);
    codec::encode_request(request, &mut frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
    send.write_all(&frame)
        .await
        .map_err(|e| ClientError::Connection(e.to_string()))
}

/// Reads one reply (used during logon, before the reader task starts).
async fn read_reply(
    recv: &mut quinn::RecvStream,
    input: &mut Vec<u8>,
) -> Result<Reply, ClientError> {
    let mut chunk = [0u8; 4096];
    // Bounded: each pass either returns or reads more; the stream ends or errors eventually and
    // the logon is bounded by the connection's idle timeout.
    loop {
        match codec::decode_reply(input) {
            Ok(Decoded::Frame(reply, len)) => {
                input.drain(..len);
                return Ok(reply);
            }
            Ok(Decoded::Incomplete) => {}
            Err(error) => return Err(ClientError::Protocol(error.to_string())),
        }
        match recv.read(&mut chunk).await {
            Ok(Some(n)) => input.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Ok(None) => return Err(ClientError::Closed(None)),
            Err(error) => return Err(ClientError::Connection(error.to_string())),
        }
    }
}

async fn read_loop(
    inner: Arc<Inner>,
    mut recv: quinn::RecvStream,
    mut input: Vec<u8>,
    reports: mpsc::Sender<Reply>,
) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut code = None;
    'read: loop {
        let mut offset = 0;
        loop {
            match codec::decode_reply(&input[offset..]) {
                Ok(Decoded::Frame(reply, len)) => {
                    offset += len;
                    if let Reply::Logout { code: c } = reply {
                        code = Some(c);
                    }
                    dispatch(&inner, reply, &reports);
                }
                Ok(Decoded::Incomplete) => break,
                Err(error) => {
                    tracing::error!(%error, "malformed frame from the server");
                    break 'read;
                }
            }
        }
        input.drain(..offset);
        match recv.read(&mut chunk).await {
            Ok(Some(n)) => input.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Ok(None) | Err(_) => break,
        }
    }
    *lock(&inner.closed) = Some(code);
    // Waiters learn of the close by their sender being dropped.
    lock(&inner.pending).clear();
    lock(&inner.pings).clear();
}

fn dispatch(inner: &Inner, reply: Reply, reports: &mpsc::Sender<Reply>) {
    let answers = match &reply {
        Reply::Ack { req, .. }
        | Reply::Reject { req, .. }
        | Reply::Done { req, .. }
        | Reply::Status { req, .. } => Some(*req),
        Reply::Heartbeat { nonce } => {
            if let Some(waiter) = lock(&inner.pings).remove(nonce) {
                let _ = waiter.send(Instant::now());
            }
            return;
        }
        _ => None,
    };
    if let Some(req) = answers
        && req.0 != 0
        && let Some(waiter) = lock(&inner.pending).remove(&req.0)
    {
        let _ = waiter.send(reply.clone());
    }
    // A dropped receiver means the caller does not want reports: not a loss.
    if let Err(mpsc::error::TrySendError::Full(_)) = reports.try_send(reply) {
        inner.lagged.fetch_add(1, Ordering::Relaxed);
    }
}
