//! The row mapper: turns one command and the follower's events for it into rows.
//!
//! The events are interpreted once, by the views the mapper feeds ([`Views`]): an order's row
//! takes its type and time in force from the views' order record, and its state (status, price,
//! open quantity) from the record as the command left it, so a row never depends on which
//! batch the order was accepted in. Ledger entries come from the balance changes the events
//! carry ([`Event::balance_changes`]): every cell a command changed, from the views' cell before
//! the command to the cell after it, so an entry is the exact difference. Each command's entries balance per currency: what the account cells gained in
//! total came from outside (a deposit: an `external` entry), left it (a settled withdrawal) or
//! went to fees (a `fees` entry, the remainder).

use std::collections::BTreeMap;

use peregrine_hotpath::{
    AccountId, Amount, CancelReason, CommandKind, CurrencyId, Engine, Envelope, Event, OrderId,
    Price, Qty, TimeInForce,
};
use peregrine_persist::Seq;
use peregrine_views::{
    BalanceView, Change, OrderRecord, OrderState as ViewState, OrderTerms, OrderType, Views,
};

use crate::entries::{self, TradeCells};
use crate::rows::{
    Batch, CurrencyRow, DepositRow, LedgerRow, MarketChange, MarketRow, OrderEventRow, OrderRow,
    OrderState, OrderStatus, Party, TradeRow, WithdrawalRow,
};

/// Maps commands and events to rows; holds what the differences need.
#[derive(Debug)]
pub struct RowMapper {
    /// Books, orders and balances as of the last mapped command.
    views: Views,
    /// Accounts whose row this replicator has committed (dense ids, bounded by the engine).
    accounts_known: Vec<bool>,
    scales: BTreeMap<CurrencyId, u8>,
    /// Scratch, reused: what the current command changed in the views.
    changes: Vec<Change>,
    /// Scratch: what the current command's trades did to each cell.
    trade_cells: TradeCells,
    /// Scratch: each cell the current command changed, as it was before the command.
    cells_before: Vec<((AccountId, CurrencyId), BalanceView)>,
    /// Scratch: the same cells after the command, in (account, currency) order.
    cells_after: Vec<((AccountId, CurrencyId), BalanceView)>,
    /// Scratch: per currency, (sum of cell changes, external flow) of the current command.
    flows: Vec<(CurrencyId, i128, i128)>,
}

/// The name of a command kind, for `ledger_entries.cause`.
pub fn command_name(kind: &CommandKind) -> &'static str {
    match kind {
        CommandKind::NewOrder(_) => "new_order",
        CommandKind::Cancel { .. } => "cancel",
        CommandKind::CancelReplace(_) => "cancel_replace",
        CommandKind::MassCancel { .. } => "mass_cancel",
        CommandKind::CurrencyAdd { .. } => "currency_add",
        CommandKind::Deposit { .. } => "deposit",
        CommandKind::WithdrawalHold { .. } => "withdrawal_hold",
        CommandKind::WithdrawalSettle { .. } => "withdrawal_settle",
        CommandKind::WithdrawalRelease { .. } => "withdrawal_release",
        CommandKind::MarketAdd(_) => "market_add",
        CommandKind::MarketUpdate(_) => "market_update",
        CommandKind::MarketHalt { .. } => "market_halt",
        CommandKind::MarketResume { .. } => "market_resume",
        CommandKind::KillSwitch { .. } => "kill_switch",
        CommandKind::FeeScheduleUpdate { .. } => "fee_schedule",
        CommandKind::AccountFeeTier { .. } => "account_fee_tier",
        CommandKind::AuditAnchor(_) => "audit_anchor",
        CommandKind::MarketStateSet { .. } => "market_state",
        CommandKind::CurrencyCreate(_) => "currency_create",
        CommandKind::MarketCreate(_) => "market_create",
        _ => "other",
    }
}

fn cancel_reason_name(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::Requested => "requested",
        CancelReason::MassCancel => "mass_cancel",
        CancelReason::KillSwitch => "kill_switch",
        CancelReason::Unfilled => "unfilled",
        CancelReason::SelfTrade => "self_trade",
        CancelReason::BudgetExhausted => "budget_exhausted",
        CancelReason::StopRejected => "stop_rejected",
        _ => "other",
    }
}

/// Type, time in force, trigger and budget of an order.
type OrderStatic = (
    Option<&'static str>,
    Option<&'static str>,
    Option<Price>,
    Option<Amount>,
);

/// An order's terms, as the views' record holds them, in the replica's column vocabulary.
fn order_static(terms: &OrderTerms) -> OrderStatic {
    let tif = match terms.tif {
        TimeInForce::Gtc => Some("gtc"),
        TimeInForce::Ioc => Some("ioc"),
        TimeInForce::Fok => Some("fok"),
        TimeInForce::PostOnly => Some("post_only"),
        _ => None,
    };
    let kind = match terms.kind {
        OrderType::Limit => "limit",
        OrderType::Market => "market",
        OrderType::StopLimit => "stop_limit",
        OrderType::StopMarket => "stop_market",
        _ => return (None, tif, terms.trigger, terms.budget),
    };
    (Some(kind), tif, terms.trigger, terms.budget)
}

/// Order records one command touches, allocated up front (a large sweep grows the scratch).
const CHANGES_INITIAL: usize = 256;

/// The row state of an order record after command `seq`; none for an order the engine never
/// accepted (sequenced or rejected: it has no row).
fn row_state(record: &OrderRecord, seq: Seq) -> Option<OrderState> {
    let status = match record.state {
        ViewState::Untriggered => OrderStatus::PendingStop,
        ViewState::Open => OrderStatus::Open,
        ViewState::Filled => OrderStatus::Filled,
        ViewState::Cancelled => OrderStatus::Cancelled,
        _ => return None,
    };
    if record.id.0 == 0 {
        return None;
    }
    Some(OrderState {
        status,
        price: record.price,
        open_qty: record.remaining_qty,
        updated_seq: seq,
    })
}

impl RowMapper {
    /// A mapper for a follower whose engine is `engine`, with `views` at the same command (see
    /// [`peregrine_persist::follow::start`]).
    pub fn new(views: Views, engine: &Engine, scales: BTreeMap<CurrencyId, u8>) -> RowMapper {
        RowMapper {
            views,
            trade_cells: TradeCells::default(),
            cells_before: Vec::with_capacity(CHANGES_INITIAL),
            cells_after: Vec::with_capacity(CHANGES_INITIAL),
            accounts_known: vec![false; engine.config().max_accounts as usize],
            scales,
            changes: Vec::with_capacity(CHANGES_INITIAL),
            flows: Vec::with_capacity(8),
        }
    }

    /// Marks the batch's new accounts as written; call once the batch is committed.
    pub fn committed(&mut self, batch: &Batch) {
        for account in batch.accounts_new.keys() {
            if let Some(known) = self.accounts_known.get_mut(account.0 as usize) {
                *known = true;
            }
        }
    }

    fn account_seen(&self, batch: &mut Batch, account: AccountId, seq: Seq) {
        let known = self
            .accounts_known
            .get(account.0 as usize)
            .copied()
            .unwrap_or(false);
        if !known {
            batch.accounts_new.entry(account).or_insert(seq);
        }
    }

    fn flow(&mut self, currency: CurrencyId) -> &mut (CurrencyId, i128, i128) {
        let index = match self.flows.iter().position(|(c, _, _)| *c == currency) {
            Some(index) => index,
            None => {
                self.flows.push((currency, 0, 0));
                self.flows.len() - 1
            }
        };
        &mut self.flows[index]
    }

    /// Adds the rows of command `seq` (and its `events`) to `batch`.
    pub fn map(&mut self, seq: Seq, command: &Envelope, events: &[Event], batch: &mut Batch) {
        assert!(
            batch.is_empty() || seq == batch.last_seq + 1,
            "commands are mapped in sequence"
        );
        let ts_ns = command.ts.0;
        if batch.is_empty() {
            batch.first_seq = seq;
            batch.first_ts_ns = ts_ns;
        }
        batch.last_seq = seq;
        batch.last_ts_ns = ts_ns;
        batch.commands_count += 1;
        batch.events_count += events.len();
        let cause = command_name(&command.kind);
        self.changes.clear();
        self.flows.clear();
        self.trade_cells.clear();
        self.cells_before.clear();
        if let CommandKind::NewOrder(new) = &command.kind {
            self.views.sequenced(seq, command.ts, new);
        }
        let mut entry_index = 0_u32;
        for (index, event) in events.iter().enumerate() {
            // Each changed cell as it was before the command (read before the views apply it).
            for change in event.balance_changes().as_slice() {
                let cell = (change.account, change.currency);
                if !self.cells_before.iter().any(|(c, _)| *c == cell) {
                    let before = self.views.balance(cell.0, cell.1);
                    self.cells_before.push((cell, before));
                }
            }
            self.views
                .apply_event(seq, command.ts, event, &mut self.changes);
            // Only the order records matter here, and `applied` appends them at the end.
            self.changes.clear();
            // Lossless: a command's events are bounded by the engine's capacities, far below 2^32.
            let event_index = index as u32;
            let mut history = |order: OrderId, kind, price, qty, reason| {
                batch.order_events.push(OrderEventRow {
                    seq,
                    event_index,
                    order,
                    kind,
                    price,
                    qty,
                    reason,
                    ts_ns,
                });
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
                    ..
                } => {
                    history(*order, "accepted", *price, *qty, None);
                    let (order_type, time_in_force, trigger_price, quote_budget) = self
                        .views
                        .orders()
                        .by_id(*account, *order)
                        .map_or((None, None, None, None), |r| order_static(&r.terms));
                    batch.orders_new.insert(
                        *order,
                        OrderRow {
                            order: *order,
                            account: *account,
                            market: *market,
                            client_order_id: *client_order_id,
                            side: *side,
                            order_type,
                            time_in_force,
                            trigger_price,
                            quote_budget,
                            accepted_price: *price,
                            accepted_qty: *qty,
                            state: OrderState {
                                status: OrderStatus::Open,
                                price: *price,
                                open_qty: *qty,
                                updated_seq: seq,
                            },
                            created_seq: seq,
                            created_ts_ns: ts_ns,
                        },
                    );
                }
                Event::OrderRested {
                    order, price, qty, ..
                } => history(*order, "rested", *price, *qty, None),
                Event::StopTriggered { order, .. } => {
                    history(*order, "triggered", Price(0), Qty(0), None)
                }
                Event::Trade(trade) => {
                    self.trade_cells.settled(&event.balance_changes());
                    batch.trades.push(TradeRow {
                        seq,
                        trade: trade.clone(),
                        ts_ns,
                    });
                }
                Event::OrderFilled { order, .. } => {
                    history(*order, "filled", Price(0), Qty(0), None)
                }
                Event::OrderCancelled {
                    order,
                    price,
                    remaining,
                    reason,
                    ..
                } => {
                    history(
                        *order,
                        "cancelled",
                        *price,
                        *remaining,
                        Some(cancel_reason_name(*reason)),
                    );
                }
                Event::OrderReplaced {
                    order, price, qty, ..
                } => history(*order, "replaced", *price, *qty, None),
                Event::CurrencyAdded { currency } => batch.currencies.push(CurrencyRow {
                    currency: *currency,
                    // A currency created at runtime carries its scale; a configured one's is
                    // the configuration's.
                    scale: match &command.kind {
                        CommandKind::CurrencyCreate(create) => Some(create.precision),
                        _ => self.scales.get(currency).copied(),
                    },
                    added_seq: seq,
                }),
                Event::Deposited {
                    account,
                    currency,
                    amount,
                    deposit,
                } => {
                    self.flow(*currency).2 -= i128::from(amount.0);
                    batch.deposits.push(DepositRow {
                        seq,
                        deposit: *deposit,
                        account: *account,
                        currency: *currency,
                        amount: *amount,
                        ts_ns,
                    });
                }
                Event::WithdrawalHeld {
                    withdrawal,
                    account,
                    currency,
                    amount,
                } => batch.withdrawals.push(WithdrawalRow {
                    seq,
                    withdrawal: *withdrawal,
                    account: *account,
                    currency: *currency,
                    amount: *amount,
                    state: "held",
                    ts_ns,
                }),
                Event::WithdrawalSettled {
                    withdrawal,
                    account,
                    currency,
                    amount,
                } => {
                    self.flow(*currency).2 += i128::from(amount.0);
                    batch.withdrawals.push(WithdrawalRow {
                        seq,
                        withdrawal: *withdrawal,
                        account: *account,
                        currency: *currency,
                        amount: *amount,
                        state: "settled",
                        ts_ns,
                    });
                }
                Event::WithdrawalReleased {
                    withdrawal,
                    account,
                    currency,
                    amount,
                } => batch.withdrawals.push(WithdrawalRow {
                    seq,
                    withdrawal: *withdrawal,
                    account: *account,
                    currency: *currency,
                    amount: *amount,
                    state: "released",
                    ts_ns,
                }),
                Event::MarketAdded { market } => {
                    let spec = match &command.kind {
                        CommandKind::MarketAdd(spec) => Some(spec),
                        CommandKind::MarketCreate(create) => Some(&create.spec),
                        _ => None,
                    };
                    if let Some(spec) = spec
                        && spec.market == *market
                    {
                        batch.markets_new.insert(
                            *market,
                            MarketRow {
                                spec: spec.clone(),
                                halted: false,
                                added_seq: seq,
                                updated_seq: seq,
                            },
                        );
                    }
                }
                Event::MarketUpdated { market, risk } => match batch.markets_new.get_mut(market) {
                    Some(row) => {
                        row.spec.risk = *risk;
                        row.updated_seq = seq;
                    }
                    None => {
                        batch.market_risks.insert(
                            *market,
                            MarketChange {
                                value: *risk,
                                updated_seq: seq,
                            },
                        );
                    }
                },
                Event::MarketHalted { market }
                | Event::MarketResumed { market }
                | Event::MarketStateChanged { market, .. } => {
                    // The replica keeps whether orders are refused (a lock or a disable).
                    let halted = match event {
                        Event::MarketStateChanged { state, .. } => state.refuses_orders(),
                        _ => matches!(event, Event::MarketHalted { .. }),
                    };
                    match batch.markets_new.get_mut(market) {
                        Some(row) => {
                            row.halted = halted;
                            row.updated_seq = seq;
                        }
                        None => {
                            batch.market_halts.insert(
                                *market,
                                MarketChange {
                                    value: halted,
                                    updated_seq: seq,
                                },
                            );
                        }
                    }
                }
                Event::KillSwitchSet { account, on } => {
                    self.account_seen(batch, *account, seq);
                    batch.account_kills.insert(
                        *account,
                        MarketChange {
                            value: *on,
                            updated_seq: seq,
                        },
                    );
                }
                Event::FeeScheduleUpdated {
                    market,
                    tier,
                    rates,
                } => {
                    batch.fee_tiers.insert(
                        (*market, *tier),
                        MarketChange {
                            value: *rates,
                            updated_seq: seq,
                        },
                    );
                }
                Event::AccountFeeTierSet { account, tier } => {
                    self.account_seen(batch, *account, seq);
                    batch.account_tiers.insert(
                        *account,
                        MarketChange {
                            value: *tier,
                            updated_seq: seq,
                        },
                    );
                }
                // Rejected changes nothing; MassCancelled's cancels were recorded one by one.
                _ => {}
            }
        }
        entry_index = self.ledger_entries(seq, cause, ts_ns, entry_index, batch);
        // The state after the command of every order it touched, read in place.
        self.views.applied_each(seq, |record| {
            let Some(state) = row_state(record, seq) else {
                return;
            };
            match batch.orders_new.get_mut(&record.id) {
                Some(row) => row.state = state,
                None => {
                    batch.order_states.insert(record.id, state);
                }
            }
        });
        self.balancing_entries(seq, cause, ts_ns, entry_index, batch);
    }

    /// The account entries of every cell the command changed, in (account, currency) order
    /// (split by cause, see [`entries::split`]); returns the next entry index.
    fn ledger_entries(
        &mut self,
        seq: Seq,
        cause: &'static str,
        ts_ns: u64,
        mut entry_index: u32,
        batch: &mut Batch,
    ) -> u32 {
        let mut after = std::mem::take(&mut self.cells_after);
        after.clear();
        self.views
            .balances_applied(|cell, balance| after.push((cell, balance)));
        self.cells_before.sort_unstable_by_key(|(cell, _)| *cell);
        assert_eq!(self.cells_before.len(), after.len(), "changed cells differ");
        for (index, &((account, currency), now)) in after.iter().enumerate() {
            let (cell, before) = self.cells_before[index];
            assert_eq!(cell, (account, currency), "changed cells differ");
            let (parts, count) = entries::split(
                cause,
                (before.available, before.locked),
                (now.available, now.locked),
                self.trade_cells.of(cell),
            );
            for part in &parts[..count] {
                self.flow(currency).1 += part.delta.0 + part.delta.1;
                batch.ledger.push(LedgerRow {
                    seq,
                    entry_index,
                    party: Party::Account(account),
                    currency,
                    available_delta: part.delta.0,
                    locked_delta: part.delta.1,
                    available_after: part.after.map(|(available, _)| available),
                    locked_after: part.after.map(|(_, locked)| locked),
                    cause: part.cause,
                    ts_ns,
                });
                entry_index += 1;
            }
            self.account_seen(batch, account, seq);
        }
        self.cells_after = after;
        entry_index
    }

    /// The `external` and `fees` entries that make the command's entries sum to zero per
    /// currency.
    fn balancing_entries(
        &mut self,
        seq: Seq,
        cause: &'static str,
        ts_ns: u64,
        mut entry_index: u32,
        batch: &mut Batch,
    ) {
        self.flows
            .sort_unstable_by_key(|(currency, _, _)| *currency);
        // Fees are only ever taken by trades.
        let fees_cause = if self.trade_cells.traded() {
            entries::TRADE_CAUSE
        } else {
            cause
        };
        for &(currency, cells, external) in &self.flows {
            let mut entry = |party, delta: i128, cause| {
                batch.ledger.push(LedgerRow {
                    seq,
                    entry_index,
                    party,
                    currency,
                    available_delta: delta,
                    locked_delta: 0,
                    available_after: None,
                    locked_after: None,
                    cause,
                    ts_ns,
                });
                entry_index += 1;
            };
            if external != 0 {
                entry(Party::External, external, cause);
            }
            // What the cells lost beyond what left the exchange went to fees.
            let fees = -(cells + external);
            assert!(
                fees >= 0,
                "cells gained more than came in: {cells} + {external}"
            );
            if fees != 0 {
                entry(Party::Fees, fees, fees_cause);
            }
        }
    }
}
