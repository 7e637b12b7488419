//! `[data]`: where the appliance keeps everything it persists.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

/// The `[data]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Directory for all persistent state; created at start if missing. Relative paths are
    /// relative to the working directory.
    #[serde(deserialize_with = "non_empty_path")]
    pub dir: PathBuf,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data"),
        }
    }
}

/// Refuses `dir = ""` at parse time: an empty path would otherwise surface later as an
/// unhelpful "No such file or directory" from `create_dir_all`.
fn non_empty_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    let path = PathBuf::deserialize(deserializer)?;
    if path.as_os_str().is_empty() {
        return Err(serde::de::Error::custom("must not be empty"));
    }
    Ok(path)
}
