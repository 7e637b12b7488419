//! Requests no client of ours sends — odd paths, bodies, methods and tokens — get OpenBao's
//! kind of refusal (4xx, `{"errors": [...]}`) and change nothing; the server keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use peregrine_devsecrets::DevSecrets;
use peregrine_secrets::sys::Engine;
use peregrine_secrets::transit::KeyType;
use peregrine_secrets::{BaoError, OpenBao};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn hostile_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = DevSecrets::start(dir.path()).await.unwrap();
    let bao = OpenBao::new(&store.url(), store.root_token()).unwrap();
    bao.ensure_engine("kv", Engine::KvV2).await.unwrap();
    bao.ensure_engine("transit", Engine::Transit).await.unwrap();
    bao.transit_ensure_key("transit", "k", KeyType::Aes256Gcm96)
        .await
        .unwrap();
    let document = json!({ "v": 1 }).as_object().unwrap().clone();
    bao.kv_put("kv", "a/b", &document).await.unwrap();
    let state = std::fs::read(dir.path().join("state.bin")).unwrap();

    let root = format!("{:?}", store.root_token());
    assert!(!root.contains("s."), "the root token prints redacted");
    let http = reqwest::Client::new();
    let token = store_token(&store, &bao).await;
    let deep = format!("{{\"data\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(Method, &str, Vec<u8>)> = vec![
        (Method::POST, "kv/data", b"{\"data\":{}}".to_vec()),
        (Method::POST, "kv/data/", b"{\"data\":{}}".to_vec()),
        (Method::POST, "kv/data/a//b", b"{\"data\":{}}".to_vec()),
        (Method::POST, "kv/data/%2e%2e/x", b"{\"data\":{}}".to_vec()),
        (Method::POST, "kv/data/a/b", b"[1,2]".to_vec()),
        (Method::POST, "kv/data/a/b", b"{\"data\":\"text\"}".to_vec()),
        (Method::POST, "kv/data/a/b", vec![0xff, 0xfe, 0x00]),
        (Method::POST, "kv/data/a/b", deep.into_bytes()),
        (
            Method::POST,
            "kv/data/a/b",
            b"{\"data\":{},\"options\":{\"cas\":-1}}".to_vec(),
        ),
        (Method::POST, "transit/keys", Vec::new()),
        (Method::POST, "transit/keys/k/rotate/x", Vec::new()),
        (Method::POST, "transit/sign/k/extra", Vec::new()),
        (
            Method::POST,
            "transit/decrypt/k",
            b"{\"ciphertext\":7}".to_vec(),
        ),
        (
            Method::POST,
            "transit/datakey/plaintext/k",
            b"{\"bits\":4096}".to_vec(),
        ),
        (Method::DELETE, "transit/keys/k", Vec::new()),
        (Method::PATCH, "kv/data/a/b", b"{\"data\":{}}".to_vec()),
        (
            Method::POST,
            "sys/mounts/sys",
            b"{\"type\":\"kv\"}".to_vec(),
        ),
        (
            Method::POST,
            "sys/mounts/kv/inner",
            b"{\"type\":\"transit\"}".to_vec(),
        ),
        (
            Method::PUT,
            "sys/policies/acl/p",
            b"{\"policy\":\"path \\\"a/+/b\\\" {}\"}".to_vec(),
        ),
        (
            Method::POST,
            "auth/token/create",
            b"{\"policies\":\"root\"}".to_vec(),
        ),
        (
            Method::POST,
            "auth/token/create",
            b"{\"ttl\":\"forever\"}".to_vec(),
        ),
        (Method::POST, "nowhere/at/all", Vec::new()),
    ];
    for (method, path, body) in cases {
        let response = http
            .request(method.clone(), format!("{}/v1/{path}", store.url()))
            .header("X-Vault-Token", &token)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{method} {path}: {status}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(answer["errors"].is_array(), "{method} {path}: {answer}");
    }
    for token in ["", "s.guess", "s.x y"] {
        let response = http
            .get(format!("{}/v1/kv/data/a/b", store.url()))
            .header("X-Vault-Token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403, "{token:?}");
    }
    assert_eq!(std::fs::read(dir.path().join("state.bin")).unwrap(), state);
    assert_eq!(bao.kv_get("kv", "a/b").await.unwrap(), Some(document));
    store.shutdown().await;
}

/// The root token's text (the client keeps it private; the tests ask the store).
async fn store_token(store: &DevSecrets, bao: &OpenBao) -> String {
    // A child of root with every policy the cases need is the root token itself here: make a
    // policy-less token to prove scoped tokens are refused, then use root for the cases.
    let scoped = bao.create_token(&[], "1m").await.unwrap();
    let refused = bao
        .with_token(scoped)
        .kv_get("kv", "a/b")
        .await
        .unwrap_err();
    assert!(matches!(refused, BaoError::Denied { .. }), "{refused:?}");
    store.root_token_text().to_owned()
}

#[tokio::test]
async fn requests_and_saves_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let registry = prometheus::Registry::new();
    let store = DevSecrets::start_with_metrics(dir.path(), &registry)
        .await
        .unwrap();
    let bao = OpenBao::new(&store.url(), store.root_token()).unwrap();
    bao.ensure_engine("kv", Engine::KvV2).await.unwrap();
    let document = json!({ "v": 1 }).as_object().unwrap().clone();
    bao.kv_put("kv", "a", &document).await.unwrap();
    let stranger = bao.with_token(peregrine_secrets::BaoToken::new("s.stranger"));
    stranger.kv_get("kv", "a").await.unwrap_err();
    let value = |name: &str, label: &str| {
        registry
            .gather()
            .iter()
            .filter(|family| family.name() == name)
            .flat_map(|family| family.get_metric().iter())
            .filter(|metric| metric.get_label().iter().any(|pair| pair.value() == label))
            .map(|metric| metric.get_counter().get_value())
            .sum::<f64>()
    };
    assert_eq!(value("devsecrets_state_saves_total", "ok"), 2.0);
    assert_eq!(value("devsecrets_requests_total", "200"), 1.0);
    assert_eq!(value("devsecrets_requests_total", "204"), 1.0);
    assert_eq!(value("devsecrets_requests_total", "403"), 1.0);
    assert!(
        DevSecrets::start_with_metrics(tempfile::tempdir().unwrap().path(), &registry)
            .await
            .is_err(),
        "a second store cannot register the same names"
    );
    store.shutdown().await;
}
