//! The database connection: one connection per replicator (a single writer needs no pool), of
//! either back end, behind the few operations the replicator uses. On any error the replicator
//! drops the connection: the server rolls back whatever transaction was open, so the next
//! attempt starts clean.

use std::str::FromStr;
use std::time::Duration;

use peregrine_persist::Seq;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

use crate::dialect::Dialect;
use crate::error::ReplicaError;

/// How long SQLite waits for another connection's lock before failing the batch (retried).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Conn {
    /// MySQL or MariaDB.
    MySql(MySqlConnection),
    /// SQLite.
    Sqlite(SqliteConnection),
}

impl Conn {
    /// Connects to `database_url` (a SQLite file is created if missing).
    pub async fn connect(database_url: &str) -> Result<Conn, ReplicaError> {
        match Dialect::from_url(database_url)? {
            Dialect::MySql => {
                let options = MySqlConnectOptions::from_str(database_url)?
                    // Batches are megabytes of SQL: never log them.
                    .disable_statement_logging();
                Ok(Conn::MySql(options.connect().await?))
            }
            Dialect::Sqlite => {
                let options = SqliteConnectOptions::from_str(database_url)?
                    .create_if_missing(true)
                    // WAL: readers (history endpoints) never block the replicator's commits.
                    .journal_mode(SqliteJournalMode::Wal)
                    // With WAL, NORMAL loses at most the last commits on power loss, never
                    // consistency; the journal still holds them and the HWM says where to resume.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .disable_statement_logging();
                // `sqlite://data/replica.db` on a bare machine: create `data/` too.
                if let Some(parent) = options.get_filename().parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|source| ReplicaError::Io {
                        path: parent.to_path_buf(),
                        source,
                    })?;
                }
                Ok(Conn::Sqlite(options.connect().await?))
            }
        }
    }

    /// Which back end.
    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::MySql(_) => Dialect::MySql,
            Conn::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs one statement (or several separated by `;`); returns the rows affected.
    pub async fn execute(&mut self, sql: &str) -> Result<u64, ReplicaError> {
        Ok(match self {
            Conn::MySql(c) => sqlx::raw_sql(sql).execute(c).await?.rows_affected(),
            Conn::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await?.rows_affected(),
        })
    }

    /// Applies the schema migrations of this back end, completing first one that a crash left
    /// half applied.
    pub async fn migrate(&mut self) -> Result<(), ReplicaError> {
        let migrator = self.dialect().migrator();
        match self {
            // Completes a migration a crash left half applied (MySQL's DDL is not
            // transactional) before sqlx, which would refuse it, runs the rest.
            Conn::MySql(c) => crate::migrations::run_mysql(c, &migrator).await?,
            Conn::Sqlite(c) => migrator.run(c).await?,
        }
        Ok(())
    }

    /// The replicated high-water mark: every command up to it is in the database.
    pub async fn high_water_seq(&mut self) -> Result<Seq, ReplicaError> {
        const SQL: &str = "SELECT high_water_seq FROM replication_state WHERE id = 1";
        let value: i64 = match self {
            Conn::MySql(c) => sqlx::query_scalar(SQL).fetch_one(c).await?,
            Conn::Sqlite(c) => sqlx::query_scalar(SQL).fetch_one(c).await?,
        };
        Seq::try_from(value).map_err(|_| ReplicaError::OutOfRange {
            dialect: self.dialect().name(),
            what: "high_water_seq",
            value: i128::from(value),
        })
    }

    /// Writes one batch in one transaction: first the compare-and-set of the high-water mark
    /// from `from_seq`, then `statements`, then commit. If the mark is not at `from_seq` nothing
    /// is written and the error says where it is.
    pub async fn write_batch(
        &mut self,
        from_seq: Seq,
        high_water_sql: &str,
        statements: &[String],
    ) -> Result<(), ReplicaError> {
        self.write_uncommitted(from_seq, high_water_sql, statements)
            .await?;
        self.execute("COMMIT").await?;
        Ok(())
    }

    /// Opens a transaction, moves the mark from `from_seq` and runs `statements`, leaving the
    /// transaction open. If the mark is not at `from_seq` it rolls back and says where it is.
    async fn write_uncommitted(
        &mut self,
        from_seq: Seq,
        high_water_sql: &str,
        statements: &[String],
    ) -> Result<(), ReplicaError> {
        self.execute(self.dialect().begin_sql()).await?;
        if self.execute(high_water_sql).await? != 1 {
            self.execute("ROLLBACK").await?;
            let found = self.high_water_seq().await?;
            return Err(ReplicaError::HighWaterMoved {
                expected: from_seq,
                found,
            });
        }
        for statement in statements {
            self.execute(statement).await?;
        }
        Ok(())
    }

    /// [`Conn::write_batch`] with the ledger's statements on `ledger_conn` at the same time,
    /// in a transaction of their own (see [`Conn::write_ledger`]). The main transaction, which
    /// moves the mark, commits only after the ledger's did, so the mark never covers a batch
    /// whose ledger rows are missing; a ledger part committed without its main part is found
    /// and kept, or completed, by the retry.
    #[allow(clippy::too_many_arguments)] // One batch's parts; a struct would only rename them.
    pub async fn write_batch_split(
        &mut self,
        ledger_conn: &mut Conn,
        from_seq: Seq,
        to_seq: Seq,
        high_water_sql: &str,
        main: &[String],
        ledger: &[String],
        ledger_rows: u64,
    ) -> Result<(), ReplicaError> {
        let main_part = self.write_uncommitted(from_seq, high_water_sql, main);
        let ledger_part = ledger_conn.write_ledger(from_seq, to_seq, ledger_rows, ledger);
        let (main_result, ledger_result) = tokio::join!(main_part, ledger_part);
        // An error leaves the main transaction open: the caller drops the connection on any
        // error, and the server rolls it back.
        main_result?;
        ledger_result?;
        self.execute("COMMIT").await?;
        Ok(())
    }

    /// Writes the ledger rows of the batch `(from_seq, to_seq]`, `rows` of them, in one
    /// transaction, unless they are all in the database already (a retry after this part
    /// committed and the main part did not).
    ///
    /// Some but not all of them is the normal result of a crash too: a ledger part committed
    /// beyond the mark by a replicator killed before its main commit, whose batch ended inside
    /// this one (the restarted replicator read up to another durable bound, or with another
    /// batch size). Those rows are exactly the ones this batch would write (the ledger is a
    /// function of the journal, keyed by `(seq, entry_index)`), so the range's rows are deleted
    /// and written again in the same transaction: the range ends whole, never doubled.
    pub async fn write_ledger(
        &mut self,
        from_seq: Seq,
        to_seq: Seq,
        rows: u64,
        statements: &[String],
    ) -> Result<(), ReplicaError> {
        assert!(from_seq < to_seq, "a batch holds at least one command");
        let range = format!("seq > {from_seq} AND seq <= {to_seq}");
        let count_sql = format!("SELECT COUNT(*) FROM ledger_entries WHERE {range}");
        let found: i64 = match self {
            Conn::MySql(c) => sqlx::query_scalar(&count_sql).fetch_one(c).await?,
            Conn::Sqlite(c) => sqlx::query_scalar(&count_sql).fetch_one(c).await?,
        };
        let found = u64::try_from(found).unwrap_or(u64::MAX);
        if found == rows {
            // Every row in the range came from a whole committed ledger part of the same
            // journal, so as many rows as the batch holds are the batch's rows.
            return Ok(());
        }
        self.execute(self.dialect().begin_sql()).await?;
        if found != 0 {
            tracing::info!(
                from_seq,
                to_seq,
                found,
                expected = rows,
                "replica ledger rows beyond the mark (a crash between the two commits): \
                 rewriting the range"
            );
            // Whatever the range holds now, counted or not: the transaction leaves it whole.
            self.execute(&format!("DELETE FROM ledger_entries WHERE {range}"))
                .await?;
        }
        let mut written = 0_u64;
        for statement in statements {
            written += self.execute(statement).await?;
        }
        if written != rows {
            // The statements disagree with the batch: a bug; write nothing.
            self.execute("ROLLBACK").await?;
            return Err(ReplicaError::LedgerMismatch {
                from_seq,
                to_seq,
                written,
                expected: rows,
            });
        }
        self.execute("COMMIT").await?;
        Ok(())
    }

    /// Runs a query whose every column is text (cast it, see [`Dialect::cast_text`]) and
    /// returns the rows: for tools and tests that read the replica the same way on both back
    /// ends.
    pub async fn query_text(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, ReplicaError> {
        use sqlx::Row;
        let mut out = Vec::new();
        match self {
            Conn::MySql(c) => {
                for row in sqlx::query(sql).fetch_all(c).await? {
                    let mut values = Vec::with_capacity(row.len());
                    for index in 0..row.len() {
                        values.push(row.try_get::<Option<String>, _>(index)?);
                    }
                    out.push(values);
                }
            }
            Conn::Sqlite(c) => {
                for row in sqlx::query(sql).fetch_all(c).await? {
                    let mut values = Vec::with_capacity(row.len());
                    for index in 0..row.len() {
                        values.push(row.try_get::<Option<String>, _>(index)?);
                    }
                    out.push(values);
                }
            }
        }
        Ok(out)
    }

    /// Closes the connection politely (errors ignored: it is going away either way).
    pub async fn close(self) {
        let _ = match self {
            Conn::MySql(c) => c.close().await,
            Conn::Sqlite(c) => c.close().await,
        };
    }
}
