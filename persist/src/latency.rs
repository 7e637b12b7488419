//! A lock-free latency histogram for threads that must not call into a metrics library (the
//! journal writer): recording is two relaxed atomic adds into fixed, preallocated buckets; a
//! reader elsewhere takes a [`LatencySnapshot`] and exports it (`up` turns it into a Prometheus
//! `_seconds` histogram at each scrape).
//!
//! Buckets: upper bounds of 1 µs · 2^i for i in 0..[`LATENCY_BUCKETS`] (1 µs to ~8.4 s), plus
//! one for everything slower. Powers of two keep the index one `leading_zeros`, and a factor of
//! two per bucket is the resolution an fsync's latency needs (tens of µs on NVMe, ms on a
//! cloud disk, seconds when a device stalls).

use std::sync::atomic::{AtomicU64, Ordering};

/// Bounded buckets; one more counts what is slower than the last bound.
pub const LATENCY_BUCKETS: usize = 24;
/// The first bucket's upper bound.
pub const LATENCY_BUCKET_FIRST_NS: u64 = 1_000;

// The last bound must fit a u64 of nanoseconds with room to spare.
const _: () = assert!(LATENCY_BUCKETS < 40);

/// Counts of latencies per bucket, and their sum.
#[derive(Debug)]
pub struct LatencyBuckets {
    counts: [AtomicU64; LATENCY_BUCKETS + 1],
    sum_ns: AtomicU64,
}

impl Default for LatencyBuckets {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// What a [`LatencyBuckets`] held at one moment (not atomic across buckets: a record made
/// during the read may be in the count but not the sum; scrapes are seconds apart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Records per bucket (not cumulative); the last is the overflow bucket.
    pub counts: [u64; LATENCY_BUCKETS + 1],
    /// Sum of every recorded latency.
    pub sum_ns: u64,
}

impl LatencyBuckets {
    /// Counts one latency of `ns` nanoseconds.
    pub fn record(&self, ns: u64) {
        let index = bucket_of(ns);
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// The upper bound of bucket `index` (< [`LATENCY_BUCKETS`]), in nanoseconds.
pub const fn upper_bound_ns(index: usize) -> u64 {
    assert!(index < LATENCY_BUCKETS);
    LATENCY_BUCKET_FIRST_NS << index
}

/// The bucket `ns` falls in: the first whose bound is at least `ns`, or the overflow bucket.
fn bucket_of(ns: u64) -> usize {
    if ns <= LATENCY_BUCKET_FIRST_NS {
        return 0;
    }
    // ceil(ns / first) - 1 has its highest bit at the bucket's index - 1.
    let steps = ns.div_ceil(LATENCY_BUCKET_FIRST_NS) - 1;
    let index = (u64::BITS - steps.leading_zeros()) as usize;
    index.min(LATENCY_BUCKETS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_latency_lands_in_the_first_bucket_whose_bound_holds_it() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1_000), 0);
        assert_eq!(bucket_of(1_001), 1);
        assert_eq!(bucket_of(2_000), 1);
        assert_eq!(bucket_of(2_001), 2);
        assert_eq!(bucket_of(4_000), 2);
        for index in 0..LATENCY_BUCKETS {
            let bound = upper_bound_ns(index);
            assert_eq!(bucket_of(bound), index, "at the bound {bound}");
            assert_eq!(bucket_of(bound + 1), (index + 1).min(LATENCY_BUCKETS));
        }
        assert_eq!(bucket_of(u64::MAX), LATENCY_BUCKETS);
    }

    #[test]
    fn a_snapshot_holds_what_was_recorded() {
        let buckets = LatencyBuckets::default();
        buckets.record(500);
        buckets.record(3_000);
        buckets.record(u64::MAX / 2);
        let snapshot = buckets.snapshot();
        assert_eq!(snapshot.counts[0], 1);
        assert_eq!(snapshot.counts[2], 1);
        assert_eq!(snapshot.counts[LATENCY_BUCKETS], 1);
        assert_eq!(snapshot.counts.iter().sum::<u64>(), 3);
        assert_eq!(snapshot.sum_ns, 3_500 + u64::MAX / 2);
    }
}
