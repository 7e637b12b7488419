//! The retail REST bridge of a real `peregrine up`: a signed order over HTTP rests in the book
//! that the public endpoint and a WebSocket subscriber show, and a bad signature is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use ring::hmac;
use serde_json::json;
use support::{Trader, Up, http_client, write_config};

const KEY: &str = "retail-key-1";
const SECRET: &str = "retail-secret-of-32-bytes-000000";

/// Barong's headers: nonce in ms, signature = hex HMAC-SHA256(secret, nonce + key).
fn signed(
    request: reqwest::RequestBuilder,
    nonce_ms: u128,
    secret: &str,
) -> reqwest::RequestBuilder {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{nonce_ms}{KEY}").as_bytes());
    let signature: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    request
        .header("X-Auth-Apikey", KEY)
        .header("X-Auth-Nonce", nonce_ms.to_string())
        .header("X-Auth-Signature", signature)
}

/// The next message carrying `stream`, skipping others; bounded by a timeout.
async fn next_with<S>(ws: &mut S, stream: &str) -> serde_json::Value
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("no WebSocket message within 10 s")
            .expect("the WebSocket ended")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            if let Some(payload) = value.get(stream) {
                return payload.clone();
            }
        }
    }
}

/// A fresh nonce: the clock in ms, but always above the last one (nonces must increase per key,
/// and two requests may fall in the same millisecond).
fn now_ms() -> u128 {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let previous = LAST
        .fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |last| Some(clock.max(last + 1)),
        )
        .unwrap();
    u128::from(clock.max(previous + 1))
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
    let rest = up
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("rest  "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    up.deposit(trader.account, "usd", "100000", 1).await;
    let client = http_client();
    let order = json!({"market": "btcusd", "side": "buy", "volume": "0.25", "price": "49000"});

    let refused = signed(
        client.post(format!("{rest}/peatio/market/orders")),
        now_ms(),
        "wrong-secret-wrong-secret-000000",
    )
    .json(&order)
    .send()
    .await
    .unwrap();
    assert_eq!(refused.status(), 401);

    let placed = signed(
        client.post(format!("{rest}/peatio/market/orders")),
        now_ms(),
        SECRET,
    )
    .json(&order)
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
    let placed = signed(
        client.post(format!("{rest}/peatio/market/orders")),
        now_ms(),
        SECRET,
    )
    .json(&second)
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
        let response = signed(
            client.get(format!(
                "{rest}/peatio/account/transactions?currency=usd&order_by=asc"
            )),
            now_ms(),
            SECRET,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
        let list: Vec<serde_json::Value> = response.json().await.unwrap();
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
