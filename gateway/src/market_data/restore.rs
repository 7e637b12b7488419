//! Public market data rebuilt at start from the trades of earlier runs, so that a restart shows
//! the same recent trades, k-lines and 24 h tickers as before it. Sans IO: the REST bridge's
//! feed reads the trades (from the SQL replica) and pushes them here, oldest first; the result
//! goes into [`MarketData::restore`](super::MarketData::restore) before the feed applies its
//! first command.
//!
//! # Where the trades come from, and why
//!
//! From the replica's `trades` table, up to the sequence the live feed starts after (its seed),
//! never beyond: the trades after it arrive through the feed, so none is counted twice or
//! missed, and only durable commands are in the replica, so nothing from a command that was not
//! durable is shown. Not from the journal: recovery replays it only from the newest snapshot
//! (the trades before it are no longer events anywhere but the replica), and segments a snapshot
//! covers may be deleted (`delete_covered_segments`). The replica is on by default (SQLite under
//! the data directory); with `[replica] enabled = false` market data starts empty.
//!
//! # Bounds
//!
//! At most `[rest] rebuild_trades_max` trades (by default [`REBUILD_TRADES_MAX`]: the newest,
//! across markets) are read and folded, in pages, so start time is bounded (measured in `perf/RESULTS.md`) and memory is what the live
//! stores keep: [`MarketDataLimits::trades_per_market`](super::MarketDataLimits) trades and
//! [`CANDLES_MAX`](super::kline::CANDLES_MAX) candles per market and period. When older trades
//! exist, every candle that could hold one of them is dropped rather than shown short (the
//! weekly candles then cover less than before the restart, and above that many trades a day the
//! 24 h ticker covers less than a day); a market short of recent trades is topped up from its
//! own older trades, which are cheap to read by index.
//!
//! The alternative, candles aggregated per minute in SQL, would read rows per minute rather
//! than per trade; it was not taken because folding the trades themselves goes through the
//! live path's own code ([`Klines::trade`]), so a rebuilt candle cannot differ from the one the
//! live feed had built.

use std::collections::{HashMap, VecDeque};

use peregrine_hotpath::{MarketId, TradeId};

use super::PublicTrade;
use super::kline::Klines;

/// Trades the start-up rebuild reads at most by default, newest first across markets: about
/// 4 s (SQLite) to 5 s (MariaDB) of start per million on a loaded 2-core machine (see
/// `perf/RESULTS.md`).
pub const REBUILD_TRADES_MAX: usize = 1_000_000;

/// One market's rebuilt trades and candles.
#[derive(Debug, Default)]
pub(super) struct MarketHistory {
    /// Newest last, at most the market data's per-market limit.
    pub(super) trades: VecDeque<PublicTrade>,
    pub(super) klines: Klines,
}

/// Markets' trades and candles being rebuilt.
#[derive(Debug)]
pub struct Restored {
    trades_per_market: usize,
    pub(super) markets: HashMap<MarketId, MarketHistory>,
    /// Id of the last trade pushed (ids grow with the sequence).
    last_id: TradeId,
    /// Trades folded into candles.
    folded: u64,
}

impl Restored {
    /// Empty, keeping `trades_per_market` trades per market.
    pub fn new(trades_per_market: usize) -> Restored {
        assert!(trades_per_market > 0);
        Restored {
            trades_per_market,
            markets: HashMap::new(),
            last_id: TradeId(0),
            folded: 0,
        }
    }

    /// Folds the next trade of `market` (oldest first, ids increasing) into its candles and
    /// recent trades, as the live feed would have.
    pub fn push(&mut self, market: MarketId, trade: PublicTrade) {
        assert!(trade.id > self.last_id, "trades are pushed oldest first");
        self.last_id = trade.id;
        self.folded += 1;
        let history = self.markets.entry(market).or_default();
        if history.trades.len() == self.trades_per_market {
            history.trades.pop_front();
        }
        history.trades.push_back(trade);
        history
            .klines
            .trade(trade.ts_ns / 1_000_000_000, trade.price, trade.qty);
        debug_assert!(history.trades.len() <= self.trades_per_market);
    }

    /// Drops every candle that starts at or before `ts_s`: they may hold trades that were not
    /// read (older than the rebuild's window), and a candle is shown whole or not at all.
    pub fn forget_candles_through(&mut self, ts_s: u64) {
        for history in self.markets.values_mut() {
            history.klines.forget_through(ts_s);
        }
    }

    /// Recent trades `market` lacks to reach the per-market limit.
    pub fn room(&self, market: MarketId) -> usize {
        let kept = self.markets.get(&market).map_or(0, |h| h.trades.len());
        self.trades_per_market - kept
    }

    /// The oldest trade kept for `market`.
    pub fn oldest(&self, market: MarketId) -> Option<TradeId> {
        self.markets
            .get(&market)
            .and_then(|h| h.trades.front())
            .map(|t| t.id)
    }

    /// Adds a trade of `market` older than every one kept (newest first), to its recent trades
    /// only: its candle is outside the rebuilt window. Ignored when the market has no room.
    pub fn push_older(&mut self, market: MarketId, trade: PublicTrade) {
        if self.room(market) == 0 {
            return;
        }
        let history = self.markets.entry(market).or_default();
        assert!(history.trades.front().is_none_or(|t| t.id > trade.id));
        history.trades.push_front(trade);
    }

    /// Recent trades kept per market.
    pub fn trades_per_market(&self) -> usize {
        self.trades_per_market
    }

    /// Trades folded into candles so far.
    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// The last trade folded.
    pub fn last_id(&self) -> TradeId {
        self.last_id
    }
}

#[cfg(test)]
mod tests {
    use peregrine_hotpath::{Amount, Price, Qty, Side};

    use super::*;
    use crate::market_data::kline::Period;

    fn trade(id: u64, ts_s: u64) -> PublicTrade {
        PublicTrade {
            id: TradeId(id),
            price: Price(100 + id),
            qty: Qty(1),
            quote_amount: Amount(100 + id),
            taker_side: Side::Buy,
            ts_ns: ts_s * 1_000_000_000,
        }
    }

    #[test]
    fn trades_are_bounded_and_older_ones_top_up_a_short_market() {
        let mut restored = Restored::new(3);
        let (a, b) = (MarketId(0), MarketId(1));
        for id in 1..=4 {
            restored.push(a, trade(id, 60 * id));
        }
        restored.push(b, trade(5, 300));
        assert_eq!(restored.room(a), 0);
        assert_eq!(restored.room(b), 2);
        assert_eq!(restored.oldest(a), Some(TradeId(2)));
        restored.push_older(b, trade(0, 0));
        restored.push_older(a, trade(0, 0));
        assert_eq!(restored.room(b), 1);
        assert_eq!(restored.oldest(b), Some(TradeId(0)));
        assert_eq!(restored.oldest(a), Some(TradeId(2)));
        assert_eq!((restored.folded(), restored.last_id()), (5, TradeId(5)));
    }

    #[test]
    fn candles_that_may_hold_unread_trades_are_dropped() {
        let mut restored = Restored::new(10);
        let market = MarketId(0);
        // The first trade read is at 150 s: the one-minute candle at 120 s may hold older ones.
        for (id, ts_s) in [(10, 150), (11, 185), (12, 250)] {
            restored.push(market, trade(id, ts_s));
        }
        restored.forget_candles_through(150);
        let klines = &restored.markets[&market].klines;
        let one = Period::from_minutes(1).unwrap();
        let starts: Vec<u64> = klines
            .range(one, 0, u64::MAX, 10)
            .iter()
            .map(|c| c.start_s)
            .collect();
        assert_eq!(starts, vec![180, 240]);
        let five = Period::from_minutes(5).unwrap();
        assert!(klines.range(five, 0, u64::MAX, 10).is_empty());
        // The last price survives: it is the last trade's, whatever its candle.
        assert_eq!(klines.ticker(250).last, Price(112));
    }
}
