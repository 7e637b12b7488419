//! The signer's transactions on a real chain: an EIP-1559 transfer signed with a key derived
//! from a seed in real OpenBao is accepted by anvil under the id computed before broadcasting.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use peregrine_wallet::chain::eth::EthRpc;
use peregrine_wallet::chain::eth_tx::Eip1559;
use peregrine_wallet::chain::{Address, Chain, ChainError, FeeEstimate};
use peregrine_wallet::keys::DerivationPath;
use support::{OwnAnvil, accounts, pay};

const MOUNT: &str = "peregrine-wallets-signer-test";
const ETHER: u128 = 1_000_000_000_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_transfer_is_mined_under_the_id_computed_before_broadcast() {
    let anvil = OwnAnvil::start().await;
    let rpc = EthRpc::new(&anvil.url).unwrap();
    let vault = support::wallet_vault(MOUNT, "wallets-signer-test").await;
    let currency = format!("h{}", std::process::id());
    vault.ensure_seed(&currency).await.unwrap();
    let path: DerivationPath = "m/44'/60'/1'/0/0".parse().unwrap();
    let hot = vault.eth_address(&currency, &path).await.unwrap();
    let senders = accounts(&rpc).await;
    pay(&rpc, &senders[1], &hot, ETHER).await;

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
