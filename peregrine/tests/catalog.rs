//! Currencies and markets created at runtime against `peregrine up` (the binary) over real
//! HTTP and WebSocket, with identity on the real OpenBao: an admin with 2FA creates `sol` and
//! `solusd` (`POST /control/v1/currencies`, `/markets`), the market starts hidden and opens
//! with a state change, two traders deposit and trade in it over REST, the public REST lists
//! show it and the Ranger WebSocket carries its trade; bad values are refused with the field
//! named and nothing journaled, a role without `reference.create` gets 403; after a restart
//! that replays the journal, and after one that starts from a snapshot taken after the
//! creations, the catalog, the book and the balances are the same.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;
#[allow(unused_imports, dead_code)]
use crate::users;

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::identity::identity_section;
use support::{Up, http_client, next_with, write_config};

/// The static REST keys of the two traders: (key, secret, account).
const MAKER: (&str, &str, u32) = ("cat-maker", "cat-maker-secret-of-32-bytes-0000", 3);
const TAKER: (&str, &str, u32) = ("cat-taker", "cat-taker-secret-of-32-bytes-0000", 4);
/// How long a read waits for the views to show a change.
const SETTLE: Duration = Duration::from_secs(5);

/// `peregrine.toml` with the traders' keys, identity, and snapshots every `snapshot_every`
/// commands (0: none, so a restart replays the whole journal).
fn config(dir: &Path, snapshot_every: u64) {
    let keys: String = [MAKER, TAKER]
        .iter()
        .map(|(key, secret, account)| {
            format!(
                "[[rest.keys]]\nkey = \"{key}\"\nsecret = \"{secret}\"\naccount = {account}\n\n"
            )
        })
        .collect();
    let journal =
        format!("[journal]\nsnapshot_every_commands = {snapshot_every}\nsnapshot_every_ms = 0\n\n");
    write_config(
        dir,
        &[],
        &format!("{keys}{journal}{}", identity_section(dir)),
    );
}

use support::peatio_rest as rest;

/// A public GET's JSON.
async fn public(up: &Up, path: &str) -> Value {
    http_client()
        .get(format!("{}/api/v2/peatio/public{path}", up.rest))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn order(up: &Up, who: (&str, &str, u32), side: &str, volume: &str, price: &str) -> Value {
    let body = json!({"market": "solusd", "side": side, "volume": volume, "price": price});
    let (status, body) = rest(up, who, Method::POST, "/market/orders", Some(body)).await;
    assert_eq!(status, 201, "{body}");
    body
}

use crate::users::{control, operator_token};

/// The last command the engine applied (a refusal before the journal leaves it).
async fn engine_seq(up: &Up) -> u64 {
    up.control_status().await["engine_seq"].as_u64().unwrap()
}

/// Waits (bounded) until `check` holds of the JSON at `path`.
async fn until_public(up: &Up, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let value = public(up, path).await;
        if check(&value) {
            return value;
        }
        assert!(started.elapsed() < SETTLE, "{path} never settled: {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn listed(markets: &Value, name: &str) -> Option<Value> {
    markets
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == name)
        .cloned()
}

fn sol_usd() -> Value {
    json!({"name": "solusd", "base": "sol", "quote": "usd", "tick": "0.01", "lot": "0.001",
           "max_price": "10000", "max_amount": "100000", "max_notional": "1000000",
           "reference_price": "20", "maker_fee": "0.001", "taker_fee": "0.002"})
}

/// Each bad value refused with its field named, and nothing journaled.
async fn refused(up: &Up, admin: &str, cases: Vec<(&str, Value, &str)>) {
    let before = engine_seq(up).await;
    for (path, body, field) in cases {
        let (status, error) = control(up, Method::POST, path, admin, body.clone()).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert_eq!(
            (&error["errors"][0], &error["error"]["field"]),
            (&json!("control.reference.invalid_field"), &json!(field)),
            "{body}: {error}"
        );
    }
    assert_eq!(
        engine_seq(up).await,
        before,
        "a refused creation was journaled"
    );
}

fn bad_currencies() -> Vec<(&'static str, Value, &'static str)> {
    [
        (
            json!({"code": "usd", "name": "Dollar", "precision": 2}),
            "code",
        ),
        (
            json!({"code": "Sol!", "name": "Solana", "precision": 9}),
            "code",
        ),
        (
            json!({"code": "sol", "name": "Solana", "precision": 19}),
            "precision",
        ),
        (json!({"code": "sol", "name": "", "precision": 9}), "name"),
    ]
    .into_iter()
    .map(|(body, field)| ("currencies", body, field))
    .collect()
}

/// `solusd` with one field spoiled, and the field the refusal must name.
fn bad_markets() -> Vec<(&'static str, Value, &'static str)> {
    [
        ("base", json!("doge"), "base"),
        ("quote", json!("sol"), "quote"),
        ("name", json!("btcusd"), "name"),
        ("lot", json!("0.0000000001"), "lot"),
        ("max_price", json!("10000.005"), "max_price"),
        ("band_bps", json!(100_001), "band_bps"),
        ("taker_fee", json!("0.5"), "taker_fee"),
        ("state", json!("open"), "state"),
    ]
    .into_iter()
    .map(|(field, value, named)| {
        let mut body = sol_usd();
        body[field] = value;
        ("markets", body, named)
    })
    .collect()
}

/// What must survive a restart: the catalog entries, the book and the traders' balances.
async fn observed(up: &Up) -> Value {
    let markets = until_public(up, "/markets", |m| listed(m, "solusd").is_some()).await;
    let currency = public(up, "/currencies/sol").await;
    let book = public(up, "/markets/solusd/order-book").await;
    let mut balances = Vec::new();
    for who in [MAKER, TAKER] {
        for code in ["sol", "usd"] {
            let path = format!("/account/balances/{code}");
            let (status, body) = rest(up, who, Method::GET, &path, None).await;
            assert_eq!(status, 200, "{body}");
            balances.push(body);
        }
    }
    // Levels only: the book's sequence restarts with the mirror.
    json!({"market": listed(&markets, "solusd"), "currency": currency,
           "book": [&book["asks"], &book["bids"]], "balances": balances})
}

/// Creates `sol` and `solusd` as `admin`, opens it, and trades in it; returns the trade as
/// the Ranger WebSocket carried it.
async fn create_and_trade(up: &Up, admin: &str) -> Value {
    let currency = json!({"code": "sol", "name": "Solana", "precision": 9});
    let (status, body) = control(up, Method::POST, "currencies", admin, currency).await;
    assert_eq!(status, 201, "{body}");
    let created_seq = body["seq"].as_u64().unwrap();
    let sol = public(up, "/currencies/sol").await;
    assert_eq!(
        (&sol["name"], &sol["precision"]),
        (&json!("Solana"), &json!(9))
    );
    refused(up, admin, bad_markets()).await;
    let (status, body) = control(up, Method::POST, "markets", admin, sol_usd()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "hidden", "{body}");
    assert!(body["seq"].as_u64().unwrap() > created_seq);
    // Hidden: not listed until opened.
    assert!(listed(&public(up, "/markets").await, "solusd").is_none());
    let (status, body) = control(up, Method::POST, "markets", admin, sol_usd()).await;
    assert_eq!((status, &body["error"]["field"]), (422, &json!("name")));
    let open = json!({"state": "enabled"});
    let (status, body) = control(up, Method::PATCH, "markets/solusd", admin, open).await;
    assert_eq!(status, 200, "{body}");
    until_public(up, "/markets", |m| listed(m, "solusd").is_some()).await;

    let ws_url = format!(
        "{}/api/v2/ranger/public?stream=solusd.trades",
        up.rest.replacen("http://", "ws://", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    up.deposit(MAKER.2, "sol", "10", 101).await;
    up.deposit(TAKER.2, "usd", "1000", 102).await;
    order(up, MAKER, "sell", "1", "20").await;
    order(up, TAKER, "buy", "1", "20").await;
    // A resting order the book must still hold after each restart.
    order(up, MAKER, "sell", "2", "25.5").await;
    let trade = next_with(&mut ws, "solusd.trades").await;
    ws.close(None).await.unwrap();
    let trades = until_public(up, "/markets/solusd/trades", |t| {
        t.as_array().is_some_and(|t| t.len() == 1)
    })
    .await;
    assert_eq!(trades[0]["price"], "20", "{trades}");
    trade
}

/// Snapshot files in the journal directory.
fn snapshots(journal: &Path) -> usize {
    std::fs::read_dir(journal)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snapshot"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_currency_and_a_market_created_at_runtime_trade_and_survive_replay_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 0);
    let up = Up::start(dir.path());
    let admin = operator_token(&up, dir.path(), "admin").await;
    // Support reads, it does not create.
    let support = operator_token(&up, dir.path(), "support").await;
    let body = json!({"code": "sol", "name": "Solana", "precision": 9});
    let (status, error) = control(&up, Method::POST, "currencies", &support, body).await;
    assert_eq!(
        (status, &error["errors"][0]),
        (403, &json!("control.auth.forbidden")),
        "{error}"
    );
    refused(&up, &admin, bad_currencies()).await;
    let trade = create_and_trade(&up, &admin).await;
    assert!(trade["trades"][0]["price"] == "20", "{trade}");
    let before = observed(&up).await;
    let book = &before["book"];
    assert_eq!(book[0][0]["price"], "25.5", "{book}");

    // Replayed from the journal alone (no snapshot was taken).
    up.stop();
    let journal = dir.path().join("data").join("journal");
    assert_eq!(snapshots(&journal), 0);
    let up = Up::start(dir.path());
    assert_eq!(observed(&up).await, before);
    up.stop();

    // Snapshots every few commands now: deposits elsewhere take one after the creations.
    config(dir.path(), 3);
    let up = Up::start(dir.path());
    for id in 0..4 {
        up.deposit(9, "btc", "1", 200 + id).await;
    }
    let started = Instant::now();
    while snapshots(&journal) == 0 {
        assert!(started.elapsed() < SETTLE, "no snapshot written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    up.stop();
    let up = Up::start(dir.path());
    assert_eq!(observed(&up).await, before);
    // The market still trades after both restarts.
    order(&up, TAKER, "buy", "1", "25.5").await;
    up.stop();
}
