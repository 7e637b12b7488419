//! Keys: BIP-32/44 derivation against known addresses, the seed made once in real OpenBao, and
//! the wallet's OpenBao identity kept apart from the identity service's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::num::NonZeroU32;

use peregrine_hotpath::AccountId;
use peregrine_secrets::BaoError;
use peregrine_secrets::sys::Engine as BaoEngine;
use peregrine_wallet::chain::Address;
use peregrine_wallet::keys::{
    COIN_TYPE_ETH, DerivationPath, KeyError, SeedVault, eth_address_from_seed, wallet_policy,
};

/// BIP-39's seed of a mnemonic without passphrase (PBKDF2-HMAC-SHA512, 2048 rounds).
fn bip39_seed(mnemonic: &str) -> [u8; 64] {
    let mut seed = [0u8; 64];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        NonZeroU32::new(2048).unwrap(),
        b"mnemonic",
        mnemonic.as_bytes(),
        &mut seed,
    );
    seed
}

#[test]
fn derivation_gives_the_addresses_of_anvils_well_known_accounts() {
    // anvil's (and hardhat's) dev accounts come from this mnemonic at m/44'/60'/0'/0/i.
    let seed = bip39_seed("test test test test test test test test test test test junk");
    let expected = [
        "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
        "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
        "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
    ];
    for (index, expected) in expected.iter().enumerate() {
        let path = DerivationPath::deposit(COIN_TYPE_ETH, AccountId(index as u32)).unwrap();
        assert_eq!(path.to_string(), format!("m/44'/60'/0'/0/{index}"));
        let address = eth_address_from_seed(&seed, &path).unwrap();
        assert_eq!(address, Address::parse_eth(expected).unwrap(), "{path}");
    }
}

#[test]
fn paths_parse_round_trip_and_bad_ones_are_typed_errors() {
    let path: DerivationPath = "m/44'/60'/0'/0/7".parse().unwrap();
    assert_eq!(path.to_string(), "m/44'/60'/0'/0/7");
    for bad in [
        "",
        "m/",
        "44'/0",
        "m/x",
        "m/2147483648",
        "m/1/2/3/4/5/6/7/8/9",
        "m/-1",
        "m/1''",
    ] {
        assert!(
            matches!(bad.parse::<DerivationPath>(), Err(KeyError::Path(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        DerivationPath::deposit(COIN_TYPE_ETH, AccountId(1 << 31)),
        Err(KeyError::AccountOutOfRange(_))
    ));
}

#[tokio::test]
async fn a_seed_is_made_once_and_only_the_wallet_token_reads_it() {
    const MOUNT: &str = "peregrine-wallets-keys-test";
    let root = support::bao_root();
    root.ensure_engine(MOUNT, BaoEngine::KvV2).await.unwrap();
    root.ensure_engine("peregrine-identity-test", BaoEngine::Transit)
        .await
        .unwrap();
    root.put_policy("wallets-keys-test", &wallet_policy(MOUNT))
        .await
        .unwrap();
    // The identity service's kind of policy: its transit keys, nothing of the wallets.
    root.put_policy(
        "identity-keys-test",
        "path \"peregrine-identity-test/*\" { capabilities = [\"create\", \"read\", \"update\"] }",
    )
    .await
    .unwrap();
    let wallet = root.with_token(
        root.create_token(&["wallets-keys-test"], "5m")
            .await
            .unwrap(),
    );
    let identity = root.with_token(
        root.create_token(&["identity-keys-test"], "5m")
            .await
            .unwrap(),
    );

    let currency = format!("k{}", std::process::id());
    let vault = SeedVault::new(wallet.clone(), MOUNT);
    assert!(vault.ensure_seed(&currency).await.unwrap(), "made now");
    assert!(
        !vault.ensure_seed(&currency).await.unwrap(),
        "never replaced"
    );
    // Not even the wallet's own token can write over a seed.
    let mut document = peregrine_secrets::kv::Document::new();
    document.insert("seed".to_owned(), "00".repeat(32).into());
    let overwrite = wallet
        .kv_put(MOUNT, &format!("seeds/{currency}"), &document)
        .await
        .unwrap_err();
    assert!(
        matches!(overwrite, BaoError::Denied { .. }),
        "{overwrite:?}"
    );
    let path = DerivationPath::deposit(COIN_TYPE_ETH, AccountId(3)).unwrap();
    let first = vault.eth_address(&currency, &path).await.unwrap();
    assert_eq!(vault.eth_address(&currency, &path).await.unwrap(), first);
    let other = DerivationPath::deposit(COIN_TYPE_ETH, AccountId(4)).unwrap();
    assert_ne!(vault.eth_address(&currency, &other).await.unwrap(), first);

    // Identity's token cannot read the seed, nor make one.
    let stolen = SeedVault::new(identity.clone(), MOUNT);
    let refused = stolen.eth_address(&currency, &path).await.unwrap_err();
    assert!(
        matches!(refused, KeyError::Bao(BaoError::Denied { .. })),
        "{refused:?}"
    );
    assert!(matches!(
        stolen.ensure_seed("intruder").await,
        Err(KeyError::Bao(BaoError::Denied { .. }))
    ));
    // And the wallet's token cannot use identity's engine.
    let denied = wallet
        .kv_get("peregrine-identity-test", "anything")
        .await
        .unwrap_err();
    assert!(matches!(denied, BaoError::Denied { .. }), "{denied:?}");
    // A currency without a seed is a typed error, not a new seed.
    let missing = vault.eth_address("noseed", &path).await.unwrap_err();
    assert!(matches!(missing, KeyError::NoSeed(_)), "{missing:?}");
}
