//! Everything that differs between the back ends, in one place: how the URL is recognised, how
//! a transaction starts, how "insert unless present" and "insert or update" are spelled, which
//! integers a column can hold, and which migrations build the schema. The rest of the crate
//! writes SQL through these functions only.

use std::fmt::Write as _;

use crate::error::ReplicaError;

/// A supported back end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// MySQL or MariaDB (`mysql://`): production (Cloud SQL).
    MySql,
    /// SQLite (`sqlite://path`): the embedded default of `peregrine up`.
    Sqlite,
}

impl Dialect {
    /// The back end a URL names.
    pub fn from_url(database_url: &str) -> Result<Dialect, ReplicaError> {
        if database_url.starts_with("mysql://") || database_url.starts_with("mariadb://") {
            Ok(Dialect::MySql)
        } else if database_url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else {
            Err(ReplicaError::UnsupportedUrl(database_url.to_owned()))
        }
    }

    /// A short name for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::MySql => "mysql",
            Dialect::Sqlite => "sqlite",
        }
    }

    /// Starts a write transaction. SQLite takes the write lock at once (`IMMEDIATE`) so that a
    /// busy database fails the batch at its start, not at its commit.
    pub fn begin_sql(self) -> &'static str {
        match self {
            Dialect::MySql => "START TRANSACTION",
            Dialect::Sqlite => "BEGIN IMMEDIATE",
        }
    }

    /// The schema migrations of this back end, embedded at build time.
    ///
    /// Built here rather than by `sqlx::migrate!`: the macro needs sqlx's `macros` feature,
    /// which compiles sqlx's MySQL and SQLite drivers (and bundled SQLite, rustls, tokio) a
    /// second time for the build host — about a fifth of a cold release build. Versions,
    /// descriptions and checksums (SHA-384 of the SQL) are the ones the macro produced, so
    /// databases migrated before are recognised.
    pub fn migrator(self) -> sqlx::migrate::Migrator {
        use sqlx::migrate::{Migration, MigrationType};
        use std::borrow::Cow;
        let files: [(i64, &'static str, &'static str); 2] = match self {
            Dialect::MySql => [
                (
                    1,
                    "replica",
                    include_str!("../migrations/mysql/0001_replica.sql"),
                ),
                (
                    2,
                    "history indexes",
                    include_str!("../migrations/mysql/0002_history_indexes.sql"),
                ),
            ],
            Dialect::Sqlite => [
                (
                    1,
                    "replica",
                    include_str!("../migrations/sqlite/0001_replica.sql"),
                ),
                (
                    2,
                    "history indexes",
                    include_str!("../migrations/sqlite/0002_history_indexes.sql"),
                ),
            ],
        };
        let migrations = files
            .into_iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect::<Vec<_>>();
        // The fields are what `migrate!` fills in (sqlx marks them semver-exempt; Cargo.lock
        // pins sqlx, and the replica tests migrate real databases).
        sqlx::migrate::Migrator {
            migrations: Cow::Owned(migrations),
            ignore_missing: false,
            locking: true,
            no_tx: false,
        }
    }

    /// Starts `INSERT ... VALUES` that skips rows whose key already exists; finish it with
    /// [`Dialect::insert_ignore_end`].
    pub fn insert_ignore_start(self, sql: &mut String, table: &str, columns: &[&str]) {
        let verb = match self {
            Dialect::MySql => "INSERT IGNORE INTO",
            Dialect::Sqlite => "INSERT INTO",
        };
        let _ = write!(sql, "{verb} {table} ({}) VALUES ", columns.join(", "));
    }

    /// Ends a statement begun with [`Dialect::insert_ignore_start`].
    pub fn insert_ignore_end(self, sql: &mut String) {
        match self {
            Dialect::MySql => {}
            Dialect::Sqlite => sql.push_str(" ON CONFLICT DO NOTHING"),
        }
    }

    /// Starts a plain `INSERT ... VALUES`: a duplicate key is an error (a bug, never hidden).
    pub fn insert_start(self, sql: &mut String, table: &str, columns: &[&str]) {
        let _ = write!(sql, "INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    }

    /// Ends an insert with "on a duplicate `key`, overwrite `update` columns".
    pub fn upsert_end(self, sql: &mut String, key: &[&str], update: &[&str]) {
        match self {
            Dialect::MySql => {
                sql.push_str(" ON DUPLICATE KEY UPDATE ");
                for (index, column) in update.iter().enumerate() {
                    let comma = if index == 0 { "" } else { ", " };
                    let _ = write!(sql, "{comma}{column} = VALUES({column})");
                }
            }
            Dialect::Sqlite => {
                let _ = write!(sql, " ON CONFLICT ({}) DO UPDATE SET ", key.join(", "));
                for (index, column) in update.iter().enumerate() {
                    let comma = if index == 0 { "" } else { ", " };
                    let _ = write!(sql, "{comma}{column} = excluded.{column}");
                }
            }
        }
    }

    /// The largest integer a column of this back end holds: SQLite's are signed 64-bit, MySQL's
    /// unsigned `BIGINT` and `DECIMAL(21,0)` hold every `u64` and every difference of two.
    pub fn integer_max(self) -> i128 {
        match self {
            Dialect::MySql => i128::from(u64::MAX),
            Dialect::Sqlite => i128::from(i64::MAX),
        }
    }

    /// An expression reading `expression` as text, for exact reads of large sums.
    pub fn cast_text(self, expression: &str) -> String {
        match self {
            Dialect::MySql => format!("CAST({expression} AS CHAR)"),
            Dialect::Sqlite => format!("CAST({expression} AS TEXT)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_back_end() {
        assert_eq!(
            Dialect::from_url("mysql://root@127.0.0.1:3306/x").unwrap(),
            Dialect::MySql
        );
        assert_eq!(
            Dialect::from_url("sqlite://data/replica.db").unwrap(),
            Dialect::Sqlite
        );
        assert!(matches!(
            Dialect::from_url("postgres://x"),
            Err(ReplicaError::UnsupportedUrl(_))
        ));
    }

    #[test]
    fn upserts_are_spelled_per_dialect() {
        let mut mysql = String::new();
        Dialect::MySql.upsert_end(&mut mysql, &["id"], &["a", "b"]);
        assert_eq!(
            mysql,
            " ON DUPLICATE KEY UPDATE a = VALUES(a), b = VALUES(b)"
        );
        let mut sqlite = String::new();
        Dialect::Sqlite.upsert_end(&mut sqlite, &["id"], &["a", "b"]);
        assert_eq!(
            sqlite,
            " ON CONFLICT (id) DO UPDATE SET a = excluded.a, b = excluded.b"
        );
    }
}
