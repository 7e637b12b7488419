//! An account's ledger entries: its transactions.

use peregrine_hotpath::{AccountId, CurrencyId};

use super::row::TextRow;
use super::{PAGE_ROWS_MAX, high_water_seq};
use crate::db::Conn;
use crate::error::ReplicaError;

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

pub(super) async fn query(
    conn: &mut Conn,
    account: AccountId,
    currency: Option<CurrencyId>,
    ascending: bool,
    offset: usize,
    limit: usize,
) -> Result<LedgerPage, ReplicaError> {
    let high_water_seq = high_water_seq(conn).await?;
    let dialect = conn.dialect();
    let text = |column: &str| dialect.cast_text(column);
    let currency_filter = currency.map_or(String::new(), |c| format!(" AND currency_id = {}", c.0));
    let direction = if ascending { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT {}, {}, {}, {}, {}, cause, {} FROM ledger_entries \
         WHERE party = 'account' AND account_id = {}{currency_filter} AND seq <= {high_water_seq} \
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
    for values in &rows {
        let row = TextRow {
            what: "ledger",
            values,
        };
        entries.push(LedgerEntry {
            seq: row.unsigned(0)?,
            entry_index: row.narrow(1)?,
            currency: CurrencyId(row.narrow(2)?),
            available_delta: row.int(3)?,
            locked_delta: row.int(4)?,
            cause: row.text(5)?.to_owned(),
            ts_ns: row.unsigned(6)?,
        });
    }
    Ok(LedgerPage {
        high_water_seq,
        entries,
    })
}
