//! The publisher thread: follows the durable journal and publishes each command's changes.
//!
//! A session connects, makes sure the stream exists, reads the journal sequence of the
//! stream's last message, rebuilds a follower engine and views just before that command, and
//! publishes from it: the messages of that command already in the stream are dropped by
//! JetStream as duplicates (same `Nats-Msg-Id`), the rest complete it. Every later message
//! names the stream sequence it expects to follow (`Nats-Expected-Last-Sequence`), so a
//! message lost in flight makes the next ones fail instead of leaving a gap; any failure ends
//! the session, and the next one starts over from what the stream holds.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use peregrine_hotpath::{CommandKind, EngineConfig, Event, MarketId};
use peregrine_persist::Seq;
use peregrine_persist::follow::{self, DurableSource, FollowError, Follower};
use peregrine_persist::snapshot::RetentionFloor;
use peregrine_views::{Change, OrdersLimits, Views};

use crate::message::{MESSAGE_BYTES_MAX, MESSAGE_FORMAT, PART_HEADER, Part, Published, SEQ_HEADER};
use crate::metrics::FanoutMetrics;
use crate::snapshot::{BooksSnapshot, SNAPSHOT_KEY, bucket_name};
use crate::subject::MarketNames;

/// Most copies JetStream keeps of a stream.
pub const REPLICAS_MAX: usize = 5;
/// Events one command yields, allocated up front (a sweep grows the buffer).
const EVENTS_INITIAL: usize = 256;

/// What the publisher needs.
#[derive(Clone, Debug)]
pub struct FanoutConfig {
    /// NATS server(s), e.g. `nats://127.0.0.1:4222`.
    pub nats_url: String,
    /// TLS trust and credentials for it (none by default).
    pub access: crate::NatsAccess,
    /// The JetStream stream (created if absent, with the subject filters of `markets`).
    pub stream: String,
    /// The journal directory.
    pub journal_dir: PathBuf,
    /// The appliance's engine configuration (the follower must equal the engine).
    pub engine_config: EngineConfig,
    /// Market names and prefix for subjects.
    pub markets: MarketNames,
    /// How long JetStream remembers message ids: a restart must republish within it.
    pub duplicate_window: Duration,
    /// How long the stream keeps messages (late joiners replay at most this far back).
    pub max_age: Duration,
    /// Copies JetStream keeps of the stream and the snapshot bucket (3 on a 3-node cluster);
    /// applied when the stream is created.
    pub replicas: usize,
    /// Messages published and not yet acknowledged, at most.
    pub inflight_max: usize,
    /// Bound on connecting and on each acknowledgement.
    pub operation_timeout: Duration,
    /// Wait after a failed session, doubling up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest wait between sessions.
    pub backoff_max: Duration,
    /// How long an idle publisher waits for the journal before looking at its stop flag.
    pub poll_interval: Duration,
    /// How often every book is written to the snapshot bucket (when something changed): a
    /// late joiner replays at most this much of the stream after loading it.
    pub snapshot_interval: Duration,
    /// This reader's floor in the journal's retention (pass a sibling of the set in
    /// `JournalConfig::retention_floor`), raised as commands are published, so retention
    /// never deletes what a restart needs.
    pub retention_floor: Option<RetentionFloor>,
}

impl FanoutConfig {
    /// Defaults for a journal in `journal_dir` published to `nats_url`.
    pub fn new(
        nats_url: impl Into<String>,
        journal_dir: impl Into<PathBuf>,
        engine_config: EngineConfig,
    ) -> FanoutConfig {
        FanoutConfig {
            nats_url: nats_url.into(),
            access: crate::NatsAccess::default(),
            stream: "PEREGRINE".to_owned(),
            journal_dir: journal_dir.into(),
            engine_config,
            markets: MarketNames::default(),
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(24 * 3600),
            replicas: 1,
            inflight_max: 1_024,
            operation_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            poll_interval: Duration::from_millis(20),
            snapshot_interval: Duration::from_secs(1),
            retention_floor: None,
        }
    }
}

/// Why a session or the start failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FanoutError {
    /// Connecting to NATS.
    #[error("connecting to NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    /// Creating or finding the stream.
    #[error("JetStream stream: {0}")]
    Stream(#[from] jetstream::context::CreateStreamError),
    /// Reading the stream's state.
    #[error("JetStream stream info: {0}")]
    Info(#[from] stream::InfoError),
    /// Reading the stream's (or a subject's) last message.
    #[error("JetStream last message: {0}")]
    LastMessage(#[from] stream::RawMessageError),
    /// A message of the stream does not decode.
    #[error("a message in the stream: {0}")]
    Decode(#[from] crate::message::DecodeError),
    /// The stream's last message names no journal sequence: another writer uses the stream.
    #[error("the stream's message {stream_seq} has no valid {SEQ_HEADER} header")]
    ForeignMessage {
        /// Its stream sequence.
        stream_seq: u64,
    },
    /// Publishing or its acknowledgement.
    #[error("publishing: {0}")]
    Publish(#[from] jetstream::context::PublishError),
    /// Finding the snapshot bucket.
    #[error("JetStream snapshot bucket: {0}")]
    Bucket(#[from] jetstream::context::KeyValueError),
    /// Writing a snapshot.
    #[error("writing a book snapshot: {0}")]
    Snapshot(#[from] jetstream::kv::PutError),
    /// An operation took longer than the configured bound.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// Following the journal.
    #[error(transparent)]
    Follow(#[from] FollowError),
    /// The configuration.
    #[error("fan-out configuration: {0}")]
    Config(&'static str),
    /// Registering metrics.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Starting the thread or its runtime.
    #[error("fan-out thread: {0}")]
    Thread(std::io::Error),
}

/// State the thread shares with its handle.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    connected: AtomicBool,
    /// Every message of every command up to here is in the stream.
    published_seq: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The running publisher.
#[derive(Debug)]
pub struct PublisherHandle {
    shared: Arc<Shared>,
    /// Taken by the first [`PublisherHandle::stop`].
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl PublisherHandle {
    fn thread(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.thread.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last command whose messages are all in the stream.
    pub fn published_seq(&self) -> Seq {
        self.shared.published_seq.load(Ordering::Acquire)
    }

    /// Ready when the thread runs and its session is connected; else why not.
    pub fn readiness(&self) -> Result<(), String> {
        if self.thread().as_ref().is_none_or(|t| t.is_finished()) {
            return Err("fan-out publisher stopped".to_owned());
        }
        if self.shared.connected.load(Ordering::Acquire) {
            return Ok(());
        }
        let error = self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Err(format!(
            "fan-out not connected to NATS: {}",
            error.as_deref().unwrap_or("connecting")
        ))
    }

    /// Stops the thread after it settles what it has published (shared handles: the first
    /// call joins it, later ones return at once).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let thread = self.thread().take();
        if let Some(thread) = thread {
            // A panicked thread has nothing left to stop.
            let _ = thread.join();
        }
    }
}

impl Drop for PublisherHandle {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

/// The publisher.
pub struct Publisher {
    config: FanoutConfig,
    source: DurableSource,
    shared: Arc<Shared>,
    metrics: FanoutMetrics,
    events: Vec<Event>,
    changes: Vec<Change>,
    groups: Vec<(String, Vec<Change>)>,
}

impl Publisher {
    /// Starts the publisher thread.
    pub fn start(
        config: FanoutConfig,
        source: DurableSource,
        registry: &prometheus::Registry,
    ) -> Result<PublisherHandle, FanoutError> {
        if config.inflight_max == 0
            || config.backoff_min > config.backoff_max
            || !(1..=REPLICAS_MAX).contains(&config.replicas)
        {
            return Err(FanoutError::Config(
                "inflight_max must be positive, backoff_min at most backoff_max, and replicas \
                 1 to 5",
            ));
        }
        let shared = Arc::new(Shared::default());
        let mut publisher = Publisher {
            config,
            source,
            shared: Arc::clone(&shared),
            metrics: FanoutMetrics::register(registry)?,
            events: Vec::with_capacity(EVENTS_INITIAL),
            changes: Vec::with_capacity(EVENTS_INITIAL),
            groups: Vec::new(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(FanoutError::Thread)?;
        let thread = std::thread::Builder::new()
            .name("fanout".to_owned())
            .spawn(move || runtime.block_on(publisher.run()))
            .map_err(FanoutError::Thread)?;
        Ok(PublisherHandle {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Sessions until stopped, with a bounded back-off between failed ones.
    async fn run(&mut self) {
        let mut backoff = self.config.backoff_min;
        while !self.stopped() {
            match self.session().await {
                Ok(()) => return,
                Err(error) => {
                    self.shared.connected.store(false, Ordering::Release);
                    self.metrics.connected.set(0);
                    self.metrics.errors.inc();
                    tracing::warn!(%error, "fan-out session failed; starting over");
                    *self
                        .shared
                        .last_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
                }
            }
            // Bounded by the back-off; a stop ends the wait at the next poll.
            let resume_at = tokio::time::Instant::now() + backoff;
            while !self.stopped() && tokio::time::Instant::now() < resume_at {
                tokio::time::sleep(self.config.poll_interval).await;
            }
            backoff = (backoff * 2).min(self.config.backoff_max);
        }
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// One connection: from what the stream holds to the journal's durable end, until stopped
    /// or failed.
    async fn session(&mut self) -> Result<(), FanoutError> {
        let timeout = self.config.operation_timeout;
        let client = self
            .config
            .access
            .options(timeout)
            .connect(self.config.nats_url.as_str())
            .await?;
        let context = jetstream::new(client);
        let stream_config = stream::Config {
            name: self.config.stream.clone(),
            subjects: self.config.markets.filters().to_vec(),
            duplicate_window: self.config.duplicate_window,
            max_age: self.config.max_age,
            storage: stream::StorageType::File,
            num_replicas: self.config.replicas,
            ..stream::Config::default()
        };
        let mut stream = bounded(
            timeout,
            "stream",
            context.get_or_create_stream(stream_config),
        )
        .await??;
        let stream_last = bounded(timeout, "stream info", stream.info())
            .await??
            .state
            .last_sequence;
        let resume_seq = match stream_last {
            0 => 0,
            last => last_journal_seq(&stream, last, timeout).await?,
        };
        let bucket = bounded(
            timeout,
            "snapshot bucket",
            snapshot_bucket(&context, &self.config),
        )
        .await??;
        let (mut follower, mut views) = self.follower_before(resume_seq)?;
        if resume_seq > 0 {
            self.continue_books(&stream, &follower, &mut views, resume_seq)
                .await?;
        }
        self.shared.connected.store(true, Ordering::Release);
        self.metrics.connected.set(1);
        tracing::info!(resume_seq, stream_last, "fan-out publishing");
        let mut cursor = Cursor {
            context,
            bucket,
            stream_last,
            resume_seq,
            pending: VecDeque::with_capacity(self.config.inflight_max),
            snapshot_at: None,
        };
        self.publish_loop(&mut follower, &mut views, &mut cursor)
            .await
    }

    /// The follower and views just before `resume_seq` (the command the stream ends in is
    /// published again, completing it if a failure cut it).
    fn follower_before(&self, resume_seq: Seq) -> Result<(Follower, Views), FanoutError> {
        let mut views = Views::new(OrdersLimits::default());
        let follower = follow::start(
            &self.config.journal_dir,
            &self.config.engine_config,
            resume_seq.saturating_sub(1),
            self.source.torn(),
            |seq, command, events| views.observe(seq, command, events),
        )?;
        views.seed(&follower.engine, follower.applied_seq);
        Ok((follower, views))
    }

    /// Makes each book continue the sequence its last published change carries, so a
    /// subscriber sees one unbroken numbering across restarts (a restarted follower's views
    /// would otherwise number from their seed).
    async fn continue_books(
        &self,
        stream: &stream::Stream,
        follower: &Follower,
        views: &mut Views,
        resume_seq: Seq,
    ) -> Result<(), FanoutError> {
        for market in follower.engine.market_ids() {
            let subject = self.config.markets.book_subject(market);
            let last = bounded(
                self.config.operation_timeout,
                "last book change",
                stream.get_last_raw_message_by_subject(&subject),
            )
            .await?;
            let sequence = match last {
                Ok(message) => book_sequence_before(&message.payload, market, resume_seq)?,
                Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => 0,
                Err(error) => return Err(error.into()),
            };
            views.continue_book(market, sequence);
        }
        Ok(())
    }

    async fn publish_loop(
        &mut self,
        follower: &mut Follower,
        views: &mut Views,
        cursor: &mut Cursor,
    ) -> Result<(), FanoutError> {
        // Bounded by the stop flag: each pass publishes one command or waits one poll interval.
        loop {
            if self.stopped() {
                return self.settle_all(cursor, follower.applied_seq).await;
            }
            let bound = self.source.bound();
            let Some((seq, command)) = follower.tailer.next(bound)? else {
                self.settle_all(cursor, follower.applied_seq).await?;
                self.snapshot_if_due(cursor, follower, views).await?;
                self.idle(follower.applied_seq).await;
                continue;
            };
            self.events.clear();
            follower.engine.apply(&command, &mut self.events);
            follower.applied_seq = seq;
            self.changes.clear();
            if let CommandKind::NewOrder(order) = &command.kind {
                views.sequenced(seq, command.ts, order);
            }
            for event in &self.events {
                views.apply_event(seq, command.ts, event, &mut self.changes);
            }
            views.applied(seq, &mut self.changes);
            self.config.markets.group(&self.changes, &mut self.groups);
            let groups = std::mem::take(&mut self.groups);
            let count = u32::try_from(groups.len()).unwrap_or(u32::MAX);
            for (index, (subject, changes)) in (1..=count).zip(&groups) {
                let message = Published {
                    format: MESSAGE_FORMAT,
                    seq,
                    ts_ns: command.ts.0,
                    changes: changes.clone(),
                };
                let part = Part { index, count };
                self.publish(cursor, (seq, part), subject, &message).await?;
            }
            self.groups = groups;
            self.metrics.commands.inc();
            if cursor.snapshot_due(self.config.snapshot_interval) {
                self.settle_all(cursor, follower.applied_seq).await?;
                self.snapshot_if_due(cursor, follower, views).await?;
            }
        }
    }

    /// Publishes one message; the command the session resumes at is published one message
    /// at a time (some may be duplicates), the rest pipelined behind an expected sequence.
    async fn publish(
        &mut self,
        cursor: &mut Cursor,
        (seq, part): (Seq, Part),
        subject: &str,
        message: &Published,
    ) -> Result<(), FanoutError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{seq}.{subject}").as_str(),
        );
        headers.insert(SEQ_HEADER, seq.to_string().as_str());
        headers.insert(PART_HEADER, part.to_string().as_str());
        let resuming = seq <= cursor.resume_seq;
        if !resuming {
            headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
                cursor.stream_last.to_string().as_str(),
            );
        }
        let payload = message.encode();
        self.metrics.bytes.inc_by(payload.len() as u64);
        let timeout = self.config.operation_timeout;
        let ack = bounded(
            timeout,
            "publish",
            cursor
                .context
                .publish_with_headers(subject.to_owned(), headers, payload.into()),
        )
        .await??;
        if resuming {
            let ack = bounded(timeout, "acknowledgement", ack.into_future()).await??;
            if !ack.duplicate {
                cursor.stream_last = ack.sequence;
            }
            self.metrics.messages.inc();
            return Ok(());
        }
        cursor.stream_last += 1;
        cursor.pending.push_back((seq, ack));
        // Bounded by inflight_max: settle the oldest before going further.
        while cursor.pending.len() >= self.config.inflight_max {
            self.settle_one(cursor).await?;
        }
        Ok(())
    }

    async fn settle_one(&mut self, cursor: &mut Cursor) -> Result<(), FanoutError> {
        let Some((seq, ack)) = cursor.pending.pop_front() else {
            return Ok(());
        };
        bounded(
            self.config.operation_timeout,
            "acknowledgement",
            ack.into_future(),
        )
        .await??;
        self.metrics.messages.inc();
        // Messages of later commands are still in flight: this command's are all in (acks
        // come in order), but not necessarily every message of `seq` itself.
        self.published(seq.saturating_sub(1));
        Ok(())
    }

    /// Every message of every command up to `seq` is in the stream: a restart resumes at the
    /// stream's last command, so it needs the journal from `seq` on (and a snapshot below).
    fn published(&self, seq: Seq) {
        self.shared.published_seq.fetch_max(seq, Ordering::AcqRel);
        if let Some(floor) = &self.config.retention_floor {
            floor.raise(seq.saturating_sub(1));
        }
    }

    async fn settle_all(&mut self, cursor: &mut Cursor, applied: Seq) -> Result<(), FanoutError> {
        // Bounded by inflight_max.
        while !cursor.pending.is_empty() {
            self.settle_one(cursor).await?;
        }
        self.published(applied);
        self.metrics
            .published_seq
            .set(i64::try_from(applied).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Writes every book to the snapshot bucket when the interval has passed and something was
    /// applied since the last one. Call with everything up to the follower's command settled:
    /// the snapshot names the stream sequence to replay from.
    async fn snapshot_if_due(
        &self,
        cursor: &mut Cursor,
        follower: &Follower,
        views: &Views,
    ) -> Result<(), FanoutError> {
        let seq = follower.applied_seq;
        if !cursor.snapshot_due(self.config.snapshot_interval)
            || cursor.snapshot_at.is_some_and(|(_, at)| at >= seq)
        {
            return Ok(());
        }
        assert!(
            cursor.pending.is_empty(),
            "a snapshot of unsettled messages"
        );
        let started = std::time::Instant::now();
        let markets = follower.engine.market_ids();
        let snapshot = BooksSnapshot {
            format: MESSAGE_FORMAT,
            seq,
            stream_seq: cursor.stream_last,
            books: views
                .books()
                .map(|(market, book)| (market, book.snapshot(usize::MAX, usize::MAX)))
                .collect(),
            halted: markets
                .into_iter()
                .filter(|market| views.market(*market).is_some_and(|m| m.halted))
                .collect(),
        };
        cursor.snapshot_at = Some((tokio::time::Instant::now(), seq));
        let bytes = snapshot.encode();
        if bytes.len() > MESSAGE_BYTES_MAX {
            // Books this deep do not fit a NATS message: late joiners wait for a smaller one.
            tracing::warn!(bytes = bytes.len(), "book snapshot too large to publish");
            self.metrics.snapshot_errors.inc();
            return Ok(());
        }
        bounded(
            self.config.operation_timeout,
            "snapshot",
            cursor.bucket.put(SNAPSHOT_KEY, bytes.into()),
        )
        .await??;
        self.metrics.snapshots.inc();
        self.metrics
            .snapshot_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Waits for the journal to pass `applied`, at most one poll interval, without blocking
    /// the runtime (the NATS connection is driven by this thread).
    async fn idle(&self, applied: Seq) {
        let source = self.source.clone();
        let poll = self.config.poll_interval;
        let waited = tokio::task::spawn_blocking(move || source.wait_after(applied, poll)).await;
        if waited.is_err() {
            tokio::time::sleep(poll).await;
        }
    }
}

/// Where a session stands in the stream.
struct Cursor {
    context: jetstream::Context,
    /// The snapshot bucket.
    bucket: jetstream::kv::Store,
    /// When the last snapshot was written, and its command.
    snapshot_at: Option<(tokio::time::Instant, Seq)>,
    /// The stream sequence the next message must follow.
    stream_last: u64,
    /// The command the session started at (its messages may be in the stream already).
    resume_seq: Seq,
    /// Published, not yet acknowledged: (command sequence, acknowledgement).
    pending: VecDeque<(Seq, PublishAckFuture)>,
}

impl Cursor {
    fn snapshot_due(&self, interval: Duration) -> bool {
        self.snapshot_at
            .is_none_or(|(at, _)| at.elapsed() >= interval)
    }
}

/// The snapshot bucket beside the stream (one value, kept in a file like the stream). Its
/// stream is made here with the key-value conventions (`KV_<bucket>`, subjects
/// `$KV.<bucket>.>`, one message per key) rather than by `create_key_value`, which first asks
/// for the account's limits in a shape nats-server 2.9 (Debian's) does not answer.
async fn snapshot_bucket(
    context: &jetstream::Context,
    config: &FanoutConfig,
) -> Result<jetstream::kv::Store, FanoutError> {
    let bucket = bucket_name(&config.stream);
    const _: () = assert!(MESSAGE_BYTES_MAX <= i32::MAX as usize);
    context
        .get_or_create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_message_size: MESSAGE_BYTES_MAX as i32,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: config.replicas,
            ..stream::Config::default()
        })
        .await?;
    Ok(context.get_key_value(bucket).await?)
}

/// The book sequence of `market` before command `resume_seq`, from the last published book
/// message: its last change, less its own changes if it is `resume_seq`'s (which is published
/// again).
fn book_sequence_before(
    payload: &[u8],
    market: MarketId,
    resume_seq: Seq,
) -> Result<u64, FanoutError> {
    let message = Published::decode(payload)?;
    let mut last = 0_u64;
    let mut count = 0_u64;
    for change in &message.changes {
        if let Change::Level { market: m, change } = change
            && *m == market
        {
            last = change.sequence;
            count += 1;
        }
    }
    Ok(if message.seq >= resume_seq {
        last.saturating_sub(count)
    } else {
        last
    })
}

/// The journal sequence the stream's message `stream_seq` carries.
async fn last_journal_seq(
    stream: &stream::Stream,
    stream_seq: u64,
    timeout: Duration,
) -> Result<Seq, FanoutError> {
    let message = bounded(timeout, "last message", stream.get_raw_message(stream_seq)).await??;
    message
        .headers
        .get(SEQ_HEADER)
        .and_then(|value| value.as_str().parse::<Seq>().ok())
        .ok_or(FanoutError::ForeignMessage { stream_seq })
}

/// `operation`, or a timeout error after `timeout`.
async fn bounded<T>(
    timeout: Duration,
    what: &'static str,
    operation: impl Future<Output = T>,
) -> Result<T, FanoutError> {
    tokio::time::timeout(timeout, operation)
        .await
        .map_err(|_| FanoutError::Timeout(what))
}
