//! Peregrine's SQL replica: asynchronous replication of the exchange's durable state to
//! MySQL/MariaDB (production, `mysql://`) or SQLite (the embedded default,
//! `sqlite://data/replica.db`), for reporting, history endpoints, back office and compliance.
//!
//! Owns: the replica schema and keeping it equal to the journal. Never does: anything the hot
//! path waits for. The journal is the truth; the replica is a view of it that may lag.
//!
//! # Design: follow the journal, not the hot path
//!
//! ```text
//! journal segments ──tailer──► follower Engine ──events──► row mapper ──rows──► SQL batch
//!  (≤ durable seq)   (records)  (same config)              (per table)         (one transaction
//!                                                                               + high-water mark)
//! ```
//!
//! - the tailer ([`peregrine_persist::follow::Tailer`]): reads records from the segment files
//!   with ordinary reads, never past a durable bound ([`DurableSource::Journal`]: `Journal::durable_seq()`; [`DurableSource::Closed`]: the
//!   last valid record). It never locks the directory or touches a file, so it cannot disturb
//!   the writer, and it sees only what a crash would keep.
//! - the follower ([`peregrine_persist::follow::Follower`]): a second deterministic `Engine`
//!   with the appliance's configuration applies every command and yields exactly the events the appliance's engine produced. Replicating
//!   from the journal instead of the engine's output ring means the hot path hands nothing over
//!   (no queue to fill, no back-pressure to apply), and a replica that restarts or falls behind
//!   simply reads further back.
//! - [`mapper`]: events to typed [`rows`]. Ledger entries are the differences between
//!   successive `Balance` events of a cell, plus `external` (deposits, settled withdrawals) and
//!   `fees` entries, so every command's entries sum to zero per currency (double entry) and the
//!   balances are the sums of the entries.
//! - [`statements`]: multi-row `INSERT`s of at most `statement_rows_max` rows; [`db`] writes
//!   a batch (at most `batch_commands_max` commands / `batch_rows_max` rows) in one transaction
//!   whose first statement moves the high-water mark (last journal sequence replicated) by
//!   compare-and-set. On MySQL/MariaDB the ledger's rows (the largest table, referred to by
//!   nothing) go at the same time on a second connection, in a transaction that commits before
//!   the main one (`ReplicaConfig::ledger_connection`; 1.6x the rows/s measured here).
//!
//! # Exactly once
//!
//! Every row's key derives from the journal: `(seq, event_index)` for order history,
//! `(seq, entry_index)` for the ledger, `seq` for deposits and withdrawals, the engine's ids for
//! trades, orders, markets, accounts. The batch for `(mark, last]` is committed together with
//! the move of the mark from `mark` to `last`, so it is applied once or not at all. History
//! tables use plain `INSERT` (a duplicate key would be a bug and fails the batch instead of
//! being hidden by `INSERT IGNORE`); state tables are upserts of the state after the batch.
//! A connection lost during `COMMIT` is resolved on reconnection by reading the mark: at the
//! batch's end, it was committed; at its start, it is retried; elsewhere the follower is rebuilt.
//! A ledger part that committed without its main part is found on the retry by counting the
//! batch's ledger rows: all there, it is kept; none, it is written; some (a replicator killed
//! between the two commits, restarted with other batch boundaries), the range's rows are
//! deleted and written again in the ledger's transaction: they are a function of the journal.
//!
//! # Restart
//!
//! Read the mark; restore the follower from the newest snapshot at or below it (or a fresh
//! engine if there is none and the journal starts at 1); replay the journal silently up to the
//! mark; continue. Retention must keep that snapshot and the segments after the mark: pass the
//! same [`RetentionFloor`](peregrine_persist::snapshot::RetentionFloor) in
//! `JournalConfig::retention_floor` and [`ReplicaConfig::retention_floor`].
//!
//! # Outages and lag
//!
//! A database error drops the connection and retries the same prepared batch after a capped
//! exponential backoff (`backoff_min` doubling to `backoff_max`); the appliance keeps trading
//! and journaling meanwhile, and the replicator catches up in full batches when the database
//! returns. Lag is exposed in commands (durable but not replicated) and seconds (command
//! timestamp of the oldest unreplicated command to now), as metrics
//! (`peregrine_replica_lag_commands`, `peregrine_replica_lag_seconds`, ... in the appliance's
//! registry, which adds the `peregrine_` prefix to the crate's `replica_*` names) and as
//! [`ReplicatorHandle::readiness`].
//!
//! # Back ends
//!
//! The URL picks the back end; the code is the same. Every difference (type ranges, upsert
//! syntax, transaction start, migrations) is in [`dialect`], but for completing a MySQL
//! migration a crash left half applied (MySQL's DDL is not transactional): `migrations`,
//! run before sqlx's migrator, which would refuse it. Amounts, prices and quantities
//! are exact integers (minor units, ticks, lots); `markets` carries `base_per_lot` and
//! `quote_per_tick_lot` and `currencies.scale` the decimal places, so decimals are derived.
//! SQLite integers are signed 64-bit: a client order id above 2^63-1 is stored as the same 64
//! bits read as i64; any other value above it stops a SQLite replica with
//! [`ReplicaError::OutOfRange`] (MySQL columns hold every `u64`).
//!
//! # Wiring
//!
//! ```no_run
//! # fn wire(journal: peregrine_persist::Journal) -> Result<(), peregrine_replica::ReplicaError> {
//! use peregrine_replica::{DurableSource, ReplicaConfig, Replicator};
//! let registry = prometheus::Registry::new();
//! let config = ReplicaConfig::new(
//!     "sqlite://data/replica.db",
//!     "data/journal",
//!     peregrine_hotpath::EngineConfig::default(),
//! );
//! let handle = Replicator::start(config, DurableSource::Journal(journal), &registry)?;
//! handle.readiness().ok();
//! let high_water_seq = handle.stop()?;
//! # let _ = high_water_seq;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod config;
pub mod db;
pub mod dialect;
pub mod entries;
pub mod error;
pub mod mapper;
pub mod metrics;
mod migrations;
pub mod reader;
pub mod replicator;
pub mod rows;
pub mod statements;

pub use config::ReplicaConfig;
pub use dialect::Dialect;
pub use error::ReplicaError;
pub use reader::{
    AccountVolume, DailyVolume, LedgerEntry, LedgerPage, MarketTotals, MarketTradeRow, OrderFilter,
    OrderHistory, OrdersPage, OwnTradeRow, ReplicaReader, Summed, TradeFilter, TradeRange,
    TradesPage,
};
pub use replicator::{DurableSource, Lag, Replicator, ReplicatorHandle, migrate};
