//! Self-service API keys over HTTP with real MariaDB, SMTP and OpenBao: 2FA and a fresh code
//! for every change, secrets shown once and kept only as transit ciphertext, another user's
//! key out of reach, and the event feed a gateway's cache follows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod second_factor_support;
use second_factor_support as support;

use peregrine_auth::api_keys::Scopes;
use peregrine_auth::key_feed::{KeyChange, KeyFeed};
use reqwest::StatusCode;
use serde_json::json;
use support::*;

/// The key changes since the last poll (the level changes, a verified e-mail's among them,
/// are the level gate's: left out here).
async fn changes(feed: &mut KeyFeed) -> Vec<KeyChange> {
    let mut out = Vec::new();
    feed.poll(|change| out.push(change)).await.unwrap();
    out.retain(|change| !matches!(change, KeyChange::Level { .. }));
    out
}

#[tokio::test]
async fn api_keys_need_2fa_and_a_fresh_code_and_feed_the_gateways() {
    let vault = identity_vault(&shared_root(), unique_vault_config()).await;
    let harness = start("api_keys", Some(vault.clone())).await;
    let (mut feed, initial) = KeyFeed::start(harness.identity.store().clone(), vault.clone())
        .await
        .unwrap();
    assert!(initial.is_empty());
    while into_period_s() > 22 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let (_, alice) = harness.new_user("keys").await;
    let hmac = json!({"scope": ["read", "trade"], "totp_code": "000000"});
    let answer = harness
        .call("POST", "/resource/api_keys", Some(hmac), Some(&alice))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.code(), "identity.otp.not_enabled");

    let secret = harness.enable_2fa(&alice).await;
    let next = totp_at(&secret, 1);
    let request =
        json!({"scope": ["read", "trade"], "totp_code": next, "allowed_ips": ["127.0.0.1"]});
    let answer = harness
        .call(
            "POST",
            "/resource/api_keys",
            Some(request.clone()),
            Some(&alice),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let kid = answer.body["kid"].as_str().unwrap().to_owned();
    let shown = answer.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(shown.len(), 64);
    // The same code again: refused, and no second key.
    let answer = harness
        .call("POST", "/resource/api_keys", Some(request), Some(&alice))
        .await;
    assert_eq!(answer.code(), "identity.otp.already_used");
    let listed = harness
        .call("GET", "/resource/api_keys", None, Some(&alice))
        .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "{}", listed.body);
    assert!(
        !listed.body.to_string().contains(&shown),
        "the secret is shown once"
    );
    let row = harness
        .identity
        .store()
        .api_key(&kid)
        .await
        .unwrap()
        .unwrap();
    let ciphertext = row.secret_ciphertext.unwrap();
    assert!(ciphertext.starts_with("vault:v1:") && !ciphertext.contains(&shown));

    // The gateway's feed learns the key with its secret in clear, decrypted by OpenBao.
    let mut got = changes(&mut feed).await;
    assert_eq!(got.len(), 1);
    let KeyChange::Upsert(key) = got.remove(0) else {
        panic!("an upsert")
    };
    assert_eq!(key.kid, kid);
    assert_eq!(key.hmac_secret.unwrap().expose(), shown.as_bytes());
    assert_eq!(key.scopes, Scopes::from_names(&["read", "trade"]).unwrap());
    assert_eq!(
        key.allowed_ips,
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(!key.legacy);

    // Another user cannot disable it (the same answer as a key that does not exist).
    let (_, mallory) = harness.new_user("mallory").await;
    let mallory_secret = harness.enable_2fa(&mallory).await;
    let answer = harness
        .call(
            "PATCH",
            &format!("/resource/api_keys/{kid}"),
            Some(json!({"totp_code": totp_at(&mallory_secret, 1)})),
            Some(&mallory),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "resource.api_key.doesnt_exist");
    assert!(changes(&mut feed).await.is_empty());
    // An ed25519 key for the QUIC logon, registered the same way.
    let public_key = "11".repeat(32);
    let request = json!({"algorithm": "ed25519", "public_key": public_key, "scope": ["read"], "totp_code": totp_at(&mallory_secret, -1)});
    let answer = harness
        .call("POST", "/resource/api_keys", Some(request), Some(&mallory))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert!(answer.body["secret"].is_null());
    let quic_kid: u64 = answer.body["kid"].as_str().unwrap().parse().unwrap();
    assert!(quic_kid >= 1 << 40);
    let got = changes(&mut feed).await;
    assert!(
        matches!(&got[..], [KeyChange::Upsert(k)] if k.public_key == Some([0x11; 32]) && k.hmac_secret.is_none())
    );

    // The owner disables it with a fresh code: the feed drops it.
    let answer = harness
        .call(
            "PATCH",
            &format!("/resource/api_keys/{kid}"),
            Some(json!({"totp_code": totp_at(&secret, -1)})),
            Some(&alice),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let got = changes(&mut feed).await;
    assert!(
        matches!(&got[..], [KeyChange::Remove(k)] if *k == kid),
        "{got:?}"
    );
    let listed = harness
        .call("GET", "/resource/api_keys", None, Some(&alice))
        .await;
    assert_eq!(listed.body[0]["state"], "disabled");
    // A fresh start of the feed loads only the active key.
    let (_, keys) = KeyFeed::start(harness.identity.store().clone(), vault)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid, quic_kid.to_string());
}
