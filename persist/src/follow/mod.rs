//! Following the journal from outside the hot path: the [`Tailer`] reads durable records in
//! sequence order, and a [`Follower`] applies them to its own engine (the same deterministic
//! engine, so it yields the same events) for consumers that turn them into something else —
//! rows in SQL (the replica), messages on a log (fan-out).
//!
//! Never does: write the journal, or read past the durable bound ([`DurableSource`]).

mod follower;
mod tailer;

use std::path::PathBuf;
use std::time::Duration;

pub use follower::{Follower, start};
pub use tailer::{CHUNK_BYTES, Tailer, TornRecord, last_valid_seq};

use crate::{Journal, Seq};

/// Why following failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FollowError {
    /// A journal file could not be read.
    #[error("journal {path}: {source}")]
    Io {
        /// Which file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The journal holds something it must not (a damaged durable record, a gap).
    #[error("journal {path} at byte {offset}: {reason}")]
    Journal {
        /// The segment.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// No segment holds the sequence the follower needs next (deleted by retention that did
    /// not respect the follower's floor, or a journal from another appliance).
    #[error("no journal segment holds sequence {seq} in {dir}")]
    SegmentMissing {
        /// The journal directory.
        dir: PathBuf,
        /// The sequence needed.
        seq: Seq,
    },
    /// The follower engine cannot be rebuilt at the wanted sequence.
    #[error("cannot rebuild the engine at sequence {high_water_seq}: {reason}")]
    NoStart {
        /// Where the follower was to start.
        high_water_seq: Seq,
        /// Why.
        reason: String,
    },
}

/// Where the durable bound comes from. Exhaustive on purpose: a consumer must decide what each
/// source means for it (a new one should not compile silently into a wrong bound).
#[derive(Clone, Debug)]
pub enum DurableSource {
    /// A journal written in this process: never read past its durable sequence.
    Journal(Journal),
    /// A journal no one writes (offline replication, tools, tests): read up to its last valid
    /// record; a torn record is its end.
    Closed,
}

impl DurableSource {
    /// The highest sequence that may be read now.
    pub fn bound(&self) -> Seq {
        match self {
            DurableSource::Journal(journal) => journal.durable_seq(),
            DurableSource::Closed => Seq::MAX,
        }
    }

    /// What a damaged record means in this journal.
    pub fn torn(&self) -> TornRecord {
        match self {
            DurableSource::Journal(_) => TornRecord::IsCorruption,
            DurableSource::Closed => TornRecord::IsEnd,
        }
    }

    /// Waits (blocking, at most `timeout`) for the durable sequence to pass `seen`.
    pub fn wait_after(&self, seen: Seq, timeout: Duration) {
        match self {
            DurableSource::Journal(journal) => {
                // A failed writer publishes nothing more; waiting out the timeout is all we can do.
                if journal.wait_durable_after(seen, timeout).is_err() {
                    std::thread::sleep(timeout);
                }
            }
            DurableSource::Closed => std::thread::sleep(timeout),
        }
    }
}
