//! Random tokens, their digests and constant-time comparison.
//!
//! Session ids, CSRF tokens and e-mailed codes are stored only as SHA-256 digests: a leaked
//! database opens no session. They are compared digest to digest with `subtle`, so the time a
//! comparison takes says nothing about how many leading bytes matched.

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use crate::error::AuthError;

/// Bytes of randomness in a session id and a CSRF token (256 bits: unguessable).
pub const TOKEN_BYTES: usize = 32;
/// Bytes of randomness in a session's public handle (not a secret: it only names a session
/// its owner lists; the owner check guards it).
pub const HANDLE_BYTES: usize = 12;
/// Digits of an e-mailed code.
pub const CODE_DIGITS: u32 = 6;
/// Bytes of a SHA-256 digest.
pub const DIGEST_BYTES: usize = 32;

const CODE_MODULUS: u32 = 10u32.pow(CODE_DIGITS);
/// The largest multiple of the code modulus that fits a u32: draws at or above it are redrawn,
/// so every code is equally likely.
const CODE_DRAW_LIMIT: u32 = (u32::MAX / CODE_MODULUS) * CODE_MODULUS;
const _: () =
    assert!(CODE_DRAW_LIMIT.is_multiple_of(CODE_MODULUS) && CODE_DRAW_LIMIT > CODE_MODULUS);

/// A SHA-256 digest.
pub type Digest = [u8; DIGEST_BYTES];

/// Fresh random bytes.
pub fn random_bytes<const N: usize>(rng: &SystemRandom) -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    rng.fill(&mut bytes).map_err(|_| AuthError::Random)?;
    Ok(bytes)
}

/// A fresh token: `TOKEN_BYTES` random bytes in lower-case hex.
pub fn new_token(rng: &SystemRandom) -> Result<String, AuthError> {
    Ok(hex(&random_bytes::<TOKEN_BYTES>(rng)?))
}

/// A fresh public handle.
pub fn new_handle(rng: &SystemRandom) -> Result<String, AuthError> {
    Ok(hex(&random_bytes::<HANDLE_BYTES>(rng)?))
}

/// A fresh code of `CODE_DIGITS` decimal digits, uniformly drawn.
pub fn new_code(rng: &SystemRandom) -> Result<String, AuthError> {
    // Bounded in expectation: a draw is redrawn with probability below 1e-3.
    for _ in 0..64 {
        let draw = u32::from_le_bytes(random_bytes::<4>(rng)?);
        if draw < CODE_DRAW_LIMIT {
            let code = format!(
                "{:0width$}",
                draw % CODE_MODULUS,
                width = CODE_DIGITS as usize
            );
            assert_eq!(code.len(), CODE_DIGITS as usize);
            return Ok(code);
        }
    }
    Err(AuthError::Random)
}

/// SHA-256 of `text`.
pub fn digest_of(text: &str) -> Digest {
    let mut out = [0u8; DIGEST_BYTES];
    out.copy_from_slice(digest(&SHA256, text.as_bytes()).as_ref());
    out
}

/// Whether `presented` hashes to `stored`, in time independent of where they differ.
pub fn matches_digest(presented: &str, stored: &[u8]) -> bool {
    let presented = digest_of(presented);
    // Lengths are public (always 32 for a well-formed row); the bytes are compared in
    // constant time.
    stored.len() == DIGEST_BYTES && bool::from(presented.as_slice().ct_eq(stored))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_six_digits_and_vary() {
        let rng = SystemRandom::new();
        let codes: Vec<String> = (0..32).map(|_| new_code(&rng).unwrap()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(codes.iter().any(|c| c != &codes[0]));
    }

    #[test]
    fn digests_match_only_their_text() {
        let stored = digest_of("123456");
        assert!(matches_digest("123456", &stored));
        assert!(!matches_digest("123457", &stored));
        assert!(!matches_digest("123456", &stored[..31]));
        assert_eq!(hex(&[0x0f, 0xa0]), "0fa0");
    }
}
