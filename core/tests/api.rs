//! The core's protocol-neutral API end to end on a real shard: tickets resolve to every event
//! of their command, an account's subscription hears its orders and the replies to its own
//! commands in order, followed markets start with a snapshot, duplicates are refused with the
//! original's status, a lagging subscriber is told, and shutdown ends everything cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code asserts by unwrapping.

use std::sync::Arc;
use std::time::Duration;

use peregrine_core::{
    CloseReason, EngineHandle, Executed, Interest, Liquidity, MarketNotice, Notice, OrderState,
    Request, SubmitError, Subscription,
};
use peregrine_hotpath::runtime::{Shard, ShardConfig};
use peregrine_hotpath::{
    AccountId, Actor, Amount, ClientOrderId, CommandKind, CurrencyId, DepositId, Engine,
    EngineConfig, Event, FeeRates, MarketId, MarketRisk, MarketSpec, NewOrder, OrderKind, Price,
    Qty, SelfTradePrevention, Side, TimeInForce,
};

const M: MarketId = MarketId(0);
const WAIT: Duration = Duration::from_secs(5);

fn setup_commands() -> Vec<CommandKind> {
    let mut commands = vec![
        CommandKind::CurrencyAdd {
            currency: CurrencyId(0),
        },
        CommandKind::CurrencyAdd {
            currency: CurrencyId(1),
        },
        CommandKind::MarketAdd(MarketSpec {
            market: M,
            base: CurrencyId(0),
            quote: CurrencyId(1),
            base_per_lot: 1_000,
            quote_per_tick_lot: 1,
            risk: MarketRisk {
                max_price: Price(1_000_000),
                max_qty: Qty(1_000_000),
                max_notional: Amount(1_000_000_000_000),
                band_bps: 5_000,
                reference_price: Price(10_000),
            },
            fees: FeeRates {
                maker_ppm: 0,
                taker_ppm: 0,
            },
        }),
    ];
    for account in 1..=2 {
        for currency in 0..2 {
            commands.push(CommandKind::Deposit {
                account: AccountId(account),
                currency: CurrencyId(currency),
                amount: Amount(1_000_000_000_000),
                deposit: DepositId(u64::from(account) << 16 | u64::from(currency)),
            });
        }
    }
    commands
}

fn limit(account: u32, id: u64, side: Side, price: u64) -> Request {
    let order = NewOrder {
        account: AccountId(account),
        market: M,
        client_order_id: ClientOrderId(id),
        side,
        kind: OrderKind::Limit {
            price: Price(price),
            qty: Qty(1),
        },
        tif: TimeInForce::Gtc,
        stp: SelfTradePrevention::CancelNewest,
    };
    Request::new(Actor::System, CommandKind::NewOrder(order))
        .new_order(AccountId(account), ClientOrderId(id))
}

async fn started() -> Arc<EngineHandle> {
    let shard = Shard::start(
        Engine::new(EngineConfig::small()).unwrap(),
        &ShardConfig::default(),
    )
    .unwrap();
    let engine = EngineHandle::start(shard).unwrap();
    for command in setup_commands() {
        let executed = run(&engine, Request::new(Actor::System, command)).await;
        assert_eq!(executed.rejected(), None, "{executed:?}");
    }
    engine
}

async fn run(engine: &EngineHandle, request: Request) -> Executed {
    let ticket = engine.submit(request).unwrap();
    let seq = ticket.seq();
    let executed = tokio::time::timeout(WAIT, ticket).await.unwrap().unwrap();
    assert_eq!(executed.seq, seq);
    executed
}

async fn next(subscription: &mut Subscription) -> Result<Notice, CloseReason> {
    tokio::time::timeout(WAIT, subscription.recv())
        .await
        .expect("a notice in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_hears_its_orders_replies_and_market_data_in_order() {
    let engine = started().await;
    let mut buyer = engine
        .subscribe(Interest::Account(AccountId(1)), 64)
        .unwrap();
    let mut seller = engine
        .subscribe(Interest::Account(AccountId(2)), 64)
        .unwrap();
    engine.follow_market(buyer.id(), M).unwrap();
    assert!(matches!(
        next(&mut buyer).await,
        Ok(Notice::Market(MarketNotice::Snapshot {
            bids: 0,
            asks: 0,
            ..
        }))
    ));

    let bid = run(&engine, limit(1, 7, Side::Buy, 10_000).reply_to(buyer.id())).await;
    assert!(
        bid.events
            .iter()
            .any(|e| matches!(e, Event::OrderAccepted { .. }))
    );
    assert!(matches!(
        next(&mut buyer).await,
        Ok(Notice::Accepted { seq, client_order_id: ClientOrderId(7), .. }) if seq == bid.seq
    ));
    assert!(matches!(
        next(&mut buyer).await,
        Ok(Notice::Market(MarketNotice::BookLevel {
            side: Side::Buy,
            qty: Qty(1),
            snapshot: false,
            ..
        }))
    ));
    assert_eq!(next(&mut buyer).await, Ok(Notice::Done { seq: bid.seq }));

    // A resend of the same client order id is refused with the original's status.
    match engine.submit(limit(1, 7, Side::Buy, 10_000)) {
        Err(SubmitError::Duplicate(status)) => {
            assert_eq!((status.seq, status.state), (bid.seq, OrderState::Open));
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }

    // The seller crosses: both sides hear their fill, the follower hears the trade.
    let ask = run(&engine, limit(2, 9, Side::Sell, 10_000)).await;
    assert!(matches!(
        next(&mut seller).await,
        Ok(Notice::Accepted { .. })
    ));
    let mut liquidity = Vec::new();
    for subscription in [&mut seller, &mut buyer] {
        loop {
            match next(subscription).await {
                Ok(Notice::Fill(fill)) => {
                    assert_eq!(
                        (fill.seq, fill.price, fill.qty),
                        (ask.seq, Price(10_000), Qty(1))
                    );
                    liquidity.push(fill.liquidity);
                    break;
                }
                Ok(_) => {}
                Err(reason) => panic!("subscription ended: {reason}"),
            }
        }
    }
    assert_eq!(liquidity, vec![Liquidity::Taker, Liquidity::Maker]);
    let status = engine
        .status(AccountId(1), ClientOrderId(7))
        .expect("known");
    assert_eq!((status.state, status.filled), (OrderState::Filled, Qty(1)));
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_is_told_and_shutdown_ends_the_rest() {
    let engine = started().await;
    let mut lagging = engine
        .subscribe(Interest::Account(AccountId(1)), 1)
        .unwrap();
    let mut everything = engine.subscribe(Interest::Executed, 64).unwrap();
    for id in 1..=3 {
        run(&engine, limit(1, id, Side::Buy, 9_000 + id)).await;
    }
    // One notice fitted; the next closed the subscription, and the subscriber is told.
    assert!(matches!(
        next(&mut lagging).await,
        Ok(Notice::Accepted { .. })
    ));
    assert_eq!(next(&mut lagging).await, Err(CloseReason::Lagged));
    // Every command's events, in sequence order.
    let mut seqs = Vec::new();
    while let Some(notice) = everything.try_recv() {
        match notice {
            Notice::Executed(executed) => seqs.push(executed.seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seqs.len(), 3);
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]));

    engine.shutdown();
    assert_eq!(next(&mut everything).await, Err(CloseReason::ShuttingDown));
    assert_eq!(
        engine
            .submit(limit(1, 99, Side::Buy, 9_000))
            .map(|ticket| ticket.seq()),
        Err(SubmitError::Unavailable)
    );
}
