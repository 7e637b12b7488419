//! The wallet's own transactions in the store: gas top-ups, sweeps and rebalancing
//! ([`crate::collect`] decides and sends them). Each row is one transaction, written with its
//! nonce, raw bytes and id before anything is broadcast; see [`crate::collect`] for the states.

use crate::chain::eth_tx::SignedTx;
use crate::chain::{Address, Hash32, decode_hex, encode_hex};
use crate::keys::DerivationPath;
use crate::store::{ROWS_MAX, StoreError, WalletStore, on_pool, to_i64, to_u64};

/// What a wallet transaction is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransferKind {
    /// Ether from the gas payer (the chain coin's hot wallet) to an address that must pay gas
    /// for a token transfer (a token deposit address, a token hot wallet).
    TopUp,
    /// A deposit address's balance to its currency's hot wallet.
    Sweep,
    /// The hot wallet's excess above its maximum to the warm or cold address.
    Rebalance,
}

impl TransferKind {
    /// Every kind, for metrics.
    pub const ALL: [TransferKind; 3] = [
        TransferKind::TopUp,
        TransferKind::Sweep,
        TransferKind::Rebalance,
    ];

    /// The stored (and shown) name.
    pub fn name(self) -> &'static str {
        match self {
            TransferKind::TopUp => "topup",
            TransferKind::Sweep => "sweep",
            TransferKind::Rebalance => "rebalance",
        }
    }
}

/// A wallet transaction's state (see [`crate::collect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransferState {
    /// Nonce, raw bytes and id stored; maybe not sent yet.
    Signed,
    /// The node has it (accepted, or known under its id).
    Broadcast,
    /// Mined successfully with its currency's confirmations.
    Mined,
    /// Mined and reverted: nothing moved but the fee (a sweep's deposits are collected again).
    Failed,
    /// The node refused the bytes and does not know them: no nonce used, nothing moved.
    Dropped,
}

impl TransferState {
    /// Every state, for metrics.
    pub const ALL: [TransferState; 5] = [
        TransferState::Signed,
        TransferState::Broadcast,
        TransferState::Mined,
        TransferState::Failed,
        TransferState::Dropped,
    ];

    /// The stored (and shown) name.
    pub fn name(self) -> &'static str {
        match self {
            TransferState::Signed => "signed",
            TransferState::Broadcast => "broadcast",
            TransferState::Mined => "mined",
            TransferState::Failed => "failed",
            TransferState::Dropped => "dropped",
        }
    }
}

fn parse_name<T: Copy>(
    all: &[T],
    name: impl Fn(T) -> &'static str,
    column: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    all.iter()
        .copied()
        .find(|value| name(*value) == text)
        .ok_or_else(|| StoreError::UnknownValue {
            column,
            value: text.to_owned(),
        })
}

/// A wallet transaction to record, signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTransfer {
    /// What it is for.
    pub kind: TransferKind,
    /// The currency whose asset moves.
    pub currency: String,
    /// The currency whose seed signs.
    pub seed: String,
    /// The sender's path in that seed.
    pub path: DerivationPath,
    /// The sender.
    pub from: Address,
    /// The payee (for a token, the token's recipient, not the contract).
    pub to: Address,
    /// Chain units of the asset.
    pub amount_chain: u128,
}

/// A stored wallet transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferRow {
    /// Row id.
    pub id: u64,
    /// What it moves.
    pub transfer: NewTransfer,
    /// Its nonce (`None` once dropped).
    pub nonce: Option<u64>,
    /// The signed transaction.
    pub signed: SignedTx,
    /// State.
    pub state: TransferState,
}

type TransferTuple = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    String,
    String,
    String,
);
const TRANSFER_COLUMNS: &str = "id, kind, currency, seed, path, from_address, to_address, \
     amount_chain, nonce, txid, raw_hex, state";

fn transfer_row(tuple: TransferTuple) -> Result<TransferRow, StoreError> {
    let (id, kind, currency, seed, path, from, to, amount, nonce, txid, raw, state) = tuple;
    let bad = |column: &'static str, value: &str| StoreError::UnknownValue {
        column,
        value: value.to_owned(),
    };
    Ok(TransferRow {
        id: to_u64("id", id)?,
        transfer: NewTransfer {
            kind: parse_name(&TransferKind::ALL, TransferKind::name, "kind", &kind)?,
            currency,
            seed,
            path: path.parse().map_err(|_| bad("path", &path))?,
            from: Address::parse_eth(&from).ok_or_else(|| bad("from_address", &from))?,
            to: Address::parse_eth(&to).ok_or_else(|| bad("to_address", &to))?,
            amount_chain: amount.parse().map_err(|_| bad("amount_chain", &amount))?,
        },
        nonce: nonce.map(|nonce| to_u64("nonce", nonce)).transpose()?,
        signed: SignedTx {
            txid: Hash32::parse(&txid).ok_or_else(|| bad("txid", &txid))?,
            raw: decode_hex(&raw).ok_or_else(|| bad("raw_hex", "not hex"))?,
        },
        state: parse_name(&TransferState::ALL, TransferState::name, "state", &state)?,
    })
}

impl WalletStore {
    /// Records a signed wallet transaction (`signed`) before any byte of it leaves; for a
    /// sweep, tags in the same database transaction the credited, uncollected deposits of
    /// `currency` on the swept address with it. `None` when the nonce was taken meanwhile
    /// (another signer recorded first: nothing recorded here).
    pub async fn insert_transfer(
        &self,
        chain: &str,
        transfer: &NewTransfer,
        nonce: u64,
        signed: &SignedTx,
        now_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        let outcome: Result<i64, sqlx::Error> = on_pool!(self, |pool, _mysql| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO wallet_transfers (chain, kind, currency, seed, path, \
                     from_address, to_address, amount_chain, nonce, txid, raw_hex, state, \
                     created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'signed', ?)",
                )
                .bind(chain)
                .bind(transfer.kind.name())
                .bind(&transfer.currency)
                .bind(&transfer.seed)
                .bind(transfer.path.to_string())
                .bind(transfer.from.as_str())
                .bind(transfer.to.as_str())
                .bind(transfer.amount_chain.to_string())
                .bind(to_i64(nonce))
                .bind(signed.txid.to_string())
                .bind(encode_hex(&signed.raw))
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                let (id,): (i64,) = sqlx::query_as(
                    "SELECT id FROM wallet_transfers WHERE chain = ? AND from_address = ? \
                     AND nonce = ?",
                )
                .bind(chain)
                .bind(transfer.from.as_str())
                .bind(to_i64(nonce))
                .fetch_one(&mut *tx)
                .await?;
                if transfer.kind == TransferKind::Sweep {
                    sqlx::query(
                        "UPDATE wallet_deposits SET sweep_id = ? WHERE chain = ? AND \
                         currency = ? AND address = ? AND state = 'credited' AND sweep_id IS NULL",
                    )
                    .bind(id)
                    .bind(chain)
                    .bind(&transfer.currency)
                    .bind(transfer.from.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(id)
            }
            .await
        });
        match outcome {
            Ok(id) => Ok(Some(to_u64("id", id)?)),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The wallet transactions of `chain` not finished (`signed`, `broadcast`), oldest
    /// first, at most `limit`.
    pub async fn open_transfers(
        &self,
        chain: &str,
        limit: u32,
    ) -> Result<Vec<TransferRow>, StoreError> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM wallet_transfers WHERE chain = ? \
             AND state IN ('signed', 'broadcast') ORDER BY id LIMIT ?"
        );
        self.transfer_rows(&sql, chain, limit).await
    }

    /// Every wallet transaction of `chain`, oldest first, at most `limit`.
    pub async fn transfers(&self, chain: &str, limit: u32) -> Result<Vec<TransferRow>, StoreError> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM wallet_transfers WHERE chain = ? ORDER BY id LIMIT ?"
        );
        self.transfer_rows(&sql, chain, limit).await
    }

    async fn transfer_rows(
        &self,
        sql: &str,
        chain: &str,
        limit: u32,
    ) -> Result<Vec<TransferRow>, StoreError> {
        let rows: Vec<TransferTuple> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(sql)
                .bind(chain)
                .bind(i64::from(limit.min(ROWS_MAX)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(transfer_row).collect()
    }

    /// `from` → `to` for transfer `id`; false when it was not in `from`. Entering `failed` or
    /// `dropped`, a sweep lets its deposits go (collected again later), and `dropped` clears
    /// the nonce, which the node never used.
    pub async fn move_transfer(
        &self,
        id: u64,
        from: TransferState,
        to: TransferState,
    ) -> Result<bool, StoreError> {
        let moved: bool = on_pool!(self, |pool, _mysql| {
            let mut tx = pool.begin().await?;
            let clear = if to == TransferState::Dropped {
                ", nonce = NULL"
            } else {
                ""
            };
            let sql =
                format!("UPDATE wallet_transfers SET state = ?{clear} WHERE id = ? AND state = ?");
            let moved = sqlx::query(&sql)
                .bind(to.name())
                .bind(to_i64(id))
                .bind(from.name())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if moved && matches!(to, TransferState::Failed | TransferState::Dropped) {
                sqlx::query("UPDATE wallet_deposits SET sweep_id = NULL WHERE sweep_id = ?")
                    .bind(to_i64(id))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            moved
        });
        Ok(moved)
    }

    /// Deposit addresses of `currency` on `chain` with credited deposits no sweep collected
    /// yet, none still `seen` or `confirmed` (their funds may leave the chain), and no wallet
    /// transaction open to or from them (a top-up in flight, a sweep not mined): (address,
    /// path), at most `limit`.
    pub async fn uncollected(
        &self,
        chain: &str,
        currency: &str,
        limit: u32,
    ) -> Result<Vec<(Address, DerivationPath)>, StoreError> {
        const SQL: &str = "SELECT DISTINCT d.address, a.path FROM wallet_deposits d \
             JOIN wallet_addresses a ON a.currency = d.currency AND a.address = d.address \
             WHERE d.chain = ? AND d.currency = ? AND d.state = 'credited' AND d.sweep_id IS NULL \
             AND NOT EXISTS (SELECT 1 FROM wallet_deposits p WHERE p.chain = d.chain \
               AND p.currency = d.currency AND p.address = d.address \
               AND p.state IN ('seen', 'confirmed')) \
             AND NOT EXISTS (SELECT 1 FROM wallet_transfers t WHERE t.chain = d.chain \
               AND t.state IN ('signed', 'broadcast') \
               AND (t.from_address = d.address OR t.to_address = d.address)) \
             ORDER BY d.address LIMIT ?";
        let rows: Vec<(String, String)> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL)
                .bind(chain)
                .bind(currency)
                .bind(i64::from(limit.min(ROWS_MAX)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(address, path)| {
                let bad = |column: &'static str, value: &str| StoreError::UnknownValue {
                    column,
                    value: value.to_owned(),
                };
                Ok((
                    Address::parse_eth(&address).ok_or_else(|| bad("address", &address))?,
                    path.parse().map_err(|_| bad("path", &path))?,
                ))
            })
            .collect()
    }

    /// Whether a wallet transaction of `kind` to or from `address` is open on `chain`.
    pub async fn transfer_open(
        &self,
        chain: &str,
        kind: TransferKind,
        address: &Address,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM wallet_transfers WHERE chain = ? AND kind = ? \
             AND state IN ('signed', 'broadcast') AND (from_address = ? OR to_address = ?)";
        let (count,): (i64,) = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL)
                .bind(chain)
                .bind(kind.name())
                .bind(address.as_str())
                .bind(address.as_str())
                .fetch_one(pool)
                .await?
        });
        Ok(count > 0)
    }

    /// Credited deposits of `currency` on `chain` no sweep has collected.
    pub async fn uncollected_deposits(
        &self,
        chain: &str,
        currency: &str,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM wallet_deposits WHERE chain = ? AND currency = ? \
             AND state = 'credited' AND sweep_id IS NULL";
        let (count,): (i64,) = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL)
                .bind(chain)
                .bind(currency)
                .fetch_one(pool)
                .await?
        });
        to_u64("count", count)
    }
}
