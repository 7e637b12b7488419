//! Client order ids that do not repeat across runs, so a second run of a program is never
//! answered `Duplicate` with the first run's order.
//!
//! An id is `(milliseconds since the Unix epoch at start) << COUNTER_BITS` plus a counter. Two
//! runs started `d` ms apart collide only if the first issued more than `d * 2^22` ids, i.e.
//! more than 4 billion orders per second of its life; ids stay below 2^63 until the year 2248.
//! Clocks that step backwards between runs can break this; pass ids of your own then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use peregrine_hotpath::ClientOrderId;

/// Low bits of an id that count within one run.
pub const COUNTER_BITS: u32 = 22;

/// Hands out client order ids: a time-based start plus a counter.
#[derive(Debug)]
pub struct ClientOrderIds {
    next: AtomicU64,
}

impl ClientOrderIds {
    /// Ids starting at the current time's.
    pub fn new() -> ClientOrderIds {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        ClientOrderIds::starting_at_ms(ms)
    }

    /// Ids of a run started `ms` after the Unix epoch (for tests and replays).
    pub fn starting_at_ms(ms: u64) -> ClientOrderIds {
        // At least 1: id 0 means "none" on the wire.
        let start = (ms << COUNTER_BITS).max(1);
        ClientOrderIds {
            next: AtomicU64::new(start),
        }
    }

    /// The next id.
    pub fn next(&self) -> ClientOrderId {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        debug_assert_ne!(id, 0);
        ClientOrderId(id)
    }
}

impl Default for ClientOrderIds {
    fn default() -> Self {
        ClientOrderIds::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn runs_a_millisecond_apart_do_not_overlap() {
        let first = ClientOrderIds::starting_at_ms(1_800_000_000_000);
        let second = ClientOrderIds::starting_at_ms(1_800_000_000_001);
        let issued: Vec<_> = (0..1_000).map(|_| first.next()).collect();
        assert!(issued.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(issued.last().unwrap().0 < second.next().0);
    }
}
