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
    if config.auth.enabled {
        crate::identity::identity_config(&config.auth)
            .validate()
            .map_err(|reason| sources.invalid("auth".to_owned(), reason.to_owned()))?;
    }
    replication(config, sources)?;
    config
        .nats
        .validate()
        .map_err(|e| sources.invalid("nats.user".to_owned(), e.to_string()))?;
    peregrine_core::catalog::Catalog::new(&config.currencies, &config.markets)
        .map_err(|e| sources.invalid("markets".to_owned(), e.to_string()))?;
    super::wallets::validate(config, sources)?;
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

/// `[replication]` and `[standby]`: an address that parses, the TLS files a shipping or
/// following node needs, and a shipping address for `replicated` acknowledgement. Public: `up`
/// runs it again after `--standby-of`.
pub fn replication(config: &Config, sources: &Sources) -> Result<(), ConfigError> {
    let section = &config.replication;
    if section.ships() && section.listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(sources.invalid(
            "replication.listen".to_owned(),
            format!("{:?} is not an address (ip:port)", section.listen),
        ));
    }
    if config.journal.ack == super::journal::AckName::Replicated && !section.ships() {
        return Err(sources.invalid(
            "journal.ack".to_owned(),
            "\"replicated\" needs replication.listen (the address standbys connect to)".to_owned(),
        ));
    }
    if config.standby.follows_leader() {
        follow_leader(config, sources)?;
    } else if config.standby.is_standby() && !config.standby.of.contains(':') {
        return Err(sources.invalid(
            "standby.of".to_owned(),
            format!("{:?} is not host:port", config.standby.of),
        ));
    }
    let leadership = &config.leadership;
    if leadership.enabled() {
        if peregrine_standby::etcd::Etcd::new(&leadership.etcd, std::time::Duration::from_secs(1))
            .is_err()
        {
            return Err(sources.invalid(
                "leadership.etcd".to_owned(),
                "a comma-separated list of http://host:port".to_owned(),
            ));
        }
        if leadership.node.is_empty() || leadership.node.contains('/') {
            return Err(sources.invalid(
                "leadership.node".to_owned(),
                "a name unique in the pair, without '/', is needed with leadership.etcd".to_owned(),
            ));
        }
    }
    if section.ships() || config.standby.is_standby() {
        let files = [
            ("replication.ca_cert", &section.ca_cert),
            ("replication.cert", &section.cert),
            ("replication.key", &section.key),
        ];
        for (key, path) in files {
            if path.as_os_str().is_empty() {
                return Err(sources.invalid(
                    key.to_owned(),
                    "a shipping primary and a standby need the pair's CA, certificate and key"
                        .to_owned(),
                ));
            }
        }
    }
    Ok(())
}

/// `standby.of = "leader"`: the node may become either side, so it needs what both need.
fn follow_leader(config: &Config, sources: &Sources) -> Result<(), ConfigError> {
    use super::replication::NODE_PLACEHOLDER;
    if !config.leadership.enabled() {
        return Err(sources.invalid(
            "standby.of".to_owned(),
            "\"leader\" needs leadership.etcd (the lease chooses the primary)".to_owned(),
        ));
    }
    if !config.replication.ships() {
        return Err(sources.invalid(
            "standby.of".to_owned(),
            "\"leader\" needs replication.listen (a node that leads ships its journal)".to_owned(),
        ));
    }
    // The node name may itself be host:port (then the address is just "{node}").
    if !config.leadership.peer_address.contains(NODE_PLACEHOLDER) {
        return Err(sources.invalid(
            "leadership.peer_address".to_owned(),
            format!(
                "{:?} must hold {NODE_PLACEHOLDER} where the holder's node name goes",
                config.leadership.peer_address
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::config::{FileChoice, load};

    fn load_with(env: &[(&str, &str)], overrides: &Overrides) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let vars = env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect::<Vec<_>>();
        let choice = FileChoice::IfPresent(dir.path().join("absent.toml"));
        load(&choice, vars, overrides).map(|l| l.config)
    }

    #[test]
    fn a_refusal_names_the_layer_that_set_the_key() {
        // From the environment: the variable is named.
        let keys = r#"[{key = "k1", secret = "short", account = 1}]"#;
        let error = load_with(&[("PEREGRINE_REST__KEYS", keys)], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "config: invalid value for `rest.keys.0.secret` from PEREGRINE_REST__KEYS: \
             rest.keys: the secret of key `k1` must be at least 16 bytes"
        );
        let sources = Sources {
            file: Some("peregrine.toml".into()),
            env: Vec::new(),
            flags: Sources::flags_of(&Overrides {
                rest_listen: Some("127.0.0.1:1".parse().unwrap()),
                ..Overrides::default()
            }),
        };
        assert_eq!(
            sources.origin("rest.listen"),
            Origin::Flag {
                flag: "--rest-listen".to_owned()
            }
        );
        assert_eq!(
            sources.origin("rest.keys.0.secret"),
            Origin::File {
                path: "peregrine.toml".into(),
                line: None
            }
        );
        assert_eq!(Sources::default().origin("http.listen"), Origin::Defaults);
    }

    #[test]
    fn replication_needs_its_address_and_certificates() {
        let error = load_with(
            &[("PEREGRINE_JOURNAL__ACK", "replicated")],
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`journal.ack`"), "{error}");
        let error = load_with(
            &[("PEREGRINE_REPLICATION__LISTEN", "127.0.0.1:7100")],
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`replication.ca_cert`"), "{error}");
        let error = load_with(
            &[("PEREGRINE_LEADERSHIP__ETCD", "http://127.0.0.1:2379")],
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`leadership.node`"), "{error}");
        let error = load_with(
            &[("PEREGRINE_LEADERSHIP__LEASE_TTL_MS", "1500")],
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("whole seconds"), "{error}");
    }

    #[test]
    fn a_node_that_follows_the_leader_needs_etcd_shipping_and_a_peer_address() {
        let refusal = |vars: &[(&str, &str)]| {
            load_with(vars, &Overrides::default())
                .unwrap_err()
                .to_string()
        };
        let follow = ("PEREGRINE_STANDBY__OF", "leader");
        let etcd = ("PEREGRINE_LEADERSHIP__ETCD", "http://127.0.0.1:2379");
        let node = ("PEREGRINE_LEADERSHIP__NODE", "a");
        let listen = ("PEREGRINE_REPLICATION__LISTEN", "127.0.0.1:7100");
        let error = refusal(&[follow]);
        assert!(error.contains("needs leadership.etcd"), "{error}");
        let error = refusal(&[follow, etcd, node]);
        assert!(error.contains("needs replication.listen"), "{error}");
        let error = refusal(&[follow, etcd, node, listen]);
        assert!(error.contains("`leadership.peer_address`"), "{error}");
        let no_placeholder = ("PEREGRINE_LEADERSHIP__PEER_ADDRESS", "b:7100");
        let error = refusal(&[follow, etcd, node, listen, no_placeholder]);
        assert!(error.contains("`leadership.peer_address`"), "{error}");
        // With every piece, what remains missing is the pair's certificates.
        let peer = ("PEREGRINE_LEADERSHIP__PEER_ADDRESS", "{node}.pair:7100");
        let error = refusal(&[follow, etcd, node, listen, peer]);
        assert!(error.contains("`replication.ca_cert`"), "{error}");
    }
}
