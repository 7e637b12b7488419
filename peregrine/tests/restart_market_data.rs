//! Public market data outlives a restart: trades made over REST show the same public trades,
//! k-lines and tickers after `up` is stopped and started again on the same data directory, and
//! the Ranger k-line stream goes on from the rebuilt candle. With both replica backends: the
//! embedded SQLite and MariaDB (`DATABASE_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use serde_json::{Value, json};
use support::{FreshDatabase, Up, http_client, next_with, now_ms, signed_rest, write_config};

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

async fn place(up: &Up, (key, secret): (&str, &str), side: &str, volume: &str, price: &str) {
    let client = http_client();
    let url = format!("{}/api/v2/peatio/market/orders", up.rest);
    let body = json!({"market": "btcusd", "side": side, "volume": volume, "price": price});
    let response = signed_rest(
        &client,
        reqwest::Method::POST,
        &url,
        (key, secret),
        now_ms(),
        Some(&body),
    )
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

/// Trades four times over REST in a fresh `up` configured with `extra` (appended to its
/// `[rest]` section), stops it and starts it again; returns the public history before and after.
async fn trade_and_restart(extra: &str) -> (tempfile::TempDir, Up, Value, Value) {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[], &format!("{extra}{}", keys_toml()));
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
    (dir, up, before, after)
}

async fn market_data_survives_a_restart(replica: &str) {
    let (dir, up, before, after) = trade_and_restart(replica).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_market_data_survives_a_restart_with_the_sqlite_replica() {
    market_data_survives_a_restart("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_market_data_survives_a_restart_with_a_mariadb_replica() {
    let database = FreshDatabase::new("history_restart");
    market_data_survives_a_restart(&format!("[replica]\nurl = \"{}\"\n", database.url)).await;
}

/// With fewer trades read than there are, the candles that may hold unread trades are left out
/// rather than shown short, and the recent trades are topped up from the market's older ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_beyond_its_bound_keeps_whole_candles_and_every_recent_trade() {
    let (dir, up, before, after) = trade_and_restart("rebuild_trades_max = 2\n").await;
    let context = format!("{before}\n{after}\nup's log:\n{}", log(dir.path()));
    assert_eq!(after["trades"], before["trades"], "{context}");
    assert_eq!(after["ticker"]["ticker"]["last"], "50050", "{context}");
    // The two newest trades were read; the week's candle also holds the two before them.
    assert_eq!(after["kline_1w"], json!([]), "{context}");
    for candle in after["kline_1m"].as_array().unwrap() {
        assert!(
            before["kline_1m"].as_array().unwrap().contains(candle),
            "{context}"
        );
    }
    up.stop();
}
