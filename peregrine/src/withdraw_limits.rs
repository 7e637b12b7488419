//! Withdrawal limits by KYC level, enforced when a user requests a withdrawal: the limits in
//! force (`/control/v1/withdraw-limits`, four-eyes, newest approved per level and currency)
//! tighten the configured policy of the request's currency for this one request, so the wallet
//! store checks them with its own (under its per-account lock, before anything is recorded).
//!
//! A currency with no limit in force keeps the configured policy alone. Once one level has
//! limits in a currency, every level does: a user's are those of the highest level at or
//! below theirs that has limits, and a level below every such level (level 0 always) has
//! none to use: it cannot withdraw. A request over a KYC limit is refused 422
//! `withdraw.limit_exceeded`, naming the level, the window, the limit and what remains;
//! nothing is held, recorded or journaled.

use peregrine_auth::Identity;
use peregrine_auth::store::WithdrawLimit;
use peregrine_hotpath::AccountId;
use peregrine_hotpath::edge::parse_decimal;
use peregrine_wallet::appliance::minor_to_decimal;
use peregrine_wallet::policy::{CurrencyPolicy, PolicyRefusal, WithdrawPolicy};
use peregrine_wallet::requests::RequestError;
use rust_decimal::Decimal;

/// The code of a request over a KYC level's limit.
pub const LIMIT_EXCEEDED_CODE: &str = "withdraw.limit_exceeded";

/// One level's limits in one currency, minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelLimits {
    /// The user's KYC level.
    pub level: i64,
    /// Most withdrawn over the last 24 hours.
    pub limit_24h_minor: u64,
    /// Most withdrawn over the last 30 days.
    pub limit_30d_minor: u64,
}

/// `text` (a limit as approved) in minor units of a currency with `precision` decimals; `None`
/// when it is not exact (a precision changed since: the limit is then treated as zero).
fn minor_of(text: &str, precision: u32) -> Option<u64> {
    let value = parse_decimal(text).ok()?;
    let scaled = value.checked_mul(Decimal::from(10u64.checked_pow(precision)?))?;
    if scaled.is_sign_negative() || scaled.fract() != Decimal::ZERO {
        return None;
    }
    u64::try_from(scaled.trunc().mantissa()).ok()
}

/// The limits of a user at `level` in `currency`, from the limits in force; `None` when the
/// currency has none (the configured policy alone applies).
pub fn level_limits(
    in_force: &[WithdrawLimit],
    level: i64,
    currency: &str,
    precision: u32,
) -> Option<LevelLimits> {
    let mut of_currency = in_force
        .iter()
        .filter(|l| l.currency == currency)
        .peekable();
    of_currency.peek()?;
    let best = of_currency
        .filter(|l| level > 0 && i64::from(l.level) <= level)
        .max_by_key(|l| l.level);
    let (day, month) = best.map_or((Some(0), Some(0)), |l| {
        (
            minor_of(&l.limit_24h, precision),
            minor_of(&l.limit_30d, precision),
        )
    });
    Some(LevelLimits {
        level,
        limit_24h_minor: day.unwrap_or(0),
        limit_30d_minor: month.unwrap_or(0),
    })
}

/// `policy` with `currency`'s limits lowered to `limits` where they are lower; `None` when the
/// policy does not withdraw the currency (the store refuses it as it is).
pub fn tightened(
    policy: &WithdrawPolicy,
    currency: &str,
    limits: LevelLimits,
) -> Option<WithdrawPolicy> {
    let rules = *policy.currency(currency)?;
    let rules = CurrencyPolicy {
        limit_24h_minor: rules.limit_24h_minor.min(limits.limit_24h_minor),
        limit_30d_minor: rules.limit_30d_minor.min(limits.limit_30d_minor),
        ..rules
    };
    // Both 30-day limits are at least their 24-hour ones, so the minima are too.
    policy.clone().with(currency, rules).ok()
}

/// The KYC limits of `account`'s user in `currency`, if the currency has limits in force;
/// `Err` with why they cannot be read (the caller answers 503).
pub async fn of_account(
    identity: &Identity,
    account: AccountId,
    currency: &str,
    precision: u32,
) -> Result<Option<LevelLimits>, String> {
    let store = identity.store();
    let in_force = store
        .withdraw_limits_in_force()
        .await
        .map_err(|e| e.to_string())?;
    if !in_force.iter().any(|l| l.currency == currency) {
        return Ok(None);
    }
    let level = store
        .user_by_account(account.0)
        .await
        .map_err(|e| e.to_string())?
        .map_or(0, |user| user.level);
    Ok(level_limits(&in_force, level, currency, precision))
}

/// A refusal by the wallet store's policy that a KYC limit caused, as the message of
/// [`LIMIT_EXCEEDED_CODE`]; `None` for any other refusal (a configured limit is lower).
pub fn exceeded(
    error: &RequestError,
    limits: LevelLimits,
    currency: &str,
    precision: u32,
) -> Option<String> {
    let RequestError::Policy(refusal) = error else {
        return None;
    };
    let (window, limit, used) = match *refusal {
        PolicyRefusal::Limit24h {
            limit_minor,
            used_minor,
        } if limit_minor == limits.limit_24h_minor => ("24 h", limit_minor, used_minor),
        PolicyRefusal::Limit30d {
            limit_minor,
            used_minor,
        } if limit_minor == limits.limit_30d_minor => ("30 d", limit_minor, used_minor),
        _ => return None,
    };
    if limit == 0 {
        return Some(format!(
            "KYC level {} may not withdraw {currency}: its {window} limit is 0",
            limits.level
        ));
    }
    let text = |minor: u64| {
        let text = minor_to_decimal(minor, precision);
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text
        }
    };
    Some(format!(
        "over the KYC level {} {window} limit of {} {currency}: {} {currency} remaining",
        limits.level,
        text(limit),
        text(limit.saturating_sub(used))
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limit(level: u8, day: &str, month: &str) -> WithdrawLimit {
        WithdrawLimit {
            level,
            currency: "eth".to_owned(),
            limit_24h: day.to_owned(),
            limit_30d: month.to_owned(),
        }
    }

    #[test]
    fn a_level_uses_the_highest_level_at_or_below_it_and_level_zero_none() {
        let in_force = [limit(1, "0.5", "1"), limit(3, "5", "10")];
        let of = |level| level_limits(&in_force, level, "eth", 9).unwrap();
        assert_eq!(of(0).limit_24h_minor, 0);
        assert_eq!(of(1).limit_24h_minor, 500_000_000);
        assert_eq!(of(2).limit_30d_minor, 1_000_000_000);
        assert_eq!(of(4).limit_24h_minor, 5_000_000_000);
        assert_eq!(level_limits(&in_force, 2, "usd", 2), None);
        let above = [limit(2, "1", "1")];
        assert_eq!(
            level_limits(&above, 1, "eth", 9).unwrap().limit_24h_minor,
            0
        );
    }

    #[test]
    fn tightening_keeps_the_lower_limit_of_each_window() {
        let rules = CurrencyPolicy {
            limit_24h_minor: 100,
            limit_30d_minor: 1_000,
            approval_above_minor: 50,
            approvals_required: 1,
        };
        let policy = WithdrawPolicy::deny_all().with("eth", rules).unwrap();
        let limits = LevelLimits {
            level: 1,
            limit_24h_minor: 40,
            limit_30d_minor: 5_000,
        };
        let tight = tightened(&policy, "eth", limits).unwrap();
        let now = tight.currency("eth").unwrap();
        assert_eq!((now.limit_24h_minor, now.limit_30d_minor), (40, 1_000));
        assert!(tightened(&policy, "btc", limits).is_none());
    }

    #[test]
    fn a_refusal_by_the_kyc_limit_names_the_level_window_limit_and_remaining() {
        let limits = LevelLimits {
            level: 1,
            limit_24h_minor: 100_000_000,
            limit_30d_minor: 200_000_000,
        };
        let refusal = |limit_minor, used_minor| {
            RequestError::Policy(PolicyRefusal::Limit24h {
                limit_minor,
                used_minor,
            })
        };
        assert_eq!(
            exceeded(&refusal(100_000_000, 30_000_000), limits, "eth", 9).as_deref(),
            Some("over the KYC level 1 24 h limit of 0.1 eth: 0.07 eth remaining")
        );
        // A configured limit below the level's: the store's own refusal.
        assert_eq!(exceeded(&refusal(5, 0), limits, "eth", 9), None);
        let none = LevelLimits {
            level: 0,
            limit_24h_minor: 0,
            limit_30d_minor: 0,
        };
        let message = exceeded(&refusal(0, 0), none, "eth", 9).unwrap();
        assert!(message.contains("level 0 may not withdraw"), "{message}");
    }
}
