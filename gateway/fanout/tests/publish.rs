//! The publisher against a real NATS server with JetStream (`scripts/test` starts one on
//! loopback and exports `NATS_URL`): every durable command's changes reach the stream once, in
//! order, with every book's sequence unbroken — also across publisher restarts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use peregrine_fanout::{FanoutConfig, MarketNames, Published, Publisher, PublisherHandle};
use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_hotpath::{Engine, EngineConfig, Event, MarketId, Price, Qty, Side, Trade};
use peregrine_persist::follow::DurableSource;
use peregrine_persist::{Journal, JournalConfig, JournalError, JournalWriter, open};
use peregrine_views::Change;

/// How long the publisher may take to catch up with the journal in a test.
const CATCH_UP_MAX: Duration = Duration::from_secs(60);

fn nats_url() -> String {
    match std::env::var("NATS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "NATS_URL is not set: run the tests with `scripts/test`, which starts nats-server \
             with JetStream on loopback and exports it"
        ),
    }
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        max_accounts: 256,
        max_currencies: 8,
        max_markets: 4,
        max_orders: 1 << 15,
        max_levels_per_side: 1_024,
        max_open_orders_per_account: 1_000,
        order_rate_per_sec: 0,
        balance_events: true,
        ..EngineConfig::default()
    }
}

/// A journal fed by a seeded flow, with the trades the engine made.
struct Exchange {
    _dir: tempfile::TempDir,
    config: JournalConfig,
    writer: Option<JournalWriter>,
    journal: Journal,
    engine: Engine,
    flow: Flow,
    trades: Vec<Trade>,
    last_seq: u64,
    setup_done: bool,
}

impl Exchange {
    fn new(seed: u64) -> Exchange {
        let dir = tempfile::tempdir().unwrap();
        let mut config = JournalConfig::new(dir.path().join("journal"));
        config.segment_bytes = 1 << 20;
        config.snapshot_every_commands = 0;
        config.snapshot_every = None;
        let (recovered, writer) = open(&config, engine_config()).unwrap();
        Exchange {
            _dir: dir,
            journal: writer.journal().clone(),
            config,
            writer: Some(writer),
            engine: recovered.engine,
            flow: Flow::new(FlowParams {
                seed,
                accounts: 100,
                markets: 2,
                tracked_orders: 2_000,
                ioc_percent: 15,
                ..FlowParams::default()
            }),
            trades: Vec::new(),
            last_seq: recovered.last_seq,
            setup_done: false,
        }
    }

    fn run(&mut self, count: usize) {
        let mut commands = Vec::new();
        if !self.setup_done {
            self.setup_done = true;
            commands.extend(self.flow.setup());
        }
        let mut events = Vec::new();
        for index in 0..commands.len() + count {
            let command = match commands.get(index) {
                Some(command) => command.clone(),
                None => self.flow.next_command(),
            };
            let seq = loop {
                match self.journal.append(&command) {
                    Ok(seq) => break seq,
                    Err(JournalError::Busy { .. }) => std::thread::yield_now(),
                    Err(other) => panic!("append: {other}"),
                }
            };
            self.last_seq = seq;
            events.clear();
            self.engine.apply(&command, &mut events);
            self.flow.observe(&events);
            self.trades.extend(events.iter().filter_map(|e| match e {
                Event::Trade(trade) => Some(trade.clone()),
                _ => None,
            }));
        }
        self.journal
            .wait_durable(self.last_seq, Duration::from_secs(10))
            .unwrap();
    }

    fn publisher(&self, prefix: &str) -> PublisherHandle {
        self.publisher_with(prefix, Duration::from_secs(1))
    }

    /// A publisher writing book snapshots every `snapshot_interval`.
    fn publisher_with(&self, prefix: &str, snapshot_interval: Duration) -> PublisherHandle {
        let mut config = FanoutConfig::new(nats_url(), &self.config.dir, engine_config());
        config.snapshot_interval = snapshot_interval;
        config.stream = prefix.to_uppercase();
        config.markets = MarketNames::new([(MarketId(0), "btcusd".to_owned())])
            .unwrap()
            .with_prefix(prefix)
            .unwrap();
        config.backoff_min = Duration::from_millis(20);
        config.backoff_max = Duration::from_millis(200);
        config.poll_interval = Duration::from_millis(5);
        // A small window so the tests also cover acknowledgements settling mid-command.
        config.inflight_max = 16;
        Publisher::start(
            config,
            DurableSource::Journal(self.journal.clone()),
            &prometheus::Registry::new(),
        )
        .unwrap()
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            let _ = writer.shutdown();
        }
    }
}

/// A prefix (and stream name) no other test run uses.
fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{}-{test}-{}", std::process::id(), nanos % 1_000_000_000)
}

fn wait_published(handle: &PublisherHandle, seq: u64) {
    let start = Instant::now();
    while handle.published_seq() < seq {
        assert!(
            start.elapsed() < CATCH_UP_MAX,
            "published {} of {seq}: {:?}",
            handle.published_seq(),
            handle.readiness()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    handle.readiness().unwrap();
}

/// Every message of the stream, in stream order: (subject, message id, decoded message).
fn read_stream(stream_name: &str) -> Vec<(String, String, Published)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(nats_url()).await.unwrap();
        let context = jetstream::new(client);
        let mut stream = context.get_stream(stream_name).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut messages = Vec::new();
        for sequence in 1..=last {
            let message = stream.get_raw_message(sequence).await.unwrap();
            let id = message
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .unwrap()
                .to_string();
            let published = Published::decode(&message.payload).unwrap();
            messages.push((message.subject.to_string(), id, published));
        }
        context.delete_stream(stream_name).await.unwrap();
        let bucket = peregrine_fanout::snapshot::bucket_name(stream_name);
        context.delete_key_value(bucket).await.unwrap();
        messages
    })
}

/// What a subscriber to everything sees is whole: no message twice, commands in order, every
/// book's sequence unbroken, and the trades the engine made, in its order.
fn assert_whole(messages: &[(String, String, Published)], exchange: &Exchange) {
    let ids: BTreeSet<&str> = messages.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), messages.len(), "a message id twice");
    assert!(
        messages.windows(2).all(|w| w[0].2.seq <= w[1].2.seq),
        "commands out of order"
    );
    let mut book_seqs: BTreeMap<MarketId, u64> = BTreeMap::new();
    let mut books: BTreeMap<(MarketId, bool, Price), Qty> = BTreeMap::new();
    let mut trades = Vec::new();
    for (subject, _, message) in messages {
        for change in &message.changes {
            match change {
                Change::Level { market, change } => {
                    assert!(subject.ends_with(".ob-inc"), "{subject}");
                    let last = book_seqs.entry(*market).or_insert(0);
                    assert_eq!(change.sequence, *last + 1, "book {market:?} skipped");
                    *last = change.sequence;
                    books.insert(
                        (*market, change.side == Side::Buy, change.price),
                        change.qty,
                    );
                }
                Change::Trade(trade) => {
                    assert!(subject.ends_with(".trades"), "{subject}");
                    trades.push((trade.trade, trade.price, trade.qty));
                }
                _ => {}
            }
        }
    }
    let want: Vec<_> = exchange
        .trades
        .iter()
        .map(|t| (t.trade, t.price, t.qty))
        .collect();
    assert!(!want.is_empty(), "the flow trades");
    assert_eq!(trades, want, "trades");
    assert_eq!(messages.last().unwrap().2.seq, exchange.last_seq);
    // The levels the changes leave are the engine's book.
    books.retain(|_, qty| qty.0 != 0);
    let mut engine_books = BTreeMap::new();
    for market in exchange.engine.market_ids() {
        for side in [Side::Buy, Side::Sell] {
            for (price, qty) in exchange.engine.depth(market, side, usize::MAX) {
                engine_books.insert((market, side == Side::Buy, price), qty);
            }
        }
    }
    let differing: Vec<_> = books
        .keys()
        .chain(engine_books.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|key| books.get(key) != engine_books.get(key))
        .map(|key| (key, books.get(key), engine_books.get(key)))
        .collect();
    assert!(
        differing.is_empty(),
        "levels (published, engine): {differing:?}"
    );
}

#[test]
fn every_durable_change_reaches_the_stream_once_and_in_order() {
    let prefix = unique_prefix("whole");
    let mut exchange = Exchange::new(5);
    exchange.run(1_500);
    let handle = exchange.publisher(&prefix);
    // Published while the exchange goes on too.
    exchange.run(1_500);
    wait_published(&handle, exchange.last_seq);
    handle.stop();
    let messages = read_stream(&prefix.to_uppercase());
    assert!(messages.iter().any(|(s, _, _)| s.contains(".md.btcusd.")));
    assert!(messages.iter().any(|(s, _, _)| s.contains(".user.")));
    assert_whole(&messages, &exchange);
}

#[test]
fn a_publisher_stopped_and_restarted_leaves_no_gap_and_no_duplicate() {
    let prefix = unique_prefix("restart");
    let clean_prefix = unique_prefix("clean");
    let mut exchange = Exchange::new(9);
    exchange.run(500);
    // Stopped at arbitrary points (mid-command as often as not), then started again.
    for round in 0..4 {
        let handle = exchange.publisher(&prefix);
        exchange.run(400);
        std::thread::sleep(Duration::from_millis(5 * round));
        handle.stop();
    }
    let handle = exchange.publisher(&prefix);
    wait_published(&handle, exchange.last_seq);
    handle.stop();
    let restarted = read_stream(&prefix.to_uppercase());
    assert_whole(&restarted, &exchange);
    // The same as one uninterrupted publisher's stream, message for message.
    let clean = exchange.publisher(&clean_prefix);
    wait_published(&clean, exchange.last_seq);
    clean.stop();
    let uninterrupted = read_stream(&clean_prefix.to_uppercase());
    let strip = |messages: &[(String, String, Published)], prefix: &str| -> Vec<_> {
        messages
            .iter()
            .map(|(s, _, m)| (s.trim_start_matches(prefix).to_owned(), m.clone()))
            .collect()
    };
    let (restarted, uninterrupted) = (
        strip(&restarted, &prefix),
        strip(&uninterrupted, &clean_prefix),
    );
    if let Some(at) =
        (0..restarted.len().min(uninterrupted.len())).find(|&i| restarted[i] != uninterrupted[i])
    {
        panic!(
            "message {at} differs:\n  restarted:     {:?}\n  uninterrupted: {:?}",
            restarted[at], uninterrupted[at]
        );
    }
    assert_eq!(restarted.len(), uninterrupted.len(), "message count");
}

/// A late joiner: loads the book snapshot the publisher wrote mid-stream and replays the
/// stream from the sequence it names; its books end equal to the engine's, every level change
/// following the last, and it sees every trade after the snapshot once.
#[test]
fn a_late_joiner_loads_the_snapshot_and_replays_from_its_sequence() {
    use peregrine_fanout::{Consumer, ConsumerConfig, FeedEvent};
    use peregrine_views::Book;

    let prefix = unique_prefix("late");
    let mut exchange = Exchange::new(11);
    exchange.run(1_000);
    let handle = exchange.publisher(&prefix);
    wait_published(&handle, exchange.last_seq);
    // Snapshots are written once a second: the one the joiner loads is from before these.
    std::thread::sleep(Duration::from_millis(1_200));
    exchange.run(1_000);
    wait_published(&handle, exchange.last_seq);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (books, seed_seq, trades) = runtime.block_on(async {
        let config = ConsumerConfig::new(nats_url(), prefix.to_uppercase());
        let (consumer, mut events) = Consumer::start(config, &prometheus::Registry::new()).unwrap();
        let mut books: BTreeMap<MarketId, Book> = BTreeMap::new();
        let (mut seed_seq, mut trades) = (None, Vec::new());
        let deadline = tokio::time::Instant::now() + CATCH_UP_MAX;
        loop {
            let event = tokio::time::timeout_at(deadline, events.recv())
                .await
                .expect("the joiner caught up")
                .unwrap();
            match event {
                FeedEvent::Seed(snapshot) => {
                    assert!(seed_seq.is_none(), "a resync: {snapshot:?}");
                    seed_seq = Some(snapshot.seq);
                    for (market, book) in &snapshot.books {
                        books.entry(*market).or_default().mirror(book);
                    }
                }
                FeedEvent::Command {
                    seq,
                    changes,
                    replayed,
                    ..
                } => {
                    assert!(!replayed);
                    for change in changes {
                        match change {
                            Change::Level { market, change } => {
                                books.entry(market).or_default().follow(change).unwrap();
                            }
                            Change::Trade(trade) => trades.push(trade.trade),
                            _ => {}
                        }
                    }
                    if seq == exchange.last_seq {
                        break;
                    }
                }
                _ => {}
            }
        }
        consumer.stop().await;
        (books, seed_seq.unwrap(), trades)
    });
    handle.stop();
    read_stream(&prefix.to_uppercase());
    assert!(seed_seq > 0 && seed_seq < exchange.last_seq, "{seed_seq}");
    for market in exchange.engine.market_ids() {
        let book = books.get(&market).cloned().unwrap_or_default();
        let snapshot = book.snapshot(usize::MAX, usize::MAX);
        assert_eq!(
            snapshot.bids,
            exchange.engine.depth(market, Side::Buy, usize::MAX)
        );
        assert_eq!(
            snapshot.asks,
            exchange.engine.depth(market, Side::Sell, usize::MAX)
        );
    }
    let after: Vec<_> = exchange.trades.iter().map(|t| t.trade).collect();
    assert!(!trades.is_empty());
    assert_eq!(
        trades,
        after[after.len() - trades.len()..],
        "trades after the snapshot"
    );
}

/// A resync asked for by the edge reloads the snapshot; the commands the edge already had are
/// replayed for the books only, so its books end equal to the engine's and no trade comes twice.
#[test]
fn a_resync_replays_delivered_commands_for_the_books_only() {
    use peregrine_fanout::{Consumer, ConsumerConfig, FeedEvent};
    use peregrine_views::Book;

    let prefix = unique_prefix("resync");
    let mut exchange = Exchange::new(13);
    exchange.run(800);
    // One snapshot, at the first idle moment: everything after it is replayed on resync.
    let handle = exchange.publisher_with(&prefix, Duration::from_secs(3_600));
    wait_published(&handle, exchange.last_seq);
    exchange.run(800);
    wait_published(&handle, exchange.last_seq);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (books, trades, replayed) = runtime.block_on(async {
        let config = ConsumerConfig::new(nats_url(), prefix.to_uppercase());
        let (consumer, mut events) = Consumer::start(config, &prometheus::Registry::new()).unwrap();
        let mut books: BTreeMap<MarketId, Book> = BTreeMap::new();
        let (mut trades, mut replayed, mut seeds) = (Vec::new(), 0_usize, 0);
        let deadline = tokio::time::Instant::now() + CATCH_UP_MAX;
        // Bounded by the deadline.
        loop {
            let event = tokio::time::timeout_at(deadline, events.recv())
                .await
                .expect("the consumer went on")
                .unwrap();
            match event {
                FeedEvent::Seed(snapshot) => {
                    seeds += 1;
                    books.clear();
                    for (market, book) in &snapshot.books {
                        books.entry(*market).or_default().mirror(book);
                    }
                }
                FeedEvent::Command {
                    seq,
                    changes,
                    replayed: again,
                    ..
                } => {
                    replayed += usize::from(again);
                    for change in changes {
                        match change {
                            Change::Level { market, change } => {
                                books.entry(market).or_default().follow(change).unwrap();
                            }
                            Change::Trade(trade) => trades.push(trade.trade),
                            _ => {}
                        }
                    }
                    if seq == exchange.last_seq {
                        if seeds == 1 {
                            consumer.resync();
                        } else {
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        consumer.stop().await;
        (books, trades, replayed)
    });
    handle.stop();
    read_stream(&prefix.to_uppercase());
    assert!(replayed > 0, "nothing was replayed");
    for market in exchange.engine.market_ids() {
        let snapshot = books
            .get(&market)
            .cloned()
            .unwrap_or_default()
            .snapshot(usize::MAX, usize::MAX);
        assert_eq!(
            snapshot.bids,
            exchange.engine.depth(market, Side::Buy, usize::MAX)
        );
        assert_eq!(
            snapshot.asks,
            exchange.engine.depth(market, Side::Sell, usize::MAX)
        );
    }
    let unique: BTreeSet<_> = trades.iter().collect();
    assert_eq!(unique.len(), trades.len(), "a trade twice");
    let all: Vec<_> = exchange.trades.iter().map(|t| t.trade).collect();
    assert_eq!(
        trades,
        all[all.len() - trades.len()..],
        "trades after the snapshot, once"
    );
}
