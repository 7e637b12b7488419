//! Log set-up: `tracing` to stderr, human-readable or JSON lines. Stdout stays free for
//! command output (`up`'s summary, `--print-config`, bench reports).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Sets up logging for a command that runs the appliance's parts: the filter from `config`,
/// `RUST_LOG` in `env` and whether `--log-level` was given (see [`filter`]), then [`init`].
pub fn init_for(
    config: &LogConfig,
    level_flag_given: bool,
    env: &[(std::ffi::OsString, std::ffi::OsString)],
) -> Result<(), LoggingError> {
    let rust_log = match env.iter().find(|(name, _)| name == RUST_LOG) {
        None => None,
        Some((_, value)) => Some(
            value
                .to_str()
                .ok_or_else(|| LoggingError::Filter("value is not valid UTF-8".to_owned()))?,
        ),
    };
    init(config.format, filter(config, level_flag_given, rust_log)?)
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

/// Log lines that could not be written (stderr full, closed or failing) since start.
static LINES_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped so far because stderr refused them (`peregrine_log_lines_dropped_total`).
pub fn lines_dropped() -> u64 {
    LINES_DROPPED.load(Ordering::Relaxed)
}

/// Stderr that never fails: a line it cannot write is dropped and counted. Logging must never
/// stop the thread that logs. tracing-subscriber reports a failed write with `eprintln!`, which
/// panics when stderr itself fails (a full disk under a redirected log), so a failure never
/// reaches it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::io::stderr().lock().write_all(buf).is_err() {
            LINES_DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Best effort: an unflushed line is a dropped line, counted when its write failed.
        let _ = std::io::stderr().lock().flush();
        Ok(())
    }
}

/// Installs the global subscriber.
pub fn init(format: LogFormat, filter: EnvFilter) -> Result<(), LoggingError> {
    // Colours only on a terminal: escape codes in a captured log file are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .log_internal_errors(false)
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
