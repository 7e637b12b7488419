//! A lock-free latency histogram for threads that must not call into a metrics library (the
//! shard's worker, the journal writer): recording is two relaxed atomic adds into fixed,
//! preallocated buckets; a reader elsewhere takes a [`LatencySnapshot`] and exports it (`up`
//! turns it into a Prometheus `_seconds` histogram at each scrape). No clock here: callers
//! measure, this only counts.
//!
//! Buckets: upper bounds of `first_ns` · 2^i for i in 0..[`LATENCY_BUCKETS`], plus one for
//! everything slower. Powers of two keep the index one `leading_zeros`; a factor of two per
//! bucket over 24 buckets spans 2^23: 64 ns to ~0.5 s for a command's apply, 1 µs to ~8.4 s
//! for an fsync (tens of µs on NVMe, ms on a cloud disk, seconds when a device stalls).

use std::sync::atomic::{AtomicU64, Ordering};

/// Bounded buckets; one more counts what is slower than the last bound.
pub const LATENCY_BUCKETS: usize = 24;
/// The largest first bound accepted.
pub const LATENCY_BUCKET_FIRST_NS_MAX: u64 = 1 << 20;

// The last bound (first · 2^23) must fit a u64 of nanoseconds with room to spare.
const _: () = assert!(LATENCY_BUCKETS < 40);
const _: () = assert!(LATENCY_BUCKET_FIRST_NS_MAX.leading_zeros() as usize > LATENCY_BUCKETS);

/// Counts of latencies per bucket, and their sum.
#[derive(Debug)]
pub struct LatencyBuckets {
    first_ns: u64,
    counts: [AtomicU64; LATENCY_BUCKETS + 1],
    sum_ns: AtomicU64,
}

impl LatencyBuckets {
    /// Buckets whose first upper bound is `first_ns` (1 ..= [`LATENCY_BUCKET_FIRST_NS_MAX`]).
    pub fn new(first_ns: u64) -> Self {
        assert!((1..=LATENCY_BUCKET_FIRST_NS_MAX).contains(&first_ns));
        Self {
            first_ns,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// What a [`LatencyBuckets`] held at one moment (not atomic across buckets: a record made
/// during the read may be in the count but not the sum; scrapes are seconds apart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// The first bucket's upper bound.
    pub first_ns: u64,
    /// Records per bucket (not cumulative); the last is the overflow bucket.
    pub counts: [u64; LATENCY_BUCKETS + 1],
    /// Sum of every recorded latency.
    pub sum_ns: u64,
}

impl LatencyBuckets {
    /// Counts one latency of `ns` nanoseconds.
    pub fn record(&self, ns: u64) {
        let index = bucket_of(self.first_ns, ns);
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            first_ns: self.first_ns,
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

impl LatencySnapshot {
    /// The upper bound of bucket `index` (< [`LATENCY_BUCKETS`]), in nanoseconds.
    pub fn upper_bound_ns(&self, index: usize) -> u64 {
        assert!(index < LATENCY_BUCKETS);
        self.first_ns << index
    }
}

/// The bucket `ns` falls in: the first whose bound is at least `ns`, or the overflow bucket.
fn bucket_of(first_ns: u64, ns: u64) -> usize {
    if ns <= first_ns {
        return 0;
    }
    // ceil(ns / first) - 1 has its highest bit at the bucket's index - 1.
    let steps = ns.div_ceil(first_ns) - 1;
    let index = (u64::BITS - steps.leading_zeros()) as usize;
    index.min(LATENCY_BUCKETS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_latency_lands_in_the_first_bucket_whose_bound_holds_it() {
        assert_eq!(bucket_of(1_000, 0), 0);
        assert_eq!(bucket_of(1_000, 1_000), 0);
        assert_eq!(bucket_of(1_000, 1_001), 1);
        assert_eq!(bucket_of(1_000, 2_000), 1);
        assert_eq!(bucket_of(1_000, 2_001), 2);
        assert_eq!(bucket_of(1_000, 4_000), 2);
        for first_ns in [1, 64, 1_000, LATENCY_BUCKET_FIRST_NS_MAX] {
            let snapshot = LatencyBuckets::new(first_ns).snapshot();
            for index in 0..LATENCY_BUCKETS {
                let bound = snapshot.upper_bound_ns(index);
                assert_eq!(bucket_of(first_ns, bound), index, "at the bound {bound}");
                let above = (index + 1).min(LATENCY_BUCKETS);
                assert_eq!(bucket_of(first_ns, bound + 1), above);
            }
            assert_eq!(bucket_of(first_ns, u64::MAX), LATENCY_BUCKETS);
        }
    }

    #[test]
    fn a_snapshot_holds_what_was_recorded() {
        let buckets = LatencyBuckets::new(1_000);
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
