//! A matching shard: an `Engine` with the markets of the shard, whose ledger holds only escrow.
//!
//! Phase 2 (`run`) takes the shard's commands in sequence order. For each: the escrow it carries
//! is credited to the account (internal deposit), the engine applies the command unchanged (all
//! order types, self-trade prevention, fees, stops), and then everything that became available on
//! the engine is swept out (internal withdrawal) and returned to the owner's risk shard. Between
//! commands no account has an available balance here, so an order can lock only its own escrow.
//! Fees stay where the engine puts them: in this engine's per-currency fee total.

use crate::cluster::escrow::{credit, debit};
use crate::cluster::event::ClusterEventKind;
use crate::cluster::shard_ids::{
    MatchingShardIndex, ORDER_ID_TAG_SHIFT, global_order_id, risk_shard_of,
};
use crate::cluster::work::{Emitted, Item, MatchOut, MatchWork, Return, ReturnKind, Verdict};
use crate::command::CommandKind;
use crate::engine::Engine;
use crate::event::{Event, RejectReason};
use crate::ids::{AccountId, Amount, CurrencyId, MarketId, OrderId, Price};

/// One matching shard.
#[derive(Debug)]
pub(crate) struct MatchingShard {
    pub(crate) index: MatchingShardIndex,
    pub(crate) engine: Engine,
    risk_shards: u16,
    /// First order sequence whose local id would reach the shard tag.
    seq_limit: u64,
    /// Events of one engine command (scratch).
    events: Vec<Event>,
    /// Cells to sweep after one command (scratch).
    cells: Vec<(AccountId, CurrencyId)>,
    /// Emission counter of the current command's returns.
    emission: u32,
}

impl MatchingShard {
    pub fn new(index: MatchingShardIndex, engine: Engine, risk_shards: u16) -> MatchingShard {
        // Local ids are `seq << slot_bits | slot`, and `seq_max` is `u64::MAX >> slot_bits`.
        let slot_bits = engine.orders.seq_max().leading_zeros();
        debug_assert!(slot_bits < ORDER_ID_TAG_SHIFT);
        let seq_limit = 1u64 << (ORDER_ID_TAG_SHIFT - slot_bits);
        MatchingShard {
            index,
            engine,
            risk_shards,
            seq_limit,
            events: Vec::with_capacity(4_096),
            cells: Vec::with_capacity(4_096),
            emission: 0,
        }
    }

    /// Phase 2: the shard's commands of one batch, in sequence order.
    pub fn run(&mut self, input: &[MatchWork], out: &mut MatchOut) {
        out.clear();
        debug_assert_eq!(out.returns.len(), self.risk_shards as usize);
        debug_assert!(input.windows(2).all(|w| w[0].seq < w[1].seq));
        for work in input {
            self.apply(work, out);
        }
    }

    fn push_return(&mut self, out: &mut MatchOut, seq: u64, account: AccountId, kind: ReturnKind) {
        let risk = risk_shard_of(account, self.risk_shards);
        out.returns[risk.0 as usize].push(Return {
            seq,
            shard: self.index.0,
            emission: self.emission,
            kind,
        });
        self.emission += 1;
    }

    /// Market news goes to every risk shard.
    fn push_news(&mut self, out: &mut MatchOut, seq: u64, kind: ReturnKind) {
        for returns in &mut out.returns {
            returns.push(Return {
                seq,
                shard: self.index.0,
                emission: self.emission,
                kind: kind.clone(),
            });
        }
        self.emission += 1;
    }

    fn emit(&self, out: &mut MatchOut, seq: u64, kind: ClusterEventKind) {
        out.events.push(Emitted {
            seq,
            item: Item::Event(kind),
        });
    }

    fn apply(&mut self, work: &MatchWork, out: &mut MatchOut) {
        let seq = work.seq;
        self.emission = 0;
        self.events.clear();
        self.cells.clear();
        let mut refused = None;
        if let Some(escrow) = work.escrow {
            match credit(
                &mut self.engine,
                escrow.account,
                escrow.currency,
                escrow.amount,
            ) {
                Ok(()) => self.cells.push((escrow.account, escrow.currency)),
                Err(reason) => {
                    // Never reached this ledger: straight back to the master balance.
                    refused = Some(reason);
                    self.emit(
                        out,
                        seq,
                        ClusterEventKind::EscrowReturned {
                            account: escrow.account,
                            currency: escrow.currency,
                            amount: escrow.amount,
                            shard: self.index,
                        },
                    );
                    let kind = ReturnKind::Credit {
                        account: escrow.account,
                        currency: escrow.currency,
                        amount: escrow.amount,
                    };
                    self.push_return(out, seq, escrow.account, kind);
                }
            }
        }
        let is_new_order = matches!(work.command.kind, CommandKind::NewOrder(_));
        if refused.is_none() && is_new_order && self.engine.next_order_seq >= self.seq_limit {
            refused = Some(RejectReason::OrderCapacity);
        }
        if refused.is_none() {
            self.engine.apply(&work.command, &mut self.events);
            if let [Event::Rejected { reason }] = self.events[..] {
                refused = Some(reason);
            }
        }
        let mut last_trade: Option<(MarketId, Price)> = None;
        // Taken so the loop may call `&mut self` helpers; put back (with its capacity) below.
        let mut events = std::mem::take(&mut self.events);
        for mut event in events.drain(..) {
            self.globalize(&mut event);
            // Cells whose available amount grew hold funds to sweep back (see `sweep`).
            for change in event.balance_changes().as_slice() {
                if change.available > 0 {
                    self.cells.push((change.account, change.currency));
                }
            }
            match event {
                Event::Rejected { .. } => continue,
                Event::OrderAccepted {
                    order,
                    account,
                    client_order_id,
                    price,
                    ..
                } => {
                    let kind = ReturnKind::Accepted {
                        account,
                        client: client_order_id,
                        order,
                        price,
                    };
                    self.push_return(out, seq, account, kind);
                }
                Event::OrderFilled {
                    order,
                    account,
                    client_order_id,
                    ..
                }
                | Event::OrderCancelled {
                    order,
                    account,
                    client_order_id,
                    ..
                } => {
                    let kind = ReturnKind::Ended {
                        account,
                        client: client_order_id,
                        order,
                    };
                    self.push_return(out, seq, account, kind);
                }
                Event::OrderReplaced {
                    order,
                    account,
                    price,
                    ..
                } => {
                    let kind = ReturnKind::Replaced {
                        account,
                        order,
                        price,
                    };
                    self.push_return(out, seq, account, kind);
                }
                Event::Trade(ref trade) => last_trade = Some((trade.market, trade.price)),
                Event::MarketAdded { .. } => {
                    let spec = match &work.command.kind {
                        CommandKind::MarketAdd(spec) => Some(spec),
                        CommandKind::MarketCreate(create) => Some(&create.spec),
                        _ => None,
                    };
                    if let Some(spec) = spec {
                        self.push_news(out, seq, ReturnKind::MarketAdded(spec.clone()));
                    }
                }
                Event::MarketUpdated { market, risk } => {
                    self.push_news(out, seq, ReturnKind::MarketUpdated { market, risk });
                }
                _ => {}
            }
            self.emit(out, seq, ClusterEventKind::Engine(event));
        }
        self.events = events;
        if let Some((market, price)) = last_trade {
            self.push_news(out, seq, ReturnKind::LastPrice { market, price });
        }
        if refused.is_some()
            && work.reserved
            && let CommandKind::NewOrder(o) = &work.command.kind
        {
            let kind = ReturnKind::Unreserve {
                account: o.account,
                client: o.client_order_id,
            };
            self.push_return(out, seq, o.account, kind);
        }
        self.sweep(seq, out);
        let verdict = refused.map_or(Verdict::Accepted, Verdict::Rejected);
        out.events.push(Emitted {
            seq,
            item: Item::Done(verdict),
        });
    }

    /// Moves every available balance of the cells the command touched back to its risk shard,
    /// in (account, currency) order.
    fn sweep(&mut self, seq: u64, out: &mut MatchOut) {
        self.cells.sort_unstable();
        self.cells.dedup();
        let cells = std::mem::take(&mut self.cells);
        for &(account, currency) in &cells {
            self.sweep_cell(seq, account, currency, out);
        }
        self.cells = cells;
        if self.available_total() != 0 {
            // The engine reports every balance a command changes, so this is a bug; recover by
            // sweeping every cell (canonical order) so no funds stay stranded here.
            debug_assert!(
                false,
                "funds left available on matching shard {}",
                self.index.0
            );
            let stranded: Vec<(AccountId, CurrencyId)> = self
                .engine
                .ledger
                .nonzero()
                .filter(|(_, _, b)| b.available > 0)
                .map(|(a, c, _)| (a, c))
                .collect();
            for (account, currency) in stranded {
                self.sweep_cell(seq, account, currency, out);
            }
        }
    }

    fn sweep_cell(
        &mut self,
        seq: u64,
        account: AccountId,
        currency: CurrencyId,
        out: &mut MatchOut,
    ) {
        let available = self.engine.balance(account, currency).available;
        if available == 0 {
            return;
        }
        let amount = Amount(available);
        let swept = debit(&mut self.engine, account, currency, amount);
        assert!(swept.is_ok(), "sweep of an available balance failed");
        self.emit(
            out,
            seq,
            ClusterEventKind::EscrowReturned {
                account,
                currency,
                amount,
                shard: self.index,
            },
        );
        let kind = ReturnKind::Credit {
            account,
            currency,
            amount,
        };
        self.push_return(out, seq, account, kind);
    }

    /// Available funds on this engine over all accounts and currencies (0 between commands).
    pub fn available_total(&self) -> u128 {
        (0..self.engine.config().max_currencies)
            .map(|c| self.engine.ledger.totals(CurrencyId(c)).available)
            .sum()
    }

    /// Makes the event's order ids global.
    fn globalize(&self, event: &mut Event) {
        let g = |id: OrderId| global_order_id(self.index, id);
        match event {
            Event::OrderAccepted { order, .. }
            | Event::OrderRested { order, .. }
            | Event::StopTriggered { order, .. }
            | Event::OrderFilled { order, .. }
            | Event::OrderCancelled { order, .. }
            | Event::OrderReplaced { order, .. } => *order = g(*order),
            Event::Trade(trade) => {
                trade.maker_order = g(trade.maker_order);
                trade.taker_order = g(trade.taker_order);
            }
            _ => {}
        }
    }
}
