//! Identity's self-service API keys at the REST bridge: a user with 2FA (a real OpenBao's totp
//! engine) creates a key; the bridge's cache, fed by identity's key events, accepts it within
//! 1 s; an order placed with it is signed over nonce, method, path and body; identity's access
//! JWT (transit-signed) reads and trades as a bearer token, verified from memory; a disabled key
//! is refused within 1 s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod rest_support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peregrine_auth::api_keys::{CreateKey, KeyKind, Scopes};
use peregrine_auth::jwt::{Refresher, TokenConfig, Verifier};
use peregrine_auth::key_feed::KeyFeed;
use peregrine_auth::store::NewUser;
use peregrine_auth::vault::{Vault, VaultConfig, provision};
use peregrine_auth::{
    Clock, Identity, IdentityConfig, Role, SessionAuth, Source, Store, UserState,
};
use peregrine_gateway::rest::auth::sign_request;
use peregrine_gateway::rest::key_follower::follow_keys;
use peregrine_secrets::{BaoToken, OpenBao};
use reqwest::StatusCode;
use rest_support::{Harness, read};
use ring::hmac;
use serde_json::{Value, json};

const CHANGE_WITHIN: Duration = Duration::from_secs(1);
const ORDERS: &str = "/api/v2/peatio/market/orders";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run under scripts/test"))
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// RFC 6238 (SHA-1, 6 digits, 30 s), `periods` from now, from an otpauth URL's secret.
fn totp(url: &str, periods: i64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let text = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap();
    let (mut bits, mut value, mut secret) = (0u32, 0u64, Vec::new());
    for c in text.bytes() {
        value = (value << 5) | ALPHABET.iter().position(|&a| a == c).unwrap() as u64;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            secret.push((value >> bits) as u8);
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let counter = ((now / 30) + periods) as u64;
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret),
        &counter.to_be_bytes(),
    );
    let mac = mac.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let word = u32::from_be_bytes(mac[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", word % 1_000_000)
}

/// A signed request with identity's key scheme.
async fn call(
    h: &Harness,
    kid: &str,
    secret: &str,
    nonce: u64,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let signature = sign_request(secret, nonce, method, path, bytes.as_bytes());
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = h
        .http
        .request(method, format!("{}{path}", h.base))
        .header("X-Auth-Apikey", kid)
        .header("X-Auth-Nonce", nonce.to_string())
        .header("X-Auth-Signature", signature);
    if body.is_some() {
        request = request
            .header("Content-Type", "application/json")
            .body(bytes);
    }
    read(request.send().await.unwrap()).await
}

/// How long until a signed balance read answers `status` (bounded: 5 s).
async fn until_status(h: &Harness, kid: &str, secret: &str, status: StatusCode) -> Duration {
    const PATH: &str = "/api/v2/peatio/account/balances";
    let started = Instant::now();
    while call(h, kid, secret, now_ms(), "GET", PATH, None).await.0 != status {
        assert!(started.elapsed() < Duration::from_secs(5), "never {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// A fresh nonce: the clock in ms, strictly above the last one given (two requests can fall
/// in one millisecond on loopback).
fn now_ms() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let next = |last: u64| clock.max(last + 1);
    let previous = LAST
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| Some(next(last)))
        .unwrap_or_else(|last| last);
    next(previous)
}

#[tokio::test]
async fn a_self_service_key_trades_within_a_second_of_creation_and_stops_within_a_second_of_disabling()
 {
    let harness = Harness::start().await;
    // Identity on SQLite (the appliance's default store) with the shared OpenBao.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("id.db").display()))
        .await
        .unwrap();
    let root = OpenBao::new(&env("VAULT_ADDR"), BaoToken::new(env("VAULT_TOKEN"))).unwrap();
    let mut vault_config = VaultConfig::default();
    vault_config.totp_mount = unique("totp");
    vault_config.transit_mount = unique("transit");
    vault_config.policy = unique("identity");
    let token = provision(&root, &vault_config).await.unwrap();
    let vault = Vault {
        client: root.with_token(token),
        config: vault_config,
    };
    let mut config = IdentityConfig::default();
    // The harness funds accounts 1..=3: the user is given account 1.
    config.account_id_first = 1;
    config.account_id_end = 4;
    let registry = prometheus::Registry::new();
    let identity = Identity::new(store.clone(), config, Clock::System, &registry)
        .unwrap()
        .with_vault(vault.clone(), TokenConfig::default());

    let (feed, initial) = KeyFeed::start(store.clone(), vault).await.unwrap();
    let bridge = harness.server.as_ref().unwrap().bridge().clone();
    let _follower = follow_keys(bridge, feed, initial, Duration::from_millis(100));

    // A verified user (made in the store: the mail round trip is identity's own test).
    let email = format!("{}@example.com", unique("trader"));
    let phc =
        peregrine_auth::password::hash("correct horse battery", &ring::rand::SystemRandom::new())
            .unwrap();
    let new = NewUser {
        uid: "ID00000000A1",
        email: &email,
        password_hash: &phc,
        role: Role::Member,
        state: UserState::Pending,
        level: 0,
        now_ms: 1,
    };
    let id = store.insert_user(&new).await.unwrap();
    assert_eq!(store.activate_user(id, 1, 1, 4).await.unwrap(), Some(1));
    let source = Source::default();
    let logged = identity
        .login(&email, "correct horse battery", None, &source)
        .await
        .unwrap();
    let auth: SessionAuth = identity.authenticate(&logged.session_id).await.unwrap();
    while SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 30
        > 24
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let enrolment = identity.otp_generate(&auth, &source).await.unwrap();
    identity
        .otp_enable(&auth, &totp(&enrolment.url, 0), &source)
        .await
        .unwrap();
    let auth = identity.authenticate(&logged.session_id).await.unwrap();

    let request = CreateKey::new(
        KeyKind::Hmac { legacy: false },
        Scopes::from_names(&["read", "trade"]).unwrap(),
        Vec::new(),
        None,
    )
    .unwrap();
    let created = identity
        .create_api_key(&auth, &request, Some(&totp(&enrolment.url, 1)), &source)
        .await
        .unwrap();
    let (kid, secret) = (created.kid, created.secret.unwrap());
    let waited = until_status(&harness, &kid, &secret, StatusCode::OK).await;
    assert!(
        waited < CHANGE_WITHIN,
        "the new key was accepted only after {waited:?}"
    );
    // An order, signed over the whole request.
    let order = json!({"market": "btcusd", "side": "buy", "volume": "0.01", "price": "40000"});
    let (status, placed) = call(
        &harness,
        &kid,
        &secret,
        now_ms(),
        "POST",
        ORDERS,
        Some(&order),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    // The same signature on another body is refused, and changes nothing.
    let nonce = now_ms();
    let signature = sign_request(&secret, nonce, "POST", ORDERS, order.to_string().as_bytes());
    let other = json!({"market": "btcusd", "side": "buy", "volume": "1", "price": "40000"});
    let (status, body) = read(
        harness
            .http
            .post(format!("{}{ORDERS}", harness.base))
            .header("X-Auth-Apikey", &kid)
            .header("X-Auth-Nonce", nonce.to_string())
            .header("X-Auth-Signature", signature)
            .json(&other)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errors"][0], "authz.invalid_signature");

    // Identity's access JWT, verified by the bridge from memory (no call to identity).
    let tokens = identity.tokens().unwrap();
    let jwks = tokens.jwks().await.unwrap().to_string();
    let verifier = Verifier::from_jwks(jwks.as_bytes(), TokenConfig::default()).unwrap();
    harness
        .server
        .as_ref()
        .unwrap()
        .bridge()
        .accept_tokens(Refresher::fixed(verifier));
    let now_s = now_ms() / 1000;
    let token = tokens
        .issue(&auth.user, Some(1), now_s, "t1".to_owned())
        .await
        .unwrap()
        .token;
    let bearer = |path: &str| {
        harness
            .http
            .get(format!("{}{path}", harness.base))
            .bearer_auth(&token)
    };
    let (status, body) = read(
        bearer("/api/v2/peatio/account/balances")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = read(
        harness
            .http
            .post(format!("{}{ORDERS}", harness.base))
            .bearer_auth(&token)
            .json(&order)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let forged = format!("{}x", &token[..token.len() - 1]);
    let (status, body) = read(
        harness
            .http
            .get(format!("{}/api/v2/peatio/account/balances", harness.base))
            .bearer_auth(&forged)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errors"][0], "authz.invalid_token");

    identity
        .retire_api_key(&auth, &kid, false, Some(&totp(&enrolment.url, -1)), &source)
        .await
        .unwrap();
    let waited = until_status(&harness, &kid, &secret, StatusCode::UNAUTHORIZED).await;
    assert!(
        waited < CHANGE_WITHIN,
        "the disabled key still worked for {waited:?}"
    );
}

/// Opens a private stream signed with an identity key; the upgrade's HTTP status (101 when
/// accepted).
async fn private_stream_status(h: &Harness, kid: &str, secret: &str) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    const PATH: &str = "/api/v2/ranger/private?stream=order";
    let nonce = now_ms();
    let signature = sign_request(secret, nonce, "GET", PATH, b"");
    let mut request = format!("{}{PATH}", h.ws_base)
        .into_client_request()
        .unwrap();
    for (name, value) in [
        ("X-Auth-Apikey", kid.to_owned()),
        ("X-Auth-Nonce", nonce.to_string()),
        ("X-Auth-Signature", signature),
    ] {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("private stream: {other}"),
    }
}

#[tokio::test]
async fn a_private_stream_honours_the_keys_address_allowlist() {
    use peregrine_auth::key_feed::{KeyChange, ResolvedKey};
    let harness = Harness::start().await;
    let bridge = harness.server.as_ref().unwrap().bridge();
    let secret = "an allowlisted key's secret of 32+ bytes";
    for (kid, allowed) in [
        ("from-loopback", "127.0.0.1"),
        ("from-elsewhere", "192.0.2.7"),
    ] {
        let mut key = ResolvedKey::new(kid.to_owned(), 1);
        key.scopes = Scopes::from_names(&["read"]).unwrap();
        key.hmac_secret = Some(peregrine_secrets::SecretBytes::new(
            secret.as_bytes().to_vec(),
        ));
        key.allowed_ips = vec![allowed.parse().unwrap()];
        bridge.apply_key_change(KeyChange::Upsert(key));
    }
    assert_eq!(
        private_stream_status(&harness, "from-loopback", secret).await,
        101
    );
    assert_eq!(
        private_stream_status(&harness, "from-elsewhere", secret).await,
        403
    );
}
