//! The signer's transactions on a real chain: an EIP-1559 transfer signed with a key derived
//! from a seed in real OpenBao is accepted by anvil under the id computed before broadcasting.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use peregrine_wallet::chain::eth::EthRpc;
use peregrine_wallet::chain::eth_tx::Eip1559;
use peregrine_wallet::chain::{Address, Chain, ChainError, FeeEstimate};
use peregrine_wallet::keys::{DerivationPath, SeedVault};
use peregrine_wallet::store::WalletStore;
use peregrine_wallet::withdrawals::{NewWithdrawal, Signer, WithdrawalState};
use support::{OwnAnvil, accounts, pay};

const MOUNT: &str = "peregrine-wallets-signer-test";
const ETHER: u128 = 1_000_000_000_000_000_000;

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
async fn a_withdrawal_signed_before_a_crash_is_sent_once_with_the_same_bytes() {
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
    let payee = Address::parse_eth(&senders[7]).unwrap();
    let before = rpc.balance(&payee).await.unwrap();
    let request = NewWithdrawal {
        currency: currency.clone(),
        from: hot.clone(),
        path: path.clone(),
        to: payee.clone(),
        amount_chain: ETHER / 5,
    };
    let first = store.insert_withdrawal("eth", &request).await.unwrap();

    // Signed and stored, then the process dies before broadcasting.
    let crashed = Signer::new(
        EthRpc::new(&anvil.url).unwrap(),
        vault.clone(),
        store.clone(),
        "eth",
    )
    .await
    .unwrap();
    let signed = crashed.sign(first).await.unwrap();
    drop(crashed);
    assert_eq!(rpc.nonce(&hot).await.unwrap(), 0, "nothing sent yet");

    let signer = Signer::new(
        EthRpc::new(&anvil.url).unwrap(),
        vault,
        store.clone(),
        "eth",
    )
    .await
    .unwrap();
    assert_eq!(
        signer.sign(first).await.unwrap(),
        signed,
        "never signed twice"
    );
    assert_eq!(signer.broadcast(first).await.unwrap(), signed.txid);
    // The answer was lost, say: sending again is resolved by the id, not a second transfer.
    assert_eq!(signer.broadcast(first).await.unwrap(), signed.txid);
    support::mined(&rpc, &signed.txid.to_string()).await;

    // The next withdrawal takes the next nonce.
    let second = store.insert_withdrawal("eth", &request).await.unwrap();
    let next = signer.sign(second).await.unwrap();
    assert_ne!(next.txid, signed.txid);
    signer.broadcast(second).await.unwrap();
    support::mined(&rpc, &next.txid.to_string()).await;

    assert_eq!(
        rpc.nonce(&hot).await.unwrap(),
        2,
        "exactly two transactions"
    );
    assert_eq!(rpc.balance(&payee).await.unwrap(), before + 2 * (ETHER / 5));
    let row = store.withdrawal(first).await.unwrap().unwrap();
    assert_eq!(row.state, WithdrawalState::Broadcast);
    assert_eq!(row.signed.unwrap().0, 0);
}
