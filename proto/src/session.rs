//! The sans-IO session, in the manner of `quinn-proto`: input is bytes, time and the results of
//! the actions it asked for; output is polled [`Action`]s and reply bytes. No sockets, no clock
//! (time is passed in), no threads, no callbacks: the server drives it, and tests drive it with
//! plain values.
//!
//! State: `AwaitHello -> AwaitLogon -> Active -> Closed`. Any malformed frame, limit abuse or
//! protocol violation ends in `Closed` with a reason, after a final `Reject`/`Logout` frame is
//! queued; the caller then flushes the output and closes the connection.
//!
//! The driver's loop, after every input ([`Session::on_bytes`] or a result):
//!
//! ```text
//! session.on_bytes(now_ns, bytes)?;
//! while let Some(action) = session.poll_action() {
//!     // perform it; for Logon, Submit, Status and Subscribe feed the result back:
//!     session.on_submit_result(request_id, engine.submit(..))?;
//! }
//! // then send session.output() and clear_output().
//! ```
//!
//! Ordering: a request whose answer needs the engine side (logon, submit, status, subscribe)
//! stops the parsing of further input until its result is fed back, so replies leave in request
//! order and every limit sees the outcome of the requests before it, exactly as if the engine
//! side had been called in place. Reports of a submitted command must be fed after its result.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use peregrine_hotpath::ledger::Balance;
use peregrine_hotpath::{
    AccountId, Amount, ClientOrderId, CommandKind, CurrencyId, MarketId, NewOrder, OrderId, Qty,
};

use crate::codec::{self, Decoded, FrameError};
use crate::counts::{ANSWERED_MAX, ProtocolError, SessionCounts};
use crate::directory::Directory;
use crate::frame::{
    CHALLENGE_BYTES, KeyId, MAX_FRAME_BYTES, OrderState, RejectCode, Reply, Request, RequestId,
    SIGNATURE_BYTES, SessionId,
};
use crate::limits::{SessionLimits, TokenBucket};

/// Markets one session may subscribe to, whatever [`SessionLimits::max_subscriptions`] says: it
/// bounds the [`Action::Unsubscribe`]s one read can queue, so [`ACTIONS_MAX`] is a constant.
pub const SUBSCRIPTIONS_MAX: u32 = 1_024;

/// Actions a session holds for its driver at once. One input queues at most one action that
/// awaits a result (parsing stops there) behind at most one `Unsubscribe` per subscribed market.
/// Parsing also stops while the queue is full, so a driver that does not poll loses nothing.
pub const ACTIONS_MAX: usize = SUBSCRIPTIONS_MAX as usize + 1;

/// Unparsed input a session buffers, in bytes. Input only accumulates while the driver owes a
/// result; a driver that feeds more than this meanwhile has the session closed with
/// [`RejectCode::BUSY`] rather than buffered without bound.
pub const INPUT_MAX_BYTES: usize = 1 << 20;

/// Bytes of output above which the session is closed as a slow consumer: the peer is not
/// reading and the server will not buffer without bound.
pub const OUTPUT_MAX_BYTES: usize = 4 << 20;

/// Work the session asks of its driver (the engine side), polled with [`Session::poll_action`].
///
/// `Logon`, `Submit`, `Status` and `Subscribe` each await their result (the matching
/// `Session::on_*_result`) before the session parses further input; `Unsubscribe` needs none.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Check the logon signature (over [`crate::frame::logon_message`] of `challenge`) and the
    /// key's session limit; on success register the session for its account's reports. Answer
    /// with [`Session::on_logon_result`].
    Logon {
        /// Which key.
        key_id: KeyId,
        /// The challenge this session issued.
        challenge: [u8; CHALLENGE_BYTES],
        /// The client's signature.
        signature: [u8; SIGNATURE_BYTES],
    },
    /// Sequence and submit `command` for `account`; `new_order` names the client order id of a
    /// new order, the dedup key. Answer with [`Session::on_submit_result`].
    Submit {
        /// The request it answers.
        request_id: RequestId,
        /// The session's account.
        account: AccountId,
        /// The client order id of a new order.
        new_order: Option<ClientOrderId>,
        /// What to sequence.
        command: CommandKind,
    },
    /// Look up an order of `account`. Answer with [`Session::on_status_result`].
    Status {
        /// The request it answers.
        request_id: RequestId,
        /// The session's account.
        account: AccountId,
        /// Which order.
        client_order_id: ClientOrderId,
    },
    /// Start market data for `market`; the snapshot follows as reports. Answer with
    /// [`Session::on_subscribe_result`].
    Subscribe {
        /// The request it answers.
        request_id: RequestId,
        /// Which market.
        market: MarketId,
    },
    /// Stop market data for `market`. No result.
    Unsubscribe {
        /// Which market.
        market: MarketId,
    },
    /// Read `account`'s balance of `currency` (a currency of the logon directory). Answer with
    /// [`Session::on_balance_result`].
    Balance {
        /// The request it answers.
        request_id: RequestId,
        /// The session's account.
        account: AccountId,
        /// Which currency.
        currency: CurrencyId,
    },
}

/// A granted logon, the successful result of [`Action::Logon`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedOn {
    /// The account the key trades for.
    pub account: AccountId,
    /// The id the engine side gave this session.
    pub session: SessionId,
    /// The currencies and markets listed to the client after `LogonAck` (shared by sessions).
    pub directory: Arc<Directory>,
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
    /// The gateway refused the command before sequencing it (e.g. `LEVEL_TOO_LOW`).
    #[error("refused by the gateway: {0}")]
    Refused(RejectCode),
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

/// Why a session ended, or why it refused an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The peer sent bytes that are not a valid frame.
    #[error("malformed frame: {0}")]
    Frame(#[from] FrameError),
    /// The session is closed for another reason.
    #[error("session closed (code {})", .0.0)]
    Closed(RejectCode),
    /// The driver fed a result the session did not ask for (another kind, another request id,
    /// or none awaited); the session ignored it and is unchanged.
    #[error("a result the session did not ask for")]
    UnexpectedResult,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    AwaitHello,
    AwaitLogon,
    Active { account: AccountId },
    Closed(RejectCode),
}

/// The result the session waits for before it parses further input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Awaiting {
    Logon,
    Submit {
        request_id: RequestId,
        new_order: Option<ClientOrderId>,
        /// When its frame was parsed (the time of the input that carried it).
        received_ns: u64,
    },
    Status {
        request_id: RequestId,
        client_order_id: ClientOrderId,
    },
    Subscribe {
        request_id: RequestId,
        market: MarketId,
    },
    Balance {
        request_id: RequestId,
        currency: CurrencyId,
    },
}

/// One client session.
#[derive(Debug)]
pub struct Session {
    state: State,
    challenge: [u8; CHALLENGE_BYTES],
    limits: SessionLimits,
    bucket: TokenBucket,
    /// Received bytes; `input[input_parsed..]` is not parsed yet. Between inputs it is less than
    /// one frame unless a result is awaited or the action queue is full.
    input: Vec<u8>,
    input_parsed: usize,
    output: Vec<u8>,
    /// Work for the driver, oldest first. Bounded by [`ACTIONS_MAX`].
    actions: VecDeque<Action>,
    /// The result parsing waits for, if any.
    awaiting: Option<Awaiting>,
    /// Commands awaiting `Done`: sequence to request id and the time its frame was parsed.
    /// Bounded by `limits.max_in_flight`.
    in_flight: HashMap<u64, (RequestId, u64)>,
    subscriptions: Vec<MarketId>,
    violations: u32,
    last_input_ns: u64,
    /// Set at logon: what the client was told exists.
    directory: Arc<Directory>,
    /// Counted since the driver last took them ([`Session::take_counts`]).
    counts: SessionCounts,
    /// When each order-entry request answered in `output` was parsed. Bounded by
    /// [`ANSWERED_MAX`]; cleared with the output.
    answered_received_ns: Vec<u64>,
}

impl Session {
    /// A new session at `now_ns` that will issue `challenge` (fresh random bytes per session).
    /// `limits.max_subscriptions` is capped at [`SUBSCRIPTIONS_MAX`].
    pub fn new(limits: SessionLimits, challenge: [u8; CHALLENGE_BYTES], now_ns: u64) -> Self {
        let limits = SessionLimits {
            max_subscriptions: limits.max_subscriptions.min(SUBSCRIPTIONS_MAX),
            ..limits
        };
        let subscriptions_max = limits.max_subscriptions as usize;
        Session {
            state: State::AwaitHello,
            challenge,
            limits,
            bucket: TokenBucket::new(limits.rate_per_sec, limits.burst, now_ns),
            input: Vec::with_capacity(MAX_FRAME_BYTES * 2),
            input_parsed: 0,
            output: Vec::with_capacity(64 * 1024),
            actions: VecDeque::with_capacity(subscriptions_max + 1),
            awaiting: None,
            in_flight: HashMap::with_capacity(limits.max_in_flight as usize),
            subscriptions: Vec::with_capacity(subscriptions_max),
            violations: 0,
            last_input_ns: now_ns,
            directory: Arc::default(),
            counts: SessionCounts::default(),
            answered_received_ns: Vec::with_capacity(ANSWERED_MAX),
        }
    }

    /// Takes bytes from the peer at `now_ns` and handles every whole frame, up to the first that
    /// needs a result from the driver; the rest is kept. A malformed frame queues a `Reject` and
    /// closes the session.
    pub fn on_bytes(&mut self, now_ns: u64, bytes: &[u8]) -> Result<(), SessionError> {
        self.check_open()?;
        self.last_input_ns = now_ns;
        let unparsed_bytes = self.input.len() - self.input_parsed;
        if unparsed_bytes + bytes.len() > INPUT_MAX_BYTES {
            self.counts.error(ProtocolError::InputOverflow);
            self.discard_input();
            self.logout(RejectCode::BUSY);
            return Err(SessionError::Closed(RejectCode::BUSY));
        }
        self.input.extend_from_slice(bytes);
        self.parse()
    }

    /// The next action for the driver, oldest first.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The result of [`Action::Logon`]: the account and session on success, else why not (the
    /// session then rejects and closes). Parsing resumes.
    pub fn on_logon_result(
        &mut self,
        result: Result<LoggedOn, RejectCode>,
    ) -> Result<(), SessionError> {
        self.check_open()?;
        if self.awaiting != Some(Awaiting::Logon) {
            return Err(SessionError::UnexpectedResult);
        }
        self.awaiting = None;
        assert_eq!(self.state, State::AwaitLogon);
        match result {
            Ok(LoggedOn {
                account,
                session,
                directory,
            }) => {
                self.state = State::Active { account };
                self.directory = directory;
                self.logon_ack(account, session);
            }
            Err(code) => self.reject_and_close(RequestId(0), code),
        }
        self.parse()
    }

    /// The result of [`Action::Submit`] for `request_id`: the command's engine sequence, or why
    /// it was not sequenced. Parsing resumes.
    pub fn on_submit_result(
        &mut self,
        request_id: RequestId,
        result: Result<u64, SubmitError>,
    ) -> Result<(), SessionError> {
        self.check_open()?;
        let Some(Awaiting::Submit {
            request_id: awaited,
            new_order,
            received_ns,
        }) = self.awaiting
        else {
            return Err(SessionError::UnexpectedResult);
        };
        if awaited != request_id {
            return Err(SessionError::UnexpectedResult);
        }
        self.awaiting = None;
        let req = request_id;
        let sequenced = result.is_ok();
        match result {
            Ok(seq) => {
                let previous = self.in_flight.insert(seq, (req, received_ns));
                assert!(previous.is_none(), "sequence {seq} submitted twice");
                assert!(self.in_flight.len() <= self.limits.max_in_flight as usize);
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
            Err(SubmitError::Refused(code)) => self.reply(&Reply::Reject { req, seq: 0, code }),
            Err(SubmitError::Duplicate(status)) => {
                let client_order_id = new_order.unwrap_or_default();
                self.status_reply(req, client_order_id, status);
            }
        }
        if !sequenced {
            // Never sequenced: the reply just queued is the request's final answer.
            self.answered(received_ns);
        }
        self.parse()
    }

    /// The result of [`Action::Status`] for `request_id`. Parsing resumes.
    pub fn on_status_result(
        &mut self,
        request_id: RequestId,
        status: OrderStatus,
    ) -> Result<(), SessionError> {
        self.check_open()?;
        let Some(Awaiting::Status {
            request_id: awaited,
            client_order_id,
        }) = self.awaiting
        else {
            return Err(SessionError::UnexpectedResult);
        };
        if awaited != request_id {
            return Err(SessionError::UnexpectedResult);
        }
        self.awaiting = None;
        self.status_reply(request_id, client_order_id, status);
        self.parse()
    }

    /// The result of [`Action::Balance`] for `request_id`: the balance, or why it could not be
    /// read. Parsing resumes.
    pub fn on_balance_result(
        &mut self,
        request_id: RequestId,
        result: Result<Balance, RejectCode>,
    ) -> Result<(), SessionError> {
        self.check_open()?;
        let Some(Awaiting::Balance {
            request_id: awaited,
            currency,
        }) = self.awaiting
        else {
            return Err(SessionError::UnexpectedResult);
        };
        if awaited != request_id {
            return Err(SessionError::UnexpectedResult);
        }
        self.awaiting = None;
        let req = request_id;
        match result {
            Ok(balance) => self.reply(&Reply::Balance {
                req,
                currency,
                available: Amount(balance.available),
                locked: Amount(balance.locked),
            }),
            Err(code) => self.reply(&Reply::Reject { req, seq: 0, code }),
        }
        self.parse()
    }

    /// The result of [`Action::Subscribe`] for `request_id`: market data started, or why not.
    /// Parsing resumes.
    pub fn on_subscribe_result(
        &mut self,
        request_id: RequestId,
        result: Result<(), RejectCode>,
    ) -> Result<(), SessionError> {
        self.check_open()?;
        let Some(Awaiting::Subscribe {
            request_id: awaited,
            market,
        }) = self.awaiting
        else {
            return Err(SessionError::UnexpectedResult);
        };
        if awaited != request_id {
            return Err(SessionError::UnexpectedResult);
        }
        self.awaiting = None;
        let req = request_id;
        match result {
            Ok(()) => {
                assert!(self.subscriptions.len() < self.limits.max_subscriptions as usize);
                assert!(!self.subscriptions.contains(&market));
                self.subscriptions.push(market);
                self.reply(&Reply::Done { req, seq: 0 });
            }
            Err(code) => self.reply(&Reply::Reject { req, seq: 0, code }),
        }
        self.parse()
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
                let req = match self.in_flight.remove(&seq) {
                    Some((req, received_ns)) => {
                        self.answered(received_ns);
                        req
                    }
                    None => RequestId::default(),
                };
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
        self.answered_received_ns.clear();
    }

    /// When each order-entry request (new order, cancel, replace, mass cancel) whose final
    /// answer — `Done`, or the `Reject`/`Status` of one never sequenced — is in [`Self::output`]
    /// was parsed, in the clock of the `now_ns` arguments: the driver subtracts each from the
    /// time it wrote the output (frame in to reply out). At most [`ANSWERED_MAX`]; cleared by
    /// [`Self::clear_output`].
    pub fn answered_received_ns(&self) -> &[u64] {
        &self.answered_received_ns
    }

    /// Frames and protocol errors counted since the last call (the counts restart at zero).
    pub fn take_counts(&mut self) -> SessionCounts {
        std::mem::take(&mut self.counts)
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

    /// Actions not yet polled.
    pub fn pending_actions(&self) -> usize {
        self.actions.len()
    }

    /// Whether parsing waits for the result of an action (polled or not).
    pub fn awaits_result(&self) -> bool {
        self.awaiting.is_some()
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

    /// Whether the next frame may be parsed: no result is awaited and an action fits.
    fn may_parse(&self) -> bool {
        self.awaiting.is_none() && self.actions.len() < ACTIONS_MAX
    }

    /// Handles whole frames of the unparsed input while [`Self::may_parse`], all at the time of
    /// the last input.
    fn parse(&mut self) -> Result<(), SessionError> {
        let now_ns = self.last_input_ns;
        // Bounded: each pass consumes at least one header's worth of bytes or stops.
        loop {
            if let State::Closed(code) = self.state {
                // A result can close the session (a refused logon): the rest is never parsed.
                self.discard_input();
                return Err(SessionError::Closed(code));
            }
            if !self.may_parse() {
                break;
            }
            let unparsed = self.input.get(self.input_parsed..).unwrap_or_default();
            match codec::decode_request(unparsed) {
                Ok(Decoded::Incomplete) => break,
                Ok(Decoded::Frame(request, len)) => {
                    debug_assert!(len >= codec::HEADER_BYTES);
                    if let Some(kind) = unparsed.get(codec::KIND_AT) {
                        self.counts.received(*kind);
                    }
                    self.input_parsed += len;
                    self.on_request(now_ns, request);
                    assert!(self.actions.len() <= ACTIONS_MAX);
                }
                Err(error) => {
                    self.counts.error(ProtocolError::Frame(error));
                    self.discard_input();
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
        if self.may_parse() {
            self.input.drain(..self.input_parsed);
            self.input_parsed = 0;
            assert!(
                self.input.len() < MAX_FRAME_BYTES,
                "a whole frame was left unparsed"
            );
        }
        Ok(())
    }

    fn discard_input(&mut self) {
        self.input.clear();
        self.input_parsed = 0;
    }

    fn on_request(&mut self, now_ns: u64, request: Request) {
        let account = match (self.state, &request) {
            (State::AwaitHello, Request::Hello) => {
                self.state = State::AwaitLogon;
                self.reply(&Reply::Challenge {
                    nonce: self.challenge,
                });
                return;
            }
            (State::AwaitLogon, Request::Logon { key_id, signature }) => {
                let action = Action::Logon {
                    key_id: *key_id,
                    challenge: self.challenge,
                    signature: *signature,
                };
                self.await_result(Awaiting::Logon, action);
                return;
            }
            (_, Request::Logout) => {
                self.logout(RejectCode::LOGOUT);
                return;
            }
            (State::Active { account }, _) => account,
            (State::AwaitHello | State::AwaitLogon, _) => {
                self.counts.error(ProtocolError::NotLoggedOn);
                self.reject_and_close(RequestId(0), RejectCode::NOT_LOGGED_ON);
                return;
            }
            (State::Closed(_), _) => return,
        };
        self.on_active_request(now_ns, account, request);
    }

    fn on_active_request(&mut self, now_ns: u64, account: AccountId, request: Request) {
        let req = match request {
            Request::Heartbeat { nonce } => {
                self.reply(&Reply::Heartbeat { nonce });
                return;
            }
            Request::Hello | Request::Logon { .. } => {
                self.counts.error(ProtocolError::Unexpected);
                self.reject_and_close(RequestId(0), RejectCode::UNEXPECTED);
                return;
            }
            Request::NewOrder { req, .. }
            | Request::Cancel { req, .. }
            | Request::CancelReplace { req, .. }
            | Request::MassCancel { req, .. }
            | Request::OrderStatus { req, .. }
            | Request::Subscribe { req, .. }
            | Request::Unsubscribe { req, .. }
            | Request::Balance { req, .. } => req,
            Request::Logout => return,
        };
        if !self.bucket.try_take(now_ns) {
            self.violation(req, RejectCode::RATE_LIMITED);
            return;
        }
        match request {
            Request::OrderStatus {
                client_order_id, ..
            } => {
                self.violations = 0;
                let action = Action::Status {
                    request_id: req,
                    account,
                    client_order_id,
                };
                let awaiting = Awaiting::Status {
                    request_id: req,
                    client_order_id,
                };
                self.await_result(awaiting, action);
            }
            Request::Subscribe { market, .. } => {
                self.violations = 0;
                self.subscribe(req, market);
            }
            Request::Unsubscribe { market, .. } => {
                self.violations = 0;
                self.unsubscribe(req, market);
            }
            Request::Balance { currency, .. } => {
                self.violations = 0;
                self.balance(req, account, currency);
            }
            request => {
                if let Some((new_order, command)) = command_of(account, request) {
                    self.submit(req, account, new_order, command);
                }
            }
        }
    }

    fn submit(
        &mut self,
        req: RequestId,
        account: AccountId,
        new_order: Option<ClientOrderId>,
        command: CommandKind,
    ) {
        if self.in_flight.len() >= self.limits.max_in_flight as usize {
            self.violation(req, RejectCode::TOO_MANY_IN_FLIGHT);
            return;
        }
        self.violations = 0;
        let action = Action::Submit {
            request_id: req,
            account,
            new_order,
            command,
        };
        let awaiting = Awaiting::Submit {
            request_id: req,
            new_order,
            received_ns: self.last_input_ns,
        };
        self.await_result(awaiting, action);
    }

    fn subscribe(&mut self, req: RequestId, market: MarketId) {
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
        let action = Action::Subscribe {
            request_id: req,
            market,
        };
        let awaiting = Awaiting::Subscribe {
            request_id: req,
            market,
        };
        self.await_result(awaiting, action);
    }

    fn balance(&mut self, req: RequestId, account: AccountId, currency: CurrencyId) {
        // Only currencies the client was told about: the engine side never sees an id outside
        // the directory.
        if self.directory.currency_by_id(currency).is_none() {
            self.reply(&Reply::Reject {
                req,
                seq: 0,
                code: RejectCode::UNKNOWN_CURRENCY,
            });
            return;
        }
        let action = Action::Balance {
            request_id: req,
            account,
            currency,
        };
        let awaiting = Awaiting::Balance {
            request_id: req,
            currency,
        };
        self.await_result(awaiting, action);
    }

    /// `LogonAck`, then the directory: every currency, then every market.
    fn logon_ack(&mut self, account: AccountId, session: SessionId) {
        let directory = Arc::clone(&self.directory);
        // `Directory::new` bounds both counts far below u16::MAX.
        let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
        self.reply(&Reply::LogonAck {
            account,
            session,
            heartbeat_ms: self.limits.heartbeat_ms,
            max_in_flight: self.limits.max_in_flight,
            rate_per_sec: self.limits.rate_per_sec,
            currencies: count(directory.currencies().len()),
            markets: count(directory.markets().len()),
        });
        for currency in directory.currencies() {
            self.reply(&Reply::Currency(*currency));
        }
        for market in directory.markets() {
            self.reply(&Reply::Market(*market));
        }
    }

    fn unsubscribe(&mut self, req: RequestId, market: MarketId) {
        if let Some(at) = self.subscriptions.iter().position(|m| *m == market) {
            self.subscriptions.swap_remove(at);
            self.push_action(Action::Unsubscribe { market });
        }
        self.reply(&Reply::Done { req, seq: 0 });
    }

    /// Queues `action` and stops parsing until its result.
    fn await_result(&mut self, awaiting: Awaiting, action: Action) {
        assert!(
            self.awaiting.is_none(),
            "{awaiting:?} behind {:?}",
            self.awaiting
        );
        self.push_action(action);
        self.awaiting = Some(awaiting);
    }

    fn push_action(&mut self, action: Action) {
        // `parse` only handles a frame while an action fits, and a frame queues at most one.
        assert!(self.actions.len() < ACTIONS_MAX, "action queue full");
        self.actions.push_back(action);
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
        self.in_flight
            .get(&seq)
            .map(|(req, _)| *req)
            .unwrap_or_default()
    }

    /// Remembers that an order-entry request parsed at `received_ns` has its final answer in
    /// the output (untimed beyond [`ANSWERED_MAX`]).
    fn answered(&mut self, received_ns: u64) {
        if self.answered_received_ns.len() < ANSWERED_MAX {
            self.answered_received_ns.push(received_ns);
        }
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
        let start = self.output.len();
        // Every reply this module builds has a wire form; an engine enum newer than the protocol
        // would fail here, and is dropped with a log line rather than a panic.
        match codec::encode_reply(reply, &mut self.output) {
            Ok(()) => {
                assert!(self.output.len() >= start + codec::HEADER_BYTES);
                if let Some(kind) = self.output.get(start + codec::KIND_AT) {
                    self.counts.sent(*kind);
                }
            }
            Err(error) => tracing::error!(%error, ?reply, "reply has no wire form"),
        }
    }
}

/// The engine command of an order-entry request of `account`, and the client order id of a new
/// order; `None` for requests that are not commands.
fn command_of(
    account: AccountId,
    request: Request,
) -> Option<(Option<ClientOrderId>, CommandKind)> {
    Some(match request {
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
        _ => return None,
    })
}
