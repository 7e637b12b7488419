//! The journal tailer: reads commands from the segment files in sequence order, never past a
//! durable bound, without locking the directory or touching the files (the writer owns them).
//!
//! Segments are preallocated and zero-filled and written with `O_DIRECT`; ordinary buffered
//! reads see completed direct writes. A record at or below the durable bound is complete, so a
//! damaged one there is corruption, except that a chunk read while a write was landing can hold
//! a half-old block: the tailer re-reads once from the file before calling it corrupt.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::Seq;
use crate::payload::{self, Scratch};
use crate::record::{self, Parsed, RECORD_MAX_BYTES};
use crate::segment::{SEGMENT_HEADER_BYTES, SegmentHeader, list_segments, segment_path};
use peregrine_hotpath::Envelope;

use super::FollowError;

/// Bytes read from a segment at once: many records per system call, bounded memory.
pub const CHUNK_BYTES: usize = 1 << 20;

/// What the tailer does at a damaged record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TornRecord {
    /// A live journal: below the durable bound a damaged record is corruption (an error).
    IsCorruption,
    /// A closed journal: a damaged record is its torn end (as recovery would truncate it).
    IsEnd,
}

/// One open segment and the chunk of it in memory.
#[derive(Debug)]
struct OpenSegment {
    path: PathBuf,
    file: File,
    len_bytes: u64,
    /// Offset of the next record to parse.
    offset: u64,
    /// File bytes `[chunk_start, chunk_start + chunk.len())`.
    chunk: Vec<u8>,
    chunk_start: u64,
}

impl OpenSegment {
    /// Makes the chunk cover the record at `offset` (a whole record, or the rest of the file).
    fn fill(&mut self, force: bool) -> Result<(), FollowError> {
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        let covered = self.offset >= self.chunk_start
            && (self.offset + RECORD_MAX_BYTES as u64 <= chunk_end || chunk_end == self.len_bytes);
        if covered && !force {
            return Ok(());
        }
        let want = (self.len_bytes.saturating_sub(self.offset)).min(CHUNK_BYTES as u64) as usize;
        self.chunk.clear();
        self.chunk.resize(want, 0);
        self.chunk_start = self.offset;
        let mut filled = 0_usize;
        // Bounded by `want`: each pass reads at least one byte or stops.
        while filled < want {
            let read = self
                .file
                .read_at(&mut self.chunk[filled..], self.offset + filled as u64)
                .map_err(|source| FollowError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        self.chunk.truncate(filled);
        Ok(())
    }

    /// Forgets the chunk so the next parse reads the file again (bytes past the durable bound
    /// may have changed since they were read).
    fn forget(&mut self) {
        self.chunk.clear();
        self.chunk_start = self.offset;
    }
}

/// Reads commands from a journal directory, in sequence order.
#[derive(Debug)]
pub struct Tailer {
    dir: PathBuf,
    next_seq: Seq,
    /// The last returned record's term.
    term: u64,
    torn: TornRecord,
    segment: Option<OpenSegment>,
    scratch: Scratch,
}

impl Tailer {
    /// A tailer whose next command is `next_seq`.
    pub fn new(dir: impl Into<PathBuf>, next_seq: Seq, torn: TornRecord) -> Tailer {
        assert!(next_seq >= 1, "sequences start at 1");
        Tailer {
            dir: dir.into(),
            next_seq,
            term: 0,
            torn,
            segment: None,
            scratch: Scratch::with_capacity(RECORD_MAX_BYTES),
        }
    }

    /// The sequence the next command will have.
    pub fn next_seq(&self) -> Seq {
        self.next_seq
    }

    /// The term of the last command [`next`](Tailer::next) returned (0 before the first, and
    /// for format-2 records).
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The next command if its sequence is at most `bound` and it is in the files; `None` when
    /// there is nothing more yet.
    pub fn next(&mut self, bound: Seq) -> Result<Option<(Seq, Envelope)>, FollowError> {
        if self.next_seq > bound {
            return Ok(None);
        }
        let mut reread = false;
        // Bounded by the segment's length: each pass moves past one record, re-reads once,
        // switches to the next segment once, or returns.
        loop {
            if self.segment.is_none() {
                match self.open_segment()? {
                    Some(segment) => self.segment = Some(segment),
                    None => return Ok(None),
                }
            }
            let Some(segment) = self.segment.as_mut() else {
                return Ok(None);
            };
            segment.fill(reread)?;
            let at = (segment.offset - segment.chunk_start) as usize;
            match record::parse(&segment.chunk[at..]) {
                Parsed::Record {
                    seq,
                    term,
                    payload,
                    record_bytes,
                } => {
                    if seq < self.next_seq {
                        // Opened mid-segment: skip what came before.
                        segment.offset += record_bytes as u64;
                        continue;
                    }
                    if seq > self.next_seq {
                        return Err(FollowError::Journal {
                            path: segment.path.clone(),
                            offset: segment.offset,
                            reason: format!("expected sequence {}, found {seq}", self.next_seq),
                        });
                    }
                    let command =
                        payload::decode(payload, &mut self.scratch).map_err(|reason| {
                            FollowError::Journal {
                                path: segment.path.clone(),
                                offset: segment.offset,
                                reason: format!("payload does not decode: {reason}"),
                            }
                        })?;
                    segment.offset += record_bytes as u64;
                    self.next_seq += 1;
                    self.term = term;
                    return Ok(Some((seq, command)));
                }
                Parsed::Empty => {
                    segment.forget();
                    // The writer may have moved on to the segment that starts here.
                    if segment_path(&self.dir, self.next_seq).exists() {
                        self.segment = None;
                        continue;
                    }
                    return Ok(None);
                }
                Parsed::Invalid(invalid) => {
                    if !reread {
                        reread = true;
                        continue;
                    }
                    segment.forget();
                    return match self.torn {
                        TornRecord::IsEnd => Ok(None),
                        TornRecord::IsCorruption => Err(FollowError::Journal {
                            path: segment.path.clone(),
                            offset: segment.offset,
                            reason: invalid.to_string(),
                        }),
                    };
                }
            }
        }
    }

    /// Opens the segment that holds `next_seq`: the last one starting at or before it.
    fn open_segment(&self) -> Result<Option<OpenSegment>, FollowError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FollowError::Io { path, source }
        };
        let segments = list_segments(&self.dir).map_err(io_error(&self.dir))?;
        if segments.is_empty() {
            return Ok(None);
        }
        let Some((_, path)) = segments
            .iter()
            .rev()
            .find(|(first_seq, _)| *first_seq <= self.next_seq)
        else {
            return Err(FollowError::SegmentMissing {
                dir: self.dir.clone(),
                seq: self.next_seq,
            });
        };
        let file = File::open(path).map_err(io_error(path))?;
        let len_bytes = file.metadata().map_err(io_error(path))?.len();
        let mut header = [0_u8; SEGMENT_HEADER_BYTES];
        file.read_exact_at(&mut header, 0).map_err(io_error(path))?;
        if let Err(error) = SegmentHeader::parse(&header) {
            return Err(FollowError::Journal {
                path: path.clone(),
                offset: 0,
                reason: error.to_string(),
            });
        }
        Ok(Some(OpenSegment {
            path: path.clone(),
            file,
            len_bytes,
            offset: SEGMENT_HEADER_BYTES as u64,
            chunk: Vec::with_capacity(CHUNK_BYTES),
            chunk_start: SEGMENT_HEADER_BYTES as u64,
        }))
    }
}

/// The sequence of the last valid record of a closed journal (0 if it holds none), as recovery
/// would find it (a torn tail is not counted).
pub fn last_valid_seq(dir: &Path) -> Result<Seq, FollowError> {
    let segments = list_segments(dir).map_err(|source| FollowError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let Some((first_seq, _)) = segments.last() else {
        return Ok(0);
    };
    // Only the newest segment can end mid-way; the ones before it are full up to the next.
    let mut tailer = Tailer::new(dir, *first_seq, TornRecord::IsEnd);
    let mut last_seq = first_seq.saturating_sub(1);
    // Bounded by the segment's records.
    while let Some((seq, _)) = tailer.next(Seq::MAX)? {
        last_seq = seq;
    }
    Ok(last_seq)
}
