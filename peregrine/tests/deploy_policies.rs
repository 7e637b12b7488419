//! `deploy/openbao/policies/` against the code and a real OpenBao (a private one: the mounts
//! have their production names).
//!
//! - identity's and the wallets' policy files grant exactly what the code writes and uses
//!   (`VaultConfig::policy_hcl`, `wallet_policy`), plus explicit denials;
//! - applied to OpenBao: the provisioner's token makes identity (`provision`, as `up` does)
//!   and the wallets' engine, policy and token, and reads no secret; identity's token does
//!   what identity does and cannot read a seed; the wallets' token makes and reads seeds and
//!   cannot touch identity's TOTP or transit keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::bao_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bao_support::FileBao;
use peregrine_auth::vault::{TOKEN_TTL, VaultConfig, provision};
use peregrine_secrets::kv::Document;
use peregrine_secrets::sys::Engine;
use peregrine_secrets::{BaoError, OpenBao};
use peregrine_wallet::keys::wallet_policy;
use serde_json::Value;

const WALLETS_MOUNT: &str = "peregrine-wallets";
const WALLETS_POLICY: &str = "peregrine-wallets";
const PROVISIONER_POLICY: &str = "peregrine-provisioner";

/// A policy's rules: path -> capabilities.
type Rules = BTreeMap<String, BTreeSet<String>>;

/// The `path "..." { capabilities = [...] }` rules of an HCL policy (the subset Peregrine
/// writes), comments skipped.
fn rules(hcl: &str) -> Rules {
    let text: String = hcl
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let mut rules = Rules::new();
    for block in text.split("path \"").skip(1) {
        let (path, rest) = block.split_once('"').unwrap();
        let list = rest.split_once('[').unwrap().1.split_once(']').unwrap().0;
        let capabilities = list
            .split(',')
            .map(|c| c.trim().trim_matches('"').to_owned())
            .filter(|c| !c.is_empty())
            .collect();
        assert!(
            rules.insert(path.to_owned(), capabilities).is_none(),
            "{path} twice"
        );
    }
    rules
}

fn file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/openbao/policies");
    std::fs::read_to_string(path.join(name)).unwrap()
}

/// The rules that grant something (the denials are the files' own hardening).
fn grants(rules: &Rules) -> Rules {
    rules
        .iter()
        .filter(|(_, caps)| !caps.contains("deny"))
        .map(|(path, caps)| (path.clone(), caps.clone()))
        .collect()
}

#[test]
fn the_policy_files_grant_what_the_code_uses() {
    let identity = rules(&file("identity.hcl"));
    let code = rules(&VaultConfig::default().policy_hcl());
    assert_eq!(grants(&identity), code, "identity.hcl vs policy_hcl()");
    let wallets = rules(&file("wallets.hcl"));
    let code = rules(&wallet_policy(WALLETS_MOUNT));
    assert_eq!(grants(&wallets), code, "wallets.hcl vs wallet_policy()");
    // Least privilege between the two, in the files themselves.
    assert!(
        identity
            .keys()
            .all(|path| !path.starts_with(WALLETS_MOUNT) || identity[path].contains("deny"))
    );
    assert!(
        grants(&wallets)
            .keys()
            .all(|p| p.starts_with(WALLETS_MOUNT))
    );
    let provisioner = rules(&file("provisioner.hcl"));
    for secret_path in [
        "totp/code/*",
        "transit/decrypt/*",
        "transit/sign/*",
        "peregrine-wallets/*",
    ] {
        assert!(provisioner[secret_path].contains("deny"), "{secret_path}");
    }
}

fn assert_denied<T: std::fmt::Debug>(what: &str, result: Result<T, BaoError>) {
    match result {
        Err(BaoError::Denied { .. }) => {}
        other => panic!("{what}: expected a denial, got {other:?}"),
    }
}

fn seed_document() -> Document {
    let mut document = Document::new();
    document.insert("seed".to_owned(), Value::String("00".repeat(32)));
    document
}

/// What identity's token must do, and must not.
async fn check_identity(identity: &OpenBao, config: &VaultConfig) {
    let (totp, transit) = (&config.totp_mount, &config.transit_mount);
    identity
        .totp_generate(totp, "user-ID1", "Peregrine", "a@example.com")
        .await
        .unwrap();
    identity
        .totp_check(totp, "user-ID1", "000000")
        .await
        .unwrap();
    identity.totp_delete(totp, "user-ID1").await.unwrap();
    identity
        .transit_sign(transit, &config.jwt_key, b"jwt")
        .await
        .unwrap();
    identity
        .transit_public_keys(transit, &config.jwt_key)
        .await
        .unwrap();
    let sealed = identity
        .transit_encrypt(transit, &config.secrets_key, b"hmac secret")
        .await
        .unwrap();
    let opened = identity
        .transit_decrypt(transit, &config.secrets_key, &sealed)
        .await
        .unwrap();
    assert_eq!(opened.expose(), b"hmac secret");
    let data_key = identity
        .transit_data_key(transit, &config.documents_key)
        .await
        .unwrap();
    identity
        .transit_decrypt(transit, &config.documents_key, &data_key.ciphertext)
        .await
        .unwrap();

    assert_denied(
        "identity reads a seed",
        identity.kv_get(WALLETS_MOUNT, "seeds/eth").await,
    );
    assert_denied(
        "identity writes a seed",
        identity
            .kv_create(WALLETS_MOUNT, "seeds/btc", &seed_document())
            .await,
    );
    assert_denied(
        "identity makes a TOTP key outside user-*",
        identity
            .totp_generate(totp, "operator-1", "Peregrine", "o@example.com")
            .await,
    );
    assert_denied(
        "identity rotates the JWT key",
        identity.transit_rotate(transit, &config.jwt_key).await,
    );
    assert_denied(
        "identity writes a policy",
        identity
            .put_policy(&config.policy, "path \"*\" { capabilities = [\"sudo\"] }")
            .await,
    );
    assert_denied(
        "identity makes a token",
        identity.create_token(&[WALLETS_POLICY], TOKEN_TTL).await,
    );
}

/// What the wallets' token must do, and must not.
async fn check_wallets(wallets: &OpenBao, config: &VaultConfig, sealed_secret: &str) {
    assert!(
        wallets
            .kv_create(WALLETS_MOUNT, "seeds/eth", &seed_document())
            .await
            .unwrap()
    );
    assert!(
        wallets
            .kv_get(WALLETS_MOUNT, "seeds/eth")
            .await
            .unwrap()
            .is_some()
    );
    // `create` only: an existing seed cannot be replaced.
    assert_denied(
        "wallets replace a seed",
        wallets
            .kv_put(WALLETS_MOUNT, "seeds/eth", &seed_document())
            .await,
    );
    let (totp, transit) = (&config.totp_mount, &config.transit_mount);
    assert_denied(
        "wallets check a TOTP code",
        wallets.totp_check(totp, "user-ID1", "000000").await,
    );
    assert_denied(
        "wallets make a TOTP key",
        wallets
            .totp_generate(totp, "user-ID2", "Peregrine", "b@example.com")
            .await,
    );
    assert_denied(
        "wallets decrypt an API-key secret",
        wallets
            .transit_decrypt(transit, &config.secrets_key, sealed_secret)
            .await,
    );
    assert_denied(
        "wallets sign a JWT",
        wallets.transit_sign(transit, &config.jwt_key, b"jwt").await,
    );
    assert_denied(
        "wallets read the JWT key",
        wallets.transit_public_keys(transit, &config.jwt_key).await,
    );
}

/// What the provisioner must not: any secret, or a root token.
async fn check_provisioner(provisioner: &OpenBao, config: &VaultConfig, sealed_secret: &str) {
    let (totp, transit) = (&config.totp_mount, &config.transit_mount);
    assert_denied(
        "provisioner reads a seed",
        provisioner.kv_get(WALLETS_MOUNT, "seeds/eth").await,
    );
    assert_denied(
        "provisioner decrypts an API-key secret",
        provisioner
            .transit_decrypt(transit, &config.secrets_key, sealed_secret)
            .await,
    );
    assert_denied(
        "provisioner signs a JWT",
        provisioner
            .transit_sign(transit, &config.jwt_key, b"jwt")
            .await,
    );
    assert_denied(
        "provisioner checks a TOTP code",
        provisioner.totp_check(totp, "user-ID1", "000000").await,
    );
    assert_denied(
        "provisioner writes another policy",
        provisioner
            .put_policy("default", "path \"*\" { capabilities = [\"sudo\"] }")
            .await,
    );
    assert!(
        provisioner
            .create_token(&["root"], TOKEN_TTL)
            .await
            .is_err(),
        "the provisioner made a root token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_components_token_does_what_it_needs_and_is_refused_the_rest() {
    let home = tempfile::tempdir().unwrap();
    let bao = FileBao::start(home.path()).await;
    let root = bao.root();
    root.put_policy(PROVISIONER_POLICY, &file("provisioner.hcl"))
        .await
        .unwrap();
    let provisioner = root.with_token(
        root.create_token(&[PROVISIONER_POLICY], TOKEN_TTL)
            .await
            .unwrap(),
    );

    // The provisioner makes identity as `up` does, then the wallets' engine and token.
    let config = VaultConfig::default();
    let identity = root.with_token(provision(&provisioner, &config).await.unwrap());
    provisioner
        .ensure_engine(WALLETS_MOUNT, Engine::KvV2)
        .await
        .unwrap();
    provisioner
        .put_policy(WALLETS_POLICY, &file("wallets.hcl"))
        .await
        .unwrap();
    let wallets = root.with_token(
        provisioner
            .create_token(&[WALLETS_POLICY], TOKEN_TTL)
            .await
            .unwrap(),
    );
    // Identity's policy as deployed (the file: the code's rules and the denials).
    provisioner
        .put_policy(&config.policy, &file("identity.hcl"))
        .await
        .unwrap();

    check_identity(&identity, &config).await;
    // The KYC webhook secret: an operator writes it, identity reads it and cannot write it.
    let (kv, path) = (&config.kv_mount, &config.webhook_secret_path);
    let mut webhook = Document::new();
    webhook.insert("secret".to_owned(), Value::String("s".repeat(32)));
    root.kv_put(kv, path, &webhook).await.unwrap();
    assert_eq!(
        identity.kv_get(kv, path).await.unwrap(),
        Some(webhook.clone())
    );
    assert_denied(
        "identity writes the webhook secret",
        identity.kv_put(kv, path, &webhook).await,
    );
    assert_denied(
        "the provisioner reads the webhook secret",
        provisioner.kv_get(kv, path).await,
    );
    let sealed_secret = identity
        .transit_encrypt(&config.transit_mount, &config.secrets_key, b"hmac secret")
        .await
        .unwrap();
    check_wallets(&wallets, &config, &sealed_secret).await;
    check_provisioner(&provisioner, &config, &sealed_secret).await;
    // And identity still cannot read the seed the wallets made.
    assert_denied(
        "identity reads a seed",
        identity.kv_get(WALLETS_MOUNT, "seeds/eth").await,
    );
}
