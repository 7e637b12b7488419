//! The payloads of the four-eyes kinds that set runtime rules rather than journal a command
//! at once: withdrawal limits by KYC level ([`WithdrawLimit`]) and the fee volume tiers
//! ([`FeeTierSchedule`]). Each sets absolute values, so what is in force is the newest
//! approved proposal per key (a level and currency; the one schedule).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::proposals::{Proposal, ProposalKind};
use super::{Store, StoreError};

/// Approved proposals of one kind read to find what is in force, at most: more limits than
/// this (levels times currencies, with their history) are not kept in force.
pub const IN_FORCE_ROWS_MAX: i64 = 10_000;

/// One KYC level's withdrawal limits in one currency (decimal strings in the currency's
/// units; both at least zero, the 30-day one at least the 24-hour one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawLimit {
    /// The KYC level.
    pub level: u8,
    /// Currency code.
    pub currency: String,
    /// Most withdrawn over the last 24 hours.
    pub limit_24h: String,
    /// Most withdrawn over the last 30 days.
    pub limit_30d: String,
}

/// A traded-volume threshold: an account whose trailing 30-day volume reaches `volume` is in
/// `tier` (the highest threshold reached wins).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeTier {
    /// Volume in the schedule's currency, a decimal string.
    pub volume: String,
    /// The fee tier.
    pub tier: u8,
}

/// A user group pinned to a tier whatever its volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTier {
    /// The group (the `fee_group` label's value).
    pub group: String,
    /// The fee tier.
    pub tier: u8,
}

/// The fee volume tiers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeTierSchedule {
    /// The currency volumes are counted in: the quote currency of the markets that count.
    pub currency: String,
    /// Thresholds, ascending.
    pub thresholds: Vec<VolumeTier>,
    /// Pinned groups.
    pub groups: Vec<GroupTier>,
}

impl Store {
    /// The withdrawal limits in force: the newest approved one of each (level, currency).
    pub async fn withdraw_limits_in_force(&self) -> Result<Vec<WithdrawLimit>, StoreError> {
        let approved: Vec<Proposal<WithdrawLimit>> = self
            .approved_newest_of(ProposalKind::WithdrawLimit, IN_FORCE_ROWS_MAX)
            .await?;
        let mut seen = HashSet::new();
        Ok(approved
            .into_iter()
            .map(|p| p.value)
            .filter(|limit| seen.insert((limit.level, limit.currency.clone())))
            .collect())
    }

    /// The fee volume tiers in force (the newest approved schedule), if any.
    pub async fn fee_tiers_in_force(&self) -> Result<Option<FeeTierSchedule>, StoreError> {
        let newest: Vec<Proposal<FeeTierSchedule>> =
            self.approved_newest_of(ProposalKind::FeeTiers, 1).await?;
        Ok(newest.into_iter().next().map(|p| p.value))
    }
}
