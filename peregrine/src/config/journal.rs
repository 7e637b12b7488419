//! `[journal]`: how commands are made durable and how often the engine is snapshotted.

use serde::{Deserialize, Deserializer, Serialize};

/// Bound on `journal.snapshots_kept`.
pub const SNAPSHOTS_KEPT_MAX: usize = 1_000;

/// The `[journal]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSection {
    /// `durable`: nothing a command causes (ack, fill, market data) leaves before its journal
    /// record is on disk. `fast`: effects leave at once; a crash may lose the last acknowledged
    /// commands. `replicated`: as `durable`, and also durable on a hot standby (see
    /// `[replication]`).
    pub ack: AckName,
    /// Snapshot after this many commands since the last one (0: never by count).
    pub snapshot_every_commands: u64,
    /// Snapshot after this many milliseconds since the last one (0: never by time).
    pub snapshot_every_ms: u64,
    /// Snapshots kept, newest first (1 to 1000).
    #[serde(deserialize_with = "snapshots_kept")]
    pub snapshots_kept: usize,
    /// Delete journal segments covered by the oldest kept snapshot (and already replicated).
    pub delete_covered_segments: bool,
    /// Core to pin the journal writer thread to; -1 leaves placement to the OS.
    pub core: i64,
    /// `park` (sleep while idle and while a write is in flight) or `spin` (poll the queue and
    /// the io_uring completions: no wake-up per commit; only on a core of its own).
    pub idle: super::hotpath::IdleName,
    /// Set by `up --accept-journal-loss` for one start, never from a file or the environment:
    /// start although the journal ends below its durable tip.
    #[serde(skip)]
    pub accept_lost_tail: bool,
}

impl Default for JournalSection {
    fn default() -> Self {
        Self {
            ack: AckName::Durable,
            snapshot_every_commands: peregrine_persist::config::SNAPSHOT_EVERY_COMMANDS_DEFAULT,
            snapshot_every_ms: 300_000,
            snapshots_kept: 2,
            delete_covered_segments: true,
            core: -1,
            idle: super::hotpath::IdleName::Park,
            accept_lost_tail: false,
        }
    }
}

/// The acknowledgement mode's name in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckName {
    #[default]
    Durable,
    Fast,
    Replicated,
}

impl AckName {
    /// The journal's mode; `without_standby` says what `replicated` does with no standby.
    pub fn mode(
        self,
        without_standby: peregrine_persist::WithoutStandby,
    ) -> peregrine_persist::AckMode {
        match self {
            Self::Durable => peregrine_persist::AckMode::Durable,
            Self::Fast => peregrine_persist::AckMode::Fast,
            Self::Replicated => peregrine_persist::AckMode::Replicated(without_standby),
        }
    }

    /// The name in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Durable => "durable",
            Self::Fast => "fast",
            Self::Replicated => "replicated",
        }
    }
}

fn snapshots_kept<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let value = usize::deserialize(deserializer)?;
    if value == 0 || value > SNAPSHOTS_KEPT_MAX {
        return Err(serde::de::Error::custom(format!(
            "{value} is outside 1 to {SNAPSHOTS_KEPT_MAX}"
        )));
    }
    Ok(value)
}
