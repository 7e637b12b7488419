//! The feed task: follows the core's tap of executed commands with their view changes, keeps
//! market data and fills, and fans the changes out to WebSocket subscribers. If the tap falls
//! behind (the core closes it), the book mirrors are re-seeded from the core's views and every
//! book subscriber gets a fresh snapshot.
//!
//! The seed is read from the views in the same step that opens the tap, so the tap carries
//! exactly the commands after it; both show only released (in `durable` mode, durable)
//! commands, and nothing runs on the matching thread. Trades, candles and fills missed while
//! the tap was behind are not recovered (the replica has them).
//!
//! At start, before the first command is applied, public trades and candles are rebuilt from
//! the replica's trades up to the seed ([`super::rebuild`]), so a restart shows what was shown
//! before it; without a replica, or if it cannot be read in time, they start empty.
//!
//! A bridge node runs [`run_stream`] instead: the same market data and hub, fed by a
//! [`StreamFeed`] (seeds and whole commands read from the stream the appliance publishes).
//! When a book mirror refuses a change it stops serving the book (not ready), asks the
//! stream for a resync and drops commands until the next seed: never a silently wrong book.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use peregrine_core::{Executed, Interest, Notice};
use tokio::sync::mpsc;

use super::Bridge;
use crate::market_data::Seed;

/// Commands applied per lock hold, so readers are not starved.
const BATCH_COMMANDS_MAX: usize = 256;
/// How often `global.tickers` is pushed (when something traded).
const TICKERS_INTERVAL: Duration = Duration::from_secs(1);
/// Wait before retrying a failed tap or seed.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// One item of a bridge node's feed, in order.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum FeedItem {
    /// Start over from these books (first, and after every resync).
    Seed(Seed),
    /// One command's changes (`events` may be empty: the changes are what is applied).
    Executed(Executed),
}

/// What a bridge node's feed reads: its items, and how to ask their source for a resync.
pub struct StreamFeed {
    /// Seeds and commands, in order.
    pub items: mpsc::Receiver<FeedItem>,
    /// Asks the source for a fresh seed (a book mirror refused a change).
    pub resync: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for StreamFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamFeed").finish_non_exhaustive()
    }
}

/// A bridge node's feed: applies `feed`'s items to the market data and the hub until the
/// bridge shuts down or the feed ends.
pub(crate) async fn run_stream(bridge: Arc<Bridge>, mut feed: StreamFeed) {
    let mut stop = bridge.shutdown.subscribe();
    let mut updates = Vec::with_capacity(1_024);
    let (mut seeds, mut seeded) = (0_u64, false);
    let mut tickers = tokio::time::interval(TICKERS_INTERVAL);
    // Bounded by the feed and the stop flag: each pass takes one item or one tick.
    loop {
        let item = tokio::select! {
            () = crate::rest::stopped(&mut stop) => {
                bridge.lock().hub.close_all("server shutting down");
                return;
            }
            item = feed.items.recv() => item,
            _ = tickers.tick() => {
                let mut shared = bridge.lock();
                let shared = &mut *shared;
                if shared.data.take_tickers_changed() {
                    shared.hub.publish_tickers(&shared.data, &bridge.catalog.load());
                }
                continue;
            }
        };
        match item {
            None => {
                tracing::error!("the stream feed ended");
                bridge.feed_live.store(false, Ordering::Release);
                return;
            }
            Some(FeedItem::Seed(seed)) => {
                if seeds == 0 {
                    restore(&bridge, &seed).await;
                } else {
                    bridge.metrics.feed_resyncs_total.inc();
                }
                seeds += 1;
                seeded = true;
                apply_locked(&bridge, &mut updates, |data, out| data.reseed(&seed, out));
                bridge.applied.send_replace(seed.seq);
                bridge.feed_live.store(true, Ordering::Release);
                tracing::info!(seq = seed.seq, "market-data feed seeded from the stream");
            }
            // Waiting for the seed a resync asked for: nothing applies before it.
            Some(FeedItem::Executed(_)) if !seeded => {}
            Some(FeedItem::Executed(executed)) => {
                let started = Instant::now();
                let gaps = apply_locked(&bridge, &mut updates, |data, out| {
                    data.apply(&executed, out);
                });
                bridge.applied.send_replace(executed.seq);
                bridge
                    .metrics
                    .feed_batch_seconds
                    .observe(started.elapsed().as_secs_f64());
                if gaps > 0 {
                    tracing::warn!(seq = executed.seq, "book mirror out of step: resyncing");
                    bridge.feed_live.store(false, Ordering::Release);
                    seeded = false;
                    (feed.resync)();
                }
            }
        }
    }
}

/// Applies `apply` to the market data and publishes what changed, under the lock (a snapshot
/// and the increments after it are queued in order); returns the mirrors' refused changes.
fn apply_locked(
    bridge: &Bridge,
    updates: &mut Vec<crate::market_data::Update>,
    apply: impl FnOnce(&mut crate::market_data::MarketData, &mut Vec<crate::market_data::Update>),
) -> u64 {
    let mut shared = bridge.lock();
    let shared = &mut *shared;
    apply(&mut shared.data, updates);
    shared.hub.publish(
        updates,
        &shared.data,
        &bridge.catalog.load(),
        &bridge.config,
    );
    updates.clear();
    shared.data.inconsistencies()
}

/// Runs until the bridge shuts down.
pub(crate) async fn run(bridge: Arc<Bridge>) {
    let Some(engine) = bridge.engine.clone() else {
        tracing::error!("the engine feed needs an engine");
        return;
    };
    let mut stop = bridge.shutdown.subscribe();
    let mut updates = Vec::with_capacity(1_024);
    let mut first = true;
    let mut restored = false;
    while !*stop.borrow() {
        let seeded = engine
            .subscribe_seeded(Interest::Executed, bridge.config.tap_capacity, Seed::of)
            .map_err(|error| error.to_string());
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
        if !restored {
            restored = true;
            tokio::select! {
                () = crate::rest::stopped(&mut stop) => return,
                () = restore(&bridge, &seed) => {}
            }
        }
        {
            let mut shared = bridge.lock();
            let shared = &mut *shared;
            shared.data.reseed(&seed, &mut updates);
            shared.hub.publish(
                &updates,
                &shared.data,
                &bridge.catalog.load(),
                &bridge.config,
            );
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
                        .publish(&updates, &shared.data, &bridge.catalog.load(), &bridge.config);
                    updates.clear();
                    bridge.applied.send_replace(last_seq);
                    if shared.data.inconsistencies() > 0 {
                        bridge.feed_live.store(false, Ordering::Release);
                        break;
                    }
                    bridge
                        .metrics
                        .feed_batch_seconds
                        .observe(started.elapsed().as_secs_f64());
                }
                _ = tickers.tick() => {
                    let mut shared = bridge.lock();
                    let shared = &mut *shared;
                    if shared.data.take_tickers_changed() {
                        shared.hub.publish_tickers(&shared.data, &bridge.catalog.load());
                    }
                }
            }
        }
    }
}

/// Rebuilds public trades and candles from the replica up to `seed` (see [`super::rebuild`]);
/// logs and goes on without them when it cannot.
async fn restore(bridge: &Bridge, seed: &Seed) {
    let Some(reader) = bridge.replica.get() else {
        tracing::info!("no replica: public trades and k-lines start empty");
        return;
    };
    let started = Instant::now();
    let markets: Vec<_> = seed.books.iter().map(|(market, _)| *market).collect();
    let restorer = bridge.lock().data.restorer();
    match super::rebuild::rebuild(
        reader,
        seed.seq,
        &markets,
        bridge.config.rebuild_trades_max,
        restorer,
    )
    .await
    {
        Ok(rebuilt) => {
            tracing::info!(
                seq = seed.seq,
                trades = rebuilt.trades_read,
                folded = rebuilt.restored.folded(),
                truncated = rebuilt.truncated,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "public market data rebuilt from the replica"
            );
            bridge.lock().data.restore(rebuilt.restored);
        }
        Err(error) => tracing::error!(%error, seq = seed.seq,
            "public market data not rebuilt: trades and k-lines start empty"),
    }
}
