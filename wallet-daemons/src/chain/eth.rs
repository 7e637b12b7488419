//! The Ethereum adapter: JSON-RPC over HTTP (an execution client, anvil in tests).
//!
//! Native transfers are the value of a block's transactions sent to a watched address, kept only
//! when the receipt says the transaction succeeded (a reverted transaction is mined but moves no
//! value). Token transfers are the `Transfer(address,address,uint256)` events of the followed
//! contracts, read with `eth_getLogs` pinned to the block's hash, so a block replaced between
//! the two reads is refused rather than mixed with its replacement. Value moved by a contract's
//! internal call (a multisig paying out) is not seen: deposits are plain transfers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha3::{Digest, Keccak256};

use super::{
    Address, Asset, Block, Chain, ChainError, FeeEstimate, Hash32, Leg, Receipt, Transfer, Watch,
    decode_hex, encode_hex,
};

/// The longest a call may take, connection included.
pub const RPC_TIMEOUT_MS: u64 = 10_000;
/// The largest answer read: a full block with its transactions (a 30 M gas block of minimal
/// transactions is about 1 400 of ~700 bytes as JSON, ~1 MiB; calldata-heavy blocks more).
pub const RPC_RESPONSE_BYTES_MAX: usize = 32 << 20;

const _: () = assert!(RPC_RESPONSE_BYTES_MAX >= 1 << 20);
const _: () = assert!(RPC_TIMEOUT_MS >= 1_000 && RPC_TIMEOUT_MS <= 60_000);

/// `keccak256("Transfer(address,address,uint256)")`, the ERC-20 event's first topic.
pub fn transfer_topic() -> Hash32 {
    Hash32(keccak256(b"Transfer(address,address,uint256)"))
}

/// Keccak-256 (Ethereum's, not NIST SHA3-256).
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

/// A JSON-RPC client of one Ethereum node.
#[derive(Debug)]
pub struct EthRpc {
    url: String,
    http: reqwest::Client,
    next_id: AtomicU64,
}

impl EthRpc {
    /// A client of the node at `url` (`http://host:port`).
    pub fn new(url: &str) -> Result<EthRpc, ChainError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(RPC_TIMEOUT_MS))
            .connect_timeout(Duration::from_millis(RPC_TIMEOUT_MS))
            .build()
            .map_err(|source| ChainError::Unreachable {
                url: url.to_owned(),
                source,
            })?;
        Ok(EthRpc {
            url: url.to_owned(),
            http,
            next_id: AtomicU64::new(1),
        })
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The chain's EIP-155 id (`eth_chainId`), which every signed transaction carries.
    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        const METHOD: &str = "eth_chainId";
        let id: String = self.call(METHOD, json!([])).await?;
        quantity_u64(METHOD, "chain id", &id)
    }

    /// The balance of `address` in wei at the latest block.
    pub async fn balance(&self, address: &Address) -> Result<u128, ChainError> {
        const METHOD: &str = "eth_getBalance";
        let balance: String = self
            .call(METHOD, json!([address.as_str(), "latest"]))
            .await?;
        quantity(METHOD, "balance", &balance)
    }

    /// The balance of `address` in `token` (ERC-20 `balanceOf`) at the latest block, in the
    /// token's base units; a balance above 2^128 is refused as malformed (no real supply
    /// reaches it).
    pub async fn token_balance(
        &self,
        token: &Address,
        address: &Address,
    ) -> Result<u128, ChainError> {
        const METHOD: &str = "eth_call";
        let malformed = |what| ChainError::Malformed {
            method: METHOD,
            what,
        };
        let holder = address.eth_bytes().ok_or(malformed("holder address"))?;
        let mut data = keccak256(b"balanceOf(address)")[..4].to_vec();
        data.extend_from_slice(&[0u8; 12]);
        data.extend_from_slice(&holder);
        let call = json!({ "to": token.as_str(), "data": format!("0x{}", encode_hex(&data)) });
        let answer: String = self.call(METHOD, json!([call, "latest"])).await?;
        let word = answer
            .strip_prefix("0x")
            .and_then(decode_hex)
            .filter(|word| word.len() == 32)
            .ok_or(malformed("balanceOf answer"))?;
        if word[..16].iter().any(|byte| *byte != 0) {
            return Err(malformed("balance above 2^128"));
        }
        let mut low = [0u8; 16];
        low.copy_from_slice(&word[16..]);
        Ok(u128::from_be_bytes(low))
    }

    /// Calls `method` with `params` and decodes its `result` (JSON `null` decodes as `None`
    /// where `T` is an `Option`).
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: Value,
    ) -> Result<T, ChainError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let unreachable = |source| ChainError::Unreachable {
            url: self.url.clone(),
            source,
        };
        let mut response = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(unreachable)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(ChainError::Status {
                method,
                status: response.status().as_u16(),
            });
        }
        let too_large = ChainError::TooLarge {
            method,
            limit_bytes: RPC_RESPONSE_BYTES_MAX,
        };
        if response
            .content_length()
            .is_some_and(|length| length > RPC_RESPONSE_BYTES_MAX as u64)
        {
            return Err(too_large);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > RPC_RESPONSE_BYTES_MAX {
                return Err(too_large);
            }
            bytes.extend_from_slice(&chunk);
        }
        decode_answer(method, &bytes)
    }
}

/// A JSON-RPC answer: `result` or `error`.
#[derive(Deserialize)]
struct Answer<T> {
    result: Option<T>,
    error: Option<RpcError>,
}

#[derive(Deserialize)]
struct RpcError {
    code: i64,
    message: String,
}

fn decode_answer<T: DeserializeOwned>(method: &'static str, bytes: &[u8]) -> Result<T, ChainError> {
    let answer: Answer<Value> =
        serde_json::from_slice(bytes).map_err(|_| ChainError::Malformed {
            method,
            what: "not a JSON-RPC answer",
        })?;
    if let Some(error) = answer.error {
        return Err(ChainError::Refused {
            method,
            code: error.code,
            message: error.message.chars().take(512).collect(),
        });
    }
    serde_json::from_value(answer.result.unwrap_or(Value::Null)).map_err(|_| {
        ChainError::Malformed {
            method,
            what: "result of an unexpected shape",
        }
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcBlock {
    number: String,
    hash: String,
    parent_hash: String,
    timestamp: String,
    #[serde(default)]
    transactions: Vec<RpcTx>,
}

/// A block read without its transactions (they come as hashes then): the fee fields only.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcFeeHeader {
    base_fee_per_gas: Option<String>,
}

#[derive(Deserialize)]
struct RpcTx {
    hash: String,
    to: Option<String>,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcLog {
    address: String,
    topics: Vec<String>,
    data: String,
    transaction_hash: String,
    log_index: String,
    #[serde(default)]
    removed: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcReceipt {
    block_number: Option<String>,
    block_hash: Option<String>,
    status: Option<String>,
}

/// A JSON-RPC quantity (`0x`-prefixed hex, no leading zeros required) as u128.
fn quantity(method: &'static str, what: &'static str, text: &str) -> Result<u128, ChainError> {
    let malformed = ChainError::Malformed { method, what };
    let digits = text
        .strip_prefix("0x")
        .ok_or(ChainError::Malformed { method, what })?;
    if digits.is_empty() || digits.len() > 32 {
        return Err(malformed);
    }
    u128::from_str_radix(digits, 16).map_err(|_| malformed)
}

fn quantity_u64(method: &'static str, what: &'static str, text: &str) -> Result<u64, ChainError> {
    u64::try_from(quantity(method, what, text)?).map_err(|_| ChainError::Malformed { method, what })
}

fn hash(method: &'static str, what: &'static str, text: &str) -> Result<Hash32, ChainError> {
    Hash32::parse(text).ok_or(ChainError::Malformed { method, what })
}

fn hex_quantity(value: u64) -> String {
    format!("0x{value:x}")
}

impl EthRpc {
    /// The transactions of `block` that pay a watched address and succeeded.
    async fn native_transfers(
        &self,
        block: &RpcBlock,
        block_hash: Hash32,
        watch: &Watch,
    ) -> Result<Vec<Transfer>, ChainError> {
        const METHOD: &str = "eth_getBlockByNumber";
        let mut transfers = Vec::new();
        for tx in &block.transactions {
            let Some(to) = tx.to.as_deref().and_then(Address::parse_eth) else {
                continue; // contract creation, or not an address
            };
            if !watch.native.contains(&to) {
                continue;
            }
            let amount = quantity(METHOD, "transaction value", &tx.value)?;
            if amount == 0 {
                continue;
            }
            let txid = hash(METHOD, "transaction hash", &tx.hash)?;
            let receipt = self.receipt(&txid).await?;
            match receipt {
                Some(receipt) if receipt.block_hash == block_hash => {
                    if receipt.success {
                        transfers.push(Transfer {
                            txid,
                            leg: Leg::Value,
                            asset: Asset::Native,
                            to,
                            amount,
                        });
                    }
                }
                // The block was replaced between the two reads: the caller reads it again.
                _ => return Err(ChainError::Reorganised { method: METHOD }),
            }
        }
        Ok(transfers)
    }

    /// The followed tokens' `Transfer` events in the block `block_hash` to watched addresses.
    async fn token_transfers(
        &self,
        block_hash: Hash32,
        watch: &Watch,
    ) -> Result<Vec<Transfer>, ChainError> {
        const METHOD: &str = "eth_getLogs";
        if watch.tokens.is_empty() {
            return Ok(Vec::new());
        }
        let contracts: Vec<&str> = watch.tokens.iter().map(|(c, _)| c.as_str()).collect();
        let filter = json!({
            "blockHash": block_hash.to_string(),
            "address": contracts,
            "topics": [transfer_topic().to_string()],
        });
        let logs: Vec<RpcLog> = self.call(METHOD, json!([filter])).await?;
        let mut transfers = Vec::new();
        for log in logs {
            if log.removed {
                continue;
            }
            let Some(transfer) = token_transfer(&log, watch)? else {
                continue;
            };
            transfers.push(transfer);
        }
        Ok(transfers)
    }
}

/// One log as a transfer to a watched address, `None` when it is not one (another event with
/// the same topic, such as ERC-721's with its token id indexed, or an unwatched recipient).
fn token_transfer(log: &RpcLog, watch: &Watch) -> Result<Option<Transfer>, ChainError> {
    const METHOD: &str = "eth_getLogs";
    let Some(contract) = Address::parse_eth(&log.address) else {
        return Err(ChainError::Malformed {
            method: METHOD,
            what: "log address",
        });
    };
    let Some((_, watched)) = watch.tokens.iter().find(|(c, _)| *c == contract) else {
        return Ok(None);
    };
    if log.topics.len() != 3 {
        return Ok(None);
    }
    let recipient = hash(METHOD, "log topic", &log.topics[2])?;
    if recipient.0[..12].iter().any(|byte| *byte != 0) {
        return Ok(None);
    }
    let mut to_bytes = [0u8; 20];
    to_bytes.copy_from_slice(&recipient.0[12..]);
    let to = Address::from_eth_bytes(&to_bytes);
    if !watched.contains(&to) {
        return Ok(None);
    }
    let data = log
        .data
        .strip_prefix("0x")
        .and_then(decode_hex)
        .filter(|data| data.len() == 32)
        .ok_or(ChainError::Malformed {
            method: METHOD,
            what: "Transfer data",
        })?;
    // A uint256 above u128 is no real balance (the token's total supply bounds it): not a
    // deposit this exchange can hold, so it is skipped rather than truncated.
    if data[..16].iter().any(|byte| *byte != 0) {
        tracing::warn!(%contract, tx = %log.transaction_hash, "token transfer above 2^128 skipped");
        return Ok(None);
    }
    let mut low = [0u8; 16];
    low.copy_from_slice(&data[16..]);
    let amount = u128::from_be_bytes(low);
    if amount == 0 {
        return Ok(None);
    }
    let index = u32::try_from(quantity(METHOD, "log index", &log.log_index)?).map_err(|_| {
        ChainError::Malformed {
            method: METHOD,
            what: "log index",
        }
    })?;
    Ok(Some(Transfer {
        txid: hash(METHOD, "transaction hash", &log.transaction_hash)?,
        leg: Leg::Log(index),
        asset: Asset::Token(contract),
        to,
        amount,
    }))
}

impl Chain for EthRpc {
    async fn head(&self) -> Result<u64, ChainError> {
        const METHOD: &str = "eth_blockNumber";
        let number: String = self.call(METHOD, json!([])).await?;
        quantity_u64(METHOD, "block number", &number)
    }

    async fn block(&self, number: u64, watch: &Watch) -> Result<Option<Block>, ChainError> {
        const METHOD: &str = "eth_getBlockByNumber";
        let block: Option<RpcBlock> = self
            .call(METHOD, json!([hex_quantity(number), true]))
            .await?;
        let Some(block) = block else {
            return Ok(None);
        };
        if quantity_u64(METHOD, "block number", &block.number)? != number {
            return Err(ChainError::Malformed {
                method: METHOD,
                what: "another block than asked",
            });
        }
        let block_hash = hash(METHOD, "block hash", &block.hash)?;
        let mut transfers = self.native_transfers(&block, block_hash, watch).await?;
        transfers.extend(self.token_transfers(block_hash, watch).await?);
        Ok(Some(Block {
            number,
            hash: block_hash,
            parent: hash(METHOD, "parent hash", &block.parent_hash)?,
            timestamp_s: quantity_u64(METHOD, "timestamp", &block.timestamp)?,
            transfers,
        }))
    }

    async fn fee_estimate(&self) -> Result<FeeEstimate, ChainError> {
        const METHOD: &str = "eth_getBlockByNumber";
        let tip: String = self.call("eth_maxPriorityFeePerGas", json!([])).await?;
        let tip = quantity("eth_maxPriorityFeePerGas", "fee", &tip)?;
        let latest: Option<RpcFeeHeader> = self.call(METHOD, json!(["latest", false])).await?;
        let base =
            latest
                .and_then(|block| block.base_fee_per_gas)
                .ok_or(ChainError::Malformed {
                    method: METHOD,
                    what: "baseFeePerGas",
                })?;
        let base = quantity(METHOD, "baseFeePerGas", &base)?;
        // Twice the base fee: room for six full blocks' rises (12.5 % each) before it is stale.
        Ok(FeeEstimate::Eip1559 {
            max_fee_per_gas: base.saturating_mul(2).saturating_add(tip),
            max_priority_fee_per_gas: tip,
        })
    }

    async fn send_raw(&self, raw: &[u8]) -> Result<Hash32, ChainError> {
        const METHOD: &str = "eth_sendRawTransaction";
        let txid: String = self
            .call(METHOD, json!([format!("0x{}", encode_hex(raw))]))
            .await?;
        hash(METHOD, "transaction hash", &txid)
    }

    async fn receipt(&self, txid: &Hash32) -> Result<Option<Receipt>, ChainError> {
        const METHOD: &str = "eth_getTransactionReceipt";
        let receipt: Option<RpcReceipt> = self.call(METHOD, json!([txid.to_string()])).await?;
        let Some(receipt) = receipt else {
            return Ok(None);
        };
        let (Some(number), Some(block_hash)) = (receipt.block_number, receipt.block_hash) else {
            return Ok(None); // pending
        };
        Ok(Some(Receipt {
            block_number: quantity_u64(METHOD, "block number", &number)?,
            block_hash: hash(METHOD, "block hash", &block_hash)?,
            success: receipt.status.as_deref() == Some("0x1"),
        }))
    }

    async fn nonce(&self, address: &Address) -> Result<u64, ChainError> {
        const METHOD: &str = "eth_getTransactionCount";
        let count: String = self
            .call(METHOD, json!([address.as_str(), "pending"]))
            .await?;
        quantity_u64(METHOD, "nonce", &count)
    }
}
