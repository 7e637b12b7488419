//! Idempotency keys of externally originated credits and debits (deposit ids, withdrawal ids),
//! checked in engine state so that a retried command (a timeout at the edge says "it may still
//! apply") can never credit or debit twice, also across a restart (the keys are in snapshots,
//! and replay rebuilds them from the journal).
//!
//! Memory is bounded: the newest `keys_max` keys by value are remembered. When one more arrives,
//! the smallest is forgotten and the *floor* rises to it; a key at or below the floor can no
//! longer be proven new and is refused as expired, never applied. Sound because every forgotten
//! key is at or below the floor. Keys that grow over time (database sequences, as the wallet
//! service and the control plane use) therefore never hit the floor in practice.

use std::collections::BTreeSet;

/// Why a key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The key was seen before.
    Duplicate,
    /// The key is at or below the floor: it may have been seen and forgotten.
    Expired,
}

/// The remembered keys of one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SeenKeys {
    keys: BTreeSet<u64>,
    keys_max: usize,
    /// The largest key forgotten so far; `None` while nothing was.
    floor: Option<u64>,
}

impl SeenKeys {
    /// An empty set remembering at most `keys_max` (at least one) keys.
    pub(crate) fn new(keys_max: usize) -> SeenKeys {
        assert!(keys_max >= 1, "an idempotency window must remember a key");
        SeenKeys {
            keys: BTreeSet::new(),
            keys_max,
            floor: None,
        }
    }

    /// Rebuilt from a snapshot's keys and floor; `None` when they break the invariants (more
    /// keys than allowed, a key at or below the floor).
    pub(crate) fn restore(keys_max: usize, keys: &[u64], floor: Option<u64>) -> Option<SeenKeys> {
        if keys.len() > keys_max || keys_max == 0 {
            return None;
        }
        if let Some(floor) = floor
            && keys.iter().any(|key| *key <= floor)
        {
            return None;
        }
        let set: BTreeSet<u64> = keys.iter().copied().collect();
        if set.len() != keys.len() {
            return None;
        }
        Some(SeenKeys {
            keys: set,
            keys_max,
            floor,
        })
    }

    /// Whether `key` may be applied now (nothing is recorded).
    pub(crate) fn check(&self, key: u64) -> Result<(), Refused> {
        if self.floor.is_some_and(|floor| key <= floor) {
            return Err(Refused::Expired);
        }
        if self.keys.contains(&key) {
            return Err(Refused::Duplicate);
        }
        Ok(())
    }

    /// Records `key`, which [`SeenKeys::check`] accepted; forgets the smallest key when full.
    pub(crate) fn insert(&mut self, key: u64) {
        debug_assert_eq!(self.check(key), Ok(()), "insert of a refused key");
        self.keys.insert(key);
        if self.keys.len() > self.keys_max
            && let Some(forgotten) = self.keys.pop_first()
        {
            self.floor = Some(self.floor.map_or(forgotten, |floor| floor.max(forgotten)));
        }
        debug_assert!(self.keys.len() <= self.keys_max);
    }

    /// The remembered keys, ascending (for snapshots).
    pub(crate) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.keys.iter().copied()
    }

    /// The floor (for snapshots).
    pub(crate) fn floor(&self) -> Option<u64> {
        self.floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicates_and_forgotten_keys() {
        let mut seen = SeenKeys::new(3);
        for key in [10, 5, 7] {
            assert_eq!(seen.check(key), Ok(()));
            seen.insert(key);
        }
        assert_eq!(seen.check(5), Err(Refused::Duplicate));
        seen.insert(20);
        // 5 was forgotten: it and everything below it are refused, 6 too (never seen, but it
        // cannot be told from a forgotten key).
        assert_eq!(seen.check(5), Err(Refused::Expired));
        assert_eq!(seen.check(1), Err(Refused::Expired));
        assert_eq!(seen.check(6), Ok(()));
        assert_eq!(seen.check(7), Err(Refused::Duplicate));
        assert_eq!(seen.keys().collect::<Vec<_>>(), [7, 10, 20]);
        assert_eq!(seen.floor(), Some(5));
    }

    #[test]
    fn restore_checks_invariants() {
        assert!(SeenKeys::restore(2, &[1, 2, 3], None).is_none());
        assert!(SeenKeys::restore(3, &[1, 2, 3], Some(2)).is_none());
        assert!(SeenKeys::restore(3, &[2, 2], None).is_none());
        let seen = SeenKeys::restore(3, &[4, 6], Some(3)).unwrap();
        assert_eq!(seen.check(3), Err(Refused::Expired));
        assert_eq!(seen.check(6), Err(Refused::Duplicate));
        assert_eq!(seen.check(5), Ok(()));
    }
}
