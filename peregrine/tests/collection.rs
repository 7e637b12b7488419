//! Reconciliation on real processes: `peregrine up`, `peregrine wallets run` and `peregrine
//! wallets reconcile` (the real binaries), a private anvil, the suite's OpenBao (a mount of
//! the test's own) and MariaDB. The chain and the ledger agree (difference 0, ready); ether
//! paid straight to the hot wallet is reported by the command, the daemon's gauge and its
//! readiness (degraded); the matching credit in the ledger clears it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;
use crate::wallet_support;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use peregrine_wallet::chain::eth::EthRpc;
use peregrine_wallet::store::WalletStore;
use serde_json::Value;
use support::{FreshDatabase, PROCESS_TIMEOUT, Up, http_client, spawn, write_config};
use wallet_support::{OwnAnvil, accounts, pay, required_env, wallet_openbao_token};

const ETHER: u128 = 1_000_000_000_000_000_000;
/// Bound on waiting for the daemon to see a change.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes the appliance's configuration with ether on the chain at `anvil`, reconciled every
/// 100 ms with no tolerance, and the daemon's (the appliance's bound address); starts `up`.
async fn stack(dir: &Path, anvil: &str, database: &str) -> Up {
    let mount = format!("wallets-reconcile-{}", std::process::id());
    wallet_openbao_token(&mount, &dir.join("data/wallets-openbao.token")).await;
    let section = |control: &str| {
        format!(
            "[wallets]\nenabled = true\nlisten = \"127.0.0.1:0\"\nrpc_url = \"{anvil}\"\n\
             store_url = \"{database}\"\nopenbao_addr = \"{}\"\nseed_mount = \"{mount}\"\n\
             control_url = \"{control}\"\ninterval_ms = 100\nbackoff_ms_max = 800\n\
             reconcile_interval_ms = 100\n\n\
             [[wallets.currencies]]\ncode = \"eth\"\ndecimals = 18\nconfirmations = 1\n\
             reconcile_tolerance = \"0\"\n\n",
            required_env("VAULT_ADDR"),
        )
    };
    write_config(dir, &[], &section(""));
    let up = Up::start(dir);
    let text = std::fs::read_to_string(dir.join("peregrine.toml"))
        .unwrap()
        .replace(&section(""), &section(&up.http));
    std::fs::write(dir.join("wallets.toml"), text).unwrap();
    up
}

/// Starts `peregrine wallets run`; the child and its health URL.
fn daemon(dir: &Path) -> (Child, String) {
    let args = ["wallets", "run", "--config", "wallets.toml"];
    let (mut child, lines) = spawn(dir, &args);
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(remaining) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("wallets  ") {
                    return (child, rest.split_whitespace().next().unwrap().to_owned());
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!("no summary from peregrine wallets run ({e})");
            }
        }
    }
}

/// `peregrine wallets reconcile --json`: its exit code and the ether entry.
fn reconcile(dir: &Path) -> (i32, Value) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["wallets", "reconcile", "--config", "wallets.toml", "--json"])
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    (
        output.status.code().unwrap(),
        report["currencies"][0].clone(),
    )
}

/// Waits until the daemon's readiness answers `want_status` with a body containing `want`.
async fn readiness(health: &str, want_status: u16, want: &str) -> String {
    let deadline = Instant::now() + CHANGE_TIMEOUT;
    loop {
        let response = http_client()
            .get(format!("{health}/health/ready"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        if status == want_status && body.contains(want) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "readiness {status} {body}, want {want_status} with {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The daemon's `wallet_reconciliation_difference` of ether.
async fn gauge(health: &str) -> Option<f64> {
    let text = http_client()
        .get(format!("{health}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|line| {
            line.starts_with("peregrine_wallet_reconciliation_difference{")
                && line.contains("currency=\"eth\"")
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Waits until the gauge reads `want`.
async fn wait_gauge(health: &str, want: f64) {
    let deadline = Instant::now() + CHANGE_TIMEOUT;
    loop {
        let now = gauge(health).await;
        if now == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gauge reads {now:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_reports_ether_the_ledger_does_not_owe_until_it_does() {
    let anvil = OwnAnvil::start().await;
    let database = FreshDatabase::new("wallet_reconcile");
    let dir = tempfile::tempdir().unwrap();
    let up = stack(dir.path(), &anvil.url, &database.url).await;
    let (mut child, health) = daemon(dir.path());
    let store = WalletStore::open(&database.url).await.unwrap();
    let hot = loop {
        if let Some((hot, _)) = store.hot_wallet("eth", "eth").await.unwrap() {
            break hot;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Nothing on chain, nothing owed.
    wait_gauge(&health, 0.0).await;
    readiness(&health, 200, "ok reconciliation").await;
    let (code, eth) = reconcile(dir.path());
    assert_eq!(
        (code, &eth["difference"]),
        (0, &Value::from("0.000000000000000000")),
        "{eth}"
    );

    // One ether paid straight to the hot wallet: on chain, owed to nobody.
    let rpc = EthRpc::new(&anvil.url).unwrap();
    let payer = accounts(&rpc).await[1].clone();
    pay(&rpc, &payer, &hot, ETHER).await;
    let body = readiness(&health, 200, "degraded reconciliation").await;
    assert!(
        body.contains("eth differs by \"1.000000000000000000\""),
        "{body}"
    );
    let (code, eth) = reconcile(dir.path());
    assert_eq!(code, 1, "{eth}");
    assert_eq!(eth["difference"], "1.000000000000000000", "{eth}");
    assert_eq!(eth["hot"], "1.000000000000000000", "{eth}");
    assert_eq!(eth["exceeds"], true);
    wait_gauge(&health, 1.0).await;

    // The ledger owes it (an operator's credit): the two agree again.
    up.deposit(7, "eth", "1", 1).await;
    wait_gauge(&health, 0.0).await;
    readiness(&health, 200, "ok reconciliation").await;
    let (code, eth) = reconcile(dir.path());
    assert_eq!(
        (code, &eth["liabilities"]),
        (0, &Value::from("1.000000000000000000")),
        "{eth}"
    );
    let _ = child.kill();
    let _ = child.wait();
    up.stop();
}
