//! Public market data outlives a restart: trades made over REST show the same public trades,
//! k-lines and tickers after `up` is stopped and started again on the same data directory, and
//! the Ranger k-line stream goes on from the rebuilt candle. With both replica backends: the
//! embedded SQLite and MariaDB (`DATABASE_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use ring::hmac;
use serde_json::{Value, json};
use support::{FreshDatabase, Up, http_client, write_config};

/// The buyer's and the seller's REST keys (accounts 3 and 4).
const BUYER: (&str, &str) = ("history-buyer", "history-buyer-secret-0000");
const SELLER: (&str, &str) = ("history-seller", "history-seller-secret-000");

fn keys_toml() -> String {
    let mut text = String::new();
    for ((key, secret), account) in [(BUYER, 3), (SELLER, 4)] {
        text.push_str(&format!(
            "[[rest.keys]]\nkey = \"{key}\"\nsecret = \"{secret}\"\naccount = {account}\n\n"
        ));
    }
    text
}

/// A nonce above every earlier one (per key nonces must increase).
fn nonce_ms() -> u64 {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let ordering = std::sync::atomic::Ordering::AcqRel;
    let previous = LAST
        .fetch_update(ordering, std::sync::atomic::Ordering::Acquire, |last| {
            Some(clock.max(last + 1))
        })
        .unwrap();
    clock.max(previous + 1)
}

async fn place(up: &Up, (key, secret): (&str, &str), side: &str, volume: &str, price: &str) {
    let nonce = nonce_ms();
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        format!("{nonce}{key}").as_bytes(),
    );
    let signature: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let response = http_client()
        .post(format!("{}/api/v2/peatio/market/orders", up.rest))
        .header("X-Auth-Apikey", key)
        .header("X-Auth-Nonce", nonce.to_string())
        .header("X-Auth-Signature", signature)
        .json(&json!({"market": "btcusd", "side": side, "volume": volume, "price": price}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, 201, "{}", response.text().await.unwrap());
}

async fn get(up: &Up, path: &str) -> Value {
    let response = http_client()
        .get(format!("{}/api/v2/peatio/public/{path}", up.rest))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Everything public about btcusd's history: trades, k-lines of three periods, the ticker
/// (without its `at`, the time of the request).
async fn public_history(up: &Up) -> Value {
    let mut tickers = get(up, "markets/tickers").await;
    let mut ticker = get(up, "markets/btcusd/tickers").await;
    for t in [&mut ticker, &mut tickers["btcusd"]] {
        t.as_object_mut().unwrap().remove("at");
    }
    json!({
        "trades": get(up, "markets/btcusd/trades?limit=1000").await,
        "kline_1m": get(up, "markets/btcusd/k-line?period=1&limit=10000").await,
        "kline_1h": get(up, "markets/btcusd/k-line?period=60").await,
        "kline_1w": get(up, "markets/btcusd/k-line?period=10080").await,
        "ticker": ticker,
        "tickers": tickers["btcusd"],
    })
}

async fn market_data_survives_a_restart(replica: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[], &format!("{}{replica}", keys_toml()));
    let up = Up::start(dir.path());
    up.deposit(3, "usd", "1000000", 1).await;
    up.deposit(4, "btc", "10", 2).await;
    place(&up, SELLER, "sell", "0.5", "50000").await;
    place(&up, SELLER, "sell", "0.5", "50100").await;
    place(&up, BUYER, "buy", "0.2", "50100").await;
    place(&up, BUYER, "buy", "0.4", "50100").await;
    place(&up, SELLER, "sell", "0.1", "50050").await;
    place(&up, BUYER, "buy", "0.05", "50060").await;
    let before = public_history(&up).await;
    assert_eq!(before["trades"].as_array().unwrap().len(), 4, "{before}");
    assert_eq!(before["ticker"]["ticker"]["last"], "50050", "{before}");
    up.stop();

    let up = Up::start(dir.path());
    let after = public_history(&up).await;
    assert_eq!(after, before, "up's log:\n{}", log(dir.path()));

    // The streams go on from the rebuilt candles: the week's candle after one more trade
    // holds the trades before the restart too.
    let ws_url = format!(
        "{}/api/v2/ranger/public?stream=btcusd.kline-1w",
        up.rest.replacen("http://", "ws://", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    place(&up, BUYER, "buy", "0.01", "50100").await;
    let week = next_with(&mut ws, "btcusd.kline-1w").await;
    let candle = before["kline_1w"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let volume = |c: &Value| c[5].as_str().unwrap().parse::<f64>().unwrap();
    assert_eq!(week[1], candle[1], "open: {week} vs {candle}");
    assert!(
        (volume(&week) - volume(&candle) - 0.01).abs() < 1e-9,
        "{week} vs {candle}"
    );
    up.stop();
}

fn log(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
}

/// The next message carrying `stream`, bounded by a timeout.
async fn next_with<S>(ws: &mut S, stream: &str) -> Value
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
            let value: Value = serde_json::from_str(&text).unwrap();
            if let Some(payload) = value.get(stream) {
                return payload.clone();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_market_data_survives_a_restart_with_the_sqlite_replica() {
    market_data_survives_a_restart("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_market_data_survives_a_restart_with_a_mariadb_replica() {
    let database = FreshDatabase::new("history_restart");
    market_data_survives_a_restart(&format!("[replica]\nurl = \"{}\"\n", database.url)).await;
}
