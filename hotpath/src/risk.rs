//! Per-account risk state: open-order count, kill switch, fee tier and the order-rate token
//! bucket, which is fed by command timestamps so that replay yields the same decisions.

use crate::ids::AccountId;

/// Token units per order: the bucket counts in nano-tokens so refill is exact integer arithmetic.
const TOKEN: u64 = 1_000_000_000;

/// One account's risk state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AccountRisk {
    pub open_orders: u32,
    pub kill_switch: bool,
    pub fee_tier: u8,
    /// Bucket content in nano-tokens; starts full (see `take_token`).
    pub tokens_nano: u64,
    /// Timestamp of the last refill; 0 = never used (bucket full).
    pub refilled_ns: u64,
}

/// The token bucket's decision for an order at `now_ns`: the new (tokens, refilled) state if one
/// token can be taken, `None` if the account is over its rate. Computing without committing lets
/// a rejected command change nothing.
#[inline]
pub(crate) fn take_token(
    risk: &AccountRisk,
    now_ns: u64,
    rate_per_sec: u32,
    burst: u32,
) -> Option<(u64, u64)> {
    debug_assert!(rate_per_sec > 0 && burst > 0);
    let capacity = u64::from(burst) * TOKEN;
    let tokens = if risk.refilled_ns == 0 {
        capacity
    } else {
        // Timestamps from the sequencer are monotonic; a step back refills nothing.
        let elapsed_ns = now_ns.saturating_sub(risk.refilled_ns);
        // `rate` tokens per second is exactly `rate` nano-tokens per nanosecond.
        let refill = u128::from(elapsed_ns) * u128::from(rate_per_sec);
        (u128::from(risk.tokens_nano) + refill).min(u128::from(capacity)) as u64
    };
    if tokens < TOKEN {
        return None;
    }
    Some((tokens - TOKEN, now_ns.max(risk.refilled_ns).max(1)))
}

// The risk state of an account without a bounds check (measured, session 8 round 2 in
// perf/RESULTS.md). Invariant: the engine's `accounts` has `max_accounts` entries and never
// changes length, and an account reaches these only after `Engine::check_account` (a command's
// account) or from an order in the slab (whose account was checked when it was placed or
// restored). Checked in debug builds.
#[inline(always)]
pub(crate) fn account_risk(accounts: &[AccountRisk], account: AccountId) -> &AccountRisk {
    debug_assert!(
        (account.0 as usize) < accounts.len(),
        "account beyond the risk state"
    );
    // SAFETY: in bounds by the invariant above.
    unsafe { accounts.get_unchecked(account.0 as usize) }
}

#[inline(always)]
pub(crate) fn account_risk_mut(
    accounts: &mut [AccountRisk],
    account: AccountId,
) -> &mut AccountRisk {
    debug_assert!(
        (account.0 as usize) < accounts.len(),
        "account beyond the risk state"
    );
    // SAFETY: in bounds by the invariant above.
    unsafe { accounts.get_unchecked_mut(account.0 as usize) }
}
