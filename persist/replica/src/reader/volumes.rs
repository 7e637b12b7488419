//! Each account's traded volume over a window, from the trades table: what the fee-tier job
//! reads to place accounts in volume tiers. A trade counts for both its maker and its taker,
//! in quote minor units of its market.

use peregrine_hotpath::{AccountId, MarketId};

use super::QUERY_ROWS_MAX;
use super::row::TextRow;
use crate::db::Conn;
use crate::error::ReplicaError;

/// One account's volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountVolume {
    /// The account.
    pub account: AccountId,
    /// Quote minor units traded (as maker and as taker).
    pub quote_minor: u128,
}

/// The volume of each account above `after` that traded in `markets` at or after `since_ns`,
/// by account, at most `limit` (capped at [`QUERY_ROWS_MAX`]); empty for no market.
pub(super) async fn by_account(
    conn: &mut Conn,
    markets: &[MarketId],
    since_ns: u64,
    after: AccountId,
    limit: usize,
) -> Result<Vec<AccountVolume>, ReplicaError> {
    if markets.is_empty() {
        return Ok(Vec::new());
    }
    let limit = limit.min(QUERY_ROWS_MAX);
    let list: Vec<String> = markets.iter().map(|m| m.0.to_string()).collect();
    // Integers only: the market ids, the time and the account are formatted numbers.
    let filter = format!(
        "market_id IN ({}) AND ts_ns >= {}",
        list.join(", "),
        i64::try_from(since_ns).unwrap_or(i64::MAX)
    );
    let dialect = conn.dialect();
    let sql = format!(
        "SELECT {}, {} FROM (\
         SELECT maker_account_id AS account, quote_amount FROM trades WHERE {filter} \
         UNION ALL \
         SELECT taker_account_id AS account, quote_amount FROM trades WHERE {filter}\
         ) v WHERE account > {} GROUP BY account ORDER BY account LIMIT {limit}",
        dialect.cast_text("account"),
        dialect.cast_text("SUM(quote_amount)"),
        after.0
    );
    let rows = conn.query_text(&sql).await?;
    let mut out = Vec::with_capacity(rows.len());
    for values in &rows {
        let row = TextRow {
            what: "volumes",
            values,
        };
        let quote_minor = u128::try_from(row.int(1)?).map_err(|_| {
            ReplicaError::Config("volumes: a negative sum of unsigned amounts".to_owned())
        })?;
        out.push(AccountVolume {
            account: AccountId(row.narrow(0)?),
            quote_minor,
        });
    }
    debug_assert!(out.len() <= limit);
    Ok(out)
}
