//! The durable floor under REST nonces: a restart must not reopen nonces accepted before it.
//!
//! Nonces are Unix milliseconds and must rise per key, but the last one accepted is kept in
//! memory; after a restart a captured request could be replayed while its nonce was still in
//! the time window. So a nonce above the *reserved* floor is accepted only once the floor is
//! durably raised past it, to the nonce plus [`RESERVATION_MS`]; at start every key's last
//! nonce begins at the stored floor. One small synchronous write per second of traffic keeps
//! the invariant "the file is at or above every nonce ever accepted"; the price is that right
//! after a fast restart a client's nonces are refused for at most that second.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// How far past an accepted nonce the floor is reserved: the durable writes per second of
/// traffic, and the longest a client is refused right after a restart.
pub const RESERVATION_MS: u64 = 1_000;
/// The file's size: a fixed-width decimal and a newline, rewritten in place (one sector).
const FILE_BYTES: usize = 21;

/// Why the stored floor cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FloorError {
    /// Reading or writing the file failed.
    #[error("REST nonce floor {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file holds something else than a floor: refused rather than guessed (a guess too
    /// low would reopen replays).
    #[error("REST nonce floor {path}: not a decimal number of milliseconds")]
    Damaged {
        /// The file.
        path: PathBuf,
    },
}

/// The reserved floor, and the file it is kept in (none: kept in memory only, for tests and
/// embedded uses without a data directory).
#[derive(Debug)]
pub struct NonceFloor {
    file: Option<(PathBuf, File)>,
    reserved_ms: Mutex<u64>,
}

impl NonceFloor {
    /// A floor kept in memory only, starting at 0.
    pub fn in_memory() -> NonceFloor {
        NonceFloor {
            file: None,
            reserved_ms: Mutex::new(0),
        }
    }

    /// Opens (creating at 0) the floor stored at `path`.
    pub fn open(path: &Path) -> Result<NonceFloor, FloorError> {
        let io_error = |source| FloorError::Io {
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
        let mut bytes = [0_u8; FILE_BYTES + 1];
        let read = file.read_at(&mut bytes, 0).map_err(io_error)?;
        let stored = match read {
            0 => 0,
            FILE_BYTES => parse(&bytes[..FILE_BYTES]).ok_or_else(|| FloorError::Damaged {
                path: path.to_path_buf(),
            })?,
            _ => {
                return Err(FloorError::Damaged {
                    path: path.to_path_buf(),
                });
            }
        };
        Ok(NonceFloor {
            file: Some((path.to_path_buf(), file)),
            reserved_ms: Mutex::new(stored),
        })
    }

    /// The floor now: every nonce accepted so far is at or below it.
    pub fn get(&self) -> u64 {
        *self
            .reserved_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `nonce_ms` acceptable: durably raises the floor past it first when needed.
    pub fn reserve(&self, nonce_ms: u64) -> Result<(), FloorError> {
        let mut reserved = self
            .reserved_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if nonce_ms <= *reserved {
            return Ok(());
        }
        let next = nonce_ms.saturating_add(RESERVATION_MS);
        if let Some((path, file)) = &self.file {
            let io_error = |source| FloorError::Io {
                path: path.clone(),
                source,
            };
            file.write_all_at(&format_floor(next), 0)
                .map_err(io_error)?;
            file.sync_data().map_err(io_error)?;
        }
        *reserved = next;
        debug_assert!(nonce_ms < *reserved);
        Ok(())
    }
}

fn format_floor(floor_ms: u64) -> [u8; FILE_BYTES] {
    let mut out = [0_u8; FILE_BYTES];
    let text = format!("{floor_ms:020}\n");
    out.copy_from_slice(text.as_bytes());
    out
}

fn parse(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.strip_suffix(b"\n")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

const _: () = assert!(FILE_BYTES == 20 + 1, "u64::MAX has 20 digits");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_survives_a_reopen_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rest-nonces");
        let floor = NonceFloor::open(&path).unwrap();
        assert_eq!(floor.get(), 0);
        floor.reserve(5_000).unwrap();
        assert_eq!(floor.get(), 5_000 + RESERVATION_MS);
        // Within the reservation: no new write needed, the floor stays.
        floor.reserve(5_500).unwrap();
        assert_eq!(floor.get(), 5_000 + RESERVATION_MS);
        drop(floor);
        assert_eq!(
            NonceFloor::open(&path).unwrap().get(),
            5_000 + RESERVATION_MS
        );
        std::fs::write(&path, b"12x\n").unwrap();
        assert!(matches!(
            NonceFloor::open(&path),
            Err(FloorError::Damaged { .. })
        ));
    }
}
