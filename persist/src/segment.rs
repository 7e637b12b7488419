//! Segment files: preallocated, zero-filled files of records, named after the sequence of their
//! first record (`00000000000000000001.journal`), so listing the directory orders them and a
//! reader knows which sequence each must start with.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::io::{fallocate, open_direct, sync_dir, zero_fill};

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

/// Creates the spare segment: preallocated and zero-filled, durable, built under a temporary
/// name (`SPARE_TMP_PREFIX` + `builder`) and renamed into place only once complete, so the
/// writer never activates a half-built spare that a builder is still writing zeros into. Done
/// ahead of need on a helper thread because zero-filling 64 MiB takes a noticeable fraction of a
/// second, which must not stall commits at rotation.
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
    file.sync_all()?;
    std::fs::rename(&path, dir.join(SPARE_NAME))?;
    sync_dir(dir)
}

/// Turns the spare (prepared now if it is missing or of the wrong size) into the segment
/// starting at `first_seq`, durably, and opens it for `O_DIRECT` writes.
pub fn activate_spare(dir: &Path, first_seq: u64, segment_bytes: u64) -> io::Result<File> {
    let spare = dir.join(SPARE_NAME);
    let ready = std::fs::metadata(&spare).is_ok_and(|meta| meta.len() == segment_bytes);
    if !ready {
        prepare_spare(dir, segment_bytes, "writer")?;
    }
    let path = segment_path(dir, first_seq);
    std::fs::rename(&spare, &path)?;
    sync_dir(dir)?;
    open_direct(&path, false)
}
