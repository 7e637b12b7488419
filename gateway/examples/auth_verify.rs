//! Per-request authentication cost on the REST bridge's path, in process: an HMAC API-key
//! request (`KeyStore::authenticate`, the whole-request signature) and an access JWT
//! (`Verifier::verify`, ed25519). Nothing but memory: no store, no OpenBao. Run in release:
//! `cargo run --release -p peregrine-gateway --example auth_verify -- [ROUNDS]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use peregrine_auth::api_keys::Scopes;
use peregrine_auth::jwt::{TokenConfig, Verifier};
use peregrine_gateway::rest::RestKey;
use peregrine_gateway::rest::auth::{KeyStore, RequestFacts, body_sha256, sign_request};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;

fn percentiles(mut nanos: Vec<u128>) -> String {
    nanos.sort_unstable();
    let at = |p: f64| nanos[((nanos.len() as f64 * p) as usize).min(nanos.len() - 1)];
    format!(
        "p50 {} ns, p99 {} ns, p99.9 {} ns",
        at(0.5),
        at(0.99),
        at(0.999)
    )
}

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("ROUNDS"));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let store = KeyStore::new(
        &[RestKey {
            key: "k1".into(),
            secret: "0123456789abcdef0123456789abcdef".into(),
            account: 7,
        }],
        u64::MAX / 4,
    );
    let body = br#"{"market":"btcusd","side":"buy","volume":"0.01","price":"50000"}"#;
    let path = "/api/v2/peatio/market/orders";
    let requests: Vec<HeaderMap> = (1..=rounds)
        .map(|nonce| {
            let mut h = HeaderMap::new();
            h.insert("x-auth-apikey", HeaderValue::from_static("k1"));
            h.insert(
                "x-auth-nonce",
                HeaderValue::from_str(&nonce.to_string()).unwrap(),
            );
            let signature = sign_request(
                "0123456789abcdef0123456789abcdef",
                nonce,
                "POST",
                path,
                body,
            );
            h.insert(
                "x-auth-signature",
                HeaderValue::from_str(&signature).unwrap(),
            );
            h
        })
        .collect();
    let hmac: Vec<u128> = requests
        .iter()
        .map(|headers| {
            let started = Instant::now();
            // The body digest is part of the request's cost: computed here, per request.
            let facts = RequestFacts {
                method: "POST",
                path,
                body_sha256: body_sha256(body),
                peer: None,
                scope: Scopes::TRADE,
            };
            store.authenticate(headers, &facts, now_ms).unwrap();
            started.elapsed().as_nanos()
        })
        .collect();
    println!(
        "hmac api key (nonce+method+path+sha256(body)): {}",
        percentiles(hmac)
    );

    let pair = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap();
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "identity-jwt-v1",
        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}]});
    let verifier =
        Verifier::from_jwks(jwks.to_string().as_bytes(), TokenConfig::default()).unwrap();
    let now_s = now_ms / 1000;
    let header = URL_SAFE_NO_PAD
        .encode(json!({"alg": "EdDSA", "typ": "JWT", "kid": "identity-jwt-v1"}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"iss": "peregrine-identity", "aud": "peregrine",
        "sub": "ID0123456789", "email": "a@example.com", "role": "member", "level": 1,
        "account": 1024, "iat": now_s, "nbf": now_s, "exp": now_s + 60, "jti": "x"})
        .to_string(),
    );
    let input = format!("{header}.{claims}");
    let token = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(pair.sign(input.as_bytes()))
    );
    let jwt: Vec<u128> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            verifier.verify(&token, now_s).unwrap();
            started.elapsed().as_nanos()
        })
        .collect();
    println!("jwt EdDSA verify: {}", percentiles(jwt));
}
