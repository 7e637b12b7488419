//! Chain deposits and withdrawals end to end on real processes: `peregrine up` and `peregrine
//! wallets run` (the real binaries), a private anvil, the suite's OpenBao (a mount of the test's
//! own) and MariaDB (a database of the test's own), the test token compiled with solcjs. A user
//! asks for their deposit addresses on the REST bridge, pays ether and tokens to them, and sees
//! the deposits in `account/deposits` and the credit in their balance; the daemon killed again
//! and again while deposits are pending credits each exactly once; the node stopped and
//! restarted: the daemon shows it on readiness, backs off and credits what was paid without
//! loss. A user of identity with 2FA and the KYC level withdraws ether to an anvil address
//! through a beneficiary, the policy and operators' approvals; the daemon holds, signs,
//! broadcasts and settles it. The daemon SIGKILLed with a sweep and withdrawals sent and not
//! mined, and with a hold in flight: each is one transaction on the chain, the same bytes, the
//! ledger right. OpenBao (a private one) stopped and sealed: withdrawals wait held, deposits go
//! on, readiness says the signer is degraded; back: the withdrawal goes, once. Ranger's private
//! `deposit` and `withdraw` streams on a real WebSocket client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::bao_support;
use crate::support;
use crate::users;
use crate::wallet_support;

use std::process::Child;

use bao_support::FileBao;
use std::time::{Duration, Instant};

use peregrine_hotpath::{AccountId, Amount, CurrencyId};
use peregrine_wallet::chain::eth::EthRpc;
use peregrine_wallet::chain::{Address, Chain};
use peregrine_wallet::store::WalletStore;
use peregrine_wallet::transfers::{TransferKind, TransferState};
use peregrine_wallet::withdrawals::{NewWithdrawal, WithdrawalState};
use serde_json::{Value, json};
use support::{FreshDatabase, PROCESS_TIMEOUT, Up, http_client, now_ms, spawn, write_config};
use wallet_support::{
    OwnAnvil, accounts, automine, deploy_token, mine, mined_count, pay, required_env,
    token_transfer, wallet_openbao_token, wallet_openbao_token_on,
};

const KEY: &str = "wallet-user-key";
const SECRET: &str = "wallet-user-secret-of-32-bytes-0";
const ACCOUNT: u32 = 5;
const GWEI: u128 = 1_000_000_000;
const TOKEN_UNIT: u128 = 1_000_000_000_000_000_000;
/// How long an in-flight credit may take to land once the appliance runs again.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(10);
/// Bound on waiting for a deposit's credit or an address.
const CREDIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A mount and policy of this run's own in the suite's OpenBao.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// An appliance, its wallet daemon's configuration, a chain with the test token.
struct Stack {
    dir: tempfile::TempDir,
    up: Up,
    rpc: EthRpc,
    payer: String,
    token: Address,
    database: FreshDatabase,
}

/// The `[wallets]` section: ether with `eth_confirmations` (and `eth_withdraw`, its
/// withdrawal policy's table or nothing), the token as `usd` with 2.
fn wallets_section(
    (anvil, bao): (&str, &str),
    store: &str,
    mount: &str,
    token: &Address,
    control_url: &str,
    (eth_confirmations, eth_withdraw): (u32, &str),
) -> String {
    format!(
        "[wallets]\nenabled = true\nlisten = \"127.0.0.1:0\"\nrpc_url = \"{anvil}\"\n\
         store_url = \"{store}\"\nopenbao_addr = \"{bao}\"\nseed_mount = \"{mount}\"\n\
         control_url = \"{control_url}\"\ninterval_ms = 100\nbackoff_ms_max = 800\n\
         beneficiary_activation_delay_ms = 0\n\n\
         [[wallets.currencies]]\ncode = \"eth\"\ndecimals = 18\nconfirmations = {eth_confirmations}\n\n\
         {eth_withdraw}\
         [[wallets.currencies]]\ncode = \"usd\"\ncontract = \"{token}\"\ndecimals = 18\n\
         confirmations = 2\n\n[[rest.keys]]\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\n\
         account = {ACCOUNT}\n\n",
    )
}

impl Stack {
    async fn start(anvil: &OwnAnvil, name: &str, eth_confirmations: u32) -> Stack {
        Stack::start_with(anvil, name, (eth_confirmations, ""), None, None).await
    }

    /// A stack whose ether has `eth_withdraw` (its withdrawal policy's table) and, with
    /// `withdraw_level_min`, identity on the real OpenBao and SMTP; the seeds in `bao` (a
    /// private OpenBao) if given, else in the suite's.
    async fn start_with(
        anvil: &OwnAnvil,
        name: &str,
        eth: (u32, &str),
        withdraw_level_min: Option<i64>,
        bao: Option<&FileBao>,
    ) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let rpc = EthRpc::new(&anvil.url).unwrap();
        let payer = accounts(&rpc).await[1].clone();
        let token = deploy_token(&rpc, &payer, 1_000_000 * TOKEN_UNIT).await;
        let database = FreshDatabase::new(name);
        let mount = unique("wallets-e2e");
        let token_file = dir.path().join("data/wallets-openbao.token");
        let bao_addr = match bao {
            Some(bao) => {
                let root = (bao.addr(), bao.root_token.clone());
                wallet_openbao_token_on((&root.0, &root.1), &mount, &token_file).await;
                bao.addr()
            }
            None => {
                wallet_openbao_token(&mount, &token_file).await;
                required_env("VAULT_ADDR")
            }
        };
        let section = |control: &str| {
            let urls = (anvil.url.as_str(), bao_addr.as_str());
            wallets_section(urls, &database.url, &mount, &token, control, eth)
        };
        let auth = withdraw_level_min
            .map_or_else(String::new, |level| users::auth_section(dir.path(), level));
        write_config(dir.path(), &[], &format!("{auth}{}", section("")));
        let up = Up::start(dir.path());
        // The daemon's own file: the same data directory, the appliance's bound address.
        let text = std::fs::read_to_string(dir.path().join("peregrine.toml"))
            .unwrap()
            .replace(&section(""), &section(&up.http));
        std::fs::write(dir.path().join("wallets.toml"), text).unwrap();
        Stack {
            dir,
            up,
            rpc,
            payer,
            token,
            database,
        }
    }

    /// Starts `peregrine wallets run`; the child and its health URL.
    fn daemon(&self) -> (Child, String) {
        let args = [
            "wallets",
            "run",
            "--config",
            "wallets.toml",
            "--log-format",
            "json",
        ];
        let (mut child, lines) = spawn(self.dir.path(), &args);
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(remaining) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("wallets  ") {
                        let url = rest.split_whitespace().next().unwrap().to_owned();
                        return (child, url);
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let stderr = std::fs::read_to_string(self.dir.path().join("stderr.log"))
                        .unwrap_or_default();
                    panic!("no summary from peregrine wallets run ({e}); stderr:\n{stderr}");
                }
            }
        }
    }

    /// A signed GET on the REST bridge: status and body.
    async fn get(&self, path: &str) -> (u16, Value) {
        let url = format!("{}/api/v2/peatio/{path}", self.up.rest);
        let client = http_client();
        let response = support::signed_rest(
            &client,
            reqwest::Method::GET,
            &url,
            (KEY, SECRET),
            now_ms(),
            None,
        )
        .send()
        .await
        .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// The deposit address of `currency`, asked until the daemon derived it.
    async fn address(&self, currency: &str) -> Address {
        let deadline = Instant::now() + CREDIT_TIMEOUT;
        loop {
            let (status, body) = self
                .get(&format!("account/deposit_address/{currency}"))
                .await;
            assert_eq!(status, 200, "{body}");
            if body["state"] == "active" {
                return Address::parse_eth(body["address"].as_str().unwrap()).unwrap();
            }
            assert_eq!(body["state"], "pending", "{body}");
            assert!(Instant::now() < deadline, "no address derived: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The account's available balance of `currency` (decimal string).
    async fn balance(&self, currency: &str) -> String {
        let (status, body) = self.get(&format!("account/balances/{currency}")).await;
        assert_eq!(status, 200, "{body}");
        body["balance"].as_str().unwrap().to_owned()
    }

    /// Waits until `currency`'s balance is `want`, mining a block now and then so deposits
    /// reach their confirmations.
    async fn credited(&self, currency: &str, want: &str) {
        let deadline = Instant::now() + CREDIT_TIMEOUT;
        loop {
            let balance = self.balance(currency).await;
            if balance == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{currency} balance {balance}, want {want}; deposits: {}",
                self.get("account/deposits").await.1
            );
            mine(&self.rpc, 1).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `GET url` without credentials: status and text.
async fn plain_get(url: &str) -> (u16, String) {
    match http_client().get(url).send().await {
        Ok(response) => (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        ),
        Err(error) => (0, error.to_string()),
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to `child`.
fn signal(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ether_and_token_deposits_are_credited_and_listed_on_a_running_appliance() {
    let anvil = OwnAnvil::start().await;
    let stack = Stack::start(&anvil, "wallet_e2e", 3).await;
    // Before the daemon runs the address is pending: the appliance holds no seed.
    let (status, body) = stack.get("account/deposit_address/eth").await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("pending")),
        "{body}"
    );
    let (status, body) = stack.get("account/deposit_address/btc").await;
    assert_eq!(
        (status, body["errors"][0].as_str()),
        (422, Some("account.deposit_address.unsupported"))
    );
    let (daemon, health) = stack.daemon();
    let eth_address = stack.address("eth").await;
    let usd_address = stack.address("usd").await;
    assert_ne!(eth_address, usd_address, "one seed per currency");

    pay(&stack.rpc, &stack.payer, &eth_address, 1_500_000_000 * GWEI).await;
    token_transfer(
        &stack.rpc,
        &stack.token,
        &stack.payer,
        &usd_address,
        5 * TOKEN_UNIT / 2,
    )
    .await;
    // Seen, short of its confirmations: listed, not credited.
    let deadline = Instant::now() + CREDIT_TIMEOUT;
    let seen = loop {
        let (_, list) = stack.get("account/deposits?currency=eth").await;
        if list.as_array().is_some_and(|l| !l.is_empty()) {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "the ether deposit was never listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(seen[0]["state"], "seen", "{seen}");
    assert_eq!(stack.balance("eth").await, "0");

    stack.credited("eth", "1.5").await;
    stack.credited("usd", "2.5").await;
    let (status, list) = stack.get("account/deposits").await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|d| d["state"] == "credited"), "{list:?}");
    let usd = list.iter().find(|d| d["currency"] == "usd").unwrap();
    assert_eq!(usd["amount"], "2.5");
    assert!(
        usd["txout"].as_i64().unwrap() >= 0,
        "a token log index: {usd}"
    );

    let (status, ready) = plain_get(&format!("{health}/health/ready")).await;
    assert_eq!(status, 200, "{ready}");
    let (_, metrics) = plain_get(&format!("{health}/metrics")).await;
    for name in [
        "peregrine_wallet_head_lag_blocks{chain=\"eth\"}",
        "peregrine_wallet_head_lag_seconds{chain=\"eth\"}",
        "peregrine_wallet_deposits{chain=\"eth\",state=\"credited\"} 2",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    support::dashboard::assert_panels_exported("wallets", &metrics);
    kill(daemon);
    stack.up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_again_and_again_credits_each_deposit_exactly_once() {
    const ROUNDS: u64 = 6;
    let anvil = OwnAnvil::start().await;
    let stack = Stack::start(&anvil, "wallet_kill", 2).await;
    let (daemon, _) = stack.daemon();
    let address = stack.address("eth").await;
    let mut daemon = Some(daemon);
    let mut paid_gwei = 0u128;
    for round in 0..ROUNDS {
        let gwei = 1_000_000 * u128::from(round + 1);
        pay(&stack.rpc, &stack.payer, &address, gwei * GWEI).await;
        paid_gwei += gwei;
        mine(&stack.rpc, 1).await;
        // Killed at a different moment each round: before, while and after it credits.
        tokio::time::sleep(Duration::from_millis(60 * round)).await;
        kill(daemon.take().unwrap());
        mine(&stack.rpc, 1).await;
        daemon = Some(stack.daemon().0);
    }
    let want = format!(
        "{}",
        rust_decimal::Decimal::new(paid_gwei as i64, 9).normalize()
    );
    stack.credited("eth", &want).await;
    // Settled: more steps credit nothing more.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(stack.balance("eth").await, want);
    let (_, list) = stack.get("account/deposits").await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), ROUNDS as usize, "{list:?}");
    assert!(list.iter().all(|d| d["state"] == "credited"), "{list:?}");
    kill(daemon.take().unwrap());
    stack.up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_node_stopped_the_daemon_is_not_ready_and_recovers_without_loss() {
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("anvil.json");
    let first = OwnAnvil::start().await;
    let port = first.port();
    first.stop();
    let anvil = OwnAnvil::start_on(port, Some(&state)).await;
    let stack = Stack::start(&anvil, "wallet_node", 3).await;
    let (daemon, health) = stack.daemon();
    let address = stack.address("eth").await;
    pay(&stack.rpc, &stack.payer, &address, 2_000_000 * GWEI).await;
    stack.credited("eth", "0.002").await;

    // Paid, short of its confirmations, when the node goes away.
    pay(&stack.rpc, &stack.payer, &address, 3_000_000 * GWEI).await;
    anvil.stop();
    let deadline = Instant::now() + CREDIT_TIMEOUT;
    let reason = loop {
        let (status, text) = plain_get(&format!("{health}/health/ready")).await;
        if status == 503 && text.contains("chain_unavailable") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "readiness stayed {status}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(reason.contains("not ready chain"), "{reason}");
    assert_eq!(stack.balance("eth").await, "0.002");

    let anvil = OwnAnvil::start_on(port, Some(&state)).await;
    stack.credited("eth", "0.005").await;
    let deadline = Instant::now() + CREDIT_TIMEOUT;
    while plain_get(&format!("{health}/health/ready")).await.0 != 200 {
        assert!(Instant::now() < deadline, "readiness did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, metrics) = plain_get(&format!("{health}/metrics")).await;
    assert!(
        metrics.contains("peregrine_wallet_errors_total{chain=\"eth\",kind=\"chain_unavailable\"}"),
        "{metrics}"
    );
    kill(daemon);
    stack.up.stop();
    drop(anvil);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposit_ids_from_2_62_belong_to_the_wallet_token_alone() {
    const WALLET_IDS_FROM: u64 = 1 << 62;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[], "");
    let up = Up::start(dir.path());
    let deposit =
        |id: u64| json!({"account": 9, "currency": "eth", "amount": "1", "deposit_id": id});
    // An operator's id in the wallets' range: refused with its own code, nothing credited.
    let (status, body) = up.control("deposits", deposit(WALLET_IDS_FROM)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("control.deposit.wallet_id")),
        "{body}"
    );
    // Below it, from 2^61, the approved adjustments' keys: refused too.
    let (status, body) = up.control("deposits", deposit(WALLET_IDS_FROM - 1)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("control.deposit.reserved_id")),
        "{body}"
    );
    let (status, body) = up.control("deposits", deposit((1 << 61) - 1)).await;
    assert_eq!(status, 200, "{body}");

    let wallet_token = std::fs::read_to_string(dir.path().join("data/wallet.token")).unwrap();
    let as_wallet = |path: &str, body: Value| {
        http_client()
            .post(format!("{}/control/v1/{path}", up.http))
            .bearer_auth(wallet_token.trim())
            .json(&body)
    };
    let answer = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, body) = answer(as_wallet("deposits", deposit(WALLET_IDS_FROM + 7))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = answer(as_wallet("deposits", deposit(WALLET_IDS_FROM + 7))).await;
    assert_eq!(
        (status, body["error"]["reason"].as_str()),
        (422, Some("duplicate_deposit")),
        "{body}"
    );
    // The wallet token credits chain deposits only: not an operator's id, not another route.
    let (status, body) = answer(as_wallet("deposits", deposit(12))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("control.auth.forbidden"))
    );
    let (status, body) = answer(as_wallet("accounts/9/kill-switch", json!({"on": true}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("control.auth.forbidden"))
    );
    // A withdrawal's funds move on the wallet token alone: no operator holds or settles one.
    let hold = json!({"account": 9, "currency": "eth", "amount": "0.5"});
    let (status, body) = up.control("withdrawals/1/hold", hold.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("control.auth.forbidden")),
        "{body}"
    );
    let (status, body) = up.control("withdrawals/1/settle", json!({})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = answer(as_wallet("withdrawals/1/hold", hold.clone())).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = answer(as_wallet("withdrawals/1/hold", hold)).await;
    assert_eq!(
        (status, body["error"]["reason"].as_str()),
        (422, Some("duplicate_withdrawal")),
        "{body}"
    );
    let (status, body) = answer(as_wallet("withdrawals/1/release", json!({}))).await;
    assert_eq!(status, 200, "{body}");
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credit_in_flight_when_the_daemon_dies_is_applied_once() {
    let anvil = OwnAnvil::start().await;
    let stack = Stack::start(&anvil, "wallet_flight", 1).await;
    let (daemon, _) = stack.daemon();
    let address = stack.address("eth").await;
    let store = sqlx::MySqlPool::connect(&stack.database.url).await.unwrap();
    let state = || async {
        sqlx::query_scalar::<_, String>("SELECT state FROM wallet_deposits")
            .fetch_optional(&store)
            .await
            .unwrap()
    };

    // The appliance frozen: the daemon confirms the deposit and its credit request waits in
    // the appliance's socket.
    signal(&stack.up.child, "-STOP");
    pay(&stack.rpc, &stack.payer, &address, 4_000_000 * GWEI).await;
    let deadline = Instant::now() + CREDIT_TIMEOUT;
    while state().await.as_deref() != Some("confirmed") {
        assert!(
            Instant::now() < deadline,
            "never confirmed: {:?}",
            state().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The daemon dies with its request in flight; the appliance then reads and applies it —
    // unless the daemon died before its request left (a loaded machine), when the restart's
    // retry below is the first: either way exactly one credit.
    kill(daemon);
    signal(&stack.up.child, "-CONT");
    let deadline = Instant::now() + IN_FLIGHT_WAIT;
    while stack.balance("eth").await != "0.004" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if stack.balance("eth").await == "0.004" {
        assert_eq!(
            state().await.as_deref(),
            Some("confirmed"),
            "credited, not recorded as such"
        );
    } else {
        eprintln!("the request was not in flight when the daemon died: the retry credits it");
    }

    // The restarted daemon submits it again under the same key: answered duplicate, recorded
    // credited, and the balance holds one credit.
    let (daemon, _) = stack.daemon();
    let deadline = Instant::now() + CREDIT_TIMEOUT;
    while state().await.as_deref() != Some("credited") {
        assert!(
            Instant::now() < deadline,
            "never credited: {:?}",
            state().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stack.balance("eth").await, "0.004");
    kill(daemon);
    store.close().await;
    stack.up.stop();
}

#[test]
fn wallets_run_refuses_a_configuration_without_wallets_or_with_an_unknown_currency() {
    let run = |extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), &[], extra);
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
            .env_clear()
            .current_dir(dir.path())
            .args(["wallets", "run"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), stderr)
    };
    let (code, stderr) = run("");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("[wallets] is not enabled"), "{stderr}");
    let (code, stderr) = run(
        "[wallets]\nenabled = true\n\n[[wallets.currencies]]\ncode = \"doge\"\ndecimals = 8\n\
         confirmations = 6\n",
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("wallets.currencies.0.code") && stderr.contains("`doge` is not in"),
        "{stderr}"
    );
}

/// Ether's withdrawal policy in the whole-path test: 0.5 a day, 1 a month, above 0.2 two
/// operators' approvals.
const ETH_WITHDRAW: &str = "[wallets.currencies.withdraw]\nlimit_24h = \"0.5\"\n\
     limit_30d = \"1\"\napproval_above = \"0.2\"\napprovals = 2\n\n";
const WITHDRAWS: &str = "/api/v2/peatio/account/withdraws";
const BENEFICIARIES: &str = "/api/v2/peatio/account/beneficiaries";
/// Bound on a withdrawal reaching `settled`.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Waits until the current TOTP period is over (the next one's code is then fresh).
async fn next_totp_period() {
    let now_s = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let period = now_s() / 30;
    while now_s() / 30 == period {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Stack {
    /// Waits until the user's withdrawal `id` is `settled`, mining a block now and then.
    async fn settled(&self, key: (&str, &str), id: u64) -> Value {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let (status, list) = users::signed(&self.up.rest, key, "GET", WITHDRAWS, None).await;
            assert_eq!(status, 200, "{list}");
            let row = list
                .as_array()
                .unwrap()
                .iter()
                .find(|w| w["id"] == id)
                .cloned()
                .unwrap();
            if row["state"] == "settled" {
                return row;
            }
            assert!(Instant::now() < deadline, "withdrawal {id} stuck: {row}");
            mine(&self.rpc, 1).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The user's `eth` balance and locked amount over REST with `key`.
async fn eth_balance(rest: &str, key: (&str, &str)) -> (String, String) {
    let path = "/api/v2/peatio/account/balances/eth";
    let (status, body) = users::signed(rest, key, "GET", path, None).await;
    assert_eq!(status, 200, "{body}");
    (
        body["balance"].as_str().unwrap().to_owned(),
        body["locked"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_2fa_and_kyc_withdraws_ether_to_an_anvil_address_exactly_once() {
    let anvil = OwnAnvil::start().await;
    let stack =
        Stack::start_with(&anvil, "wallet_withdraw", (1, ETH_WITHDRAW), Some(2), None).await;
    let rest = stack.up.rest.clone();
    let (daemon, health) = stack.daemon();
    let email = format!("{}@example.com", users::unique("withdrawer"));
    let (session, account, uid) = users::new_verified_user(&rest, &email).await;
    users::early_in_a_totp_period().await;
    let url = users::enable_2fa(&session).await; // the current period's code
    let (kid, secret) = users::create_hmac_key(&session, &url, &["read", "withdraw"], 1).await;
    let key = (kid.as_str(), secret.as_str());
    let (trade_kid, trade_secret) =
        users::create_hmac_key(&session, &url, &["read", "trade"], -1).await;
    stack.up.deposit(account, "eth", "1", 1).await;
    // The hot wallet the daemon recorded, funded from an anvil account.
    let store = peregrine_wallet::store::WalletStore::open(&stack.database.url)
        .await
        .unwrap();
    let deadline = Instant::now() + CREDIT_TIMEOUT;
    let hot = loop {
        if let Some((hot, _)) = store.hot_wallet("eth", "eth").await.unwrap() {
            break hot;
        }
        assert!(Instant::now() < deadline, "no hot wallet recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    pay(&stack.rpc, &stack.payer, &hot, 2_000_000_000 * GWEI).await;
    let payee = Address::parse_eth(&accounts(&stack.rpc).await[9]).unwrap();
    let payee_before = stack.rpc.balance(&payee).await.unwrap();

    // Refusals that change nothing: a key without `withdraw`, a level below 2.
    let trade_key = (trade_kid.as_str(), trade_secret.as_str());
    let ask = |beneficiary_id: u64, amount: &str, otp: &str| {
        json!({"currency": "eth", "amount": amount, "beneficiary_id": beneficiary_id,
            "otp": otp})
    };
    // Both keys reach the bridge's cache within a poll of identity's key feed.
    for k in [key, trade_key] {
        let deadline = Instant::now() + Duration::from_secs(5);
        let path = "/api/v2/peatio/account/balances";
        while users::signed(&rest, k, "GET", path, None).await.0 != 200 {
            assert!(Instant::now() < deadline, "the new key never worked");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let early = ask(1, "0.1", "000000");
    let (status, body) = users::signed(&rest, trade_key, "POST", WITHDRAWS, Some(&early)).await;
    assert_eq!(
        (status, body["errors"][0].as_str()),
        (403, Some("authz.scope_denied"))
    );
    let (status, body) = users::signed(&rest, key, "POST", WITHDRAWS, Some(&early)).await;
    assert_eq!(
        (status, body["errors"][0].as_str()),
        (403, Some("identity.level_too_low")),
        "{body}"
    );
    let (ops, first_operator) = users::operator(stack.dir.path(), &rest, "compliance").await;
    let phone = json!({ "uid": uid, "key": "phone", "value": "verified" });
    let (status, body) = ops.post("/admin/users/labels", &phone).await;
    assert_eq!((status, &body["level"]), (201, &json!(2)), "{body}");

    // A beneficiary: the address in its EIP-55 case (no checksum: refused), active at once.
    let beneficiary = |address: String| json!({"currency": "eth", "name": "my wallet", "data": {"address": address}});
    let lower = beneficiary(payee.as_str().to_owned());
    let deadline = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let (status, body) = users::signed(&rest, key, "POST", BENEFICIARIES, Some(&lower)).await;
        if body["errors"][0] != "identity.level_too_low" {
            assert_eq!(status, 422, "{body}");
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the level never reached the gate: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        body["errors"][0], "withdraw.beneficiary_invalid_address",
        "{body}"
    );
    let checksummed = beneficiary(payee.eip55());
    let (status, body) = users::signed(&rest, key, "POST", BENEFICIARIES, Some(&checksummed)).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (201, Some("active")),
        "{body}"
    );
    let beneficiary_id = body["id"].as_u64().unwrap();
    let withdraw = |amount: &str, otp: &str| ask(beneficiary_id, amount, otp);

    // A wrong and a reused code.
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|code| (-1..=1).all(|p| users::totp(&url, p) != *code))
        .unwrap();
    let (status, body) = users::signed(
        &rest,
        key,
        "POST",
        WITHDRAWS,
        Some(&withdraw("0.1", &wrong)),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0].as_str()),
        (403, Some("identity.session.invalid_otp")),
        "{body}"
    );
    let reused = withdraw("0.1", &users::totp(&url, 0));
    let (status, body) = users::signed(&rest, key, "POST", WITHDRAWS, Some(&reused)).await;
    assert_eq!(
        (status, body["errors"][0].as_str()),
        (422, Some("identity.otp.already_used")),
        "{body}"
    );
    let (status, list) = users::signed(&rest, key, "GET", WITHDRAWS, None).await;
    assert_eq!(
        (status, list.as_array().map(Vec::len)),
        (200, Some(0)),
        "{list}"
    );

    // Under the threshold: approved, held, signed, broadcast, settled by the daemon.
    next_totp_period().await;
    let request = withdraw("0.1", &users::totp(&url, 1));
    let (status, body) = users::signed(&rest, key, "POST", WITHDRAWS, Some(&request)).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (201, Some("approved")),
        "{body}"
    );
    let settled = stack.settled(key, body["id"].as_u64().unwrap()).await;
    assert!(settled["blockchain_txid"].is_string(), "{settled}");
    assert_eq!(
        stack.rpc.balance(&payee).await.unwrap(),
        payee_before + 100_000_000 * GWEI
    );
    assert_eq!(
        eth_balance(&rest, key).await,
        ("0.9".to_owned(), "0".to_owned())
    );

    // Above the threshold: waits for two operators; the requester's approval is refused.
    next_totp_period().await;
    let request = withdraw("0.3", &users::totp(&url, 1));
    let (status, body) = users::signed(&rest, key, "POST", WITHDRAWS, Some(&request)).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (201, Some("awaiting_approval")),
        "{body}"
    );
    let large = body["id"].as_u64().unwrap();
    let now = i64::try_from(now_ms()).unwrap();
    let refused = store
        .approve_withdrawal(large, &uid, now)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "withdraw.self_approval");
    let state = store
        .approve_withdrawal(large, &first_operator, now)
        .await
        .unwrap();
    assert_eq!(state.name(), "awaiting_approval");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        eth_balance(&rest, key).await,
        ("0.9".to_owned(), "0".to_owned()),
        "nothing held before the approvals"
    );
    let (_, second_operator) = users::operator(stack.dir.path(), &rest, "compliance").await;
    let state = store
        .approve_withdrawal(large, &second_operator, now)
        .await
        .unwrap();
    assert_eq!(state.name(), "approved");
    stack.settled(key, large).await;
    assert_eq!(
        stack.rpc.balance(&payee).await.unwrap(),
        payee_before + 400_000_000 * GWEI
    );

    // Over the 24 h limit (0.4 used of 0.5): refused, typed, before the code is spent; nothing
    // recorded, nothing held.
    let request = withdraw("0.2", &users::totp(&url, 1));
    let (status, body) = users::signed(&rest, key, "POST", WITHDRAWS, Some(&request)).await;
    assert_eq!(
        (status, body["errors"][0].as_str()),
        (422, Some("withdraw.limit_24h_exceeded")),
        "{body}"
    );
    let (_, list) = users::signed(&rest, key, "GET", WITHDRAWS, None).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(
        eth_balance(&rest, key).await,
        ("0.6".to_owned(), "0".to_owned()),
        "debited exactly once per withdrawal"
    );

    let (_, metrics) = plain_get(&format!("{}/metrics", stack.up.http)).await;
    for name in [
        "peregrine_wallet_withdraw_refusals_total{reason=\"withdraw.limit_24h_exceeded\"} 1",
        "peregrine_wallet_withdraw_requests_total{state=\"awaiting_approval\"} 1",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let (_, metrics) = plain_get(&format!("{health}/metrics")).await;
    assert!(
        metrics.contains("peregrine_wallet_withdrawals{chain=\"eth\",state=\"settled\"} 2"),
        "{metrics}"
    );
    store.close().await;
    kill(daemon);
    stack.up.stop();
}

/// The stored state of withdrawal `id`.
async fn withdrawal_state(store: &WalletStore, id: u64) -> WithdrawalState {
    store.withdrawal(id).await.unwrap().unwrap().state
}

/// Every stored wallet transaction: (kind, state, txid).
async fn transfer_rows(store: &WalletStore) -> Vec<(TransferKind, TransferState, String)> {
    let rows = store.transfers("eth", 100).await.unwrap();
    rows.into_iter()
        .map(|row| (row.transfer.kind, row.state, row.signed.txid.to_string()))
        .collect()
}

/// Waits (bounded) until `done` holds, mining a block between looks when `mine_blocks`.
async fn until<F, Fut>(rpc: &EthRpc, what: &str, mine_blocks: bool, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while !done().await {
        assert!(Instant::now() < deadline, "never {what}");
        if mine_blocks {
            mine(rpc, 1).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_with_a_sweep_and_withdrawals_in_flight_sends_each_once() {
    const CONFIRMATIONS: u32 = 3;
    let anvil = OwnAnvil::start().await;
    let stack = Stack::start(&anvil, "wallet_sigkill", CONFIRMATIONS).await;
    let rpc = &stack.rpc;
    let (daemon, _) = stack.daemon();
    let address = stack.address("eth").await;
    let store = WalletStore::open(&stack.database.url).await.unwrap();
    let (hot, hot_path) = store.hot_wallet("eth", "eth").await.unwrap().unwrap();
    pay(rpc, &stack.payer, &hot, 1_000_000_000 * GWEI).await;
    let payee = Address::parse_eth(&accounts(rpc).await[8]).unwrap();
    let payee_before = rpc.balance(&payee).await.unwrap();

    // Mining by hand from here: what the daemon sends stays pending until a block is mined.
    automine(rpc, false).await;
    let _: String = rpc
        .call(
            "eth_sendTransaction",
            json!([{ "from": stack.payer, "to": address.as_str(),
                "value": format!("0x{:x}", 500_000_000 * GWEI) }]),
        )
        .await
        .unwrap();
    let credited = || async {
        let rows = store.account_deposits(ACCOUNT, 10).await.unwrap();
        rows.len() == 1 && rows[0].state == peregrine_wallet::store::DepositState::Credited
    };
    until(rpc, "credited", true, credited).await;
    // Credited, then swept: the sweep is signed, stored and sent, and stays unmined.
    until(rpc, "a sweep sent", false, || async {
        transfer_rows(&store).await.first().map(|t| (t.0, t.1))
            == Some((TransferKind::Sweep, TransferState::Broadcast))
    })
    .await;
    let withdrawal = |amount_gwei: u64| NewWithdrawal {
        currency: "eth".to_owned(),
        currency_id: CurrencyId(2),
        account: AccountId(ACCOUNT),
        amount_minor: Amount(amount_gwei),
        from: hot.clone(),
        path: hot_path.clone(),
        to: payee.clone(),
        amount_chain: u128::from(amount_gwei) * GWEI,
    };
    let first = store
        .insert_withdrawal("eth", &withdrawal(100_000_000))
        .await
        .unwrap();
    until(rpc, "the withdrawal sent", false, || async {
        withdrawal_state(&store, first).await == WithdrawalState::Broadcast
    })
    .await;
    let sent_before = store.withdrawal(first).await.unwrap().unwrap().signed;
    let sweep_before = store.transfers("eth", 10).await.unwrap();

    // Killed with both sent and unmined (no receipt recorded); a second withdrawal's hold in
    // flight in the frozen appliance's socket.
    signal(&stack.up.child, "-STOP");
    let second = store
        .insert_withdrawal("eth", &withdrawal(200_000_000))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(daemon);
    signal(&stack.up.child, "-CONT");
    let daemon = stack.daemon().0;
    until(rpc, "the second withdrawal sent", false, || async {
        withdrawal_state(&store, second).await == WithdrawalState::Broadcast
    })
    .await;
    // Mined, short of its confirmations: killed again before any receipt is recorded.
    mine(rpc, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        withdrawal_state(&store, first).await,
        WithdrawalState::Broadcast
    );
    kill(daemon);
    let daemon = stack.daemon().0;
    until(rpc, "everything settled", true, || async {
        withdrawal_state(&store, first).await == WithdrawalState::Settled
            && withdrawal_state(&store, second).await == WithdrawalState::Settled
            && transfer_rows(&store)
                .await
                .iter()
                .all(|t| t.1 == TransferState::Mined)
    })
    .await;

    // One transaction each: the sweep's and the first withdrawal's stored bytes, mined.
    let sweeps = store.transfers("eth", 10).await.unwrap();
    assert_eq!(sweeps.len(), 1, "{sweeps:?}");
    assert_eq!(sweeps[0].signed, sweep_before[0].signed, "the same bytes");
    assert_eq!(
        store.withdrawal(first).await.unwrap().unwrap().signed,
        sent_before,
        "the same nonce and bytes"
    );
    for txid in [
        &sweeps[0].signed.txid,
        &sent_before.as_ref().unwrap().1.txid,
    ] {
        assert!(rpc.receipt(txid).await.unwrap().unwrap().success);
    }
    assert_eq!(mined_count(rpc, &address).await, 1, "one sweep");
    assert_eq!(mined_count(rpc, &hot).await, 2, "one per withdrawal");
    assert_eq!(
        rpc.balance(&payee).await.unwrap(),
        payee_before + 300_000_000 * GWEI
    );
    // Credited once, debited once per withdrawal, nothing left locked.
    let (status, body) = stack.get("account/balances/eth").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["balance"], &body["locked"]),
        (&json!("0.2"), &json!("0"))
    );
    let (_, deposits) = stack.get("account/deposits").await;
    assert_eq!(deposits.as_array().unwrap().len(), 1, "{deposits}");
    store.close().await;
    kill(daemon);
    stack.up.stop();
}

/// The daemon's `/health/ready` line about `check` (e.g. `degraded signer: …`) once it
/// starts with `want`, with the status; bounded.
async fn ready_line(health: &str, check: &str, want: &str) -> (u16, String) {
    let deadline = Instant::now() + CREDIT_TIMEOUT;
    loop {
        let (status, text) = plain_get(&format!("{health}/health/ready")).await;
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(1).map(|c| c.trim_end_matches(':')) == Some(check))
            .unwrap_or_default()
            .to_owned();
        if line.starts_with(want) {
            return (status, line);
        }
        assert!(
            Instant::now() < deadline,
            "readiness never `{want}` for {check}: {status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A line of the daemon's metrics starting with `name` (its value), if exported.
async fn metric(health: &str, name: &str) -> Option<String> {
    let (_, text) = plain_get(&format!("{health}/metrics")).await;
    text.lines()
        .find(|l| l.starts_with(name))
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_openbao_out_withdrawals_wait_deposits_go_on_and_the_signer_is_degraded() {
    let anvil = OwnAnvil::start().await;
    let bao_home = tempfile::tempdir().unwrap();
    let mut bao = FileBao::start(bao_home.path()).await;
    let stack = Stack::start_with(&anvil, "wallet_bao_out", (1, ""), None, Some(&bao)).await;
    let rpc = &stack.rpc;
    let (daemon, health) = stack.daemon();
    let address = stack.address("eth").await;
    let store = WalletStore::open(&stack.database.url).await.unwrap();
    let (hot, hot_path) = store.hot_wallet("eth", "eth").await.unwrap().unwrap();
    pay(rpc, &stack.payer, &hot, 1_000_000_000 * GWEI).await;
    pay(rpc, &stack.payer, &address, 500_000_000 * GWEI).await;
    stack.credited("eth", "0.5").await;
    let up_metric = "peregrine_wallet_signer_up{chain=\"eth\"}";
    assert_eq!(ready_line(&health, "signer", "ok").await.0, 200);
    assert_eq!(metric(&health, up_metric).await.as_deref(), Some("1"));
    let payee = Address::parse_eth(&accounts(rpc).await[7]).unwrap();
    let payee_before = rpc.balance(&payee).await.unwrap();

    // OpenBao stopped: the signer is degraded (the daemon still serves), a withdrawal waits.
    bao.kill();
    let (status, line) = ready_line(&health, "signer", "degraded").await;
    assert_eq!(status, 200, "deposits go on: {line}");
    assert!(line.contains("withdrawals wait for the keys"), "{line}");
    assert_eq!(metric(&health, up_metric).await.as_deref(), Some("0"));
    let request = NewWithdrawal {
        currency: "eth".to_owned(),
        currency_id: CurrencyId(2),
        account: AccountId(ACCOUNT),
        amount_minor: Amount(100_000_000),
        from: hot.clone(),
        path: hot_path,
        to: payee.clone(),
        amount_chain: 100_000_000 * GWEI,
    };
    let id = store.insert_withdrawal("eth", &request).await.unwrap();
    // Deposits are still detected and credited meanwhile.
    pay(rpc, &stack.payer, &address, 2_000_000 * GWEI).await;
    stack.credited("eth", "0.402").await;
    let waiting = store.withdrawal(id).await.unwrap().unwrap();
    assert_eq!(
        (waiting.state, waiting.signed),
        (WithdrawalState::Held, None),
        "held, queued, nothing signed"
    );
    assert_eq!(rpc.nonce(&hot).await.unwrap(), 0, "nothing sent");
    let (_, body) = stack.get("account/balances/eth").await;
    assert_eq!(body["locked"], "0.1", "{body}");
    let errors = "peregrine_wallet_signer_errors_total{chain=\"eth\",kind=\"unavailable\"}";
    assert!(metric(&health, errors).await.is_some());

    // Started again, sealed: still waiting. Unsealed: the withdrawal goes, once.
    bao.spawn().await;
    let sealed = "degraded signer: withdrawals wait for the keys: OpenBao is sealed";
    ready_line(&health, "signer", sealed).await;
    bao.unseal().await;
    ready_line(&health, "signer", "ok").await;
    until(rpc, "settled", true, || async {
        withdrawal_state(&store, id).await == WithdrawalState::Settled
    })
    .await;
    assert_eq!(metric(&health, up_metric).await.as_deref(), Some("1"));
    assert_eq!(mined_count(rpc, &hot).await, 1, "one transaction");
    assert_eq!(
        rpc.balance(&payee).await.unwrap(),
        payee_before + 100_000_000 * GWEI
    );
    let (_, body) = stack.get("account/balances/eth").await;
    assert_eq!(
        (&body["balance"], &body["locked"]),
        (&json!("0.402"), &json!("0"))
    );
    store.close().await;
    kill(daemon);
    stack.up.stop();
}

/// The account's private Ranger socket on `rest`, opened with the REST key, subscribed by
/// `query` (e.g. `stream=deposit`).
async fn private_socket(
    rest: &str,
    query: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let path = format!("/api/v2/ranger/private?{query}");
    let nonce = now_ms() as u64;
    let signature = peregrine_gateway::rest::auth::sign_request(SECRET, nonce, "GET", &path, b"");
    let mut request = format!("{}{path}", rest.replacen("http://", "ws://", 1))
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("x-auth-apikey", KEY.parse().unwrap());
    headers.insert("x-auth-nonce", nonce.to_string().parse().unwrap());
    headers.insert("x-auth-signature", signature.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranger_private_deposit_and_withdraw_events_reach_the_accounts_socket_only() {
    let dir = tempfile::tempdir().unwrap();
    let key =
        format!("[[rest.keys]]\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\naccount = {ACCOUNT}\n\n");
    write_config(dir.path(), &[], &key);
    let up = Up::start(dir.path());
    let mut ws = private_socket(&up.rest, "stream=deposit&stream=withdraw").await;
    let subscribed = support::next_with(&mut ws, "success").await;
    assert_eq!(subscribed["streams"], json!(["deposit", "withdraw"]));
    let wallet_token = std::fs::read_to_string(dir.path().join("data/wallet.token")).unwrap();
    let as_wallet = |path: &str, body: Value| {
        let request = http_client()
            .post(format!("{}/control/v1/{path}", up.http))
            .bearer_auth(wallet_token.trim())
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{:?}", response.text().await);
        }
    };
    let fields = |event: &Value| {
        (
            event["id"].as_u64().unwrap(),
            event["currency"].as_str().unwrap().to_owned(),
            event["amount"].as_str().unwrap().to_owned(),
            event["state"].as_str().unwrap().to_owned(),
        )
    };

    // An operator's credit, another account's (never on this socket), the wallet's (its row).
    up.deposit(ACCOUNT, "eth", "1.5", 41).await;
    up.deposit(ACCOUNT + 1, "eth", "2", 42).await;
    let chain = json!({"account": ACCOUNT, "currency": "eth", "amount": "0.25",
        "deposit_id": (1u64 << 62) + 7});
    as_wallet("deposits", chain).await;
    let first = support::next_with(&mut ws, "deposit").await;
    assert_eq!(
        fields(&first),
        (41, "eth".into(), "1.5".into(), "credited".into())
    );
    assert_eq!(first["source"], "operator", "{first}");
    let second = support::next_with(&mut ws, "deposit").await;
    assert_eq!(
        fields(&second),
        (7, "eth".into(), "0.25".into(), "credited".into())
    );
    assert_eq!(second["source"], "chain", "{second}");

    // A withdrawal held then settled, another held then released.
    let hold = |amount: &str| json!({"account": ACCOUNT, "currency": "eth", "amount": amount});
    as_wallet("withdrawals/9/hold", hold("0.5")).await;
    as_wallet("withdrawals/9/settle", json!({})).await;
    as_wallet("withdrawals/10/hold", hold("0.25")).await;
    as_wallet("withdrawals/10/release", json!({})).await;
    let mut steps = Vec::new();
    for _ in 0..4 {
        steps.push(fields(&support::next_with(&mut ws, "withdraw").await));
    }
    assert_eq!(
        steps,
        [
            (9, "eth".into(), "0.5".into(), "held".into()),
            (9, "eth".into(), "0.5".into(), "settled".into()),
            (10, "eth".into(), "0.25".into(), "held".into()),
            (10, "eth".into(), "0.25".into(), "released".into()),
        ]
    );
    // The public socket has no such stream.
    let public = format!(
        "{}/api/v2/ranger/public?stream=deposit",
        up.rest.replacen("http://", "ws://", 1)
    );
    let refused = match tokio_tungstenite::connect_async(public).await {
        Err(_) => true,
        Ok((mut public, _)) => support::next_with(&mut public, "error")
            .await
            .to_string()
            .contains("private"),
    };
    assert!(refused);
    up.stop();
}
