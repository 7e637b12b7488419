//! Keys: one HD seed per currency in OpenBao's KV v2 engine, BIP-32/44 derivation of deposit
//! addresses, and the one place a private key exists in memory ([`SeedVault::with_key`]).
//!
//! OpenBao's transit engine cannot sign secp256k1, so the seed leaves OpenBao — only to the
//! wallet's own token ([`wallet_policy`]), only into a buffer zeroed when the derivation ends.
//! The seed is made once: `kv_create` writes it with check-and-set 0, so two daemons starting at
//! once keep exactly one seed, and a second start never replaces it.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::{NonZeroScalar, Scalar, SecretKey};
use peregrine_hotpath::AccountId;
use peregrine_secrets::kv::Document;
use peregrine_secrets::{BaoError, OpenBao};
use ring::hmac;
use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use crate::chain::{Address, decode_hex, encode_hex, eth::keccak256};

/// Bytes of a generated seed (BIP-32 allows 16 to 64; BIP-39 seeds are 64).
pub const SEED_BYTES: usize = 64;
/// Levels of a derivation path, at most (BIP-44 uses 5).
pub const PATH_DEPTH_MAX: usize = 8;
/// The KV v2 mount holding the seeds.
pub const SEED_MOUNT: &str = "peregrine-wallets";
/// The first hardened index.
pub const HARDENED: u32 = 1 << 31;
/// The BIP-44 coin type of Ether (SLIP-44).
pub const COIN_TYPE_ETH: u32 = 60;

const _: () = assert!(SEED_BYTES >= 16 && SEED_BYTES <= 64);

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// OpenBao failed or refused ([`BaoError::is_unavailable`] tells "later" from "never").
    #[error(transparent)]
    Bao(#[from] BaoError),
    /// No seed exists for the currency (the daemon makes it at its first start).
    #[error("no seed for currency {0}")]
    NoSeed(String),
    /// The stored seed is not what this version writes.
    #[error("the seed stored for {0} is malformed")]
    SeedMalformed(String),
    /// The path is not `m/…` with at most [`PATH_DEPTH_MAX`] indices.
    #[error("invalid derivation path {0:?}")]
    Path(String),
    /// An account id too large for a non-hardened index (at most 2^31 - 1).
    #[error("account {0} is beyond the derivable range")]
    AccountOutOfRange(u32),
    /// The derivation hit one of the ~2^-127 invalid keys BIP-32 tells to skip.
    #[error("the derivation produced an invalid key")]
    InvalidKey,
}

/// A BIP-32 path: indices from the master key (hardened ones at or above [`HARDENED`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DerivationPath(Vec<u32>);

impl DerivationPath {
    /// The BIP-44 deposit path of `account` for `coin_type`: `m/44'/coin'/0'/0/account`
    /// (external chain, the account id as the address index). Non-hardened last level, so a
    /// watch-only holder of the level-4 public key could derive every deposit address.
    pub fn deposit(coin_type: u32, account: AccountId) -> Result<DerivationPath, KeyError> {
        if account.0 >= HARDENED || coin_type >= HARDENED {
            return Err(KeyError::AccountOutOfRange(account.0));
        }
        Ok(DerivationPath(vec![
            44 | HARDENED,
            coin_type | HARDENED,
            HARDENED,
            0,
            account.0,
        ]))
    }

    /// The hot wallet's path for `coin_type`: `m/44'/coin'/1'/0/0` (its own BIP-44 account,
    /// apart from every deposit address under account 0').
    pub fn hot(coin_type: u32) -> Result<DerivationPath, KeyError> {
        if coin_type >= HARDENED {
            return Err(KeyError::Path(format!("coin type {coin_type}")));
        }
        Ok(DerivationPath(vec![
            44 | HARDENED,
            coin_type | HARDENED,
            1 | HARDENED,
            0,
            0,
        ]))
    }

    /// The indices.
    pub fn indices(&self) -> &[u32] {
        &self.0
    }
}

impl FromStr for DerivationPath {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<DerivationPath, KeyError> {
        let bad = || KeyError::Path(text.chars().take(64).collect());
        let mut parts = text.split('/');
        if parts.next() != Some("m") {
            return Err(bad());
        }
        let mut indices = Vec::new();
        for part in parts {
            if indices.len() == PATH_DEPTH_MAX {
                return Err(bad());
            }
            let (digits, hardened) = match part.strip_suffix('\'') {
                Some(digits) => (digits, true),
                None => (part, false),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let index: u32 = digits.parse().map_err(|_| bad())?;
            if index >= HARDENED {
                return Err(bad());
            }
            indices.push(if hardened { index | HARDENED } else { index });
        }
        Ok(DerivationPath(indices))
    }
}

impl fmt::Display for DerivationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("m")?;
        for index in &self.0 {
            if *index >= HARDENED {
                write!(f, "/{}'", index - HARDENED)?;
            } else {
                write!(f, "/{index}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for DerivationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An extended private key: the key and its chain code, both zeroed on drop.
struct ExtendedKey {
    key: SecretKey,
    chain_code: Zeroizing<[u8; 32]>,
}

fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 64]> {
    let key = hmac::Key::new(hmac::HMAC_SHA512, key);
    let mut context = hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    let mut out = Zeroizing::new([0u8; 64]);
    out.copy_from_slice(context.sign().as_ref());
    out
}

fn split(digest: &[u8; 64]) -> ([u8; 32], Zeroizing<[u8; 32]>) {
    let mut left = [0u8; 32];
    let mut right = Zeroizing::new([0u8; 32]);
    left.copy_from_slice(&digest[..32]);
    right.copy_from_slice(&digest[32..]);
    (left, right)
}

impl ExtendedKey {
    /// BIP-32's master key of `seed`.
    fn master(seed: &[u8]) -> Result<ExtendedKey, KeyError> {
        let digest = hmac_sha512(b"Bitcoin seed", &[seed]);
        let (mut left, chain_code) = split(&digest);
        let key = SecretKey::from_slice(&left).map_err(|_| KeyError::InvalidKey);
        left.zeroize();
        Ok(ExtendedKey {
            key: key?,
            chain_code,
        })
    }

    /// BIP-32's CKDpriv.
    fn child(&self, index: u32) -> Result<ExtendedKey, KeyError> {
        let index_bytes = index.to_be_bytes();
        let digest = if index >= HARDENED {
            let mut private = Zeroizing::new([0u8; 33]);
            private[1..].copy_from_slice(&self.key.to_bytes());
            hmac_sha512(self.chain_code.as_ref(), &[private.as_ref(), &index_bytes])
        } else {
            let public = self.key.public_key().to_encoded_point(true);
            hmac_sha512(self.chain_code.as_ref(), &[public.as_bytes(), &index_bytes])
        };
        let (mut left, chain_code) = split(&digest);
        // parse256(IL) must be below the group order, and IL + k must not be zero.
        let tweak = SecretKey::from_slice(&left).map_err(|_| KeyError::InvalidKey);
        left.zeroize();
        let tweak: Scalar = *tweak?.to_nonzero_scalar();
        let sum: Scalar = tweak + *self.key.to_nonzero_scalar();
        let key = Option::<NonZeroScalar>::from(NonZeroScalar::new(sum))
            .map(SecretKey::from)
            .ok_or(KeyError::InvalidKey)?;
        Ok(ExtendedKey { key, chain_code })
    }
}

/// The private key at `path` from `seed`.
fn derive(seed: &[u8], path: &DerivationPath) -> Result<SecretKey, KeyError> {
    let mut key = ExtendedKey::master(seed)?;
    for index in path.indices() {
        key = key.child(*index)?;
    }
    Ok(key.key)
}

/// The Ethereum address of a secp256k1 key: the last 20 bytes of the Keccak-256 of the
/// uncompressed public key without its `04` prefix.
pub fn eth_address(key: &k256::PublicKey) -> Address {
    let point = key.to_encoded_point(false);
    let digest = keccak256(&point.as_bytes()[1..]);
    let mut bytes = [0u8; 20];
    bytes.copy_from_slice(&digest[12..]);
    Address::from_eth_bytes(&bytes)
}

/// The Ethereum address at `path` from a raw seed (BIP-32), for checks against known vectors.
pub fn eth_address_from_seed(seed: &[u8], path: &DerivationPath) -> Result<Address, KeyError> {
    Ok(eth_address(&derive(seed, path)?.public_key()))
}

/// The OpenBao policy of the wallet daemons' token: create and read the seeds under `mount`,
/// nothing else (no update, so not even this token can replace a seed; no list, no delete, no
/// other engine).
pub fn wallet_policy(mount: &str) -> String {
    format!("path \"{mount}/data/seeds/*\" {{\n  capabilities = [\"create\", \"read\"]\n}}\n")
}

/// Why the seeds cannot be read now, as the last look found: the last read of a seed and the
/// last probe of OpenBao's health, each cleared by its own next success. Shared by a vault's
/// clones (the signer's, the collector's, the address deriver's, readiness).
#[derive(Debug, Default)]
struct Availability {
    read: Option<String>,
    probe: Option<String>,
}

/// The seeds, through the wallet daemons' own OpenBao token.
#[derive(Clone, Debug)]
pub struct SeedVault {
    bao: OpenBao,
    mount: String,
    availability: Arc<Mutex<Availability>>,
}

impl SeedVault {
    /// The seeds in the KV v2 engine at `mount`, read with `bao`'s token.
    pub fn new(bao: OpenBao, mount: &str) -> SeedVault {
        SeedVault {
            bao,
            mount: mount.to_owned(),
            availability: Arc::default(),
        }
    }

    /// Why nothing can be signed now (OpenBao unreachable, sealed, failing, the token
    /// refused for now), as the last seed read or [`SeedVault::probe`] found; `None` while the
    /// seeds can be read. Withdrawals wait meanwhile: each step tries again.
    pub fn unavailable(&self) -> Option<String> {
        let availability = self
            .availability
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        availability
            .probe
            .clone()
            .or_else(|| availability.read.clone())
    }

    /// Asks OpenBao whether it serves now (reachable, unsealed, active; no seed is read) and
    /// records the answer for [`SeedVault::unavailable`], which it returns.
    pub async fn probe(&self) -> Option<String> {
        let problem = match self.bao.health().await {
            Ok(health) if health.sealed => Some("OpenBao is sealed".to_owned()),
            Ok(health) if health.standby => Some("OpenBao answers as a standby".to_owned()),
            Ok(_) => None,
            Err(error) => Some(error.to_string()),
        };
        self.availability
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .probe = problem;
        self.unavailable()
    }

    /// Records the outcome of a seed read for [`SeedVault::unavailable`]: an unavailable
    /// OpenBao sets it, any answer clears it.
    fn note_read<T>(&self, outcome: &Result<T, KeyError>) {
        let problem = match outcome {
            Err(KeyError::Bao(error)) if error.is_unavailable() => Some(error.to_string()),
            _ => None,
        };
        self.availability
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .read = problem;
    }

    fn seed_path(currency: &str) -> String {
        format!("seeds/{currency}")
    }

    /// Makes the currency's seed unless one exists: true when this call made it.
    pub async fn ensure_seed(&self, currency: &str) -> Result<bool, KeyError> {
        let mut seed = Zeroizing::new([0u8; SEED_BYTES]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), seed.as_mut())
            .map_err(|_| KeyError::InvalidKey)?;
        let mut document = Document::new();
        document.insert("seed".to_owned(), Value::String(encode_hex(seed.as_ref())));
        let created = self
            .bao
            .kv_create(&self.mount, &Self::seed_path(currency), &document)
            .await;
        if let Some(Value::String(mut text)) = document.remove("seed") {
            text.zeroize();
        }
        match created {
            Ok(created) => Ok(created),
            // The wallet policy grants `create`, not `update`: writing over an existing seed is
            // refused before OpenBao looks at check-and-set. Denied with a seed there: it exists.
            Err(BaoError::Denied { path }) => match self.seed(currency).await {
                Ok(_) => Ok(false),
                Err(_) => Err(KeyError::Bao(BaoError::Denied { path })),
            },
            Err(error) => Err(error.into()),
        }
    }

    /// Reads the seed into a buffer zeroed on drop (and notes whether OpenBao answered).
    async fn seed(&self, currency: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let read = self
            .bao
            .kv_get(&self.mount, &Self::seed_path(currency))
            .await
            .map_err(KeyError::from);
        self.note_read(&read);
        let mut document = read?.ok_or_else(|| KeyError::NoSeed(currency.to_owned()))?;
        let Some(Value::String(mut text)) = document.remove("seed") else {
            return Err(KeyError::SeedMalformed(currency.to_owned()));
        };
        let seed = decode_hex(&text).map(Zeroizing::new);
        text.zeroize();
        match seed {
            Some(seed) if (16..=64).contains(&seed.len()) => Ok(seed),
            _ => Err(KeyError::SeedMalformed(currency.to_owned())),
        }
    }

    /// Runs `sign` with the private key at `path` of the currency's seed: the seed and every
    /// intermediate key are zeroed before this returns, the key itself when `sign` is done.
    pub async fn with_key<T>(
        &self,
        currency: &str,
        path: &DerivationPath,
        sign: impl FnOnce(&SecretKey) -> T,
    ) -> Result<T, KeyError> {
        let seed = self.seed(currency).await?;
        let key = derive(&seed, path)?;
        drop(seed);
        Ok(sign(&key))
    }

    /// The Ethereum address at `path` of the currency's seed.
    pub async fn eth_address(
        &self,
        currency: &str,
        path: &DerivationPath,
    ) -> Result<Address, KeyError> {
        self.with_key(currency, path, |key| eth_address(&key.public_key()))
            .await
    }
}
