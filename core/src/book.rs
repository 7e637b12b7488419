//! A market's aggregated book as the router tracks it from events, for market data.

use std::collections::BTreeMap;

use peregrine_hotpath::{MarketId, Price, Qty, Side};

use crate::notice::{MarketNotice, MarketSeq};

/// Levels of one market by side, and its market-data sequence.
#[derive(Debug, Default)]
pub(crate) struct MarketBook {
    pub(crate) seq: MarketSeq,
    bids: BTreeMap<Price, Qty>,
    asks: BTreeMap<Price, Qty>,
}

impl MarketBook {
    pub(crate) fn seeded(bids: Vec<(Price, Qty)>, asks: Vec<(Price, Qty)>) -> Self {
        MarketBook {
            seq: MarketSeq(0),
            bids: bids.into_iter().collect(),
            asks: asks.into_iter().collect(),
        }
    }

    /// Adds `add` and removes `remove` at a level (saturating); returns the level's new total.
    pub(crate) fn change(&mut self, side: Side, price: Price, add: Qty, remove: Qty) -> Qty {
        let levels = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = levels.entry(price).or_default();
        level.0 = level.0.saturating_add(add.0).saturating_sub(remove.0);
        let total = *level;
        if total.0 == 0 {
            levels.remove(&price);
        }
        self.seq.0 += 1;
        total
    }

    /// The book as notices: a snapshot header, then every level, best first on both sides.
    pub(crate) fn snapshot(&self, market: MarketId) -> Vec<MarketNotice> {
        let mut notices = Vec::with_capacity(1 + self.bids.len() + self.asks.len());
        notices.push(MarketNotice::Snapshot {
            market,
            market_seq: self.seq,
            bids: u32::try_from(self.bids.len()).unwrap_or(u32::MAX),
            asks: u32::try_from(self.asks.len()).unwrap_or(u32::MAX),
        });
        let level = |side, (price, qty): (&Price, &Qty)| MarketNotice::BookLevel {
            market,
            market_seq: self.seq,
            side,
            price: *price,
            qty: *qty,
            snapshot: true,
        };
        notices.extend(self.bids.iter().rev().map(|l| level(Side::Buy, l)));
        notices.extend(self.asks.iter().map(|l| level(Side::Sell, l)));
        debug_assert_eq!(notices.len(), 1 + self.bids.len() + self.asks.len());
        notices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_book_levels_add_remove_and_sequence() {
        let mut book = MarketBook::seeded(vec![(Price(10), Qty(5))], vec![]);
        assert_eq!(book.change(Side::Buy, Price(10), Qty(2), Qty(0)), Qty(7));
        assert_eq!(book.change(Side::Buy, Price(10), Qty(0), Qty(7)), Qty(0));
        assert!(book.bids.is_empty());
        // Removing more than is there saturates instead of wrapping.
        assert_eq!(book.change(Side::Sell, Price(11), Qty(0), Qty(3)), Qty(0));
        assert_eq!(book.seq, MarketSeq(3));
    }

    #[test]
    fn snapshot_lists_best_levels_first() {
        let book = MarketBook::seeded(
            vec![(Price(9), Qty(1)), (Price(10), Qty(2))],
            vec![(Price(12), Qty(3)), (Price(11), Qty(4))],
        );
        let prices: Vec<_> = book
            .snapshot(MarketId(1))
            .into_iter()
            .filter_map(|notice| match notice {
                MarketNotice::BookLevel { price, .. } => Some(price.0),
                _ => None,
            })
            .collect();
        assert_eq!(prices, vec![10, 9, 11, 12]);
    }
}
