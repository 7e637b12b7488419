#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Orders through the REST bridge against a real engine: place, match, cancel, read back, and
//! every order type; each answer is checked against what the client was told before.

mod rest_support;

use reqwest::StatusCode;
use rest_support::{Harness, code};
use serde_json::{Value, json};

fn order(market: &str, side: &str, volume: &str, price: &str) -> Value {
    json!({"market": market, "side": side, "volume": volume, "price": price})
}

fn balances(list: &[(String, String, String)]) -> Vec<(&str, &str, &str)> {
    list.iter()
        .map(|(c, a, l)| (c.as_str(), a.as_str(), l.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_match_cancel_and_read_back() {
    let h = Harness::start().await;
    let mut sell = order("btcusd", "sell", "1", "50000");
    sell["client_id"] = json!("11");
    let maker = h.place(1, sell).await;
    assert_eq!(maker["state"], "wait");
    assert_eq!(maker["side"], "sell");
    assert_eq!(maker["ord_type"], "limit");
    assert_eq!(maker["time_in_force"], "gtc");
    assert_eq!(maker["client_id"], "11");
    assert_eq!(maker["price"], "50000");
    assert_eq!(maker["origin_volume"], "1");
    assert_eq!(maker["remaining_volume"], "1");
    assert_eq!(maker["executed_volume"], "0");
    let maker_id = maker["id"].as_u64().unwrap();

    // The taker pays the maker's price: 0.4 at 50000, not at its limit of 50000.5.
    let taker = h.place(2, order("btcusd", "buy", "0.4", "50000.5")).await;
    assert_eq!(taker["state"], "done");
    assert_eq!(taker["executed_volume"], "0.4");
    assert_eq!(taker["remaining_volume"], "0");
    assert_eq!(taker["avg_price"], "50000");
    assert_eq!(taker["trades_count"], 1);

    // What the maker was told, read back.
    let (status, read) = h
        .get_as(1, &format!("/api/v2/peatio/market/orders/{maker_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["state"], "wait");
    assert_eq!(read["executed_volume"], "0.4");
    assert_eq!(read["remaining_volume"], "0.6");
    let (_, by_client) = h.get_as(1, "/api/v2/peatio/market/orders/cid/11").await;
    assert_eq!(by_client["id"], maker_id);
    // Another account cannot see it.
    let (status, body) = h
        .get_as(2, &format!("/api/v2/peatio/market/orders/{maker_id}"))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "market.order.not_found")
    );

    // Balances: taker fee 0.2 % of the 0.4 btc received, maker fee 0.1 % of 20000 usd.
    assert_eq!(
        balances(&h.balances(2).await),
        vec![("btc", "10.3992", "0"), ("usd", "980000", "0")]
    );
    assert_eq!(
        balances(&h.balances(1).await),
        vec![("btc", "9", "0.6"), ("usd", "1019980", "0")]
    );
    let (_, one) = h.get_as(1, "/api/v2/peatio/account/balances/usd").await;
    assert_eq!(
        one,
        json!({"currency": "usd", "balance": "1019980", "locked": "0"})
    );

    // Public views.
    let (_, book) = h
        .get("/api/v2/peatio/public/markets/btcusd/order-book")
        .await;
    assert_eq!(book["asks"], json!([{"price": "50000", "volume": "0.6"}]));
    assert_eq!(book["bids"], json!([]));
    let (_, depth) = h.get("/api/v2/peatio/public/markets/btcusd/depth").await;
    assert_eq!(depth["asks"], json!([["50000", "0.6"]]));
    let (_, trades) = h.get("/api/v2/peatio/public/markets/btcusd/trades").await;
    let trades = trades.as_array().unwrap();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0]["price"], "50000");
    assert_eq!(trades[0]["amount"], "0.4");
    assert_eq!(trades[0]["total"], "20000");
    assert_eq!(trades[0]["taker_type"], "buy");
    let (_, ticker) = h.get("/api/v2/peatio/public/markets/btcusd/tickers").await;
    assert_eq!(ticker["ticker"]["last"], "50000");
    assert_eq!(ticker["ticker"]["volume"], "0.4");
    assert_eq!(ticker["ticker"]["amount"], "20000");
    let (_, klines) = h
        .get("/api/v2/peatio/public/markets/btcusd/k-line?period=1")
        .await;
    let klines = klines.as_array().unwrap();
    assert_eq!(klines.len(), 1);
    assert_eq!(
        klines[0].as_array().unwrap()[1..],
        json!(["50000", "50000", "50000", "50000", "0.4"])
            .as_array()
            .unwrap()[..]
    );

    // Own trades, each side with its fee in what it received.
    let (_, mine) = h.get_as(1, "/api/v2/peatio/market/trades").await;
    assert_eq!(mine[0]["side"], "sell");
    assert_eq!(mine[0]["liquidity"], "maker");
    assert_eq!(mine[0]["order_id"], maker_id);
    assert_eq!(
        (
            mine[0]["fee_currency"].clone(),
            mine[0]["fee_amount"].clone()
        ),
        (json!("usd"), json!("20"))
    );
    let (_, theirs) = h.get_as(2, "/api/v2/peatio/market/trades").await;
    assert_eq!(theirs[0]["liquidity"], "taker");
    assert_eq!(
        (
            theirs[0]["fee_currency"].clone(),
            theirs[0]["fee_amount"].clone()
        ),
        (json!("btc"), json!("0.0008"))
    );

    // Cancel: the rest of the order leaves the book, its funds are released.
    let (status, cancelled) = h
        .post_as(
            1,
            &format!("/api/v2/peatio/market/orders/{maker_id}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancel");
    assert_eq!(cancelled["remaining_volume"], "0.6");
    assert_eq!(
        balances(&h.balances(1).await),
        vec![("btc", "9.6", "0"), ("usd", "1019980", "0")]
    );
    let (_, book) = h
        .get("/api/v2/peatio/public/markets/btcusd/order-book")
        .await;
    assert_eq!(book["asks"], json!([]));
    let (status, body) = h
        .post_as(
            1,
            &format!("/api/v2/peatio/market/orders/{maker_id}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "market.order.not_found")
    );

    // Lists with filters and pages.
    h.place(1, order("btcusd", "sell", "0.1", "51000")).await;
    h.place(1, order("btcusd", "sell", "0.2", "52000")).await;
    let (_, all) = h.get_as(1, "/api/v2/peatio/market/orders").await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(all[0]["price"], "52000", "newest first");
    let (_, waiting) = h
        .get_as(1, "/api/v2/peatio/market/orders?state=wait&order_by=asc")
        .await;
    let prices: Vec<&str> = waiting
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["price"].as_str().unwrap())
        .collect();
    assert_eq!(prices, vec!["51000", "52000"]);
    let (_, page) = h
        .get_as(1, "/api/v2/peatio/market/orders?limit=1&page=2")
        .await;
    assert_eq!(page[0]["price"], "51000");
    let (_, done) = h
        .get_as(
            1,
            "/api/v2/peatio/market/orders?state=cancel&market=btcusd&side=sell",
        )
        .await;
    assert_eq!(done[0]["id"], maker_id);

    // Cancel all of one side: answers the cancelled orders.
    let (status, cancelled) = h
        .post_as(
            1,
            "/api/v2/peatio/market/orders/cancel?market=btcusd&side=sell",
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled.as_array().unwrap().len(), 2);
    assert!(
        cancelled
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["state"] == "cancel")
    );
    let (_, open) = h.get_as(1, "/api/v2/peatio/market/orders?state=wait").await;
    assert_eq!(open, json!([]));
    if let Some(server) = h.server {
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_type_behaves_as_the_engine_says() {
    let h = Harness::start().await;
    h.place(1, order("btcusd", "buy", "0.5", "50000")).await;

    // Post-only and fill-or-kill refusals change nothing.
    let mut post_only = order("btcusd", "sell", "0.1", "50000");
    post_only["time_in_force"] = json!("post_only");
    let (status, body) = h
        .post_as(2, "/api/v2/peatio/market/orders", &post_only)
        .await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.post_only_would_take"
        )
    );
    let mut fok = order("btcusd", "sell", "1", "50000");
    fok["time_in_force"] = json!("fok");
    let (status, body) = h.post_as(2, "/api/v2/peatio/market/orders", &fok).await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.fok_not_fillable"
        )
    );
    assert_eq!(
        h.balances(2).await[0],
        ("btc".into(), "10".into(), "0".into())
    );

    // IOC: trades what it can, the rest is cancelled.
    let mut ioc = order("btcusd", "sell", "0.8", "50000");
    ioc["time_in_force"] = json!("ioc");
    let filled = h.place(2, ioc).await;
    assert_eq!(filled["state"], "cancel");
    assert_eq!(filled["time_in_force"], "ioc");
    assert_eq!(filled["executed_volume"], "0.5");
    assert_eq!(filled["remaining_volume"], "0.3");

    // Market orders: by volume, and a buy by quote budget.
    h.place(1, order("btcusd", "sell", "0.3", "50100")).await;
    let market = h
        .place(
            2,
            json!({"market": "btcusd", "side": "buy", "volume": "0.1", "ord_type": "market"}),
        )
        .await;
    assert_eq!(market["ord_type"], "market");
    assert_eq!(market["time_in_force"], "ioc");
    assert_eq!(market["state"], "done");
    assert_eq!(market["avg_price"], "50100");
    let budget = h
        .place(
            2,
            json!({"market": "btcusd", "side": "buy", "ord_type": "market", "quote_amount": "5010"}),
        )
        .await;
    assert_eq!(budget["executed_volume"], "0.1");
    let (status, body) = h
        .post_as(
            2,
            "/api/v2/peatio/market/orders",
            &json!({"market": "btcusd", "side": "buy", "volume": "0.1", "ord_type": "market", "price": "50000"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_price"
        )
    );

    // Stops wait for their trigger.
    let stop = h
        .place(
            3,
            json!({"market": "btcusd", "side": "sell", "volume": "0.1", "ord_type": "stop_limit",
                   "stop_price": "49000", "price": "48900"}),
        )
        .await;
    assert_eq!(stop["state"], "pending");
    assert_eq!(stop["stop_price"], "49000");
    let (status, body) = h
        .post_as(
            3,
            "/api/v2/peatio/market/orders",
            &json!({"market": "btcusd", "side": "buy", "volume": "0.1", "ord_type": "stop_market",
                    "stop_price": "51000"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_type"
        )
    );
    let (_, cancelled) = h
        .post_as(
            3,
            "/api/v2/peatio/market/orders/cancel?market=btcusd",
            &json!({}),
        )
        .await;
    assert_eq!(cancelled[0]["id"], stop["id"]);
    assert_eq!(cancelled[0]["state"], "cancel");

    // A client id is used once.
    let mut first = order("btcusd", "buy", "0.1", "49000");
    first["client_id"] = json!("5");
    h.place(3, first.clone()).await;
    let (status, body) = h.post_as(3, "/api/v2/peatio/market/orders", &first).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "market.order.duplicate_client_id")
    );
    let (status, cancelled) = h
        .post_as(3, "/api/v2/peatio/market/orders/cid/5/cancel", &json!({}))
        .await;
    assert_eq!(
        (status, cancelled["state"].clone()),
        (StatusCode::OK, json!("cancel"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_journal_mode_releases_after_the_journal() {
    let h = Harness::start_with(Default::default(), true).await;
    let mut ws = h.ws_public("?stream=btcusd.trades").await;
    assert_eq!(ws.next().await["success"]["message"], "subscribed");
    h.place(1, order("btcusd", "sell", "0.3", "50000")).await;
    let taker = h.place(2, order("btcusd", "buy", "0.3", "50000")).await;
    assert_eq!(taker["state"], "done");
    let trades = ws.next_with("btcusd.trades").await;
    assert_eq!(trades["trades"][0]["amount"], "0.3");
    assert_eq!(trades["trades"][0]["price"], "50000");
}

/// In durable mode the views show only what the journal made durable: with the disk stalled,
/// a deposit and an order the engine has already applied stay invisible to REST reads, and
/// appear once the write completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_show_only_durable_commands_while_the_journal_stalls() {
    use peregrine_core::Request;
    use peregrine_hotpath::{
        AccountId, Actor, Amount, ClientOrderId, CommandKind, CurrencyId, DepositId, MarketId,
        NewOrder, OrderKind, Price, Qty, SelfTradePrevention, Side, TimeInForce,
    };
    use std::sync::atomic::Ordering;

    let gate = peregrine_persist::io::WriteGate::new();
    let h = Harness::start_journaled(Default::default(), Some(gate.clone())).await;
    async fn usd(h: &Harness) -> String {
        let list = h.balances(1).await;
        list.into_iter().find(|(c, _, _)| c == "usd").unwrap().1
    }
    let before = usd(&h).await;
    gate.close();
    let deposit = CommandKind::Deposit {
        account: AccountId(1),
        currency: CurrencyId(2),
        amount: Amount(5_000_000),
        deposit: DepositId(9_999),
    };
    let deposited = h
        .engine
        .submit(Request::new(Actor::System, deposit))
        .unwrap();
    let order = NewOrder {
        account: AccountId(1),
        market: MarketId(1),
        client_order_id: ClientOrderId(4_242),
        side: Side::Buy,
        // 49,000 (ticks of 0.01) for one lot: inside the band, crossing nothing.
        kind: OrderKind::Limit {
            price: Price(4_900_000),
            qty: Qty(1),
        },
        tif: TimeInForce::Gtc,
        stp: SelfTradePrevention::CancelNewest,
    };
    let placed = h
        .engine
        .submit(
            Request::new(Actor::System, CommandKind::NewOrder(order))
                .new_order(AccountId(1), ClientOrderId(4_242)),
        )
        .unwrap();
    // The engine applies both before they are durable...
    let applied = placed.seq();
    for _ in 0..200 {
        if h.engine.stats().last_seq.load(Ordering::Acquire) >= applied {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(h.engine.stats().last_seq.load(Ordering::Acquire) >= applied);
    // ...but no read shows them while the disk holds the write (checked over a while).
    for _ in 0..5 {
        assert_eq!(
            usd(&h).await,
            before,
            "a balance showed a command not yet durable"
        );
        let (status, _) = h.get_as(1, "/api/v2/peatio/market/orders/cid/4242").await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "an order showed before it was durable"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gate.is_closed());
    gate.open();
    deposited.await.unwrap();
    placed.await.unwrap();
    assert_ne!(usd(&h).await, before, "the durable deposit shows");
    let (status, found) = h.get_as(1, "/api/v2/peatio/market/orders/cid/4242").await;
    assert_eq!(
        (status, found["state"].clone()),
        (StatusCode::OK, json!("wait"))
    );
}

/// Cancel-all takes its filters from a JSON body as Peatio clients send them, and refuses a
/// filter given differently in the query string and the body (issue #13, item 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_all_reads_its_filters_from_the_body() {
    let h = Harness::start().await;
    h.place(1, order("btcusd", "buy", "0.1", "49000")).await;
    h.place(1, order("btcusd", "sell", "0.1", "51000")).await;
    let cancel = "/api/v2/peatio/market/orders/cancel";
    // A market that does not exist, in the body: refused, nothing cancelled.
    let (status, body) = h.post_as(1, cancel, &json!({"market": "ethusd"})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "market.market.doesnt_exist")
    );
    // Both places, differently: refused, nothing cancelled.
    let (status, body) = h
        .post_as(1, &format!("{cancel}?side=buy"), &json!({"side": "sell"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.conflicting_filter"
        )
    );
    let (_, open) = h.get_as(1, "/api/v2/peatio/market/orders?state=wait").await;
    assert_eq!(open.as_array().unwrap().len(), 2, "{open}");
    // The body's side filter: only the sell goes.
    let (status, cancelled) = h.post_as(1, cancel, &json!({"side": "sell"})).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled.as_array().unwrap().len(), 1, "{cancelled}");
    assert_eq!(cancelled[0]["side"], "sell");
    let (_, open) = h.get_as(1, "/api/v2/peatio/market/orders?state=wait").await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open[0]["side"], "buy");
}
