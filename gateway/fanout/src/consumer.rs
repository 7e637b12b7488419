//! The bridge's side of the fan-out: reads the stream from a book snapshot and hands whole
//! commands, in order, to the edge code that serves clients (the same code the appliance's own
//! REST/WebSocket edge runs).
//!
//! ```text
//! KV snapshot ──► FeedEvent::Seed ──► ordered consumer from snapshot.stream_seq + 1
//!    ──► parts of one command assembled ──► FeedEvent::Command (bounded channel) ──► edge
//! ```
//!
//! Gaps are detected twice: the stream sequence must advance by exactly one (the consumer reads
//! every subject of the stream, and the publisher is its only writer), and a command's parts
//! must arrive as `1/n, 2/n, .. n/n`. A lost connection (NATS restarted, a network blip) ends
//! the session and the next one continues from the stream sequence after the last whole
//! command: no seed, no gap, no duplicate. A gap, a damaged message or a resync asked for by
//! the edge (its book mirror refused a change) starts over from the snapshot instead. Commands
//! the edge already had are then replayed for the books only (level changes and market
//! states), so a subscriber sees no trade, fill, order or balance twice; the books' own
//! sequences tell the edge's mirrors what they still need.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use peregrine_views::Change;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};
use tokio::sync::{Notify, mpsc, watch};

use crate::message::{DecodeError, PART_HEADER, Part, Published, SEQ_HEADER};
use crate::snapshot::{BooksSnapshot, SNAPSHOT_KEY, bucket_name};

/// Changes one command carries, allocated up front (a sweep grows the buffer).
const CHANGES_INITIAL: usize = 64;
/// Longest [`ConsumerHandle::stop`] waits for the task before aborting it.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// What a bridge's consumer needs.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// NATS server(s).
    pub nats_url: String,
    /// TLS trust and credentials for it (none by default).
    pub access: crate::NatsAccess,
    /// The stream the appliance publishes to.
    pub stream: String,
    /// Events queued for the edge, at most (the consumer waits, and NATS holds the rest).
    pub channel_capacity: usize,
    /// Bound on connecting and on each request.
    pub operation_timeout: Duration,
    /// Wait after a failed session, doubling up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest wait between sessions.
    pub backoff_max: Duration,
    /// Messages behind the stream's end above which the bridge is not ready.
    pub ready_lag_max: u64,
}

impl ConsumerConfig {
    /// Defaults for `stream` on `nats_url`.
    pub fn new(nats_url: impl Into<String>, stream: impl Into<String>) -> ConsumerConfig {
        ConsumerConfig {
            nats_url: nats_url.into(),
            access: crate::NatsAccess::default(),
            stream: stream.into(),
            channel_capacity: 4_096,
            operation_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            ready_lag_max: 10_000,
        }
    }
}

/// What the edge applies, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedEvent {
    /// Start over from these books (first, and after every resync).
    Seed(BooksSnapshot),
    /// One command's changes, every subject's, in stream order.
    Command {
        /// Journal sequence.
        seq: u64,
        /// Sequencer time, Unix ns.
        ts_ns: u64,
        /// Its changes (books only when `replayed`).
        changes: Vec<Change>,
        /// Already delivered before a resync: only its book changes are kept.
        replayed: bool,
    },
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// Connecting.
    #[error("connecting to NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    /// The stream is not there (the appliance has not published yet).
    #[error("JetStream stream: {0}")]
    Stream(#[from] jetstream::context::GetStreamError),
    /// The snapshot bucket is not there.
    #[error("snapshot bucket: {0}")]
    Bucket(#[from] jetstream::context::KeyValueError),
    /// Reading the snapshot.
    #[error("reading the snapshot: {0}")]
    Entry(#[from] jetstream::kv::EntryError),
    /// No snapshot yet: never guess the books.
    #[error("no book snapshot in the bucket yet")]
    NoSnapshot,
    /// Creating the consumer.
    #[error("creating the consumer: {0}")]
    Consumer(#[from] stream::ConsumerError),
    /// Starting its messages.
    #[error("consumer messages: {0}")]
    Messages(#[from] consumer::StreamError),
    /// Receiving.
    #[error("receiving: {0}")]
    Receive(#[from] consumer::pull::OrderedError),
    /// A message without JetStream metadata.
    #[error("a message without stream metadata")]
    NoInfo,
    /// A message of the stream does not decode.
    #[error("a message in the stream: {0}")]
    Decode(#[from] DecodeError),
    /// A message without valid `Peregrine-Seq` or `Peregrine-Part` headers.
    #[error("stream message {stream_seq} lacks valid {SEQ_HEADER}/{PART_HEADER} headers")]
    Foreign {
        /// Its stream sequence.
        stream_seq: u64,
    },
    /// A message is missing.
    #[error("gap: expected {expected}, found {found}")]
    Gap {
        /// What was expected (stream sequence, or part index).
        expected: u64,
        /// What came.
        found: u64,
    },
    /// The edge asked for a resync.
    #[error("resync requested")]
    Resync,
    /// The consumer's messages ended: continue where the stream was left.
    #[error("the consumer's messages ended")]
    Ended,
    /// The connection was lost and made again: continue where the stream was left.
    #[error("reconnected to NATS")]
    Reconnected,
    /// The edge is gone.
    #[error("the feed's receiver is gone")]
    Closed,
    /// An operation took longer than the configured bound.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// Registering metrics.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The consumer's Prometheus metrics (`bridge_*`).
#[derive(Clone, Debug)]
struct ConsumerMetrics {
    messages: IntCounter,
    commands: IntCounter,
    sessions: IntCounter,
    gaps: IntCounter,
    lag: IntGauge,
    applied_seq: IntGauge,
    command_age: Histogram,
}

impl ConsumerMetrics {
    fn register(registry: &Registry) -> Result<ConsumerMetrics, prometheus::Error> {
        let counter = |name: &str, help: &str| IntCounter::with_opts(Opts::new(name, help));
        let gauge = |name: &str, help: &str| IntGauge::with_opts(Opts::new(name, help));
        let metrics = ConsumerMetrics {
            messages: counter("bridge_messages_total", "Stream messages received.")?,
            commands: counter(
                "bridge_commands_total",
                "Whole commands handed to the edge.",
            )?,
            sessions: counter(
                "bridge_sessions_total",
                "Sessions started (each loads the snapshot; more than one is a resync).",
            )?,
            gaps: counter(
                "bridge_gaps_total",
                "Missing, repeated or damaged messages that forced a resync.",
            )?,
            lag: gauge(
                "bridge_stream_lag_messages",
                "Messages in the stream not yet received.",
            )?,
            applied_seq: gauge("bridge_applied_seq", "Last command handed to the edge.")?,
            command_age: Histogram::with_opts(
                HistogramOpts::new(
                    "bridge_command_age_seconds",
                    "From a command's sequencer time to its hand-over to the edge.",
                )
                .buckets(prometheus::exponential_buckets(0.000_05, 2.0, 18)?),
            )?,
        };
        registry.register(Box::new(metrics.messages.clone()))?;
        registry.register(Box::new(metrics.commands.clone()))?;
        registry.register(Box::new(metrics.sessions.clone()))?;
        registry.register(Box::new(metrics.gaps.clone()))?;
        registry.register(Box::new(metrics.lag.clone()))?;
        registry.register(Box::new(metrics.applied_seq.clone()))?;
        registry.register(Box::new(metrics.command_age.clone()))?;
        Ok(metrics)
    }
}

/// State the task shares with its handle.
#[derive(Debug, Default)]
struct Shared {
    connected: AtomicBool,
    lag: AtomicU64,
    delivered_seq: AtomicU64,
    resync: AtomicBool,
    /// Set when the connection came back after a loss.
    reconnected: AtomicBool,
    /// The connection was lost (a `Connected` event after it is a reconnection).
    disconnected: AtomicBool,
    wake: Notify,
    last_error: Mutex<Option<String>>,
}

/// The running consumer.
#[derive(Debug)]
pub struct ConsumerHandle {
    shared: Arc<Shared>,
    ready_lag_max: u64,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl ConsumerHandle {
    /// Asks for a resync from the snapshot (the edge's book mirror refused a change).
    pub fn resync(&self) {
        self.shared.resync.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }

    /// Messages in the stream not yet received, as of the last one received.
    pub fn lag(&self) -> u64 {
        self.shared.lag.load(Ordering::Acquire)
    }

    /// The last command handed to the edge.
    pub fn delivered_seq(&self) -> u64 {
        self.shared.delivered_seq.load(Ordering::Acquire)
    }

    /// Ready when connected and at most `ready_lag_max` behind; else why not.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.shared.connected.load(Ordering::Acquire) {
            let error = self
                .shared
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            return Err(format!(
                "bridge not following the stream: {}",
                error.as_deref().unwrap_or("connecting")
            ));
        }
        let lag = self.lag();
        if lag > self.ready_lag_max {
            return Err(format!(
                "bridge {lag} messages behind the stream (ready at {} or fewer)",
                self.ready_lag_max
            ));
        }
        Ok(())
    }

    /// Stops the task and waits for it.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        self.shared.wake.notify_one();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut task) = task {
            // A session blocked on a full channel whose reader stopped reading never sees the
            // flag: abort it after a bound.
            if tokio::time::timeout(STOP_WAIT, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

/// The consumer task.
pub struct Consumer {
    config: ConsumerConfig,
    shared: Arc<Shared>,
    metrics: ConsumerMetrics,
    events: mpsc::Sender<FeedEvent>,
    stop: watch::Receiver<bool>,
    /// Where the next session continues: (stream sequence, last command delivered); `None`
    /// starts from the snapshot.
    position: Option<(u64, u64)>,
}

/// A command being assembled from its parts.
struct Assembly {
    seq: u64,
    ts_ns: u64,
    next: u32,
    changes: Vec<Change>,
}

impl Consumer {
    /// Starts the consumer on the current tokio runtime; the edge reads the returned channel.
    pub fn start(
        config: ConsumerConfig,
        registry: &Registry,
    ) -> Result<(ConsumerHandle, mpsc::Receiver<FeedEvent>), ConsumerError> {
        assert!(config.channel_capacity > 0 && config.backoff_min <= config.backoff_max);
        let (sender, receiver) = mpsc::channel(config.channel_capacity);
        let (stop, stop_receiver) = watch::channel(false);
        let shared = Arc::new(Shared::default());
        let ready_lag_max = config.ready_lag_max;
        let mut task = Consumer {
            config,
            shared: Arc::clone(&shared),
            metrics: ConsumerMetrics::register(registry)?,
            events: sender,
            stop: stop_receiver,
            position: None,
        };
        let handle = tokio::spawn(async move { task.run().await });
        Ok((
            ConsumerHandle {
                shared,
                ready_lag_max,
                stop,
                task: Mutex::new(Some(handle)),
            },
            receiver,
        ))
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sessions until stopped, with a bounded back-off between failed ones.
    async fn run(&mut self) {
        let mut backoff = self.config.backoff_min;
        while !self.stopped() {
            self.metrics.sessions.inc();
            let error = match self.session().await {
                Ok(()) => return,
                Err(ConsumerError::Closed) => return,
                Err(error) => error,
            };
            self.shared.connected.store(false, Ordering::Release);
            if matches!(
                error,
                ConsumerError::Gap { .. }
                    | ConsumerError::Decode(_)
                    | ConsumerError::Foreign { .. }
                    | ConsumerError::Resync
            ) {
                // The books may be wrong: start over from the snapshot.
                self.position = None;
                self.metrics.gaps.inc();
                backoff = self.config.backoff_min;
            }
            if matches!(error, ConsumerError::Reconnected) {
                backoff = self.config.backoff_min;
            }
            tracing::warn!(%error, continue_at = ?self.position, "bridge consumer session ended");
            *self
                .shared
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = stop.wait_for(|&s| s) => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.config.backoff_max);
        }
    }

    /// One connection: the snapshot (or where the last session stopped), then the stream after
    /// it, until stopped or failed.
    async fn session(&mut self) -> Result<(), ConsumerError> {
        let timeout = self.config.operation_timeout;
        self.shared.reconnected.store(false, Ordering::Release);
        self.shared.disconnected.store(false, Ordering::Release);
        let events = Arc::clone(&self.shared);
        let client = self
            .config
            .access
            .options(timeout)
            .event_callback(move |event| {
                let shared = Arc::clone(&events);
                async move { connection_event(&shared, &event) }
            })
            .connect(self.config.nats_url.as_str())
            .await?;
        let context = jetstream::new(client);
        let stream = bounded(timeout, "stream", context.get_stream(&self.config.stream)).await??;
        let (start, last_seq) = match self.position {
            Some(position) => position,
            None => self.seed(&context).await?,
        };
        let ordered = bounded(
            timeout,
            "consumer",
            stream.create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                ..consumer::pull::OrderedConfig::default()
            }),
        )
        .await??;
        let messages = bounded(timeout, "messages", ordered.messages()).await??;
        self.shared.resync.store(false, Ordering::Release);
        self.position = Some((start, last_seq));
        self.shared.connected.store(true, Ordering::Release);
        self.follow(messages, start, last_seq).await
    }

    /// Loads the snapshot and hands it to the edge; returns where the stream goes on after it.
    async fn seed(&mut self, context: &jetstream::Context) -> Result<(u64, u64), ConsumerError> {
        let timeout = self.config.operation_timeout;
        let bucket = bounded(
            timeout,
            "bucket",
            context.get_key_value(bucket_name(&self.config.stream)),
        )
        .await??;
        let bytes = bounded(timeout, "snapshot", bucket.get(SNAPSHOT_KEY))
            .await??
            .ok_or(ConsumerError::NoSnapshot)?;
        let snapshot = BooksSnapshot::decode(&bytes)?;
        let position = (snapshot.stream_seq + 1, snapshot.seq);
        tracing::info!(
            seq = snapshot.seq,
            stream_seq = snapshot.stream_seq,
            "bridge seeded from the book snapshot"
        );
        self.send(FeedEvent::Seed(snapshot)).await?;
        Ok(position)
    }

    /// Reads the stream from `expected` on, handing whole commands to the edge.
    async fn follow(
        &mut self,
        mut messages: consumer::pull::Ordered,
        mut expected: u64,
        mut last_seq: u64,
    ) -> Result<(), ConsumerError> {
        let mut assembly: Option<Assembly> = None;
        // Bounded by the stop flag and the stream: each pass takes one message.
        loop {
            let message = tokio::select! {
                () = self.shared.wake.notified() => {
                    if self.stopped() {
                        return Ok(());
                    }
                    if self.shared.resync.swap(false, Ordering::AcqRel) {
                        return Err(ConsumerError::Resync);
                    }
                    if self.shared.reconnected.swap(false, Ordering::AcqRel) {
                        return Err(ConsumerError::Reconnected);
                    }
                    continue;
                }
                message = messages.next() => message,
            };
            let Some(message) = message else {
                return Err(ConsumerError::Ended);
            };
            let message = message?;
            let info = message.info().map_err(|_| ConsumerError::NoInfo)?;
            let (stream_seq, pending) = (info.stream_sequence, info.pending);
            if stream_seq != expected {
                return Err(ConsumerError::Gap {
                    expected,
                    found: stream_seq,
                });
            }
            expected += 1;
            self.shared.lag.store(pending, Ordering::Release);
            self.metrics
                .lag
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
            self.metrics.messages.inc();
            if let Some(done) = self.take(&message, stream_seq, last_seq, &mut assembly)? {
                last_seq = done.seq;
                self.deliver(done).await?;
            }
            if assembly.is_none() {
                // A command boundary: a lost connection continues from here.
                self.position = Some((expected, last_seq));
            }
        }
    }

    /// Adds one message to the command being assembled; returns the command when complete.
    fn take(
        &self,
        message: &jetstream::Message,
        stream_seq: u64,
        last_seq: u64,
        assembly: &mut Option<Assembly>,
    ) -> Result<Option<Assembly>, ConsumerError> {
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        let seq = header(SEQ_HEADER).and_then(|v| v.parse::<u64>().ok());
        let part = header(PART_HEADER).and_then(|v| Part::parse(&v));
        let (Some(seq), Some(part)) = (seq, part) else {
            return Err(ConsumerError::Foreign { stream_seq });
        };
        if seq <= last_seq {
            // A command republished after the stream's de-duplication window: had already.
            return Ok(None);
        }
        let published = Published::decode(&message.payload)?;
        if published.seq != seq {
            return Err(ConsumerError::Foreign { stream_seq });
        }
        let current = assembly.get_or_insert_with(|| Assembly {
            seq,
            ts_ns: published.ts_ns,
            next: 1,
            changes: Vec::with_capacity(CHANGES_INITIAL),
        });
        if current.seq == seq && part.index < current.next {
            // A part republished (same reason): had already.
            return Ok(None);
        }
        if current.seq != seq || part.index != current.next {
            return Err(ConsumerError::Gap {
                expected: u64::from(current.next),
                found: u64::from(part.index),
            });
        }
        current.next += 1;
        current.changes.extend(published.changes);
        Ok(if part.is_last() {
            assembly.take()
        } else {
            None
        })
    }

    /// Hands a whole command to the edge; one it had before a resync keeps its book changes
    /// only.
    async fn deliver(&self, mut done: Assembly) -> Result<(), ConsumerError> {
        let delivered = self.shared.delivered_seq.load(Ordering::Acquire);
        let replayed = done.seq <= delivered;
        if replayed {
            done.changes
                .retain(|c| matches!(c, Change::Level { .. } | Change::MarketState { .. }));
        }
        self.send(FeedEvent::Command {
            seq: done.seq,
            ts_ns: done.ts_ns,
            changes: done.changes,
            replayed,
        })
        .await?;
        self.shared
            .delivered_seq
            .fetch_max(done.seq, Ordering::AcqRel);
        self.metrics.commands.inc();
        self.metrics
            .applied_seq
            .set(i64::try_from(done.seq).unwrap_or(i64::MAX));
        if !replayed {
            let now_ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            let age_ns = now_ns.saturating_sub(done.ts_ns);
            self.metrics.command_age.observe(age_ns as f64 / 1e9);
        }
        Ok(())
    }

    async fn send(&self, event: FeedEvent) -> Result<(), ConsumerError> {
        self.events
            .send(event)
            .await
            .map_err(|_| ConsumerError::Closed)
    }
}

/// Notes a reconnection (a `Connected` after a `Disconnected`) and wakes the session, which
/// continues from its position on a fresh consumer (the old one may be gone with the server).
fn connection_event(shared: &Shared, event: &async_nats::Event) {
    match event {
        async_nats::Event::Disconnected => shared.disconnected.store(true, Ordering::Release),
        async_nats::Event::Connected if shared.disconnected.swap(false, Ordering::AcqRel) => {
            shared.reconnected.store(true, Ordering::Release);
            shared.wake.notify_one();
        }
        _ => {}
    }
}

/// `operation`, or a timeout error after `timeout`.
async fn bounded<T>(
    timeout: Duration,
    what: &'static str,
    operation: impl Future<Output = T>,
) -> Result<T, ConsumerError> {
    tokio::time::timeout(timeout, operation)
        .await
        .map_err(|_| ConsumerError::Timeout(what))
}
