//! Reads the trades of earlier runs from the replica for the feed's start-up rebuild of public
//! market data ([`crate::market_data::restore`] says what is read and why; this is its IO).
//!
//! The feed opens its tap first and learns the sequence `S` its seed is at; this then waits
//! (bounded) until the replica holds `S`, and reads the trades of commands up to `S` only: the
//! tap carries every later one.

use std::time::{Duration, Instant};

use peregrine_hotpath::{MarketId, TradeId};
use peregrine_replica::{MarketTradeRow, ReplicaError, ReplicaReader};

use crate::market_data::PublicTrade;
use crate::market_data::restore::Restored;

/// Rows per replica query: big enough that the per-query cost is small, small enough that a
/// page's text rows stay a few MiB.
const PAGE_ROWS: usize = 10_000;
/// Longest the rebuild waits for the replica to reach the feed's seed (it follows the journal
/// by milliseconds when healthy).
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);
/// How often the replica's high-water mark is read while waiting.
const CATCH_UP_POLL: Duration = Duration::from_millis(20);

/// Why market data could not be rebuilt (it then starts empty).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RebuildError {
    /// The replica could not be read.
    #[error("replica: {0}")]
    Replica(#[from] ReplicaError),
    /// The replica did not reach the feed's seed in time.
    #[error("the replica holds sequence {high_water_seq}, not yet {seed_seq}")]
    Behind {
        /// What it holds.
        high_water_seq: u64,
        /// What the rebuild needs.
        seed_seq: u64,
    },
}

/// What a rebuild read.
#[derive(Debug)]
pub(crate) struct Rebuilt {
    pub(crate) restored: Restored,
    /// Trades read in all (folded and topped up).
    pub(crate) trades_read: u64,
    /// Whether older trades were left out of the candles (beyond `trades_max`).
    pub(crate) truncated: bool,
}

/// Rebuilds `markets`' public trades and candles from the trades of commands up to
/// `seed_seq`, at most the newest `trades_max` into candles, into `restored` (empty, with the
/// market data's bounds).
pub(crate) async fn rebuild(
    reader: &ReplicaReader,
    seed_seq: u64,
    markets: &[MarketId],
    trades_max: usize,
    mut restored: Restored,
) -> Result<Rebuilt, RebuildError> {
    assert!(trades_max > 0);
    wait_for(reader, seed_seq).await?;
    // The trade just below the window: reading starts after it.
    let below = reader.trade_id_below_newest(seed_seq, trades_max).await?;
    let mut after = below.unwrap_or(TradeId(0));
    let mut trades_read = 0_u64;
    let mut first_ts_ns = None;
    // Bounded: trades_max / PAGE_ROWS pages, plus one.
    loop {
        let page = reader
            .market_trades_after(after, seed_seq, PAGE_ROWS)
            .await?;
        for row in &page {
            first_ts_ns.get_or_insert(row.ts_ns);
            restored.push(row.market, public(row));
        }
        trades_read += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == PAGE_ROWS => after = last.id,
            _ => break,
        }
    }
    assert!(trades_read <= trades_max as u64);
    let truncated = below.is_some();
    if truncated {
        restored.forget_candles_through(first_ts_ns.map_or(0, |ns| ns / 1_000_000_000));
        trades_read += top_up(reader, seed_seq, markets, below, &mut restored).await?;
    }
    Ok(Rebuilt {
        restored,
        trades_read,
        truncated,
    })
}

/// Gives each market short of its recent trades its own older ones (below the window).
async fn top_up(
    reader: &ReplicaReader,
    seed_seq: u64,
    markets: &[MarketId],
    below: Option<TradeId>,
    restored: &mut Restored,
) -> Result<u64, RebuildError> {
    let window_start = below.map_or(TradeId(0), |id| TradeId(id.0 + 1));
    let mut read = 0_u64;
    for &market in markets {
        let room = restored.room(market);
        if room == 0 {
            continue;
        }
        let before = restored.oldest(market).unwrap_or(window_start);
        let older = reader
            .market_trades_before(market, before, seed_seq, room)
            .await?;
        read += older.len() as u64;
        for row in &older {
            restored.push_older(market, public(row));
        }
    }
    Ok(read)
}

/// Waits until the replica holds `seed_seq`, bounded by [`CATCH_UP_WAIT`].
async fn wait_for(reader: &ReplicaReader, seed_seq: u64) -> Result<(), RebuildError> {
    let deadline = Instant::now() + CATCH_UP_WAIT;
    // Bounded by the deadline.
    loop {
        let high_water_seq = reader.high_water_seq().await?;
        if high_water_seq >= seed_seq {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(RebuildError::Behind {
                high_water_seq,
                seed_seq,
            });
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}

fn public(row: &MarketTradeRow) -> PublicTrade {
    PublicTrade {
        id: row.id,
        price: row.price,
        qty: row.qty,
        quote_amount: row.quote_amount,
        taker_side: row.taker_side,
        ts_ns: row.ts_ns,
    }
}
