//! The signer's transactions on a real chain: an EIP-1559 transfer signed with a key derived
//! from a seed in real OpenBao is accepted by anvil under the id computed before broadcasting.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use peregrine_hotpath::{AccountId, Amount, CurrencyId};
use peregrine_wallet::bumps::BumpPolicy;
use peregrine_wallet::chain::eth::EthRpc;
use peregrine_wallet::chain::eth_tx::Eip1559;
use peregrine_wallet::chain::{Address, Chain, ChainError, FeeEstimate, Hash32};
use peregrine_wallet::keys::{DerivationPath, SeedVault};
use peregrine_wallet::ledger::{CreditOutcome, Ledger, deposit_id};
use peregrine_wallet::metrics::WalletMetrics;
use peregrine_wallet::store::WalletStore;
use peregrine_wallet::withdrawals::{NewWithdrawal, SignError, Signer, WithdrawalState};
use support::{OwnAnvil, accounts, pay};

const MOUNT: &str = "peregrine-wallets-signer-test";
const ETHER: u128 = 1_000_000_000_000_000_000;
/// The engine's ether is in gwei (precision 9).
const GWEI_PER_ETHER: u64 = 1_000_000_000;
const ETH: CurrencyId = CurrencyId(0);

/// A hot wallet: a fresh seed's key at `m/44'/60'/1'/0/0`, funded with one ether.
struct Hot {
    vault: SeedVault,
    currency: String,
    path: DerivationPath,
    address: Address,
    senders: Vec<String>,
}

async fn hot_wallet(rpc: &EthRpc, prefix: &str) -> Hot {
    let vault = support::wallet_vault(MOUNT, "wallets-signer-test").await;
    let currency = format!("{prefix}{}", std::process::id());
    vault.ensure_seed(&currency).await.unwrap();
    let path: DerivationPath = "m/44'/60'/1'/0/0".parse().unwrap();
    let address = vault.eth_address(&currency, &path).await.unwrap();
    let senders = accounts(rpc).await;
    pay(rpc, &senders[1], &address, ETHER).await;
    Hot {
        vault,
        currency,
        path,
        address,
        senders,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_transfer_is_mined_under_the_id_computed_before_broadcast() {
    let anvil = OwnAnvil::start().await;
    let rpc = EthRpc::new(&anvil.url).unwrap();
    let Hot {
        vault,
        currency,
        path,
        address: hot,
        senders,
    } = hot_wallet(&rpc, "h").await;

    let payee = Address::parse_eth(&senders[6]).unwrap();
    let before = rpc.balance(&payee).await.unwrap();
    let FeeEstimate::Eip1559 {
        max_fee_per_gas,
        max_priority_fee_per_gas,
    } = rpc.fee_estimate().await.unwrap()
    else {
        panic!("anvil prices EIP-1559");
    };
    let tx = Eip1559 {
        chain_id: rpc.chain_id().await.unwrap(),
        nonce: rpc.nonce(&hot).await.unwrap(),
        max_priority_fee_per_gas,
        max_fee_per_gas,
        gas_limit: 21_000,
        to: payee.clone(),
        value: ETHER / 10,
        data: Vec::new(),
    };
    let signed = vault
        .with_key(&currency, &path, |key| tx.sign(key))
        .await
        .unwrap()
        .unwrap();
    let again = vault
        .with_key(&currency, &path, |key| tx.sign(key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        signed, again,
        "deterministic: a rebroadcast sends the same bytes"
    );

    let txid = rpc.send_raw(&signed.raw).await.unwrap();
    assert_eq!(txid, signed.txid);
    support::mined(&rpc, &txid.to_string()).await;
    let receipt = rpc.receipt(&txid).await.unwrap().expect("mined");
    assert!(receipt.success);
    assert_eq!(rpc.balance(&payee).await.unwrap(), before + ETHER / 10);

    // The same bytes again: refused by the node (nonce used), and nothing more moves.
    let refused = rpc.send_raw(&signed.raw).await.unwrap_err();
    assert!(matches!(refused, ChainError::Refused { .. }), "{refused:?}");
    assert_eq!(rpc.nonce(&hot).await.unwrap(), tx.nonce + 1);
    assert_eq!(rpc.balance(&payee).await.unwrap(), before + ETHER / 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_is_held_signed_once_across_a_crash_and_settled_on_its_receipt() {
    let anvil = OwnAnvil::start().await;
    let rpc = EthRpc::new(&anvil.url).unwrap();
    let Hot {
        vault,
        currency,
        path,
        address: hot,
        senders,
    } = hot_wallet(&rpc, "w").await;
    let store = WalletStore::open(&support::mysql_url("wallet_signer").await)
        .await
        .unwrap();
    let engine = support::engine(1).await;
    let account = AccountId(3);
    let credited = engine
        .credit(account, ETH, Amount(GWEI_PER_ETHER), deposit_id(1))
        .await
        .unwrap();
    assert!(matches!(credited, CreditOutcome::Applied { .. }));
    let balance = || engine.read(|views| views.balance(account, ETH));
    let payee = Address::parse_eth(&senders[7]).unwrap();
    let before = rpc.balance(&payee).await.unwrap();
    let request = NewWithdrawal {
        currency: currency.clone(),
        currency_id: ETH,
        account,
        amount_minor: Amount(GWEI_PER_ETHER / 5),
        from: hot.clone(),
        path: path.clone(),
        to: payee.clone(),
        amount_chain: ETHER / 5,
    };
    let first = store.insert_withdrawal("eth", &request).await.unwrap();
    let signer = |store: WalletStore, registry: &prometheus::Registry| {
        let (url, vault, engine) = (anvil.url.clone(), vault.clone(), engine.clone());
        let metrics = WalletMetrics::new(registry).unwrap();
        async move {
            Signer::new(
                EthRpc::new(&url).unwrap(),
                vault,
                store,
                engine,
                metrics,
                "eth",
            )
            .await
            .unwrap()
        }
    };

    // Held, signed and stored, then the process dies before broadcasting.
    let crashed = signer(store.clone(), &prometheus::Registry::new()).await;
    assert!(
        matches!(crashed.sign(first).await, Err(SignError::State { .. })),
        "not held yet"
    );
    assert_eq!(crashed.hold(first).await.unwrap(), WithdrawalState::Held);
    assert_eq!(balance().locked.0, GWEI_PER_ETHER / 5);
    let signed = crashed.sign(first).await.unwrap();
    drop(crashed);
    assert_eq!(rpc.nonce(&hot).await.unwrap(), 0, "nothing sent yet");

    let registry = prometheus::Registry::new();
    let signer = signer(store.clone(), &registry).await;
    assert_eq!(
        signer.hold(first).await.unwrap(),
        WithdrawalState::Signed,
        "held once"
    );
    assert_eq!(
        signer.sign(first).await.unwrap(),
        signed,
        "never signed twice"
    );
    assert_eq!(signer.broadcast(first).await.unwrap(), signed.txid);
    // The answer was lost, say: sending again is resolved by the id, not a second transfer.
    assert_eq!(signer.broadcast(first).await.unwrap(), signed.txid);
    support::mined(&rpc, &signed.txid.to_string()).await;
    assert_eq!(
        signer.finish(first, 2).await.unwrap(),
        WithdrawalState::Broadcast
    );
    assert_eq!(
        balance().locked.0,
        GWEI_PER_ETHER / 5,
        "held until confirmed"
    );
    support::mine(&rpc, 1).await;
    assert_eq!(
        signer.finish(first, 2).await.unwrap(),
        WithdrawalState::Settled
    );
    assert_eq!(balance().locked.0, 0);
    assert_eq!(balance().available.0, GWEI_PER_ETHER / 5 * 4);

    // The next withdrawal takes the next nonce.
    let second = store.insert_withdrawal("eth", &request).await.unwrap();
    signer.hold(second).await.unwrap();
    let next = signer.sign(second).await.unwrap();
    assert_ne!(next.txid, signed.txid);
    signer.broadcast(second).await.unwrap();
    support::mined(&rpc, &next.txid.to_string()).await;
    assert_eq!(
        signer.finish(second, 1).await.unwrap(),
        WithdrawalState::Settled
    );

    // More than the balance: the hold is refused and nothing is ever signed.
    let too_much = NewWithdrawal {
        amount_minor: Amount(GWEI_PER_ETHER),
        ..request.clone()
    };
    let third = store.insert_withdrawal("eth", &too_much).await.unwrap();
    assert!(matches!(
        signer.hold(third).await,
        Err(SignError::HoldRefused { .. })
    ));
    assert!(matches!(
        signer.sign(third).await,
        Err(SignError::State { .. })
    ));

    assert_eq!(
        rpc.nonce(&hot).await.unwrap(),
        2,
        "exactly two transactions"
    );
    assert_eq!(rpc.balance(&payee).await.unwrap(), before + 2 * (ETHER / 5));
    assert_eq!(balance().available.0, GWEI_PER_ETHER / 5 * 3);
    let text = support::metrics_text(&registry);
    assert!(
        text.contains("wallet_withdrawal_transitions_total{chain=\"eth\",state=\"settled\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("wallet_signer_errors_total{chain=\"eth\",kind=\"rejected\"} 1"),
        "{text}"
    );
    let row = store.withdrawal(first).await.unwrap().unwrap();
    assert_eq!(row.state, WithdrawalState::Settled);
    assert_eq!(row.signed.unwrap().0, 0);
}

/// A private chain with a funded hot wallet, a store of the test's own, and an engine where
/// the account holds one ether, with anvil mining only on request.
struct Funded {
    anvil: OwnAnvil,
    rpc: EthRpc,
    hot: Hot,
    store: WalletStore,
    engine: std::sync::Arc<peregrine_core::EngineHandle>,
    account: AccountId,
}

async fn funded(prefix: &str, database: &str) -> Funded {
    let anvil = OwnAnvil::start().await;
    let rpc = EthRpc::new(&anvil.url).unwrap();
    let hot = hot_wallet(&rpc, prefix).await;
    let store = WalletStore::open(&support::mysql_url(database).await)
        .await
        .unwrap();
    let engine = support::engine(1).await;
    let account = AccountId(4);
    engine
        .credit(account, ETH, Amount(GWEI_PER_ETHER), deposit_id(1))
        .await
        .unwrap();
    support::automine(&rpc, false).await;
    Funded {
        anvil,
        rpc,
        hot,
        store,
        engine,
        account,
    }
}

impl Funded {
    /// A signer of this chain and store with `policy`, counting in `metrics`.
    async fn signer(
        &self,
        metrics: &WalletMetrics,
        policy: BumpPolicy,
    ) -> Signer<std::sync::Arc<peregrine_core::EngineHandle>> {
        let rpc = EthRpc::new(&self.anvil.url).unwrap();
        let (vault, store) = (self.hot.vault.clone(), self.store.clone());
        Signer::new(
            rpc,
            vault,
            store,
            self.engine.clone(),
            metrics.clone(),
            "eth",
        )
        .await
        .unwrap()
        .with_bumps(policy)
    }

    /// A withdrawal of `1 / fraction` ether from the account to sender `payee` of anvil.
    fn withdrawal(&self, payee: usize, fraction: u64) -> NewWithdrawal {
        NewWithdrawal {
            currency: self.hot.currency.clone(),
            currency_id: ETH,
            account: self.account,
            amount_minor: Amount(GWEI_PER_ETHER / fraction),
            from: self.hot.address.clone(),
            path: self.hot.path.clone(),
            to: Address::parse_eth(&self.hot.senders[payee]).unwrap(),
            amount_chain: ETHER / u128::from(fraction),
        }
    }
}

/// Mines one block whose base fee is above `offered` (wei per gas): nothing offering at most
/// that is included.
async fn stuck_block(rpc: &EthRpc, offered: u128) {
    let base = format!("0x{:x}", offered + 1);
    let _: serde_json::Value = rpc
        .call("anvil_setNextBlockBaseFeePerGas", serde_json::json!([base]))
        .await
        .unwrap();
    support::mine(rpc, 1).await;
}

/// What the store says of withdrawal `id`'s latest attempt: its id and its fee.
async fn latest(store: &WalletStore, id: u64) -> (Hash32, u128, u32) {
    let row = store.withdrawal(id).await.unwrap().unwrap();
    let last = store.last_attempt(id).await.unwrap().unwrap();
    (
        row.signed.unwrap().1.txid,
        last.fee.max_fee_per_gas,
        last.bumps,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmined_withdrawal_is_replaced_at_higher_fees_and_whichever_is_mined_settles_it() {
    const GWEI: u128 = 1_000_000_000;
    let f = funded("b", "wallet_bumps").await;
    let (rpc, store, engine, account) = (&f.rpc, &f.store, &f.engine, f.account);
    let hot = &f.hot.address;
    let request = f.withdrawal(5, 5);
    let payee = request.to.clone();
    let before = rpc.balance(&payee).await.unwrap();
    let registry = prometheus::Registry::new();
    let policy = BumpPolicy {
        after_blocks: 2,
        bumps_max: 2,
        max_fee_per_gas_cap_wei: 1_000 * GWEI,
    };
    let signer = f
        .signer(&WalletMetrics::new(&registry).unwrap(), policy)
        .await;
    let id = store.insert_withdrawal("eth", &request).await.unwrap();
    assert_eq!(
        signer.drive(id, 1).await.unwrap(),
        WithdrawalState::Broadcast
    );
    let (first, first_fee, _) = latest(store, id).await;

    // One block without it: not due yet (the same bytes are sent again).
    stuck_block(rpc, first_fee).await;
    assert_eq!(
        signer.drive(id, 1).await.unwrap(),
        WithdrawalState::Broadcast
    );
    assert_eq!(latest(store, id).await, (first, first_fee, 0));
    // Two: replaced, same nonce, higher fee, recorded (the replaced id kept) and sent.
    stuck_block(rpc, first_fee).await;
    signer.drive(id, 1).await.unwrap();
    let (second, second_fee, bumps) = latest(store, id).await;
    assert_ne!(second, first);
    assert!(second_fee >= first_fee * 5 / 4, "{second_fee} {first_fee}");
    assert_eq!(bumps, 1);
    let kept = store.replaced_attempts(id).await.unwrap();
    assert_eq!(kept.iter().map(|a| a.txid).collect::<Vec<_>>(), [first]);
    let pending: Option<serde_json::Value> = rpc
        .call(
            "eth_getTransactionByHash",
            serde_json::json!([second.to_string()]),
        )
        .await
        .unwrap();
    assert_eq!(pending.unwrap()["nonce"], "0x0", "the same nonce");
    // Bumped again after two more blocks, then never more than `bumps_max`.
    stuck_block(rpc, second_fee).await;
    stuck_block(rpc, second_fee).await;
    signer.drive(id, 1).await.unwrap();
    let (third, third_fee, bumps) = latest(store, id).await;
    assert_eq!(bumps, 2);
    for _ in 0..3 {
        stuck_block(rpc, third_fee).await;
        signer.drive(id, 1).await.unwrap();
    }
    assert_eq!(latest(store, id).await, (third, third_fee, 2), "bounded");
    assert_eq!(store.replaced_attempts(id).await.unwrap().len(), 2);

    // The node mines the middle attempt (it never saw the last, say): recognised, settled.
    let _: serde_json::Value = rpc
        .call(
            "anvil_dropTransaction",
            serde_json::json!([third.to_string()]),
        )
        .await
        .unwrap();
    let _: serde_json::Value = rpc
        .call(
            "anvil_setNextBlockBaseFeePerGas",
            serde_json::json!([format!("0x{GWEI:x}")]),
        )
        .await
        .unwrap();
    let second_raw = store.replaced_attempts(id).await.unwrap()[1].raw.clone();
    assert_eq!(rpc.send_raw(&second_raw).await.unwrap(), second);
    support::mine(rpc, 1).await;
    assert_eq!(signer.drive(id, 1).await.unwrap(), WithdrawalState::Settled);
    let row = store.withdrawal(id).await.unwrap().unwrap();
    assert_eq!(row.signed.unwrap().1.txid, second, "the mined one is shown");
    assert_eq!(rpc.nonce(hot).await.unwrap(), 1, "one transaction");
    assert_eq!(rpc.balance(&payee).await.unwrap(), before + ETHER / 5);
    let balance = engine.read(|views| views.balance(account, ETH));
    assert_eq!(
        (balance.available.0, balance.locked.0),
        (GWEI_PER_ETHER / 5 * 4, 0)
    );
    let text = support::metrics_text(&registry);
    assert!(
        text.contains("wallet_fee_bumps_total{chain=\"eth\",outcome=\"bumped\"} 2"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bump_above_the_fee_cap_is_not_sent_and_the_withdrawal_waits() {
    let f = funded("c", "wallet_bump_cap").await;
    let (rpc, store) = (&f.rpc, &f.store);
    let hot = &f.hot.address;
    let registry = prometheus::Registry::new();
    let metrics = WalletMetrics::new(&registry).unwrap();
    let make = |cap: u128| {
        f.signer(
            &metrics,
            BumpPolicy {
                after_blocks: 1,
                bumps_max: 3,
                max_fee_per_gas_cap_wei: cap,
            },
        )
    };
    let request = f.withdrawal(4, 10);
    let id = store.insert_withdrawal("eth", &request).await.unwrap();
    // The cap is the first offer: no replacement can be made.
    let signer = make(0).await;
    signer.drive(id, 1).await.unwrap();
    let (first, first_fee, _) = latest(store, id).await;
    let signer = make(first_fee).await;
    for _ in 0..3 {
        stuck_block(rpc, first_fee).await;
        assert_eq!(
            signer.drive(id, 1).await.unwrap(),
            WithdrawalState::Broadcast
        );
    }
    assert_eq!(latest(store, id).await, (first, first_fee, 0));
    assert!(store.replaced_attempts(id).await.unwrap().is_empty());
    let text = support::metrics_text(&registry);
    assert!(
        text.contains("wallet_fee_bumps_total{chain=\"eth\",outcome=\"capped\"} 3"),
        "{text}"
    );
    // The fee falls back: it is mined as it was signed.
    let _: serde_json::Value = rpc
        .call(
            "anvil_setNextBlockBaseFeePerGas",
            serde_json::json!(["0x1"]),
        )
        .await
        .unwrap();
    support::mine(rpc, 1).await;
    assert_eq!(signer.drive(id, 1).await.unwrap(), WithdrawalState::Settled);
    assert_eq!(rpc.nonce(hot).await.unwrap(), 1);
}
