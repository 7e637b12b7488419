//! One market's aggregated order book as the released event stream describes it, with a
//! sequence number that advances by exactly one per level change: a client that applies
//! increments in order and sees a jump knows it lost one and must take a fresh snapshot.
//!
//! The core keeps the one book per market ([`Book::change`], fed by [`crate::Views`]); an edge
//! that serves snapshots from its own task keeps a mirror of it ([`Book::mirror`] then
//! [`Book::follow`]), which holds the same levels at the same sequence and refuses a gap.

use std::collections::BTreeMap;

use peregrine_hotpath::{Price, Qty, Side};

/// One level's new total after a change (`qty` 0 removes the level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LevelChange {
    /// Side of the book.
    pub side: Side,
    /// Price level.
    pub price: Price,
    /// Total quantity at the level now.
    pub qty: Qty,
    /// The book's sequence after this change.
    pub sequence: u64,
}

/// A mirrored change that was not the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceGap {
    /// The sequence the mirror expected.
    pub expected: u64,
    /// The sequence it got.
    pub found: u64,
}

/// Levels of both sides, best first, at one sequence.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct BookSnapshot {
    /// The sequence of the last change included.
    pub sequence: u64,
    /// Bids, highest price first.
    pub bids: Vec<(Price, Qty)>,
    /// Asks, lowest price first.
    pub asks: Vec<(Price, Qty)>,
}

/// Aggregated levels and the change sequence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Book {
    bids: BTreeMap<Price, Qty>,
    asks: BTreeMap<Price, Qty>,
    sequence: u64,
    /// Removals of more than a level held: the derivation and the engine disagree, and the
    /// owner should resynchronise. Never expected; counted rather than panicking on a feed.
    inconsistencies: u64,
}

impl Book {
    /// Replaces the levels (a seed or a resync). The sequence still advances, so a client never
    /// sees a sequence it has seen with other contents.
    pub fn reseed(&mut self, bids: &[(Price, Qty)], asks: &[(Price, Qty)]) {
        self.bids = bids.iter().filter(|(_, q)| q.0 > 0).copied().collect();
        self.asks = asks.iter().filter(|(_, q)| q.0 > 0).copied().collect();
        self.sequence += 1;
    }

    /// Continues a numbering someone else saw: after a seed equal to the levels they hold,
    /// the next change is `sequence + 1` (a fan-out resuming a published stream).
    pub fn continue_at(&mut self, sequence: u64) {
        self.sequence = sequence;
    }

    /// Becomes a mirror of the book `snapshot` was taken of: its levels at its sequence.
    /// `snapshot` must be complete (taken without limits).
    pub fn mirror(&mut self, snapshot: &BookSnapshot) {
        self.bids = snapshot
            .bids
            .iter()
            .filter(|(_, q)| q.0 > 0)
            .copied()
            .collect();
        self.asks = snapshot
            .asks
            .iter()
            .filter(|(_, q)| q.0 > 0)
            .copied()
            .collect();
        self.sequence = snapshot.sequence;
    }

    /// Applies a change of the book this mirrors. A change that is not the next one (a lost or
    /// repeated change) is refused and changes nothing: the owner re-mirrors from a snapshot.
    pub fn follow(&mut self, change: LevelChange) -> Result<(), SequenceGap> {
        if change.sequence != self.sequence.wrapping_add(1) {
            return Err(SequenceGap {
                expected: self.sequence.wrapping_add(1),
                found: change.sequence,
            });
        }
        let levels = match change.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        if change.qty.0 == 0 {
            levels.remove(&change.price);
        } else {
            levels.insert(change.price, change.qty);
        }
        self.sequence = change.sequence;
        Ok(())
    }

    /// Adds `add` and removes `remove` at one level; returns the level's new total.
    pub fn change(&mut self, side: Side, price: Price, add: Qty, remove: Qty) -> LevelChange {
        let levels = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let held = levels.get(&price).copied().unwrap_or(Qty(0));
        let grown = held.0.saturating_add(add.0);
        if remove.0 > grown {
            self.inconsistencies += 1;
        }
        let qty = Qty(grown.saturating_sub(remove.0));
        if qty.0 == 0 {
            levels.remove(&price);
        } else {
            levels.insert(price, qty);
        }
        self.sequence += 1;
        LevelChange {
            side,
            price,
            qty,
            sequence: self.sequence,
        }
    }

    /// The sequence of the last change.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Removals that found less than they removed (see the field).
    pub fn inconsistencies(&self) -> u64 {
        self.inconsistencies
    }

    /// Whether the best bid is below the best ask (or a side is empty): true at rest.
    pub fn uncrossed(&self) -> bool {
        match (self.bids.keys().next_back(), self.asks.keys().next()) {
            (Some(bid), Some(ask)) => bid < ask,
            _ => true,
        }
    }

    /// Up to `bids_limit` bids and `asks_limit` asks, best first.
    pub fn snapshot(&self, bids_limit: usize, asks_limit: usize) -> BookSnapshot {
        BookSnapshot {
            sequence: self.sequence,
            bids: self
                .bids
                .iter()
                .rev()
                .take(bids_limit)
                .map(|(p, q)| (*p, *q))
                .collect(),
            asks: self
                .asks
                .iter()
                .take(asks_limit)
                .map(|(p, q)| (*p, *q))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_advance_the_sequence_by_one_and_remove_empty_levels() {
        let mut book = Book::default();
        book.reseed(&[(Price(10), Qty(5))], &[(Price(12), Qty(1))]);
        assert_eq!(book.sequence(), 1);
        let change = book.change(Side::Buy, Price(10), Qty(2), Qty(0));
        assert_eq!((change.qty, change.sequence), (Qty(7), 2));
        let change = book.change(Side::Buy, Price(10), Qty(0), Qty(7));
        assert_eq!((change.qty, change.sequence), (Qty(0), 3));
        assert!(book.snapshot(10, 10).bids.is_empty());
        assert_eq!(book.inconsistencies(), 0);
        book.change(Side::Sell, Price(11), Qty(0), Qty(3));
        assert_eq!(book.inconsistencies(), 1);
        assert!(book.uncrossed());
        book.change(Side::Buy, Price(13), Qty(1), Qty(0));
        assert!(!book.uncrossed());
    }

    #[test]
    fn a_mirror_holds_the_same_levels_and_refuses_a_gap() {
        let mut book = Book::default();
        book.reseed(&[(Price(10), Qty(5))], &[]);
        let mut mirror = Book::default();
        mirror.mirror(&book.snapshot(usize::MAX, usize::MAX));
        let first = book.change(Side::Buy, Price(10), Qty(0), Qty(2));
        let second = book.change(Side::Sell, Price(12), Qty(4), Qty(0));
        assert_eq!(
            mirror.follow(second),
            Err(SequenceGap {
                expected: 2,
                found: 3
            })
        );
        assert_eq!(mirror.sequence(), 1, "a refused change changes nothing");
        mirror.follow(first).unwrap();
        mirror.follow(second).unwrap();
        assert_eq!(mirror, book);
        assert!(
            mirror.follow(second).is_err(),
            "a repeated change is refused"
        );
    }

    #[test]
    fn snapshot_is_best_first_and_limited() {
        let mut book = Book::default();
        book.reseed(
            &[(Price(8), Qty(1)), (Price(9), Qty(2)), (Price(7), Qty(3))],
            &[(Price(12), Qty(1)), (Price(11), Qty(2))],
        );
        let snap = book.snapshot(2, 5);
        assert_eq!(snap.bids, vec![(Price(9), Qty(2)), (Price(8), Qty(1))]);
        assert_eq!(snap.asks, vec![(Price(11), Qty(2)), (Price(12), Qty(1))]);
    }
}
