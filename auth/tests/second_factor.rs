//! 2FA through a real OpenBao's totp engine, over HTTP, with real MariaDB and SMTP: enrolment,
//! login with a code, single use, disable; identity's least-privilege token; and what happens
//! when OpenBao is sealed or gone (503 `identity.vault_unavailable` for 2FA, sessions go on
//! and get access tokens signed by the standby key, which the JWKS from before listed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod second_factor_support;
use second_factor_support as support;

use peregrine_auth::jwt::{TokenConfig, Verifier};
use peregrine_secrets::BaoError;
use peregrine_secrets::sys::Engine;
use reqwest::StatusCode;
use serde_json::json;
use support::*;

#[tokio::test]
async fn two_factor_is_enrolled_required_at_login_single_use_and_disabled_with_a_code() {
    let vault = identity_vault(&shared_root(), unique_vault_config()).await;
    let harness = start("two_factor", Some(vault)).await;
    // Stay clear of a period boundary: the codes below are for now and the neighbours.
    while into_period_s() > 24 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let (email, session) = harness.new_user("otp").await;
    let answer = harness
        .call(
            "POST",
            "/resource/otp/generate_qrcode",
            None,
            Some(&session),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let url = answer.body["data"]["url"].as_str().unwrap();
    assert!(url.starts_with("otpauth://totp/Peregrine:"), "{url}");
    let png = base64_decode(answer.body["data"]["barcode"].as_str().unwrap());
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let secret = secret_of(url);
    // A wrong code does not enable 2FA.
    let wrong = format!(
        "{:06}",
        (totp_at(&secret, 0).parse::<u32>().unwrap() + 7) % 1_000_000
    );
    let answer = harness
        .call(
            "POST",
            "/resource/otp/enable",
            Some(json!({"code": wrong})),
            Some(&session),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.code(), "identity.session.invalid_otp");
    assert_eq!(
        harness
            .call("GET", "/resource/users/me", None, Some(&session))
            .await
            .body["otp"],
        false
    );
    let now = totp_at(&secret, 0);
    let answer = harness
        .call(
            "POST",
            "/resource/otp/enable",
            Some(json!({"code": now})),
            Some(&session),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(
        harness
            .call("GET", "/resource/users/me", None, Some(&session))
            .await
            .body["otp"],
        true
    );

    // Login now needs a code; without one, or a wrong one, no session.
    let answer = harness.login(&email, None).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.code(), "identity.session.missing_otp");
    assert!(answer.headers.get("set-cookie").is_none());
    // (OpenBao burns every code tried in a period, right or wrong: a fresh wrong one here.)
    let wrong = format!("{:06}", (now.parse::<u32>().unwrap() + 8) % 1_000_000);
    let answer = harness.login(&email, Some(&wrong)).await;
    assert_eq!(answer.code(), "identity.session.invalid_otp");
    // The code that enabled 2FA is spent: a typed 4xx, not Barong's 500.
    let answer = harness.login(&email, Some(&now)).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(answer.code(), "identity.otp.already_used");
    assert!(answer.headers.get("set-cookie").is_none());
    let next = totp_at(&secret, 1);
    let second = harness.login_ok(&email, Some(&next)).await;

    // Disabling needs a fresh code too.
    let answer = harness
        .call(
            "POST",
            "/resource/otp/disable",
            Some(json!({"code": next})),
            Some(&second),
        )
        .await;
    assert_eq!(answer.code(), "identity.otp.already_used");
    let previous = totp_at(&secret, -1);
    let answer = harness
        .call(
            "POST",
            "/resource/otp/disable",
            Some(json!({"code": previous})),
            Some(&second),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    harness.login_ok(&email, None).await;
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[tokio::test]
async fn identitys_token_may_use_its_own_paths_and_nothing_else() {
    let root = shared_root();
    let config = unique_vault_config();
    let vault = identity_vault(&root, config.clone()).await;
    let kv = unique("kv");
    root.ensure_engine(&kv, Engine::KvV2).await.unwrap();
    let (client, transit) = (&vault.client, &config.transit_mount);
    client
        .transit_sign(transit, &config.jwt_key, b"x")
        .await
        .unwrap();
    client
        .transit_public_keys(transit, &config.jwt_key)
        .await
        .unwrap();
    let sealed = client
        .transit_encrypt(transit, &config.secrets_key, b"s")
        .await
        .unwrap();
    client
        .transit_decrypt(transit, &config.secrets_key, &sealed)
        .await
        .unwrap();
    client
        .totp_generate(&config.totp_mount, "user-ID0000000001", "P", "a@b.c")
        .await
        .unwrap();
    let denied = [
        client
            .transit_rotate(transit, &config.jwt_key)
            .await
            .unwrap_err(),
        client
            .transit_sign(transit, &config.secrets_key, b"x")
            .await
            .unwrap_err(),
        client
            .transit_encrypt(transit, &config.jwt_key, b"x")
            .await
            .unwrap_err(),
        client.kv_get(&kv, "wallet/eth/seed").await.unwrap_err(),
        client
            .totp_generate(&config.totp_mount, "operator", "P", "a@b.c")
            .await
            .unwrap_err(),
        client
            .ensure_engine(&unique("transit"), Engine::Transit)
            .await
            .unwrap_err(),
    ];
    for error in denied {
        assert!(matches!(error, BaoError::Denied { .. }), "{error:?}");
    }
}

/// While OpenBao cannot answer: `session` gets a token signed by the standby key, which a
/// verifier made from the JWKS of before (`jwks`) accepts, and the JWKS still lists the same.
async fn token_from_the_standby_key(
    harness: &Harness,
    session: &Session,
    verifier: &Verifier,
    jwks: &serde_json::Value,
) {
    let issued = harness
        .call("POST", "/resource/tokens", None, Some(session))
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let kid = issued.body["kid"].as_str().unwrap();
    assert!(kid.contains("-standby-"), "{}", issued.body);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = verifier
        .verify(issued.body["token"].as_str().unwrap(), now_s)
        .unwrap();
    assert!(claims.otp);
    let during = harness.call("GET", "/identity/jwks", None, None).await;
    assert_eq!(during.status, StatusCode::OK, "{}", during.body);
    assert_eq!(&during.body, jwks);
    let transit = jwks["keys"].as_array().unwrap();
    assert!(
        transit
            .iter()
            .any(|key| key["kid"].as_str().unwrap().ends_with("-v1"))
    );
}

#[tokio::test]
async fn a_sealed_or_stopped_openbao_answers_503_for_2fa_and_sessions_go_on() {
    let (mut private, root) = start_private_bao("identity-private-root").await;
    let vault = identity_vault(&root, peregrine_auth::vault::VaultConfig::default()).await;
    let harness = start("two_factor_sealed", Some(vault)).await;
    while into_period_s() > 24 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let (with_2fa, session) = harness.new_user("sealed2fa").await;
    let secret = harness.enable_2fa(&session).await;
    let (without_2fa, plain) = harness.new_user("sealedplain").await;
    let before = harness.call("GET", "/identity/jwks", None, None).await;
    let jwks_bytes = serde_json::to_vec(&before.body).unwrap();
    let verifier = Verifier::from_jwks(&jwks_bytes, TokenConfig::default()).unwrap();

    root.seal().await.unwrap();
    for round in ["sealed", "stopped"] {
        token_from_the_standby_key(&harness, &session, &verifier, &before.body).await;
        let answer = harness.login(&with_2fa, Some(&totp_at(&secret, 1))).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{round}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "identity.vault_unavailable", "{round}");
        assert!(answer.headers.get("retry-after").is_some());
        assert!(answer.headers.get("set-cookie").is_none());
        let answer = harness
            .call(
                "POST",
                "/resource/otp/disable",
                Some(json!({"code": totp_at(&secret, -1)})),
                Some(&session),
            )
            .await;
        assert_eq!(answer.code(), "identity.vault_unavailable", "{round}");
        // Existing sessions, and users without 2FA, go on.
        for s in [&session, &plain] {
            let me = harness
                .call("GET", "/resource/users/me", None, Some(s))
                .await;
            assert_eq!(me.status, StatusCode::OK, "{round}");
        }
        harness.login_ok(&without_2fa, None).await;
        assert_eq!(
            harness
                .call("GET", "/resource/users/me", None, Some(&session))
                .await
                .body["otp"],
            true,
            "{round}: 2FA stays on"
        );
        private.kill();
    }
}
