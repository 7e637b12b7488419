//! The audit trail: one append-only record per sensitive action, allowed or denied, each
//! carrying the SHA-256 of the previous record, so changing, removing or inserting a record
//! anywhere but at the end breaks every hash after it. [`verify`] walks the chain and names the
//! first broken record. Cutting records off the end leaves a valid shorter chain, so `up`
//! also journals the head's sequence number and hash from time to time (an anchor), and
//! [`check_anchor`] proves the table still holds each anchored record with its anchored hash:
//! with the chain intact, that vouches for every record up to the anchor.

use ring::digest::{Context, SHA256};

use crate::store::{Store, StoreError};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: [u8; 32] = [0; 32];
/// Records read per page while verifying.
pub const VERIFY_PAGE_RECORDS: u32 = 1000;

/// Whether the action was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Done.
    Allowed,
    /// Refused.
    Denied,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
        }
    }

    /// The outcome named `value`.
    pub fn parse(value: &str) -> Option<Outcome> {
        match value {
            "allowed" => Some(Outcome::Allowed),
            "denied" => Some(Outcome::Denied),
            _ => None,
        }
    }
}

/// One audit record's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When, Unix ms.
    pub at_ms: i64,
    /// Who: a user's uid, `anonymous`, or `host` for the operator's command line.
    pub actor: String,
    /// What (`identity.login`, `identity.session.revoke`, ...).
    pub action: String,
    /// On what (a uid, an e-mail address, a session handle).
    pub target: String,
    /// From which address.
    pub source: String,
    /// Allowed or denied.
    pub outcome: Outcome,
    /// The refusal's error code, or empty.
    pub code: String,
}

/// The hash of record `seq` holding `entry` after a record whose hash is `prev_hash`: SHA-256
/// over the previous hash, the sequence number, the time and each field prefixed by its
/// length (so no two different records encode alike).
pub fn chain_hash(prev_hash: &[u8], seq: i64, entry: &AuditEntry) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    context.update(prev_hash);
    context.update(&seq.to_le_bytes());
    context.update(&entry.at_ms.to_le_bytes());
    for field in [
        entry.actor.as_str(),
        entry.action.as_str(),
        entry.target.as_str(),
        entry.source.as_str(),
        entry.outcome.as_str(),
        entry.code.as_str(),
    ] {
        // Fields are bounded by their columns (at most 255 characters), far below u32.
        let length = u32::try_from(field.len()).unwrap_or(u32::MAX);
        context.update(&length.to_le_bytes());
        context.update(field.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// What verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainStatus {
    /// Every record links to the one before and hashes right.
    Intact {
        /// Records checked.
        records: u64,
    },
    /// The first broken record.
    Broken {
        /// Its sequence number (where a record is missing: the one expected there).
        seq: i64,
        /// What is wrong.
        reason: BrokenReason,
    },
}

/// How a record breaks the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokenReason {
    /// A sequence number is missing (a record was removed).
    Gap,
    /// The record does not name the previous record's hash.
    PrevHashMismatch,
    /// The record's content does not hash to its stored hash (it was changed).
    HashMismatch,
}

/// Walks the whole chain from the first record.
pub async fn verify(store: &Store) -> Result<ChainStatus, StoreError> {
    let mut expected_seq = 1i64;
    let mut prev_hash = GENESIS_HASH.to_vec();
    let mut records = 0u64;
    // Bounded by the table's size: each page moves past at least one record or ends the walk.
    loop {
        let page = store
            .audit_page(expected_seq - 1, VERIFY_PAGE_RECORDS)
            .await?;
        if page.is_empty() {
            return Ok(ChainStatus::Intact { records });
        }
        for row in &page {
            let broken = |reason| ChainStatus::Broken {
                seq: expected_seq,
                reason,
            };
            if row.seq != expected_seq {
                return Ok(broken(BrokenReason::Gap));
            }
            if row.prev_hash != prev_hash {
                return Ok(broken(BrokenReason::PrevHashMismatch));
            }
            if chain_hash(&row.prev_hash, row.seq, &row.entry).as_slice() != row.hash.as_slice() {
                return Ok(broken(BrokenReason::HashMismatch));
            }
            prev_hash.clone_from(&row.hash);
            expected_seq += 1;
            records += 1;
        }
    }
}

/// An audit head as anchored in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The journal sequence number of the anchor command.
    pub journal_seq: u64,
    /// The anchored record's sequence number in the chain.
    pub seq: i64,
    /// Its hash then.
    pub hash: [u8; 32],
}

/// What the table says of an anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnchorStatus {
    /// The record is there with the anchored hash.
    Holds,
    /// The record is gone: the table was cut after the anchor.
    Missing,
    /// The record is there with another hash: the chain was rewritten after the anchor.
    Differs,
}

/// Checks one anchor against the table.
pub async fn check_anchor(store: &Store, anchor: &Anchor) -> Result<AnchorStatus, StoreError> {
    Ok(match store.audit_hash(anchor.seq).await? {
        None => AnchorStatus::Missing,
        Some(hash) if hash.as_slice() == anchor.hash.as_slice() => AnchorStatus::Holds,
        Some(_) => AnchorStatus::Differs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(actor: &str, action: &str) -> AuditEntry {
        AuditEntry {
            at_ms: 1,
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: String::new(),
            source: String::new(),
            outcome: Outcome::Allowed,
            code: String::new(),
        }
    }

    #[test]
    fn field_boundaries_change_the_hash() {
        // Without length prefixes "ab"+"c" and "a"+"bc" would hash alike.
        let one = chain_hash(&GENESIS_HASH, 1, &entry("ab", "c"));
        let two = chain_hash(&GENESIS_HASH, 1, &entry("a", "bc"));
        assert_ne!(one, two);
        assert_ne!(one, chain_hash(&GENESIS_HASH, 2, &entry("ab", "c")));
        assert_ne!(one, chain_hash(&one, 1, &entry("ab", "c")));
    }
}
