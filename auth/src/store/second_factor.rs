//! The user's 2FA flag. The TOTP secret itself is in OpenBao, never here.

use super::{Store, StoreError, on_pool};

impl Store {
    /// Sets whether `user_id` has 2FA enabled; false when the flag already had that value
    /// (a concurrent enable or disable won).
    pub async fn set_otp_enabled(
        &self,
        user_id: i64,
        enabled: bool,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE users SET otp_enabled = ?, updated_at_ms = ? \
                           WHERE id = ? AND otp_enabled = ?";
        let (to, from) = (i64::from(enabled), i64::from(!enabled));
        let affected = on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(to)
                .bind(now_ms)
                .bind(user_id)
                .bind(from)
                .execute(pool)
                .await?
                .rows_affected()
        });
        assert!(affected <= 1, "users.id is the primary key");
        Ok(affected == 1)
    }
}
