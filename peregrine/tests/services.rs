//! Smoke tests against the real services `scripts/test` provides on loopback: MariaDB, OpenBao
//! (Vault API) and anvil (Ethereum JSON-RPC). They fail, never skip, when a service is missing:
//! a passing run must mean the services were really there.

// Helpers outside `#[test]` functions are still test code: they may unwrap and panic, which
// is how a test reports failure (clippy.toml allows it only inside `#[test]` bodies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sqlx::Connection;

/// Bound on each call: a loopback service that takes longer than this is not healthy.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: run the test suite with `scripts/test`, which starts the local \
             services (MariaDB, OpenBao, anvil) and exports DATABASE_URL, VAULT_ADDR and \
             ETH_RPC_URL"
        ),
    }
}

fn http_client() -> reqwest::Client {
    // No proxy: these services are on loopback and a proxy from the environment would break
    // or redirect the call.
    reqwest::Client::builder()
        .no_proxy()
        .timeout(CALL_TIMEOUT)
        .build()
        .unwrap()
}

#[tokio::test]
async fn mariadb_answers_select_1() {
    let url = required_env("DATABASE_URL");
    let mut connection =
        tokio::time::timeout(CALL_TIMEOUT, sqlx::mysql::MySqlConnection::connect(&url))
            .await
            .expect("connect timed out")
            .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL={url}: {e}"));
    let one: i64 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(one, 1);
    connection.close().await.unwrap();
}

#[tokio::test]
async fn openbao_reports_healthy() {
    let addr = required_env("VAULT_ADDR");
    let response = http_client()
        .get(format!("{}/v1/sys/health", addr.trim_end_matches('/')))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {addr}/v1/sys/health: {e}"));
    // 200 means initialized, unsealed and active.
    assert_eq!(response.status(), 200);
    let health: serde_json::Value = response.json().await.unwrap();
    assert_eq!(health["initialized"], true, "{health}");
    assert_eq!(health["sealed"], false, "{health}");
}

#[tokio::test]
async fn anvil_answers_eth_block_number() {
    let url = required_env("ETH_RPC_URL");
    let request = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []
    });
    let response = http_client()
        .post(&url)
        .json(&request)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["id"], 1, "{body}");
    let block = body["result"]
        .as_str()
        .unwrap_or_else(|| panic!("no result: {body}"));
    let number = u64::from_str_radix(block.trim_start_matches("0x"), 16).unwrap();
    assert!(block.starts_with("0x"), "{block}");
    assert!(number < 1_000_000_000, "implausible block number {number}");
}
