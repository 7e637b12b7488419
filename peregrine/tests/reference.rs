//! Runtime reference data against `peregrine up` (the binary) over real HTTP, with identity on
//! the real OpenBao and its SQLite store: operators with 2FA change a market's state and risk
//! parameters through `PATCH /control/v1/markets/{market}` (bad values refused with the field
//! named, nothing changed), the public market list and order entry over REST follow each state
//! (hidden: unlisted but trading; disabled: unlisted, orders refused, cancels work; locked:
//! listed as halted, orders refused), a fee change proposed by one operator is refused to its
//! creator and applied once a second operator approves it, the next fill over REST pays it,
//! and after a restart everything is replayed from the journal: the state, the risk
//! parameters and the fee.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;
// Shared with wallets.rs, which uses the rest of what it re-exports.
#[allow(unused_imports)]
use crate::users;

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::identity::identity_section;
use support::{Up, http_client, write_config};

/// The static REST keys of the two traders: (key, secret, account).
const MAKER: (&str, &str, u32) = ("ref-maker", "ref-maker-secret-of-32-bytes-0000", 3);
const TAKER: (&str, &str, u32) = ("ref-taker", "ref-taker-secret-of-32-bytes-0000", 4);
/// How long a read waits for the views to show a change.
const SETTLE: Duration = Duration::from_secs(5);

fn config(dir: &Path) {
    let keys: String = [MAKER, TAKER]
        .iter()
        .map(|(key, secret, account)| {
            format!(
                "[[rest.keys]]\nkey = \"{key}\"\nsecret = \"{secret}\"\naccount = {account}\n\n"
            )
        })
        .collect();
    write_config(dir, &[], &format!("{keys}{}", identity_section(dir)));
}

use support::peatio_rest as rest;

async fn order(up: &Up, who: (&str, &str, u32), side: &str, price: &str) -> (u16, Value) {
    let body = json!({"market": "btcusd", "side": side, "volume": "0.01", "price": price});
    rest(up, who, Method::POST, "/market/orders", Some(body)).await
}

use crate::users::{control, operator_token};

/// The public market list's entry of `name` (None: not listed).
async fn listed(up: &Up, name: &str) -> Option<Value> {
    let list: Value = http_client()
        .get(format!("{}/api/v2/peatio/public/markets", up.rest))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == name)
        .cloned()
}

/// Waits (bounded) until `check` holds of the public listing of btcusd.
async fn until_listed(up: &Up, check: impl Fn(&Option<Value>) -> bool) -> Option<Value> {
    let started = Instant::now();
    loop {
        let entry = listed(up, "btcusd").await;
        if check(&entry) {
            return entry;
        }
        assert!(
            started.elapsed() < SETTLE,
            "listing never settled: {entry:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The available balance of `currency` over REST, once it equals `want` (bounded wait).
async fn until_balance(up: &Up, who: (&str, &str, u32), currency: &str, want: &str) {
    let want: Decimal = want.parse().unwrap();
    let started = Instant::now();
    loop {
        let path = format!("/account/balances/{currency}");
        let (status, body) = rest(up, who, Method::GET, &path, None).await;
        let got = body["balance"]
            .as_str()
            .and_then(|b| b.parse::<Decimal>().ok());
        if status == 200 && got == Some(want) {
            return;
        }
        assert!(
            started.elapsed() < SETTLE,
            "{currency}: {body}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The maker sells 0.01 btc at 50 000 and the taker buys it: both fills over REST.
async fn trade(up: &Up) {
    let (status, body) = order(up, MAKER, "sell", "50000").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = order(up, TAKER, "buy", "50000").await;
    assert_eq!(status, 201, "{body}");
}

/// Refused with `field` named, and nothing changed.
async fn refused_field(up: &Up, token: &str, body: Value, field: &str) {
    let before = listed(up, "btcusd").await;
    let (status, error) = control(up, Method::PATCH, "markets/btcusd", token, body).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(
        error["errors"][0], "control.reference.invalid_field",
        "{error}"
    );
    assert_eq!(error["error"]["field"], field, "{error}");
    assert_eq!(listed(up, "btcusd").await, before);
}

/// States as the listing and order entry see them; bad values refused by field.
async fn states_and_risk(up: &Up, admin: &str) {
    let patch = |body: Value| control(up, Method::PATCH, "markets/btcusd", admin, body);
    // Hidden: unlisted, still trading (the maker's order rests).
    let (status, body) = patch(json!({"state": "hidden"})).await;
    assert_eq!((status, &body["state"]), (200, &json!("hidden")), "{body}");
    until_listed(up, Option::is_none).await;
    assert!(listed(up, "ethusd").await.is_some());
    let (status, resting) = order(up, MAKER, "sell", "60000").await;
    assert_eq!(status, 201, "{resting}");
    // Disabled: unlisted, new orders refused by name, cancels still work.
    let (status, body) = patch(json!({"state": "disabled"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = order(up, TAKER, "buy", "50000").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0], "market.order.market_disabled", "{body}");
    let cancel = format!("/market/orders/{}/cancel", resting["id"]);
    let (status, body) = rest(up, MAKER, Method::POST, &cancel, None).await;
    assert!(status < 300, "cancel in a disabled market: {status} {body}");
    // Locked: listed as halted, orders refused as a halt.
    let (status, body) = patch(json!({"state": "locked"})).await;
    assert_eq!(status, 200, "{body}");
    until_listed(up, |m| m.as_ref().is_some_and(|m| m["state"] == "halted")).await;
    let (status, body) = order(up, TAKER, "buy", "50000").await;
    assert_eq!(
        (status, &body["errors"][0]),
        (422, &json!("market.order.market_halted"))
    );
    // Bad values: the field named, nothing changed.
    refused_field(up, admin, json!({"band_bps": 100_001}), "band_bps").await;
    refused_field(up, admin, json!({"max_amount": "0.0000001"}), "max_amount").await;
    refused_field(up, admin, json!({"max_price": "1"}), "max_price").await;
    refused_field(up, admin, json!({"state": "open"}), "state").await;
    refused_field(
        up,
        admin,
        json!({"reference_price": "abc"}),
        "reference_price",
    )
    .await;
    // Enabled again, with a larger maximum amount the listing shows.
    let (status, body) = patch(json!({"state": "enabled", "max_amount": "2000"})).await;
    assert_eq!(status, 200, "{body}");
    let entry = until_listed(up, |m| {
        m.as_ref().is_some_and(|m| m["max_amount"] == "2000")
    })
    .await;
    assert_eq!(entry.unwrap()["state"], "enabled");
}

/// Proposed by `creator`, refused to them, approved by `approver` (retried: applied once).
async fn fee_change(up: &Up, creator: &str, approver: &str) -> u64 {
    let proposal = json!({"market": "btcusd", "group": 0, "maker_fee": "0.0004",
                          "taker_fee": "0.0005"});
    let (status, created) = control(up, Method::POST, "fees", creator, proposal).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "pending");
    let approve = format!("fees/{}/approve", created["id"]);
    let (status, body) = control(up, Method::POST, &approve, creator, json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0], "control.adjustment.own_proposal");
    let bad = json!({"market": "btcusd", "group": 0, "maker_fee": "0.5", "taker_fee": "0"});
    let (status, body) = control(up, Method::POST, "fees", creator, bad).await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("maker_fee")),
        "{body}"
    );
    let mut applied = None;
    for _ in 0..2 {
        let (status, body) = control(up, Method::POST, &approve, approver, json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["state"], "approved");
        let seq = body["applied_seq"].as_u64().unwrap();
        assert_eq!(*applied.get_or_insert(seq), seq, "applied twice");
    }
    applied.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_changes_trade_pay_the_approved_fee_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let up = Up::start(dir.path());
    up.deposit(MAKER.2, "btc", "1", 1).await;
    up.deposit(TAKER.2, "usd", "100000", 2).await;
    let admin = operator_token(&up, dir.path(), "admin").await;
    // Accountants may both propose and approve: the creator is refused as the creator.
    let proposer = operator_token(&up, dir.path(), "accountant").await;
    let approver = operator_token(&up, dir.path(), "accountant").await;
    states_and_risk(&up, &admin).await;

    // Before the fee change, the catalog's fees: the taker pays 0.2 % of the btc received,
    // the maker 0.1 % of the usd.
    trade(&up).await;
    until_balance(&up, TAKER, "btc", "0.00998").await;
    until_balance(&up, MAKER, "usd", "499.5").await;
    fee_change(&up, &proposer, &approver).await;
    // After it: 0.05 % and 0.04 %.
    trade(&up).await;
    until_balance(&up, TAKER, "btc", "0.019975").await;
    until_balance(&up, MAKER, "usd", "999.3").await;

    // Locked before the restart: the state, risk and fee are replayed from the journal.
    let (status, body) = control(
        &up,
        Method::PATCH,
        "markets/btcusd",
        &admin,
        json!({"state": "locked"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    up.stop();
    let up = Up::start(dir.path());
    let entry = until_listed(&up, Option::is_some).await.unwrap();
    assert_eq!(
        (&entry["state"], &entry["max_amount"]),
        (&json!("halted"), &json!("2000"))
    );
    let (status, body) = order(&up, TAKER, "buy", "50000").await;
    assert_eq!(
        (status, &body["errors"][0]),
        (422, &json!("market.order.market_halted"))
    );
    let admin = operator_token(&up, dir.path(), "admin").await;
    let (status, body) = control(
        &up,
        Method::PATCH,
        "markets/btcusd",
        &admin,
        json!({"state": "enabled"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    trade(&up).await;
    until_balance(&up, TAKER, "btc", "0.02997").await;
    up.stop();
}
