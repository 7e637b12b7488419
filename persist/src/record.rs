//! The journal record: one sequenced command, framed so that a reader can tell a complete record
//! from a torn or damaged one.
//!
//! Layout (little endian), 8-byte aligned so that records never straddle a 512-byte sector in a
//! way that matters and so that a scan for valid records can step in 8-byte strides:
//!
//! ```text
//! offset 0   u16  payload length in bytes (1..=PAYLOAD_MAX_BYTES; 0 means "no record here")
//! offset 2   u8   record format version (the journal format, `JOURNAL_FORMAT_VERSION`)
//! offset 3   u8   reserved, zero
//! offset 4   u32  CRC32C over bytes 0..4 and 8..16+length (length, version, sequence, payload)
//! offset 8   u64  sequence number (first is 1, gap-free)
//! offset 16  [u8] payload: rkyv archive of `hotpath::Envelope`
//!            zero padding to the next multiple of 8
//! ```
//!
//! Segments are preallocated and zero-filled, so the first all-zero header marks the end of the
//! written data. Records start after the segment header ([`crate::segment::SEGMENT_HEADER_BYTES`]).

use crate::crc32c::Crc32c;
use crate::format::JOURNAL_FORMAT_VERSION;

/// The version byte every record of this release carries.
const RECORD_VERSION: u8 = JOURNAL_FORMAT_VERSION as u8;
const _: () = assert!(JOURNAL_FORMAT_VERSION <= u8::MAX as u16 && RECORD_VERSION != 0);

/// Bytes of a record header.
pub const HEADER_BYTES: usize = 16;
/// Records start at multiples of this.
pub const RECORD_ALIGN_BYTES: usize = 8;
/// Largest record, header included: one 4 KiB block, so a record never needs more than one
/// block of scratch and a command of any plausible size fits (commands are ~100 bytes).
pub const RECORD_MAX_BYTES: usize = 4_096;
/// Largest payload.
pub const PAYLOAD_MAX_BYTES: usize = RECORD_MAX_BYTES - HEADER_BYTES;
const _: () = assert!(PAYLOAD_MAX_BYTES <= u16::MAX as usize);

/// Bytes a record with a payload of `payload_bytes` occupies, padding included.
pub const fn record_bytes(payload_bytes: usize) -> usize {
    (HEADER_BYTES + payload_bytes).next_multiple_of(RECORD_ALIGN_BYTES)
}

/// Bytes occupied by the record that [`encode`] wrote at the start of `encoded` (trusted: our
/// own queue, never bytes read back from a file, which go through [`parse`]).
pub fn encoded_record_bytes(encoded: &[u8]) -> usize {
    record_bytes(usize::from(u16::from_le_bytes([encoded[0], encoded[1]])))
}

/// The checksum stored in a record's header.
fn checksum(first_le: [u8; 4], seq: u64, payload: &[u8]) -> u32 {
    Crc32c::new()
        .update(&first_le)
        .update(&seq.to_le_bytes())
        .update(payload)
        .finish()
}

/// Appends one framed record to `out`. The caller bounds `payload` to
/// `1..=PAYLOAD_MAX_BYTES`.
pub fn encode(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    assert!(!payload.is_empty() && payload.len() <= PAYLOAD_MAX_BYTES);
    assert!(seq > 0, "sequence numbers start at 1");
    let start = out.len();
    assert_eq!(start % RECORD_ALIGN_BYTES, 0, "records are 8-byte aligned");
    // Lossless: bounded by PAYLOAD_MAX_BYTES above (a compile-time assert keeps it in u16).
    let length_le = (payload.len() as u16).to_le_bytes();
    let first_le = [length_le[0], length_le[1], RECORD_VERSION, 0];
    out.extend_from_slice(&first_le);
    out.extend_from_slice(&checksum(first_le, seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    out.resize(start + record_bytes(payload.len()), 0);
}

/// What lies at one record offset.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A complete record with a valid checksum.
    Record {
        /// Its sequence number.
        seq: u64,
        /// The payload.
        payload: &'a [u8],
        /// Bytes it occupies, padding included (the next record starts there).
        record_bytes: usize,
    },
    /// An all-zero header: nothing was written here.
    Empty,
    /// Something was written here, but not a complete valid record.
    Invalid(Invalid),
}

/// Why bytes at a record offset are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Fewer bytes are left than the header or the record needs.
    #[error("short record: {available_bytes} bytes left, {needed_bytes} needed")]
    Short {
        /// Bytes left in the file.
        available_bytes: usize,
        /// Bytes the header says the record needs.
        needed_bytes: usize,
    },
    /// The length field is out of bounds.
    #[error("record length {0} out of bounds")]
    Length(u16),
    /// The checksum does not match.
    #[error("record checksum mismatch")]
    Checksum,
    /// A complete record of another format version (or a nonzero reserved byte).
    #[error("record of format version {0}, this release reads {RECORD_VERSION}")]
    Version(u8),
}

/// Parses the record at the start of `bytes` (which runs to the end of the segment).
pub fn parse(bytes: &[u8]) -> Parsed<'_> {
    let Some(header) = bytes.get(..HEADER_BYTES) else {
        if bytes.iter().all(|&b| b == 0) {
            return Parsed::Empty;
        }
        return Parsed::Invalid(Invalid::Short {
            available_bytes: bytes.len(),
            needed_bytes: HEADER_BYTES,
        });
    };
    if header.iter().all(|&b| b == 0) {
        return Parsed::Empty;
    }
    let first_le = [header[0], header[1], header[2], header[3]];
    let length = u16::from_le_bytes([header[0], header[1]]);
    let stored_crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let mut seq_le = [0_u8; 8];
    seq_le.copy_from_slice(&header[8..16]);
    let seq = u64::from_le_bytes(seq_le);
    let payload_bytes = length as usize;
    if payload_bytes == 0 || payload_bytes > PAYLOAD_MAX_BYTES {
        return Parsed::Invalid(Invalid::Length(length));
    }
    let Some(payload) = bytes.get(HEADER_BYTES..HEADER_BYTES + payload_bytes) else {
        return Parsed::Invalid(Invalid::Short {
            available_bytes: bytes.len(),
            needed_bytes: HEADER_BYTES + payload_bytes,
        });
    };
    if checksum(first_le, seq, payload) != stored_crc || seq == 0 {
        return Parsed::Invalid(Invalid::Checksum);
    }
    if first_le[2] != RECORD_VERSION || first_le[3] != 0 {
        return Parsed::Invalid(Invalid::Version(first_le[2]));
    }
    Parsed::Record {
        seq,
        payload,
        record_bytes: record_bytes(payload_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads() {
        let mut out = Vec::new();
        encode(&mut out, 7, b"hello");
        assert_eq!(out.len(), 24);
        encode(&mut out, 8, &[1; 8]);
        assert_eq!(out.len(), 48);
        let Parsed::Record {
            seq,
            payload,
            record_bytes,
        } = parse(&out)
        else {
            panic!("not a record")
        };
        assert_eq!((seq, payload, record_bytes), (7, &b"hello"[..], 24));
        assert!(matches!(parse(&out[24..]), Parsed::Record { seq: 8, .. }));
        assert_eq!(parse(&[0; 64]), Parsed::Empty);
        assert_eq!(parse(&[0; 3]), Parsed::Empty);
    }

    #[test]
    fn detects_damage() {
        let mut out = Vec::new();
        encode(&mut out, 1, b"payload!");
        for i in 0..out.len() {
            let mut damaged = out.clone();
            damaged[i] ^= 0x40;
            assert!(
                matches!(parse(&damaged), Parsed::Invalid(_)),
                "flip at byte {i} went unnoticed"
            );
        }
        assert!(matches!(
            parse(&out[..20]),
            Parsed::Invalid(Invalid::Short { .. })
        ));
        assert!(matches!(
            parse(&out[..5]),
            Parsed::Invalid(Invalid::Short { .. })
        ));
    }
}
