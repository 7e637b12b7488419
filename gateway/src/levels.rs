//! The KYC level gate at order entry: the level of each trading account identity gave out,
//! kept in memory from identity's key feed (`KeyChange::Level`, written with every level
//! change: a label set or removed takes effect within one poll), and the level placing an
//! order needs. The REST bridge and the QUIC server check it before a new order is sequenced;
//! a refusal changes nothing. Cancels are never gated: a user whose level fell may still take
//! orders off the book.
//!
//! Accounts outside identity's range are the configuration's bootstrap accounts
//! (`[[rest.keys]]`, `[[quic.keys]]`), which an operator made: not gated.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{PoisonError, RwLock};

use peregrine_auth::key_feed::KeyChange;
use peregrine_hotpath::AccountId;

/// Why an order (or a withdrawal) was refused by the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the account's KYC level is {level}; this needs {required}")]
pub struct LevelTooLow {
    /// The level the action needs.
    pub required: i64,
    /// The account's level.
    pub level: i64,
}

impl LevelTooLow {
    /// The stable error code (REST) and reject name (QUIC).
    pub const CODE: &'static str = "identity.level_too_low";
}

/// Identity's accounts' levels and the trade threshold.
#[derive(Debug)]
pub struct LevelGate {
    accounts: Range<u32>,
    trade_level_min: i64,
    /// The level a withdrawal needs (`[auth] withdraw_level_min`).
    withdraw_level_min: i64,
    /// At most one entry per account of `accounts`.
    levels: RwLock<HashMap<u32, i64>>,
}

impl LevelGate {
    /// A gate over identity's `accounts`, all at level 0 until the feed says otherwise.
    pub fn new(accounts: Range<u32>, trade_level_min: i64) -> LevelGate {
        assert!(accounts.start < accounts.end, "an empty account range");
        assert!(trade_level_min >= 0, "a level is never negative");
        LevelGate {
            accounts,
            trade_level_min,
            withdraw_level_min: trade_level_min,
            levels: RwLock::new(HashMap::new()),
        }
    }

    /// The gate with `withdraw_level_min` for withdrawals (the trade level until set).
    pub fn with_withdraw_level(mut self, withdraw_level_min: i64) -> LevelGate {
        assert!(withdraw_level_min >= 0, "a level is never negative");
        self.withdraw_level_min = withdraw_level_min;
        self
    }

    /// Takes a level change from identity's key feed (other changes are the key caches').
    pub fn apply(&self, change: &KeyChange) {
        if let KeyChange::Level { account, level } = change
            && self.accounts.contains(account)
        {
            self.levels
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(*account, *level);
        }
    }

    /// The level of `account`: 0 for one of identity's accounts the feed has not named.
    pub fn level(&self, account: AccountId) -> i64 {
        self.levels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&account.0)
            .copied()
            .unwrap_or(0)
    }

    /// Whether `account` may place an order.
    pub fn check_trade(&self, account: AccountId) -> Result<(), LevelTooLow> {
        self.check(account, self.trade_level_min)
    }

    /// Whether `account` may ask for a withdrawal (bootstrap accounts pass here; they have no
    /// user to give a TOTP code, which the withdrawal asks for next).
    pub fn check_withdraw(&self, account: AccountId) -> Result<(), LevelTooLow> {
        self.check(account, self.withdraw_level_min)
    }

    fn check(&self, account: AccountId, required: i64) -> Result<(), LevelTooLow> {
        if !self.accounts.contains(&account.0) {
            return Ok(());
        }
        let level = self.level(account);
        if level >= required {
            Ok(())
        } else {
            Err(LevelTooLow { required, level })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_identity_accounts_by_the_fed_level_and_leaves_bootstrap_accounts_alone() {
        let gate = LevelGate::new(1024..2048, 1);
        let user = AccountId(1024);
        assert_eq!(
            gate.check_trade(user),
            Err(LevelTooLow {
                required: 1,
                level: 0
            })
        );
        gate.apply(&KeyChange::Level {
            account: 1024,
            level: 1,
        });
        assert_eq!(gate.check_trade(user), Ok(()));
        gate.apply(&KeyChange::Level {
            account: 1024,
            level: 0,
        });
        assert!(gate.check_trade(user).is_err());
        // Bootstrap accounts: not identity's, not gated, never stored.
        gate.apply(&KeyChange::Level {
            account: 7,
            level: 0,
        });
        assert_eq!(gate.check_trade(AccountId(7)), Ok(()));
        assert_eq!(gate.level(AccountId(7)), 0);
    }
}
