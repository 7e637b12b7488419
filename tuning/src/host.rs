//! The host as files under a root path: `/` for this machine, a fixture or captured tree in
//! tests. Every read and write of the crate goes through [`Host`].

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

/// Largest file the audit reads, in bytes: `/proc` and `/sys` files are small; a larger one is
/// not what the audit expects and is refused instead of read into memory.
pub const FILE_BYTES_MAX: u64 = 1 << 20;
/// Most entries listed from one directory (`/proc/irq` has one per interrupt).
pub const DIR_ENTRIES_MAX: usize = 65_536;

/// Why the host could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: larger than {FILE_BYTES_MAX} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("{path:?}: not a relative path inside the root")]
    OutsideRoot { path: String },
}

/// Where `ethtool -c` output comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EthtoolSource {
    /// Run `ethtool -c IFACE` (the real host).
    Command,
    /// Read captured outputs from `DIR/IFACE` (a fixture or captured tree).
    Captured(PathBuf),
}

/// The host's files under `root`.
#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
    ethtool: EthtoolSource,
}

impl Host {
    /// The host under `root`. At `/` NIC coalescing is read by running `ethtool`; under any
    /// other root (a fixture or captured tree) from the captured outputs in `<root>/ethtool/`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let ethtool = if root == Path::new("/") {
            EthtoolSource::Command
        } else {
            EthtoolSource::Captured(root.join("ethtool"))
        };
        Self { root, ethtool }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `relative` under the root. `relative` must be relative and stay inside the root.
    pub fn path(&self, relative: &str) -> Result<PathBuf, HostError> {
        let candidate = Path::new(relative);
        let inside = candidate
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !inside || relative.is_empty() {
            return Err(HostError::OutsideRoot {
                path: relative.to_owned(),
            });
        }
        Ok(self.root.join(candidate))
    }

    /// The trimmed text of a file, or `None` when it does not exist.
    pub fn read(&self, relative: &str) -> Result<Option<String>, HostError> {
        let path = self.path(relative)?;
        read_bounded(&path)
    }

    /// Writes `value` to a file that must already exist (a sysctl or sysfs attribute).
    pub fn write(&self, relative: &str, value: &str) -> Result<(), HostError> {
        let path = self.path(relative)?;
        let io = |source| HostError::Io {
            path: path.clone(),
            source,
        };
        // No create: a missing attribute means the kernel does not offer it, not a file to make.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(io)?;
        std::io::Write::write_all(&mut file, value.as_bytes()).map_err(io)
    }

    /// Names in a directory, sorted; empty when it does not exist.
    pub fn list(&self, relative: &str) -> Result<Vec<String>, HostError> {
        let path = self.path(relative)?;
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(HostError::Io { path, source }),
        };
        let mut names = Vec::new();
        for entry in entries.take(DIR_ENTRIES_MAX) {
            let entry = entry.map_err(|source| HostError::Io {
                path: path.clone(),
                source,
            })?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    pub fn exists(&self, relative: &str) -> bool {
        self.path(relative).is_ok_and(|p| p.exists())
    }

    /// The path (relative to the root) a sysfs link points at, symlinks resolved; `None` when
    /// it does not exist or leads outside the root.
    pub fn resolve(&self, relative: &str) -> Option<String> {
        let root = std::fs::canonicalize(&self.root).ok()?;
        let target = std::fs::canonicalize(self.path(relative).ok()?).ok()?;
        let inside = target.strip_prefix(&root).ok()?;
        Some(inside.to_string_lossy().into_owned())
    }

    /// `ethtool -c IFACE` output; `None` when ethtool or the capture is absent or fails.
    pub fn ethtool_coalesce(&self, iface: &str) -> Option<String> {
        // An interface name comes from a directory listing: refuse anything path-like.
        if iface.is_empty() || iface.contains('/') || iface.starts_with('.') {
            return None;
        }
        match &self.ethtool {
            EthtoolSource::Captured(dir) => read_bounded(&dir.join(iface)).ok().flatten(),
            EthtoolSource::Command => {
                let output = std::process::Command::new("ethtool")
                    .args(["-c", iface])
                    .output()
                    .ok()?;
                if !output.status.success() {
                    return None;
                }
                let bounded = output.stdout.len().min(FILE_BYTES_MAX as usize);
                Some(String::from_utf8_lossy(&output.stdout[..bounded]).into_owned())
            }
        }
    }
}

fn read_bounded(path: &Path) -> Result<Option<String>, HostError> {
    use std::io::Read;
    let io = |source| HostError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io(source)),
    };
    let mut bytes = Vec::new();
    // /proc files report size 0, so the bound is enforced on the read itself.
    file.take(FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > FILE_BYTES_MAX {
        return Err(HostError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(Some(String::from_utf8_lossy(&bytes).trim().to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let host = Host::new("/tmp/root");
        assert!(host.path("proc/sys/vm/swappiness").is_ok());
        for bad in ["/etc/passwd", "../etc", "proc/../../x", ""] {
            assert!(host.path(bad).is_err(), "{bad}");
        }
    }
}
