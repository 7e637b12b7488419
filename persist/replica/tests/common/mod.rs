//! Shared by the replica's integration tests: a journaling exchange that keeps the reference
//! engine and what it emitted, databases made per test, a cuttable TCP proxy, and the
//! comparison of the replica with the engine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_hotpath::{Engine, EngineConfig, Event, OrderId, Trade};
use peregrine_persist::snapshot::RetentionFloor;
use peregrine_persist::{Journal, JournalConfig, JournalError, JournalWriter, Snapshotter, open};
use peregrine_replica::admin;
use peregrine_replica::db::Conn;
use peregrine_replica::{Dialect, ReplicaConfig};

/// The engine configuration of every test exchange.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        max_accounts: 512,
        max_currencies: 8,
        max_markets: 8,
        max_orders: 1 << 16,
        max_levels_per_side: 1_024,
        max_pending_withdrawals: 64,
        max_open_orders_per_account: 1_000,
        order_rate_per_sec: 0,
        order_burst: 100,
        balance_events: true,
        ..EngineConfig::default()
    }
}

/// The MariaDB URL the test command exports. Absent: the test fails (it must never skip).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: the replica's MariaDB tests need it \
             (e.g. mysql://root@127.0.0.1:3306/peregrine_test); the test command exports it"
        )
    })
}

/// A MariaDB database of its own for one test, dropped at the end.
pub struct TestDb {
    pub url: String,
}

impl TestDb {
    pub fn new(test: &str) -> TestDb {
        let base = database_url();
        let (_, base_name) = admin::split_mysql_url(&base).unwrap();
        let name = format!("{base_name}_{test}_{}", std::process::id());
        let url = admin::with_database(&base, &name).unwrap();
        admin::drop_mysql_database(&url).unwrap();
        admin::create_mysql_database(&url).unwrap();
        TestDb { url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin::drop_mysql_database(&self.url);
    }
}

/// The SQLite URL of a file in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!(
        "sqlite://{}",
        dir.join("replica").join("replica.db").display()
    )
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// What the reference engine emitted, for comparison.
#[derive(Default)]
pub struct Reference {
    pub trades: Vec<Trade>,
    pub orders: BTreeSet<OrderId>,
    /// Every accepted order's owner.
    pub owners: BTreeMap<OrderId, peregrine_hotpath::AccountId>,
    pub order_events: usize,
    pub deposits: usize,
    /// Balance cells changed, counted once per command that changed them.
    pub balance_cells: usize,
}

/// An appliance in miniature: a journal, the engine fed by a seeded flow, optionally snapshots.
pub struct Exchange {
    pub dir: tempfile::TempDir,
    pub config: JournalConfig,
    pub writer: Option<JournalWriter>,
    pub journal: Journal,
    pub engine: Engine,
    pub flow: Flow,
    pub snapshotter: Option<Snapshotter>,
    pub reference: Reference,
    pub last_seq: u64,
    events: Vec<Event>,
    setup_done: bool,
}

impl Exchange {
    /// A fresh exchange; `tune` may change the journal configuration (segments, snapshots).
    pub fn new(seed: u64, tune: impl FnOnce(&mut JournalConfig)) -> Exchange {
        let dir = tempfile::tempdir().unwrap();
        let mut config = JournalConfig::new(dir.path().join("journal"));
        config.segment_bytes = 1 << 20;
        config.snapshot_every_commands = 0;
        config.snapshot_every = None;
        tune(&mut config);
        let (recovered, writer) = open(&config, engine_config()).unwrap();
        let journal = writer.journal().clone();
        let snapshotter = (config.snapshot_every_commands > 0)
            .then(|| Snapshotter::start(&config, journal.clone(), recovered.last_seq));
        Exchange {
            dir,
            config,
            writer: Some(writer),
            journal,
            engine: recovered.engine,
            flow: Flow::new(FlowParams {
                seed,
                accounts: 200,
                markets: 2,
                tracked_orders: 3_000,
                ioc_percent: 15,
                ..FlowParams::default()
            }),
            snapshotter,
            reference: Reference::default(),
            last_seq: recovered.last_seq,
            events: Vec::with_capacity(256),
            setup_done: false,
        }
    }

    pub fn journal_dir(&self) -> &Path {
        &self.config.dir
    }

    /// A replica configuration for this exchange.
    pub fn replica_config(&self, database_url: &str) -> ReplicaConfig {
        let mut config = ReplicaConfig::new(database_url, self.journal_dir(), engine_config());
        config.backoff_min = Duration::from_millis(20);
        config.backoff_max = Duration::from_millis(200);
        config.poll_interval = Duration::from_millis(5);
        config.operation_timeout = Duration::from_secs(10);
        config.retention_floor = self.config.retention_floor.clone();
        config
    }

    /// Journals and applies one command (stamped now); returns its sequence.
    pub fn step(&mut self, mut command: peregrine_hotpath::Envelope) -> u64 {
        command.ts = peregrine_hotpath::TimestampNs(now_ns());
        let seq = loop {
            match self.journal.append(&command) {
                Ok(seq) => break seq,
                Err(JournalError::Busy { .. }) => std::thread::yield_now(),
                Err(other) => panic!("append: {other}"),
            }
        };
        assert_eq!(seq, self.last_seq + 1);
        self.last_seq = seq;
        self.events.clear();
        self.engine.apply(&command, &mut self.events);
        self.flow.observe(&self.events);
        let mut cells: Vec<_> = self
            .events
            .iter()
            .flat_map(|e| {
                let changes = e.balance_changes();
                let cells: Vec<_> = changes
                    .as_slice()
                    .iter()
                    .map(|c| (c.account, c.currency))
                    .collect();
                cells
            })
            .collect();
        cells.sort_unstable();
        cells.dedup();
        self.reference.balance_cells += cells.len();
        for event in &self.events {
            match event {
                Event::Trade(trade) => self.reference.trades.push(trade.clone()),
                Event::OrderAccepted { order, account, .. } => {
                    self.reference.orders.insert(*order);
                    self.reference.owners.insert(*order, *account);
                    self.reference.order_events += 1;
                }
                Event::OrderRested { .. }
                | Event::StopTriggered { .. }
                | Event::OrderFilled { .. }
                | Event::OrderCancelled { .. }
                | Event::OrderReplaced { .. } => self.reference.order_events += 1,
                Event::Deposited { .. } => self.reference.deposits += 1,
                _ => {}
            }
        }
        if let Some(snapshotter) = self.snapshotter.as_mut()
            && snapshotter.maybe_take(&self.engine, seq).unwrap().is_some()
        {
            // Written before going on, so which snapshots exist does not depend on timing.
            let start = Instant::now();
            while snapshotter.written_seq() < seq {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "snapshot not written"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        seq
    }

    /// Runs the flow's setup (first call only) and then `count` flow commands.
    pub fn run(&mut self, count: usize) -> u64 {
        if !self.setup_done {
            self.setup_done = true;
            for command in self.flow.setup() {
                self.step(command);
            }
        }
        for _ in 0..count {
            let command = self.flow.next_command();
            self.step(command);
        }
        self.last_seq
    }

    /// Waits until everything appended is durable.
    pub fn wait_durable(&self) {
        let durable = self
            .journal
            .wait_durable(self.last_seq, Duration::from_secs(10))
            .unwrap();
        assert_eq!(durable, self.last_seq);
    }

    /// Stops the writer (and the snapshotter): the journal is closed.
    pub fn close(&mut self) {
        if let Some(snapshotter) = self.snapshotter.take() {
            snapshotter.finish().unwrap();
        }
        if let Some(writer) = self.writer.take() {
            writer.shutdown().unwrap();
        }
    }
}

/// Runs a text query against the replica.
pub fn query(database_url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = Conn::connect(database_url).await.unwrap();
        let rows = conn.query_text(sql).await.unwrap();
        conn.close().await;
        rows
    })
}

fn text(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("NULL")
}

fn int(value: &Option<String>) -> i128 {
    text(value)
        .parse()
        .unwrap_or_else(|_| panic!("not an integer: {value:?}"))
}

/// The replica's high-water mark.
pub fn high_water(database_url: &str) -> u64 {
    let rows = query(
        database_url,
        &format!(
            "SELECT {} FROM replication_state WHERE id = 1",
            cast(database_url, "high_water_seq")
        ),
    );
    int(&rows[0][0]) as u64
}

fn cast(database_url: &str, expression: &str) -> String {
    Dialect::from_url(database_url)
        .unwrap()
        .cast_text(expression)
}

fn count(database_url: &str, table: &str) -> usize {
    let rows = query(
        database_url,
        &format!("SELECT {} FROM {table}", cast(database_url, "COUNT(*)")),
    );
    int(&rows[0][0]) as usize
}

/// Asserts that the replica equals the engine: every trade, every order's state, balances
/// recomputed from the ledger rows, double entry per command and currency, and the counts of
/// the history tables (no duplicate, no gap).
pub fn assert_replica_matches(database_url: &str, exchange: &Exchange) {
    let c = |e: &str| cast(database_url, e);
    assert_eq!(
        high_water(database_url),
        exchange.last_seq,
        "high-water mark"
    );

    // Trades: the same ids with the same content.
    let rows = query(
        database_url,
        &format!(
            "SELECT {}, {}, {}, {}, {}, {}, {} FROM trades ORDER BY trade_id",
            c("trade_id"),
            c("market_id"),
            c("price"),
            c("qty"),
            c("maker_order_id"),
            c("taker_order_id"),
            c("maker_fee + taker_fee")
        ),
    );
    assert_eq!(rows.len(), exchange.reference.trades.len(), "trade count");
    for (row, trade) in rows.iter().zip(&exchange.reference.trades) {
        let got: Vec<i128> = row.iter().map(int).collect();
        let want = vec![
            i128::from(trade.trade.0),
            i128::from(trade.market.0),
            i128::from(trade.price.0),
            i128::from(trade.qty.0),
            i128::from(trade.maker_order.0),
            i128::from(trade.taker_order.0),
            i128::from(trade.maker_fee.0) + i128::from(trade.taker_fee.0),
        ];
        assert_eq!(got, want, "trade {}", trade.trade.0);
    }

    // Orders: every accepted order, live ones with the engine's price and open quantity.
    let rows = query(
        database_url,
        &format!(
            "SELECT {}, status, {}, {} FROM orders ORDER BY order_id",
            c("order_id"),
            c("price"),
            c("open_qty")
        ),
    );
    assert_eq!(rows.len(), exchange.reference.orders.len(), "order count");
    let mut live = 0_usize;
    for row in &rows {
        let id = OrderId(int(&row[0]) as u64);
        assert!(
            exchange.reference.orders.contains(&id),
            "unknown order {id}"
        );
        let status = text(&row[1]);
        match exchange.engine.order(id) {
            Some(view) => {
                live += 1;
                let want_status = if view.pending_stop {
                    "pending_stop"
                } else {
                    "open"
                };
                assert_eq!(status, want_status, "order {id}");
                assert_eq!(int(&row[2]), i128::from(view.price.0), "order {id} price");
                assert_eq!(int(&row[3]), i128::from(view.qty.0), "order {id} open qty");
            }
            None => {
                assert!(
                    status == "filled" || status == "cancelled",
                    "order {id} is gone from the engine but {status} in the replica"
                );
                // Its last price, whichever batch it was accepted in.
                assert_ne!(int(&row[2]), 0, "order {id} ({status}) has no price");
            }
        }
    }
    assert_eq!(
        live,
        exchange.engine.live_orders() as usize,
        "live order count"
    );

    // Balances from the ledger rows alone, exactly.
    let rows = query(
        database_url,
        &format!(
            "SELECT {}, {}, {}, {} FROM ledger_entries WHERE party = 'account' \
             GROUP BY account_id, currency_id",
            c("account_id"),
            c("currency_id"),
            c("SUM(available_delta)"),
            c("SUM(locked_delta)")
        ),
    );
    let replica: BTreeMap<(u32, u16), (i128, i128)> = rows
        .iter()
        .map(|row| {
            (
                (int(&row[0]) as u32, int(&row[1]) as u16),
                (int(&row[2]), int(&row[3])),
            )
        })
        .filter(|(_, sums)| *sums != (0, 0))
        .collect();
    let engine: BTreeMap<(u32, u16), (i128, i128)> = exchange
        .engine
        .ledger()
        .nonzero()
        .map(|(account, currency, b)| {
            (
                (account.0, currency.0),
                (i128::from(b.available), i128::from(b.locked)),
            )
        })
        .collect();
    assert!(!engine.is_empty());
    assert_eq!(replica, engine, "balances recomputed from the ledger");

    // Double entry: every command's entries sum to zero per currency.
    let unbalanced = query(
        database_url,
        &format!(
            "SELECT {} FROM ledger_entries GROUP BY seq, currency_id \
             HAVING SUM(available_delta + locked_delta) <> 0",
            c("seq")
        ),
    );
    assert!(unbalanced.is_empty(), "unbalanced commands: {unbalanced:?}");

    // History tables: exactly one row per event.
    assert_eq!(
        count(database_url, "order_events"),
        exchange.reference.order_events,
        "order events"
    );
    assert_eq!(
        count(database_url, "deposits"),
        exchange.reference.deposits,
        "deposits"
    );
    // A cell's change is one entry, or two when the command's own part and its trades' part
    // are told apart.
    let account_cells = query(
        database_url,
        &format!(
            "SELECT {} FROM (SELECT DISTINCT seq, account_id, currency_id FROM ledger_entries \
             WHERE party = 'account') AS cells",
            c("COUNT(*)")
        ),
    );
    assert_eq!(
        int(&account_cells[0][0]) as usize,
        exchange.reference.balance_cells,
        "ledger entries for each balance change"
    );
    // Fills are labelled `trade`: exactly the commands that traded have such entries, and every
    // fee is one.
    let traded = |sql: &str| int(&query(database_url, &format!("SELECT {}", c(sql)))[0][0]);
    assert_eq!(
        traded(
            "(SELECT COUNT(DISTINCT seq) FROM ledger_entries \
             WHERE party = 'account' AND cause = 'trade')"
        ),
        traded("(SELECT COUNT(DISTINCT seq) FROM trades)"),
        "commands with trade entries"
    );
    assert_eq!(
        traded("(SELECT COUNT(*) FROM ledger_entries WHERE party = 'fees' AND cause <> 'trade')"),
        0,
        "fees not labelled trade"
    );
    // What an order command does besides its trades only moves amounts between available and
    // locked: an entry that changes a total is a fill counted as the command's own.
    assert_eq!(
        traded(
            "(SELECT COUNT(*) FROM ledger_entries WHERE party = 'account' \
             AND cause IN ('new_order', 'cancel', 'cancel_replace', 'mass_cancel', 'kill_switch') \
             AND available_delta + locked_delta <> 0)"
        ),
        0,
        "order commands' own entries that change a total"
    );
}

/// Waits for the replicator to reach `seq`, failing with its state if it does not in time.
pub fn wait_replicated(handle: &peregrine_replica::ReplicatorHandle, seq: u64, timeout: Duration) {
    let start = Instant::now();
    let reached = handle.wait_high_water(seq, timeout);
    assert_eq!(
        reached,
        seq,
        "replica stuck at {reached} of {seq} after {:?}: last error {:?}, readiness {:?}",
        start.elapsed(),
        handle.last_error(),
        handle.readiness()
    );
}

impl Exchange {
    /// Restarts the appliance: stops the writer, recovers from the journal, starts a new writer.
    /// The recovered engine must equal the one that ran.
    pub fn restart(&mut self) {
        let before = self.engine.snapshot().unwrap();
        self.close();
        let (recovered, writer) = open(&self.config, engine_config()).unwrap();
        assert_eq!(recovered.last_seq, self.last_seq);
        assert_eq!(recovered.engine.snapshot().unwrap(), before);
        self.journal = writer.journal().clone();
        self.writer = Some(writer);
        self.engine = recovered.engine;
        if self.config.snapshot_every_commands > 0 {
            self.snapshotter = Some(Snapshotter::start(
                &self.config,
                self.journal.clone(),
                self.last_seq,
            ));
        }
    }
}

/// A counter's value in a registry (0 if absent), summed over its labels.
pub fn metric(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric().iter())
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        .sum()
}

/// A shared floor for exchanges whose retention must respect the replica.
pub fn floor() -> RetentionFloor {
    RetentionFloor::new(0)
}

/// The history the REST bridge reads back ([`peregrine_replica::ReplicaReader`]) equals the
/// reference: every account's fills (both roles) and orders, with fills summed per order;
/// filters and both orders agree.
pub fn assert_reader_matches(database_url: &str, exchange: &Exchange) {
    use peregrine_hotpath::{AccountId, MarketId};
    use peregrine_replica::reader::{PAGE_ROWS_MAX, QUERY_ROWS_MAX};
    use peregrine_replica::{OrderFilter, ReplicaReader, TradeFilter};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reader = ReplicaReader::new(database_url);
    let reference = &exchange.reference;
    // Per account: (trade id, maker?) -> (order, qty, fee); per order: (fills, qty, quote).
    type Fills = BTreeMap<(u64, bool), (OrderId, u64, u64)>;
    let mut fills: BTreeMap<AccountId, Fills> = BTreeMap::new();
    let mut per_order: BTreeMap<OrderId, (u32, u64, u128)> = BTreeMap::new();
    for t in &reference.trades {
        for (maker, order, fee) in [
            (true, t.maker_order, t.maker_fee.0),
            (false, t.taker_order, t.taker_fee.0),
        ] {
            let owner = reference.owners[&order];
            fills
                .entry(owner)
                .or_default()
                .insert((t.trade.0, maker), (order, t.qty.0, fee));
            let sums = per_order.entry(order).or_default();
            sums.0 += 1;
            sums.1 += t.qty.0;
            sums.2 += u128::from(t.quote_amount.0);
        }
    }
    let accounts: BTreeSet<AccountId> = reference.owners.values().copied().collect();
    assert!(accounts.len() > 1, "the flow has several trading accounts");
    let mut orders_checked = 0usize;
    for &account in &accounts {
        let all_trades = TradeFilter {
            account,
            market: None,
            from_ns: 0,
            to_ns: u64::MAX,
            ascending: true,
            limit: QUERY_ROWS_MAX,
        };
        let page = runtime.block_on(reader.trades(all_trades.clone())).unwrap();
        assert_eq!(page.high_water_seq, exchange.last_seq);
        let got: Fills = page
            .trades
            .iter()
            .map(|t| ((t.id.0, t.maker), (t.order, t.qty.0, t.fee.0)))
            .collect();
        assert_eq!(
            got.len(),
            page.trades.len(),
            "a fill listed twice for {account:?}"
        );
        let empty = BTreeMap::new();
        assert_eq!(
            &got,
            fills.get(&account).unwrap_or(&empty),
            "fills of {account:?}"
        );
        let ids: Vec<u64> = page.trades.iter().map(|t| t.id.0).collect();
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "ascending");
        let mut newest_first = all_trades.clone();
        newest_first.ascending = false;
        newest_first.limit = 3;
        let newest = runtime.block_on(reader.trades(newest_first)).unwrap();
        let mut expected: Vec<_> = page.trades.iter().rev().take(3).cloned().collect();
        expected.truncate(3);
        assert_eq!(newest.trades, expected, "newest first, limited");

        let all_orders = OrderFilter {
            account,
            market: None,
            side: None,
            status: None,
            created_from_ns: 0,
            created_to_ns: u64::MAX,
            ascending: false,
            limit: QUERY_ROWS_MAX,
        };
        let page = runtime.block_on(reader.orders(all_orders.clone())).unwrap();
        let ids: BTreeSet<OrderId> = page.orders.iter().map(|o| o.order).collect();
        let owned: BTreeSet<OrderId> = reference
            .owners
            .iter()
            .filter(|(_, a)| **a == account)
            .map(|(o, _)| *o)
            .collect();
        assert_eq!(ids, owned, "orders of {account:?}");
        assert!(
            page.orders.windows(2).all(|w| w[0].order > w[1].order),
            "newest first"
        );
        let mut sample: Vec<_> = page.orders.iter().take(PAGE_ROWS_MAX).cloned().collect();
        runtime.block_on(reader.fill_in(&mut sample)).unwrap();
        for o in &sample {
            let (count, qty, quote) = per_order.get(&o.order).copied().unwrap_or_default();
            assert_eq!(
                (
                    o.fills.trades_count,
                    o.fills.executed_qty.0,
                    o.fills.executed_quote
                ),
                (count, qty, quote),
                "fills of order {:?}",
                o.order
            );
            if count > 0 {
                assert!(o.fills.last_ts_ns >= o.created_ts_ns);
            }
            let single = runtime.block_on(reader.order(account, o.order)).unwrap();
            assert_eq!(single.as_ref(), Some(o), "the lookup by id agrees");
            orders_checked += 1;
        }
        // Filters: one market, one status.
        let mut one_market = all_orders.clone();
        one_market.market = Some(MarketId(0));
        let in_market = runtime.block_on(reader.orders(one_market)).unwrap();
        assert!(in_market.orders.iter().all(|o| o.market == MarketId(0)));
        assert_eq!(
            in_market.orders.len(),
            page.orders
                .iter()
                .filter(|o| o.market == MarketId(0))
                .count()
        );
        if let Some(first) = page.orders.first() {
            let mut one_status = all_orders.clone();
            one_status.status = Some(first.status);
            let same = runtime.block_on(reader.orders(one_status)).unwrap();
            assert!(same.orders.iter().all(|o| o.status == first.status));
            assert!(same.orders.iter().any(|o| o.order == first.order));
        }
    }
    assert!(orders_checked > 100, "only {orders_checked} orders checked");
    // Another account's order is not found through this one.
    let (&order, &owner) = reference.owners.iter().next().unwrap();
    let stranger = accounts.iter().copied().find(|a| *a != owner).unwrap();
    assert_eq!(
        runtime.block_on(reader.order(stranger, order)).unwrap(),
        None
    );
}

/// The public trades the REST bridge rebuilds its market data from ([`ReplicaReader`]'s market
/// reads) are exactly the table's trades up to a sequence, in id order, paged without gap or
/// overlap; per market below an id; and the window's start counts from the newest.
///
/// [`ReplicaReader`]: peregrine_replica::ReplicaReader
pub fn assert_market_trades_match(database_url: &str, exchange: &Exchange) {
    use peregrine_hotpath::{MarketId, TradeId};
    use peregrine_replica::ReplicaReader;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reader = ReplicaReader::new(database_url);
    let c = |e: &str| cast(database_url, e);
    // (trade id, seq, market) of every trade, oldest first.
    let table: Vec<(u64, u64, u32)> = query(
        database_url,
        &format!(
            "SELECT {}, {}, {} FROM trades ORDER BY trade_id",
            c("trade_id"),
            c("seq"),
            c("market_id")
        ),
    )
    .iter()
    .map(|r| (int(&r[0]) as u64, int(&r[1]) as u64, int(&r[2]) as u32))
    .collect();
    assert!(table.len() > 100, "the flow trades");
    // A sequence in the middle, as a feed's seed would be: nothing after it is read.
    let through_seq = table[table.len() / 2].1;
    let expected: Vec<&(u64, u64, u32)> = table.iter().filter(|t| t.1 <= through_seq).collect();
    let page_rows = 37;
    let (mut after, mut read) = (TradeId(0), Vec::new());
    loop {
        let page = runtime
            .block_on(reader.market_trades_after(after, through_seq, page_rows))
            .unwrap();
        read.extend(page.iter().map(|t| (t.id.0, t.seq, t.market.0)));
        match page.last() {
            Some(last) if page.len() == page_rows => after = last.id,
            _ => break,
        }
    }
    assert_eq!(
        read.iter().collect::<Vec<_>>(),
        expected,
        "paged up to {through_seq}"
    );
    let newest = expected.last().unwrap().0;
    let nth = |n| {
        runtime
            .block_on(reader.trade_id_below_newest(through_seq, n))
            .unwrap()
    };
    assert_eq!(nth(0), Some(TradeId(newest)));
    assert_eq!(nth(2), Some(TradeId(expected[expected.len() - 3].0)));
    assert_eq!(nth(expected.len()), None);
    let market = MarketId(expected[0].2);
    let older = runtime
        .block_on(reader.market_trades_before(market, TradeId(newest), through_seq, 5))
        .unwrap();
    let want: Vec<u64> = expected
        .iter()
        .rev()
        .filter(|t| t.2 == market.0 && t.0 < newest)
        .take(5)
        .map(|t| t.0)
        .collect();
    assert_eq!(older.iter().map(|t| t.id.0).collect::<Vec<_>>(), want);
    assert!(exchange.last_seq > through_seq);
}

/// The reports' sums ([`peregrine_replica::ReplicaReader::market_totals`] and
/// `daily_volume`) equal the reference's trades summed per market: count, base and quote
/// volume, buyers' fees (base) and sellers' fees (quote); the days add up to the totals, and
/// an empty range sums nothing.
pub fn assert_report_sums_match(database_url: &str, exchange: &Exchange) {
    use peregrine_hotpath::{MarketId, Side};
    use peregrine_replica::{MarketTotals, ReplicaReader, TradeRange};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reader = ReplicaReader::new(database_url);
    let mut want: BTreeMap<u32, MarketTotals> = BTreeMap::new();
    for t in &exchange.reference.trades {
        let sums = want.entry(t.market.0).or_default();
        sums.market = t.market;
        sums.trades += 1;
        sums.base_volume += u128::from(t.base_amount.0);
        sums.quote_volume += u128::from(t.quote_amount.0);
        let (buyer_fee, seller_fee) = match t.taker_side {
            Side::Buy => (t.taker_fee.0, t.maker_fee.0),
            _ => (t.maker_fee.0, t.taker_fee.0),
        };
        sums.base_fees += u128::from(buyer_fee);
        sums.quote_fees += u128::from(seller_fee);
    }
    assert!(want.len() > 1, "the flow trades in several markets");
    let everything = TradeRange {
        market: None,
        from_ns: 0,
        to_ns: u64::MAX,
    };
    let totals = runtime.block_on(reader.market_totals(everything)).unwrap();
    assert_eq!(totals.high_water_seq, exchange.last_seq);
    let want: Vec<MarketTotals> = want.into_values().collect();
    assert_eq!(totals.rows, want, "per market");
    let one = TradeRange {
        market: Some(want[1].market),
        ..everything
    };
    let only = runtime.block_on(reader.market_totals(one)).unwrap();
    assert_eq!(only.rows, [want[1]], "one market");
    let days = runtime.block_on(reader.daily_volume(everything)).unwrap();
    let mut added: BTreeMap<u32, MarketTotals> = BTreeMap::new();
    for day in &days.rows {
        let sums = added.entry(day.totals.market.0).or_default();
        sums.market = day.totals.market;
        sums.trades += day.totals.trades;
        sums.base_volume += day.totals.base_volume;
        sums.quote_volume += day.totals.quote_volume;
        sums.base_fees += day.totals.base_fees;
        sums.quote_fees += day.totals.quote_fees;
    }
    assert_eq!(
        added.into_values().collect::<Vec<_>>(),
        want,
        "the days add up"
    );
    let nothing = TradeRange {
        market: Some(MarketId(want[0].market.0)),
        from_ns: 1,
        to_ns: 2,
    };
    let empty = runtime.block_on(reader.daily_volume(nothing)).unwrap();
    assert!(empty.rows.is_empty(), "{:?}", empty.rows);
}
