//! Market data and account history derived from the engine's released event stream, sans IO:
//! [`MarketData::apply`] takes one command's [`Executed`] and returns what changed as
//! [`Update`]s (trades, book level changes with a gap-free per-market sequence, candles, order
//! states, own trades, balances); the caller (the REST/WebSocket bridge's feed task) owns the
//! tap, the clock and the fan-out.
//!
//! Everything is in engine units (ticks, lots, minor units, Unix ns); decimals are the edge's.
//! Every store is bounded: see [`MarketDataLimits`].

pub mod book;
pub mod history;
pub mod kline;

use std::collections::{HashMap, VecDeque};

use peregrine_hotpath::{
    AccountId, Amount, CurrencyId, Event, MarketId, Price, Qty, Side, TradeId,
};

use book::{Book, BookSnapshot, LevelChange};
use history::{History, HistoryLimits, OrderRecord, OrderState, OwnTrade};
use kline::{Candle, Klines, Period, TickerStats};
use peregrine_core::Executed;

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
    /// An order's state after a command (once per command per order).
    Order(OrderRecord),
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
}

/// Bids and asks of one market, best first.
pub type SeedBook = (MarketId, Vec<(Price, Qty)>, Vec<(Price, Qty)>);

/// The books of every market at one sequence, for seeding.
#[derive(Clone, Debug, Default)]
pub struct Seed {
    /// Last command applied by the engine when the books were read.
    pub seq: u64,
    /// Per market: bids and asks, best first.
    pub books: Vec<SeedBook>,
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
        }
    }

    /// Replaces every book with `seed` (at start, or after the feed fell behind) and returns a
    /// [`Update::Snapshot`] per market. Trades, candles and history are kept: they may miss
    /// what happened while the feed was behind.
    pub fn reseed(&mut self, seed: &Seed, out: &mut Vec<Update>) {
        for (market, bids, asks) in &seed.books {
            let state = self.markets.entry(*market).or_default();
            state.book.reseed(bids, asks);
            out.push(Update::Snapshot { market: *market });
        }
        self.applied_seq = seed.seq;
    }

    /// The last command applied.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// Applies one command's events; appends what changed to `out`. Commands at or below the
    /// applied sequence (already in a seed) are skipped.
    pub fn apply(&mut self, executed: &Executed, out: &mut Vec<Update>) {
        if executed.seq <= self.applied_seq {
            return;
        }
        self.applied_seq = executed.seq;
        let ts_ns = executed.ts.0;
        let mut touched_orders: Vec<(AccountId, peregrine_hotpath::OrderId)> = Vec::new();
        let mut touched_markets: Vec<MarketId> = Vec::new();
        for event in &executed.events {
            self.apply_event(event, ts_ns, out, &mut touched_orders, &mut touched_markets);
        }
        for market in touched_markets {
            if let Some(state) = self.markets.get(&market) {
                debug_assert!(state.book.uncrossed(), "book {market} crossed at rest");
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
        for (account, order) in touched_orders {
            if let Some(record) = self.history.order(account, order) {
                out.push(Update::Order(record.clone()));
            }
        }
    }

    fn apply_event(
        &mut self,
        event: &Event,
        ts_ns: u64,
        out: &mut Vec<Update>,
        touched_orders: &mut Vec<(AccountId, peregrine_hotpath::OrderId)>,
        touched_markets: &mut Vec<MarketId>,
    ) {
        let mut touch = |account, order| {
            if !touched_orders.contains(&(account, order)) {
                touched_orders.push((account, order));
            }
        };
        match event {
            Event::OrderAccepted {
                order,
                account,
                market,
                client_order_id,
                side,
                price,
                qty,
            } => {
                self.history.accepted(
                    *order,
                    *account,
                    *market,
                    *client_order_id,
                    *side,
                    *price,
                    *qty,
                    ts_ns,
                );
                touch(*account, *order);
            }
            Event::OrderRested {
                order,
                market,
                side,
                price,
                qty,
            } => {
                self.level(*market, *side, *price, *qty, Qty(0), out);
                if let Some(account) = self.history.owner(*order) {
                    self.history.update(account, *order, ts_ns, |o| {
                        o.state = OrderState::Wait;
                        o.price = *price;
                    });
                    touch(account, *order);
                }
            }
            Event::StopTriggered { order, .. } => {
                if let Some(account) = self.history.owner(*order) {
                    self.history
                        .update(account, *order, ts_ns, |o| o.state = OrderState::Wait);
                    touch(account, *order);
                }
            }
            Event::Trade(trade) => {
                let state = self.markets.entry(trade.market).or_default();
                let public = PublicTrade {
                    id: trade.trade,
                    price: trade.price,
                    qty: trade.qty,
                    quote_amount: trade.quote_amount,
                    taker_side: trade.taker_side,
                    ts_ns,
                };
                if state.trades.len() == self.limits.trades_per_market {
                    state.trades.pop_front();
                }
                state.trades.push_back(public);
                state
                    .klines
                    .trade(ts_ns / 1_000_000_000, trade.price, trade.qty);
                self.tickers_changed = true;
                if !touched_markets.contains(&trade.market) {
                    touched_markets.push(trade.market);
                }
                out.push(Update::Trade {
                    market: trade.market,
                    trade: public,
                });
                let maker_side = trade.taker_side.opposite();
                self.level(
                    trade.market,
                    maker_side,
                    trade.price,
                    Qty(0),
                    trade.qty,
                    out,
                );
                for (account, order, side, maker, fee) in [
                    (
                        trade.maker_account,
                        trade.maker_order,
                        maker_side,
                        true,
                        trade.maker_fee,
                    ),
                    (
                        trade.taker_account,
                        trade.taker_order,
                        trade.taker_side,
                        false,
                        trade.taker_fee,
                    ),
                ] {
                    self.history.update(account, order, ts_ns, |o| {
                        o.executed_qty.0 = o.executed_qty.0.saturating_add(trade.qty.0);
                        o.remaining_qty.0 = o.remaining_qty.0.saturating_sub(trade.qty.0);
                        o.executed_tick_lots = o
                            .executed_tick_lots
                            .saturating_add(u128::from(trade.price.0) * u128::from(trade.qty.0));
                        o.trades_count = o.trades_count.saturating_add(1);
                    });
                    touch(account, order);
                    let own = OwnTrade {
                        id: trade.trade,
                        market: trade.market,
                        order,
                        side,
                        maker,
                        taker_side: trade.taker_side,
                        price: trade.price,
                        qty: trade.qty,
                        quote_amount: trade.quote_amount,
                        fee,
                        ts_ns,
                    };
                    self.history.trade(account, own.clone());
                    out.push(Update::OwnTrade {
                        account,
                        trade: own,
                    });
                }
            }
            Event::OrderFilled { order, account, .. } => {
                self.history.update(*account, *order, ts_ns, |o| {
                    o.state = OrderState::Done;
                    o.remaining_qty = Qty(0);
                });
                self.history.finish(*account, *order);
                touch(*account, *order);
            }
            Event::OrderCancelled {
                order,
                account,
                market,
                side,
                price,
                remaining,
                ..
            } => {
                self.history.update(*account, *order, ts_ns, |o| {
                    o.state = OrderState::Cancel;
                    o.remaining_qty = *remaining;
                });
                self.history.finish(*account, *order);
                touch(*account, *order);
                // Price 0: it never rested, so the book did not hold it.
                if price.0 != 0 && remaining.0 != 0 {
                    self.level(*market, *side, *price, Qty(0), *remaining, out);
                }
            }
            Event::OrderReplaced {
                order,
                account,
                market,
                side,
                old_price,
                old_qty,
                price,
                qty,
                ..
            } => {
                self.level(*market, *side, *old_price, Qty(0), *old_qty, out);
                self.level(*market, *side, *price, *qty, Qty(0), out);
                self.history.update(*account, *order, ts_ns, |o| {
                    o.price = *price;
                    o.remaining_qty = *qty;
                    o.origin_qty = Qty(o.executed_qty.0.saturating_add(qty.0));
                });
                touch(*account, *order);
            }
            Event::Balance {
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
            Event::MarketAdded { market } => {
                self.markets.entry(*market).or_default();
            }
            _ => {}
        }
    }

    fn level(
        &mut self,
        market: MarketId,
        side: Side,
        price: Price,
        add: Qty,
        remove: Qty,
        out: &mut Vec<Update>,
    ) {
        let change = self
            .markets
            .entry(market)
            .or_default()
            .book
            .change(side, price, add, remove);
        out.push(Update::Level { market, change });
    }

    /// A market's book, best first, limited per side.
    pub fn book(&self, market: MarketId, bids: usize, asks: usize) -> Option<BookSnapshot> {
        self.markets
            .get(&market)
            .map(|state| state.book.snapshot(bids, asks))
    }

    /// Removals the books could not match (should stay 0; a resync repairs a drift).
    pub fn inconsistencies(&self) -> u64 {
        self.markets
            .values()
            .map(|state| state.book.inconsistencies())
            .sum()
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

    /// Account history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Account history, to announce order intents.
    pub fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }
}

#[cfg(test)]
mod tests {
    use peregrine_hotpath::{ClientOrderId, OrderId, TimestampNs};

    use super::*;

    fn executed(seq: u64, events: Vec<Event>) -> Executed {
        Executed {
            seq,
            ts: TimestampNs(seq * 1_000_000_000),
            events,
        }
    }

    fn accepted(order: u64, account: u32, side: Side, price: u64, qty: u64) -> Event {
        Event::OrderAccepted {
            order: OrderId(order),
            account: AccountId(account),
            market: MarketId(0),
            client_order_id: ClientOrderId(order),
            side,
            price: Price(price),
            qty: Qty(qty),
        }
    }

    fn rested(order: u64, side: Side, price: u64, qty: u64) -> Event {
        Event::OrderRested {
            order: OrderId(order),
            market: MarketId(0),
            side,
            price: Price(price),
            qty: Qty(qty),
        }
    }

    #[test]
    fn a_match_yields_trade_levels_candles_orders_and_fills_in_sequence() {
        let mut data = MarketData::new(MarketDataLimits::default());
        let mut out = Vec::new();
        data.reseed(
            &Seed {
                seq: 1,
                books: vec![(MarketId(0), vec![], vec![])],
            },
            &mut out,
        );
        assert_eq!(
            out,
            vec![Update::Snapshot {
                market: MarketId(0)
            }]
        );
        out.clear();
        // Seeded commands are skipped.
        data.apply(&executed(1, vec![rested(9, Side::Sell, 5, 5)]), &mut out);
        assert!(out.is_empty());
        data.apply(
            &executed(
                2,
                vec![
                    accepted(1, 1, Side::Sell, 10, 4),
                    rested(1, Side::Sell, 10, 4),
                ],
            ),
            &mut out,
        );
        let trade = peregrine_hotpath::Trade {
            trade: TradeId(1),
            market: MarketId(0),
            price: Price(10),
            qty: Qty(3),
            taker_side: Side::Buy,
            maker_order: OrderId(1),
            taker_order: OrderId(2),
            maker_account: AccountId(1),
            taker_account: AccountId(2),
            base_amount: Amount(3),
            quote_amount: Amount(30),
            maker_fee: Amount(0),
            taker_fee: Amount(0),
        };
        data.apply(
            &executed(
                3,
                vec![
                    accepted(2, 2, Side::Buy, 10, 3),
                    Event::Trade(trade),
                    Event::OrderFilled {
                        order: OrderId(2),
                        account: AccountId(2),
                        client_order_id: ClientOrderId(2),
                    },
                ],
            ),
            &mut out,
        );
        let sequences: Vec<u64> = out
            .iter()
            .filter_map(|u| match u {
                Update::Level { change, .. } => Some(change.sequence),
                _ => None,
            })
            .collect();
        // Seeded at 1, rest at 2, trade removal at 3: gap-free.
        assert_eq!(sequences, vec![2, 3]);
        let book = data.book(MarketId(0), 10, 10).unwrap();
        assert_eq!(book.asks, vec![(Price(10), Qty(1))]);
        assert_eq!(data.trades(MarketId(0), 10).len(), 1);
        let maker = data.history().order(AccountId(1), OrderId(1)).unwrap();
        assert_eq!(
            (maker.state, maker.executed_qty, maker.remaining_qty),
            (OrderState::Wait, Qty(3), Qty(1))
        );
        let taker = data.history().order(AccountId(2), OrderId(2)).unwrap();
        assert_eq!(taker.state, OrderState::Done);
        assert_eq!(data.history().trades(AccountId(2)).count(), 1);
        assert!(out.iter().any(|u| matches!(u, Update::Kline { .. })));
        assert!(data.take_tickers_changed());
        assert!(!data.take_tickers_changed());
        assert_eq!(data.ticker(MarketId(0), 3).last, Price(10));
        assert_eq!(data.inconsistencies(), 0);
    }
}
