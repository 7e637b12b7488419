//! Per-session limits: a token bucket on a caller-supplied clock (the sans-IO core never reads
//! a clock) and the numbers a session is held to.

use serde::{Deserialize, Serialize};

/// The numbers a session is held to. Defaults suit one HFT client on one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionLimits {
    /// Commands that may await `Done` at once; more are rejected with `TooManyInFlight`.
    pub max_in_flight: u32,
    /// Sustained requests per second (heartbeats and logout are free).
    pub rate_per_sec: u32,
    /// Requests that may arrive at once after a quiet spell.
    pub burst: u32,
    /// Consecutive limit rejects after which the session is closed with `Abuse`.
    pub max_violations: u32,
    /// The client should send something at least this often, in milliseconds.
    pub heartbeat_ms: u32,
    /// Silence after which the session is closed with `IdleTimeout`, in milliseconds (also
    /// bounds the time to log on).
    pub idle_timeout_ms: u32,
    /// Markets one session may subscribe to (at most [`crate::session::SUBSCRIPTIONS_MAX`]).
    pub max_subscriptions: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_in_flight: 1_024,
            rate_per_sec: 50_000,
            burst: 1_000,
            max_violations: 1_000,
            heartbeat_ms: 1_000,
            idle_timeout_ms: 5_000,
            max_subscriptions: 16,
        }
    }
}

/// One token is this many nano-tokens: refill is `elapsed_ns * rate_per_sec` nano-tokens, exact
/// in integers.
const NANOS_PER_TOKEN: u128 = 1_000_000_000;

/// A token bucket: `rate_per_sec` tokens a second, holding at most `burst`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate_per_sec: u128,
    capacity_nanos: u128,
    level_nanos: u128,
    last_ns: u64,
}

impl TokenBucket {
    /// A full bucket at time `now_ns`.
    pub fn new(rate_per_sec: u32, burst: u32, now_ns: u64) -> Self {
        let capacity_nanos = u128::from(burst.max(1)) * NANOS_PER_TOKEN;
        TokenBucket {
            rate_per_sec: u128::from(rate_per_sec),
            capacity_nanos,
            level_nanos: capacity_nanos,
            last_ns: now_ns,
        }
    }

    /// Takes one token if there is one. A clock that goes backwards refills nothing.
    pub fn try_take(&mut self, now_ns: u64) -> bool {
        let elapsed_ns = u128::from(now_ns.saturating_sub(self.last_ns));
        self.last_ns = self.last_ns.max(now_ns);
        self.level_nanos =
            (self.level_nanos + elapsed_ns * self.rate_per_sec).min(self.capacity_nanos);
        if self.level_nanos >= NANOS_PER_TOKEN {
            self.level_nanos -= NANOS_PER_TOKEN;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut bucket = TokenBucket::new(1_000, 10, 0);
        assert!((0..10).all(|_| bucket.try_take(0)));
        assert!(!bucket.try_take(0));
        // One token per millisecond.
        assert!(!bucket.try_take(999_999));
        assert!(bucket.try_take(1_000_000));
        assert!(!bucket.try_take(1_000_000));
        // Never more than the burst, however long the pause.
        assert_eq!((0..100).filter(|_| bucket.try_take(u64::MAX)).count(), 10);
    }

    #[test]
    fn clock_going_backwards_refills_nothing() {
        let mut bucket = TokenBucket::new(1_000, 1, 5_000_000);
        assert!(bucket.try_take(5_000_000));
        assert!(!bucket.try_take(0));
        assert!(!bucket.try_take(5_000_000));
    }
}
