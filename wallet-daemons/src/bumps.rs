//! Fee bumps: a withdrawal's transaction with no receipt [`BumpPolicy::after_blocks`] after
//! the head it was signed at is replaced by one with the same nonce and payment at a higher
//! fee — at least [`FEE_BUMP_PERCENT`] above the last on both fees (nodes replace a pending
//! transaction for 10 % more) and at least the node's estimate, never above the configured cap,
//! at most [`BumpPolicy::bumps_max`] times.
//!
//! A replacement is written before it is sent, like the first signature: the withdrawal's row
//! takes the new bytes (its id, fees and head), and the bytes it replaced go to
//! `wallet_tx_attempts` in the same database transaction, only if the row still holds them (two
//! signers cannot both bump). Any of the attempts may be the one mined — the node may have
//! mined the older one before it saw the replacement — so the signer looks each id up, and the
//! one mined becomes the row's transaction ([`WalletStore::adopt_attempt`]); they share a
//! nonce, so at most one of them is ever mined.

use crate::chain::eth_tx::{Eip1559, SignedTx};
use crate::chain::{Address, Hash32, decode_hex, encode_hex};
use crate::store::{StoreError, Tx, WalletStore, on_pool, on_tx, to_i64, to_u64};

/// Percent a replacement raises both fees by at least (nodes replace for 10 % more).
pub const FEE_BUMP_PERCENT: u128 = 25;
/// Replacements of one transaction at most, whatever the configuration says.
pub const FEE_BUMPS_LIMIT: u32 = 20;
/// Blocks without a receipt before a bump, by default.
pub const BUMP_AFTER_BLOCKS_DEFAULT: u64 = 12;
/// Replacements of one transaction by default.
pub const FEE_BUMPS_MAX_DEFAULT: u32 = 5;
/// The highest `maxFeePerGas` a replacement offers by default: 500 gwei.
pub const MAX_FEE_PER_GAS_CAP_WEI_DEFAULT: u128 = 500_000_000_000;

const _: () = assert!(FEE_BUMP_PERCENT >= 10 && FEE_BUMPS_MAX_DEFAULT <= FEE_BUMPS_LIMIT);

/// The `owner` of a withdrawal's attempts in `wallet_tx_attempts`.
const OWNER_WITHDRAWAL: &str = "withdrawal";

/// An EIP-1559 fee, wei per gas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fee {
    /// `maxFeePerGas`.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas`.
    pub max_priority_fee_per_gas: u128,
}

impl Fee {
    /// The most `gas` can cost at this fee, wei.
    pub fn cost(self, gas: u64) -> u128 {
        self.max_fee_per_gas.saturating_mul(u128::from(gas))
    }

    /// The unsigned transaction making `payment` (recipient, wei, calldata, gas limit) on
    /// chain `chain_id` with `nonce`, at this fee.
    pub fn transaction(
        self,
        chain_id: u64,
        nonce: u64,
        (to, value, data, gas_limit): (Address, u128, Vec<u8>, u64),
    ) -> Eip1559 {
        Eip1559 {
            chain_id,
            nonce,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
            max_fee_per_gas: self.max_fee_per_gas,
            gas_limit,
            to,
            value,
            data,
        }
    }
}

/// When a transaction is replaced and how far its fee may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BumpPolicy {
    /// Blocks past the head it was signed at, with no receipt, before it is replaced.
    pub after_blocks: u64,
    /// Replacements of one transaction at most (0: never; at most [`FEE_BUMPS_LIMIT`]).
    pub bumps_max: u32,
    /// The highest `maxFeePerGas` a replacement offers, wei: one that would need more waits.
    pub max_fee_per_gas_cap_wei: u128,
}

impl Default for BumpPolicy {
    fn default() -> BumpPolicy {
        BumpPolicy {
            after_blocks: BUMP_AFTER_BLOCKS_DEFAULT,
            bumps_max: FEE_BUMPS_MAX_DEFAULT,
            max_fee_per_gas_cap_wei: MAX_FEE_PER_GAS_CAP_WEI_DEFAULT,
        }
    }
}

impl BumpPolicy {
    /// Whether a transaction signed at `signed_at_block`, replaced `bumps` times so far and
    /// not mined, is due for a replacement at `head`.
    pub fn due(&self, signed_at_block: u64, bumps: u32, head: u64) -> bool {
        bumps < self.bumps_max.min(FEE_BUMPS_LIMIT)
            && head >= signed_at_block.saturating_add(self.after_blocks.max(1))
    }

    /// The replacement's fee for one offering `last`, with the node's `estimate` now; `None`
    /// when it would exceed the cap.
    pub fn bumped(&self, last: Fee, estimate: Fee) -> Option<Fee> {
        let raise = |fee: u128| {
            fee.saturating_mul(100 + FEE_BUMP_PERCENT)
                .div_ceil(100)
                .max(fee.saturating_add(1))
        };
        let tip = raise(last.max_priority_fee_per_gas).max(estimate.max_priority_fee_per_gas);
        let max = raise(last.max_fee_per_gas)
            .max(estimate.max_fee_per_gas)
            .max(tip);
        let bumped = Fee {
            max_fee_per_gas: max,
            max_priority_fee_per_gas: tip,
        };
        debug_assert!(bumped.max_fee_per_gas > last.max_fee_per_gas);
        (max <= self.max_fee_per_gas_cap_wei).then_some(bumped)
    }
}

/// What a signed withdrawal's row says of its latest attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastAttempt {
    /// Its fee.
    pub fee: Fee,
    /// The head when it was signed.
    pub signed_at_block: u64,
    /// Replacements so far.
    pub bumps: u32,
}

/// A replacement to record: the bytes it replaces and its own.
#[derive(Debug)]
pub(crate) struct Replacement<'a> {
    pub chain: &'a str,
    pub id: u64,
    pub last: &'a SignedTx,
    pub next: &'a SignedTx,
    pub fee: Fee,
    pub head: u64,
    pub bumps: u32,
}

fn bad(column: &'static str, value: &str) -> StoreError {
    StoreError::UnknownValue {
        column,
        value: value.to_owned(),
    }
}

fn signed_tx(txid: &str, raw: &str) -> Result<SignedTx, StoreError> {
    Ok(SignedTx {
        txid: Hash32::parse(txid).ok_or_else(|| bad("txid", txid))?,
        raw: decode_hex(raw).ok_or_else(|| bad("raw_hex", "not hex"))?,
    })
}

impl WalletStore {
    /// The latest attempt of withdrawal `id`; `None` before it is signed (or signed by a
    /// version that did not record its fee: never bumped).
    pub async fn last_attempt(&self, id: u64) -> Result<Option<LastAttempt>, StoreError> {
        const SQL: &str = "SELECT max_fee_per_gas, max_priority_fee_per_gas, signed_at_block, \
             bumps FROM wallet_withdrawals WHERE id = ?";
        type Row = (Option<String>, Option<String>, Option<i64>, i64);
        let row: Option<Row> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL)
                .bind(to_i64(id))
                .fetch_optional(pool)
                .await?
        });
        let Some((Some(max), Some(tip), Some(block), bumps)) = row else {
            return Ok(None);
        };
        Ok(Some(LastAttempt {
            fee: Fee {
                max_fee_per_gas: max.parse().map_err(|_| bad("max_fee_per_gas", &max))?,
                max_priority_fee_per_gas: tip
                    .parse()
                    .map_err(|_| bad("max_priority_fee_per_gas", &tip))?,
            },
            signed_at_block: to_u64("signed_at_block", block)?,
            bumps: u32::try_from(bumps).map_err(|_| bad("bumps", &bumps.to_string()))?,
        }))
    }

    /// The attempts withdrawal `id`'s latest replaced, oldest first.
    pub async fn replaced_attempts(&self, id: u64) -> Result<Vec<SignedTx>, StoreError> {
        const SQL: &str = "SELECT txid, raw_hex FROM wallet_tx_attempts WHERE owner = ? \
             AND owner_id = ? ORDER BY attempt";
        let rows: Vec<(String, String)> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL)
                .bind(OWNER_WITHDRAWAL)
                .bind(to_i64(id))
                .fetch_all(pool)
                .await?
        });
        rows.iter()
            .map(|(txid, raw)| signed_tx(txid, raw))
            .collect()
    }

    /// Records a replacement before it is sent: the replaced bytes kept as an attempt, the
    /// row's transaction, fee, head and bump count moved on — only if the row is `broadcast`
    /// with the replaced bytes still (false: another signer moved it; nothing recorded).
    pub(crate) async fn record_bump(&self, bump: &Replacement<'_>) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let moved = update_to_replacement(&mut tx, bump).await?;
        if !moved {
            return Ok(false); // dropped: rolled back
        }
        let kept = on_tx!(&mut tx, |conn, _mysql| {
            sqlx::query(
                "INSERT INTO wallet_tx_attempts (chain, owner, owner_id, attempt, txid, \
                 raw_hex) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(bump.chain)
            .bind(OWNER_WITHDRAWAL)
            .bind(to_i64(bump.id))
            .bind(i64::from(bump.bumps))
            .bind(bump.last.txid.to_string())
            .bind(encode_hex(&bump.last.raw))
            .execute(&mut *conn)
            .await
            .map(|_| ())
        });
        match kept {
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => return Ok(false),
            Err(error) => return Err(error.into()),
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Makes the replaced attempt `mined` (found mined) withdrawal `id`'s transaction, the
    /// row's latest becoming an attempt in its place: what the user and the settlement see is
    /// what the chain holds. False when `mined` is not one of its attempts.
    pub async fn adopt_attempt(&self, id: u64, mined: &Hash32) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let adopted = on_tx!(&mut tx, |conn, _mysql| {
            let found: Option<(i64, String)> = sqlx::query_as(
                "SELECT attempt, raw_hex FROM wallet_tx_attempts WHERE owner = ? \
                 AND owner_id = ? AND txid = ?",
            )
            .bind(OWNER_WITHDRAWAL)
            .bind(to_i64(id))
            .bind(mined.to_string())
            .fetch_optional(&mut *conn)
            .await?;
            let Some((attempt, raw)) = found else {
                return Ok(false);
            };
            let (latest, latest_raw): (String, String) =
                sqlx::query_as("SELECT txid, raw_hex FROM wallet_withdrawals WHERE id = ?")
                    .bind(to_i64(id))
                    .fetch_one(&mut *conn)
                    .await?;
            // The attempt takes the row's bytes, the row the attempt's: a swap.
            sqlx::query(
                "UPDATE wallet_tx_attempts SET txid = ?, raw_hex = ? WHERE owner = ? \
                 AND owner_id = ? AND attempt = ?",
            )
            .bind(latest)
            .bind(latest_raw)
            .bind(OWNER_WITHDRAWAL)
            .bind(to_i64(id))
            .bind(attempt)
            .execute(&mut *conn)
            .await?;
            sqlx::query("UPDATE wallet_withdrawals SET txid = ?, raw_hex = ? WHERE id = ?")
                .bind(mined.to_string())
                .bind(raw)
                .bind(to_i64(id))
                .execute(&mut *conn)
                .await?;
            true
        });
        tx.commit().await?;
        Ok(adopted)
    }
}

/// The row's side of [`WalletStore::record_bump`]: true when it still held the replaced bytes.
async fn update_to_replacement(tx: &mut Tx, bump: &Replacement<'_>) -> Result<bool, StoreError> {
    let rows = on_tx!(tx, |conn, _mysql| {
        sqlx::query(
            "UPDATE wallet_withdrawals SET txid = ?, raw_hex = ?, max_fee_per_gas = ?, \
             max_priority_fee_per_gas = ?, signed_at_block = ?, bumps = ? WHERE id = ? \
             AND state = 'broadcast' AND txid = ? AND bumps = ?",
        )
        .bind(bump.next.txid.to_string())
        .bind(encode_hex(&bump.next.raw))
        .bind(bump.fee.max_fee_per_gas.to_string())
        .bind(bump.fee.max_priority_fee_per_gas.to_string())
        .bind(to_i64(bump.head))
        .bind(i64::from(bump.bumps) + 1)
        .bind(to_i64(bump.id))
        .bind(bump.last.txid.to_string())
        .bind(i64::from(bump.bumps))
        .execute(&mut *conn)
        .await?
        .rows_affected()
    });
    Ok(rows == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GWEI: u128 = 1_000_000_000;

    fn fee(max: u128, tip: u128) -> Fee {
        Fee {
            max_fee_per_gas: max,
            max_priority_fee_per_gas: tip,
        }
    }

    #[test]
    fn a_bump_raises_both_fees_by_the_percent_or_to_the_estimate_within_the_cap() {
        let policy = BumpPolicy {
            after_blocks: 3,
            bumps_max: 2,
            max_fee_per_gas_cap_wei: 10 * GWEI,
        };
        let last = fee(4 * GWEI, GWEI);
        assert_eq!(
            policy.bumped(last, fee(GWEI, GWEI / 2)),
            Some(fee(5 * GWEI, 5 * GWEI / 4))
        );
        // The node asks more: its estimate.
        assert_eq!(
            policy.bumped(last, fee(8 * GWEI, 2 * GWEI)),
            Some(fee(8 * GWEI, 2 * GWEI))
        );
        // Above the cap: no replacement.
        assert_eq!(policy.bumped(last, fee(11 * GWEI, GWEI)), None);
        // Tiny fees still rise (by one wei at least).
        assert_eq!(policy.bumped(fee(1, 1), fee(0, 0)), Some(fee(2, 2)));
    }

    #[test]
    fn a_bump_is_due_after_its_blocks_and_only_up_to_the_bound() {
        let policy = BumpPolicy {
            after_blocks: 3,
            bumps_max: 2,
            max_fee_per_gas_cap_wei: GWEI,
        };
        assert!(!policy.due(10, 0, 12));
        assert!(policy.due(10, 0, 13));
        assert!(policy.due(10, 1, 13));
        assert!(!policy.due(10, 2, 100), "bounded");
        let never = BumpPolicy {
            bumps_max: 0,
            ..policy
        };
        assert!(!never.due(0, 0, 1_000));
    }
}
