//! Property tests over random streams of every command type. After every command the full audit
//! runs (conservation, no negative or mismatched locks, uncrossed books, consistent levels), and
//! the event stream is checked: ended orders never trade again, client order ids are unique among
//! live orders, trades execute at the resting order's price, rejects emit exactly one event.
//! And the balance changes the events carry replay the ledger exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code asserts by unwrapping.

mod common;
use std::collections::{BTreeMap, BTreeSet};

use common::*;
use peregrine_hotpath::*;
use proptest::prelude::*;

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn command() -> impl Strategy<Value = CommandKind> {
    let account = (0..5u32).prop_map(AccountId);
    let client = (1..10u64).prop_map(ClientOrderId);
    let price = (9_000..11_000u64).prop_map(Price);
    let qty = (0..30u64).prop_map(Qty);
    let tif = prop_oneof![
        Just(TimeInForce::Gtc),
        Just(TimeInForce::Ioc),
        Just(TimeInForce::Fok),
        Just(TimeInForce::PostOnly)
    ];
    let stp = prop_oneof![
        Just(SelfTradePrevention::CancelNewest),
        Just(SelfTradePrevention::CancelOldest),
        Just(SelfTradePrevention::CancelBoth)
    ];
    let size = prop_oneof![
        qty.clone().prop_map(MarketSize::Qty),
        (0..500_000u64).prop_map(|b| MarketSize::QuoteBudget(Amount(b)))
    ];
    let kind = prop_oneof![
        6 => (price.clone(), qty.clone()).prop_map(|(price, qty)| OrderKind::Limit { price, qty }),
        1 => size.clone().prop_map(|size| OrderKind::Market { size }),
        1 => (price.clone(), price.clone(), qty.clone()).prop_map(|(trigger, price, qty)| OrderKind::StopLimit { trigger, price, qty }),
        1 => (price.clone(), size).prop_map(|(trigger, size)| OrderKind::StopMarket { trigger, size }),
    ];
    let target = prop_oneof![
        client.clone().prop_map(OrderRef::Client),
        (1..200u64).prop_map(|id| OrderRef::Id(OrderId(id)))
    ];
    prop_oneof![
        10 => (account.clone(), client, side(), kind, tif, stp).prop_map(|(account, client_order_id, side, kind, tif, stp)| {
            CommandKind::NewOrder(NewOrder { account, market: M, client_order_id, side, kind, tif, stp })
        }),
        3 => (account.clone(), target.clone()).prop_map(|(account, target)| CommandKind::Cancel { account, target }),
        2 => (account.clone(), target, proptest::option::of(price), qty).prop_map(|(account, target, new_price, new_qty)| {
            CommandKind::CancelReplace(CancelReplace { account, target, new_price, new_qty })
        }),
        1 => (account.clone(), proptest::option::of(side())).prop_map(|(account, side)| CommandKind::MassCancel { account, market: Some(M), side }),
        1 => (account.clone(), any::<bool>()).prop_map(|(account, on)| CommandKind::KillSwitch { account, on }),
        1 => any::<bool>().prop_map(|halt| if halt { CommandKind::MarketHalt { market: M } } else { CommandKind::MarketResume { market: M } }),
        1 => (0..MarketState::ALL.len()).prop_map(|i| CommandKind::MarketStateSet { market: M, state: MarketState::ALL[i] }),
        1 => (account.clone(), 0..2u16, 0..100_000u64, 0..8u64).prop_map(|(account, c, amount, d)| CommandKind::Deposit {
            account, currency: CurrencyId(c), amount: Amount(amount), deposit: DepositId(d)
        }),
        1 => (account.clone(), 0..2u16, 0..100_000u64, 0..4u64).prop_map(|(account, c, amount, w)| CommandKind::WithdrawalHold {
            account, currency: CurrencyId(c), amount: Amount(amount), withdrawal: WithdrawalId(w)
        }),
        1 => (0..4u64, any::<bool>()).prop_map(|(w, settle)| if settle {
            CommandKind::WithdrawalSettle { withdrawal: WithdrawalId(w) }
        } else {
            CommandKind::WithdrawalRelease { withdrawal: WithdrawalId(w) }
        }),
        1 => (account, 0..3u8).prop_map(|(account, tier)| CommandKind::AccountFeeTier { account, tier }),
        1 => (0..3u8, 0..5_000u32, 0..5_000u32).prop_map(|(tier, maker_ppm, taker_ppm)| CommandKind::FeeScheduleUpdate {
            market: M, tier, rates: FeeRates { maker_ppm, taker_ppm }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_on_random_streams(commands in proptest::collection::vec(command(), 1..200)) {
        let mut f = Fixture::new();
        for a in 0..5 {
            f.fund(a, 500 * BPL, 5_000_000);
        }
        // order id -> (account, client id, resting price)
        let mut live: BTreeMap<OrderId, (AccountId, ClientOrderId, Option<Price>)> = BTreeMap::new();
        let mut ended: BTreeSet<OrderId> = BTreeSet::new();
        for kind in commands {
            let was_live_client = match &kind {
                CommandKind::NewOrder(o) => Some(live.values().any(|(a, c, _)| *a == o.account && *c == o.client_order_id)),
                _ => None,
            };
            let events = f.apply(kind.clone()); // audits after every command
            if let Some(Event::Rejected { .. }) = events.first() {
                prop_assert_eq!(events.len(), 1, "a reject emits one event");
                continue;
            }
            let rejects = events.iter().filter(|e| matches!(e, Event::Rejected { .. })).count();
            prop_assert_eq!(rejects, 0, "an accepted command also rejected");
            if was_live_client == Some(true) {
                prop_assert!(false, "duplicate client order id accepted: {:?}", kind);
            }
            for e in &events {
                match e {
                    Event::OrderAccepted { order, account, client_order_id, .. } => {
                        prop_assert!(!ended.contains(order) && !live.contains_key(order), "order id reused");
                        live.insert(*order, (*account, *client_order_id, None));
                    }
                    Event::OrderRested { order, price, .. } => {
                        live.get_mut(order).unwrap().2 = Some(*price);
                    }
                    Event::OrderReplaced { order, .. } => {
                        // Re-rests (OrderRested) if it lost priority; keeps its price otherwise.
                        let entry = live.get_mut(order).unwrap();
                        if let Event::OrderReplaced { priority_kept: false, .. } = e {
                            entry.2 = None;
                        }
                    }
                    Event::Trade(t) => {
                        prop_assert!(!ended.contains(&t.maker_order) && !ended.contains(&t.taker_order), "ended order traded: {:?}", t);
                        prop_assert_ne!(t.maker_account, t.taker_account, "self trade");
                        let maker_price = live.get(&t.maker_order).and_then(|l| l.2);
                        prop_assert_eq!(maker_price, Some(t.price), "trade not at the maker's price");
                        prop_assert!(t.qty.0 > 0);
                    }
                    Event::OrderFilled { order, .. } | Event::OrderCancelled { order, .. } => {
                        prop_assert!(live.remove(order).is_some(), "unknown order ended");
                        ended.insert(*order);
                    }
                    _ => {}
                }
            }
            prop_assert_eq!(live.len() as u32, f.engine.live_orders());
        }
    }

    /// Every consumer keeps balances by applying `Event::balance_changes` to the engine's
    /// balances at its start: after every command that must equal the engine's ledger, cell for
    /// cell (so no change is missing, doubled or of the wrong sign or currency), and a rejected
    /// command must carry none.
    #[test]
    fn balance_changes_replay_the_ledger(commands in proptest::collection::vec(command(), 1..200)) {
        let mut f = Fixture::new();
        for a in 0..5 {
            f.fund(a, 500 * BPL, 5_000_000);
        }
        let mut shadow: BTreeMap<(AccountId, CurrencyId), (Amount, Amount)> = f
            .engine
            .ledger()
            .nonzero()
            .map(|(a, c, b)| ((a, c), (Amount(b.available), Amount(b.locked))))
            .collect();
        for kind in commands {
            let events = f.apply(kind);
            for event in &events {
                for change in event.balance_changes().as_slice() {
                    let cell = (change.account, change.currency);
                    let (available, locked) = shadow.get(&cell).copied().unwrap_or_default();
                    let after = change.apply_to(available, locked);
                    prop_assert!(after.is_some(), "{:?} does not apply to {:?}", change, cell);
                    shadow.insert(cell, after.unwrap());
                }
            }
            let engine: BTreeMap<_, _> = f
                .engine
                .ledger()
                .nonzero()
                .map(|(a, c, b)| ((a, c), (Amount(b.available), Amount(b.locked))))
                .collect();
            shadow.retain(|_, b| *b != (Amount(0), Amount(0)));
            prop_assert_eq!(&shadow, &engine, "after {:?}", events);
        }
    }
}
