//! Why the dev store did not start, or could not keep a change.

use std::path::PathBuf;

/// A failure of the dev store itself (its files, its socket), as opposed to a refused request,
/// which is an HTTP answer in OpenBao's shape.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevSecretsError {
    /// A file or directory could not be read or written.
    #[error("dev secret store: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The loopback listener could not be opened.
    #[error("dev secret store: cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    /// Another process holds the directory (two stores writing one state would lose changes).
    #[error("dev secret store: {0} is in use by another process")]
    InUse(PathBuf),
    /// The master key file is readable by others than its owner.
    #[error("dev secret store: {path} has mode {mode:o}; it must be 0600 (owner only)")]
    MasterKeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The master key file does not hold exactly 32 bytes.
    #[error("dev secret store: {path} holds {len} bytes, not a 32-byte master key")]
    MasterKeyLength {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// A state file exists but its master key does not: the state cannot be opened, and a new
    /// key would make it unreadable for good, so nothing is created.
    #[error("dev secret store: {state} exists but its master key {key} is missing")]
    MasterKeyMissing {
        /// The state file.
        state: PathBuf,
        /// The key file expected beside it.
        key: PathBuf,
    },
    /// The state was sealed under another master key.
    #[error("dev secret store: {0} was sealed with another master key")]
    WrongMasterKey(PathBuf),
    /// The state file fails its authentication: changed, truncated or corrupt.
    #[error("dev secret store: {0} is tampered with or corrupt (authentication failed)")]
    StateTampered(PathBuf),
    /// The state file opened but is not a state this version understands.
    #[error("dev secret store: {path} is malformed: {what}")]
    StateMalformed {
        /// The state file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// The state file is larger than [`crate::STATE_BYTES_MAX`].
    #[error("dev secret store: {path} is {len} bytes, above the {limit_bytes}-byte limit")]
    StateTooLarge {
        /// The state file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The limit.
        limit_bytes: usize,
    },
    /// The metrics could not be registered (a name already taken in the registry).
    #[error("dev secret store: metrics: {0}")]
    Metrics(String),
    /// The system's random generator failed.
    #[error("dev secret store: the system random generator failed")]
    Random,
    /// The state could not be encoded (never expected: it is plain data).
    #[error("dev secret store: the state could not be encoded: {0}")]
    Encode(String),
}

impl DevSecretsError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DevSecretsError {
        let path = path.into();
        move |source| DevSecretsError::Io { path, source }
    }
}
