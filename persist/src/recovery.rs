//! Recovery: the newest valid snapshot plus a replay of the journal after it.
//!
//! A damaged record at the very end of the journal (a write torn by the crash) is truncated
//! (zeroed) and reported. A damaged record followed by valid ones is corruption in the middle:
//! start-up stops with [`RecoveryError::Corrupt`] naming the file and byte offset. Sequence
//! numbers must be gap-free across segments and from the snapshot on.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use peregrine_hotpath::{Engine, EngineConfig, Envelope, Event, SNAPSHOT_VERSION};

use crate::config::JournalConfig;
use crate::error::RecoveryError;
use crate::format::{JOURNAL_FORMATS_READ, SNAPSHOT_FORMATS_READ, versions_list};
use crate::io::{BLOCK_BYTES, fallocate, sync_dir, zero_fill};
use crate::lock::DirLock;
use crate::marker::{MarkerError, MarkerFile};
use crate::payload::{self, Scratch};
use crate::record::{self, Parsed, RECORD_ALIGN_BYTES};
use crate::segment::{
    HeaderError, SEGMENT_HEADER_BYTES, SPARE_TMP_PREFIX, SegmentHeader, list_segments,
};
use crate::snapshot::{SNAPSHOT_TMP_SUFFIX, SnapshotReadError, list_snapshots, read_snapshot};
use crate::tip::{TIP_FILE, read_tip};
use crate::writer::{Seq, Tail};

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The snapshot used, if any, and its sequence.
    pub snapshot: Option<(PathBuf, Seq)>,
    /// Newer snapshots that were skipped, and why.
    pub snapshots_skipped: Vec<(PathBuf, String)>,
    /// Records replayed into the engine (those after the snapshot).
    pub replayed_count: u64,
    /// The torn tail that was truncated, if any.
    pub torn_tail: Option<TornTail>,
    /// Segments read.
    pub segments_count: usize,
    /// The journal ended below its durable tip and the loss was accepted (`accept_lost_tail`):
    /// (the tip, the journal's end).
    pub lost_tail: Option<(Seq, Seq)>,
    /// The newest segment was shorter than a segment (copied, restored or cut short by a full
    /// disk) and was extended with zeros so the writer can append: (file, from bytes, to bytes).
    pub segment_extended: Option<(PathBuf, u64, u64)>,
}

/// A damaged end of the journal, truncated by recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment.
    pub path: PathBuf,
    /// Where the damaged record started (the new end of the journal).
    pub offset: u64,
    /// Bytes zeroed.
    pub zeroed_bytes: u64,
    /// What was wrong.
    pub reason: String,
}

/// The outcome of recovery.
#[derive(Debug)]
pub struct Recovered {
    /// The engine, at `last_seq`.
    pub engine: Engine,
    /// Last sequence applied (0 for an empty journal without snapshot).
    pub last_seq: Seq,
    /// Where the writer resumes.
    pub tail: Tail,
    /// What happened.
    pub report: RecoveryReport,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RecoveryError + '_ {
    move |source| RecoveryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Recovers the engine from `config.dir` (created if missing). `engine_config` builds the engine
/// when no snapshot is used. The directory is locked while this runs, so a journal in use by a
/// running writer is refused with [`RecoveryError::Locked`] instead of truncated under it.
pub fn recover(
    config: &JournalConfig,
    engine_config: EngineConfig,
) -> Result<Recovered, RecoveryError> {
    recover_locked(config, engine_config, &mut |_, _, _| {}).map(|(recovered, _lock)| recovered)
}

/// [`recover`], calling `observer` with every replayed command (those after the snapshot
/// used) and the events it produced: for audits and tests that check the log against what
/// clients were told.
pub fn recover_observed(
    config: &JournalConfig,
    engine_config: EngineConfig,
    observer: &mut dyn FnMut(Seq, &Envelope, &[Event]),
) -> Result<Recovered, RecoveryError> {
    recover_locked(config, engine_config, observer).map(|(recovered, _lock)| recovered)
}

/// [`recover`], returning the directory lock still held (for the writer that follows).
pub(crate) fn recover_locked(
    config: &JournalConfig,
    engine_config: EngineConfig,
    observer: &mut dyn FnMut(Seq, &Envelope, &[Event]),
) -> Result<(Recovered, DirLock), RecoveryError> {
    config.validate()?;
    let dir = &config.dir;
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent).map_err(io_error(parent))?;
        }
    }
    sync_dir(dir).map_err(io_error(dir))?;
    let lock = DirLock::acquire(dir)?;
    remove_leftovers(dir)?;

    let mut report = RecoveryReport::default();
    let segments = list_segments(dir).map_err(io_error(dir))?;
    report.segments_count = segments.len();
    let (mut engine, snapshot_seq) = start_engine(dir, engine_config, &segments, &mut report)?;

    let mut scratch = Scratch::with_capacity(BLOCK_BYTES);
    let mut events: Vec<Event> = Vec::with_capacity(1_024);
    let mut last_seq: Option<Seq> = None;
    // Terms never decrease along a journal (the writer stamps them so): one that does is
    // corruption, or a deposed primary's records spliced in.
    let mut last_term = 0_u64;
    let mut tail = Tail {
        segment_first_seq: None,
        offset_bytes: 0,
        last_seq: snapshot_seq,
        last_term: None,
    };
    for (index, (first_seq, path)) in segments.iter().enumerate() {
        let is_last = index + 1 == segments.len();
        if let Some(last) = last_seq
            && *first_seq != last.saturating_add(1)
        {
            return Err(RecoveryError::Gap {
                path: path.clone(),
                offset: 0,
                expected: last.saturating_add(1),
                found: *first_seq,
            });
        }
        let bytes = std::fs::read(path).map_err(io_error(path))?;
        check_segment_header(path, &bytes)?;
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(RecoveryError::Corrupt {
                path: path.clone(),
                offset: 0,
                reason: format!("{} bytes, shorter than a segment header", bytes.len()),
            });
        }
        let mut offset = SEGMENT_HEADER_BYTES;
        // Bounded by the segment's length: each pass moves past one record or leaves.
        let end: Option<String> = loop {
            match record::parse(&bytes[offset..]) {
                Parsed::Record {
                    seq,
                    term,
                    payload,
                    record_bytes,
                } => {
                    let expected = last_seq.map_or(*first_seq, |last| last.saturating_add(1));
                    if seq != expected {
                        return Err(RecoveryError::Gap {
                            path: path.clone(),
                            offset: offset as u64,
                            expected,
                            found: seq,
                        });
                    }
                    if term < last_term {
                        return Err(RecoveryError::Corrupt {
                            path: path.clone(),
                            offset: offset as u64,
                            reason: format!(
                                "record {seq} has term {term}, older than its predecessor's \
                                 {last_term}"
                            ),
                        });
                    }
                    last_term = term;
                    if seq > snapshot_seq {
                        if seq != snapshot_seq.saturating_add(1) && report.replayed_count == 0 {
                            return Err(RecoveryError::Gap {
                                path: path.clone(),
                                offset: offset as u64,
                                expected: snapshot_seq.saturating_add(1),
                                found: seq,
                            });
                        }
                        let command = payload::decode(payload, &mut scratch).map_err(|reason| {
                            RecoveryError::Corrupt {
                                path: path.clone(),
                                offset: offset as u64,
                                reason: format!("payload does not decode: {reason}"),
                            }
                        })?;
                        engine.apply(&command, &mut events);
                        observer(seq, &command, &events);
                        events.clear();
                        report.replayed_count += 1;
                    }
                    last_seq = Some(seq);
                    offset += record_bytes;
                    if offset >= bytes.len() {
                        break None;
                    }
                }
                Parsed::Empty => break None,
                Parsed::Invalid(invalid) => break Some(invalid.to_string()),
            }
        };
        // Nothing valid may follow the end of the data, in this segment or a later one.
        if let Some(found) = find_valid_after(&bytes, offset, last_seq.unwrap_or(0)) {
            return Err(RecoveryError::Corrupt {
                path: path.clone(),
                offset: offset as u64,
                reason: format!(
                    "{} followed by a valid record (sequence {}) at byte {}",
                    end.as_deref().unwrap_or("a zeroed record"),
                    found.1,
                    found.0
                ),
            });
        }
        // The newest segment's end must be all zero for the writer to append there: bytes after
        // an all-zero header (a torn record whose header was lost, stray bytes) are a torn
        // tail too, truncated and reported like one, so recovery and `replay` agree with the
        // writer.
        let end = end.or_else(|| {
            let stray = is_last
                && bytes
                    .get(offset..)
                    .is_some_and(|rest| rest.iter().any(|&b| b != 0));
            stray.then(|| "nonzero bytes after the last record".to_owned())
        });
        if let Some(reason) = end {
            if !is_last {
                return Err(RecoveryError::Corrupt {
                    path: path.clone(),
                    offset: offset as u64,
                    reason: format!("{reason}, and later segments hold records"),
                });
            }
            let zeroed_bytes = truncate_tail(path, &bytes, offset)?;
            report.torn_tail = Some(TornTail {
                path: path.clone(),
                offset: offset as u64,
                zeroed_bytes,
                reason,
            });
        }
        if is_last && (bytes.len() as u64) < config.segment_bytes {
            report.segment_extended = Some(extend_segment(
                path,
                bytes.len() as u64,
                config.segment_bytes,
            )?);
        }
        if last_seq.is_none() && !is_last {
            // An empty segment before others: harmless only if it is followed by its own
            // sequence; the next segment's name is checked against `first_seq` then.
            last_seq = first_seq.checked_sub(1);
        }
        tail = Tail {
            segment_first_seq: Some(*first_seq),
            offset_bytes: offset as u64,
            last_seq: last_seq
                .unwrap_or(first_seq.saturating_sub(1))
                .max(snapshot_seq),
            // Known only if this segment's records reach the end (`last_seq` read here).
            last_term: last_seq
                .is_some_and(|last| last >= snapshot_seq)
                .then_some(last_term),
        };
    }
    if tail.last_seq < snapshot_seq {
        // Only possible without segments after a snapshot; the writer starts a new segment.
        tail.last_seq = snapshot_seq;
    }
    if let Some(last) = last_seq
        && last < snapshot_seq
    {
        // The snapshot is ahead of the journal: the journal lost durable records.
        return Err(RecoveryError::Gap {
            path: segments
                .last()
                .map(|(_, path)| path.clone())
                .unwrap_or_else(|| dir.clone()),
            offset: tail.offset_bytes,
            expected: snapshot_seq,
            found: last,
        });
    }
    report.lost_tail = check_tip(config, tail.last_seq)?;
    Ok((
        Recovered {
            engine,
            last_seq: tail.last_seq,
            tail,
            report,
        },
        lock,
    ))
}

/// Checks that the segment at `path` has a header of a format this release reads.
pub fn check_segment_header(path: &Path, bytes: &[u8]) -> Result<(), RecoveryError> {
    match SegmentHeader::parse(bytes) {
        Ok(_) => Ok(()),
        Err(HeaderError::Version { found }) => Err(RecoveryError::Version {
            path: path.to_path_buf(),
            what: "journal",
            found: u32::from(found),
            supported: versions_list(JOURNAL_FORMATS_READ),
        }),
        Err(error) => Err(RecoveryError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: error.to_string(),
        }),
    }
}

/// Compares the journal's end with its durable tip (see [`crate::tip`]): below it, refuses
/// (or, when the loss is accepted, moves the tip down and reports the loss).
fn check_tip(
    config: &JournalConfig,
    journal_end: Seq,
) -> Result<Option<(Seq, Seq)>, RecoveryError> {
    let path = config.dir.join(TIP_FILE);
    let marker_error = |error: MarkerError| RecoveryError::Corrupt {
        path: path.clone(),
        offset: 0,
        reason: error.to_string(),
    };
    let Some(tip) = read_tip(&config.dir).map_err(marker_error)? else {
        return Ok(None);
    };
    if tip <= journal_end {
        return Ok(None);
    }
    if !config.accept_lost_tail {
        return Err(RecoveryError::LostTail {
            path,
            tip,
            journal_end,
        });
    }
    let (marker, _) = MarkerFile::open(&path).map_err(marker_error)?;
    marker.write_durable(journal_end).map_err(marker_error)?;
    Ok(Some((tip, journal_end)))
}

/// Deletes files a crash may have left half-written: snapshot temp files and spare segments
/// under construction.
fn remove_leftovers(dir: &Path) -> Result<(), RecoveryError> {
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(SNAPSHOT_TMP_SUFFIX) || name.starts_with(SPARE_TMP_PREFIX) {
            let path = entry.path();
            match std::fs::remove_file(&path) {
                // Gone already: nothing left to clean.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                result => result.map_err(io_error(&path))?,
            }
        }
    }
    Ok(())
}

/// The newest valid snapshot's engine and sequence, or a fresh engine at 0 if the journal
/// starts at 1.
fn start_engine(
    dir: &Path,
    engine_config: EngineConfig,
    segments: &[(Seq, PathBuf)],
    report: &mut RecoveryReport,
) -> Result<(Engine, Seq), RecoveryError> {
    let snapshots = list_snapshots(dir).map_err(io_error(dir))?;
    let journal_first_seq = segments.first().map_or(1, |(first, _)| *first);
    for (_, path) in snapshots.iter().rev() {
        let restored = match read_snapshot(path) {
            Ok((seq, _)) if seq.saturating_add(1) < journal_first_seq => Err(format!(
                "journal starts at {journal_first_seq}, after the snapshot"
            )),
            Ok((seq, body)) => Engine::restore_within(&body, &engine_config)
                .map(|engine| (engine, seq))
                .map_err(|e| e.to_string()),
            Err(SnapshotReadError::Damaged(reason)) => Err(reason),
            Err(SnapshotReadError::Version { found }) => {
                return Err(snapshot_version(
                    path,
                    "snapshot",
                    u32::from(found),
                    &versions_list(SNAPSHOT_FORMATS_READ),
                ));
            }
            Err(SnapshotReadError::EngineVersion { found }) => {
                return Err(snapshot_version(
                    path,
                    "snapshot engine image",
                    found,
                    &SNAPSHOT_VERSION.to_string(),
                ));
            }
        };
        match restored {
            Ok((engine, seq)) => {
                report.snapshot = Some((path.clone(), seq));
                return Ok((engine, seq));
            }
            Err(reason) => report.snapshots_skipped.push((path.clone(), reason)),
        }
    }
    if journal_first_seq != 1 {
        return Err(RecoveryError::NoStart {
            first_seq: journal_first_seq,
        });
    }
    Ok((
        Engine::new(engine_config).map_err(RecoveryError::Engine)?,
        0,
    ))
}

fn snapshot_version(path: &Path, what: &'static str, found: u32, supported: &str) -> RecoveryError {
    RecoveryError::Version {
        path: path.to_path_buf(),
        what,
        found,
        supported: supported.to_owned(),
    }
}

/// The first valid record after `offset` with a sequence above `last_seq`, as (offset, seq).
fn find_valid_after(bytes: &[u8], offset: usize, last_seq: Seq) -> Option<(usize, Seq)> {
    // The record at `offset` itself is empty or invalid: start one stride after it.
    let mut at = offset.next_multiple_of(RECORD_ALIGN_BYTES) + RECORD_ALIGN_BYTES;
    // Bounded by the segment's length, in 8-byte strides.
    while at < bytes.len() {
        if let Parsed::Record { seq, .. } = record::parse(&bytes[at..])
            && seq > last_seq
        {
            return Some((at, seq));
        }
        at += RECORD_ALIGN_BYTES;
    }
    None
}

/// Extends the segment at `path` from `len_bytes` to `segment_bytes`, preallocated and zeroed,
/// durably (as the writer's spares are made).
fn extend_segment(
    path: &Path,
    len_bytes: u64,
    segment_bytes: u64,
) -> Result<(PathBuf, u64, u64), RecoveryError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    fallocate(&file, segment_bytes).map_err(io_error(path))?;
    zero_fill(&file, len_bytes, segment_bytes - len_bytes).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))?;
    Ok((path.to_path_buf(), len_bytes, segment_bytes))
}

/// Zeroes the segment from `offset` to the end of its non-zero bytes, durably; returns the
/// bytes zeroed.
fn truncate_tail(path: &Path, bytes: &[u8], offset: usize) -> Result<u64, RecoveryError> {
    let last_nonzero = bytes.iter().rposition(|&b| b != 0).unwrap_or(0);
    let end = (last_nonzero + 1).max(offset);
    let len = (end - offset) as u64;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    zero_fill(&file, offset as u64, len).map_err(io_error(path))?;
    Ok(len)
}
