//! Segment files: preallocated, zero-filled files of records, named after the sequence of their
//! first record (`00000000000000000001.journal`), so listing the directory orders them and a
//! reader knows which sequence each must start with.
//!
//! Each segment opens with a one-block header, written with the zeros when the spare is built
//! (off the commit path, and before the spare gets any name a writer takes), so a named
//! segment always has one and rotation costs no extra synced write; records follow at
//! [`SEGMENT_HEADER_BYTES`]. The first sequence is in the name, and the first record must carry
//! it (recovery checks). The format version is that of the release that created the segment;
//! records name their own (a format-3 writer appends format-3 records to the format-2 segment
//! it recovered, see [`crate::record`]).
//!
//! ```text
//! offset 0   [u8; 8]  magic "PGJOURNL"
//! offset 8   u16      journal format version (`format::JOURNAL_FORMAT_VERSION`)
//! offset 10  [u8; 6]  reserved, zero
//! offset 16  [u8; 32] the writing release, zero-padded
//! offset 48  u32      CRC32C over bytes 0..48
//!            zero to the end of the block
//! ```

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::crc32c::Crc32c;
use crate::format::{JOURNAL_FORMAT_VERSION, JOURNAL_FORMATS_READ, RELEASE_BYTES, release};
use crate::io::{BLOCK_BYTES, fallocate, open_direct, sync_dir, zero_fill};

/// Bytes before the first record: one block, so records stay block-aligned for `O_DIRECT`.
pub const SEGMENT_HEADER_BYTES: usize = BLOCK_BYTES;
/// First bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"PGJOURNL";
/// Bytes of the header's fields (the rest of the block is zero).
const HEADER_FIELDS_BYTES: usize = 52;
const _: () = assert!(HEADER_FIELDS_BYTES == 16 + RELEASE_BYTES + 4);
const _: () = assert!(HEADER_FIELDS_BYTES <= SEGMENT_HEADER_BYTES);

/// A segment's header, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The journal format version.
    pub format_version: u16,
    /// The release that wrote the segment.
    pub release: [u8; RELEASE_BYTES],
}

/// Why a segment's header is not one this release reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Written in a format this release does not read.
    #[error(
        "journal format version {found}, this release reads {}",
        crate::format::versions_list(JOURNAL_FORMATS_READ)
    )]
    Version {
        /// The version found (1 for the header-less format of earlier releases).
        found: u16,
    },
    /// Not a segment header, nor a record of the header-less format.
    #[error("no journal segment header (bad magic)")]
    Magic,
    /// The header's checksum does not match.
    #[error("segment header checksum mismatch")]
    Checksum,
    /// The file is shorter than a header.
    #[error("file of {0} bytes is shorter than a segment header")]
    Short(usize),
}

impl SegmentHeader {
    /// The header this release writes.
    pub fn new() -> SegmentHeader {
        SegmentHeader {
            format_version: JOURNAL_FORMAT_VERSION,
            release: release(),
        }
    }

    /// The header's bytes (the fields; the rest of the block is zero).
    pub fn encode(&self) -> [u8; HEADER_FIELDS_BYTES] {
        let mut out = [0_u8; HEADER_FIELDS_BYTES];
        out[..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..10].copy_from_slice(&self.format_version.to_le_bytes());
        out[16..16 + RELEASE_BYTES].copy_from_slice(&self.release);
        let crc = Crc32c::new().update(&out[..48]).finish();
        out[48..52].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses the header at the start of a segment's bytes. The version is checked before the
    /// checksum: another format may lay the header out differently, and "version 3" says more
    /// than "checksum mismatch".
    pub fn parse(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let Some(fields) = bytes.get(..HEADER_FIELDS_BYTES) else {
            return Err(HeaderError::Short(bytes.len()));
        };
        if fields[..8] != SEGMENT_MAGIC {
            return Err(if looks_like_format_1(fields) {
                HeaderError::Version { found: 1 }
            } else {
                HeaderError::Magic
            });
        }
        let format_version = u16::from_le_bytes([fields[8], fields[9]]);
        if !JOURNAL_FORMATS_READ.contains(&format_version) {
            return Err(HeaderError::Version {
                found: format_version,
            });
        }
        let stored = u32::from_le_bytes([fields[48], fields[49], fields[50], fields[51]]);
        if Crc32c::new().update(&fields[..48]).finish() != stored {
            return Err(HeaderError::Checksum);
        }
        let mut release = [0_u8; RELEASE_BYTES];
        release.copy_from_slice(&fields[16..16 + RELEASE_BYTES]);
        Ok(SegmentHeader {
            format_version,
            release,
        })
    }
}

/// Whether a segment starts like one of format 1, which had no header: a record header with a
/// 32-bit length in bounds and a nonzero sequence.
fn looks_like_format_1(bytes: &[u8]) -> bool {
    let length = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let seq_nonzero = bytes[8..16].iter().any(|&b| b != 0);
    (1..=crate::record::PAYLOAD_MAX_BYTES as u32).contains(&length) && seq_nonzero
}

/// Whether the file at `path` starts with a segment header this release reads (a spare left by
/// an older release has none).
fn has_header(path: &Path) -> bool {
    let mut fields = [0_u8; HEADER_FIELDS_BYTES];
    File::open(path)
        .and_then(|file| file.read_exact_at(&mut fields, 0))
        .is_ok_and(|()| SegmentHeader::parse(&fields).is_ok())
}

impl Default for SegmentHeader {
    fn default() -> Self {
        SegmentHeader::new()
    }
}

/// Suffix of segment files.
pub const SEGMENT_SUFFIX: &str = ".journal";
/// Name of the segment prepared ahead of need (see [`prepare_spare`]).
pub const SPARE_NAME: &str = "next.journal-spare";
/// Bound on the files the journal directory may hold; listing more is an error, not a long walk.
pub const DIR_ENTRIES_MAX: usize = 1_000_000;

/// The path of the segment starting at `first_seq`.
pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SEGMENT_SUFFIX}"))
}

/// The first sequence of a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Files in `dir` whose names `parse` accepts, sorted by the parsed number.
pub fn list_numbered(
    dir: &Path,
    parse: impl Fn(&str) -> Option<u64>,
) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if out.len() >= DIR_ENTRIES_MAX {
            return Err(io::Error::other("too many files in the journal directory"));
        }
        if let Some(number) = entry.file_name().to_str().and_then(&parse) {
            out.push((number, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(number, _)| *number);
    Ok(out)
}

/// Segments in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    list_numbered(dir, parse_segment_name)
}

/// Prefix of spares under construction; recovery deletes leftovers.
pub const SPARE_TMP_PREFIX: &str = "next.journal-spare.tmp-";

/// Creates the spare segment: preallocated, zero-filled and headed, durable, built under a
/// temporary name (`SPARE_TMP_PREFIX` + `builder`) and renamed into place only once complete,
/// so the writer never activates a half-built spare that a builder is still writing into. Done
/// ahead of need on a helper thread because zero-filling 64 MiB takes a noticeable fraction of
/// a second, which must not stall commits at rotation.
pub fn prepare_spare(dir: &Path, segment_bytes: u64, builder: &str) -> io::Result<()> {
    let path = dir.join(format!("{SPARE_TMP_PREFIX}{builder}"));
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    fallocate(&file, segment_bytes)?;
    zero_fill(&file, 0, segment_bytes)?;
    let mut block = [0_u8; SEGMENT_HEADER_BYTES];
    block[..HEADER_FIELDS_BYTES].copy_from_slice(&SegmentHeader::new().encode());
    file.write_all_at(&block, 0)?;
    file.sync_all()?;
    std::fs::rename(&path, dir.join(SPARE_NAME))?;
    sync_dir(dir)
}

/// Turns the spare (prepared now if it is missing or of the wrong size) into the segment
/// starting at `first_seq`, durably, and opens it for `O_DIRECT` writes; records go at
/// [`SEGMENT_HEADER_BYTES`] on. Every file that ever bears the spare's name is complete and
/// headed, so whichever one the rename takes (a builder may rename a new one into place at any
/// moment) is a valid segment.
pub fn activate_spare(dir: &Path, first_seq: u64, segment_bytes: u64) -> io::Result<File> {
    let spare = dir.join(SPARE_NAME);
    let ready = std::fs::metadata(&spare).is_ok_and(|meta| meta.len() == segment_bytes)
        && has_header(&spare);
    if !ready {
        prepare_spare(dir, segment_bytes, "writer")?;
    }
    let path = segment_path(dir, first_seq);
    std::fs::rename(&spare, &path)?;
    sync_dir(dir)?;
    open_direct(&path, false)
}
