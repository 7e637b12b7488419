//! Identity helpers of the tests that run `peregrine up` with identity: the environment
//! `scripts/test` exports, unique names, an authenticator app's TOTP codes, and the e-mailed
//! codes `up` logs when it has no SMTP server.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::hmac;
use serde_json::Value;

/// How long a logged code may take to appear.
const CODE_WAIT: Duration = Duration::from_secs(10);

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run under scripts/test"))
}

pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// RFC 6238 (SHA-1, 6 digits, 30 s), `periods` from now, from an otpauth URL's secret: what
/// an authenticator app shows.
pub fn totp(url: &str, periods: i64) -> String {
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
    let counter = ((now_s() / 30) + periods) as u64;
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret),
        &counter.to_be_bytes(),
    );
    let mac = mac.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let word = u32::from_be_bytes(mac[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", word % 1_000_000)
}

/// The code `up` logged for `to` (no `[auth.smtp]`): the JSON log line's `code` field.
pub async fn logged_code(dir: &Path, to: &str) -> String {
    let deadline = Instant::now() + CODE_WAIT;
    loop {
        let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
        let code = log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["fields"]["email"] == to)
            .and_then(|line| line["fields"]["code"].as_str().map(str::to_owned));
        if let Some(code) = code {
            return code;
        }
        assert!(Instant::now() < deadline, "no code logged for {to}:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
