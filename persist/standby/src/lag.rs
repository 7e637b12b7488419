//! Replication lag in records and seconds, measured the same way on both sides: the leader's
//! sequence is sampled with the time it was first seen; the lag in seconds is the age of the
//! oldest sample the follower has not reached, so a follower that keeps up under steady load
//! shows the time it trails by, not the time since it was last fully caught up.

use std::collections::VecDeque;
use std::time::Instant;

use crate::Seq;

/// Samples kept; past it new samples are skipped (the oldest one left gives a larger, never a
/// smaller, lag). At one sample per 100 ms heartbeat or batch that is ~100 s of history.
pub const LAG_SAMPLES_MAX: usize = 1_024;

/// The lag clock of one follower.
#[derive(Debug)]
pub struct LagClock {
    /// `(leader sequence, first seen at)`, increasing sequences, oldest first.
    samples: VecDeque<(Seq, Instant)>,
}

impl Default for LagClock {
    fn default() -> LagClock {
        LagClock::new()
    }
}

impl LagClock {
    /// An empty clock.
    pub fn new() -> LagClock {
        LagClock {
            samples: VecDeque::with_capacity(LAG_SAMPLES_MAX),
        }
    }

    /// Records the leader at `leader_seq` and the follower at `follower_seq` at `now`; returns
    /// the lag as `(records, seconds)`.
    pub fn observe(&mut self, leader_seq: Seq, follower_seq: Seq, now: Instant) -> (u64, f64) {
        let newest = self.samples.back().map_or(0, |(seq, _)| *seq);
        if leader_seq > newest && self.samples.len() < LAG_SAMPLES_MAX {
            self.samples.push_back((leader_seq, now));
        }
        // Bounded by LAG_SAMPLES_MAX.
        while self
            .samples
            .front()
            .is_some_and(|(seq, _)| *seq <= follower_seq)
        {
            self.samples.pop_front();
        }
        assert!(self.samples.len() <= LAG_SAMPLES_MAX);
        if follower_seq >= leader_seq {
            return (0, 0.0);
        }
        let seconds = self
            .samples
            .front()
            .map_or(0.0, |(_, at)| now.duration_since(*at).as_secs_f64());
        (leader_seq - follower_seq, seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_follower_that_keeps_up_trails_by_its_delay_not_by_its_uptime() {
        let start = Instant::now();
        let mut clock = LagClock::new();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(clock.observe(10, 10, at(0)), (0, 0.0));
        // Always 5 records and 50 ms behind, for a long time.
        for step in 1..200_u64 {
            let (records, seconds) = clock.observe(10 + step * 5, 5 + step * 5, at(step * 50));
            assert_eq!(records, 5);
            assert!(seconds <= 0.050 + 1e-9, "{seconds} at step {step}");
        }
        // A stalled follower's lag grows with time.
        let (_, stalled) = clock.observe(2_000, 1_000, at(20_000));
        assert!(stalled >= 10.0, "{stalled}");
    }
}
