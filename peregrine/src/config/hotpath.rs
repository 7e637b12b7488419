//! `[hotpath]`: where the matching engine's shard runs and how it waits for work.

use serde::{Deserialize, Deserializer, Serialize};

/// Bound on `hotpath.input_capacity`: the queue is preallocated.
pub const INPUT_CAPACITY_MAX: usize = 1 << 22;

/// The `[hotpath]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HotpathConfig {
    /// Core to pin the shard thread to; -1 leaves placement to the OS (the default, right for
    /// a laptop; production pins to an isolated core).
    pub core: i64,
    /// `park` (spin briefly, then sleep on the queue) or `spin` (burn the core, lowest
    /// latency; only on an isolated core that does not take the journal disk's interrupts).
    pub idle: IdleName,
    /// Commands waiting for the shard, at most; past it order entry answers `Busy`.
    #[serde(deserialize_with = "input_capacity")]
    pub input_capacity: usize,
}

impl Default for HotpathConfig {
    fn default() -> Self {
        Self {
            core: -1,
            idle: IdleName::Park,
            input_capacity: 65_536,
        }
    }
}

/// The idle policy's name in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdleName {
    #[default]
    Park,
    Spin,
}

impl HotpathConfig {
    /// The shard's runtime configuration.
    pub fn shard_config(&self) -> peregrine_hotpath::runtime::ShardConfig {
        let defaults = peregrine_hotpath::runtime::ShardConfig::default();
        peregrine_hotpath::runtime::ShardConfig {
            core: usize::try_from(self.core).ok(),
            idle: match self.idle {
                IdleName::Park => defaults.idle,
                IdleName::Spin => peregrine_hotpath::runtime::IdlePolicy::Spin,
            },
            input_capacity: self.input_capacity,
            ..defaults
        }
    }
}

fn input_capacity<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let value = usize::deserialize(deserializer)?;
    if value == 0 || value > INPUT_CAPACITY_MAX {
        return Err(serde::de::Error::custom(format!(
            "{value} is outside 1 to {INPUT_CAPACITY_MAX}"
        )));
    }
    Ok(value)
}
