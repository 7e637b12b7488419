//! The routing state behind the router: commands awaiting their outcome, the order tracker,
//! the market books, and the subscriptions; [`RouteState::route`] maps one engine output to
//! whoever it concerns (the submitter by sequence, an account's subscriptions by account, a
//! market's followers by market, [`crate::Interest::Executed`] with every command's events).

use std::collections::HashMap;
use std::sync::Arc;

use peregrine_hotpath::runtime::Output;
use peregrine_hotpath::{Event, NewOrder, TimestampNs};
use peregrine_views::{Change, Views};
use tokio::sync::oneshot;

use crate::notice::{Fill, Liquidity, MarketNotice, MarketSeq, Notice};
use crate::request::Executed;
use crate::subscriptions::{Subscribers, SubscriptionId};

/// Events of one command collected up front (grows for a rare large sweep).
const EVENTS_PER_COMMAND_INITIAL: usize = 8;
/// View changes of one command, allocated up front (grows for a rare large sweep).
const CHANGES_PER_COMMAND_INITIAL: usize = 16;

/// A sequenced command whose outcome is not routed yet.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) ticket: oneshot::Sender<Executed>,
    pub(crate) reply_to: Option<SubscriptionId>,
    pub(crate) ts: TimestampNs,
}

/// Everything the sequencer and the router share, under one lock.
#[derive(Debug)]
pub(crate) struct RouteState {
    pub(crate) next_seq: u64,
    pub(crate) pending: HashMap<u64, Pending>,
    /// Books, orders and balances, fed only what the router releases.
    pub(crate) views: Views,
    pub(crate) subscribers: Subscribers,
    /// The events and view changes of the command being routed, collected while its ticket or
    /// an `Interest::Executed` subscription wants them.
    collecting: Option<Executed>,
    /// View changes of the current event, reused.
    changes: Vec<Change>,
    /// A request for the client-order-id window's image once the views reach a sequence (a
    /// snapshot's): answered before the next command is applied.
    window_capture: Option<(u64, oneshot::Sender<Vec<u8>>)>,
    /// The command whose events are being routed (0: none since the last `Done`).
    routing_seq: u64,
}

impl RouteState {
    pub(crate) fn new(next_seq: u64, views: Views) -> RouteState {
        assert!(next_seq > 0, "sequence numbers start at 1");
        RouteState {
            next_seq,
            pending: HashMap::with_capacity(4_096),
            views,
            subscribers: Subscribers::default(),
            collecting: None,
            changes: Vec::with_capacity(CHANGES_PER_COMMAND_INITIAL),
            window_capture: None,
            routing_seq: 0,
        }
    }

    /// Asks for the window's image at `seq` (replacing an earlier request).
    pub(crate) fn request_window(&mut self, seq: u64, answer: oneshot::Sender<Vec<u8>>) {
        self.window_capture = Some((seq, answer));
    }

    /// Answers a window request whose sequence the views are at; drops one they passed (the
    /// requester sees the sender gone). Called before each command is applied.
    pub(crate) fn capture_window_if_due(&mut self) {
        let Some((seq, _)) = &self.window_capture else {
            return;
        };
        let applied = self.views.applied_seq();
        if applied < *seq {
            return;
        }
        if let Some((seq, answer)) = self.window_capture.take()
            && applied == seq
        {
            let _ = answer.send(self.views.orders().window_image());
        }
    }

    /// Records a freshly sequenced new order (outcome unknown) in the views.
    pub(crate) fn sequenced(&mut self, seq: u64, ts: TimestampNs, order: &NewOrder) {
        self.views.sequenced(seq, ts, order);
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
        if self.routing_seq != seq {
            // The first event of a command: the views are still at the one before.
            self.capture_window_if_due();
            self.routing_seq = seq;
        }
        let pending = self.pending.get(&seq);
        let ts = pending.map_or(TimestampNs(0), |p| p.ts);
        let wanted = self.subscribers.wants_executed()
            || pending.is_some_and(|pending| !pending.ticket.is_closed());
        let mut changes = std::mem::take(&mut self.changes);
        self.views.apply_event(seq, ts, &event, &mut changes);
        self.route_event(seq, &event);
        self.route_changes(&changes);
        if wanted {
            let executed = self.collecting.get_or_insert_with(|| Executed {
                seq,
                ts,
                events: Vec::with_capacity(EVENTS_PER_COMMAND_INITIAL),
                changes: Vec::with_capacity(CHANGES_PER_COMMAND_INITIAL),
            });
            debug_assert_eq!(executed.seq, seq, "events of two commands interleaved");
            executed.events.push(event);
            executed.changes.append(&mut changes);
        }
        changes.clear();
        self.changes = changes;
    }

    fn route_done(&mut self, seq: u64) {
        if self.routing_seq != seq {
            // A command without events: the views are still at the one before.
            self.capture_window_if_due();
        }
        self.routing_seq = 0;
        let pending = self.pending.remove(&seq);
        let mut executed = match self.collecting.take() {
            Some(executed) if executed.seq == seq => executed,
            _ => Executed {
                seq,
                ts: pending.as_ref().map_or(TimestampNs(0), |p| p.ts),
                events: Vec::new(),
                changes: Vec::new(),
            },
        };
        // The records of the orders the command touched close its changes.
        self.views.applied(seq, &mut executed.changes);
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

    /// Tells the account's subscribers what happened to its orders (the events that are
    /// notices as they are); fills and market data come from the views' changes.
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
            Event::OrderCancelled { .. } => self.route_cancelled(seq, event),
            Event::OrderReplaced { .. } => self.route_replaced(seq, event),
            Event::MassCancelled { account, count } => {
                let notice = Notice::MassCancelled { seq, count };
                self.subscribers.deliver_account(account, &notice);
            }
            _ => {}
        }
    }

    /// Routes the views' changes of one event: fills to their owners, book levels and trades
    /// to the market's followers, with the book's one sequence.
    fn route_changes(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Level { market, change } => {
                    let notice = Notice::Market(MarketNotice::BookLevel {
                        market: *market,
                        market_seq: MarketSeq(change.sequence),
                        side: change.side,
                        price: change.price,
                        qty: change.qty,
                        snapshot: false,
                    });
                    self.subscribers.deliver_market(*market, &notice);
                }
                Change::Trade(trade) => {
                    let notice = Notice::Market(MarketNotice::Trade {
                        market: trade.market,
                        market_seq: MarketSeq(trade.book_seq),
                        trade: trade.trade,
                        price: trade.price,
                        qty: trade.qty,
                        taker_side: trade.taker_side,
                    });
                    self.subscribers.deliver_market(trade.market, &notice);
                }
                Change::Fill(fill) => {
                    let notice = Notice::Fill(Fill {
                        seq: fill.seq,
                        order: fill.order,
                        client_order_id: fill.client_order_id,
                        trade: fill.trade,
                        market: fill.market,
                        side: fill.side,
                        liquidity: if fill.maker {
                            Liquidity::Maker
                        } else {
                            Liquidity::Taker
                        },
                        price: fill.price,
                        qty: fill.qty,
                        fee: fill.fee.0,
                    });
                    self.subscribers.deliver_account(fill.account, &notice);
                }
                _ => {}
            }
        }
    }

    fn route_cancelled(&mut self, seq: u64, event: &Event) {
        let Event::OrderCancelled {
            order,
            account,
            client_order_id,
            remaining,
            reason,
            ..
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
    }

    fn route_replaced(&mut self, seq: u64, event: &Event) {
        let Event::OrderReplaced {
            order,
            account,
            price,
            qty,
            priority_kept,
            ..
        } = *event
        else {
            return;
        };
        let notice = Notice::Replaced {
            seq,
            order,
            client_order_id: self.views.orders().client_order_id(order),
            price,
            qty,
            priority_kept,
        };
        self.subscribers.deliver_account(account, &notice);
    }
}
