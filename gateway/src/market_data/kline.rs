//! K-lines (candles) per market for Peatio's periods, aligned to multiples of the period since
//! the Unix epoch, and the rolling 24 h ticker derived from the one-minute candles.

use std::collections::VecDeque;

use peregrine_hotpath::{Price, Qty};

/// Peatio's k-line periods, in minutes.
pub const PERIODS_MIN: [u32; 12] = [1, 5, 15, 30, 60, 120, 240, 360, 720, 1440, 4320, 10080];
/// Ranger's stream suffixes for the same periods, in the same order.
pub const PERIOD_NAMES: [&str; 12] = [
    "1m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "3d", "1w",
];
/// Candles kept per market and period: one day of one-minute candles (the 24 h ticker needs
/// them), about 28 years of weekly ones. Older candles are dropped; the replica serves history.
pub const CANDLES_MAX: usize = 1_440;
/// Seconds in the ticker's rolling window.
pub const TICKER_WINDOW_S: u64 = 86_400;

/// A k-line period (an index into [`PERIODS_MIN`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period(u8);

impl Period {
    /// Every period, shortest first.
    pub fn all() -> impl Iterator<Item = Period> {
        (0..PERIODS_MIN.len() as u8).map(Period)
    }

    /// The period of `minutes`, if Peatio has it.
    pub fn from_minutes(minutes: u32) -> Option<Period> {
        PERIODS_MIN
            .iter()
            .position(|&m| m == minutes)
            .and_then(|i| u8::try_from(i).ok())
            .map(Period)
    }

    /// The period of a Ranger suffix (`1m`, `1h`, `1w`, ...).
    pub fn from_name(name: &str) -> Option<Period> {
        PERIOD_NAMES
            .iter()
            .position(|&n| n == name)
            .and_then(|i| u8::try_from(i).ok())
            .map(Period)
    }

    /// Minutes.
    pub fn minutes(self) -> u32 {
        PERIODS_MIN[usize::from(self.0)]
    }

    /// Ranger suffix.
    pub fn name(self) -> &'static str {
        PERIOD_NAMES[usize::from(self.0)]
    }

    fn seconds(self) -> u64 {
        u64::from(self.minutes()) * 60
    }

    fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// One candle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candle {
    /// Start of the period, Unix seconds.
    pub start_s: u64,
    /// First trade's price.
    pub open: Price,
    /// Highest.
    pub high: Price,
    /// Lowest.
    pub low: Price,
    /// Last trade's price.
    pub close: Price,
    /// Base traded, in lots.
    pub volume: Qty,
    /// Quote traded, in ticks times lots (sum of price * qty).
    pub notional_tick_lots: u128,
}

/// A market's 24 h statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickerStats {
    /// Price of the first trade in the window (0 if none).
    pub open: Price,
    /// Highest in the window.
    pub high: Price,
    /// Lowest in the window.
    pub low: Price,
    /// Last trade price ever (0 if none).
    pub last: Price,
    /// Base traded in the window, lots.
    pub volume: Qty,
    /// Quote traded in the window, ticks times lots.
    pub notional_tick_lots: u128,
}

/// Candles of every period for one market.
#[derive(Clone, Debug)]
pub struct Klines {
    periods: Vec<VecDeque<Candle>>,
    last: Price,
}

impl Default for Klines {
    fn default() -> Self {
        Klines {
            periods: (0..PERIODS_MIN.len())
                .map(|_| VecDeque::with_capacity(16))
                .collect(),
            last: Price(0),
        }
    }
}

impl Klines {
    /// Folds a trade at `ts_s` into every period's current candle.
    pub fn trade(&mut self, ts_s: u64, price: Price, qty: Qty) {
        self.last = price;
        let notional = u128::from(price.0) * u128::from(qty.0);
        for period in Period::all() {
            let start_s = ts_s - ts_s % period.seconds();
            let candles = &mut self.periods[period.index()];
            match candles.back_mut() {
                // A clock step back lands in the current candle rather than rewriting history.
                Some(candle) if candle.start_s >= start_s => {
                    candle.high = candle.high.max(price);
                    candle.low = candle.low.min(price);
                    candle.close = price;
                    candle.volume.0 = candle.volume.0.saturating_add(qty.0);
                    candle.notional_tick_lots = candle.notional_tick_lots.saturating_add(notional);
                }
                _ => {
                    if candles.len() == CANDLES_MAX {
                        candles.pop_front();
                    }
                    candles.push_back(Candle {
                        start_s,
                        open: price,
                        high: price,
                        low: price,
                        close: price,
                        volume: qty,
                        notional_tick_lots: notional,
                    });
                }
            }
            debug_assert!(candles.len() <= CANDLES_MAX);
        }
    }

    /// Drops every candle starting at or before `ts_s` (see
    /// [`Restored::forget_candles_through`](super::restore::Restored::forget_candles_through)).
    pub fn forget_through(&mut self, ts_s: u64) {
        for candles in &mut self.periods {
            // Bounded by CANDLES_MAX.
            while candles.front().is_some_and(|c| c.start_s <= ts_s) {
                candles.pop_front();
            }
            debug_assert!(candles.front().is_none_or(|c| c.start_s > ts_s));
        }
    }

    /// The current (latest) candle of `period`.
    pub fn current(&self, period: Period) -> Option<Candle> {
        self.periods[period.index()].back().copied()
    }

    /// Candles of `period` starting in `[from_s, to_s]`, oldest first, the latest `limit`.
    pub fn range(&self, period: Period, from_s: u64, to_s: u64, limit: usize) -> Vec<Candle> {
        let candles = &self.periods[period.index()];
        let selected: Vec<Candle> = candles
            .iter()
            .filter(|c| c.start_s >= from_s && c.start_s <= to_s)
            .copied()
            .collect();
        let skip = selected.len().saturating_sub(limit);
        selected.into_iter().skip(skip).collect()
    }

    /// The 24 h statistics at `now_s`, from the one-minute candles.
    pub fn ticker(&self, now_s: u64) -> TickerStats {
        let since_s = now_s.saturating_sub(TICKER_WINDOW_S);
        let mut stats = TickerStats {
            last: self.last,
            ..TickerStats::default()
        };
        for candle in self.periods[0].iter().filter(|c| c.start_s >= since_s) {
            if stats.open.0 == 0 {
                stats.open = candle.open;
                stats.low = candle.low;
            }
            stats.high = stats.high.max(candle.high);
            stats.low = stats.low.min(candle.low);
            stats.volume.0 = stats.volume.0.saturating_add(candle.volume.0);
            stats.notional_tick_lots = stats
                .notional_tick_lots
                .saturating_add(candle.notional_tick_lots);
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_both_ways() {
        assert_eq!(Period::from_minutes(60).map(Period::name), Some("1h"));
        assert_eq!(Period::from_name("1w").map(Period::minutes), Some(10_080));
        assert!(Period::from_minutes(2).is_none());
        assert!(Period::from_name("2m").is_none());
        assert_eq!(Period::all().count(), PERIODS_MIN.len());
    }

    #[test]
    fn trades_fold_into_aligned_candles() {
        let mut k = Klines::default();
        k.trade(120, Price(10), Qty(1));
        k.trade(150, Price(12), Qty(2));
        k.trade(179, Price(9), Qty(1));
        k.trade(180, Price(11), Qty(1));
        let one = Period::from_minutes(1).unwrap();
        let candles = k.range(one, 0, u64::MAX, 10);
        assert_eq!(candles.len(), 2);
        assert_eq!(
            (candles[0].start_s, candles[0].open, candles[0].high),
            (120, Price(10), Price(12))
        );
        assert_eq!(
            (candles[0].low, candles[0].close, candles[0].volume),
            (Price(9), Price(9), Qty(4))
        );
        assert_eq!(candles[1].start_s, 180);
        let five = Period::from_minutes(5).unwrap();
        assert_eq!(k.current(five).map(|c| c.volume), Some(Qty(5)));
        assert_eq!(k.range(one, 0, u64::MAX, 1)[0].start_s, 180);
        let t = k.ticker(200);
        assert_eq!(
            (t.open, t.high, t.low, t.last),
            (Price(10), Price(12), Price(9), Price(11))
        );
        assert_eq!(t.notional_tick_lots, 10 + 24 + 9 + 11);
        // Outside the window only the last price remains.
        let later = k.ticker(200 + TICKER_WINDOW_S);
        assert_eq!((later.volume, later.last), (Qty(0), Price(11)));
    }

    #[test]
    fn candles_are_bounded() {
        let mut k = Klines::default();
        for minute in 0..(CANDLES_MAX as u64 + 10) {
            k.trade(minute * 60, Price(1), Qty(1));
        }
        let one = Period::from_minutes(1).unwrap();
        let all = k.range(one, 0, u64::MAX, usize::MAX);
        assert_eq!(all.len(), CANDLES_MAX);
        assert_eq!(all[0].start_s, 10 * 60);
    }
}
