//! What a journal is told when it opens: where, how big, how acknowledged, how often to snapshot
//! and what to keep.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;
use crate::io::{BLOCK_BYTES, SyncMethod};
use crate::record::RECORD_MAX_BYTES;
use crate::snapshot::RetentionFloor;

/// Default segment size: 64 MiB, ~600 k records of ~100 bytes; big enough that rotation is rare,
/// small enough that retention frees space in useful steps.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// Default bound on bytes appended but not yet taken by the writer: 4 MiB is ~40 k records,
/// about 40 ms of the target rate, so a full queue means the device has stalled, not a burst.
pub const QUEUE_BYTES_DEFAULT: usize = 4 << 20;
/// Default snapshot interval in commands.
pub const SNAPSHOT_EVERY_COMMANDS_DEFAULT: u64 = 1_000_000;
/// Default snapshot interval in time.
pub const SNAPSHOT_EVERY_DEFAULT: Duration = Duration::from_secs(300);

/// When the effects of a command may leave the exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckMode {
    /// After the command's journal record is durable: no acknowledged command is ever lost.
    #[default]
    Durable,
    /// As soon as the command is sequenced: lower latency, but a crash loses the commands of the
    /// last group commit or so (up to the queue's worth) even though they were acknowledged.
    Fast,
    /// After the record is durable here AND at least one standby has acknowledged it as durable
    /// in its own journal ([`Journal::note_replicated`](crate::Journal::note_replicated)): an
    /// acknowledged command survives the loss of this machine. While no standby is connected,
    /// [`WithoutStandby`] decides.
    Replicated(WithoutStandby),
}

/// What `replicated` acknowledgement does while no standby is connected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WithoutStandby {
    /// Acknowledge on the local durable write alone (as `durable`), and say so in the log:
    /// trading goes on, the loss of this machine could lose those commands.
    #[default]
    Degrade,
    /// Hold every acknowledgement until a standby has the record: trading stalls rather than
    /// acknowledge what one disk holds.
    Refuse,
}

/// How the writer thread waits, for appends and for the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriterIdle {
    /// Sleep on the queue and in the io_uring wait: no core burnt, but every commit pays a
    /// thread wake-up, which on shared cores can cost a scheduler slice (milliseconds).
    #[default]
    Park,
    /// Never sleep: poll the queue and the io_uring completion queue. Lowest commit latency;
    /// only on a core of its own (`writer_core`), or it starves its neighbours.
    Spin,
}

/// Journal, snapshot and retention settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalConfig {
    /// Directory holding segments and snapshots (created if missing).
    pub dir: PathBuf,
    /// Size of each preallocated segment file; a multiple of 4 KiB.
    pub segment_bytes: u64,
    /// When effects may be acknowledged.
    pub ack_mode: AckMode,
    /// Bound on appended-but-not-yet-written bytes; past it `append` returns `Busy`.
    pub queue_bytes: usize,
    /// How writes are made durable.
    pub sync_method: SyncMethod,
    /// Take a snapshot after this many commands since the last one; 0 disables.
    pub snapshot_every_commands: u64,
    /// Take a snapshot after this much time since the last one; `None` disables.
    pub snapshot_every: Option<Duration>,
    /// Snapshots kept (newest first); at least 1.
    pub snapshots_kept: usize,
    /// Delete segments whose every record is covered by the oldest kept snapshot.
    pub delete_covered_segments: bool,
    /// Nice value for the writer thread (e.g. -10), best effort: on shared cores a woken writer
    /// otherwise queues behind busy neighbours for a scheduler slice (milliseconds) per commit.
    /// `None` leaves it alone; needs `CAP_SYS_NICE` for negative values.
    pub writer_nice: Option<i32>,
    /// How the writer waits when there is nothing to write and while a write is in flight.
    pub writer_idle: WriterIdle,
    /// Core to pin the writer thread to; `None` lets the OS place it.
    pub writer_core: Option<usize>,
    /// What a journal reader outside the engine (the SQL replicator) has not consumed yet:
    /// retention keeps it (see [`RetentionFloor`]). `None`: no such reader.
    pub retention_floor: Option<RetentionFloor>,
    /// Start even though the journal ends below its durable tip (acknowledged commands were
    /// lost): an operator's explicit decision, never a default. The loss is reported and the
    /// tip moved down to the journal's end.
    pub accept_lost_tail: bool,
}

impl JournalConfig {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> JournalConfig {
        JournalConfig {
            dir: dir.into(),
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            ack_mode: AckMode::Durable,
            queue_bytes: QUEUE_BYTES_DEFAULT,
            sync_method: SyncMethod::WriteDsync,
            snapshot_every_commands: SNAPSHOT_EVERY_COMMANDS_DEFAULT,
            snapshot_every: Some(SNAPSHOT_EVERY_DEFAULT),
            snapshots_kept: 2,
            delete_covered_segments: true,
            writer_nice: None,
            writer_idle: WriterIdle::Park,
            writer_core: None,
            retention_floor: None,
            accept_lost_tail: false,
        }
    }

    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.segment_bytes.is_multiple_of(BLOCK_BYTES as u64)
            || self.segment_bytes < 4 * RECORD_MAX_BYTES as u64
            || self.segment_bytes > 1 << 40
        {
            return Err(ConfigError(
                "segment_bytes must be a multiple of 4096 between 16 KiB and 1 TiB",
            ));
        }
        if self.queue_bytes < RECORD_MAX_BYTES || self.queue_bytes > 1 << 30 {
            return Err(ConfigError("queue_bytes must be between 4 KiB and 1 GiB"));
        }
        if self.snapshots_kept == 0 || self.snapshots_kept > 1_000 {
            return Err(ConfigError("snapshots_kept must be between 1 and 1000"));
        }
        Ok(())
    }
}
