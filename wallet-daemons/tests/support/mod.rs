//! What the wallet tests share: the local services (anvil, MariaDB, OpenBao) from the
//! environment `scripts/test` exports, a private anvil for tests that rewrite the chain, an
//! engine, and the test token compiled with solcjs.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use peregrine_core::{EngineHandle, Request};
use peregrine_hotpath::runtime::{Shard, ShardConfig};
use peregrine_hotpath::{Actor, CommandKind, CurrencyId, Engine, EngineConfig};
use peregrine_secrets::sys::Engine as BaoEngine;
use peregrine_secrets::{BaoToken, OpenBao};
use peregrine_wallet::chain::Address;
use peregrine_wallet::chain::eth::EthRpc;
use peregrine_wallet::keys::{SeedVault, wallet_policy};
use serde_json::{Value, json};
use sqlx::Connection;

pub fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: run the test suite with `scripts/test`, which starts the local \
             services (anvil, MariaDB, OpenBao) and exports ETH_RPC_URL, ANVIL_BIN, SOLCJS_BIN, \
             DATABASE_URL, VAULT_ADDR, VAULT_TOKEN and BAO_BIN"
        ),
    }
}

/// A currency code of this run's own (seeds stay in OpenBao between runs).
pub fn unique_code(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{:x}{:x}", std::process::id() & 0xffff, nanos)
}

/// OpenBao with the root token of the test server.
pub fn bao_root() -> OpenBao {
    OpenBao::new(
        &required_env("VAULT_ADDR"),
        BaoToken::new(required_env("VAULT_TOKEN")),
    )
    .unwrap()
}

/// The seeds under `mount`, read with a token of their own holding the wallet policy (named
/// `policy`) only.
pub async fn wallet_vault(mount: &str, policy: &str) -> SeedVault {
    wallet_vault_on(bao_root(), mount, policy).await
}

/// [`wallet_vault`] on the OpenBao `root` speaks to.
pub async fn wallet_vault_on(root: OpenBao, mount: &str, policy: &str) -> SeedVault {
    root.ensure_engine(mount, BaoEngine::KvV2).await.unwrap();
    root.put_policy(policy, &wallet_policy(mount))
        .await
        .unwrap();
    let token = root.create_token(&[policy], "10m").await.unwrap();
    SeedVault::new(root.with_token(token), mount)
}

/// Makes the seed mount and a token with the wallet policy only; writes the token to `file`.
pub async fn wallet_openbao_token(mount: &str, file: &Path) {
    let (addr, root_token) = (required_env("VAULT_ADDR"), required_env("VAULT_TOKEN"));
    wallet_openbao_token_on((&addr, &root_token), mount, file).await;
}

/// [`wallet_openbao_token`] on the OpenBao at `addr` with its `root_token`.
pub async fn wallet_openbao_token_on((addr, root_token): (&str, &str), mount: &str, file: &Path) {
    let root = OpenBao::new(addr, BaoToken::new(root_token)).unwrap();
    root.ensure_engine(mount, peregrine_secrets::sys::Engine::KvV2)
        .await
        .unwrap();
    root.put_policy(mount, &peregrine_wallet::keys::wallet_policy(mount))
        .await
        .unwrap();
    // The token's text is needed for the daemon's file: asked over HTTP (the client keeps it
    // private).
    let created: Value = reqwest::Client::new()
        .post(format!("{addr}/v1/auth/token/create"))
        .header("X-Vault-Token", root_token)
        .json(&json!({"policies": [mount], "ttl": "1h"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["auth"]["client_token"].as_str().unwrap();
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, token).unwrap();
}

/// An OpenBao dev server of the test's own (in memory) on a free port, killed when dropped.
pub struct OwnBao {
    child: Child,
    _home: tempfile::TempDir,
    pub root: OpenBao,
}

impl OwnBao {
    pub async fn start() -> OwnBao {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = tempfile::tempdir().unwrap();
        let child = Command::new(required_env("BAO_BIN"))
            .args([
                "server",
                "-dev",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .arg("-dev-root-token-id=wallet-private-root")
            .env("HOME", home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let root = OpenBao::new(
            &format!("http://127.0.0.1:{port}"),
            BaoToken::new("wallet-private-root"),
        )
        .unwrap();
        let bao = OwnBao {
            child,
            _home: home,
            root,
        };
        for _ in 0..300 {
            if matches!(bao.root.health().await, Ok(health) if !health.sealed) {
                return bao;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the private OpenBao did not start");
    }
}

impl Drop for OwnBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh MySQL database of this test's own, named after DATABASE_URL's plus `suffix`.
pub async fn mysql_url(suffix: &str) -> String {
    let base = required_env("DATABASE_URL");
    let (server, database) = base.rsplit_once('/').unwrap();
    let database = database.split('?').next().unwrap();
    let name = format!("{database}_{suffix}");
    let mut admin = sqlx::MySqlConnection::connect(&format!("{server}/"))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL={base}: {e}"));
    sqlx::raw_sql(&format!(
        "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    format!("{server}/{name}")
}

/// An anvil of the test's own on a free port, killed when dropped.
pub struct OwnAnvil {
    child: Child,
    pub url: String,
}

impl OwnAnvil {
    pub async fn start() -> OwnAnvil {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        OwnAnvil::start_on(port, None).await
    }

    /// On `port`, keeping its chain in `state` (loaded at start, written at a clean stop).
    pub async fn start_on(port: u16, state: Option<&Path>) -> OwnAnvil {
        let mut command = Command::new(required_env("ANVIL_BIN"));
        if let Some(state) = state {
            command.arg("--state").arg(state);
        }
        let child = command
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Owned before the wait, so a failed start still kills and reaps it (Drop).
        let anvil = OwnAnvil {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let rpc = EthRpc::new(&anvil.url).unwrap();
        for _ in 0..200 {
            if rpc
                .call::<String>("eth_blockNumber", json!([]))
                .await
                .is_ok()
            {
                return anvil;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("anvil on port {port} did not answer");
    }
}

impl OwnAnvil {
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Stops it with SIGTERM (so it writes its state) and waits for it to exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }
}

impl Drop for OwnAnvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// anvil's unlocked dev accounts.
pub async fn accounts(rpc: &EthRpc) -> Vec<String> {
    rpc.call("eth_accounts", json!([])).await.unwrap()
}

/// Waits for the receipt of `hash` and checks that the transaction succeeded.
pub async fn mined(rpc: &EthRpc, hash: &str) -> Value {
    for _ in 0..100 {
        let receipt: Option<Value> = rpc
            .call("eth_getTransactionReceipt", json!([hash]))
            .await
            .unwrap();
        if let Some(receipt) = receipt {
            assert_eq!(receipt["status"], "0x1", "{receipt}");
            return receipt;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("transaction {hash} was not mined");
}

/// Sends a transaction from an unlocked account and waits for its receipt; its hash.
pub async fn send(rpc: &EthRpc, tx: Value) -> String {
    let hash: String = rpc.call("eth_sendTransaction", json!([tx])).await.unwrap();
    mined(rpc, &hash).await;
    hash
}

/// Sends `wei` of ether from `from` to `to`.
pub async fn pay(rpc: &EthRpc, from: &str, to: &Address, wei: u128) -> String {
    send(
        rpc,
        json!({ "from": from, "to": to.as_str(), "value": format!("0x{wei:x}") }),
    )
    .await
}

/// Switches anvil's mining on every transaction on or off (blocks then come from [`mine`]).
pub async fn automine(rpc: &EthRpc, on: bool) {
    let _: Value = rpc.call("evm_setAutomine", json!([on])).await.unwrap();
}

/// Transactions `address` sent that the chain mined.
pub async fn mined_count(rpc: &EthRpc, address: &Address) -> u64 {
    let count: String = rpc
        .call(
            "eth_getTransactionCount",
            json!([address.as_str(), "latest"]),
        )
        .await
        .unwrap();
    u64::from_str_radix(count.trim_start_matches("0x"), 16).unwrap()
}

/// Mines `blocks` empty blocks.
pub async fn mine(rpc: &EthRpc, blocks: u64) {
    let _: Value = rpc
        .call("anvil_mine", json!([format!("0x{blocks:x}")]))
        .await
        .unwrap();
}

/// An engine with currencies 0..`currencies` registered.
pub async fn engine(currencies: u16) -> Arc<EngineHandle> {
    let shard = Shard::start(
        Engine::new(EngineConfig::small()).unwrap(),
        &ShardConfig::default(),
    )
    .unwrap();
    let engine = EngineHandle::start(shard).unwrap();
    for id in 0..currencies {
        let command = CommandKind::CurrencyAdd {
            currency: CurrencyId(id),
        };
        let ticket = engine.submit(Request::new(Actor::System, command)).unwrap();
        let executed = tokio::time::timeout(Duration::from_secs(10), ticket)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(executed.rejected(), None);
    }
    engine
}

/// The test token's creation bytecode, compiled from `tests/TestToken.sol` with solcjs.
pub fn token_bytecode() -> String {
    let solcjs = required_env("SOLCJS_BIN");
    let out = tempfile::tempdir().unwrap();
    // From the workspace root: the appliance's tests (`peregrine/tests`) share this module.
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../wallet-daemons/tests/TestToken.sol");
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(&source, work.path().join("TestToken.sol")).unwrap();
    let status = Command::new("node")
        .arg(&solcjs)
        .args(["--bin", "--optimize", "-o"])
        .arg(out.path())
        .arg("TestToken.sol")
        .current_dir(work.path())
        .status()
        .unwrap();
    assert!(status.success(), "solcjs failed");
    let bin = std::fs::read_dir(out.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.extension().is_some_and(|ext| ext == "bin")
                && path.to_string_lossy().ends_with("TestToken.bin")
        })
        .expect("TestToken.bin");
    std::fs::read_to_string(bin).unwrap().trim().to_owned()
}

/// Deploys the test token from `from` (who receives the whole supply); its address.
pub async fn deploy_token(rpc: &EthRpc, from: &str, supply: u128) -> Address {
    let data = format!("0x{}{supply:064x}", token_bytecode());
    let hash: String = rpc
        .call(
            "eth_sendTransaction",
            json!([{ "from": from, "data": data, "gas": "0x2dc6c0" }]),
        )
        .await
        .unwrap();
    let receipt = mined(rpc, &hash).await;
    Address::parse_eth(receipt["contractAddress"].as_str().unwrap()).unwrap()
}

/// Transfers `amount` of `token` from `from` to `to` (ERC-20 `transfer`).
pub async fn token_transfer(rpc: &EthRpc, token: &Address, from: &str, to: &Address, amount: u128) {
    let recipient = to.as_str().trim_start_matches("0x");
    let data = format!("0xa9059cbb{recipient:0>64}{amount:064x}");
    send(
        rpc,
        json!({ "from": from, "to": token.as_str(), "data": data }),
    )
    .await;
}

/// The registry's metrics as Prometheus text.
pub fn metrics_text(registry: &prometheus::Registry) -> String {
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap()
}
