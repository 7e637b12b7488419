//! Withdrawals' request side against the real services: beneficiaries (EIP-55, activation
//! delay, owner only), the default-deny policy (24 h and 30 d limits, a currency without a
//! policy, a threshold with two approvals, never the requester's, never one operator twice),
//! then the signer's step takes approved withdrawals through hold, sign, broadcast and settle on
//! a private anvil; MariaDB holds the store, OpenBao the seed, the engine the balances.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use peregrine_hotpath::{AccountId, Amount, CurrencyId};
use peregrine_wallet::chain::Address;
use peregrine_wallet::chain::eth::EthRpc;
use peregrine_wallet::keys::{COIN_TYPE_ETH, DerivationPath};
use peregrine_wallet::ledger::{Ledger, deposit_id};
use peregrine_wallet::metrics::WalletMetrics;
use peregrine_wallet::policy::{CurrencyPolicy, PolicyRefusal, WithdrawPolicy};
use peregrine_wallet::requests::{ApprovalError, BeneficiaryState, RequestError, WithdrawRequest};
use peregrine_wallet::store::WalletStore;
use peregrine_wallet::withdrawals::{Signer, WithdrawalState};
use support::{OwnAnvil, accounts, mine, pay};

const MOUNT: &str = "peregrine-wallets-requests-test";
const ETHER: u128 = 1_000_000_000_000_000_000;
/// The engine's ether is in gwei (precision 9): wei per minor unit.
const WEI_PER_GWEI: u128 = 1_000_000_000;
const GWEI_PER_ETHER: u64 = 1_000_000_000;
const ETH: CurrencyId = CurrencyId(0);
const ACCOUNT: AccountId = AccountId(4);
const USER: &str = "ID0000000001";

fn policy() -> WithdrawPolicy {
    WithdrawPolicy::deny_all()
        .with(
            "eth",
            CurrencyPolicy {
                limit_24h_minor: GWEI_PER_ETHER / 2,
                limit_30d_minor: GWEI_PER_ETHER / 10 * 7,
                approval_above_minor: GWEI_PER_ETHER / 5,
                approvals_required: 2,
            },
        )
        .unwrap()
}

fn request(beneficiary_id: u64, amount_minor: u64, now_ms: i64) -> WithdrawRequest {
    WithdrawRequest {
        account: ACCOUNT,
        requested_by: USER.to_owned(),
        currency: "eth".to_owned(),
        currency_id: ETH,
        amount_minor,
        chain_per_minor: WEI_PER_GWEI,
        beneficiary_id,
        now_ms,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn rows(store: &WalletStore) -> usize {
    store
        .withdrawals_page(ACCOUNT, None, 1_000, 0)
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beneficiaries_policy_and_approvals_gate_what_the_signer_sends() {
    let anvil = OwnAnvil::start().await;
    let rpc = EthRpc::new(&anvil.url).unwrap();
    let store = WalletStore::open(&support::mysql_url("wallet_requests").await)
        .await
        .unwrap();
    let vault = support::wallet_vault(MOUNT, "wallets-requests-test").await;
    let currency = "eth";
    // The mount is this test's own; its `eth` seed is made by the first run and read after.
    vault.ensure_seed(currency).await.unwrap();
    let hot_path = DerivationPath::hot(COIN_TYPE_ETH).unwrap();
    let hot = vault.eth_address(currency, &hot_path).await.unwrap();
    let senders = accounts(&rpc).await;
    pay(&rpc, &senders[1], &hot, 2 * ETHER).await;
    let engine = support::engine(1).await;
    engine
        .credit(ACCOUNT, ETH, Amount(GWEI_PER_ETHER), deposit_id(1))
        .await
        .unwrap();
    let balance = || engine.read(|views| views.balance(ACCOUNT, ETH));
    let policy = policy();
    let now = now_ms();

    // No hot wallet recorded yet (the daemon has not run): refused, nothing recorded.
    let payee_text = Address::parse_eth(&senders[8]).unwrap().eip55();
    let payee = Address::parse_eip55(&payee_text).unwrap();
    let active = store
        .add_beneficiary(ACCOUNT, currency, "cold storage", &payee, now, 0)
        .await
        .unwrap();
    assert_eq!(active.state(now), BeneficiaryState::Active);
    let refused = store
        .request_withdrawal("eth", &policy, &request(active.id, 1, now))
        .await;
    assert!(
        matches!(refused, Err(RequestError::NoHotWallet(_))),
        "{refused:?}"
    );
    store
        .set_hot_wallet("eth", currency, &hot, &hot_path)
        .await
        .unwrap();

    // Beneficiaries: a pending one, another account's, an archived one are refused.
    let pending = store
        .add_beneficiary(ACCOUNT, currency, "later", &payee, now, 60_000)
        .await
        .unwrap();
    let theirs = store
        .add_beneficiary(AccountId(99), currency, "theirs", &payee, now, 0)
        .await
        .unwrap();
    let archived = store
        .add_beneficiary(ACCOUNT, currency, "gone", &payee, now, 0)
        .await
        .unwrap();
    assert!(
        store
            .archive_beneficiary(ACCOUNT, archived.id)
            .await
            .unwrap()
    );
    assert!(!store.archive_beneficiary(ACCOUNT, theirs.id).await.unwrap());
    for (id, want) in [
        (pending.id, "withdraw.beneficiary_not_active"),
        (theirs.id, "withdraw.beneficiary_not_found"),
        (archived.id, "withdraw.beneficiary_not_found"),
    ] {
        let refused = store
            .request_withdrawal("eth", &policy, &request(id, 1, now))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), want, "{refused}");
    }
    let listed = store.beneficiaries(ACCOUNT, None).await.unwrap();
    assert_eq!(
        listed.iter().map(|b| b.id).collect::<Vec<_>>(),
        [active.id, pending.id]
    );
    // Default deny: a currency without a policy.
    let mut usd = request(active.id, 1, now);
    usd.currency = "usd".to_owned();
    assert!(matches!(
        store.request_withdrawal("eth", &policy, &usd).await,
        Err(RequestError::Policy(PolicyRefusal::NoPolicy(_)))
    ));
    assert_eq!(rows(&store).await, 0, "refusals record nothing");

    // Under the threshold: approved, and the signer's step takes it to the chain.
    let registry = prometheus::Registry::new();
    let signer = Signer::new(
        EthRpc::new(&anvil.url).unwrap(),
        vault.clone(),
        store.clone(),
        Arc::clone(&engine),
        WalletMetrics::new(&registry).unwrap(),
        "eth",
    )
    .await
    .unwrap();
    let small = store
        .request_withdrawal(
            "eth",
            &policy,
            &request(active.id, GWEI_PER_ETHER / 10, now),
        )
        .await
        .unwrap();
    assert_eq!(small.state, WithdrawalState::Approved);
    let before = rpc.balance(&payee).await.unwrap();
    settle(&store, &signer, &rpc, small.id).await;
    assert_eq!(rpc.balance(&payee).await.unwrap(), before + ETHER / 10);
    assert_eq!(balance().available.0, GWEI_PER_ETHER / 10 * 9);
    assert_eq!(balance().locked.0, 0);

    // Above the threshold: waits; nothing held until two operators (not the requester, not
    // one operator twice) approved it.
    let large = store
        .request_withdrawal(
            "eth",
            &policy,
            &request(active.id, GWEI_PER_ETHER * 3 / 10, now),
        )
        .await
        .unwrap();
    assert_eq!(large.state, WithdrawalState::AwaitingApproval);
    signer.step(|_| 1).await.unwrap();
    assert_eq!(
        balance().locked.0,
        0,
        "nothing held while awaiting approval"
    );
    assert!(matches!(
        store.approve_withdrawal(large.id, USER, now).await,
        Err(ApprovalError::SelfApproval(_))
    ));
    assert_eq!(
        store
            .approve_withdrawal(large.id, "OPS0000001", now)
            .await
            .unwrap(),
        WithdrawalState::AwaitingApproval
    );
    assert!(matches!(
        store.approve_withdrawal(large.id, "OPS0000001", now).await,
        Err(ApprovalError::AlreadyApproved(_))
    ));
    signer.step(|_| 1).await.unwrap();
    assert_eq!(balance().locked.0, 0, "one approval of two holds nothing");
    assert_eq!(
        store
            .approve_withdrawal(large.id, "OPS0000002", now)
            .await
            .unwrap(),
        WithdrawalState::Approved
    );
    assert!(matches!(
        store.approve_withdrawal(large.id, "OPS0000003", now).await,
        Err(ApprovalError::State { .. })
    ));
    settle(&store, &signer, &rpc, large.id).await;
    assert_eq!(rpc.balance(&payee).await.unwrap(), before + ETHER * 4 / 10);
    assert_eq!(
        balance().available.0,
        GWEI_PER_ETHER / 10 * 6,
        "debited once each"
    );

    // 0.4 used in 24 h of a 0.5 limit: 0.2 more is refused, typed, with nothing recorded.
    let count = rows(&store).await;
    let over = store
        .request_withdrawal("eth", &policy, &request(active.id, GWEI_PER_ETHER / 5, now))
        .await
        .unwrap_err();
    assert!(
        matches!(
            over,
            RequestError::Policy(PolicyRefusal::Limit24h { used_minor, .. })
                if used_minor == GWEI_PER_ETHER * 4 / 10
        ),
        "{over:?}"
    );
    assert_eq!(rows(&store).await, count);
    // Two requests of 0.1 at once, 0.1 left: the lock lets exactly one through.
    let tenth = request(active.id, GWEI_PER_ETHER / 10, now);
    let (a, b) = tokio::join!(
        store.request_withdrawal("eth", &policy, &tenth),
        store.request_withdrawal("eth", &policy, &tenth),
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    // The day after, the 24 h window has room again; the 30 d one (0.7) counts all of it.
    let tomorrow = now + 25 * 3_600_000;
    let next = store
        .request_withdrawal(
            "eth",
            &policy,
            &request(active.id, GWEI_PER_ETHER / 10, tomorrow),
        )
        .await
        .unwrap();
    assert_eq!(next.state, WithdrawalState::Approved);
    let month = store
        .request_withdrawal(
            "eth",
            &policy,
            &request(active.id, GWEI_PER_ETHER / 5, tomorrow),
        )
        .await
        .unwrap_err();
    assert_eq!(month.code(), "withdraw.limit_30d_exceeded", "{month}");

    let listed = store.withdrawals_page(ACCOUNT, None, 10, 0).await.unwrap();
    assert_eq!(listed[listed.len() - 1].state, WithdrawalState::Settled);
    assert_eq!(listed[listed.len() - 1].beneficiary_id, Some(active.id));
    let text = support::metrics_text(&registry);
    assert!(
        text.contains("wallet_withdrawals{chain=\"eth\",state=\"settled\"} 2"),
        "{text}"
    );
}

/// Drives withdrawal `id` to `settled` with the signer's steps, mining a block between them.
async fn settle(
    store: &WalletStore,
    signer: &Signer<Arc<peregrine_core::EngineHandle>>,
    rpc: &EthRpc,
    id: u64,
) {
    for _ in 0..20 {
        signer.step(|_| 1).await.unwrap();
        if store.withdrawal(id).await.unwrap().unwrap().state == WithdrawalState::Settled {
            return;
        }
        mine(rpc, 1).await;
    }
    panic!(
        "withdrawal {id} stayed {:?}",
        store.withdrawal(id).await.unwrap().unwrap().state
    );
}
