//! The versions of the on-disk formats this release writes and reads, and the release that wrote
//! a file. Every journal segment and snapshot names both in its header, so a file written by
//! another format is refused at start with one line naming the file, the version found and the
//! versions supported, instead of being misread.

/// The journal format this release writes: segment header + records (see [`crate::segment`] and
/// [`crate::record`]). Version 1 had neither header nor a record version; version 2 had no term
/// in its records.
pub const JOURNAL_FORMAT_VERSION: u16 = 3;
/// Journal formats this release reads (format 2: records without a term, read as term 0).
pub const JOURNAL_FORMATS_READ: &[u16] = &[2, JOURNAL_FORMAT_VERSION];
/// The snapshot file format this release writes (see [`crate::snapshot`]). Version 1's header
/// carried no engine image version and no release.
pub const SNAPSHOT_FORMAT_VERSION: u16 = 2;
/// Snapshot file formats this release reads.
pub const SNAPSHOT_FORMATS_READ: &[u16] = &[SNAPSHOT_FORMAT_VERSION];
/// Bytes of the release name in a header: `peregrine-persist <version>`, zero-padded.
pub const RELEASE_BYTES: usize = 32;

/// This release's name as stored in headers.
pub fn release() -> [u8; RELEASE_BYTES] {
    let name = concat!("peregrine-persist ", env!("CARGO_PKG_VERSION")).as_bytes();
    let mut out = [0_u8; RELEASE_BYTES];
    let len = name.len().min(RELEASE_BYTES);
    out[..len].copy_from_slice(&name[..len]);
    out
}

/// A stored release name, for messages (lossy: it is only ever shown).
pub fn release_name(stored: &[u8; RELEASE_BYTES]) -> String {
    let end = stored.iter().position(|&b| b == 0).unwrap_or(RELEASE_BYTES);
    String::from_utf8_lossy(&stored[..end]).into_owned()
}

/// `"2"` or `"1, 2"`: the versions a message lists as supported.
pub fn versions_list(versions: &[u16]) -> String {
    let listed: Vec<String> = versions.iter().map(u16::to_string).collect();
    listed.join(", ")
}

const _: () = assert!(JOURNAL_FORMAT_VERSION > 1 && SNAPSHOT_FORMAT_VERSION > 1);
