//! Peregrine's hot path: the deterministic matching engine, pre-trade risk and balances ledger.
//!
//! Owns: order books, risk checks and balances, as a pure state machine (`command -> events`).
//! Never does: I/O, clocks, threads inside the state machine, randomness, or allocation in the
//! steady state. The timestamp travels in the command.
//!
//! # The state machine
//!
//! [`Engine::apply`] takes one [`Envelope`] and appends its [`Event`]s to a caller-provided
//! vector. Every handler first validates everything that can fail, touching nothing, then
//! executes steps that cannot fail. Hence a command either emits exactly one
//! [`Event::Rejected`] with a typed [`RejectReason`] and changes nothing (not even a rate-limit
//! token), or emits its accepted events. The same command sequence always yields the same events
//! and state: nothing depends on clocks, randomness, addresses or hash iteration order (maps are
//! looked up, never iterated).
//!
//! # Commands and their events
//!
//! | command | accepted events |
//! |---|---|
//! | `NewOrder` | `OrderAccepted`, then `Trade`s, `OrderFilled`, `OrderRested` or `OrderCancelled` (IOC/market remainder, self-trade, budget), `StopTriggered` and the triggered orders' events |
//! | `Cancel` (by id or client id) | `OrderCancelled` |
//! | `CancelReplace` | `OrderReplaced` (`priority_kept` on a pure size decrease), then as `NewOrder` when it re-enters |
//! | `MassCancel` (account, optional market/side) | `OrderCancelled`s, `MassCancelled { count }` |
//! | `KillSwitch` | on: cancels all the account's orders and refuses new ones; `KillSwitchSet` |
//! | `CurrencyAdd`, `Deposit`, `WithdrawalHold/Settle/Release` | `CurrencyAdded`, `Deposited`, `WithdrawalHeld/Settled/Released` |
//! | `MarketAdd/Update/Halt/Resume`, `FeeScheduleUpdate`, `AccountFeeTier` | the matching `Market*`/`Fee*` event |
//! | `MarketStateSet` | `MarketStateChanged` |
//! | `CurrencyCreate`, `MarketCreate` (runtime, with names: [`reference`]) | `CurrencyAdded`; `MarketAdded`, then `MarketStateChanged` unless it starts `Enabled` |
//!
//! # Market states
//!
//! A market is `Enabled` (listed, trading), `Hidden` (trading, left out of the public market
//! list), `Disabled` (left out of the list; new orders and replaces refused with
//! `MarketDisabled`) or `Locked` (listed; new orders and replaces refused with `MarketHalted`:
//! what `MarketHalt` sets, and `MarketResume` returns to `Enabled`). Cancels always work, in
//! every state, so funds are never trapped in a book; resting orders of a disabled or locked
//! market stay until cancelled, and pending stops do not trigger there (no trade moves the
//! last price). The order path tests one flag (`refuses_orders`), as it did for halts, and
//! picks the refusal only on the reject path. `check_spec` and `check_risk` name the field a
//! `MarketAdd` or `MarketUpdate` would be refused for (`InvalidMarketSpec`), so an edge can
//! say which before it journals anything.
//!
//! Balances ride on those events (event format 2): `OrderAccepted` carries the order's lock,
//! `OrderRested`, `OrderFilled` and `OrderCancelled` what the order released, `OrderReplaced`
//! its lock before and after, `Trade` both sides' settlement (with the market's currencies) and
//! the funds events their amounts. [`Event::balance_changes`] is the one interpretation: applied
//! to the balances a consumer started from (the engine's, at a snapshot), it yields the engine's
//! balances after every command. There is no `Balance` event any more.
//!
//! # Orders
//!
//! Limit (GTC, IOC, FOK, post-only); market (buy by quantity or quote budget, sell by quantity,
//! never trading beyond the protection price `reference ± band`); stop-limit and stop-market,
//! triggered by the last trade price (buy: last >= trigger, sell: last <= trigger; a trigger
//! already reached is refused). Self-trade prevention per order: cancel newest, oldest or both.
//! Client order ids are unique per account among live orders. Matching is price-time priority
//! and a trade executes at the resting order's price.
//!
//! # Units and arithmetic
//!
//! Prices are ticks, quantities lots, amounts minor units, all integers ([`ids`]). A market
//! fixes `base_per_lot` and `quote_per_tick_lot`: a trade of `q` lots at `p` ticks moves
//! `q * base_per_lot` base and `p * q * quote_per_tick_lot` quote. `MarketAdd` refuses limits
//! under which the largest order's amounts would not fit `u64`, so no trade can overflow.
//! Decimals exist only at the edge ([`edge`]): inexact values are rejected, never rounded.
//! Fees are parts per million of the amount received, per market and per account tier, rounded
//! down, credited to the fee account.
//!
//! # Pre-trade risk and the ledger
//!
//! An order locks what it may spend (buy: `price * qty * quote_per_tick_lot`, market buy by
//! quantity at the protection price, by budget the budget; sell: the base); a resting order's
//! lock is always exactly its remaining quantity at its price, and whatever a better fill saved
//! is released. Checks: account range, halted market (cancels still work), kill switch, type and
//! time-in-force combination, quantity and price bounds, price band on the aggressive side
//! only (a buy's price at most reference + band, a sell's at least reference - band; the
//! reference is the last trade, or the configured one; `band_bps` 0 is no band), maximum
//! notional, client id uniqueness, open orders per
//! account, capacity, post-only, fill-or-kill, available balance, and an order-rate token bucket
//! fed by command timestamps.
//!
//! Invariant, checked after every command in debug builds (O(1), from running totals) and in
//! full by [`Engine::audit`]: for every currency, the sum over accounts of available + locked,
//! plus fees collected, equals deposits minus withdrawals; locked equals what live orders and
//! pending withdrawals hold; books are never crossed at rest. Amounts are unsigned: nothing is
//! ever negative.
//!
//! # Capacity
//!
//! Everything is bounded by [`EngineConfig`] and allocated up front: an order slab with slot
//! indices instead of pointers (order ids encode their slot, so cancel by id is O(1) with no
//! hashing), a client-id index with open addressing (never rehashes), price levels in a
//! direct-indexed window near the touch over a sorted vector with the best price last, pending
//! stops per market. A command that would exceed a limit is rejected (`OrderCapacity`,
//! `BookFull`, `TooManyOpenOrders`, ...), never grown into.
//!
//! # Data structures, and why they won
//!
//! Measured by instructions per command (`scripts/instructions`, callgrind over `bench
//! matching`'s seeded flow and its flash-crash variant; figures in `perf/RESULTS.md`), with risk
//! and the ledger on: 980.3 on the realistic flow before issue #20 (session 6), 440.4 after
//! session 12 (2.2x fewer); the flash crash 499.4 (857.8 before, when the band still refused
//! the passive orders that now rest). Events and snapshots stayed byte-identical through every
//! step after the band change (session 6) and the balance fields (event format 2, session 9).
//! What each structure won:
//!
//! - **Client-id index**: open addressing over `(32-bit hash, slot)` entries. A probe compares
//!   hashes and reads an order only on a hash match, and backward-shift deletion takes each
//!   entry's home from its stored hash, so neither walks the order slab (which cost a cache
//!   miss per probed entry when keys were compared through it). A cancel by client id removes
//!   the entry where its lookup found it; the version counter that catches a stale vacancy is
//!   kept in debug builds only (release builds check the position is still empty), which took
//!   live values and spills off the new-order path (525.8 -> 516.2, session 10). Its three
//!   walks (probe, position lookup, backward shift) are bounded by the prefix size, kept as a
//!   `NonZeroUsize` next to the mask: bounded by `mask + 1`, each walk first tested whether
//!   that wrapped to zero (450.7 -> 446.9, session 12).
//! - **Price levels**: a vector sorted with the best level last (a match, a cancel at the touch
//!   and a new order near it touch the end of the vector). A level that empties away from the
//!   touch stays as an empty tombstone instead of shifting every better level down; a new
//!   level next to a tombstone takes its place; tombstones are dropped when they surface at the
//!   best end and compacted in one pass when the vector is full. On the flash crash (deep
//!   stale levels) this took the level `memmove`s from 37 % of all instructions to almost
//!   none (1 519 -> 1 027 instructions per command) for +1 % on the realistic flow, where the
//!   book is shallow. Finding a level: the best level is compared first; then one guessed
//!   index, `d` places before the best for a price `d` ticks behind it (near the touch levels
//!   are about one per tick, live or tombstone), taken when that level has the price; then a
//!   binary search. A resting order also keeps the index its level had when it rested
//!   (`level_hint`), used by a cancel or a size decrease when the level there still has the
//!   order's price (levels move only when one is inserted or compacted below them). Together
//!   they removed most level binary searches (912 -> 889 and 941 -> 913 instructions per
//!   command, session 8). Stepping through the levels nearest the touch one by one measured
//!   worse than the binary search it was to save. Not yet measured against a B-tree of levels.
//! - **Price window**: over that vector, each side keeps a direct-indexed window of 4 096
//!   ticks at and behind the touch (a ring of levels addressed by price, a bitmap of the
//!   non-empty ones for the next best); the vector holds only prices worse than the window, so
//!   the window moves by appending to or popping from the vector's best end, never by a search
//!   or a shift. Resting, cancelling and filling near the touch index the level directly. On
//!   top of the session-8 vector alone it measured +1 to +3 instructions per command (the
//!   vector's hint and guess already avoided most searches); once the bounds checks below were
//!   gone it won on both flows (733.8 -> 728.1 realistic, 783.8 -> 776.1 flash crash,
//!   session 8 round 2), for 96 KiB a side. Width: 4 096 ticks. With balances in the events
//!   (session 9), 8 192 ticks gave the same realistic count (594.3) and -0.7 % on the flash
//!   crash (650.7 -> 646.4) for twice the memory (192 KiB a side, 96 MiB at 256 markets);
//!   1 024 ticks lost more on the flash crash and 16 384 cost realistic instructions (session
//!   8 round 2).
//! - **Orders**: one 88-byte `Order` per slab slot, built and read and edited in place: a new
//!   order is written into its slot by a closure given the id the slot yields, never built on
//!   the stack and copied (593.1 -> 561.8 instructions per command, session 10). The match loop
//!   reads the incoming order's fixed fields once per take (`Taker`), edits the resting order's
//!   quantity and lock where it lies, and takes the trade off the best level and unlinks a
//!   filled maker from its head in one call, without a search (`fill_best_head`). Each order
//!   keeps the currency it locks, so ending it needs no market lookup. A hot/cold split (128
//!   bytes, two cache lines) measured more instructions and no fewer cache misses on these
//!   books, and removing whole-order copies changed nothing: the compiler already loads only
//!   the fields used (`perf/RESULTS.md`, sessions 6 and 7).
//! - **Command path**: a GTC or post-only limit order (or a replace) that does not cross the
//!   opposite best goes straight to the book without entering the match loop, whose setup
//!   (the incoming order's fields, a large stack frame) it never needed (-4 %, session 8).
//!   Such an order is built already resting (its lock is exactly what resting needs) and, with
//!   no trade, skips the stop check (525.8 from 540.5, session 10). The band's limits are kept
//!   per market and recomputed only when the last price or the risk changes, not per order
//!   (540.5 from 561.8). The order and cancel paths were chains of small out-of-line calls
//!   (client-id probe and removal, order lookup, cancel, finish, slab insert and removal,
//!   ledger lock and settlement, rate check, capacity check), each saving and restoring
//!   registers; they are forced inline, one at a time and kept only where the count fell (-10 %
//!   together; inlining `take`, `rest` or `BookSide::unlink` measured worse or no better; the
//!   client index's insert at a vacancy and a filled maker's unlink joined them in session
//!   11).
//! - **Dispatch**: `Engine::apply` is one function with one `match` over every command kind,
//!   every handler inlined, so each command pays one frame and one jump table. Moving the
//!   rarely seen kinds (funds, markets, accounts, mass cancel) out of it measured worse every
//!   way it was tried (one cold out-of-line function for all of them: 450.7 -> 461.9; each
//!   rare handler out of line: 455.0, and 462.4 marked cold; session 12): what they change is
//!   register allocation on the order paths, not the dispatch. For the same reason the event
//!   vector's length that `apply`'s reject assertion compares is read in debug builds only:
//!   read in every build, it was kept in a stack slot the event pushes then used (442.6 ->
//!   440.4, session 12).
//! - **Reject paths**: every reject reason is built by `rejected`, a cold function never
//!   inlined, so each reject site is a cold block of its own. Funnelled into one block that
//!   took the reason in a register, they made the compiler set that register before each check
//!   on the accepted path and keep it live through the handler, spilling what it displaced:
//!   483.9 -> 455.6 instructions a command realistic, 540.8 -> 514.5 flash crash (session 11),
//!   the largest single step of that session. Loops are bounded by exclusive ranges
//!   (`0..n + 1`, not `0..=n`: `RangeInclusive`'s exhaustion flag cost a compare and
//!   add-with-carry a step in the client index's walks and the window's bitmap scan; -11).
//! - **Bounds checks**: the hot containers whose indices are valid by construction (the order
//!   slab, including a new order's write into a freed slot, the client-id table, account
//!   lists, account risk states, the market table, a level just found, the ledger's
//!   per-currency totals) are read through small accessors without a bounds check; each states
//!   why its index is in bounds and `debug_assert!`s it, so every (debug) test still checks it
//!   (-7 %, session 8 round 2; the totals -6.6 and a known market read without checking it is
//!   there -2.7, session 11). The ledger's cells on the order path too (session 12): a new
//!   order's and a replace's cell index is computed once for the balance check and the lock
//!   (516.2 -> 510.8, session 10) and checked in debug builds only (-1.3); a trade's two
//!   settlements (-1.2) and an unlock (-0.5) read their cells unchecked, the accounts being
//!   those of live orders or pending withdrawals, checked when they entered. (Unchecked cells
//!   measured worse three times in session 8, when `apply` spilled more; they won once the
//!   spills had gone.) A settlement's overflow check sums the cell and the amount in `u128`
//!   and compares once, where two checked `u64` adds kept a carry and two branches (-1.2).
//! - **Balances in the events**: format 1 appended a `Balance` event per changed cell after each
//!   command (the state after), which cost ~130 instructions a command: recording the touched
//!   cells, sorting them (~22) and writing ~1.7 more events (~17 each); cheaper ways to build
//!   those events (kept sorted, insertion sort, no sort for one cell) all measured worse.
//!   Format 2 writes the amounts into the events that already carry the order or the trade
//!   (a field or two each; the largest event, `Trade`, grew from 88 to 96 bytes for the two
//!   currencies), and consumers rebuild the state with [`Event::balance_changes`]: 728.1 ->
//!   594.3 instructions per command realistic, 776.1 -> 650.7 flash crash (session 9).
//!
//! # Snapshots
//!
//! [`Engine::snapshot`] writes the whole state in a canonical rkyv form (including the slot
//! allocation, which future order ids depend on); [`Engine::restore`] validates the bytes and the
//! rebuilt state (it must pass the audit). Snapshot plus replay of the later commands equals the
//! uninterrupted run, event for event.
//!
//! # Runtime
//!
//! [`runtime::Shard`] runs an engine on its own thread, optionally pinned to a core, behind a
//! bounded lock-free input queue (a full queue is `Busy` to the caller, never a block or a drop)
//! and a bounded output queue of event batches; idle is busy-spin or park.
//!
//! # Across shards
//!
//! An account trades in many markets, so with markets spread over shards its balances cross
//! shards. [`cluster`] runs the risk pre-hold, match, settle pipeline (as exchange-core does) with
//! risk sharded by account and matching by market, reusing [`Engine`] for both roles:
//!
//! 1. **R1, risk shard of the account** (`account % R`; holds the master balances, deposits and
//!    withdrawals): checks the account, the market (its view of it), client-id uniqueness across
//!    shards (a bounded index of the account's live orders, updated from order-end events), then
//!    computes the order's escrow with the engine's lock formula (market buys by quantity at the
//!    protection price of its view), refuses `InsufficientBalance` or moves the escrow out of the
//!    master balance, and forwards it with the order.
//! 2. **ME, matching shard of the market** (`market % M`): credits the escrow to the account on
//!    its engine, applies the order unchanged (every order type, STP, fees, stops), then sweeps
//!    whatever became available (proceeds, unused or released escrow, all of it on a reject)
//!    back. Between commands nobody has available funds there, so an order locks only its escrow.
//!    Fees stay in the matching engine's fee totals. Order ids are made global by tagging the
//!    engine's local id with the shard index in the top 8 bits, so a cancel by id routes itself.
//! 3. **R2, risk shard of each account concerned**: credits the swept funds, updates the
//!    client-id index and its view of markets (additions, risk updates, last prices).
//!
//! Determinism: commands run in lockstep batches whose boundaries the caller chooses and
//! journals. Phase 1 (risk shards, in sequence order), phase 2 (matching shards, in sequence
//! order), phase 3 (risk shards, in (sequence, shard, emission) order) run each shard in
//! parallel; batch `b`'s phase 1 sees every earlier batch's phase 3. Outputs merge canonically
//! (per command: risk shard, then matching shards by index, then one
//! [`ClusterEventKind::Completed`]), so the stream depends only on the commands and the batch
//! boundaries: [`Cluster::apply_batch`] (single-threaded reference) and [`ClusterRuntime`] (a
//! thread per shard, bounded channels, `Busy` on a full input) yield the same events.
//! Conservation holds per currency across engines (checked by [`Cluster::audit`]): funds only
//! move between a master balance and an escrow, or between escrows inside a matching engine, and
//! every move is emitted once ([`ClusterEventKind::EscrowSent`] and `EscrowReturned`).

mod audit;
mod book;
pub mod cluster;
pub mod command;
pub mod config;
pub mod edge;
mod engine;
pub mod event;
mod idempotency;
pub mod ids;
pub mod latency;
pub mod ledger;
mod market;
mod orders;
pub mod reference;
pub mod reject_text;
mod risk;
pub mod runtime;
pub mod sim;
mod snapshot;

pub use audit::AuditError;
pub use cluster::{
    Cluster, ClusterConfig, ClusterError, ClusterEvent, ClusterEventKind, ClusterRuntime,
    ClusterRuntimeConfig,
};
pub use command::{
    Actor, AuditAnchor, CancelReplace, CommandKind, Envelope, FeeRates, MarketRisk, MarketSize,
    MarketSpec, MarketState, MarketUpdate, NewOrder, OrderKind, OrderRef, SelfTradePrevention,
    Service, TimeInForce,
};
pub use config::EngineConfig;
pub use engine::{Engine, OrderView};
pub use event::{
    BALANCE_CHANGES_MAX, BalanceChange, BalanceChanges, CancelReason, Event, RejectReason, Trade,
};
pub use ids::*;
pub use market::{BAND_BPS_MAX, MAX_FEE_PPM, MAX_FEE_TIERS, SpecField, check_risk, check_spec};
pub use reference::{
    CURRENCY_PRECISION_MAX, CurrencyCreate, DISPLAY_NAME_BYTES_MAX, MarketCreate,
    REFERENCE_NAME_BYTES_MAX, RuntimeReference, UnitDecimal, reference_name_ok,
};
pub use snapshot::{SNAPSHOT_VERSION, SnapshotError};
