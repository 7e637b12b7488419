//! Keeps an edge's API-key cache current from identity's key feed: the active keys at start,
//! then every change, polled every `interval` (a new or revoked key takes effect within one
//! interval plus a store round trip; the REST test holds it under 1 s). [`follow_keys`] feeds
//! the REST bridge; [`follow_keys_into`] any cache (the QUIC server's
//! `Server::apply_key_change`), each with its own feed.

use std::sync::Arc;
use std::time::Duration;

use peregrine_auth::key_feed::{KeyChange, KeyFeed, ResolvedKey};
use tokio::task::JoinHandle;

use super::Bridge;

/// The shortest poll interval accepted (a bound on the store queries one gateway makes).
pub const POLL_INTERVAL_MS_MIN: u64 = 20;

/// Loads `initial` into the bridge's cache and follows `feed` until the bridge shuts down,
/// counted in the bridge's `rest_key_changes_total` and `rest_key_feed_failures_total`.
pub fn follow_keys(
    bridge: Arc<Bridge>,
    feed: KeyFeed,
    initial: Vec<ResolvedKey>,
    interval: Duration,
) -> JoinHandle<()> {
    let stop = bridge.shutdown.subscribe();
    let (changes, failures) = (
        bridge.metrics.key_changes_total.clone(),
        bridge.metrics.key_feed_failures_total.clone(),
    );
    let apply = move |change| bridge.apply_key_change(change);
    follow_keys_into(apply, feed, initial, interval, stop, (changes, failures))
}

/// Loads `initial` through `apply` and follows `feed` until `stop` turns true. A failed poll
/// (store or OpenBao unavailable) is logged, counted in `counters.1` and retried; the cache
/// keeps what it has. Changes applied are counted in `counters.0`.
pub fn follow_keys_into(
    apply: impl Fn(KeyChange) + Send + Sync + 'static,
    mut feed: KeyFeed,
    initial: Vec<ResolvedKey>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    counters: (prometheus::IntCounter, prometheus::IntCounter),
) -> JoinHandle<()> {
    assert!(interval >= Duration::from_millis(POLL_INTERVAL_MS_MIN));
    for key in initial {
        apply(KeyChange::Upsert(key));
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = super::stopped(&mut stop) => return,
            }
            match feed.poll(&apply).await {
                Ok(0) => {}
                Ok(count) => {
                    counters.0.inc_by(count as u64);
                    tracing::debug!(count, position = feed.position(), "API-key changes applied");
                }
                Err(error) => {
                    counters.1.inc();
                    tracing::warn!(%error, "API-key feed poll failed; retrying");
                }
            }
        }
    })
}
