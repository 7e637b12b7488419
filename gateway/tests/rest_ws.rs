#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Ranger-style streams over a real WebSocket client: book snapshots and gap-free increments
//! that rebuild the REST order book exactly, trades, k-lines, tickers, private order, trade and
//! balance streams, protocol errors, slow consumers and the feed's resynchronisation.

mod rest_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use peregrine_gateway::rest::RestConfig;
use rest_support::{Harness, Ws};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn order(side: &str, volume: &str, price: &str) -> Value {
    json!({"market": "btcusd", "side": side, "volume": volume, "price": price})
}

/// A client's book: replaced by snapshots, edited by increments whose sequence must follow.
#[derive(Default)]
struct ClientBook {
    asks: BTreeMap<String, String>,
    bids: BTreeMap<String, String>,
    sequence: Option<u64>,
    snapshots: usize,
    increments: usize,
}

impl ClientBook {
    fn snapshot(&mut self, snap: &Value) {
        self.asks.clear();
        self.bids.clear();
        for (side, levels) in [("asks", &mut self.asks), ("bids", &mut self.bids)] {
            for level in snap[side].as_array().unwrap() {
                levels.insert(
                    level[0].as_str().unwrap().into(),
                    level[1].as_str().unwrap().into(),
                );
            }
        }
        let sequence = snap["sequence"].as_u64().unwrap();
        if let Some(previous) = self.sequence {
            assert!(
                sequence > previous,
                "a snapshot went back: {sequence} after {previous}"
            );
        }
        self.sequence = Some(sequence);
        self.snapshots += 1;
    }

    fn increment(&mut self, inc: &Value) {
        let sequence = inc["sequence"].as_u64().unwrap();
        let expected = self.sequence.expect("an increment before any snapshot") + 1;
        assert_eq!(sequence, expected, "gap in ob-inc: {inc}");
        self.sequence = Some(sequence);
        self.increments += 1;
        for (side, levels) in [("asks", &mut self.asks), ("bids", &mut self.bids)] {
            if let Some(level) = inc.get(side) {
                let price = level[0].as_str().unwrap().to_owned();
                let amount = level[1].as_str().unwrap().to_owned();
                if amount == "0" {
                    assert!(
                        levels.remove(&price).is_some(),
                        "removed a level never seen: {inc}"
                    );
                } else {
                    levels.insert(price, amount);
                }
            }
        }
    }

    /// Applies book messages until the sequence reaches `target`; returns the other messages.
    async fn follow(&mut self, ws: &mut Ws, target: u64) -> Vec<Value> {
        let mut others = Vec::new();
        while self.sequence.is_none_or(|s| s < target) {
            let message = ws.next().await;
            if let Some(snap) = message.get("btcusd.ob-snap") {
                self.snapshot(snap);
            } else if let Some(inc) = message.get("btcusd.ob-inc") {
                self.increment(inc);
            } else {
                others.push(message);
            }
        }
        assert_eq!(
            self.sequence,
            Some(target),
            "went past the REST book's sequence"
        );
        others
    }

    async fn assert_matches_rest(&self, h: &Harness) {
        let (_, book) = h
            .get("/api/v2/peatio/public/markets/btcusd/order-book?asks_limit=1000&bids_limit=1000")
            .await;
        for (side, levels) in [("asks", &self.asks), ("bids", &self.bids)] {
            let rest: BTreeMap<String, String> = book[side]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        l["price"].as_str().unwrap().into(),
                        l["volume"].as_str().unwrap().into(),
                    )
                })
                .collect();
            assert_eq!(&rest, levels, "{side}");
        }
        assert_eq!(book["sequence"].as_u64(), self.sequence);
    }
}

async fn rest_sequence(h: &Harness) -> u64 {
    let (_, book) = h
        .get("/api/v2/peatio/public/markets/btcusd/order-book")
        .await;
    book["sequence"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_streams_rebuild_the_book_and_carry_trades_klines_and_tickers() {
    let h = Harness::start().await;
    // Resting liquidity before anyone subscribes: the snapshot must carry it.
    h.place(1, order("sell", "0.5", "50100")).await;
    let mut ws = h
        .ws_public("?stream=btcusd.ob-inc&stream=btcusd.trades")
        .await;
    let hello = ws.next().await;
    assert_eq!(
        hello["success"]["streams"],
        json!(["btcusd.ob-inc", "btcusd.trades"])
    );
    let mut book = ClientBook::default();
    let snap = ws.next_with("btcusd.ob-snap").await;
    book.snapshot(&snap);
    assert_eq!(book.asks.get("50100").map(String::as_str), Some("0.5"));
    ws.send(json!({"event": "subscribe", "streams": ["btcusd.kline-1m", "global.tickers"]}))
        .await;
    let ok = ws.next().await;
    assert_eq!(ok["success"]["message"], "subscribed");
    assert_eq!(ok["success"]["streams"].as_array().unwrap().len(), 4);

    // Levels on both sides, two trades, a cancel and a cancel-all.
    for (account, side, volume, price) in [
        (1, "sell", "0.3", "50200"),
        (1, "sell", "0.2", "50100"),
        (2, "buy", "0.4", "49900"),
        (2, "buy", "0.1", "49800"),
        (3, "buy", "0.6", "50100"),
        (3, "sell", "0.05", "49900"),
    ] {
        h.place(account, order(side, volume, price)).await;
    }
    let (_, open) = h.get_as(2, "/api/v2/peatio/market/orders?state=wait").await;
    let id = open[0]["id"].as_u64().unwrap();
    h.post_as(
        2,
        &format!("/api/v2/peatio/market/orders/{id}/cancel"),
        &json!({}),
    )
    .await;
    h.post_as(
        1,
        "/api/v2/peatio/market/orders/cancel?side=sell",
        &json!({}),
    )
    .await;

    let target = rest_sequence(&h).await;
    let others = book.follow(&mut ws, target).await;
    book.assert_matches_rest(&h).await;
    assert!(book.increments >= 8, "{} increments", book.increments);

    // Trades: 0.5 and 0.1 at 50100 (the 0.6 buy), then 0.05 at 49900... in order.
    let mut trades: Vec<Value> = others
        .iter()
        .filter_map(|m| m.get("btcusd.trades"))
        .flat_map(|t| t["trades"].as_array().unwrap().clone())
        .collect();
    let mut klines: Vec<Value> = others
        .iter()
        .filter_map(|m| m.get("btcusd.kline-1m").cloned())
        .collect();
    let mut tickers = others.iter().find_map(|m| m.get("global.tickers").cloned());
    while trades.len() < 3 || klines.is_empty() || tickers.is_none() {
        let message = ws.next().await;
        if let Some(t) = message.get("btcusd.trades") {
            trades.extend(t["trades"].as_array().unwrap().clone());
        }
        if let Some(k) = message.get("btcusd.kline-1m") {
            klines.push(k.clone());
        }
        if let Some(t) = message.get("global.tickers") {
            tickers = Some(t.clone());
        }
        assert!(
            message.get("btcusd.ob-inc").is_none(),
            "an increment after quiescence"
        );
    }
    let summary: Vec<(String, String, String)> = trades
        .iter()
        .map(|t| {
            (
                t["price"].as_str().unwrap().into(),
                t["amount"].as_str().unwrap().into(),
                t["taker_type"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("50100", "0.5", "buy"),
        ("50100", "0.1", "buy"),
        ("49900", "0.05", "sell"),
    ];
    assert_eq!(
        summary,
        expected
            .map(|(p, a, t)| (p.to_owned(), a.to_owned(), t.to_owned()))
            .to_vec()
    );
    let tids: Vec<u64> = trades.iter().map(|t| t["tid"].as_u64().unwrap()).collect();
    assert!(tids.windows(2).all(|w| w[0] < w[1]), "{tids:?}");
    let last_kline = klines.last().unwrap();
    assert_eq!(
        last_kline[4], "49900",
        "close is the last trade: {last_kline}"
    );
    let tickers = tickers.unwrap();
    assert_eq!(tickers["btcusd"]["last"], "49900");
    assert_eq!(tickers["btcusd"]["volume"], "0.65");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_streams_carry_only_the_accounts_orders_trades_and_balances() {
    let h = Harness::start().await;
    let mut maker = h
        .ws_private(1, "?stream=order&stream=trade&stream=balance")
        .await
        .unwrap();
    assert_eq!(
        maker.next().await["success"]["streams"],
        json!(["order", "trade", "balance"])
    );
    let mut other = h.ws_private(3, "?stream=order&stream=trade").await.unwrap();
    assert_eq!(other.next().await["success"]["message"], "subscribed");

    let placed = h.place(1, order("sell", "0.5", "50000")).await;
    h.place(2, order("buy", "0.2", "50000")).await;

    let mut orders = Vec::new();
    let mut trades = Vec::new();
    let mut balances = BTreeMap::new();
    while orders.len() < 2 || trades.is_empty() || balances.len() < 2 {
        let message = maker.next().await;
        if let Some(o) = message.get("order") {
            orders.push(o.clone());
        } else if let Some(t) = message.get("trade") {
            trades.push(t.clone());
        } else if let Some(b) = message.get("balance") {
            balances.insert(b["currency"].as_str().unwrap().to_owned(), b.clone());
        }
    }
    assert!(orders.iter().all(|o| o["id"] == placed["id"]), "{orders:?}");
    assert_eq!(orders[0]["state"], "wait");
    assert_eq!(orders[0]["remaining_volume"], "0.5");
    assert_eq!(orders[1]["executed_volume"], "0.2");
    assert_eq!(orders[1]["remaining_volume"], "0.3");
    assert_eq!(trades[0]["side"], "sell");
    assert_eq!(trades[0]["liquidity"], "maker");
    assert_eq!(trades[0]["amount"], "0.2");
    // The last balance pushed equals what REST says.
    let rest = h.balances(1).await;
    for (currency, available, locked) in rest {
        let pushed = &balances[&currency];
        assert_eq!(
            (
                pushed["balance"].as_str().unwrap(),
                pushed["locked"].as_str().unwrap()
            ),
            (available.as_str(), locked.as_str()),
            "{currency}"
        );
    }

    // Account 3 saw nothing of it: its next message is about its own order.
    let own = h.place(3, order("buy", "0.1", "49000")).await;
    let seen = other.next_with("order").await;
    assert_eq!(seen["id"], own["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_are_answered_and_unsubscribe_works() {
    let h = Harness::start().await;
    let mut ws = h.ws_public("").await;
    for (message, fragment) in [
        (
            json!({"event": "subscribe", "streams": ["order"]}),
            "private",
        ),
        (
            json!({"event": "subscribe", "streams": ["ethusd.trades"]}),
            "unknown market",
        ),
        (
            json!({"event": "subscribe", "streams": ["btcusd.kline-2m"]}),
            "unknown stream",
        ),
        (json!({"event": "dance", "streams": []}), "event"),
        (json!({"streams": ["btcusd.trades"]}), "invalid message"),
    ] {
        ws.send(message.clone()).await;
        let answer = ws.next().await;
        let text = answer["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(text.contains(fragment), "{message} -> {text}");
    }
    ws.stream.send_text("not json").await;
    assert!(ws.next().await["error"]["message"].is_string());
    ws.send(json!({"event": "subscribe", "streams": ["btcusd.trades", "btcusd.ob-snap"]}))
        .await;
    assert_eq!(ws.next().await["success"]["message"], "subscribed");
    assert!(ws.next().await.get("btcusd.ob-snap").is_some());
    ws.send(json!({"event": "unsubscribe", "streams": ["btcusd.trades"]}))
        .await;
    let answer = ws.next().await;
    assert_eq!(
        answer["success"],
        json!({"message": "unsubscribed", "streams": ["btcusd.ob-snap"]})
    );
    // A bad ?stream= is refused before the upgrade.
    let refused =
        tokio_tungstenite::connect_async(format!("{}/api/v2/ranger/public?stream=nope", h.ws_base))
            .await;
    assert!(
        matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 400)
    );
}

trait SendText {
    async fn send_text(&mut self, text: &str);
}

impl SendText
    for tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
{
    async fn send_text(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.send(Message::Text(text.into())).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_with_a_reason() {
    let config = RestConfig {
        ws_buffer_messages: 4,
        ..RestConfig::default()
    };
    let h = Harness::start_with(config, false).await;
    for i in 0..150 {
        h.place(1, order("sell", "0.0001", &format!("{}", 50_001 + i)))
            .await;
    }
    let mut ws = h.ws_public("?stream=btcusd.ob-inc").await;
    // One command, 150 level removals in one fan-out: more than 4 can wait.
    h.post_as(1, "/api/v2/peatio/market/orders/cancel", &json!({}))
        .await;
    let close = loop {
        match ws.next_message().await {
            Message::Close(frame) => break frame.unwrap(),
            Message::Text(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("slow consumer"), "{}", close.reason);
    assert_eq!(h.metric("peregrine_ws_slow_consumers_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_that_falls_behind_resyncs_with_a_fresh_snapshot() {
    let config = RestConfig {
        tap_capacity: 1,
        ..RestConfig::default()
    };
    let h = Arc::new(Harness::start_with(config, false).await);
    let mut ws = h.ws_public("?stream=btcusd.ob-inc").await;
    ws.next().await;
    let mut book = ClientBook::default();
    book.snapshot(&ws.next_with("btcusd.ob-snap").await);
    // Many concurrent commands: the router outruns a one-command tap.
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let account = 1 + i % 2;
            let price = if account == 1 { 50_100 + i } else { 49_900 - i };
            let side = if account == 1 { "sell" } else { "buy" };
            // Concurrent requests of one key may arrive out of nonce order: a client retries
            // those with a fresh nonce (nothing was done).
            loop {
                let (status, body) = h
                    .post_as(
                        account,
                        "/api/v2/peatio/market/orders",
                        &order(side, "0.01", &price.to_string()),
                    )
                    .await;
                if body["error"]["code"] != "authz.nonce_reused" {
                    return (status, body);
                }
            }
        }));
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert!(status.is_success(), "{body}");
    }
    // Wait until the feed is live again and has caught up, then compare.
    let mut target = rest_sequence(&h).await;
    loop {
        book.follow(&mut ws, target).await;
        let now = rest_sequence(&h).await;
        if now == target {
            break;
        }
        target = now;
    }
    book.assert_matches_rest(&h).await;
    assert!(
        h.metric("peregrine_market_data_resyncs_total") >= 1.0,
        "the tap never fell behind"
    );
    assert!(book.snapshots >= 2, "no fresh snapshot after the resync");
}

/// A message over the inbound limit closes the connection with 1009 (message too big) and a
/// reason, not a bare drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_closed_with_1009() {
    let h = Harness::start().await;
    let mut ws = h.ws_public("").await;
    let big = format!(
        "{{\"event\":\"subscribe\",\"streams\":[\"{}\"]}}",
        "x".repeat(peregrine_gateway::ws::INBOUND_BYTES_MAX)
    );
    ws.stream.send_text(&big).await;
    let close = loop {
        match ws.next_message().await {
            Message::Close(frame) => break frame.expect("a close frame with a code"),
            Message::Text(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1009);
    assert!(close.reason.contains("16384"), "{}", close.reason);
}

/// A market order on an empty book is cancelled with no price and makes no book change: the
/// next `ob-inc` a follower sees is the next real level (issue #13, item 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfilled_market_order_shows_no_price_and_no_phantom_level() {
    let h = Harness::start().await;
    let mut ws = h.ws_public("?stream=btcusd.ob-inc").await;
    assert_eq!(ws.next().await["success"]["message"], "subscribed");
    let snap = ws.next_with("btcusd.ob-snap").await;
    let market = h
        .place(
            1,
            json!({"market": "btcusd", "side": "buy", "volume": "0.1", "ord_type": "market"}),
        )
        .await;
    assert_eq!(market["state"], "cancel");
    assert_eq!(market["price"], Value::Null);
    assert_eq!(market["ord_type"], "market");
    h.place(2, order("sell", "0.2", "50300")).await;
    let inc = ws.next_with("btcusd.ob-inc").await;
    assert_eq!(
        inc["asks"],
        json!(["50300", "0.2"]),
        "a phantom change came first: {inc}"
    );
    let snap_seq = snap["sequence"].as_u64().unwrap();
    assert_eq!(inc["sequence"].as_u64().unwrap(), snap_seq + 1);
}

/// A halted market says `halted` in the public market list, and `enabled` again once resumed
/// (issue #13, item 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halted_market_is_listed_as_halted() {
    use peregrine_hotpath::{Actor, CommandKind, MarketId};
    let h = Harness::start().await;
    let state = |list: &Value| list[0]["state"].clone();
    let (_, list) = h.get("/api/v2/peatio/public/markets").await;
    assert_eq!(state(&list), json!("enabled"));
    for (command, expected) in [
        (
            CommandKind::MarketHalt {
                market: MarketId(1),
            },
            "halted",
        ),
        (
            CommandKind::MarketResume {
                market: MarketId(1),
            },
            "enabled",
        ),
    ] {
        let request = peregrine_core::Request::new(Actor::System, command);
        h.engine.submit(request).unwrap().await.unwrap();
        let (_, list) = h.get("/api/v2/peatio/public/markets").await;
        assert_eq!(state(&list), json!(expected));
    }
}

/// Shutdown closes every WebSocket with 1001 (going away), so clients reconnect rather than
/// read it as their own fault (1008, policy violation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_websockets_with_going_away() {
    let mut h = Harness::start().await;
    let mut ws = h.ws_public("?stream=btcusd.trades").await;
    h.server.take().unwrap().shutdown().await;
    let close = loop {
        match ws.next_message().await {
            Message::Close(frame) => break frame.expect("a close frame with a code"),
            Message::Text(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1001, "{}", close.reason);
    assert!(close.reason.contains("shutting down"), "{}", close.reason);
}
