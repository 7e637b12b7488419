//! The journal record: one sequenced command, framed so that a reader can tell a complete record
//! from a torn or damaged one, stamped with the term of the leader that sequenced it.
//!
//! Layout of format 3 (little endian), 8-byte aligned so that records never straddle a 512-byte
//! sector in a way that matters and so that a scan for valid records can step in 8-byte strides:
//!
//! ```text
//! offset 0   u16  payload length in bytes (1..=PAYLOAD_MAX_BYTES; 0 means "no record here")
//! offset 2   u8   record format version (3: the journal format, `JOURNAL_FORMAT_VERSION`)
//! offset 3   u8   reserved, zero
//! offset 4   u32  CRC32C over bytes 0..4 and 8..24+length (length, version, sequence, term,
//!                 payload)
//! offset 8   u64  sequence number (first is 1, gap-free)
//! offset 16  u64  term: the leadership term (fencing token) of the primary that sequenced it;
//!                 0 without leadership. Never decreases along a journal.
//! offset 24  [u8] payload: rkyv archive of `hotpath::Envelope`
//!            zero padding to the next multiple of 8
//! ```
//!
//! Format 2 is the same without the term: a 16-byte header, the payload at offset 16, the CRC
//! over bytes 0..4 and 8..16+length. A record names its own format in byte 2, so a reader parses
//! either ([`parse`] reports a format-2 record's term as 0), and a format-3 writer that recovers
//! a format-2 journal appends format-3 records after the old ones. The term costs 8 bytes a
//! record (a 104-byte command: 120 → 128 bytes on disk), measured in `perf/RESULTS.md`.
//!
//! Segments are preallocated and zero-filled, so the first all-zero header marks the end of the
//! written data. Records start after the segment header ([`crate::segment::SEGMENT_HEADER_BYTES`]).

use crate::crc32c::Crc32c;
use crate::format::JOURNAL_FORMAT_VERSION;

/// The version byte every record of this release carries.
const RECORD_VERSION: u8 = JOURNAL_FORMAT_VERSION as u8;
/// The version byte of format-2 records (no term), still read.
const RECORD_VERSION_2: u8 = 2;
const _: () = assert!(JOURNAL_FORMAT_VERSION <= u8::MAX as u16 && RECORD_VERSION == 3);

/// Bytes of a record header.
pub const HEADER_BYTES: usize = 24;
/// Bytes of a format-2 record header (no term).
pub const HEADER_BYTES_V2: usize = 16;
/// Records start at multiples of this.
pub const RECORD_ALIGN_BYTES: usize = 8;
/// Largest record, header included: one 4 KiB block, so a record never needs more than one
/// block of scratch and a command of any plausible size fits (commands are ~100 bytes).
pub const RECORD_MAX_BYTES: usize = 4_096;
/// Largest payload.
pub const PAYLOAD_MAX_BYTES: usize = RECORD_MAX_BYTES - HEADER_BYTES;
const _: () = assert!(RECORD_MAX_BYTES - HEADER_BYTES_V2 <= u16::MAX as usize);

/// Bytes a record with a payload of `payload_bytes` occupies, padding included.
pub const fn record_bytes(payload_bytes: usize) -> usize {
    (HEADER_BYTES + payload_bytes).next_multiple_of(RECORD_ALIGN_BYTES)
}

/// Header bytes of a record of `version` (format 2 or 3).
const fn header_bytes(version: u8) -> usize {
    if version == RECORD_VERSION_2 {
        HEADER_BYTES_V2
    } else {
        HEADER_BYTES
    }
}

/// Bytes occupied by the record that starts `encoded`, of either format: trusted bytes only
/// (our own queue, or a record [`parse`] already accepted), never unchecked file content.
pub fn encoded_record_bytes(encoded: &[u8]) -> usize {
    let payload_bytes = usize::from(u16::from_le_bytes([encoded[0], encoded[1]]));
    (header_bytes(encoded[2]) + payload_bytes).next_multiple_of(RECORD_ALIGN_BYTES)
}

/// The checksum stored in a record's header: over its first four bytes and everything from the
/// sequence to the end of the payload (`covered`).
fn checksum(first_le: [u8; 4], covered: &[u8]) -> u32 {
    Crc32c::new().update(&first_le).update(covered).finish()
}

/// Appends one framed record to `out`. The caller bounds `payload` to
/// `1..=PAYLOAD_MAX_BYTES`.
pub fn encode(out: &mut Vec<u8>, seq: u64, term: u64, payload: &[u8]) {
    assert!(!payload.is_empty() && payload.len() <= PAYLOAD_MAX_BYTES);
    assert!(seq > 0, "sequence numbers start at 1");
    let start = out.len();
    assert_eq!(start % RECORD_ALIGN_BYTES, 0, "records are 8-byte aligned");
    // Lossless: bounded by PAYLOAD_MAX_BYTES above (a compile-time assert keeps it in u16).
    let length_le = (payload.len() as u16).to_le_bytes();
    let first_le = [length_le[0], length_le[1], RECORD_VERSION, 0];
    out.extend_from_slice(&first_le);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&term.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = checksum(first_le, &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.resize(start + record_bytes(payload.len()), 0);
}

/// Appends one format-2 record (no term), as releases before format 3 wrote them: for tests and
/// fixtures that check format-2 journals are still read. Never used by the writer.
#[doc(hidden)]
pub fn encode_format_2(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    assert!(!payload.is_empty() && payload.len() <= RECORD_MAX_BYTES - HEADER_BYTES_V2);
    assert!(seq > 0 && out.len().is_multiple_of(RECORD_ALIGN_BYTES));
    let start = out.len();
    // Lossless: bounded above (a compile-time assert keeps it in u16).
    let length_le = (payload.len() as u16).to_le_bytes();
    let first_le = [length_le[0], length_le[1], RECORD_VERSION_2, 0];
    out.extend_from_slice(&first_le);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = checksum(first_le, &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.resize(
        start + (HEADER_BYTES_V2 + payload.len()).next_multiple_of(RECORD_ALIGN_BYTES),
        0,
    );
}

/// What lies at one record offset.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A complete record with a valid checksum.
    Record {
        /// Its sequence number.
        seq: u64,
        /// The term of the leader that sequenced it (0 for a format-2 record).
        term: u64,
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
    /// A record of a format version this release does not read (or a nonzero reserved byte).
    #[error("record of format version {0}, this release reads 2 and {RECORD_VERSION}")]
    Version(u8),
}

/// Parses the record at the start of `bytes` (which runs to the end of the segment).
pub fn parse(bytes: &[u8]) -> Parsed<'_> {
    let Some(first) = bytes.get(..HEADER_BYTES_V2) else {
        if bytes.iter().all(|&b| b == 0) {
            return Parsed::Empty;
        }
        return Parsed::Invalid(Invalid::Short {
            available_bytes: bytes.len(),
            needed_bytes: HEADER_BYTES_V2,
        });
    };
    if first.iter().all(|&b| b == 0) {
        return Parsed::Empty;
    }
    let first_le = [first[0], first[1], first[2], first[3]];
    let length = u16::from_le_bytes([first[0], first[1]]);
    let version = first[2];
    if (version != RECORD_VERSION && version != RECORD_VERSION_2) || first[3] != 0 {
        return Parsed::Invalid(Invalid::Version(version));
    }
    let header_bytes = header_bytes(version);
    let payload_bytes = length as usize;
    if payload_bytes == 0 || payload_bytes > RECORD_MAX_BYTES - header_bytes {
        return Parsed::Invalid(Invalid::Length(length));
    }
    let Some(record) = bytes.get(..header_bytes + payload_bytes) else {
        return Parsed::Invalid(Invalid::Short {
            available_bytes: bytes.len(),
            needed_bytes: header_bytes + payload_bytes,
        });
    };
    let stored_crc = u32::from_le_bytes([record[4], record[5], record[6], record[7]]);
    let seq = u64_at(record, 8);
    let term = if version == RECORD_VERSION_2 {
        0
    } else {
        u64_at(record, 16)
    };
    if checksum(first_le, &record[8..]) != stored_crc || seq == 0 {
        return Parsed::Invalid(Invalid::Checksum);
    }
    Parsed::Record {
        seq,
        term,
        payload: &record[header_bytes..],
        record_bytes: (header_bytes + payload_bytes).next_multiple_of(RECORD_ALIGN_BYTES),
    }
}

/// The little-endian u64 at `at` (the caller checked the bounds).
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut le = [0_u8; 8];
    le.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(le)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads() {
        let mut out = Vec::new();
        encode(&mut out, 7, 3, b"hello");
        assert_eq!(out.len(), 32);
        encode(&mut out, 8, 3, &[1; 8]);
        assert_eq!(out.len(), 64);
        let Parsed::Record {
            seq,
            term,
            payload,
            record_bytes,
        } = parse(&out)
        else {
            panic!("not a record")
        };
        assert_eq!(
            (seq, term, payload, record_bytes),
            (7, 3, &b"hello"[..], 32)
        );
        assert!(matches!(parse(&out[32..]), Parsed::Record { seq: 8, .. }));
        assert_eq!(encoded_record_bytes(&out), 32);
        assert_eq!(parse(&[0; 64]), Parsed::Empty);
        assert_eq!(parse(&[0; 3]), Parsed::Empty);
    }

    #[test]
    fn format_2_records_read_with_term_0() {
        let mut out = Vec::new();
        encode_format_2(&mut out, 7, b"hello");
        assert_eq!(out.len(), 24);
        assert_eq!(encoded_record_bytes(&out), 24);
        encode(&mut out, 8, 5, b"hello");
        assert_eq!(
            parse(&out),
            Parsed::Record {
                seq: 7,
                term: 0,
                payload: b"hello",
                record_bytes: 24
            }
        );
        assert!(matches!(
            parse(&out[24..]),
            Parsed::Record {
                seq: 8,
                term: 5,
                ..
            }
        ));
    }

    #[test]
    fn detects_damage() {
        for format_2 in [false, true] {
            let mut out = Vec::new();
            if format_2 {
                encode_format_2(&mut out, 1, b"payload!");
            } else {
                encode(&mut out, 1, 9, b"payload!");
            }
            for i in 0..out.len() {
                let mut damaged = out.clone();
                damaged[i] ^= 0x40;
                assert!(
                    matches!(parse(&damaged), Parsed::Invalid(_)),
                    "flip at byte {i} went unnoticed (format 2: {format_2})"
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
}
