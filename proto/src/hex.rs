//! The text form of the protocol's 32-byte values (ed25519 public keys and seeds, certificate
//! fingerprints) in configuration files and on command lines: lowercase or uppercase hex.

/// 64 hex digits as 32 bytes; `None` for any other text.
pub fn parse_hex_32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16);
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let [high, low] = *pair else {
            return None;
        };
        *byte = u8::try_from(digit(high)? * 16 + digit(low)?).ok()?;
    }
    Some(out)
}

/// Bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_the_rest() {
        let bytes: [u8; 32] = std::array::from_fn(|i| u8::try_from(i * 8).unwrap_or(0));
        let hex = to_hex(&bytes);
        assert_eq!(hex.len(), 64);
        assert_eq!(parse_hex_32(&hex), Some(bytes));
        assert_eq!(parse_hex_32(&hex.to_uppercase()), Some(bytes));
        assert_eq!(parse_hex_32("zz"), None);
        assert_eq!(parse_hex_32(&"g".repeat(64)), None);
        assert_eq!(parse_hex_32(&"0".repeat(63)), None);
        assert_eq!(parse_hex_32(&"é".repeat(32)), None);
    }
}
