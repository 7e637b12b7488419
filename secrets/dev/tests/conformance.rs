//! The dev store is faithful to OpenBao: one scenario list, run through the one client
//! (`peregrine_secrets::OpenBao`) against the real OpenBao the suite runs (VAULT_ADDR,
//! VAULT_TOKEN) and against the dev store, must give the same observable outcomes — the
//! typed results and errors, OpenBao's status codes and messages included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

use peregrine_devsecrets::DevSecrets;
use peregrine_secrets::sys::Engine;
use peregrine_secrets::transit::KeyType;
use peregrine_secrets::{BaoError, BaoToken, OpenBao};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde_json::json;
use support::code_now;

mod support;

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{name} is not set: run the tests with `scripts/test` (it starts OpenBao)"),
    }
}

/// Names no other test or run uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// An outcome as the caller observes it: the value, or the error's kind with its status and
/// messages (paths hold per-run mount names, so they are left out).
fn seen<T: Debug>(result: &Result<T, BaoError>) -> String {
    match result {
        Ok(value) => format!("Ok({value:?})"),
        Err(error) => error_kind(error),
    }
}

fn error_kind(error: &BaoError) -> String {
    match error {
        BaoError::Denied { .. } => "Denied".to_owned(),
        BaoError::NotFound { .. } => "NotFound".to_owned(),
        BaoError::Rejected {
            status, messages, ..
        } => format!("Rejected({status}, {messages:?})"),
        BaoError::Malformed { what, .. } => format!("Malformed({what})"),
        BaoError::Name(name) => format!("Name({name})"),
        other => format!("{other:?}"),
    }
}

/// The outcomes of one run, in order, each named.
#[derive(Default)]
struct Log(Vec<(&'static str, String)>);

impl Log {
    fn see(&mut self, step: &'static str, outcome: impl Into<String>) {
        self.0.push((step, outcome.into()));
    }
}

async fn transit_signing(bao: &OpenBao, log: &mut Log) {
    let mount = unique("transit");
    log.see(
        "mount",
        seen(&bao.ensure_engine(&mount, Engine::Transit).await),
    );
    log.see(
        "mount again",
        seen(&bao.ensure_engine(&mount, Engine::Transit).await),
    );
    let key = bao
        .transit_ensure_key(&mount, "jwt", KeyType::Ed25519)
        .await;
    log.see("ed25519 key", seen(&key));
    let first = bao
        .transit_sign(&mount, "jwt", b"header.claims")
        .await
        .unwrap();
    bao.transit_rotate(&mount, "jwt").await.unwrap();
    let second = bao
        .transit_sign(&mount, "jwt", b"header.claims")
        .await
        .unwrap();
    log.see(
        "versions signed",
        format!("{} {}", first.key_version, second.key_version),
    );
    let keys = bao.transit_public_keys(&mount, "jwt").await.unwrap();
    let versions: Vec<u32> = keys.iter().map(|key| key.version).collect();
    log.see("jwks versions", format!("{versions:?}"));
    let lengths: Vec<usize> = keys.iter().map(|key| key.public_key.len()).collect();
    log.see("public key bytes", format!("{lengths:?}"));
    let verifies = |key: usize, signature: &[u8]| {
        UnparsedPublicKey::new(&ED25519, &keys[key].public_key)
            .verify(b"header.claims", signature)
            .is_ok()
    };
    log.see(
        "verification v1/k1 v2/k2 v2/k1",
        format!(
            "{} {} {}",
            verifies(0, &first.bytes),
            verifies(1, &second.bytes),
            verifies(0, &second.bytes)
        ),
    );
    let other = bao
        .transit_ensure_key(&mount, "jwt", KeyType::Aes256Gcm96)
        .await;
    log.see("ensure keeps the existing key", seen(&other));
    let kinds = bao
        .transit_public_keys(&mount, "jwt")
        .await
        .map(|keys| keys.len());
    log.see("still ed25519", seen(&kinds));
    let missing = bao.transit_sign(&mount, "nope", b"x").await;
    log.see("sign with a missing key", seen(&missing));
    let rotate_missing = bao.transit_rotate(&mount, "nope").await;
    log.see("rotate a missing key", seen(&rotate_missing));
    bao.transit_ensure_key(&mount, "aes", KeyType::Aes256Gcm96)
        .await
        .unwrap();
    let aes_public = bao.transit_public_keys(&mount, "aes").await;
    log.see("public keys of an AES key", seen(&aes_public));
    log.see(
        "sign with an AES key",
        seen(&bao.transit_sign(&mount, "aes", b"x").await),
    );
    let no_key = bao.transit_public_keys(&mount, "nope").await;
    log.see("public keys of a missing key", seen(&no_key));
}

async fn transit_encryption(bao: &OpenBao, log: &mut Log) {
    let mount = unique("transit");
    bao.ensure_engine(&mount, Engine::Transit).await.unwrap();
    bao.transit_ensure_key(&mount, "secrets", KeyType::Aes256Gcm96)
        .await
        .unwrap();
    let first = bao
        .transit_encrypt(&mount, "secrets", b"api secret")
        .await
        .unwrap();
    log.see("v1 prefix", format!("{}", first.starts_with("vault:v1:")));
    let opened = bao.transit_decrypt(&mount, "secrets", &first).await;
    log.see(
        "round trip",
        seen(&opened.map(|p| String::from_utf8_lossy(p.expose()).into_owned())),
    );
    bao.transit_rotate(&mount, "secrets").await.unwrap();
    let second = bao
        .transit_encrypt(&mount, "secrets", b"later")
        .await
        .unwrap();
    log.see(
        "v2 after rotation",
        format!("{}", second.starts_with("vault:v2:")),
    );
    let old = bao.transit_decrypt(&mount, "secrets", &first).await;
    log.see("v1 still opens", seen(&old.map(|p| p.expose().len())));
    let tampered = format!("{}AAAA", &first[..first.len() - 4]);
    let refused = bao.transit_decrypt(&mount, "secrets", &tampered).await;
    log.see("tampered", seen(&refused.map(|_| ())));
    for (step, bad) in [
        ("no prefix", "garbage"),
        ("bad version", "vault:vx:AAAA"),
        ("future version", "vault:v9:AAAA"),
        ("not base64", "vault:v1:!!!"),
        ("too short", "vault:v1:AAAA"),
    ] {
        let result = bao.transit_decrypt(&mount, "secrets", bad).await;
        log.see(step, seen(&result.map(|_| ())));
    }
    let missing = bao.transit_decrypt(&mount, "nope", &first).await;
    log.see("decrypt with a missing key", seen(&missing.map(|_| ())));
    bao.transit_ensure_key(&mount, "jwt", KeyType::Ed25519)
        .await
        .unwrap();
    let signing = bao.transit_encrypt(&mount, "jwt", b"x").await;
    log.see("encrypt with an ed25519 key", seen(&signing));
    let upsert = bao.transit_encrypt(&mount, "fresh", b"x").await;
    log.see(
        "encrypt creates a key",
        seen(&upsert.map(|c| c.starts_with("vault:v1:"))),
    );
}

async fn data_keys(bao: &OpenBao, log: &mut Log) {
    let mount = unique("transit");
    bao.ensure_engine(&mount, Engine::Transit).await.unwrap();
    bao.transit_ensure_key(&mount, "docs", KeyType::Aes256Gcm96)
        .await
        .unwrap();
    let key = bao.transit_data_key(&mount, "docs").await.unwrap();
    log.see(
        "data key bytes",
        format!("{}", key.plaintext.expose().len()),
    );
    let opened = bao
        .transit_decrypt(&mount, "docs", &key.ciphertext)
        .await
        .unwrap();
    log.see(
        "unwrapped equals plaintext",
        format!("{}", opened == key.plaintext),
    );
    bao.transit_ensure_key(&mount, "jwt", KeyType::Ed25519)
        .await
        .unwrap();
    let signing = bao.transit_data_key(&mount, "jwt").await;
    log.see("data key of an ed25519 key", seen(&signing.map(|_| ())));
    let missing = bao.transit_data_key(&mount, "nope").await;
    log.see("data key of a missing key", seen(&missing.map(|_| ())));
}

async fn totp(bao: &OpenBao, log: &mut Log) {
    let mount = unique("totp");
    bao.ensure_engine(&mount, Engine::Totp).await.unwrap();
    let enrolment = bao
        .totp_generate(&mount, "user-1", "Peregrine", "alice@example.com")
        .await
        .unwrap();
    let prefix = "otpauth://totp/Peregrine:alice@example.com?algorithm=SHA1&digits=6&issuer=Peregrine&period=30&secret=";
    log.see("url", format!("{}", enrolment.url.starts_with(prefix)));
    log.see(
        "png",
        format!("{}", enrolment.qr_png.starts_with(b"\x89PNG\r\n\x1a\n")),
    );
    let code = code_now(&enrolment.url);
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    log.see(
        "wrong code",
        seen(&bao.totp_check(&mount, "user-1", &wrong).await),
    );
    log.see(
        "right code",
        seen(&bao.totp_check(&mount, "user-1", &code).await),
    );
    log.see(
        "replayed code",
        seen(&bao.totp_check(&mount, "user-1", &code).await),
    );
    log.see(
        "not digits",
        seen(&bao.totp_check(&mount, "user-1", "12a456").await),
    );
    let regenerated = bao
        .totp_generate(&mount, "user-1", "Peregrine", "alice@example.com")
        .await;
    log.see(
        "generate over a key replaces it",
        seen(&regenerated.map(|e| e.url != enrolment.url)),
    );
    log.see("delete", seen(&bao.totp_delete(&mount, "user-1").await));
    log.see(
        "delete again",
        seen(&bao.totp_delete(&mount, "user-1").await),
    );
    log.see(
        "check a deleted key",
        seen(&bao.totp_check(&mount, "user-1", &code).await),
    );
}

async fn kv(bao: &OpenBao, log: &mut Log) {
    let mount = unique("kv");
    bao.ensure_engine(&mount, Engine::KvV2).await.unwrap();
    let path = "wallet/eth/seed";
    log.see("empty", seen(&bao.kv_get(&mount, path).await));
    let first = json!({ "seed": "first" }).as_object().unwrap().clone();
    let second = json!({ "seed": "second" }).as_object().unwrap().clone();
    log.see(
        "first writer",
        seen(&bao.kv_create(&mount, path, &first).await),
    );
    log.see(
        "second writer",
        seen(&bao.kv_create(&mount, path, &second).await),
    );
    log.see("first kept", seen(&bao.kv_get(&mount, path).await));
    log.see("put", seen(&bao.kv_put(&mount, path, &second).await));
    log.see("put wins", seen(&bao.kv_get(&mount, path).await));
    let unmounted = bao.kv_get(&unique("nomount"), path).await;
    log.see("unmounted", seen(&unmounted));
}

async fn scoped_tokens(bao: &OpenBao, log: &mut Log) {
    let (transit, kv) = (unique("transit"), unique("kv"));
    bao.ensure_engine(&transit, Engine::Transit).await.unwrap();
    bao.ensure_engine(&kv, Engine::KvV2).await.unwrap();
    bao.transit_ensure_key(&transit, "jwt", KeyType::Ed25519)
        .await
        .unwrap();
    bao.transit_ensure_key(&transit, "secrets", KeyType::Aes256Gcm96)
        .await
        .unwrap();
    let identity = unique("identity");
    let hcl = format!(
        "# identity\npath \"{transit}/sign/jwt\" {{ capabilities = [\"update\"] }}\n\
         path \"{transit}/keys/jwt\" {{ capabilities = [\"read\"] }}\n"
    );
    log.see("policy", seen(&bao.put_policy(&identity, &hcl).await));
    let scoped = bao.with_token(bao.create_token(&[&identity], "5m").await.unwrap());
    log.see(
        "allowed sign",
        seen(
            &scoped
                .transit_sign(&transit, "jwt", b"x")
                .await
                .map(|s| s.key_version),
        ),
    );
    log.see(
        "allowed read",
        seen(
            &scoped
                .transit_public_keys(&transit, "jwt")
                .await
                .map(|k| k.len()),
        ),
    );
    log.see(
        "encrypt",
        seen(&scoped.transit_encrypt(&transit, "secrets", b"x").await),
    );
    log.see("kv", seen(&scoped.kv_get(&kv, "seeds/eth").await));
    log.see(
        "rotate",
        seen(&scoped.transit_rotate(&transit, "jwt").await),
    );
    log.see(
        "policy write",
        seen(&scoped.put_policy(&identity, "path \"x\" {}").await),
    );
    log.see(
        "mount",
        seen(&scoped.ensure_engine(&unique("m"), Engine::KvV2).await),
    );
    log.see("seal", seen(&scoped.seal().await));
    let wider = scoped.create_token(&[&identity], "5m").await;
    log.see("token without auth/token/create", seen(&wider.map(|_| ())));

    // The wallets' policy: create and read seeds, never update — a second create is denied
    // before check-and-set is looked at.
    let wallet = unique("wallet");
    let hcl =
        format!("path \"{kv}/data/seeds/*\" {{\n  capabilities = [\"create\", \"read\"]\n}}\n");
    bao.put_policy(&wallet, &hcl).await.unwrap();
    let seeds = bao.with_token(bao.create_token(&[&wallet], "5m").await.unwrap());
    let document = json!({ "seed": "00" }).as_object().unwrap().clone();
    log.see(
        "seed create",
        seen(&seeds.kv_create(&kv, "seeds/eth", &document).await),
    );
    log.see(
        "seed create again",
        seen(&seeds.kv_create(&kv, "seeds/eth", &document).await),
    );
    log.see("seed read", seen(&seeds.kv_get(&kv, "seeds/eth").await));
    log.see("other path", seen(&seeds.kv_get(&kv, "other").await));
    let unknown = bao.with_token(BaoToken::new("s.not-a-token"));
    log.see(
        "unknown token",
        seen(&unknown.kv_get(&kv, "seeds/eth").await),
    );
}

async fn bad_input(bao: &OpenBao, log: &mut Log) {
    let mount = unique("transit");
    bao.ensure_engine(&mount, Engine::Transit).await.unwrap();
    bao.transit_ensure_key(&mount, "k", KeyType::Aes256Gcm96)
        .await
        .unwrap();
    for (step, name) in [("dot dot", "a/../b"), ("space", "a b"), ("empty", "")] {
        log.see(step, seen(&bao.transit_sign(&mount, name, b"x").await));
    }
    log.see("bad mount", seen(&bao.kv_get("../sys", "x").await));
    log.see(
        "bad policy",
        seen(
            &bao.put_policy("p", "path \"x\" { capabilities = [\"fly\"] }")
                .await
                .map_err(|e| kind_only(&e)),
        ),
    );
    log.see(
        "empty policy",
        seen(&bao.put_policy(&unique("p"), "").await),
    );
    log.see(
        "root policy",
        seen(&bao.put_policy("root", "path \"x\" {}").await),
    );
    // Above both servers' limits (OpenBao's is 32 MiB): refused with 413, not a broken
    // connection.
    let huge = vec![b'a'; 33 << 20];
    log.see(
        "oversize body",
        seen(&bao.transit_encrypt(&mount, "k", &huge).await),
    );
    log.see(
        "served after it",
        seen(&bao.transit_encrypt(&mount, "k", b"x").await.map(|_| ())),
    );
    let health = bao.health().await;
    log.see("health", seen(&health));
}

/// Only the status of a refusal whose message is each server's own parser's.
fn kind_only(error: &BaoError) -> BaoError {
    match error {
        BaoError::Rejected { path, status, .. } => BaoError::Rejected {
            path: path.clone(),
            status: *status,
            messages: Vec::new(),
        },
        _ => BaoError::Name(format!("{error:?}")),
    }
}

async fn run_all(bao: &OpenBao) -> Log {
    let mut log = Log::default();
    transit_signing(bao, &mut log).await;
    transit_encryption(bao, &mut log).await;
    data_keys(bao, &mut log).await;
    totp(bao, &mut log).await;
    kv(bao, &mut log).await;
    scoped_tokens(bao, &mut log).await;
    bad_input(bao, &mut log).await;
    log
}

#[tokio::test]
async fn the_dev_store_gives_the_outcomes_openbao_gives() {
    let real = OpenBao::new(
        &required_env("VAULT_ADDR"),
        BaoToken::new(required_env("VAULT_TOKEN")),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = DevSecrets::start(dir.path()).await.unwrap();
    let dev = OpenBao::new(&store.url(), store.root_token()).unwrap();

    let expected = run_all(&real).await;
    let actual = run_all(&dev).await;
    for (step, outcome) in &expected.0 {
        eprintln!("{step}: {outcome}");
    }
    assert_eq!(expected.0.len(), actual.0.len());
    let mut differences = Vec::new();
    for ((step, openbao), (_, devstore)) in expected.0.iter().zip(&actual.0) {
        if openbao != devstore {
            differences.push(format!(
                "{step}:\n  OpenBao:  {openbao}\n  dev store: {devstore}"
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    store.shutdown().await;
}
