//! `fanout`: trade -> delivery through the JetStream fan-out, with real processes on loopback:
//! one `peregrine up` with `[fanout]` publishing to NATS (`NATS_URL`, default
//! `nats://127.0.0.1:4222`), `--bridges` `peregrine bridge` processes following its stream, and
//! `--subscribers` Ranger WebSocket connections to `btcusd.trades` spread round-robin over them.
//!
//! A driver places one taker per scheduled instant over QUIC against one large resting maker, so
//! every taker makes exactly one trade with a known id; it waits for each durable ack (the
//! appliance acks after the journal fsync, and publishes only what is durable), so the ack's
//! arrival is the trade's commit instant as the driver sees it (late by the ack's one-way trip,
//! tens of microseconds on loopback).
//!
//! - `latency_ns`: durable commit (the ack) -> delivery at each subscriber: the fan-out's own
//!   cost (journal follower, publish, JetStream, consumer, bridge hub, socket). Every trade gives
//!   one sample per subscriber. A delivery that beats the ack to the driver counts as the
//!   histogram's lowest value (`deliveries_before_ack`).
//! - `end_to_end_ns`: the trade's *scheduled* instant -> delivery, coordinated-omission
//!   corrected: a driver held up by a slow ack charges the delay to every later trade.
//!   Subscribers never hold the driver up, so the commit-based figure has no omission to
//!   correct; the pacing block says whether the offered rate was kept.
//! - `ops_per_sec`: deliveries per second over the measured phase.
//! - `floor_ns`: the median core-NATS publish -> receive round trip on one connection, measured
//!   in the same run on the same server.

mod processes;

use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{StreamExt, TryStreamExt};
use peregrine_client::{Client, KeyId, Order, Placed, ServerTrust};
use peregrine_hotpath::{ClientOrderId, MarketId, Price, Qty, Side};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use self::processes::{Appliance, Bridge, Stream, Trader, peregrine_bin};
use crate::args::{BenchArgs, WorkloadFlag};
use crate::error::BenchError;
use crate::pacer::{Pacer, PacerStats};
use crate::recorder::LatencyRecorder;
use crate::registry::Workload;
use crate::report::Report;

/// The registry entry.
pub const WORKLOAD: Workload = Workload {
    name: NAME,
    summary: "durable trade -> delivery on N Ranger subscribers over M `peregrine bridge` processes fed by NATS JetStream; floor = NATS pub -> sub",
    flags: &[
        WorkloadFlag::Rate,
        WorkloadFlag::Subscribers,
        WorkloadFlag::Bridges,
    ],
    run,
};

const NAME: &str = "fanout";
/// Offered trades per second (each one is delivered to every subscriber).
pub const RATE_DEFAULT_TRADES_PER_SEC: u64 = 20;
/// Subscribers by default: the issue's goal.
pub const SUBSCRIBERS_DEFAULT: usize = 10_000;
/// Bridge processes by default.
pub const BRIDGES_DEFAULT: usize = 2;
/// Bridges at most (each is a process with its own runtime threads).
pub const BRIDGES_MAX: usize = 16;
/// Subscribers at most: each is a socket here and one in a bridge (file descriptors).
pub const SUBSCRIBERS_MAX: usize = 50_000;
/// Delivery instants kept at most (8 bytes each): a bound on the run's memory.
pub const DELIVERIES_MAX: u64 = 50_000_000;
/// Trades at most: the one resting maker holds `TRADES_MAX + 1` takers' worth, under the market's
/// 1 000 btc `max_amount` at 0.001 btc a lot.
pub const TRADES_MAX: u64 = 990_000;
/// WebSocket connections opened at once while subscribing.
const CONNECT_PARALLEL: usize = 64;
/// Round trips for the floor.
const FLOOR_SAMPLES: usize = 1_000;
/// A subscriber that hears nothing for this long stops (a lost trade or a closed socket).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Tokio workers of the bench process (subscribers and driver); the processes have their own.
const TOKIO_WORKERS: usize = 2;
/// A client socket's read buffer: 10 000 subscribers at tungstenite's 128 KiB would be 1.3 GB.
const WS_READ_BUFFER_BYTES: usize = 4_096;
/// btcusd in `peregrine up`'s default catalog; 50 000.00 usd in ticks of 0.01; 0.001 btc in
/// lots of 0.0001.
const MARKET: MarketId = MarketId(1);
const PRICE: Price = Price(5_000_000);
const LOT: Qty = Qty(10);
/// Lots of the market per btc.
const LOTS_PER_BTC: u64 = 10_000;
/// Orders of [`LOT`] per btc.
const ORDERS_PER_BTC: u64 = LOTS_PER_BTC / LOT.0;
/// Client order ids of the takers start here (the maker and the probe use 1 and 2).
const TAKER_IDS_FROM: u64 = 1_000;

const _: () = assert!(TRADES_MAX * LOT.0 < 1_000 * LOTS_PER_BTC);
const _: () = assert!(BRIDGES_DEFAULT <= BRIDGES_MAX && SUBSCRIBERS_DEFAULT <= SUBSCRIBERS_MAX);

/// What one run does, from the flags.
#[derive(Clone, Copy, Debug)]
struct Plan {
    rate: NonZeroU64,
    subscribers: usize,
    bridges: usize,
    warmup: u64,
    total: u64,
}

impl Plan {
    fn of(args: &BenchArgs) -> Result<Plan, BenchError> {
        let rate = args.rate_or(RATE_DEFAULT_TRADES_PER_SEC)?;
        let subscribers = args.subscribers.unwrap_or(SUBSCRIBERS_DEFAULT);
        let bridges = args.bridges.unwrap_or(BRIDGES_DEFAULT);
        if !(1..=SUBSCRIBERS_MAX).contains(&subscribers) {
            return Err(BenchError::invalid(
                "--subscribers",
                format!("must be 1 to {SUBSCRIBERS_MAX}"),
            ));
        }
        if !(1..=BRIDGES_MAX).contains(&bridges) || bridges > subscribers {
            return Err(BenchError::invalid(
                "--bridges",
                format!("must be 1 to {BRIDGES_MAX}, and at most --subscribers"),
            ));
        }
        let warmup = (args.warmup.as_secs_f64() * rate.get() as f64) as u64;
        let count = ((args.duration.as_secs_f64() * rate.get() as f64) as u64).max(1);
        let total = warmup + count;
        if total > TRADES_MAX || total.saturating_mul(subscribers as u64) > DELIVERIES_MAX {
            return Err(BenchError::invalid(
                "--rate",
                format!(
                    "rate x (warmup + duration) trades must be at most {TRADES_MAX}, and times --subscribers at most {DELIVERIES_MAX}"
                ),
            ));
        }
        Ok(Plan {
            rate,
            subscribers,
            bridges,
            warmup,
            total,
        })
    }
}

fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    let plan = Plan::of(args)?;
    let scratch = Scratch::new()?;
    let nats_url = std::env::var("NATS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(TOKIO_WORKERS)
        .enable_all()
        .thread_name("fanout-bench")
        .build()
        .map_err(|e| BenchError::workload(NAME, e))?;
    let tag = unique_tag();
    let stream = Stream {
        url: &nats_url,
        name: &format!("BENCH_FANOUT_{tag}"),
        prefix: &format!("bf{tag}"),
    };
    let outcome = measure(&runtime, &plan, &scratch.0, &stream);
    runtime.block_on(delete_stream(&nats_url, stream.name));
    outcome
}

/// Starts the processes, measures, and builds the report.
fn measure(
    runtime: &tokio::runtime::Runtime,
    plan: &Plan,
    scratch: &std::path::Path,
    stream: &Stream<'_>,
) -> Result<Report, BenchError> {
    let bin = peregrine_bin()?;
    let (maker, taker) = (Trader::new(1), Trader::new(2));
    let appliance = Appliance::start(&bin, &scratch.join("up"), &[maker, taker], stream)?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| BenchError::workload(NAME, e))?;
    let (seller, buyer) =
        runtime.block_on(fund_and_connect(&appliance, &http, plan, (maker, taker)))?;
    let per_bridge = plan.subscribers.div_ceil(plan.bridges);
    let bridges = (0..plan.bridges)
        .map(|i| {
            Bridge::start(
                &bin,
                &scratch.join(format!("bridge{i}")),
                stream,
                per_bridge,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    runtime.block_on(async {
        for bridge in &bridges {
            bridge.ready(&http).await?;
        }
        Ok::<_, BenchError>(())
    })?;
    let floor_ns = runtime.block_on(nats_floor(stream.url))?;
    let first_tid = runtime.block_on(probe(&bridges[0], &seller, &buyer, plan.total))?;
    let origin = Instant::now();
    let subscribers = runtime.block_on(subscribe(&bridges, plan, origin, first_tid))?;
    let driven = drive(runtime, &buyer, plan, origin)?;
    let arrivals = runtime.block_on(async {
        let mut all = Vec::with_capacity(subscribers.len());
        for task in subscribers {
            all.push(task.await.map_err(|e| BenchError::workload(NAME, e))??);
        }
        Ok::<_, BenchError>(all)
    })?;
    drop(bridges);
    drop(appliance);
    report(plan, origin, &driven, &arrivals, floor_ns)
}

/// A scratch directory for the processes' configuration and data, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, BenchError> {
        let dir = std::env::temp_dir().join(format!("peregrine-bench-fanout-{}", unique_tag()));
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::workload(NAME, e))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `<pid>x<ns>`: names of this run's stream, subjects and directory, unique on a shared NATS.
fn unique_tag() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}x{nanos}", std::process::id())
}

/// Funds the maker (btc) and the taker (usd) for every trade, and logs both on over QUIC.
async fn fund_and_connect(
    appliance: &Appliance,
    http: &reqwest::Client,
    plan: &Plan,
    (maker, taker): (Trader, Trader),
) -> Result<(Client, Client), BenchError> {
    let orders = plan.total + 1;
    let btc = (orders / ORDERS_PER_BTC + 1).to_string();
    // 50 usd an order, twice over for fees.
    let usd = (orders * 100 + 1_000).to_string();
    appliance
        .deposit(http, maker.account, ("btc", &btc), 1)
        .await?;
    appliance
        .deposit(http, taker.account, ("usd", &usd), 2)
        .await?;
    let mut clients = Vec::with_capacity(2);
    for trader in [maker, taker] {
        let client = Client::connect(
            appliance.quic,
            ServerTrust::Fingerprint(appliance.fingerprint),
            KeyId(trader.key_id),
            trader.signing_key()?,
        )
        .await
        .map_err(|e| BenchError::workload(NAME, e))?;
        clients.push(client);
    }
    let taker = clients.pop();
    let maker = clients.pop();
    maker
        .zip(taker)
        .ok_or_else(|| BenchError::workload(NAME, "no clients"))
}

/// Places a resting sell for `total + 1` takers and one probe taker; returns the id the first
/// measured trade will have (the probe's, read on a bridge, plus one).
async fn probe(
    bridge: &Bridge,
    seller: &Client,
    buyer: &Client,
    total: u64,
) -> Result<u64, BenchError> {
    let fail = |e: String| BenchError::workload(NAME, e);
    let mut socket = connect(bridge).await?;
    let lots = Qty(LOT.0 * (total + 1));
    let maker = Order::limit(ClientOrderId(1), MARKET, Side::Sell, PRICE, lots);
    let probe = Order::limit(ClientOrderId(2), MARKET, Side::Buy, PRICE, LOT);
    for (client, order) in [(seller, maker), (buyer, probe)] {
        match client.place(order).await {
            Ok(Placed::Ack { .. }) => {}
            other => return Err(fail(format!("probe order: {other:?}"))),
        }
    }
    loop {
        let message = tokio::time::timeout(IDLE_TIMEOUT, socket.next())
            .await
            .map_err(|_| fail("the probe trade never reached the bridge".into()))?;
        match message {
            Some(Ok(Message::Text(text))) => {
                if let Some(tid) = trade_ids(&text).last() {
                    return Ok(tid + 1);
                }
            }
            Some(Ok(_)) => {}
            other => return Err(fail(format!("probe socket: {other:?}"))),
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A subscription to `btcusd.trades` on `bridge`, after the subscription's answer.
async fn connect(bridge: &Bridge) -> Result<Socket, BenchError> {
    let url = format!("{}/api/v2/ranger/public?stream=btcusd.trades", bridge.ws);
    let config = WebSocketConfig::default().read_buffer_size(WS_READ_BUFFER_BYTES);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|e| BenchError::workload(NAME, e))?;
    // The subscription's answer: from now on every trade reaches this connection.
    let _ = tokio::time::timeout(IDLE_TIMEOUT, socket.next()).await;
    Ok(socket)
}

type Subscriber = tokio::task::JoinHandle<Result<Vec<u64>, BenchError>>;

/// Connects every subscriber (round-robin over the bridges) and starts its reader.
async fn subscribe(
    bridges: &[Bridge],
    plan: &Plan,
    origin: Instant,
    first_tid: u64,
) -> Result<Vec<Subscriber>, BenchError> {
    let total = plan.total;
    futures_util::stream::iter(0..plan.subscribers)
        .map(|i| async move {
            let socket = connect(&bridges[i % bridges.len()]).await?;
            Ok::<_, BenchError>(tokio::spawn(read_trades(socket, origin, first_tid, total)))
        })
        .buffer_unordered(CONNECT_PARALLEL)
        .try_collect()
        .await
}

/// Reads trades until the last one; returns each trade's arrival (ns after `origin`, 0 = never).
async fn read_trades(
    mut socket: Socket,
    origin: Instant,
    first_tid: u64,
    total: u64,
) -> Result<Vec<u64>, BenchError> {
    let mut arrivals = vec![0u64; usize::try_from(total).unwrap_or(usize::MAX)];
    let last_tid = first_tid + total - 1;
    // Bounded by the idle timeout and the last trade id.
    loop {
        let next = tokio::time::timeout(IDLE_TIMEOUT, socket.next()).await;
        let text = match next {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
            _ => return Ok(arrivals),
        };
        let at_ns = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        for tid in trade_ids(&text) {
            let index = tid.wrapping_sub(first_tid);
            if let Some(slot) = usize::try_from(index)
                .ok()
                .and_then(|i| arrivals.get_mut(i))
            {
                *slot = at_ns.max(1);
            }
            if tid >= last_tid {
                return Ok(arrivals);
            }
        }
    }
}

/// The `"tid":<n>` values of a trades message, without a JSON parse (10 000 subscribers on two
/// cores: the parse would be a large share of the bench's own cost).
fn trade_ids(text: &str) -> impl Iterator<Item = u64> + '_ {
    const KEY: &str = "\"tid\":";
    text.match_indices(KEY).filter_map(|(at, _)| {
        let digits = &text[at + KEY.len()..];
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        digits[..end].parse().ok()
    })
}

/// When each taker was scheduled and acknowledged durable (ns after `origin`).
struct Driven {
    scheduled_ns: Vec<u64>,
    committed_ns: Vec<u64>,
    pacing: PacerStats,
}

/// Places one taker per scheduled instant, each after the last one's durable ack (so trade
/// `first_tid + i` is taker `i`), open loop on the pacer's grid.
fn drive(
    runtime: &tokio::runtime::Runtime,
    buyer: &Client,
    plan: &Plan,
    origin: Instant,
) -> Result<Driven, BenchError> {
    let capacity = usize::try_from(plan.total).unwrap_or(usize::MAX);
    let (mut scheduled_ns, mut committed_ns) =
        (Vec::with_capacity(capacity), Vec::with_capacity(capacity));
    let offset = |at: Instant| u64::try_from(at.duration_since(origin).as_nanos()).unwrap_or(0);
    let mut pacer = Pacer::new(plan.rate, Instant::now());
    for i in 0..plan.total {
        let scheduled = pacer.next_scheduled();
        let order = Order::limit(
            ClientOrderId(TAKER_IDS_FROM + i),
            MARKET,
            Side::Buy,
            PRICE,
            LOT,
        );
        let placed = runtime.block_on(buyer.place(order));
        let acked = Instant::now();
        if !matches!(placed, Ok(Placed::Ack { .. })) {
            return Err(BenchError::workload(NAME, format!("taker {i}: {placed:?}")));
        }
        scheduled_ns.push(offset(scheduled));
        committed_ns.push(offset(acked));
    }
    Ok(Driven {
        scheduled_ns,
        committed_ns,
        pacing: pacer.stats(),
    })
}

/// The median core-NATS publish -> receive round trip on one connection.
async fn nats_floor(url: &str) -> Result<u64, BenchError> {
    let fail = |e: String| BenchError::workload(NAME, e);
    let client = async_nats::connect(url)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let subject = format!("bench.fanout.floor.{}", unique_tag());
    let mut subscriber = client
        .subscribe(subject.clone())
        .await
        .map_err(|e| fail(e.to_string()))?;
    client.flush().await.map_err(|e| fail(e.to_string()))?;
    let mut samples_ns = Vec::with_capacity(FLOOR_SAMPLES);
    for _ in 0..FLOOR_SAMPLES {
        let started = Instant::now();
        client
            .publish(subject.clone(), "x".into())
            .await
            .map_err(|e| fail(e.to_string()))?;
        client.flush().await.map_err(|e| fail(e.to_string()))?;
        tokio::time::timeout(IDLE_TIMEOUT, subscriber.next())
            .await
            .map_err(|_| fail("the floor message never came back".into()))?
            .ok_or_else(|| fail("the floor subscription ended".into()))?;
        samples_ns.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    samples_ns.sort_unstable();
    Ok(samples_ns[samples_ns.len() / 2])
}

/// Removes this run's stream and snapshot bucket from the (shared) NATS.
async fn delete_stream(url: &str, stream: &str) {
    let Ok(client) = async_nats::connect(url).await else {
        return;
    };
    let context = async_nats::jetstream::new(client);
    let _ = context.delete_stream(stream).await;
    let _ = context
        .delete_key_value(peregrine_fanout::snapshot::bucket_name(stream))
        .await;
}

/// Latencies of the measured trades at every subscriber, and the report.
fn report(
    plan: &Plan,
    origin: Instant,
    driven: &Driven,
    arrivals: &[Vec<u64>],
    floor_ns: u64,
) -> Result<Report, BenchError> {
    let at = |ns: u64| origin + Duration::from_nanos(ns);
    let (mut commit, mut end_to_end) = (LatencyRecorder::new()?, LatencyRecorder::new()?);
    let (mut deliveries, mut missing, mut before_ack) = (0u64, 0u64, 0u64);
    let warmup = usize::try_from(plan.warmup).unwrap_or(0);
    assert!(
        warmup < driven.scheduled_ns.len(),
        "a plan measures at least one trade"
    );
    let first = at(driven.scheduled_ns[warmup]);
    let mut last = first;
    for subscriber in arrivals {
        let measured = subscriber.iter().enumerate().skip(warmup);
        for (i, &arrived_ns) in measured {
            if arrived_ns == 0 {
                missing += 1;
                continue;
            }
            let arrived = at(arrived_ns);
            let (scheduled, committed) = (at(driven.scheduled_ns[i]), at(driven.committed_ns[i]));
            end_to_end.record_from_scheduled(scheduled.min(arrived), arrived);
            before_ack += u64::from(arrived < committed);
            commit.record_from_scheduled(committed.min(arrived), arrived);
            deliveries += 1;
            last = last.max(arrived);
        }
    }
    if deliveries == 0 {
        return Err(BenchError::workload(NAME, "no trade reached a subscriber"));
    }
    if missing > 0 {
        eprintln!("fanout: {missing} deliveries missing (a subscriber was closed or timed out)");
    }
    let elapsed_s = last.duration_since(first).as_secs_f64().max(1e-9);
    let e2e = end_to_end.summary();
    Ok(Report::new(
        NAME,
        deliveries as f64 / elapsed_s,
        commit.summary(),
        Some(floor_ns),
    )
    .with_pacing(&driven.pacing)
    .with_recorder(&commit)
    .with_param(
        "end_to_end_ns",
        serde_json::json!({"p50": e2e.p50, "p99": e2e.p99, "p999": e2e.p999, "max": e2e.max}),
    )
    .with_param(
        "latency",
        "durable commit (ack at the driver) -> delivery at each subscriber",
    )
    .with_param(
        "end_to_end",
        "scheduled instant -> delivery, coordinated-omission corrected",
    )
    .with_param(
        "floor",
        "median core-NATS publish -> receive round trip, same server",
    )
    .with_param("latency_rate_trades_per_sec", plan.rate.get())
    .with_param("trades", plan.total - plan.warmup)
    .with_param("subscribers", plan.subscribers as u64)
    .with_param("bridges", plan.bridges as u64)
    .with_param("deliveries", deliveries)
    .with_param("deliveries_missing", missing)
    .with_param("deliveries_before_ack", before_ack)
    .with_param("ops", "deliveries (trades x subscribers)")
    .with_param("sends_behind_count", driven.pacing.sends_behind_count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_trade_ids_without_parsing() {
        let text = r#"{"btcusd.trades":{"trades":[{"tid":41,"price":"1"},{"tid":42,"x":1}]}}"#;
        assert_eq!(trade_ids(text).collect::<Vec<_>>(), vec![41, 42]);
        assert_eq!(trade_ids("{}").count(), 0);
        assert_eq!(trade_ids(r#"{"tid":}"#).count(), 0);
    }

    #[test]
    fn refuses_plans_past_the_bounds() {
        let mut args = BenchArgs::new(NAME);
        args.subscribers = Some(0);
        assert!(Plan::of(&args).is_err());
        args.subscribers = Some(10);
        args.bridges = Some(11);
        assert!(Plan::of(&args).is_err());
        args.bridges = Some(2);
        args.rate_ops_per_sec = Some(1_000_000);
        assert!(Plan::of(&args).is_err());
        args.rate_ops_per_sec = Some(100);
        let plan = Plan::of(&args).unwrap();
        assert_eq!((plan.warmup, plan.total), (100, 600));
    }
}
