//! Typed errors. Every error caused by file content names the file and, where it applies, the
//! byte offset.

use std::io;
use std::path::PathBuf;

/// An invalid [`JournalConfig`](crate::JournalConfig).
#[derive(Debug, thiserror::Error)]
#[error("invalid journal config: {0}")]
pub struct ConfigError(pub &'static str);

/// Why an append or a wait failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The queue is full: back-pressure. Nothing was appended; retry later or refuse upstream.
    #[error("journal busy: {queued_bytes} bytes queued, bound {queue_bytes}")]
    Busy {
        /// Bytes waiting for the writer.
        queued_bytes: usize,
        /// The bound.
        queue_bytes: usize,
    },
    /// The command's archive is larger than a record may be.
    #[error("command archive of {0} bytes exceeds the record bound")]
    TooLarge(usize),
    /// The command could not be serialised.
    #[error("command serialisation failed: {0}")]
    Encode(String),
    /// The writer stopped after an I/O error; nothing more will become durable.
    #[error("journal writer failed: {0}")]
    WriterFailed(String),
    /// The journal was shut down.
    #[error("journal closed")]
    Closed,
    /// A pre-sequenced record ([`Journal::append_sequenced`](crate::Journal::append_sequenced))
    /// would leave a gap: records before it are missing. Nothing was appended.
    #[error("sequence gap: the journal expects sequence {expected}, got {got}")]
    SequenceGap {
        /// The sequence the journal appends next.
        expected: u64,
        /// The sequence offered.
        got: u64,
    },
    /// A pre-sequenced record's sequence is already in the journal (a replay or another
    /// journal's history). Nothing was appended.
    #[error("sequence {got} is already journaled: the journal expects {expected}")]
    SequenceBehind {
        /// The sequence the journal appends next.
        expected: u64,
        /// The sequence offered.
        got: u64,
    },
    /// A pre-sequenced record's term is older than the journal's newest (a deposed primary's
    /// record, after records or a leadership of a newer term). Nothing was appended.
    #[error("record {seq} of term {term} refused: the journal holds term {newest}")]
    StaleTerm {
        /// The sequence offered.
        seq: u64,
        /// The term offered.
        term: u64,
        /// The journal's newest term.
        newest: u64,
    },
    /// An I/O error while opening.
    #[error("journal I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Why recovery refused to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// An I/O error.
    #[error("recovery I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A damaged record followed by valid ones: the journal lost data in its middle. Never
    /// skipped silently; an operator must decide.
    #[error("journal corrupt before its tail: {path} at byte {offset}: {reason}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Offset of the damaged record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Sequence numbers are not contiguous.
    #[error("journal sequence gap: {path} at byte {offset}: expected {expected}, found {found}")]
    Gap {
        /// The segment.
        path: PathBuf,
        /// Offset of the record (0 for a segment's name).
        offset: u64,
        /// The sequence that should come next.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// A journal segment or snapshot written in a format this release does not read: refused
    /// rather than misread or skipped (skipping a snapshot would silently replay from older
    /// state; misreading a journal would apply other commands).
    #[error("{path}: {what} format version {found}, this release reads {supported}")]
    Version {
        /// The file.
        path: PathBuf,
        /// "journal" or "snapshot" (or "snapshot engine image").
        what: &'static str,
        /// The version in the file.
        found: u32,
        /// The versions this release reads, listed.
        supported: String,
    },
    /// The journal ends below the sequence its durable tip says was durable: acknowledged
    /// commands were lost (a zeroed page, a deleted segment). Starting would reuse their
    /// sequences and order ids, so recovery refuses unless the loss is accepted explicitly.
    #[error(
        "the journal ends at sequence {journal_end} but {path} records sequence {tip} as durable: {} acknowledged commands are lost; start with --accept-journal-loss to continue from {journal_end} anyway",
        tip - journal_end
    )]
    LostTail {
        /// The tip file.
        path: PathBuf,
        /// The sequence the tip recorded.
        tip: u64,
        /// Where the recovered journal ends.
        journal_end: u64,
    },
    /// No valid snapshot and the journal does not start at sequence 1.
    #[error(
        "no usable starting point: journal starts at sequence {first_seq} and no valid snapshot covers what came before"
    )]
    NoStart {
        /// First sequence in the journal.
        first_seq: u64,
    },
    /// Another process (or another writer in this one) holds the journal directory.
    #[error("journal directory is in use ({path} is locked): is another peregrine running on it?")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The engine configuration is invalid.
    #[error("engine config: {0}")]
    Engine(&'static str),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Why a snapshot could not be taken or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotWriteError {
    /// The engine could not serialise itself.
    #[error("engine snapshot failed: {0}")]
    Engine(#[from] peregrine_hotpath::SnapshotError),
    /// An I/O error.
    #[error("snapshot I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The journal failed before the snapshot's commands became durable.
    #[error(transparent)]
    Journal(#[from] JournalError),
}
