//! [`Views::apply_event`]: the one interpretation of each engine event.

use peregrine_hotpath::{
    AccountId, Amount, Event, MarketId, MarketState, OrderId, Price, Qty, Side, Trade,
};

use crate::change::{Change, FillChange, FundsChange, FundsKind, TradeChange};
use crate::order::{OrderRecord, OrderState, OrderTerms, OrderType};
use crate::{BalanceView, Views};

/// The wallet step `event` records, if it is one (a deposit credited, a withdrawal held,
/// settled or released).
fn funds(ts_ns: u64, event: &Event) -> Option<FundsChange> {
    let (kind, id, account, currency, amount) = match *event {
        Event::Deposited {
            account,
            currency,
            amount,
            deposit,
        } => (FundsKind::Deposited, deposit.0, account, currency, amount),
        Event::WithdrawalHeld {
            withdrawal,
            account,
            currency,
            amount,
        } => (
            FundsKind::WithdrawalHeld,
            withdrawal.0,
            account,
            currency,
            amount,
        ),
        Event::WithdrawalSettled {
            withdrawal,
            account,
            currency,
            amount,
        } => (
            FundsKind::WithdrawalSettled,
            withdrawal.0,
            account,
            currency,
            amount,
        ),
        Event::WithdrawalReleased {
            withdrawal,
            account,
            currency,
            amount,
        } => (
            FundsKind::WithdrawalReleased,
            withdrawal.0,
            account,
            currency,
            amount,
        ),
        _ => return None,
    };
    Some(FundsChange {
        kind,
        id,
        account,
        currency,
        amount,
        ts_ns,
    })
}

impl Views {
    /// Applies one event of command `seq` (stamped `ts`); appends what changed to `out`. Call
    /// [`Views::applied`] after the command's last event.
    pub fn apply_event(
        &mut self,
        seq: u64,
        ts: peregrine_hotpath::TimestampNs,
        event: &Event,
        out: &mut Vec<Change>,
    ) {
        let ts_ns = ts.0;
        self.balance_changes(event);
        match *event {
            Event::Rejected { reason } => self.update_seq(seq, ts_ns, |r| {
                if r.state == OrderState::Sequenced {
                    r.state = OrderState::Rejected;
                    r.reject = Some(reason);
                }
            }),
            Event::OrderAccepted {
                order,
                account,
                market,
                client_order_id,
                side,
                price,
                qty,
                ..
            } => self.accepted(
                seq,
                ts_ns,
                order,
                (account, market, client_order_id, side),
                price,
                qty,
            ),
            Event::OrderRested {
                order,
                market,
                side,
                price,
                qty,
                ..
            } => {
                self.level(market, side, price, qty, Qty(0), out);
                self.update_id(order, ts_ns, |r| {
                    r.rested = true;
                    r.price = price;
                    r.state = OrderState::Open;
                });
            }
            Event::StopTriggered { order, .. } => {
                self.update_id(order, ts_ns, |r| r.state = OrderState::Open);
            }
            Event::Trade(ref trade) => self.trade(seq, ts_ns, trade, out),
            Event::OrderFilled { order, .. } => self.update_id(order, ts_ns, |r| {
                r.state = OrderState::Filled;
                r.remaining_qty = Qty(0);
            }),
            Event::OrderCancelled { .. } => self.cancelled(ts_ns, event, out),
            Event::OrderReplaced { .. } => self.replaced(ts_ns, event, out),
            Event::MarketAdded { market } => {
                self.books.entry(market).or_default();
                self.markets.entry(market).or_default();
            }
            Event::MarketUpdated { market, risk } => {
                self.markets.entry(market).or_default().risk = Some(risk);
            }
            Event::MarketHalted { market } => self.market_state(market, MarketState::Locked, out),
            Event::MarketResumed { market } => {
                self.market_state(market, MarketState::Enabled, out);
            }
            Event::MarketStateChanged { market, state } => self.market_state(market, state, out),
            Event::KillSwitchSet { account, on } => {
                self.kill_switches.insert(account, on);
            }
            Event::Deposited { .. }
            | Event::WithdrawalHeld { .. }
            | Event::WithdrawalSettled { .. }
            | Event::WithdrawalReleased { .. } => {
                out.extend(funds(ts_ns, event).map(Change::Funds))
            }
            Event::AccountFeeTierSet { account, tier } => {
                if tier == 0 {
                    self.fee_tiers.remove(&account);
                } else {
                    self.fee_tiers.insert(account, tier);
                }
            }
            Event::FeeScheduleUpdated {
                market,
                tier,
                rates,
            } => {
                self.fee_updates.insert((market, tier), (rates, seq));
            }
            _ => {}
        }
    }

    /// Applies the balance changes `event` carries; the cells' `Change::Balance` follow at
    /// [`Views::applied`], once per cell per command, as the engine left them.
    fn balance_changes(&mut self, event: &Event) {
        for change in event.balance_changes().as_slice() {
            let cell = (change.account, change.currency);
            let before = self.balance(change.account, change.currency);
            let after = match change.apply_to(before.available, before.locked) {
                Some((available, locked)) => BalanceView { available, locked },
                // Only before `seed` (recovery's replay starts at a snapshot the views know
                // nothing of, and `seed` then replaces every balance): keep what is known.
                None => before,
            };
            self.balances.insert(cell, after);
            self.balances_touched.push(cell);
        }
    }

    fn accepted(
        &mut self,
        seq: u64,
        ts_ns: u64,
        order: OrderId,
        (account, market, client_order_id, side): (
            AccountId,
            MarketId,
            peregrine_hotpath::ClientOrderId,
            Side,
        ),
        price: Price,
        qty: Qty,
    ) {
        let known = self
            .orders
            .by_seq(seq)
            .is_some_and(|r| r.state == OrderState::Sequenced && r.account == account);
        if !known {
            // A command the views did not see sequenced (an engine started without them).
            self.orders.insert(OrderRecord {
                id: order,
                seq,
                account,
                market,
                client_order_id,
                side,
                terms: OrderTerms::assumed(price),
                price,
                origin_qty: qty,
                remaining_qty: qty,
                executed_qty: Qty(0),
                executed_tick_lots: 0,
                trades_count: 0,
                rested: false,
                state: OrderState::Open,
                reject: None,
                cancel: None,
                created_ns: ts_ns,
                updated_ns: ts_ns,
            });
        }
        self.update_seq(seq, ts_ns, |r| {
            r.id = order;
            r.price = price;
            r.origin_qty = qty;
            r.remaining_qty = qty;
            r.state = match r.terms.kind {
                OrderType::StopLimit | OrderType::StopMarket => OrderState::Untriggered,
                _ => OrderState::Open,
            };
        });
    }

    fn trade(&mut self, seq: u64, ts_ns: u64, trade: &Trade, out: &mut Vec<Change>) {
        let maker_side = trade.taker_side.opposite();
        let book_seq = self.level(
            trade.market,
            maker_side,
            trade.price,
            Qty(0),
            trade.qty,
            out,
        );
        self.markets.entry(trade.market).or_default().last_price = Some(trade.price);
        out.push(Change::Trade(TradeChange {
            market: trade.market,
            book_seq,
            trade: trade.trade,
            price: trade.price,
            qty: trade.qty,
            quote_amount: trade.quote_amount,
            taker_side: trade.taker_side,
            ts_ns,
        }));
        let sides: [(AccountId, OrderId, Side, bool, Amount); 2] = [
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
        ];
        for (account, order, side, maker, fee) in sides {
            self.update_id(order, ts_ns, |r| {
                r.executed_qty.0 = r.executed_qty.0.saturating_add(trade.qty.0);
                r.remaining_qty.0 = r.remaining_qty.0.saturating_sub(trade.qty.0);
                r.executed_tick_lots = r
                    .executed_tick_lots
                    .saturating_add(u128::from(trade.price.0) * u128::from(trade.qty.0));
                r.trades_count = r.trades_count.saturating_add(1);
            });
            out.push(Change::Fill(FillChange {
                seq,
                account,
                order,
                client_order_id: self.orders.client_order_id(order),
                trade: trade.trade,
                market: trade.market,
                side,
                maker,
                taker_side: trade.taker_side,
                price: trade.price,
                qty: trade.qty,
                quote_amount: trade.quote_amount,
                fee,
                ts_ns,
            }));
        }
    }

    fn cancelled(&mut self, ts_ns: u64, event: &Event, out: &mut Vec<Change>) {
        let Event::OrderCancelled {
            order,
            market,
            side,
            price,
            remaining,
            reason,
            ..
        } = *event
        else {
            return;
        };
        // Only an order that rested is in the book: a market or IOC remainder never was (its
        // event may still carry a price), and removing it would invent a level.
        let rested = self.orders.seq_of(order).map_or(price.0 != 0, |key| {
            self.orders.by_seq(key).is_some_and(|r| r.rested)
        });
        if rested && remaining.0 != 0 {
            self.level(market, side, price, Qty(0), remaining, out);
        }
        self.update_id(order, ts_ns, |r| {
            r.state = OrderState::Cancelled;
            r.remaining_qty = remaining;
            r.cancel = Some(reason);
        });
    }

    fn replaced(&mut self, ts_ns: u64, event: &Event, out: &mut Vec<Change>) {
        let Event::OrderReplaced {
            order,
            market,
            side,
            old_price,
            old_qty,
            price,
            qty,
            priority_kept,
            ..
        } = *event
        else {
            return;
        };
        if priority_kept {
            // A size decrease in place: one change of the level.
            let removed = Qty(old_qty.0.saturating_sub(qty.0));
            self.level(market, side, price, Qty(0), removed, out);
        } else {
            // Out of the book; it re-enters like a new order, and its `OrderRested` (if any
            // of it is left after taking) adds it back.
            self.level(market, side, old_price, Qty(0), old_qty, out);
        }
        self.update_id(order, ts_ns, |r| {
            r.rested = priority_kept;
            r.price = price;
            if r.terms.kind == OrderType::Limit {
                r.terms.limit = Some(price);
            }
            r.remaining_qty = qty;
            r.origin_qty = Qty(r.executed_qty.0.saturating_add(qty.0));
        });
    }

    /// The change carries only whether orders are refused: the fan-out's message format
    /// predates states, and what its readers serve (books, trades) needs no more.
    fn market_state(&mut self, market: MarketId, state: MarketState, out: &mut Vec<Change>) {
        let view = self.markets.entry(market).or_default();
        let halted = state.refuses_orders();
        view.state = state;
        view.halted = halted;
        out.push(Change::MarketState { market, halted });
    }

    /// Changes one level of `market`'s book; returns the book's new sequence.
    fn level(
        &mut self,
        market: MarketId,
        side: Side,
        price: Price,
        add: Qty,
        remove: Qty,
        out: &mut Vec<Change>,
    ) -> u64 {
        let change = self
            .books
            .entry(market)
            .or_default()
            .change(side, price, add, remove);
        out.push(Change::Level { market, change });
        change.sequence
    }

    fn update_seq(&mut self, key: u64, ts_ns: u64, change: impl FnOnce(&mut OrderRecord)) {
        if self.orders.by_seq(key).is_none() {
            return;
        }
        self.orders.update(key, |r| {
            change(r);
            r.updated_ns = ts_ns;
        });
        if !self.touched.contains(&key) {
            self.touched.push(key);
        }
    }

    fn update_id(&mut self, order: OrderId, ts_ns: u64, change: impl FnOnce(&mut OrderRecord)) {
        if let Some(key) = self.orders.seq_of(order) {
            self.update_seq(key, ts_ns, change);
        }
    }
}

#[cfg(test)]
mod tests {
    use peregrine_hotpath::{
        CancelReason, ClientOrderId, CommandKind, CurrencyId, Envelope, MarketSize, NewOrder,
        OrderKind, SelfTradePrevention, TimeInForce, TimestampNs, TradeId,
    };

    use super::*;
    use crate::{Change, OrderState, OrderType};

    fn command(account: u32, client: u64, side: Side, kind: OrderKind) -> Envelope {
        Envelope {
            ts: TimestampNs(1_000),
            actor: peregrine_hotpath::Actor::System,
            kind: CommandKind::NewOrder(NewOrder {
                account: AccountId(account),
                market: MarketId(0),
                client_order_id: ClientOrderId(client),
                side,
                kind,
                tif: TimeInForce::Gtc,
                stp: SelfTradePrevention::CancelNewest,
            }),
        }
    }

    fn limit(price: u64, qty: u64) -> OrderKind {
        OrderKind::Limit {
            price: Price(price),
            qty: Qty(qty),
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
            spend: CurrencyId(0),
            locked: Amount(0),
        }
    }

    fn run(views: &mut Views, seq: u64, command: &Envelope, events: &[Event]) -> Vec<Change> {
        let CommandKind::NewOrder(order) = &command.kind else {
            panic!("new orders only");
        };
        views.sequenced(seq, command.ts, order);
        let mut out = Vec::new();
        for event in events {
            views.apply_event(seq, command.ts, event, &mut out);
        }
        views.applied(seq, &mut out);
        out
    }

    #[test]
    fn a_match_changes_one_book_with_one_sequence_and_both_records() {
        let mut views = Views::default();
        let maker = command(1, 1, Side::Sell, limit(10, 4));
        let rested = Event::OrderRested {
            order: OrderId(1),
            market: MarketId(0),
            side: Side::Sell,
            price: Price(10),
            qty: Qty(4),
            account: AccountId(0),
            spend: CurrencyId(0),
            released: Amount(0),
        };
        let out = run(
            &mut views,
            1,
            &maker,
            &[accepted(1, 1, Side::Sell, 10, 4), rested],
        );
        assert!(matches!(out[0], Change::Level { change, .. } if change.sequence == 1));
        let trade = Trade {
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
            taker_fee: Amount(1),
            base: CurrencyId(0),
            quote: CurrencyId(0),
        };
        let filled = Event::OrderFilled {
            order: OrderId(2),
            account: AccountId(2),
            client_order_id: ClientOrderId(2),
            spend: CurrencyId(0),
            released: Amount(0),
        };
        let taker = command(2, 2, Side::Buy, limit(10, 3));
        let events = [
            accepted(2, 2, Side::Buy, 10, 3),
            Event::Trade(trade),
            filled,
        ];
        let out = run(&mut views, 2, &taker, &events);
        // The level change first, then the trade carrying the same book sequence.
        let book_seqs: Vec<u64> = out
            .iter()
            .filter_map(|c| match c {
                Change::Level { change, .. } => Some(change.sequence),
                Change::Trade(t) => Some(t.book_seq),
                _ => None,
            })
            .collect();
        assert_eq!(book_seqs, vec![2, 2]);
        let fills: Vec<_> = out
            .iter()
            .filter_map(|c| match c {
                Change::Fill(f) => Some((f.account, f.maker, f.client_order_id, f.fee)),
                _ => None,
            })
            .collect();
        assert_eq!(
            fills,
            vec![
                (AccountId(1), true, ClientOrderId(1), Amount(0)),
                (AccountId(2), false, ClientOrderId(2), Amount(1))
            ]
        );
        // One record change per touched order, after the other changes.
        let records: Vec<_> = out
            .iter()
            .filter_map(|c| match c {
                Change::Order(r) => Some((r.id, r.state, r.executed_qty, r.remaining_qty)),
                _ => None,
            })
            .collect();
        assert_eq!(
            records,
            vec![
                (OrderId(2), OrderState::Filled, Qty(3), Qty(0)),
                (OrderId(1), OrderState::Open, Qty(3), Qty(1)),
            ]
        );
        let book = views.book(MarketId(0)).unwrap().snapshot(10, 10);
        assert_eq!((book.sequence, book.asks), (2, vec![(Price(10), Qty(1))]));
        assert_eq!(
            views.market(MarketId(0)).unwrap().last_price,
            Some(Price(10))
        );
        let status = views
            .orders()
            .status(AccountId(2), ClientOrderId(2))
            .unwrap();
        assert_eq!((status.order, status.filled), (OrderId(2), Qty(3)));
    }

    #[test]
    fn an_order_that_never_rested_changes_no_level_when_cancelled() {
        let mut views = Views::default();
        let market_buy = command(
            1,
            1,
            Side::Buy,
            OrderKind::Market {
                size: MarketSize::Qty(Qty(2)),
            },
        );
        // On an empty book the engine cancels the whole market order; its event carries the
        // protection price although the order never rested.
        let cancelled = Event::OrderCancelled {
            order: OrderId(1),
            account: AccountId(1),
            client_order_id: ClientOrderId(1),
            market: MarketId(0),
            side: Side::Buy,
            price: Price(55_000),
            remaining: Qty(2),
            reason: CancelReason::Unfilled,
            spend: CurrencyId(0),
            released: Amount(0),
        };
        let out = run(
            &mut views,
            1,
            &market_buy,
            &[accepted(1, 1, Side::Buy, 55_000, 2), cancelled],
        );
        assert!(
            !out.iter().any(|c| matches!(c, Change::Level { .. })),
            "a phantom level change: {out:?}"
        );
        let record = views.orders().by_id(AccountId(1), OrderId(1)).unwrap();
        assert_eq!(
            (record.terms.kind, record.state, record.shown_price()),
            (OrderType::Market, OrderState::Cancelled, None)
        );
    }

    #[test]
    fn a_rejected_order_keeps_its_reason_and_no_id() {
        let mut views = Views::default();
        let order = command(1, 5, Side::Buy, limit(10, 1));
        let reason = peregrine_hotpath::RejectReason::InsufficientBalance;
        run(&mut views, 7, &order, &[Event::Rejected { reason }]);
        let status = views
            .orders()
            .status(AccountId(1), ClientOrderId(5))
            .unwrap();
        assert_eq!(
            (status.state, status.reject, status.order, status.seq),
            (OrderState::Rejected, Some(reason), OrderId(0), 7)
        );
    }
}
