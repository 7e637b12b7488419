//! One side of an order book: a direct-indexed window of price levels at and behind the touch
//! (`WINDOW_TICKS` levels addressed by price, no search), over price levels in a vector sorted
//! so that the best price is at the end for prices outside the window (see `BookSide`). Each
//! level is a FIFO of orders linked through their slots.
//!
//! In the sorted fallback, a level that empties anywhere but at the best end is left in place,
//! empty (a tombstone), instead of being removed: removing it shifted every better level down
//! by one, which on a book with deep stale levels (a flash crash) was a third of all
//! instructions (`memmove`, measured). Tombstones are reused when their price comes back,
//! dropped when they surface at the best end, and compacted away in one pass when the vector
//! reaches its capacity. The fallback's best level (the last) is never empty.

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

/// The sorted levels of one side: the fallback for prices outside the window.
#[derive(Clone, Debug)]
struct SortedLevels {
    side: Side,
    /// Bids ascending, asks descending: the best level is last, and never empty; other levels
    /// may be empty (tombstones).
    levels: Vec<Level>,
    /// Non-empty levels: what the capacity limits.
    live: usize,
    capacity: usize,
}

impl SortedLevels {
    fn new(side: Side, capacity: u32) -> SortedLevels {
        SortedLevels {
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

    /// Whether a non-empty level at `price` exists.
    #[inline(never)]
    fn has_live_level(&self, price: Price) -> bool {
        matches!(self.search(price), Ok(i) if self.levels[i].head != NIL)
    }

    #[inline]
    pub fn best(&self) -> Option<&Level> {
        self.levels.last()
    }

    /// Non-empty levels from best to worst.
    pub fn iter_best_first(&self) -> impl Iterator<Item = &Level> {
        self.levels.iter().rev().filter(|l| l.head != NIL)
    }

    /// Removes the best level (non-empty), and the tombstones behind it, to hand it to the
    /// window; its orders stay linked.
    fn pop_best_level(&mut self) -> Option<Level> {
        let level = self.levels.pop()?;
        debug_assert_ne!(level.head, NIL, "the best level is never empty");
        self.live -= 1;
        while self.levels.last().is_some_and(|l| l.head == NIL) {
            self.levels.pop();
        }
        Some(level)
    }

    /// Appends a non-empty level better than every level here (one the window let go).
    fn push_best_level(&mut self, level: Level) {
        debug_assert_ne!(level.head, NIL);
        debug_assert!(self.levels.last().is_none_or(|best| match self.side {
            Side::Buy => best.price < level.price,
            Side::Sell => best.price > level.price,
        }));
        if self.levels.len() == self.capacity {
            self.compact();
        }
        assert!(self.levels.len() < self.capacity, "book side full");
        self.levels.push(level);
        self.live += 1;
    }

    /// Drops every tombstone, in one pass (when the vector is full of them).
    fn compact(&mut self) {
        self.levels.retain(|l| l.head != NIL);
        debug_assert_eq!(self.levels.len(), self.live);
    }

    /// Appends the order in `slot` at the tail of its price level, creating the level.
    /// The caller checked `has_room_for`.
    #[inline(never)]
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
        link_tail(level, orders, slot, qty);
        // Below the capacity, a u32 by construction.
        orders.get_mut(slot).level_hint = index as u32;
    }

    /// Unlinks the order in `slot` from its level (removing the level if it empties).
    #[inline(never)]
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
        unlink_from(level, orders, prev, next, qty);
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

    /// `BookSide::fill_best_head` for the fallback's best level.
    fn fill_best_head(&mut self, orders: &mut Orders, qty: u64, filled: bool) {
        let Some(level) = self.levels.last_mut() else {
            unreachable!("a trade's level is missing");
        };
        level.total -= qty;
        if !filled || !pop_head(level, orders) {
            return;
        }
        self.live -= 1;
        // The best level emptied: drop it and the tombstones behind it (bounded by the levels).
        self.levels.pop();
        while self.levels.last().is_some_and(|l| l.head == NIL) {
            self.levels.pop();
        }
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

/// Ticks the direct-indexed window covers (a power of two, whole bitmap words). 8 192 measured
/// the same on the realistic flow and 0.7 % fewer instructions on the flash crash for twice the
/// memory (perf/RESULTS.md, session 9): not worth it.
const WINDOW_TICKS: u64 = 4096;
/// Ticks a re-centred window keeps on the better side of the price that moved it, so a touch
/// that keeps improving does not move it at every tick.
const WINDOW_MARGIN_TICKS: u64 = 256;
const WINDOW_WORDS: usize = (WINDOW_TICKS / 64) as usize;
const _: () = assert!(WINDOW_TICKS.is_power_of_two() && WINDOW_TICKS.is_multiple_of(64));
const _: () = assert!(WINDOW_MARGIN_TICKS < WINDOW_TICKS);

/// One side of a book: a direct-indexed window of price levels at and behind the touch, over
/// the sorted levels as the fallback for prices outside it.
///
/// Prices are handled as ranks, larger is better (a bid's price, a complemented ask price), so
/// both sides share one code path. The window covers the ranks `[window_lo, window_lo +
/// WINDOW_TICKS)`, each at slot `rank % WINDOW_TICKS` (a ring: moving the window moves no
/// level that stays in it), with a bitmap of its non-empty slots.
///
/// Invariant: every level of the fallback is worse than every rank the window covers, so the
/// best level is the window's best while the window has one, and the best levels of the
/// fallback are the ones next to the window. The window moves better when an order rests
/// better than it (the levels it leaves behind are appended at the fallback's best end), and
/// moves to the fallback's best end when it is empty (taking the levels it now covers from
/// there), so neither move searches or shifts the fallback.
#[derive(Clone, Debug)]
pub(crate) struct BookSide {
    /// `rank(price) = price ^ rank_mask`: 0 for bids, all ones for asks (branch-free).
    rank_mask: u64,
    /// `WINDOW_TICKS` slots; an empty slot has `head == NIL`.
    window: Box<[Level; WINDOW_TICKS as usize]>,
    /// Bit `slot % 64` of word `slot / 64`: the slot's level is non-empty.
    window_bits: [u64; WINDOW_WORDS],
    window_lo: u64,
    /// Rank of the window's best level, meaningful while `window_live > 0`.
    window_best: u64,
    window_live: usize,
    fallback: SortedLevels,
    capacity: usize,
}

impl BookSide {
    pub fn new(side: Side, capacity: u32) -> BookSide {
        let empty = Level {
            price: Price(0),
            total: 0,
            head: NIL,
            tail: NIL,
        };
        let mut book = BookSide {
            rank_mask: match side {
                Side::Buy => 0,
                Side::Sell => u64::MAX,
            },
            // A fixed-size array, so the compiler drops the bounds check of `rank % WINDOW_TICKS`.
            window: vec![empty; WINDOW_TICKS as usize]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("the vector has the window's length")),
            window_bits: [0; WINDOW_WORDS],
            window_lo: 0,
            window_best: 0,
            window_live: 0,
            fallback: SortedLevels::new(side, capacity),
            capacity: capacity as usize,
        };
        // Empty, so any position will do; the first order moves it.
        book.window_lo = book.rank(Price(1)).saturating_sub(WINDOW_TICKS - 1);
        book
    }

    /// A price's rank: larger is better on both sides (complementing is its own inverse).
    #[inline(always)]
    fn rank(&self, price: Price) -> u64 {
        price.0 ^ self.rank_mask
    }

    /// The window slot of `rank`, when the window covers it.
    #[inline(always)]
    fn window_slot(&self, rank: u64) -> Option<usize> {
        if rank.wrapping_sub(self.window_lo) < WINDOW_TICKS {
            Some((rank % WINDOW_TICKS) as usize)
        } else {
            None
        }
    }

    #[inline(always)]
    fn live(&self) -> usize {
        self.window_live + self.fallback.live
    }

    /// Whether an order at `price` could be added without exceeding the level capacity.
    // Always inline the capacity check every new order makes (a call cost more than it);
    // the search behind it runs only on a full side.
    #[inline(always)]
    pub fn has_room_for(&self, price: Price) -> bool {
        self.live() < self.capacity || self.has_live_level(price)
    }

    /// Whether a non-empty level at `price` exists.
    #[inline(never)]
    fn has_live_level(&self, price: Price) -> bool {
        match self.window_slot(self.rank(price)) {
            Some(slot) => self.window[slot].head != NIL,
            None => self.fallback.has_live_level(price),
        }
    }

    #[inline]
    pub fn best(&self) -> Option<&Level> {
        if self.window_live > 0 {
            Some(&self.window[(self.window_best % WINDOW_TICKS) as usize])
        } else {
            self.fallback.best()
        }
    }

    /// Non-empty levels from best to worst: the window's, then the fallback's.
    pub fn iter_best_first(&self) -> impl Iterator<Item = &Level> {
        let mut next = (self.window_live > 0).then_some(self.window_best);
        std::iter::from_fn(move || {
            let rank = next?;
            next = rank
                .checked_sub(1)
                .filter(|_| rank > self.window_lo)
                .and_then(|below| self.window_best_at_or_below(below));
            Some(&self.window[(rank % WINDOW_TICKS) as usize])
        })
        .chain(self.fallback.iter_best_first())
    }

    /// The best non-empty window rank at or below `rank` (which the window covers), scanning the
    /// bitmap a word at a time: at most `WINDOW_WORDS + 1` words.
    fn window_best_at_or_below(&self, rank: u64) -> Option<u64> {
        debug_assert!(rank.wrapping_sub(self.window_lo) < WINDOW_TICKS);
        let mut rank = rank;
        // Exclusive: `0..=WINDOW_WORDS` kept `RangeInclusive`'s exhaustion flag, a compare and
        // add-with-carry a step (494.5 -> 492.5 instructions a command, session 11 in
        // perf/RESULTS.md).
        for _ in 0..WINDOW_WORDS + 1 {
            let slot = rank % WINDOW_TICKS;
            // Bits at or below the rank's own in its word.
            let below = u64::MAX >> (63 - slot % 64);
            let word = self.window_bits[(slot / 64) as usize] & below;
            let word_lo = rank - slot % 64;
            if word != 0 {
                let found = word_lo + u64::from(63 - word.leading_zeros());
                return (found >= self.window_lo).then_some(found);
            }
            if word_lo <= self.window_lo {
                return None;
            }
            rank = word_lo - 1;
        }
        None
    }

    /// Appends the order in `slot` at the tail of its price level, creating the level.
    /// The caller checked `has_room_for`.
    #[inline(always)]
    pub fn push(&mut self, orders: &mut Orders, slot: u32) {
        let (price, qty) = {
            let o = orders.get(slot);
            (o.price, o.qty.0)
        };
        debug_assert!(qty > 0);
        let rank = self.rank(price);
        let index = match self.window_slot(rank) {
            Some(index) => index,
            None => match self.move_window_for(rank) {
                Some(index) => index,
                None => return self.fallback.push(orders, slot),
            },
        };
        let level = &mut self.window[index];
        if level.head == NIL {
            *level = Level {
                price,
                total: 0,
                head: NIL,
                tail: NIL,
            };
            self.set_bit(index, true);
            if self.window_live == 0 || rank > self.window_best {
                self.window_best = rank;
            }
            self.window_live += 1;
            assert!(self.live() <= self.capacity, "book side full");
        }
        link_tail(&mut self.window[index], orders, slot, qty);
    }

    /// Moves the window for an order resting at `rank` outside it, when that keeps the
    /// invariant cheaply: better than the window, the window empty, or the rank less than
    /// `WINDOW_TICKS` behind the window's best. Returns the rank's slot, or `None` when the
    /// order belongs in the fallback.
    #[cold]
    fn move_window_for(&mut self, rank: u64) -> Option<usize> {
        let top = self.window_lo.saturating_add(WINDOW_TICKS - 1);
        let anchor = if rank > top {
            rank
        } else if self.window_live == 0 {
            // The fallback's best must stay below the window: cover it too.
            match self.fallback.best() {
                Some(best) => rank.max(self.rank(best.price)),
                None => rank,
            }
        } else {
            // Worse than a non-empty window: slide the window down as far as keeps its best
            // level (no level leaves it), when that covers the rank.
            let lo = self.window_best.saturating_sub(WINDOW_TICKS - 1);
            if rank < lo {
                return None;
            }
            self.move_window(lo);
            return self.window_slot(rank);
        };
        let lo = anchor
            .saturating_add(WINDOW_MARGIN_TICKS)
            .saturating_sub(WINDOW_TICKS - 1);
        self.move_window(lo);
        self.window_slot(rank)
    }

    /// Moves the window to start at rank `lo`: the window levels below `lo` go to the
    /// fallback's best end (they are better than all of it), then the fallback levels the
    /// window now covers come in from that end. Bounded by the window's size and its levels.
    fn move_window(&mut self, lo: u64) {
        if self.window_live > 0 && lo > self.window_lo {
            let end = lo.min(self.window_lo.saturating_add(WINDOW_TICKS));
            for rank in self.window_lo..end {
                let index = (rank % WINDOW_TICKS) as usize;
                if self.window[index].head != NIL {
                    let level = self.window[index];
                    self.window[index].head = NIL;
                    self.window[index].tail = NIL;
                    self.set_bit(index, false);
                    self.window_live -= 1;
                    self.fallback.push_best_level(level);
                }
            }
        }
        self.window_lo = lo;
        while let Some(best) = self.fallback.best()
            && self.window_slot(self.rank(best.price)).is_some()
        {
            let Some(level) = self.fallback.pop_best_level() else {
                unreachable!("the fallback's best level is missing");
            };
            let rank = self.rank(level.price);
            let index = (rank % WINDOW_TICKS) as usize;
            debug_assert_eq!(self.window[index].head, NIL);
            self.window[index] = level;
            self.set_bit(index, true);
            if self.window_live == 0 || rank > self.window_best {
                self.window_best = rank;
            }
            self.window_live += 1;
        }
        if self.window_live > 0 {
            let top = self.window_lo.saturating_add(WINDOW_TICKS - 1);
            self.window_best = self
                .window_best_at_or_below(top)
                .unwrap_or_else(|| unreachable!("a live window level is missing"));
        }
    }

    /// Unlinks the order in `slot` from its level (removing the level if it empties).
    #[inline(always)]
    pub fn unlink(&mut self, orders: &mut Orders, slot: u32) {
        let (price, qty, prev, next) = {
            let o = orders.get(slot);
            (o.price, o.qty.0, o.prev, o.next)
        };
        let rank = self.rank(price);
        let Some(index) = self.window_slot(rank) else {
            return self.fallback.unlink(orders, slot);
        };
        let level = &mut self.window[index];
        // Invariant: a resting order's level is non-empty until its last order leaves it.
        debug_assert!(level.head != NIL && level.price == price);
        unlink_from(level, orders, prev, next, qty);
        if level.head == NIL {
            debug_assert_eq!(level.total, 0);
            self.window_emptied(index, rank);
        }
    }

    /// Bookkeeping for the window level at `index` (rank `rank`) that just emptied.
    #[inline]
    fn window_emptied(&mut self, index: usize, rank: u64) {
        self.set_bit(index, false);
        self.window_live -= 1;
        if self.window_live > 0 && rank == self.window_best {
            self.window_best = self
                .window_best_at_or_below(rank - 1)
                .unwrap_or_else(|| unreachable!("a live window level is missing"));
        }
    }

    /// Takes `qty` lots, which a trade just took from the oldest order of the best level, off
    /// that level's total and, when the trade `filled` the order, unlinks it (the match loop's
    /// unlink: no search, no neighbour on the left), dropping the level if it empties. One
    /// window-or-fallback dispatch a trade, where a level edit and an unlink made two
    /// (measured, session 11 in perf/RESULTS.md).
    // Always: out of line, the unlink was a call with its register saves on every trade that
    // fills a maker (485.9 -> 483.9 instructions a command, session 11).
    #[inline(always)]
    pub fn fill_best_head(&mut self, orders: &mut Orders, qty: u64, filled: bool) {
        if self.window_live == 0 {
            return self.fallback.fill_best_head(orders, qty, filled);
        }
        let rank = self.window_best;
        let index = (rank % WINDOW_TICKS) as usize;
        let level = &mut self.window[index];
        level.total -= qty;
        if filled && pop_head(level, orders) {
            self.window_emptied(index, rank);
        }
    }

    /// Lowers the level total after the order at `price` (level hint `hint`) shrank by `qty`
    /// lots in place.
    pub fn reduce(&mut self, price: Price, hint: u32, qty: u64) {
        let Some(index) = self.window_slot(self.rank(price)) else {
            return self.fallback.reduce(price, hint, qty);
        };
        let level = &mut self.window[index];
        debug_assert!(level.head != NIL && level.price == price);
        assert!(level.total >= qty);
        level.total -= qty;
    }

    fn set_bit(&mut self, slot: usize, live: bool) {
        let bit = 1u64 << (slot % 64);
        if live {
            self.window_bits[slot / 64] |= bit;
        } else {
            self.window_bits[slot / 64] &= !bit;
        }
    }
}

#[cfg(test)]
impl BookSide {
    /// Checks the window's invariants (see the type's doc); panics with what is broken.
    fn check(&self, orders: &Orders) {
        let top = self.window_lo.saturating_add(WINDOW_TICKS - 1);
        let mut live = 0;
        let mut best = None;
        for rank in self.window_lo..=top {
            let slot = (rank % WINDOW_TICKS) as usize;
            let level = &self.window[slot];
            let bit = self.window_bits[slot / 64] >> (slot % 64) & 1 == 1;
            assert_eq!(bit, level.head != NIL, "bitmap disagrees at rank {rank}");
            if level.head != NIL {
                assert_eq!(
                    self.rank(level.price),
                    rank,
                    "window level in the wrong slot"
                );
                let mut total = 0;
                let mut s = level.head;
                while s != NIL {
                    total += orders.get(s).qty.0;
                    s = orders.get(s).next;
                }
                assert_eq!(total, level.total, "level total");
                live += 1;
                best = Some(rank);
            }
        }
        assert_eq!(live, self.window_live, "window live count");
        if let Some(best) = best {
            assert_eq!(best, self.window_best, "window best");
        }
        for level in self.fallback.iter_best_first() {
            assert!(
                self.rank(level.price) < self.window_lo,
                "fallback level {:?} not below the window",
                level.price
            );
        }
    }
}

/// Appends the order in `slot` (`qty` lots) at the tail of `level`.
#[inline(always)]
fn link_tail(level: &mut Level, orders: &mut Orders, slot: u32, qty: u64) {
    let tail = level.tail;
    {
        let o = orders.get_mut(slot);
        o.prev = tail;
        o.next = NIL;
    }
    if tail == NIL {
        level.head = slot;
    } else {
        orders.get_mut(tail).next = slot;
    }
    level.tail = slot;
    level.total += qty;
}

/// Takes the order between `prev` and `next` (`qty` lots) out of `level`.
#[inline(always)]
fn unlink_from(level: &mut Level, orders: &mut Orders, prev: u32, next: u32, qty: u64) {
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
}

/// Unlinks the oldest order of a non-empty `level` (a trade already took its quantity off the
/// total); returns whether the level is now empty.
#[inline(always)]
fn pop_head(level: &mut Level, orders: &mut Orders) -> bool {
    let slot = level.head;
    debug_assert_ne!(slot, NIL, "the best level is never empty");
    debug_assert_eq!(orders.get(slot).prev, NIL);
    let next = orders.get(slot).next;
    level.head = next;
    if next != NIL {
        orders.get_mut(next).prev = NIL;
        return false;
    }
    debug_assert_eq!(level.total, 0);
    level.tail = NIL;
    true
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ids::{AccountId, ClientOrderId, Qty};
    use crate::orders::{Order, VACANT};
    use crate::sim::Rng;

    /// Random rests, cancels and fills on both sides, with prices that jump further than the
    /// window is wide (so the window moves both ways and levels cross to and from the
    /// fallback), against a model of (price -> total) per side; the invariants are checked
    /// after every step.
    #[test]
    fn window_and_fallback_agree_with_a_model_while_the_window_moves() {
        for side in [Side::Buy, Side::Sell] {
            let mut rng = Rng::new(11);
            let capacity = 512;
            let mut orders = Orders::new(capacity, 1);
            let mut book = BookSide::new(side, capacity);
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            let mut live: Vec<u32> = Vec::new();
            let mut centre = 100_000;
            let mut seq = 1;
            for step in 0..20_000u64 {
                if step % 500 == 0 {
                    // A jump of up to three window widths either way.
                    let jump = rng.below(3 * WINDOW_TICKS);
                    centre = if rng.percent(50) {
                        centre + jump
                    } else {
                        centre.saturating_sub(jump).max(4 * WINDOW_TICKS)
                    };
                }
                let roll = rng.below(10);
                if roll < 6 && (live.len() as u32) < capacity / 2 {
                    let price = centre - WINDOW_TICKS + rng.below(2 * WINDOW_TICKS);
                    let qty = 1 + rng.below(5);
                    let order = Order {
                        id: orders.next_id(seq),
                        account: AccountId(0),
                        client_order_id: ClientOrderId(seq),
                        side,
                        price: Price(price),
                        qty: Qty(qty),
                        ..VACANT
                    };
                    seq += 1;
                    if !book.has_room_for(Price(price)) {
                        continue;
                    }
                    let slot = orders.insert(order);
                    book.push(&mut orders, slot);
                    *model.entry(price).or_default() += qty;
                    live.push(slot);
                } else if roll < 9 && !live.is_empty() {
                    let i = rng.below(live.len() as u64) as usize;
                    let slot = live.swap_remove(i);
                    let (price, qty) = (orders.get(slot).price.0, orders.get(slot).qty.0);
                    book.unlink(&mut orders, slot);
                    orders.remove(slot);
                    remove_from_model(&mut model, price, qty);
                } else if let Some(best) = book.best().copied() {
                    // A fill of the best level's oldest order.
                    let slot = best.head;
                    let qty = orders.get(slot).qty.0;
                    book.fill_best_head(&mut orders, qty, true);
                    assert_ne!(book.best().map(|level| level.head), Some(slot));
                    orders.remove(slot);
                    live.retain(|&s| s != slot);
                    remove_from_model(&mut model, best.price.0, qty);
                }
                book.check(&orders);
                let got: Vec<(u64, u64)> = book
                    .iter_best_first()
                    .map(|l| (l.price.0, l.total))
                    .collect();
                let want: Vec<(u64, u64)> = match side {
                    Side::Buy => model.iter().rev().map(|(&p, &q)| (p, q)).collect(),
                    Side::Sell => model.iter().map(|(&p, &q)| (p, q)).collect(),
                };
                assert_eq!(got, want, "{side:?} levels at step {step}");
            }
        }
    }

    fn remove_from_model(model: &mut BTreeMap<u64, u64>, price: u64, qty: u64) {
        let total = model.get_mut(&price).expect("modelled level");
        *total -= qty;
        if *total == 0 {
            model.remove(&price);
        }
    }
}
