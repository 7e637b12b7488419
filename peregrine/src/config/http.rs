//! `[http]`: the operator HTTP server (health checks and metrics).

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Deserializer, Serialize};

/// Upper bound for `http.shutdown_timeout_ms`: a stop that waits longer than this for open
/// connections is indistinguishable from a hang to the supervisor that sent SIGTERM.
pub const SHUTDOWN_TIMEOUT_MS_MAX: u64 = 60_000;

/// The `[http]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the health/metrics server binds. Port 0 picks a free port (printed at start).
    pub listen: SocketAddr,
    /// How long a graceful stop waits for in-flight requests before closing them.
    #[serde(deserialize_with = "shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            // Loopback by default: exposing metrics beyond the host is an explicit decision.
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            shutdown_timeout_ms: 5_000,
        }
    }
}

fn shutdown_timeout_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    if value > SHUTDOWN_TIMEOUT_MS_MAX {
        return Err(serde::de::Error::custom(format!(
            "{value} is above the maximum of {SHUTDOWN_TIMEOUT_MS_MAX}"
        )));
    }
    Ok(value)
}
