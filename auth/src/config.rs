//! The identity service's settings: lifetimes, limits and the trading-account range. Every
//! duration is in milliseconds and every bound is named; defaults follow Barong's where it had
//! one (30 min sliding sessions).

use crate::kyc::KycConfig;
use crate::mail::MailConfig;

/// Settings of [`crate::Identity`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct IdentityConfig {
    /// A session not used for this long expires (each use pushes it back).
    pub session_idle_ms: i64,
    /// A session expires this long after login, used or not.
    pub session_absolute_ms: i64,
    /// A session's expiry is pushed back at most once per this interval (one write per
    /// interval, not per request).
    pub session_touch_interval_ms: i64,
    /// Sessions a user may hold; logging in beyond it revokes the oldest.
    pub sessions_per_user_max: u32,
    /// An e-mailed code is valid this long.
    pub code_ttl_ms: i64,
    /// Wrong tries of one code before it is void.
    pub code_attempts_max: i64,
    /// Failed logins of one account within the window before it is locked out.
    pub login_failures_per_account_max: i64,
    /// Failed logins from one address within the window before it is locked out.
    pub login_failures_per_address_max: i64,
    /// The window that failures are counted in.
    pub failure_window_ms: i64,
    /// How long a lockout lasts.
    pub lockout_ms: i64,
    /// Codes sent (sign-up, resend, reset) per e-mail address within the window.
    pub mails_per_address_max: i64,
    /// Sign-ups and code requests per source address within the window.
    pub requests_per_source_max: i64,
    /// The first trading `AccountId` given to a verified user (those below are left to the
    /// configuration's bootstrap keys).
    pub account_id_first: u32,
    /// One past the last `AccountId` (the engine's `max_accounts`).
    pub account_id_end: u32,
    /// Whether the session cookie carries `Secure` (off only for plain-HTTP tests).
    pub cookie_secure: bool,
    /// How mail is sent; `None` logs codes instead (a development appliance).
    pub mail: Option<MailConfig>,
    /// KYC: level rules, gated actions' levels, documents, the provider webhook.
    pub kyc: KycConfig,
}

impl Default for IdentityConfig {
    fn default() -> IdentityConfig {
        const MINUTE_MS: i64 = 60_000;
        IdentityConfig {
            session_idle_ms: 30 * MINUTE_MS,
            session_absolute_ms: 24 * 60 * MINUTE_MS,
            session_touch_interval_ms: MINUTE_MS,
            sessions_per_user_max: 16,
            code_ttl_ms: 15 * MINUTE_MS,
            code_attempts_max: 5,
            login_failures_per_account_max: 5,
            login_failures_per_address_max: 20,
            failure_window_ms: 15 * MINUTE_MS,
            lockout_ms: 15 * MINUTE_MS,
            mails_per_address_max: 5,
            requests_per_source_max: 30,
            account_id_first: 1024,
            account_id_end: 1 << 16,
            cookie_secure: true,
            mail: None,
            kyc: KycConfig::default(),
        }
    }
}

impl IdentityConfig {
    /// Checks the settings' relations; the reason names the field.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.session_idle_ms <= 0 || self.session_absolute_ms < self.session_idle_ms {
            return Err("session_absolute_ms must be at least session_idle_ms, both positive");
        }
        if self.session_touch_interval_ms < 0
            || self.session_touch_interval_ms >= self.session_idle_ms
        {
            return Err("session_touch_interval_ms must be below session_idle_ms");
        }
        if self.sessions_per_user_max == 0 || self.code_ttl_ms <= 0 || self.code_attempts_max <= 0 {
            return Err(
                "sessions_per_user_max, code_ttl_ms and code_attempts_max must be positive",
            );
        }
        if self.login_failures_per_account_max <= 0
            || self.login_failures_per_address_max <= 0
            || self.failure_window_ms <= 0
            || self.lockout_ms <= 0
        {
            return Err("lockout limits and durations must be positive");
        }
        if self.account_id_first >= self.account_id_end {
            return Err("account_id_first must be below account_id_end");
        }
        self.kyc.validate()
    }
}
