//! The feed task: follows the engine's event tap, derives market data and history, and fans the
//! changes out to WebSocket subscribers. If the tap falls behind (the engine closes it), the
//! books are re-seeded from the engine and every book subscriber gets a fresh snapshot.
//!
//! The seed is the one engine query: in durable mode the engine may be ahead of what the
//! journal has made durable, so a seed (at start or after a resync) may show a few commands
//! before their release; everything after it follows the release order. Trades, candles and
//! account history missed while the tap was behind are not recovered (the replica has them).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use peregrine_core::{Interest, Notice};
use peregrine_hotpath::Side;

use super::Bridge;
use crate::market_data::Seed;

/// Commands applied per lock hold, so readers are not starved.
const BATCH_COMMANDS_MAX: usize = 256;
/// How often `global.tickers` is pushed (when something traded).
const TICKERS_INTERVAL: Duration = Duration::from_secs(1);
/// Wait before retrying a failed tap or seed.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// Runs until the bridge shuts down.
pub(crate) async fn run(bridge: Arc<Bridge>) {
    let mut stop = bridge.shutdown.subscribe();
    let mut updates = Vec::with_capacity(1_024);
    let mut first = true;
    while !*stop.borrow() {
        // Tap first, then seed: whatever the seed includes is skipped on the tap by sequence.
        let tap = bridge
            .engine
            .subscribe(Interest::Executed, bridge.config.tap_capacity);
        let seeded = match tap {
            Ok(tap) => seed(&bridge).await.map(|seed| (tap, seed)),
            Err(error) => Err(error.to_string()),
        };
        let (mut tap, seed) = match seeded {
            Ok(ok) => ok,
            Err(error) => {
                tracing::error!(%error, "market-data feed could not start; retrying");
                tokio::select! {
                    () = crate::rest::stopped(&mut stop) => return,
                    () = tokio::time::sleep(RETRY_DELAY) => continue,
                }
            }
        };
        if !first {
            bridge.metrics.feed_resyncs_total.inc();
        }
        first = false;
        {
            let mut shared = bridge.lock();
            let shared = &mut *shared;
            shared.data.reseed(&seed, &mut updates);
            shared
                .hub
                .publish(&updates, &shared.data, &bridge.catalog, &bridge.config);
        }
        updates.clear();
        bridge.applied.send_replace(seed.seq);
        bridge.feed_live.store(true, Ordering::Release);
        tracing::info!(seq = seed.seq, "market-data feed seeded");
        let mut tickers = tokio::time::interval(TICKERS_INTERVAL);
        loop {
            tokio::select! {
                () = crate::rest::stopped(&mut stop) => {
                    bridge.lock().hub.close_all("server shutting down");
                    return;
                }
                item = tap.recv() => {
                    let first = match item {
                        Ok(Notice::Executed(first)) => first,
                        Ok(_) => continue,
                        Err(reason) => {
                            tracing::warn!(%reason, "market-data feed lost the engine: re-seeding");
                            bridge.feed_live.store(false, Ordering::Release);
                            break;
                        }
                    };
                    let started = Instant::now();
                    let mut last_seq = first.seq;
                    let mut shared = bridge.lock();
                    let shared = &mut *shared;
                    shared.data.apply(&first, &mut updates);
                    for _ in 1..BATCH_COMMANDS_MAX {
                        match tap.try_recv() {
                            Some(Notice::Executed(executed)) => {
                                last_seq = executed.seq;
                                shared.data.apply(&executed, &mut updates);
                            }
                            Some(_) => {}
                            None => break,
                        }
                    }
                    shared
                        .hub
                        .publish(&updates, &shared.data, &bridge.catalog, &bridge.config);
                    updates.clear();
                    bridge.applied.send_replace(last_seq);
                    bridge
                        .metrics
                        .feed_batch_seconds
                        .observe(started.elapsed().as_secs_f64());
                }
                _ = tickers.tick() => {
                    let mut shared = bridge.lock();
                    let shared = &mut *shared;
                    if shared.data.take_tickers_changed() {
                        shared.hub.publish_tickers(&shared.data, &bridge.catalog);
                    }
                }
            }
        }
    }
}

/// Every market's book and the sequence it is at, read on the engine thread.
async fn seed(bridge: &Arc<Bridge>) -> Result<Seed, String> {
    let stats = bridge.engine.stats().clone();
    let answer = bridge.engine.ask(move |engine| {
        // On the engine thread, between two commands: `last_seq` is exactly the last one
        // these books include.
        let seq = stats.last_seq.load(Ordering::Acquire);
        let books = engine
            .market_ids()
            .into_iter()
            .map(|market| {
                (
                    market,
                    engine.depth(market, Side::Buy, usize::MAX),
                    engine.depth(market, Side::Sell, usize::MAX),
                )
            })
            .collect();
        Seed { seq, books }
    });
    match tokio::time::timeout(peregrine_core::QUERY_TIMEOUT, answer).await {
        Ok(Ok(seed)) => Ok(seed),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("the engine did not answer in time".to_owned()),
    }
}
