//! Trading through a real `peregrine up`: funds credited through the control API, orders
//! placed, matched and cancelled over QUIC with durable acknowledgements, a clean restart that
//! keeps the book, and the control API's answers to bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::time::Duration;

use peregrine_client::{Liquidity, Order, OrderState, Outcome, Placed, Reply};
use peregrine_hotpath::{ClientOrderId, MarketId, OrderRef, Price, Qty, Side};
use support::{Trader, Up, http_client, write_config};

const BTCUSD: MarketId = MarketId(1);
/// 50_000.00 usd in ticks of 0.01.
const PRICE: Price = Price(5_000_000);

/// Places `order` and insists on an Ack; returns the exchange id.
async fn place_acked(
    client: &peregrine_client::Client,
    order: Order,
) -> peregrine_hotpath::OrderId {
    let described = format!("{order:?}");
    match client.place(order).await.unwrap() {
        Placed::Ack { order, .. } => order,
        other => panic!("{described} refused: {other:?}"),
    }
}

/// The next fill among `reports`, skipping other reports; bounded by a timeout.
async fn next_fill(reports: &mut tokio::sync::mpsc::Receiver<Reply>) -> peregrine_client::Fill {
    loop {
        let reply = tokio::time::timeout(Duration::from_secs(10), reports.recv())
            .await
            .expect("no fill within 10 s")
            .expect("reports ended");
        if let Reply::Fill(fill) = reply {
            return fill;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_over_quic_survive_a_restart_and_control_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (buyer, seller) = (Trader::new(1), Trader::new(2));
    write_config(dir.path(), &[buyer, seller], "");
    let up = Up::start(dir.path());
    assert!(
        up.lines.iter().any(|l| l == "markets  btcusd ethusd"),
        "{:?}",
        up.lines
    );
    up.deposit(buyer.account, "usd", "100000", 1).await;
    up.deposit(seller.account, "btc", "2.5", 2).await;

    let buy_client = up.connect(&buyer).await;
    let sell_client = up.connect(&seller).await;
    let mut buyer_reports = buy_client.reports().unwrap();
    let mut seller_reports = sell_client.reports().unwrap();

    // 1 btc bid at 50_000; 0.4 btc sold into it.
    let bid = buy_client
        .place(Order::limit(
            ClientOrderId(11),
            BTCUSD,
            Side::Buy,
            PRICE,
            Qty(10_000),
        ))
        .await
        .unwrap();
    let Placed::Ack { order: bid_id, .. } = bid else {
        panic!("bid refused: {bid:?}");
    };
    place_acked(
        &sell_client,
        Order::limit(ClientOrderId(21), BTCUSD, Side::Sell, PRICE, Qty(4_000)),
    )
    .await;
    let maker_fill = next_fill(&mut buyer_reports).await;
    assert_eq!(
        (
            maker_fill.order,
            maker_fill.qty,
            maker_fill.price,
            maker_fill.liquidity
        ),
        (bid_id, Qty(4_000), PRICE, Liquidity::Maker)
    );
    let taker_fill = next_fill(&mut seller_reports).await;
    assert_eq!(
        (taker_fill.trade, taker_fill.liquidity),
        (maker_fill.trade, Liquidity::Taker)
    );

    // A second bid, cancelled.
    place_acked(
        &buy_client,
        Order::limit(
            ClientOrderId(12),
            BTCUSD,
            Side::Buy,
            Price(4_900_000),
            Qty(100),
        ),
    )
    .await;
    let cancelled = buy_client
        .cancel(OrderRef::Client(ClientOrderId(12)))
        .await
        .unwrap();
    assert!(matches!(cancelled, Outcome::Done { .. }), "{cancelled:?}");

    // An inexact or unknown input is refused with a typed error and changes nothing.
    let (status, body) = up
        .control(
            "deposits",
            serde_json::json!({"account": 1, "currency": "btc", "amount": "0.000000001", "deposit_id": 3}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("control.request.invalid_value")),
        "{body}"
    );
    // One decimal parser at every edge: no exponents (REST never took them); values the
    // replica could not store are refused here, not accepted and lost downstream.
    for (amount, deposit_id, says) in [
        ("1e3", 5_u64, "exponent"),
        ("100000000000000", 6, "too large"),
        ("1", u64::MAX, "too large"),
    ] {
        let (status, body) = up
            .control(
                "deposits",
                serde_json::json!({"account": 1, "currency": "btc", "amount": amount, "deposit_id": deposit_id}),
            )
            .await;
        assert_eq!(status, 422, "{amount} {deposit_id}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    // A retried deposit id credits nothing the second time.
    let (status, body) = up
        .control(
            "deposits",
            serde_json::json!({"account": 1, "currency": "usd", "amount": "100000", "deposit_id": 1}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["code"], "control.command.duplicate_deposit",
        "{body}"
    );
    assert_eq!(body["error"]["reason"], "duplicate_deposit", "{body}");
    assert_eq!(
        body["error"]["message"], "this deposit id was credited before",
        "{body}"
    );
    assert_eq!(
        body["errors"][0], "control.command.duplicate_deposit",
        "{body}"
    );
    let (status, body) = up
        .control(
            "deposits",
            serde_json::json!({"account": 1, "currency": "doge", "amount": "1", "deposit_id": 4}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("control.currency.doesnt_exist"))
    );
    let (status, body) = up
        .control("deposits", serde_json::json!({"account": "one"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("control.request.malformed"))
    );
    // A body above the limit is refused, and the answer closes the connection it left unread.
    let pad = "x".repeat(32 * 1024);
    let (status, body) = up
        .control("deposits", serde_json::json!({"account": 1, "pad": pad}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("control.request.body_too_large"))
    );
    let too_large = http_client()
        .post(format!("{}/control/v1/deposits", up.http))
        .bearer_auth(&up.token)
        .json(&serde_json::json!({"pad": pad}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        too_large.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let unauthorized = http_client()
        .post(format!("{}/control/v1/markets/btcusd/halt", up.http))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let status = http_client()
        .get(format!("{}/control/v1/status", up.http))
        .bearer_auth(&up.token)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(status["live_orders"], 1, "{status}");
    assert_eq!(status["markets"][0]["last_price"], "50000", "{status}");

    drop((buy_client, sell_client));
    up.stop();

    // After a restart the rest of the bid (0.6 btc) is still there, under its id.
    let up = Up::start(dir.path());
    let buy_client = up.connect(&buyer).await;
    let sell_client = up.connect(&seller).await;
    let mut buyer_reports = buy_client.reports().unwrap();
    place_acked(
        &sell_client,
        Order::limit(ClientOrderId(22), BTCUSD, Side::Sell, PRICE, Qty(6_000)),
    )
    .await;
    let fill = next_fill(&mut buyer_reports).await;
    assert_eq!((fill.order, fill.qty), (bid_id, Qty(6_000)));
    assert!(
        fill.trade.0 > maker_fill.trade.0,
        "trade ids continue after the restart"
    );

    // Resends after the restart are answered with the original's status, never a second
    // order: the dedup of client order ids is rebuilt from the journal.
    let resend = buy_client
        .place(Order::limit(
            ClientOrderId(11),
            BTCUSD,
            Side::Buy,
            PRICE,
            Qty(10_000),
        ))
        .await
        .unwrap();
    let Placed::Duplicate(status) = resend else {
        panic!("a resend placed a second order: {resend:?}");
    };
    assert_eq!(
        (status.order, status.state, status.filled),
        (bid_id, OrderState::Filled, Qty(10_000))
    );
    let resend = buy_client
        .place(Order::limit(
            ClientOrderId(12),
            BTCUSD,
            Side::Buy,
            Price(4_900_000),
            Qty(100),
        ))
        .await
        .unwrap();
    assert!(
        matches!(resend, Placed::Duplicate(s) if s.state == OrderState::Cancelled),
        "{resend:?}"
    );

    // A halted market refuses new orders but keeps its book; resume opens it again.
    let (status, body) = up
        .control("markets/btcusd/halt", serde_json::json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let refused = buy_client
        .place(Order::limit(
            ClientOrderId(13),
            BTCUSD,
            Side::Buy,
            PRICE,
            Qty(1),
        ))
        .await
        .unwrap();
    assert!(matches!(refused, Placed::Rejected { .. }), "{refused:?}");
    // The operator's status shows the halt and the kill switch (issue #13, item 3).
    let (status, _) = up
        .control("accounts/1/kill-switch", serde_json::json!({"on": true}))
        .await;
    assert_eq!(status, 200);
    let seen = up.control_status().await;
    assert_eq!(seen["markets"][0]["state"], "halted", "{seen}");
    assert_eq!(seen["kill_switches"], serde_json::json!([1]), "{seen}");
    let (status, _) = up
        .control("markets/btcusd/resume", serde_json::json!({}))
        .await;
    assert_eq!(status, 200);
    let seen = up.control_status().await;
    assert_eq!(seen["markets"][0]["state"], "enabled", "{seen}");
    drop((buy_client, sell_client));
    up.stop();
}
