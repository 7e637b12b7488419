//! A small durable number in a file of its own: a fixed-width decimal and a newline, rewritten
//! in place (21 bytes: within one sector, so a rewrite is never half old, half new) and synced.
//! The journal's durable tip and the REST nonce floor are kept this way.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The file's size: 20 digits (`u64::MAX` has 20) and a newline.
const FILE_BYTES: usize = 21;

/// Why a marker cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MarkerError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file holds something else: refused rather than guessed.
    #[error("{path}: not a marker file (a 20-digit decimal and a newline)")]
    Damaged {
        /// The file.
        path: PathBuf,
    },
}

/// An open marker file.
#[derive(Debug)]
pub struct MarkerFile {
    path: PathBuf,
    file: File,
}

impl MarkerFile {
    /// Opens (creating it empty) the marker at `path` and reads its value: `None` while
    /// nothing was ever written.
    pub fn open(path: &Path) -> Result<(MarkerFile, Option<u64>), MarkerError> {
        let io_error = |source| MarkerError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_error)?;
        let value = read_value(path, &file)?;
        let marker = MarkerFile {
            path: path.to_path_buf(),
            file,
        };
        Ok((marker, value))
    }

    /// Reads the marker at `path` without creating it: `None` when absent or never written.
    pub fn read(path: &Path) -> Result<Option<u64>, MarkerError> {
        match File::open(path) {
            Ok(file) => read_value(path, &file),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(MarkerError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes `value` and makes it durable.
    pub fn write_durable(&self, value: u64) -> Result<(), MarkerError> {
        self.write(value)?;
        self.file.sync_data().map_err(|source| MarkerError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Writes `value` to the page cache only: it survives the process (a kill, a crash of
    /// the appliance) but may be lost with the machine's power, without a device flush.
    pub fn write(&self, value: u64) -> Result<(), MarkerError> {
        let text = format!("{value:020}\n");
        debug_assert_eq!(text.len(), FILE_BYTES);
        self.file
            .write_all_at(text.as_bytes(), 0)
            .map_err(|source| MarkerError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_value(path: &Path, file: &File) -> Result<Option<u64>, MarkerError> {
    let mut bytes = [0_u8; FILE_BYTES + 1];
    let read = file
        .read_at(&mut bytes, 0)
        .map_err(|source| MarkerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let damaged = || MarkerError::Damaged {
        path: path.to_path_buf(),
    };
    match read {
        0 => Ok(None),
        FILE_BYTES => parse(&bytes[..FILE_BYTES]).map(Some).ok_or_else(damaged),
        _ => Err(damaged()),
    }
}

fn parse(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.strip_suffix(b"\n")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marker");
        assert_eq!(MarkerFile::read(&path).unwrap(), None);
        let (marker, value) = MarkerFile::open(&path).unwrap();
        assert_eq!(value, None);
        marker.write_durable(u64::MAX).unwrap();
        marker.write_durable(42).unwrap();
        drop(marker);
        assert_eq!(MarkerFile::read(&path).unwrap(), Some(42));
        std::fs::write(&path, b"12x\n").unwrap();
        assert!(matches!(
            MarkerFile::read(&path),
            Err(MarkerError::Damaged { .. })
        ));
    }
}
