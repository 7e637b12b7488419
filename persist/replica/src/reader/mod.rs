//! Reads history back from the replica for the REST bridge: an account's ledger entries (its
//! transactions), as of the replica's high-water mark. One connection, opened on first use and
//! reopened after an error; queries are built from integers only (ids, limits), never from
//! request text.

use peregrine_hotpath::{AccountId, CurrencyId};
use tokio::sync::Mutex;

use crate::db::Conn;
use crate::error::ReplicaError;

/// Rows one query may return, at most.
pub const PAGE_ROWS_MAX: usize = 1_000;

/// One movement of an account's balance in one currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The journal sequence of the command that caused it.
    pub seq: u64,
    /// Its position among that command's entries.
    pub entry_index: u32,
    /// Currency.
    pub currency: CurrencyId,
    /// Change of the available balance, minor units.
    pub available_delta: i128,
    /// Change of the locked balance, minor units.
    pub locked_delta: i128,
    /// The command kind that caused it (`deposit`, `new_order`, `trade`, ...).
    pub cause: String,
    /// The command's timestamp, Unix nanoseconds.
    pub ts_ns: u64,
}

/// A page of ledger entries and the sequence the replica is complete up to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerPage {
    /// Last journal sequence replicated: entries of later commands are not here yet.
    pub high_water_seq: u64,
    /// The entries, in the order asked.
    pub entries: Vec<LedgerEntry>,
}

/// A reader of the replica.
#[derive(Debug)]
pub struct ReplicaReader {
    database_url: String,
    conn: Mutex<Option<Conn>>,
}

impl ReplicaReader {
    /// A reader of the replica at `database_url` (connected on first use).
    pub fn new(database_url: impl Into<String>) -> ReplicaReader {
        ReplicaReader {
            database_url: database_url.into(),
            conn: Mutex::new(None),
        }
    }

    /// `account`'s ledger entries (optionally in one currency), by sequence, `offset` rows in,
    /// at most `limit` (capped at [`PAGE_ROWS_MAX`]).
    pub async fn ledger(
        &self,
        account: AccountId,
        currency: Option<CurrencyId>,
        ascending: bool,
        offset: usize,
        limit: usize,
    ) -> Result<LedgerPage, ReplicaError> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = Some(Conn::connect(&self.database_url).await?);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(ReplicaError::Config("no replica connection".to_owned()));
        };
        let result = query_ledger(conn, account, currency, ascending, offset, limit).await;
        if result.is_err() {
            // A broken connection is dropped; the next call reconnects.
            *guard = None;
        }
        result
    }
}

async fn query_ledger(
    conn: &mut Conn,
    account: AccountId,
    currency: Option<CurrencyId>,
    ascending: bool,
    offset: usize,
    limit: usize,
) -> Result<LedgerPage, ReplicaError> {
    let dialect = conn.dialect();
    let text = |column: &str| dialect.cast_text(column);
    let high_water = conn
        .query_text(&format!(
            "SELECT {} FROM replication_state WHERE id = 1",
            text("high_water_seq")
        ))
        .await?;
    let high_water_seq = high_water
        .first()
        .and_then(|row| row.first().cloned().flatten())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let currency_filter = currency.map_or(String::new(), |c| format!(" AND currency_id = {}", c.0));
    let direction = if ascending { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT {}, {}, {}, {}, {}, cause, {} FROM ledger_entries \
         WHERE party = 'account' AND account_id = {}{currency_filter} \
         ORDER BY seq {direction}, entry_index {direction} LIMIT {} OFFSET {}",
        text("seq"),
        text("entry_index"),
        text("currency_id"),
        text("available_delta"),
        text("locked_delta"),
        text("ts_ns"),
        account.0,
        limit.min(PAGE_ROWS_MAX),
        offset,
    );
    let rows = conn.query_text(&sql).await?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let field = |index: usize| -> Result<String, ReplicaError> {
            row.get(index)
                .cloned()
                .flatten()
                .ok_or_else(|| ReplicaError::Config(format!("ledger row lacks column {index}")))
        };
        let number = |index: usize| -> Result<i128, ReplicaError> {
            let value = field(index)?;
            value.parse::<i128>().map_err(|_| {
                ReplicaError::Config(format!("ledger value `{value}` is not an integer"))
            })
        };
        let unsigned = |index: usize| -> Result<u64, ReplicaError> {
            u64::try_from(number(index)?)
                .map_err(|_| ReplicaError::Config(format!("ledger column {index} is negative")))
        };
        entries.push(LedgerEntry {
            seq: unsigned(0)?,
            entry_index: u32::try_from(unsigned(1)?)
                .map_err(|_| ReplicaError::Config("entry index out of range".to_owned()))?,
            currency: CurrencyId(
                u16::try_from(unsigned(2)?)
                    .map_err(|_| ReplicaError::Config("currency out of range".to_owned()))?,
            ),
            available_delta: number(3)?,
            locked_delta: number(4)?,
            cause: field(5)?,
            ts_ns: unsigned(6)?,
        });
    }
    Ok(LedgerPage {
        high_water_seq,
        entries,
    })
}
