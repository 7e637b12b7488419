//! The crash test of the journal, through the real order entry path: `peregrine up` as a child
//! process, traders placing and cancelling over QUIC with durable acknowledgements, SIGKILL at
//! a random moment, restart, many times. After each kill the journal is read back (recovery
//! with an observer, as the next start-up would) and checked against what the clients were
//! told:
//! - every acknowledged order is in the log, at its sequence, with its exchange id and owner;
//! - every fill a client received is a trade in the log, with the same orders, price and size;
//! - every trade in the log is between orders whose commands are in the log;
//! - sequence numbers are gap-free from 1, and the rebuilt engine passes its ledger audit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peregrine_client::{Order, Placed, Reply};
use peregrine_hotpath::sim::Rng;
use peregrine_hotpath::{
    AccountId, ClientOrderId, CommandKind, Event, MarketId, OrderId, OrderRef, Price, Qty, Side,
    TradeId,
};
use support::{Trader, Up, write_config};

/// Kill/restart cycles: each is a start-up, a burst of trading and a SIGKILL.
const CYCLES: u64 = 5;
/// Traders per cycle, each on its own QUIC session.
const TRADERS: u32 = 3;
/// btcusd in the default catalog: ticks of 0.01 usd, lots of 0.0001 btc.
const BTCUSD: MarketId = MarketId(1);
/// 50_000.00 usd: the default reference price.
const MID_TICKS: u64 = 5_000_000;

/// What the clients were told.
#[derive(Default)]
struct Told {
    /// Acknowledged orders: (account, client id) → (exchange id, sequence).
    acked: HashMap<(u32, u64), (OrderId, u64)>,
    /// Fills: (trade, order) → (price, qty).
    fills: HashMap<(TradeId, OrderId), (Price, Qty)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let traders: Vec<Trader> = (1..=TRADERS).map(Trader::new).collect();
    // No snapshots: the check replays the whole log from sequence 1.
    write_config(
        dir.path(),
        &traders,
        "[journal]\nsnapshot_every_commands = 0\nsnapshot_every_ms = 0\n",
    );
    let told = Arc::new(Mutex::new(Told::default()));
    let mut rng = Rng::new(0x5EED_C0DE);
    for cycle in 0..CYCLES {
        let up = Up::start(dir.path());
        if cycle == 0 {
            for (index, trader) in traders.iter().enumerate() {
                let id = index as u64 * 2;
                up.deposit(trader.account, "usd", "100000000", id + 1).await;
                up.deposit(trader.account, "btc", "1000", id + 2).await;
            }
        }
        let mut tasks = Vec::new();
        for trader in &traders {
            let client = up.connect(trader).await;
            let told = Arc::clone(&told);
            let seed = rng.next_u64();
            let account = trader.account;
            tasks.push(tokio::spawn(async move {
                trade(client, account, cycle, seed, told).await;
            }));
        }
        let run_ms = 200 + rng.next_u64() % 600;
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        up.kill();
        // A killed server sends no close: the traders would wait for the idle timeout. What
        // they were told is recorded as it arrives, so they can be stopped here.
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        let told = told.lock().unwrap();
        check_log(&dir.path().join("data/journal"), &told, cycle);
    }
    let told = told.lock().unwrap();
    eprintln!(
        "{CYCLES} kill cycles: {} acknowledged orders and {} fills checked against the log",
        told.acked.len(),
        told.fills.len()
    );
    assert!(
        told.acked.len() > 100 && !told.fills.is_empty(),
        "too little trading to prove anything: {} acks, {} fills",
        told.acked.len(),
        told.fills.len()
    );
}

/// Places crossing limit orders near the mid and cancels some, until the connection fails;
/// records every acknowledgement and fill.
async fn trade(
    client: peregrine_client::Client,
    account: u32,
    cycle: u64,
    seed: u64,
    told: Arc<Mutex<Told>>,
) {
    let mut rng = Rng::new(seed);
    let mut reports = client.reports().unwrap();
    let fills_told = Arc::clone(&told);
    let fills = tokio::spawn(async move {
        while let Some(reply) = reports.recv().await {
            if let Reply::Fill(fill) = reply {
                fills_told
                    .lock()
                    .unwrap()
                    .fills
                    .insert((fill.trade, fill.order), (fill.price, fill.qty));
            }
        }
    });
    let mut live: Vec<OrderId> = Vec::new();
    // Bounded: the kill ends it within the cycle; the cap guards against a server that never
    // dies.
    for n in 0..100_000_u64 {
        let client_order_id = (cycle << 32) | n;
        if n % 4 == 3
            && let Some(order) = live.pop()
        {
            if client.cancel(OrderRef::Id(order)).await.is_err() {
                break;
            }
            continue;
        }
        let side = if rng.next_u64().is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        };
        let offset = rng.next_u64() % 20;
        let price = match side {
            Side::Buy => MID_TICKS - 10 + offset,
            Side::Sell => MID_TICKS + 10 - offset,
        };
        let order = Order::limit(
            ClientOrderId(client_order_id),
            BTCUSD,
            side,
            Price(price),
            Qty(1 + rng.next_u64() % 5),
        );
        match client.place(order).await {
            Ok(Placed::Ack { order, seq }) => {
                told.lock()
                    .unwrap()
                    .acked
                    .insert((account, client_order_id), (order, seq));
                live.push(order);
            }
            Ok(other) => panic!("order refused: {other:?}"),
            Err(_) => break,
        }
    }
    fills.abort();
    let _ = fills.await;
}

/// Reads the journal back and checks it against what the clients were told.
fn check_log(journal_dir: &std::path::Path, told: &Told, cycle: u64) {
    let mut accepted: HashMap<OrderId, (u64, AccountId, ClientOrderId)> = HashMap::new();
    let mut trades: HashMap<TradeId, peregrine_hotpath::Trade> = HashMap::new();
    let mut expected_seq = 1;
    let mut new_orders = 0_u64;
    let recovered = peregrine_persist::recover_observed(
        &peregrine_persist::JournalConfig::new(journal_dir),
        peregrine_hotpath::EngineConfig::default(),
        &mut |seq, command, events| {
            assert_eq!(seq, expected_seq, "sequence gap in the log");
            expected_seq += 1;
            if matches!(command.kind, CommandKind::NewOrder(_)) {
                new_orders += 1;
            }
            for event in events {
                match event {
                    Event::OrderAccepted {
                        order,
                        account,
                        client_order_id,
                        ..
                    } => {
                        accepted.insert(*order, (seq, *account, *client_order_id));
                    }
                    Event::Trade(trade) => {
                        trades.insert(trade.trade, trade.clone());
                    }
                    _ => {}
                }
            }
        },
    )
    .unwrap_or_else(|e| panic!("cycle {cycle}: recovery refused the journal: {e}"));
    recovered.engine.audit().unwrap();
    assert_eq!(recovered.last_seq, expected_seq - 1);
    for ((account, client_order_id), (order, seq)) in &told.acked {
        let Some((log_seq, log_account, log_client)) = accepted.get(order) else {
            panic!("cycle {cycle}: acknowledged order {order:?} (seq {seq}) is not in the log");
        };
        assert_eq!(
            (log_seq, log_account.0, log_client.0),
            (seq, *account, *client_order_id),
            "cycle {cycle}: order {order:?} differs from its acknowledgement"
        );
    }
    for ((trade_id, order), (price, qty)) in &told.fills {
        let Some(trade) = trades.get(trade_id) else {
            panic!("cycle {cycle}: fill of trade {trade_id:?} is not in the log");
        };
        assert!(trade.maker_order == *order || trade.taker_order == *order);
        assert_eq!((trade.price, trade.qty), (*price, *qty), "cycle {cycle}");
    }
    for trade in trades.values() {
        assert!(
            accepted.contains_key(&trade.maker_order) && accepted.contains_key(&trade.taker_order),
            "cycle {cycle}: trade {:?} between orders never accepted in the log",
            trade.trade
        );
    }
    assert!(new_orders as usize >= told.acked.len());
}
