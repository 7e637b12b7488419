//! Why replication failed. Database errors are retried by the replicator (they are expected:
//! outages, restarts, cut connections); the others stop it, because retrying cannot fix them.

use std::path::PathBuf;

use peregrine_persist::Seq;

/// A replication failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The configuration is unusable.
    #[error("replica configuration: {0}")]
    Config(String),
    /// The database URL names no supported back end.
    #[error("unsupported database URL {0:?}: expected mysql://... or sqlite://...")]
    UnsupportedUrl(String),
    /// The database refused or the connection failed (retried by the replicator).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A schema migration failed.
    #[error("schema migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A database operation took longer than its bound (retried by the replicator).
    #[error("database operation timed out: {0}")]
    Timeout(&'static str),
    /// Another writer moved the high-water mark under this one (retried after re-reading it).
    #[error("high-water mark moved: expected {expected}, found {found}")]
    HighWaterMoved {
        /// What this replicator last committed.
        expected: Seq,
        /// What the database holds.
        found: Seq,
    },
    /// A batch's ledger statements wrote another number of rows than the batch holds: a bug
    /// in the statement builder, not something a retry fixes, so the replicator stops (the
    /// ledger transaction was rolled back).
    #[error(
        "ledger rows of sequences {from_seq} to {to_seq}: the statements wrote {written}, the batch holds {expected}"
    )]
    LedgerMismatch {
        /// The batch starts after this sequence.
        from_seq: Seq,
        /// The batch's last sequence.
        to_seq: Seq,
        /// Rows the statements inserted.
        written: u64,
        /// Rows the batch holds.
        expected: u64,
    },
    /// The database already holds sequences beyond the journal's durable end: the journal
    /// lost acknowledged commands (or the replica belongs to another journal). Replicating on
    /// would skip the new commands that reuse those sequences, so the replicator stops.
    #[error(
        "the replica holds sequence {replica} but the journal ends at {journal}: the journal lost acknowledged commands, or the replica belongs to another journal; restore the journal, or drop the replica database to rebuild it from this one"
    )]
    AheadOfJournal {
        /// The replica's high-water mark.
        replica: Seq,
        /// The journal's durable end.
        journal: Seq,
    },
    /// A file or directory of the replica could not be read or made.
    #[error("{path}: {source}")]
    Io {
        /// Which file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Following the journal failed (a damaged durable record, a gap, no place to start).
    #[error(transparent)]
    Follow(#[from] peregrine_persist::follow::FollowError),
    /// A value does not fit the back end's column type (SQLite integers are signed 64-bit).
    #[error("{what} value {value} does not fit the {dialect} column")]
    OutOfRange {
        /// Which back end.
        dialect: &'static str,
        /// Which value.
        what: &'static str,
        /// The value.
        value: i128,
    },
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The replicator thread or its runtime could not start.
    #[error("replicator thread: {0}")]
    Thread(std::io::Error),
}

impl ReplicaError {
    /// Whether the replicator retries after this error (with backoff, keeping its position)
    /// rather than stopping.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ReplicaError::Database(_)
                | ReplicaError::Migrate(_)
                | ReplicaError::Timeout(_)
                | ReplicaError::HighWaterMoved { .. }
        )
    }
}
