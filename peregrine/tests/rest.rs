//! The retail REST bridge of a real `peregrine up`: a signed order over HTTP rests in the book
//! that the public endpoint and a WebSocket subscriber show, and a bad signature is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use reqwest::Method;
use serde_json::json;
use support::{Trader, Up, http_client, next_with, now_ms, signed_rest, write_config};

const KEY: &str = "retail-key-1";
const SECRET: &str = "retail-secret-of-32-bytes-000000";

/// The REST base URL `up`'s summary printed.
fn rest_url(up: &Up) -> String {
    up.lines
        .iter()
        .find_map(|l| l.strip_prefix("rest  "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_rest_order_rests_in_the_book_of_a_running_up() {
    let dir = tempfile::tempdir().unwrap();
    let trader = Trader::new(3);
    write_config(
        dir.path(),
        &[trader],
        &format!("[[rest.keys]]\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\naccount = 3\n"),
    );
    let up = Up::start(dir.path());
    let rest = rest_url(&up);
    up.deposit(trader.account, "usd", "100000", 1).await;
    let client = http_client();
    let order = json!({"market": "btcusd", "side": "buy", "volume": "0.25", "price": "49000"});

    let orders = format!("{rest}/peatio/market/orders");
    let refused = signed_rest(
        &client,
        Method::POST,
        &orders,
        (KEY, "wrong-secret-wrong-secret-000000"),
        now_ms(),
        Some(&order),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(refused.status(), 401);

    let placed = signed_rest(
        &client,
        Method::POST,
        &orders,
        (KEY, SECRET),
        now_ms(),
        Some(&order),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(placed.status(), 201, "{:?}", placed.text().await);
    let placed: serde_json::Value = placed.json().await.unwrap();
    assert_eq!(placed["state"], "wait", "{placed}");

    let book: serde_json::Value = client
        .get(format!("{rest}/peatio/public/markets/btcusd/order-book"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        book["bids"],
        json!([{"price": "49000", "volume": "0.25"}]),
        "{book}"
    );

    // A WebSocket subscriber gets the book with the order in it, then a gap-free increment
    // when a second order rests.
    let ws_url = format!(
        "{}/ranger/public?stream=btcusd.ob-inc",
        rest.replacen("http://", "ws://", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let snapshot = next_with(&mut ws, "btcusd.ob-snap").await;
    assert_eq!(snapshot["bids"], json!([["49000", "0.25"]]), "{snapshot}");
    let sequence = snapshot["sequence"].as_u64().unwrap();
    let second = json!({"market": "btcusd", "side": "buy", "volume": "0.5", "price": "48000"});
    let placed = signed_rest(
        &client,
        Method::POST,
        &orders,
        (KEY, SECRET),
        now_ms(),
        Some(&second),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(placed.status(), 201);
    let increment = next_with(&mut ws, "btcusd.ob-inc").await;
    assert_eq!(
        increment["sequence"].as_u64(),
        Some(sequence + 1),
        "{increment}"
    );
    // Ranger sends one level per increment.
    assert_eq!(increment["bids"], json!(["48000", "0.5"]), "{increment}");

    // The account's transactions come from the SQL replica (SQLite by default), once it has
    // caught up: the deposit, then the locks of the two orders, summing to the deposit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let transactions = loop {
        let response = signed_rest(
            &client,
            Method::GET,
            &format!("{rest}/peatio/account/transactions?currency=usd&order_by=asc"),
            (KEY, SECRET),
            now_ms(),
            None,
        )
        .send()
        .await
        .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{text}");
        let list: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        if list.len() >= 3 {
            break list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica did not catch up: {list:?}; up's log:\n{}",
            std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (
            transactions[0]["reason"].as_str(),
            transactions[0]["amount"].as_str()
        ),
        (Some("deposit"), Some("100000")),
        "{transactions:?}"
    );
    let total: rust_decimal::Decimal = transactions
        .iter()
        .map(|t| {
            t["amount"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
                + t["locked"]
                    .as_str()
                    .unwrap()
                    .parse::<rust_decimal::Decimal>()
                    .unwrap()
        })
        .sum();
    assert_eq!(
        total,
        rust_decimal::Decimal::from(100_000),
        "{transactions:?}"
    );

    // The same orders, seen by the exchange itself.
    let (status, body) = up.control("accounts/3/cancel-all", json!({})).await;
    assert_eq!(
        (status, body["cancelled"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    up.stop();
}

/// Barong's signature, `hex(HMAC-SHA256(secret, nonce + key))`: method, path and body unsigned.
fn barong_signature(secret: &str, nonce_ms: u128, key: &str) -> String {
    peregrine_gateway::rest::auth::sign(secret, u64::try_from(nonce_ms).unwrap(), key)
}

/// A `[[rest.keys]]` bootstrap key takes Barong's `nonce + key` signature only when it says
/// `legacy_signature = true`: then `up` warns about the key at start and counts each request
/// signed that way. By default the weak signature is a bad signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_key_refuses_barongs_signature_unless_configured_legacy() {
    const LEGACY: (&str, &str) = ("old-client-key", "old-client-secret-of-32-bytes-00");
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &[],
        &format!(
            "[[rest.keys]]\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\naccount = 3\n\n\
             [[rest.keys]]\nkey = \"{}\"\nsecret = \"{}\"\naccount = 4\n\
             legacy_signature = true\n",
            LEGACY.0, LEGACY.1
        ),
    );
    let up = Up::start(dir.path());
    let balances = format!("{}/peatio/account/balances", rest_url(&up));
    let weak = |(key, secret): (&str, &str)| {
        let nonce = now_ms();
        http_client()
            .get(&balances)
            .header("X-Auth-Apikey", key)
            .header("X-Auth-Nonce", nonce.to_string())
            .header("X-Auth-Signature", barong_signature(secret, nonce, key))
            .send()
    };
    let refused = weak((KEY, SECRET)).await.unwrap();
    let status = refused.status();
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errors"][0], "authz.invalid_signature", "{body}");
    // The same key, the whole request signed: accepted.
    let client = http_client();
    let strong = signed_rest(
        &client,
        Method::GET,
        &balances,
        (KEY, SECRET),
        now_ms(),
        None,
    );
    assert_eq!(strong.send().await.unwrap().status(), 200);

    let accepted = weak(LEGACY).await.unwrap();
    assert_eq!(accepted.status(), 200, "{:?}", accepted.text().await);
    let strong = signed_rest(&client, Method::GET, &balances, LEGACY, now_ms(), None);
    assert_eq!(strong.send().await.unwrap().status(), 200);
    // One request signed the weak way: counted once.
    let metrics = up.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|line| line == "peregrine_rest_legacy_signatures_total 1"),
        "{metrics}"
    );
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(
        log.lines()
            .any(|line| line.contains("legacy_signature = true")
                && line.contains(LEGACY.0)
                && line.contains("WARN")),
        "no warning about the legacy key: {log}"
    );
    assert!(
        !log.lines()
            .any(|line| line.contains("legacy_signature = true") && line.contains(KEY)),
        "a key without the flag was warned about: {log}"
    );
    up.stop();
}

const MAKER_KEY: &str = "retail-key-maker";
const MAKER_SECRET: &str = "retail-secret-of-maker-000000000";

/// A signed GET as `key`: status, replica high-water header, JSON body.
async fn get_as(
    client: &reqwest::Client,
    url: String,
    key: &str,
    secret: &str,
) -> (u16, Option<u64>, serde_json::Value) {
    let response = signed_rest(client, Method::GET, &url, (key, secret), now_ms(), None)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let seq = response
        .headers()
        .get("x-peregrine-replica-seq")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, seq, response.json().await.unwrap())
}

/// A signed POST as `key`: status and JSON body.
async fn post_as(
    client: &reqwest::Client,
    url: String,
    key: &str,
    secret: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = signed_rest(
        client,
        Method::POST,
        &url,
        (key, secret),
        now_ms(),
        Some(&body),
    )
    .send()
    .await
    .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Memory keeps two finished orders and two fills per account; the replica (`replica_url`, or
/// the default SQLite) keeps everything. Lists, lookups and pages must show the whole history,
/// each order once, with its fills summed.
async fn history_beyond_memory_comes_from_the_replica(replica_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let replica = replica_url.map_or(String::new(), |url| format!("[replica]\nurl = \"{url}\"\n"));
    write_config(
        dir.path(),
        &[],
        &format!(
            "{replica}\n[[rest.keys]]\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\naccount = 3\n\n\
             [[rest.keys]]\nkey = \"{MAKER_KEY}\"\nsecret = \"{MAKER_SECRET}\"\naccount = 4\n"
        ),
    );
    // write_config opened the [rest] table: the window goes there.
    let path = dir.path().join("peregrine.toml");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[rest]\nlisten = \"127.0.0.1:0\"\n",
        "[rest]\nlisten = \"127.0.0.1:0\"\nhistory_per_account = 2\n",
        1,
    );
    std::fs::write(&path, text).unwrap();

    let up = Up::start(dir.path());
    let rest = rest_url(&up);
    up.deposit(3, "usd", "100000", 1).await;
    up.deposit(4, "btc", "10", 2).await;
    let client = http_client();
    let orders = format!("{rest}/peatio/market/orders");
    const FILLS: usize = 6;
    for i in 0..FILLS {
        let price = format!("{}", 50_000 + i * 10);
        let sell = json!({"market": "btcusd", "side": "sell", "volume": "0.01", "price": price});
        let (status, body) = post_as(&client, orders.clone(), MAKER_KEY, MAKER_SECRET, sell).await;
        assert_eq!(status, 201, "{body}");
        let buy = json!({"market": "btcusd", "side": "buy", "volume": "0.01", "price": price});
        let (status, body) = post_as(&client, orders.clone(), KEY, SECRET, buy).await;
        assert_eq!(
            (status, body["state"].as_str()),
            (201, Some("done")),
            "{body}"
        );
    }
    // Two cancelled orders, and one left open.
    for price in ["49500", "49510", "49520"] {
        let buy = json!({"market": "btcusd", "side": "buy", "volume": "0.02", "price": price});
        let (status, body) = post_as(&client, orders.clone(), KEY, SECRET, buy).await;
        assert_eq!(
            (status, body["state"].as_str()),
            (201, Some("wait")),
            "{body}"
        );
        if price != "49520" {
            let id = body["id"].as_u64().unwrap();
            let (status, body) = post_as(
                &client,
                format!("{orders}/{id}/cancel"),
                KEY,
                SECRET,
                json!({}),
            )
            .await;
            assert_eq!(
                (status, body["state"].as_str()),
                (200, Some("cancel")),
                "{body}"
            );
        }
    }

    // Wait for the replica: every fill of the taker listed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let trades = loop {
        let (status, seq, list) = get_as(
            &client,
            format!("{rest}/peatio/market/trades?limit=100"),
            KEY,
            SECRET,
        )
        .await;
        assert_eq!(status, 200, "{list}");
        assert!(seq.is_some(), "no replica high-water header");
        if list.as_array().unwrap().len() >= FILLS {
            break list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica did not catch up: {list}; up's log:\n{}",
            std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let trades = trades.as_array().unwrap();
    assert_eq!(trades.len(), FILLS, "each fill once: {trades:?}");
    let trade_ids: Vec<u64> = trades.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert!(
        trade_ids.windows(2).all(|w| w[0] > w[1]),
        "newest first: {trade_ids:?}"
    );
    for t in trades {
        assert_eq!(
            (
                t["side"].as_str(),
                t["liquidity"].as_str(),
                t["amount"].as_str()
            ),
            (Some("buy"), Some("taker"), Some("0.01")),
            "{t}"
        );
    }
    // The maker sees the same trades as maker sells.
    let (_, _, maker_trades) = get_as(
        &client,
        format!("{rest}/peatio/market/trades?order_by=asc"),
        MAKER_KEY,
        MAKER_SECRET,
    )
    .await;
    let maker_trades = maker_trades.as_array().unwrap();
    let mut maker_ids: Vec<u64> = maker_trades
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert!(
        maker_trades
            .iter()
            .all(|t| t["liquidity"] == "maker" && t["side"] == "sell")
    );
    maker_ids.reverse();
    assert_eq!(maker_ids, trade_ids);

    // The maker's bitcoin ledger: the deposit, each sell's lock, then each fill, labelled as
    // such (a fill is not the order command of whoever took it).
    let (status, _, ledger) = get_as(
        &client,
        format!("{rest}/peatio/account/transactions?currency=btc&order_by=asc&limit=100"),
        MAKER_KEY,
        MAKER_SECRET,
    )
    .await;
    assert_eq!(status, 200, "{ledger}");
    let reasons: Vec<(&str, &str, &str)> = ledger
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["reason"].as_str().unwrap(),
                t["amount"].as_str().unwrap(),
                t["locked"].as_str().unwrap(),
            )
        })
        .collect();
    let mut want = vec![("deposit", "10", "0")];
    for _ in 0..FILLS {
        want.push(("new_order", "-0.01", "0.01"));
        want.push(("trade", "0", "-0.01"));
    }
    assert_eq!(reasons, want, "{ledger}");

    // Every order once, newest first: six done, two cancelled, one open.
    let (status, _, all) = get_as(&client, format!("{orders}?limit=100"), KEY, SECRET).await;
    assert_eq!(status, 200, "{all}");
    let all = all.as_array().unwrap().clone();
    let states: Vec<&str> = all.iter().map(|o| o["state"].as_str().unwrap()).collect();
    assert_eq!(
        states,
        [
            "wait", "cancel", "cancel", "done", "done", "done", "done", "done", "done"
        ],
        "{all:?}"
    );
    let ids: Vec<u64> = all.iter().map(|o| o["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    for done in all.iter().filter(|o| o["state"] == "done") {
        assert_eq!(
            (
                done["executed_volume"].as_str(),
                done["remaining_volume"].as_str(),
                done["origin_volume"].as_str(),
                done["trades_count"].as_u64()
            ),
            (Some("0.01"), Some("0"), Some("0.01"), Some(1)),
            "{done}"
        );
        assert_eq!(done["avg_price"].as_str(), done["price"].as_str(), "{done}");
    }
    // The oldest order memory dropped long ago, by id and by client id.
    let oldest = all.last().unwrap();
    let (status, _, by_id) = get_as(
        &client,
        format!("{orders}/{}", oldest["id"].as_u64().unwrap()),
        KEY,
        SECRET,
    )
    .await;
    assert_eq!((status, &by_id), (200, oldest), "{by_id}");
    let (status, _, by_client) = get_as(
        &client,
        format!("{orders}/cid/{}", oldest["client_id"].as_str().unwrap()),
        KEY,
        SECRET,
    )
    .await;
    assert_eq!((status, &by_client), (200, oldest), "{by_client}");
    // Another account's order is not found through this account.
    let (status, _, _) = get_as(
        &client,
        format!("{orders}/{}", oldest["id"].as_u64().unwrap()),
        MAKER_KEY,
        MAKER_SECRET,
    )
    .await;
    assert_eq!(status, 404);
    // Pages of four, oldest first, put together, are the whole list reversed.
    let mut paged = Vec::new();
    for page in 1..=3 {
        let (status, _, list) = get_as(
            &client,
            format!("{orders}?limit=4&page={page}&order_by=asc"),
            KEY,
            SECRET,
        )
        .await;
        assert_eq!(status, 200, "{list}");
        paged.extend(list.as_array().unwrap().iter().cloned());
    }
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(paged, reversed);
    // Filters apply to both sources.
    let (_, _, done) = get_as(&client, format!("{orders}?state=done"), KEY, SECRET).await;
    assert_eq!(done.as_array().unwrap().len(), FILLS, "{done}");
    let (_, _, open) = get_as(&client, format!("{orders}?state=wait"), KEY, SECRET).await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    let (_, _, sells) = get_as(&client, format!("{orders}?side=sell"), KEY, SECRET).await;
    assert_eq!(sells, json!([]));
    // Too deep a page is refused with a reason.
    let (status, _, body) =
        get_as(&client, format!("{orders}?limit=1000&page=11"), KEY, SECRET).await;
    assert_eq!(
        (status, body["errors"][0].as_str()),
        (422, Some("history.too_deep")),
        "{body}"
    );
    let open_id = open[0]["id"].as_u64().unwrap();
    up.stop();

    // After a restart memory has seen no order: the one still open comes from the replica.
    let up = Up::start(dir.path());
    let orders = format!("{}/peatio/market/orders", rest_url(&up));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, _, open) = get_as(&client, format!("{orders}?state=wait"), KEY, SECRET).await;
        assert_eq!(status, 200, "{open}");
        if open.as_array().unwrap().len() == 1 {
            assert_eq!(open[0]["id"].as_u64(), Some(open_id), "{open}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not listed: {open}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, body) = post_as(
        &client,
        format!("{orders}/{open_id}/cancel"),
        KEY,
        SECRET,
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("cancel")),
        "{body}"
    );
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_and_trade_history_beyond_memory_come_from_the_sqlite_replica() {
    history_beyond_memory_comes_from_the_replica(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_and_trade_history_beyond_memory_come_from_the_mariadb_replica() {
    let database = support::FreshDatabase::new("rest_history");
    history_beyond_memory_comes_from_the_replica(Some(&database.url)).await;
}

/// A signed request captured before a restart cannot be replayed after it, even while its
/// nonce is still inside the time window (the nonces' floor is durable); and right after the
/// restart fresh nonces work again within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_replayed_after_a_restart_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let trader = Trader::new(3);
    write_config(
        dir.path(),
        &[trader],
        &format!("[[rest.keys]]\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\naccount = 3\n"),
    );
    let up = Up::start(dir.path());
    let rest = rest_url(&up);
    up.deposit(trader.account, "usd", "100000", 1).await;
    let client = http_client();
    let order = json!({"market": "btcusd", "side": "buy", "volume": "0.25", "price": "49000"});
    let nonce = now_ms();
    let send = |rest: String, nonce: u128| {
        signed_rest(
            &client,
            Method::POST,
            &format!("{rest}/peatio/market/orders"),
            (KEY, SECRET),
            nonce,
            Some(&order),
        )
        .send()
    };
    let placed = send(rest.clone(), nonce).await.unwrap();
    assert_eq!(placed.status(), 201);
    up.kill();

    let up = Up::start(dir.path());
    let rest = rest_url(&up);
    let replayed = send(rest.clone(), nonce).await.unwrap();
    let status = replayed.status();
    let body: serde_json::Value = replayed.json().await.unwrap();
    assert_eq!(status, 401, "the replay was accepted: {body}");
    assert_eq!(body["errors"][0], "authz.nonce_reused", "{body}");
    // A fresh request is accepted (the reservation, 100 ms, is shorter than the restart).
    let fresh = send(rest.clone(), now_ms()).await.unwrap();
    assert_eq!(fresh.status(), 201);
    // Two orders, not three: the replay placed nothing. (The one from before the restart is
    // listed from the replica, which may lag a moment.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let response = signed_rest(
            &client,
            Method::GET,
            &format!("{rest}/peatio/market/orders?state=wait"),
            (KEY, SECRET),
            now_ms(),
            None,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
        let open: serde_json::Value = response.json().await.unwrap();
        let count = open.as_array().unwrap().len();
        assert!(count <= 2, "the replay placed an order: {open}");
        if count == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{open}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    up.stop();
}
