//! API keys: `{key_id, account, ed25519 public key}` from configuration (a bootstrap), and
//! identity's self-service ed25519 keys kept current by [`KeyRegistry::apply`] from the
//! identity key feed; the logon check. A self-service key logs on only with the `trade`
//! scope: a QUIC session is order entry.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use peregrine_auth::api_keys::Scopes;
use peregrine_auth::key_feed::KeyChange;

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

/// Key id -> the account it trades for and its ed25519 public key.
type Keys = HashMap<KeyId, (AccountId, [u8; 32])>;

/// Self-service keys at most in one server's registry.
pub const DYNAMIC_KEYS_MAX: usize = 1 << 20;

/// The registered keys.
#[derive(Clone, Debug, Default)]
pub struct KeyRegistry {
    keys: Keys,
    /// Identity's self-service keys (shared by clones: the server's copy follows the feed).
    dynamic: Arc<RwLock<Keys>>,
}

impl KeyRegistry {
    /// Checks and indexes the configured keys.
    pub fn new(keys: &[ApiKeyConfig]) -> Result<Self, KeyError> {
        let mut registry = KeyRegistry {
            keys: HashMap::with_capacity(keys.len()),
            dynamic: Arc::default(),
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

    /// Adds or drops one of identity's self-service keys. Keys that are not ed25519 keys with
    /// the `trade` scope, or whose id is not a number, are not QUIC keys and are ignored.
    pub fn apply(&self, change: KeyChange) {
        let mut dynamic = self.dynamic.write().unwrap_or_else(PoisonError::into_inner);
        match change {
            KeyChange::Upsert(key) => {
                let (Ok(id), Some(public_key)) = (key.kid.parse::<u64>(), key.public_key) else {
                    return;
                };
                if !key.scopes.contains(Scopes::TRADE) {
                    dynamic.remove(&KeyId(id));
                    return;
                }
                if dynamic.len() < DYNAMIC_KEYS_MAX || dynamic.contains_key(&KeyId(id)) {
                    dynamic.insert(KeyId(id), (AccountId(key.account), public_key));
                }
            }
            KeyChange::Remove(kid) => {
                if let Ok(id) = kid.parse::<u64>() {
                    dynamic.remove(&KeyId(id));
                }
            }
            _ => {}
        }
    }

    /// The account of `key_id` if `signature` signs [`logon_message`] of `challenge`.
    pub fn verify(
        &self,
        key_id: KeyId,
        challenge: &[u8; CHALLENGE_BYTES],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> Result<AccountId, RejectCode> {
        let (account, public_key) = match self.keys.get(&key_id) {
            Some(found) => *found,
            None => *self
                .dynamic
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&key_id)
                .ok_or(RejectCode::UNKNOWN_KEY)?,
        };
        UnparsedPublicKey::new(&ED25519, &public_key)
            .verify(&logon_message(challenge), signature)
            .map_err(|_| RejectCode::BAD_SIGNATURE)?;
        Ok(account)
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
        // Identity's keys: loaded with `trade`, ignored without, dropped on removal.
        let mut key = peregrine_auth::key_feed::ResolvedKey::new("1099511627776".to_owned(), 5);
        key.public_key = Some(pair.public_key().as_ref().try_into().unwrap());
        key.scopes = Scopes::READ;
        let self_service = KeyId(1 << 40);
        registry.apply(KeyChange::Upsert(key));
        assert_eq!(
            registry.verify(self_service, &challenge, &signature),
            Err(RejectCode::UNKNOWN_KEY)
        );
        let mut key = peregrine_auth::key_feed::ResolvedKey::new("1099511627776".to_owned(), 5);
        key.public_key = Some(pair.public_key().as_ref().try_into().unwrap());
        key.scopes = Scopes::TRADE;
        registry.clone().apply(KeyChange::Upsert(key));
        assert_eq!(
            registry.verify(self_service, &challenge, &signature),
            Ok(AccountId(5))
        );
        registry.apply(KeyChange::Remove("1099511627776".to_owned()));
        assert_eq!(
            registry.verify(self_service, &challenge, &signature),
            Err(RejectCode::UNKNOWN_KEY)
        );
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
