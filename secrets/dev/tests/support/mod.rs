//! What the dev store's tests share: RFC 6238 codes computed from an enrolment URL, as an
//! authenticator app computes them.
#![allow(clippy::unwrap_used, dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use ring::hmac;

/// The 30 s period now.
pub fn counter_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// The RFC 6238 code (SHA-1, 6 digits) of the URL's base32 `secret` for period `counter`.
pub fn code_at(url: &str, counter: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let text = url
        .split(['?', '&'])
        .find_map(|part| part.strip_prefix("secret="))
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
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let word = u32::from_be_bytes(mac[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", word % 1_000_000)
}

/// The current code of the URL's secret.
pub fn code_now(url: &str) -> String {
    code_at(url, counter_now())
}
