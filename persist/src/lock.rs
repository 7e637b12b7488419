//! The journal directory's exclusive lock: one process at a time may recover, write or replay a
//! journal. Recovery truncates a torn tail and deletes leftovers, which on a live journal would
//! destroy the running writer's newest records; the lock turns that mistake into a clear error.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::RecoveryError;

/// Name of the lock file inside the journal directory. Its content is irrelevant; the advisory
/// `flock` on it is what counts, and the kernel drops it when the process dies.
pub const LOCK_NAME: &str = "LOCK";

/// Held for as long as the directory is in use; released on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock on `dir` (which must exist), or fails at once if another holder has it.
    pub fn acquire(dir: &Path) -> Result<DirLock, RecoveryError> {
        let path = dir.join(LOCK_NAME);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| RecoveryError::Io {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(RecoveryError::Locked { path }),
            Err(TryLockError::Error(source)) => Err(RecoveryError::Io { path, source }),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let error = DirLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(error, RecoveryError::Locked { .. }), "{error}");
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }
}
