//! The state machine: `apply(command, events)`. Each handler first validates everything that can
//! fail (no state touched), then executes steps that cannot fail. So a rejected command changes
//! nothing and emits exactly one `Rejected` event.

use std::collections::BTreeMap;

use crate::command::{
    CancelReplace, CommandKind, Envelope, FeeRates, MarketRisk, MarketSize, MarketSpec,
    MarketState, MarketUpdate, NewOrder, OrderKind, OrderRef, SelfTradePrevention, TimeInForce,
};
use crate::config::EngineConfig;
use crate::event::{CancelReason, Event, RejectReason};
use crate::idempotency::{Refused, SeenKeys};
use crate::ids::{
    AccountId, Amount, ClientOrderId, CurrencyId, DepositId, MarketId, OrderId, Price, Qty, Side,
    WithdrawalId,
};
use crate::ledger::{Ledger, LedgerError};
use crate::market::{MAX_FEE_PPM, MAX_FEE_TIERS, Market, StopEntry};
use crate::orders::{ClientPosition, Kind, NIL, Order, OrderState, Orders};
use crate::reference::RuntimeReference;
use crate::risk::{AccountRisk, account_risk, account_risk_mut, take_token};

/// Pending stops per market side: enough for real use, bounded so a flood is rejected.
pub(crate) const STOPS_PER_SIDE: u32 = 16_384;

/// A withdrawal whose funds are held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PendingWithdrawal {
    pub account: AccountId,
    pub currency: CurrencyId,
    pub amount: u64,
}

/// The matching engine, pre-trade risk and ledger of one shard.
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) ledger: Ledger,
    pub(crate) accounts: Vec<AccountRisk>,
    pub(crate) markets: Vec<Option<Box<Market>>>,
    pub(crate) orders: Orders,
    pub(crate) withdrawals: BTreeMap<WithdrawalId, PendingWithdrawal>,
    /// Deposit ids credited: each at most once.
    pub(crate) deposit_keys: SeenKeys,
    /// Withdrawal ids held: each at most once, pending or finished.
    pub(crate) withdrawal_keys: SeenKeys,
    /// Sequence of the next order id (see `Orders` for the id layout).
    pub(crate) next_order_seq: u64,
    pub(crate) next_trade_id: u64,
    pub(crate) commands_applied: u64,
    /// Currencies and markets created at runtime, with their names (see `reference`).
    pub(crate) reference: RuntimeReference,
}

/// What the match loop keeps of the incoming order: read once, not per trade.
#[derive(Clone, Copy, Debug)]
struct Taker {
    slot: u32,
    id: OrderId,
    account: AccountId,
    market: MarketId,
    side: Side,
    /// Limit price (market orders: the protection price).
    limit: Price,
    stp: SelfTradePrevention,
    /// A market buy sized by quote budget: done when its lock is spent, not its quantity.
    budget: bool,
    /// The taker fee rate of its account's tier (fees cannot change within a command).
    fee_ppm: u32,
}

/// Why the incoming order stopped matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchEnd {
    Filled,
    NoMoreLiquidity,
    SelfTrade,
    BudgetExhausted,
}

impl Engine {
    /// Creates an empty engine with everything allocated for `config`'s limits.
    pub fn new(config: EngineConfig) -> Result<Engine, &'static str> {
        config.validate()?;
        Ok(Engine {
            ledger: Ledger::new(config.max_accounts, config.max_currencies),
            accounts: vec![AccountRisk::default(); config.max_accounts as usize],
            markets: (0..config.max_markets).map(|_| None).collect(),
            orders: Orders::new(config.max_orders, config.max_accounts),
            withdrawals: BTreeMap::new(),
            deposit_keys: SeenKeys::new(config.idempotency_keys_max as usize),
            withdrawal_keys: SeenKeys::new(config.idempotency_keys_max as usize),
            next_order_seq: 1,
            next_trade_id: 1,
            commands_applied: 0,
            reference: RuntimeReference::default(),
            config,
        })
    }

    /// The limits this engine was created with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// How many commands were applied (accepted or rejected).
    pub fn commands_applied(&self) -> u64 {
        self.commands_applied
    }

    /// Applies one command, appending its events to `out`.
    pub fn apply(&mut self, command: &Envelope, out: &mut Vec<Event>) {
        self.commands_applied += 1;
        // Debug builds only, not a `debug_assert!`'s operand: read in every build, the length
        // was kept in a stack slot and reused by the event pushes in place of the vector's own
        // (442.6 -> 440.4 instructions a command, session 12 in perf/RESULTS.md).
        #[cfg(debug_assertions)]
        let start = out.len();
        let ts = command.ts.0;
        let result = match &command.kind {
            CommandKind::NewOrder(order) => self.new_order(ts, order, out),
            CommandKind::Cancel { account, target } => self.cancel(*account, *target, out),
            CommandKind::CancelReplace(replace) => self.cancel_replace(ts, replace, out),
            CommandKind::MassCancel {
                account,
                market,
                side,
            } => self.mass_cancel(*account, *market, *side, out),
            CommandKind::CurrencyAdd { currency } => self.currency_add(*currency, out),
            CommandKind::Deposit {
                account,
                currency,
                amount,
                deposit,
            } => self.deposit(*account, *currency, *amount, *deposit, out),
            CommandKind::WithdrawalHold {
                account,
                currency,
                amount,
                withdrawal,
            } => self.withdrawal_hold(*account, *currency, *amount, *withdrawal, out),
            CommandKind::WithdrawalSettle { withdrawal } => {
                self.withdrawal_finish(*withdrawal, true, out)
            }
            CommandKind::WithdrawalRelease { withdrawal } => {
                self.withdrawal_finish(*withdrawal, false, out)
            }
            CommandKind::MarketAdd(spec) => self.market_add(spec, out),
            CommandKind::MarketUpdate(update) => self.market_update(update, out),
            CommandKind::MarketHalt { market } => self.market_halt(*market, true, out),
            CommandKind::MarketResume { market } => self.market_halt(*market, false, out),
            CommandKind::KillSwitch { account, on } => self.kill_switch(*account, *on, out),
            CommandKind::FeeScheduleUpdate {
                market,
                tier,
                rates,
            } => self.fee_schedule_update(*market, *tier, *rates, out),
            CommandKind::AccountFeeTier { account, tier } => {
                self.account_fee_tier(*account, *tier, out)
            }
            // A record in the journal, nothing for the engine.
            CommandKind::AuditAnchor(_) => Ok(()),
            CommandKind::MarketStateSet { market, state } => {
                self.market_state_set(*market, *state, out)
            }
            CommandKind::CurrencyCreate(create) => self.currency_create(create, out),
            CommandKind::MarketCreate(create) => self.market_create(create, out),
        };
        match result {
            Ok(()) => {}
            Err(reason) => {
                // Negative space: a rejected command emitted nothing.
                #[cfg(debug_assertions)]
                assert_eq!(out.len(), start, "rejected command emitted events");
                out.push(Event::Rejected { reason });
            }
        }
        debug_assert!(
            self.ledger.check_totals().is_ok(),
            "ledger conservation broken"
        );
    }

    // ---- lookups shared by handlers ----

    fn check_account(&self, account: AccountId) -> Result<(), RejectReason> {
        if account.0 < self.config.max_accounts {
            Ok(())
        } else {
            Err(rejected(RejectReason::UnknownAccount))
        }
    }

    fn check_currency(&self, currency: CurrencyId) -> Result<(), RejectReason> {
        if currency.0 >= self.config.max_currencies {
            return Err(rejected(RejectReason::CurrencyOutOfRange));
        }
        if !self.ledger.is_registered(currency) {
            return Err(rejected(RejectReason::UnknownCurrency));
        }
        Ok(())
    }

    /// The checks every deposit and withdrawal shares: account, currency, non-zero amount.
    fn check_funds(
        &self,
        account: AccountId,
        currency: CurrencyId,
        amount: Amount,
    ) -> Result<(), RejectReason> {
        self.check_account(account)?;
        self.check_currency(currency)?;
        if amount.0 == 0 {
            return Err(rejected(RejectReason::ZeroAmount));
        }
        Ok(())
    }

    fn market(&self, market: MarketId) -> Result<&Market, RejectReason> {
        self.markets
            .get(market.0 as usize)
            .and_then(|m| m.as_deref())
            .ok_or_else(|| rejected(RejectReason::UnknownMarket))
    }

    // Always (as `check_rate`, `Ledger::lock` and `Ledger::transfer_locked`): the compiler kept
    // these out of line on the order path; inlined they measured 2.5 % fewer instructions.
    #[inline(always)]
    fn market_mut(&mut self, market: MarketId) -> &mut Market {
        market_entry_mut(&mut self.markets, market)
    }

    /// The slot of an account's live order, and where a lookup by client id found its entry
    /// in the client index (for its removal).
    // Always: the cancel and new-order paths are chains of small calls; inlined, each call's
    // register saves go (measured, session 8 step 6 in perf/RESULTS.md).
    #[inline(always)]
    fn find_order(
        &self,
        account: AccountId,
        target: OrderRef,
    ) -> Result<(u32, Option<ClientPosition>), RejectReason> {
        let found = match target {
            OrderRef::Id(id) => self.orders.find_id(id).map(|slot| (slot, None)),
            OrderRef::Client(client) => self
                .orders
                .find_client_at(account, client)
                .map(|(slot, position)| (slot, Some(position))),
        };
        match found {
            Some((slot, position)) if self.orders.get(slot).account == account => {
                Ok((slot, position))
            }
            _ => Err(rejected(RejectReason::UnknownOrder)),
        }
    }

    #[inline(always)]
    fn check_rate(&self, account: AccountId, ts: u64) -> Result<Option<(u64, u64)>, RejectReason> {
        if self.config.order_rate_per_sec == 0 {
            return Ok(None);
        }
        let risk = account_risk(&self.accounts, account);
        take_token(
            risk,
            ts,
            self.config.order_rate_per_sec,
            self.config.order_burst,
        )
        .map(Some)
        .ok_or_else(|| rejected(RejectReason::RateLimited))
    }

    fn commit_rate(&mut self, account: AccountId, bucket: Option<(u64, u64)>) {
        if let Some((tokens_nano, refilled_ns)) = bucket {
            let risk = account_risk_mut(&mut self.accounts, account);
            risk.tokens_nano = tokens_nano;
            risk.refilled_ns = refilled_ns;
        }
    }

    // ---- orders ----

    fn new_order(
        &mut self,
        ts: u64,
        o: &NewOrder,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        self.check_account(o.account)?;
        let market = self.market(o.market)?;
        if market.halted {
            return Err(rejected(market.refusal()));
        }
        let risk = *account_risk(&self.accounts, o.account);
        if risk.kill_switch {
            return Err(rejected(RejectReason::KillSwitchActive));
        }
        let parsed = parse_order(market, o)?;
        // Nothing below changes the orders before the insert, so the vacancy stays valid.
        let Some(vacancy) = self.orders.client_vacancy(o.account, o.client_order_id) else {
            return Err(rejected(RejectReason::DuplicateClientOrderId));
        };
        if risk.open_orders >= self.config.max_open_orders_per_account {
            return Err(rejected(RejectReason::TooManyOpenOrders));
        }
        if self.orders.is_full() || self.next_order_seq > self.orders.seq_max() {
            return Err(rejected(RejectReason::OrderCapacity));
        }
        let is_stop = matches!(parsed.kind, Kind::StopLimit | Kind::StopMarket { .. });
        // A resting limit order that cannot trade (most new orders) skips the match loop.
        let mut rests_at_once = false;
        if is_stop {
            if market.stops_full(o.side) {
                return Err(rejected(RejectReason::OrderCapacity));
            }
            if market.stop_reached(o.side, parsed.trigger) {
                return Err(rejected(RejectReason::StopWouldTriggerNow));
            }
        } else {
            let rests = parsed.kind == Kind::Limit
                && matches!(o.tif, TimeInForce::Gtc | TimeInForce::PostOnly);
            // Conservative: a new level must fit even if the order might fill completely.
            if rests && !market.own_ref(o.side).has_room_for(parsed.price) {
                return Err(rejected(RejectReason::BookFull));
            }
            let crosses = market.crosses(o.side, parsed.price);
            if o.tif == TimeInForce::PostOnly && crosses {
                return Err(rejected(RejectReason::PostOnlyWouldTake));
            }
            rests_at_once = rests && !crosses;
            if o.tif == TimeInForce::Fok
                && !fok_fillable(
                    market,
                    &self.orders,
                    o.side,
                    parsed.price,
                    parsed.qty,
                    o.account,
                    o.stp,
                )
            {
                return Err(rejected(RejectReason::FokNotFillable));
            }
        }
        let spend = spend_currency(market, o.side);
        let cell = self.ledger.cell(o.account, spend);
        if self.ledger.available_at(cell) < parsed.lock {
            return Err(rejected(RejectReason::InsufficientBalance));
        }
        let bucket = self.check_rate(o.account, ts)?;

        // ---- execute: nothing below fails ----
        let market_id = o.market;
        self.commit_rate(o.account, bucket);
        let locked = self.ledger.lock_at(cell, parsed.lock);
        debug_assert!(locked.is_ok());
        let seq = self.next_order_seq;
        self.next_order_seq += 1;
        let (slot, id) = self.orders.insert_vacant(seq, vacancy, |id| Order {
            id,
            account: o.account,
            market: market_id,
            client_order_id: o.client_order_id,
            spend,
            side: o.side,
            kind: parsed.kind,
            tif: o.tif,
            stp: o.stp,
            state: if is_stop {
                OrderState::PendingStop
            } else if rests_at_once {
                OrderState::Resting
            } else {
                OrderState::Taking
            },
            price: parsed.price,
            trigger: parsed.trigger,
            qty: parsed.qty,
            locked: parsed.lock,
            prev: NIL,
            next: NIL,
            acct_prev: NIL,
            acct_next: NIL,
            level_hint: NIL,
        });
        account_risk_mut(&mut self.accounts, o.account).open_orders += 1;
        out.push(Event::OrderAccepted {
            order: id,
            account: o.account,
            market: market_id,
            client_order_id: o.client_order_id,
            side: o.side,
            price: parsed.price,
            qty: parsed.qty,
            spend,
            locked: Amount(parsed.lock),
        });
        if is_stop {
            let entry = StopEntry {
                trigger: parsed.trigger,
                id: id.0,
                slot,
            };
            self.market_mut(market_id).push_stop(o.side, entry);
            return Ok(());
        }
        if rests_at_once {
            // What `rest` does, knowing more: a limit order's lock (`limit_lock`) is exactly what
            // resting needs, so nothing is released and the order was built resting. And no
            // trade, so no stop to trigger (after every command none is reached).
            debug_assert_eq!(
                parsed.lock,
                resting_lock(
                    Some(market_entry(&self.markets, market_id)),
                    o.side,
                    parsed.price,
                    parsed.qty
                )
            );
            let market = market_entry_mut(&mut self.markets, market_id);
            debug_assert!(!market.has_reached_stop());
            market.own(o.side).push(&mut self.orders, slot);
            out.push(Event::OrderRested {
                order: id,
                account: o.account,
                market: market_id,
                side: o.side,
                price: parsed.price,
                qty: parsed.qty,
                spend,
                released: Amount(0),
            });
            return Ok(());
        }
        self.take(slot, out);
        self.run_stops(market_id, out);
        Ok(())
    }

    /// Matches the order in `slot` as the incoming order, then rests, fills or cancels it.
    fn take(&mut self, slot: u32, out: &mut Vec<Event>) {
        let end = self.match_taker(slot, out);
        let o = self.orders.get(slot);
        let done = match o.kind {
            Kind::Market { budget: true } => o.locked == 0,
            _ => o.qty.0 == 0,
        };
        if done || end == MatchEnd::Filled {
            self.finish(slot, None, out);
            return;
        }
        let rests = o.kind == Kind::Limit
            && matches!(o.tif, TimeInForce::Gtc | TimeInForce::PostOnly)
            && end == MatchEnd::NoMoreLiquidity;
        if rests {
            self.rest(slot, out);
            return;
        }
        let reason = match end {
            MatchEnd::SelfTrade => CancelReason::SelfTrade,
            MatchEnd::BudgetExhausted => CancelReason::BudgetExhausted,
            MatchEnd::Filled | MatchEnd::NoMoreLiquidity => CancelReason::Unfilled,
        };
        self.finish(slot, Some(reason), out);
    }

    /// Puts a taking limit order into the book, releasing any lock above what its rest needs.
    fn rest(&mut self, slot: u32, out: &mut Vec<Event>) {
        let o = self.orders.get(slot);
        debug_assert_eq!(o.state, OrderState::Taking);
        let (id, account, market_id, side) = (o.id, o.account, o.market, o.side);
        let (price, qty, locked, spend) = (o.price, o.qty, o.locked, o.spend);
        let market = market_entry_mut(&mut self.markets, market_id);
        let needed = resting_lock(Some(market), side, price, qty);
        assert!(locked >= needed, "resting order under-locked");
        let excess = locked - needed;
        {
            let o = self.orders.get_mut(slot);
            o.locked = needed;
            o.state = OrderState::Resting;
        }
        market.own(side).push(&mut self.orders, slot);
        if excess > 0 {
            self.ledger.unlock(account, spend, excess);
        }
        out.push(Event::OrderRested {
            order: id,
            account,
            market: market_id,
            side,
            price,
            qty,
            spend,
            released: Amount(excess),
        });
    }

    /// Removes an order that is not in the book (filled, or cancelled with `reason`), releasing
    /// its remaining lock. Reads the fields the event needs in place, copies no order.
    // Always: the cancel and new-order paths are chains of small calls; inlined, each call's
    // register saves go (measured, session 8 step 6 in perf/RESULTS.md).
    #[inline(always)]
    fn finish(&mut self, slot: u32, reason: Option<CancelReason>, out: &mut Vec<Event>) {
        self.finish_at(slot, reason, None, out);
    }

    /// `finish`, for an order whose client-index entry a lookup found at `position`.
    #[inline(always)]
    fn finish_at(
        &mut self,
        slot: u32,
        reason: Option<CancelReason>,
        position: Option<ClientPosition>,
        out: &mut Vec<Event>,
    ) {
        let o = self.orders.get(slot);
        debug_assert_ne!(o.state, OrderState::Resting);
        let (account, spend, locked) = (o.account, o.spend, o.locked);
        out.push(match reason {
            None => Event::OrderFilled {
                order: o.id,
                account,
                client_order_id: o.client_order_id,
                spend,
                released: Amount(locked),
            },
            Some(reason) => Event::OrderCancelled {
                order: o.id,
                account,
                client_order_id: o.client_order_id,
                market: o.market,
                side: o.side,
                price: if o.state == OrderState::PendingStop {
                    Price(0)
                } else {
                    o.price
                },
                remaining: o.qty,
                reason,
                spend,
                released: Amount(locked),
            },
        });
        self.orders.remove_at(slot, position);
        if locked > 0 {
            self.ledger.unlock(account, spend, locked);
        }
        let risk = account_risk_mut(&mut self.accounts, account);
        assert!(risk.open_orders > 0);
        risk.open_orders -= 1;
    }

    /// Cancels a live order wherever it is (book or pending stops).
    // Always: the cancel and new-order paths are chains of small calls; inlined, each call's
    // register saves go (measured, session 8 step 6 in perf/RESULTS.md).
    #[inline(always)]
    fn cancel_slot(&mut self, slot: u32, reason: CancelReason, out: &mut Vec<Event>) {
        self.cancel_slot_at(slot, reason, None, out);
    }

    /// `cancel_slot`, for an order whose client-index entry a lookup found at `position`.
    #[inline(always)]
    fn cancel_slot_at(
        &mut self,
        slot: u32,
        reason: CancelReason,
        position: Option<ClientPosition>,
        out: &mut Vec<Event>,
    ) {
        let o = self.orders.get(slot);
        let (id, market_id, side, state, trigger) = (o.id, o.market, o.side, o.state, o.trigger);
        let market = market_entry_mut(&mut self.markets, market_id);
        match state {
            OrderState::Resting => {
                market.own(side).unlink(&mut self.orders, slot);
                // Out of the book now; `finish` still reports the price it rested at.
                self.orders.get_mut(slot).state = OrderState::Taking;
            }
            OrderState::PendingStop => market.remove_stop(side, trigger, id.0),
            OrderState::Taking => unreachable!("cancel of the incoming order"),
        }
        self.finish_at(slot, Some(reason), position, out);
    }

    /// What the match loop keeps of the incoming order in `slot`: read once, not per trade.
    fn taker(&self, slot: u32) -> Taker {
        let o = self.orders.get(slot);
        let tier = fee_tier(account_risk(&self.accounts, o.account));
        let fee_ppm = market_entry(&self.markets, o.market).fees[tier].taker_ppm;
        Taker {
            slot,
            id: o.id,
            account: o.account,
            market: o.market,
            side: o.side,
            limit: o.price,
            stp: o.stp,
            budget: matches!(o.kind, Kind::Market { budget: true }),
            fee_ppm,
        }
    }

    /// The matching loop: trades the order in `slot` against the opposite side, best price first,
    /// oldest first within a price, at the resting order's price.
    fn match_taker(&mut self, slot: u32, out: &mut Vec<Event>) -> MatchEnd {
        let taker = self.taker(slot);
        // Every iteration removes or fills a resting order, or ends: bounded by the live orders.
        let bound = self.orders.live() as usize + 1;
        for _ in 0..bound {
            let (open, locked) = {
                let o = self.orders.get(slot);
                (o.qty.0, o.locked)
            };
            // A budget buy is done when its budget is spent, any other order when it is filled.
            if (if taker.budget { locked } else { open }) == 0 {
                return MatchEnd::Filled;
            }
            let market = market_entry(&self.markets, taker.market);
            let Some(level) = market.opposite_ref(taker.side).best() else {
                return MatchEnd::NoMoreLiquidity;
            };
            let price = level.price;
            let crosses = match taker.side {
                Side::Buy => price <= taker.limit,
                Side::Sell => price >= taker.limit,
            };
            if !crosses {
                return MatchEnd::NoMoreLiquidity;
            }
            let maker_slot = level.head;
            let maker = self.orders.get(maker_slot);
            let (maker_account, maker_open) = (maker.account, maker.qty.0);
            if maker_account == taker.account {
                match taker.stp {
                    SelfTradePrevention::CancelNewest => return MatchEnd::SelfTrade,
                    SelfTradePrevention::CancelOldest => {
                        self.cancel_slot(maker_slot, CancelReason::SelfTrade, out);
                        continue;
                    }
                    SelfTradePrevention::CancelBoth => {
                        self.cancel_slot(maker_slot, CancelReason::SelfTrade, out);
                        return MatchEnd::SelfTrade;
                    }
                }
            }
            let qty = if taker.budget {
                let quote_per_tick_lot = market.spec.quote_per_tick_lot;
                crate::market::lots_for_budget(locked, price, quote_per_tick_lot).min(maker_open)
            } else {
                open.min(maker_open)
            };
            if qty == 0 {
                return MatchEnd::BudgetExhausted;
            }
            self.execute(&taker, maker_slot, maker_account, price, Qty(qty), out);
        }
        unreachable!("matching loop exceeded its bound")
    }

    /// One trade between the taker and the oldest order of the best opposite level: settles both
    /// sides in the ledger and edits both orders and the level in place.
    fn execute(
        &mut self,
        taker: &Taker,
        maker_slot: u32,
        maker_account: AccountId,
        price: Price,
        qty: Qty,
        out: &mut Vec<Event>,
    ) {
        let maker_tier = fee_tier(account_risk(&self.accounts, maker_account));
        let market = market_entry_mut(&mut self.markets, taker.market);
        let base = market.base_amount(qty);
        let quote = market.quote_amount(price, qty);
        let (base_ccy, quote_ccy) = (market.spec.base, market.spec.quote);
        let maker_ppm = market.fees[maker_tier].maker_ppm;
        market.set_last_price(Some(price));
        let book = market.opposite(taker.side);
        debug_assert_eq!(book.best().map(|level| level.head), Some(maker_slot));
        // The buyer pays quote, the seller base; each pays the fee on what it receives.
        let (buyer, seller, buyer_ppm, seller_ppm) = match taker.side {
            Side::Buy => (taker.account, maker_account, taker.fee_ppm, maker_ppm),
            Side::Sell => (maker_account, taker.account, maker_ppm, taker.fee_ppm),
        };
        let buyer_fee = crate::market::fee(base, buyer_ppm);
        let seller_fee = crate::market::fee(quote, seller_ppm);
        self.ledger
            .transfer_locked(buyer, seller, quote_ccy, quote, seller_fee);
        self.ledger
            .transfer_locked(seller, buyer, base_ccy, base, buyer_fee);
        let (taker_pays, maker_pays, taker_fee, maker_fee) = match taker.side {
            Side::Buy => (quote, base, buyer_fee, seller_fee),
            Side::Sell => (base, quote, seller_fee, buyer_fee),
        };
        let (maker_id, maker_open) = {
            let m = self.orders.get_mut(maker_slot);
            assert!(m.locked >= maker_pays, "maker under-locked");
            m.locked -= maker_pays;
            m.qty.0 -= qty.0;
            (m.id, m.qty.0)
        };
        {
            let t = self.orders.get_mut(taker.slot);
            assert!(t.locked >= taker_pays, "taker under-locked");
            t.locked -= taker_pays;
            if !taker.budget {
                t.qty.0 -= qty.0;
            }
        }
        let trade = crate::ids::TradeId(self.next_trade_id);
        self.next_trade_id += 1;
        out.push(Event::Trade(crate::event::Trade {
            trade,
            market: taker.market,
            price,
            qty,
            taker_side: taker.side,
            maker_order: maker_id,
            taker_order: taker.id,
            maker_account,
            taker_account: taker.account,
            base_amount: Amount(base),
            quote_amount: Amount(quote),
            maker_fee: Amount(maker_fee),
            taker_fee: Amount(taker_fee),
            base: base_ccy,
            quote: quote_ccy,
        }));
        book.fill_best_head(&mut self.orders, qty.0, maker_open == 0);
        if maker_open == 0 {
            // A resting order is locked for exactly its remaining quantity at its price.
            debug_assert_eq!(self.orders.get(maker_slot).locked, 0);
            self.orders.get_mut(maker_slot).state = OrderState::Taking;
            self.finish(maker_slot, None, out);
        }
    }

    /// Triggers the pending stops the last trade price has reached, in trigger then time order.
    #[inline]
    fn run_stops(&mut self, market_id: MarketId, out: &mut Vec<Event>) {
        // Most markets have no pending stops: skip the call and its bookkeeping (the check is
        // the loop's own bound, zero).
        let market = self.market_mut(market_id);
        if market.buy_stops.is_empty() && market.sell_stops.is_empty() {
            return;
        }
        self.trigger_stops(market_id, out);
    }

    /// The body of `run_stops`, out of line: it runs only when the market has pending stops.
    #[inline(never)]
    fn trigger_stops(&mut self, market_id: MarketId, out: &mut Vec<Event>) {
        let market = self.market_mut(market_id);
        // Each stop triggers at most once and none are added meanwhile: bounded by their count.
        let bound = market.buy_stops.len() + market.sell_stops.len();
        for _ in 0..bound {
            let market = self.market_mut(market_id);
            let Some(entry) = market.pop_reached_stop() else {
                return;
            };
            let order = *self.orders.get(entry.slot);
            debug_assert_eq!(order.state, OrderState::PendingStop);
            out.push(Event::StopTriggered {
                order: order.id,
                market: market_id,
            });
            let market = self.market_mut(market_id);
            match order.kind {
                Kind::StopLimit => {
                    let ok = market.within_band(order.side, order.price)
                        && market.own_ref(order.side).has_room_for(order.price)
                        && !(order.tif == TimeInForce::PostOnly
                            && market.crosses(order.side, order.price));
                    let o = self.orders.get_mut(entry.slot);
                    o.state = OrderState::Taking;
                    if !ok {
                        o.price = Price(0);
                        self.finish(entry.slot, Some(CancelReason::StopRejected), out);
                        continue;
                    }
                    o.kind = Kind::Limit;
                }
                Kind::StopMarket { budget } => {
                    let protection = market.protection_price(order.side);
                    let o = self.orders.get_mut(entry.slot);
                    o.state = OrderState::Taking;
                    o.kind = Kind::Market { budget };
                    o.price = protection;
                }
                Kind::Limit | Kind::Market { .. } => {
                    unreachable!("pending stop of a non-stop kind")
                }
            }
            self.take(entry.slot, out);
        }
    }

    fn cancel(
        &mut self,
        account: AccountId,
        target: OrderRef,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        self.check_account(account)?;
        let (slot, position) = self.find_order(account, target)?;
        self.cancel_slot_at(slot, CancelReason::Requested, position, out);
        Ok(())
    }

    fn mass_cancel(
        &mut self,
        account: AccountId,
        market: Option<MarketId>,
        side: Option<Side>,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        self.check_account(account)?;
        if let Some(m) = market {
            self.market(m)?;
        }
        let count = self.cancel_all(account, market, side, CancelReason::MassCancel, out);
        out.push(Event::MassCancelled { account, count });
        Ok(())
    }

    /// Cancels the account's orders matching the filters, oldest first; returns how many.
    fn cancel_all(
        &mut self,
        account: AccountId,
        market: Option<MarketId>,
        side: Option<Side>,
        reason: CancelReason,
        out: &mut Vec<Event>,
    ) -> u32 {
        let mut count = 0;
        let mut slot = self.orders.account_head(account);
        // Bounded by the account's open orders: each step advances along its list.
        let bound = account_risk(&self.accounts, account).open_orders;
        for _ in 0..bound {
            if slot == NIL {
                break;
            }
            let order = *self.orders.get(slot);
            let next = order.acct_next;
            if market.is_none_or(|m| m == order.market) && side.is_none_or(|s| s == order.side) {
                self.cancel_slot(slot, reason, out);
                count += 1;
            }
            slot = next;
        }
        debug_assert_eq!(slot, NIL, "account list longer than its open-order count");
        count
    }

    fn cancel_replace(
        &mut self,
        ts: u64,
        r: &CancelReplace,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        self.check_account(r.account)?;
        let (slot, _) = self.find_order(r.account, r.target)?;
        let order = *self.orders.get(slot);
        if order.state != OrderState::Resting || order.kind != Kind::Limit {
            return Err(rejected(RejectReason::InvalidReplace));
        }
        let market = self.market(order.market)?;
        if market.halted {
            return Err(rejected(market.refusal()));
        }
        if account_risk(&self.accounts, r.account).kill_switch {
            return Err(rejected(RejectReason::KillSwitchActive));
        }
        let price = r.new_price.unwrap_or(order.price);
        let qty = r.new_qty;
        if qty.0 == 0 {
            return Err(rejected(RejectReason::ZeroQty));
        }
        if qty > market.risk.max_qty {
            return Err(rejected(RejectReason::QtyTooLarge));
        }
        if price.0 == 0 || price > market.risk.max_price {
            return Err(rejected(RejectReason::InvalidPrice));
        }
        if price == order.price && qty == order.qty {
            return Err(rejected(RejectReason::InvalidReplace));
        }
        if price != order.price && !market.within_band(order.side, price) {
            return Err(rejected(RejectReason::PriceOutOfBand));
        }
        if market.quote_amount(price, qty) > market.risk.max_notional.0 {
            return Err(rejected(RejectReason::NotionalTooLarge));
        }
        let keeps_priority = price == order.price && qty < order.qty;
        if !keeps_priority {
            // The order leaves its level first, so only a different price needs a new level.
            let own = market.own_ref(order.side);
            if price != order.price && !own.has_room_for(price) {
                return Err(rejected(RejectReason::BookFull));
            }
            if order.tif == TimeInForce::PostOnly && market.crosses(order.side, price) {
                return Err(rejected(RejectReason::PostOnlyWouldTake));
            }
        }
        let spend = spend_currency(market, order.side);
        let needed = match order.side {
            Side::Buy => market.quote_amount(price, qty),
            Side::Sell => market.base_amount(qty),
        };
        let cell = self.ledger.cell(r.account, spend);
        if needed > order.locked && self.ledger.available_at(cell) < needed - order.locked {
            return Err(rejected(RejectReason::InsufficientBalance));
        }
        let bucket = self.check_rate(r.account, ts)?;

        // ---- execute ----
        self.commit_rate(r.account, bucket);
        if needed > order.locked {
            let locked = self.ledger.lock_at(cell, needed - order.locked);
            debug_assert!(locked.is_ok());
        } else if needed < order.locked {
            self.ledger.unlock(r.account, spend, order.locked - needed);
        }
        let event = Event::OrderReplaced {
            order: order.id,
            account: order.account,
            market: order.market,
            side: order.side,
            old_price: order.price,
            old_qty: order.qty,
            price,
            qty,
            priority_kept: keeps_priority,
            spend,
            old_locked: Amount(order.locked),
            locked: Amount(needed),
        };
        let market_id = order.market;
        if keeps_priority {
            self.market_mut(market_id).own(order.side).reduce(
                order.price,
                order.level_hint,
                order.qty.0 - qty.0,
            );
            let o = self.orders.get_mut(slot);
            o.qty = qty;
            o.locked = needed;
            out.push(event);
            return Ok(());
        }
        let market = market_entry_mut(&mut self.markets, market_id);
        market.own(order.side).unlink(&mut self.orders, slot);
        {
            let o = self.orders.get_mut(slot);
            o.price = price;
            o.qty = qty;
            o.locked = needed;
            o.state = OrderState::Taking;
        }
        out.push(event);
        // A new price may cross: the order takes like a new one, then rests what is left.
        let market = self.market_mut(market_id);
        // Only resting limit orders are replaced: GTC or post-only, which rest when they can.
        debug_assert!(matches!(
            order.tif,
            TimeInForce::Gtc | TimeInForce::PostOnly
        ));
        if !market.crosses(order.side, price) {
            // No trade, so no stop to trigger (as for a new order that rests at once).
            debug_assert!(!market.has_reached_stop());
            self.rest(slot, out);
            return Ok(());
        }
        self.take(slot, out);
        self.run_stops(market_id, out);
        Ok(())
    }

    // ---- funds ----

    pub(crate) fn currency_add(
        &mut self,
        currency: CurrencyId,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        if currency.0 >= self.config.max_currencies {
            return Err(rejected(RejectReason::CurrencyOutOfRange));
        }
        if self.ledger.is_registered(currency) {
            return Err(rejected(RejectReason::CurrencyExists));
        }
        self.ledger.register(currency);
        out.push(Event::CurrencyAdded { currency });
        Ok(())
    }

    fn deposit(
        &mut self,
        account: AccountId,
        currency: CurrencyId,
        amount: Amount,
        deposit: DepositId,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        self.check_funds(account, currency, amount)?;
        self.deposit_keys
            .check(deposit.0)
            .map_err(|refused| match refused {
                Refused::Duplicate => RejectReason::DuplicateDeposit,
                Refused::Expired => RejectReason::IdempotencyKeyExpired,
            })?;
        self.ledger
            .deposit(account, currency, amount)
            .map_err(|e| match e {
                LedgerError::Overflow => RejectReason::AmountOverflow,
                LedgerError::Insufficient => RejectReason::InsufficientBalance,
            })?;
        self.deposit_keys.insert(deposit.0);
        out.push(Event::Deposited {
            account,
            currency,
            amount,
            deposit,
        });
        Ok(())
    }

    fn withdrawal_hold(
        &mut self,
        account: AccountId,
        currency: CurrencyId,
        amount: Amount,
        withdrawal: WithdrawalId,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        self.check_funds(account, currency, amount)?;
        if self.withdrawals.contains_key(&withdrawal) {
            return Err(rejected(RejectReason::DuplicateWithdrawal));
        }
        self.withdrawal_keys
            .check(withdrawal.0)
            .map_err(|refused| match refused {
                Refused::Duplicate => RejectReason::DuplicateWithdrawal,
                Refused::Expired => RejectReason::IdempotencyKeyExpired,
            })?;
        if self.withdrawals.len() >= self.config.max_pending_withdrawals as usize {
            return Err(rejected(RejectReason::WithdrawalCapacity));
        }
        self.ledger
            .lock(account, currency, amount.0)
            .map_err(|_| RejectReason::InsufficientBalance)?;
        self.withdrawal_keys.insert(withdrawal.0);
        self.withdrawals.insert(
            withdrawal,
            PendingWithdrawal {
                account,
                currency,
                amount: amount.0,
            },
        );
        out.push(Event::WithdrawalHeld {
            withdrawal,
            account,
            currency,
            amount,
        });
        Ok(())
    }

    fn withdrawal_finish(
        &mut self,
        withdrawal: WithdrawalId,
        settle: bool,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let w = self
            .withdrawals
            .remove(&withdrawal)
            .ok_or(RejectReason::UnknownWithdrawal)?;
        let (account, currency, amount) = (w.account, w.currency, Amount(w.amount));
        if settle {
            self.ledger.withdraw_locked(account, currency, w.amount);
            out.push(Event::WithdrawalSettled {
                withdrawal,
                account,
                currency,
                amount,
            });
        } else {
            self.ledger.unlock(account, currency, w.amount);
            out.push(Event::WithdrawalReleased {
                withdrawal,
                account,
                currency,
                amount,
            });
        }
        Ok(())
    }

    // ---- markets and accounts ----

    pub(crate) fn market_add(
        &mut self,
        spec: &MarketSpec,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let Some(entry) = self.markets.get(spec.market.0 as usize) else {
            return Err(rejected(RejectReason::InvalidMarketSpec));
        };
        if entry.is_some() {
            return Err(rejected(RejectReason::MarketExists));
        }
        self.check_currency(spec.base)?;
        self.check_currency(spec.quote)?;
        if !Market::validate_spec(spec) {
            return Err(rejected(RejectReason::InvalidMarketSpec));
        }
        let stops = STOPS_PER_SIDE.min(self.config.max_orders);
        self.markets[spec.market.0 as usize] = Some(Box::new(Market::new(
            spec.clone(),
            self.config.max_levels_per_side,
            stops,
        )));
        out.push(Event::MarketAdded {
            market: spec.market,
        });
        Ok(())
    }

    fn market_update(
        &mut self,
        u: &MarketUpdate,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let market = self.market(u.market)?;
        if !Market::validate_risk(
            market.spec.base_per_lot,
            market.spec.quote_per_tick_lot,
            &u.risk,
        ) {
            return Err(rejected(RejectReason::InvalidMarketSpec));
        }
        // Resting orders were accepted under the old limits; the new max price and quantity must
        // still bound every amount they can produce, so they may only be raised.
        if u.risk.max_price < market.risk.max_price || u.risk.max_qty < market.risk.max_qty {
            return Err(rejected(RejectReason::InvalidMarketSpec));
        }
        self.market_mut(u.market).set_risk(u.risk);
        out.push(Event::MarketUpdated {
            market: u.market,
            risk: u.risk,
        });
        Ok(())
    }

    fn market_halt(
        &mut self,
        market: MarketId,
        halt: bool,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        self.market(market)?;
        let state = if halt {
            MarketState::Locked
        } else {
            MarketState::Enabled
        };
        self.market_mut(market).set_state(state);
        out.push(if halt {
            Event::MarketHalted { market }
        } else {
            Event::MarketResumed { market }
        });
        Ok(())
    }

    pub(crate) fn market_state_set(
        &mut self,
        market: MarketId,
        state: MarketState,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        self.market(market)?;
        let entry = self.market_mut(market);
        entry.set_state(state);
        debug_assert_eq!(entry.halted, state.refuses_orders());
        out.push(Event::MarketStateChanged { market, state });
        Ok(())
    }

    fn kill_switch(
        &mut self,
        account: AccountId,
        on: bool,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        self.check_account(account)?;
        self.accounts[account.0 as usize].kill_switch = on;
        if on {
            let count = self.cancel_all(account, None, None, CancelReason::KillSwitch, out);
            out.push(Event::MassCancelled { account, count });
        }
        out.push(Event::KillSwitchSet { account, on });
        Ok(())
    }

    fn fee_schedule_update(
        &mut self,
        market: MarketId,
        tier: u8,
        rates: FeeRates,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        self.market(market)?;
        if tier as usize >= MAX_FEE_TIERS
            || rates.maker_ppm > MAX_FEE_PPM
            || rates.taker_ppm > MAX_FEE_PPM
        {
            return Err(rejected(RejectReason::InvalidFee));
        }
        self.market_mut(market).fees[tier as usize] = rates;
        out.push(Event::FeeScheduleUpdated {
            market,
            tier,
            rates,
        });
        Ok(())
    }

    fn account_fee_tier(
        &mut self,
        account: AccountId,
        tier: u8,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        self.check_account(account)?;
        if tier as usize >= MAX_FEE_TIERS {
            return Err(rejected(RejectReason::InvalidFee));
        }
        self.accounts[account.0 as usize].fee_tier = tier;
        out.push(Event::AccountFeeTierSet { account, tier });
        Ok(())
    }
}

/// `reason`, for a command about to be rejected: built out of line so that each reject site is
/// its own cold block. Without it the compiler funnels every reject into one block that takes
/// the reason in a register, and sets that register before each check on the accepted path
/// (one instruction per check passed, ~8 a command) while keeping it live across them: out of
/// line, the accepted path measured 483.9 -> 455.6 instructions a command (session 11 in
/// perf/RESULTS.md; 457.4 without the `black_box`).
#[cold]
#[inline(never)]
fn rejected(reason: RejectReason) -> RejectReason {
    // Opaque, so the call is not folded back into a constant at the reject site.
    std::hint::black_box(reason)
}

/// A new order after parsing: everything the engine stores about it, and what it locks.
struct ParsedOrder {
    kind: Kind,
    price: Price,
    trigger: Price,
    qty: Qty,
    lock: u64,
}

/// Parses an order against its market: type/time-in-force combinations, sizes, prices, band,
/// notional. Pure: reads the market only.
fn parse_order(market: &Market, o: &NewOrder) -> Result<ParsedOrder, RejectReason> {
    let risk = &market.risk;
    let check_qty = |qty: Qty| -> Result<(), RejectReason> {
        if qty.0 == 0 {
            Err(rejected(RejectReason::ZeroQty))
        } else if qty > risk.max_qty {
            Err(rejected(RejectReason::QtyTooLarge))
        } else {
            Ok(())
        }
    };
    let check_price = |price: Price| -> Result<(), RejectReason> {
        if price.0 == 0 || price > risk.max_price {
            Err(rejected(RejectReason::InvalidPrice))
        } else {
            Ok(())
        }
    };
    let limit_lock = |price: Price, qty: Qty| -> Result<u64, RejectReason> {
        let notional = market.quote_amount(price, qty);
        if notional > risk.max_notional.0 {
            return Err(rejected(RejectReason::NotionalTooLarge));
        }
        Ok(match o.side {
            Side::Buy => notional,
            Side::Sell => market.base_amount(qty),
        })
    };
    let market_lock =
        |size: MarketSize, protection: Price| -> Result<(Qty, bool, u64), RejectReason> {
            match (size, o.side) {
                (MarketSize::Qty(qty), _) => {
                    check_qty(qty)?;
                    Ok((qty, false, limit_lock(protection, qty)?))
                }
                (MarketSize::QuoteBudget(budget), Side::Buy) => {
                    if budget.0 == 0 {
                        return Err(rejected(RejectReason::ZeroAmount));
                    }
                    if budget > risk.max_notional {
                        return Err(rejected(RejectReason::NotionalTooLarge));
                    }
                    Ok((Qty::ZERO, true, budget.0))
                }
                (MarketSize::QuoteBudget(_), Side::Sell) => {
                    Err(rejected(RejectReason::InvalidMarketSize))
                }
            }
        };
    match o.kind {
        OrderKind::Limit { price, qty } => {
            check_qty(qty)?;
            check_price(price)?;
            if !market.within_band(o.side, price) {
                return Err(rejected(RejectReason::PriceOutOfBand));
            }
            let lock = limit_lock(price, qty)?;
            Ok(ParsedOrder {
                kind: Kind::Limit,
                price,
                trigger: Price(0),
                qty,
                lock,
            })
        }
        OrderKind::Market { size } => {
            if o.tif != TimeInForce::Ioc {
                return Err(rejected(RejectReason::InvalidOrderType));
            }
            let protection = market.protection_price(o.side);
            let (qty, budget, lock) = market_lock(size, protection)?;
            Ok(ParsedOrder {
                kind: Kind::Market { budget },
                price: protection,
                trigger: Price(0),
                qty,
                lock,
            })
        }
        OrderKind::StopLimit {
            trigger,
            price,
            qty,
        } => {
            if o.tif == TimeInForce::Fok {
                return Err(rejected(RejectReason::InvalidOrderType));
            }
            check_qty(qty)?;
            check_price(price)?;
            check_price(trigger)?;
            let lock = limit_lock(price, qty)?;
            Ok(ParsedOrder {
                kind: Kind::StopLimit,
                price,
                trigger,
                qty,
                lock,
            })
        }
        OrderKind::StopMarket { trigger, size } => {
            if o.tif != TimeInForce::Ioc {
                return Err(rejected(RejectReason::InvalidOrderType));
            }
            check_price(trigger)?;
            // A stop-market buy's worst price is unknown until it triggers, so it must be sized
            // by a quote budget that bounds what it can spend.
            if o.side == Side::Buy && matches!(size, MarketSize::Qty(_)) {
                return Err(rejected(RejectReason::InvalidMarketSize));
            }
            let (qty, budget, lock) = market_lock(size, risk.max_price)?;
            Ok(ParsedOrder {
                kind: Kind::StopMarket { budget },
                price: Price(0),
                trigger,
                qty,
                lock,
            })
        }
    }
}

/// What a resting order on `side` at `price` for `qty` lots must lock (`market` exists).
#[inline(always)]
fn resting_lock(market: Option<&Market>, side: Side, price: Price, qty: Qty) -> u64 {
    let Some(market) = market else {
        unreachable!("order's market exists");
    };
    match side {
        Side::Buy => market.quote_amount(price, qty),
        Side::Sell => market.base_amount(qty),
    }
}

/// The currency an order on `side` spends (and locks).
#[inline]
fn spend_currency(market: &Market, side: Side) -> CurrencyId {
    match side {
        Side::Buy => market.spec.quote,
        Side::Sell => market.spec.base,
    }
}

/// Whether a fill-or-kill order would fill completely, given self-trade prevention.
fn fok_fillable(
    market: &Market,
    orders: &Orders,
    side: Side,
    limit: Price,
    qty: Qty,
    account: AccountId,
    stp: SelfTradePrevention,
) -> bool {
    let mut needed = qty.0;
    for level in market.opposite_ref(side).iter_best_first() {
        let crosses = match side {
            Side::Buy => level.price <= limit,
            Side::Sell => level.price >= limit,
        };
        if !crosses {
            return false;
        }
        let mut slot = level.head;
        // Bounded by the live orders: each step advances along the level.
        for _ in 0..=orders.live() {
            if slot == NIL {
                break;
            }
            let maker = orders.get(slot);
            if maker.account == account {
                if stp != SelfTradePrevention::CancelOldest {
                    return false;
                }
            } else {
                needed = needed.saturating_sub(maker.qty.0);
                if needed == 0 {
                    return true;
                }
            }
            slot = maker.next;
        }
    }
    false
}

/// Read-only views for gateways, tests and snapshots.
impl Engine {
    /// A balance.
    pub fn balance(&self, account: AccountId, currency: CurrencyId) -> crate::ledger::Balance {
        self.ledger.get(account, currency)
    }

    /// The ledger (totals, audit).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// A live order by id.
    pub fn order(&self, id: OrderId) -> Option<OrderView> {
        self.orders.find_id(id).map(|slot| self.view(slot))
    }

    /// A live order by client id.
    pub fn order_by_client(&self, account: AccountId, client: ClientOrderId) -> Option<OrderView> {
        self.orders
            .find_client(account, client)
            .map(|slot| self.view(slot))
    }

    fn view(&self, slot: u32) -> OrderView {
        let o = self.orders.get(slot);
        OrderView {
            id: o.id,
            account: o.account,
            market: o.market,
            client_order_id: o.client_order_id,
            side: o.side,
            price: o.price,
            trigger: o.trigger,
            qty: o.qty,
            locked: Amount(o.locked),
            pending_stop: o.state == OrderState::PendingStop,
        }
    }

    /// Aggregated levels of one side, best first, at most `limit` of them.
    pub fn depth(&self, market: MarketId, side: Side, limit: usize) -> Vec<(Price, Qty)> {
        match self.market(market) {
            Ok(m) => m
                .own_ref(side)
                .iter_best_first()
                .take(limit)
                .map(|l| (l.price, Qty(l.total)))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Orders of one side in priority order (best price, oldest first).
    pub fn book_orders(&self, market: MarketId, side: Side) -> Vec<OrderView> {
        let mut views = Vec::new();
        if let Ok(m) = self.market(market) {
            for level in m.own_ref(side).iter_best_first() {
                let mut slot = level.head;
                while slot != NIL {
                    views.push(self.view(slot));
                    slot = self.orders.get(slot).next;
                }
            }
        }
        views
    }

    /// Last trade price of a market.
    pub fn last_price(&self, market: MarketId) -> Option<Price> {
        self.market(market).ok().and_then(|m| m.last_price)
    }

    /// Number of live orders (resting and pending stops).
    pub fn live_orders(&self) -> u32 {
        self.orders.live()
    }

    /// A market's specification as last added or updated.
    pub fn market_spec(&self, market: MarketId) -> Option<&MarketSpec> {
        self.market(market).ok().map(|m| &m.spec)
    }

    /// A market's state (`None` for an unknown market).
    pub fn market_state(&self, market: MarketId) -> Option<MarketState> {
        self.market(market).ok().map(|m| m.state())
    }

    /// A market's current risk parameters (`None` for an unknown market).
    pub fn market_risk(&self, market: MarketId) -> Option<MarketRisk> {
        self.market(market).ok().map(|m| m.risk)
    }

    /// The fee rates of `tier` in `market` (`None` for an unknown market or tier).
    pub fn fee_rates(&self, market: MarketId, tier: u8) -> Option<FeeRates> {
        self.market(market)
            .ok()
            .and_then(|m| m.fees.get(usize::from(tier)).copied())
    }

    /// Accounts in a fee tier other than 0, with their tier, by account (a scan of every
    /// account: for seeding views at start, never on the hot path).
    pub fn fee_tiered_accounts(&self) -> Vec<(AccountId, u8)> {
        self.accounts
            .iter()
            .enumerate()
            .filter(|(_, risk)| risk.fee_tier != 0)
            .map(|(index, risk)| (AccountId(index as u32), risk.fee_tier))
            .collect()
    }

    /// Ids of the markets that exist.
    pub fn market_ids(&self) -> Vec<MarketId> {
        (0..self.markets.len())
            .filter(|&i| self.markets[i].is_some())
            .map(|i| MarketId(i as u32))
            .collect()
    }

    /// Open orders of an account (resting and pending stops).
    pub fn open_orders(&self, account: AccountId) -> u32 {
        self.accounts
            .get(account.0 as usize)
            .map_or(0, |a| a.open_orders)
    }
}

/// A live order as seen from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderView {
    /// Engine's id.
    pub id: OrderId,
    /// Owner.
    pub account: AccountId,
    /// Market.
    pub market: MarketId,
    /// Client's id.
    pub client_order_id: ClientOrderId,
    /// Side.
    pub side: Side,
    /// Limit price.
    pub price: Price,
    /// Stop trigger (0 if not a stop).
    pub trigger: Price,
    /// Open quantity.
    pub qty: Qty,
    /// Funds locked for it.
    pub locked: Amount,
    /// Waiting for its trigger.
    pub pending_stop: bool,
}

// A market known to exist, without a bounds check or a check that it is there (measured,
// session 8 round 2 and session 11 in perf/RESULTS.md). Invariant: `markets` has `max_markets`
// entries and never changes length, markets are never removed, and a market id reaches these
// only from an order in the slab (whose market existed when it was placed or restored) or a
// command whose market `Engine::market` found. Checked in debug builds.
#[inline(always)]
fn market_entry(markets: &[Option<Box<Market>>], market: MarketId) -> &Market {
    debug_assert_market(markets, market);
    // SAFETY: in bounds and present by the invariant above.
    unsafe {
        markets
            .get_unchecked(market.0 as usize)
            .as_deref()
            .unwrap_unchecked()
    }
}

#[inline(always)]
fn market_entry_mut(markets: &mut [Option<Box<Market>>], market: MarketId) -> &mut Market {
    debug_assert_market(markets, market);
    // SAFETY: in bounds and present by the invariant above.
    unsafe {
        markets
            .get_unchecked_mut(market.0 as usize)
            .as_deref_mut()
            .unwrap_unchecked()
    }
}

/// The invariant of `market_entry` and `market_entry_mut`, checked in debug builds.
#[inline(always)]
fn debug_assert_market(markets: &[Option<Box<Market>>], market: MarketId) {
    debug_assert!(
        markets.get(market.0 as usize).is_some_and(Option::is_some),
        "market {} beyond the table or missing",
        market.0
    );
}

// A fee tier as an index the compiler sees is below `MAX_FEE_TIERS` (a mask, no bounds check
// and no `unsafe`): tiers are checked against it when set (`account_fee_tier`), so the mask
// changes nothing (measured, session 8 round 2 in perf/RESULTS.md).
const _: () = assert!(MAX_FEE_TIERS.is_power_of_two());
#[inline(always)]
fn fee_tier(risk: &AccountRisk) -> usize {
    let tier = risk.fee_tier as usize;
    debug_assert!(tier < MAX_FEE_TIERS, "fee tier beyond the table");
    tier % MAX_FEE_TIERS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Markets are read without checking that they are there (`market_entry`); a debug build
    /// (every test) still stops at a market id that names none.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "beyond the table or missing")]
    fn a_missing_market_is_caught_in_debug_builds() {
        let markets: Vec<Option<Box<Market>>> = vec![None, None];
        let _ = market_entry(&markets, MarketId(1));
    }
}
