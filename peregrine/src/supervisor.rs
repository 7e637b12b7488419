//! Supervision of the appliance's background threads: a dead thread is restarted, or shown.
//!
//! Every supervised thread is a [`Supervised`]: it says whether its thread has ended (by error
//! or panic) and, if it can be, starts it again. The supervisor's own thread polls them every
//! [`SUPERVISE_POLL`]. A thread that ended is counted in `peregrine_thread_deaths_total{thread}`
//! and restarted after a back-off ([`RESTART_BACKOFF_MIN`] doubling to [`RESTART_BACKOFF_MAX`]),
//! each restart counted in `peregrine_thread_restarts_total{thread}`. At most
//! [`RESTARTS_PER_WINDOW_MAX`] restarts are attempted within [`RESTART_WINDOW`]: a thread that
//! dies again after that, or that cannot be restarted at all (the journal writer, the
//! sequencer), is given up on and keeps `/health/ready` at 503 naming it and why, until the
//! operator restarts the appliance.
//!
//! Supervised in `up` (see `commands::up`): the replicator (`replica`, restartable: it resumes
//! from the database's high-water mark), the snapshot driver (`snapshot-driver`, restartable:
//! its state is the shared snapshotter), and, watched only, the journal writer
//! (`journal-writer`) and the sequencer with its matching shard (`sequencer`), whose state dies
//! with them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, Opts, Registry};

use crate::readiness::CheckStatus;

/// How often the supervisor looks at its threads.
pub const SUPERVISE_POLL: Duration = Duration::from_millis(100);
/// Back-off before the first restart after a death; doubled for each death in a row.
pub const RESTART_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest back-off before a restart.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Restarts attempted per thread within [`RESTART_WINDOW`]; one more death is given up on.
pub const RESTARTS_PER_WINDOW_MAX: usize = 4;
/// The window restarts are counted in; restarts older than it no longer count.
pub const RESTART_WINDOW: Duration = Duration::from_secs(600);
/// Threads one supervisor watches: a handful per appliance; more is a registration loop.
pub const SUPERVISED_MAX: usize = 16;

const _: () = assert!(RESTART_BACKOFF_MIN.as_millis() < RESTART_BACKOFF_MAX.as_millis());
const _: () = assert!(SUPERVISE_POLL.as_millis() < RESTART_BACKOFF_MIN.as_millis());
// The back-offs of one window's restarts fit in the window, so the budget is reachable.
const _: () = assert!(
    RESTART_BACKOFF_MAX.as_secs() * RESTARTS_PER_WINDOW_MAX as u64 <= RESTART_WINDOW.as_secs()
);

/// A background thread the supervisor watches.
pub trait Supervised: Send {
    /// The thread's name, the `thread` label of its metrics and the name readiness shows.
    fn name(&self) -> &'static str;

    /// Why the thread ended, once it has (an error, a panic, or a return nobody asked for);
    /// `None` while it runs or after it was stopped on purpose. Asked every poll: cheap, never
    /// blocking.
    fn ended(&mut self) -> Option<String>;

    /// Whether [`Supervised::restart`] can bring the thread back; when not, its death is
    /// given up on at once.
    fn restartable(&self) -> bool {
        true
    }

    /// Starts the thread again (after [`Supervised::ended`] said it ended).
    fn restart(&mut self) -> Result<(), RestartError>;
}

/// Why a thread was not restarted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestartError {
    /// Its state died with it: only a restart of the appliance (recovery) brings it back.
    #[error("cannot be restarted in place; restart the appliance")]
    NotRestartable,
    /// Starting it again failed.
    #[error("restart failed: {0}")]
    Failed(String),
}

/// Why the supervisor could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    #[error("supervisor metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot supervise `{0}`: {SUPERVISED_MAX} threads already supervised")]
    Full(&'static str),
    #[error("cannot supervise `{0}` twice")]
    Duplicate(&'static str),
    #[error("cannot start the supervisor thread: {0}")]
    Thread(std::io::Error),
}

/// What the supervisor knows of one thread.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Running,
    /// Dead; restarted at `at`.
    Restarting {
        at: Instant,
        reason: String,
    },
    /// Dead for good (not restartable, or over the restart budget).
    GivenUp {
        reason: String,
    },
}

struct Entry {
    thread: Box<dyn Supervised>,
    state: State,
    /// Instants of the restarts attempted within the window, oldest first; at most
    /// [`RESTARTS_PER_WINDOW_MAX`].
    restarts: VecDeque<Instant>,
    backoff: Duration,
}

/// The metrics of thread deaths and restarts.
#[derive(Debug, Clone)]
pub struct ThreadMetrics {
    /// `peregrine_thread_deaths_total{thread}`.
    pub deaths_total: IntCounterVec,
    /// `peregrine_thread_restarts_total{thread}`.
    pub restarts_total: IntCounterVec,
}

impl ThreadMetrics {
    /// Registers both counters in `registry`.
    pub fn register(registry: &Registry) -> Result<ThreadMetrics, prometheus::Error> {
        let deaths_total = IntCounterVec::new(
            Opts::new(
                "thread_deaths_total",
                "Background threads that ended by error or panic, by thread.",
            ),
            &["thread"],
        )?;
        let restarts_total = IntCounterVec::new(
            Opts::new(
                "thread_restarts_total",
                "Background threads the supervisor started again, by thread.",
            ),
            &["thread"],
        )?;
        registry.register(Box::new(deaths_total.clone()))?;
        registry.register(Box::new(restarts_total.clone()))?;
        Ok(ThreadMetrics {
            deaths_total,
            restarts_total,
        })
    }
}

/// The supervisor. Cloning shares it.
#[derive(Clone)]
pub struct Supervisor {
    entries: Arc<Mutex<Vec<Entry>>>,
    metrics: ThreadMetrics,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("status", &self.status())
            .finish()
    }
}

impl Supervisor {
    /// A supervisor counting into `metrics`.
    pub fn new(metrics: ThreadMetrics) -> Supervisor {
        Supervisor {
            entries: Arc::new(Mutex::new(Vec::with_capacity(SUPERVISED_MAX))),
            metrics,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // A panic inside a `Supervised` call is caught before it can poison; plain data anyway.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches `thread` from now on.
    pub fn supervise(&self, thread: Box<dyn Supervised>) -> Result<(), SupervisorError> {
        let name = thread.name();
        let mut entries = self.entries();
        if entries.iter().any(|e| e.thread.name() == name) {
            return Err(SupervisorError::Duplicate(name));
        }
        if entries.len() >= SUPERVISED_MAX {
            return Err(SupervisorError::Full(name));
        }
        // Present from the start, so a scrape shows 0 rather than nothing.
        self.metrics.deaths_total.with_label_values(&[name]);
        self.metrics.restarts_total.with_label_values(&[name]);
        entries.push(Entry {
            thread,
            state: State::Running,
            restarts: VecDeque::with_capacity(RESTARTS_PER_WINDOW_MAX),
            backoff: RESTART_BACKOFF_MIN,
        });
        Ok(())
    }

    /// One supervision pass at `now`: notes deaths, restarts what is due.
    pub fn poll(&self, now: Instant) {
        let mut entries = self.entries();
        for entry in entries.iter_mut() {
            match &entry.state {
                State::Running => {
                    if let Some(reason) = guarded(entry.thread.name(), || entry.thread.ended()) {
                        self.died(entry, now, reason);
                    }
                }
                State::Restarting { at, .. } if *at <= now => self.restart(entry, now),
                State::Restarting { .. } | State::GivenUp { .. } => {}
            }
        }
    }

    fn died(&self, entry: &mut Entry, now: Instant, reason: String) {
        let name = entry.thread.name();
        self.metrics.deaths_total.with_label_values(&[name]).inc();
        while entry
            .restarts
            .front()
            .is_some_and(|&at| now.duration_since(at) > RESTART_WINDOW)
        {
            entry.restarts.pop_front();
        }
        if entry.restarts.is_empty() {
            // A thread that ran through a whole window starts its back-off afresh.
            entry.backoff = RESTART_BACKOFF_MIN;
        }
        if !entry.thread.restartable() {
            tracing::error!(thread = name, %reason, "thread died and cannot be restarted");
            entry.state = State::GivenUp {
                reason: format!("{}: {reason}", RestartError::NotRestartable),
            };
            return;
        }
        if entry.restarts.len() >= RESTARTS_PER_WINDOW_MAX {
            tracing::error!(thread = name, %reason, restarts = entry.restarts.len(),
                window_s = RESTART_WINDOW.as_secs(), "thread died again; giving up on it");
            entry.state = State::GivenUp {
                reason: format!(
                    "died after {} restarts within {} s, not restarted again: {reason}",
                    entry.restarts.len(),
                    RESTART_WINDOW.as_secs()
                ),
            };
            return;
        }
        tracing::error!(thread = name, %reason, backoff_ms = entry.backoff.as_millis() as u64,
            "thread died; restarting it after the back-off");
        entry.state = State::Restarting {
            at: now + entry.backoff,
            reason,
        };
        entry.backoff = (entry.backoff * 2).min(RESTART_BACKOFF_MAX);
    }

    fn restart(&self, entry: &mut Entry, now: Instant) {
        let name = entry.thread.name();
        assert!(entry.restarts.len() < RESTARTS_PER_WINDOW_MAX);
        entry.restarts.push_back(now);
        let restarted = guarded(name, || Some(entry.thread.restart()))
            .unwrap_or_else(|| Err(RestartError::Failed("the restart panicked".to_owned())));
        match restarted {
            Ok(()) => {
                self.metrics.restarts_total.with_label_values(&[name]).inc();
                tracing::warn!(
                    thread = name,
                    restarts = entry.restarts.len(),
                    "thread restarted"
                );
                entry.state = State::Running;
            }
            // A failed restart is one more death, with its own back-off.
            Err(error) => self.died(entry, now, error.to_string()),
        }
    }

    /// Ready while every thread runs; otherwise names each that does not, and why.
    pub fn status(&self) -> CheckStatus {
        let now = Instant::now();
        let entries = self.entries();
        let down: Vec<String> = entries
            .iter()
            .filter_map(|entry| {
                let name = entry.thread.name();
                match &entry.state {
                    State::Running => None,
                    State::Restarting { at, reason } => Some(format!(
                        "{name} died ({reason}); restart {} of {RESTARTS_PER_WINDOW_MAX} in {:.1} s",
                        entry.restarts.len() + 1,
                        at.saturating_duration_since(now).as_secs_f64()
                    )),
                    State::GivenUp { reason } => Some(format!("{name} stopped for good: {reason}")),
                }
            })
            .collect();
        if down.is_empty() {
            CheckStatus::Ready
        } else {
            CheckStatus::NotReady(down.join("; "))
        }
    }

    /// Runs [`Supervisor::poll`] every [`SUPERVISE_POLL`] on a thread of its own until the
    /// returned guard is stopped or dropped.
    pub fn spawn(&self) -> Result<SupervisorThread, SupervisorError> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (supervisor, stop) = (self.clone(), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("supervisor".to_owned())
                .spawn(move || {
                    // Bounded by the stop flag, checked every poll.
                    while !stop.load(Ordering::Acquire) {
                        supervisor.poll(Instant::now());
                        std::thread::sleep(SUPERVISE_POLL);
                    }
                })
                .map_err(SupervisorError::Thread)?
        };
        Ok(SupervisorThread {
            stop,
            thread: Some(thread),
        })
    }
}

/// Runs `call` on a supervised thread's behalf; a panic in it is logged and read as `None`, so
/// one broken [`Supervised`] cannot take the supervisor down with it.
fn guarded<T>(name: &'static str, call: impl FnOnce() -> Option<T>) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|_| {
        tracing::error!(thread = name, "supervising the thread panicked");
        None
    })
}

/// The supervisor's thread; stopping (or dropping) it ends supervision, as `up` does first on
/// shutdown so that threads stopped on purpose are not restarted.
#[derive(Debug)]
pub struct SupervisorThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SupervisorThread {
    /// Stops supervision and waits for the thread (at most one poll).
    pub fn stop(mut self) {
        self.join();
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SupervisorThread {
    fn drop(&mut self) {
        self.join();
    }
}

/// A thread whose death is only watched: `ended` is `failed()` of its owner, and it cannot be
/// restarted in place (the journal writer, the sequencer).
pub struct Watched<F> {
    name: &'static str,
    failed: F,
}

impl<F: FnMut() -> Option<String> + Send> Watched<F> {
    /// Watches `failed`, which says why the thread `name` failed once it has.
    pub fn new(name: &'static str, failed: F) -> Watched<F> {
        Watched { name, failed }
    }
}

impl<F: FnMut() -> Option<String> + Send> Supervised for Watched<F> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn ended(&mut self) -> Option<String> {
        (self.failed)()
    }

    fn restartable(&self) -> bool {
        false
    }

    fn restart(&mut self) -> Result<(), RestartError> {
        Err(RestartError::NotRestartable)
    }
}

/// The replicator's thread as the supervisor sees it: ended once it recorded a failure (an
/// error no retry fixes, or a panic it caught); restarted by starting a new replicator into
/// the same slot, which resumes from the database's high-water mark.
pub struct ReplicaThread {
    /// The running replicator; `None` once `up` took it to stop it.
    pub slot: Arc<Mutex<Option<peregrine_replica::ReplicatorHandle>>>,
    /// How to start it again.
    pub config: peregrine_replica::ReplicaConfig,
    /// Its durable bound.
    pub source: peregrine_replica::DurableSource,
    /// Where its metrics go.
    pub registry: Registry,
}

impl ReplicaThread {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<peregrine_replica::ReplicatorHandle>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Supervised for ReplicaThread {
    fn name(&self) -> &'static str {
        "replica"
    }

    fn ended(&mut self) -> Option<String> {
        self.slot().as_ref()?.failure()
    }

    fn restart(&mut self) -> Result<(), RestartError> {
        // Joins the ended thread and unregisters its metrics, which the new one registers.
        // (The slot is empty only after a failed restart: `up` stops supervision before it
        // takes the replicator to stop it.)
        let dead = self.slot().take();
        if let Some(dead) = dead {
            let _ = dead.stop();
        }
        let handle = peregrine_replica::Replicator::start(
            self.config.clone(),
            self.source.clone(),
            &self.registry,
        )
        .map_err(|e| RestartError::Failed(e.to_string()))?;
        *self.slot() = Some(handle);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::panic_message;

    /// A real thread that runs until told to panic; restarting spawns a new one.
    struct Doomed {
        panic_now: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
        restarts_fail: bool,
    }

    impl Doomed {
        fn start(panic_now: &Arc<AtomicBool>) -> JoinHandle<()> {
            let panic_now = Arc::clone(panic_now);
            std::thread::spawn(move || {
                while !panic_now.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                panic!("the work died");
            })
        }

        fn wait_ended(supervisor: &Supervisor, now: Instant) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while supervisor.status() == CheckStatus::Ready {
                assert!(Instant::now() < deadline, "the death was not noticed");
                supervisor.poll(now);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    impl Supervised for Doomed {
        fn name(&self) -> &'static str {
            "doomed"
        }

        fn ended(&mut self) -> Option<String> {
            if !self.thread.as_ref()?.is_finished() {
                return None;
            }
            let joined = self.thread.take()?.join();
            joined.err().map(|panic| panic_message(panic.as_ref()))
        }

        fn restart(&mut self) -> Result<(), RestartError> {
            if self.restarts_fail {
                return Err(RestartError::Failed("no".to_owned()));
            }
            self.panic_now.store(false, Ordering::Release);
            self.thread = Some(Doomed::start(&self.panic_now));
            Ok(())
        }
    }

    fn supervised(restarts_fail: bool) -> (Supervisor, Registry, Arc<AtomicBool>) {
        let registry = Registry::new();
        let supervisor = Supervisor::new(ThreadMetrics::register(&registry).unwrap());
        let panic_now = Arc::new(AtomicBool::new(false));
        supervisor
            .supervise(Box::new(Doomed {
                thread: Some(Doomed::start(&panic_now)),
                panic_now: Arc::clone(&panic_now),
                restarts_fail,
            }))
            .unwrap();
        (supervisor, registry, panic_now)
    }

    fn counter(registry: &Registry, name: &str) -> u64 {
        registry
            .gather()
            .iter()
            .find(|family| family.name() == name)
            .map_or(0, |family| {
                family.get_metric()[0].get_counter().get_value() as u64
            })
    }

    #[test]
    fn a_dead_thread_is_restarted_after_its_backoff_and_counted() {
        let (supervisor, registry, panic_now) = supervised(false);
        let start = Instant::now();
        supervisor.poll(start);
        assert_eq!(supervisor.status(), CheckStatus::Ready);
        panic_now.store(true, Ordering::Release);
        Doomed::wait_ended(&supervisor, start);
        let CheckStatus::NotReady(why) = supervisor.status() else {
            unreachable!()
        };
        assert!(
            why.starts_with("doomed died (the work died); restart 1 of 4"),
            "{why}"
        );
        assert_eq!(counter(&registry, "thread_deaths_total"), 1);
        // Not before the back-off.
        supervisor.poll(start + RESTART_BACKOFF_MIN / 2);
        assert_eq!(counter(&registry, "thread_restarts_total"), 0);
        supervisor.poll(start + RESTART_BACKOFF_MIN);
        assert_eq!(counter(&registry, "thread_restarts_total"), 1);
        assert_eq!(supervisor.status(), CheckStatus::Ready);
    }

    #[test]
    fn a_thread_over_its_restart_budget_is_given_up_and_stays_not_ready() {
        let (supervisor, registry, panic_now) = supervised(false);
        let mut now = Instant::now();
        for restart in 1..=RESTARTS_PER_WINDOW_MAX {
            panic_now.store(true, Ordering::Release);
            Doomed::wait_ended(&supervisor, now);
            now += RESTART_BACKOFF_MAX;
            supervisor.poll(now);
            assert_eq!(counter(&registry, "thread_restarts_total"), restart as u64);
            assert_eq!(supervisor.status(), CheckStatus::Ready);
        }
        panic_now.store(true, Ordering::Release);
        Doomed::wait_ended(&supervisor, now);
        let give_up = CheckStatus::NotReady(
            "doomed stopped for good: died after 4 restarts within 600 s, not restarted again: \
             the work died"
                .to_owned(),
        );
        assert_eq!(supervisor.status(), give_up);
        supervisor.poll(now + RESTART_WINDOW / 2);
        assert_eq!(supervisor.status(), give_up);
        assert_eq!(counter(&registry, "thread_deaths_total"), 5);
        assert_eq!(counter(&registry, "thread_restarts_total"), 4);
    }

    #[test]
    fn restarts_outside_the_window_do_not_count() {
        let (supervisor, registry, panic_now) = supervised(false);
        let mut now = Instant::now();
        for _ in 0..RESTARTS_PER_WINDOW_MAX * 2 {
            panic_now.store(true, Ordering::Release);
            // Each death comes a window after the previous restart.
            now += RESTART_WINDOW + Duration::from_secs(1);
            Doomed::wait_ended(&supervisor, now);
            now += RESTART_BACKOFF_MIN;
            supervisor.poll(now);
            assert_eq!(supervisor.status(), CheckStatus::Ready);
        }
        assert_eq!(counter(&registry, "thread_restarts_total"), 8);
    }

    #[test]
    fn failed_restarts_are_deaths_and_use_up_the_budget() {
        let (supervisor, registry, panic_now) = supervised(true);
        let mut now = Instant::now();
        panic_now.store(true, Ordering::Release);
        Doomed::wait_ended(&supervisor, now);
        for _ in 0..RESTARTS_PER_WINDOW_MAX {
            now += RESTART_BACKOFF_MAX;
            supervisor.poll(now);
        }
        let CheckStatus::NotReady(why) = supervisor.status() else {
            unreachable!()
        };
        assert!(
            why.contains("stopped for good") && why.ends_with("restart failed: no"),
            "{why}"
        );
        assert_eq!(counter(&registry, "thread_deaths_total"), 5);
        assert_eq!(counter(&registry, "thread_restarts_total"), 0);
    }

    #[test]
    fn a_watched_thread_is_given_up_at_once() {
        let registry = Registry::new();
        let supervisor = Supervisor::new(ThreadMetrics::register(&registry).unwrap());
        let failed = Arc::new(Mutex::new(None::<String>));
        let watched = Arc::clone(&failed);
        supervisor
            .supervise(Box::new(Watched::new("journal-writer", move || {
                watched.lock().unwrap().clone()
            })))
            .unwrap();
        supervisor.poll(Instant::now());
        assert_eq!(supervisor.status(), CheckStatus::Ready);
        *failed.lock().unwrap() = Some("disk gone".to_owned());
        supervisor.poll(Instant::now());
        assert_eq!(
            supervisor.status(),
            CheckStatus::NotReady(
                "journal-writer stopped for good: cannot be restarted in place; restart the \
                 appliance: disk gone"
                    .to_owned()
            )
        );
        assert_eq!(counter(&registry, "thread_deaths_total"), 1);
    }
}
