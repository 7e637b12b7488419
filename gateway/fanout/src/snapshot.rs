//! Book snapshots for late joiners: every book at one command, with the stream sequence of the
//! last message of that command, kept in a JetStream key-value bucket beside the stream.
//!
//! A bridge that starts (or resynchronises) loads the snapshot, mirrors its books, and consumes
//! the stream from `stream_seq + 1`: every command after `seq` is there, and none at or below
//! it. The publisher writes a snapshot only when every message up to it is acknowledged, so the
//! two always agree.

use peregrine_hotpath::MarketId;
use peregrine_views::BookSnapshot;

use crate::message::{DecodeError, MESSAGE_BYTES_MAX, MESSAGE_FORMAT};

/// The key of the one snapshot in the bucket (all books at one command, so they agree).
pub const SNAPSHOT_KEY: &str = "books";

/// The bucket beside `stream` (bucket names take the stream name's characters).
pub fn bucket_name(stream: &str) -> String {
    format!("{stream}_BOOKS")
}

/// Every book at one command.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct BooksSnapshot {
    /// [`MESSAGE_FORMAT`] of the writer.
    pub format: u16,
    /// The last command included (journal sequence).
    pub seq: u64,
    /// The stream sequence of the last message at or below `seq`: consume from the next one.
    pub stream_seq: u64,
    /// Each market's whole book at its book sequence.
    pub books: Vec<(MarketId, BookSnapshot)>,
    /// Markets halted at `seq`.
    pub halted: Vec<MarketId>,
}

impl BooksSnapshot {
    /// The archived bytes.
    pub fn encode(&self) -> Vec<u8> {
        match rkyv::to_bytes::<rkyv::rancor::Error>(self) {
            Ok(bytes) => bytes.into_vec(),
            // Serializing owned, plain data into a growable buffer has no failure path.
            Err(error) => unreachable!("archiving a snapshot: {error}"),
        }
    }

    /// Reads a snapshot, checking its size, its archive and its format.
    pub fn decode(bytes: &[u8]) -> Result<BooksSnapshot, DecodeError> {
        if bytes.len() > MESSAGE_BYTES_MAX {
            return Err(DecodeError::TooLarge { bytes: bytes.len() });
        }
        // rkyv needs the archive aligned; the transport's buffer may not be.
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        let snapshot = rkyv::from_bytes::<BooksSnapshot, rkyv::rancor::Error>(&aligned)
            .map_err(|error| DecodeError::Invalid(error.to_string()))?;
        if snapshot.format != MESSAGE_FORMAT {
            return Err(DecodeError::Format {
                found: snapshot.format,
            });
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use peregrine_hotpath::{Price, Qty};

    use super::*;

    #[test]
    fn a_snapshot_reads_back_and_damage_is_a_typed_error() {
        let snapshot = BooksSnapshot {
            format: MESSAGE_FORMAT,
            seq: 9,
            stream_seq: 30,
            books: vec![(
                MarketId(1),
                BookSnapshot {
                    sequence: 4,
                    bids: vec![(Price(10), Qty(2))],
                    asks: vec![(Price(12), Qty(1))],
                },
            )],
            halted: vec![MarketId(2)],
        };
        let bytes = snapshot.encode();
        assert_eq!(BooksSnapshot::decode(&bytes), Ok(snapshot.clone()));
        assert!(BooksSnapshot::decode(&bytes[..bytes.len() / 2]).is_err());
        let mut newer = snapshot;
        newer.format += 1;
        assert!(matches!(
            BooksSnapshot::decode(&newer.encode()),
            Err(DecodeError::Format { .. })
        ));
    }
}
