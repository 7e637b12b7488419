//! `[control]`: the operators' control API on the operator HTTP listener (`/control/v1`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `[control]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Serve `/control/v1` on the `[http]` listener.
    pub enabled: bool,
    /// File holding the host-only break-glass token: accepted only from a loopback address,
    /// every use audited as `break_glass`, never for the four-eyes steps. Operators use their
    /// own access tokens; this is for the host's scripts and for when identity cannot issue
    /// tokens. Relative paths are relative to the data directory. Created with a fresh random
    /// token (mode 0600) if missing. Empty: no break-glass token.
    pub break_glass_token_file: PathBuf,
    /// File holding the wallet daemons' bearer token, which credits chain deposits only (ids
    /// from 2^62). Relative to the data directory; made like the break-glass token. Empty: no
    /// wallet token, the appliance takes no chain deposits.
    pub wallet_token_file: PathBuf,
    /// How often the fee-tier job places accounts in the fee volume tiers in force
    /// (`/control/v1/fee-tiers`), ms; it needs `[replica]` and identity. 0: never.
    pub fee_tier_interval_ms: u64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            break_glass_token_file: PathBuf::from("break-glass.token"),
            wallet_token_file: PathBuf::from("wallet.token"),
            fee_tier_interval_ms: 60_000,
        }
    }
}
