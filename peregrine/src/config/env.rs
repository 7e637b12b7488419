//! `PEREGRINE_*` environment overrides: `PEREGRINE_HTTP__LISTEN=127.0.0.1:9090` sets
//! `http.listen`. `__` separates nesting levels; a single `_` stays part of the key
//! (`PEREGRINE_HTTP__SHUTDOWN_TIMEOUT_MS`). Every `PEREGRINE_*` variable is a configuration key:
//! one that names no key is refused like an unknown key in the file, so a typo never silently
//! does nothing.

use std::ffi::OsString;

use super::error::ConfigError;

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "PEREGRINE_";

/// Separator between nesting levels in a variable name.
pub const ENV_NESTING_SEPARATOR: &str = "__";

/// Bound on nesting depth: sections are one level deep today; a deeper name is a typo.
const KEY_DEPTH_MAX: usize = 4;

/// One override taken from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOverride {
    /// The variable, for error messages (`PEREGRINE_HTTP__LISTEN`).
    pub var: String,
    /// The key path it sets (`["http", "listen"]`).
    pub key: Vec<String>,
    /// The raw value; typed later against the defaults (see `super::coerce_env_value`).
    pub value: String,
}

/// Picks the `PEREGRINE_*` variables out of `vars`, sorted by name so the first error reported
/// does not depend on the environment's order.
pub fn collect_overrides(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Vec<EnvOverride>, ConfigError> {
    let mut overrides = Vec::new();
    for (name, value) in vars {
        // A name that is not UTF-8 cannot spell a key; it is not ours.
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key: Vec<String> = rest
            .split(ENV_NESTING_SEPARATOR)
            .map(str::to_ascii_lowercase)
            .collect();
        if key.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var: name.to_owned(),
                reason: format!(
                    "expected PEREGRINE_<SECTION>{ENV_NESTING_SEPARATOR}<KEY>, e.g. \
                     PEREGRINE_HTTP__LISTEN"
                ),
            });
        }
        if key.len() > KEY_DEPTH_MAX {
            return Err(ConfigError::Env {
                var: name.to_owned(),
                reason: format!("nested deeper than {KEY_DEPTH_MAX} levels"),
            });
        }
        let Some(value) = value.to_str() else {
            return Err(ConfigError::Env {
                var: name.to_owned(),
                reason: "value is not valid UTF-8".to_owned(),
            });
        };
        overrides.push(EnvOverride {
            var: name.to_owned(),
            key,
            value: value.to_owned(),
        });
    }
    overrides.sort_by(|a, b| a.var.cmp(&b.var));
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn names_map_to_key_paths() {
        let overrides = collect_overrides(vars(&[
            ("PATH", "/bin"),
            ("PEREGRINE_HTTP__SHUTDOWN_TIMEOUT_MS", "10"),
            ("PEREGRINE_HTTP__LISTEN", "127.0.0.1:9090"),
        ]))
        .unwrap();
        assert_eq!(overrides.len(), 2);
        assert_eq!(overrides[0].key, ["http", "listen"]);
        assert_eq!(overrides[1].key, ["http", "shutdown_timeout_ms"]);
    }

    #[test]
    fn empty_segments_are_refused() {
        let err = collect_overrides(vars(&[("PEREGRINE_HTTP____LISTEN", "x")])).unwrap_err();
        assert!(
            err.to_string().contains("PEREGRINE_HTTP____LISTEN"),
            "{err}"
        );
    }
}
