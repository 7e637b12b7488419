//! Collection and hot / warm / cold rebalancing: the wallet's own transactions.
//!
//! **Collection** sweeps each deposit address holding credited deposits to its currency's hot
//! wallet. A deposit address is swept only when every deposit to it is final (none `seen` or
//! `confirmed`: funds that may still leave the chain are not moved) and no wallet transaction
//! to or from it is open. Ether pays its own gas (the sweep sends the balance less the fee, once
//! the balance is worth at least twice the fee). A token's deposit address holds no ether: the
//! gas payer (the chain coin's hot wallet) first tops it up, and the sweep is signed only once
//! the top-up is mined with its confirmations — until then the address is *waiting*, never
//! skipped (Peatio marked such deposits `skipped` and never collected them).
//!
//! ```text
//!  credited deposits on an address, all final, nothing open
//!     │ ether, or a token address with the gas
//!     ├──────────────────────────────────────────────► sweep signed ──► … ──► mined: collected
//!     │ a token address short of gas                                     (failed, dropped:
//!     └──► top-up signed ──► … ──► mined ──(next step: gas there)──┘      collected again)
//! ```
//!
//! **Rebalancing**: a currency with `hot_max` sends its hot wallet's excess above it to the
//! warm address (up to `warm_max` held there), else to the cold address. Warm and cold are
//! addresses only: no key for them is on this host, so funds only ever go down the tiers here;
//! refilling the hot wallet is an operator's transfer.
//!
//! Every wallet transaction goes through the same states as a withdrawal's chain side:
//!
//! ```text
//!  (none) ──sign──► signed ──broadcast──► broadcast ──receipt, N confirmations──► mined
//!           (nonce, raw bytes, id    │  (resent while no receipt,    └──reverted──► failed
//!            written before any      │   the same bytes)
//!            byte leaves)            └──refused, unknown to the node──► dropped
//! ```
//!
//! A crash before the row is written sent nothing (the next step plans afresh); after, the same
//! bytes are sent, so one row is one transaction whatever crashes. `dropped` clears the nonce,
//! which the node never used; a replacement reusing it cannot both be mined with it.
//!
//! A token's hot wallet holding tokens is topped up the same way: it pays the gas of the
//! token's withdrawals and rebalancing.
//!
//! Gas limits are fixed (21 000 for ether, [`GAS_LIMIT_TOKEN`] for a token `transfer`); fees
//! are the node's estimate at signing. Still to come: fee bumps of a transaction stuck unmined.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::bumps::Fee;
use crate::chain::eth::EthRpc;
use crate::chain::eth_tx::{SignedTx, TxError, erc20_transfer_data};
use crate::chain::{Address, Asset, Chain, ChainError, FeeEstimate};
use crate::keys::{DerivationPath, KeyError, SeedVault};
use crate::metrics::WalletMetrics;
use crate::store::{StoreError, WalletStore};
use crate::transfers::{NewTransfer, TransferKind, TransferRow, TransferState};
use crate::withdrawals::GAS_LIMIT_ETHER;

/// Gas of a token `transfer` (an ERC-20 transfer to a fresh holder costs about 52 000; the
/// rest is refunded, the top-up only has to cover it).
pub const GAS_LIMIT_TOKEN: u64 = 100_000;
/// A top-up carries this many times the token transfer's fee at the estimate: the base fee
/// may rise between the top-up and the sweep.
pub const TOPUP_FEE_MULTIPLE: u128 = 2;
/// Deposit addresses one step plans at most per currency.
pub const ADDRESSES_PER_STEP_MAX: u32 = 256;
/// Open wallet transactions one step moves at most.
pub const TRANSFERS_PER_STEP_MAX: u32 = 256;

const _: () = assert!(GAS_LIMIT_TOKEN > GAS_LIMIT_ETHER && TOPUP_FEE_MULTIPLE >= 1);

/// The hot wallet tiers of one currency, in chain units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tiers {
    /// The most the hot wallet keeps: the excess goes down.
    pub hot_max: u128,
    /// The warm address and the most it is sent to hold.
    pub warm: Option<(Address, u128)>,
    /// The cold address (no key on the host).
    pub cold: Option<Address>,
}

/// A key the daemon holds: an address and its path in a currency's seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HotWallet {
    /// The address.
    pub address: Address,
    /// Its path.
    pub path: DerivationPath,
}

/// One currency the collector sweeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectedCurrency {
    /// The exchange's code (its seed signs the deposit addresses and the hot wallet).
    pub code: String,
    /// The chain's coin or a token.
    pub asset: Asset,
    /// Its hot wallet (sweeps go there).
    pub hot: HotWallet,
    /// Blocks, the transaction's own included, before a wallet transaction counts as mined.
    pub confirmations: u64,
    /// Rebalancing, if configured.
    pub tiers: Option<Tiers>,
}

/// What one collector handles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorConfig {
    /// The chain's name in the store.
    pub chain: String,
    /// The currencies, the chain's coin among them when any is a token (it pays the gas).
    pub currencies: Vec<CollectedCurrency>,
}

/// Why the collector could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// The node failed or refused.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A key could not be read (OpenBao unavailable: collection pauses).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A transaction could not be built.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration cannot work.
    #[error("invalid collection configuration: {0}")]
    Config(String),
}

impl CollectError {
    /// The `kind` label of `wallet_signer_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            CollectError::Chain(error) if error.is_unavailable() => "unavailable",
            CollectError::Key(KeyError::Bao(error)) if error.is_unavailable() => "unavailable",
            CollectError::Store(_) => "store",
            CollectError::Config(_) => "config",
            _ => "refused",
        }
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollectReport {
    /// Transactions signed (and recorded) this step.
    pub signed: u32,
    /// Transactions that entered `mined`, `failed` or `dropped`.
    pub finished: u32,
    /// Open transactions left (waiting for a receipt or confirmations).
    pub open: u32,
}

/// A transaction to sign: what it moves and the fee.
struct Plan<'a> {
    kind: TransferKind,
    currency: &'a CollectedCurrency,
    from: &'a HotWallet,
    to: Address,
    amount: u128,
}

/// Whether an address can pay a token transfer's gas.
enum Gas {
    /// It holds enough ether.
    Ready,
    /// A top-up to it was signed now.
    ToppedUp,
    /// A top-up is in flight (or the gas payer is short): collected at a later step.
    Waiting,
}

/// Sweeps deposit addresses, tops up gas and rebalances one Ethereum chain's wallets.
#[derive(Debug)]
pub struct Collector {
    rpc: EthRpc,
    vault: SeedVault,
    store: WalletStore,
    metrics: WalletMetrics,
    config: CollectorConfig,
    chain_id: u64,
}

impl Collector {
    /// A collector through `rpc` (read for the chain id), checking that a token currency has
    /// the chain's coin beside it to pay its gas.
    pub async fn new(
        rpc: EthRpc,
        vault: SeedVault,
        store: WalletStore,
        metrics: WalletMetrics,
        config: CollectorConfig,
    ) -> Result<Collector, CollectError> {
        let natives = config
            .currencies
            .iter()
            .filter(|c| c.asset == Asset::Native)
            .count();
        let tokens = config.currencies.len() - natives;
        if natives > 1 || (tokens > 0 && natives == 0) {
            return Err(CollectError::Config(format!(
                "{natives} native currencies for {tokens} tokens: want one to pay their gas"
            )));
        }
        let chain_id = rpc.chain_id().await?;
        Ok(Collector {
            rpc,
            vault,
            store,
            metrics,
            config,
            chain_id,
        })
    }

    /// One step: move the open transactions on ([`Collector::advance`]), sign what is due
    /// ([`Collector::plan`]), send it. Counted in `wallet_collect_seconds`.
    pub async fn step(&self) -> Result<CollectReport, CollectError> {
        let started = Instant::now();
        let outcome = self.step_inner().await;
        let chain = self.config.chain.as_str();
        self.metrics
            .collect_seconds
            .with_label_values(&[chain])
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = &outcome {
            self.metrics
                .signer_errors_total
                .with_label_values(&[chain, error.kind()])
                .inc();
            tracing::warn!(chain, %error, "collection step failed");
        }
        outcome
    }

    async fn step_inner(&self) -> Result<CollectReport, CollectError> {
        let mut report = self.advance().await?;
        report.signed = self.plan().await?;
        if report.signed > 0 {
            let sent = self.advance().await?;
            report.finished += sent.finished;
            report.open = sent.open;
        }
        Ok(report)
    }

    /// Signs and records (nothing is sent) the sweeps, top-ups and rebalancing due now; how
    /// many.
    pub async fn plan(&self) -> Result<u32, CollectError> {
        let FeeEstimate::Eip1559 {
            max_fee_per_gas,
            max_priority_fee_per_gas,
        } = self.rpc.fee_estimate().await?
        else {
            return Err(ChainError::Unsupported("a fee other than EIP-1559").into());
        };
        let fee = Fee {
            max_fee_per_gas,
            max_priority_fee_per_gas,
        };
        let mut signed = 0;
        for currency in &self.config.currencies {
            signed += self.plan_sweeps(currency, fee).await?;
            signed += self.plan_hot_gas(currency, fee).await?;
            signed += self.plan_rebalance(currency, fee).await?;
        }
        Ok(signed)
    }

    /// Sends the `signed` transactions (again after a crash: the same bytes), resends the
    /// `broadcast` ones without a receipt, and finishes those with a receipt and their
    /// confirmations.
    pub async fn advance(&self) -> Result<CollectReport, CollectError> {
        let mut report = CollectReport::default();
        let open = self
            .store
            .open_transfers(&self.config.chain, TRANSFERS_PER_STEP_MAX)
            .await?;
        if open.is_empty() {
            return Ok(report);
        }
        let head = self.rpc.head().await?;
        for row in open {
            let state = self.advance_one(&row, head).await?;
            if state != row.state {
                self.count(row.transfer.kind, state);
            }
            match state {
                TransferState::Signed | TransferState::Broadcast => report.open += 1,
                _ => report.finished += 1,
            }
        }
        Ok(report)
    }

    /// Moves one open transaction as far as it goes now; its state after.
    async fn advance_one(
        &self,
        row: &TransferRow,
        head: u64,
    ) -> Result<TransferState, CollectError> {
        let mut state = row.state;
        if state == TransferState::Signed || self.rpc.receipt(&row.signed.txid).await?.is_none() {
            // Not sent yet, or sent and not mined: (re)send the stored bytes. A node that
            // restarted or evicted it has it again; one that has it says so.
            if !self.send(row).await? {
                self.store
                    .move_transfer(row.id, state, TransferState::Dropped)
                    .await?;
                return Ok(TransferState::Dropped);
            }
            if state == TransferState::Signed {
                self.store
                    .move_transfer(row.id, state, TransferState::Broadcast)
                    .await?;
                state = TransferState::Broadcast;
            }
        }
        let Some(receipt) = self.rpc.receipt(&row.signed.txid).await? else {
            return Ok(state);
        };
        let confirmations = self.confirmations(&row.transfer.currency);
        if (head + 1).saturating_sub(receipt.block_number) < confirmations {
            return Ok(state);
        }
        let next = if receipt.success {
            TransferState::Mined
        } else {
            tracing::error!(id = row.id, txid = %row.signed.txid, "wallet transaction reverted");
            TransferState::Failed
        };
        self.store.move_transfer(row.id, state, next).await?;
        Ok(next)
    }

    /// Sends the stored bytes; false when the node refuses them and does not know them.
    async fn send(&self, row: &TransferRow) -> Result<bool, CollectError> {
        match self.rpc.send_raw(&row.signed.raw).await {
            Ok(txid) if txid == row.signed.txid => Ok(true),
            Ok(_) => Err(ChainError::Malformed {
                method: "eth_sendRawTransaction",
                what: "another transaction id than the bytes'",
            }
            .into()),
            // Bytes the node already has are refused ("already known", "nonce too low"):
            // sent, if it knows them under their id.
            Err(ChainError::Refused { message, .. }) => {
                let known: Option<serde_json::Value> = self
                    .rpc
                    .call(
                        "eth_getTransactionByHash",
                        serde_json::json!([row.signed.txid.to_string()]),
                    )
                    .await?;
                if known.is_none() {
                    tracing::error!(id = row.id, %message, "wallet transaction refused: dropped");
                }
                Ok(known.is_some())
            }
            Err(error) => Err(error.into()),
        }
    }

    fn confirmations(&self, code: &str) -> u64 {
        self.config
            .currencies
            .iter()
            .find(|c| c.code == code)
            .map_or(1, |c| c.confirmations.max(1))
    }

    fn gas_payer(&self) -> Option<&CollectedCurrency> {
        self.config
            .currencies
            .iter()
            .find(|c| c.asset == Asset::Native)
    }

    /// `address`'s balance of `asset`.
    async fn balance(&self, asset: &Asset, address: &Address) -> Result<u128, CollectError> {
        Ok(match asset {
            Asset::Native => self.rpc.balance(address).await?,
            Asset::Token(contract) => self.rpc.token_balance(contract, address).await?,
        })
    }

    /// Sweeps due for `currency`: the addresses [`WalletStore::uncollected`] gives.
    async fn plan_sweeps(
        &self,
        currency: &CollectedCurrency,
        fee: Fee,
    ) -> Result<u32, CollectError> {
        let mut signed = 0;
        let addresses = self
            .store
            .uncollected(&self.config.chain, &currency.code, ADDRESSES_PER_STEP_MAX)
            .await?;
        for (address, path) in addresses {
            let from = HotWallet { address, path };
            let balance = self.balance(&currency.asset, &from.address).await?;
            let amount = match currency.asset {
                Asset::Native => {
                    let cost = fee.cost(GAS_LIMIT_ETHER);
                    // Not worth the fee yet: wait for more deposits or a lower fee.
                    if balance < cost.saturating_mul(2) {
                        continue;
                    }
                    balance - cost
                }
                _ if balance == 0 => continue,
                _ => match self.gas_ready(&from.address, fee).await? {
                    Gas::Ready => balance,
                    Gas::ToppedUp => {
                        signed += 1;
                        continue;
                    }
                    Gas::Waiting => continue,
                },
            };
            let plan = Plan {
                kind: TransferKind::Sweep,
                currency,
                from: &from,
                to: currency.hot.address.clone(),
                amount,
            };
            signed += u32::from(self.sign(&plan, fee).await?);
        }
        Ok(signed)
    }

    /// A token's hot wallet holding tokens pays gas for their withdrawals (and rebalancing):
    /// it is topped up like a deposit address when short.
    async fn plan_hot_gas(
        &self,
        currency: &CollectedCurrency,
        fee: Fee,
    ) -> Result<u32, CollectError> {
        if currency.asset == Asset::Native
            || self.balance(&currency.asset, &currency.hot.address).await? == 0
        {
            return Ok(0);
        }
        Ok(match self.gas_ready(&currency.hot.address, fee).await? {
            Gas::ToppedUp => 1,
            Gas::Ready | Gas::Waiting => 0,
        })
    }

    /// The hot wallet's excess of `currency` to warm or cold, when its tiers say so and no
    /// rebalancing of it is open.
    async fn plan_rebalance(
        &self,
        currency: &CollectedCurrency,
        fee: Fee,
    ) -> Result<u32, CollectError> {
        let Some(tiers) = &currency.tiers else {
            return Ok(0);
        };
        let hot = &currency.hot;
        if self
            .store
            .transfer_open(&self.config.chain, TransferKind::Rebalance, &hot.address)
            .await?
        {
            return Ok(0);
        }
        let balance = self.balance(&currency.asset, &hot.address).await?;
        let Some(mut excess) = balance.checked_sub(tiers.hot_max).filter(|e| *e > 0) else {
            return Ok(0);
        };
        let mut to = tiers.cold.clone();
        if let Some((warm, warm_max)) = &tiers.warm {
            let room = warm_max.saturating_sub(self.balance(&currency.asset, warm).await?);
            if room > 0 {
                excess = excess.min(room);
                to = Some(warm.clone());
            }
        }
        let Some(to) = to else {
            return Ok(0); // warm full and no cold address: the hot wallet keeps it
        };
        if currency.asset == Asset::Native {
            // The fee comes out of the hot wallet too.
            excess = excess.min(balance.saturating_sub(fee.cost(GAS_LIMIT_ETHER)));
        } else {
            match self.gas_ready(&hot.address, fee).await? {
                Gas::Ready => {}
                Gas::ToppedUp => return Ok(1),
                Gas::Waiting => return Ok(0),
            }
        }
        if excess == 0 {
            return Ok(0);
        }
        let plan = Plan {
            kind: TransferKind::Rebalance,
            currency,
            from: hot,
            to,
            amount: excess,
        };
        Ok(u32::from(self.sign(&plan, fee).await?))
    }

    /// Whether `address` can pay a token transfer's gas now; if not, and no top-up to it is
    /// open, signs and records one from the gas payer (sent by the next advance). An address
    /// with a top-up in flight waits: it is collected once the top-up is mined.
    async fn gas_ready(&self, address: &Address, fee: Fee) -> Result<Gas, CollectError> {
        let need = fee.cost(GAS_LIMIT_TOKEN);
        let balance = self.rpc.balance(address).await?;
        if balance >= need {
            return Ok(Gas::Ready);
        }
        let chain = self.config.chain.as_str();
        if self
            .store
            .transfer_open(chain, TransferKind::TopUp, address)
            .await?
        {
            return Ok(Gas::Waiting);
        }
        let Some(payer) = self.gas_payer() else {
            return Err(CollectError::Config("no native currency to pay gas".into()));
        };
        let amount = need.saturating_mul(TOPUP_FEE_MULTIPLE) - balance;
        let payer_balance = self.rpc.balance(&payer.hot.address).await?;
        if payer_balance < amount.saturating_add(fee.cost(GAS_LIMIT_ETHER)) {
            // Signing anyway would burn a nonce the node refuses: wait for the hot wallet.
            tracing::warn!(chain, gas_payer = %payer.hot.address, "the gas payer cannot top up");
            self.metrics
                .signer_errors_total
                .with_label_values(&[chain, "gas_payer_short"])
                .inc();
            return Ok(Gas::Waiting);
        }
        let plan = Plan {
            kind: TransferKind::TopUp,
            currency: payer,
            from: &payer.hot,
            to: address.clone(),
            amount,
        };
        Ok(if self.sign(&plan, fee).await? {
            Gas::ToppedUp
        } else {
            Gas::Waiting
        })
    }

    /// Signs `plan` and records it (`signed`) before returning; false when another signer
    /// took the nonce first (nothing recorded: the next step plans again).
    async fn sign(&self, plan: &Plan<'_>, fee: Fee) -> Result<bool, CollectError> {
        let chain = self.config.chain.as_str();
        let pending = self.rpc.nonce(&plan.from.address).await?;
        let stored = self.store.nonce_max(chain, &plan.from.address).await?;
        let nonce = stored.map_or(pending, |max| pending.max(max + 1));
        let payment = match &plan.currency.asset {
            Asset::Token(contract) => (
                contract.clone(),
                0,
                erc20_transfer_data(&plan.to, plan.amount)?,
                GAS_LIMIT_TOKEN,
            ),
            _ => (plan.to.clone(), plan.amount, Vec::new(), GAS_LIMIT_ETHER),
        };
        let tx = fee.transaction(self.chain_id, nonce, payment);
        let signed: SignedTx = self
            .vault
            .with_key(&plan.currency.code, &plan.from.path, |key| tx.sign(key))
            .await??;
        let transfer = NewTransfer {
            kind: plan.kind,
            currency: plan.currency.code.clone(),
            seed: plan.currency.code.clone(),
            path: plan.from.path.clone(),
            from: plan.from.address.clone(),
            to: plan.to.clone(),
            amount_chain: plan.amount,
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |now| i64::try_from(now.as_millis()).unwrap_or(i64::MAX));
        let recorded = self
            .store
            .insert_transfer(chain, &transfer, nonce, &signed, now_ms)
            .await?;
        if recorded.is_some() {
            self.count(plan.kind, TransferState::Signed);
            tracing::info!(chain, kind = plan.kind.name(), currency = %transfer.currency,
                from = %transfer.from, to = %transfer.to, amount = plan.amount, "signed");
        }
        Ok(recorded.is_some())
    }

    fn count(&self, kind: TransferKind, state: TransferState) {
        self.metrics
            .transfers_total
            .with_label_values(&[self.config.chain.as_str(), kind.name(), state.name()])
            .inc();
    }
}
