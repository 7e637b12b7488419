//! Client SDK for Peregrine's binary order entry over QUIC (protocol `peregrine/2`, see
//! `proto/PROTOCOL.md`).
//!
//! ```no_run
//! # async fn run() -> Result<(), peregrine_client::ClientError> {
//! use peregrine_client::{Client, ServerTrust, SigningKey};
//! use peregrine_hotpath::Side;
//! let key = SigningKey::from_seed_hex("07".repeat(32).as_str())?;
//! let client = Client::connect(
//!     "127.0.0.1:4433".parse().unwrap(),
//!     ServerTrust::Fingerprint([0; 32]),
//!     peregrine_client::KeyId(1),
//!     key,
//! )
//! .await?;
//! // Market names and decimals, converted with the units the server listed at logon.
//! let order = client.limit("btcusd", Side::Buy, "50000", "0.01")?;
//! let placed = client.place(order).await?;
//! println!("{placed}");
//! println!("{}", client.balance("usd").await?);
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! Requests are pipelined: each call sends at once and waits only for its own answer, so many
//! may be in flight from many tasks. Every report (acks, fills, cancels, market data) also goes
//! to the stream returned by [`Client::reports`]. Client order ids come from [`ClientOrderIds`]
//! (time-based, unique across runs) unless you pass your own. End a session with
//! [`Client::logout`] or [`Client::close`], on error paths too: a dropped client closes its
//! connection, but only a running runtime sends the close, and until the server hears it the
//! key's session slot stays taken (`quic.session.limit`).
//!
//! The frames and codec come from the sans-IO crate `peregrine-proto`; the SDK does not depend on
//! the gateway (only its end-to-end tests start one).

mod connect;
mod error;
mod ids;
mod types;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use peregrine_hotpath::edge::parse_decimal;
use peregrine_hotpath::{
    AccountId, ClientOrderId, CurrencyId, MarketId, OrderRef, Price, Qty, Side,
};
pub use peregrine_proto::codec::FrameError;
use peregrine_proto::codec::{self, Decoded};
pub use peregrine_proto::directory::{CurrencyInfo, Directory, MarketInfo, Name};
pub use peregrine_proto::frame::{
    Cancelled, Fill, KeyId, Liquidity, MarketSeq, OrderState, RejectCode, Replaced, Reply, Request,
    RequestId, SessionId,
};
use tokio::sync::{mpsc, oneshot};

pub use connect::{CONNECT_TIMEOUT, ServerTrust, SigningKey, open_stream};
pub use error::ClientError;
pub use ids::{COUNTER_BITS, ClientOrderIds};
pub use types::{BalanceReply, Order, Outcome, Placed, StatusReply};

/// Reports buffered for [`Client::reports`] before new ones are counted as lagged.
pub const REPORTS_CAPACITY: usize = 65_536;
/// Longest a request waits for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest [`Client::logout`] and [`Client::close`] wait for the close to reach the server.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

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
    directory: Directory,
    ids: ClientOrderIds,
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
        let logon = logon(&mut send, &mut recv, &mut input, key_id, &signing_key).await;
        let (account, session, heartbeat_ms, directory) = match logon {
            Ok(logged_on) => logged_on,
            Err(error) => {
                // Tell the server at once, so the key's session slot is free for a retry.
                close_connection(&endpoint, &connection, b"logon failed").await;
                return Err(error);
            }
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
            directory,
            ids: ClientOrderIds::new(),
        })
    }

    /// The currencies and markets the server listed at logon.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// A market by name, as the server listed it.
    pub fn market(&self, name: &str) -> Result<&MarketInfo, ClientError> {
        self.directory
            .market(name)
            .ok_or_else(|| ClientError::UnknownMarket(name.to_owned()))
    }

    /// A fresh client order id (see [`ClientOrderIds`]).
    pub fn next_client_order_id(&self) -> ClientOrderId {
        self.ids.next()
    }

    /// A good-till-cancelled limit order by market name and decimal price and quantity
    /// (`"50000.5"`, `"0.01"`), converted exactly with the market's tick and lot (a value that
    /// is not a multiple is refused, never rounded), with a fresh client order id.
    pub fn limit(
        &self,
        market: &str,
        side: Side,
        price: &str,
        qty: &str,
    ) -> Result<Order, ClientError> {
        let info = self.market(market)?;
        let decimal = |what, text: &str| {
            parse_decimal(text).map_err(|source| ClientError::Decimal {
                what,
                text: text.to_owned(),
                source,
            })
        };
        let price = info.units.price(decimal("price", price)?)?;
        let qty = info.units.qty(decimal("quantity", qty)?)?;
        Ok(Order::limit(
            self.next_client_order_id(),
            info.market,
            side,
            price,
            qty,
        ))
    }

    /// The account's balance of a currency, by code, in decimals (and minor units).
    pub async fn balance(&self, currency: &str) -> Result<BalanceReply, ClientError> {
        let info = *self
            .directory
            .currency(currency)
            .ok_or_else(|| ClientError::UnknownCurrency(currency.to_owned()))?;
        let (available, locked) = self.balance_of(info.currency).await?;
        Ok(BalanceReply::new(&info, available, locked))
    }

    /// The account's balance of a currency, by engine id, in minor units.
    pub async fn balance_of(
        &self,
        currency: CurrencyId,
    ) -> Result<(peregrine_hotpath::Amount, peregrine_hotpath::Amount), ClientError> {
        let reply = self
            .request(|req| Request::Balance { req, currency })
            .await?;
        match reply {
            Reply::Balance {
                available, locked, ..
            } => Ok((available, locked)),
            Reply::Reject { code, .. } => Err(ClientError::Refused(code)),
            other => Err(ClientError::Protocol(format!("unexpected {other:?}"))),
        }
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
            Reply::Reject { code, .. } => Err(ClientError::Refused(code)),
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

    /// Logs out, waits (up to [`CLOSE_TIMEOUT`]) for the server's goodbye, and closes the
    /// connection. The connection is closed even when the logout cannot be sent.
    pub async fn logout(self) -> Result<(), ClientError> {
        let sent = self.send(&Request::Logout).await;
        if sent.is_ok() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.connection.closed()).await;
        }
        self.close().await;
        sent
    }

    /// Closes the connection without a logout and waits (up to [`CLOSE_TIMEOUT`]) until the
    /// close was sent: the server ends the session and frees the key's slot at once. Use it
    /// on error paths before the program exits.
    pub async fn close(self) {
        close_connection(&self._endpoint, &self.connection, b"client closed").await;
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

/// Closes `connection` and waits, up to [`CLOSE_TIMEOUT`], until the endpoint sent the close.
async fn close_connection(endpoint: &quinn::Endpoint, connection: &quinn::Connection, why: &[u8]) {
    connection.close(quinn::VarInt::from_u32(0), why);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, endpoint.wait_idle()).await;
}

/// Hello, challenge, signed logon, then the directory that follows `LogonAck`.
async fn logon(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    input: &mut Vec<u8>,
    key_id: KeyId,
    signing_key: &SigningKey,
) -> Result<(AccountId, SessionId, u32, Directory), ClientError> {
    write_request(send, &Request::Hello).await?;
    let Reply::Challenge { nonce } = read_reply(recv, input).await? else {
        return Err(ClientError::Protocol("expected a challenge".into()));
    };
    let signature = signing_key.sign_challenge(&nonce);
    write_request(send, &Request::Logon { key_id, signature }).await?;
    let (account, session, heartbeat_ms, currencies, markets) =
        match read_reply(recv, input).await? {
            Reply::LogonAck {
                account,
                session,
                heartbeat_ms,
                currencies,
                markets,
                ..
            } => (account, session, heartbeat_ms, currencies, markets),
            Reply::Reject { code, .. } | Reply::Logout { code } => {
                return Err(ClientError::LogonRefused(code));
            }
            other => return Err(ClientError::Protocol(format!("unexpected {other:?}"))),
        };
    // The codec bounded both counts (CURRENCIES_MAX, MARKETS_MAX) before they size anything.
    let currency_list = read_entries(recv, input, currencies, "a currency", |r| match r {
        Reply::Currency(c) => Some(c),
        _ => None,
    })
    .await?;
    let market_list = read_entries(recv, input, markets, "a market", |r| match r {
        Reply::Market(m) => Some(m),
        _ => None,
    })
    .await?;
    let directory = Directory::new(currency_list, market_list)?;
    Ok((account, session, heartbeat_ms, directory))
}

/// Reads `count` directory frames that `pick` accepts.
async fn read_entries<T>(
    recv: &mut quinn::RecvStream,
    input: &mut Vec<u8>,
    count: u16,
    what: &str,
    pick: impl Fn(Reply) -> Option<T>,
) -> Result<Vec<T>, ClientError> {
    let mut entries = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let reply = read_reply(recv, input).await?;
        let text = format!("{reply:?}");
        let entry = pick(reply)
            .ok_or_else(|| ClientError::Protocol(format!("expected {what}, got {text}")))?;
        entries.push(entry);
    }
    Ok(entries)
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
        | Reply::Status { req, .. }
        | Reply::Balance { req, .. } => Some(*req),
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
