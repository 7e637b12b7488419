//! Deposits on a real chain (anvil), real OpenBao and real MariaDB/SQLite, credited through a
//! real engine: confirmations, exactly-once credit, a reorganisation, an ERC-20 token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use peregrine_core::EngineHandle;
use peregrine_hotpath::Amount;
use peregrine_hotpath::{AccountId, CurrencyId};
use peregrine_wallet::addresses::DepositAddresses;
use peregrine_wallet::chain::eth::EthRpc;
use peregrine_wallet::chain::{Address, Asset, Chain, Watch};
use peregrine_wallet::deposits::{
    DepositWatcher, Pacing, WatchedCurrency, WatcherConfig, WatcherStatus,
};
use peregrine_wallet::keys::{COIN_TYPE_ETH, DerivationPath, SeedVault};
use peregrine_wallet::ledger::{Ledger, deposit_id};
use peregrine_wallet::metrics::WalletMetrics;
use peregrine_wallet::store::{DepositState, WalletStore};
use peregrine_wallet::withdrawals::{NewWithdrawal, Signer, WithdrawalState};
use serde_json::json;
use support::{OwnAnvil, accounts, mine, pay, required_env, unique_code as code};

const MOUNT: &str = "peregrine-wallets-test";
const ETH: CurrencyId = CurrencyId(0);
const TOKEN: CurrencyId = CurrencyId(1);
const GWEI: u128 = 1_000_000_000;

/// The wallet's vault, with its own token and policy.
async fn vault() -> SeedVault {
    support::wallet_vault(MOUNT, "peregrine-wallets-test").await
}

fn eth_currency(code: &str, confirmations: u32) -> WatchedCurrency {
    WatchedCurrency {
        code: code.to_owned(),
        id: ETH,
        asset: Asset::Native,
        chain_decimals: 18,
        precision: 9,
        confirmations,
    }
}

struct Wallet {
    rpc: EthRpc,
    store: WalletStore,
    addresses: DepositAddresses,
    engine: Arc<EngineHandle>,
    config: WatcherConfig,
}

impl Wallet {
    async fn new(url: &str, database_url: &str, currencies: Vec<WatchedCurrency>) -> Wallet {
        Wallet::with_vault(url, database_url, currencies, vault().await).await
    }

    async fn with_vault(
        url: &str,
        database_url: &str,
        currencies: Vec<WatchedCurrency>,
        vault: SeedVault,
    ) -> Wallet {
        let rpc = EthRpc::new(url).unwrap();
        let store = WalletStore::open(database_url).await.unwrap();
        for currency in &currencies {
            assert!(vault.ensure_seed(&currency.code).await.unwrap());
        }
        let start_block = rpc.head().await.unwrap() + 1;
        Wallet {
            addresses: DepositAddresses::new(vault.clone(), store.clone()),
            rpc,
            store,
            engine: support::engine(2).await,
            config: WatcherConfig {
                chain: "eth".to_owned(),
                start_block,
                currencies,
            },
        }
    }

    /// A watcher as a (re)started daemon makes it: fresh client, same store and engine.
    fn watcher(&self) -> DepositWatcher<EthRpc, Arc<EngineHandle>> {
        self.watcher_in(&prometheus::Registry::new())
    }

    fn watcher_in(
        &self,
        registry: &prometheus::Registry,
    ) -> DepositWatcher<EthRpc, Arc<EngineHandle>> {
        let metrics = WalletMetrics::new(registry).unwrap();
        let rpc = EthRpc::new(self.rpc.url()).unwrap();
        DepositWatcher::new(
            rpc,
            self.engine.clone(),
            self.store.clone(),
            self.config.clone(),
            metrics,
        )
        .unwrap()
    }

    async fn address(&self, index: usize, account: u32) -> Address {
        let code = &self.config.currencies[index].code;
        self.addresses
            .eth_address(code, COIN_TYPE_ETH, AccountId(account))
            .await
            .unwrap()
            .0
    }

    fn available(&self, account: u32, currency: CurrencyId) -> u64 {
        self.engine
            .read(|views| views.balance(AccountId(account), currency))
            .available
            .0
    }

    async fn states(&self, account: u32) -> Vec<DepositState> {
        let rows = self.store.account_deposits(account, 100).await.unwrap();
        rows.into_iter().map(|row| row.state).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ether_deposit_is_credited_once_after_its_confirmations() {
    let anvil = OwnAnvil::start().await;
    let database = support::mysql_url("wallet_ether").await;
    let wallet = Wallet::new(&anvil.url, &database, vec![eth_currency(&code("e"), 3)]).await;
    let address = wallet.address(0, 7).await;
    let payer = accounts(&wallet.rpc).await[1].clone();

    // 1.5 ether and one wei: the wei is below the engine's gwei and stays on the address.
    pay(&wallet.rpc, &payer, &address, 1_500_000_000 * GWEI + 1).await;
    let watcher = wallet.watcher();
    let report = watcher.step().await.unwrap();
    assert_eq!(report.blocks, 1, "{report:?}");
    assert_eq!(wallet.states(7).await, [DepositState::Seen]);
    mine(&wallet.rpc, 1).await;
    watcher.step().await.unwrap();
    assert_eq!(
        wallet.states(7).await,
        [DepositState::Seen],
        "2 of 3 confirmations"
    );
    assert_eq!(wallet.available(7, ETH), 0);

    mine(&wallet.rpc, 1).await;
    let report = watcher.step().await.unwrap();
    assert_eq!(report.credited, 1, "{report:?}");
    assert_eq!(wallet.states(7).await, [DepositState::Credited]);
    assert_eq!(wallet.available(7, ETH), 1_500_000_000);

    // More steps and a restarted watcher over the same store: never a second credit.
    mine(&wallet.rpc, 2).await;
    watcher.step().await.unwrap();
    let restarted = wallet.watcher();
    assert_eq!(restarted.step().await.unwrap().credited, 0);
    assert_eq!(wallet.available(7, ETH), 1_500_000_000);
    let row = &wallet.store.account_deposits(7, 10).await.unwrap()[0];
    assert_eq!(row.amount_chain, (1_500_000_000 * GWEI + 1).to_string());
    assert!(row.credited_seq.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_in_an_orphaned_block_is_never_credited() {
    let anvil = OwnAnvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("wallet.db").display());
    let wallet = Wallet::new(&anvil.url, &database, vec![eth_currency(&code("r"), 3)]).await;
    let address = wallet.address(0, 9).await;
    let senders = accounts(&wallet.rpc).await;
    let registry = prometheus::Registry::new();
    let watcher = wallet.watcher_in(&registry);

    let snapshot: String = wallet.rpc.call("evm_snapshot", json!([])).await.unwrap();
    pay(&wallet.rpc, &senders[1], &address, 2_000_000_000 * GWEI).await;
    watcher.step().await.unwrap();
    assert_eq!(wallet.states(9).await, [DepositState::Seen]);

    // The block holding the deposit leaves the chain: a longer chain without it replaces it
    // (another transaction in its place, so the replacement block's hash differs).
    let reverted: bool = wallet
        .rpc
        .call("evm_revert", json!([snapshot]))
        .await
        .unwrap();
    assert!(reverted);
    let other = Address::parse_eth(&senders[3]).unwrap();
    pay(&wallet.rpc, &senders[2], &other, GWEI).await;
    mine(&wallet.rpc, 5).await;
    let report = watcher.step().await.unwrap();
    assert_eq!(report.rewound, 1, "{report:?}");
    assert_eq!(wallet.states(9).await, [DepositState::Orphaned]);
    mine(&wallet.rpc, 5).await;
    watcher.step().await.unwrap();
    assert_eq!(wallet.states(9).await, [DepositState::Orphaned]);
    assert_eq!(wallet.available(9, ETH), 0);
    let text = support::metrics_text(&registry);
    assert!(
        text.contains("wallet_reorgs_total{chain=\"eth\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("wallet_deposits{chain=\"eth\",state=\"orphaned\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credit_submitted_before_a_crash_is_not_applied_twice() {
    let anvil = OwnAnvil::start().await;
    let database = support::mysql_url("wallet_crash").await;
    let wallet = Wallet::new(&anvil.url, &database, vec![eth_currency(&code("c"), 2)]).await;
    let address = wallet.address(0, 11).await;
    let payer = accounts(&wallet.rpc).await[1].clone();
    pay(&wallet.rpc, &payer, &address, 3 * GWEI).await;
    let watcher = wallet.watcher();
    watcher.step().await.unwrap();

    // The previous run wrote `confirmed`, submitted the command, and died before `credited`.
    let tip = wallet.store.tip("eth").await.unwrap().unwrap();
    let code = &wallet.config.currencies[0].code;
    assert_eq!(
        wallet.store.confirm("eth", code, tip.number).await.unwrap(),
        1
    );
    let row = wallet.store.due("eth", 10).await.unwrap().remove(0);
    wallet
        .engine
        .credit(AccountId(11), ETH, Amount(3), deposit_id(row.id))
        .await
        .unwrap();
    assert_eq!(wallet.available(11, ETH), 3);

    let report = wallet.watcher().step().await.unwrap();
    assert_eq!(report.credited, 1, "{report:?}");
    assert_eq!(wallet.states(11).await, [DepositState::Credited]);
    assert_eq!(wallet.available(11, ETH), 3, "credited once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_deposit_is_credited_and_ether_to_a_token_address_is_not() {
    let anvil = OwnAnvil::start().await;
    let database = support::mysql_url("wallet_token").await;
    let senders = accounts(&EthRpc::new(&anvil.url).unwrap()).await;
    let rpc = EthRpc::new(&anvil.url).unwrap();
    let token = support::deploy_token(&rpc, &senders[1], 1_000_000 * 10u128.pow(18)).await;
    let token_currency = WatchedCurrency {
        code: code("t"),
        id: TOKEN,
        asset: Asset::Token(token.clone()),
        chain_decimals: 18,
        precision: 6,
        confirmations: 1,
    };
    let currencies = vec![eth_currency(&code("e"), 1), token_currency];
    let wallet = Wallet::new(&anvil.url, &database, currencies).await;
    let token_address = wallet.address(1, 5).await;
    let ether_address = wallet.address(0, 5).await;
    assert_ne!(token_address, ether_address, "a seed per currency");

    support::token_transfer(
        &rpc,
        &token,
        &senders[1],
        &token_address,
        25 * 10u128.pow(17),
    )
    .await;
    pay(&rpc, &senders[2], &token_address, 1_000 * GWEI).await;
    wallet.watcher().step().await.unwrap();
    assert_eq!(wallet.available(5, TOKEN), 2_500_000);
    assert_eq!(
        wallet.available(5, ETH),
        0,
        "ether to the token's address is not a deposit"
    );
    let rows = wallet.store.account_deposits(5, 10).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].leg >= 0, "a log index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_reads_blocks_receipts_fees_and_nonces_from_the_node() {
    let rpc = EthRpc::new(&required_env("ETH_RPC_URL")).unwrap();
    let senders = accounts(&rpc).await;
    let to = Address::parse_eth(&senders[4]).unwrap();
    let hash = pay(&rpc, &senders[5], &to, 7 * GWEI).await;
    let receipt = rpc
        .receipt(&peregrine_wallet::chain::Hash32::parse(&hash).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(receipt.success);
    let watch = Watch {
        native: [to.clone()].into_iter().collect(),
        tokens: Vec::new(),
    };
    let block = rpc
        .block(receipt.block_number, &watch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(block.hash, receipt.block_hash);
    let parent = rpc
        .block(block.number - 1, &Watch::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(block.parent, parent.hash);
    let transfer = block
        .transfers
        .iter()
        .find(|t| t.txid.to_string() == hash)
        .expect("the payment is seen");
    assert_eq!((transfer.amount, &transfer.to), (7 * GWEI, &to));
    assert!(rpc.head().await.unwrap() >= block.number);
    assert!(rpc.block(u64::MAX >> 8, &watch).await.unwrap().is_none());
    assert!(
        rpc.nonce(&Address::parse_eth(&senders[5]).unwrap())
            .await
            .unwrap()
            >= 1
    );
    assert!(matches!(
        rpc.fee_estimate().await.unwrap(),
        peregrine_wallet::chain::FeeEstimate::Eip1559 { max_fee_per_gas, .. } if max_fee_per_gas > 0
    ));
    // Bytes that are no transaction: the node's refusal, typed.
    let refused = rpc.send_raw(&[0xde, 0xad]).await.unwrap_err();
    assert!(
        matches!(refused, peregrine_wallet::chain::ChainError::Refused { .. }),
        "{refused:?}"
    );
}

/// Waits until `check` holds on the watcher's status, at most 20 s.
async fn status_until(
    status: &mut tokio::sync::watch::Receiver<WatcherStatus>,
    check: impl Fn(&WatcherStatus) -> bool,
) -> WatcherStatus {
    let waited = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let current = status.borrow_and_update().clone();
            if check(&current) {
                return current;
            }
            status.changed().await.unwrap();
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("status stayed {:?}", *status.borrow()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_backs_off_while_the_node_is_down_and_resumes_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("anvil.json");
    let anvil = OwnAnvil::start().await;
    let port = anvil.port();
    anvil.stop();
    let anvil = OwnAnvil::start_on(port, Some(&state)).await;
    let database = format!("sqlite:{}", dir.path().join("wallet.db").display());
    let wallet =
        Arc::new(Wallet::new(&anvil.url, &database, vec![eth_currency(&code("b"), 1)]).await);
    let address = wallet.address(0, 13).await;
    let payer = accounts(&wallet.rpc).await[1].clone();

    let registry = prometheus::Registry::new();
    let watcher = Arc::new(wallet.watcher_in(&registry));
    let (status_tx, mut status) = tokio::sync::watch::channel(WatcherStatus::Starting);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let pacing = Pacing {
        interval_ms: 50,
        backoff_ms_max: 400,
    };
    let running = tokio::spawn({
        let watcher = watcher.clone();
        async move { watcher.run(pacing, &status_tx, stop).await }
    });

    pay(&wallet.rpc, &payer, &address, 5 * GWEI).await;
    let credited = |amount: u64| {
        let wallet = wallet.clone();
        async move {
            for _ in 0..400 {
                if wallet.available(13, ETH) == amount {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!(
                "balance {} never reached {amount}",
                wallet.available(13, ETH)
            );
        }
    };
    credited(5).await;

    anvil.stop();
    let failing = status_until(
        &mut status,
        |s| matches!(s, WatcherStatus::Failing { failures, .. } if *failures >= 5),
    )
    .await;
    assert!(
        matches!(
            failing,
            WatcherStatus::Failing {
                kind: "chain_unavailable",
                ..
            }
        ),
        "{failing:?}"
    );

    // The node comes back with its chain: the watcher resumes from its stored tip.
    let anvil = OwnAnvil::start_on(port, Some(&state)).await;
    pay(&wallet.rpc, &payer, &address, 7 * GWEI).await;
    credited(12).await;
    status_until(&mut status, |s| {
        matches!(s, WatcherStatus::Following { .. })
    })
    .await;
    let text = support::metrics_text(&registry);
    assert!(
        text.contains("wallet_errors_total{chain=\"eth\",kind=\"chain_unavailable\"}"),
        "{text}"
    );
    assert!(
        text.contains("wallet_deposits{chain=\"eth\",state=\"credited\"} 2"),
        "{text}"
    );
    stop_tx.send(true).unwrap();
    running.await.unwrap();
    drop(anvil);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_another_chain_stops_the_watcher_instead_of_rescanning() {
    let anvil = OwnAnvil::start().await;
    let port = anvil.port();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("wallet.db").display());
    let wallet = Wallet::new(&anvil.url, &database, vec![eth_currency(&code("d"), 2)]).await;
    // More blocks than the store keeps, so the oldest were pruned.
    mine(&wallet.rpc, 300).await;
    let watcher = wallet.watcher();
    while watcher.step().await.unwrap().tip != Some(300) {}

    // Another chain answers on the same address: none of the kept blocks is on it.
    drop(anvil);
    // (anvil is deterministic: a transaction in its first block makes it another chain.)
    let other = OwnAnvil::start_on(port, None).await;
    let senders = accounts(&wallet.rpc).await;
    let payee = Address::parse_eth(&senders[2]).unwrap();
    pay(&wallet.rpc, &senders[1], &payee, GWEI).await;
    mine(&wallet.rpc, 310).await;
    let error = watcher.step().await.unwrap_err();
    assert!(
        matches!(
            error,
            peregrine_wallet::deposits::WatchError::ReorgTooDeep { .. }
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), "reorg_too_deep");
    drop(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_openbao_down_withdrawals_pause_and_deposits_are_still_credited() {
    let bao = support::OwnBao::start().await;
    let vault = support::wallet_vault_on(bao.root.clone(), MOUNT, "wallets-down-test").await;
    let anvil = OwnAnvil::start().await;
    let database = support::mysql_url("wallet_bao_down").await;
    let currency = eth_currency(&code("o"), 1);
    let wallet =
        Wallet::with_vault(&anvil.url, &database, vec![currency.clone()], vault.clone()).await;
    let address = wallet.address(0, 21).await;
    let senders = accounts(&wallet.rpc).await;
    // A withdrawal of account 21, held before OpenBao goes away.
    let hot_path: DerivationPath = "m/44'/60'/1'/0/0".parse().unwrap();
    let hot = vault.eth_address(&currency.code, &hot_path).await.unwrap();
    pay(&wallet.rpc, &senders[1], &address, 9 * GWEI).await;
    wallet.watcher().step().await.unwrap();
    assert_eq!(wallet.available(21, ETH), 9);
    let request = NewWithdrawal {
        currency: currency.code.clone(),
        currency_id: ETH,
        account: AccountId(21),
        amount_minor: Amount(4),
        from: hot,
        path: hot_path,
        to: Address::parse_eth(&senders[2]).unwrap(),
        amount_chain: 4 * GWEI,
    };
    let id = wallet
        .store
        .insert_withdrawal("eth", &request)
        .await
        .unwrap();
    let registry = prometheus::Registry::new();
    let signer = Signer::new(
        EthRpc::new(&anvil.url).unwrap(),
        vault,
        wallet.store.clone(),
        wallet.engine.clone(),
        WalletMetrics::new(&registry).unwrap(),
        "eth",
    )
    .await
    .unwrap();
    assert_eq!(signer.hold(id).await.unwrap(), WithdrawalState::Held);

    drop(bao);
    let paused = signer.sign(id).await.unwrap_err();
    assert!(paused.is_unavailable(), "{paused:?}");
    assert_eq!(paused.kind(), "unavailable");
    let row = wallet.store.withdrawal(id).await.unwrap().unwrap();
    assert_eq!(
        row.state,
        WithdrawalState::Held,
        "nothing signed, the hold stays"
    );

    // Deposits need no key: detected and credited as before.
    pay(&wallet.rpc, &senders[1], &address, 3 * GWEI).await;
    wallet.watcher().step().await.unwrap();
    assert_eq!(wallet.available(21, ETH), 9 - 4 + 3);
    let text = support::metrics_text(&registry);
    assert!(
        text.contains("wallet_signer_errors_total{chain=\"eth\",kind=\"unavailable\"} 1"),
        "{text}"
    );
}
