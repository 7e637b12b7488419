//! Physical floors measured in the same run as the workload: the cost below which no operation
//! of that kind can go on this machine right now (one clock read, later one fsync or one loopback
//! round trip). A report puts its latencies next to the floor so a reader sees how much is ours.

use std::hint::black_box;
use std::time::Instant;

/// Batches timed for [`clock_read_ns`]; the median batch is the floor, robust to a preemption
/// landing in a few of them.
pub const CLOCK_READ_BATCHES: usize = 31;
/// Clock reads per batch: enough that the two reads bracketing the batch are noise.
pub const CLOCK_READS_PER_BATCH: u32 = 1_000;
/// Bound on the samples [`measure_median_ns`] takes (and so on its buffer).
pub const SAMPLES_MAX: usize = 100_000;

/// The cost of one `Instant::now()` in nanoseconds (median over batches): the floor under any
/// latency this harness records, since each record reads the clock.
pub fn clock_read_ns() -> u64 {
    let mut batches_ns = [0_u64; CLOCK_READ_BATCHES];
    for batch_ns in &mut batches_ns {
        let start = Instant::now();
        for _ in 0..CLOCK_READS_PER_BATCH {
            black_box(Instant::now());
        }
        let elapsed_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        *batch_ns = elapsed_ns.div_ceil(u64::from(CLOCK_READS_PER_BATCH));
    }
    median_ns(&mut batches_ns)
}

/// Runs `operation` `samples_count` times (clamped to 1..=[`SAMPLES_MAX`]) and returns the median
/// of its individual durations in nanoseconds: for floors whose single operation is long next to
/// a clock read (an fsync, a loopback round trip). Stops at the first error.
pub fn measure_median_ns<E>(
    samples_count: usize,
    mut operation: impl FnMut() -> Result<(), E>,
) -> Result<u64, E> {
    let samples_count = samples_count.clamp(1, SAMPLES_MAX);
    let mut samples_ns = Vec::with_capacity(samples_count);
    for _ in 0..samples_count {
        let start = Instant::now();
        operation()?;
        samples_ns.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    Ok(median_ns(&mut samples_ns))
}

/// The median of `samples_ns` (the upper one for an even count); 0 when empty. Sorts in place.
pub fn median_ns(samples_ns: &mut [u64]) -> u64 {
    samples_ns.sort_unstable();
    samples_ns.get(samples_ns.len() / 2).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use super::*;

    #[test]
    fn clock_read_costs_something_small() {
        let floor_ns = clock_read_ns();
        // A vDSO clock read is ~20 ns; a syscall fallback under a VM ~1 µs.
        assert!((1..10_000).contains(&floor_ns), "{floor_ns}");
    }

    #[test]
    fn median_of_an_operation_is_at_least_its_duration() {
        let pause = Duration::from_micros(200);
        let median = measure_median_ns(5, || {
            std::thread::sleep(pause);
            Ok::<(), Infallible>(())
        })
        .unwrap();
        assert!(median >= 200_000, "{median}");
        let failed = measure_median_ns(5, || Err::<(), &str>("no disk"));
        assert_eq!(failed, Err("no disk"));
    }

    #[test]
    fn median_picks_the_middle() {
        assert_eq!(median_ns(&mut [5, 1, 9]), 5);
        assert_eq!(median_ns(&mut [4, 1, 9, 7]), 7);
        assert_eq!(median_ns(&mut []), 0);
    }
}
