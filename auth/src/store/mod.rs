//! The identity store: a typed API over MySQL/MariaDB or SQLite.
//!
//! The same approach as the replica (`persist/replica`): runtime queries with `?` placeholders
//! (no sqlx macros: the workspace dropped the `macros` feature), migrations embedded and built
//! by hand, one enum over the two back ends. Unlike the replica's single writer, the service
//! answers requests concurrently, so it holds a pool. Every statement is written once and run
//! on either back end by `on_pool!`; where the dialects differ the difference is named
//! here (`FOR UPDATE`, how a write transaction begins).

mod adjustments;
mod api_keys;
mod audit;
mod fee_changes;
mod fee_groups;
mod kyc;
mod proposals;
mod schedules;
mod second_factor;
mod sessions;
mod throttle;
mod users;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use adjustments::{AdjustmentRow, AdjustmentState, NewAdjustment};
pub use api_keys::{ApiKeyRow, KeyEvent, KeyEventKind, NewApiKey};
pub use audit::{AuditFilter, AuditRow};
pub use fee_changes::{FeeChangeRow, NewFeeChange};
pub use fee_groups::{FEE_GROUP_LABEL, GroupMember};
pub use kyc::{
    DocumentMeta, DocumentRow, LabelChange, LabelRow, NewDocument, ProfileFields, ProfileRow,
    ProfileState,
};
pub use proposals::{
    NewProposal, PAYLOAD_BYTES_MAX, Proposal, ProposalKind, ProposalRow, ProposalState,
};
pub use schedules::{FeeTierSchedule, GroupTier, IN_FORCE_ROWS_MAX, VolumeTier, WithdrawLimit};
pub use sessions::{NewSession, SessionRow};
pub use throttle::Throttle;
pub use users::{CodePurpose, CodeRow, NewUser, Role, User, UserState};

/// Connections a store's pool opens at most.
pub const POOL_CONNECTIONS_MAX: u32 = 8;
/// How long SQLite waits for another connection's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL names no supported back end.
    #[error("unsupported database URL (want mysql:// or sqlite:)")]
    UnsupportedUrl,
    /// The database refused or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row breaks a unique key (the caller says which one matters).
    #[error("duplicate key")]
    Duplicate,
    /// A column holds a value this version does not know.
    #[error("column {column} holds unknown value `{value}`")]
    UnknownValue {
        /// The column.
        column: &'static str,
        /// The value.
        value: String,
    },
    /// Concurrent writers kept winning a race this writer retried.
    #[error("contention on {what}")]
    Contention {
        /// What was contended.
        what: &'static str,
    },
}

impl StoreError {
    /// `Duplicate` for a unique-key violation, else the database error.
    fn from_insert(error: sqlx::Error) -> StoreError {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate,
            _ => StoreError::Database(error),
        }
    }
}

/// The back end's pool.
#[derive(Clone, Debug)]
enum Pool {
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$pool` bound to the back end's pool; `$dialect` names the dialect's
/// spellings ([`Spelling`]). The body is written once and compiled for each back end.
macro_rules! on_pool {
    ($store:expr, |$pool:ident, $dialect:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::MySql($pool) => {
                let $dialect = $crate::store::MYSQL;
                $body
            }
            $crate::store::Pool::Sqlite($pool) => {
                let $dialect = $crate::store::SQLITE;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// What differs between the back ends' SQL.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spelling {
    /// The back end.
    pub name: &'static str,
    /// Starts a write transaction. SQLite takes the write lock at once (`IMMEDIATE`), so two
    /// read-then-write transactions queue instead of failing at their first write.
    pub begin: &'static str,
    /// Appended to a SELECT that the transaction will update from (row locks on MySQL; the
    /// IMMEDIATE transaction already serialises SQLite).
    pub for_update: &'static str,
}

pub(crate) const MYSQL: Spelling = Spelling {
    name: "mysql",
    begin: "START TRANSACTION",
    for_update: " FOR UPDATE",
};
pub(crate) const SQLITE: Spelling = Spelling {
    name: "sqlite",
    begin: "BEGIN IMMEDIATE",
    for_update: "",
};

impl Spelling {
    /// The tail that makes an `INSERT` skip a row whose key exists (`INSERT IGNORE` would
    /// hide other errors too): a no-op update of `key_column` on MySQL.
    pub fn skip_duplicate(self, key_column: &str) -> String {
        if self.name == "mysql" {
            format!(" ON DUPLICATE KEY UPDATE {key_column} = {key_column}")
        } else {
            " ON CONFLICT DO NOTHING".to_owned()
        }
    }
}

/// The identity store.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Connects to `database_url` (`mysql://…` or `sqlite:…`; a SQLite file is created if
    /// missing) and applies the schema migrations.
    pub async fn open(database_url: &str) -> Result<Store, StoreError> {
        let pool = if database_url.starts_with("mysql://") || database_url.starts_with("mariadb://")
        {
            let options = MySqlConnectOptions::from_str(database_url)?.disable_statement_logging();
            Pool::MySql(
                MySqlPoolOptions::new()
                    .max_connections(POOL_CONNECTIONS_MAX)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await?,
            )
        } else if database_url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(database_url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                .disable_statement_logging();
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(POOL_CONNECTIONS_MAX)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await?,
            )
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// The back end's name, for logs.
    pub fn dialect_name(&self) -> &'static str {
        match self.pool {
            Pool::MySql(_) => "mysql",
            Pool::Sqlite(_) => "sqlite",
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::MySql(pool) => migrator(MYSQL_MIGRATIONS).run(pool).await?,
            Pool::Sqlite(pool) => migrator(SQLITE_MIGRATIONS).run(pool).await?,
        }
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match &self.pool {
            Pool::MySql(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }
}

/// (version, description, SQL) of each migration.
type MigrationFiles = &'static [(i64, &'static str, &'static str)];

const MYSQL_MIGRATIONS: MigrationFiles = &[
    (
        1,
        "identity",
        include_str!("../../migrations/mysql/0001_identity.sql"),
    ),
    (
        2,
        "api keys",
        include_str!("../../migrations/mysql/0002_api_keys.sql"),
    ),
    (
        3,
        "kyc rbac",
        include_str!("../../migrations/mysql/0003_kyc_rbac.sql"),
    ),
    (
        4,
        "operators",
        include_str!("../../migrations/mysql/0004_operators.sql"),
    ),
    (
        5,
        "fee changes",
        include_str!("../../migrations/mysql/0005_fee_changes.sql"),
    ),
    (
        6,
        "proposals",
        include_str!("../../migrations/mysql/0006_proposals.sql"),
    ),
];
const SQLITE_MIGRATIONS: MigrationFiles = &[
    (
        1,
        "identity",
        include_str!("../../migrations/sqlite/0001_identity.sql"),
    ),
    (
        2,
        "api keys",
        include_str!("../../migrations/sqlite/0002_api_keys.sql"),
    ),
    (
        3,
        "kyc rbac",
        include_str!("../../migrations/sqlite/0003_kyc_rbac.sql"),
    ),
    (
        4,
        "operators",
        include_str!("../../migrations/sqlite/0004_operators.sql"),
    ),
    (
        5,
        "fee changes",
        include_str!("../../migrations/sqlite/0005_fee_changes.sql"),
    ),
    (
        6,
        "proposals",
        include_str!("../../migrations/sqlite/0006_proposals.sql"),
    ),
];
const _: () = assert!(MYSQL_MIGRATIONS.len() == SQLITE_MIGRATIONS.len());

/// The migrator `sqlx::migrate!` would build, without the `macros` feature (see
/// `persist/replica/src/dialect.rs` for why): the same versions, descriptions and checksums.
fn migrator(files: MigrationFiles) -> Migrator {
    let migrations = files
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}
