//! One published message: a command's changes for one subject, archived with rkyv (the hot
//! path's own format library) and checked on the way in, so a damaged or hostile message is a
//! typed error, never a panic.

use peregrine_views::Change;

/// Version of the message layout; a bridge refuses others by name. 2: `Change::Funds`
/// (deposits and withdrawals on the accounts' private subjects), which a format-1 reader
/// cannot decode.
pub const MESSAGE_FORMAT: u16 = 2;
/// Largest message accepted for decoding, checked before anything is parsed. A command's
/// changes for one subject are bounded by the engine (one sweep's levels and fills); this is
/// NATS's default `max_payload`.
pub const MESSAGE_BYTES_MAX: usize = 1 << 20;
/// Header naming the command's journal sequence.
pub const SEQ_HEADER: &str = "Peregrine-Seq";
/// Header naming the message's place among its command's messages, `<index>/<count>` from 1:
/// a reader knows when a command is complete and which message of it is missing or repeated.
pub const PART_HEADER: &str = "Peregrine-Part";

/// A message's place among its command's messages (see [`PART_HEADER`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// From 1.
    pub index: u32,
    /// Messages of the command.
    pub count: u32,
}

impl Part {
    /// Reads `<index>/<count>`; `None` unless `1 <= index <= count`.
    pub fn parse(text: &str) -> Option<Part> {
        let (index, count) = text.split_once('/')?;
        let part = Part {
            index: index.parse().ok()?,
            count: count.parse().ok()?,
        };
        (part.index >= 1 && part.index <= part.count).then_some(part)
    }

    /// Whether it is the command's last message.
    pub fn is_last(self) -> bool {
        self.index == self.count
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What one message carries.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Published {
    /// [`MESSAGE_FORMAT`] of the writer.
    pub format: u16,
    /// The command's journal sequence.
    pub seq: u64,
    /// The command's sequencer time, Unix ns.
    pub ts_ns: u64,
    /// Its changes for this subject, in the order the views made them.
    pub changes: Vec<Change>,
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Longer than [`MESSAGE_BYTES_MAX`].
    #[error("message of {bytes} bytes is above the {MESSAGE_BYTES_MAX}-byte limit")]
    TooLarge {
        /// Its length.
        bytes: usize,
    },
    /// Not a valid archive of a [`Published`].
    #[error("message is not a valid archive: {0}")]
    Invalid(String),
    /// Written in a layout this build does not read.
    #[error("message format {found} is not supported (this build reads {MESSAGE_FORMAT})")]
    Format {
        /// The version found.
        found: u16,
    },
}

impl Published {
    /// The archived bytes.
    pub fn encode(&self) -> Vec<u8> {
        match rkyv::to_bytes::<rkyv::rancor::Error>(self) {
            Ok(bytes) => bytes.into_vec(),
            // Serializing owned, plain data into a growable buffer has no failure path.
            Err(error) => unreachable!("archiving a message: {error}"),
        }
    }

    /// Reads a message, checking its size, its archive and its format.
    pub fn decode(bytes: &[u8]) -> Result<Published, DecodeError> {
        if bytes.len() > MESSAGE_BYTES_MAX {
            return Err(DecodeError::TooLarge { bytes: bytes.len() });
        }
        // rkyv needs the archive aligned; the transport's buffer may not be.
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        let message = rkyv::from_bytes::<Published, rkyv::rancor::Error>(&aligned)
            .map_err(|error| DecodeError::Invalid(error.to_string()))?;
        if message.format != MESSAGE_FORMAT {
            return Err(DecodeError::Format {
                found: message.format,
            });
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use peregrine_hotpath::{AccountId, Amount, CurrencyId, MarketId};

    use super::*;

    fn message() -> Published {
        Published {
            format: MESSAGE_FORMAT,
            seq: 42,
            ts_ns: 7,
            changes: vec![
                Change::Balance {
                    account: AccountId(3),
                    currency: CurrencyId(1),
                    available: Amount(10),
                    locked: Amount(5),
                },
                Change::MarketState {
                    market: MarketId(2),
                    halted: true,
                },
            ],
        }
    }

    #[test]
    fn parts_read_back_and_nonsense_is_refused() {
        let part = Part { index: 2, count: 3 };
        assert_eq!(Part::parse(&part.to_string()), Some(part));
        for bad in ["", "0/1", "2/1", "1", "a/b", "1/-1", "1/2/3"] {
            assert_eq!(Part::parse(bad), None, "{bad:?}");
        }
        assert!(Part { index: 3, count: 3 }.is_last());
    }

    #[test]
    fn a_message_reads_back_as_written() {
        let bytes = message().encode();
        assert_eq!(Published::decode(&bytes), Ok(message()));
    }

    #[test]
    fn damaged_oversized_and_foreign_messages_are_typed_errors() {
        let bytes = message().encode();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                matches!(
                    Published::decode(&bytes[..cut]),
                    Err(DecodeError::Invalid(_))
                ),
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        for byte in flipped.iter_mut() {
            *byte ^= 0xa5;
        }
        assert!(Published::decode(&flipped).is_err());
        let huge = vec![0_u8; MESSAGE_BYTES_MAX + 1];
        assert_eq!(
            Published::decode(&huge),
            Err(DecodeError::TooLarge {
                bytes: MESSAGE_BYTES_MAX + 1
            })
        );
        let mut newer = message();
        newer.format = MESSAGE_FORMAT + 1;
        assert_eq!(
            Published::decode(&newer.encode()),
            Err(DecodeError::Format {
                found: MESSAGE_FORMAT + 1
            })
        );
    }
}
