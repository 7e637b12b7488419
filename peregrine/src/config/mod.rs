//! The appliance's configuration: embedded defaults, then one TOML file, then `PEREGRINE_*`
//! environment overrides, then command-line flags. Later layers win.
//!
//! Parsing is validation: every section is a typed struct with `deny_unknown_fields`, so a
//! [`Config`] that exists is usable, and a refused one yields a one-line [`ConfigError`] naming
//! the key, where the value came from, and why.
//!
//! # Adding a section
//!
//! 1. Add `config/<name>.rs` with a `<Name>Config` struct deriving `Debug, Clone, PartialEq,
//!    Serialize, Deserialize` with `#[serde(deny_unknown_fields, default)]` and an
//!    `impl Default` holding the embedded defaults. Prefer typed fields (`SocketAddr`,
//!    `PathBuf`, enums, `*_ms` integers) and `deserialize_with` for ranges, so a bad value is
//!    refused here, with its key, rather than later.
//! 2. Add `pub <name>: <Name>Config` to [`Config`].
//! 3. Document every key with its default in `peregrine.example.toml`; the test
//!    `example_file_equals_defaults` keeps the two in step.
//!
//! Environment overrides (`PEREGRINE_<NAME>__<KEY>`), `--print-config` and error messages then
//! work without further code. Add a CLI flag only for keys an operator changes per run.

pub mod auth;
pub mod bridge;
pub mod catalog;
pub mod control;
pub mod data;
pub mod env;
pub mod error;
pub mod fanout;
pub mod hotpath;
pub mod http;
pub mod journal;
pub mod log;
pub mod nats;
pub mod quic;
pub mod replica;
pub mod replication;
pub mod validate;
pub mod wallets;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use auth::AuthSection;
pub use bridge::BridgeSection;
pub use control::ControlConfig;
pub use data::DataConfig;
pub use env::{ENV_PREFIX, EnvOverride};
pub use error::{ConfigError, Origin};
pub use fanout::FanoutSection;
pub use hotpath::HotpathConfig;
pub use http::HttpConfig;
pub use journal::JournalSection;
pub use log::{LogConfig, LogFormat, LogLevel};
pub use nats::NatsSection;
pub use quic::QuicConfig;
pub use replica::ReplicaSection;
pub use replication::{LeadershipSection, ReplicationSection, StandbySection};
pub use validate::Sources;

/// File read when `--config` is not given, relative to the working directory, if it exists.
pub const DEFAULT_FILE: &str = "peregrine.toml";

/// Bound on the configuration file size: a configuration is a few hundred bytes; anything
/// near this is the wrong file, and reading it whole would be unbounded.
pub const FILE_SIZE_MAX_BYTES: u64 = 1024 * 1024;

/// The whole configuration. Each field is one `[section]` of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data: DataConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub journal: JournalSection,
    pub hotpath: HotpathConfig,
    pub quic: QuicConfig,
    pub control: ControlConfig,
    pub replica: ReplicaSection,
    /// `[replication]`: shipping the journal to hot standbys (see [`replication`]).
    pub replication: ReplicationSection,
    /// `[standby]`: following a primary instead of trading (see [`replication`]).
    pub standby: StandbySection,
    /// `[leadership]`: the pair's etcd lease (see [`replication`]).
    pub leadership: LeadershipSection,
    /// `[fanout]`: publishing to NATS JetStream (see [`fanout`]).
    pub fanout: FanoutSection,
    /// `[bridge]`: a bridge node fed by the stream (see [`bridge`]).
    pub bridge: BridgeSection,
    /// `[nats]`: TLS and credentials for `[fanout]` and `[bridge]` (see [`nats`]).
    pub nats: NatsSection,
    /// `[rest]`: the retail REST/WebSocket bridge (see `peregrine_gateway::rest`).
    pub rest: peregrine_gateway::rest::RestConfig,
    /// `[auth]`: the identity service (see [`auth`]).
    pub auth: AuthSection,
    /// `[[currencies]]`: see [`catalog`].
    pub currencies: Vec<peregrine_core::catalog::CurrencyDef>,
    /// `[[markets]]`: see [`catalog`].
    pub markets: Vec<peregrine_core::catalog::MarketDef>,
    /// `[wallets]`: chain deposits (see [`wallets`]).
    pub wallets: wallets::WalletsSection,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data: DataConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            journal: JournalSection::default(),
            hotpath: HotpathConfig::default(),
            quic: QuicConfig::default(),
            control: ControlConfig::default(),
            replica: ReplicaSection::default(),
            replication: ReplicationSection::default(),
            standby: StandbySection::default(),
            leadership: LeadershipSection::default(),
            fanout: FanoutSection::default(),
            bridge: BridgeSection::default(),
            nats: NatsSection::default(),
            rest: peregrine_gateway::rest::RestConfig::default(),
            auth: AuthSection::default(),
            currencies: catalog::default_currencies(),
            markets: catalog::default_markets(),
            wallets: wallets::WalletsSection::default(),
        }
    }
}

/// Values from command-line flags; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub rest_listen: Option<SocketAddr>,
    pub quic_listen: Option<SocketAddr>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<LogLevel>,
}

/// Which file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChoice {
    /// `--config FILE`: must exist.
    Explicit(PathBuf),
    /// No `--config`: read this file if it exists ([`DEFAULT_FILE`] in practice).
    IfPresent(PathBuf),
}

/// The effective configuration, the file it came from (if any), and where each layer set
/// values (to name a key's source in later refusals, e.g. a port in use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
    pub sources: Sources,
}

/// What `--print-config` shows instead of a secret.
pub const REDACTED: &str = "<redacted>";

impl Config {
    /// The configuration as TOML, as `--print-config` shows it: secrets are redacted (a
    /// printed configuration ends up in terminals, tickets and chat logs).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let mut shown = self.clone();
        for key in &mut shown.rest.keys {
            key.secret = REDACTED.to_owned();
        }
        toml::to_string(&shown).map_err(|e| ConfigError::Print(error::one_line(&e.to_string())))
    }
}

/// Builds the effective configuration: defaults, then the file, then `env` (the process
/// environment in production; only `PEREGRINE_*` variables are read), then `overrides`; and
/// checks it whole ([`validate`]).
pub fn load(
    file: &FileChoice,
    env: impl IntoIterator<Item = (OsString, OsString)>,
    overrides: &Overrides,
) -> Result<Loaded, ConfigError> {
    let (file_path, text) = match file {
        FileChoice::Explicit(path) => (Some(path.clone()), Some(read_file(path)?)),
        FileChoice::IfPresent(path) if path.exists() => {
            (Some(path.clone()), Some(read_file(path)?))
        }
        FileChoice::IfPresent(_) => (None, None),
    };

    // Layer 1+2: the file over the defaults. Validated on its own first so an error names the
    // file and line rather than an environment variable.
    let mut table = match (&file_path, &text) {
        (Some(path), Some(text)) => parse_file(path, text)?,
        _ => toml::Table::new(),
    };

    // Layer 3: environment overrides, typed against the defaults.
    let env_overrides = env::collect_overrides(env)?;
    let defaults = defaults_table()?;
    for o in &env_overrides {
        let value = coerce_env_value(&o.value, lookup(&defaults, &o.key));
        insert(&mut table, &o.key, value).map_err(|reason| ConfigError::Env {
            var: o.var.clone(),
            reason,
        })?;
    }
    let mut config = deserialize_merged(table, &env_overrides, file_path.as_deref())?;

    // Layer 4: flags, already typed by clap.
    let Overrides {
        data_dir,
        listen,
        rest_listen,
        quic_listen,
        log_format,
        log_level,
    } = overrides.clone();
    if let Some(listen) = rest_listen {
        config.rest.listen = listen;
    }
    if let Some(listen) = quic_listen {
        config.quic.listen = listen;
    }
    if let Some(dir) = data_dir {
        config.data.dir = dir;
    }
    if let Some(listen) = listen {
        config.http.listen = listen;
    }
    if let Some(format) = log_format {
        config.log.format = format;
    }
    if let Some(level) = log_level {
        config.log.level = level;
    }
    let sources = Sources {
        file: file_path.clone(),
        env: env_overrides,
        flags: Sources::flags_of(overrides),
    };
    // The whole configuration, before anything is started or written.
    validate::validate(&config, &sources)?;
    Ok(Loaded {
        config,
        file: file_path,
        sources,
    })
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let size_bytes = std::fs::metadata(path).map_err(read_err)?.len();
    if size_bytes > FILE_SIZE_MAX_BYTES {
        return Err(read_err(std::io::Error::other(format!(
            "{size_bytes} bytes is above the limit of {FILE_SIZE_MAX_BYTES}"
        ))));
    }
    std::fs::read_to_string(path).map_err(read_err)
}

/// Parses and validates the file alone; returns it as a table for the later layers.
fn parse_file(path: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    let syntax = |e: toml::de::Error| ConfigError::Syntax {
        path: path.to_owned(),
        line: e.span().map(|span| line_of(text, span.start)),
        message: error::one_line(e.message()),
    };
    let deserializer = toml::Deserializer::parse(text).map_err(syntax)?;
    serde_path_to_error::deserialize::<_, Config>(deserializer).map_err(|e| {
        let line = e.inner().span().map(|span| line_of(text, span.start));
        key_error(
            e,
            Origin::File {
                path: path.to_owned(),
                line,
            },
        )
    })?;
    text.parse::<toml::Table>().map_err(syntax)
}

/// Deserializes the merged table; an error here comes from an environment override (the file
/// alone was valid): the one whose key shares the longest prefix with the error's key.
fn deserialize_merged(
    table: toml::Table,
    env_overrides: &[EnvOverride],
    file: Option<&Path>,
) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(table)).map_err(|e| {
        let key = key_path(e.path());
        let origin = env_overrides
            .iter()
            // Either way round: `PEREGRINE_HTTP__LISTEN__PORT` fails at `http.listen`.
            .filter(|o| key.starts_with(&o.key) || o.key.starts_with(&key))
            .max_by_key(|o| o.key.len().min(key.len()))
            .map(|o| Origin::Env { var: o.var.clone() })
            // Unreachable in practice (the file was validated alone); name the file anyway.
            .unwrap_or_else(|| Origin::File {
                path: file.unwrap_or(Path::new(DEFAULT_FILE)).to_owned(),
                line: None,
            });
        key_error(e, origin)
    })
}

fn key_error(e: serde_path_to_error::Error<toml::de::Error>, origin: Origin) -> ConfigError {
    let key = key_path(e.path()).join(".");
    let message = error::one_line(e.inner().message());
    match error::unknown_field_expected(&message) {
        Some(expected) => ConfigError::UnknownKey {
            origin,
            key,
            expected,
        },
        None => ConfigError::InvalidValue {
            origin,
            key,
            reason: message,
        },
    }
}

fn key_path(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .map(|segment| match segment {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } => key.clone(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => "?".to_owned(),
        })
        .collect()
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

fn defaults_table() -> Result<toml::Table, ConfigError> {
    toml::Table::try_from(Config::default())
        .map_err(|e| ConfigError::Print(error::one_line(&e.to_string())))
}

fn lookup<'a>(table: &'a toml::Table, key: &[String]) -> Option<&'a toml::Value> {
    let (last, parents) = key.split_last()?;
    let mut table = table;
    for part in parents {
        table = table.get(part)?.as_table()?;
    }
    table.get(last)
}

/// Environment values are strings; the default at the same key says which TOML type to read
/// them as, so `PEREGRINE_HTTP__SHUTDOWN_TIMEOUT_MS=100` is an integer and
/// `PEREGRINE_HTTP__LISTEN=127.0.0.1:1` a string. A value that does not parse as the expected
/// type stays a string, and deserialization then names the key and the expected type. Keys
/// without a default (optional ones) take an integer or boolean when the text is one.
fn coerce_env_value(raw: &str, default: Option<&toml::Value>) -> toml::Value {
    let text = || toml::Value::String(raw.to_owned());
    let as_integer = || raw.parse::<i64>().ok().map(toml::Value::Integer);
    let as_boolean = || raw.parse::<bool>().ok().map(toml::Value::Boolean);
    match default {
        Some(toml::Value::Integer(_)) => as_integer().unwrap_or_else(text),
        Some(toml::Value::Float(_)) => raw
            .parse::<f64>()
            .ok()
            .map(toml::Value::Float)
            .unwrap_or_else(text),
        Some(toml::Value::Boolean(_)) => as_boolean().unwrap_or_else(text),
        Some(toml::Value::Array(_)) => format!("value = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("value"))
            .unwrap_or_else(text),
        Some(_) => text(),
        None => as_integer().or_else(as_boolean).unwrap_or_else(text),
    }
}

/// Sets `key` in `table`, creating intermediate sections; refuses to descend into a value
/// that is not a section.
fn insert(table: &mut toml::Table, key: &[String], value: toml::Value) -> Result<(), String> {
    let Some((last, parents)) = key.split_last() else {
        return Err("names no key".to_owned());
    };
    let mut table = table;
    for (depth, part) in parents.iter().enumerate() {
        let entry = table
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(format!("`{}` is not a section", key[..=depth].join("."))),
        };
    }
    table.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peregrine.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let (_dir, path) = write_config(text);
        load(
            &FileChoice::Explicit(path),
            env(vars),
            &Overrides::default(),
        )
        .map(|l| l.config)
    }

    #[test]
    fn example_file_equals_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../peregrine.example.toml");
        let loaded = load(&FileChoice::Explicit(path), env(&[]), &Overrides::default()).unwrap();
        assert_eq!(loaded.config, Config::default());
    }

    #[test]
    fn no_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let choice = FileChoice::IfPresent(dir.path().join(DEFAULT_FILE));
        let loaded = load(&choice, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                config: Config::default(),
                file: None,
                sources: Sources::default(),
            }
        );
    }

    #[test]
    fn explicit_file_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let choice = FileChoice::Explicit(dir.path().join("missing.toml"));
        let err = load(&choice, env(&[]), &Overrides::default()).unwrap_err();
        assert!(
            err.to_string().contains("missing.toml: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn precedence_is_file_then_env_then_flags() {
        let (_dir, path) = write_config(
            "[http]\nlisten = \"127.0.0.1:1000\"\nshutdown_timeout_ms = 7\n[log]\nlevel = \"warn\"\n",
        );
        let vars = env(&[
            ("PEREGRINE_HTTP__LISTEN", "127.0.0.1:2000"),
            ("PEREGRINE_LOG__FORMAT", "json"),
        ]);
        let flags = Overrides {
            listen: Some("127.0.0.1:3000".parse().unwrap()),
            rest_listen: Some("127.0.0.1:3001".parse().unwrap()),
            quic_listen: Some("127.0.0.1:3002".parse().unwrap()),
            ..Overrides::default()
        };
        let config = load(&FileChoice::Explicit(path), vars, &flags)
            .unwrap()
            .config;
        assert_eq!(
            config.http.listen,
            "127.0.0.1:3000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(config.http.shutdown_timeout_ms, 7);
        assert_eq!(
            config.rest.listen,
            "127.0.0.1:3001".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            config.quic.listen,
            "127.0.0.1:3002".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.level, LogLevel::Warn);
        assert_eq!(config.data, DataConfig::default());
    }

    #[test]
    fn env_integers_are_typed() {
        let config = load_text("", &[("PEREGRINE_HTTP__SHUTDOWN_TIMEOUT_MS", "250")]).unwrap();
        assert_eq!(config.http.shutdown_timeout_ms, 250);
    }

    #[test]
    fn unknown_file_key_names_key_line_and_choices() {
        let err = load_text("[http]\nlisen = \"127.0.0.1:1\"\n", &[]).unwrap_err();
        let message = err.to_string();
        assert!(message.ends_with(
            "peregrine.toml:2: unknown key `http.lisen` (expected one of: listen, \
             shutdown_timeout_ms)"
        ));
        assert!(!message.contains('\n'));
    }

    #[test]
    fn unknown_section_is_refused() {
        let err = load_text("[jornal]\nack = \"fast\"\n", &[]).unwrap_err();
        assert!(
            err.to_string().contains(
                "unknown key `jornal` (expected one of: data, http, log, journal, hotpath, \
                 quic, control, replica, replication, standby, leadership, fanout, bridge, nats, \
                 rest, auth, currencies, markets, wallets)"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_fanout_stream_or_prefix_that_would_change_subjects_is_refused() {
        for text in [
            "[fanout]\nstream = \"a.b\"\n",
            "[fanout]\nstream = \"\"\n",
            "[fanout]\nprefix = \"a.b\"\n",
            "[fanout]\nprefix = \"md>\"\n",
        ] {
            let err = load_text(text, &[]).unwrap_err();
            assert!(err.to_string().contains("fanout."), "{text}: {err}");
        }
        let config = load_text("[fanout]\nenabled = true\nprefix = \"ex-1\"\n", &[]).unwrap();
        assert!(config.fanout.enabled);
        assert_eq!(config.fanout.prefix, "ex-1");
    }

    #[test]
    fn invalid_file_value_names_key_and_reason() {
        let err = load_text("[http]\nlisten = \"nope\"\n", &[]).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "peregrine.toml:2: invalid value for `http.listen`: invalid socket address syntax"
            ),
            "{err}"
        );
        let err = load_text("[log]\nformat = \"xml\"\n", &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid value for `log.format`: unknown variant `xml`")
        );
        let err = load_text("[http]\nshutdown_timeout_ms = 999999\n", &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("`http.shutdown_timeout_ms`: 999999 is above"),
            "{err}"
        );
        let err = load_text("[data]\ndir = \"\"\n", &[]).unwrap_err();
        assert!(
            err.to_string().contains("`data.dir`: must not be empty"),
            "{err}"
        );
    }

    #[test]
    fn journal_writer_placement_reaches_the_journal() {
        let config = load_text(
            "[journal]\ncore = 1\n",
            &[("PEREGRINE_JOURNAL__IDLE", "spin")],
        )
        .unwrap();
        let journal = crate::exchange::journal_config(&config, std::path::Path::new("j"));
        assert_eq!(journal.writer_core, Some(1));
        assert_eq!(journal.writer_idle, peregrine_persist::WriterIdle::Spin);
        let defaults =
            crate::exchange::journal_config(&Config::default(), std::path::Path::new("j"));
        assert_eq!(defaults.writer_core, None);
        assert_eq!(defaults.writer_idle, peregrine_persist::WriterIdle::Park);
        let err = load_text("[journal]\nidle = \"poll\"\n", &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid value for `journal.idle`: unknown variant `poll`"),
            "{err}"
        );
    }

    #[test]
    fn invalid_env_value_names_key_and_variable() {
        let err = load_text("", &[("PEREGRINE_HTTP__LISTEN", "nope")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config: invalid value for `http.listen` from PEREGRINE_HTTP__LISTEN: invalid socket \
             address syntax"
        );
        let err = load_text("", &[("PEREGRINE_HTTP__SHUTDOWN_TIMEOUT_MS", "soon")]).unwrap_err();
        assert!(
            err.to_string().contains("`http.shutdown_timeout_ms` from"),
            "{err}"
        );
    }

    #[test]
    fn unknown_env_key_names_variable() {
        let err = load_text("", &[("PEREGRINE_HTTP__LISEN", "x")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config: unknown key `http.lisen` from PEREGRINE_HTTP__LISEN (expected one of: \
             listen, shutdown_timeout_ms)"
        );
        let err = load_text("", &[("PEREGRINE_HTTP__LISTEN__PORT", "1")]).unwrap_err();
        assert!(
            err.to_string().contains("PEREGRINE_HTTP__LISTEN__PORT"),
            "{err}"
        );
    }

    #[test]
    fn syntax_error_names_line() {
        let err = load_text("[http]\nlisten = \n", &[]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("peregrine.toml:2: invalid TOML:"),
            "{message}"
        );
        assert!(!message.contains('\n'));
    }

    #[test]
    fn printed_config_parses_back() {
        let config = Config::default();
        let text = config.to_toml().unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), config);
    }
}
