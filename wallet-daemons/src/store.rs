//! The wallet store: deposit addresses, the followed chain of block hashes and deposits, on
//! MySQL/MariaDB or SQLite (the same approach as the identity store: runtime queries, embedded
//! migrations built by hand, every statement written once and run on either back end).

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::chain::{Address, Hash32};

/// Connections the pool opens at most (the watcher is one writer; the API reads).
pub const POOL_CONNECTIONS_MAX: u32 = 4;
/// Rows one listing returns at most.
pub const ROWS_MAX: u32 = 1_000;
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
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
    /// A column holds a value this version does not write.
    #[error("column {column} holds unknown value `{value}`")]
    UnknownValue {
        /// The column.
        column: &'static str,
        /// The value.
        value: String,
    },
}

/// A deposit's state (see the crate docs for the transitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DepositState {
    /// In a block of the followed chain, short of its currency's confirmations.
    Seen,
    /// Confirmed: the credit is due (written before the command is submitted, so a restart
    /// submits it again under the same idempotency key).
    Confirmed,
    /// The engine applied the deposit command (or had applied it before).
    Credited,
    /// Its block left the chain before it was confirmed: never credited unless the transfer is
    /// mined again (then it is `seen` again, in its new block).
    Orphaned,
    /// Less than one minor unit of the currency: recorded, never credited.
    Dust,
    /// The engine refused the credit for good (unknown account, overflow): an operator's case.
    Rejected,
}

impl DepositState {
    /// Every state, for metrics.
    pub const ALL: [DepositState; 6] = [
        DepositState::Seen,
        DepositState::Confirmed,
        DepositState::Credited,
        DepositState::Orphaned,
        DepositState::Dust,
        DepositState::Rejected,
    ];

    /// The stored (and shown) name.
    pub fn name(self) -> &'static str {
        match self {
            DepositState::Seen => "seen",
            DepositState::Confirmed => "confirmed",
            DepositState::Credited => "credited",
            DepositState::Orphaned => "orphaned",
            DepositState::Dust => "dust",
            DepositState::Rejected => "rejected",
        }
    }

    fn parse(text: &str) -> Result<DepositState, StoreError> {
        DepositState::ALL
            .into_iter()
            .find(|state| state.name() == text)
            .ok_or_else(|| StoreError::UnknownValue {
                column: "state",
                value: text.to_owned(),
            })
    }
}

/// A stored block of the followed chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredBlock {
    /// Height.
    pub number: u64,
    /// Hash.
    pub hash: Hash32,
    /// Parent's hash.
    pub parent: Hash32,
    /// Block time, seconds since the epoch.
    pub timestamp_s: u64,
}

/// A deposit found in a block, to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDeposit {
    /// Currency code.
    pub currency: String,
    /// Credited account.
    pub account: u32,
    /// The deposit address.
    pub address: Address,
    /// Transaction.
    pub txid: Hash32,
    /// `Leg::to_stored`.
    pub leg: i64,
    /// In chain units.
    pub amount_chain: u128,
    /// In the engine's minor units (0: dust).
    pub amount_minor: u64,
}

/// A stored deposit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepositRow {
    /// Row id (the engine's idempotency key is derived from it).
    pub id: u64,
    /// Currency code.
    pub currency: String,
    /// Credited account.
    pub account: u32,
    /// Deposit address.
    pub address: String,
    /// Transaction.
    pub txid: String,
    /// Leg (-1 value, else log index).
    pub leg: i64,
    /// In chain units, decimal.
    pub amount_chain: String,
    /// In minor units.
    pub amount_minor: u64,
    /// Block height.
    pub block_number: u64,
    /// State.
    pub state: DepositState,
    /// Journal sequence of the credit.
    pub credited_seq: Option<u64>,
}

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$pool` bound to the back end's pool and `$mysql` true on MySQL.
macro_rules! on_pool {
    ($store:expr, |$pool:ident, $mysql:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::MySql($pool) => {
                let $mysql = true;
                $body
            }
            $crate::store::Pool::Sqlite($pool) => {
                let $mysql = false;
                let _ = $mysql;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// A database transaction on either back end ([`WalletStore::begin`]): steps of one decision
/// take it in turn, each a named function, and [`Tx::commit`] ends it (dropped: rolled back).
pub(crate) enum Tx {
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// Runs `$body` with `$conn` bound to the transaction's connection and `$mysql` true on MySQL.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident, $mysql:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::MySql(tx) => {
                let $conn = &mut **tx;
                let $mysql = true;
                $body
            }
            $crate::store::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                let $mysql = false;
                let _ = $mysql;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

impl Tx {
    /// Commits the transaction.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::MySql(tx) => tx.commit().await?,
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// The wallet store.
#[derive(Clone, Debug)]
pub struct WalletStore {
    pub(crate) pool: Pool,
}

type MigrationFiles = &'static [(i64, &'static str, &'static str)];
const MYSQL_MIGRATIONS: MigrationFiles = &[
    (
        1,
        "wallets",
        include_str!("../migrations/mysql/0001_wallets.sql"),
    ),
    (
        2,
        "withdrawals",
        include_str!("../migrations/mysql/0002_withdrawals.sql"),
    ),
    (
        3,
        "address_requests",
        include_str!("../migrations/mysql/0003_address_requests.sql"),
    ),
    (
        4,
        "withdraw_requests",
        include_str!("../migrations/mysql/0004_withdraw_requests.sql"),
    ),
    (
        5,
        "collection",
        include_str!("../migrations/mysql/0005_collection.sql"),
    ),
    (
        6,
        "reconciliations",
        include_str!("../migrations/mysql/0006_reconciliations.sql"),
    ),
    (
        7,
        "fee_bumps",
        include_str!("../migrations/mysql/0007_fee_bumps.sql"),
    ),
];
const SQLITE_MIGRATIONS: MigrationFiles = &[
    (
        1,
        "wallets",
        include_str!("../migrations/sqlite/0001_wallets.sql"),
    ),
    (
        2,
        "withdrawals",
        include_str!("../migrations/sqlite/0002_withdrawals.sql"),
    ),
    (
        3,
        "address_requests",
        include_str!("../migrations/sqlite/0003_address_requests.sql"),
    ),
    (
        4,
        "withdraw_requests",
        include_str!("../migrations/sqlite/0004_withdraw_requests.sql"),
    ),
    (
        5,
        "collection",
        include_str!("../migrations/sqlite/0005_collection.sql"),
    ),
    (
        6,
        "reconciliations",
        include_str!("../migrations/sqlite/0006_reconciliations.sql"),
    ),
    (
        7,
        "fee_bumps",
        include_str!("../migrations/sqlite/0007_fee_bumps.sql"),
    ),
];
const _: () = assert!(MYSQL_MIGRATIONS.len() == SQLITE_MIGRATIONS.len());

/// The migrator `sqlx::migrate!` would build, without the `macros` feature.
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

pub(crate) fn to_i64(value: u64) -> i64 {
    // Heights, accounts and ids stay far below 2^63; saturate rather than wrap if not.
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(column: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::UnknownValue {
        column,
        value: value.to_string(),
    })
}

fn to_hash(column: &'static str, text: &str) -> Result<Hash32, StoreError> {
    Hash32::parse(text).ok_or_else(|| StoreError::UnknownValue {
        column,
        value: text.to_owned(),
    })
}

type DepositTuple = (
    i64,
    String,
    i64,
    String,
    String,
    i64,
    String,
    i64,
    i64,
    String,
    Option<i64>,
);
const DEPOSIT_COLUMNS: &str = "id, currency, account, address, txid, leg, amount_chain, \
     amount_minor, block_number, state, credited_seq";

fn deposit_row(tuple: DepositTuple) -> Result<DepositRow, StoreError> {
    let (id, currency, account, address, txid, leg, amount_chain, minor, number, state, seq) =
        tuple;
    Ok(DepositRow {
        id: to_u64("id", id)?,
        currency,
        account: u32::try_from(account).map_err(|_| StoreError::UnknownValue {
            column: "account",
            value: account.to_string(),
        })?,
        address,
        txid,
        leg,
        amount_chain,
        amount_minor: to_u64("amount_minor", minor)?,
        block_number: to_u64("block_number", number)?,
        state: DepositState::parse(&state)?,
        credited_seq: seq.map(|seq| to_u64("credited_seq", seq)).transpose()?,
    })
}

impl WalletStore {
    /// Connects to `database_url` (`mysql://…` or `sqlite:…`) and applies the migrations.
    pub async fn open(database_url: &str) -> Result<WalletStore, StoreError> {
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
        match &pool {
            Pool::MySql(pool) => migrator(MYSQL_MIGRATIONS).run(pool).await?,
            Pool::Sqlite(pool) => migrator(SQLITE_MIGRATIONS).run(pool).await?,
        }
        Ok(WalletStore { pool })
    }

    /// Begins a database transaction.
    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match &self.pool {
            Pool::MySql(pool) => Tx::MySql(pool.begin().await?),
            Pool::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
        })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match &self.pool {
            Pool::MySql(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }

    /// The deposit address of `account` in `currency`, with its derivation path.
    pub async fn address(
        &self,
        currency: &str,
        account: u32,
    ) -> Result<Option<(String, String)>, StoreError> {
        const SQL: &str =
            "SELECT address, path FROM wallet_addresses WHERE currency = ? AND account = ?";
        Ok(on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL)
                .bind(currency)
                .bind(i64::from(account))
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Records a deposit address; an existing one for (currency, account) is kept (two
    /// requests deriving at once derive the same address from the same path).
    pub async fn insert_address(
        &self,
        currency: &str,
        account: u32,
        address: &Address,
        path: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool, mysql| {
            let tail = if mysql {
                " ON DUPLICATE KEY UPDATE account = account"
            } else {
                " ON CONFLICT DO NOTHING"
            };
            let sql = format!(
                "INSERT INTO wallet_addresses (currency, account, address, path) \
                 VALUES (?, ?, ?, ?){tail}"
            );
            sqlx::query(&sql)
                .bind(currency)
                .bind(i64::from(account))
                .bind(address.as_str())
                .bind(path)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Every deposit address of `currency`: (account, address).
    pub async fn addresses(&self, currency: &str) -> Result<Vec<(u32, Address)>, StoreError> {
        const SQL: &str = "SELECT account, address FROM wallet_addresses WHERE currency = ?";
        let rows: Vec<(i64, String)> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL).bind(currency).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(account, address)| {
                let account = u32::try_from(account).map_err(|_| StoreError::UnknownValue {
                    column: "account",
                    value: account.to_string(),
                })?;
                let address = Address::parse_eth(&address).ok_or(StoreError::UnknownValue {
                    column: "address",
                    value: address,
                })?;
                Ok((account, address))
            })
            .collect()
    }

    /// The highest followed block of `chain`: the watcher's cursor.
    pub async fn tip(&self, chain: &str) -> Result<Option<StoredBlock>, StoreError> {
        const SQL: &str = "SELECT number, hash, parent, timestamp_s FROM wallet_blocks \
             WHERE chain = ? ORDER BY number DESC LIMIT 1";
        let row: Option<(i64, String, String, i64)> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL).bind(chain).fetch_optional(pool).await?
        });
        row.map(|(number, hash, parent, timestamp_s)| {
            Ok(StoredBlock {
                number: to_u64("number", number)?,
                hash: to_hash("hash", &hash)?,
                parent: to_hash("parent", &parent)?,
                timestamp_s: to_u64("timestamp_s", timestamp_s)?,
            })
        })
        .transpose()
    }
}

impl WalletStore {
    /// Records `block` as the new tip of `chain` with the deposits it carries, in one
    /// transaction, and forgets blocks more than `keep` below it. A deposit seen before in an
    /// orphaned block is moved to this one and becomes `seen` (or `dust`) again; one in any
    /// other state is left as it is (it is the same transfer: the key is (txid, leg)).
    pub async fn add_block(
        &self,
        chain: &str,
        block: &StoredBlock,
        deposits: &[NewDeposit],
        keep: u64,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool, mysql| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO wallet_blocks (chain, number, hash, parent, timestamp_s) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(chain)
            .bind(to_i64(block.number))
            .bind(block.hash.to_string())
            .bind(block.parent.to_string())
            .bind(to_i64(block.timestamp_s))
            .execute(&mut *tx)
            .await?;
            let lock = if mysql { " FOR UPDATE" } else { "" };
            let select = format!(
                "SELECT id, state FROM wallet_deposits WHERE chain = ? AND txid = ? AND leg = ?{lock}"
            );
            for deposit in deposits {
                let state = if deposit.amount_minor == 0 {
                    DepositState::Dust
                } else {
                    DepositState::Seen
                };
                let existing: Option<(i64, String)> = sqlx::query_as(&select)
                    .bind(chain)
                    .bind(deposit.txid.to_string())
                    .bind(deposit.leg)
                    .fetch_optional(&mut *tx)
                    .await?;
                match existing {
                    None => {
                        sqlx::query(
                            "INSERT INTO wallet_deposits (chain, currency, account, address, \
                             txid, leg, amount_chain, amount_minor, block_number, block_hash, \
                             state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        )
                        .bind(chain)
                        .bind(&deposit.currency)
                        .bind(i64::from(deposit.account))
                        .bind(deposit.address.as_str())
                        .bind(deposit.txid.to_string())
                        .bind(deposit.leg)
                        .bind(deposit.amount_chain.to_string())
                        .bind(to_i64(deposit.amount_minor))
                        .bind(to_i64(block.number))
                        .bind(block.hash.to_string())
                        .bind(state.name())
                        .execute(&mut *tx)
                        .await?;
                    }
                    Some((id, old)) if old == DepositState::Orphaned.name() => {
                        sqlx::query(
                            "UPDATE wallet_deposits SET block_number = ?, block_hash = ?, \
                             state = ? WHERE id = ?",
                        )
                        .bind(to_i64(block.number))
                        .bind(block.hash.to_string())
                        .bind(state.name())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Some(_) => {}
                }
            }
            sqlx::query("DELETE FROM wallet_blocks WHERE chain = ? AND number < ?")
                .bind(chain)
                .bind(to_i64(block.number.saturating_sub(keep)))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Forgets the blocks of `chain` from `number` up (they left the chain) and orphans the
    /// deposits in them that were not confirmed yet. Returns how many deposits at or above
    /// `number` were already confirmed or credited: a reorganisation deeper than their
    /// confirmations, which an operator must look at (they are left as they are).
    pub async fn rewind(&self, chain: &str, number: u64) -> Result<u64, StoreError> {
        let late: i64 = on_pool!(self, |pool, _mysql| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM wallet_blocks WHERE chain = ? AND number >= ?")
                .bind(chain)
                .bind(to_i64(number))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE wallet_deposits SET state = 'orphaned' WHERE chain = ? \
                 AND block_number >= ? AND state IN ('seen', 'dust')",
            )
            .bind(chain)
            .bind(to_i64(number))
            .execute(&mut *tx)
            .await?;
            let late: (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM wallet_deposits WHERE chain = ? AND block_number >= ? \
                 AND state IN ('confirmed', 'credited', 'rejected')",
            )
            .bind(chain)
            .bind(to_i64(number))
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            late.0
        });
        to_u64("count", late)
    }

    /// Marks `seen` deposits of `currency` in blocks at or below `number` as confirmed.
    pub async fn confirm(
        &self,
        chain: &str,
        currency: &str,
        number: u64,
    ) -> Result<u64, StoreError> {
        Ok(on_pool!(self, |pool, _mysql| {
            sqlx::query(
                "UPDATE wallet_deposits SET state = 'confirmed' WHERE chain = ? AND currency = ? \
                 AND state = 'seen' AND block_number <= ?",
            )
            .bind(chain)
            .bind(currency)
            .bind(to_i64(number))
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Confirmed deposits of `chain` whose credit is due, oldest first, at most `limit`.
    pub async fn due(&self, chain: &str, limit: u32) -> Result<Vec<DepositRow>, StoreError> {
        let sql = format!(
            "SELECT {DEPOSIT_COLUMNS} FROM wallet_deposits WHERE chain = ? AND state = 'confirmed' \
             ORDER BY id LIMIT ?"
        );
        let rows: Vec<DepositTuple> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(&sql)
                .bind(chain)
                .bind(i64::from(limit.min(ROWS_MAX)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(deposit_row).collect()
    }

    /// Ends a confirmed deposit: `credited` (with the journal sequence) or `rejected`.
    pub async fn settle(
        &self,
        id: u64,
        state: DepositState,
        seq: Option<u64>,
    ) -> Result<bool, StoreError> {
        debug_assert!(matches!(
            state,
            DepositState::Credited | DepositState::Rejected
        ));
        Ok(on_pool!(self, |pool, _mysql| {
            sqlx::query(
                "UPDATE wallet_deposits SET state = ?, credited_seq = ? WHERE id = ? \
                 AND state = 'confirmed'",
            )
            .bind(state.name())
            .bind(seq.map(to_i64))
            .bind(to_i64(id))
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        }))
    }

    /// Deposits of `chain` per state.
    pub async fn state_counts(&self, chain: &str) -> Result<Vec<(DepositState, u64)>, StoreError> {
        const SQL: &str =
            "SELECT state, COUNT(*) FROM wallet_deposits WHERE chain = ? GROUP BY state";
        let rows: Vec<(String, i64)> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL).bind(chain).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(state, count)| Ok((DepositState::parse(&state)?, to_u64("count", count)?)))
            .collect()
    }

    /// One page of the deposits of `account` (only `currency`'s if given), newest first:
    /// `limit` rows (at most [`ROWS_MAX`]) after skipping `offset`.
    pub async fn deposits_page(
        &self,
        account: u32,
        currency: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<DepositRow>, StoreError> {
        let filter = if currency.is_some() {
            " AND currency = ?"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {DEPOSIT_COLUMNS} FROM wallet_deposits WHERE account = ?{filter} \
             ORDER BY id DESC LIMIT ? OFFSET ?"
        );
        let rows: Vec<DepositTuple> = on_pool!(self, |pool, _mysql| {
            let mut query = sqlx::query_as(&sql).bind(i64::from(account));
            if let Some(currency) = currency {
                query = query.bind(currency);
            }
            query
                .bind(i64::from(limit.min(ROWS_MAX)))
                .bind(to_i64(offset))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(deposit_row).collect()
    }

    /// The deposits of `account`, newest first, at most `limit`.
    pub async fn account_deposits(
        &self,
        account: u32,
        limit: u32,
    ) -> Result<Vec<DepositRow>, StoreError> {
        let sql = format!(
            "SELECT {DEPOSIT_COLUMNS} FROM wallet_deposits WHERE account = ? \
             ORDER BY id DESC LIMIT ?"
        );
        let rows: Vec<DepositTuple> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(&sql)
                .bind(i64::from(account))
                .bind(i64::from(limit.min(ROWS_MAX)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(deposit_row).collect()
    }
}
