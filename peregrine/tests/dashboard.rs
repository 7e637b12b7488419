//! The Grafana dashboard (`deploy/grafana/peregrine.json`) reads what the appliance exports:
//! a real `peregrine up` with identity, fan-out to the suite's NATS and the SQL replica is
//! driven through every edge (control, QUIC, REST signed and refused, WebSocket, identity's
//! sign-up and a refused login), then every panel of the rows that read the appliance is
//! checked against its `/metrics`. The bridge's, wallets' and replication rows are checked by
//! the tests that run those processes (`bridge.rs`, `wallets.rs`, `standby.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::time::{Duration, Instant};

use peregrine_client::Placed;
use peregrine_gateway::rest::auth::sign_request;
use peregrine_hotpath::Side;
use serde_json::json;
use support::dashboard::{assert_panels_exported, exported, jobs, metric_names};
use support::{Trader, Up, http_client, now_ms, write_config};

const KEY: &str = "dashboard-key";
const SECRET: &str = "dashboard-secret-0123456789abcdef";

#[test]
fn metric_names_are_read_from_queries_and_scrapes() {
    let expr = "histogram_quantile(0.99, sum by (le) (rate(peregrine_journal_commit_seconds_bucket[5m]))) - x_peregrine_no";
    assert_eq!(
        metric_names(expr),
        ["peregrine_journal_commit_seconds_bucket"]
    );
    let scrape = "# TYPE pe_a counter\npe_a{x=\"1\"} 2\npe_b 3\n";
    assert_eq!(
        exported(scrape),
        std::collections::BTreeSet::from(["pe_a", "pe_b"])
    );
    let expected = ["appliance", "bridge", "replication", "wallets"];
    assert_eq!(jobs(), expected.map(str::to_owned).into());
}

/// `GET {rest}{path}` signed with the test's key (`secret` may be wrong); the status.
async fn signed_get(rest: &str, path: &str, secret: &str) -> u16 {
    let nonce = now_ms() as u64;
    let signature = sign_request(secret, nonce, "GET", path, b"");
    http_client()
        .get(format!("{rest}{path}"))
        .header("X-Auth-Apikey", KEY)
        .header("X-Auth-Nonce", nonce.to_string())
        .header("X-Auth-Signature", signature)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Control, QUIC, REST, WebSocket and identity traffic, so labelled series exist.
async fn drive_every_edge(up: &Up, trader: &Trader) {
    up.deposit(trader.account, "usd", "100000", 1).await;
    let client = up.connect(trader).await;
    let order = client.limit("btcusd", Side::Buy, "50000", "0.01").unwrap();
    let placed = client.place(order).await.unwrap();
    assert!(matches!(placed, Placed::Ack { .. }), "{placed}");
    let balances = "/api/v2/peatio/account/balances";
    assert_eq!(signed_get(&up.rest, balances, SECRET).await, 200);
    assert_eq!(signed_get(&up.rest, balances, "not-the-secret").await, 401);
    let ws = format!(
        "{}/api/v2/ranger/public?stream=btcusd.trades",
        up.rest.replacen("http://", "ws://", 1)
    );
    let (_socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
    let barong = format!("{}/api/v2/barong/identity", up.rest);
    let credentials =
        json!({"email": "dashboard@example.com", "password": "correct horse battery staple"});
    let signed_up = http_client()
        .post(format!("{barong}/users"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), 201);
    let wrong = json!({"email": "dashboard@example.com", "password": "not the password at all"});
    let refused = http_client()
        .post(format!("{barong}/sessions"))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    client.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_appliance_panel_reads_a_metric_the_appliance_exports() {
    let dir = tempfile::tempdir().unwrap();
    let trader = Trader::new(3);
    let nats = std::env::var("NATS_URL").expect("NATS_URL: run under scripts/test");
    let stream = format!("DASHBOARD_{}_{}", std::process::id(), now_ms());
    let extra = format!(
        "[fanout]\nenabled = true\nurl = \"{nats}\"\nstream = \"{stream}\"\nprefix = \"{}\"\n\n\
         [[rest.keys]]\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\naccount = 3\n",
        stream.to_lowercase()
    );
    write_config(dir.path(), &[trader], &extra);
    let up = Up::start(dir.path());
    drive_every_edge(&up, &trader).await;
    // The replica and the journal's copied counters move within a second or two.
    let deadline = Instant::now() + Duration::from_secs(30);
    let scrape = loop {
        let scrape = up.metrics().await;
        let replicated = scrape
            .lines()
            .any(|line| line.starts_with("peregrine_replica_rows_total ") && !line.ends_with(" 0"));
        if replicated {
            break scrape;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never wrote:\n{scrape}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(assert_panels_exported("appliance", &scrape) >= 30);
    up.stop();
    let context = async_nats::jetstream::new(async_nats::connect(&nats).await.unwrap());
    let _ = context.delete_stream(&stream).await;
    let _ = context
        .delete_key_value(peregrine_fanout::snapshot::bucket_name(&stream))
        .await;
}
