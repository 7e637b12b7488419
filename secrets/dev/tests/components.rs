//! Identity and the wallet daemons, unchanged, on the dev store: identity's own set-up
//! (`peregrine_auth::vault::provision`), its JWTs issued through transit and verified from
//! the JWKS across a rotation, its TOTP calls under its narrow policy; the wallets' seed made
//! once under their create-and-read policy, and the same address after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{SystemTime, UNIX_EPOCH};

use peregrine_auth::jwt::{Issuer, TokenConfig, Verifier};
use peregrine_auth::store::NewUser;
use peregrine_auth::vault::{Vault, VaultConfig, provision};
use peregrine_auth::{Role, Store, UserState};
use peregrine_devsecrets::DevSecrets;
use peregrine_secrets::sys::Engine;
use peregrine_secrets::totp::Verdict;
use peregrine_secrets::{BaoError, OpenBao};
use peregrine_wallet::keys::{DerivationPath, SEED_MOUNT, SeedVault, wallet_policy};
use support::code_now;

mod support;

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn root(store: &DevSecrets) -> OpenBao {
    OpenBao::new(&store.url(), store.root_token()).unwrap()
}

#[tokio::test]
async fn identity_provisions_issues_and_verifies_jwts_and_checks_totp_on_the_dev_store() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = DevSecrets::start(&dir.path().join("secrets"))
        .await
        .unwrap();
    let admin = root(&secrets);
    let config = VaultConfig::default();
    let token = provision(&admin, &config).await.unwrap();
    // Provisioning again (the next start of `up`) keeps the keys.
    let token_again = provision(&admin, &config).await.unwrap();
    let vault = Vault {
        client: admin.with_token(token),
        config: config.clone(),
    };

    let store = Store::open(&format!("sqlite:{}", dir.path().join("auth.db").display()))
        .await
        .unwrap();
    let id = store
        .insert_user(&NewUser {
            uid: "ID00DE5EC12E",
            email: "alice@example.com",
            password_hash: "not used here",
            role: Role::Member,
            state: UserState::Active,
            level: 1,
            now_ms: 1,
        })
        .await
        .unwrap();
    let user = store.user_by_id(id).await.unwrap().unwrap();

    let issuer = Issuer::new(vault.clone(), TokenConfig::default());
    let now = now_s();
    let first = issuer
        .issue(&user, Some(7), now, "jti-1".to_owned())
        .await
        .unwrap();
    let jwks = issuer.jwks().await.unwrap().to_string();
    let verifier = Verifier::from_jwks(jwks.as_bytes(), TokenConfig::default()).unwrap();
    let claims = verifier.verify(&first.token, now).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.account),
        ("ID00DE5EC12E", Some(7))
    );

    // Rotation is an operator's act: identity's token may not, the admin may; the next token
    // carries the new kid and both verify from the new JWKS.
    let denied = vault
        .client
        .transit_rotate(&config.transit_mount, &config.jwt_key)
        .await
        .unwrap_err();
    assert!(matches!(denied, BaoError::Denied { .. }), "{denied:?}");
    admin
        .transit_rotate(&config.transit_mount, &config.jwt_key)
        .await
        .unwrap();
    let second = issuer
        .issue(&user, Some(7), now, "jti-2".to_owned())
        .await
        .unwrap();
    assert_ne!(first.kid, second.kid);
    let jwks = issuer.jwks().await.unwrap().to_string();
    let verifier = Verifier::from_jwks(jwks.as_bytes(), TokenConfig::default()).unwrap();
    verifier.verify(&first.token, now).unwrap();
    verifier.verify(&second.token, now).unwrap();

    // 2FA as identity does it, under identity's policy: its `user-*` keys only.
    let key = Vault::totp_key(&user.uid);
    let totp = &config.totp_mount;
    let enrolment = vault
        .client
        .totp_generate(totp, &key, &config.totp_issuer, &user.email)
        .await
        .unwrap();
    let code = code_now(&enrolment.url);
    let check = vault.client.totp_check(totp, &key, &code).await.unwrap();
    assert_eq!(check, Verdict::Valid);
    let replay = vault.client.totp_check(totp, &key, &code).await.unwrap();
    assert_eq!(replay, Verdict::AlreadyUsed);
    let other = vault
        .client
        .totp_generate(totp, "operator", "x", "y")
        .await
        .unwrap_err();
    assert!(matches!(other, BaoError::Denied { .. }), "{other:?}");
    vault.client.totp_delete(totp, &key).await.unwrap();

    // API-key secrets at rest, through identity's encrypt/decrypt grants.
    let sealed = vault
        .client
        .transit_encrypt(&config.transit_mount, &config.secrets_key, b"hmac secret")
        .await
        .unwrap();
    let client_again = admin.with_token(token_again);
    let opened = client_again
        .transit_decrypt(&config.transit_mount, &config.secrets_key, &sealed)
        .await
        .unwrap();
    assert_eq!(opened.expose(), b"hmac secret");
    secrets.shutdown().await;
}

async fn wallet_vault(secrets: &DevSecrets) -> SeedVault {
    let admin = root(secrets);
    admin.ensure_engine(SEED_MOUNT, Engine::KvV2).await.unwrap();
    admin
        .put_policy("peregrine-wallets", &wallet_policy(SEED_MOUNT))
        .await
        .unwrap();
    let token = admin
        .create_token(&["peregrine-wallets"], "1h")
        .await
        .unwrap();
    SeedVault::new(admin.with_token(token), SEED_MOUNT)
}

#[tokio::test]
async fn the_wallets_seed_is_made_once_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path: DerivationPath = "m/44'/60'/0'/0/7".parse().unwrap();
    let secrets = DevSecrets::start(dir.path()).await.unwrap();
    let seeds = wallet_vault(&secrets).await;
    assert!(seeds.ensure_seed("eth").await.unwrap());
    assert!(!seeds.ensure_seed("eth").await.unwrap());
    let address = seeds.eth_address("eth", &path).await.unwrap();
    secrets.shutdown().await;

    let secrets = DevSecrets::start(dir.path()).await.unwrap();
    let seeds = wallet_vault(&secrets).await;
    assert!(!seeds.ensure_seed("eth").await.unwrap());
    assert_eq!(seeds.eth_address("eth", &path).await.unwrap(), address);
    secrets.shutdown().await;
}
