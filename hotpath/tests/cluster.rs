//! The cross-shard pipeline: risk shards by account, matching shards by market. Conservation
//! under random flows (audited after every batch), the threaded runtime against the reference
//! executor, replay determinism, and targeted cross-shard scenarios.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code asserts by unwrapping.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use peregrine_hotpath::cluster::{
    ClusterSubmitError, MatchingShardIndex, RiskShardIndex, global_order_id, split_order_id,
};
use peregrine_hotpath::runtime::IdlePolicy;
use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_hotpath::*;
use proptest::prelude::*;

const BTC: CurrencyId = CurrencyId(0);
const USD: CurrencyId = CurrencyId(1);
const ETH: CurrencyId = CurrencyId(2);
const BPL: u64 = 1_000;

fn engine_config() -> EngineConfig {
    EngineConfig {
        max_accounts: 64,
        max_currencies: 4,
        max_markets: 8,
        max_orders: 1 << 14,
        max_levels_per_side: 1_024,
        ..EngineConfig::default()
    }
}

fn cluster_2x3() -> Cluster {
    cluster(2, 3)
}

fn cluster(risk: u16, matching: u16) -> Cluster {
    let mut config = ClusterConfig::new(engine_config(), risk, matching);
    config.max_live_orders_per_risk_shard = 1 << 15;
    Cluster::new(config).unwrap()
}

fn risk() -> MarketRisk {
    MarketRisk {
        max_price: Price(1_000_000),
        max_qty: Qty(1_000_000),
        max_notional: Amount(1_000_000_000_000),
        band_bps: 5_000,
        reference_price: Price(10_000),
    }
}

/// Market `m` trades `base`/`quote`, maker 0.1 %, taker 0.2 %.
fn market(m: u32, base: CurrencyId, quote: CurrencyId) -> CommandKind {
    CommandKind::MarketAdd(MarketSpec {
        market: MarketId(m),
        base,
        quote,
        base_per_lot: BPL,
        quote_per_tick_lot: 1,
        risk: risk(),
        fees: FeeRates {
            maker_ppm: 1_000,
            taker_ppm: 2_000,
        },
    })
}

/// Sum over every engine of available + locked + fees, per currency.
fn held(cluster: &Cluster, currency: CurrencyId) -> u128 {
    let config = cluster.config();
    let risk = (0..config.risk_shards).map(|i| cluster.risk_engine(RiskShardIndex(i)).unwrap());
    let matching = (0..config.matching_shards)
        .map(|i| cluster.matching_engine(MatchingShardIndex(i)).unwrap());
    risk.chain(matching)
        .map(|e| {
            let t = e.ledger().totals(currency);
            t.available + t.locked + t.fees
        })
        .sum()
}

/// A test driver: batches of command kinds, one outcome per command, audit after every batch.
struct Harness {
    cluster: Cluster,
    ts: u64,
    next_client: u64,
}

impl Harness {
    /// Three markets on three matching shards (M0 BTC/USD, M1 ETH/USD, M2 ETH/BTC), two risk
    /// shards; accounts 1..=4 funded with every currency.
    fn new() -> Harness {
        let mut h = Harness {
            cluster: cluster(2, 3),
            ts: 1_000_000,
            next_client: 1,
        };
        h.batch(vec![
            CommandKind::CurrencyAdd { currency: BTC },
            CommandKind::CurrencyAdd { currency: USD },
            CommandKind::CurrencyAdd { currency: ETH },
            market(0, BTC, USD),
            market(1, ETH, USD),
            market(2, ETH, BTC),
        ]);
        h
    }

    fn fund(&mut self, account: u32, amount: u64) {
        let deposits = [BTC, USD, ETH]
            .into_iter()
            .map(|currency| CommandKind::Deposit {
                account: AccountId(account),
                currency,
                amount: Amount(amount),
                deposit: DepositId(u64::from(account) << 16 | u64::from(currency.0) << 40 | amount),
            })
            .collect();
        for events in self.batch(deposits) {
            assert_eq!(outcome(&events), None);
        }
    }

    /// Applies one batch and returns each command's events (ending with `Completed`).
    fn batch(&mut self, kinds: Vec<CommandKind>) -> Vec<Vec<ClusterEventKind>> {
        let commands: Vec<Envelope> = kinds
            .into_iter()
            .map(|kind| {
                self.ts += 1_000;
                Envelope {
                    ts: TimestampNs(self.ts),
                    actor: peregrine_hotpath::Actor::System,
                    kind,
                }
            })
            .collect();
        let first = self.cluster.commands_applied() + 1;
        let mut out = Vec::new();
        self.cluster.apply_batch(&commands, &mut out).unwrap();
        self.cluster.audit().unwrap();
        let mut per_command = vec![Vec::new(); commands.len()];
        for event in out {
            per_command[(event.seq - first) as usize].push(event.kind);
        }
        for events in &per_command {
            let completions = events
                .iter()
                .filter(|e| matches!(e, ClusterEventKind::Completed { .. }))
                .count();
            assert_eq!(completions, 1, "one outcome per command: {events:?}");
            assert!(matches!(
                events.last(),
                Some(ClusterEventKind::Completed { .. })
            ));
        }
        per_command
    }

    fn one(&mut self, kind: CommandKind) -> Vec<ClusterEventKind> {
        self.batch(vec![kind]).pop().unwrap()
    }

    fn ok(&mut self, kind: CommandKind) -> Vec<ClusterEventKind> {
        let events = self.one(kind.clone());
        assert_eq!(outcome(&events), None, "{kind:?} -> {events:?}");
        events
    }

    fn order(
        &mut self,
        account: u32,
        market: u32,
        side: Side,
        kind: OrderKind,
        tif: TimeInForce,
    ) -> CommandKind {
        let client = self.next_client;
        self.next_client += 1;
        CommandKind::NewOrder(NewOrder {
            account: AccountId(account),
            market: MarketId(market),
            client_order_id: ClientOrderId(client),
            side,
            kind,
            tif,
            stp: SelfTradePrevention::CancelNewest,
        })
    }

    fn limit(
        &mut self,
        account: u32,
        market: u32,
        side: Side,
        price: u64,
        qty: u64,
    ) -> CommandKind {
        self.order(
            account,
            market,
            side,
            OrderKind::Limit {
                price: Price(price),
                qty: Qty(qty),
            },
            TimeInForce::Gtc,
        )
    }

    fn available(&self, account: u32, currency: CurrencyId) -> u64 {
        let b = self.cluster.balance(AccountId(account), currency);
        assert_eq!(b.locked, 0, "master balances lock only pending withdrawals");
        b.available
    }
}

fn outcome(events: &[ClusterEventKind]) -> Option<RejectReason> {
    match events.last() {
        Some(ClusterEventKind::Completed { rejected }) => *rejected,
        other => panic!("no outcome: {other:?}"),
    }
}

fn accepted_id(events: &[ClusterEventKind]) -> OrderId {
    events
        .iter()
        .find_map(|e| match e {
            ClusterEventKind::Engine(Event::OrderAccepted { order, .. }) => Some(*order),
            _ => None,
        })
        .expect("an accepted order")
}

fn engine_events(events: &[ClusterEventKind]) -> Vec<&Event> {
    events
        .iter()
        .filter_map(|e| match e {
            ClusterEventKind::Engine(event) => Some(event),
            _ => None,
        })
        .collect()
}

// ---- targeted scenarios ----

#[test]
fn an_order_without_enough_master_balance_is_rejected_and_changes_nothing() {
    let mut h = Harness::new();
    h.fund(1, 1_000_000);
    let before: Vec<u64> = [BTC, USD, ETH].iter().map(|&c| h.available(1, c)).collect();
    // 10_000 * 101 * 1 = 1_010_000 USD > 1_000_000.
    let order = h.limit(1, 0, Side::Buy, 10_000, 101);
    let events = h.one(order);
    assert_eq!(
        events,
        vec![ClusterEventKind::Completed {
            rejected: Some(RejectReason::InsufficientBalance)
        }]
    );
    let after: Vec<u64> = [BTC, USD, ETH].iter().map(|&c| h.available(1, c)).collect();
    assert_eq!(before, after);
    let me = h.cluster.matching_engine(MatchingShardIndex(0)).unwrap();
    assert_eq!(me.live_orders(), 0);
    // Exactly the balance is enough.
    let order = h.limit(1, 0, Side::Buy, 10_000, 100);
    h.ok(order);
    assert_eq!(h.available(1, USD), 0);
}

#[test]
fn a_fill_across_shards_credits_proceeds_and_fees() {
    let mut h = Harness::new();
    // Accounts 1 and 2 are on different risk shards; market 0 on matching shard 0.
    h.fund(1, 10_000_000);
    h.fund(2, 10_000_000);
    let sell = h.limit(1, 0, Side::Sell, 10_000, 5);
    let events = h.ok(sell);
    assert!(events.contains(&ClusterEventKind::EscrowSent {
        account: AccountId(1),
        currency: BTC,
        amount: Amount(5 * BPL),
        shard: MatchingShardIndex(0),
    }));
    assert_eq!(h.available(1, BTC), 10_000_000 - 5 * BPL);
    let buy = h.limit(2, 0, Side::Buy, 10_100, 3);
    let events = h.ok(buy);
    let trade = events
        .iter()
        .find_map(|e| match e {
            ClusterEventKind::Engine(Event::Trade(t)) => Some(t.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((trade.price, trade.qty), (Price(10_000), Qty(3)));
    let quote = 10_000 * 3;
    let base = 3 * BPL;
    // Maker (seller) receives quote minus 0.1 %; taker (buyer) receives base minus 0.2 %.
    let maker_fee = quote / 1_000;
    let taker_fee = base * 2 / 1_000;
    assert_eq!(trade.maker_fee, Amount(maker_fee));
    assert_eq!(trade.taker_fee, Amount(taker_fee));
    assert_eq!(h.available(1, USD), 10_000_000 + quote - maker_fee);
    assert_eq!(h.available(2, BTC), 10_000_000 + base - taker_fee);
    // The buyer's escrow was at its limit; the price improvement came back.
    assert_eq!(h.available(2, USD), 10_000_000 - quote);
    assert_eq!(h.cluster.fees_collected(USD), u128::from(maker_fee));
    assert_eq!(h.cluster.fees_collected(BTC), u128::from(taker_fee));
    // The maker's rest is still escrowed on the matching shard, exactly.
    let me = h.cluster.matching_engine(MatchingShardIndex(0)).unwrap();
    assert_eq!(me.balance(AccountId(1), BTC).locked, 2 * BPL);
    assert_eq!(me.balance(AccountId(1), BTC).available, 0);
    for c in [BTC, USD, ETH] {
        assert_eq!(held(&h.cluster, c), 2 * 10_000_000);
    }
}

#[test]
fn cancels_by_id_and_client_id_mass_cancel_and_kill_switch_work_across_shards() {
    let mut h = Harness::new();
    h.fund(3, 100_000_000);
    let start: Vec<u64> = [BTC, USD, ETH].iter().map(|&c| h.available(3, c)).collect();
    // One resting order per matching shard, all in one batch.
    let orders = vec![
        h.limit(3, 0, Side::Buy, 9_000, 10),
        h.limit(3, 1, Side::Buy, 9_000, 10),
        h.limit(3, 2, Side::Sell, 11_000, 10),
    ];
    let results = h.batch(orders);
    let ids: Vec<OrderId> = results.iter().map(|e| accepted_id(e)).collect();
    let shards: Vec<u16> = ids.iter().map(|id| split_order_id(*id).0.0).collect();
    assert_eq!(shards, vec![0, 1, 2]);
    assert_eq!(h.cluster.order(ids[1]).unwrap().id, ids[1]);

    // A client id in use on any shard is refused, also within one batch.
    let CommandKind::NewOrder(first) = h.limit(3, 1, Side::Buy, 9_000, 1) else {
        unreachable!()
    };
    let dup = NewOrder {
        client_order_id: ClientOrderId(1),
        ..first.clone()
    };
    assert_eq!(
        outcome(&h.one(CommandKind::NewOrder(dup))),
        Some(RejectReason::DuplicateClientOrderId)
    );
    let same_batch = h.batch(vec![
        CommandKind::NewOrder(first.clone()),
        CommandKind::NewOrder(NewOrder {
            market: MarketId(0),
            ..first.clone()
        }),
    ]);
    assert_eq!(outcome(&same_batch[0]), None);
    assert_eq!(
        outcome(&same_batch[1]),
        Some(RejectReason::DuplicateClientOrderId)
    );

    // Cancel by global id (shard 1), then by client id (shard 2).
    let events = h.ok(CommandKind::Cancel {
        account: AccountId(3),
        target: OrderRef::Id(ids[1]),
    });
    assert!(matches!(
        engine_events(&events)[..],
        [Event::OrderCancelled { order, reason: CancelReason::Requested, .. }] if *order == ids[1]
    ));
    h.ok(CommandKind::Cancel {
        account: AccountId(3),
        target: OrderRef::Client(ClientOrderId(3)),
    });
    // Gone: both ways of naming them now fail; an id with a foreign tag too.
    for target in [OrderRef::Id(ids[1]), OrderRef::Client(ClientOrderId(3))] {
        let events = h.one(CommandKind::Cancel {
            account: AccountId(3),
            target,
        });
        assert_eq!(outcome(&events), Some(RejectReason::UnknownOrder));
    }
    let foreign = global_order_id(MatchingShardIndex(7), split_order_id(ids[0]).1);
    let events = h.one(CommandKind::Cancel {
        account: AccountId(3),
        target: OrderRef::Id(foreign),
    });
    assert_eq!(outcome(&events), Some(RejectReason::UnknownOrder));

    // Mass cancel of every market: one summary with the total count.
    let more = vec![
        h.limit(3, 1, Side::Sell, 11_000, 1),
        h.limit(3, 2, Side::Buy, 9_000, 1),
    ];
    h.batch(more);
    let events = h.ok(CommandKind::MassCancel {
        account: AccountId(3),
        market: None,
        side: None,
    });
    let engine = engine_events(&events);
    let cancelled = engine
        .iter()
        .filter(|e| matches!(e, Event::OrderCancelled { .. }))
        .count();
    assert_eq!(cancelled, 4);
    let summaries: Vec<_> = engine
        .iter()
        .filter(|e| matches!(e, Event::MassCancelled { .. }))
        .collect();
    assert_eq!(
        summaries,
        vec![&&Event::MassCancelled {
            account: AccountId(3),
            count: 4
        }]
    );
    for c in [BTC, USD, ETH] {
        assert_eq!(
            h.available(3, c),
            start[[BTC, USD, ETH].iter().position(|&x| x == c).unwrap()]
        );
    }

    // Kill switch: cancels on every shard, one summary, then refuses and returns the escrow.
    let more = vec![
        h.limit(3, 0, Side::Buy, 9_000, 2),
        h.limit(3, 1, Side::Sell, 11_000, 2),
    ];
    h.batch(more);
    let events = h.ok(CommandKind::KillSwitch {
        account: AccountId(3),
        on: true,
    });
    let engine = engine_events(&events);
    assert_eq!(
        engine
            .iter()
            .filter(|e| matches!(
                e,
                Event::OrderCancelled {
                    reason: CancelReason::KillSwitch,
                    ..
                }
            ))
            .count(),
        2
    );
    assert_eq!(
        engine[engine.len() - 2..],
        [
            &Event::MassCancelled {
                account: AccountId(3),
                count: 2
            },
            &Event::KillSwitchSet {
                account: AccountId(3),
                on: true
            }
        ]
    );
    let order = h.limit(3, 2, Side::Buy, 9_000, 1);
    let events = h.one(order);
    assert_eq!(outcome(&events), Some(RejectReason::KillSwitchActive));
    assert_eq!(
        events.len(),
        3,
        "escrow sent, returned, outcome: {events:?}"
    );
    for (i, c) in [BTC, USD, ETH].into_iter().enumerate() {
        assert_eq!(h.available(3, c), start[i]);
    }
    h.ok(CommandKind::KillSwitch {
        account: AccountId(3),
        on: false,
    });
    let order = h.limit(3, 2, Side::Buy, 9_000, 1);
    h.ok(order);
}

#[test]
fn a_matching_side_reject_returns_the_full_escrow() {
    let mut h = Harness::new();
    h.fund(1, 10_000_000);
    h.fund(2, 10_000_000);
    let ask = h.limit(1, 1, Side::Sell, 10_000, 5);
    h.ok(ask);
    let usd = h.available(2, USD);
    // Post-only that would take: only the matching engine can know.
    let post = h.order(
        2,
        1,
        Side::Buy,
        OrderKind::Limit {
            price: Price(10_000),
            qty: Qty(2),
        },
        TimeInForce::PostOnly,
    );
    let events = h.one(post);
    assert_eq!(
        events,
        vec![
            ClusterEventKind::EscrowSent {
                account: AccountId(2),
                currency: USD,
                amount: Amount(20_000),
                shard: MatchingShardIndex(1),
            },
            ClusterEventKind::EscrowReturned {
                account: AccountId(2),
                currency: USD,
                amount: Amount(20_000),
                shard: MatchingShardIndex(1),
            },
            ClusterEventKind::Completed {
                rejected: Some(RejectReason::PostOnlyWouldTake)
            },
        ]
    );
    assert_eq!(h.available(2, USD), usd);
    // Halted market: refused there too, escrow back; its client id is free again.
    h.ok(CommandKind::MarketHalt {
        market: MarketId(1),
    });
    let CommandKind::NewOrder(o) = h.limit(2, 1, Side::Buy, 9_000, 1) else {
        unreachable!()
    };
    let events = h.one(CommandKind::NewOrder(o.clone()));
    assert_eq!(outcome(&events), Some(RejectReason::MarketHalted));
    assert_eq!(h.available(2, USD), usd);
    h.ok(CommandKind::MarketResume {
        market: MarketId(1),
    });
    h.ok(CommandKind::NewOrder(o));
}

#[test]
fn replace_by_global_id_takes_only_the_extra_lock_and_market_orders_use_the_view() {
    let mut h = Harness::new();
    h.fund(1, 10_000_000);
    h.fund(2, 10_000_000);
    let bid = h.limit(2, 2, Side::Buy, 9_000, 10);
    let id = accepted_id(&h.ok(bid));
    let btc = h.available(2, BTC);
    let events = h.ok(CommandKind::CancelReplace(CancelReplace {
        account: AccountId(2),
        target: OrderRef::Id(id),
        new_price: None,
        new_qty: Qty(15),
    }));
    // A size increase loses priority: replaced, then rested again.
    assert!(matches!(
        engine_events(&events)[..],
        [Event::OrderReplaced { order, priority_kept: false, .. }, Event::OrderRested { .. }] if *order == id
    ));
    assert_eq!(h.available(2, BTC), btc - 5 * 9_000);
    // Down again by client id: the freed lock comes back.
    h.ok(CommandKind::CancelReplace(CancelReplace {
        account: AccountId(2),
        target: OrderRef::Client(ClientOrderId(1)),
        new_price: None,
        new_qty: Qty(4),
    }));
    assert_eq!(h.available(2, BTC), btc + 6 * 9_000);
    // A market sell by quantity trades against it; a market buy by budget on another shard.
    let sell = h.order(
        1,
        2,
        Side::Sell,
        OrderKind::Market {
            size: MarketSize::Qty(Qty(4)),
        },
        TimeInForce::Ioc,
    );
    let events = h.ok(sell);
    assert!(
        engine_events(&events)
            .iter()
            .any(|e| matches!(e, Event::OrderFilled { order, .. } if *order == id))
    );
    let ask = h.limit(2, 0, Side::Sell, 10_000, 3);
    h.ok(ask);
    let buy = h.order(
        1,
        0,
        Side::Buy,
        OrderKind::Market {
            size: MarketSize::QuoteBudget(Amount(25_000)),
        },
        TimeInForce::Ioc,
    );
    let events = h.ok(buy);
    let traded: u64 = engine_events(&events)
        .iter()
        .filter_map(|e| match e {
            Event::Trade(t) => Some(t.qty.0),
            _ => None,
        })
        .sum();
    assert_eq!(traded, 2);
    for c in [BTC, USD, ETH] {
        assert_eq!(held(&h.cluster, c), 2 * 10_000_000);
    }
}

#[test]
fn withdrawals_are_unique_cluster_wide_and_count_as_external() {
    let mut h = Harness::new();
    h.fund(1, 1_000);
    h.fund(2, 1_000);
    let hold = |account: u32, id: u64| CommandKind::WithdrawalHold {
        account: AccountId(account),
        currency: USD,
        amount: Amount(400),
        withdrawal: WithdrawalId(id),
    };
    h.ok(hold(1, 9));
    // Same id from an account on the other risk shard.
    assert_eq!(
        outcome(&h.one(hold(2, 9))),
        Some(RejectReason::DuplicateWithdrawal)
    );
    h.ok(CommandKind::WithdrawalSettle {
        withdrawal: WithdrawalId(9),
    });
    assert_eq!(
        outcome(&h.one(CommandKind::WithdrawalRelease {
            withdrawal: WithdrawalId(9)
        })),
        Some(RejectReason::UnknownWithdrawal)
    );
    // A failed hold frees its id at the batch boundary.
    let too_much = CommandKind::WithdrawalHold {
        account: AccountId(2),
        currency: USD,
        amount: Amount(5_000),
        withdrawal: WithdrawalId(10),
    };
    assert_eq!(
        outcome(&h.one(too_much)),
        Some(RejectReason::InsufficientBalance)
    );
    h.ok(hold(2, 10));
    h.ok(CommandKind::WithdrawalRelease {
        withdrawal: WithdrawalId(10),
    });
    let totals = h.cluster.external_totals(USD);
    assert_eq!((totals.deposited, totals.withdrawn), (2_000, 400));
    assert_eq!(held(&h.cluster, USD), 1_600);
    assert_eq!(h.available(1, USD), 600);
    assert_eq!(h.available(2, USD), 1_000);
}

// ---- random flows: conservation after every batch ----

#[derive(Clone, Debug)]
enum Op {
    Order {
        account: u32,
        market: u32,
        side: Side,
        kind: u8,
        price: u64,
        qty: u64,
        client: u64,
    },
    CancelId(usize),
    CancelClient(u32, u64),
    Replace(usize, Option<u64>, u64),
    MassCancel(u32, Option<u32>),
    Kill(u32, bool),
    Deposit(u32, u16, u64),
    Hold(u32, u16, u64, u64),
    Settle(u64),
    Release(u64),
    Halt(u32, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let account = 0..6u32;
    let market = 0..6u32;
    let side = prop_oneof![Just(Side::Buy), Just(Side::Sell)];
    prop_oneof![
        12 => (account.clone(), market.clone(), side, 0..6u8, 9_950..10_050u64, 1..20u64, 1..40u64).prop_map(
            |(account, market, side, kind, price, qty, client)| Op::Order { account, market, side, kind, price, qty, client }),
        2 => (0..64usize).prop_map(Op::CancelId),
        1 => (account.clone(), 1..40u64).prop_map(|(a, c)| Op::CancelClient(a, c)),
        2 => (0..64usize, proptest::option::of(9_950..10_050u64), 1..25u64).prop_map(|(i, p, q)| Op::Replace(i, p, q)),
        1 => (account.clone(), proptest::option::of(market.clone())).prop_map(|(a, m)| Op::MassCancel(a, m)),
        1 => (account.clone(), any::<bool>()).prop_map(|(a, on)| Op::Kill(a, on)),
        1 => (account.clone(), 0..3u16, 1..50_000_000u64).prop_map(|(a, c, x)| Op::Deposit(a, c, x)),
        1 => (account.clone(), 0..3u16, 1..20_000_000u64, 0..4u64).prop_map(|(a, c, x, w)| Op::Hold(a, c, x, w)),
        1 => (0..4u64).prop_map(Op::Settle),
        1 => (0..4u64).prop_map(Op::Release),
        1 => (market, any::<bool>()).prop_map(|(m, on)| Op::Halt(m, on)),
    ]
}

/// Six markets over three currencies: M0 BTC/USD, M1 ETH/USD, M2 ETH/BTC, then again.
fn six_markets() -> Vec<CommandKind> {
    let pairs = [(BTC, USD), (ETH, USD), (ETH, BTC)];
    let mut kinds = vec![
        CommandKind::CurrencyAdd { currency: BTC },
        CommandKind::CurrencyAdd { currency: USD },
        CommandKind::CurrencyAdd { currency: ETH },
    ];
    for m in 0..6u32 {
        let (base, quote) = pairs[m as usize % 3];
        kinds.push(market(m, base, quote));
    }
    kinds
}

fn to_kind(op: &Op, ids: &[(AccountId, OrderId)]) -> CommandKind {
    match *op {
        Op::Order {
            account,
            market,
            side,
            kind,
            price,
            qty,
            client,
        } => {
            let (price, qty) = (Price(price), Qty(qty));
            let (kind, tif) = match kind {
                0 | 1 => (OrderKind::Limit { price, qty }, TimeInForce::Gtc),
                2 => (OrderKind::Limit { price, qty }, TimeInForce::Ioc),
                3 => (
                    OrderKind::Market {
                        size: if side == Side::Buy && qty.0 % 2 == 0 {
                            MarketSize::QuoteBudget(Amount(price.0 * qty.0))
                        } else {
                            MarketSize::Qty(qty)
                        },
                    },
                    TimeInForce::Ioc,
                ),
                4 => (
                    OrderKind::StopLimit {
                        trigger: price,
                        price,
                        qty,
                    },
                    TimeInForce::Gtc,
                ),
                _ => (OrderKind::Limit { price, qty }, TimeInForce::Fok),
            };
            CommandKind::NewOrder(NewOrder {
                account: AccountId(account),
                market: MarketId(market),
                client_order_id: ClientOrderId(client),
                side,
                kind,
                tif,
                stp: if client % 2 == 0 {
                    SelfTradePrevention::CancelOldest
                } else {
                    SelfTradePrevention::CancelNewest
                },
            })
        }
        Op::CancelId(i) => {
            let (account, id) = ids
                .get(i % ids.len().max(1))
                .copied()
                .unwrap_or((AccountId(0), OrderId(1)));
            CommandKind::Cancel {
                account,
                target: OrderRef::Id(id),
            }
        }
        Op::CancelClient(a, c) => CommandKind::Cancel {
            account: AccountId(a),
            target: OrderRef::Client(ClientOrderId(c)),
        },
        Op::Replace(i, price, qty) => {
            let (account, id) = ids
                .get(i % ids.len().max(1))
                .copied()
                .unwrap_or((AccountId(0), OrderId(1)));
            CommandKind::CancelReplace(CancelReplace {
                account,
                target: OrderRef::Id(id),
                new_price: price.map(Price),
                new_qty: Qty(qty),
            })
        }
        Op::MassCancel(a, m) => CommandKind::MassCancel {
            account: AccountId(a),
            market: m.map(MarketId),
            side: None,
        },
        Op::Kill(a, on) => CommandKind::KillSwitch {
            account: AccountId(a),
            on,
        },
        Op::Deposit(a, c, x) => CommandKind::Deposit {
            account: AccountId(a),
            currency: CurrencyId(c),
            amount: Amount(x),
            deposit: next_deposit_id(),
        },
        Op::Hold(a, c, x, w) => CommandKind::WithdrawalHold {
            account: AccountId(a),
            currency: CurrencyId(c),
            amount: Amount(x),
            withdrawal: WithdrawalId(w),
        },
        Op::Settle(w) => CommandKind::WithdrawalSettle {
            withdrawal: WithdrawalId(w),
        },
        Op::Release(w) => CommandKind::WithdrawalRelease {
            withdrawal: WithdrawalId(w),
        },
        Op::Halt(m, true) => CommandKind::MarketHalt {
            market: MarketId(m),
        },
        Op::Halt(m, false) => CommandKind::MarketResume {
            market: MarketId(m),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_flows_conserve_every_currency_across_shards(
        batches in proptest::collection::vec(
            (proptest::collection::vec(op(), 1..32), any::<bool>()), 1..16),
        matching in 2..4u16,
    ) {
        let mut cluster = cluster(2, matching);
        let mut out = Vec::new();
        let mut ts = 1_000u64;
        let mut command = |kind| { ts += 1_000; Envelope { ts: TimestampNs(ts), actor: peregrine_hotpath::Actor::System, kind } };
        let setup: Vec<Envelope> = six_markets().into_iter().map(&mut command).collect();
        cluster.apply_batch(&setup, &mut out).unwrap();
        let funding: Vec<Envelope> = (0..6u32)
            .flat_map(|a| [BTC, USD, ETH].map(|currency| (a, currency)))
            .map(|(a, currency)| command(CommandKind::Deposit {
                account: AccountId(a), currency, amount: Amount(200_000_000), deposit: DepositId(u64::from(a) << 16 | u64::from(currency.0)),
            }))
            .collect();
        cluster.apply_batch(&funding, &mut out).unwrap();
        // The test's own count of external funds, from the events.
        let mut external: BTreeMap<u16, i128> = BTreeMap::new();
        let mut ids: Vec<(AccountId, OrderId)> = Vec::new();
        let mut trades = 0usize;
        let mut seen = 0usize;
        for (ops, cut) in batches {
            // Half of the batches are cut in two, so boundaries vary inside one flow.
            let kinds: Vec<Envelope> = ops.iter().map(|op| command(to_kind(op, &ids))).collect();
            let parts: Vec<&[Envelope]> = if cut && kinds.len() > 1 {
                let (a, b) = kinds.split_at(kinds.len() / 2);
                vec![a, b]
            } else {
                vec![&kinds[..]]
            };
            for part in parts {
                cluster.apply_batch(part, &mut out).unwrap();
                if let Err(e) = cluster.audit() {
                    panic!("audit after batch: {e}");
                }
            }
            for event in &out[seen..] {
                match &event.kind {
                    ClusterEventKind::Engine(Event::OrderAccepted { order, account, .. }) => {
                        ids.push((*account, *order));
                    }
                    ClusterEventKind::Engine(Event::Trade(_)) => trades += 1,
                    _ => {}
                }
            }
            seen = out.len();
            for c in 0..3u16 {
                let e = external.entry(c).or_default();
                *e = 0;
            }
            for event in &out {
                match event.kind {
                    ClusterEventKind::Engine(Event::Deposited { currency, amount, .. }) => {
                        *external.entry(currency.0).or_default() += i128::from(amount.0);
                    }
                    ClusterEventKind::Engine(Event::WithdrawalSettled { currency, amount, .. }) => {
                        *external.entry(currency.0).or_default() -= i128::from(amount.0);
                    }
                    _ => {}
                }
            }
            for (&c, &net) in &external {
                prop_assert_eq!(held(&cluster, CurrencyId(c)) as i128, net, "currency {}", c);
            }
        }
        // Commands got exactly one outcome each.
        let completed = out.iter().filter(|e| matches!(e.kind, ClusterEventKind::Completed { .. })).count();
        prop_assert_eq!(completed as u64, cluster.commands_applied());
        let _ = trades;
    }
}

// ---- the threaded runtime equals the reference executor ----

fn flow_commands(n: usize, seed: u64) -> (Vec<Envelope>, Vec<Envelope>) {
    let mut flow = Flow::new(FlowParams {
        seed,
        accounts: 40,
        markets: 6,
        tracked_orders: 2_000,
        ..FlowParams::default()
    });
    let setup = flow.setup();
    let commands = (0..n).map(|_| flow.next_command()).collect();
    (setup, commands)
}

/// A digest of the final state: every engine's canonical snapshot.
fn state(cluster: &Cluster) -> Vec<Vec<u8>> {
    let config = cluster.config();
    let risk = (0..config.risk_shards).map(|i| cluster.risk_engine(RiskShardIndex(i)).unwrap());
    let matching = (0..config.matching_shards)
        .map(|i| cluster.matching_engine(MatchingShardIndex(i)).unwrap());
    risk.chain(matching)
        .map(|e| e.snapshot().unwrap())
        .collect()
}

fn reference(setup: &[Envelope], commands: &[Envelope], batch: usize) -> (u64, usize, Cluster) {
    let mut cluster = cluster(2, 3);
    let mut out = Vec::new();
    cluster.apply_batch(setup, &mut out).unwrap();
    let mut hasher = DefaultHasher::new();
    let mut events = out.len();
    out.hash(&mut hasher);
    for chunk in commands.chunks(batch) {
        out.clear();
        cluster.apply_batch(chunk, &mut out).unwrap();
        events += out.len();
        out.hash(&mut hasher);
    }
    cluster.audit().unwrap();
    (hasher.finish(), events, cluster)
}

fn threaded(
    setup: &[Envelope],
    commands: &[Envelope],
    batch: usize,
    cores: Vec<usize>,
) -> (u64, Cluster) {
    threaded_with(
        setup,
        commands,
        batch,
        cores,
        ClusterRuntimeConfig::default().idle,
    )
}

fn threaded_with(
    setup: &[Envelope],
    commands: &[Envelope],
    batch: usize,
    cores: Vec<usize>,
    idle: IdlePolicy,
) -> (u64, Cluster) {
    let runtime = ClusterRuntime::start(
        cluster(2, 3),
        &ClusterRuntimeConfig {
            cores,
            input_batches: 4,
            output_batches: 4,
            idle,
        },
    )
    .unwrap();
    let mut hasher = DefaultHasher::new();
    let mut batches =
        std::iter::once(setup.to_vec()).chain(commands.chunks(batch).map(<[Envelope]>::to_vec));
    let mut pending = batches.next();
    let mut busy = 0u64;
    loop {
        // Feed until Busy, then drain what is ready: back-pressure, never a block.
        while let Some(batch) = pending.take() {
            match runtime.submit(batch) {
                Ok(()) => pending = batches.next(),
                Err(ClusterSubmitError::Busy(back)) => {
                    busy += 1;
                    pending = Some(back);
                    break;
                }
                Err(other) => panic!("submit failed: {other:?}"),
            }
        }
        if pending.is_none() {
            break;
        }
        if let Some(events) = runtime.next_timeout(Duration::from_secs(10)) {
            events.hash(&mut hasher);
            runtime.recycle(events);
        }
    }
    let (cluster, rest) = runtime.stop().unwrap();
    for events in rest {
        events.hash(&mut hasher);
    }
    let _ = busy;
    cluster.audit().unwrap();
    (hasher.finish(), cluster)
}

#[test]
fn threaded_runtime_matches_the_reference_executor_and_replays_identically() {
    let (setup, commands) = flow_commands(12_000, 11);
    let cores: Vec<usize> = core_ids();
    for (i, batch) in [1usize, 7, 64, 1_000].into_iter().enumerate() {
        let n = if batch == 1 { 3_000 } else { commands.len() };
        let (hash, events, reference_cluster) = reference(&setup, &commands[..n], batch);
        let (again, _, _) = reference(&setup, &commands[..n], batch);
        assert_eq!(
            hash, again,
            "replay with the same boundaries differs (batch {batch})"
        );
        // Pinned (all threads on the available cores, cycled) and unpinned alternately.
        let pin = if i % 2 == 0 {
            cores.clone()
        } else {
            Vec::new()
        };
        let (threaded_hash, threaded_cluster) = threaded(&setup, &commands[..n], batch, pin);
        assert_eq!(
            hash, threaded_hash,
            "threaded stream differs (batch {batch})"
        );
        assert_eq!(
            state(&reference_cluster),
            state(&threaded_cluster),
            "final state differs (batch {batch})"
        );
        assert!(events > n, "too few events: {events}");
        let trades: u64 = (0..3)
            .map(|m| {
                reference_cluster
                    .matching_engine(MatchingShardIndex(m))
                    .unwrap()
                    .ledger()
                    .totals(USD)
                    .fees
            })
            .map(|f| u64::from(f > 0))
            .sum();
        assert_eq!(trades, 3, "every matching shard traded (batch {batch})");
    }
}

#[test]
fn different_flows_and_batchings_give_different_streams() {
    // Guards the equality test above against hashing nothing.
    let (setup, a) = flow_commands(2_000, 1);
    let (_, b) = flow_commands(2_000, 2);
    assert_ne!(reference(&setup, &a, 64).0, reference(&setup, &b, 64).0);
}

#[test]
fn runtime_pinned_to_one_core_with_tiny_queues_still_completes() {
    let (setup, commands) = flow_commands(2_000, 5);
    let (hash, _, _) = reference(&setup, &commands, 16);
    let one = core_ids().into_iter().take(1).collect();
    let (threaded_hash, _) = threaded(&setup, &commands, 16, one);
    assert_eq!(hash, threaded_hash);
}

#[test]
fn spinning_runtime_matches_the_reference_executor() {
    // Spinning threads outnumber the cores here: slow, but the stream must not change.
    let (setup, commands) = flow_commands(1_500, 6);
    let (hash, _, _) = reference(&setup, &commands, 100);
    let (spun, _) = threaded_with(&setup, &commands, 100, Vec::new(), IdlePolicy::Spin);
    assert_eq!(hash, spun);
}

fn core_ids() -> Vec<usize> {
    // The cores this process may use, as the runtime validates them.
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

#[test]
fn oversized_batches_are_refused() {
    let mut config = ClusterConfig::new(engine_config(), 1, 1);
    config.max_batch_commands = 2;
    let mut cluster = Cluster::new(config.clone()).unwrap();
    let (setup, _) = flow_commands(0, 1);
    let mut out = Vec::new();
    assert!(matches!(
        cluster.apply_batch(&setup[..3], &mut out),
        Err(ClusterError::BatchTooLarge { len: 3, max: 2 })
    ));
    assert!(out.is_empty());
    let runtime = ClusterRuntime::start(cluster, &ClusterRuntimeConfig::default()).unwrap();
    assert!(matches!(
        runtime.submit(setup[..3].to_vec()),
        Err(ClusterSubmitError::TooLarge(_))
    ));
    runtime.stop().unwrap();
}

#[test]
fn a_seeded_flow_over_three_matching_shards_is_audited_after_every_batch() {
    let (setup, commands) = flow_commands(6_000, 23);
    let mut cluster = cluster(2, 3);
    let mut out = Vec::new();
    cluster.apply_batch(&setup, &mut out).unwrap();
    let mut trades_per_shard = [0u64; 3];
    let mut fees = [0u128; 2];
    let mut sizes = [1usize, 13, 50, 200].into_iter().cycle();
    let mut rest = &commands[..];
    // Bounded by the commands: each batch takes at least one.
    while !rest.is_empty() {
        let n = sizes.next().unwrap().min(rest.len());
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        out.clear();
        cluster.apply_batch(batch, &mut out).unwrap();
        cluster.audit().unwrap();
        for event in &out {
            if let ClusterEventKind::Engine(Event::Trade(t)) = &event.kind {
                trades_per_shard[split_order_id(t.taker_order).0.0 as usize] += 1;
                // The flow trades base 0 for quote 1; each side pays its fee in what it receives.
                let (buyer_fee, seller_fee) = match t.taker_side {
                    Side::Buy => (t.taker_fee, t.maker_fee),
                    Side::Sell => (t.maker_fee, t.taker_fee),
                };
                fees[0] += u128::from(buyer_fee.0);
                fees[1] += u128::from(seller_fee.0);
            }
        }
    }
    assert!(
        trades_per_shard.iter().all(|&t| t > 50),
        "{trades_per_shard:?}"
    );
    // Everything deposited is still somewhere; fees were collected on every shard.
    for c in [CurrencyId(0), CurrencyId(1)] {
        let t = cluster.external_totals(c);
        assert_eq!(held(&cluster, c), t.deposited - t.withdrawn);
        assert!(cluster.fees_collected(c) > 0);
        assert_eq!(
            cluster.fees_collected(c),
            fees[c.0 as usize],
            "fees of currency {c}"
        );
    }
}

#[test]
fn a_full_input_is_busy_and_nothing_is_lost() {
    let (setup, commands) = flow_commands(400, 9);
    let runtime = ClusterRuntime::start(
        cluster(2, 3),
        &ClusterRuntimeConfig {
            cores: Vec::new(),
            input_batches: 1,
            output_batches: 1,
            ..ClusterRuntimeConfig::default()
        },
    )
    .unwrap();
    runtime.submit(setup.clone()).unwrap();
    let mut submitted = setup.len();
    let mut busy = false;
    // Nobody reads the output, so the coordinator stalls and the input fills.
    for batch in commands.chunks(10) {
        match runtime.submit(batch.to_vec()) {
            Ok(()) => submitted += batch.len(),
            Err(ClusterSubmitError::Busy(back)) => {
                assert_eq!(back, batch);
                busy = true;
                break;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(busy, "a full input must refuse, not block");
    let (cluster, pending) = runtime.stop().unwrap();
    let completed = pending
        .iter()
        .flatten()
        .filter(|e| matches!(e.kind, ClusterEventKind::Completed { .. }))
        .count();
    assert_eq!(completed, submitted);
    assert_eq!(cluster.commands_applied(), submitted as u64);
    cluster.audit().unwrap();
}

/// A rough throughput figure (run in release with `--ignored --nocapture`): commands per second
/// of one engine, the reference executor and the threaded runtime on the same seeded flow.
#[test]
#[ignore = "measurement, not a check"]
fn throughput_of_reference_and_threaded_execution() {
    let (setup, commands) = flow_commands(300_000, 3);
    let mut engine = Engine::new(engine_config()).unwrap();
    let mut events = Vec::new();
    let start = std::time::Instant::now();
    for command in setup.iter().chain(&commands) {
        events.clear();
        engine.apply(command, &mut events);
    }
    let rate = |elapsed: Duration| commands.len() as f64 / elapsed.as_secs_f64();
    println!("single engine: {:.0} commands/s", rate(start.elapsed()));
    for batch in [64usize, 1_024, 4_096] {
        let mut cluster = cluster(2, 3);
        let mut out = Vec::with_capacity(1 << 16);
        cluster.apply_batch(&setup, &mut out).unwrap();
        let start = std::time::Instant::now();
        for chunk in commands.chunks(batch) {
            out.clear();
            cluster.apply_batch(chunk, &mut out).unwrap();
        }
        println!(
            "reference 2x3, batch {batch}: {:.0} commands/s",
            rate(start.elapsed())
        );
        let runtime =
            ClusterRuntime::start(cluster_2x3(), &ClusterRuntimeConfig::default()).unwrap();
        runtime.submit(setup.clone()).unwrap();
        let start = std::time::Instant::now();
        let mut chunks = commands.chunks(batch).map(<[Envelope]>::to_vec);
        let mut pending = chunks.next();
        // Bounded by the batches: each pass submits one or takes one batch of events.
        while let Some(b) = pending.take() {
            match runtime.submit(b) {
                Ok(()) => pending = chunks.next(),
                Err(ClusterSubmitError::Busy(back)) => {
                    pending = Some(back);
                    if let Some(events) = runtime.next_timeout(Duration::from_secs(10)) {
                        runtime.recycle(events);
                    }
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        let (_, _) = runtime.stop().unwrap();
        println!(
            "threaded 2x3, batch {batch}: {:.0} commands/s",
            rate(start.elapsed())
        );
    }
}

// ---- the reference executor allocates nothing in the steady state ----

/// Counts heap allocations of the thread that asks (tests run on parallel threads).
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_batches_allocate_nothing() {
    let (setup, commands) = flow_commands(60_000, 17);
    let mut cluster = cluster(2, 3);
    let mut out = Vec::with_capacity(1 << 16);
    cluster.apply_batch(&setup, &mut out).unwrap();
    let (warm, measured) = commands.split_at(40_000);
    // Warm-up: books, indices and the batch buffers reach their working size.
    for chunk in warm.chunks(256) {
        out.clear();
        cluster.apply_batch(chunk, &mut out).unwrap();
    }
    let mut trades = 0;
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    for chunk in measured.chunks(256) {
        out.clear();
        cluster.apply_batch(chunk, &mut out).unwrap();
        trades += out
            .iter()
            .filter(|e| matches!(e.kind, ClusterEventKind::Engine(Event::Trade(_))))
            .count();
    }
    COUNTING.with(|c| c.set(false));
    assert!(trades > 500, "the flow must trade: {trades}");
    assert_eq!(
        ALLOCATIONS.with(Cell::get),
        0,
        "heap allocations while trading"
    );
}

/// With one matching shard the cluster must behave as one engine: same order, trade and cancel
/// events (ids included: shard 0's tag is 0), same outcomes. Balance events differ by design (the
/// matching engine's are escrow), so they are left out. Market orders are left out of batched
/// runs: their escrow uses the reference of the previous batch.
#[test]
fn one_matching_shard_reproduces_the_single_engine() {
    for (batch, market_percent) in [(1usize, 2u64), (32, 0)] {
        let mut flow = Flow::new(FlowParams {
            seed: 31,
            accounts: 40,
            markets: 3,
            market_percent,
            tracked_orders: 2_000,
            ..FlowParams::default()
        });
        let setup = flow.setup();
        let commands: Vec<Envelope> = (0..5_000).map(|_| flow.next_command()).collect();

        let mut engine = Engine::new(engine_config()).unwrap();
        let mut expected: Vec<(u64, Result<Vec<Event>, RejectReason>)> = Vec::new();
        let mut events = Vec::new();
        for (i, command) in setup.iter().chain(&commands).enumerate() {
            events.clear();
            engine.apply(command, &mut events);
            let outcome = match events[..] {
                [Event::Rejected { reason }] => Err(reason),
                _ => Ok(events.clone()),
            };
            expected.push((i as u64 + 1, outcome));
        }

        let mut cluster = cluster(2, 1);
        let mut out = Vec::new();
        cluster.apply_batch(&setup, &mut out).unwrap();
        for chunk in commands.chunks(batch) {
            cluster.apply_batch(chunk, &mut out).unwrap();
        }
        cluster.audit().unwrap();
        let mut actual: Vec<(u64, Result<Vec<Event>, RejectReason>)> = Vec::new();
        let mut current = Vec::new();
        for event in out {
            match event.kind {
                ClusterEventKind::EscrowSent { .. } | ClusterEventKind::EscrowReturned { .. } => {}
                ClusterEventKind::Engine(e) => current.push(e),
                ClusterEventKind::Completed { rejected } => {
                    let events = std::mem::take(&mut current);
                    actual.push((event.seq, rejected.map_or(Ok(events), Err)));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(&expected) {
            assert_eq!(a, e, "batch {batch}: command {} differs", e.0);
        }
        let trades = expected
            .iter()
            .filter_map(|(_, o)| o.as_ref().ok())
            .flatten()
            .filter(|e| matches!(e, Event::Trade(_)))
            .count();
        assert!(trades > 100, "the flow must trade: {trades}");
    }
}

/// A deposit id not used before in this test process (deposit ids are idempotency keys).
fn next_deposit_id() -> DepositId {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 48);
    DepositId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}
