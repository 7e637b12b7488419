//! The client against a real OpenBao: the shared dev server `scripts/test` starts on loopback
//! (VAULT_ADDR, VAULT_TOKEN), and a private one this test seals. Each test uses mounts of its
//! own, so runs do not see each other's keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peregrine_secrets::sys::Engine;
use peregrine_secrets::totp::Verdict;
use peregrine_secrets::transit::KeyType;
use peregrine_secrets::{BaoError, BaoToken, OpenBao};
use ring::hmac;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde_json::json;

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: run the tests with `scripts/test`, which starts OpenBao in dev \
             mode on loopback and exports VAULT_ADDR, VAULT_TOKEN and BAO_BIN"
        ),
    }
}

fn root() -> OpenBao {
    OpenBao::new(
        &required_env("VAULT_ADDR"),
        BaoToken::new(required_env("VAULT_TOKEN")),
    )
    .unwrap()
}

/// A mount name no other test or run uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn transit_signs_with_ed25519_and_rotation_keeps_old_versions_verifiable() {
    let bao = root();
    let mount = unique("transit");
    bao.ensure_engine(&mount, Engine::Transit).await.unwrap();
    bao.ensure_engine(&mount, Engine::Transit).await.unwrap();
    bao.transit_ensure_key(&mount, "jwt", KeyType::Ed25519)
        .await
        .unwrap();
    let first = bao
        .transit_sign(&mount, "jwt", b"header.claims")
        .await
        .unwrap();
    assert_eq!(first.key_version, 1);
    bao.transit_rotate(&mount, "jwt").await.unwrap();
    let second = bao
        .transit_sign(&mount, "jwt", b"header.claims")
        .await
        .unwrap();
    assert_eq!(second.key_version, 2);

    let keys = bao.transit_public_keys(&mount, "jwt").await.unwrap();
    assert_eq!(keys.iter().map(|k| k.version).collect::<Vec<_>>(), [1, 2]);
    for (signature, key) in [(&first, &keys[0]), (&second, &keys[1])] {
        UnparsedPublicKey::new(&ED25519, &key.public_key)
            .verify(b"header.claims", &signature.bytes)
            .unwrap();
    }
    // The negative space: a version's signature does not verify under the other version.
    assert!(
        UnparsedPublicKey::new(&ED25519, &keys[0].public_key)
            .verify(b"header.claims", &second.bytes)
            .is_err()
    );
}

#[tokio::test]
async fn transit_encrypts_and_wraps_data_keys() {
    let bao = root();
    let mount = unique("transit");
    bao.ensure_engine(&mount, Engine::Transit).await.unwrap();
    bao.transit_ensure_key(&mount, "secrets", KeyType::Aes256Gcm96)
        .await
        .unwrap();
    let ciphertext = bao
        .transit_encrypt(&mount, "secrets", b"api secret")
        .await
        .unwrap();
    assert!(ciphertext.starts_with("vault:v1:"));
    assert!(!ciphertext.contains("api secret"));
    let plaintext = bao
        .transit_decrypt(&mount, "secrets", &ciphertext)
        .await
        .unwrap();
    assert_eq!(plaintext.expose(), b"api secret");
    assert!(!format!("{plaintext:?}").contains("api"));

    let key = bao.transit_data_key(&mount, "secrets").await.unwrap();
    assert_eq!(key.plaintext.expose().len(), 32);
    let opened = bao
        .transit_decrypt(&mount, "secrets", &key.ciphertext)
        .await
        .unwrap();
    assert_eq!(opened, key.plaintext);

    // A tampered ciphertext is refused by OpenBao, a typed refusal, not "unavailable".
    let tampered = format!("{}AAAA", &ciphertext[..ciphertext.len() - 4]);
    let error = bao
        .transit_decrypt(&mount, "secrets", &tampered)
        .await
        .unwrap_err();
    assert!(
        matches!(error, BaoError::Rejected { status: 400, .. }),
        "{error:?}"
    );
    assert!(!error.is_unavailable());
}

/// RFC 4648 base32 (no padding), as in an `otpauth://` secret.
fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u64, Vec::new());
    for c in text.bytes().filter(|&c| c != b'=') {
        let digit = ALPHABET.iter().position(|&a| a == c).unwrap() as u64;
        value = (value << 5) | digit;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
        }
    }
    out
}

/// The RFC 6238 code (SHA-1, 6 digits, 30 s) of `secret` at `unix_s`.
fn totp_code(secret: &[u8], unix_s: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &(unix_s / 30).to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let word = u32::from_be_bytes(mac[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", word % 1_000_000)
}

#[tokio::test]
async fn a_totp_code_is_valid_once_and_a_replay_is_a_verdict_not_an_error() {
    let bao = root();
    let mount = unique("totp");
    bao.ensure_engine(&mount, Engine::Totp).await.unwrap();
    let enrolment = bao
        .totp_generate(&mount, "user-1", "Peregrine", "alice@example.com")
        .await
        .unwrap();
    assert!(
        enrolment
            .url
            .starts_with("otpauth://totp/Peregrine:alice@example.com?")
    );
    assert!(enrolment.qr_png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(!format!("{enrolment:?}").contains("secret"));
    let secret = enrolment
        .url
        .split(['?', '&'])
        .find_map(|part| part.strip_prefix("secret="))
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = totp_code(&base32_decode(secret), now);
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);

    assert_eq!(
        bao.totp_check(&mount, "user-1", &wrong).await.unwrap(),
        Verdict::Invalid
    );
    assert_eq!(
        bao.totp_check(&mount, "user-1", &code).await.unwrap(),
        Verdict::Valid
    );
    assert_eq!(
        bao.totp_check(&mount, "user-1", &code).await.unwrap(),
        Verdict::AlreadyUsed
    );
    assert_eq!(
        bao.totp_check(&mount, "user-1", "12a456").await.unwrap(),
        Verdict::Invalid
    );

    bao.totp_delete(&mount, "user-1").await.unwrap();
    bao.totp_delete(&mount, "user-1").await.unwrap();
    let error = bao.totp_check(&mount, "user-1", &code).await.unwrap_err();
    assert!(!error.is_unavailable(), "{error:?}");
}

#[tokio::test]
async fn kv_create_keeps_the_first_secret_of_two_writers() {
    let bao = root();
    let mount = unique("kv");
    bao.ensure_engine(&mount, Engine::KvV2).await.unwrap();
    assert_eq!(bao.kv_get(&mount, "wallet/eth/seed").await.unwrap(), None);
    let first = json!({ "seed": "first" }).as_object().unwrap().clone();
    let second = json!({ "seed": "second" }).as_object().unwrap().clone();
    assert!(
        bao.kv_create(&mount, "wallet/eth/seed", &first)
            .await
            .unwrap()
    );
    assert!(
        !bao.kv_create(&mount, "wallet/eth/seed", &second)
            .await
            .unwrap()
    );
    assert_eq!(
        bao.kv_get(&mount, "wallet/eth/seed").await.unwrap(),
        Some(first)
    );
    bao.kv_put(&mount, "wallet/eth/seed", &second)
        .await
        .unwrap();
    assert_eq!(
        bao.kv_get(&mount, "wallet/eth/seed").await.unwrap(),
        Some(second)
    );
}

#[tokio::test]
async fn a_scoped_token_may_do_what_its_policy_names_and_nothing_else() {
    let bao = root();
    let transit = unique("transit");
    let kv = unique("kv");
    bao.ensure_engine(&transit, Engine::Transit).await.unwrap();
    bao.ensure_engine(&kv, Engine::KvV2).await.unwrap();
    bao.transit_ensure_key(&transit, "jwt", KeyType::Ed25519)
        .await
        .unwrap();
    bao.transit_ensure_key(&transit, "secrets", KeyType::Aes256Gcm96)
        .await
        .unwrap();
    let policy = unique("identity");
    let hcl = format!("path \"{transit}/sign/jwt\" {{ capabilities = [\"update\"] }}\n");
    bao.put_policy(&policy, &hcl).await.unwrap();
    let scoped = bao.with_token(bao.create_token(&[&policy], "5m").await.unwrap());

    scoped.transit_sign(&transit, "jwt", b"x").await.unwrap();
    let denied = [
        scoped
            .transit_encrypt(&transit, "secrets", b"x")
            .await
            .unwrap_err(),
        scoped.kv_get(&kv, "wallet/eth/seed").await.unwrap_err(),
        scoped.transit_rotate(&transit, "jwt").await.unwrap_err(),
    ];
    for error in denied {
        assert!(matches!(error, BaoError::Denied { .. }), "{error:?}");
    }
}

/// A private dev-mode OpenBao on `port`, killed when dropped.
struct PrivateBao(Child);

impl Drop for PrivateBao {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_private_bao(token: &str) -> (PrivateBao, OpenBao) {
    let port = free_port();
    let home = tempfile::tempdir().unwrap();
    let child = Command::new(required_env("BAO_BIN"))
        .args([
            "server",
            "-dev",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .arg(format!("-dev-root-token-id={token}"))
        .env("HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let private = PrivateBao(child);
    let bao = OpenBao::new(&format!("http://127.0.0.1:{port}"), BaoToken::new(token)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(bao.health().await, Ok(health) if !health.sealed) {
        assert!(
            Instant::now() < deadline,
            "the private OpenBao did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (private, bao)
}

#[tokio::test]
async fn a_sealed_or_stopped_openbao_is_unavailable_not_a_refusal() {
    let (private, bao) = start_private_bao("private-root").await;
    bao.ensure_engine("transit", Engine::Transit).await.unwrap();
    bao.transit_ensure_key("transit", "jwt", KeyType::Ed25519)
        .await
        .unwrap();
    bao.transit_sign("transit", "jwt", b"x").await.unwrap();

    bao.seal().await.unwrap();
    assert!(bao.health().await.unwrap().sealed);
    let error = bao.transit_sign("transit", "jwt", b"x").await.unwrap_err();
    assert!(matches!(error, BaoError::Sealed), "{error:?}");
    assert!(error.is_unavailable());

    drop(private);
    let error = bao.transit_sign("transit", "jwt", b"x").await.unwrap_err();
    assert!(matches!(error, BaoError::Unreachable { .. }), "{error:?}");
    assert!(error.is_unavailable());
    assert!(!format!("{error}").contains("private-root"));
}
