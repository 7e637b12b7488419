//! Why a configuration was refused, as one line that names the key, where it came from, and
//! the reason.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A key in the configuration file; `line` is 1-based when the parser reported a position.
    File { path: PathBuf, line: Option<usize> },
    /// A `PEREGRINE_*` environment variable.
    Env { var: String },
    /// A command-line flag (`--rest-listen`).
    Flag { flag: String },
    /// The embedded defaults (no layer above set it).
    Defaults,
}

/// A configuration that cannot be used. `Display` is a single line, without the `error: `
/// prefix that `main` adds.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("config {}: invalid TOML: {message}", at(path, *line))]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },

    #[error("{}", KeyMessage { origin, key, what: KeyProblem::Unknown { expected } })]
    UnknownKey {
        origin: Origin,
        key: String,
        expected: String,
    },

    #[error("{}", KeyMessage { origin, key, what: KeyProblem::Invalid { reason } })]
    InvalidValue {
        origin: Origin,
        key: String,
        reason: String,
    },

    #[error("config: environment variable {var}: {reason}")]
    Env { var: String, reason: String },

    #[error("config: cannot print as TOML: {0}")]
    Print(String),
}

fn at(path: &std::path::Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

enum KeyProblem<'a> {
    Unknown { expected: &'a str },
    Invalid { reason: &'a str },
}

struct KeyMessage<'a> {
    origin: &'a Origin,
    key: &'a str,
    what: KeyProblem<'a>,
}

impl fmt::Display for KeyMessage<'_> {
    /// File: `config peregrine.toml:3: unknown key `http.lisen` (expected one of: listen)`.
    /// Env:  `config: invalid value for `http.listen` from PEREGRINE_HTTP__LISTEN: <reason>`.
    /// Flag: `config: invalid value for `rest.listen` from --rest-listen: <reason>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (head, from) = match self.origin {
            Origin::File { path, line } => (format!("config {}", at(path, *line)), String::new()),
            Origin::Env { var } => ("config".to_owned(), format!(" from {var}")),
            Origin::Flag { flag } => ("config".to_owned(), format!(" from {flag}")),
            Origin::Defaults => (
                "config".to_owned(),
                " from the embedded defaults".to_owned(),
            ),
        };
        let key = self.key;
        match self.what {
            KeyProblem::Unknown { expected } => {
                write!(
                    f,
                    "{head}: unknown key `{key}`{from} (expected one of: {expected})"
                )
            }
            KeyProblem::Invalid { reason } => {
                write!(f, "{head}: invalid value for `{key}`{from}: {reason}")
            }
        }
    }
}

/// Flattens a parser message to one line: the TOML parser and serde may embed newlines.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits serde's `unknown field `x`, expected one of `a`, `b`` into the expected key list
/// (`a, b`), or `None` when `message` is not an unknown-field message.
pub(crate) fn unknown_field_expected(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (_field, expected) = rest.split_once("`, ")?;
    let expected = expected
        .strip_prefix("expected one of ")
        .or_else(|| expected.strip_prefix("expected "))?;
    if expected == "there are no fields" {
        return Some("no keys".to_owned());
    }
    Some(expected.replace('`', "").replace(" or ", ", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_lists_are_reformatted() {
        let one = unknown_field_expected("unknown field `lisen`, expected `listen`");
        assert_eq!(one.as_deref(), Some("listen"));
        let two = unknown_field_expected("unknown field `x`, expected `a` or `b`");
        assert_eq!(two.as_deref(), Some("a, b"));
        let many = unknown_field_expected("unknown field `x`, expected one of `a`, `b`, `c`");
        assert_eq!(many.as_deref(), Some("a, b, c"));
        assert_eq!(unknown_field_expected("invalid type: integer `1`"), None);
    }

    #[test]
    fn messages_are_one_line() {
        assert_eq!(one_line("a\n  b\tc\n"), "a b c");
    }
}
