//! The view model: the one place engine events are interpreted into what edges show.
//!
//! Owns:
//! - one [`Book`] per market, with one sequence that advances by one per level change (QUIC
//!   market data and Ranger `ob-snap`/`ob-inc` carry the same number);
//! - one [`OrderRecord`] per order, built from its command (type, time in force, trigger) and
//!   its events (state, fills), with the de-duplication window of client order ids;
//! - balances as the engine's events changed them ([`Event::balance_changes`], from the
//!   engine's balances at [`Views::seed`]), and each market's state (enabled, hidden, disabled,
//!   locked) and risk parameters as last updated, which the public market list shows.
//!
//! [`Views::apply_event`] turns each event into [`Change`]s, in order, for the edges to fan
//! out; reads (`book`, `orders`, `balance`) serve REST and control without touching the
//! matching thread. The core feeds the views only what it releases, so in `durable` mode they
//! never show a command the journal has not made durable.
//!
//! Never does: I/O, clocks, or anything of a wire protocol (decimals, JSON, frames are the
//! edges'); hold anything unbounded (see [`OrdersLimits`]).

mod book;
mod change;
mod order;
mod orders;
mod window;

use std::collections::HashMap;

use peregrine_hotpath::{
    AccountId, Amount, CommandKind, CurrencyId, Engine, Envelope, Event, FeeRates, MarketId,
    MarketRisk, MarketState, NewOrder, Price, Qty, Side, TimestampNs,
};

pub use book::{Book, BookSnapshot, LevelChange, SequenceGap};
pub use change::{Change, FillChange, FundsChange, FundsKind, TradeChange};
pub use order::{OrderRecord, OrderState, OrderTerms, OrderType};
pub use orders::{DEDUP_WINDOW_ORDERS, OrderStatus, Orders, OrdersLimits};
pub use window::{WINDOW_IMAGE_VERSION, WindowImageError};

/// A balance cell as the events left it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BalanceView {
    /// Free to trade or withdraw.
    pub available: Amount,
    /// Held by open orders and pending withdrawals.
    pub locked: Amount,
}

/// A market's trading state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarketView {
    /// New orders refused: halted (locked) or disabled by an operator.
    pub halted: bool,
    /// Enabled, hidden, disabled or locked (`halted` is `state.refuses_orders()`).
    pub state: MarketState,
    /// Risk parameters as last added or updated (`None` until the views saw them).
    pub risk: Option<MarketRisk>,
    /// Last trade price (None before the first trade the views saw).
    pub last_price: Option<Price>,
}

impl MarketView {
    /// The state as the listings name it: `enabled`, `hidden`, `disabled`, or `halted` for a
    /// locked market (a halt locks it; the name the listings gave halts before states).
    pub fn state_name(&self) -> &'static str {
        match self.state {
            MarketState::Locked => "halted",
            state => state.as_str(),
        }
    }
}

/// Books, orders, balances and market states, as of the last applied command.
#[derive(Debug)]
pub struct Views {
    books: HashMap<MarketId, Book>,
    markets: HashMap<MarketId, MarketView>,
    orders: Orders,
    balances: HashMap<(AccountId, CurrencyId), BalanceView>,
    kill_switches: HashMap<AccountId, bool>,
    /// Accounts in a fee tier other than 0 (seeded from the engine, then its events).
    fee_tiers: HashMap<AccountId, u8>,
    /// The last fee schedule update of each (market, tier) these views saw: its rates and
    /// sequence (a four-eyes retry reads it to tell whether its command was journaled).
    fee_updates: HashMap<(MarketId, u8), (FeeRates, u64)>,
    applied_seq: u64,
    /// Orders the command being applied touched, by the sequence that placed them.
    touched: Vec<u64>,
    /// Balance cells the command being applied changed (repeats allowed).
    balances_touched: Vec<(AccountId, CurrencyId)>,
}

/// Keys of orders found in the engine at start whose command the views never saw: above every
/// command sequence, so they never collide with one.
const SEEDED_KEY_BASE: u64 = 1 << 63;
/// Orders one command touches, allocated up front (a large sweep grows it).
const TOUCHED_INITIAL: usize = 64;

impl Default for Views {
    fn default() -> Self {
        Views::new(OrdersLimits::default())
    }
}

impl Views {
    /// Empty, keeping orders within `limits`.
    pub fn new(limits: OrdersLimits) -> Views {
        Views {
            books: HashMap::new(),
            markets: HashMap::new(),
            orders: Orders::new(limits),
            balances: HashMap::new(),
            kill_switches: HashMap::new(),
            fee_tiers: HashMap::new(),
            fee_updates: HashMap::new(),
            applied_seq: 0,
            touched: Vec::with_capacity(TOUCHED_INITIAL),
            balances_touched: Vec::with_capacity(TOUCHED_INITIAL),
        }
    }

    /// Feeds one command recovery replayed and its events (before order entry opens), so
    /// order statuses since the snapshot survive a restart. Books and balances are taken from
    /// the engine afterwards ([`Views::seed`]): replay starts at a snapshot they know nothing of.
    pub fn observe(&mut self, seq: u64, command: &Envelope, events: &[Event]) {
        if let CommandKind::NewOrder(order) = &command.kind {
            self.sequenced(seq, command.ts, order);
        }
        let mut scratch = Vec::new();
        for event in events {
            self.apply_event(seq, command.ts, event, &mut scratch);
            scratch.clear();
        }
        self.applied(seq, &mut scratch);
    }

    /// Takes books, balances, market states and the open orders it does not know yet from
    /// `engine` (at start, on the engine's thread, before anything else is applied).
    pub fn seed(&mut self, engine: &Engine, seq: u64) {
        for market in engine.market_ids() {
            let depth = |side| engine.depth(market, side, usize::MAX);
            let book = self.books.entry(market).or_default();
            *book = Book::default();
            book.reseed(&depth(Side::Buy), &depth(Side::Sell));
            let view = self.markets.entry(market).or_default();
            view.last_price = engine.last_price(market);
            view.state = engine.market_state(market).unwrap_or_default();
            view.halted = view.state.refuses_orders();
            view.risk = engine.market_risk(market);
            for side in [Side::Buy, Side::Sell] {
                for order in engine.book_orders(market, side) {
                    self.seed_order(&order);
                }
            }
        }
        self.fee_tiers = engine.fee_tiered_accounts().into_iter().collect();
        self.balances.clear();
        self.balances_touched.clear();
        for (account, currency, balance) in engine.ledger().nonzero() {
            let view = BalanceView {
                available: Amount(balance.available),
                locked: Amount(balance.locked),
            };
            self.balances.insert((account, currency), view);
        }
        self.applied_seq = seq;
    }

    fn seed_order(&mut self, order: &peregrine_hotpath::OrderView) {
        if self.orders.seq_of(order.id).is_some() {
            return;
        }
        // Placed before the snapshot recovery started from: its command is not in the
        // replayed part of the journal, so its terms are assumed and its fills unknown.
        self.orders.insert(OrderRecord {
            id: order.id,
            seq: SEEDED_KEY_BASE | order.id.0,
            account: order.account,
            market: order.market,
            client_order_id: order.client_order_id,
            side: order.side,
            terms: OrderTerms::assumed(order.price),
            price: order.price,
            origin_qty: order.qty,
            remaining_qty: order.qty,
            executed_qty: Qty(0),
            executed_tick_lots: 0,
            trades_count: 0,
            rested: !order.pending_stop,
            state: if order.pending_stop {
                OrderState::Untriggered
            } else {
                OrderState::Open
            },
            reject: None,
            cancel: None,
            created_ns: 0,
            updated_ns: 0,
        });
    }

    /// Records a freshly sequenced new order (outcome unknown), so a resend of its client id
    /// is recognised before the engine answers.
    pub fn sequenced(&mut self, seq: u64, ts: TimestampNs, order: &NewOrder) {
        self.orders.insert(OrderRecord::sequenced(seq, ts.0, order));
    }

    /// `account`'s fee tier (0 unless moved).
    pub fn fee_tier(&self, account: AccountId) -> u8 {
        self.fee_tiers.get(&account).copied().unwrap_or(0)
    }

    /// Accounts in a fee tier other than 0, by account.
    pub fn fee_tiered(&self) -> Vec<(AccountId, u8)> {
        let mut tiered: Vec<(AccountId, u8)> =
            self.fee_tiers.iter().map(|(a, t)| (*a, *t)).collect();
        tiered.sort_unstable();
        tiered
    }

    /// The rates and sequence of the last update of `tier` in `market` these views saw
    /// (`None`: none since they started, or since the snapshot recovery started from).
    pub fn fee_update(&self, market: MarketId, tier: u8) -> Option<(FeeRates, u64)> {
        self.fee_updates.get(&(market, tier)).copied()
    }

    /// The last command applied.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// Marks command `seq` applied (after its last event): appends the balance of every cell
    /// it changed, in (account, currency) order, then the record of every order it touched, to
    /// `out`.
    pub fn applied(&mut self, seq: u64, out: &mut Vec<Change>) {
        self.balances_applied(|cell, balance| {
            out.push(Change::Balance {
                account: cell.0,
                currency: cell.1,
                available: balance.available,
                locked: balance.locked,
            })
        });
        self.applied_each(seq, |record| {
            out.push(Change::Order(Box::new(record.clone())))
        });
    }

    /// The cells the command changed, in (account, currency) order, each once with its balance
    /// now; forgets them. [`Views::applied`] calls it; the replica's mapper calls it before
    /// [`Views::applied_each`].
    pub fn balances_applied(&mut self, mut each: impl FnMut((AccountId, CurrencyId), BalanceView)) {
        self.balances_touched.sort_unstable();
        self.balances_touched.dedup();
        for index in 0..self.balances_touched.len() {
            let (account, currency) = self.balances_touched[index];
            each((account, currency), self.balance(account, currency));
        }
        self.balances_touched.clear();
    }

    /// [`Views::applied`] for a reader that needs the records only for a moment (the
    /// replica's mapper): `each` sees every touched order's record in place, nothing is
    /// copied.
    pub fn applied_each(&mut self, seq: u64, mut each: impl FnMut(&OrderRecord)) {
        debug_assert!(seq >= self.applied_seq, "commands applied out of order");
        self.applied_seq = seq;
        // A caller that does not want the balances (`balances_applied` was not called).
        self.balances_touched.clear();
        for key in self.touched.drain(..) {
            if let Some(record) = self.orders.by_seq(key) {
                each(record);
            }
        }
    }

    /// A market's book.
    pub fn book(&self, market: MarketId) -> Option<&Book> {
        self.books.get(&market)
    }

    /// Makes `market`'s book continue a numbering published before (see
    /// [`Book::continue_at`]); false if the market has no book.
    pub fn continue_book(&mut self, market: MarketId, sequence: u64) -> bool {
        match self.books.get_mut(&market) {
            Some(book) => {
                book.continue_at(sequence);
                true
            }
            None => false,
        }
    }

    /// Every market's book.
    pub fn books(&self) -> impl Iterator<Item = (MarketId, &Book)> {
        self.books.iter().map(|(market, book)| (*market, book))
    }

    /// A market's trading state.
    pub fn market(&self, market: MarketId) -> Option<MarketView> {
        self.markets.get(&market).copied()
    }

    /// The order store.
    pub fn orders(&self) -> &Orders {
        &self.orders
    }

    /// Loads the de-duplication window's image taken at a snapshot (at start, before the
    /// commands after the snapshot are observed).
    pub fn restore_window(&mut self, image: &[u8]) -> Result<usize, WindowImageError> {
        self.orders.restore_window(image)
    }

    /// A balance (zero if never changed).
    pub fn balance(&self, account: AccountId, currency: CurrencyId) -> BalanceView {
        self.balances
            .get(&(account, currency))
            .copied()
            .unwrap_or_default()
    }

    /// What the ledger owes in `currency`, in minor units: every account's available plus
    /// locked (open orders and withdrawal holds included). Walks every balance cell: for
    /// operators' reads (reconciliation), not the hot path.
    pub fn liabilities(&self, currency: CurrencyId) -> u128 {
        self.balances
            .iter()
            .filter(|((_, cell), _)| *cell == currency)
            .map(|(_, balance)| u128::from(balance.available.0) + u128::from(balance.locked.0))
            .sum()
    }

    /// Accounts whose kill switch is on.
    pub fn kill_switches(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.kill_switches
            .iter()
            .filter(|(_, on)| **on)
            .map(|(account, _)| *account)
    }

    /// Every balance cell ever changed (zero ones included), in no order: for operators'
    /// reports (a walk of every cell), not the hot path.
    pub fn balances(&self) -> impl Iterator<Item = (AccountId, CurrencyId, BalanceView)> + '_ {
        self.balances
            .iter()
            .map(|((account, currency), balance)| (*account, *currency, *balance))
    }
}

mod apply;
