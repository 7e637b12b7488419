//! API keys: `{key_id, account, ed25519 public key}` from configuration, and the logon check.

use std::collections::HashMap;

use peregrine_hotpath::AccountId;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use peregrine_proto::frame::{CHALLENGE_BYTES, KeyId, RejectCode, SIGNATURE_BYTES, logon_message};
use peregrine_proto::hex::parse_hex_32;

/// One registered key, as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The id clients log on with.
    pub key_id: u64,
    /// The account it trades for.
    pub account: u32,
    /// The ed25519 public key, 64 hex digits.
    pub public_key: String,
}

/// A key that cannot be registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not 32 bytes of hex.
    #[error("key {key_id}: public_key must be 64 hex digits (32 bytes of ed25519 public key)")]
    PublicKey {
        /// Which key.
        key_id: u64,
    },
    /// Two entries with one id.
    #[error("key {0} is registered twice")]
    Duplicate(u64),
}

/// The registered keys.
#[derive(Clone, Debug, Default)]
pub struct KeyRegistry {
    keys: HashMap<KeyId, (AccountId, [u8; 32])>,
}

impl KeyRegistry {
    /// Checks and indexes the configured keys.
    pub fn new(keys: &[ApiKeyConfig]) -> Result<Self, KeyError> {
        let mut registry = KeyRegistry {
            keys: HashMap::with_capacity(keys.len()),
        };
        for key in keys {
            let public_key =
                parse_hex_32(&key.public_key).ok_or(KeyError::PublicKey { key_id: key.key_id })?;
            registry.insert(KeyId(key.key_id), AccountId(key.account), public_key)?;
        }
        Ok(registry)
    }

    /// Registers one key.
    pub fn insert(
        &mut self,
        key_id: KeyId,
        account: AccountId,
        public_key: [u8; 32],
    ) -> Result<(), KeyError> {
        if self.keys.insert(key_id, (account, public_key)).is_some() {
            return Err(KeyError::Duplicate(key_id.0));
        }
        Ok(())
    }

    /// The account of `key_id` if `signature` signs [`logon_message`] of `challenge`.
    pub fn verify(
        &self,
        key_id: KeyId,
        challenge: &[u8; CHALLENGE_BYTES],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> Result<AccountId, RejectCode> {
        let (account, public_key) = self.keys.get(&key_id).ok_or(RejectCode::UNKNOWN_KEY)?;
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&logon_message(challenge), signature)
            .map_err(|_| RejectCode::BAD_SIGNATURE)?;
        Ok(*account)
    }
}

#[cfg(test)]
mod tests {
    use peregrine_proto::hex::to_hex;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;

    #[test]
    fn verifies_signatures_and_refuses_the_rest() {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap();
        let public_key = to_hex(pair.public_key().as_ref());
        let registry = KeyRegistry::new(&[ApiKeyConfig {
            key_id: 9,
            account: 3,
            public_key,
        }])
        .unwrap();
        let challenge = [1u8; CHALLENGE_BYTES];
        let signature: [u8; 64] = pair
            .sign(&logon_message(&challenge))
            .as_ref()
            .try_into()
            .unwrap();
        assert_eq!(
            registry.verify(KeyId(9), &challenge, &signature),
            Ok(AccountId(3))
        );
        assert_eq!(
            registry.verify(KeyId(8), &challenge, &signature),
            Err(RejectCode::UNKNOWN_KEY)
        );
        assert_eq!(
            registry.verify(KeyId(9), &[2u8; CHALLENGE_BYTES], &signature),
            Err(RejectCode::BAD_SIGNATURE)
        );
        assert!(parse_hex_32("zz").is_none());
        assert!(
            KeyRegistry::new(&[ApiKeyConfig {
                key_id: 1,
                account: 1,
                public_key: "x".repeat(64)
            }])
            .is_err()
        );
    }
}
