//! The TOTP engine: RFC 6238 keys generated here (SHA-1, 6 digits, 30 s, a skew of one
//! period either way: OpenBao's defaults), an `otpauth://` URL and its QR code given once, and
//! each code accepted once ("code already used", 400, as OpenBao).

use std::collections::BTreeMap;

use ring::hmac;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::api::{ApiError, Body, Reply, b64, now_s, opt_bool, opt_str, opt_u64, random};
use crate::state::{TOTP_KEYS_MAX, TotpKey};

type Keys = BTreeMap<String, TotpKey>;

/// The period of a code.
pub const PERIOD_S: u64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Periods accepted before and after the current one.
pub const SKEW_PERIODS: u64 = 1;
/// Bytes of a generated secret (OpenBao's default `key_size`).
const SECRET_BYTES: usize = 20;
/// The default and largest QR code side, in pixels (the raster is side² bytes).
const QR_SIZE_DEFAULT: u64 = 200;
const QR_SIZE_MAX: u64 = 1024;
/// Codes remembered as used per key: the window holds 2 × skew + 1 codes.
const USED_CODES_MAX: usize = 8;
/// The longest issuer or account name.
const LABEL_BYTES_MAX: usize = 256;

const _: () = assert!(USED_CODES_MAX as u64 > 2 * SKEW_PERIODS);
const _: () = assert!(DIGITS == 6);

/// `POST keys/<name>` with `generate`: a new key (replacing one of the same name, as OpenBao
/// does), answered with its URL and QR code when `exported`.
pub(crate) fn generate(keys: &mut Keys, name: &str, body: &Body) -> Result<Reply, ApiError> {
    if opt_bool(body, "generate")? != Some(true) {
        return Err(ApiError::bad(
            "the dev secret store only generates TOTP keys (generate=true)",
        ));
    }
    check_defaults(body)?;
    let issuer = label(body, "issuer")?;
    let account_name = label(body, "account_name")?;
    let qr_size = opt_u64(body, "qr_size")?.unwrap_or(QR_SIZE_DEFAULT);
    if qr_size > QR_SIZE_MAX {
        return Err(ApiError::bad(format!(
            "qr_size must be at most {QR_SIZE_MAX}"
        )));
    }
    if !keys.contains_key(name) && keys.len() >= TOTP_KEYS_MAX {
        return Err(ApiError::bad(format!(
            "the dev secret store keeps at most {TOTP_KEYS_MAX} TOTP keys per mount"
        )));
    }
    let key = TotpKey {
        secret: random::<SECRET_BYTES>()?.to_vec(),
        issuer: issuer.to_owned(),
        account_name: account_name.to_owned(),
        used: Vec::new(),
    };
    let url = otpauth_url(&key);
    keys.insert(name.to_owned(), key);
    if opt_bool(body, "exported")? == Some(false) {
        return Ok(Reply::Empty);
    }
    if qr_size == 0 {
        return Ok(Reply::Data(json!({ "url": url })));
    }
    let png = crate::qr::png(&url, qr_size as u32)?;
    Ok(Reply::Data(json!({ "barcode": b64(&png), "url": url })))
}

fn label<'a>(body: &'a Body, name: &str) -> Result<&'a str, ApiError> {
    match opt_str(body, name)? {
        Some(value) if !value.is_empty() && value.len() <= LABEL_BYTES_MAX => Ok(value),
        Some(value) if value.len() > LABEL_BYTES_MAX => Err(ApiError::bad(format!(
            "{name} is longer than {LABEL_BYTES_MAX} bytes"
        ))),
        _ => Err(ApiError::bad(format!(
            "the {name} value is required for generated keys"
        ))),
    }
}

/// Refuses parameters other than OpenBao's defaults: the store serves those only.
fn check_defaults(body: &Body) -> Result<(), ApiError> {
    let unsupported = || {
        ApiError::bad("the dev secret store serves SHA1, 6 digits, a 30 s period and skew 1 only")
    };
    let same = |name: &str, default: u64| -> Result<(), ApiError> {
        match opt_u64(body, name) {
            Ok(None) => Ok(()),
            Ok(Some(value)) if value == default => Ok(()),
            _ => Err(unsupported()),
        }
    };
    same("digits", DIGITS as u64)?;
    same("period", PERIOD_S)?;
    same("skew", SKEW_PERIODS)?;
    same("key_size", SECRET_BYTES as u64)?;
    match opt_str(body, "algorithm")? {
        None | Some("SHA1") => Ok(()),
        Some(_) => Err(unsupported()),
    }
}

/// OpenBao's URL: issuer and account escaped as a path, query keys sorted, values escaped as
/// path segments.
fn otpauth_url(key: &TotpKey) -> String {
    format!(
        "otpauth://totp/{}:{}?algorithm=SHA1&digits={DIGITS}&issuer={}&period={PERIOD_S}&secret={}",
        escape(&key.issuer, b"$&+,/:;=@"),
        escape(&key.account_name, b"$&+,/:;=@"),
        escape(&key.issuer, b"$&+,:;=@"),
        base32(&key.secret),
    )
}

/// Percent-escapes all but unreserved characters and `keep`.
fn escape(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) || keep.contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// RFC 4648 base32 without padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The RFC 6238 code of `secret` for the period `counter`.
fn code(secret: &[u8], counter: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!("{:06}", (word & 0x7fff_ffff) % 1_000_000)
}

/// `POST code/<name>`: whether `code` is valid now; a valid code is then refused as used
/// until it can no longer be valid.
pub(crate) fn check(keys: &mut Keys, name: &str, body: &Body) -> Result<Reply, ApiError> {
    let key = keys
        .get_mut(name)
        .ok_or_else(|| ApiError::bad(format!("unknown key: {name}")))?;
    let given = opt_str(body, "code")?
        .ok_or_else(|| ApiError::bad("the code value is required"))?
        .trim();
    if given.len() != DIGITS {
        return Err(ApiError::bad("invalid number of digits for the code"));
    }
    let now = now_s();
    key.used.retain(|(_, forget_s)| *forget_s > now);
    let replay = key
        .used
        .iter()
        .any(|(used, _)| bool::from(used.as_bytes().ct_eq(given.as_bytes())));
    if replay {
        return Err(ApiError::bad(
            "code already used; wait until the next time period",
        ));
    }
    let counter = now / PERIOD_S;
    let window = counter.saturating_sub(SKEW_PERIODS)..=counter + SKEW_PERIODS;
    // Every period of the window is computed and compared, so the time taken does not say
    // which one matched.
    let valid = window.fold(false, |valid, period| {
        valid | bool::from(code(&key.secret, period).as_bytes().ct_eq(given.as_bytes()))
    });
    if valid {
        if key.used.len() >= USED_CODES_MAX {
            key.used.remove(0);
        }
        // The code may be of the latest period of the window, valid until that period has
        // left the window too.
        let forget_s = (counter + 2 * SKEW_PERIODS + 1) * PERIOD_S;
        key.used.push((given.to_owned(), forget_s));
    }
    Ok(Reply::Data(json!({ "valid": valid })))
}

/// `GET code/<name>`: the current code (OpenBao serves it for generated keys too).
pub(crate) fn current(keys: &Keys, name: &str) -> Result<Reply, ApiError> {
    let key = keys
        .get(name)
        .ok_or_else(|| ApiError::bad(format!("unknown key: {name}")))?;
    Ok(Reply::Data(
        json!({ "code": code(&key.secret, now_s() / PERIOD_S) }),
    ))
}

/// `GET keys/<name>`: the key's parameters, not its secret.
pub(crate) fn read(keys: &Keys, name: &str) -> Result<Reply, ApiError> {
    let key = keys.get(name).ok_or_else(ApiError::not_found)?;
    Ok(Reply::Data(json!({
        "account_name": key.account_name,
        "algorithm": "SHA1",
        "digits": DIGITS,
        "issuer": key.issuer,
        "period": PERIOD_S,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_rfc_6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA-1, the last six digits of the eight-digit codes.
        let secret = b"12345678901234567890";
        assert_eq!(code(secret, 59 / 30), "287082");
        assert_eq!(code(secret, 1_111_111_109 / 30), "081804");
        assert_eq!(code(secret, 2_000_000_000 / 30), "279037");
    }

    #[test]
    fn base32_and_escapes_match_openbao() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(escape("Pere grine/x", b"$&+,/:;=@"), "Pere%20grine/x");
        assert_eq!(escape("Pere grine/x", b"$&+,:;=@"), "Pere%20grine%2Fx");
        assert_eq!(
            escape("alice smith+1@example.com", b"$&+,/:;=@"),
            "alice%20smith+1@example.com"
        );
    }
}
