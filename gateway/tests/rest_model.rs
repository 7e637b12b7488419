#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A seeded random session of places and cancels by three accounts, checked three ways that
//! must agree: what each client was told (REST answers and its private `order` stream), the
//! REST order lists, and the public order book (the sum of every open order's remaining
//! amount per price level).

mod rest_support;

use std::collections::BTreeMap;

use reqwest::StatusCode;
use rest_support::{Harness, code};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// A small deterministic generator (no dependency, same sequence every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

fn dec(value: &Value) -> Decimal {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_clients_are_told_agrees_with_lists_and_the_book() {
    let h = Harness::start().await;
    let mut streams = Vec::new();
    for account in 1..=3 {
        let mut ws = h.ws_private(account, "?stream=order").await.unwrap();
        assert_eq!(ws.next().await["success"]["message"], "subscribed");
        streams.push(ws);
    }
    let mut rng = Lcg(0x5EED);
    // What each account was told by REST: order id -> last answer.
    let mut told: Vec<BTreeMap<u64, Value>> = vec![BTreeMap::new(); 3];
    for _ in 0..120 {
        let account = 1 + rng.next(3) as u32;
        let mine = &mut told[account as usize - 1];
        if rng.next(4) == 0 && !mine.is_empty() {
            let ids: Vec<u64> = mine.keys().copied().collect();
            let id = ids[rng.next(ids.len() as u64) as usize];
            let (status, body) = h
                .post_as(
                    account,
                    &format!("/api/v2/peatio/market/orders/{id}/cancel"),
                    &json!({}),
                )
                .await;
            match status {
                StatusCode::OK => {
                    assert_eq!(body["state"], "cancel");
                    mine.insert(id, body);
                }
                // Already filled or cancelled: the last answer must not have said it was open
                // unless something (a fill) happened since; the final check settles it.
                StatusCode::NOT_FOUND => assert_eq!(code(&body), "market.order.not_found"),
                other => panic!("cancel answered {other}: {body}"),
            }
        } else {
            let side = if rng.next(2) == 0 { "buy" } else { "sell" };
            let price = 49_990 + rng.next(21);
            let volume = Decimal::new(1 + rng.next(10) as i64, 4);
            let order = h
                .place(
                    account,
                    json!({"market": "btcusd", "side": side, "volume": volume.to_string(),
                           "price": price.to_string()}),
                )
                .await;
            assert_eq!(dec(&order["origin_volume"]), volume);
            assert_eq!(
                dec(&order["executed_volume"]) + dec(&order["remaining_volume"]),
                volume,
                "{order}"
            );
            mine.insert(order["id"].as_u64().unwrap(), order);
        }
    }

    // The lists: every order an account was told about is listed, in a state at least as far
    // along as it was told; the open ones make the book.
    let mut book: BTreeMap<(String, Decimal), Decimal> = BTreeMap::new();
    for account in 1..=3u32 {
        let (_, listed) = h
            .get_as(account, "/api/v2/peatio/market/orders?limit=1000")
            .await;
        let listed: BTreeMap<u64, Value> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["id"].as_u64().unwrap(), o.clone()))
            .collect();
        let mine = &told[account as usize - 1];
        assert_eq!(
            listed.keys().collect::<Vec<_>>(),
            mine.keys().collect::<Vec<_>>()
        );
        for (id, answer) in mine {
            let now = &listed[id];
            // Finished orders never come back; executed volume never shrinks.
            if answer["state"] != "wait" {
                assert_eq!(now["state"], answer["state"], "order {id}");
            }
            assert!(dec(&now["executed_volume"]) >= dec(&answer["executed_volume"]));
            if now["state"] == "wait" {
                let level = (now["side"].as_str().unwrap().to_owned(), dec(&now["price"]));
                *book.entry(level).or_default() += dec(&now["remaining_volume"]);
            }
        }
        // The private stream's last word on each order is the list's.
        let ws = &mut streams[account as usize - 1];
        let mut last: BTreeMap<u64, Value> = BTreeMap::new();
        while last.len() < listed.len()
            || listed.iter().any(|(id, o)| {
                last.get(id).is_none_or(|l| {
                    l["state"] != o["state"] || l["executed_volume"] != o["executed_volume"]
                })
            })
        {
            let update = ws.next_with("order").await;
            last.insert(update["id"].as_u64().unwrap(), update);
        }
    }
    let (_, rest_book) = h
        .get("/api/v2/peatio/public/markets/btcusd/order-book?asks_limit=1000&bids_limit=1000")
        .await;
    let mut public: BTreeMap<(String, Decimal), Decimal> = BTreeMap::new();
    for (side, name) in [("bids", "buy"), ("asks", "sell")] {
        for level in rest_book[side].as_array().unwrap() {
            public.insert(
                (name.to_owned(), dec(&level["price"])),
                dec(&level["volume"]),
            );
        }
    }
    assert_eq!(public, book);
    // The session did exercise fills, cancels and resting orders.
    let states: Vec<&Value> = told
        .iter()
        .flat_map(|m| m.values())
        .map(|o| &o["state"])
        .collect();
    for state in ["wait", "done", "cancel"] {
        assert!(
            states.iter().any(|s| *s == state),
            "no order ended `{state}`"
        );
    }
    assert!(!book.is_empty());
    // Never crossed at rest.
    let best_bid = rest_book["bids"].get(0).map(|l| dec(&l["price"]));
    let best_ask = rest_book["asks"].get(0).map(|l| dec(&l["price"]));
    if let (Some(bid), Some(ask)) = (best_bid, best_ask) {
        assert!(bid < ask, "crossed: {bid} >= {ask}");
    }
}
