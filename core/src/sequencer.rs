//! The sequencer: [`EngineHandle`] gives each command the next sequence number, journals it,
//! then hands it to the hot-path [`Shard`] under the same number, all under one lock, and
//! never waits: whatever is full is a [`SubmitError::Busy`] returned at once.
//!
//! Why it cannot get stuck: the handle is the only producer of the shard's command queue (the
//! shard is not reachable through it, and queries have a queue of their own), so room found
//! under the lock before journaling is still there after it. A journaled command always
//! reaches the engine; only a shard that is gone refuses it, and then the handle stops taking
//! commands ([`EngineHandle::is_failed`]) until a restart replays the journal.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peregrine_hotpath::runtime::{RuntimeError, Shard, ShardStats};
use peregrine_hotpath::{
    AccountId, ClientOrderId, CommandKind, Engine, Envelope, MarketId, TimestampNs,
};
use peregrine_persist::{Journal, JournalError};
use peregrine_views::{OrderStatus, Views};
use tokio::sync::oneshot;

use crate::fanout::{Pending, RouteState};
use crate::request::{Request, SubmitError, Ticket};
use crate::router::{Router, RouterPlacement, RouterRun};
use crate::subscriptions::{CloseReason, Interest, SubscribeError, Subscription, SubscriptionId};

/// Longest a blocking query ([`EngineHandle::query`]) may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the core could not start.
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
    /// The journal already wakes someone else after each commit.
    #[error("the journal's durable waker is already taken")]
    JournalWakerTaken,
}

/// Why a query did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The shard's query queue is full: retry later.
    #[error("the engine is busy")]
    Busy,
    /// The shard is gone (stopped or panicked), or did not answer in time.
    #[error("the engine is not running")]
    Unavailable,
}

/// The sequencer and output router in front of one shard.
#[derive(Debug)]
pub struct EngineHandle {
    shard: Shard,
    journal: Option<Journal>,
    state: Arc<Mutex<RouteState>>,
    stop: Arc<AtomicBool>,
    /// Set when a journaled command could not reach the shard: from then on nothing is taken.
    failed: AtomicBool,
    router: Mutex<Option<RouterRun>>,
}

impl EngineHandle {
    /// Takes over `shard` (the handle becomes its only submitter and its outputs' consumer)
    /// and starts the router thread, without a journal: commands are not persisted and
    /// outputs are released at once (benchmarks and tests of the edges alone).
    pub fn start(shard: Shard) -> Result<Arc<EngineHandle>, EngineError> {
        EngineHandle::start_placed(shard, None, Views::default(), RouterPlacement::Thread)
    }

    /// Takes over `shard`, journaling every command in `journal` (if any) before the engine
    /// sees it; outputs follow the journal's acknowledgement mode. The journal must end where
    /// the shard's engine is (both come from the same recovery), and `views` holds the order
    /// records recovery replayed ([`Views::observe`]), so the dedup of client order ids
    /// survives a restart; books and balances are seeded here from the engine.
    pub fn start_placed(
        mut shard: Shard,
        journal: Option<Journal>,
        mut views: Views,
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
        let views = shard.query(QUERY_TIMEOUT, move |engine| {
            views.seed(engine, applied_seq);
            views
        })?;
        let state = Arc::new(Mutex::new(RouteState::new(applied_seq + 1, views)));
        let stop = Arc::new(AtomicBool::new(false));
        let run = Router::start(
            outputs,
            Arc::clone(&state),
            Arc::clone(&stop),
            journal.clone(),
            placement,
        )?;
        Ok(Arc::new(EngineHandle {
            shard,
            journal,
            state,
            stop,
            failed: AtomicBool::new(false),
            router: Mutex::new(Some(run)),
        }))
    }

    /// Sequences `request`: journals it (if there is a journal) and hands it to the engine.
    /// Never waits; the [`Ticket`] resolves to the command's outcome once it may be
    /// acknowledged. `Busy` when a queue is full, `Duplicate` when the request's new order
    /// reuses a known client order id, `Unavailable` after a failure or shutdown.
    pub fn submit(&self, request: Request) -> Result<Ticket, SubmitError> {
        if self.failed.load(Ordering::Acquire) || self.stop.load(Ordering::Acquire) {
            return Err(SubmitError::Unavailable);
        }
        let mut state = self.lock();
        if let Some((account, client_order_id)) = request.new_order
            && let Some(status) = state.views.orders().status(account, client_order_id)
        {
            return Err(SubmitError::Duplicate(status));
        }
        let seq = state.next_seq;
        let ts = TimestampNs(now_unix_ns());
        // Kept for the views: the order's terms are in the command, not in its events.
        let new_order = match &request.kind {
            CommandKind::NewOrder(order) => Some(order.clone()),
            _ => None,
        };
        let command = Envelope {
            ts,
            actor: request.actor,
            kind: request.kind,
        };
        self.enqueue(seq, command)?;
        state.next_seq += 1;
        let (sender, receiver) = oneshot::channel();
        let pending = Pending {
            ticket: sender,
            reply_to: request.reply_to,
            ts,
        };
        let previous = state.pending.insert(seq, pending);
        debug_assert!(previous.is_none(), "sequence {seq} given twice");
        if let Some(order) = &new_order {
            state.sequenced(seq, ts, order);
        }
        Ok(Ticket::new(seq, receiver))
    }

    /// Journals `command` as `seq` (if there is a journal), then queues it on the shard. The
    /// caller holds the state lock: that makes this handle the command queue's only producer.
    fn enqueue(&self, seq: u64, command: Envelope) -> Result<(), SubmitError> {
        let Some(journal) = &self.journal else {
            return self
                .shard
                .submit(seq, command)
                .map_err(|_| SubmitError::Busy);
        };
        // Checked before journaling: once in the journal, the command must reach the engine.
        if self.shard.input_full() {
            self.shard
                .stats()
                .busy_total
                .fetch_add(1, Ordering::Relaxed);
            return Err(SubmitError::Busy);
        }
        match journal.append(&command) {
            Ok(journaled) => assert_eq!(journaled, seq, "the journal and the sequencer disagree"),
            Err(JournalError::Busy { .. }) => return Err(SubmitError::Busy),
            Err(error) => {
                tracing::error!(%error, "journal append failed: refusing commands");
                self.failed.store(true, Ordering::Release);
                return Err(SubmitError::Unavailable);
            }
        }
        // Cannot be `Busy`: room was found above and nobody else adds commands. Only a shard
        // that is gone refuses it; the journal then holds a command the engine lacks, which a
        // restart replays. Until then nothing more is taken.
        if self.shard.submit(seq, command).is_err() {
            tracing::error!(seq, "journaled command could not reach the engine");
            self.failed.store(true, Ordering::Release);
            return Err(SubmitError::Unavailable);
        }
        Ok(())
    }

    /// Opens a subscription to `interest` with room for `capacity` notices (see
    /// [`Subscription`] for what happens to one that falls behind).
    pub fn subscribe(
        &self,
        interest: Interest,
        capacity: usize,
    ) -> Result<Subscription, SubscribeError> {
        if self.stop.load(Ordering::Acquire) {
            return Err(SubscribeError::Unavailable);
        }
        self.lock().subscribers.open(interest, capacity)
    }

    /// Ends `subscription` (its subscriber sees [`CloseReason::Unsubscribed`]).
    pub fn unsubscribe(&self, subscription: SubscriptionId) {
        self.lock()
            .subscribers
            .close(subscription, CloseReason::Unsubscribed);
    }

    /// Has `subscription` follow `market`: a snapshot of the book is queued now, deltas and
    /// trades follow in order.
    pub fn follow_market(
        &self,
        subscription: SubscriptionId,
        market: MarketId,
    ) -> Result<(), SubscribeError> {
        let mut state = self.lock();
        if !state.subscribers.contains(subscription) {
            return Err(SubscribeError::UnknownSubscription);
        }
        let Some(book) = state.views.book(market) else {
            return Err(SubscribeError::UnknownMarket);
        };
        let snapshot = crate::notice::book_snapshot(market, book);
        state.subscribers.follow(subscription, market);
        for notice in snapshot {
            state
                .subscribers
                .deliver(subscription, crate::Notice::Market(notice));
        }
        Ok(())
    }

    /// Stops `subscription` following `market`.
    pub fn unfollow_market(&self, subscription: SubscriptionId, market: MarketId) {
        self.lock().subscribers.unfollow(subscription, market);
    }

    /// What is known of `account`'s order `client_order_id` (None: never seen, or forgotten).
    pub fn status(
        &self,
        account: AccountId,
        client_order_id: ClientOrderId,
    ) -> Option<OrderStatus> {
        self.lock().views.orders().status(account, client_order_id)
    }

    /// Reads the views (books, orders, balances) as released so far: in `durable` mode only
    /// durable commands show. Runs `read` under the routing lock, so it must be short and
    /// never wait; it never touches the matching thread.
    pub fn read<T>(&self, read: impl FnOnce(&Views) -> T) -> T {
        read(&self.lock().views)
    }

    /// Asks for the client-order-id window's image at `seq` (cheap: call it on the engine
    /// thread right after the engine applied `seq`, as a snapshot is taken). The answer comes
    /// once the views reach `seq`, or by [`EngineHandle::capture_window_now`]; the sender is
    /// dropped if the views pass `seq` first.
    pub fn request_window(&self, seq: u64) -> oneshot::Receiver<Vec<u8>> {
        let (sender, receiver) = oneshot::channel();
        self.lock().request_window(seq, sender);
        receiver
    }

    /// Answers a pending window request now if the views are at its sequence (when the router
    /// is idle no next command would): serialises on the calling thread, under the lock.
    pub fn capture_window_now(&self) {
        self.lock().capture_window_if_due();
    }

    /// Opens a subscription and reads the views at the same point: the subscription hears
    /// exactly what comes after what `read` saw (a feed seeds from it without a gap or overlap).
    pub fn subscribe_seeded<T>(
        &self,
        interest: Interest,
        capacity: usize,
        read: impl FnOnce(&Views) -> T,
    ) -> Result<(Subscription, T), SubscribeError> {
        if self.stop.load(Ordering::Acquire) {
            return Err(SubscribeError::Unavailable);
        }
        let mut state = self.lock();
        let subscription = state.subscribers.open(interest, capacity)?;
        Ok((subscription, read(&state.views)))
    }

    /// Runs `query` on the engine between two commands, without waiting for room: `Busy` at
    /// once when the shard's query queue is full. The future resolves to the answer, or to
    /// `Unavailable` if the shard goes away first; a caller that cannot wait forever for a
    /// stuck shard bounds it with a timeout of its own. Note that in `durable` mode the engine
    /// may be ahead of what has been released: answers derived from it are not
    /// acknowledgements.
    pub fn ask<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, QueryError>> + Send + 'static {
        let (sender, receiver) = oneshot::channel();
        let queued = self.shard.try_query(Box::new(move |engine| {
            // A caller that stopped waiting is no error.
            let _ = sender.send(query(engine));
        }));
        async move {
            queued.map_err(|_| QueryError::Busy)?;
            receiver.await.map_err(|_| QueryError::Unavailable)
        }
    }

    /// As [`EngineHandle::ask`], blocking the calling thread (up to [`QUERY_TIMEOUT`] for room
    /// and again for the answer). For threads that may block, never for async tasks.
    pub fn query<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Result<T, QueryError> {
        self.shard
            .query(QUERY_TIMEOUT, query)
            .map_err(|_| QueryError::Unavailable)
    }

    /// Whether the handle stopped taking commands (journal failure or a shard that is gone).
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The journal commands go to, if any.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// The shard's counters (for metrics, and the sequence the engine has applied).
    pub fn stats(&self) -> &Arc<ShardStats> {
        self.shard.stats()
    }

    /// Closes every subscription ([`CloseReason::ShuttingDown`]), abandons the tickets not yet
    /// resolved, and stops the router. Commands are refused from then on.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        {
            let mut state = self.lock();
            state.subscribers.close_all(CloseReason::ShuttingDown);
            state.pending.clear();
        }
        let run = self
            .router
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(run) = run {
            run.stop();
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
