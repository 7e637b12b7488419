//! One side of an order book: price levels in a vector sorted so that the best price is at the
//! end (new levels mostly appear near the touch, so inserts move few elements), each level a FIFO
//! of orders linked through their slots.
//!
//! A level that empties anywhere but at the best end is left in place, empty (a tombstone),
//! instead of being removed: removing it shifted every better level down by one, which on a
//! book with deep stale levels (a flash crash) was a third of all instructions (`memmove`,
//! measured). Tombstones are reused when their price comes back, dropped when they surface at
//! the best end, and compacted away in one pass when the vector reaches its capacity. The best
//! level (the last) is never empty.

use crate::ids::{Price, Side};
use crate::orders::{NIL, Orders};

/// One price level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Level {
    pub price: Price,
    /// Sum of the open quantity (lots) of its orders.
    pub total: u64,
    /// Oldest order (matched first).
    pub head: u32,
    /// Newest order.
    pub tail: u32,
}

/// One side of a book.
#[derive(Clone, Debug)]
pub(crate) struct BookSide {
    side: Side,
    /// Bids ascending, asks descending: the best level is last, and never empty; other levels
    /// may be empty (tombstones).
    levels: Vec<Level>,
    /// Non-empty levels: what the capacity limits.
    live: usize,
    capacity: usize,
}

impl BookSide {
    pub fn new(side: Side, capacity: u32) -> BookSide {
        BookSide {
            side,
            levels: Vec::with_capacity(capacity as usize),
            live: 0,
            capacity: capacity as usize,
        }
    }

    /// Position of `price`, or where it would be inserted.
    #[inline]
    fn search(&self, price: Price) -> Result<usize, usize> {
        // Fast path: fills, cancels and new orders mostly concern the best level, which is last.
        // Prices are unique per side, so this is the index the binary search would find.
        if let Some(best) = self.levels.last()
            && best.price == price
        {
            return Ok(self.levels.len() - 1);
        }
        // Then a guess: levels near the touch are usually one per tick (quotes, and tombstones
        // where quotes were), so the level `d` ticks behind the best is usually `d` places
        // before it. Checked by its price, which is unique per side.
        if let Some(index) = self.guess(price)
            && self.levels[index].price == price
        {
            return Ok(index);
        }
        match self.side {
            Side::Buy => self.levels.binary_search_by(|l| l.price.cmp(&price)),
            Side::Sell => self.levels.binary_search_by(|l| price.cmp(&l.price)),
        }
    }

    /// The index `price` would have if every tick from the best level to it had a level.
    #[inline]
    fn guess(&self, price: Price) -> Option<usize> {
        let best = self.levels.last()?.price.0;
        let behind = match self.side {
            Side::Buy => best.checked_sub(price.0)?,
            Side::Sell => price.0.checked_sub(best)?,
        };
        (self.levels.len() - 1).checked_sub(usize::try_from(behind).ok()?)
    }

    /// `search` for the level of a resting order, trying first where it was when the order
    /// rested (`Order::level_hint`): prices are unique per side, so a level at the hinted index
    /// with the order's price is its level.
    #[inline]
    fn search_hinted(&self, price: Price, hint: u32) -> Result<usize, usize> {
        match self.levels.get(hint as usize) {
            Some(level) if level.price == price => Ok(hint as usize),
            _ => self.search(price),
        }
    }

    /// Whether an order at `price` could be added without exceeding the level capacity.
    // Always inline the capacity check every new order makes (a call cost more than it);
    // the search behind it runs only on a full side.
    #[inline(always)]
    pub fn has_room_for(&self, price: Price) -> bool {
        self.live < self.capacity || self.has_live_level(price)
    }

    /// Whether a non-empty level at `price` exists.
    #[inline(never)]
    fn has_live_level(&self, price: Price) -> bool {
        matches!(self.search(price), Ok(i) if self.levels[i].head != NIL)
    }

    #[inline]
    pub fn best(&self) -> Option<&Level> {
        self.levels.last()
    }

    #[inline]
    pub fn best_mut(&mut self) -> Option<&mut Level> {
        self.levels.last_mut()
    }

    /// Non-empty levels from best to worst.
    pub fn iter_best_first(&self) -> impl Iterator<Item = &Level> {
        self.levels.iter().rev().filter(|l| l.head != NIL)
    }

    /// Drops every tombstone, in one pass (when the vector is full of them).
    fn compact(&mut self) {
        self.levels.retain(|l| l.head != NIL);
        debug_assert_eq!(self.levels.len(), self.live);
    }

    /// Appends the order in `slot` at the tail of its price level, creating the level.
    /// The caller checked `has_room_for`.
    pub fn push(&mut self, orders: &mut Orders, slot: u32) {
        let (price, qty) = {
            let o = orders.get(slot);
            (o.price, o.qty.0)
        };
        debug_assert!(qty > 0);
        let mut found = self.search(price);
        if found.is_err() && self.levels.len() == self.capacity {
            // Full of levels, some of them tombstones (the caller checked `has_room_for`).
            self.compact();
            found = self.search(price);
        }
        let index = match found {
            Ok(i) => i,
            // A tombstone next to the new price takes it: the order stays sorted (the price is
            // between the tombstone's neighbours) and nothing moves.
            Err(i) if i > 0 && self.levels[i - 1].head == NIL => {
                self.levels[i - 1].price = price;
                i - 1
            }
            Err(i) if i < self.levels.len() && self.levels[i].head == NIL => {
                self.levels[i].price = price;
                i
            }
            Err(i) => {
                assert!(self.levels.len() < self.capacity, "book side full");
                self.levels.insert(
                    i,
                    Level {
                        price,
                        total: 0,
                        head: NIL,
                        tail: NIL,
                    },
                );
                i
            }
        };
        let level = level_mut(&mut self.levels, index);
        if level.head == NIL {
            self.live += 1;
            assert!(self.live <= self.capacity, "book side full");
        }
        let tail = level.tail;
        {
            let o = orders.get_mut(slot);
            o.prev = tail;
            o.next = NIL;
            // Below the capacity, a u32 by construction.
            o.level_hint = index as u32;
        }
        if tail == NIL {
            level.head = slot;
        } else {
            orders.get_mut(tail).next = slot;
        }
        level.tail = slot;
        level.total += qty;
    }

    /// Unlinks the order in `slot` from its level (removing the level if it empties).
    pub fn unlink(&mut self, orders: &mut Orders, slot: u32) {
        let (price, qty, prev, next, hint) = {
            let o = orders.get(slot);
            (o.price, o.qty.0, o.prev, o.next, o.level_hint)
        };
        // Invariant: a resting order's price level exists until its last order leaves it (only
        // `unlink` removes levels); the engine never passes a non-resting order here.
        let Ok(index) = self.search_hinted(price, hint) else {
            unreachable!("resting order's level is missing");
        };
        let level = level_mut(&mut self.levels, index);
        if prev == NIL {
            level.head = next;
        } else {
            orders.get_mut(prev).next = next;
        }
        if next == NIL {
            level.tail = prev;
        } else {
            orders.get_mut(next).prev = prev;
        }
        assert!(level.total >= qty);
        level.total -= qty;
        if level.head == NIL {
            debug_assert_eq!(level.total, 0);
            self.live -= 1;
            if index + 1 == self.levels.len() {
                // The best level emptied: drop it and the tombstones behind it, so the best is
                // never empty. Bounded by the levels.
                self.levels.pop();
                while self.levels.last().is_some_and(|l| l.head == NIL) {
                    self.levels.pop();
                }
            }
        }
    }

    /// Unlinks the oldest order of the best level, which a trade just filled completely (its
    /// quantity already taken off the level's total), dropping the level if it empties; returns
    /// its slot. The match loop's unlink: no search, no neighbour on the left.
    pub fn pop_best_head(&mut self, orders: &mut Orders) -> u32 {
        let Some(level) = self.levels.last_mut() else {
            unreachable!("a trade's level is missing");
        };
        let slot = level.head;
        debug_assert_ne!(slot, NIL, "the best level is never empty");
        debug_assert_eq!(orders.get(slot).prev, NIL);
        let next = orders.get(slot).next;
        level.head = next;
        if next != NIL {
            orders.get_mut(next).prev = NIL;
            return slot;
        }
        debug_assert_eq!(level.total, 0);
        level.tail = NIL;
        self.live -= 1;
        // The best level emptied: drop it and the tombstones behind it (bounded by the levels).
        self.levels.pop();
        while self.levels.last().is_some_and(|l| l.head == NIL) {
            self.levels.pop();
        }
        slot
    }

    /// Lowers the level total after the order at `price` (level hint `hint`) shrank by `qty`
    /// lots in place.
    pub fn reduce(&mut self, price: Price, hint: u32, qty: u64) {
        // Invariant: a resting order's price level exists until its last order leaves it (only
        // `unlink` removes levels); the engine never passes a non-resting order here.
        let Ok(index) = self.search_hinted(price, hint) else {
            unreachable!("resting order's level is missing");
        };
        let level = level_mut(&mut self.levels, index);
        assert!(level.total >= qty);
        level.total -= qty;
    }
}

/// The level at an index `search` (or the insertion in `push`) just returned, without a bounds
/// check (measured, session 8 round 2 in perf/RESULTS.md): such an index is below
/// `levels.len()` by construction. Checked in debug builds.
#[inline(always)]
fn level_mut(levels: &mut [Level], index: usize) -> &mut Level {
    debug_assert!(index < levels.len(), "level index beyond the side");
    // SAFETY: in bounds by the contract above.
    unsafe { levels.get_unchecked_mut(index) }
}
