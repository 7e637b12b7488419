//! Collection and rebalancing on a real chain (a private anvil, with its mining switched off
//! where a transaction must stay pending), real OpenBao and real MariaDB, deposits credited
//! through a real engine: sweeps to the hot wallet, a token address's gas top-up confirmed
//! before its sweep (a slow top-up delays the sweep, never skips it), one transaction per
//! sweep across a crash, the hot wallet's excess to warm then cold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use peregrine_core::EngineHandle;
use peregrine_hotpath::{AccountId, CurrencyId};
use peregrine_wallet::addresses::DepositAddresses;
use peregrine_wallet::chain::eth::EthRpc;
use peregrine_wallet::chain::{Address, Asset, Chain};
use peregrine_wallet::collect::{CollectedCurrency, Collector, CollectorConfig, HotWallet, Tiers};
use peregrine_wallet::deposits::{DepositWatcher, WatchedCurrency, WatcherConfig};
use peregrine_wallet::keys::{COIN_TYPE_ETH, DerivationPath, SeedVault};
use peregrine_wallet::metrics::WalletMetrics;
use peregrine_wallet::store::{DepositState, WalletStore};
use peregrine_wallet::transfers::{TransferKind, TransferState};
use support::{OwnAnvil, accounts, mine, pay, unique_code as code};

const MOUNT: &str = "peregrine-wallets-collect-test";
const ETH: CurrencyId = CurrencyId(0);
const TOKEN: CurrencyId = CurrencyId(1);
const ETHER: u128 = 1_000_000_000_000_000_000;

struct Setup {
    rpc: EthRpc,
    store: WalletStore,
    vault: SeedVault,
    engine: Arc<EngineHandle>,
    watched: Vec<WatchedCurrency>,
    collected: Vec<CollectedCurrency>,
    start_block: u64,
    senders: Vec<String>,
    registry: prometheus::Registry,
}

impl Setup {
    /// Ether (and the token, if given) with their seeds, hot wallets and `confirmations`.
    async fn new(anvil: &OwnAnvil, database: &str, token: Option<Address>, confs: u32) -> Setup {
        let rpc = EthRpc::new(&anvil.url).unwrap();
        let store = WalletStore::open(database).await.unwrap();
        let vault = support::wallet_vault(MOUNT, "peregrine-wallets-collect-test").await;
        let mut assets = vec![(code("e"), ETH, Asset::Native, 9)];
        if let Some(token) = token {
            assets.push((code("t"), TOKEN, Asset::Token(token), 6));
        }
        let (mut watched, mut collected) = (Vec::new(), Vec::new());
        let hot_path = DerivationPath::hot(COIN_TYPE_ETH).unwrap();
        for (code, id, asset, precision) in assets {
            vault.ensure_seed(&code).await.unwrap();
            let hot = vault.eth_address(&code, &hot_path).await.unwrap();
            watched.push(WatchedCurrency {
                code: code.clone(),
                id,
                asset: asset.clone(),
                chain_decimals: 18,
                precision,
                confirmations: confs,
            });
            collected.push(CollectedCurrency {
                code,
                asset,
                hot: HotWallet {
                    address: hot,
                    path: hot_path.clone(),
                },
                confirmations: u64::from(confs),
                tiers: None,
            });
        }
        Setup {
            start_block: rpc.head().await.unwrap() + 1,
            senders: accounts(&rpc).await,
            rpc,
            store,
            vault,
            engine: support::engine(2).await,
            watched,
            collected,
            registry: prometheus::Registry::new(),
        }
    }

    /// A collector as a (re)started daemon makes it: fresh client, same store.
    async fn collector(&self) -> Collector {
        let metrics = WalletMetrics::new(&prometheus::Registry::new()).unwrap();
        self.collector_with(metrics).await
    }

    async fn collector_with(&self, metrics: WalletMetrics) -> Collector {
        Collector::new(
            EthRpc::new(self.rpc.url()).unwrap(),
            self.vault.clone(),
            self.store.clone(),
            metrics,
            CollectorConfig {
                chain: "eth".to_owned(),
                currencies: self.collected.clone(),
            },
        )
        .await
        .unwrap()
    }

    fn watcher(&self) -> DepositWatcher<EthRpc, Arc<EngineHandle>> {
        DepositWatcher::new(
            EthRpc::new(self.rpc.url()).unwrap(),
            self.engine.clone(),
            self.store.clone(),
            WatcherConfig {
                chain: "eth".to_owned(),
                start_block: self.start_block,
                currencies: self.watched.clone(),
            },
            WalletMetrics::new(&prometheus::Registry::new()).unwrap(),
        )
        .unwrap()
    }

    async fn deposit_address(&self, index: usize, account: u32) -> Address {
        DepositAddresses::new(self.vault.clone(), self.store.clone())
            .eth_address(&self.watched[index].code, COIN_TYPE_ETH, AccountId(account))
            .await
            .unwrap()
            .0
    }

    /// Steps the watcher (mining a block between steps) until `account` has every deposit
    /// credited.
    async fn credit(&self, account: u32) {
        let watcher = self.watcher();
        for _ in 0..20 {
            watcher.step().await.unwrap();
            let rows = self.store.account_deposits(account, 100).await.unwrap();
            if !rows.is_empty() && rows.iter().all(|r| r.state == DepositState::Credited) {
                return;
            }
            mine(&self.rpc, 1).await;
        }
        panic!("the deposits of {account} were not credited");
    }

    async fn transfers(&self) -> Vec<(TransferKind, TransferState)> {
        let rows = self.store.transfers("eth", 100).await.unwrap();
        rows.iter()
            .map(|row| (row.transfer.kind, row.state))
            .collect()
    }

    async fn automine(&self, on: bool) {
        support::automine(&self.rpc, on).await;
    }

    async fn token_balance(&self, address: &Address) -> u128 {
        let Asset::Token(token) = &self.collected[1].asset else {
            panic!("no token");
        };
        self.rpc.token_balance(token, address).await.unwrap()
    }

    /// Transactions `address` sent, as the chain counts them (mined ones).
    async fn sent(&self, address: &Address) -> u64 {
        support::mined_count(&self.rpc, address).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_address_is_swept_once_its_slow_gas_top_up_is_confirmed_never_skipped() {
    let anvil = OwnAnvil::start().await;
    let database = support::mysql_url("wallet_collect").await;
    let rpc = EthRpc::new(&anvil.url).unwrap();
    let senders = accounts(&rpc).await;
    let token = support::deploy_token(&rpc, &senders[1], 1_000_000 * ETHER).await;
    let setup = Setup::new(&anvil, &database, Some(token.clone()), 2).await;
    let ether_hot = setup.collected[0].hot.address.clone();
    let token_hot = setup.collected[1].hot.address.clone();
    pay(&rpc, &setup.senders[2], &ether_hot, 10 * ETHER).await;
    let ether_address = setup.deposit_address(0, 7).await;
    let token_address = setup.deposit_address(1, 7).await;
    pay(&rpc, &setup.senders[3], &ether_address, 3 * ETHER / 2).await;
    support::token_transfer(&rpc, &token, &senders[1], &token_address, 25 * ETHER).await;
    setup.credit(7).await;
    let registry = &setup.registry;
    let collector = setup
        .collector_with(WalletMetrics::new(registry).unwrap())
        .await;

    // Mining stops: the ether sweep and the token address's top-up stay pending.
    setup.automine(false).await;
    let report = collector.step().await.unwrap();
    assert_eq!(report.signed, 2, "{report:?}");
    let pending = [
        (TransferKind::Sweep, TransferState::Broadcast),
        (TransferKind::TopUp, TransferState::Broadcast),
    ];
    assert_eq!(setup.transfers().await, pending);
    // A slow top-up: steps come and go, nothing more is signed, and the token deposit is
    // still due (not skipped).
    for _ in 0..3 {
        assert_eq!(collector.step().await.unwrap().signed, 0);
    }
    assert_eq!(setup.transfers().await, pending);
    let code = &setup.collected[1].code;
    assert_eq!(
        setup.store.uncollected_deposits("eth", code).await.unwrap(),
        1
    );
    assert_eq!(setup.token_balance(&token_address).await, 25 * ETHER);

    // Mined, one confirmation of two: still waiting.
    mine(&rpc, 1).await;
    assert_eq!(collector.step().await.unwrap().signed, 0);
    assert_eq!(setup.transfers().await, pending);
    // Confirmed: the token address has its gas and is swept (pending again).
    mine(&rpc, 1).await;
    assert_eq!(collector.step().await.unwrap().signed, 1);
    let kinds = setup.transfers().await;
    assert_eq!(
        kinds,
        [
            (TransferKind::Sweep, TransferState::Mined),
            (TransferKind::TopUp, TransferState::Mined),
            (TransferKind::Sweep, TransferState::Broadcast),
        ]
    );
    mine(&rpc, 2).await;
    // Swept; the token's hot wallet, holding tokens now, gets gas for their withdrawals.
    assert_eq!(collector.step().await.unwrap().signed, 1);
    assert_eq!(
        setup.transfers().await[2..],
        [
            (TransferKind::Sweep, TransferState::Mined),
            (TransferKind::TopUp, TransferState::Broadcast),
        ]
    );
    mine(&rpc, 2).await;
    collector.step().await.unwrap();
    assert!(
        setup
            .transfers()
            .await
            .iter()
            .all(|(_, state)| *state == TransferState::Mined)
    );

    // Everything is in the hot wallets, each deposit collected, one transaction per sweep and
    // per top-up on the chain.
    assert_eq!(setup.token_balance(&token_hot).await, 25 * ETHER);
    assert_eq!(setup.token_balance(&token_address).await, 0);
    assert!(rpc.balance(&ether_hot).await.unwrap() > 11 * ETHER);
    assert_eq!(
        setup.store.uncollected_deposits("eth", code).await.unwrap(),
        0
    );
    let ether_code = &setup.collected[0].code;
    assert_eq!(
        setup
            .store
            .uncollected_deposits("eth", ether_code)
            .await
            .unwrap(),
        0
    );
    assert_eq!(setup.sent(&ether_address).await, 1);
    assert_eq!(setup.sent(&token_address).await, 1);
    assert_eq!(setup.sent(&ether_hot).await, 2, "one top-up per address");
    let text = support::metrics_text(registry);
    assert!(
        text.contains("wallet_transfers_total{chain=\"eth\",kind=\"sweep\",state=\"mined\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("wallet_collect_seconds_count{chain=\"eth\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_signed_before_a_crash_is_sent_once_with_the_same_bytes() {
    let anvil = OwnAnvil::start().await;
    let database = support::mysql_url("wallet_collect_crash").await;
    let setup = Setup::new(&anvil, &database, None, 1).await;
    let rpc = &setup.rpc;
    let hot = setup.collected[0].hot.address.clone();
    let address = setup.deposit_address(0, 3).await;
    pay(rpc, &setup.senders[3], &address, 2 * ETHER).await;
    setup.credit(3).await;

    // The first run signs and records the sweep, and dies before sending it.
    setup.automine(false).await;
    assert_eq!(setup.collector().await.plan().await.unwrap(), 1);
    let stored = setup.store.transfers("eth", 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].state, TransferState::Signed);
    assert_eq!(rpc.nonce(&address).await.unwrap(), 0, "nothing sent");
    // A second run plans nothing new for the address: its sweep is open.
    let second = setup.collector().await;
    assert_eq!(second.plan().await.unwrap(), 0);
    // It had sent the bytes after all (the crash came before `broadcast` was written): the
    // restarted collector sends them again, the node knows them, one transaction.
    rpc.send_raw(&stored[0].signed.raw).await.unwrap();
    let report = setup.collector().await.step().await.unwrap();
    assert_eq!((report.signed, report.open), (0, 1), "{report:?}");
    setup.automine(true).await;
    mine(rpc, 1).await;
    setup.collector().await.step().await.unwrap();
    let rows = setup.store.transfers("eth", 10).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].state, TransferState::Mined);
    assert_eq!(rows[0].signed, stored[0].signed, "the same bytes");
    let receipt = rpc.receipt(&stored[0].signed.txid).await.unwrap().unwrap();
    assert!(receipt.success);
    assert_eq!(setup.sent(&address).await, 1, "one transaction");
    assert_eq!(
        rpc.balance(&hot).await.unwrap(),
        rows[0].transfer.amount_chain
    );
    // Later steps sweep nothing more (what is left is below twice the fee).
    assert_eq!(setup.collector().await.step().await.unwrap().signed, 0);
    assert_eq!(setup.sent(&address).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hot_wallets_excess_goes_to_warm_up_to_its_maximum_then_to_cold() {
    let anvil = OwnAnvil::start().await;
    let database = support::mysql_url("wallet_tiers").await;
    let mut setup = Setup::new(&anvil, &database, None, 1).await;
    let warm = Address::from_eth_bytes(&[0x57; 20]);
    let cold = Address::from_eth_bytes(&[0xc0; 20]);
    setup.collected[0].tiers = Some(Tiers {
        hot_max: 2 * ETHER,
        warm: Some((warm.clone(), ETHER)),
        cold: Some(cold.clone()),
    });
    let rpc = &setup.rpc;
    let hot = setup.collected[0].hot.address.clone();
    pay(rpc, &setup.senders[4], &hot, 5 * ETHER).await;
    let collector = setup.collector().await;

    // 3 ether above the maximum: 1 fills warm, then the rest goes cold.
    let report = collector.step().await.unwrap();
    assert_eq!(report.signed, 1, "{report:?}");
    assert_eq!(rpc.balance(&warm).await.unwrap(), ETHER);
    collector.step().await.unwrap();
    collector.step().await.unwrap();
    // The excess above 2 ether once the first transfer's fee left the hot wallet too.
    let to_cold = rpc.balance(&cold).await.unwrap();
    assert!(
        to_cold < 2 * ETHER && to_cold > 2 * ETHER - ETHER / 100,
        "{to_cold}"
    );
    let left = rpc.balance(&hot).await.unwrap();
    assert!(left < 2 * ETHER && left > 2 * ETHER - ETHER / 100, "{left}");
    // At or below the maximum: nothing more moves.
    assert_eq!(collector.step().await.unwrap().signed, 0);
    assert_eq!(
        setup.transfers().await,
        [
            (TransferKind::Rebalance, TransferState::Mined),
            (TransferKind::Rebalance, TransferState::Mined),
        ]
    );
    assert_eq!(rpc.balance(&warm).await.unwrap(), ETHER);
    assert_eq!(setup.sent(&hot).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_withdrawal_pays_from_the_collected_hot_wallet_once() {
    let anvil = OwnAnvil::start().await;
    let database = support::mysql_url("wallet_token_withdraw").await;
    let rpc = EthRpc::new(&anvil.url).unwrap();
    let senders = accounts(&rpc).await;
    let token = support::deploy_token(&rpc, &senders[1], 1_000_000 * ETHER).await;
    let setup = Setup::new(&anvil, &database, Some(token.clone()), 1).await;
    let ether_hot = setup.collected[0].hot.address.clone();
    let token_hot = setup.collected[1].hot.clone();
    pay(&rpc, &setup.senders[2], &ether_hot, 10 * ETHER).await;
    let token_address = setup.deposit_address(1, 7).await;
    support::token_transfer(&rpc, &token, &senders[1], &token_address, 25 * ETHER).await;
    setup.credit(7).await;

    // Collected, and the token's hot wallet topped up for its own gas.
    let collector = setup.collector().await;
    for _ in 0..8 {
        collector.step().await.unwrap();
    }
    assert_eq!(setup.token_balance(&token_hot.address).await, 25 * ETHER);
    assert!(rpc.balance(&token_hot.address).await.unwrap() > 0, "gas");
    let kinds: Vec<TransferKind> = setup.transfers().await.iter().map(|t| t.0).collect();
    assert_eq!(
        kinds,
        [
            TransferKind::TopUp,
            TransferKind::Sweep,
            TransferKind::TopUp
        ]
    );

    let payee = Address::parse_eth(&senders[8]).unwrap();
    let request = peregrine_wallet::withdrawals::NewWithdrawal {
        currency: setup.collected[1].code.clone(),
        currency_id: TOKEN,
        account: AccountId(7),
        amount_minor: peregrine_hotpath::Amount(10_000_000),
        from: token_hot.address.clone(),
        path: token_hot.path.clone(),
        to: payee.clone(),
        amount_chain: 10 * ETHER,
    };
    let id = setup
        .store
        .insert_withdrawal("eth", &request)
        .await
        .unwrap();
    let signer = peregrine_wallet::withdrawals::Signer::new(
        EthRpc::new(&anvil.url).unwrap(),
        setup.vault.clone(),
        setup.store.clone(),
        setup.engine.clone(),
        WalletMetrics::new(&prometheus::Registry::new()).unwrap(),
        "eth",
    )
    .await
    .unwrap()
    .with_tokens(vec![(request.currency.clone(), token.clone())]);
    let mut state = signer.drive(id, 1).await.unwrap();
    for _ in 0..5 {
        if state == peregrine_wallet::withdrawals::WithdrawalState::Settled {
            break;
        }
        mine(&rpc, 1).await;
        state = signer.drive(id, 1).await.unwrap();
    }
    assert_eq!(
        state,
        peregrine_wallet::withdrawals::WithdrawalState::Settled
    );
    assert_eq!(setup.token_balance(&payee).await, 10 * ETHER);
    assert_eq!(setup.token_balance(&token_hot.address).await, 15 * ETHER);
    assert_eq!(setup.sent(&token_hot.address).await, 1, "one transaction");
    let balance = setup
        .engine
        .read(|views| views.balance(AccountId(7), TOKEN));
    assert_eq!((balance.available.0, balance.locked.0), (15_000_000, 0));
}
