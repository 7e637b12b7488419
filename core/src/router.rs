//! The output router: takes the shard's outputs in order, holds them until the journal's
//! acknowledgeable watermark passes them (durable in `durable` mode; durable here and on a
//! standby in `replicated` mode), then routes them under the state lock
//! ([`crate::fanout::RouteState::route`]). It runs on a thread of its own or as a task on a
//! tokio runtime ([`RouterPlacement`]); as a task it never blocks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use peregrine_hotpath::runtime::{Output, Outputs};
use peregrine_persist::Journal;

use crate::fanout::RouteState;
use crate::sequencer::EngineError;

/// Outputs routed per lock hold, so submitters are not starved.
const ROUTE_BATCH_ITEMS: usize = 256;
/// Longest the router thread waits for output or durability before re-checking its stop flag.
const ROUTER_PARK: Duration = Duration::from_millis(5);
/// Outputs held up front (the queue grows if the journal lags further).
const HELD_INITIAL: usize = 4_096;

/// Where the output router runs.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum RouterPlacement {
    /// On a thread of its own, sleeping on the shard's output queue and on the journal: works
    /// anywhere, at the cost of one more thread wake-up per reply (shard → router → session).
    #[default]
    Thread,
    /// As a task on this multi-threaded tokio runtime, woken by the shard and the journal
    /// writer directly: the subscribers' own workers route the replies, one wake-up fewer and
    /// one thread fewer.
    Task(tokio::runtime::Handle),
}

/// The running router: joined (thread) or woken and aborted (task) on shutdown.
#[derive(Debug)]
pub(crate) enum RouterRun {
    Thread(JoinHandle<()>),
    Task {
        task: tokio::task::JoinHandle<()>,
        wake: Arc<tokio::sync::Notify>,
    },
}

impl RouterRun {
    /// Stops the router (its stop flag must be set already). Never waits on a task: shutdown
    /// may run on a worker of the task's runtime.
    pub(crate) fn stop(self) {
        match self {
            RouterRun::Thread(thread) => {
                if thread.join().is_err() {
                    tracing::error!("the router thread panicked");
                }
            }
            // Woken to see its stop flag; aborting takes effect at the task's next wait, never
            // while it holds the lock.
            RouterRun::Task { task, wake } => {
                wake.notify_one();
                task.abort();
            }
        }
    }
}

pub(crate) struct Router {
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
    /// Starts routing `outputs` where `placement` says.
    pub(crate) fn start(
        outputs: Outputs,
        state: Arc<Mutex<RouteState>>,
        stop: Arc<AtomicBool>,
        journal: Option<Journal>,
        placement: RouterPlacement,
    ) -> Result<RouterRun, EngineError> {
        let router = Router {
            outputs,
            state,
            stop,
            journal,
            held: VecDeque::with_capacity(HELD_INITIAL),
            journal_failure_logged: false,
        };
        match placement {
            RouterPlacement::Thread => std::thread::Builder::new()
                .name("peregrine-router".into())
                .spawn(move || router.run())
                .map(RouterRun::Thread)
                .map_err(EngineError::Spawn),
            RouterPlacement::Task(runtime) => {
                let wake = router.set_wakers()?;
                let task = runtime.spawn(router.run_task(Arc::clone(&wake)));
                Ok(RouterRun::Task { task, wake })
            }
        }
    }

    /// Has the shard (after each output batch) and the journal writer (after each commit) wake
    /// the task. `notify_one` keeps a permit when the task is busy, so no wake is lost.
    fn set_wakers(&self) -> Result<Arc<tokio::sync::Notify>, EngineError> {
        let router_wake = Arc::new(tokio::sync::Notify::new());
        let wake = Arc::clone(&router_wake);
        if self
            .outputs
            .set_waker(Box::new(move || wake.notify_one()))
            .is_err()
        {
            return Err(EngineError::OutputsTaken);
        }
        if let Some(journal) = &self.journal {
            let wake = Arc::clone(&router_wake);
            if journal
                .set_durable_waker(Box::new(move || wake.notify_one()))
                .is_err()
            {
                return Err(EngineError::JournalWakerTaken);
            }
        }
        Ok(router_wake)
    }

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
    /// batch, by the journal writer after each commit, and by shutdown.
    async fn run_task(mut self, wake: Arc<tokio::sync::Notify>) {
        // Bounded by the stop flag, re-checked after every wake.
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
                // Every source of work wakes the task (a permit is kept if it is busy), so it
                // sleeps until there is some, or until shutdown.
                wake.notified().await;
            } else {
                // Progress never awaits anything: without this, a steady trickle of outputs
                // would keep the task on its worker and starve the subscribers it delivers to.
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
    /// first, under one hold of the state lock (never across a wait); returns how many.
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
            Some(journal) => journal.ackable_seq(),
            None => u64::MAX,
        }
    }

    /// Waits (bounded by `ROUTER_PARK`) for `seq` to become acknowledgeable; returns the releasable
    /// sequence then. A failed journal releases nothing more: what is not durable was never
    /// acknowledged, and the operator sees the failure on `/health/ready`. Thread only.
    fn wait_releasable(&mut self, seq: u64) -> u64 {
        let Some(journal) = &self.journal else {
            return u64::MAX;
        };
        match journal.wait_ackable(seq, ROUTER_PARK) {
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
