//! Values that must never reach a log: the token and secret bytes.

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// An OpenBao token. Its `Debug` is redacted so a logged config or error cannot leak it.
#[derive(Clone)]
pub struct BaoToken(String);

impl BaoToken {
    /// Wraps a token as read from configuration or the environment.
    pub fn new(token: impl Into<String>) -> BaoToken {
        BaoToken(token.into())
    }

    /// The token for the `X-Vault-Token` header.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BaoToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BaoToken(<redacted>)")
    }
}

/// Secret bytes (a decrypted secret, a data key), zeroed when dropped, compared in constant
/// time, and redacted in `Debug`.
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of the bytes.
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }

    /// The bytes, for the one use that needs them (a MAC key, a signer).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &SecretBytes) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretBytes {}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}
