//! `[wallets]`: the wallet daemon (`peregrine wallets run`) and, on the appliance, the chain
//! deposits the REST bridge serves from the wallet store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

/// Bound on `wallets.interval_ms` and `wallets.backoff_ms_max`: ten minutes.
pub const INTERVAL_MS_MAX: u64 = 600_000;
/// Currencies one daemon follows at most.
pub const CURRENCIES_MAX: usize = 64;
/// A new beneficiary's wait by default: one day.
pub const BENEFICIARY_ACTIVATION_DELAY_MS_DEFAULT: u64 = 86_400_000;
/// The longest wait accepted: 30 days.
pub const BENEFICIARY_ACTIVATION_DELAY_MS_MAX: u64 = 30 * 86_400_000;
/// The fee bumps' cap by default, gwei (the wallet crate's default).
pub const MAX_FEE_PER_GAS_GWEI_DEFAULT: u64 = 500;
/// Most blocks `fee_bump_after_blocks` accepts (about a day of Ethereum blocks).
pub const FEE_BUMP_AFTER_BLOCKS_MAX: u64 = 7_200;
const WEI_PER_GWEI: u128 = 1_000_000_000;

const _: () = assert!(
    MAX_FEE_PER_GAS_GWEI_DEFAULT as u128 * WEI_PER_GWEI
        == peregrine_wallet::bumps::MAX_FEE_PER_GAS_CAP_WEI_DEFAULT
);

/// One `[[wallets.currencies]]` entry: a catalog currency deposited on the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletCurrency {
    /// The catalog's code (`[[currencies]]`), e.g. `eth`; its precision is the engine's.
    pub code: String,
    /// The ERC-20 contract address; empty for the chain's own coin.
    #[serde(default)]
    pub contract: String,
    /// Decimals of the chain's unit (18 for ether and most tokens).
    pub decimals: u32,
    /// Blocks, the deposit's own included, before a deposit is credited (and before a
    /// withdrawal's receipt settles it).
    pub confirmations: u32,
    /// The withdrawal policy (default deny): without it the currency cannot be withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdraw: Option<WithdrawSection>,
    /// Hot / warm / cold: without it the hot wallet keeps everything collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<TiersSection>,
    /// The largest difference between the chain and the ledger (either sign, a decimal in
    /// the currency) the reconciliation does not report; fees the wallet pays count in it.
    #[serde(default = "zero")]
    pub reconcile_tolerance: String,
}

fn zero() -> String {
    "0".to_owned()
}

/// `[wallets.currencies.tiers]`: what the hot wallet keeps; the excess goes to the warm
/// address up to `warm_max`, then to the cold address. Warm and cold are addresses only (no
/// key on the host). Amounts are decimal strings in the currency, exact in its chain decimals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TiersSection {
    /// The most the hot wallet keeps.
    pub hot_max: String,
    /// The warm address (EIP-55); empty: none.
    #[serde(default)]
    pub warm_address: String,
    /// The most sent to the warm address to hold (required with `warm_address`).
    #[serde(default)]
    pub warm_max: String,
    /// The cold address (EIP-55); empty: none.
    #[serde(default)]
    pub cold_address: String,
}

/// `[wallets.currencies.withdraw]`: one currency's withdrawal policy, amounts as decimal
/// strings in the currency (exact in the catalog's precision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawSection {
    /// Most one account withdraws over the last 24 hours.
    pub limit_24h: String,
    /// Most one account withdraws over the last 30 days (at least `limit_24h`).
    pub limit_30d: String,
    /// A withdrawal above this waits for operators' approvals.
    pub approval_above: String,
    /// Approvals it then needs: 1 or 2 operators, never the requester.
    #[serde(default = "one")]
    pub approvals: u8,
}

fn one() -> u8 {
    1
}

/// The `[wallets]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalletsSection {
    /// Chain deposits on: `up` serves them from the store, `wallets run` follows the chain.
    pub enabled: bool,
    /// The daemon's health and metrics listener (`/health/alive`, `/health/ready`, `/metrics`).
    pub listen: SocketAddr,
    /// The chain's name in the store.
    pub chain: String,
    /// The node's JSON-RPC URL.
    pub rpc_url: String,
    /// `mysql://…` or `sqlite://…`; empty: the SQLite file `<data.dir>/wallets.db`.
    pub store_url: String,
    /// OpenBao's address (the seeds, KV v2).
    pub openbao_addr: String,
    /// File holding the daemon's OpenBao token (wallet policy only); relative to the data
    /// directory.
    pub openbao_token_file: PathBuf,
    /// The KV v2 mount of the seeds.
    pub seed_mount: String,
    /// The appliance's operator HTTP listener; empty: `http://<http.listen>`.
    pub control_url: String,
    /// The wallet token file; empty: `[control] wallet_token_file` under the data directory.
    pub control_token_file: PathBuf,
    /// The first block read when the store has none; 0: the node's head at the first start.
    pub start_block: u64,
    /// Between two watcher steps (about the block time).
    #[serde(deserialize_with = "interval_ms")]
    pub interval_ms: u64,
    /// The longest pause after failed steps (the pause doubles from `interval_ms`).
    #[serde(deserialize_with = "interval_ms")]
    pub backoff_ms_max: u64,
    /// How long a new beneficiary waits before withdrawals may go to it, ms (a stolen
    /// session cannot add its own payee and withdraw at once).
    pub beneficiary_activation_delay_ms: u64,
    /// Between two reconciliations of the chain with the ledger by the daemon.
    #[serde(deserialize_with = "interval_ms")]
    pub reconcile_interval_ms: u64,
    /// Blocks past the head a withdrawal's transaction was signed at, with no receipt, before
    /// it is replaced with the same nonce at a higher fee.
    pub fee_bump_after_blocks: u64,
    /// Replacements of one withdrawal's transaction at most (0: never).
    pub fee_bumps_max: u32,
    /// The highest `maxFeePerGas` a replacement offers, in gwei: a bump needing more waits.
    pub max_fee_per_gas_gwei: u64,
    /// The currencies deposited on the chain.
    pub currencies: Vec<WalletCurrency>,
}

impl Default for WalletsSection {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            chain: "eth".to_owned(),
            rpc_url: "http://127.0.0.1:8545".to_owned(),
            store_url: String::new(),
            openbao_addr: "http://127.0.0.1:8200".to_owned(),
            openbao_token_file: PathBuf::from("wallets-openbao.token"),
            seed_mount: "peregrine-wallets".to_owned(),
            control_url: String::new(),
            control_token_file: PathBuf::new(),
            start_block: 0,
            interval_ms: 1_000,
            backoff_ms_max: 30_000,
            beneficiary_activation_delay_ms: BENEFICIARY_ACTIVATION_DELAY_MS_DEFAULT,
            reconcile_interval_ms: 60_000,
            fee_bump_after_blocks: peregrine_wallet::bumps::BUMP_AFTER_BLOCKS_DEFAULT,
            fee_bumps_max: peregrine_wallet::bumps::FEE_BUMPS_MAX_DEFAULT,
            max_fee_per_gas_gwei: MAX_FEE_PER_GAS_GWEI_DEFAULT,
            currencies: Vec::new(),
        }
    }
}

impl WalletsSection {
    /// The signer's fee bumps (validated: at least one block, at most
    /// [`peregrine_wallet::bumps::FEE_BUMPS_LIMIT`] bumps, a cap above 0).
    pub fn bump_policy(&self) -> peregrine_wallet::bumps::BumpPolicy {
        peregrine_wallet::bumps::BumpPolicy {
            after_blocks: self.fee_bump_after_blocks,
            bumps_max: self.fee_bumps_max,
            max_fee_per_gas_cap_wei: u128::from(self.max_fee_per_gas_gwei) * WEI_PER_GWEI,
        }
    }

    /// The store URL, with the embedded default resolved against `data_dir`.
    pub fn store_url(&self, data_dir: &Path) -> String {
        if self.store_url.is_empty() {
            format!("sqlite://{}", data_dir.join("wallets.db").display())
        } else {
            self.store_url.clone()
        }
    }
}

fn interval_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    if value == 0 || value > INTERVAL_MS_MAX {
        return Err(serde::de::Error::custom(format!(
            "{value} is outside 1 to {INTERVAL_MS_MAX}"
        )));
    }
    Ok(value)
}

/// Checks `[wallets]` against the catalog: each currency listed once, known to the catalog,
/// with no more engine decimals than chain decimals, confirmations in range, a contract that
/// is an address.
pub fn validate(
    config: &super::Config,
    sources: &super::Sources,
) -> Result<(), super::ConfigError> {
    let wallets = &config.wallets;
    let invalid = |key: String, reason: String| Err(sources.invalid(key, reason));
    if wallets.currencies.len() > CURRENCIES_MAX {
        return invalid(
            "wallets.currencies".to_owned(),
            format!("at most {CURRENCIES_MAX} currencies"),
        );
    }
    for (index, currency) in wallets.currencies.iter().enumerate() {
        let key = |field: &str| format!("wallets.currencies.{index}.{field}");
        let Some(def) = config.currencies.iter().find(|c| c.code == currency.code) else {
            return invalid(
                key("code"),
                format!("`{}` is not in [[currencies]]", currency.code),
            );
        };
        if wallets.currencies[..index]
            .iter()
            .any(|c| c.code == currency.code)
        {
            return invalid(key("code"), format!("`{}` is listed twice", currency.code));
        }
        if def.precision > currency.decimals || currency.decimals - def.precision > 38 {
            return invalid(
                key("decimals"),
                format!(
                    "{} cannot hold the engine's {} decimals (at most 38 more)",
                    currency.decimals, def.precision
                ),
            );
        }
        let most = peregrine_wallet::deposits::CONFIRMATIONS_MAX;
        if currency.confirmations == 0 || currency.confirmations > most {
            return invalid(key("confirmations"), format!("outside 1 to {most}"));
        }
        if !currency.contract.is_empty()
            && peregrine_wallet::chain::Address::parse_eth(&currency.contract).is_none()
        {
            return invalid(
                key("contract"),
                "not an address (0x + 40 hex digits)".to_owned(),
            );
        }
        if let Some(withdraw) = &currency.withdraw
            && let Err(reason) = currency_policy(&currency.code, withdraw, def.precision)
        {
            return invalid(key("withdraw"), reason);
        }
        if let Some(tiers) = &currency.tiers
            && let Err(reason) = currency_tiers(tiers, currency.decimals)
        {
            return invalid(key("tiers"), reason);
        }
        if let Err(reason) = to_chain_units(
            "reconcile_tolerance",
            &currency.reconcile_tolerance,
            currency.decimals,
        ) {
            return invalid(key("reconcile_tolerance"), reason);
        }
    }
    if wallets.beneficiary_activation_delay_ms > BENEFICIARY_ACTIVATION_DELAY_MS_MAX {
        return invalid(
            "wallets.beneficiary_activation_delay_ms".to_owned(),
            format!("at most {BENEFICIARY_ACTIVATION_DELAY_MS_MAX}"),
        );
    }
    if wallets.fee_bump_after_blocks == 0
        || wallets.fee_bump_after_blocks > FEE_BUMP_AFTER_BLOCKS_MAX
    {
        return invalid(
            "wallets.fee_bump_after_blocks".to_owned(),
            format!("outside 1 to {FEE_BUMP_AFTER_BLOCKS_MAX}"),
        );
    }
    let bumps_limit = peregrine_wallet::bumps::FEE_BUMPS_LIMIT;
    if wallets.fee_bumps_max > bumps_limit {
        return invalid(
            "wallets.fee_bumps_max".to_owned(),
            format!("at most {bumps_limit}"),
        );
    }
    if wallets.max_fee_per_gas_gwei == 0 {
        return invalid(
            "wallets.max_fee_per_gas_gwei".to_owned(),
            "must be above 0".to_owned(),
        );
    }
    if wallets.backoff_ms_max < wallets.interval_ms {
        return invalid(
            "wallets.backoff_ms_max".to_owned(),
            "must be at least interval_ms".to_owned(),
        );
    }
    Ok(())
}

/// `amount` (a decimal string) in minor units of `precision` decimals, exactly.
fn to_minor(field: &str, amount: &str, precision: u32) -> Result<u64, String> {
    let value = peregrine_hotpath::edge::parse_decimal(amount)
        .map_err(|error| format!("{field} `{amount}` {error}"))?;
    let scaled = value
        .checked_mul(rust_decimal::Decimal::from(10u64.pow(precision.min(19))))
        .filter(|scaled| scaled.fract().is_zero())
        .ok_or_else(|| format!("{field} `{amount}` is not exact in {precision} decimals"))?;
    u64::try_from(scaled).map_err(|_| format!("{field} `{amount}` is too large"))
}

/// One currency's policy in minor units of `precision` decimals.
pub fn currency_policy(
    code: &str,
    section: &WithdrawSection,
    precision: u32,
) -> Result<peregrine_wallet::policy::CurrencyPolicy, String> {
    let rules = peregrine_wallet::policy::CurrencyPolicy {
        limit_24h_minor: to_minor("limit_24h", &section.limit_24h, precision)?,
        limit_30d_minor: to_minor("limit_30d", &section.limit_30d, precision)?,
        approval_above_minor: to_minor("approval_above", &section.approval_above, precision)?,
        approvals_required: section.approvals,
    };
    // The policy's own checks (approvals 1 or 2, 30 days at least 24 hours).
    peregrine_wallet::policy::WithdrawPolicy::deny_all()
        .with(code, rules)
        .map_err(|error| error.to_string())?;
    Ok(rules)
}

/// `amount` (a decimal string) in chain units of `decimals` decimals, exactly.
pub fn to_chain_units(field: &str, amount: &str, decimals: u32) -> Result<u128, String> {
    let value = peregrine_hotpath::edge::parse_decimal(amount)
        .map_err(|error| format!("{field} `{amount}` {error}"))?;
    let (mantissa, scale) = (value.mantissa(), value.scale());
    let unsigned =
        u128::try_from(mantissa).map_err(|_| format!("{field} `{amount}` is negative"))?;
    if scale > decimals {
        return Err(format!(
            "{field} `{amount}` is not exact in {decimals} decimals"
        ));
    }
    10u128
        .checked_pow(decimals - scale)
        .and_then(|factor| unsigned.checked_mul(factor))
        .ok_or_else(|| format!("{field} `{amount}` is too large"))
}

/// One currency's tiers in chain units of `decimals` decimals: a positive `hot_max`, a warm
/// address with a positive `warm_max`, at least one of warm and cold, EIP-55 addresses.
pub fn currency_tiers(
    section: &TiersSection,
    decimals: u32,
) -> Result<peregrine_wallet::collect::Tiers, String> {
    use peregrine_wallet::chain::Address;
    let hot_max = to_chain_units("hot_max", &section.hot_max, decimals)?;
    if hot_max == 0 {
        return Err("hot_max must be above 0".to_owned());
    }
    let address = |field: &str, text: &str| -> Result<Option<Address>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        Address::parse_eip55(text)
            .map(Some)
            .ok_or_else(|| format!("{field} `{text}` is not an EIP-55 address"))
    };
    let warm = match address("warm_address", &section.warm_address)? {
        Some(warm) => {
            let most = to_chain_units("warm_max", &section.warm_max, decimals)?;
            if most == 0 {
                return Err("warm_max must be above 0".to_owned());
            }
            Some((warm, most))
        }
        None if section.warm_max.is_empty() => None,
        None => return Err("warm_max without warm_address".to_owned()),
    };
    let cold = address("cold_address", &section.cold_address)?;
    if warm.is_none() && cold.is_none() {
        return Err("a warm or a cold address is needed".to_owned());
    }
    Ok(peregrine_wallet::collect::Tiers {
        hot_max,
        warm,
        cold,
    })
}
