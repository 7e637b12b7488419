//! The SDK against a real `peregrine up` with a key from `peregrine keygen`: the keygen output
//! is a configuration `up` accepts as is, its private key logs on, orders go by market name and
//! decimals, and the balance over QUIC is what REST reports.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::process::Command;

use peregrine_client::{Client, KeyId, Placed, ServerTrust, SigningKey};
use peregrine_hotpath::Side;
use rust_decimal::Decimal;
use support::{Up, http_client, write_config};

const REST_KEY: &str = "sdk-test-key";
const REST_SECRET: &str = "sdk-test-secret-of-32-bytes-0000";

/// `peregrine keygen` for key 9 of account 3: its whole output and the private key on it.
fn keygen() -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["keygen", "--key-id", "9", "--account", "3"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let private_key = text
        .lines()
        .find_map(|l| l.strip_prefix("# private_key = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no private key in {text}"))
        .to_owned();
    (text, private_key)
}

/// `GET {rest}/peatio/account/balances/{currency}`, signed for account 3.
async fn rest_balance(rest: &str, currency: &str) -> serde_json::Value {
    let client = http_client();
    let url = format!("{rest}/peatio/account/balances/{currency}");
    let response = support::signed_rest(
        &client,
        reqwest::Method::GET,
        &url,
        (REST_KEY, REST_SECRET),
        support::now_ms(),
        None,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn decimal(value: &serde_json::Value) -> Decimal {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keygen_key_trades_by_names_and_reads_the_balance_rest_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, private_key) = keygen();
    let rest_key =
        format!("[[rest.keys]]\nkey = \"{REST_KEY}\"\nsecret = \"{REST_SECRET}\"\naccount = 3\n\n");
    write_config(dir.path(), &[], &format!("{rest_key}{keys}"));
    let up = Up::start(dir.path());
    up.deposit(3, "usd", "100000", 1).await;
    let client = Client::connect(
        up.quic,
        ServerTrust::Fingerprint(up.fingerprint),
        KeyId(9),
        SigningKey::from_seed_hex(&private_key).unwrap(),
    )
    .await
    .unwrap();
    let order = client.limit("btcusd", Side::Buy, "50000", "0.01").unwrap();
    let placed = client.place(order).await.unwrap();
    assert!(matches!(placed, Placed::Ack { .. }), "{placed}");
    let quic = client.balance("usd").await.unwrap();
    let rest = up
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("rest  "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let json = rest_balance(&rest, "usd").await;
    assert_eq!(
        (quic.available, quic.locked),
        (decimal(&json["balance"]), decimal(&json["locked"])),
        "{json}"
    );
    // 0.01 btc at 50,000 usd is locked: the order really used the market's units.
    assert_eq!(quic.locked, "500".parse().unwrap());
    client.logout().await.unwrap();
    up.stop();
}
