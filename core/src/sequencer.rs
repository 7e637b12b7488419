//! The engine side of the gateway: [`EngineHandle`] is the sequencer (journals each command,
//! then submits it to a [`Shard`] under the same sequence number) and owns the output router
//! (a thread, or a task on the gateway's tokio runtime: [`RouterPlacement`]), which maps each
//! engine [`Output`] back to whoever it concerns (the submitter by sequence, every session of an
//! account by account, market-data subscribers by market, event taps with every command's
//! events).
//!
//! Durability: with a journal in `durable` mode the router holds a command's outputs until its
//! record is durable, so no acknowledgement, fill or market-data update leaves before that; in
//! `fast` mode outputs are released as the engine produces them. The engine may run ahead of
//! the disk; its effects may not.
//!
//! One mutex guards the routing state; it is held for one submit or one batch of outputs. Reports
//! reach sessions through bounded queues: a session whose queue is full is closed as a slow
//! consumer (its reports are never silently dropped while it stays open).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peregrine_hotpath::runtime::{Busy, Output, Outputs, RuntimeError, Shard};
use peregrine_hotpath::{
    AccountId, Actor, ClientOrderId, CommandKind, Engine, Envelope, Event, MarketId, OrderId,
    Price, Qty, Side, TimestampNs,
};
use peregrine_persist::{Journal, JournalError};
use tokio::sync::{mpsc, oneshot};

use peregrine_proto::frame::{Liquidity, MarketSeq, OrderState, RejectCode, Reply, SessionId};
use peregrine_proto::session::{OrderStatus, Report, SubmitError};

/// Reports queued for one session before it counts as a slow consumer.
pub const REPORT_QUEUE_CAPACITY: usize = 16_384;
/// Client order ids remembered per gateway for dedup of resends (oldest forgotten first).
pub const DEDUP_WINDOW_ORDERS: usize = 1 << 20;
/// Outputs routed per lock hold, so submitters are not starved.
const ROUTE_BATCH_ITEMS: usize = 256;
/// Longest the router waits for output or durability before re-checking its stop flag.
const ROUTER_PARK: Duration = Duration::from_millis(5);
/// Longest a query to the shard may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Taps (event stream subscribers) at most.
const TAPS_MAX: usize = 64;

/// Why the engine side could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The shard's outputs were already taken by someone else.
    #[error("the shard's outputs were already taken")]
    OutputsTaken,
    /// The shard did not answer.
    #[error("shard: {0}")]
    Runtime(#[from] RuntimeError),
    /// The router thread could not be spawned.
    #[error("could not spawn the router thread: {0}")]
    Spawn(std::io::Error),
    /// The journal and the engine disagree on where the log ends.
    #[error("the journal ends at sequence {journal} but the engine applied up to {engine}")]
    SeqMismatch {
        /// Last sequence appended to the journal.
        journal: u64,
        /// Last sequence applied by the engine.
        engine: u64,
    },
    /// Too many taps.
    #[error("at most {TAPS_MAX} event taps")]
    TooManyTaps,
    /// The journal already wakes someone else after each commit.
    #[error("the journal's durable waker is already taken")]
    JournalWakerTaken,
}

/// One command's outcome: every event it produced, released per the acknowledgement mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The command's sequence number.
    pub seq: u64,
    /// The command's timestamp (Unix nanoseconds, assigned by the sequencer).
    pub ts: TimestampNs,
    /// Its events, in order (a reject is one `Event::Rejected`).
    pub events: Vec<Event>,
}

impl Executed {
    /// The reject reason, if the engine rejected the command.
    pub fn rejected(&self) -> Option<peregrine_hotpath::RejectReason> {
        self.events.iter().find_map(|event| match event {
            Event::Rejected { reason } => Some(*reason),
            _ => None,
        })
    }
}

/// A stream of every command's [`Executed`], in sequence order, from the moment of the tap. A
/// tap that falls [`EngineHandle::tap`]'s capacity behind is closed (the receiver sees the end):
/// its consumer resynchronises instead of the router buffering without bound.
pub type EventTap = mpsc::Receiver<Arc<Executed>>;

/// Where the output router runs.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum RouterPlacement {
    /// On a thread of its own, sleeping on the shard's output queue and on the journal: works
    /// anywhere, at the cost of one more thread wake-up per reply (shard → router → session).
    #[default]
    Thread,
    /// As a task on this multi-threaded tokio runtime, woken by the shard and the journal
    /// writer directly: the sessions' own workers route the replies, one wake-up fewer and one
    /// thread fewer. Whoever then waits synchronously for an output must not be on a worker of
    /// a runtime that has no other worker free.
    Task(tokio::runtime::Handle),
}

/// The running router: joined (thread) or told to stop (task) on shutdown.
#[derive(Debug)]
enum RouterRun {
    Thread(JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

/// The sequencer and output router in front of one shard.
#[derive(Debug)]
pub struct EngineHandle {
    shard: Shard,
    journal: Option<Journal>,
    state: Arc<Mutex<RouteState>>,
    stop: Arc<AtomicBool>,
    /// Set when a journaled command could not reach the shard: from then on nothing is taken.
    failed: Arc<AtomicBool>,
    next_session: AtomicU64,
    router: Mutex<Option<RouterRun>>,
}

impl EngineHandle {
    /// Takes over `shard` (the gateway becomes its only submitter and its outputs' consumer) and
    /// starts the router thread, without a journal: commands are not persisted and outputs are
    /// released at once (benchmarks and tests of the gateway alone).
    pub fn start(shard: Shard) -> Result<Arc<EngineHandle>, EngineError> {
        EngineHandle::start_with_journal(shard, None)
    }

    /// As [`EngineHandle::start`], journaling every command in `journal` before the engine sees
    /// it; outputs follow the journal's acknowledgement mode. The journal must end where the
    /// shard's engine is (both come from the same recovery).
    pub fn start_with_journal(
        shard: Shard,
        journal: Option<Journal>,
    ) -> Result<Arc<EngineHandle>, EngineError> {
        EngineHandle::start_with_tracker(shard, journal, OrderTracker::new())
    }

    /// As [`EngineHandle::start_with_journal`], with order statuses already known (built from
    /// the commands recovery replayed), so the dedup of client order ids survives a restart.
    pub fn start_with_tracker(
        shard: Shard,
        journal: Option<Journal>,
        tracker: OrderTracker,
    ) -> Result<Arc<EngineHandle>, EngineError> {
        EngineHandle::start_placed(shard, journal, tracker, RouterPlacement::Thread)
    }

    /// As [`EngineHandle::start_with_tracker`], with the router where `placement` says.
    pub fn start_placed(
        mut shard: Shard,
        journal: Option<Journal>,
        tracker: OrderTracker,
        placement: RouterPlacement,
    ) -> Result<Arc<EngineHandle>, EngineError> {
        let applied_seq = shard.stats().last_seq.load(Ordering::Acquire);
        if let Some(journal) = &journal
            && journal.appended_seq() != applied_seq
        {
            return Err(EngineError::SeqMismatch {
                journal: journal.appended_seq(),
                engine: applied_seq,
            });
        }
        let outputs = shard.take_outputs().ok_or(EngineError::OutputsTaken)?;
        let books = shard.query(QUERY_TIMEOUT, |engine| {
            engine
                .market_ids()
                .into_iter()
                .map(|market| {
                    let depth = |side| engine.depth(market, side, usize::MAX);
                    (
                        market,
                        MarketBook::seeded(depth(Side::Buy), depth(Side::Sell)),
                    )
                })
                .collect::<HashMap<_, _>>()
        })?;
        let state = Arc::new(Mutex::new(RouteState {
            next_seq: applied_seq + 1,
            pending: HashMap::with_capacity(4_096),
            tracker,
            sessions: HashMap::new(),
            by_account: HashMap::new(),
            subscribers: HashMap::new(),
            books,
            collecting: None,
            taps: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let router = Router {
            outputs,
            state: state.clone(),
            stop: stop.clone(),
            journal: journal.clone(),
            held: VecDeque::with_capacity(4_096),
            journal_failure_logged: false,
        };
        let run = match placement {
            RouterPlacement::Thread => RouterRun::Thread(
                std::thread::Builder::new()
                    .name("peregrine-gw-router".into())
                    .spawn(move || router.run())
                    .map_err(EngineError::Spawn)?,
            ),
            RouterPlacement::Task(runtime) => {
                let router_wake = Arc::new(tokio::sync::Notify::new());
                // `notify_one` keeps a permit when the task is busy, so no wake is lost.
                let wake = Arc::clone(&router_wake);
                if router
                    .outputs
                    .set_waker(Box::new(move || wake.notify_one()))
                    .is_err()
                {
                    return Err(EngineError::OutputsTaken);
                }
                if let Some(journal) = &router.journal {
                    let wake = Arc::clone(&router_wake);
                    if journal
                        .set_durable_waker(Box::new(move || wake.notify_one()))
                        .is_err()
                    {
                        return Err(EngineError::JournalWakerTaken);
                    }
                }
                RouterRun::Task(runtime.spawn(router.run_task(router_wake)))
            }
        };
        Ok(Arc::new(EngineHandle {
            shard,
            journal,
            state,
            stop,
            failed: Arc::new(AtomicBool::new(false)),
            next_session: AtomicU64::new(1),
            router: Mutex::new(Some(run)),
        }))
    }

    /// A fresh session id.
    pub fn next_session_id(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    /// Routes `account`'s reports to `session` through `reports`.
    pub fn register(&self, session: SessionId, account: AccountId, reports: mpsc::Sender<Report>) {
        let mut state = self.lock();
        state.sessions.insert(session, Route { account, reports });
        state.by_account.entry(account).or_default().push(session);
    }

    /// Stops routing to `session` (its subscriptions end too).
    pub fn unregister(&self, session: SessionId) {
        self.lock().remove_session(session);
    }

    /// Sequences and submits `command` for `session`; see
    /// [`peregrine_proto::session::Action::Submit`].
    pub fn submit(
        &self,
        session: SessionId,
        actor: Actor,
        account: AccountId,
        new_order: Option<ClientOrderId>,
        command: CommandKind,
    ) -> Result<u64, SubmitError> {
        self.submit_for(
            Target::Session(session),
            actor,
            new_order.map(|id| (account, id)),
            command,
        )
    }

    /// Sequences and submits `command` on behalf of a caller without a session (the REST bridge,
    /// the control API); the receiver yields its [`Executed`] once it may be acknowledged.
    /// `new_order` (account and client order id) makes the order subject to the same duplicate
    /// check as a session's.
    pub fn execute(
        &self,
        actor: Actor,
        new_order: Option<(AccountId, ClientOrderId)>,
        command: CommandKind,
    ) -> Result<oneshot::Receiver<Executed>, SubmitError> {
        let (sender, receiver) = oneshot::channel();
        self.submit_for(Target::Waiter(sender), actor, new_order, command)?;
        Ok(receiver)
    }

    /// Subscribes to every command's events from now on, in sequence order and released per the
    /// acknowledgement mode, with `capacity` commands of slack (see [`EventTap`]).
    pub fn tap(&self, capacity: usize) -> Result<EventTap, EngineError> {
        let mut state = self.lock();
        state.taps.retain(|tap| !tap.is_closed());
        if state.taps.len() >= TAPS_MAX {
            return Err(EngineError::TooManyTaps);
        }
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        state.taps.push(sender);
        Ok(receiver)
    }

    /// Runs `query` on the engine between two commands. Note that the engine may be ahead of
    /// what has been released in durable mode: answers derived from it are not acknowledgements.
    pub fn query<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Result<T, RuntimeError> {
        self.shard.query(QUERY_TIMEOUT, query)
    }

    fn submit_for(
        &self,
        target: Target,
        actor: Actor,
        new_order: Option<(AccountId, ClientOrderId)>,
        command: CommandKind,
    ) -> Result<u64, SubmitError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(SubmitError::Unavailable);
        }
        let mut state = self.lock();
        if let Some((account, client_order_id)) = new_order
            && let Some(record) = state.tracker.orders.get(account, client_order_id)
        {
            return Err(SubmitError::Duplicate(*record));
        }
        let ts = TimestampNs(now_unix_ns());
        let command = Envelope {
            ts,
            actor,
            kind: command,
        };
        let seq = state.next_seq;
        match &self.journal {
            None => match self.shard.submit(seq, command) {
                Ok(()) => {}
                Err(Busy(_)) => return Err(SubmitError::Busy),
            },
            Some(journal) => {
                // Checked before journaling: once in the journal, the command must reach the
                // engine, so a full engine queue must refuse it before that.
                if self.shard.input_full() {
                    return Err(SubmitError::Busy);
                }
                match journal.append(&command) {
                    Ok(journaled) => {
                        assert_eq!(journaled, seq, "the journal and the sequencer disagree");
                    }
                    Err(JournalError::Busy { .. }) => return Err(SubmitError::Busy),
                    Err(error) => {
                        tracing::error!(%error, "journal append failed: refusing commands");
                        self.failed.store(true, Ordering::Release);
                        return Err(SubmitError::Unavailable);
                    }
                }
                // Cannot be `Busy`: this handle, under the state lock, is the command queue's
                // only producer and found room above; queries have a queue of their own. Only a
                // shard that is gone refuses it.
                if self.shard.submit(seq, command).is_err() {
                    // Journaled but not applied: a restart replays it. Until then nothing more.
                    tracing::error!(seq, "journaled command could not reach the engine");
                    self.failed.store(true, Ordering::Release);
                    return Err(SubmitError::Unavailable);
                }
            }
        }
        state.next_seq += 1;
        state.pending.insert(
            seq,
            Pending {
                target,
                ts,
                new_order,
            },
        );
        if let Some((account, client_order_id)) = new_order {
            state.tracker.orders.insert(
                account,
                client_order_id,
                OrderStatus {
                    seq,
                    state: OrderState::Pending,
                    ..OrderStatus::UNKNOWN
                },
            );
        }
        Ok(seq)
    }

    /// What the gateway knows of `account`'s order `client_order_id`.
    pub fn status(&self, account: AccountId, client_order_id: ClientOrderId) -> OrderStatus {
        self.lock()
            .tracker
            .orders
            .get(account, client_order_id)
            .copied()
            .unwrap_or(OrderStatus::UNKNOWN)
    }

    /// Subscribes `session` to `market`: queues a snapshot of the book now, then deltas follow.
    pub fn subscribe(&self, session: SessionId, market: MarketId) -> Result<(), RejectCode> {
        let mut state = self.lock();
        let Some(book) = state.books.get(&market) else {
            return Err(RejectCode::UNKNOWN_MARKET);
        };
        let mut frames = Vec::with_capacity(1 + book.bids.len() + book.asks.len());
        frames.push(Reply::Snapshot {
            market,
            market_seq: book.seq,
            bids: u32::try_from(book.bids.len()).unwrap_or(u32::MAX),
            asks: u32::try_from(book.asks.len()).unwrap_or(u32::MAX),
        });
        for (side, levels) in [(Side::Buy, &book.bids), (Side::Sell, &book.asks)] {
            // Best first on both sides.
            let ordered: Box<dyn Iterator<Item = (&Price, &Qty)>> = match side {
                Side::Buy => Box::new(levels.iter().rev()),
                Side::Sell => Box::new(levels.iter()),
            };
            frames.extend(ordered.map(|(price, qty)| Reply::BookLevel {
                market,
                market_seq: book.seq,
                side,
                price: *price,
                qty: *qty,
                snapshot: true,
            }));
        }
        let subscribers = state.subscribers.entry(market).or_default();
        if !subscribers.contains(&session) {
            subscribers.push(session);
        }
        for frame in frames {
            state.deliver(session, Report::Market(frame));
        }
        Ok(())
    }

    /// Ends `session`'s subscription to `market`.
    pub fn unsubscribe(&self, session: SessionId, market: MarketId) {
        if let Some(subscribers) = self.lock().subscribers.get_mut(&market) {
            subscribers.retain(|s| *s != session);
        }
    }

    /// Whether the handle stopped taking commands (journal failure or a stuck shard).
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The journal commands go to, if any.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// The shard (for stats and queries).
    pub fn shard(&self) -> &Shard {
        &self.shard
    }

    /// Closes every session and stops the router.
    pub fn shutdown(&self) {
        {
            let mut state = self.lock();
            let sessions: Vec<SessionId> = state.sessions.keys().copied().collect();
            for session in sessions {
                state.deliver(session, Report::Close(RejectCode::SHUTTING_DOWN));
            }
        }
        self.stop.store(true, Ordering::Release);
        let run = self
            .router
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let panicked = match run {
            Some(RouterRun::Thread(thread)) => thread.join().is_err(),
            // Not awaited: shutdown may run on a worker of the task's runtime. Aborting takes
            // effect at the task's next wait, never while it holds the state lock.
            Some(RouterRun::Task(task)) => {
                task.abort();
                false
            }
            None => false,
        };
        if panicked {
            tracing::error!("the gateway router thread panicked");
        }
    }

    fn lock(&self) -> MutexGuard<'_, RouteState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[derive(Debug)]
struct Route {
    account: AccountId,
    reports: mpsc::Sender<Report>,
}

#[derive(Debug)]
struct Pending {
    target: Target,
    ts: TimestampNs,
    new_order: Option<(AccountId, ClientOrderId)>,
}

/// Who hears of a command's outcome.
#[derive(Debug)]
enum Target {
    /// A QUIC session: reports by sequence (reject, done).
    Session(SessionId),
    /// A caller awaiting every event of the command.
    Waiter(oneshot::Sender<Executed>),
}

/// Order statuses by client order id (the dedup window) and the index of live orders, kept
/// from engine events. Built from the commands recovery replays before order entry opens, so a
/// client resending an order after a restart gets the original's status, not a second order.
#[derive(Debug)]
pub struct OrderTracker {
    orders: OrderTable,
    /// Live orders: exchange id to owner and client id (Trade events carry only exchange ids).
    live: HashMap<OrderId, (AccountId, ClientOrderId)>,
}

impl Default for OrderTracker {
    fn default() -> Self {
        OrderTracker::new()
    }
}

impl OrderTracker {
    /// An empty tracker holding at most [`DEDUP_WINDOW_ORDERS`] statuses.
    pub fn new() -> OrderTracker {
        OrderTracker {
            orders: OrderTable::new(DEDUP_WINDOW_ORDERS),
            live: HashMap::with_capacity(4_096),
        }
    }

    /// Feeds one applied command and its events, in sequence order.
    pub fn observe(&mut self, seq: u64, command: &Envelope, events: &[Event]) {
        let new_order = match &command.kind {
            CommandKind::NewOrder(order) => Some((order.account, order.client_order_id)),
            _ => None,
        };
        if let Some((account, client_order_id)) = new_order {
            self.orders.insert(
                account,
                client_order_id,
                OrderStatus {
                    seq,
                    state: OrderState::Pending,
                    ..OrderStatus::UNKNOWN
                },
            );
        }
        for event in events {
            self.track(seq, event, new_order);
            self.untrack(event);
        }
    }

    /// What is known of `account`'s order `client_order_id`.
    pub fn status(&self, account: AccountId, client_order_id: ClientOrderId) -> OrderStatus {
        self.orders
            .get(account, client_order_id)
            .copied()
            .unwrap_or(OrderStatus::UNKNOWN)
    }

    /// Keeps the order table (dedup and status by client order id) and the live-order index
    /// current with one event. Used for routed events and, at start, for the events recovery
    /// replays, so both paths agree. `new_order` is the command's own (account, client id).
    fn track(&mut self, seq: u64, event: &Event, new_order: Option<(AccountId, ClientOrderId)>) {
        match *event {
            Event::Rejected { reason } => {
                if let Some((account, id)) = new_order
                    && let Some(record) = self.orders.get_mut(account, id)
                {
                    record.state = OrderState::Rejected;
                    record.code = RejectCode::engine(reason);
                }
            }
            Event::OrderAccepted {
                order,
                account,
                client_order_id,
                ..
            } => {
                self.live.insert(order, (account, client_order_id));
                match self.orders.get_mut(account, client_order_id) {
                    Some(record) => {
                        record.order = order;
                        record.state = OrderState::Live;
                    }
                    None => self.orders.insert(
                        account,
                        client_order_id,
                        OrderStatus {
                            order,
                            seq,
                            state: OrderState::Live,
                            ..OrderStatus::UNKNOWN
                        },
                    ),
                }
            }
            Event::Trade(ref trade) => {
                for (order, account) in [
                    (trade.maker_order, trade.maker_account),
                    (trade.taker_order, trade.taker_account),
                ] {
                    if let Some(&(_, client_order_id)) = self.live.get(&order)
                        && let Some(record) = self.orders.get_mut(account, client_order_id)
                    {
                        record.filled.0 = record.filled.0.saturating_add(trade.qty.0);
                    }
                }
            }
            Event::OrderFilled {
                account,
                client_order_id,
                ..
            }
            | Event::OrderCancelled {
                account,
                client_order_id,
                ..
            } => {
                if let Some(record) = self.orders.get_mut(account, client_order_id) {
                    record.state = if matches!(event, Event::OrderFilled { .. }) {
                        OrderState::Filled
                    } else {
                        OrderState::Cancelled
                    };
                }
            }
            _ => {}
        }
    }

    /// Forgets a finished order's exchange id once its command's events are all routed.
    fn untrack(&mut self, event: &Event) {
        if let Event::OrderFilled { order, .. } | Event::OrderCancelled { order, .. } = *event {
            self.live.remove(&order);
        }
    }
}

/// Status of recent orders by `(account, client order id)`, bounded: the oldest is forgotten.
#[derive(Debug)]
struct OrderTable {
    records: HashMap<(AccountId, ClientOrderId), OrderStatus>,
    age: VecDeque<(AccountId, ClientOrderId)>,
    capacity: usize,
}

impl OrderTable {
    fn new(capacity: usize) -> Self {
        assert!(capacity > 0);
        OrderTable {
            records: HashMap::with_capacity(capacity.min(1 << 16)),
            age: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
        }
    }

    fn get(&self, account: AccountId, id: ClientOrderId) -> Option<&OrderStatus> {
        self.records.get(&(account, id))
    }

    fn get_mut(&mut self, account: AccountId, id: ClientOrderId) -> Option<&mut OrderStatus> {
        self.records.get_mut(&(account, id))
    }

    fn insert(&mut self, account: AccountId, id: ClientOrderId, status: OrderStatus) {
        if self.records.insert((account, id), status).is_none() {
            self.age.push_back((account, id));
        }
        while self.age.len() > self.capacity {
            if let Some(oldest) = self.age.pop_front() {
                self.records.remove(&oldest);
            }
        }
        debug_assert_eq!(self.records.len(), self.age.len());
    }
}

/// A market's aggregated book as the router tracks it from events, for market data.
#[derive(Debug, Default)]
struct MarketBook {
    seq: MarketSeq,
    bids: BTreeMap<Price, Qty>,
    asks: BTreeMap<Price, Qty>,
}

impl MarketBook {
    fn seeded(bids: Vec<(Price, Qty)>, asks: Vec<(Price, Qty)>) -> Self {
        MarketBook {
            seq: MarketSeq(0),
            bids: bids.into_iter().collect(),
            asks: asks.into_iter().collect(),
        }
    }

    /// Adds `delta` (may be negative) at a level; returns the level's new total.
    fn change(&mut self, side: Side, price: Price, add: Qty, remove: Qty) -> Qty {
        let levels = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = levels.entry(price).or_default();
        level.0 = level.0.saturating_add(add.0).saturating_sub(remove.0);
        let total = *level;
        if total.0 == 0 {
            levels.remove(&price);
        }
        self.seq.0 += 1;
        total
    }
}

#[derive(Debug)]
struct RouteState {
    next_seq: u64,
    pending: HashMap<u64, Pending>,
    tracker: OrderTracker,
    sessions: HashMap<SessionId, Route>,
    by_account: HashMap<AccountId, Vec<SessionId>>,
    subscribers: HashMap<MarketId, Vec<SessionId>>,
    books: HashMap<MarketId, MarketBook>,
    /// The events of the command being routed, collected while a waiter or a tap wants them.
    collecting: Option<Executed>,
    taps: Vec<mpsc::Sender<Arc<Executed>>>,
}

impl RouteState {
    fn remove_session(&mut self, session: SessionId) {
        if let Some(route) = self.sessions.remove(&session)
            && let Some(list) = self.by_account.get_mut(&route.account)
        {
            list.retain(|s| *s != session);
            if list.is_empty() {
                self.by_account.remove(&route.account);
            }
        }
        for subscribers in self.subscribers.values_mut() {
            subscribers.retain(|s| *s != session);
        }
    }

    /// Queues a report for one session; a full or closed queue ends the session's routing (the
    /// session task sees its queue close and logs the client out as a slow consumer).
    fn deliver(&mut self, session: SessionId, report: Report) {
        let Some(route) = self.sessions.get(&session) else {
            return;
        };
        if let Err(error) = route.reports.try_send(report) {
            if matches!(error, mpsc::error::TrySendError::Full(_)) {
                tracing::warn!(session = session.0, "slow consumer: closing the session");
            }
            self.remove_session(session);
        }
    }

    fn deliver_account(&mut self, account: AccountId, report: Report) {
        let Some(sessions) = self.by_account.get(&account) else {
            return;
        };
        // Few sessions per account; the copy keeps `deliver` free to remove one.
        let sessions: Vec<SessionId> = sessions.clone();
        for session in sessions {
            self.deliver(session, report.clone());
        }
    }

    fn deliver_market(&mut self, market: MarketId, reply: Reply) {
        let Some(sessions) = self.subscribers.get(&market) else {
            return;
        };
        let sessions: Vec<SessionId> = sessions.clone();
        for session in sessions {
            self.deliver(session, Report::Market(reply.clone()));
        }
    }

    fn level(&mut self, market: MarketId, side: Side, price: Price, add: Qty, remove: Qty) {
        let book = self.books.entry(market).or_default();
        let qty = book.change(side, price, add, remove);
        let market_seq = book.seq;
        self.deliver_market(
            market,
            Reply::BookLevel {
                market,
                market_seq,
                side,
                price,
                qty,
                snapshot: false,
            },
        );
    }

    fn route(&mut self, output: Output) {
        match output {
            Output::Event { seq, event } => {
                let wanted = !self.taps.is_empty()
                    || matches!(
                        self.pending.get(&seq),
                        Some(Pending {
                            target: Target::Waiter(_),
                            ..
                        })
                    );
                if wanted {
                    let ts = self.pending.get(&seq).map_or(TimestampNs(0), |p| p.ts);
                    let executed = self.collecting.get_or_insert_with(|| Executed {
                        seq,
                        ts,
                        events: Vec::with_capacity(8),
                    });
                    debug_assert_eq!(executed.seq, seq, "events of two commands interleaved");
                    executed.events.push(event.clone());
                }
                let new_order = self.pending.get(&seq).and_then(|p| p.new_order);
                self.tracker.track(seq, &event, new_order);
                self.tracker.untrack(&event);
                self.route_event(seq, event);
            }
            Output::Done { seq } => {
                let executed = match self.collecting.take() {
                    Some(executed) if executed.seq == seq => executed,
                    _ => Executed {
                        seq,
                        ts: self.pending.get(&seq).map_or(TimestampNs(0), |p| p.ts),
                        events: Vec::new(),
                    },
                };
                let waiter = match self.pending.remove(&seq).map(|pending| pending.target) {
                    Some(Target::Session(session)) => {
                        self.deliver(session, Report::Done { seq });
                        None
                    }
                    Some(Target::Waiter(waiter)) => Some(waiter),
                    None => None,
                };
                // A caller that gave up waiting is no error: the command stands. The events
                // are copied only when a tap needs them too.
                if let Some(waiter) = waiter {
                    let _ = waiter.send(if self.taps.is_empty() {
                        executed
                    } else {
                        let copy = executed.clone();
                        self.publish(seq, executed);
                        copy
                    });
                } else if !self.taps.is_empty() {
                    self.publish(seq, executed);
                }
            }
            _ => {}
        }
    }

    /// Hands one command's events to every tap; a tap that is full is closed (its consumer
    /// resynchronises) rather than buffered without bound.
    fn publish(&mut self, seq: u64, executed: Executed) {
        let shared = Arc::new(executed);
        self.taps
            .retain(|tap| match tap.try_send(Arc::clone(&shared)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(seq, "event tap fell behind: closing it");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    fn route_event(&mut self, seq: u64, event: Event) {
        match event {
            Event::Rejected { reason } => {
                let Some(pending) = self.pending.get(&seq) else {
                    return;
                };
                let session = match pending.target {
                    Target::Session(session) => Some(session),
                    Target::Waiter(_) => None,
                };
                let code = RejectCode::engine(reason);
                if let Some(session) = session {
                    self.deliver(session, Report::Rejected { seq, code });
                }
            }
            Event::OrderAccepted {
                order,
                account,
                client_order_id,
                ..
            } => {
                self.deliver_account(
                    account,
                    Report::Accepted {
                        seq,
                        order,
                        client_order_id,
                    },
                );
            }
            Event::OrderRested {
                market,
                side,
                price,
                qty,
                ..
            } => self.level(market, side, price, qty, Qty(0)),
            Event::Trade(trade) => {
                let maker_side = trade.taker_side.opposite();
                for (order, account, side, liquidity, fee) in [
                    (
                        trade.maker_order,
                        trade.maker_account,
                        maker_side,
                        Liquidity::Maker,
                        trade.maker_fee,
                    ),
                    (
                        trade.taker_order,
                        trade.taker_account,
                        trade.taker_side,
                        Liquidity::Taker,
                        trade.taker_fee,
                    ),
                ] {
                    let client_order_id = self
                        .tracker
                        .live
                        .get(&order)
                        .map_or(ClientOrderId(0), |(_, id)| *id);
                    self.deliver_account(
                        account,
                        Report::Fill(peregrine_proto::frame::Fill {
                            seq,
                            order,
                            client_order_id,
                            trade: trade.trade,
                            market: trade.market,
                            side,
                            liquidity,
                            price: trade.price,
                            qty: trade.qty,
                            fee: fee.0,
                        }),
                    );
                }
                let book = self.books.entry(trade.market).or_default();
                book.seq.0 += 1;
                let market_seq = book.seq;
                self.deliver_market(
                    trade.market,
                    Reply::Trade {
                        market: trade.market,
                        market_seq,
                        trade: trade.trade,
                        price: trade.price,
                        qty: trade.qty,
                        taker_side: trade.taker_side,
                    },
                );
                self.level(trade.market, maker_side, trade.price, Qty(0), trade.qty);
            }

            Event::OrderCancelled {
                order,
                account,
                client_order_id,
                market,
                side,
                price,
                remaining,
                reason,
            } => {
                self.deliver_account(
                    account,
                    Report::Cancelled(peregrine_proto::frame::Cancelled {
                        seq,
                        order,
                        client_order_id,
                        remaining,
                        reason,
                    }),
                );
                // Price 0: it never rested, so the book did not hold it.
                if price.0 != 0 && remaining.0 != 0 {
                    self.level(market, side, price, Qty(0), remaining);
                }
            }
            Event::OrderReplaced {
                order,
                account,
                market,
                side,
                old_price,
                old_qty,
                price,
                qty,
                priority_kept,
            } => {
                let client_order_id = self
                    .tracker
                    .live
                    .get(&order)
                    .map_or(ClientOrderId(0), |(_, id)| *id);
                self.deliver_account(
                    account,
                    Report::Replaced(peregrine_proto::frame::Replaced {
                        seq,
                        order,
                        client_order_id,
                        price,
                        qty,
                        priority_kept,
                    }),
                );
                self.level(market, side, old_price, Qty(0), old_qty);
                self.level(market, side, price, qty, Qty(0));
            }
            Event::MassCancelled { account, count } => {
                self.deliver_account(account, Report::MassCancelled { seq, count });
            }
            Event::MarketAdded { market } => {
                self.books.entry(market).or_default();
            }
            _ => {}
        }
    }
}

struct Router {
    outputs: Outputs,
    state: Arc<Mutex<RouteState>>,
    stop: Arc<AtomicBool>,
    journal: Option<Journal>,
    /// Outputs taken from the shard but not yet releasable, oldest first. Bounded by the
    /// journal: the engine only sees appended commands, and these wait for the writer's next
    /// group commit (or, if the writer failed, nothing more is appended).
    held: VecDeque<Output>,
    journal_failure_logged: bool,
}

impl Router {
    /// The router thread: routes what is releasable, sleeping on the shard's output queue when
    /// it has nothing and on the journal when the oldest output is not durable yet.
    fn run(mut self) {
        // Bounded by the stop flag, re-checked at least every `ROUTER_PARK`.
        while !self.stop.load(Ordering::Acquire) {
            if self.held.is_empty() {
                match self.outputs.next_deadline(Instant::now() + ROUTER_PARK) {
                    Some(output) => self.held.push_back(output),
                    None => continue,
                }
            }
            self.take_outputs();
            let Some(oldest_seq) = self.held.front().map(output_seq) else {
                continue;
            };
            let mut releasable_seq = self.releasable_seq();
            if oldest_seq > releasable_seq {
                releasable_seq = self.wait_releasable(oldest_seq);
            }
            self.route_releasable(releasable_seq);
        }
    }

    /// The router task: the same steps, never blocking; woken by the shard after each output
    /// batch and by the journal writer after each commit (see [`RouterPlacement::Task`]).
    async fn run_task(mut self, wake: Arc<tokio::sync::Notify>) {
        // Bounded by the stop flag, re-checked at least every `ROUTER_PARK`.
        while !self.stop.load(Ordering::Acquire) {
            let taken = self.take_outputs();
            let releasable_seq = self.releasable_seq();
            let routed = self.route_releasable(releasable_seq);
            if let Some(journal) = &self.journal
                && let Some(error) = journal.failed()
                && !self.journal_failure_logged
            {
                tracing::error!(%error, "journal failed: holding every later output");
                self.journal_failure_logged = true;
            }
            if taken + routed == 0 {
                // The timeout only bounds how late the stop flag is seen; wakes carry the work.
                let _ = tokio::time::timeout(ROUTER_PARK, wake.notified()).await;
            } else {
                // Progress never awaits anything: without this, a steady trickle of outputs
                // would keep the task on its worker and starve the sessions it delivers to.
                // Yields once tokio's cooperative budget is spent, not after every pass.
                tokio::task::consume_budget().await;
            }
        }
    }

    /// Moves up to a batch of ready outputs from the shard into `held`; returns how many.
    fn take_outputs(&mut self) -> usize {
        let mut taken = 0;
        while taken < ROUTE_BATCH_ITEMS {
            match self.outputs.try_next() {
                Some(output) => self.held.push_back(output),
                None => break,
            }
            taken += 1;
        }
        taken
    }

    /// Routes up to a batch of held outputs with sequences up to `releasable_seq`, oldest
    /// first, under one hold of the state lock; returns how many.
    fn route_releasable(&mut self, releasable_seq: u64) -> usize {
        if self
            .held
            .front()
            .is_none_or(|output| output_seq(output) > releasable_seq)
        {
            return 0;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut routed = 0;
        while routed < ROUTE_BATCH_ITEMS {
            match self.held.front().map(output_seq) {
                Some(seq) if seq <= releasable_seq => {}
                _ => break,
            }
            if let Some(output) = self.held.pop_front() {
                state.route(output);
            }
            routed += 1;
        }
        routed
    }

    /// The highest sequence whose outputs may leave now.
    fn releasable_seq(&self) -> u64 {
        match &self.journal {
            Some(journal) if journal.ack_mode() == peregrine_persist::AckMode::Durable => {
                journal.durable_seq()
            }
            _ => u64::MAX,
        }
    }

    /// Waits (bounded by `ROUTER_PARK`) for `seq` to become durable; returns the releasable
    /// sequence then. A failed journal releases nothing more: what is not durable was never
    /// acknowledged, and the operator sees the failure on `/health/ready`.
    fn wait_releasable(&mut self, seq: u64) -> u64 {
        let Some(journal) = &self.journal else {
            return u64::MAX;
        };
        match journal.wait_durable(seq, ROUTER_PARK) {
            Ok(durable) => durable,
            Err(error) => {
                if !self.journal_failure_logged {
                    tracing::error!(%error, "journal failed: holding every later output");
                    self.journal_failure_logged = true;
                }
                std::thread::sleep(ROUTER_PARK);
                journal.durable_seq()
            }
        }
    }
}

/// The command sequence an output belongs to (0, released at once, for kinds without one).
fn output_seq(output: &Output) -> u64 {
    match output {
        Output::Event { seq, .. } | Output::Done { seq } => *seq,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_table_forgets_the_oldest_beyond_its_capacity() {
        let mut table = OrderTable::new(2);
        for id in 1..=3 {
            table.insert(AccountId(1), ClientOrderId(id), OrderStatus::UNKNOWN);
        }
        assert!(table.get(AccountId(1), ClientOrderId(1)).is_none());
        assert!(table.get(AccountId(1), ClientOrderId(3)).is_some());
        // Re-inserting a known key does not age anything out.
        table.insert(AccountId(1), ClientOrderId(3), OrderStatus::UNKNOWN);
        assert!(table.get(AccountId(1), ClientOrderId(2)).is_some());
    }

    #[test]
    fn market_book_levels_add_remove_and_sequence() {
        let mut book = MarketBook::seeded(vec![(Price(10), Qty(5))], vec![]);
        assert_eq!(book.change(Side::Buy, Price(10), Qty(2), Qty(0)), Qty(7));
        assert_eq!(book.change(Side::Buy, Price(10), Qty(0), Qty(7)), Qty(0));
        assert!(book.bids.is_empty());
        // Removing more than is there saturates instead of wrapping.
        assert_eq!(book.change(Side::Sell, Price(11), Qty(0), Qty(3)), Qty(0));
        assert_eq!(book.seq, MarketSeq(3));
    }
}
