//! Differential test: the engine against a small, obviously-correct model (linear scans, no
//! indices, balances in a BTreeMap) on random streams of limit/IOC/FOK/post-only/market orders,
//! cancels, replaces and mass cancels with fees and self-trade prevention.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code asserts by unwrapping.

mod common;
use std::collections::BTreeMap;

use common::*;
use peregrine_hotpath::*;
use proptest::prelude::*;

const MAKER_PPM: u32 = 1_000;
const TAKER_PPM: u32 = 2_500;
const ACCOUNTS: u32 = 4;

#[derive(Clone, Debug)]
enum Op {
    Limit {
        account: u32,
        client: u64,
        side: Side,
        price: u64,
        qty: u64,
        tif: u8,
        stp: u8,
    },
    MarketQty {
        account: u32,
        client: u64,
        side: Side,
        qty: u64,
    },
    MarketBudget {
        account: u32,
        client: u64,
        budget: u64,
    },
    Cancel {
        account: u32,
        client: u64,
    },
    Replace {
        account: u32,
        client: u64,
        price: Option<u64>,
        qty: u64,
    },
    MassCancel {
        account: u32,
    },
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn op() -> impl Strategy<Value = Op> {
    let account = 0..ACCOUNTS;
    let client = 1..12u64;
    prop_oneof![
        6 => (account.clone(), client.clone(), side(), 9_990..10_010u64, 0..12u64, 0..4u8, 0..3u8)
            .prop_map(|(account, client, side, price, qty, tif, stp)| Op::Limit { account, client, side, price, qty, tif, stp }),
        1 => (account.clone(), client.clone(), side(), 1..20u64)
            .prop_map(|(account, client, side, qty)| Op::MarketQty { account, client, side, qty }),
        1 => (account.clone(), client.clone(), 1..300_000u64)
            .prop_map(|(account, client, budget)| Op::MarketBudget { account, client, budget }),
        3 => (account.clone(), client.clone()).prop_map(|(account, client)| Op::Cancel { account, client }),
        2 => (account.clone(), client.clone(), proptest::option::of(9_990..10_010u64), 0..15u64)
            .prop_map(|(account, client, price, qty)| Op::Replace { account, client, price, qty }),
        1 => account.prop_map(|account| Op::MassCancel { account }),
    ]
}

fn tif(t: u8) -> TimeInForce {
    [
        TimeInForce::Gtc,
        TimeInForce::Ioc,
        TimeInForce::Fok,
        TimeInForce::PostOnly,
    ][t as usize]
}

fn stp(s: u8) -> SelfTradePrevention {
    [
        SelfTradePrevention::CancelNewest,
        SelfTradePrevention::CancelOldest,
        SelfTradePrevention::CancelBoth,
    ][s as usize]
}

fn to_command(op: &Op) -> CommandKind {
    let new = |account: u32,
               client: u64,
               side: Side,
               kind: OrderKind,
               tif: TimeInForce,
               stp: SelfTradePrevention| {
        CommandKind::NewOrder(NewOrder {
            account: AccountId(account),
            market: M,
            client_order_id: ClientOrderId(client),
            side,
            kind,
            tif,
            stp,
        })
    };
    match *op {
        Op::Limit {
            account,
            client,
            side,
            price,
            qty,
            tif: t,
            stp: s,
        } => new(
            account,
            client,
            side,
            OrderKind::Limit {
                price: Price(price),
                qty: Qty(qty),
            },
            tif(t),
            stp(s),
        ),
        Op::MarketQty {
            account,
            client,
            side,
            qty,
        } => new(
            account,
            client,
            side,
            OrderKind::Market {
                size: MarketSize::Qty(Qty(qty)),
            },
            TimeInForce::Ioc,
            SelfTradePrevention::CancelNewest,
        ),
        Op::MarketBudget {
            account,
            client,
            budget,
        } => new(
            account,
            client,
            Side::Buy,
            OrderKind::Market {
                size: MarketSize::QuoteBudget(Amount(budget)),
            },
            TimeInForce::Ioc,
            SelfTradePrevention::CancelOldest,
        ),
        Op::Cancel { account, client } => CommandKind::Cancel {
            account: AccountId(account),
            target: OrderRef::Client(ClientOrderId(client)),
        },
        Op::Replace {
            account,
            client,
            price,
            qty,
        } => CommandKind::CancelReplace(CancelReplace {
            account: AccountId(account),
            target: OrderRef::Client(ClientOrderId(client)),
            new_price: price.map(Price),
            new_qty: Qty(qty),
        }),
        Op::MassCancel { account } => CommandKind::MassCancel {
            account: AccountId(account),
            market: None,
            side: None,
        },
    }
}

// ---- the model ----

#[derive(Clone, Debug)]
struct MOrder {
    id: u64,
    account: u32,
    client: u64,
    side: Side,
    price: u64,
    qty: u64,
    seq: u64,
    post_only: bool,
    stp: SelfTradePrevention,
}

/// What the model says one command did.
#[derive(Debug, PartialEq, Eq, Default)]
struct Outcome {
    rejected: Option<RejectReason>,
    /// (maker, taker, price, qty, maker fee, taker fee)
    trades: Vec<(u64, u64, u64, u64, u64, u64)>,
    cancels: Vec<(u64, CancelReason)>,
}

#[derive(Default)]
struct Model {
    book: Vec<MOrder>,
    /// (account, currency) -> (available, locked)
    balances: BTreeMap<(u32, u16), (u64, u64)>,
    next_id: u64,
    next_seq: u64,
    last_price: Option<u64>,
}

enum Size {
    Qty(u64),
    Budget(u64),
}

impl Model {
    fn bal(&mut self, account: u32, c: CurrencyId) -> &mut (u64, u64) {
        self.balances.entry((account, c.0)).or_default()
    }

    fn reference(&self) -> u64 {
        self.last_price.unwrap_or(10_000)
    }

    /// Best crossing resting order against a taker on `side` with limit `limit`.
    fn best_against(&self, side: Side, limit: u64) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, o) in self.book.iter().enumerate() {
            if o.side == side {
                continue;
            }
            let crosses = match side {
                Side::Buy => o.price <= limit,
                Side::Sell => o.price >= limit,
            };
            if !crosses {
                continue;
            }
            best = match best {
                None => Some(i),
                Some(j) => {
                    let b = &self.book[j];
                    let better = match side {
                        Side::Buy => (o.price, o.seq) < (b.price, b.seq),
                        Side::Sell => {
                            (std::cmp::Reverse(o.price), o.seq)
                                < (std::cmp::Reverse(b.price), b.seq)
                        }
                    };
                    if better { Some(i) } else { Some(j) }
                }
            };
        }
        best
    }

    fn lock_for(side: Side, price: u64, qty: u64) -> (CurrencyId, u64) {
        match side {
            Side::Buy => (USD, price * qty * QPTL),
            Side::Sell => (BTC, qty * BPL),
        }
    }

    fn remove_resting(&mut self, index: usize, reason: CancelReason, out: &mut Outcome) {
        let o = self.book.remove(index);
        let (c, amount) = Self::lock_for(o.side, o.price, o.qty);
        let b = self.bal(o.account, c);
        b.1 -= amount;
        b.0 += amount;
        out.cancels.push((o.id, reason));
    }

    fn live(&self, account: u32, client: u64) -> Option<usize> {
        self.book
            .iter()
            .position(|o| o.account == account && o.client == client)
    }

    /// Matches a taker; returns (remaining qty, budget left, why it stopped: None = liquidity).
    #[allow(clippy::too_many_arguments)]
    fn take(
        &mut self,
        id: u64,
        account: u32,
        side: Side,
        limit: u64,
        mut size: Size,
        stp: SelfTradePrevention,
        out: &mut Outcome,
    ) -> (Size, Option<CancelReason>) {
        loop {
            match size {
                Size::Qty(0) | Size::Budget(0) => return (size, None),
                _ => {}
            }
            let Some(i) = self.best_against(side, limit) else {
                return (size, None);
            };
            if self.book[i].account == account {
                match stp {
                    SelfTradePrevention::CancelNewest => {
                        return (size, Some(CancelReason::SelfTrade));
                    }
                    SelfTradePrevention::CancelOldest => {
                        self.remove_resting(i, CancelReason::SelfTrade, out);
                        continue;
                    }
                    _ => {
                        self.remove_resting(i, CancelReason::SelfTrade, out);
                        return (size, Some(CancelReason::SelfTrade));
                    }
                }
            }
            let (price, maker_qty) = (self.book[i].price, self.book[i].qty);
            let qty = match size {
                Size::Qty(q) => q.min(maker_qty),
                Size::Budget(b) => (b / (price * QPTL)).min(maker_qty),
            };
            if qty == 0 {
                return (size, Some(CancelReason::BudgetExhausted));
            }
            let (base, quote) = (qty * BPL, price * qty * QPTL);
            let maker = self.book[i].account;
            let (buyer, seller, buyer_ppm, seller_ppm) = match side {
                Side::Buy => (account, maker, TAKER_PPM, MAKER_PPM),
                Side::Sell => (maker, account, MAKER_PPM, TAKER_PPM),
            };
            let buyer_fee = (base as u128 * buyer_ppm as u128 / 1_000_000) as u64;
            let seller_fee = (quote as u128 * seller_ppm as u128 / 1_000_000) as u64;
            // The maker pays from its lock; the taker from its (model) available.
            match side {
                Side::Buy => {
                    self.bal(maker, BTC).1 -= base;
                    self.bal(account, USD).0 -= quote;
                }
                Side::Sell => {
                    self.bal(maker, USD).1 -= quote;
                    self.bal(account, BTC).0 -= base;
                }
            }
            self.bal(buyer, BTC).0 += base - buyer_fee;
            self.bal(seller, USD).0 += quote - seller_fee;
            let (maker_fee, taker_fee) = match side {
                Side::Buy => (seller_fee, buyer_fee),
                Side::Sell => (buyer_fee, seller_fee),
            };
            out.trades
                .push((self.book[i].id, id, price, qty, maker_fee, taker_fee));
            self.last_price = Some(price);
            self.book[i].qty -= qty;
            if self.book[i].qty == 0 {
                self.book.remove(i);
            }
            size = match size {
                Size::Qty(q) => Size::Qty(q - qty),
                Size::Budget(b) => Size::Budget(b - quote),
            };
        }
    }

    fn fok_fillable(
        &self,
        account: u32,
        side: Side,
        limit: u64,
        qty: u64,
        stp: SelfTradePrevention,
    ) -> bool {
        let mut candidates: Vec<&MOrder> = self
            .book
            .iter()
            .filter(|o| {
                o.side != side
                    && if side == Side::Buy {
                        o.price <= limit
                    } else {
                        o.price >= limit
                    }
            })
            .collect();
        candidates.sort_by_key(|o| {
            (
                if side == Side::Buy {
                    o.price as i64
                } else {
                    -(o.price as i64)
                },
                o.seq,
            )
        });
        let mut need = qty;
        for o in candidates {
            if o.account == account {
                if stp != SelfTradePrevention::CancelOldest {
                    return false;
                }
                continue;
            }
            need = need.saturating_sub(o.qty);
            if need == 0 {
                return true;
            }
        }
        false
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        let mut out = Outcome::default();
        let band = |r: u64| (r - r * 5_000 / 10_000, r + r * 5_000 / 10_000);
        match *op {
            Op::Limit {
                account,
                client,
                side,
                price,
                qty,
                tif: t,
                stp: s,
            } => {
                let (tif, stp) = (tif(t), stp(s));
                let reject = if qty == 0 {
                    Some(RejectReason::ZeroQty)
                } else if self.live(account, client).is_some() {
                    Some(RejectReason::DuplicateClientOrderId)
                } else if tif == TimeInForce::PostOnly && self.best_against(side, price).is_some() {
                    Some(RejectReason::PostOnlyWouldTake)
                } else if tif == TimeInForce::Fok
                    && !self.fok_fillable(account, side, price, qty, stp)
                {
                    Some(RejectReason::FokNotFillable)
                } else {
                    let (c, amount) = Self::lock_for(side, price, qty);
                    (self.bal(account, c).0 < amount).then_some(RejectReason::InsufficientBalance)
                };
                if let Some(r) = reject {
                    out.rejected = Some(r);
                    return out;
                }
                let id = self.next_id;
                self.next_id += 1;
                let (rest, why) =
                    self.take(id, account, side, price, Size::Qty(qty), stp, &mut out);
                let Size::Qty(left) = rest else {
                    unreachable!()
                };
                if left > 0 {
                    if why.is_none() && matches!(tif, TimeInForce::Gtc | TimeInForce::PostOnly) {
                        let (c, amount) = Self::lock_for(side, price, left);
                        let b = self.bal(account, c);
                        b.0 -= amount;
                        b.1 += amount;
                        self.next_seq += 1;
                        self.book.push(MOrder {
                            id,
                            account,
                            client,
                            side,
                            price,
                            qty: left,
                            seq: self.next_seq,
                            post_only: tif == TimeInForce::PostOnly,
                            stp,
                        });
                    } else {
                        out.cancels
                            .push((id, why.unwrap_or(CancelReason::Unfilled)));
                    }
                }
            }
            Op::MarketQty {
                account,
                client,
                side,
                qty,
            } => {
                let (low, high) = band(self.reference());
                let protection = if side == Side::Buy { high } else { low };
                let (c, amount) = Self::lock_for(side, protection, qty);
                if self.live(account, client).is_some() {
                    out.rejected = Some(RejectReason::DuplicateClientOrderId);
                } else if self.bal(account, c).0 < amount {
                    out.rejected = Some(RejectReason::InsufficientBalance);
                } else {
                    let id = self.next_id;
                    self.next_id += 1;
                    let (rest, why) = self.take(
                        id,
                        account,
                        side,
                        protection,
                        Size::Qty(qty),
                        SelfTradePrevention::CancelNewest,
                        &mut out,
                    );
                    if let Size::Qty(left) = rest
                        && left > 0
                    {
                        out.cancels
                            .push((id, why.unwrap_or(CancelReason::Unfilled)));
                    }
                }
            }
            Op::MarketBudget {
                account,
                client,
                budget,
            } => {
                let (_, high) = band(self.reference());
                if self.live(account, client).is_some() {
                    out.rejected = Some(RejectReason::DuplicateClientOrderId);
                } else if self.bal(account, USD).0 < budget {
                    out.rejected = Some(RejectReason::InsufficientBalance);
                } else {
                    let id = self.next_id;
                    self.next_id += 1;
                    let (rest, why) = self.take(
                        id,
                        account,
                        Side::Buy,
                        high,
                        Size::Budget(budget),
                        SelfTradePrevention::CancelOldest,
                        &mut out,
                    );
                    if let Size::Budget(left) = rest
                        && left > 0
                    {
                        out.cancels
                            .push((id, why.unwrap_or(CancelReason::Unfilled)));
                    }
                }
            }
            Op::Cancel { account, client } => match self.live(account, client) {
                None => out.rejected = Some(RejectReason::UnknownOrder),
                Some(i) => self.remove_resting(i, CancelReason::Requested, &mut out),
            },
            Op::MassCancel { account } => {
                // Oldest first by acceptance (the engine's account list order).
                let mut mine: Vec<(u64, usize)> = Vec::new();
                for (i, o) in self.book.iter().enumerate() {
                    if o.account == account {
                        mine.push((o.id, i));
                    }
                }
                mine.sort();
                let ids: Vec<u64> = mine.iter().map(|(id, _)| *id).collect();
                for id in ids {
                    let i = self.book.iter().position(|o| o.id == id).unwrap();
                    self.remove_resting(i, CancelReason::MassCancel, &mut out);
                }
            }
            Op::Replace {
                account,
                client,
                price,
                qty,
            } => {
                let Some(i) = self.live(account, client) else {
                    out.rejected = Some(RejectReason::UnknownOrder);
                    return out;
                };
                let o = self.book[i].clone();
                let new_price = price.unwrap_or(o.price);
                let keeps = new_price == o.price && qty < o.qty;
                let (c, old_lock) = Self::lock_for(o.side, o.price, o.qty);
                let (_, new_lock) = Self::lock_for(o.side, new_price, qty);
                let reject = if qty == 0 {
                    Some(RejectReason::ZeroQty)
                } else if new_price == o.price && qty == o.qty {
                    Some(RejectReason::InvalidReplace)
                } else if !keeps && o.post_only && self.best_against(o.side, new_price).is_some() {
                    Some(RejectReason::PostOnlyWouldTake)
                } else if new_lock > old_lock && self.bal(account, c).0 < new_lock - old_lock {
                    Some(RejectReason::InsufficientBalance)
                } else {
                    None
                };
                if let Some(r) = reject {
                    out.rejected = Some(r);
                    return out;
                }
                if keeps {
                    self.book[i].qty = qty;
                    let b = self.bal(account, c);
                    b.1 -= old_lock - new_lock;
                    b.0 += old_lock - new_lock;
                    return out;
                }
                // Loses priority: out of the book with its lock back, then in again as a taker.
                self.book.remove(i);
                let b = self.bal(account, c);
                b.1 -= old_lock;
                b.0 += old_lock;
                let (rest, why) = self.take(
                    o.id,
                    account,
                    o.side,
                    new_price,
                    Size::Qty(qty),
                    o.stp,
                    &mut out,
                );
                let Size::Qty(left) = rest else {
                    unreachable!()
                };
                if left > 0
                    && let Some(reason) = why
                {
                    out.cancels.push((o.id, reason));
                } else if left > 0 {
                    let (c, amount) = Self::lock_for(o.side, new_price, left);
                    let b = self.bal(account, c);
                    b.0 -= amount;
                    b.1 += amount;
                    self.next_seq += 1;
                    self.book.push(MOrder {
                        price: new_price,
                        qty: left,
                        seq: self.next_seq,
                        ..o
                    });
                }
            }
        }
        out
    }
}

/// Engine ids are opaque; the model numbers orders 1, 2, 3... in acceptance order.
#[derive(Default)]
struct Ids(BTreeMap<OrderId, u64>);

impl Ids {
    fn of(&self, id: OrderId) -> u64 {
        self.0[&id]
    }
}

fn engine_outcome(events: &[Event], ids: &mut Ids) -> Outcome {
    let mut out = Outcome::default();
    for e in events {
        match e {
            Event::OrderAccepted { order, .. } => {
                let n = ids.0.len() as u64 + 1;
                ids.0.insert(*order, n);
            }
            Event::Rejected { reason } => out.rejected = Some(*reason),
            Event::Trade(t) => out.trades.push((
                ids.of(t.maker_order),
                ids.of(t.taker_order),
                t.price.0,
                t.qty.0,
                t.maker_fee.0,
                t.taker_fee.0,
            )),
            Event::OrderCancelled { order, reason, .. } => {
                out.cancels.push((ids.of(*order), *reason))
            }
            _ => {}
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_reference_model(
        funds in proptest::collection::vec((0..200u64, 0..3_000_000u64), ACCOUNTS as usize),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut f = Fixture::new();
        f.ok(CommandKind::FeeScheduleUpdate { market: M, tier: 0, rates: FeeRates { maker_ppm: MAKER_PPM, taker_ppm: TAKER_PPM } });
        let mut model = Model { next_id: 1, ..Model::default() };
        for (account, (btc_lots, usd)) in funds.iter().enumerate() {
            f.fund(account as u32, btc_lots * BPL, *usd);
            model.bal(account as u32, BTC).0 = btc_lots * BPL;
            model.bal(account as u32, USD).0 = *usd;
        }
        let mut ids = Ids::default();
        for op in &ops {
            // One client id per live order: the model learns ids only from accepted orders.
            let events = f.apply(to_command(op));
            let expected = model.apply(op);
            prop_assert_eq!(engine_outcome(&events, &mut ids), expected, "op {:?}", op);
            for account in 0..ACCOUNTS {
                for c in [BTC, USD] {
                    let b = f.engine.balance(AccountId(account), c);
                    prop_assert_eq!((b.available, b.locked), *model.bal(account, c), "balance {} {:?} after {:?}", account, c, op);
                }
            }
            for side in [Side::Buy, Side::Sell] {
                let engine_book: Vec<(u64, u64, u64)> = f.engine.book_orders(M, side).iter().map(|o| (ids.of(o.id), o.price.0, o.qty.0)).collect();
                let mut model_book: Vec<&MOrder> = model.book.iter().filter(|o| o.side == side).collect();
                model_book.sort_by_key(|o| (if side == Side::Buy { -(o.price as i64) } else { o.price as i64 }, o.seq));
                let model_book: Vec<(u64, u64, u64)> = model_book.iter().map(|o| (o.id, o.price, o.qty)).collect();
                prop_assert_eq!(engine_book, model_book, "book {:?} after {:?}", side, op);
            }
        }
    }
}
