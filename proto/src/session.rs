//! The sans-IO session: bytes in, requests to the engine side, engine reports in, reply bytes
//! out. No sockets, no clock (time is passed in), no threads: the server drives it, and tests
//! drive it with a plain [`Backend`].
//!
//! State: `AwaitHello -> AwaitLogon -> Active -> Closed`. Any malformed frame, limit abuse or
//! protocol violation ends in `Closed` with a reason, after a final `Reject`/`Logout` frame is
//! queued; the caller then flushes the output and closes the connection.

use std::collections::HashMap;

use peregrine_hotpath::{AccountId, ClientOrderId, CommandKind, MarketId, NewOrder, OrderId, Qty};

use crate::codec::{self, Decoded, FrameError};
use crate::frame::{
    CHALLENGE_BYTES, KeyId, MAX_FRAME_BYTES, OrderState, RejectCode, Reply, Request, RequestId,
    SIGNATURE_BYTES, SessionId,
};
use crate::limits::{SessionLimits, TokenBucket};

/// What the session needs from the engine side. The gateway's server implements it over its
/// engine handle; tests implement it directly.
pub trait Backend {
    /// Checks the logon signature and the key's session limit; on success the session is
    /// registered to receive its account's reports.
    fn logon(
        &mut self,
        key_id: KeyId,
        challenge: &[u8; CHALLENGE_BYTES],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> Result<(AccountId, SessionId), RejectCode>;

    /// Sequences and submits a command for `account`; `new_order` names the client order id of
    /// a new order, the dedup key.
    fn submit(
        &mut self,
        account: AccountId,
        new_order: Option<ClientOrderId>,
        command: CommandKind,
    ) -> Result<u64, SubmitError>;

    /// What the gateway knows of an order of `account`.
    fn status(&mut self, account: AccountId, client_order_id: ClientOrderId) -> OrderStatus;

    /// Starts market data for `market`; the snapshot follows as reports.
    fn subscribe(&mut self, market: MarketId) -> Result<(), RejectCode>;

    /// Stops market data for `market`.
    fn unsubscribe(&mut self, market: MarketId);
}

/// Why a command was not sequenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The engine's input queue is full; nothing was sequenced.
    #[error("the engine is busy")]
    Busy,
    /// The client order id is already known for this account.
    #[error("duplicate client order id")]
    Duplicate(OrderStatus),
    /// The exchange cannot take commands (its journal failed); nothing was sequenced.
    #[error("the exchange is unavailable")]
    Unavailable,
}

/// An order's status as the gateway tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderStatus {
    /// Exchange id (0 until accepted).
    pub order: OrderId,
    /// Sequence of the original command (0 if unknown).
    pub seq: u64,
    /// Filled so far.
    pub filled: Qty,
    /// State.
    pub state: OrderState,
    /// Engine reject code when rejected, else 0.
    pub code: RejectCode,
}

impl OrderStatus {
    /// The status of an order the gateway never saw.
    pub const UNKNOWN: OrderStatus = OrderStatus {
        order: OrderId(0),
        seq: 0,
        filled: Qty(0),
        state: OrderState::Unknown,
        code: RejectCode(0),
    };
}

/// What the engine side tells one session, already resolved to this session's account.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Report {
    /// A new order of the account was accepted.
    Accepted {
        /// Engine sequence.
        seq: u64,
        /// Exchange id.
        order: OrderId,
        /// Client id.
        client_order_id: ClientOrderId,
    },
    /// A command this session submitted was rejected by the engine.
    Rejected {
        /// Engine sequence.
        seq: u64,
        /// Why.
        code: RejectCode,
    },
    /// An order of the account traded.
    Fill(crate::frame::Fill),
    /// An order of the account was cancelled.
    Cancelled(crate::frame::Cancelled),
    /// An order of the account was replaced.
    Replaced(crate::frame::Replaced),
    /// A mass cancel of the account finished.
    MassCancelled {
        /// Engine sequence.
        seq: u64,
        /// Orders cancelled.
        count: u32,
    },
    /// A command this session submitted is complete.
    Done {
        /// Engine sequence.
        seq: u64,
    },
    /// A market-data frame (trade, level, snapshot), passed through as is.
    Market(Reply),
    /// The engine side closes the session (slow consumer, shutdown).
    Close(RejectCode),
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The peer sent bytes that are not a valid frame.
    #[error("malformed frame: {0}")]
    Frame(#[from] FrameError),
    /// The session is closed for another reason.
    #[error("session closed (code {})", .0.0)]
    Closed(RejectCode),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    AwaitHello,
    AwaitLogon,
    Active { account: AccountId },
    Closed(RejectCode),
}

/// Bytes of output above which the session is closed as a slow consumer: the peer is not
/// reading and the server will not buffer without bound.
pub const OUTPUT_MAX_BYTES: usize = 4 << 20;

/// One client session.
#[derive(Debug)]
pub struct Session {
    state: State,
    challenge: [u8; CHALLENGE_BYTES],
    limits: SessionLimits,
    bucket: TokenBucket,
    /// Unparsed bytes: always less than one frame between calls.
    input: Vec<u8>,
    output: Vec<u8>,
    /// Commands awaiting `Done`: sequence to request id. Bounded by `limits.max_in_flight`.
    in_flight: HashMap<u64, RequestId>,
    subscriptions: Vec<MarketId>,
    violations: u32,
    last_input_ns: u64,
}

impl Session {
    /// A new session at `now_ns` that will issue `challenge` (fresh random bytes per session).
    pub fn new(limits: SessionLimits, challenge: [u8; CHALLENGE_BYTES], now_ns: u64) -> Self {
        Session {
            state: State::AwaitHello,
            challenge,
            limits,
            bucket: TokenBucket::new(limits.rate_per_sec, limits.burst, now_ns),
            input: Vec::with_capacity(MAX_FRAME_BYTES * 2),
            output: Vec::with_capacity(64 * 1024),
            in_flight: HashMap::with_capacity(limits.max_in_flight as usize),
            subscriptions: Vec::with_capacity(limits.max_subscriptions as usize),
            violations: 0,
            last_input_ns: now_ns,
        }
    }

    /// Processes bytes from the peer: every whole frame is handled, the rest kept. A malformed
    /// frame queues a `Reject` and closes the session.
    pub fn on_bytes(
        &mut self,
        now_ns: u64,
        bytes: &[u8],
        backend: &mut impl Backend,
    ) -> Result<(), SessionError> {
        self.check_open()?;
        self.last_input_ns = now_ns;
        self.input.extend_from_slice(bytes);
        let mut offset = 0;
        // Bounded: each pass consumes at least one header's worth of bytes or stops.
        while offset < self.input.len() {
            match codec::decode_request(&self.input[offset..]) {
                Ok(Decoded::Incomplete) => break,
                Ok(Decoded::Frame(request, len)) => {
                    debug_assert!(len >= codec::HEADER_BYTES);
                    offset += len;
                    self.on_request(now_ns, request, backend);
                    if let State::Closed(code) = self.state {
                        self.input.clear();
                        return Err(SessionError::Closed(code));
                    }
                }
                Err(error) => {
                    self.input.clear();
                    self.reply(&Reply::Reject {
                        req: RequestId(0),
                        seq: 0,
                        code: error.code(),
                    });
                    self.close(error.code());
                    return Err(SessionError::Frame(error));
                }
            }
        }
        self.input.drain(..offset);
        assert!(
            self.input.len() < MAX_FRAME_BYTES,
            "a whole frame was left unparsed"
        );
        Ok(())
    }

    /// Turns an engine report into reply frames.
    pub fn on_report(&mut self, report: &Report) {
        if self.is_closed() {
            return;
        }
        let reply = match *report {
            Report::Accepted {
                seq,
                order,
                client_order_id,
            } => Reply::Ack {
                req: self.req_of(seq),
                seq,
                order,
                client_order_id,
            },
            Report::Rejected { seq, code } => Reply::Reject {
                req: self.req_of(seq),
                seq,
                code,
            },
            Report::Fill(report) => Reply::Fill(report),
            Report::Cancelled(report) => Reply::Cancelled(report),
            Report::Replaced(report) => Reply::Replaced(report),
            Report::MassCancelled { seq, count } => Reply::MassCancelled {
                req: self.req_of(seq),
                seq,
                count,
            },
            Report::Done { seq } => {
                let req = self.in_flight.remove(&seq).unwrap_or_default();
                Reply::Done { req, seq }
            }
            Report::Market(ref reply) => reply.clone(),
            Report::Close(code) => {
                self.logout(code);
                return;
            }
        };
        self.reply(&reply);
        if self.output.len() > OUTPUT_MAX_BYTES {
            self.logout(RejectCode::SLOW_CONSUMER);
        }
    }

    /// Checks the idle timeout at `now_ns`.
    pub fn on_tick(&mut self, now_ns: u64) {
        let idle_ns = u64::from(self.limits.idle_timeout_ms) * 1_000_000;
        if !self.is_closed() && now_ns.saturating_sub(self.last_input_ns) > idle_ns {
            self.logout(RejectCode::IDLE_TIMEOUT);
        }
    }

    /// Ends the session from the server side (shutdown).
    pub fn shut_down(&mut self) {
        if !self.is_closed() {
            self.logout(RejectCode::SHUTTING_DOWN);
        }
    }

    /// Bytes to send to the peer.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Marks the output as sent.
    pub fn clear_output(&mut self) {
        self.output.clear();
    }

    /// Why the session is closed, once it is.
    pub fn close_reason(&self) -> Option<RejectCode> {
        match self.state {
            State::Closed(code) => Some(code),
            _ => None,
        }
    }

    /// The account, once logged on.
    pub fn account(&self) -> Option<AccountId> {
        match self.state {
            State::Active { account } => Some(account),
            _ => None,
        }
    }

    /// Markets subscribed.
    pub fn subscriptions(&self) -> &[MarketId] {
        &self.subscriptions
    }

    /// Commands awaiting `Done`.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    fn check_open(&self) -> Result<(), SessionError> {
        match self.state {
            State::Closed(code) => Err(SessionError::Closed(code)),
            _ => Ok(()),
        }
    }

    fn on_request(&mut self, now_ns: u64, request: Request, backend: &mut impl Backend) {
        let account = match (self.state, &request) {
            (State::AwaitHello, Request::Hello) => {
                self.state = State::AwaitLogon;
                self.reply(&Reply::Challenge {
                    nonce: self.challenge,
                });
                return;
            }
            (State::AwaitLogon, Request::Logon { key_id, signature }) => {
                match backend.logon(*key_id, &self.challenge, signature) {
                    Ok((account, session)) => {
                        self.state = State::Active { account };
                        self.reply(&Reply::LogonAck {
                            account,
                            session,
                            heartbeat_ms: self.limits.heartbeat_ms,
                            max_in_flight: self.limits.max_in_flight,
                            rate_per_sec: self.limits.rate_per_sec,
                        });
                    }
                    Err(code) => self.reject_and_close(RequestId(0), code),
                }
                return;
            }
            (_, Request::Logout) => {
                self.logout(RejectCode::LOGOUT);
                return;
            }
            (State::Active { account }, _) => account,
            (State::AwaitHello | State::AwaitLogon, _) => {
                self.reject_and_close(RequestId(0), RejectCode::NOT_LOGGED_ON);
                return;
            }
            (State::Closed(_), _) => return,
        };
        self.on_active_request(now_ns, account, request, backend);
    }

    fn on_active_request(
        &mut self,
        now_ns: u64,
        account: AccountId,
        request: Request,
        backend: &mut impl Backend,
    ) {
        let req = match request {
            Request::Heartbeat { nonce } => {
                self.reply(&Reply::Heartbeat { nonce });
                return;
            }
            Request::Hello | Request::Logon { .. } => {
                self.reject_and_close(RequestId(0), RejectCode::UNEXPECTED);
                return;
            }
            Request::NewOrder { req, .. }
            | Request::Cancel { req, .. }
            | Request::CancelReplace { req, .. }
            | Request::MassCancel { req, .. }
            | Request::OrderStatus { req, .. }
            | Request::Subscribe { req, .. }
            | Request::Unsubscribe { req, .. } => req,
            Request::Logout => return,
        };
        if !self.bucket.try_take(now_ns) {
            self.violation(req, RejectCode::RATE_LIMITED);
            return;
        }
        let (new_order, command) = match request {
            Request::NewOrder {
                client_order_id,
                market,
                side,
                kind,
                tif,
                stp,
                ..
            } => (
                Some(client_order_id),
                CommandKind::NewOrder(NewOrder {
                    account,
                    market,
                    client_order_id,
                    side,
                    kind,
                    tif,
                    stp,
                }),
            ),
            Request::Cancel { target, .. } => (None, CommandKind::Cancel { account, target }),
            Request::CancelReplace {
                target,
                new_price,
                new_qty,
                ..
            } => (
                None,
                CommandKind::CancelReplace(peregrine_hotpath::CancelReplace {
                    account,
                    target,
                    new_price,
                    new_qty,
                }),
            ),
            Request::MassCancel { market, side, .. } => (
                None,
                CommandKind::MassCancel {
                    account,
                    market,
                    side,
                },
            ),
            Request::OrderStatus {
                client_order_id, ..
            } => {
                self.violations = 0;
                let status = backend.status(account, client_order_id);
                self.status_reply(req, client_order_id, status);
                return;
            }
            Request::Subscribe { market, .. } => {
                self.violations = 0;
                self.subscribe(req, market, backend);
                return;
            }
            Request::Unsubscribe { market, .. } => {
                self.violations = 0;
                if let Some(at) = self.subscriptions.iter().position(|m| *m == market) {
                    self.subscriptions.swap_remove(at);
                    backend.unsubscribe(market);
                }
                self.reply(&Reply::Done { req, seq: 0 });
                return;
            }
            _ => return,
        };
        if self.in_flight.len() >= self.limits.max_in_flight as usize {
            self.violation(req, RejectCode::TOO_MANY_IN_FLIGHT);
            return;
        }
        self.violations = 0;
        match backend.submit(account, new_order, command) {
            Ok(seq) => {
                let previous = self.in_flight.insert(seq, req);
                assert!(previous.is_none(), "sequence {seq} submitted twice");
            }
            Err(SubmitError::Busy) => self.reply(&Reply::Reject {
                req,
                seq: 0,
                code: RejectCode::BUSY,
            }),
            Err(SubmitError::Unavailable) => self.reply(&Reply::Reject {
                req,
                seq: 0,
                code: RejectCode::UNAVAILABLE,
            }),
            Err(SubmitError::Duplicate(status)) => {
                let client_order_id = new_order.unwrap_or_default();
                self.status_reply(req, client_order_id, status);
            }
        }
    }

    fn subscribe(&mut self, req: RequestId, market: MarketId, backend: &mut impl Backend) {
        if self.subscriptions.contains(&market) {
            self.reply(&Reply::Done { req, seq: 0 });
            return;
        }
        if self.subscriptions.len() >= self.limits.max_subscriptions as usize {
            self.reply(&Reply::Reject {
                req,
                seq: 0,
                code: RejectCode::TOO_MANY_SUBSCRIPTIONS,
            });
            return;
        }
        match backend.subscribe(market) {
            Ok(()) => {
                self.subscriptions.push(market);
                self.reply(&Reply::Done { req, seq: 0 });
            }
            Err(code) => self.reply(&Reply::Reject { req, seq: 0, code }),
        }
    }

    fn status_reply(&mut self, req: RequestId, client_order_id: ClientOrderId, s: OrderStatus) {
        self.reply(&Reply::Status {
            req,
            client_order_id,
            order: s.order,
            seq: s.seq,
            filled: s.filled,
            state: s.state,
            code: s.code,
        });
    }

    /// A limit was exceeded: reject, and close once it keeps happening.
    fn violation(&mut self, req: RequestId, code: RejectCode) {
        self.reply(&Reply::Reject { req, seq: 0, code });
        self.violations += 1;
        if self.violations >= self.limits.max_violations {
            self.logout(RejectCode::ABUSE);
        }
    }

    fn req_of(&self, seq: u64) -> RequestId {
        self.in_flight.get(&seq).copied().unwrap_or_default()
    }

    fn reject_and_close(&mut self, req: RequestId, code: RejectCode) {
        self.reply(&Reply::Reject { req, seq: 0, code });
        self.close(code);
    }

    fn logout(&mut self, code: RejectCode) {
        self.reply(&Reply::Logout { code });
        self.close(code);
    }

    fn close(&mut self, code: RejectCode) {
        self.state = State::Closed(code);
    }

    fn reply(&mut self, reply: &Reply) {
        // Every reply this module builds has a wire form; an engine enum newer than the protocol
        // would fail here, and is dropped with a log line rather than a panic.
        if let Err(error) = codec::encode_reply(reply, &mut self.output) {
            tracing::error!(%error, ?reply, "reply has no wire form");
        }
    }
}
