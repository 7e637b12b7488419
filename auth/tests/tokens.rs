//! Access JWTs signed by a real OpenBao's transit ed25519 key, issued over HTTP, verified from
//! memory with the JWKS: rotation without downtime, the refresher, and the forgeries a
//! verifier must refuse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod second_factor_support;
use second_factor_support as support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use peregrine_auth::jwt::{JwtError, Refresher, TokenConfig, Verifier};
use reqwest::StatusCode;
use ring::hmac;
use serde_json::{Value, json};
use support::*;

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn token(harness: &Harness, session: &Session) -> (String, String) {
    let answer = harness
        .call("POST", "/resource/tokens", None, Some(session))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let token = answer.body["token"].as_str().unwrap().to_owned();
    (token, answer.body["kid"].as_str().unwrap().to_owned())
}

async fn jwks(harness: &Harness) -> Vec<u8> {
    let answer = harness
        .http
        .get(format!("{}/identity/jwks", harness.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    answer.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn tokens_verify_from_memory_and_survive_a_key_rotation() {
    let root = shared_root();
    let config = unique_vault_config();
    let vault = identity_vault(&root, config.clone()).await;
    let harness = start("tokens_rotation", Some(vault)).await;
    let (email, session) = harness.new_user("jwt").await;
    let url = format!("{}/identity/jwks", harness.base);
    let refresher = Refresher::start(url, TokenConfig::default(), Duration::from_millis(200))
        .await
        .unwrap();

    let (first, kid) = token(&harness, &session).await;
    assert_eq!(kid, format!("{}-v1", config.jwt_key));
    let claims = refresher.current().verify(&first, now_s()).unwrap();
    assert_eq!(claims.email, email);
    assert!(claims.exp - claims.iat <= 60);
    let me = harness
        .call("GET", "/resource/users/me", None, Some(&session))
        .await;
    assert_eq!(claims.sub, me.body["uid"].as_str().unwrap());
    assert_eq!(
        u64::from(claims.account.unwrap()),
        me.body["account_id"].as_u64().unwrap()
    );

    // An operator rotates the key; identity signs with v2 from the next token on.
    root.transit_rotate(&config.transit_mount, &config.jwt_key)
        .await
        .unwrap();
    let (second, kid) = token(&harness, &session).await;
    assert_eq!(kid, format!("{}-v2", config.jwt_key));
    let set: Value = serde_json::from_slice(&jwks(&harness).await).unwrap();
    let kids: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    // Transit's versions, newest first, then identity's in-memory standby key (it signs only
    // while OpenBao cannot, and is listed so that its tokens verify).
    assert_eq!(kids.len(), 3, "{kids:?}");
    assert_eq!(
        kids[..2],
        [
            format!("{}-v2", config.jwt_key),
            format!("{}-v1", config.jwt_key)
        ]
    );
    assert!(
        kids[2].starts_with(&format!("{}-standby-", config.jwt_key)),
        "{kids:?}"
    );
    // The refresher learns v2 within its interval; the v1 token stays valid until it expires.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while refresher.current().verify(&second, now_s()).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the refresher never loaded v2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refresher.current().verify(&first, now_s()).unwrap();
    assert_eq!(harness.identity.metrics().tokens_issued_total.get(), 2);
}

/// A token's `otp` claim says whether its user has 2FA; enabling 2FA ends the user's other
/// sessions (which never proved a code), so a token with `otp` comes from a session that did.
#[tokio::test]
async fn the_otp_claim_follows_2fa_and_enabling_it_ends_the_other_sessions() {
    let root = shared_root();
    let vault = identity_vault(&root, unique_vault_config()).await;
    let harness = start("tokens_otp", Some(vault)).await;
    let (email, here) = harness.new_user("otp_claim").await;
    let elsewhere = harness.login_ok(&email, None).await;
    let verifier = Verifier::from_jwks(&jwks(&harness).await, TokenConfig::default()).unwrap();
    let (before, _) = token(&harness, &here).await;
    assert!(!verifier.verify(&before, now_s()).unwrap().otp);
    harness.enable_2fa(&here).await;
    let (after, _) = token(&harness, &here).await;
    assert!(verifier.verify(&after, now_s()).unwrap().otp);
    let me = |session| harness.call("GET", "/resource/users/me", None, Some(session));
    assert_eq!(me(&here).await.status, StatusCode::OK);
    assert_eq!(me(&elsewhere).await.status, StatusCode::UNAUTHORIZED);
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    let claims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    (header, claims, it.next().unwrap().to_owned())
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let vault = identity_vault(&shared_root(), unique_vault_config()).await;
    let harness = start("tokens_forged", Some(vault)).await;
    let (_, session) = harness.new_user("forger").await;
    let (good, _) = token(&harness, &session).await;
    let set = jwks(&harness).await;
    let verifier = Verifier::from_jwks(&set, TokenConfig::default()).unwrap();
    let claims = verifier.verify(&good, now_s()).unwrap();
    let (header, payload, signature) = parts(&good);

    // alg none, with and without a signature.
    let mut none = header.clone();
    none["alg"] = json!("none");
    for forged in [
        format!("{}.{}.", b64(&none), b64(&payload)),
        format!("{}.{}.{signature}", b64(&none), b64(&payload)),
    ] {
        assert_eq!(verifier.verify(&forged, now_s()), Err(JwtError::Algorithm));
    }
    // HS256 with the public key as the HMAC secret (the classic key-confusion attack).
    let set_json: Value = serde_json::from_slice(&set).unwrap();
    let public = URL_SAFE_NO_PAD
        .decode(set_json["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let mut hs = header.clone();
    hs["alg"] = json!("HS256");
    let input = format!("{}.{}", b64(&hs), b64(&payload));
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &public),
        input.as_bytes(),
    );
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    assert_eq!(verifier.verify(&forged, now_s()), Err(JwtError::Algorithm));
    // An unknown kid, and none.
    let mut unknown = header.clone();
    unknown["kid"] = json!("identity-jwt-v99");
    let forged = format!("{}.{}.{signature}", b64(&unknown), b64(&payload));
    assert_eq!(verifier.verify(&forged, now_s()), Err(JwtError::UnknownKey));
    let mut no_kid = header.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let forged = format!("{}.{}.{signature}", b64(&no_kid), b64(&payload));
    assert_eq!(verifier.verify(&forged, now_s()), Err(JwtError::UnknownKey));
    // A tampered payload (another account) under the real signature.
    let mut richer = payload.clone();
    richer["account"] = json!(claims.account.unwrap() + 1);
    let forged = format!("{}.{}.{signature}", b64(&header), b64(&richer));
    assert_eq!(
        verifier.verify(&forged, now_s()),
        Err(JwtError::BadSignature)
    );
    // Expired (past the skew), and not yet valid.
    let skew = TokenConfig::default().skew_s;
    assert_eq!(
        verifier.verify(&good, claims.exp + skew),
        Err(JwtError::Expired)
    );
    verifier.verify(&good, claims.exp + skew - 1).unwrap();
    assert_eq!(
        verifier.verify(&good, claims.iat - skew - 1),
        Err(JwtError::NotYetValid)
    );
    // Another audience or issuer.
    let mut other = TokenConfig::default();
    other.audience = "another-service".to_owned();
    let foreign = Verifier::from_jwks(&set, other).unwrap();
    assert_eq!(foreign.verify(&good, now_s()), Err(JwtError::Audience));
    let mut other = TokenConfig::default();
    other.issuer = "someone-else".to_owned();
    let foreign = Verifier::from_jwks(&set, other).unwrap();
    assert_eq!(foreign.verify(&good, now_s()), Err(JwtError::Issuer));
    // Garbage of every shape is malformed, never a panic.
    for junk in ["", ".", "a.b", "a.b.c.d", "!!.!!.!!", &"a".repeat(5000)] {
        assert!(verifier.verify(junk, now_s()).is_err(), "{junk:.20}");
    }
    // And the genuine token still verifies: nothing above changed the verifier.
    verifier.verify(&good, now_s()).unwrap();
}
