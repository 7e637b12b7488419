//! Keeps the bridge's API-key cache current from identity's key feed: the active keys at
//! start, then every change, polled every `interval` (a new or revoked key takes effect within
//! one interval plus a store round trip; the test holds it under 1 s).

use std::sync::Arc;
use std::time::Duration;

use peregrine_auth::key_feed::{KeyChange, KeyFeed, ResolvedKey};
use tokio::task::JoinHandle;

use super::Bridge;

/// The shortest poll interval accepted (a bound on the store queries one gateway makes).
pub const POLL_INTERVAL_MS_MIN: u64 = 20;

/// Loads `initial` into the cache and follows `feed` until the bridge shuts down. A failed
/// poll (store or OpenBao unavailable) is logged and retried; the cache keeps what it has.
pub fn follow_keys(
    bridge: Arc<Bridge>,
    mut feed: KeyFeed,
    initial: Vec<ResolvedKey>,
    interval: Duration,
) -> JoinHandle<()> {
    assert!(interval >= Duration::from_millis(POLL_INTERVAL_MS_MIN));
    for key in initial {
        bridge.apply_key_change(KeyChange::Upsert(key));
    }
    let mut stop = bridge.shutdown.subscribe();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = super::stopped(&mut stop) => return,
            }
            let bridge = &bridge;
            match feed.poll(|change| bridge.apply_key_change(change)).await {
                Ok(0) => {}
                Ok(count) => {
                    bridge.metrics.key_changes_total.inc_by(count as u64);
                    tracing::debug!(count, position = feed.position(), "API-key changes applied");
                }
                Err(error) => {
                    bridge.metrics.key_feed_failures_total.inc();
                    tracing::warn!(%error, "API-key feed poll failed; retrying");
                }
            }
        }
    })
}
