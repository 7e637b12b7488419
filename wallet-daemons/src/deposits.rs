//! The deposit watcher: follows one chain's head block by block, keeps the chain of block hashes
//! in the wallet store, rewinds on a reorganisation, confirms deposits per currency and credits
//! each confirmed one exactly once through the ledger.
//!
//! One step ([`DepositWatcher::step`]):
//! 1. credit the deposits already `confirmed` (a previous run may have stopped between writing
//!    `confirmed` and writing `credited`: the same idempotency key makes the retry harmless);
//! 2. read blocks after the stored tip, at most [`BLOCKS_PER_STEP_MAX`]: a block whose parent
//!    hash is not the tip's hash means the tip left the chain, so the tip is rewound (its
//!    unconfirmed deposits orphaned) and the step reads the block below again;
//! 3. confirm `seen` deposits that have their currency's confirmations on the stored chain;
//! 4. credit them.
//!
//! The cursor is the stored tip, written with the block's deposits in one transaction, so a
//! restart (even after SIGKILL) resumes from the last block fully recorded.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use peregrine_hotpath::{AccountId, Amount, CurrencyId};

use crate::chain::{Address, Asset, Block, Chain, ChainError, Watch};
use crate::ledger::{CreditOutcome, Ledger, deposit_id};
use crate::metrics::WalletMetrics;
use crate::store::{DepositState, NewDeposit, StoreError, StoredBlock, WalletStore};

/// Blocks one step reads at most (a watcher far behind catches up over several steps, and
/// metrics and credits move in between).
pub const BLOCKS_PER_STEP_MAX: u32 = 64;
/// Blocks kept below the tip: the deepest reorganisation the watcher can follow, and more than
/// any currency's confirmations.
pub const BLOCKS_KEPT: u64 = 256;
/// The most confirmations a currency may require.
pub const CONFIRMATIONS_MAX: u32 = 128;
/// Credits one step submits at most.
pub const CREDITS_PER_STEP_MAX: u32 = 256;
/// The longest wait between two attempts while steps fail (node down, store down).
pub const BACKOFF_MS_MAX: u64 = 60_000;

const _: () = assert!((CONFIRMATIONS_MAX as u64) < BLOCKS_KEPT);
const _: () = assert!(BLOCKS_PER_STEP_MAX >= 1 && CREDITS_PER_STEP_MAX >= 1);

/// A currency the watcher credits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedCurrency {
    /// The exchange's code (`eth`, `usdt`).
    pub code: String,
    /// The engine's id.
    pub id: CurrencyId,
    /// The chain's coin or a token contract.
    pub asset: Asset,
    /// Decimals of the chain's unit (18 for ether and most tokens).
    pub chain_decimals: u32,
    /// The engine's precision for it (decimals of the minor unit): at most `chain_decimals`.
    pub precision: u32,
    /// Blocks, the deposit's own included, before a deposit is credited (1: as soon as mined).
    pub confirmations: u32,
}

/// What one watcher follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherConfig {
    /// The chain's name in the store (`eth`).
    pub chain: String,
    /// The first block read when the store has none.
    pub start_block: u64,
    /// The currencies on this chain.
    pub currencies: Vec<WatchedCurrency>,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The node failed or refused.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain diverged below every stored block: the watcher cannot tell what left it.
    #[error("a reorganisation deeper than {BLOCKS_KEPT} blocks below block {at}")]
    ReorgTooDeep {
        /// Where the watcher stopped.
        at: u64,
    },
    /// The configuration cannot work.
    #[error("invalid wallet configuration: {0}")]
    Config(String),
}

impl WatchError {
    /// The `kind` label of `wallet_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            WatchError::Chain(error) if error.is_unavailable() => "chain_unavailable",
            WatchError::Chain(_) => "chain_refused",
            WatchError::Store(_) => "store",
            WatchError::ReorgTooDeep { .. } => "reorg_too_deep",
            WatchError::Config(_) => "config",
        }
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    /// The node's head.
    pub head: u64,
    /// The stored tip after the step.
    pub tip: Option<u64>,
    /// Blocks recorded.
    pub blocks: u32,
    /// Blocks rewound.
    pub rewound: u32,
    /// Deposits credited now (applied or found applied).
    pub credited: u32,
}

/// What the watcher is doing: the daemon's readiness reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatcherStatus {
    /// No step finished yet.
    Starting,
    /// The last step succeeded.
    Following {
        /// The node's head.
        head: u64,
        /// The stored tip.
        tip: Option<u64>,
    },
    /// Steps fail; the watcher tries again after a growing pause.
    Failing {
        /// `WatchError::kind` of the last failure.
        kind: &'static str,
        /// Its message.
        reason: String,
        /// Consecutive failed steps.
        failures: u32,
    },
}

/// The pacing of [`DepositWatcher::run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// Between two successful steps (about the chain's block time).
    pub interval_ms: u64,
    /// The longest pause after failures (doubling from `interval_ms`, at most
    /// [`BACKOFF_MS_MAX`]).
    pub backoff_ms_max: u64,
}

impl Pacing {
    /// The pause after `failures` consecutive failed steps (0: the interval).
    pub fn pause_ms(self, failures: u32) -> u64 {
        let ceiling = self.backoff_ms_max.clamp(self.interval_ms, BACKOFF_MS_MAX);
        let factor = 1u64 << failures.min(16);
        self.interval_ms.saturating_mul(factor).min(ceiling)
    }
}

/// Who a watched address belongs to: index into the currencies, and the account.
type Owners = HashMap<(Asset, Address), (usize, u32)>;

/// The deposit watcher of one chain.
#[derive(Debug)]
pub struct DepositWatcher<C, L> {
    chain: C,
    ledger: L,
    store: WalletStore,
    config: WatcherConfig,
    metrics: WalletMetrics,
}

impl WatchedCurrency {
    /// Chain units to the engine's minor units, rounding down (the rest is dust left on the
    /// deposit address); `None` when it does not fit the store's signed 64 bits.
    fn to_minor(&self, amount_chain: u128) -> Option<u64> {
        let divisor = 10u128.checked_pow(self.chain_decimals - self.precision)?;
        let minor = amount_chain / divisor;
        u64::try_from(minor)
            .ok()
            .filter(|minor| *minor <= i64::MAX as u64)
    }
}

impl<C: Chain, L: Ledger> DepositWatcher<C, L> {
    /// A watcher of `chain` recording into `store` and crediting `ledger`.
    pub fn new(
        chain: C,
        ledger: L,
        store: WalletStore,
        config: WatcherConfig,
        metrics: WalletMetrics,
    ) -> Result<DepositWatcher<C, L>, WatchError> {
        for currency in &config.currencies {
            let bad =
                |what: &str| WatchError::Config(format!("currency {}: {what}", currency.code));
            if currency.confirmations == 0 || currency.confirmations > CONFIRMATIONS_MAX {
                return Err(bad("confirmations must be 1 to 128"));
            }
            if currency.precision > currency.chain_decimals
                || currency.chain_decimals - currency.precision > 38
            {
                return Err(bad(
                    "precision must be at most the chain's decimals (and 38 below)",
                ));
            }
        }
        Ok(DepositWatcher {
            chain,
            ledger,
            store,
            config,
            metrics,
        })
    }

    /// The store.
    pub fn store(&self) -> &WalletStore {
        &self.store
    }

    /// The addresses to watch and their owners, from the store (new deposit addresses are
    /// picked up at the next step).
    async fn watch(&self) -> Result<(Watch, Owners), WatchError> {
        let mut watch = Watch::default();
        let mut owners = Owners::new();
        for (index, currency) in self.config.currencies.iter().enumerate() {
            let addresses = self.store.addresses(&currency.code).await?;
            let set = addresses
                .iter()
                .map(|(_, address)| address.clone())
                .collect();
            match &currency.asset {
                Asset::Native => watch.native = set,
                Asset::Token(contract) => watch.tokens.push((contract.clone(), set)),
            }
            for (account, address) in addresses {
                owners.insert((currency.asset.clone(), address), (index, account));
            }
        }
        Ok((watch, owners))
    }

    /// The deposits `block` carries.
    fn deposits_of(&self, block: &Block, owners: &Owners) -> Vec<NewDeposit> {
        let mut deposits = Vec::with_capacity(block.transfers.len());
        for transfer in &block.transfers {
            let key = (transfer.asset.clone(), transfer.to.clone());
            let Some((index, account)) = owners.get(&key) else {
                continue;
            };
            let currency = &self.config.currencies[*index];
            let Some(amount_minor) = currency.to_minor(transfer.amount) else {
                tracing::warn!(txid = %transfer.txid, "deposit too large for the ledger: skipped");
                continue;
            };
            deposits.push(NewDeposit {
                currency: currency.code.clone(),
                account: *account,
                address: transfer.to.clone(),
                txid: transfer.txid,
                leg: transfer.leg.to_stored(),
                amount_chain: transfer.amount,
                amount_minor,
            });
        }
        deposits
    }

    /// Steps until `shutdown` turns true, publishing each outcome in `status`: after a failure
    /// (the node or the store down) it pauses longer each time, up to the pacing's ceiling,
    /// and resumes from the stored tip when the step succeeds again — nothing is lost, since
    /// nothing is recorded past the last block fully read.
    pub async fn run(
        &self,
        pacing: Pacing,
        status: &tokio::sync::watch::Sender<WatcherStatus>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let chain = self.config.chain.as_str();
        let mut failures: u32 = 0;
        while !*shutdown.borrow() {
            match self.step().await {
                Ok(report) => {
                    if failures > 0 {
                        tracing::info!(chain, failures, "deposit watcher recovered");
                    }
                    failures = 0;
                    status.send_replace(WatcherStatus::Following {
                        head: report.head,
                        tip: report.tip,
                    });
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let kind = error.kind();
                    self.metrics
                        .errors_total
                        .with_label_values(&[chain, kind])
                        .inc();
                    tracing::warn!(chain, kind, %error, failures, "deposit watcher step failed");
                    status.send_replace(WatcherStatus::Failing {
                        kind,
                        reason: error.to_string(),
                        failures,
                    });
                }
            }
            let pause = std::time::Duration::from_millis(pacing.pause_ms(failures));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return; // the owner is gone: nobody can stop or read this watcher
                    }
                }
            }
        }
    }

    /// One step (see the module docs).
    pub async fn step(&self) -> Result<StepReport, WatchError> {
        let started = Instant::now();
        let mut report = StepReport {
            credited: self.credit_due().await?,
            ..StepReport::default()
        };
        report.head = self.chain.head().await?;
        self.follow(&mut report).await?;
        let tip = self.store.tip(&self.config.chain).await?;
        report.tip = tip.map(|tip| tip.number);
        if let Some(tip) = tip {
            for currency in &self.config.currencies {
                let confirmed_up_to =
                    (tip.number + 1).checked_sub(u64::from(currency.confirmations));
                if let Some(number) = confirmed_up_to {
                    self.store
                        .confirm(&self.config.chain, &currency.code, number)
                        .await?;
                }
            }
        }
        report.credited += self.credit_due().await?;
        self.observe(report.head, tip).await?;
        self.metrics
            .scan_seconds
            .with_label_values(&[&self.config.chain])
            .observe(started.elapsed().as_secs_f64());
        Ok(report)
    }

    /// Reads and records blocks after the tip, rewinding where the chain changed.
    async fn follow(&self, report: &mut StepReport) -> Result<(), WatchError> {
        let chain = self.config.chain.as_str();
        let (watch, owners) = self.watch().await?;
        while report.blocks < BLOCKS_PER_STEP_MAX {
            let tip = self.store.tip(chain).await?;
            let next = tip.map_or(self.config.start_block, |tip| tip.number + 1);
            if next > report.head {
                break;
            }
            let Some(block) = self.chain.block(next, &watch).await? else {
                break; // the node's head moved back under us: next step
            };
            if let Some(tip) = tip
                && block.parent != tip.hash
            {
                self.rewind(tip, report).await?;
                continue;
            }
            let deposits = self.deposits_of(&block, &owners);
            let stored = StoredBlock {
                number: block.number,
                hash: block.hash,
                parent: block.parent,
                timestamp_s: block.timestamp_s,
            };
            self.store
                .add_block(chain, &stored, &deposits, BLOCKS_KEPT)
                .await?;
            report.blocks += 1;
        }
        Ok(())
    }

    /// The stored tip left the chain: forget it and orphan its unconfirmed deposits.
    async fn rewind(&self, tip: StoredBlock, report: &mut StepReport) -> Result<(), WatchError> {
        let chain = self.config.chain.as_str();
        // The store keeps BLOCKS_KEPT + 1 blocks once past them: failing at BLOCKS_KEPT rewinds
        // stops before the last kept block goes, so a watcher never rescans from
        // `start_block` over pruned history on a chain that is not the one it followed. (With
        // fewer blocks stored, every block since `start_block` is kept, and rereading from it
        // is exact.)
        if u64::from(report.rewound) >= BLOCKS_KEPT {
            return Err(WatchError::ReorgTooDeep { at: tip.number });
        }
        if report.rewound == 0 {
            self.metrics.reorgs_total.with_label_values(&[chain]).inc();
            tracing::warn!(chain, block = tip.number, hash = %tip.hash, "reorganisation");
        }
        let late = self.store.rewind(chain, tip.number).await?;
        if late > 0 {
            tracing::error!(
                chain,
                block = tip.number,
                late,
                "confirmed deposits left the chain"
            );
            self.metrics
                .deep_reorg_deposits_total
                .with_label_values(&[chain])
                .inc_by(late);
        }
        self.metrics
            .reorg_blocks_total
            .with_label_values(&[chain])
            .inc();
        report.rewound += 1;
        Ok(())
    }

    /// Submits the credits of confirmed deposits; how many ended credited.
    async fn credit_due(&self) -> Result<u32, WatchError> {
        let chain = self.config.chain.as_str();
        let mut credited = 0;
        for row in self.store.due(chain, CREDITS_PER_STEP_MAX).await? {
            let Some(currency) = self
                .config
                .currencies
                .iter()
                .find(|c| c.code == row.currency)
            else {
                continue; // a currency no longer configured: left confirmed for an operator
            };
            let outcome = self
                .ledger
                .credit(
                    AccountId(row.account),
                    currency.id,
                    Amount(row.amount_minor),
                    deposit_id(row.id),
                )
                .await;
            let (label, state, seq) = match outcome {
                Ok(CreditOutcome::Applied { seq }) => {
                    ("applied", DepositState::Credited, Some(seq))
                }
                Ok(CreditOutcome::AlreadyApplied) => {
                    ("already_applied", DepositState::Credited, None)
                }
                Ok(CreditOutcome::Refused(reason)) => {
                    tracing::error!(id = row.id, ?reason, "deposit credit refused");
                    ("refused", DepositState::Rejected, None)
                }
                Err(error) => {
                    tracing::warn!(id = row.id, %error, "deposit credit deferred");
                    self.metrics
                        .credits_total
                        .with_label_values(&[chain, "retry"])
                        .inc();
                    break; // the engine is busy or down: the next step retries
                }
            };
            self.metrics
                .credits_total
                .with_label_values(&[chain, label])
                .inc();
            self.store.settle(row.id, state, seq).await?;
            if state == DepositState::Credited {
                credited += 1;
            }
        }
        Ok(credited)
    }

    /// Updates the lag and state gauges.
    async fn observe(&self, head: u64, tip: Option<StoredBlock>) -> Result<(), WatchError> {
        let chain = self.config.chain.as_str();
        let tip_number = tip.map_or(self.config.start_block.saturating_sub(1), |t| t.number);
        let lag = i64::try_from(head.saturating_sub(tip_number)).unwrap_or(i64::MAX);
        self.metrics
            .head_lag_blocks
            .with_label_values(&[chain])
            .set(lag);
        if let Some(tip) = tip {
            let now_s = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |now| now.as_secs());
            let seconds = now_s.saturating_sub(tip.timestamp_s) as f64;
            self.metrics
                .head_lag_seconds
                .with_label_values(&[chain])
                .set(seconds);
        }
        let counts = self.store.state_counts(chain).await?;
        for state in DepositState::ALL {
            let count = counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, count)| *count);
            self.metrics
                .deposits
                .with_label_values(&[chain, state.name()])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{BACKOFF_MS_MAX, Pacing};

    #[test]
    fn the_pause_doubles_from_the_interval_up_to_the_ceiling() {
        let pacing = Pacing {
            interval_ms: 100,
            backoff_ms_max: 1_000,
        };
        let pauses: Vec<u64> = (0..6).map(|failures| pacing.pause_ms(failures)).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1_000, 1_000]);
        let unbounded = Pacing {
            interval_ms: 1_000,
            backoff_ms_max: u64::MAX,
        };
        assert_eq!(unbounded.pause_ms(u32::MAX), BACKOFF_MS_MAX);
    }
}
