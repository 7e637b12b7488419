//! Password hashing: argon2id with the parameters below, stored as a PHC string (which carries
//! the parameters, so raising them later still verifies old hashes).
//!
//! Parameters: OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane). Hashing is CPU- and
//! memory-bound (tens of milliseconds): callers run it off the async runtime's workers.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::SystemRandom;

use crate::error::AuthError;
use crate::secret::random_bytes;

/// Memory per hash, KiB.
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// Passes over the memory.
pub const ARGON2_ITERATIONS: u32 = 2;
/// Parallel lanes.
pub const ARGON2_LANES: u32 = 1;
/// Bytes of the hash.
pub const ARGON2_OUTPUT_BYTES: usize = 32;
/// Bytes of random salt per hash.
pub const SALT_BYTES: usize = 16;
/// Shortest password accepted, in characters.
pub const PASSWORD_LENGTH_MIN: usize = 10;
/// Longest password accepted, in bytes (bounds the hashing work an attacker can ask for).
pub const PASSWORD_BYTES_MAX: usize = 256;

const _: () = assert!(ARGON2_MEMORY_KIB >= 8 * ARGON2_LANES && ARGON2_ITERATIONS >= 1);

fn hasher() -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_LANES,
        Some(ARGON2_OUTPUT_BYTES),
    )
    .map_err(|_| AuthError::PasswordHash)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Checks the password policy: length only (NIST SP 800-63B: no composition rules).
pub fn check_policy(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < PASSWORD_LENGTH_MIN || password.len() > PASSWORD_BYTES_MAX {
        return Err(AuthError::WeakPassword);
    }
    Ok(())
}

/// The PHC string of a new argon2id hash of `password`, with a fresh salt.
pub fn hash(password: &str, rng: &SystemRandom) -> Result<String, AuthError> {
    assert!(
        password.len() <= PASSWORD_BYTES_MAX,
        "the policy bounds the input"
    );
    let salt_bytes = random_bytes::<SALT_BYTES>(rng)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| AuthError::PasswordHash)?;
    let phc = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|_| AuthError::PasswordHash)?
        .to_string();
    Ok(phc)
}

/// Whether `password` matches the stored PHC string. A malformed stored hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > PASSWORD_BYTES_MAX {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // The argon2 crate compares the computed and stored outputs in constant time.
    hasher().is_ok_and(|argon| argon.verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Spends the time of one verification against a fixed hash, for a login whose e-mail is
/// unknown: the answer then takes as long as a wrong password, and says nothing about whether
/// the address is registered.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let dummy =
        DUMMY.get_or_init(|| hash("dummy-password-never-matches", &SystemRandom::new()).ok());
    if let Some(phc) = dummy {
        let _ = verify(password, phc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let rng = SystemRandom::new();
        let phc = hash("correct horse battery", &rng).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse batterz", &phc));
        assert!(!verify("correct horse battery", "not a phc string"));
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(check_policy("123456789").is_err());
        assert!(check_policy("1234567890").is_ok());
        assert!(check_policy(&"x".repeat(PASSWORD_BYTES_MAX + 1)).is_err());
    }
}
