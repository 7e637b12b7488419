//! What the replicator is told: where the journal and the database are, how the engine is
//! configured, and the bounds on its batches, retries and lag.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use peregrine_hotpath::{CurrencyId, EngineConfig};
use peregrine_persist::snapshot::RetentionFloor;

use crate::error::ReplicaError;

/// Default bound on commands per transaction: big enough that a commit's round trips are noise
/// next to its rows, small enough that a batch is a few MB of SQL.
pub const BATCH_COMMANDS_MAX_DEFAULT: usize = 8_192;
/// Default bound on rows per transaction (a batch closes at the first command past it).
pub const BATCH_ROWS_MAX_DEFAULT: usize = 50_000;
/// Default bound on rows per `INSERT` statement (MySQL's packet limit is 16 MiB by default;
/// 2 000 rows of ~200 bytes is ~400 KiB).
pub const STATEMENT_ROWS_MAX_DEFAULT: usize = 2_000;

/// Replicator settings. `Debug` hides the database password.
#[derive(Clone)]
#[non_exhaustive]
pub struct ReplicaConfig {
    /// `mysql://user:password@host:port/database` or `sqlite://path` (created if missing).
    pub database_url: String,
    /// The journal directory the appliance writes (segments and snapshots).
    pub journal_dir: PathBuf,
    /// The appliance's engine configuration: the follower engine must replay identically.
    pub engine_config: EngineConfig,
    /// Bound on commands per transaction.
    pub batch_commands_max: usize,
    /// Bound on rows per transaction (soft by one command's rows).
    pub batch_rows_max: usize,
    /// Bound on rows per statement.
    pub statement_rows_max: usize,
    /// How long to wait for new durable commands when caught up, before looking again.
    pub poll_interval: Duration,
    /// First retry delay after a database error; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    /// Largest retry delay.
    pub backoff_max: Duration,
    /// Bound on one database operation (connecting and migrating, or one batch's whole
    /// transaction); past it the connection is dropped and the batch retried.
    pub operation_timeout: Duration,
    /// Readiness fails when the oldest unreplicated command is older than this.
    pub ready_lag_max: Duration,
    /// Raised to the high-water mark after every commit, so journal retention keeps what is not
    /// replicated yet (pass the same value in `JournalConfig::retention_floor`).
    pub retention_floor: Option<RetentionFloor>,
    /// Decimal places of each currency's minor unit, written to `currencies.scale` (the engine
    /// knows only integers; the edge configuration knows the scales).
    pub currency_scales: BTreeMap<CurrencyId, u8>,
    /// Apply the schema migrations when connecting.
    pub migrate: bool,
    /// MySQL/MariaDB: write each batch's ledger rows on a second connection while the first
    /// writes the rest (the ledger is the largest table; measured 1.6x the rows/s here). SQLite
    /// has one writer, so it always uses one connection.
    pub ledger_connection: bool,
}

/// `url` with the password (between `user:` and `@`) replaced by `***`, for logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

impl std::fmt::Debug for ReplicaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("journal_dir", &self.journal_dir)
            .field("engine_config", &self.engine_config)
            .field("batch_commands_max", &self.batch_commands_max)
            .field("batch_rows_max", &self.batch_rows_max)
            .field("statement_rows_max", &self.statement_rows_max)
            .field("poll_interval", &self.poll_interval)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .field("operation_timeout", &self.operation_timeout)
            .field("ready_lag_max", &self.ready_lag_max)
            .field("retention_floor", &self.retention_floor)
            .field("currency_scales", &self.currency_scales)
            .field("migrate", &self.migrate)
            .finish()
    }
}

impl ReplicaConfig {
    /// Defaults for a database, a journal directory and the appliance's engine configuration.
    pub fn new(
        database_url: impl Into<String>,
        journal_dir: impl Into<PathBuf>,
        engine_config: EngineConfig,
    ) -> ReplicaConfig {
        ReplicaConfig {
            database_url: database_url.into(),
            journal_dir: journal_dir.into(),
            engine_config,
            batch_commands_max: BATCH_COMMANDS_MAX_DEFAULT,
            batch_rows_max: BATCH_ROWS_MAX_DEFAULT,
            statement_rows_max: STATEMENT_ROWS_MAX_DEFAULT,
            poll_interval: Duration::from_millis(20),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(30),
            ready_lag_max: Duration::from_secs(10),
            retention_floor: None,
            currency_scales: BTreeMap::new(),
            migrate: true,
            ledger_connection: true,
        }
    }

    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), ReplicaError> {
        let fail = |what: &str| Err(ReplicaError::Config(what.to_owned()));
        crate::dialect::Dialect::from_url(&self.database_url)?;
        if let Err(reason) = self.engine_config.validate() {
            return fail(reason);
        }
        if !(1..=1_000_000).contains(&self.batch_commands_max) {
            return fail("batch_commands_max must be in 1..=1000000");
        }
        if !(1..=10_000_000).contains(&self.batch_rows_max) {
            return fail("batch_rows_max must be in 1..=10000000");
        }
        if !(1..=10_000).contains(&self.statement_rows_max) {
            return fail("statement_rows_max must be in 1..=10000");
        }
        if self.poll_interval.is_zero() || self.poll_interval > Duration::from_secs(10) {
            return fail("poll_interval must be in (0, 10 s]");
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return fail("backoff_min must be positive and at most backoff_max");
        }
        if self.backoff_max > Duration::from_secs(600) {
            return fail("backoff_max must be at most 10 minutes");
        }
        if self.operation_timeout.is_zero() {
            return fail("operation_timeout must be positive");
        }
        if self.currency_scales.values().any(|&scale| scale > 38) {
            return fail("currency scales must be at most 38");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        assert_eq!(
            redact_url("mysql://peregrine:s3cret@db:3306/x"),
            "mysql://peregrine:***@db:3306/x"
        );
        assert_eq!(redact_url("mysql://root@db/x"), "mysql://root@db/x");
        assert_eq!(
            redact_url("sqlite://data/replica.db"),
            "sqlite://data/replica.db"
        );
        let config = ReplicaConfig::new("mysql://u:pw@h/x", "j", EngineConfig::small());
        assert!(!format!("{config:?}").contains("pw"));
        config.validate().unwrap();
    }
}
