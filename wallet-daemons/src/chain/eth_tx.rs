//! Ethereum transactions the signer makes: EIP-1559 (type 2) transfers, RLP-encoded and signed
//! with a secp256k1 key (RFC 6979 deterministic nonces, low-s), so the same request signed
//! twice gives the same bytes and the same transaction id — what lets the signer persist the raw
//! transaction before broadcasting and look it up by id after an uncertain broadcast.

use k256::SecretKey;
use k256::ecdsa::SigningKey;

use super::eth::keccak256;
use super::{Address, Hash32};

/// The most calldata a transaction built here carries (an ERC-20 `transfer` is 68 bytes).
pub const CALLDATA_BYTES_MAX: usize = 4_096;
/// The EIP-2718 type byte of an EIP-1559 transaction.
const TYPE_EIP1559: u8 = 0x02;

const _: () = assert!(CALLDATA_BYTES_MAX >= 68);

/// An unsigned EIP-1559 transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eip1559 {
    /// EIP-155 chain id (1 mainnet, 31337 anvil).
    pub chain_id: u64,
    /// The sender's nonce.
    pub nonce: u64,
    /// `maxPriorityFeePerGas`, wei.
    pub max_priority_fee_per_gas: u128,
    /// `maxFeePerGas`, wei.
    pub max_fee_per_gas: u128,
    /// Gas limit.
    pub gas_limit: u64,
    /// The recipient (a transfer's payee, or the token contract).
    pub to: Address,
    /// Wei sent.
    pub value: u128,
    /// Calldata (empty for ether; `transfer(to, amount)` for a token).
    pub data: Vec<u8>,
}

/// A signed transaction: its raw bytes for `eth_sendRawTransaction` and its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// EIP-2718 envelope: `0x02 || rlp([...fields, y_parity, r, s])`.
    pub raw: Vec<u8>,
    /// `keccak256(raw)`, the id the node reports.
    pub txid: Hash32,
}

/// Why a transaction could not be signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// The recipient is not an Ethereum address.
    #[error("the recipient is not an Ethereum address")]
    Recipient,
    /// More calldata than [`CALLDATA_BYTES_MAX`].
    #[error("calldata of {0} bytes exceeds the bound")]
    Calldata(usize),
    /// The signature failed (a key that is not a valid scalar cannot reach here).
    #[error("signing failed")]
    Signing,
}

/// Appends the RLP string encoding of `bytes`.
fn rlp_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() == 1 && bytes[0] < 0x80 {
        out.push(bytes[0]);
    } else {
        rlp_length(out, 0x80, bytes.len());
        out.extend_from_slice(bytes);
    }
}

/// Appends an RLP length prefix (`offset` 0x80 for strings, 0xc0 for lists).
fn rlp_length(out: &mut Vec<u8>, offset: u8, length: usize) {
    if length <= 55 {
        // Cannot truncate: at most 55.
        out.push(offset + length as u8);
    } else {
        let be = (length as u64).to_be_bytes();
        let skip = be.iter().take_while(|byte| **byte == 0).count();
        // At most 8 length bytes.
        out.push(offset + 55 + (8 - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
}

/// Appends an RLP integer: big-endian without leading zeros (zero is the empty string).
fn rlp_uint(out: &mut Vec<u8>, value: u128) {
    let be = value.to_be_bytes();
    let skip = be.iter().take_while(|byte| **byte == 0).count();
    rlp_bytes(out, &be[skip..]);
}

/// Wraps `payload` as an RLP list.
fn rlp_list(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 9);
    rlp_length(&mut out, 0xc0, payload.len());
    out.extend_from_slice(payload);
    out
}

impl Eip1559 {
    /// The nine signed fields, RLP-encoded back to back (not yet a list).
    fn fields(&self) -> Result<Vec<u8>, TxError> {
        let to = self.to.eth_bytes().ok_or(TxError::Recipient)?;
        if self.data.len() > CALLDATA_BYTES_MAX {
            return Err(TxError::Calldata(self.data.len()));
        }
        let mut out = Vec::with_capacity(128 + self.data.len());
        rlp_uint(&mut out, u128::from(self.chain_id));
        rlp_uint(&mut out, u128::from(self.nonce));
        rlp_uint(&mut out, self.max_priority_fee_per_gas);
        rlp_uint(&mut out, self.max_fee_per_gas);
        rlp_uint(&mut out, u128::from(self.gas_limit));
        rlp_bytes(&mut out, &to);
        rlp_uint(&mut out, self.value);
        rlp_bytes(&mut out, &self.data);
        out.extend_from_slice(&rlp_list(&[])); // empty access list
        Ok(out)
    }

    /// The hash signed: `keccak256(0x02 || rlp([fields]))`.
    pub fn signing_hash(&self) -> Result<[u8; 32], TxError> {
        let mut preimage = vec![TYPE_EIP1559];
        preimage.extend_from_slice(&rlp_list(&self.fields()?));
        Ok(keccak256(&preimage))
    }

    /// Signs with `key`: the raw transaction and its id.
    pub fn sign(&self, key: &SecretKey) -> Result<SignedTx, TxError> {
        let hash = self.signing_hash()?;
        let signing = SigningKey::from(key);
        let (signature, recovery) = signing
            .sign_prehash_recoverable(&hash)
            .map_err(|_| TxError::Signing)?;
        // Ethereum (EIP-2) accepts only the low-s form; k256 signs in it, checked here.
        debug_assert!(signature.normalize_s().is_none());
        let mut payload = self.fields()?;
        rlp_uint(&mut payload, u128::from(recovery.is_y_odd()));
        let (r, s) = signature.split_bytes();
        rlp_bytes(&mut payload, strip_zeros(&r));
        rlp_bytes(&mut payload, strip_zeros(&s));
        let mut raw = vec![TYPE_EIP1559];
        raw.extend_from_slice(&rlp_list(&payload));
        let txid = Hash32(keccak256(&raw));
        Ok(SignedTx { raw, txid })
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let skip = bytes.iter().take_while(|byte| **byte == 0).count();
    &bytes[skip..]
}

/// The calldata of ERC-20 `transfer(to, amount)`.
pub fn erc20_transfer_data(to: &Address, amount: u128) -> Result<Vec<u8>, TxError> {
    let to = to.eth_bytes().ok_or(TxError::Recipient)?;
    let mut data = Vec::with_capacity(68);
    data.extend_from_slice(&keccak256(b"transfer(address,uint256)")[..4]);
    data.extend_from_slice(&[0u8; 12]);
    data.extend_from_slice(&to);
    data.extend_from_slice(&[0u8; 16]);
    data.extend_from_slice(&amount.to_be_bytes());
    debug_assert_eq!(data.len(), 68);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::{rlp_bytes, rlp_list, rlp_uint};

    #[test]
    fn rlp_matches_the_yellow_papers_examples() {
        let mut out = Vec::new();
        rlp_bytes(&mut out, b"dog");
        assert_eq!(out, [0x83, b'd', b'o', b'g']);
        let mut out = Vec::new();
        rlp_uint(&mut out, 0);
        assert_eq!(out, [0x80]);
        let mut out = Vec::new();
        rlp_uint(&mut out, 15);
        assert_eq!(out, [0x0f]);
        let mut out = Vec::new();
        rlp_uint(&mut out, 1024);
        assert_eq!(out, [0x82, 0x04, 0x00]);
        assert_eq!(rlp_list(&[]), [0xc0]);
        let text = b"Lorem ipsum dolor sit amet, consectetur adipisicing elit";
        let mut out = Vec::new();
        rlp_bytes(&mut out, text);
        assert_eq!(&out[..2], [0xb8, 0x38]);
        assert_eq!(&out[2..], text);
    }
}
