//! The REST bridge's parsers of request bytes: the order body (`CreateOrder`, as the create-order
//! endpoint deserialises it), every decimal field through the edges' one decimal parser and the
//! conversions to ticks, lots and minor units, and the API-key headers. Nothing panics; a decimal
//! the parser accepts is plain, non-negative and converts exactly or is refused (never rounded).

#![no_main]

use libfuzzer_sys::fuzz_target;
use peregrine_fuzz::{market_units, rest};
use peregrine_gateway::rest::RestKey;
use peregrine_auth::api_keys::Scopes;
use peregrine_gateway::rest::auth::{
    HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE, KeyStore, RequestFacts, body_sha256,
};
use peregrine_gateway::rest::types::CreateOrder;
use peregrine_hotpath::edge::{DECIMAL_TEXT_BYTES_MAX, parse_decimal};

fn check_decimal(text: &str) {
    let Ok(value) = parse_decimal(text) else {
        return;
    };
    assert!(text.len() <= DECIMAL_TEXT_BYTES_MAX);
    assert!(!value.is_sign_negative(), "{text} parsed negative");
    for units in market_units() {
        // Exact: a converted value converts back to the value parsed.
        if let Ok(price) = units.price(value) {
            assert_eq!(units.price_decimal(price), value, "price {text}");
        }
        if let Ok(qty) = units.qty(value) {
            assert_eq!(units.qty_decimal(qty), value, "quantity {text}");
        }
        if let Ok(amount) = units.quote.to_minor(value) {
            assert_eq!(units.quote.to_decimal(amount), value, "amount {text}");
        }
    }
}

fn check_order(body: &[u8]) {
    if let Ok(text) = std::str::from_utf8(body) {
        check_decimal(text);
    }
    let Ok(order) = serde_json::from_slice::<CreateOrder>(body) else {
        return;
    };
    // Decimals arrive as strings or JSON numbers (read as their literal text).
    let decimals = [
        &order.volume,
        &order.price,
        &order.stop_price,
        &order.quote_amount,
    ];
    for text in decimals.into_iter().flatten() {
        check_decimal(text);
    }
    if let Some(client_id) = &order.client_id {
        check_decimal(client_id);
    }
}

fn check_auth(headers_text: &[u8]) {
    let mut lines = headers_text.split(|&b| b == b'\n');
    let mut headers = http::HeaderMap::new();
    for name in [HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE] {
        let Some(value) = lines.next() else { break };
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            headers.insert(name, value);
        }
    }
    let key = RestKey {
        key: rest::KEY.to_owned(),
        secret: rest::SECRET.to_owned(),
        account: 1,
        legacy_signature: false,
    };
    let store = KeyStore::new(&[key], rest::WINDOW_MS);
    // The request the headers came with, which the seeds sign (nonce + method + path +
    // SHA-256 of the body).
    let facts = RequestFacts {
        method: "POST",
        path: "/api/v2/peatio/market/orders",
        body_sha256: body_sha256(b""),
        peer: None,
        scope: Scopes::default(),
    };
    let first = store.authenticate(&headers, &facts, rest::NOW_MS);
    // One use per nonce: the same headers never pass twice.
    if first.is_ok() {
        assert!(
            store.authenticate(&headers, &facts, rest::NOW_MS).is_err(),
            "a nonce was accepted twice"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&rest::MODE_AUTH, headers)) => check_auth(headers),
        Some((_, body)) => check_order(body),
        None => {}
    }
});
