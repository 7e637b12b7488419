//! The dev store's directory: what was written survives a stop and a start, and a wrong
//! master key, a changed state file or a second process is a typed error, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use peregrine_devsecrets::{DevSecrets, DevSecretsError};
use peregrine_secrets::sys::Engine;
use peregrine_secrets::totp::Verdict;
use peregrine_secrets::transit::KeyType;
use peregrine_secrets::{BaoError, OpenBao};
use serde_json::json;
use support::{code_at, counter_now};

mod support;

fn client(store: &DevSecrets) -> OpenBao {
    OpenBao::new(&store.url(), store.root_token()).unwrap()
}

#[tokio::test]
async fn keys_enrolments_and_documents_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = DevSecrets::start(dir.path()).await.unwrap();
    let first_root = store.root_token();
    let bao = client(&store);
    bao.ensure_engine("transit", Engine::Transit).await.unwrap();
    bao.ensure_engine("totp", Engine::Totp).await.unwrap();
    bao.ensure_engine("kv", Engine::KvV2).await.unwrap();
    bao.transit_ensure_key("transit", "jwt", KeyType::Ed25519)
        .await
        .unwrap();
    bao.transit_rotate("transit", "jwt").await.unwrap();
    bao.transit_ensure_key("transit", "secrets", KeyType::Aes256Gcm96)
        .await
        .unwrap();
    let ciphertext = bao
        .transit_encrypt("transit", "secrets", b"kept")
        .await
        .unwrap();
    let enrolment = bao
        .totp_generate("totp", "user-1", "Peregrine", "alice@example.com")
        .await
        .unwrap();
    let document = json!({ "seed": "abcd" }).as_object().unwrap().clone();
    assert!(bao.kv_create("kv", "seeds/eth", &document).await.unwrap());
    let public_keys = bao.transit_public_keys("transit", "jwt").await.unwrap();
    // A code used before the restart stays used after it.
    let used = code_at(&enrolment.url, counter_now());
    assert_eq!(
        bao.totp_check("totp", "user-1", &used).await.unwrap(),
        Verdict::Valid
    );
    store.shutdown().await;

    let store = DevSecrets::start(dir.path()).await.unwrap();
    let bao = client(&store);
    assert_eq!(
        bao.transit_public_keys("transit", "jwt").await.unwrap(),
        public_keys
    );
    let opened = bao
        .transit_decrypt("transit", "secrets", &ciphertext)
        .await
        .unwrap();
    assert_eq!(opened.expose(), b"kept");
    assert_eq!(bao.kv_get("kv", "seeds/eth").await.unwrap(), Some(document));
    assert_eq!(
        bao.totp_check("totp", "user-1", &used).await.unwrap(),
        Verdict::AlreadyUsed
    );
    let next = code_at(&enrolment.url, counter_now() + 1);
    assert_eq!(
        bao.totp_check("totp", "user-1", &next).await.unwrap(),
        Verdict::Valid
    );
    // The root token is new at each start; the old one opens nothing.
    let stale = bao.with_token(first_root);
    let error = stale.kv_get("kv", "seeds/eth").await.unwrap_err();
    assert!(matches!(error, BaoError::Denied { .. }), "{error:?}");
    store.shutdown().await;
}

async fn start_err(dir: &Path) -> DevSecretsError {
    match DevSecrets::start(dir).await {
        Ok(store) => panic!("started: {store:?}"),
        Err(error) => error,
    }
}

/// A store directory with some state in it, stopped.
async fn written(dir: &Path) {
    let store = DevSecrets::start(dir).await.unwrap();
    let bao = client(&store);
    bao.ensure_engine("kv", Engine::KvV2).await.unwrap();
    let document = json!({ "seed": "abcd" }).as_object().unwrap().clone();
    bao.kv_put("kv", "seeds/eth", &document).await.unwrap();
    store.shutdown().await;
}

#[tokio::test]
async fn a_wrong_master_key_is_a_typed_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path()).await;
    let key_path = dir.path().join("master.key");
    let state_before = std::fs::read(dir.path().join("state.bin")).unwrap();
    let original = std::fs::read(&key_path).unwrap();
    std::fs::write(&key_path, [7u8; 32]).unwrap();
    let error = start_err(dir.path()).await;
    assert!(
        matches!(error, DevSecretsError::WrongMasterKey(_)),
        "{error:?}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("state.bin")).unwrap(),
        state_before
    );

    std::fs::write(&key_path, [7u8; 31]).unwrap();
    let error = start_err(dir.path()).await;
    assert!(
        matches!(error, DevSecretsError::MasterKeyLength { len: 31, .. }),
        "{error:?}"
    );

    std::fs::write(&key_path, &original).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = start_err(dir.path()).await;
    assert!(
        matches!(
            error,
            DevSecretsError::MasterKeyPermissions { mode: 0o644, .. }
        ),
        "{error:?}"
    );

    std::fs::remove_file(&key_path).unwrap();
    let error = start_err(dir.path()).await;
    assert!(
        matches!(error, DevSecretsError::MasterKeyMissing { .. }),
        "{error:?}"
    );
    assert!(!key_path.exists(), "no new key may replace the lost one");

    std::fs::write(&key_path, &original).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let store = DevSecrets::start(dir.path()).await.unwrap();
    let kept = client(&store).kv_get("kv", "seeds/eth").await.unwrap();
    assert!(kept.is_some());
    store.shutdown().await;
}

#[tokio::test]
async fn a_tampered_state_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path()).await;
    let state_path = dir.path().join("state.bin");
    let original = std::fs::read(&state_path).unwrap();
    let tampered: Vec<Vec<u8>> = vec![
        {
            let mut flipped = original.clone();
            let last = flipped.len() - 20;
            flipped[last] ^= 1;
            flipped
        },
        original[..original.len() - 1].to_vec(),
        original[..10].to_vec(),
        Vec::new(),
        b"not a state file at all, but long enough to hold a header and then some".to_vec(),
    ];
    for (index, bytes) in tampered.iter().enumerate() {
        std::fs::write(&state_path, bytes).unwrap();
        let error = start_err(dir.path()).await;
        assert!(
            matches!(error, DevSecretsError::StateTampered(_)),
            "case {index}: {error:?}"
        );
    }
    std::fs::write(&state_path, &original).unwrap();
    DevSecrets::start(dir.path())
        .await
        .unwrap()
        .shutdown()
        .await;
}

#[tokio::test]
async fn a_second_process_on_the_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = DevSecrets::start(dir.path()).await.unwrap();
    let error = start_err(dir.path()).await;
    assert!(matches!(error, DevSecretsError::InUse(_)), "{error:?}");
    assert!(store.is_running());
    store.shutdown().await;
    DevSecrets::start(dir.path())
        .await
        .unwrap()
        .shutdown()
        .await;
}

#[tokio::test]
async fn the_master_key_is_owner_only_and_the_state_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let store = DevSecrets::start(dir.path()).await.unwrap();
    let bao = client(&store);
    bao.ensure_engine("kv", Engine::KvV2).await.unwrap();
    let document = json!({ "seed": "plaintext-marker-4242" })
        .as_object()
        .unwrap()
        .clone();
    bao.kv_put("kv", "seeds/eth", &document).await.unwrap();
    store.shutdown().await;
    let mode = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("master.key"), 0o600);
    assert_eq!(mode("state.bin"), 0o600);
    let state = std::fs::read(dir.path().join("state.bin")).unwrap();
    let text = String::from_utf8_lossy(&state);
    assert!(!text.contains("plaintext-marker"));
    assert!(!text.contains("seeds/eth"));
}

#[tokio::test]
async fn a_sealed_store_answers_unavailable_until_restarted() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path()).await;
    let store = DevSecrets::start(dir.path()).await.unwrap();
    let bao = client(&store);
    bao.seal().await.unwrap();
    assert!(bao.health().await.unwrap().sealed);
    let error = bao.kv_get("kv", "seeds/eth").await.unwrap_err();
    assert!(matches!(error, BaoError::Sealed), "{error:?}");
    assert!(error.is_unavailable());
    store.shutdown().await;
    let error = bao.kv_get("kv", "seeds/eth").await.unwrap_err();
    assert!(matches!(error, BaoError::Unreachable { .. }), "{error:?}");
    let store = DevSecrets::start(dir.path()).await.unwrap();
    assert!(
        client(&store)
            .kv_get("kv", "seeds/eth")
            .await
            .unwrap()
            .is_some()
    );
    store.shutdown().await;
}
