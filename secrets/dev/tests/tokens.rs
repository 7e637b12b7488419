//! What the dev store enforces beyond the scenarios OpenBao shares: a policy construct it
//! would not enforce is refused when written, a token's lifetime ends, a child token never
//! carries more than its parent, and two first writers race to exactly one winner.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use peregrine_devsecrets::DevSecrets;
use peregrine_secrets::BaoError;
use peregrine_secrets::sys::Engine;
use serde_json::json;

#[tokio::test]
async fn policy_constructs_outside_the_subset_are_refused_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = DevSecrets::start(dir.path()).await.unwrap();
    let bao = store.root_client().unwrap();
    for hcl in [
        "path \"kv/data/+/seed\" { capabilities = [\"read\"] }",
        "path \"kv/*/seed\" { capabilities = [\"read\"] }",
        "path \"kv/data/*\" { capabilities = [\"read\"] allowed_parameters = {} }",
        "path \"kv/data/*\" { policy = \"write\" }",
    ] {
        let error = bao.put_policy("wallets", hcl).await.unwrap_err();
        match error {
            BaoError::Rejected {
                status: 400,
                messages,
                ..
            } => assert!(
                messages[0].contains("not supported by the dev secret store"),
                "{messages:?}"
            ),
            other => panic!("{hcl}: {other:?}"),
        }
    }
    let missing = bao
        .create_token(&["wallets"], "1m")
        .await
        .map(|token| bao.with_token(token))
        .unwrap();
    bao.ensure_engine("kv", Engine::KvV2).await.unwrap();
    let denied = missing.kv_get("kv", "seed").await.unwrap_err();
    assert!(matches!(denied, BaoError::Denied { .. }), "{denied:?}");
    store.shutdown().await;
}

#[tokio::test]
async fn tokens_expire_and_children_carry_no_more_than_their_parent() {
    let dir = tempfile::tempdir().unwrap();
    let store = DevSecrets::start(dir.path()).await.unwrap();
    let bao = store.root_client().unwrap();
    bao.ensure_engine("kv", Engine::KvV2).await.unwrap();
    bao.put_policy(
        "reader",
        "path \"kv/data/*\" { capabilities = [\"read\"] }\n\
         path \"auth/token/create\" { capabilities = [\"update\"] }",
    )
    .await
    .unwrap();
    bao.put_policy(
        "writer",
        "path \"kv/data/*\" { capabilities = [\"create\", \"update\"] }",
    )
    .await
    .unwrap();
    let reader = bao.with_token(bao.create_token(&["reader"], "1m").await.unwrap());
    let wider = reader
        .create_token(&["reader", "writer"], "1m")
        .await
        .unwrap_err();
    assert!(
        matches!(wider, BaoError::Rejected { status: 400, .. }),
        "{wider:?}"
    );
    let same = reader.create_token(&["reader"], "1m").await;
    assert!(same.is_ok(), "{same:?}");

    let brief = bao.with_token(bao.create_token(&["reader"], "1s").await.unwrap());
    assert_eq!(brief.kv_get("kv", "x").await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let expired = brief.kv_get("kv", "x").await.unwrap_err();
    assert!(matches!(expired, BaoError::Denied { .. }), "{expired:?}");
    store.shutdown().await;
}

#[tokio::test]
async fn concurrent_first_writers_leave_exactly_one_secret() {
    const WRITERS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let store = DevSecrets::start(dir.path()).await.unwrap();
    let bao = store.root_client().unwrap();
    bao.ensure_engine("kv", Engine::KvV2).await.unwrap();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let bao = bao.clone();
        tasks.push(tokio::spawn(async move {
            let document = json!({ "seed": writer.to_string() })
                .as_object()
                .unwrap()
                .clone();
            bao.kv_create("kv", "seeds/eth", &document).await.unwrap()
        }));
    }
    let mut winners = Vec::new();
    for (writer, task) in tasks.into_iter().enumerate() {
        if task.await.unwrap() {
            winners.push(writer);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let kept = bao.kv_get("kv", "seeds/eth").await.unwrap().unwrap();
    assert_eq!(kept["seed"], json!(winners[0].to_string()));
    store.shutdown().await;
}
