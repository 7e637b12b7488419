//! Wall-clock time in Unix milliseconds, or a clock a test moves by hand (expiry, sliding
//! sessions and lockout windows are tested without sleeping).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where "now" comes from.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum Clock {
    /// The system's clock.
    #[default]
    System,
    /// A clock that moves only when told.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `start_ms`.
    pub fn manual(start_ms: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match self {
            // A clock before 1970 or past year 292 million reads as 0 or the maximum: both make
            // every expiry check fail closed or open only for that impossible clock.
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| {
                    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
                }),
            Clock::Manual(now) => now.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward by `ms`; the system clock ignores it.
    pub fn advance_ms(&self, ms: i64) {
        assert!(ms >= 0, "time moves forward");
        if let Clock::Manual(now) = self {
            now.fetch_add(ms, Ordering::Relaxed);
        }
    }
}
