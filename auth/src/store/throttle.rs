//! Counters of failures (and of requests, for rate limits) per key in a sliding-start window,
//! kept in the store so a restart or a second replica does not reset a lockout.

use super::{Store, StoreError, on_pool};

/// A key's counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Throttle {
    /// Events in the current window.
    pub failures: i64,
    /// Start of the window, Unix ms.
    pub window_start_ms: i64,
    /// Locked out until, Unix ms (0: not locked).
    pub locked_until_ms: i64,
}

impl Throttle {
    /// Milliseconds of lockout left at `now_ms` (0 when not locked).
    pub fn locked_for_ms(&self, now_ms: i64) -> i64 {
        (self.locked_until_ms - now_ms).max(0)
    }
}

impl Store {
    /// The counter of `key` (zero when never counted).
    pub async fn throttle(&self, key: &str) -> Result<Throttle, StoreError> {
        const SQL: &str = "SELECT failures, window_start_ms, locked_until_ms FROM throttles \
                           WHERE throttle_key = ?";
        let row: Option<(i64, i64, i64)> = on_pool!(self, |pool, _d| {
            sqlx::query_as(SQL).bind(key).fetch_optional(pool).await?
        });
        Ok(
            row.map_or_else(Throttle::default, |(failures, start, locked)| Throttle {
                failures,
                window_start_ms: start,
                locked_until_ms: locked,
            }),
        )
    }

    /// Counts one event of `key`: a window older than `window_ms` starts afresh; reaching
    /// `limit` events locks the key for `lock_ms` (and starts a new window). Returns the counter
    /// as left.
    pub async fn count_event(
        &self,
        key: &str,
        now_ms: i64,
        window_ms: i64,
        limit: i64,
        lock_ms: i64,
    ) -> Result<Throttle, StoreError> {
        assert!(window_ms > 0 && limit > 0 && lock_ms > 0);
        const ENSURE: &str = "INSERT INTO throttles (throttle_key, failures, window_start_ms, \
                              locked_until_ms) VALUES (?, 0, ?, 0)";
        const UPDATE: &str = "UPDATE throttles SET failures = ?, window_start_ms = ?, \
                              locked_until_ms = ? WHERE throttle_key = ?";
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin).await?;
            // Make the row exist first, so the locking read below locks a row and never a gap
            // (two gap locks on MySQL deadlock).
            let ensure = format!("{ENSURE}{}", d.skip_duplicate("throttle_key"));
            sqlx::query(&ensure)
                .bind(key)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            let select = format!(
                "SELECT failures, window_start_ms, locked_until_ms FROM throttles \
                 WHERE throttle_key = ?{}",
                d.for_update
            );
            let (failures, start, locked): (i64, i64, i64) = sqlx::query_as(&select)
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            let mut next = Throttle {
                failures,
                window_start_ms: start,
                locked_until_ms: locked,
            };
            if now_ms - next.window_start_ms >= window_ms {
                next.failures = 0;
                next.window_start_ms = now_ms;
            }
            next.failures += 1;
            if next.failures >= limit {
                next.locked_until_ms = now_ms + lock_ms;
                next.failures = 0;
                next.window_start_ms = now_ms;
            }
            sqlx::query(UPDATE)
                .bind(next.failures)
                .bind(next.window_start_ms)
                .bind(next.locked_until_ms)
                .bind(key)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(next)
        })
    }

    /// Forgets `key`'s counter (a success).
    pub async fn clear_throttle(&self, key: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM throttles WHERE throttle_key = ?";
        on_pool!(self, |pool, _d| {
            sqlx::query(SQL).bind(key).execute(pool).await?;
        });
        Ok(())
    }
}
