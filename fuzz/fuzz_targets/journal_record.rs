//! The journal's decoders on bytes read back from disk: the segment header, records walked as
//! recovery walks them (one after another until the first empty or invalid one), and each
//! record's payload (the rkyv archive of a command, validated). Nothing panics or reads out of
//! bounds; a valid record re-encodes to its bytes, and a payload that decodes re-encodes to a
//! payload that decodes to the same command.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peregrine_persist::payload::{self, Scratch};
use peregrine_persist::record::{self, HEADER_BYTES, HEADER_BYTES_V2, Parsed, RECORD_ALIGN_BYTES};
use peregrine_persist::recovery::check_segment_header;
use peregrine_persist::segment::SegmentHeader;

/// Records one input may hold: a 4 KiB block of the smallest records, and then some.
const RECORDS_MAX: usize = 1_024;

fn check_record(bytes: &[u8], scratch: &mut Scratch) -> Option<usize> {
    let Parsed::Record {
        seq,
        term,
        payload: body,
        record_bytes,
    } = record::parse(bytes)
    else {
        return None;
    };
    assert!(record_bytes <= bytes.len().next_multiple_of(RECORD_ALIGN_BYTES));
    assert_eq!(record_bytes % RECORD_ALIGN_BYTES, 0);
    assert_eq!(record_bytes, record::encoded_record_bytes(bytes));
    // A record re-encodes in its own format (byte 2 names it: 2 without a term, 3 with one).
    let mut encoded = Vec::with_capacity(record_bytes);
    let header_bytes = if bytes[2] == 2 {
        record::encode_format_2(&mut encoded, seq, body);
        HEADER_BYTES_V2
    } else {
        record::encode(&mut encoded, seq, term, body);
        HEADER_BYTES
    };
    let framed_bytes = header_bytes + body.len();
    assert_eq!(
        encoded[..framed_bytes],
        bytes[..framed_bytes],
        "record re-encodes differently"
    );
    if let Ok(command) = payload::decode(body, scratch) {
        let mut again = Scratch::new();
        assert!(
            payload::encode(&command, &mut again).is_ok(),
            "{command:?} does not encode"
        );
        let decoded = payload::decode(&again, scratch);
        assert_eq!(
            decoded.as_ref(),
            Ok(&command),
            "payload does not round-trip"
        );
    }
    Some(record_bytes)
}

fuzz_target!(|data: &[u8]| {
    let header_ok = SegmentHeader::parse(data).is_ok();
    assert_eq!(
        header_ok,
        check_segment_header(std::path::Path::new("fuzz"), data).is_ok()
    );
    let mut scratch = Scratch::new();
    let mut offset = 0;
    for _ in 0..RECORDS_MAX {
        let Some(rest) = data.get(offset..) else {
            break;
        };
        match check_record(rest, &mut scratch) {
            Some(record_bytes) => offset += record_bytes,
            None => break,
        }
    }
});
