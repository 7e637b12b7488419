//! Peregrine's persistence: the journal of sequenced commands, snapshots, crash recovery by replay
//! and asynchronous replication to SQL.
//!
//! Owns: durability of what the hot path was told. Never does: business decisions (it stores and
//! replays commands, it never interprets them), and never blocks the hot path.
//!
//! # How it fits together
//!
//! - [`open`] recovers the engine ([`recovery`]: newest valid snapshot + replay of the journal
//!   tail; a torn tail is truncated and reported, corruption before the tail is refused with
//!   file and offset) and starts the [`JournalWriter`] at the tail.
//! - Producers call [`Journal::append`] → sequence, or [`JournalError::Busy`] when the bounded
//!   queue is full (back-pressure, never a block and never a drop).
//! - The writer thread group-commits: it takes everything pending, writes it with one io_uring
//!   submission (`O_DIRECT` write with `RWF_DSYNC`) into a preallocated, zero-filled
//!   [`segment`], and publishes [`Journal::durable_seq`]; [`Journal::wait_durable`] and
//!   [`Journal::is_ackable`] serve the [`AckMode`].
//! - A hot standby (crate `peregrine-standby`) copies its primary's durable records into its
//!   own journal with [`Journal::append_sequenced`] (same sequences; a gap or a replay is a
//!   typed error). On the primary, the shipper reports each standby acknowledgement with
//!   [`Journal::note_replicated`]; in [`AckMode::Replicated`] [`Journal::ackable_seq`] is the
//!   lower of the local durable sequence and that one (with no standby connected: per
//!   [`WithoutStandby`]).
//! - The engine thread calls [`Snapshotter::maybe_take`] between commands; the snapshot is
//!   written by a helper once the journal is durable up to it, then [`snapshot::apply_retention`]
//!   deletes old snapshots and covered segments.
//!
//! File formats: [`record`] (journal records) and [`snapshot`] (snapshot files).

pub mod config;
pub mod crc32c;
pub mod error;
pub mod follow;
pub mod format;
pub mod io;
pub mod lock;
pub mod marker;
pub mod payload;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod snapshot;
pub mod tip;
pub mod writer;

pub use config::{AckMode, JournalConfig, WithoutStandby, WriterIdle};
pub use error::{ConfigError, JournalError, RecoveryError, SnapshotWriteError};
pub use io::SyncMethod;
pub use lock::DirLock;
pub use recovery::{Recovered, RecoveryReport, TornTail, recover, recover_observed};
pub use snapshot::{SnapshotHealth, SnapshotPauses, Snapshotter};
pub use writer::{DurableWaker, Journal, JournalWriter, Seq, Tail, WriterStats};

/// Why [`open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Recovery refused.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// The writer could not start.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Recovers the engine from `config.dir` and starts the journal writer after the last record.
pub fn open(
    config: &JournalConfig,
    engine_config: peregrine_hotpath::EngineConfig,
) -> Result<(Recovered, JournalWriter), OpenError> {
    open_observed(config, engine_config, &mut |_, _, _| {})
}

/// [`open`], calling `observer` with every command recovery replays and its events (see
/// [`recover_observed`]).
pub fn open_observed(
    config: &JournalConfig,
    engine_config: peregrine_hotpath::EngineConfig,
    observer: &mut dyn FnMut(Seq, &peregrine_hotpath::Envelope, &[peregrine_hotpath::Event]),
) -> Result<(Recovered, JournalWriter), OpenError> {
    open_inner(config, engine_config, observer, None)
}

/// [`open`] with a writer whose ring injects `faults` (see [`io::FaultPlan`]): for tests of
/// what the layers above do while the disk fails or stalls.
pub fn open_with_faults(
    config: &JournalConfig,
    engine_config: peregrine_hotpath::EngineConfig,
    faults: io::FaultPlan,
) -> Result<(Recovered, JournalWriter), OpenError> {
    open_inner(config, engine_config, &mut |_, _, _| {}, Some(faults))
}

fn open_inner(
    config: &JournalConfig,
    engine_config: peregrine_hotpath::EngineConfig,
    observer: &mut dyn FnMut(Seq, &peregrine_hotpath::Envelope, &[peregrine_hotpath::Event]),
    faults: Option<io::FaultPlan>,
) -> Result<(Recovered, JournalWriter), OpenError> {
    let (recovered, lock) = recovery::recover_locked(config, engine_config, observer)?;
    let mut writer = match faults {
        Some(faults) => JournalWriter::start_with_faults(config, &recovered.tail, faults)?,
        None => JournalWriter::start(config, &recovered.tail)?,
    };
    // The writer keeps the directory locked for as long as it runs.
    writer.hold_lock(lock);
    Ok((recovered, writer))
}

/// The physical floor of one durable journal write: the median time of one `bytes`-sized
/// (rounded up to 4 KiB) write made durable exactly as the writer does it, on a preallocated,
/// zero-filled file in `dir`, over `samples` writes at advancing offsets. For benchmark reports.
pub fn floor_write_sync_ns(
    dir: &std::path::Path,
    bytes: usize,
    samples: usize,
    method: SyncMethod,
) -> std::io::Result<u64> {
    use io::{AlignedBuf, BLOCK_BYTES};
    /// Enough room that the samples never rewrite a block (which some devices cache).
    const FILE_BYTES: u64 = 16 << 20;
    let path = dir.join(format!("floor-{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let file = io::open_direct(&path, true)?;
    io::fallocate(&file, FILE_BYTES)?;
    io::zero_fill(&file, 0, FILE_BYTES)?;
    file.sync_all()?;
    let write_bytes = bytes.next_multiple_of(BLOCK_BYTES).max(BLOCK_BYTES);
    let mut buf = AlignedBuf::new(write_bytes);
    buf.bytes_mut()[..bytes].fill(0x5A);
    let mut ring = io::Uring::new()?;
    let mut times_ns = Vec::with_capacity(samples.max(1));
    for index in 0..samples.max(1) {
        let offset = (index * write_bytes) as u64 % (FILE_BYTES - write_bytes as u64);
        let offset = offset / BLOCK_BYTES as u64 * BLOCK_BYTES as u64;
        let start = std::time::Instant::now();
        if let Err(error) = ring.write_durable(&file, &buf.bytes()[..write_bytes], offset, method) {
            if error.is_abandoned() {
                // The kernel may still read `buf`: it must never be freed (the ring leaks itself).
                std::mem::forget(buf);
            }
            return Err(error.into());
        }
        times_ns.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    drop(file);
    std::fs::remove_file(&path)?;
    times_ns.sort_unstable();
    Ok(times_ns[times_ns.len() / 2])
}
