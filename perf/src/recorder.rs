//! Latency recording into an HDR histogram: 1 ns to 1 h at 3 significant figures.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::error::BenchError;
use crate::report::LatencySummary;

/// Lowest discernible latency: one nanosecond, the clock's resolution.
pub const LATENCY_LOWEST_NS: u64 = 1;
/// Highest trackable latency: one hour. Longer values are clamped to it and counted in
/// [`LatencyRecorder::saturated_count`]; a bounded run never legitimately gets there.
pub const LATENCY_HIGHEST_NS: u64 = 60 * 60 * 1_000_000_000;
/// Significant figures kept: 0.1 % relative error at every magnitude.
pub const LATENCY_SIGNIFICANT_FIGURES: u8 = 3;
/// Bound on the values [`LatencyRecorder::record_correct`] synthesises for one record: beyond
/// that the expected interval is too small for the value to be meaningful (and the correction
/// loop inside hdrhistogram would be unbounded).
pub const CORRECTION_VALUES_MAX: u64 = 10_000_000;

/// Width of one bucket of the completions timeline (the throughput-over-time plot).
pub const TIMELINE_BUCKET: Duration = Duration::from_millis(100);
/// Buckets of the completions timeline: one hour; later completions count in the last bucket.
pub const TIMELINE_BUCKETS_MAX: usize = 36_000;

const _: () = assert!(TIMELINE_BUCKET.as_millis() * TIMELINE_BUCKETS_MAX as u128 == 3_600_000);

/// An HDR latency histogram in nanoseconds; one per recording thread, merged at the end. Paced
/// records also count their completion time in a timeline of [`TIMELINE_BUCKET`]s.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
    /// Values above [`LATENCY_HIGHEST_NS`], recorded as that value.
    saturated_count: u64,
    /// When the first timed completion happened, and completions per bucket since then.
    timeline: Option<(Instant, Vec<u64>)>,
}

impl LatencyRecorder {
    /// An empty recorder with the harness-wide bounds.
    pub fn new() -> Result<Self, BenchError> {
        let histogram = Histogram::new_with_bounds(
            LATENCY_LOWEST_NS,
            LATENCY_HIGHEST_NS,
            LATENCY_SIGNIFICANT_FIGURES,
        )
        .map_err(|error| BenchError::Histogram(error.to_string()))?;
        Ok(LatencyRecorder {
            histogram,
            saturated_count: 0,
            timeline: None,
        })
    }

    /// Records the latency of one operation from its *scheduled* send time (from
    /// [`Pacer::next_scheduled`](crate::Pacer::next_scheduled)) to its completion, so time spent
    /// waiting behind an earlier stalled operation is charged to it.
    pub fn record_from_scheduled(&mut self, scheduled: Instant, completed: Instant) {
        // The monotonic clock and the pacer (which never releases early) guarantee this.
        assert!(
            completed >= scheduled,
            "operation completed before it was scheduled"
        );
        let latency_ns = completed.duration_since(scheduled).as_nanos();
        self.record_ns(u64::try_from(latency_ns).unwrap_or(u64::MAX));
        self.count_completion(completed, 1);
    }

    fn count_completion(&mut self, completed: Instant, count: u64) {
        let (origin, buckets) = self
            .timeline
            .get_or_insert_with(|| (completed, Vec::with_capacity(TIMELINE_BUCKETS_MAX / 10)));
        // A completion before the origin (merged from another thread) counts in bucket 0.
        let offset = completed.saturating_duration_since(*origin);
        let index = usize::try_from(offset.as_millis() / TIMELINE_BUCKET.as_millis())
            .unwrap_or(usize::MAX)
            .min(TIMELINE_BUCKETS_MAX - 1);
        if buckets.len() <= index {
            buckets.resize(index + 1, 0);
        }
        buckets[index] += count;
    }

    /// Completions per second over time: `(seconds since the first completion, ops/s)` per
    /// [`TIMELINE_BUCKET`]; empty unless records came through [`Self::record_from_scheduled`].
    pub fn throughput_timeline(&self) -> Vec<(f64, f64)> {
        let Some((_, buckets)) = &self.timeline else {
            return Vec::new();
        };
        let bucket_s = TIMELINE_BUCKET.as_secs_f64();
        buckets
            .iter()
            .enumerate()
            .map(|(i, count)| (i as f64 * bucket_s, *count as f64 / bucket_s))
            .collect()
    }

    /// The latency at percentiles spaced evenly in "nines" (0, 90, 99, 99.9 %... up to the
    /// finest the count supports), then the max: `(nines, ns)` where nines = -log10(1 - q).
    pub fn percentile_curve(&self) -> Vec<(f64, u64)> {
        /// Points per nine: enough for a smooth curve, bounded.
        const POINTS_PER_NINE: u32 = 20;
        if self.histogram.is_empty() {
            return Vec::new();
        }
        // Beyond 1/count the percentiles are all the max.
        let nines_max = (self.histogram.len() as f64).log10().clamp(1.0, 9.0);
        let points = (nines_max * f64::from(POINTS_PER_NINE)) as u32;
        let mut curve: Vec<(f64, u64)> = (0..=points)
            .map(|i| {
                let nines = f64::from(i) / f64::from(POINTS_PER_NINE);
                let quantile = 1.0 - 10f64.powf(-nines);
                (nines, self.histogram.value_at_quantile(quantile))
            })
            .collect();
        curve.push((nines_max, self.histogram.max()));
        curve
    }

    /// Records one latency in nanoseconds, clamped to [`LATENCY_HIGHEST_NS`].
    pub fn record_ns(&mut self, latency_ns: u64) {
        if latency_ns > LATENCY_HIGHEST_NS {
            self.saturated_count += 1;
        }
        self.histogram.saturating_record(latency_ns);
    }

    /// For closed-loop workloads: records `latency_ns` and, when it exceeds
    /// `expected_interval_ns`, the values the missing sends would have seen (hdrhistogram's
    /// `record_correct`). `expected_interval_ns == 0` records without correction.
    pub fn record_correct(
        &mut self,
        latency_ns: u64,
        expected_interval_ns: u64,
    ) -> Result<(), BenchError> {
        if latency_ns > LATENCY_HIGHEST_NS {
            self.saturated_count += 1;
        }
        let latency_ns = latency_ns.min(LATENCY_HIGHEST_NS);
        if expected_interval_ns > 0 && latency_ns / expected_interval_ns > CORRECTION_VALUES_MAX {
            return Err(BenchError::invalid(
                "expected_interval_ns",
                format!(
                    "{expected_interval_ns} ns is too small for a {latency_ns} ns latency: the \
                     correction would synthesise more than {CORRECTION_VALUES_MAX} values"
                ),
            ));
        }
        self.histogram
            .record_correct(latency_ns, expected_interval_ns)
            .map_err(|error| BenchError::Histogram(error.to_string()))
    }

    /// Adds another thread's recordings to this one.
    pub fn merge(&mut self, other: &LatencyRecorder) -> Result<(), BenchError> {
        self.histogram
            .add(&other.histogram)
            .map_err(|error| BenchError::Histogram(error.to_string()))?;
        self.saturated_count += other.saturated_count;
        if let Some((origin, buckets)) = &other.timeline {
            for (i, count) in buckets.iter().enumerate() {
                let at = *origin + TIMELINE_BUCKET * u32::try_from(i).unwrap_or(u32::MAX);
                if *count > 0 {
                    self.count_completion(at, *count);
                }
            }
        }
        Ok(())
    }

    /// Forgets every recording (e.g. after warmup).
    pub fn reset(&mut self) {
        self.histogram.reset();
        self.saturated_count = 0;
        self.timeline = None;
    }

    /// Number of values recorded (including those synthesised by `record_correct`).
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Number of values that exceeded [`LATENCY_HIGHEST_NS`].
    pub fn saturated_count(&self) -> u64 {
        self.saturated_count
    }

    /// p50, p90, p99, p99.9 and max; all zero when nothing was recorded.
    pub fn summary(&self) -> LatencySummary {
        if self.histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            p50: self.histogram.value_at_quantile(0.50),
            p90: self.histogram.value_at_quantile(0.90),
            p99: self.histogram.value_at_quantile(0.99),
            p999: self.histogram.value_at_quantile(0.999),
            max: self.histogram.max(),
        }
    }

    /// The underlying histogram, for workloads that want more than the summary.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Within hdrhistogram's 3-significant-figure precision.
    fn assert_near(actual: u64, expected: u64) {
        let tolerance = (expected / 1000).max(1);
        assert!(
            actual.abs_diff(expected) <= tolerance,
            "{actual} is not within 0.1 % of {expected}"
        );
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut recorder = LatencyRecorder::new().unwrap();
        for latency_ns in 1..=100_000 {
            recorder.record_ns(latency_ns);
        }
        let summary = recorder.summary();
        assert_eq!(recorder.count(), 100_000);
        assert_near(summary.p50, 50_000);
        assert_near(summary.p90, 90_000);
        assert_near(summary.p99, 99_000);
        assert_near(summary.p999, 99_900);
        assert_near(summary.max, 100_000);
    }

    #[test]
    fn percentiles_of_a_bimodal_distribution() {
        // 98.5 % fast at 1 µs, 1.5 % slow at 1 ms: p90 is fast, p99 and beyond are slow.
        let mut recorder = LatencyRecorder::new().unwrap();
        for index in 0..10_000 {
            recorder.record_ns(if index % 200 < 3 { 1_000_000 } else { 1_000 });
        }
        let summary = recorder.summary();
        assert_near(summary.p50, 1_000);
        assert_near(summary.p90, 1_000);
        assert_near(summary.p99, 1_000_000);
        assert_near(summary.p999, 1_000_000);
        assert_near(summary.max, 1_000_000);
    }

    #[test]
    fn records_from_the_scheduled_time() {
        let mut recorder = LatencyRecorder::new().unwrap();
        let scheduled = Instant::now();
        recorder.record_from_scheduled(scheduled, scheduled + Duration::from_micros(250));
        recorder.record_from_scheduled(scheduled, scheduled);
        assert_eq!(recorder.count(), 2);
        assert_near(recorder.summary().max, 250_000);
    }

    #[test]
    fn clamps_and_counts_values_beyond_an_hour() {
        let mut recorder = LatencyRecorder::new().unwrap();
        recorder.record_ns(u64::MAX);
        assert_eq!(recorder.saturated_count(), 1);
        assert_near(recorder.summary().max, LATENCY_HIGHEST_NS);
    }

    #[test]
    fn record_correct_synthesises_the_missing_sends() {
        let mut recorder = LatencyRecorder::new().unwrap();
        // A 100 ms stall in a loop that sends every 10 ms hid 9 sends, which would have seen
        // 90, 80, ..., 10 ms.
        recorder.record_correct(100_000_000, 10_000_000).unwrap();
        assert_eq!(recorder.count(), 10);
        let summary = recorder.summary();
        assert_near(summary.max, 100_000_000);
        assert_near(summary.p50, 50_000_000);
        // Interval 0: no correction.
        recorder.record_correct(5, 0).unwrap();
        assert_eq!(recorder.count(), 11);
        // An absurdly small interval is refused instead of looping for hours.
        assert!(recorder.record_correct(LATENCY_HIGHEST_NS, 1).is_err());
    }

    #[test]
    fn merges_across_threads() {
        let recorders: Vec<LatencyRecorder> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2_u64)
                .map(|thread| {
                    scope.spawn(move || {
                        let mut recorder = LatencyRecorder::new().unwrap();
                        for latency_ns in 0..1_000 {
                            recorder.record_ns(1 + thread * 1_000 + latency_ns);
                        }
                        recorder
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect()
        });
        let mut merged = LatencyRecorder::new().unwrap();
        for recorder in &recorders {
            merged.merge(recorder).unwrap();
        }
        assert_eq!(merged.count(), 2_000);
        assert_near(merged.summary().p50, 1_000);
        assert_near(merged.summary().max, 2_000);
    }

    #[test]
    fn empty_summary_is_zero() {
        let recorder = LatencyRecorder::new().unwrap();
        assert_eq!(recorder.summary(), LatencySummary::default());
    }
}
