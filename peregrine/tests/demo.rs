//! `peregrine up --demo` on a fresh data directory and no configuration of its own: the demo
//! market maker funds its accounts, quotes both sides of every market and trades, so the book
//! and the trades are live over REST (what the page at `/` reads); it is counted in `/metrics`,
//! cancels its quotes when `up` stops, and starts again on the same journal (its funding
//! deposit is not credited twice).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Up, http_client, write_config};

/// Quotes and a trade must show within this (the bot refreshes every second and takes every
/// third).
const LIVE_WITHIN: Duration = Duration::from_secs(15);

async fn get(url: &str) -> Value {
    let response = http_client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

/// Waits until `market` has bids, asks and a trade; the book then.
async fn until_live(up: &Up, market: &str) -> Value {
    let public = format!("{}/api/v2/peatio/public/markets/{market}", up.rest);
    let deadline = Instant::now() + LIVE_WITHIN;
    loop {
        let book = get(&format!("{public}/order-book")).await;
        let trades = get(&format!("{public}/trades")).await;
        let filled = |side: &str| book[side].as_array().is_some_and(|l| !l.is_empty());
        if filled("asks") && filled("bids") && trades.as_array().is_some_and(|t| !t.is_empty()) {
            return book;
        }
        assert!(
            Instant::now() < deadline,
            "{market} is not live: {book} {trades}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_demo_appliance_shows_a_live_market_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[], "");
    let up = Up::start_with_args(dir.path(), &["--demo"]);
    assert!(
        up.lines.iter().any(|l| l.starts_with("demo ")),
        "{:?}",
        up.lines
    );
    for market in ["btcusd", "ethusd"] {
        let book = until_live(&up, market).await;
        let best =
            |side: &str| -> f64 { book[side][0]["price"].as_str().unwrap().parse().unwrap() };
        assert!(best("bids") < best("asks"), "crossed book: {book}");
    }
    let metrics = up.metrics().await;
    for series in [
        "peregrine_demo_orders_total{outcome=\"accepted\",role=\"maker\"}",
        "peregrine_demo_orders_total{outcome=\"accepted\",role=\"taker\"}",
        "peregrine_demo_refresh_seconds_count{market=\"btcusd\"}",
    ] {
        assert!(metrics.contains(series), "no {series}");
    }
    up.stop();

    // Stopped cleanly: no quote outlives the bot.
    let up = Up::start(dir.path());
    let book = get(&format!(
        "{}/api/v2/peatio/public/markets/btcusd/order-book",
        up.rest
    ))
    .await;
    assert_eq!(book["bids"], Value::Array(vec![]), "{book}");
    assert_eq!(book["asks"], Value::Array(vec![]), "{book}");
    up.stop();

    // Again with --demo on the same journal: the funding deposit is a duplicate, not an error.
    let up = Up::start_with_args(dir.path(), &["--demo"]);
    until_live(&up, "btcusd").await;
    up.stop();
}
