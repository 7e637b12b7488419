//! Checks that span more than one value, run on the whole effective configuration before
//! anything is started or written: REST keys and limits, QUIC keys and certificate files, and
//! the catalog (every market's currencies listed, units exact). A refusal names the key and
//! the layer it came from ([`Sources`]), like a parse error does.

use std::path::PathBuf;

use peregrine_gateway::quic::auth::{KeyError, KeyRegistry};
use peregrine_gateway::rest::ConfigError as RestConfigError;

use super::env::EnvOverride;
use super::error::{ConfigError, Origin};
use super::{Config, Overrides};

/// Where the layers above the defaults set values, to name the source of a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// The `PEREGRINE_*` overrides.
    pub env: Vec<EnvOverride>,
    /// Keys set by command-line flags, with the flag.
    pub flags: Vec<(&'static str, &'static str)>,
}

impl Sources {
    /// The flags of `overrides` that were given, as (key, flag).
    pub fn flags_of(overrides: &Overrides) -> Vec<(&'static str, &'static str)> {
        [
            (overrides.data_dir.is_some(), "data.dir", "--data-dir"),
            (overrides.listen.is_some(), "http.listen", "--listen"),
            (
                overrides.rest_listen.is_some(),
                "rest.listen",
                "--rest-listen",
            ),
            (
                overrides.quic_listen.is_some(),
                "quic.listen",
                "--quic-listen",
            ),
            (overrides.log_format.is_some(), "log.format", "--log-format"),
            (overrides.log_level.is_some(), "log.level", "--log-level"),
        ]
        .into_iter()
        .filter(|(given, _, _)| *given)
        .map(|(_, key, flag)| (key, flag))
        .collect()
    }

    /// The layer that set `key` (dotted, e.g. `rest.keys.0.secret`): the highest of flag,
    /// environment and file; the embedded defaults when none did.
    pub fn origin(&self, key: &str) -> Origin {
        let within = |prefix: &str| key == prefix || key.starts_with(&format!("{prefix}."));
        if let Some((_, flag)) = self.flags.iter().find(|(k, _)| within(k)) {
            return Origin::Flag {
                flag: (*flag).to_owned(),
            };
        }
        let env = self.env.iter().rev().find(|o| {
            let joined = o.key.join(".");
            within(&joined) || joined.starts_with(&format!("{key}."))
        });
        if let Some(o) = env {
            return Origin::Env { var: o.var.clone() };
        }
        match &self.file {
            Some(path) => Origin::File {
                path: path.clone(),
                line: None,
            },
            None => Origin::Defaults,
        }
    }

    /// A refusal of `key`.
    pub fn invalid(&self, key: String, reason: String) -> ConfigError {
        ConfigError::InvalidValue {
            origin: self.origin(&key),
            key,
            reason,
        }
    }
}

/// Checks the whole configuration.
pub fn validate(config: &Config, sources: &Sources) -> Result<(), ConfigError> {
    rest(config, sources)?;
    quic(config, sources)?;
    peregrine_core::catalog::Catalog::new(&config.currencies, &config.markets)
        .map_err(|e| sources.invalid("markets".to_owned(), e.to_string()))?;
    Ok(())
}

fn rest(config: &Config, sources: &Sources) -> Result<(), ConfigError> {
    let Err(error) = config.rest.validate() else {
        return Ok(());
    };
    let index_of = |name: &str| config.rest.keys.iter().position(|k| k.key == name);
    let key = match &error {
        RestConfigError::Zero(field) => format!("rest.{field}"),
        RestConfigError::BadKey(name) | RestConfigError::DuplicateKey(name) => {
            index_of(name).map_or_else(|| "rest.keys".to_owned(), |i| format!("rest.keys.{i}.key"))
        }
        RestConfigError::ShortSecret(name) => index_of(name).map_or_else(
            || "rest.keys".to_owned(),
            |i| format!("rest.keys.{i}.secret"),
        ),
        _ => "rest".to_owned(),
    };
    Err(sources.invalid(key, error.to_string()))
}

fn quic(config: &Config, sources: &Sources) -> Result<(), ConfigError> {
    let quic = &config.quic;
    if quic.cert_chain_pem.is_some() != quic.private_key_pem.is_some() {
        return Err(sources.invalid(
            "quic.cert_chain_pem".to_owned(),
            "set both cert_chain_pem and private_key_pem, or neither".to_owned(),
        ));
    }
    let Err(error) = KeyRegistry::new(&quic.keys) else {
        return Ok(());
    };
    let (field, key_id) = match &error {
        KeyError::PublicKey { key_id } => ("public_key", *key_id),
        KeyError::Duplicate(key_id) => ("key_id", *key_id),
        _ => ("key_id", u64::MAX),
    };
    // The last entry with the id: for a duplicate, the second one.
    let key = quic
        .keys
        .iter()
        .rposition(|k| k.key_id == key_id)
        .map_or_else(
            || "quic.keys".to_owned(),
            |i| format!("quic.keys.{i}.{field}"),
        );
    Err(sources.invalid(key, error.to_string()))
}
