//! `ws`: market-data fan-out through the Ranger-style WebSocket streams on loopback:
//! `SUBSCRIBERS` connections subscribe to `btcusd.trades`; a driver thread makes one trade per
//! scheduled instant (a sell and a crossing buy from two accounts, sequenced through the
//! engine handle as the REST bridge does), open loop. Latency is from the trade's *scheduled*
//! instant (the taker is submitted then and trades within microseconds) to its delivery at
//! each subscriber, so every trade gives `SUBSCRIBERS` samples; the path is engine -> router
//! -> event tap -> feed task -> per-connection queues -> socket -> client.
//!
//! The floor is the median WebSocket ping/pong round trip on one connection, no load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use peregrine_hotpath::{
    AccountId, ClientOrderId, CommandKind, Event, MarketId, NewOrder, OrderKind, Price, Qty,
    SelfTradePrevention, Side, TimeInForce,
};
use tokio_tungstenite::tungstenite::Message;

use super::rest::{MARKET, TOKIO_WORKERS, start};
use crate::args::{BenchArgs, WorkloadFlag};
use crate::error::BenchError;
use crate::pacer::Pacer;
use crate::recorder::LatencyRecorder;
use crate::registry::Workload;
use crate::report::Report;

/// The registry entry.
pub const WORKLOAD: Workload = Workload {
    name: NAME,
    summary: "trade -> delivery on N WebSocket subscribers of <market>.trades; floor = WS ping",
    flags: &[WorkloadFlag::Rate],
    run,
};

const NAME: &str = "ws";
/// Offered rate of trades.
pub const RATE_DEFAULT_OPS_PER_SEC: u64 = 1_000;
/// Subscribers of the trades stream.
const SUBSCRIBERS: usize = 32;
/// Ping round trips for the floor.
const PING_SAMPLES: usize = 500;
/// How long subscribers wait for the last trade after the driver is done.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The market's id in the fixture's catalog, and its price in ticks (50000.00 / 0.01).
const MARKET_ID: MarketId = MarketId(0);
const PRICE_TICKS: Price = Price(5_000_000);

fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    let rate = args.rate_or(RATE_DEFAULT_OPS_PER_SEC)?;
    let fail = |e: String| BenchError::workload(NAME, e);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(TOKIO_WORKERS)
        .enable_all()
        .thread_name("ws-io")
        .build()
        .map_err(|e| BenchError::workload(NAME, e))?;
    let fixture = runtime.block_on(start(NAME, 2))?;
    let url = format!(
        "ws://{}/api/v2/ranger/public?stream={MARKET}.trades",
        fixture.server.local_addr()
    );
    let floor_ns = runtime.block_on(async {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let _ = socket.next().await;
        let mut samples_ns = Vec::with_capacity(PING_SAMPLES);
        for _ in 0..PING_SAMPLES {
            let started = Instant::now();
            socket
                .send(Message::Ping(Vec::new().into()))
                .await
                .map_err(|e| fail(e.to_string()))?;
            loop {
                match socket.next().await {
                    Some(Ok(Message::Pong(_))) => break,
                    Some(Ok(_)) => {}
                    _ => return Err(fail("the ping connection closed".into())),
                }
            }
            samples_ns.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        samples_ns.sort_unstable();
        Ok::<_, BenchError>(samples_ns[samples_ns.len() / 2])
    })?;

    // A probe trade gives the first trade id: every later pair makes exactly one trade.
    let engine = fixture.engine.clone();
    let mut next_client = 1u64;
    let first_tid = runtime.block_on(async {
        let mut tid = 0;
        for (account, side) in [(1, Side::Sell), (2, Side::Buy)] {
            let executed = engine
                .submit(peregrine_core::Request::new(
                    peregrine_hotpath::Actor::System,
                    new_order(account, side, &mut next_client),
                ))
                .map_err(|e| fail(e.to_string()))?
                .await
                .map_err(|e| fail(e.to_string()))?;
            for event in &executed.events {
                if let Event::Trade(trade) = event {
                    tid = trade.trade.0;
                }
            }
        }
        Ok::<_, BenchError>(tid + 1)
    })?;
    let warmup = (args.warmup.as_secs_f64() * rate.get() as f64) as u64;
    let count = (args.duration.as_secs_f64() * rate.get() as f64) as u64;
    let total = warmup + count;
    let origin = Instant::now();
    // Scheduled instant of trade `i` (ns after `origin`), written before the trade exists.
    let scheduled_ns: Arc<Vec<AtomicU64>> =
        Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let last_tid = first_tid + total - 1;
    let subscribers = runtime.block_on(async {
        let mut tasks = Vec::with_capacity(SUBSCRIBERS);
        for _ in 0..SUBSCRIBERS {
            let (mut socket, _) = tokio_tungstenite::connect_async(&url)
                .await
                .map_err(|e| fail(e.to_string()))?;
            // The subscription's answer: from now on every trade reaches this connection.
            let _ = socket.next().await;
            let scheduled_ns = scheduled_ns.clone();
            tasks.push(tokio::spawn(async move {
                subscriber(socket, origin, scheduled_ns, first_tid, warmup, last_tid).await
            }));
        }
        Ok::<_, BenchError>(tasks)
    })?;

    let mut pacer = Pacer::new(rate, Instant::now());
    let mut busy = 0u64;
    for i in 0..total {
        let scheduled = pacer.next_scheduled();
        let offset = u64::try_from(scheduled.duration_since(origin).as_nanos()).unwrap_or(0);
        scheduled_ns[i as usize].store(offset, Ordering::Release);
        for (account, side) in [(1, Side::Sell), (2, Side::Buy)] {
            // The outcome is not awaited: subscribers see the trade.
            if engine
                .submit(peregrine_core::Request::new(
                    peregrine_hotpath::Actor::System,
                    new_order(account, side, &mut next_client),
                ))
                .is_err()
            {
                busy += 1;
            }
        }
    }
    if busy > 0 {
        return Err(fail(format!(
            "{busy} orders were refused (busy): trade ids no longer match; lower --rate"
        )));
    }
    let start_measured = pacer.scheduled_at(warmup);
    let mut recorder = LatencyRecorder::new()?;
    let mut deliveries = 0u64;
    let mut last_delivery = start_measured;
    let outcomes = runtime.block_on(async {
        let mut outcomes = Vec::with_capacity(SUBSCRIBERS);
        for task in subscribers {
            outcomes.push(task.await.map_err(|e| fail(e.to_string()))?);
        }
        Ok::<_, BenchError>(outcomes)
    })?;
    for outcome in outcomes {
        let (samples, last) = outcome?;
        deliveries += samples.count();
        recorder.merge(&samples)?;
        last_delivery = last_delivery.max(last);
    }
    let expected = count * SUBSCRIBERS as u64;
    runtime.block_on(fixture.server.shutdown());
    if deliveries != expected {
        return Err(fail(format!(
            "{deliveries} deliveries, expected {expected} (a subscriber was closed or timed out)"
        )));
    }
    let elapsed = last_delivery
        .duration_since(start_measured)
        .as_secs_f64()
        .max(1e-9);
    Ok(Report::new(
        NAME,
        deliveries as f64 / elapsed,
        recorder.summary(),
        Some(floor_ns),
    )
    .with_pacing(&pacer.stats())
    .with_recorder(&recorder)
    .with_param("latency_rate_trades_per_sec", rate.get())
    .with_param("trades", count)
    .with_param("subscribers", SUBSCRIBERS as u64)
    .with_param("deliveries", deliveries)
    .with_param("ops", "deliveries (trades x subscribers)")
    .with_param("sends_behind_count", pacer.stats().sends_behind_count)
    .with_param("floor", "median WebSocket ping/pong round trip, no load")
    .with_param("tokio_workers", TOKIO_WORKERS as u64))
}

fn new_order(account: u32, side: Side, next_client: &mut u64) -> CommandKind {
    let client_order_id = ClientOrderId(*next_client);
    *next_client += 1;
    CommandKind::NewOrder(NewOrder {
        account: AccountId(account),
        market: MARKET_ID,
        client_order_id,
        side,
        kind: OrderKind::Limit {
            price: PRICE_TICKS,
            qty: Qty(1),
        },
        tif: TimeInForce::Gtc,
        stp: SelfTradePrevention::CancelNewest,
    })
}

/// Reads trades until `last_tid`; records delivery latency of trades after the warmup.
async fn subscriber(
    mut socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    origin: Instant,
    scheduled_ns: Arc<Vec<AtomicU64>>,
    first_tid: u64,
    warmup: u64,
    last_tid: u64,
) -> Result<(LatencyRecorder, Instant), BenchError> {
    let mut recorder = LatencyRecorder::new()?;
    let mut last = Instant::now();
    loop {
        let next = tokio::time::timeout(DRAIN_TIMEOUT, socket.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else {
            match next {
                Ok(Some(Ok(_))) => continue,
                _ => return Ok((recorder, last)),
            }
        };
        let now = Instant::now();
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| BenchError::workload(NAME, e))?;
        let Some(trades) = value[format!("{MARKET}.trades")]["trades"].as_array() else {
            continue;
        };
        for trade in trades {
            let Some(tid) = trade["tid"].as_u64() else {
                continue;
            };
            let index = tid.saturating_sub(first_tid);
            if index >= warmup
                && let Some(slot) = scheduled_ns.get(index as usize)
            {
                let at = origin + Duration::from_nanos(slot.load(Ordering::Acquire));
                recorder.record_from_scheduled(at, now);
                last = now;
            }
            if tid >= last_tid {
                return Ok((recorder, last));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_every_trade_to_every_subscriber() {
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_millis(200);
        args.warmup = Duration::from_millis(50);
        args.rate_ops_per_sec = Some(200);
        let report = run(&args).unwrap();
        assert_eq!(report.params["trades"], 40);
        assert_eq!(report.params["deliveries"], 40 * SUBSCRIBERS as u64);
    }
}
