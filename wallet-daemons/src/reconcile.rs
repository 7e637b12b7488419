//! Reconciliation: what the chain holds against what the ledger owes, per currency.
//!
//! On chain: the hot wallet, the warm and cold addresses (cold counted as the chain reports
//! it: no key is needed to read a balance) and every deposit address of the currency. For the
//! chain's coin, the ether the collector put on token addresses for gas (token deposit
//! addresses, token hot wallets) counts too: it left the hot wallet but is still the
//! exchange's. Owed: every account's available plus locked in the ledger ([`Liabilities`],
//! the appliance's status read from its views), in chain units.
//!
//! The difference is on chain minus owed. Fees the wallet paid (sweeps, top-ups,
//! withdrawals) make it negative by their sum; a withdrawal sent but not yet settled makes it
//! negative by its amount until its hold settles; ether sent to a wallet address without a
//! deposit (or a deposit not yet credited) makes it positive. Beyond the currency's tolerance
//! the daemon's readiness says so (degraded: it keeps serving).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use peregrine_hotpath::CurrencyId;
use serde_json::{Value, json};

use crate::chain::eth::EthRpc;
use crate::chain::{Address, Asset, ChainError};
use crate::ledger::{LedgerError, Liabilities};
use crate::metrics::WalletMetrics;
use crate::store::{StoreError, WalletStore, on_pool};

/// Reconciled currencies one read of the last reconciliations returns at most (a chain has a
/// few: its coin and its tokens).
pub const RECORDED_CURRENCIES_MAX: u32 = 1_024;

/// Deposit addresses read per currency at most (a read per address: a larger exchange
/// reconciles from an indexer, not from per-address balance calls).
pub const ADDRESSES_PER_CURRENCY_MAX: usize = 100_000;

/// One currency to reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconciledCurrency {
    /// The exchange's code.
    pub code: String,
    /// The engine's id.
    pub id: CurrencyId,
    /// The chain's coin or a token.
    pub asset: Asset,
    /// Decimals of the chain's unit.
    pub chain_decimals: u32,
    /// Decimals of the engine's minor unit (at most `chain_decimals`).
    pub precision: u32,
    /// The hot wallet.
    pub hot: Address,
    /// The warm address, if any.
    pub warm: Option<Address>,
    /// The cold address, if any.
    pub cold: Option<Address>,
    /// The largest difference (either sign) that is not reported, chain units.
    pub tolerance: u128,
}

/// One currency's outcome, chain units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciliation {
    /// The currency.
    pub currency: String,
    /// Decimals of the chain's unit (to print the amounts).
    pub chain_decimals: u32,
    /// The hot wallet's balance.
    pub hot: u128,
    /// The warm address's.
    pub warm: u128,
    /// The cold address's.
    pub cold: u128,
    /// The deposit addresses' (and, for the chain's coin, the gas on token addresses).
    pub deposits: u128,
    /// What the ledger owes.
    pub liabilities: u128,
    /// On chain minus owed.
    pub difference: i128,
    /// The tolerance.
    pub tolerance: u128,
}

impl Reconciliation {
    /// Everything on chain.
    pub fn on_chain(&self) -> u128 {
        self.hot
            .saturating_add(self.warm)
            .saturating_add(self.cold)
            .saturating_add(self.deposits)
    }

    /// The difference is beyond the tolerance.
    pub fn exceeds(&self) -> bool {
        self.difference.unsigned_abs() > self.tolerance
    }

    /// As JSON, amounts as decimal strings in the currency.
    pub fn to_json(&self) -> Value {
        let text = |units: u128| units_to_decimal(units, false, self.chain_decimals);
        let negative = self.difference < 0;
        json!({
            "currency": self.currency,
            "hot": text(self.hot),
            "warm": text(self.warm),
            "cold": text(self.cold),
            "deposit_addresses": text(self.deposits),
            "on_chain": text(self.on_chain()),
            "liabilities": text(self.liabilities),
            "difference": units_to_decimal(self.difference.unsigned_abs(), negative, self.chain_decimals),
            "tolerance": text(self.tolerance),
            "exceeds": self.exceeds(),
        })
    }

    /// The difference in the currency's units, for the gauge.
    pub fn difference_units(&self) -> f64 {
        self.difference as f64 / 10f64.powi(i32::try_from(self.chain_decimals).unwrap_or(38))
    }
}

/// Every currency's outcome as one JSON object: `{"currencies": [...]}`.
pub fn reports_json(reports: &[Reconciliation]) -> Value {
    let all: Vec<Value> = reports.iter().map(Reconciliation::to_json).collect();
    json!({ "currencies": all })
}

/// `units` with `decimals` decimals as a decimal string (`-` first when `negative`).
pub fn units_to_decimal(units: u128, negative: bool, decimals: u32) -> String {
    let digits = units.to_string();
    let sign = if negative && units > 0 { "-" } else { "" };
    let decimals = decimals as usize;
    if decimals == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = decimals + 1);
    let (whole, fraction) = padded.split_at(padded.len() - decimals);
    format!("{sign}{whole}.{fraction}")
}

/// Why a reconciliation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// The node failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger's liabilities could not be read.
    #[error("liabilities: {0}")]
    Ledger(#[from] LedgerError),
    /// A currency's precision is above its chain decimals (the configuration refuses it).
    #[error("currency {0}: precision above its chain decimals")]
    Precision(String),
}

/// Compares the chain with the ledger for `currencies`; sets
/// `wallet_reconciliation_difference` per currency, records each outcome as the currency's last
/// reconciliation in the store (for the control API's report), and times the run in
/// `wallet_reconciliation_seconds`.
pub async fn reconcile<L: Liabilities>(
    rpc: &EthRpc,
    store: &WalletStore,
    ledger: &L,
    currencies: &[ReconciledCurrency],
    (chain, metrics): (&str, &WalletMetrics),
) -> Result<Vec<Reconciliation>, ReconcileError> {
    let started = Instant::now();
    let mut outcome = Vec::with_capacity(currencies.len());
    for currency in currencies {
        let report = reconcile_one(rpc, store, ledger, currencies, currency).await?;
        store
            .record_reconciliation(chain, &report, unix_ms())
            .await?;
        metrics
            .reconciliation_difference
            .with_label_values(&[chain, currency.code.as_str()])
            .set(report.difference_units());
        outcome.push(report);
    }
    metrics
        .reconciliation_seconds
        .with_label_values(&[chain])
        .observe(started.elapsed().as_secs_f64());
    Ok(outcome)
}

async fn reconcile_one<L: Liabilities>(
    rpc: &EthRpc,
    store: &WalletStore,
    ledger: &L,
    all: &[ReconciledCurrency],
    currency: &ReconciledCurrency,
) -> Result<Reconciliation, ReconcileError> {
    let asset = &currency.asset;
    let hot = asset_balance(rpc, asset, &currency.hot).await?;
    let warm = match &currency.warm {
        Some(warm) => asset_balance(rpc, asset, warm).await?,
        None => 0,
    };
    let cold = match &currency.cold {
        Some(cold) => asset_balance(rpc, asset, cold).await?,
        None => 0,
    };
    let mut deposits = 0u128;
    for (_, address) in store
        .addresses(&currency.code)
        .await?
        .into_iter()
        .take(ADDRESSES_PER_CURRENCY_MAX)
    {
        deposits = deposits.saturating_add(asset_balance(rpc, asset, &address).await?);
    }
    if currency.asset == Asset::Native {
        deposits = deposits.saturating_add(gas_on_token_addresses(rpc, store, all).await?);
    }
    let scale = currency
        .chain_decimals
        .checked_sub(currency.precision)
        .and_then(|shift| 10u128.checked_pow(shift))
        .ok_or_else(|| ReconcileError::Precision(currency.code.clone()))?;
    let liabilities = ledger.liabilities(currency.id).await?.saturating_mul(scale);
    let on_chain = hot
        .saturating_add(warm)
        .saturating_add(cold)
        .saturating_add(deposits);
    let difference = signed(on_chain) - signed(liabilities);
    Ok(Reconciliation {
        currency: currency.code.clone(),
        chain_decimals: currency.chain_decimals,
        hot,
        warm,
        cold,
        deposits,
        liabilities,
        difference,
        tolerance: currency.tolerance,
    })
}

/// Ether held by the token currencies' addresses (deposit addresses, hot wallets): gas the
/// collector topped up.
async fn gas_on_token_addresses(
    rpc: &EthRpc,
    store: &WalletStore,
    all: &[ReconciledCurrency],
) -> Result<u128, ReconcileError> {
    let mut total = 0u128;
    for token in all.iter().filter(|c| c.asset != Asset::Native) {
        total = total.saturating_add(rpc.balance(&token.hot).await?);
        for (_, address) in store
            .addresses(&token.code)
            .await?
            .into_iter()
            .take(ADDRESSES_PER_CURRENCY_MAX)
        {
            total = total.saturating_add(rpc.balance(&address).await?);
        }
    }
    Ok(total)
}

/// `address`'s balance of `asset`.
async fn asset_balance(rpc: &EthRpc, asset: &Asset, address: &Address) -> Result<u128, ChainError> {
    match asset {
        Asset::Token(contract) => rpc.token_balance(contract, address).await,
        _ => rpc.balance(address).await,
    }
}

/// The wall clock, Unix ms (0 before 1970: a clock that wrong is not worth failing a run).
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// A currency's last reconciliation as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedReconciliation {
    /// The outcome.
    pub report: Reconciliation,
    /// When it ran, Unix ms.
    pub reconciled_at_ms: i64,
}

type ReconciliationTuple = (
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
);

const RECONCILIATION_COLUMNS: &str = "currency, chain_decimals, hot, warm, cold, \
     deposit_addresses, liabilities, difference, tolerance, reconciled_at_ms";

fn parsed<T: std::str::FromStr>(column: &'static str, text: &str) -> Result<T, StoreError> {
    text.parse().map_err(|_| StoreError::UnknownValue {
        column,
        value: text.to_owned(),
    })
}

fn recorded(tuple: ReconciliationTuple) -> Result<RecordedReconciliation, StoreError> {
    let (currency, decimals, hot, warm, cold, deposits, liabilities, difference, tolerance, at) =
        tuple;
    let report = Reconciliation {
        currency,
        chain_decimals: u32::try_from(decimals).map_err(|_| StoreError::UnknownValue {
            column: "chain_decimals",
            value: decimals.to_string(),
        })?,
        hot: parsed("hot", &hot)?,
        warm: parsed("warm", &warm)?,
        cold: parsed("cold", &cold)?,
        deposits: parsed("deposit_addresses", &deposits)?,
        liabilities: parsed("liabilities", &liabilities)?,
        difference: parsed("difference", &difference)?,
        tolerance: parsed("tolerance", &tolerance)?,
    };
    Ok(RecordedReconciliation {
        report,
        reconciled_at_ms: at,
    })
}

impl WalletStore {
    /// Records `report` as `chain`'s last reconciliation of its currency (replacing the one
    /// before).
    pub async fn record_reconciliation(
        &self,
        chain: &str,
        report: &Reconciliation,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool, mysql| {
            let tail = if mysql {
                " ON DUPLICATE KEY UPDATE chain_decimals = VALUES(chain_decimals), \
                 hot = VALUES(hot), warm = VALUES(warm), cold = VALUES(cold), \
                 deposit_addresses = VALUES(deposit_addresses), \
                 liabilities = VALUES(liabilities), difference = VALUES(difference), \
                 tolerance = VALUES(tolerance), reconciled_at_ms = VALUES(reconciled_at_ms)"
            } else {
                " ON CONFLICT (chain, currency) DO UPDATE SET \
                 chain_decimals = excluded.chain_decimals, hot = excluded.hot, \
                 warm = excluded.warm, cold = excluded.cold, \
                 deposit_addresses = excluded.deposit_addresses, \
                 liabilities = excluded.liabilities, difference = excluded.difference, \
                 tolerance = excluded.tolerance, reconciled_at_ms = excluded.reconciled_at_ms"
            };
            let sql = format!(
                "INSERT INTO wallet_reconciliations (chain, {RECONCILIATION_COLUMNS}) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?){tail}"
            );
            sqlx::query(&sql)
                .bind(chain)
                .bind(report.currency.as_str())
                .bind(i64::from(report.chain_decimals))
                .bind(report.hot.to_string())
                .bind(report.warm.to_string())
                .bind(report.cold.to_string())
                .bind(report.deposits.to_string())
                .bind(report.liabilities.to_string())
                .bind(report.difference.to_string())
                .bind(report.tolerance.to_string())
                .bind(at_ms)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// `chain`'s last reconciliation of each currency, by currency (at most
    /// [`RECORDED_CURRENCIES_MAX`]). Read only.
    pub async fn reconciliations(
        &self,
        chain: &str,
    ) -> Result<Vec<RecordedReconciliation>, StoreError> {
        let sql = format!(
            "SELECT {RECONCILIATION_COLUMNS} FROM wallet_reconciliations WHERE chain = ? \
             ORDER BY currency LIMIT {RECORDED_CURRENCIES_MAX}"
        );
        let rows: Vec<ReconciliationTuple> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(&sql).bind(chain).fetch_all(pool).await?
        });
        rows.into_iter().map(recorded).collect()
    }
}

/// `value` as i128, saturating (no chain holds 2^127 of anything).
fn signed(value: u128) -> i128 {
    i128::try_from(value).unwrap_or(i128::MAX)
}

#[cfg(test)]
mod tests {
    use super::units_to_decimal;

    #[test]
    fn units_print_with_their_decimals_and_sign() {
        assert_eq!(units_to_decimal(1_500, false, 3), "1.500");
        assert_eq!(units_to_decimal(5, true, 3), "-0.005");
        assert_eq!(units_to_decimal(0, true, 2), "0.00");
        assert_eq!(units_to_decimal(42, false, 0), "42");
    }
}
