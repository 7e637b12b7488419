#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Ranger's private streams with identity's access JWT, over a real WebSocket client: the
//! token on the upgrade (the browser's subprotocol pair `peregrine.jwt, <token>`, or
//! `Authorization: Bearer`), the account's events on the socket, renewal on the open socket
//! (same user only), and the close (1008) when the last token expires. Tokens are signed here
//! with an ed25519 key whose JWKS the bridge verifies from memory, as identity's would be.

mod rest_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use peregrine_auth::jwt::{Refresher, TokenConfig, Verifier};
use peregrine_gateway::ws::JWT_PROTOCOL;
use rest_support::{Harness, Ws};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const KID: &str = "test-v1";
const STREAMS: &str = "/api/v2/ranger/private?stream=order";

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn key_pair() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

/// A 60 s token of user `sub` trading as `account`, issued at `iat`.
fn token(pair: &Ed25519KeyPair, sub: &str, account: u32, iat: u64) -> String {
    let config = TokenConfig::default();
    let claims = json!({
        "iss": config.issuer, "aud": config.audience, "sub": sub, "email": "u@example.com",
        "role": "member", "level": 1, "account": account, "iat": iat, "nbf": iat,
        "exp": iat + 60, "jti": format!("{sub}-{iat}"), "otp": false,
    });
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": KID}).to_string();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = pair.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

fn verifier(pair: &Ed25519KeyPair) -> Verifier {
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": KID,
        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}]});
    Verifier::from_jwks(jwks.to_string().as_bytes(), TokenConfig::default()).unwrap()
}

/// Opens the private stream with `header: value` on the upgrade; the socket and the
/// subprotocol the server chose, or the refusal's HTTP status.
async fn open(h: &Harness, header: &'static str, value: &str) -> Result<(Ws, Option<String>), u16> {
    let mut request = format!("{}{STREAMS}", h.ws_base)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(header, value.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((stream, response)) => {
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_owned());
            Ok((Ws { stream }, protocol))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("private stream: {other}"),
    }
}

/// The next answer to a client message (`success` or `error`), skipping stream data.
async fn answer(ws: &mut Ws) -> Value {
    loop {
        let message = ws.next().await;
        if message.get("success").is_some() || message.get("error").is_some() {
            return message;
        }
    }
}

fn order(price: &str) -> Value {
    json!({"market": "btcusd", "side": "buy", "volume": "0.01", "price": price})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_stream_opened_with_a_jwt_lives_as_long_as_its_renewed_tokens() {
    let h = Harness::start().await;
    let pair = key_pair();
    let bridge = h.server.as_ref().unwrap().bridge();
    bridge.accept_tokens(Refresher::fixed(verifier(&pair)));

    // A browser's upgrade: the subprotocol pair; the server names only `peregrine.jwt`. The
    // token is 57 s old: 3 s left.
    let aging = token(&pair, "ID1", 1, now_s() - 57);
    let (mut ws, protocol) = open(
        &h,
        "Sec-WebSocket-Protocol",
        &format!("{JWT_PROTOCOL}, {aging}"),
    )
    .await
    .unwrap();
    assert_eq!(protocol.as_deref(), Some(JWT_PROTOCOL));
    assert_eq!(ws.next().await["success"]["message"], "subscribed");
    let placed = h.place(1, order("40000")).await;
    assert_eq!(ws.next_with("order").await["id"], placed["id"]);

    // Renewal: another user's token and a forged one are refused; the user's fresh one is
    // taken and carries the socket past the first token's expiry.
    let foreign = json!({"event": "token", "token": token(&pair, "ID2", 2, now_s())});
    ws.send(foreign).await;
    let refused = answer(&mut ws).await;
    assert_eq!(refused["error"]["message"], "the token is another user's");
    let forged = token(&key_pair(), "ID1", 1, now_s());
    ws.send(json!({"event": "token", "token": forged})).await;
    assert!(answer(&mut ws).await.get("error").is_some());
    let fresh_at = now_s();
    ws.send(json!({"event": "token", "token": token(&pair, "ID1", 1, fresh_at)}))
        .await;
    let accepted = answer(&mut ws).await;
    assert_eq!(
        accepted["success"]["message"], "token accepted",
        "{accepted}"
    );
    assert_eq!(accepted["success"]["expires_at"], fresh_at + 60);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let placed = h.place(1, order("40001")).await;
    assert_eq!(ws.next_with("order").await["id"], placed["id"]);

    // Not renewed: `Authorization: Bearer` with 2 s left, closed with 1008 at expiry.
    let short = token(&pair, "ID1", 1, now_s() - 58);
    let (mut expiring, _) = open(&h, "Authorization", &format!("Bearer {short}"))
        .await
        .unwrap();
    assert_eq!(expiring.next().await["success"]["message"], "subscribed");
    let close = loop {
        match expiring.next_message().await {
            Message::Close(frame) => break frame.unwrap(),
            Message::Text(_) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason.as_str(), "access token expired");

    // An API-key socket has no token to renew; a bad token on the upgrade is 401.
    let mut keyed = h.ws_private(1, "?stream=order").await.unwrap();
    assert_eq!(keyed.next().await["success"]["message"], "subscribed");
    let fresh = token(&pair, "ID1", 1, now_s());
    keyed.send(json!({"event": "token", "token": fresh})).await;
    let refused = answer(&mut keyed).await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not authenticated by an access token")
    );
    let bad = format!("{JWT_PROTOCOL}, {}", token(&key_pair(), "ID1", 1, now_s()));
    assert_eq!(
        open(&h, "Sec-WebSocket-Protocol", &bad).await.err(),
        Some(401)
    );
    assert_eq!(h.metric("peregrine_ws_token_expiries_total"), 1.0);
    assert_eq!(h.metric("peregrine_ws_token_renewals_total"), 4.0);
}
