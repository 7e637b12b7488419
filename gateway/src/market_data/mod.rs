//! Market data and fills as the bridge serves them, sans IO: [`MarketData::apply`] takes one
//! command's [`Executed`] with the core views' changes (the one interpretation of its events)
//! and returns what changed as [`Update`]s (trades, book level changes with the book's one
//! sequence, candles, order records, own trades, balances); the caller (the REST/WebSocket
//! bridge's feed task) owns the tap, the clock and the fan-out.
//!
//! The books here are mirrors of the core's ([`Book::follow`]): the same levels at the same
//! sequence, so a WebSocket snapshot and the increments after it agree with QUIC market data.
//!
//! Everything is in engine units (ticks, lots, minor units, Unix ns); decimals are the edge's.
//! Every store is bounded: see [`MarketDataLimits`].
//!
//! Public trades and candles outlive a restart: at start they are rebuilt from the trades of
//! earlier runs ([`restore`], which says where they come from and why) before the first command
//! is applied.

pub mod history;
pub mod kline;
pub mod restore;

use std::collections::{HashMap, VecDeque};

use peregrine_hotpath::{AccountId, Amount, CurrencyId, MarketId, Price, Qty, Side, TradeId};

use history::{History, HistoryLimits, OwnTrade};
use kline::{Candle, Klines, Period, TickerStats};
use peregrine_core::{Change, Executed, OrderRecord};
pub use peregrine_views::{Book, BookSnapshot, LevelChange};
use restore::Restored;

/// Bounds of the derived stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketDataLimits {
    /// Public trades kept per market (the `trades` endpoint's deepest answer).
    pub trades_per_market: usize,
    /// Account history bounds.
    pub history: HistoryLimits,
}

impl Default for MarketDataLimits {
    fn default() -> Self {
        MarketDataLimits {
            trades_per_market: 1_000,
            history: HistoryLimits::default(),
        }
    }
}

/// A public trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicTrade {
    /// Trade id.
    pub id: TradeId,
    /// Price.
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
    /// Quote minor units exchanged.
    pub quote_amount: Amount,
    /// The taker's side.
    pub taker_side: Side,
    /// Sequencer time, Unix ns.
    pub ts_ns: u64,
}

/// One change, for the streams.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Update {
    /// A trade in a market.
    Trade {
        /// Market.
        market: MarketId,
        /// The trade.
        trade: PublicTrade,
    },
    /// A book level changed.
    Level {
        /// Market.
        market: MarketId,
        /// The change, with the book's new sequence.
        change: LevelChange,
    },
    /// The book was replaced (seed or resync): increments before it no longer apply.
    Snapshot {
        /// Market.
        market: MarketId,
    },
    /// A market's current candle changed (once per command per period).
    Kline {
        /// Market.
        market: MarketId,
        /// Period.
        period: Period,
        /// The candle now.
        candle: Candle,
    },
    /// An order's record after a command (once per command per order).
    Order(Box<OrderRecord>),
    /// A fill of an account's order.
    OwnTrade {
        /// Account.
        account: AccountId,
        /// The fill.
        trade: OwnTrade,
    },
    /// A balance after a change.
    Balance {
        /// Account.
        account: AccountId,
        /// Currency.
        currency: CurrencyId,
        /// Available.
        available: Amount,
        /// Locked.
        locked: Amount,
    },
    /// A deposit credited, or a withdrawal held, settled or released (the private `deposit`
    /// and `withdraw` streams).
    Funds(peregrine_views::FundsChange),
}

/// The book and recent trades of one market, with its candles.
#[derive(Debug, Default)]
struct MarketState {
    book: Book,
    trades: VecDeque<PublicTrade>,
    klines: Klines,
}

/// Books, trades, candles and account history, as of the last applied command.
#[derive(Debug)]
pub struct MarketData {
    limits: MarketDataLimits,
    markets: HashMap<MarketId, MarketState>,
    history: History,
    applied_seq: u64,
    /// Whether a trade happened since [`MarketData::take_tickers_changed`] was last called.
    tickers_changed: bool,
    /// Book changes a mirror refused (never expected: the tap is gap-free or closed); the
    /// feed re-seeds when this grows.
    gaps: u64,
    /// Markets halted, as the seed and later market-state changes said.
    halted: HashMap<MarketId, bool>,
}

/// The core's books at one command, for seeding the mirrors.
#[derive(Clone, Debug, Default)]
pub struct Seed {
    /// Last command the views had applied when the books were read.
    pub seq: u64,
    /// Per market: the whole book, at its sequence.
    pub books: Vec<(MarketId, BookSnapshot)>,
    /// Markets halted at `seq`.
    pub halted: Vec<MarketId>,
}

impl Seed {
    /// The core's books as `views` hold them.
    pub fn of(views: &peregrine_core::Views) -> Seed {
        Seed {
            seq: views.applied_seq(),
            books: views
                .books()
                .map(|(market, book)| (market, book.snapshot(usize::MAX, usize::MAX)))
                .collect(),
            halted: views
                .books()
                .map(|(market, _)| market)
                .filter(|market| views.market(*market).is_some_and(|m| m.halted))
                .collect(),
        }
    }
}

impl MarketData {
    /// Empty, with `limits`.
    pub fn new(limits: MarketDataLimits) -> MarketData {
        assert!(limits.trades_per_market > 0);
        MarketData {
            limits,
            markets: HashMap::new(),
            history: History::new(limits.history),
            applied_seq: 0,
            tickers_changed: false,
            gaps: 0,
            halted: HashMap::new(),
        }
    }

    /// Replaces every book with `seed` (at start, or after the feed fell behind) and returns a
    /// [`Update::Snapshot`] per market. Trades, candles and history are kept: they may miss
    /// what happened while the feed was behind.
    pub fn reseed(&mut self, seed: &Seed, out: &mut Vec<Update>) {
        for (market, book) in &seed.books {
            let state = self.markets.entry(*market).or_default();
            state.book.mirror(book);
            out.push(Update::Snapshot { market: *market });
        }
        self.halted = seed.halted.iter().map(|market| (*market, true)).collect();
        self.applied_seq = seed.seq;
        // The mirrors are in step again.
        self.gaps = 0;
    }

    /// An empty rebuild with this market data's bounds, for [`MarketData::restore`].
    pub fn restorer(&self) -> Restored {
        Restored::new(self.limits.trades_per_market)
    }

    /// Installs rebuilt public trades and candles (at start, before the first command is
    /// applied): they replace what each rebuilt market had. Books and history are untouched.
    pub fn restore(&mut self, restored: Restored) {
        assert_eq!(restored.trades_per_market(), self.limits.trades_per_market);
        for (market, history) in restored.markets {
            assert!(history.trades.len() <= self.limits.trades_per_market);
            let state = self.markets.entry(market).or_default();
            state.trades = history.trades;
            state.klines = history.klines;
        }
        self.tickers_changed = true;
    }

    /// The last command applied.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// Applies one command's view changes; appends what changed to `out`. Commands at or
    /// below the applied sequence (already in a seed) are skipped.
    pub fn apply(&mut self, executed: &Executed, out: &mut Vec<Update>) {
        if executed.seq <= self.applied_seq {
            return;
        }
        self.applied_seq = executed.seq;
        let mut touched_markets: Vec<MarketId> = Vec::new();
        for change in &executed.changes {
            self.apply_change(change, out, &mut touched_markets);
        }
        for market in touched_markets {
            if let Some(state) = self.markets.get(&market) {
                for period in Period::all() {
                    if let Some(candle) = state.klines.current(period) {
                        out.push(Update::Kline {
                            market,
                            period,
                            candle,
                        });
                    }
                }
            }
        }
    }

    fn apply_change(
        &mut self,
        change: &Change,
        out: &mut Vec<Update>,
        touched_markets: &mut Vec<MarketId>,
    ) {
        match change {
            Change::Level { market, change } => {
                let book = &mut self.markets.entry(*market).or_default().book;
                match book.follow(*change) {
                    Ok(()) => out.push(Update::Level {
                        market: *market,
                        change: *change,
                    }),
                    Err(gap) => {
                        tracing::error!(%market, expected = gap.expected, found = gap.found,
                            "book mirror out of step: re-seeding");
                        self.gaps += 1;
                    }
                }
            }
            Change::Trade(trade) => {
                let state = self.markets.entry(trade.market).or_default();
                let public = PublicTrade {
                    id: trade.trade,
                    price: trade.price,
                    qty: trade.qty,
                    quote_amount: trade.quote_amount,
                    taker_side: trade.taker_side,
                    ts_ns: trade.ts_ns,
                };
                if state.trades.len() == self.limits.trades_per_market {
                    state.trades.pop_front();
                }
                state.trades.push_back(public);
                state
                    .klines
                    .trade(trade.ts_ns / 1_000_000_000, trade.price, trade.qty);
                self.tickers_changed = true;
                if !touched_markets.contains(&trade.market) {
                    touched_markets.push(trade.market);
                }
                out.push(Update::Trade {
                    market: trade.market,
                    trade: public,
                });
            }
            Change::Fill(fill) => {
                let own = OwnTrade {
                    id: fill.trade,
                    market: fill.market,
                    order: fill.order,
                    side: fill.side,
                    maker: fill.maker,
                    taker_side: fill.taker_side,
                    price: fill.price,
                    qty: fill.qty,
                    quote_amount: fill.quote_amount,
                    fee: fill.fee,
                    ts_ns: fill.ts_ns,
                };
                self.history.trade(fill.account, own.clone());
                out.push(Update::OwnTrade {
                    account: fill.account,
                    trade: own,
                });
            }
            Change::Order(record) => out.push(Update::Order(record.clone())),
            Change::MarketState { market, halted } => {
                self.halted.insert(*market, *halted);
            }
            Change::Balance {
                account,
                currency,
                available,
                locked,
            } => out.push(Update::Balance {
                account: *account,
                currency: *currency,
                available: *available,
                locked: *locked,
            }),
            Change::Funds(funds) => out.push(Update::Funds(*funds)),
            _ => {}
        }
    }

    /// A market's book, best first, limited per side.
    pub fn book(&self, market: MarketId, bids: usize, asks: usize) -> Option<BookSnapshot> {
        self.markets
            .get(&market)
            .map(|state| state.book.snapshot(bids, asks))
    }

    /// Whether `market` is halted (as the seed and the changes since said).
    pub fn halted(&self, market: MarketId) -> bool {
        self.halted.get(&market).copied().unwrap_or(false)
    }

    /// Book changes the mirrors refused as out of step (should stay 0; a re-seed repairs it).
    pub fn inconsistencies(&self) -> u64 {
        self.gaps
    }

    /// A market's recent trades, newest first, at most `limit`.
    pub fn trades(&self, market: MarketId, limit: usize) -> Vec<PublicTrade> {
        self.markets.get(&market).map_or_else(Vec::new, |state| {
            state.trades.iter().rev().take(limit).copied().collect()
        })
    }

    /// A market's candles (see [`Klines::range`]).
    pub fn klines(
        &self,
        market: MarketId,
        period: Period,
        from_s: u64,
        to_s: u64,
        limit: usize,
    ) -> Vec<Candle> {
        self.markets.get(&market).map_or_else(Vec::new, |state| {
            state.klines.range(period, from_s, to_s, limit)
        })
    }

    /// A market's 24 h statistics at `now_s`.
    pub fn ticker(&self, market: MarketId, now_s: u64) -> TickerStats {
        self.markets
            .get(&market)
            .map_or_else(TickerStats::default, |state| state.klines.ticker(now_s))
    }

    /// Whether a trade happened since the last call (for throttled ticker pushes).
    pub fn take_tickers_changed(&mut self) -> bool {
        std::mem::take(&mut self.tickers_changed)
    }

    /// Fills per account.
    pub fn history(&self) -> &History {
        &self.history
    }
}
