//! The chain adapter: what the wallet daemons ask of a blockchain node, in words that fit an
//! account chain (Ethereum: [`eth::EthRpc`]) and a UTXO chain (bitcoind, to come) alike.
//!
//! A block is read by number and carries its own hash and its parent's, so the deposit watcher
//! can keep the chain of hashes and see a reorganisation; a [`Transfer`] is one credit to a
//! watched address, named by (transaction id, [`Leg`]) — the key a deposit is credited by
//! exactly once.

pub mod eth;
pub mod eth_tx;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;

/// The longest text form of an address accepted (bech32 addresses reach 90 characters).
pub const ADDRESS_CHARS_MAX: usize = 90;

/// A 32-byte hash (block hash, transaction id), shown as `0x`-prefixed lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// Parses `0x` + 64 hex digits (either case).
    pub fn parse(text: &str) -> Option<Hash32> {
        let digits = text.strip_prefix("0x")?;
        let bytes = decode_hex(digits)?;
        Some(Hash32(bytes.try_into().ok()?))
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An address in its chain's canonical text form (Ethereum: `0x` + 40 lower-case hex digits;
/// bitcoin: lower-case bech32), so addresses compare and store as text on every chain.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(String);

impl Address {
    /// An Ethereum address from its 20 bytes.
    pub fn from_eth_bytes(bytes: &[u8; 20]) -> Address {
        let mut text = String::with_capacity(42);
        text.push_str("0x");
        for byte in bytes {
            text.push_str(&format!("{byte:02x}"));
        }
        Address(text)
    }

    /// An Ethereum address from text (`0x` + 40 hex digits, any case: the checksum case is not
    /// verified, the canonical form is lower case).
    pub fn parse_eth(text: &str) -> Option<Address> {
        let digits = text.strip_prefix("0x")?;
        let bytes: [u8; 20] = decode_hex(digits)?.try_into().ok()?;
        Some(Address::from_eth_bytes(&bytes))
    }

    /// An Ethereum address a person typed, in its EIP-55 checksum case: `None` unless it is
    /// `0x` + 40 hex digits whose letters are upper case exactly where the checksum says. An
    /// all-lower-case address carries no checksum and is refused too: a payee's address is
    /// where funds leave for good, and one mistyped digit must not pass.
    pub fn parse_eip55(text: &str) -> Option<Address> {
        let address = Address::parse_eth(text)?;
        (address.eip55() == text).then_some(address)
    }

    /// The EIP-55 form of an Ethereum address: a hex letter is upper case where the matching
    /// nibble of Keccak-256 of the lower-case hex is 8 or more.
    pub fn eip55(&self) -> String {
        let digits = self.0.strip_prefix("0x").unwrap_or(&self.0);
        let hash = eth::keccak256(digits.as_bytes());
        let mut text = String::with_capacity(42);
        text.push_str("0x");
        for (index, c) in digits.chars().enumerate() {
            let byte = hash.get(index / 2).copied().unwrap_or(0);
            let nibble = if index % 2 == 0 {
                byte >> 4
            } else {
                byte & 0x0f
            };
            text.push(if nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            });
        }
        text
    }

    /// An Ethereum address's 20 bytes; `None` for another chain's address.
    pub fn eth_bytes(&self) -> Option<[u8; 20]> {
        decode_hex(self.0.strip_prefix("0x")?)?.try_into().ok()
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which part of a transaction pays a watched address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Leg {
    /// The transaction's own value (an Ethereum native transfer).
    Value,
    /// A token contract's `Transfer` event, by its log index in the block.
    Log(u32),
    /// A UTXO output, by its index in the transaction.
    Output(u32),
}

impl Leg {
    /// The stored form: -1 for the value, the index otherwise (logs and outputs never share a
    /// chain, so the index alone is unique within a transaction).
    pub fn to_stored(self) -> i64 {
        match self {
            Leg::Value => -1,
            Leg::Log(index) | Leg::Output(index) => i64::from(index),
        }
    }
}

/// The asset a transfer moves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Asset {
    /// The chain's own coin (ETH, BTC).
    Native,
    /// A token, by its contract address.
    Token(Address),
}

/// One credit to a watched address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The transaction.
    pub txid: Hash32,
    /// Which part of it.
    pub leg: Leg,
    /// What moves.
    pub asset: Asset,
    /// Who receives (a watched address).
    pub to: Address,
    /// The amount in the asset's smallest chain unit (wei, satoshi, token base units).
    pub amount: u128,
}

/// A block: its place in the chain and the transfers it carries to watched addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Height.
    pub number: u64,
    /// Its hash.
    pub hash: Hash32,
    /// Its parent's hash.
    pub parent: Hash32,
    /// Seconds since the Unix epoch, as the block says.
    pub timestamp_s: u64,
    /// Successful transfers to watched addresses, in block order.
    pub transfers: Vec<Transfer>,
}

/// What a block read looks for: the watched addresses and the token contracts.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    /// Receiving addresses of the native coin.
    pub native: HashSet<Address>,
    /// Token contracts followed, and the receiving addresses watched for each.
    pub tokens: Vec<(Address, HashSet<Address>)>,
}

/// The network's fee, for a transaction being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeeEstimate {
    /// EIP-1559: the most paid per gas, and the tip to the block producer (wei).
    Eip1559 {
        /// `maxFeePerGas`.
        max_fee_per_gas: u128,
        /// `maxPriorityFeePerGas`.
        max_priority_fee_per_gas: u128,
    },
    /// A fee rate per virtual byte (bitcoin), in the smallest unit.
    PerVbyte(u64),
}

/// A transaction's receipt once it is in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The block holding it.
    pub block_number: u64,
    /// That block's hash (compare with the watcher's chain before trusting the receipt).
    pub block_hash: Hash32,
    /// It executed successfully (a failed Ethereum transaction is mined but moves no value).
    pub success: bool,
}

/// Why a chain call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The node did not answer (down, timed out, refused the connection): retry later.
    #[error("the node at {url} cannot be reached: {source}")]
    Unreachable {
        /// The node's URL.
        url: String,
        /// The transport failure.
        source: reqwest::Error,
    },
    /// The node answered with an HTTP status other than 200.
    #[error("the node answered HTTP {status} to {method}")]
    Status {
        /// The call.
        method: &'static str,
        /// The status.
        status: u16,
    },
    /// The answer was larger than the bound.
    #[error("the answer to {method} exceeds {limit_bytes} bytes")]
    TooLarge {
        /// The call.
        method: &'static str,
        /// The bound.
        limit_bytes: usize,
    },
    /// The node refused the call (JSON-RPC error object).
    #[error("{method} refused: {code} {message}")]
    Refused {
        /// The call.
        method: &'static str,
        /// JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The answer did not have the documented shape.
    #[error("malformed answer to {method}: {what}")]
    Malformed {
        /// The call.
        method: &'static str,
        /// What was wrong.
        what: &'static str,
    },
    /// The block being read was replaced while it was read (a reorganisation under way): read
    /// it again.
    #[error("the block changed while {method} read it")]
    Reorganised {
        /// The call.
        method: &'static str,
    },
    /// This chain has no such notion (an account nonce on a UTXO chain).
    #[error("this chain does not support {0}")]
    Unsupported(&'static str),
}

impl ChainError {
    /// True when the node could not answer now (retry later), as opposed to a refusal or an
    /// answer this version cannot read.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ChainError::Unreachable { .. }
                | ChainError::Status { .. }
                | ChainError::Reorganised { .. }
        )
    }
}

/// What the wallet daemons ask of a node. Calls are independent requests: an implementation
/// holds no cursor, so a reader may ask the same block twice and gets what the node has now.
pub trait Chain: Send + Sync {
    /// The number of the node's best block.
    fn head(&self) -> impl Future<Output = Result<u64, ChainError>> + Send;

    /// Block `number` on the node's best chain with its transfers to `watch`; `None` when the
    /// node has no such block (yet).
    fn block(
        &self,
        number: u64,
        watch: &Watch,
    ) -> impl Future<Output = Result<Option<Block>, ChainError>> + Send;

    /// The fee to offer now.
    fn fee_estimate(&self) -> impl Future<Output = Result<FeeEstimate, ChainError>> + Send;

    /// Broadcasts a signed transaction; its id.
    fn send_raw(&self, raw: &[u8]) -> impl Future<Output = Result<Hash32, ChainError>> + Send;

    /// The receipt of `txid`, `None` while it is not in a block (or unknown).
    fn receipt(
        &self,
        txid: &Hash32,
    ) -> impl Future<Output = Result<Option<Receipt>, ChainError>> + Send;

    /// The next nonce of `address`, counting pending transactions (account chains only).
    fn nonce(&self, address: &Address) -> impl Future<Output = Result<u64, ChainError>> + Send;
}

/// Hex digits to bytes; `None` on an odd length or a non-hex digit.
pub(crate) fn decode_hex(digits: &str) -> Option<Vec<u8>> {
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let high = (pair[0] as char).to_digit(16)?;
            let low = (pair[1] as char).to_digit(16)?;
            u8::try_from(high * 16 + low).ok()
        })
        .collect()
}

/// Bytes as lower-case hex, without prefix.
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

const _: () = assert!(ADDRESS_CHARS_MAX >= 42);

#[cfg(test)]
mod eip55_tests {
    use super::Address;

    #[test]
    fn eip55_accepts_the_checksum_case_only() {
        // The vectors of EIP-55 itself.
        for text in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let address = Address::parse_eip55(text).expect(text);
            assert_eq!(address.eip55(), text);
            assert_eq!(address.as_str(), text.to_ascii_lowercase());
        }
        // One letter's case flipped, no checksum at all, not an address.
        assert!(Address::parse_eip55("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD").is_none());
        assert!(Address::parse_eip55("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").is_none());
        assert!(Address::parse_eip55("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeA").is_none());
    }
}
