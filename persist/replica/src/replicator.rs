//! The replicator: one thread with its own single-threaded async runtime, off the hot cores,
//! following the durable journal at its own pace. Nothing on the hot path waits for it: the
//! engine and the journal writer never see it, they only publish the durable sequence it reads.
//!
//! Loop: connect (migrate, read the high-water mark) → rebuild the follower at the mark if
//! needed → read up to `batch_commands_max` durable commands, apply them to the follower and
//! map their events to rows → write the batch in one transaction with the mark → repeat. A
//! database error drops the connection and retries the same prepared batch after a capped
//! exponential backoff; the position is the mark in the database, so nothing is lost or doubled.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peregrine_hotpath::Event;
use peregrine_persist::Seq;
pub use peregrine_persist::follow::DurableSource;
use peregrine_persist::follow::{self, Follower};
use peregrine_views::{OrdersLimits, Views};

use crate::config::ReplicaConfig;
use crate::db::Conn;
use crate::dialect::Dialect;
use crate::error::ReplicaError;
use crate::mapper::RowMapper;
use crate::metrics::ReplicaMetrics;
use crate::rows::Batch;
use crate::statements::{BatchStatements, StatementBuilder};

/// How often a sleeping or waiting replicator looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// How far behind the replica is.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Lag {
    /// Durable commands not yet replicated.
    pub commands: u64,
    /// Age of the oldest command read but not yet committed (its timestamp to now); 0 when
    /// nothing is pending.
    pub seconds: f64,
}

/// State the replicator thread publishes for the handle.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    high_water_seq: AtomicU64,
    /// Highest durable sequence the replicator has seen (for a closed journal: its end).
    bound_seq: AtomicU64,
    /// Timestamp of the oldest command read but not committed; 0 if none.
    oldest_pending_ts_ns: AtomicU64,
    /// Nanoseconds since `started` of the last commit (or of the start).
    progress_at_ns: AtomicU64,
    connected: AtomicBool,
    /// Set once the database was reached and migrated: readers may query it from then on.
    schema_ready: AtomicBool,
    last_error: Mutex<Option<String>>,
    failure: Mutex<Option<String>>,
    /// Set when the replicator stopped because the database was ahead of the journal.
    ahead_of_journal: AtomicBool,
}

fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The running replicator. Dropping it stops the thread (as [`ReplicatorHandle::stop`]).
#[derive(Debug)]
pub struct ReplicatorHandle {
    shared: Arc<Shared>,
    source: DurableSource,
    ready_lag_max: Duration,
    started: Instant,
    thread: Option<JoinHandle<Result<(), ReplicaError>>>,
    /// Where the metrics are registered; they are removed when the replicator stops.
    registry: prometheus::Registry,
    metrics: ReplicaMetrics,
}

impl ReplicatorHandle {
    /// Last journal sequence fully replicated (0 until the first commit or the first read of
    /// the database's mark).
    pub fn high_water_seq(&self) -> Seq {
        self.shared.high_water_seq.load(Ordering::Acquire)
    }

    /// Current lag.
    pub fn lag(&self) -> Lag {
        let high_water = self.high_water_seq();
        let bound = match &self.source {
            DurableSource::Journal(journal) => journal.durable_seq(),
            DurableSource::Closed => self.shared.bound_seq.load(Ordering::Acquire),
        };
        let oldest_ns = self.shared.oldest_pending_ts_ns.load(Ordering::Acquire);
        let seconds = if oldest_ns == 0 {
            0.0
        } else {
            now_unix_ns().saturating_sub(oldest_ns) as f64 / 1e9
        };
        Lag {
            commands: bound.saturating_sub(high_water),
            seconds,
        }
    }

    /// For `/health/ready`: fails when the replicator stopped on an error, when the oldest
    /// unreplicated command is older than `ready_lag_max`, or when it is behind and has not
    /// committed for that long (e.g. the database is down).
    pub fn readiness(&self) -> Result<(), String> {
        if let Some(failure) = lock(&self.shared.failure).clone() {
            return Err(format!("replicator stopped: {failure}"));
        }
        // A thread that ended without recording why (it cannot, short of a failure while
        // recording one) must still show: "lags" would hide that nothing will catch up.
        if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            return Err("replicator thread ended".to_owned());
        }
        if !self.shared.schema_ready.load(Ordering::Acquire) {
            // History readers would find no tables yet.
            let error = lock(&self.shared.last_error).clone().unwrap_or_default();
            return Err(format!("replica database not reached yet {error}")
                .trim_end()
                .to_owned());
        }
        let lag = self.lag();
        let lag_max = self.ready_lag_max.as_secs_f64();
        if lag.seconds > lag_max {
            return Err(format!(
                "replica lags {:.1} s ({} commands), above {lag_max:.1} s",
                lag.seconds, lag.commands
            ));
        }
        let stalled_ns = elapsed_ns(self.started)
            .saturating_sub(self.shared.progress_at_ns.load(Ordering::Acquire));
        if lag.commands > 0 && stalled_ns as f64 / 1e9 > lag_max {
            let error = lock(&self.shared.last_error).clone().unwrap_or_default();
            return Err(format!(
                "replica {} commands behind, no commit for {:.1} s: {error}",
                lag.commands,
                stalled_ns as f64 / 1e9
            ));
        }
        Ok(())
    }

    /// Whether the replicator has a database connection now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// The last database error, if any (cleared by the next commit).
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.last_error).clone()
    }

    /// Whether it stopped because the database holds sequences beyond the journal's end.
    pub fn is_ahead_of_journal(&self) -> bool {
        self.shared.ahead_of_journal.load(Ordering::Acquire)
    }

    /// Why the replicator stopped, if it did (a fault no retry fixes).
    pub fn failure(&self) -> Option<String> {
        lock(&self.shared.failure).clone()
    }

    /// Waits until the high-water mark reaches `seq` or `timeout` passes; returns the mark.
    pub fn wait_high_water(&self, seq: Seq, timeout: Duration) -> Seq {
        let deadline = Instant::now() + timeout;
        // Bounded by the deadline.
        loop {
            let high_water = self.high_water_seq();
            if high_water >= seq
                || Instant::now() >= deadline
                || lock(&self.shared.failure).is_some()
            {
                return high_water;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops the replicator (an uncommitted batch is abandoned; the journal still holds it)
    /// and returns the high-water mark, or the error that had stopped it.
    pub fn stop(mut self) -> Result<Seq, ReplicaError> {
        self.join()?;
        Ok(self.high_water_seq())
    }

    fn join(&mut self) -> Result<(), ReplicaError> {
        self.shared.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let joined = thread.join();
        self.metrics.unregister(&self.registry);
        match joined {
            Ok(result) => result,
            Err(_) => Err(ReplicaError::Thread(std::io::Error::other(
                "replicator thread panicked",
            ))),
        }
    }
}

impl Drop for ReplicatorHandle {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain values only: a panic while holding the lock leaves nothing inconsistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts replicators.
#[derive(Debug)]
pub struct Replicator;

impl Replicator {
    /// Starts replicating the journal in `config.journal_dir` into `config.database_url` on a
    /// thread of its own. Returns at once: connecting, migrating and catching up happen on that
    /// thread (a database that is down is retried, not an error here).
    pub fn start(
        config: ReplicaConfig,
        source: DurableSource,
        registry: &prometheus::Registry,
    ) -> Result<ReplicatorHandle, ReplicaError> {
        config.validate()?;
        let metrics = ReplicaMetrics::register(registry)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ReplicaError::Thread)?;
        let shared = Arc::new(Shared::default());
        let started = Instant::now();
        let ready_lag_max = config.ready_lag_max;
        let handle_metrics = metrics.clone();
        let dialect = Dialect::from_url(&config.database_url)?;
        let split_ledger = dialect == Dialect::MySql && config.ledger_connection;
        let worker = Worker {
            dialect,
            builder: StatementBuilder::new(
                Dialect::from_url(&config.database_url)?,
                config.statement_rows_max,
            ),
            config,
            source: source.clone(),
            shared: Arc::clone(&shared),
            metrics,
            started,
            conn: None,
            ledger_conn: None,
            split_ledger,
            high_water: None,
            following: None,
            pending: None,
            backoff: Duration::ZERO,
            events: Vec::with_capacity(1_024),
        };
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("replica".to_owned())
            .spawn(move || {
                // A broken invariant (an `assert!`) must show in readiness, not just end the
                // thread: catch it and report it as the failure.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    runtime.block_on(worker.run())
                }))
                .unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "unknown panic".to_owned());
                    Err(ReplicaError::Thread(std::io::Error::other(format!(
                        "replicator panicked: {what}"
                    ))))
                });
                if let Err(error) = &result {
                    if matches!(error, ReplicaError::AheadOfJournal { .. }) {
                        thread_shared
                            .ahead_of_journal
                            .store(true, Ordering::Release);
                    }
                    tracing::error!(%error, "replicator stopped");
                    *lock(&thread_shared.failure) = Some(error.to_string());
                }
                result
            })
            .map_err(ReplicaError::Thread)?;
        Ok(ReplicatorHandle {
            shared,
            source,
            ready_lag_max,
            started,
            thread: Some(thread),
            registry: registry.clone(),
            metrics: handle_metrics,
        })
    }
}

/// Applies the schema migrations to `database_url` (for `peregrine migrate`; the replicator
/// also does it when it connects, if `ReplicaConfig::migrate`). Blocking.
pub fn migrate(database_url: &str) -> Result<(), ReplicaError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ReplicaError::Thread)?;
    runtime.block_on(async {
        let mut conn = Conn::connect(database_url).await?;
        conn.migrate().await?;
        conn.close().await;
        Ok(())
    })
}

/// A batch read, mapped and turned into SQL, waiting to be committed.
#[derive(Debug)]
struct Pending {
    batch: Batch,
    from_seq: Seq,
    high_water_sql: String,
    /// With a ledger connection, `main` lacks the ledger's statements, which are in `ledger`;
    /// without one, `main` holds them all.
    statements: BatchStatements,
}

/// The follower with its mapper.
#[derive(Debug)]
struct Following {
    follower: Follower,
    mapper: RowMapper,
}

struct Worker {
    config: ReplicaConfig,
    dialect: Dialect,
    builder: StatementBuilder,
    source: DurableSource,
    shared: Arc<Shared>,
    metrics: ReplicaMetrics,
    started: Instant,
    conn: Option<Conn>,
    /// The second connection, for the ledger's rows (MySQL with `ledger_connection`); open
    /// whenever `conn` is.
    ledger_conn: Option<Conn>,
    /// Whether batches go out on two connections.
    split_ledger: bool,
    /// The database's mark as last read or committed; `None` before the first connection.
    high_water: Option<Seq>,
    following: Option<Following>,
    pending: Option<Pending>,
    backoff: Duration,
    events: Vec<Event>,
}

/// What one step of the loop concluded.
enum Step {
    /// Go on at once.
    Continue,
    /// Nothing to do: wait for the journal.
    Idle,
    /// The database failed: back off, then retry.
    Retry(ReplicaError, &'static str),
}

impl Worker {
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// Sleeps `duration` in slices, returning early when asked to stop.
    async fn sleep(&self, duration: Duration) {
        let deadline = Instant::now() + duration;
        // Bounded by the deadline.
        while !self.stopping() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            tokio::time::sleep((deadline - now).min(STOP_POLL)).await;
        }
    }

    /// Resolves once the stop flag is set.
    async fn stopped(shared: &Shared) {
        // Unbounded by design: it is raced against a bounded operation.
        while !shared.stop.load(Ordering::Acquire) {
            tokio::time::sleep(STOP_POLL).await;
        }
    }

    async fn run(mut self) -> Result<(), ReplicaError> {
        tracing::info!(
            dialect = self.dialect.name(),
            journal = %self.config.journal_dir.display(),
            "replicator starting"
        );
        self.shared
            .progress_at_ns
            .store(elapsed_ns(self.started), Ordering::Release);
        // Bounded by the stop flag; each pass does one step or waits.
        while !self.stopping() {
            match self.step().await? {
                Step::Continue => {}
                Step::Idle => {
                    // Blocking is fine here: this runtime runs nothing else.
                    let seen = self.high_water.unwrap_or(0);
                    self.source
                        .wait_after(seen, self.config.poll_interval.min(STOP_POLL));
                }
                Step::Retry(error, operation) => {
                    self.metrics
                        .errors_total
                        .with_label_values(&[operation])
                        .inc();
                    tracing::warn!(%error, operation, backoff = ?self.backoff, "replica database error");
                    *lock(&self.shared.last_error) = Some(format!("{operation}: {error}"));
                    // Dropped, not closed: a connection may be dead; the server rolls back.
                    drop(self.conn.take());
                    drop(self.ledger_conn.take());
                    self.shared.connected.store(false, Ordering::Release);
                    self.backoff = (self.backoff * 2)
                        .max(self.config.backoff_min)
                        .min(self.config.backoff_max);
                    self.sleep(self.backoff).await;
                }
            }
        }
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
        if let Some(conn) = self.ledger_conn.take() {
            conn.close().await;
        }
        tracing::info!(
            high_water_seq = self.high_water.unwrap_or(0),
            "replicator stopped"
        );
        Ok(())
    }

    /// Runs `operation` bounded by the operation timeout and the stop flag; `None` if stopped.
    async fn bounded<T>(
        shared: &Shared,
        timeout: Duration,
        operation: impl Future<Output = Result<T, ReplicaError>>,
    ) -> Option<Result<T, ReplicaError>> {
        tokio::select! {
            result = tokio::time::timeout(timeout, operation) => Some(match result {
                Ok(result) => result,
                Err(_) => Err(ReplicaError::Timeout("database operation")),
            }),
            () = Self::stopped(shared) => None,
        }
    }

    async fn step(&mut self) -> Result<Step, ReplicaError> {
        if self.conn.is_none() {
            let url = self.config.database_url.clone();
            let migrate = self.config.migrate;
            let split_ledger = self.split_ledger;
            let connected = Self::bounded(&self.shared, self.config.operation_timeout, async {
                let mut conn = Conn::connect(&url).await?;
                if migrate {
                    conn.migrate().await?;
                }
                let ledger_conn = if split_ledger {
                    Some(Conn::connect(&url).await?)
                } else {
                    None
                };
                let high_water = conn.high_water_seq().await?;
                Ok((conn, ledger_conn, high_water))
            })
            .await;
            match connected {
                None => return Ok(Step::Continue),
                Some(Err(error)) if error.is_retryable() => {
                    return Ok(Step::Retry(error, "connect"));
                }
                Some(Err(error)) => return Err(error),
                Some(Ok((_, _, found))) if found > self.source.bound() => {
                    return Err(ReplicaError::AheadOfJournal {
                        replica: found,
                        journal: self.source.bound(),
                    });
                }
                Some(Ok((conn, ledger_conn, found))) => {
                    self.conn = Some(conn);
                    self.ledger_conn = ledger_conn;
                    self.shared.connected.store(true, Ordering::Release);
                    self.shared.schema_ready.store(true, Ordering::Release);
                    self.reconcile(found);
                }
            }
        }
        if self.following.is_none() {
            let high_water = self.high_water.unwrap_or(0);
            let mut views = Views::new(OrdersLimits::default());
            let follower = follow::start(
                &self.config.journal_dir,
                &self.config.engine_config,
                high_water,
                self.source.torn(),
                |seq, command, events| views.observe(seq, command, events),
            )?;
            views.seed(&follower.engine, follower.applied_seq);
            tracing::info!(
                high_water_seq = high_water,
                "replica follower engine rebuilt at the high-water mark"
            );
            let mapper =
                RowMapper::new(views, &follower.engine, self.config.currency_scales.clone());
            self.following = Some(Following { follower, mapper });
            self.publish_high_water(high_water);
        }
        if self.pending.is_none() && !self.read_batch()? {
            self.publish_lag();
            return Ok(Step::Idle);
        }
        self.publish_lag();
        self.write_pending().await
    }

    /// The database's mark on (re)connection decides what the pending batch and the follower
    /// are worth.
    fn reconcile(&mut self, found: Seq) {
        if let Some(pending) = &self.pending
            && pending.batch.last_seq == found
        {
            // The commit went through but its answer was lost with the connection.
            tracing::info!(
                high_water_seq = found,
                "replica batch was committed before the error"
            );
            self.committed();
            return;
        }
        if self.high_water == Some(found) {
            return;
        }
        tracing::info!(
            high_water_seq = found,
            previous = ?self.high_water,
            "replica high-water mark read from the database"
        );
        self.high_water = Some(found);
        self.following = None;
        self.pending = None;
        self.shared.oldest_pending_ts_ns.store(0, Ordering::Release);
    }

    /// Reads, applies and maps the next batch; false if there was nothing to read.
    fn read_batch(&mut self) -> Result<bool, ReplicaError> {
        let Some(following) = self.following.as_mut() else {
            return Ok(false);
        };
        let bound = self.source.bound();
        let mut batch = Batch::default();
        // Bounded by batch_commands_max (and batch_rows_max, checked per command).
        while batch.commands_count < self.config.batch_commands_max
            && batch.rows_count() < self.config.batch_rows_max
        {
            let Some((seq, command)) = following.follower.tailer.next(bound)? else {
                break;
            };
            self.events.clear();
            following.follower.engine.apply(&command, &mut self.events);
            following.follower.applied_seq = seq;
            following
                .mapper
                .map(seq, &command, &self.events, &mut batch);
        }
        let read_to = following.follower.applied_seq;
        let bound_seen = match self.source {
            DurableSource::Journal(_) => bound,
            DurableSource::Closed => read_to,
        };
        self.shared
            .bound_seq
            .fetch_max(bound_seen, Ordering::AcqRel);
        if batch.is_empty() {
            return Ok(false);
        }
        let from_seq = self.high_water.unwrap_or(0);
        assert_eq!(
            batch.first_seq,
            from_seq + 1,
            "a batch starts after the mark"
        );
        let high_water_sql =
            self.builder
                .high_water_sql(from_seq, batch.last_seq, batch.last_ts_ns);
        let statements = if self.split_ledger {
            self.builder.build_split(&batch)?
        } else {
            BatchStatements {
                main: self.builder.build(&batch)?,
                ledger: Vec::new(),
            }
        };
        self.shared
            .oldest_pending_ts_ns
            .store(batch.first_ts_ns.max(1), Ordering::Release);
        self.pending = Some(Pending {
            batch,
            from_seq,
            high_water_sql,
            statements,
        });
        Ok(true)
    }

    async fn write_pending(&mut self) -> Result<Step, ReplicaError> {
        let (Some(conn), Some(pending)) = (self.conn.as_mut(), self.pending.as_ref()) else {
            return Ok(Step::Continue);
        };
        let started = Instant::now();
        let statements = &pending.statements;
        let written = match self.ledger_conn.as_mut() {
            Some(ledger_conn) => {
                assert!(self.split_ledger, "a ledger connection only when splitting");
                Self::bounded(
                    &self.shared,
                    self.config.operation_timeout,
                    conn.write_batch_split(
                        ledger_conn,
                        pending.from_seq,
                        pending.batch.last_seq,
                        &pending.high_water_sql,
                        &statements.main,
                        &statements.ledger,
                        pending.batch.ledger.len() as u64,
                    ),
                )
                .await
            }
            None => {
                assert!(
                    statements.ledger.is_empty(),
                    "ledger statements apart need their connection"
                );
                Self::bounded(
                    &self.shared,
                    self.config.operation_timeout,
                    conn.write_batch(pending.from_seq, &pending.high_water_sql, &statements.main),
                )
                .await
            }
        };
        match written {
            None => Ok(Step::Continue),
            Some(Ok(())) => {
                self.metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.committed();
                Ok(Step::Continue)
            }
            Some(Err(ReplicaError::HighWaterMoved { expected, found })) => {
                // Someone else (another replicator on the same database) moved the mark: follow
                // the database, never fight it.
                tracing::warn!(expected, found, "replica high-water mark moved under us");
                self.metrics
                    .errors_total
                    .with_label_values(&["moved"])
                    .inc();
                self.reconcile(found);
                Ok(Step::Continue)
            }
            Some(Err(error)) if error.is_retryable() => Ok(Step::Retry(error, "write")),
            Some(Err(error)) => Err(error),
        }
    }

    /// The pending batch is in the database.
    fn committed(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let batch = &pending.batch;
        if let Some(following) = self.following.as_mut() {
            following.mapper.committed(batch);
        }
        self.high_water = Some(batch.last_seq);
        self.publish_high_water(batch.last_seq);
        self.metrics
            .commands_total
            .inc_by(batch.commands_count as u64);
        self.metrics.events_total.inc_by(batch.events_count as u64);
        self.metrics.rows_total.inc_by(batch.rows_count() as u64);
        self.metrics.trades_total.inc_by(batch.trades.len() as u64);
        self.metrics.batches_total.inc();
        self.shared.oldest_pending_ts_ns.store(0, Ordering::Release);
        self.shared
            .progress_at_ns
            .store(elapsed_ns(self.started), Ordering::Release);
        *lock(&self.shared.last_error) = None;
        self.backoff = Duration::ZERO;
    }

    fn publish_high_water(&self, high_water: Seq) {
        self.shared
            .high_water_seq
            .store(high_water, Ordering::Release);
        self.metrics
            .high_water_seq
            .set(i64::try_from(high_water).unwrap_or(i64::MAX));
        if let Some(floor) = &self.config.retention_floor {
            floor.raise(high_water);
        }
    }

    fn publish_lag(&self) {
        let high_water = self.high_water.unwrap_or(0);
        let bound = match &self.source {
            DurableSource::Journal(journal) => journal.durable_seq(),
            DurableSource::Closed => self.shared.bound_seq.load(Ordering::Acquire),
        };
        let lag_commands = bound.saturating_sub(high_water);
        self.metrics
            .lag_commands
            .set(i64::try_from(lag_commands).unwrap_or(i64::MAX));
        let oldest_ns = self.shared.oldest_pending_ts_ns.load(Ordering::Acquire);
        let lag_seconds = if oldest_ns == 0 {
            0.0
        } else {
            now_unix_ns().saturating_sub(oldest_ns) as f64 / 1e9
        };
        self.metrics.lag_seconds.set(lag_seconds);
    }
}
