//! Withdrawals: the request and its policy, then the engine's hold, then the signer's
//! persist-before-broadcast, then settle or release on the receipt.
//!
//! ```text
//!  request ──policy──► (refused: typed error, nothing recorded)
//!     │  (REST, TOTP, KYC level, scope, active beneficiary, limits: crate::requests)
//!     ├── amount ≤ threshold ──────────────────────────────► approved
//!     └── amount > threshold ──► awaiting_approval ──N operators' approvals──►┘
//!                                 (never the requester, never one operator twice)
//!
//!  approved ──hold──► held ──sign──► signed ──broadcast──► broadcast ──receipt, N confs──► settled
//!     │ (journaled)          (nonce, raw bytes, id          │ (resent after a       (journaled)
//!     ▼                       written before any            │  crash: same bytes)
//!  rejected (the engine        byte leaves)                 └──failed receipt──► released
//!  refused the hold)                                                            (journaled)
//! ```
//!
//! The request side runs where the request arrives (the appliance's REST bridge, which holds
//! no seed): it records `approved` or `awaiting_approval` rows in the wallet store. The daemon,
//! which holds the seeds, takes `approved` rows through the rest ([`Signer::step`]). Nothing is
//! held before the policy (and its approvals) passed, and nothing is signed before the hold.
//!
//! The funds are held in the engine (`WithdrawalHold`, journaled, keyed by the withdrawal id)
//! before anything is signed. [`Signer::sign`] signs a withdrawal once: its nonce, raw
//! transaction and id are written (`held` → `signed`) before [`Signer::broadcast`] sends
//! anything, and a withdrawal already `signed` is never signed again — after a crash the same
//! bytes are sent, so the chain holds at most one transaction per withdrawal (Peatio's
//! `errored` → processed again → double send cannot happen). A broadcast whose answer is lost
//! is resolved by looking the id up: the node's refusal of bytes it already has ("already
//! known", "nonce too low") is success when it knows the transaction under the precomputed id.
//! Only a receipt moves a withdrawal on ([`Signer::finish`]): success with the confirmations
//! settles the hold, a failed transaction releases it; nothing marks a withdrawal done without
//! one.
//!
//! A token withdrawal is the same withdrawal whose transaction calls the token's `transfer`
//! ([`Signer::with_tokens`]); its hot wallet pays the gas in ether, topped up by the collector.
//!
//! While `broadcast` without a receipt, the stored bytes are sent again at each step (a node
//! that restarted or evicted them has them again), and once [`crate::bumps::BumpPolicy`]'s
//! blocks have passed they are replaced by the same payment with the same nonce at a higher
//! fee, bounded in number and capped ([`Signer::with_bumps`]): the replacement is recorded
//! before it is sent, every replaced id is kept, and whichever attempt is mined settles the
//! withdrawal (they share the nonce: at most one is ever mined). See [`crate::bumps`].
//!
//! While OpenBao cannot give the key, a `held` withdrawal stays `held` (queued, its funds
//! held, nothing signed) and each step tries again; [`SeedVault::unavailable`] says why, for
//! the daemon's readiness.
//!
//! Still to come: an operator's rejection of a withdrawal awaiting approval, a receipt in a block
//! that left the chain after settling (the deposit watcher's block chain will vouch for the
//! receipt's block).

use peregrine_secrets::BaoError;
use serde_json::json;

use crate::bumps::{BumpPolicy, Fee, Replacement};
use crate::chain::eth::EthRpc;
use crate::chain::eth_tx::{SignedTx, TxError, erc20_transfer_data};
use crate::chain::{
    Address, Chain, ChainError, FeeEstimate, Hash32, Receipt, decode_hex, encode_hex,
};
use crate::keys::{DerivationPath, KeyError, SeedVault};
use crate::ledger::{Answer, LedgerError, WithdrawalLedger};
use crate::metrics::WalletMetrics;
use crate::store::{StoreError, WalletStore, on_pool, to_i64, to_u64};
use peregrine_hotpath::{AccountId, Amount, CommandKind, CurrencyId, RejectReason, WithdrawalId};

/// Gas of a plain ether transfer.
pub const GAS_LIMIT_ETHER: u64 = 21_000;
/// Withdrawals one [`Signer::step`] moves at most (the rest wait for the next step).
pub const STEP_WITHDRAWALS_MAX: u32 = 256;

/// A withdrawal's state (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WithdrawalState {
    /// Above the policy's threshold: waits for operators' approvals; nothing held.
    AwaitingApproval,
    /// Passed the policy (and its approvals); the engine has not held the funds yet.
    Approved,
    /// The engine holds the funds; nothing signed yet.
    Held,
    /// Signed: nonce, raw bytes and id stored; maybe not sent yet.
    Signed,
    /// The node has it (accepted, or known under its id).
    Broadcast,
    /// Mined successfully with its confirmations: the hold is settled.
    Settled,
    /// Mined and failed: the hold is released.
    Released,
    /// The engine refused the hold (insufficient balance): nothing held, nothing signed.
    Rejected,
}

impl WithdrawalState {
    /// Every state, for metrics.
    pub const ALL: [WithdrawalState; 8] = [
        WithdrawalState::AwaitingApproval,
        WithdrawalState::Approved,
        WithdrawalState::Held,
        WithdrawalState::Signed,
        WithdrawalState::Broadcast,
        WithdrawalState::Settled,
        WithdrawalState::Released,
        WithdrawalState::Rejected,
    ];

    /// The stored (and shown) name.
    pub fn name(self) -> &'static str {
        match self {
            WithdrawalState::AwaitingApproval => "awaiting_approval",
            WithdrawalState::Approved => "approved",
            WithdrawalState::Held => "held",
            WithdrawalState::Signed => "signed",
            WithdrawalState::Broadcast => "broadcast",
            WithdrawalState::Settled => "settled",
            WithdrawalState::Released => "released",
            WithdrawalState::Rejected => "rejected",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<WithdrawalState, StoreError> {
        WithdrawalState::ALL
            .into_iter()
            .find(|state| state.name() == text)
            .ok_or_else(|| StoreError::UnknownValue {
                column: "state",
                value: text.to_owned(),
            })
    }
}

/// A withdrawal to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWithdrawal {
    /// Currency code (its seed signs).
    pub currency: String,
    /// The engine's currency.
    pub currency_id: CurrencyId,
    /// The account debited.
    pub account: AccountId,
    /// The amount in the engine's minor units (held, then settled).
    pub amount_minor: Amount,
    /// The paying (hot wallet) address.
    pub from: Address,
    /// Its derivation path in the currency's seed.
    pub path: DerivationPath,
    /// The payee.
    pub to: Address,
    /// Chain units: wei, or the token's base units.
    pub amount_chain: u128,
}

/// A stored withdrawal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawalRow {
    /// Row id.
    pub id: u64,
    /// What it pays.
    pub request: NewWithdrawal,
    /// State.
    pub state: WithdrawalState,
    /// The signed transaction, once signed.
    pub signed: Option<(u64, SignedTx)>,
}

/// Why the signer could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// No such withdrawal.
    #[error("no withdrawal {0}")]
    NotFound(u64),
    /// The step does not apply in this state.
    #[error("withdrawal {id} is {state:?}")]
    State {
        /// Which.
        id: u64,
        /// Its state.
        state: WithdrawalState,
    },
    /// The node failed (retry: the stored bytes are sent again) or refused.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The key could not be read (OpenBao unavailable: withdrawals pause).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The transaction could not be built.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine could not take the command now: retry.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The engine refused the hold for good (the withdrawal is `rejected`).
    #[error("the engine refused withdrawal {id}: {reason:?}")]
    HoldRefused {
        /// Which.
        id: u64,
        /// Why.
        reason: RejectReason,
    },
    /// The node refused the bytes and does not know the transaction: its nonce went to
    /// another transaction, or the bytes are invalid. An operator's case; nothing is re-signed.
    #[error("the node refused withdrawal {id} ({reason}) and does not know {txid}")]
    Rejected {
        /// Which.
        id: u64,
        /// The stored id.
        txid: Hash32,
        /// The node's message.
        reason: String,
    },
}

impl SignError {
    /// The `kind` label of `wallet_signer_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            error if error.is_unavailable() => "unavailable",
            SignError::Rejected { .. } | SignError::HoldRefused { .. } => "rejected",
            SignError::Store(_) => "store",
            SignError::NotFound(_) | SignError::State { .. } => "state",
            _ => "refused",
        }
    }

    /// True when OpenBao or the node cannot answer now: withdrawals pause and retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            SignError::Chain(error) => error.is_unavailable(),
            SignError::Ledger(_) => true,
            SignError::Key(KeyError::Bao(error)) => BaoError::is_unavailable(error),
            _ => false,
        }
    }
}

type WithdrawalTuple = (
    i64,
    String,
    i64,
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn withdrawal_row(tuple: WithdrawalTuple) -> Result<WithdrawalRow, StoreError> {
    let (
        id,
        currency,
        currency_id,
        account,
        minor,
        from,
        path,
        to,
        amount,
        state,
        nonce,
        txid,
        raw,
    ) = tuple;
    let bad = |column: &'static str, value: &str| StoreError::UnknownValue {
        column,
        value: value.to_owned(),
    };
    let signed = match (nonce, txid, raw) {
        (Some(nonce), Some(txid), Some(raw)) => Some((
            to_u64("nonce", nonce)?,
            SignedTx {
                txid: Hash32::parse(&txid).ok_or_else(|| bad("txid", &txid))?,
                raw: decode_hex(&raw).ok_or_else(|| bad("raw_hex", "not hex"))?,
            },
        )),
        _ => None,
    };
    Ok(WithdrawalRow {
        id: to_u64("id", id)?,
        request: NewWithdrawal {
            currency,
            currency_id: CurrencyId(
                u16::try_from(currency_id).map_err(|_| bad("currency_id", "out of range"))?,
            ),
            account: AccountId(u32::try_from(account).map_err(|_| bad("account", "out of range"))?),
            amount_minor: Amount(to_u64("amount_minor", minor)?),
            from: Address::parse_eth(&from).ok_or_else(|| bad("from_address", &from))?,
            path: path.parse().map_err(|_| bad("path", &path))?,
            to: Address::parse_eth(&to).ok_or_else(|| bad("to_address", &to))?,
            amount_chain: amount.parse().map_err(|_| bad("amount_chain", &amount))?,
        },
        state: WithdrawalState::parse(&state)?,
        signed,
    })
}

impl WalletStore {
    /// Records a withdrawal approved outside the request path (no policy, no beneficiary: the
    /// signer's own tests, an operator's tool), not held yet; its id.
    pub async fn insert_withdrawal(
        &self,
        chain: &str,
        request: &NewWithdrawal,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "INSERT INTO wallet_withdrawals (chain, currency, currency_id, account, \
             amount_minor, from_address, path, to_address, amount_chain, state) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'approved')";
        let path = request.path.to_string();
        let amount = request.amount_chain.to_string();
        // One statement, bound the same way for either back end (the query's type names it).
        macro_rules! bound {
            () => {
                sqlx::query(SQL)
                    .bind(chain)
                    .bind(&request.currency)
                    .bind(i64::from(request.currency_id.0))
                    .bind(i64::from(request.account.0))
                    .bind(to_i64(request.amount_minor.0))
                    .bind(request.from.as_str())
                    .bind(&path)
                    .bind(request.to.as_str())
                    .bind(&amount)
            };
        }
        match &self.pool {
            crate::store::Pool::MySql(pool) => Ok(bound!().execute(pool).await?.last_insert_id()),
            crate::store::Pool::Sqlite(pool) => {
                let rowid = bound!().execute(pool).await?.last_insert_rowid();
                to_u64("id", rowid)
            }
        }
    }

    /// The withdrawal `id`.
    pub async fn withdrawal(&self, id: u64) -> Result<Option<WithdrawalRow>, StoreError> {
        const SQL: &str = "SELECT id, currency, currency_id, account, amount_minor, from_address, \
             path, to_address, amount_chain, state, nonce, txid, raw_hex FROM wallet_withdrawals \
             WHERE id = ?";
        let row: Option<WithdrawalTuple> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL)
                .bind(to_i64(id))
                .fetch_optional(pool)
                .await?
        });
        row.map(withdrawal_row).transpose()
    }

    /// The highest nonce signed from `from` on `chain`, by a withdrawal or by the wallet's
    /// own transfers (a hot wallet pays both: withdrawals, gas top-ups and rebalancing).
    pub(crate) async fn nonce_max(
        &self,
        chain: &str,
        from: &Address,
    ) -> Result<Option<u64>, StoreError> {
        const SQL: &str = "SELECT MAX(nonce) FROM (\
             SELECT nonce FROM wallet_withdrawals WHERE chain = ? AND from_address = ? \
             UNION ALL SELECT nonce FROM wallet_transfers WHERE chain = ? AND from_address = ?\
             ) AS signed";
        let row: (Option<i64>,) = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL)
                .bind(chain)
                .bind(from.as_str())
                .bind(chain)
                .bind(from.as_str())
                .fetch_one(pool)
                .await?
        });
        row.0.map(|nonce| to_u64("nonce", nonce)).transpose()
    }

    /// `held` → `signed` with the transaction, its fee and the head it was signed at (from
    /// which a fee bump counts); false when it was not `held` any more (or the nonce was taken
    /// by another withdrawal: the unique key refuses it).
    async fn record_signed(
        &self,
        id: u64,
        nonce: u64,
        tx: &SignedTx,
        (fee, head): (Fee, u64),
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE wallet_withdrawals SET state = 'signed', nonce = ?, txid = ?, \
             raw_hex = ?, max_fee_per_gas = ?, max_priority_fee_per_gas = ?, \
             signed_at_block = ?, bumps = 0 WHERE id = ? AND state = 'held'";
        let result = on_pool!(self, |pool, _mysql| {
            sqlx::query(SQL)
                .bind(to_i64(nonce))
                .bind(tx.txid.to_string())
                .bind(encode_hex(&tx.raw))
                .bind(fee.max_fee_per_gas.to_string())
                .bind(fee.max_priority_fee_per_gas.to_string())
                .bind(to_i64(head))
                .bind(to_i64(id))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        });
        match result {
            Ok(rows) => Ok(rows == 1),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// `from` → `to`; false when the withdrawal was not in `from`.
    pub(crate) async fn move_withdrawal(
        &self,
        id: u64,
        from: WithdrawalState,
        to: WithdrawalState,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE wallet_withdrawals SET state = ? WHERE id = ? AND state = ?";
        Ok(on_pool!(self, |pool, _mysql| {
            sqlx::query(SQL)
                .bind(to.name())
                .bind(to_i64(id))
                .bind(from.name())
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }
}

/// Holds, signs, broadcasts and settles withdrawals of one Ethereum chain.
#[derive(Debug)]
pub struct Signer<L> {
    rpc: EthRpc,
    vault: SeedVault,
    store: WalletStore,
    ledger: L,
    metrics: WalletMetrics,
    chain: String,
    chain_id: u64,
    /// Token currencies (code, contract): their withdrawals are `transfer` calls.
    tokens: Vec<(String, Address)>,
    /// When an unmined transaction is replaced at a higher fee.
    bumps: BumpPolicy,
}

impl<L: WithdrawalLedger> Signer<L> {
    /// The same signer, paying the currencies in `tokens` (code, contract) as ERC-20
    /// `transfer` calls from their hot wallets (which pay the gas in ether: the collector keeps
    /// it there, [`crate::collect`]). A currency not listed is the chain's coin.
    pub fn with_tokens(mut self, tokens: Vec<(String, Address)>) -> Signer<L> {
        self.tokens = tokens;
        self
    }

    /// The same signer, replacing unmined transactions as `bumps` says (else
    /// [`BumpPolicy::default`]).
    pub fn with_bumps(mut self, bumps: BumpPolicy) -> Signer<L> {
        self.bumps = bumps;
        self
    }

    /// What the transaction of `request` sends: (recipient, value, calldata, gas limit).
    fn payment(&self, request: &NewWithdrawal) -> Result<(Address, u128, Vec<u8>, u64), TxError> {
        match self
            .tokens
            .iter()
            .find(|(code, _)| *code == request.currency)
        {
            Some((_, contract)) => Ok((
                contract.clone(),
                0,
                erc20_transfer_data(&request.to, request.amount_chain)?,
                crate::collect::GAS_LIMIT_TOKEN,
            )),
            None => Ok((
                request.to.clone(),
                request.amount_chain,
                Vec::new(),
                GAS_LIMIT_ETHER,
            )),
        }
    }

    /// A signer for `chain` (the store's name) through `rpc`, reading the chain id.
    pub async fn new(
        rpc: EthRpc,
        vault: SeedVault,
        store: WalletStore,
        ledger: L,
        metrics: WalletMetrics,
        chain: &str,
    ) -> Result<Signer<L>, SignError> {
        let chain_id = rpc.chain_id().await?;
        Ok(Signer {
            rpc,
            vault,
            store,
            ledger,
            metrics,
            chain: chain.to_owned(),
            chain_id,
            tokens: Vec::new(),
            bumps: BumpPolicy::default(),
        })
    }

    /// [`Signer::hold`] without the counting.
    async fn hold_inner(&self, id: u64) -> Result<WithdrawalState, SignError> {
        let row = self.row(id).await?;
        if row.state != WithdrawalState::Approved {
            return Ok(row.state);
        }
        let request = &row.request;
        let command = CommandKind::WithdrawalHold {
            account: request.account,
            currency: request.currency_id,
            amount: request.amount_minor,
            withdrawal: WithdrawalId(id),
        };
        let next = match self.ledger.withdrawal(command).await? {
            Answer::Applied { .. } | Answer::Refused(RejectReason::DuplicateWithdrawal) => {
                WithdrawalState::Held
            }
            Answer::Refused(reason) => {
                self.store
                    .move_withdrawal(id, row.state, WithdrawalState::Rejected)
                    .await?;
                return Err(SignError::HoldRefused { id, reason });
            }
        };
        self.store.move_withdrawal(id, row.state, next).await?;
        Ok(next)
    }

    /// [`Signer::finish`] without the counting.
    async fn finish_inner(
        &self,
        id: u64,
        confirmations: u64,
    ) -> Result<WithdrawalState, SignError> {
        let row = self.row(id).await?;
        let (WithdrawalState::Broadcast, Some((nonce, signed))) = (row.state, &row.signed) else {
            return Ok(row.state);
        };
        let Some((receipt, mined)) = self.mined_attempt(id, signed).await? else {
            // Not mined (yet, or again after a reorg): send again, or replace at a higher fee.
            self.unmined(&row.request, id, (*nonce, signed)).await?;
            return Ok(row.state);
        };
        if mined != signed.txid {
            // An attempt a bump replaced was mined: it is the withdrawal's transaction.
            self.store.adopt_attempt(id, &mined).await?;
        }
        let head = self.rpc.head().await?;
        if (head + 1).saturating_sub(receipt.block_number) < confirmations {
            return Ok(row.state);
        }
        let withdrawal = WithdrawalId(id);
        let (command, next) = if receipt.success {
            (
                CommandKind::WithdrawalSettle { withdrawal },
                WithdrawalState::Settled,
            )
        } else {
            (
                CommandKind::WithdrawalRelease { withdrawal },
                WithdrawalState::Released,
            )
        };
        match self.ledger.withdrawal(command).await? {
            // Unknown: settled or released before a crash, which is what this call does.
            Answer::Applied { .. } | Answer::Refused(RejectReason::UnknownWithdrawal) => {}
            Answer::Refused(reason) => return Err(SignError::HoldRefused { id, reason }),
        }
        self.store.move_withdrawal(id, row.state, next).await?;
        Ok(next)
    }

    /// The receipt of whichever of withdrawal `id`'s attempts was mined (the latest, `signed`,
    /// or one a bump replaced), with its id.
    async fn mined_attempt(
        &self,
        id: u64,
        signed: &SignedTx,
    ) -> Result<Option<(Receipt, Hash32)>, SignError> {
        if let Some(receipt) = self.rpc.receipt(&signed.txid).await? {
            return Ok(Some((receipt, signed.txid)));
        }
        for attempt in self.store.replaced_attempts(id).await? {
            if let Some(receipt) = self.rpc.receipt(&attempt.txid).await? {
                return Ok(Some((receipt, attempt.txid)));
            }
        }
        Ok(None)
    }

    /// Withdrawal `id`'s latest attempt `signed` (nonce `nonce`) has no receipt: replaced at a
    /// higher fee when a bump is due ([`BumpPolicy`]), the replacement recorded before it is
    /// sent; otherwise its bytes are sent again (a node that restarted or evicted it has it
    /// again; one that has it says so).
    async fn unmined(
        &self,
        request: &NewWithdrawal,
        id: u64,
        (nonce, signed): (u64, &SignedTx),
    ) -> Result<(), SignError> {
        let head = self.rpc.head().await?;
        let last = self.store.last_attempt(id).await?;
        let Some(last) = last.filter(|l| self.bumps.due(l.signed_at_block, l.bumps, head)) else {
            return self.resend(id, signed).await;
        };
        let chain = self.chain.as_str();
        let estimate = self.fee().await?;
        let Some(fee) = self.bumps.bumped(last.fee, estimate) else {
            tracing::warn!(
                chain,
                id,
                cap = self.bumps.max_fee_per_gas_cap_wei,
                "an unmined withdrawal's bump would exceed the fee cap: it waits"
            );
            self.metrics
                .fee_bumps_total
                .with_label_values(&[chain, "capped"])
                .inc();
            return self.resend(id, signed).await;
        };
        let next = self.signed_tx(request, nonce, fee).await?;
        let replacement = Replacement {
            chain,
            id,
            last: signed,
            next: &next,
            fee,
            head,
            bumps: last.bumps,
        };
        if !self.store.record_bump(&replacement).await? {
            return Ok(()); // another signer replaced it first
        }
        self.metrics
            .fee_bumps_total
            .with_label_values(&[chain, "bumped"])
            .inc();
        tracing::info!(chain, id, nonce, txid = %next.txid, replaces = %signed.txid,
            max_fee_per_gas = fee.max_fee_per_gas, "fee bump");
        self.resend(id, &next).await
    }

    /// Sends `signed` again; a refusal is logged only (the bytes are known, or an attempt of
    /// the same nonce was mined: the next look finds its receipt).
    async fn resend(&self, id: u64, signed: &SignedTx) -> Result<(), SignError> {
        match self.rpc.send_raw(&signed.raw).await {
            Ok(_) => Ok(()),
            Err(ChainError::Refused { message, .. }) => {
                tracing::debug!(id, txid = %signed.txid, %message, "resend refused");
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The node's EIP-1559 fee estimate now.
    async fn fee(&self) -> Result<Fee, SignError> {
        match self.rpc.fee_estimate().await? {
            FeeEstimate::Eip1559 {
                max_fee_per_gas,
                max_priority_fee_per_gas,
            } => Ok(Fee {
                max_fee_per_gas,
                max_priority_fee_per_gas,
            }),
            _ => Err(ChainError::Unsupported("a fee other than EIP-1559").into()),
        }
    }

    /// `request`'s transaction with `nonce` at `fee`, signed with its hot wallet's key.
    async fn signed_tx(
        &self,
        request: &NewWithdrawal,
        nonce: u64,
        fee: Fee,
    ) -> Result<SignedTx, SignError> {
        let tx = fee.transaction(self.chain_id, nonce, self.payment(request)?);
        Ok(self
            .vault
            .with_key(&request.currency, &request.path, |key| tx.sign(key))
            .await??)
    }

    /// Holds the funds of withdrawal `id` in the engine (`approved` → `held`); a refusal makes
    /// it `rejected`. A retry after a crash finds the hold applied (the engine answers
    /// "duplicate" for the same id) and moves on.
    pub async fn hold(&self, id: u64) -> Result<WithdrawalState, SignError> {
        let outcome = self.hold_inner(id).await;
        self.count(outcome, |state| Some(*state))
    }

    /// Signs withdrawal `id` once and stores the result before returning it; a withdrawal
    /// signed before gets its stored transaction back, never a new one. Only a `held`
    /// withdrawal is signed; OpenBao unavailable pauses here ([`SignError::is_unavailable`]).
    pub async fn sign(&self, id: u64) -> Result<SignedTx, SignError> {
        let outcome = self.sign_inner(id).await;
        self.count(outcome, |_| Some(WithdrawalState::Signed))
    }

    /// Sends the stored bytes of withdrawal `id` (again, after a crash or a lost answer).
    pub async fn broadcast(&self, id: u64) -> Result<Hash32, SignError> {
        let outcome = self.broadcast_inner(id).await;
        self.count(outcome, |_| Some(WithdrawalState::Broadcast))
    }

    /// Settles or releases withdrawal `id` once its receipt has `confirmations` (the receipt's
    /// block counted); the state it is in after the call (`broadcast` while waiting).
    pub async fn finish(&self, id: u64, confirmations: u64) -> Result<WithdrawalState, SignError> {
        let outcome = self.finish_inner(id, confirmations).await;
        // Waiting for confirmations is no transition.
        self.count(outcome, |state| {
            matches!(state, WithdrawalState::Settled | WithdrawalState::Released).then_some(*state)
        })
    }

    /// Moves withdrawal `id` as far as it goes now: `approved` → held → signed → broadcast,
    /// then settled or released once its receipt has `confirmations`. Each step is the
    /// crash-safe one above, so a call after a crash resumes where the last one stopped. The
    /// state it is left in (`broadcast` while waiting for the receipt).
    pub async fn drive(&self, id: u64, confirmations: u64) -> Result<WithdrawalState, SignError> {
        loop {
            let state = self.row(id).await?.state;
            let next = match state {
                WithdrawalState::Approved => self.hold(id).await?,
                WithdrawalState::Held => {
                    self.sign(id).await?;
                    WithdrawalState::Signed
                }
                WithdrawalState::Signed => {
                    self.broadcast(id).await?;
                    WithdrawalState::Broadcast
                }
                WithdrawalState::Broadcast => return self.finish(id, confirmations).await,
                other => return Ok(other),
            };
            if next == state {
                return Ok(state);
            }
        }
    }

    /// One pass over the open withdrawals of the chain, oldest first: each driven
    /// ([`Signer::drive`]) with its currency's `confirmations`; one that fails (counted and
    /// logged) does not stop the others. Refreshes the by-state gauge. How many failed.
    pub async fn step(&self, confirmations: impl Fn(&str) -> u64) -> Result<u32, SignError> {
        let mut failed = 0;
        for id in self
            .store
            .open_withdrawals(&self.chain, STEP_WITHDRAWALS_MAX)
            .await?
        {
            let row = self.row(id).await?;
            if self
                .drive(id, confirmations(&row.request.currency))
                .await
                .is_err()
            {
                failed += 1;
            }
        }
        let counts = self.store.withdrawal_counts(&self.chain).await?;
        for state in WithdrawalState::ALL {
            let count = counts
                .iter()
                .find(|(counted, _)| *counted == state)
                .map_or(0, |(_, count)| *count);
            self.metrics
                .withdrawals
                .with_label_values(&[self.chain.as_str(), state.name()])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        Ok(failed)
    }

    /// Counts the outcome: the state entered (a retry counts again), or the error's kind.
    fn count<T>(
        &self,
        outcome: Result<T, SignError>,
        state: impl Fn(&T) -> Option<WithdrawalState>,
    ) -> Result<T, SignError> {
        let chain = self.chain.as_str();
        match &outcome {
            Ok(value) => {
                if let Some(state) = state(value) {
                    self.metrics
                        .withdrawal_transitions_total
                        .with_label_values(&[chain, state.name()])
                        .inc();
                }
            }
            Err(error) => {
                self.metrics
                    .signer_errors_total
                    .with_label_values(&[chain, error.kind()])
                    .inc();
                tracing::warn!(chain, %error, "withdrawal step failed");
            }
        }
        outcome
    }

    async fn row(&self, id: u64) -> Result<WithdrawalRow, SignError> {
        self.store
            .withdrawal(id)
            .await?
            .ok_or(SignError::NotFound(id))
    }

    /// [`Signer::sign`] without the counting.
    async fn sign_inner(&self, id: u64) -> Result<SignedTx, SignError> {
        let row = self.row(id).await?;
        if let Some((_, signed)) = row.signed {
            return Ok(signed);
        }
        if row.state != WithdrawalState::Held {
            return Err(SignError::State {
                id,
                state: row.state,
            });
        }
        let request = &row.request;
        // The next nonce: the node's (pending included) unless this store signed further.
        let pending = self.rpc.nonce(&request.from).await?;
        let stored = self.store.nonce_max(&self.chain, &request.from).await?;
        let nonce = stored.map_or(pending, |max| pending.max(max + 1));
        let head = self.rpc.head().await?;
        let fee = self.fee().await?;
        let signed = self.signed_tx(request, nonce, fee).await?;
        if self
            .store
            .record_signed(id, nonce, &signed, (fee, head))
            .await?
        {
            return Ok(signed);
        }
        // Another signer recorded first: its transaction is the one.
        match self.row(id).await?.signed {
            Some((_, stored)) => Ok(stored),
            None => Err(SignError::State {
                id,
                state: row.state,
            }),
        }
    }

    /// [`Signer::broadcast`] without the counting.
    async fn broadcast_inner(&self, id: u64) -> Result<Hash32, SignError> {
        let row = self.row(id).await?;
        let Some((_, signed)) = row.signed else {
            return Err(SignError::State {
                id,
                state: row.state,
            });
        };
        match self.rpc.send_raw(&signed.raw).await {
            Ok(txid) if txid == signed.txid => {}
            Ok(_) => {
                return Err(ChainError::Malformed {
                    method: "eth_sendRawTransaction",
                    what: "another transaction id than the bytes'",
                }
                .into());
            }
            Err(ChainError::Refused { message, .. }) => {
                // Bytes the node already has are refused ("already known", "nonce too low"):
                // success if it knows them under their id.
                if !self.known(&signed.txid).await? {
                    return Err(SignError::Rejected {
                        id,
                        txid: signed.txid,
                        reason: message,
                    });
                }
            }
            Err(error) => return Err(error.into()),
        }
        self.store
            .move_withdrawal(id, WithdrawalState::Signed, WithdrawalState::Broadcast)
            .await?;
        Ok(signed.txid)
    }

    /// The node knows `txid` (pending or mined).
    async fn known(&self, txid: &Hash32) -> Result<bool, SignError> {
        let found: Option<serde_json::Value> = self
            .rpc
            .call("eth_getTransactionByHash", json!([txid.to_string()]))
            .await?;
        Ok(found.is_some())
    }
}
