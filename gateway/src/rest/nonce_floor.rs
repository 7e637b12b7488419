//! The durable floor under REST nonces: a restart must not reopen nonces accepted before it.
//!
//! Nonces are Unix milliseconds and must rise per key, but the last one accepted is kept in
//! memory; after a restart a captured request could be replayed while its nonce was still in
//! the time window. So a nonce above the *reserved* floor is accepted only once the floor is
//! durably raised past it, to the nonce plus [`RESERVATION_MS`]; at start every key's last
//! nonce begins at the stored floor. At most ten small synchronous writes per second of
//! traffic keep the invariant "the file is at or above every nonce ever accepted"; the price
//! is that a client's nonces within 100 ms of the last accepted one are refused after a
//! restart, which takes longer than that.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use peregrine_persist::marker::{MarkerError, MarkerFile};

/// How far past an accepted nonce the floor is reserved: at most 1000 / this durable writes
/// per second of traffic, and the longest a client can be refused right after a restart
/// (shorter than any restart takes, so in practice never).
pub const RESERVATION_MS: u64 = 100;

/// Why the stored floor cannot be used (a damaged file is refused rather than guessed: a
/// guess too low would reopen replays).
pub type FloorError = MarkerError;

/// The reserved floor, and the file it is kept in (none: kept in memory only, for tests and
/// embedded uses without a data directory).
#[derive(Debug)]
pub struct NonceFloor {
    file: Option<MarkerFile>,
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
        let (file, stored) = MarkerFile::open(path)?;
        Ok(NonceFloor {
            file: Some(file),
            reserved_ms: Mutex::new(stored.unwrap_or(0)),
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
        if let Some(file) = &self.file {
            file.write_durable(next)?;
        }
        *reserved = next;
        debug_assert!(nonce_ms < *reserved);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rest-nonces");
        let floor = NonceFloor::open(&path).unwrap();
        assert_eq!(floor.get(), 0);
        floor.reserve(5_000).unwrap();
        assert_eq!(floor.get(), 5_000 + RESERVATION_MS);
        // Within the reservation: no new write needed, the floor stays.
        floor.reserve(5_050).unwrap();
        assert_eq!(floor.get(), 5_000 + RESERVATION_MS);
        drop(floor);
        assert_eq!(
            NonceFloor::open(&path).unwrap().get(),
            5_000 + RESERVATION_MS
        );
    }
}
