//! Open-loop pacing: send times on a fixed grid at a target rate.
//!
//! Operation `index` is scheduled at `start + index / rate`, computed from the index (never by
//! adding intervals, which would drift). When the caller falls behind — an operation stalled —
//! the grid does not move: the following operations are already due and go out back to back
//! until the schedule is caught up, and each is charged from its own scheduled time. That is what
//! makes the latency coordinated-omission corrected. The pacer counts how often it was behind
//! ([`PacerStats`]) so a run that could not keep up says so instead of bunching silently.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Above this much time to wait, sleep (minus [`SLEEP_MARGIN`]) instead of burning a core: on a
/// two-core appliance the pacer must not starve the system under test during long gaps.
const SLEEP_ABOVE: Duration = Duration::from_millis(2);
/// Wake this much early from a sleep: Linux sleeps overshoot by timer slack plus scheduling
/// latency, typically well under a millisecond.
const SLEEP_MARGIN: Duration = Duration::from_millis(1);
/// Above this much time to wait (and below [`SLEEP_ABOVE`]), yield the core; below it, spin,
/// because a yield can cost more than the remaining wait.
const YIELD_ABOVE: Duration = Duration::from_micros(20);

/// Hands out send times on a fixed grid at `rate_ops_per_sec`, waiting until each is due.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    rate_ops_per_sec: NonZeroU64,
    /// Index of the next operation to schedule; also the number scheduled so far.
    index_next: u64,
    stats: PacerStats,
}

/// How well the pacer kept its schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PacerStats {
    /// Operations handed out by [`Pacer::next_scheduled`].
    pub sends_count: u64,
    /// Sends that left at least one interval after their scheduled time, i.e. when the next
    /// send was already due: the sender was behind and sends went out back to back.
    pub sends_behind_count: u64,
    /// Largest delay between a scheduled send time and the moment the pacer released it.
    pub send_lag_max: Duration,
    /// The rate the pacer was asked for (0 only for `Default`).
    pub offered_ops_per_sec: u64,
    /// When the last send was released, from operation 0's due time.
    pub released_last_offset: Duration,
}

/// Achieved below this share of the offered rate, a run is saturated: its latencies measure the
/// growing backlog, not the system (5 % leaves room for wake-up jitter at the end of a run).
pub const SATURATED_BELOW_SHARE: f64 = 0.95;
/// The rate suggested after a saturated run, as a share of what it achieved.
pub const SUGGESTED_RATE_SHARE: f64 = 0.8;

const _: () = assert!(SUGGESTED_RATE_SHARE < SATURATED_BELOW_SHARE);

impl PacerStats {
    /// The rate sends actually left at: sends over the time to the last release plus one
    /// interval (a run on schedule achieves exactly the offered rate). `None` before any send.
    pub fn achieved_ops_per_sec(&self) -> Option<f64> {
        if self.sends_count == 0 || self.offered_ops_per_sec == 0 {
            return None;
        }
        let interval_s = 1.0 / self.offered_ops_per_sec as f64;
        let span_s = self.released_last_offset.as_secs_f64() + interval_s;
        Some(self.sends_count as f64 / span_s)
    }

    /// Whether the sender fell behind the offered rate (see [`SATURATED_BELOW_SHARE`]).
    pub fn saturated(&self) -> bool {
        self.achieved_ops_per_sec().is_some_and(|achieved| {
            achieved < self.offered_ops_per_sec as f64 * SATURATED_BELOW_SHARE
        })
    }
}

impl Pacer {
    /// A pacer whose operation 0 is due at `start`.
    pub fn new(rate_ops_per_sec: NonZeroU64, start: Instant) -> Self {
        Pacer {
            start,
            rate_ops_per_sec,
            index_next: 0,
            stats: PacerStats {
                offered_ops_per_sec: rate_ops_per_sec.get(),
                ..PacerStats::default()
            },
        }
    }

    /// Waits until the next operation is due and returns its *scheduled* send time: record
    /// latency from this instant, not from the moment this call returns.
    pub fn next_scheduled(&mut self) -> Instant {
        let scheduled = self.peek_next();
        self.index_next += 1;
        let released = wait_until(scheduled);
        // `wait_until` returns no earlier than `scheduled`.
        assert!(released >= scheduled);
        let lag = released.duration_since(scheduled);
        self.stats.sends_count += 1;
        if lag >= self.interval() {
            self.stats.sends_behind_count += 1;
        }
        self.stats.send_lag_max = self.stats.send_lag_max.max(lag);
        self.stats.released_last_offset = released.duration_since(self.start);
        scheduled
    }

    /// The scheduled send time of the next operation, without waiting or advancing.
    pub fn peek_next(&self) -> Instant {
        self.scheduled_at(self.index_next)
    }

    /// The scheduled send time of operation `index`: `start + index / rate`, exact to the
    /// nanosecond with no accumulated rounding.
    pub fn scheduled_at(&self, index: u64) -> Instant {
        self.start + self.offset_of(index)
    }

    /// The grid offset of operation `index` from the start.
    pub fn offset_of(&self, index: u64) -> Duration {
        let offset_ns = u128::from(index) * NANOS_PER_SEC / u128::from(self.rate_ops_per_sec.get());
        // 2^64 ns is 584 years: a bounded run (at most 24 h) never gets there.
        Duration::from_nanos(u64::try_from(offset_ns).unwrap_or(u64::MAX))
    }

    /// The nominal interval between sends, rounded down to the nanosecond (at least 1 ns).
    pub fn interval(&self) -> Duration {
        let interval_ns = (NANOS_PER_SEC / u128::from(self.rate_ops_per_sec.get())).max(1);
        Duration::from_nanos(u64::try_from(interval_ns).unwrap_or(u64::MAX))
    }

    /// The target rate.
    pub fn rate_ops_per_sec(&self) -> NonZeroU64 {
        self.rate_ops_per_sec
    }

    /// When operation 0 was due.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Index of the next operation; equals the number of operations scheduled so far.
    pub fn index_next(&self) -> u64 {
        self.index_next
    }

    /// How well the schedule was kept so far.
    pub fn stats(&self) -> PacerStats {
        self.stats
    }
}

/// Waits until `scheduled` and returns the instant the wait ended (never earlier than
/// `scheduled`; later if the thread was descheduled). Sleeps for long waits, yields for medium
/// ones and spins for the last few microseconds.
pub fn wait_until(scheduled: Instant) -> Instant {
    // Bounded by time, not by count: each pass either returns or moves closer to `scheduled`,
    // which is at most one send interval (or one warmup) away in the harness's own use.
    loop {
        let now = Instant::now();
        let Some(remaining) = scheduled
            .checked_duration_since(now)
            .filter(|r| !r.is_zero())
        else {
            return now;
        };
        if remaining > SLEEP_ABOVE {
            std::thread::sleep(remaining - SLEEP_MARGIN);
        } else if remaining > YIELD_ABOVE {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(ops_per_sec: u64) -> NonZeroU64 {
        NonZeroU64::new(ops_per_sec).unwrap()
    }

    #[test]
    fn grid_is_exact_without_drift() {
        let start = Instant::now();
        // 3 ops/s does not divide a second evenly: adding a rounded interval would drift.
        let pacer = Pacer::new(rate(3), start);
        assert_eq!(pacer.offset_of(0), Duration::ZERO);
        assert_eq!(pacer.offset_of(1), Duration::from_nanos(333_333_333));
        assert_eq!(pacer.offset_of(3), Duration::from_secs(1));
        assert_eq!(pacer.offset_of(3_000_000), Duration::from_secs(1_000_000));
        assert_eq!(pacer.scheduled_at(3), start + Duration::from_secs(1));
        assert_eq!(pacer.interval(), Duration::from_nanos(333_333_333));
        assert_eq!(
            Pacer::new(rate(2_000_000_000), start).interval(),
            Duration::from_nanos(1)
        );
    }

    #[test]
    fn waits_until_due_and_stays_on_grid_after_a_stall() {
        let rate_ops_per_sec = 20_000; // 50 µs interval
        let start = Instant::now();
        let mut pacer = Pacer::new(rate(rate_ops_per_sec), start);
        let stall_index = 100;
        let stall = Duration::from_millis(5);
        for index in 0..300_u64 {
            let scheduled = pacer.next_scheduled();
            let released = Instant::now();
            // On the grid, whatever happened before.
            assert_eq!(scheduled, start + Duration::from_micros(50 * index));
            // Never released early.
            assert!(released >= scheduled);
            if index == stall_index {
                std::thread::sleep(stall);
            }
        }
        let stats = pacer.stats();
        assert_eq!(stats.sends_count, 300);
        assert_eq!(pacer.index_next(), 300);
        // The stall held back the sends scheduled during it: at least stall / interval of them
        // left when the next was already due, and one waited at least the whole stall minus
        // one interval.
        assert!(stats.sends_behind_count >= 90, "{stats:?}");
        assert!(
            stats.send_lag_max >= stall - Duration::from_micros(50),
            "{stats:?}"
        );
    }

    #[test]
    fn wait_until_the_past_returns_at_once() {
        let past = Instant::now();
        let released = wait_until(past);
        assert!(released >= past);
    }
}
