//! The routing state behind the router: commands awaiting their outcome, the order tracker,
//! the market books, and the subscriptions; [`RouteState::route`] maps one engine output to
//! whoever it concerns (the submitter by sequence, an account's subscriptions by account, a
//! market's followers by market, [`crate::Interest::Executed`] with every command's events).

use std::collections::HashMap;
use std::sync::Arc;

use peregrine_hotpath::runtime::Output;
use peregrine_hotpath::{AccountId, ClientOrderId, Event, MarketId, Price, Qty, Side, TimestampNs};
use tokio::sync::oneshot;

use crate::book::MarketBook;
use crate::notice::{Fill, Liquidity, MarketNotice, Notice};
use crate::request::Executed;
use crate::subscriptions::{Subscribers, SubscriptionId};
use crate::tracker::OrderTracker;

/// Events of one command collected up front (grows for a rare large sweep).
const EVENTS_PER_COMMAND_INITIAL: usize = 8;

/// A sequenced command whose outcome is not routed yet.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) ticket: oneshot::Sender<Executed>,
    pub(crate) reply_to: Option<SubscriptionId>,
    pub(crate) ts: TimestampNs,
    pub(crate) new_order: Option<(AccountId, ClientOrderId)>,
}

/// Everything the sequencer and the router share, under one lock.
#[derive(Debug)]
pub(crate) struct RouteState {
    pub(crate) next_seq: u64,
    pub(crate) pending: HashMap<u64, Pending>,
    pub(crate) tracker: OrderTracker,
    pub(crate) subscribers: Subscribers,
    pub(crate) books: HashMap<MarketId, MarketBook>,
    /// The events of the command being routed, collected while its ticket or an
    /// `Interest::Executed` subscription wants them.
    collecting: Option<Executed>,
}

impl RouteState {
    pub(crate) fn new(
        next_seq: u64,
        tracker: OrderTracker,
        books: HashMap<MarketId, MarketBook>,
    ) -> RouteState {
        assert!(next_seq > 0, "sequence numbers start at 1");
        RouteState {
            next_seq,
            pending: HashMap::with_capacity(4_096),
            tracker,
            subscribers: Subscribers::default(),
            books,
            collecting: None,
        }
    }

    /// Routes one output of the engine (in sequence order).
    pub(crate) fn route(&mut self, output: Output) {
        match output {
            Output::Event { seq, event } => self.route_output_event(seq, event),
            Output::Done { seq } => self.route_done(seq),
            _ => {}
        }
    }

    fn route_output_event(&mut self, seq: u64, event: Event) {
        let pending = self.pending.get(&seq);
        let wanted = self.subscribers.wants_executed()
            || pending.is_some_and(|pending| !pending.ticket.is_closed());
        if wanted {
            let ts = pending.map_or(TimestampNs(0), |p| p.ts);
            let executed = self.collecting.get_or_insert_with(|| Executed {
                seq,
                ts,
                events: Vec::with_capacity(EVENTS_PER_COMMAND_INITIAL),
            });
            debug_assert_eq!(executed.seq, seq, "events of two commands interleaved");
            executed.events.push(event.clone());
        }
        let new_order = pending.and_then(|p| p.new_order);
        self.tracker.track(seq, &event, new_order);
        self.route_event(seq, &event);
        self.tracker.untrack(&event);
    }

    fn route_done(&mut self, seq: u64) {
        let pending = self.pending.remove(&seq);
        let executed = match self.collecting.take() {
            Some(executed) if executed.seq == seq => executed,
            _ => Executed {
                seq,
                ts: pending.as_ref().map_or(TimestampNs(0), |p| p.ts),
                events: Vec::new(),
            },
        };
        if let Some(reply_to) = pending.as_ref().and_then(|p| p.reply_to) {
            self.subscribers.deliver(reply_to, Notice::Done { seq });
        }
        // The events are copied only when both a ticket and a subscription want them.
        let executed = if self.subscribers.wants_executed() {
            let shared = Arc::new(executed);
            self.subscribers
                .deliver_executed(&Notice::Executed(Arc::clone(&shared)));
            Arc::unwrap_or_clone(shared)
        } else {
            executed
        };
        if let Some(pending) = pending {
            // A caller that gave up waiting is no error: the command stands.
            let _ = pending.ticket.send(executed);
        }
    }

    fn route_event(&mut self, seq: u64, event: &Event) {
        match *event {
            Event::Rejected { reason } => {
                if let Some(reply_to) = self.pending.get(&seq).and_then(|p| p.reply_to) {
                    self.subscribers
                        .deliver(reply_to, Notice::Rejected { seq, reason });
                }
            }
            Event::OrderAccepted {
                order,
                account,
                client_order_id,
                ..
            } => {
                let notice = Notice::Accepted {
                    seq,
                    order,
                    client_order_id,
                };
                self.subscribers.deliver_account(account, &notice);
            }
            Event::OrderRested {
                market,
                side,
                price,
                qty,
                ..
            } => self.level(market, side, price, qty, Qty(0)),
            Event::Trade(ref trade) => self.route_trade(seq, trade),
            Event::OrderCancelled { .. } => self.route_cancelled(seq, event),
            Event::OrderReplaced { .. } => self.route_replaced(seq, event),
            Event::MassCancelled { account, count } => {
                let notice = Notice::MassCancelled { seq, count };
                self.subscribers.deliver_account(account, &notice);
            }
            Event::MarketAdded { market } => {
                self.books.entry(market).or_default();
            }
            _ => {}
        }
    }

    fn route_trade(&mut self, seq: u64, trade: &peregrine_hotpath::Trade) {
        let maker_side = trade.taker_side.opposite();
        let sides = [
            (
                trade.maker_order,
                trade.maker_account,
                maker_side,
                Liquidity::Maker,
                trade.maker_fee,
            ),
            (
                trade.taker_order,
                trade.taker_account,
                trade.taker_side,
                Liquidity::Taker,
                trade.taker_fee,
            ),
        ];
        for (order, account, side, liquidity, fee) in sides {
            let fill = Fill {
                seq,
                order,
                client_order_id: self.tracker.client_order_id(order),
                trade: trade.trade,
                market: trade.market,
                side,
                liquidity,
                price: trade.price,
                qty: trade.qty,
                fee: fee.0,
            };
            self.subscribers
                .deliver_account(account, &Notice::Fill(fill));
        }
        let book = self.books.entry(trade.market).or_default();
        book.seq.0 += 1;
        let notice = Notice::Market(MarketNotice::Trade {
            market: trade.market,
            market_seq: book.seq,
            trade: trade.trade,
            price: trade.price,
            qty: trade.qty,
            taker_side: trade.taker_side,
        });
        self.subscribers.deliver_market(trade.market, &notice);
        self.level(trade.market, maker_side, trade.price, Qty(0), trade.qty);
    }

    fn route_cancelled(&mut self, seq: u64, event: &Event) {
        let Event::OrderCancelled {
            order,
            account,
            client_order_id,
            market,
            side,
            price,
            remaining,
            reason,
        } = *event
        else {
            return;
        };
        let notice = Notice::Cancelled {
            seq,
            order,
            client_order_id,
            remaining,
            reason,
        };
        self.subscribers.deliver_account(account, &notice);
        // Price 0: it never rested, so the book did not hold it.
        if price.0 != 0 && remaining.0 != 0 {
            self.level(market, side, price, Qty(0), remaining);
        }
    }

    fn route_replaced(&mut self, seq: u64, event: &Event) {
        let Event::OrderReplaced {
            order,
            account,
            market,
            side,
            old_price,
            old_qty,
            price,
            qty,
            priority_kept,
        } = *event
        else {
            return;
        };
        let notice = Notice::Replaced {
            seq,
            order,
            client_order_id: self.tracker.client_order_id(order),
            price,
            qty,
            priority_kept,
        };
        self.subscribers.deliver_account(account, &notice);
        self.level(market, side, old_price, Qty(0), old_qty);
        self.level(market, side, price, qty, Qty(0));
    }

    /// Changes one level of `market`'s book and tells its followers the level's new total.
    fn level(&mut self, market: MarketId, side: Side, price: Price, add: Qty, remove: Qty) {
        let book = self.books.entry(market).or_default();
        let qty = book.change(side, price, add, remove);
        let notice = Notice::Market(MarketNotice::BookLevel {
            market,
            market_seq: book.seq,
            side,
            price,
            qty,
            snapshot: false,
        });
        self.subscribers.deliver_market(market, &notice);
    }
}
