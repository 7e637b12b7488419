//! The withdrawal policy: default deny. A currency is withdrawn only under a
//! [`CurrencyPolicy`] (a currency without one is refused), within the account's limits over the
//! last 24 hours and the last 30 days, and above a threshold only with one or two operators'
//! approvals, never the requester's, never the same operator's twice
//! ([`crate::requests`] applies it; [`crate::requests::ApprovalError`] says why an approval
//! is refused).
//!
//! What a limit counts: every withdrawal of the account in the currency created inside the
//! window that may still leave or has left (`awaiting_approval`, `approved`, `held`, `signed`,
//! `broadcast`, `settled`); `rejected` and `released` ones gave the funds back and do not count.

use std::collections::HashMap;

use prometheus::{IntCounterVec, Opts, Registry};

/// The short window a limit covers, ms.
pub const WINDOW_24H_MS: i64 = 24 * 3_600_000;
/// The long window a limit covers, ms.
pub const WINDOW_30D_MS: i64 = 30 * WINDOW_24H_MS;
/// The most approvals a withdrawal may need (two operators besides the requester).
pub const APPROVALS_MAX: u8 = 2;

/// One currency's rules, amounts in the engine's minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrencyPolicy {
    /// Most withdrawn per account over the last 24 hours.
    pub limit_24h_minor: u64,
    /// Most withdrawn per account over the last 30 days.
    pub limit_30d_minor: u64,
    /// A withdrawal above this waits for approvals.
    pub approval_above_minor: u64,
    /// Operators' approvals a withdrawal above the threshold needs (1 or 2).
    pub approvals_required: u8,
}

/// Why a policy could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyConfigError {
    /// Approvals outside 1 to [`APPROVALS_MAX`].
    #[error("{currency}: approvals must be 1 or 2, not {approvals}")]
    Approvals {
        /// Currency.
        currency: String,
        /// What was given.
        approvals: u8,
    },
    /// The 30-day limit is below the 24-hour one.
    #[error("{0}: the 30-day limit is below the 24-hour limit")]
    Limits(String),
}

/// The policy of every withdrawable currency.
#[derive(Clone, Debug, Default)]
pub struct WithdrawPolicy {
    currencies: HashMap<String, CurrencyPolicy>,
}

/// Why the policy refused a withdrawal (nothing was recorded).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyRefusal {
    /// The currency has no policy: it cannot be withdrawn.
    #[error("{0} cannot be withdrawn here")]
    NoPolicy(String),
    /// Nothing to withdraw.
    #[error("the amount must be above zero")]
    ZeroAmount,
    /// Over the 24-hour limit.
    #[error("the 24-hour limit is {limit_minor}; {used_minor} already used")]
    Limit24h {
        /// The limit, minor units.
        limit_minor: u64,
        /// Counted in the window before this request, minor units.
        used_minor: u64,
    },
    /// Over the 30-day limit.
    #[error("the 30-day limit is {limit_minor}; {used_minor} already used")]
    Limit30d {
        /// The limit, minor units.
        limit_minor: u64,
        /// Counted in the window before this request, minor units.
        used_minor: u64,
    },
}

impl PolicyRefusal {
    /// The stable code (REST answers it; the `reason` label of the refusals counter).
    pub fn code(&self) -> &'static str {
        match self {
            PolicyRefusal::NoPolicy(_) => "withdraw.currency_not_withdrawable",
            PolicyRefusal::ZeroAmount => "withdraw.amount_zero",
            PolicyRefusal::Limit24h { .. } => "withdraw.limit_24h_exceeded",
            PolicyRefusal::Limit30d { .. } => "withdraw.limit_30d_exceeded",
        }
    }
}

/// What the policy decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The daemon may hold and send it now.
    Approved,
    /// It waits for this many operators' approvals.
    AwaitingApproval {
        /// Approvals needed.
        required: u8,
    },
}

impl WithdrawPolicy {
    /// A policy with no currency: every withdrawal is refused.
    pub fn deny_all() -> WithdrawPolicy {
        WithdrawPolicy::default()
    }

    /// Adds `currency`'s rules.
    pub fn with(
        mut self,
        currency: &str,
        rules: CurrencyPolicy,
    ) -> Result<WithdrawPolicy, PolicyConfigError> {
        if rules.approvals_required == 0 || rules.approvals_required > APPROVALS_MAX {
            return Err(PolicyConfigError::Approvals {
                currency: currency.to_owned(),
                approvals: rules.approvals_required,
            });
        }
        if rules.limit_30d_minor < rules.limit_24h_minor {
            return Err(PolicyConfigError::Limits(currency.to_owned()));
        }
        self.currencies.insert(currency.to_owned(), rules);
        Ok(self)
    }

    /// `currency`'s rules, if it may be withdrawn.
    pub fn currency(&self, currency: &str) -> Option<&CurrencyPolicy> {
        self.currencies.get(currency)
    }

    /// Decides a withdrawal of `amount_minor` given what the account already used in each
    /// window.
    pub fn decide(
        &self,
        currency: &str,
        amount_minor: u64,
        used_24h_minor: u64,
        used_30d_minor: u64,
    ) -> Result<Verdict, PolicyRefusal> {
        let rules = self
            .currency(currency)
            .ok_or_else(|| PolicyRefusal::NoPolicy(currency.to_owned()))?;
        if amount_minor == 0 {
            return Err(PolicyRefusal::ZeroAmount);
        }
        let over = |used: u64, limit: u64| used.checked_add(amount_minor).is_none_or(|t| t > limit);
        if over(used_24h_minor, rules.limit_24h_minor) {
            return Err(PolicyRefusal::Limit24h {
                limit_minor: rules.limit_24h_minor,
                used_minor: used_24h_minor,
            });
        }
        if over(used_30d_minor, rules.limit_30d_minor) {
            return Err(PolicyRefusal::Limit30d {
                limit_minor: rules.limit_30d_minor,
                used_minor: used_30d_minor,
            });
        }
        Ok(if amount_minor > rules.approval_above_minor {
            Verdict::AwaitingApproval {
                required: rules.approvals_required,
            }
        } else {
            Verdict::Approved
        })
    }
}

/// The request side's metrics (on the appliance, which takes requests).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PolicyMetrics {
    /// Requests refused, by reason (a policy code, `beneficiary`, `otp`, `level`, ...).
    pub refusals_total: IntCounterVec,
    /// Requests recorded, by the state they entered (`approved`, `awaiting_approval`).
    pub requests_total: IntCounterVec,
    /// Operators' approvals, by outcome (`approved`, `counted`, or the refusal's code).
    pub approvals_total: IntCounterVec,
}

impl PolicyMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<PolicyMetrics, prometheus::Error> {
        let metrics = PolicyMetrics {
            refusals_total: IntCounterVec::new(
                Opts::new(
                    "wallet_withdraw_refusals_total",
                    "withdrawal requests refused, by reason",
                ),
                &["reason"],
            )?,
            requests_total: IntCounterVec::new(
                Opts::new(
                    "wallet_withdraw_requests_total",
                    "withdrawal requests recorded, by the state entered",
                ),
                &["state"],
            )?,
            approvals_total: IntCounterVec::new(
                Opts::new(
                    "wallet_withdraw_approvals_total",
                    "operators' approvals of withdrawals, by outcome",
                ),
                &["outcome"],
            )?,
        };
        registry.register(Box::new(metrics.refusals_total.clone()))?;
        registry.register(Box::new(metrics.requests_total.clone()))?;
        registry.register(Box::new(metrics.approvals_total.clone()))?;
        Ok(metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> WithdrawPolicy {
        WithdrawPolicy::deny_all()
            .with(
                "eth",
                CurrencyPolicy {
                    limit_24h_minor: 100,
                    limit_30d_minor: 150,
                    approval_above_minor: 40,
                    approvals_required: 2,
                },
            )
            .unwrap()
    }

    #[test]
    fn default_deny_limits_and_threshold() {
        let policy = policy();
        assert_eq!(
            policy.decide("btc", 1, 0, 0),
            Err(PolicyRefusal::NoPolicy("btc".to_owned()))
        );
        assert_eq!(
            policy.decide("eth", 0, 0, 0),
            Err(PolicyRefusal::ZeroAmount)
        );
        assert_eq!(policy.decide("eth", 40, 0, 0), Ok(Verdict::Approved));
        assert_eq!(
            policy.decide("eth", 41, 0, 0),
            Ok(Verdict::AwaitingApproval { required: 2 })
        );
        assert_eq!(policy.decide("eth", 40, 60, 60), Ok(Verdict::Approved));
        assert!(matches!(
            policy.decide("eth", 41, 60, 60),
            Err(PolicyRefusal::Limit24h { .. })
        ));
        assert!(matches!(
            policy.decide("eth", 10, 0, 145),
            Err(PolicyRefusal::Limit30d { .. })
        ));
        assert!(matches!(
            policy.decide("eth", u64::MAX, 1, 1),
            Err(PolicyRefusal::Limit24h { .. })
        ));
    }

    #[test]
    fn approvals_are_one_or_two() {
        let rules = |approvals_required| CurrencyPolicy {
            limit_24h_minor: 1,
            limit_30d_minor: 1,
            approval_above_minor: 1,
            approvals_required,
        };
        assert!(WithdrawPolicy::deny_all().with("eth", rules(0)).is_err());
        assert!(WithdrawPolicy::deny_all().with("eth", rules(3)).is_err());
        assert!(WithdrawPolicy::deny_all().with("eth", rules(1)).is_ok());
    }
}
