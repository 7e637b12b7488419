//! `[control]`: the operators' control API on the operator HTTP listener (`/control/v1`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `[control]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Serve `/control/v1` on the `[http]` listener.
    pub enabled: bool,
    /// File holding the bearer token operators present. Relative paths are relative to the
    /// data directory. Created with a fresh random token (mode 0600) if missing.
    pub token_file: PathBuf,
    /// File holding the wallet daemons' bearer token, which credits chain deposits only (ids
    /// from 2^62). Relative to the data directory; made like `token_file`. Empty: no wallet
    /// token, the appliance takes no chain deposits.
    pub wallet_token_file: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token_file: PathBuf::from("control.token"),
            wallet_token_file: PathBuf::from("wallet.token"),
        }
    }
}
