//! Live orders: a slab allocated up front, addressed by `u32` slot (indices, not pointers), with
//! O(1) lookup by engine id and by (account, client id), and an intrusive list of each account's
//! orders so that mass cancel does not scan the slab.
//!
//! An order id is `seq << slot_bits | slot`: strictly increasing (the sequence is in the high
//! bits) and decodable to its slot without a hash lookup, which profiling showed to be a cache
//! miss per command. Freed slots get id 0 so a stale id never matches.

use core::num::NonZeroUsize;

use crate::command::{SelfTradePrevention, TimeInForce};
use crate::ids::{AccountId, ClientOrderId, CurrencyId, MarketId, OrderId, Price, Qty, Side};

/// "No slot": end of a list.
pub(crate) const NIL: u32 = u32::MAX;

/// What an order is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) enum OrderState {
    /// Matching as the incoming order; not in the book.
    Taking,
    /// In the book at `price`.
    Resting,
    /// Waiting for its stop trigger.
    PendingStop,
}

/// Which kind of order, after parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) enum Kind {
    Limit,
    /// Market order; `budget` true when sized by quote budget (buy only).
    Market {
        budget: bool,
    },
    StopLimit,
    StopMarket {
        budget: bool,
    },
}

/// One live order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Order {
    pub id: OrderId,
    pub account: AccountId,
    pub market: MarketId,
    pub client_order_id: ClientOrderId,
    /// The currency it spends and locks (the market's quote for a buy, base for a sell), kept
    /// so that ending an order needs no market lookup.
    pub spend: CurrencyId,
    pub side: Side,
    pub kind: Kind,
    pub tif: TimeInForce,
    pub stp: SelfTradePrevention,
    pub state: OrderState,
    /// Limit price (market: protection price, set when it starts taking).
    pub price: Price,
    /// Stop trigger (stops only).
    pub trigger: Price,
    /// Open quantity (unused by budget-sized market buys).
    pub qty: Qty,
    /// Funds still locked for this order, in the currency it spends.
    pub locked: u64,
    /// Neighbours in the price level (or NIL).
    pub prev: u32,
    pub next: u32,
    /// Neighbours in the account's list (or NIL).
    pub acct_prev: u32,
    pub acct_next: u32,
    /// Where its price level was in its book side's vector when it rested: a hint, valid while
    /// the level there still has the order's price (levels only move when one is inserted or
    /// compacted below them), so a cancel finds its level without a binary search. Not state:
    /// snapshots do not keep it, and a stale hint only costs the search.
    pub level_hint: u32,
}

// The slab's footprint, as measured in sessions 6 to 8 (80 bytes before `level_hint`).
const _: () = assert!(core::mem::size_of::<Order>() == 88);

/// Filler for never-used slots below the high-water mark.
pub(crate) const VACANT: Order = Order {
    id: OrderId(0),
    account: AccountId(0),
    market: MarketId(0),
    client_order_id: ClientOrderId(0),
    spend: CurrencyId(0),
    side: Side::Buy,
    kind: Kind::Limit,
    tif: TimeInForce::Gtc,
    stp: SelfTradePrevention::CancelNewest,
    state: OrderState::Taking,
    price: Price(0),
    trigger: Price(0),
    qty: Qty(0),
    locked: 0,
    prev: NIL,
    next: NIL,
    acct_prev: NIL,
    acct_next: NIL,
    level_hint: NIL,
};

/// One entry of the client index: the slab slot of an order and the 32-bit hash of its
/// (account, client id). The hash doubles as a fingerprint (a probe compares it before it ever
/// reads the slab) and gives the entry's home position (`hash & mask`, the prefix never exceeds
/// 2^32 entries) so deletion never reads an order either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ClientEntry {
    hash: u32,
    slot: u32,
}

/// An empty position.
const CLIENT_EMPTY: ClientEntry = ClientEntry { hash: 0, slot: NIL };

/// Index of live orders by (account, client order id): open addressing over a power-of-two
/// table of (hash, slot) entries (8 bytes each), linear probing and backward-shift deletion, so
/// it never holds tombstones.
///
/// A probe reads the slab only when the 32-bit hash matches: for a new order's uniqueness check
/// that is a 1 in 2^32 coincidence, so the order table is not touched (it was a cache miss per
/// probed entry when keys were compared through the slab). A lookup that finds its key reads
/// that one order, which the caller needs anyway.
///
/// The table is allocated at twice the order capacity up front, but probing uses only a prefix
/// sized to keep the load under one half of the live orders: a few thousand live orders then
/// probe a few kilobytes (cache hits) instead of megabytes (a miss per lookup, measured). The
/// prefix doubles, rehashing the live orders, when it passes half load, and never shrinks: it
/// rehashes only while climbing to its high-water mark, never in the steady state, and never
/// allocates.
#[derive(Debug)]
struct ClientIndex {
    table: Vec<ClientEntry>,
    /// Size of the prefix in use, minus one.
    mask: usize,
    /// Size of the prefix in use (`mask + 1`): the bound of every walk. Kept, and non-zero by
    /// its type, so a walk's range is known not to be empty: `0..mask + 1` made the compiler
    /// test whether `mask + 1` wrapped to zero before every walk (session 12 in
    /// perf/RESULTS.md).
    size: NonZeroUsize,
    /// Entries in the table.
    len: usize,
    /// Entries at which the prefix doubles: half its size, kept rather than computed on every
    /// new order.
    len_max: usize,
    /// Bumped by every change of the table, so a `ClientVacancy` taken before a change is
    /// recognised as stale. Debug builds only: a counter written on every insert and removal
    /// and compared on every new order cost more than it checks on a path where nothing
    /// changes the table between the two (release builds still check that the vacancy's
    /// position is empty).
    #[cfg(debug_assertions)]
    version: u64,
}

/// Where a new (account, client id) goes in the client index, found by the uniqueness check of
/// a new order and handed back to `Orders::insert_vacant` so the order probes once, not twice.
/// Valid only while the index does not change in between (checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientVacancy {
    position: usize,
    hash: u32,
    #[cfg(debug_assertions)]
    version: u64,
}

/// Where a live order's entry is in the client index, as a lookup by client id found it: its
/// removal then starts there instead of hashing and walking the run again (measured, session 10
/// in perf/RESULTS.md). Checked against the slot before use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientPosition(usize);

/// Smallest prefix in use.
const CLIENT_INDEX_MIN: usize = 1024;
// Homes are `hash & mask` with a 32-bit hash: the table (twice the largest order capacity,
// u32::MAX - 1) must not outgrow it.
const _: () = assert!(CLIENT_INDEX_MIN.is_power_of_two() && CLIENT_INDEX_MIN <= 1 << 32);

/// The 32-bit hash of a key: multiply-xorshift, deterministic and fast (the table is never
/// iterated, so its order cannot leak into events).
#[inline]
fn client_hash(account: AccountId, client: ClientOrderId) -> u32 {
    let x = (u64::from(account.0) << 32 ^ client.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x ^ (x >> 29)) as u32
}

impl ClientIndex {
    fn new(capacity: u32) -> ClientIndex {
        let size = (capacity as usize * 2).next_power_of_two().max(2);
        assert!(size <= 1 << 32, "client index beyond 32-bit homes");
        ClientIndex {
            table: vec![CLIENT_EMPTY; size],
            mask: size.min(CLIENT_INDEX_MIN) - 1,
            size: NonZeroUsize::new(size.min(CLIENT_INDEX_MIN))
                .unwrap_or_else(|| unreachable!("the prefix size is at least 2")),
            len: 0,
            len_max: size.min(CLIENT_INDEX_MIN) / 2,
            #[cfg(debug_assertions)]
            version: 0,
        }
    }

    #[inline(always)]
    fn bump_version(&mut self) {
        #[cfg(debug_assertions)]
        {
            self.version += 1;
        }
    }

    /// Doubles the prefix and re-inserts every live order of the slab (ids are 0 when free).
    fn grow(&mut self, slots: &[Order]) {
        let size = (self.mask + 1) * 2;
        assert!(
            size <= self.table.len(),
            "client index beyond its allocation"
        );
        self.table[..size].fill(CLIENT_EMPTY);
        self.mask = size - 1;
        self.size = NonZeroUsize::new(size).unwrap_or_else(|| unreachable!("doubled from >= 2"));
        self.len_max = size / 2;
        self.len = 0;
        self.bump_version();
        for (slot, o) in slots.iter().enumerate() {
            if o.id.0 != 0 {
                let inserted = self.insert(slots, slot as u32);
                debug_assert!(inserted);
            }
        }
    }

    // Table accesses without a bounds check (measured, session 8 round 2 in perf/RESULTS.md).
    // Invariant: positions are always reduced by `mask`, and `mask + 1` (the prefix in use, a
    // power of two) never exceeds `table.len()`, which never changes after `new`.
    #[inline(always)]
    fn at(&self, i: usize) -> ClientEntry {
        debug_assert!(i <= self.mask && self.mask < self.table.len());
        debug_assert_eq!(self.size.get(), self.mask + 1);
        // SAFETY: in bounds by the invariant above.
        unsafe { *self.table.get_unchecked(i) }
    }

    #[inline(always)]
    fn at_mut(&mut self, i: usize) -> &mut ClientEntry {
        debug_assert!(i <= self.mask && self.mask < self.table.len());
        // SAFETY: in bounds by the invariant above.
        unsafe { self.table.get_unchecked_mut(i) }
    }

    /// The table position holding (account, client), or the empty position where it would go;
    /// and the key's hash.
    // Always: the cancel and new-order paths are chains of small calls; inlined, each call's
    // register saves go (measured, session 8 step 6 in perf/RESULTS.md).
    #[inline(always)]
    fn probe(
        &self,
        slots: &[Order],
        account: AccountId,
        client: ClientOrderId,
    ) -> (usize, bool, u32) {
        let hash = client_hash(account, client);
        let mut i = hash as usize & self.mask;
        // Bounded by the prefix size; it is never more than half full. An exclusive range:
        // `0..=mask` kept `RangeInclusive`'s exhaustion flag, a compare and add-with-carry on
        // every step of the three walks of this index (503.2 -> 494.5 instructions a command,
        // session 11 in perf/RESULTS.md); its end is `size`, non-zero by type, so the range
        // is not tested for emptiness first (450.7 -> 446.9, session 12).
        for _ in 0..self.size.get() {
            let entry = self.at(i);
            if entry.slot == NIL {
                return (i, false, hash);
            }
            if entry.hash == hash {
                debug_assert!((entry.slot as usize) < slots.len());
                // SAFETY: an indexed slot is below the slab's high-water mark (the slab's
                // invariant, `Orders::get`).
                let o = unsafe { slots.get_unchecked(entry.slot as usize) };
                if o.account == account && o.client_order_id == client {
                    return (i, true, hash);
                }
            }
            i = (i + 1) & self.mask;
        }
        unreachable!("client index full")
    }

    #[inline]
    fn find(&self, slots: &[Order], account: AccountId, client: ClientOrderId) -> Option<u32> {
        self.find_at(slots, account, client).map(|(slot, _)| slot)
    }

    /// The slot of (account, client) and the position of its entry.
    #[inline(always)]
    fn find_at(
        &self,
        slots: &[Order],
        account: AccountId,
        client: ClientOrderId,
    ) -> Option<(u32, ClientPosition)> {
        match self.probe(slots, account, client) {
            (i, true, _) => Some((self.at(i).slot, ClientPosition(i))),
            (_, false, _) => None,
        }
    }

    fn insert(&mut self, slots: &[Order], slot: u32) -> bool {
        let o = &slots[slot as usize];
        match self.probe(slots, o.account, o.client_order_id) {
            (_, true, _) => false,
            (i, false, hash) => {
                self.table[i] = ClientEntry { hash, slot };
                self.len += 1;
                self.bump_version();
                true
            }
        }
    }

    /// Where (account, client) would be inserted, or None if it is present.
    #[inline]
    fn vacancy(
        &self,
        slots: &[Order],
        account: AccountId,
        client: ClientOrderId,
    ) -> Option<ClientVacancy> {
        match self.probe(slots, account, client) {
            (_, true, _) => None,
            (position, false, hash) => Some(ClientVacancy {
                position,
                hash,
                #[cfg(debug_assertions)]
                version: self.version,
            }),
        }
    }

    /// Inserts the order in `slot` where `vacancy` says, without probing again.
    // Always, and through `at`/`at_mut` (no bounds check: a vacancy's position came from a
    // probe, reduced by a mask that never shrinks): out of line with two checked accesses it
    // was ~8 instructions a command (measured, session 11 in perf/RESULTS.md).
    #[inline(always)]
    fn insert_at(&mut self, slots: &[Order], slot: u32, vacancy: ClientVacancy) {
        // The probe that found the vacancy saw this very table: no insert, removal or growth
        // since, so the position is still the end of the key's run and the key still absent.
        #[cfg(debug_assertions)]
        assert!(
            vacancy.version == self.version,
            "stale client index vacancy"
        );
        assert!(
            self.at(vacancy.position) == CLIENT_EMPTY,
            "stale client index vacancy"
        );
        debug_assert_eq!(
            {
                let o = &slots[slot as usize];
                self.probe(slots, o.account, o.client_order_id)
            },
            (vacancy.position, false, vacancy.hash)
        );
        *self.at_mut(vacancy.position) = ClientEntry {
            hash: vacancy.hash,
            slot,
        };
        self.len += 1;
        self.bump_version();
    }

    /// The position of the entry of the order in `slot`, whose key is (account, client).
    #[inline(always)]
    fn position_of(&self, account: AccountId, client: ClientOrderId, slot: u32) -> Option<usize> {
        // Keys are unique, so the slot is in its key's run, between its home and the next
        // empty position.
        let mut i = client_hash(account, client) as usize & self.mask;
        // Bounded by the prefix size (exclusive: see `probe`); it is never more than half full.
        for _ in 0..self.size.get() {
            let entry = self.at(i);
            if entry.slot == NIL {
                return None;
            }
            if entry.slot == slot {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Removes the entry of the order in `slot`, whose key is (account, client), at `position`
    /// if that is where a lookup found it (else it is looked for); false if it is
    /// not indexed. Reads no order: the run is walked by slot number and shifted by the stored
    /// hashes.
    // Always: the cancel and new-order paths are chains of small calls; inlined, each call's
    // register saves go (measured, session 8 step 6 in perf/RESULTS.md).
    #[inline(always)]
    fn remove(
        &mut self,
        account: AccountId,
        client: ClientOrderId,
        slot: u32,
        position: Option<ClientPosition>,
    ) -> bool {
        let mut hole = match position {
            // Where a lookup just found it: no hash, no walk. Checked, so a stale position
            // costs only the walk below.
            Some(ClientPosition(i)) if i <= self.mask && self.at(i).slot == slot => i,
            _ => match self.position_of(account, client, slot) {
                Some(i) => i,
                None => return false,
            },
        };
        debug_assert_eq!(self.at(hole).hash, client_hash(account, client));
        *self.at_mut(hole) = CLIENT_EMPTY;
        self.len -= 1;
        self.bump_version();
        // Backward shift: move later entries of the run into the hole when their home allows.
        let mut i = (hole + 1) & self.mask;
        // Bounded by the prefix size (exclusive: see `probe`).
        for _ in 0..self.size.get() {
            let entry = self.at(i);
            if entry.slot == NIL {
                break;
            }
            let home = entry.hash as usize & self.mask;
            // Entry at i may fill the hole if its home is not in (hole, i] (cyclically).
            let distance_home = i.wrapping_sub(home) & self.mask;
            let distance_hole = i.wrapping_sub(hole) & self.mask;
            if distance_home >= distance_hole {
                *self.at_mut(hole) = entry;
                *self.at_mut(i) = CLIENT_EMPTY;
                hole = i;
            }
            i = (i + 1) & self.mask;
        }
        true
    }
}

/// The slab and its indices.
#[derive(Debug)]
pub(crate) struct Orders {
    slots: Vec<Order>,
    /// Freed slots, reused last-in first-out (part of the deterministic state: snapshots keep it).
    free: Vec<u32>,
    capacity: u32,
    slot_bits: u32,
    /// `u64::MAX >> slot_bits`, kept rather than shifted on every new order.
    seq_max: u64,
    live: u32,
    by_client: ClientIndex,
    /// Per account: (head, tail) of its list.
    account_lists: Vec<(u32, u32)>,
}

impl Orders {
    pub fn new(capacity: u32, accounts: u32) -> Orders {
        // Enough bits for every slot below `capacity`.
        let slot_bits = (32 - (capacity.max(2) - 1).leading_zeros()).max(1);
        Orders {
            slot_bits,
            seq_max: u64::MAX >> slot_bits,
            // Reserve, not fill: pages are touched as slots are first used.
            slots: Vec::with_capacity(capacity as usize),
            free: Vec::with_capacity(capacity as usize),
            capacity,
            live: 0,
            by_client: ClientIndex::new(capacity),
            account_lists: vec![(NIL, NIL); accounts as usize],
        }
    }

    pub fn is_full(&self) -> bool {
        self.live == self.capacity
    }

    /// Largest order sequence number: ids must fit in u64 with the slot bits below them.
    pub fn seq_max(&self) -> u64 {
        debug_assert_eq!(self.seq_max, u64::MAX >> self.slot_bits);
        self.seq_max
    }

    /// The id an order inserted now with sequence `seq` receives (`insert_vacant` returns it).
    #[cfg(test)]
    pub fn next_id(&self, seq: u64) -> OrderId {
        debug_assert!(seq > 0 && seq <= self.seq_max());
        let slot = match self.free.last() {
            Some(&slot) => slot,
            None => self.slots.len() as u32,
        };
        OrderId(seq << self.slot_bits | u64::from(slot))
    }

    pub fn live(&self) -> u32 {
        self.live
    }

    // Slab accesses without a bounds check (measured, session 8 round 2 in perf/RESULTS.md).
    // Invariant: every slot number the engine holds names a slot below the high-water mark
    // `slots.len()`, which never falls. Slot numbers come only from `take_slot` (a slot
    // below the new length), `find_id` and `find_client` (checked against the slab), and the
    // links stored in levels, orders and account lists (copies of those); `slots` only grows
    // (`take_slot` pushes, `restore` resizes an empty slab). A slot number from outside
    // (an order id in a command) goes through `find_id` first.
    #[inline]
    pub fn get(&self, slot: u32) -> &Order {
        debug_assert!(
            (slot as usize) < self.slots.len(),
            "slot {slot} beyond the slab"
        );
        // SAFETY: in bounds by the invariant above (checked in debug builds).
        unsafe { self.slots.get_unchecked(slot as usize) }
    }

    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> &mut Order {
        debug_assert!(
            (slot as usize) < self.slots.len(),
            "slot {slot} beyond the slab"
        );
        // SAFETY: in bounds by the invariant above (checked in debug builds).
        unsafe { self.slots.get_unchecked_mut(slot as usize) }
    }

    #[inline]
    pub fn find_id(&self, id: OrderId) -> Option<u32> {
        let slot = (id.0 & ((1u64 << self.slot_bits) - 1)) as usize;
        match self.slots.get(slot) {
            Some(o) if o.id == id && id.0 != 0 => Some(slot as u32),
            _ => None,
        }
    }

    #[inline]
    pub fn find_client(&self, account: AccountId, client: ClientOrderId) -> Option<u32> {
        self.by_client.find(&self.slots, account, client)
    }

    /// `find_client`, with where the entry is, for `remove_at`.
    #[inline(always)]
    pub fn find_client_at(
        &self,
        account: AccountId,
        client: ClientOrderId,
    ) -> Option<(u32, ClientPosition)> {
        self.by_client.find_at(&self.slots, account, client)
    }

    /// Where a new order with (account, client) would be indexed, or None if the client id is
    /// taken by a live order of the account.
    #[inline]
    pub fn client_vacancy(
        &self,
        account: AccountId,
        client: ClientOrderId,
    ) -> Option<ClientVacancy> {
        self.by_client.vacancy(&self.slots, account, client)
    }

    /// Stores a new order (its id from `next_id`) and links it at the tail of its account's
    /// list. The caller checked `is_full` and client-id uniqueness.
    #[cfg(test)]
    pub fn insert(&mut self, order: Order) -> u32 {
        self.insert_with(order, None)
    }

    /// `insert` for an order whose client id `client_vacancy` found free, with nothing changed
    /// in the orders since: the client index is not probed again. The order is built in its
    /// slot by `build`, given the id the slot gives it (`seq` in the high bits, the slot in the
    /// low ones), so it is never built elsewhere and copied (measured, session 10 in
    /// perf/RESULTS.md). Returns the slot and the id.
    // Always: on every new order's path (measured, session 8 step 7 in perf/RESULTS.md).
    #[inline(always)]
    pub fn insert_vacant(
        &mut self,
        seq: u64,
        vacancy: ClientVacancy,
        build: impl FnOnce(OrderId) -> Order,
    ) -> (u32, OrderId) {
        let (slot, id) = self.take_slot(seq);
        // In bounds: `take_slot` returned a slot below the slab's length.
        let o = self.get_mut(slot);
        *o = build(id);
        debug_assert_eq!(o.id, id, "order built with another id");
        self.link(slot, Some(vacancy));
        (slot, id)
    }

    #[cfg(test)]
    fn insert_with(&mut self, order: Order, vacancy: Option<ClientVacancy>) -> u32 {
        let (slot, id) = self.take_slot(order.id.0 >> self.slot_bits);
        assert_eq!(order.id, id, "order id not from next_id");
        *self.get_mut(slot) = order;
        self.link(slot, vacancy);
        slot
    }

    /// Takes a slot for a new order with sequence `seq` (the last freed one, else a new one at
    /// the high-water mark) and counts it live; returns it and the order's id, which is what
    /// `next_id(seq)` said.
    #[inline(always)]
    fn take_slot(&mut self, seq: u64) -> (u32, OrderId) {
        assert!(!self.is_full(), "order slab full");
        debug_assert!(seq > 0 && seq <= self.seq_max());
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                // Never reallocates: len < capacity by the assertion above.
                debug_assert!(self.slots.len() < self.slots.capacity());
                self.slots.push(VACANT);
                (self.slots.len() - 1) as u32
            }
        };
        self.live += 1;
        (slot, OrderId(seq << self.slot_bits | u64::from(slot)))
    }

    /// The (head, tail) of an account's list, without a bounds check (measured, session 8
    /// round 2 in perf/RESULTS.md). Invariant: the account of every order in the slab is below
    /// `account_lists.len()` (the engine's `max_accounts`: `Engine` refuses any other account
    /// in a command, `restore` any other in a snapshot); the vector never changes length.
    #[inline(always)]
    fn account_list(&mut self, account: AccountId) -> &mut (u32, u32) {
        debug_assert!((account.0 as usize) < self.account_lists.len());
        // SAFETY: in bounds by the invariant above.
        unsafe { self.account_lists.get_unchecked_mut(account.0 as usize) }
    }

    /// Indexes the order in `slot` by client id (where `vacancy` says, if given) and appends it
    /// to its account's list.
    // Always: on every new order's path (measured, session 8 step 7 in perf/RESULTS.md).
    #[inline(always)]
    fn link(&mut self, slot: u32, vacancy: Option<ClientVacancy>) {
        let account = self.get(slot).account;
        // Keep the prefix at most half full; the slot being linked is already in the slab.
        // The prefix size (`mask + 1`) is a power of two.
        debug_assert_eq!(self.by_client.len_max, self.by_client.mask.div_ceil(2));
        if self.by_client.len >= self.by_client.len_max {
            self.by_client.grow(&self.slots[..]);
            // `grow` re-inserted every live order, including this one.
            debug_assert!(
                self.by_client
                    .find(&self.slots, account, self.get(slot).client_order_id)
                    == Some(slot)
            );
        } else if let Some(vacancy) = vacancy {
            self.by_client.insert_at(&self.slots, slot, vacancy);
        } else {
            let inserted = self.by_client.insert(&self.slots, slot);
            assert!(inserted, "client order id reused");
        }
        // Link at the account's tail so mass cancel walks oldest first.
        let (head, tail) = *self.account_list(account);
        {
            let o = self.get_mut(slot);
            o.acct_prev = tail;
            o.acct_next = NIL;
        }
        if tail == NIL {
            debug_assert_eq!(head, NIL);
            *self.account_list(account) = (slot, slot);
        } else {
            self.get_mut(tail).acct_next = slot;
            self.account_list(account).1 = slot;
        }
    }

    /// Removes an order from the indices and the account list and frees its slot.
    #[cfg(test)]
    pub fn remove(&mut self, slot: u32) {
        self.remove_at(slot, None);
    }

    /// Removes an order from the indices and the account list and frees its slot, starting the
    /// client index's removal at `position` when a lookup (`find_client_at`) found the entry
    /// there. Reads the four fields it needs, not a copy of the order.
    // Always: the cancel and new-order paths are chains of small calls; inlined, each call's
    // register saves go (measured, session 8 step 6 in perf/RESULTS.md).
    #[inline(always)]
    pub fn remove_at(&mut self, slot: u32, position: Option<ClientPosition>) {
        let (account, client, acct_prev, acct_next) = {
            let o = self.get(slot);
            assert!(o.id.0 != 0, "remove of a free slot");
            (o.account, o.client_order_id, o.acct_prev, o.acct_next)
        };
        let removed = self.by_client.remove(account, client, slot, position);
        assert!(removed, "live order missing from the client index");
        if acct_prev == NIL {
            self.account_list(account).0 = acct_next;
        } else {
            self.get_mut(acct_prev).acct_next = acct_next;
        }
        if acct_next == NIL {
            self.account_list(account).1 = acct_prev;
        } else {
            self.get_mut(acct_next).acct_prev = acct_prev;
        }
        self.live -= 1;
        self.get_mut(slot).id = OrderId(0);
        self.free.push(slot);
    }

    /// The allocation state snapshots keep: slots ever used and the free list in order.
    pub fn allocation(&self) -> (u32, &[u32]) {
        (self.slots.len() as u32, &self.free)
    }

    /// Rebuilds the allocation state of a snapshot: `high_water` slots, the given free list, and
    /// `orders` (in account-list order) at the slots their ids name. Returns false if they do
    /// not fit together.
    pub fn restore(&mut self, high_water: u32, free: &[u32], orders: &[Order]) -> bool {
        if high_water > self.capacity || self.live != 0 || !self.slots.is_empty() {
            return false;
        }
        self.slots.resize(high_water as usize, VACANT);
        let mut used = vec![false; high_water as usize];
        for &slot in free {
            if slot >= high_water || std::mem::replace(&mut used[slot as usize], true) {
                return false;
            }
        }
        for order in orders {
            let slot = (order.id.0 & ((1u64 << self.slot_bits) - 1)) as u32;
            if order.id.0 == 0
                || slot >= high_water
                || std::mem::replace(&mut used[slot as usize], true)
            {
                return false;
            }
            if order.account.0 as usize >= self.account_lists.len()
                || self
                    .by_client
                    .find(&self.slots, order.account, order.client_order_id)
                    .is_some()
            {
                return false;
            }
            self.slots[slot as usize] = *order;
            self.live += 1;
            self.link(slot, None);
        }
        if used.iter().any(|u| !u) {
            return false;
        }
        self.free.extend_from_slice(free);
        true
    }

    /// Head of an account's list (oldest order), or NIL.
    pub fn account_head(&self, account: AccountId) -> u32 {
        self.account_lists[account.0 as usize].0
    }

    /// Every live slot in the account lists, oldest first per account (for snapshots/audits).
    pub fn slots_by_account(&self) -> impl Iterator<Item = u32> + '_ {
        let accounts = self.account_lists.len() as u32;
        (0..accounts).flat_map(move |a| {
            let mut slot = self.account_lists[a as usize].0;
            core::iter::from_fn(move || {
                if slot == NIL {
                    return None;
                }
                let current = slot;
                slot = self.slots[slot as usize].acct_next;
                Some(current)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::sim::Rng;

    fn order(orders: &Orders, seq: u64, account: u32, client: u64) -> Order {
        Order {
            id: orders.next_id(seq),
            account: AccountId(account),
            client_order_id: ClientOrderId(client),
            ..VACANT
        }
    }

    /// The slab is read without bounds checks in release builds (`Orders::get`); a debug build
    /// (every test) still stops at a slot beyond the high-water mark.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "beyond the slab")]
    fn a_slot_beyond_the_slab_is_caught_in_debug_builds() {
        let mut orders = Orders::new(8, 2);
        let slot = orders.insert(order(&orders, 1, 0, 1));
        // Within the vector's capacity, so only the debug assertion can catch it.
        let _ = orders.get(slot + 1);
    }

    /// A vacancy found before the index changed is refused, in release builds too (where the
    /// version counter is gone, by its position no longer being empty): here another order
    /// took the very position.
    #[test]
    #[should_panic(expected = "stale client index vacancy")]
    fn a_stale_client_vacancy_is_refused() {
        let mut orders = Orders::new(8, 2);
        let Some(vacancy) = orders.client_vacancy(AccountId(0), ClientOrderId(1)) else {
            panic!("an empty index has room");
        };
        orders.insert(order(&orders, 1, 0, 1));
        let _ = orders.insert_vacant(2, vacancy, |id| Order {
            id,
            client_order_id: ClientOrderId(2),
            ..VACANT
        });
    }

    /// A removal given the position a lookup found uses it, and one given a position gone
    /// stale since (other removals shifted the run) still removes the right entry: a tiny
    /// table, positions kept from lookups made many steps before, a map as the model.
    #[test]
    fn client_removal_at_a_found_or_stale_position_agrees_with_a_model() {
        let mut rng = Rng::new(13);
        let mut orders = Orders::new(8, 4);
        let mut model: BTreeMap<(u32, u64), (u32, ClientPosition)> = BTreeMap::new();
        let mut seq = 1;
        for _ in 0..20_000 {
            let key = (rng.below(4) as u32, rng.below(6));
            let (account, client) = (AccountId(key.0), ClientOrderId(key.1));
            match model.remove(&key) {
                // The position from when it was inserted: often stale by now.
                Some((slot, position)) => {
                    let current = orders.find_client_at(account, client);
                    assert_eq!(current.map(|(s, _)| s), Some(slot));
                    let position = if rng.percent(50) {
                        current.map_or(position, |(_, p)| p)
                    } else {
                        position
                    };
                    orders.remove_at(slot, Some(position));
                }
                None if !orders.is_full() => {
                    let slot = orders.insert(order(&orders, seq, key.0, key.1));
                    seq += 1;
                    let Some((_, position)) = orders.find_client_at(account, client) else {
                        panic!("inserted order not found");
                    };
                    model.insert(key, (slot, position));
                }
                None => {}
            }
            for (&(a, c), &(slot, _)) in &model {
                assert_eq!(
                    orders.find_client(AccountId(a), ClientOrderId(c)),
                    Some(slot)
                );
            }
            assert_eq!(orders.by_client.len, model.len());
        }
    }

    /// A tiny table (16 entries for 8 orders) forces long probe runs, wrap-around and
    /// backward-shift deletions; a BTreeMap is the model.
    #[test]
    fn client_index_agrees_with_a_model_under_collisions() {
        client_index_against_model(8, 4, 6, 20_000, true);
    }

    /// Thousands of live orders make the prefix in use double several times.
    #[test]
    fn client_index_agrees_with_a_model_while_growing() {
        client_index_against_model(8_192, 64, 200, 40_000, false);
    }

    fn client_index_against_model(
        capacity: u32,
        accounts: u32,
        clients: u64,
        steps: u32,
        check_all: bool,
    ) {
        let mut rng = Rng::new(9);
        let mut orders = Orders::new(capacity, accounts);
        let mut model: BTreeMap<(u32, u64), OrderId> = BTreeMap::new();
        let mut seq = 1;
        for step in 0..steps {
            let account = rng.below(u64::from(accounts)) as u32;
            let client = rng.below(clients);
            let key = (account, client);
            if let Some(&id) = model.get(&key) {
                let slot = orders
                    .find_client(AccountId(account), ClientOrderId(client))
                    .unwrap();
                assert_eq!(orders.get(slot).id, id);
                // Mostly inserts early (growth), balanced later (deletions, shifts).
                if rng.percent(if step < steps / 2 { 10 } else { 55 }) {
                    orders.remove(slot);
                    model.remove(&key);
                }
            } else if !orders.is_full() {
                assert!(
                    orders
                        .find_client(AccountId(account), ClientOrderId(client))
                        .is_none()
                );
                let o = order(&orders, seq, account, client);
                seq += 1;
                let slot = orders.insert(o);
                assert_eq!(orders.find_id(o.id), Some(slot));
                model.insert(key, o.id);
            }
            if check_all || step % 1_000 == 0 {
                for (&(a, c), &id) in &model {
                    let slot = orders.find_client(AccountId(a), ClientOrderId(c)).unwrap();
                    assert_eq!(orders.get(slot).id, id);
                }
            }
            assert_eq!(orders.live() as usize, model.len());
            assert_eq!(orders.by_client.len, model.len());
        }
        if !check_all {
            assert!(
                orders.by_client.mask + 1 > CLIENT_INDEX_MIN,
                "the prefix never grew"
            );
        }
    }

    /// Deletion shifts entries by their stored hashes, never by reading the slab: removals made
    /// while every other order's key in the slab is scrambled leave the index exact.
    #[test]
    fn client_index_removal_reads_no_order() {
        let mut rng = Rng::new(11);
        for _ in 0..200 {
            // 8 orders in a 16-entry table: long runs, wrap-around, shifts.
            let mut orders = Orders::new(8, 4);
            let mut live = Vec::new();
            for seq in 1..=8 {
                let o = order(&orders, seq, rng.below(4) as u32, rng.below(1 << 20));
                if orders.find_client(o.account, o.client_order_id).is_none() {
                    live.push((orders.insert(o), o.account, o.client_order_id));
                }
            }
            while !live.is_empty() {
                let (slot, account, client) =
                    live.swap_remove(rng.below(live.len() as u64) as usize);
                let keys: Vec<ClientOrderId> =
                    orders.slots.iter().map(|o| o.client_order_id).collect();
                for o in orders.slots.iter_mut() {
                    o.client_order_id = ClientOrderId(rng.next_u64());
                }
                assert!(orders.by_client.remove(account, client, slot, None));
                for (o, key) in orders.slots.iter_mut().zip(keys) {
                    o.client_order_id = key;
                }
                for &(slot, account, client) in &live {
                    assert_eq!(orders.find_client(account, client), Some(slot));
                }
                assert_eq!(orders.find_client(account, client), None);
            }
        }
    }

    #[test]
    fn ids_increase_and_stale_ids_never_match() {
        let mut orders = Orders::new(4, 2);
        let a = order(&orders, 1, 0, 1);
        let slot = orders.insert(a);
        orders.remove(slot);
        let b = order(&orders, 2, 0, 1);
        assert!(b.id > a.id);
        let slot_b = orders.insert(b);
        assert_eq!(slot, slot_b, "LIFO reuse");
        assert_eq!(orders.find_id(a.id), None, "stale id of a reused slot");
        assert_eq!(orders.find_id(b.id), Some(slot_b));
        assert_eq!(orders.find_id(OrderId(0)), None);
    }
}
