//! `[replica]`: asynchronous replication of the journal into SQL for history and reporting.

use serde::{Deserialize, Deserializer, Serialize};

/// Bound on `replica.ready_lag_max_ms`: a day.
pub const READY_LAG_MAX_MS_MAX: u64 = 86_400_000;

/// The `[replica]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicaSection {
    /// Replicate the journal into `url`.
    pub enabled: bool,
    /// `mysql://user:password@host:port/database` (production) or `sqlite://path`. Empty: the
    /// embedded SQLite file `<data.dir>/replica.db`.
    pub url: String,
    /// `/health/ready` fails while the oldest unreplicated command is older than this.
    #[serde(deserialize_with = "ready_lag_max_ms")]
    pub ready_lag_max_ms: u64,
}

impl Default for ReplicaSection {
    fn default() -> Self {
        Self {
            enabled: true,
            url: String::new(),
            ready_lag_max_ms: 10_000,
        }
    }
}

impl ReplicaSection {
    /// The database URL, with the embedded default resolved against `data_dir`.
    pub fn database_url(&self, data_dir: &std::path::Path) -> String {
        if self.url.is_empty() {
            format!("sqlite://{}", data_dir.join("replica.db").display())
        } else {
            self.url.clone()
        }
    }
}

fn ready_lag_max_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    if value == 0 || value > READY_LAG_MAX_MS_MAX {
        return Err(serde::de::Error::custom(format!(
            "{value} is outside 1 to {READY_LAG_MAX_MS_MAX}"
        )));
    }
    Ok(value)
}
