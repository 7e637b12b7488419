//! Log set-up: `tracing` to stderr, human-readable or JSON lines. Stdout stays free for
//! command output (`up`'s summary, `--print-config`, bench reports).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Environment variable with full filter directives (`info,peregrine=debug`).
pub const RUST_LOG: &str = "RUST_LOG";

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("config: invalid value for {RUST_LOG}: {0}")]
    Filter(String),
    #[error("cannot install the log subscriber: {0}")]
    Install(String),
}

/// Where the filter comes from, highest precedence first: `--log-level`, then `RUST_LOG`,
/// then `log.level` from the file or `PEREGRINE_LOG__LEVEL`.
pub fn filter(
    config: &LogConfig,
    level_flag_given: bool,
    rust_log: Option<&str>,
) -> Result<EnvFilter, LoggingError> {
    match rust_log.filter(|directives| !level_flag_given && !directives.trim().is_empty()) {
        Some(directives) => {
            EnvFilter::try_new(directives).map_err(|e| LoggingError::Filter(e.to_string()))
        }
        None => EnvFilter::try_new(config.level.as_str())
            .map_err(|e| LoggingError::Filter(e.to_string())),
    }
}

/// Installs the global subscriber.
pub fn init(format: LogFormat, filter: EnvFilter) -> Result<(), LoggingError> {
    // Colours only on a terminal: escape codes in a captured log file are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| LoggingError::Install(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogLevel;

    #[test]
    fn precedence_flag_then_rust_log_then_config() {
        let config = LogConfig {
            level: LogLevel::Warn,
            ..LogConfig::default()
        };
        assert_eq!(filter(&config, false, None).unwrap().to_string(), "warn");
        assert_eq!(
            filter(&config, false, Some("debug")).unwrap().to_string(),
            "debug"
        );
        assert_eq!(
            filter(&config, true, Some("debug")).unwrap().to_string(),
            "warn"
        );
        assert_eq!(
            filter(&config, false, Some("  ")).unwrap().to_string(),
            "warn"
        );
        assert!(filter(&config, false, Some("[[[")).is_err());
    }
}
