//! Schema migrations that a crash cannot brick.
//!
//! sqlx runs a MySQL migration by recording it as started (`success = FALSE` in
//! `_sqlx_migrations`), running its statements, then marking it successful. MySQL's DDL is not
//! transactional (each statement commits on its own), so a kill in between leaves some of the
//! statements applied and the record unfinished, and sqlx then refuses every later start
//! ("migration 1 is partially applied"): the replica would never be ready again.
//!
//! So before sqlx runs, an unfinished migration is completed here: its statements run one by
//! one, and one whose work is already done (its table, index or seed row is there, from the
//! killed run) counts as applied; the record is marked successful last, so a kill during the
//! completion leaves it unfinished and the next start completes it again. The migration files
//! stay as they are: their checksums are recorded in every database already migrated, and
//! sqlx refuses a migration whose file no longer matches its record.
//!
//! SQLite's DDL is transactional: a killed migration leaves nothing, and sqlx alone is enough.

use std::time::Instant;

use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::mysql::{MySqlConnection, MySqlDatabaseError};

use crate::error::ReplicaError;

/// MySQL error numbers of a statement whose work a killed run of its migration already did:
/// the table exists (`ER_TABLE_EXISTS_ERROR`), the index exists (`ER_DUP_KEYNAME`), the seed
/// row exists (`ER_DUP_ENTRY`).
const MYSQL_ALREADY_DONE: [u16; 3] = [1050, 1061, 1062];

/// Applies `migrator`'s migrations to a MySQL database, first completing one a crash left
/// unfinished.
pub(crate) async fn run_mysql(
    conn: &mut MySqlConnection,
    migrator: &Migrator,
) -> Result<(), ReplicaError> {
    conn.ensure_migrations_table().await?;
    // The lock sqlx takes too: two replicators starting at once complete a migration once.
    conn.lock().await?;
    let completed = complete_unfinished(conn, migrator).await;
    // On an error the caller drops the connection, which releases the lock anyway; the
    // completion's error is the one that says what went wrong.
    let unlocked = conn.unlock().await;
    completed?;
    unlocked?;
    migrator.run(conn).await?;
    Ok(())
}

/// Completes every migration recorded as started but not finished (at most one: sqlx stops at
/// the first migration that fails).
async fn complete_unfinished(
    conn: &mut MySqlConnection,
    migrator: &Migrator,
) -> Result<(), ReplicaError> {
    let migrations_count = migrator.iter().count();
    // Bounded: each pass finishes one recorded migration, and the records name migrations.
    for _ in 0..=migrations_count {
        let Some(version) = conn.dirty_version().await? else {
            return Ok(());
        };
        let migration = migrator
            .iter()
            .find(|m| m.version == version && m.migration_type.is_up_migration())
            .ok_or(MigrateError::VersionMissing(version))?;
        let recorded: Vec<u8> =
            sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = ?")
                .bind(version)
                .fetch_one(&mut *conn)
                .await?;
        if recorded.as_slice() != &*migration.checksum {
            // Another migration of that number was being applied: not ours to complete.
            return Err(MigrateError::VersionMismatch(version).into());
        }
        tracing::warn!(
            version,
            "replica schema migration left unfinished (a crash during it): completing it"
        );
        let started = Instant::now();
        for statement in statements(&migration.sql) {
            match sqlx::raw_sql(statement).execute(&mut *conn).await {
                Ok(_) => {}
                Err(error) if already_done(&error) => {
                    tracing::info!(version, %error, "replica migration statement already applied");
                }
                Err(error) => return Err(MigrateError::ExecuteMigration(error, version).into()),
            }
        }
        let elapsed_ns = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
        // Last: until this commits, the migration is unfinished and completed again.
        sqlx::query(
            "UPDATE _sqlx_migrations SET success = TRUE, execution_time = ? WHERE version = ?",
        )
        .bind(elapsed_ns)
        .bind(version)
        .execute(&mut *conn)
        .await?;
    }
    match conn.dirty_version().await? {
        None => Ok(()),
        Some(version) => Err(MigrateError::Dirty(version).into()),
    }
}

/// Whether `error` says the statement's work is there already.
fn already_done(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(database) = error else {
        return false;
    };
    database
        .try_downcast_ref::<MySqlDatabaseError>()
        .is_some_and(|mysql| MYSQL_ALREADY_DONE.contains(&mysql.number()))
}

/// The statements of a migration file, split at the semicolons outside comments and quotes
/// (the files' comments hold semicolons); pieces with nothing but comments and blanks dropped.
fn statements(sql: &str) -> Vec<&str> {
    /// Where the scan is.
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Code,
        LineComment,
        BlockComment,
        Quoted(u8),
    }
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut state = State::Code;
    let mut start = 0;
    // Whether the current piece has anything but comments and blanks.
    let mut has_code = false;
    let mut index = 0;
    // Bounded by the text's length: every pass moves on by one or two bytes.
    while index < bytes.len() {
        let byte = bytes[index];
        let next = bytes.get(index + 1).copied();
        match state {
            State::Code => match byte {
                b';' => {
                    if has_code {
                        out.push(sql[start..index].trim());
                    }
                    start = index + 1;
                    has_code = false;
                }
                // MySQL's `-- ` comment needs a blank (or the end) after the dashes.
                b'-' if next == Some(b'-')
                    && bytes
                        .get(index + 2)
                        .is_none_or(|after| after.is_ascii_whitespace()) =>
                {
                    state = State::LineComment;
                    index += 1;
                }
                b'#' => state = State::LineComment,
                b'/' if next == Some(b'*') => {
                    state = State::BlockComment;
                    index += 1;
                }
                b'\'' | b'"' | b'`' => {
                    state = State::Quoted(byte);
                    has_code = true;
                }
                _ if byte.is_ascii_whitespace() => {}
                _ => has_code = true,
            },
            State::LineComment => {
                if byte == b'\n' {
                    state = State::Code;
                }
            }
            State::BlockComment => {
                if byte == b'*' && next == Some(b'/') {
                    state = State::Code;
                    index += 1;
                }
            }
            State::Quoted(quote) => {
                if byte == b'\\' && quote != b'`' {
                    // An escaped character, whatever it is.
                    index += 1;
                } else if byte == quote {
                    state = State::Code;
                }
            }
        }
        index += 1;
    }
    if has_code {
        out.push(sql[start..].trim());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dialect;

    #[test]
    fn statements_split_at_semicolons_outside_comments_and_quotes() {
        let sql = "-- a; comment\nCREATE TABLE a (x INT); /* b; */ INSERT INTO a VALUES ('c;d', \
                   \"e;\\\"f\"); # g; h\n  ;\n-- trailing; comment\n";
        assert_eq!(
            statements(sql),
            [
                "-- a; comment\nCREATE TABLE a (x INT)",
                "/* b; */ INSERT INTO a VALUES ('c;d', \"e;\\\"f\")",
            ]
        );
        assert_eq!(statements("SELECT 1"), ["SELECT 1"]);
        assert!(statements("-- nothing\n").is_empty());
    }

    #[test]
    fn the_mysql_migrations_split_into_their_statements() {
        let migrator = Dialect::MySql.migrator();
        let counts: Vec<(i64, usize)> = migrator
            .iter()
            .map(|m| (m.version, statements(&m.sql).len()))
            .collect();
        // 0001: eleven tables and the seed row of replication_state; 0002: two indexes.
        assert_eq!(counts, [(1, 12), (2, 2)]);
        for migration in migrator.iter() {
            for statement in statements(&migration.sql) {
                let code: String = statement
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                let code = code.trim_start();
                assert!(
                    code.starts_with("CREATE TABLE")
                        || code.starts_with("CREATE INDEX")
                        || code.starts_with("INSERT INTO"),
                    "{statement}"
                );
            }
        }
    }
}
