//! The shipping protocol's frames, over one mutually authenticated TLS stream.
//!
//! Every frame is a 4-byte header — `u8` kind, `u8` zero, `u16` body length (little endian) —
//! then the body. The length is checked against the kind's bound before anything is read into
//! memory, so a peer can never make us allocate more than [`BODY_MAX_BYTES`].
//!
//! ```text
//! HELLO     standby → primary  u32 magic "PGSB", u16 version, u16 flags (bit 0: last term
//!                              known), u64 next_seq, u64 the term of its record next_seq − 1
//! RECORD    primary → standby  u64 seq, u64 term, u64 primary durable seq, payload (a journal
//!                              payload)
//! HEARTBEAT primary → standby  u64 primary durable seq   (when no record went out for a while)
//! ACK       standby → primary  u64 durable seq            (its own journal's)
//! REFUSE    primary → standby  u16 reason code, u64 the primary's durable seq
//! TERM      primary → standby  u64 the primary's leadership term (first, after HELLO)
//! SNAPSHOT  primary → standby  u64 the snapshot's sequence, u64 its engine image's bytes
//! CHUNK     primary → standby  the next 1..=BODY_MAX_BYTES bytes of that image
//! ```
//!
//! SNAPSHOT (after TERM, before any RECORD) answers a HELLO whose sequence the primary's
//! journal no longer holds: the standby takes the image (at most [`SNAPSHOT_MAX_BYTES`]) in
//! CHUNKs, makes it its journal's start, and the RECORDs that follow start after its sequence.
//!
//! Version 2 added TERM: a standby that has seen a newer term (through etcd) refuses every
//! record of a primary of an older one (a deposed primary cannot have its records accepted).
//! Version 3 added the record's term to RECORD (journal format 3 stores it), so a standby
//! journals each record under the term that sequenced it and refuses one of an older term than
//! its journal's newest. HELLO carries the term of the standby's last record, so a primary whose
//! record at that sequence has another term refuses it ([`RefuseReason::Diverged`]): a deposed
//! primary rejoining with the records it wrote after losing its lease has another history.

use peregrine_persist::record::PAYLOAD_MAX_BYTES;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Seq;

/// Protocol version in HELLO; a primary refuses any other.
pub const PROTOCOL_VERSION: u16 = 3;
/// HELLO's magic: "PGSB".
pub const MAGIC: u32 = u32::from_le_bytes(*b"PGSB");
/// Bytes of a frame header.
pub const HEADER_BYTES: usize = 4;
/// Bytes of a RECORD body before its payload.
pub const RECORD_PREFIX_BYTES: usize = 24;
/// Largest body of any frame: a RECORD with the largest journal payload.
pub const BODY_MAX_BYTES: usize = RECORD_PREFIX_BYTES + PAYLOAD_MAX_BYTES;
const _: () = assert!(BODY_MAX_BYTES <= u16::MAX as usize);

const KIND_HELLO: u8 = 1;
const KIND_RECORD: u8 = 2;
const KIND_HEARTBEAT: u8 = 3;
const KIND_ACK: u8 = 4;
const KIND_REFUSE: u8 = 5;
const KIND_TERM: u8 = 6;
const KIND_SNAPSHOT: u8 = 7;
const KIND_CHUNK: u8 = 8;
/// Largest engine image a primary sends or a standby takes: far past any configured engine,
/// and a bound on what one standby holds in memory while it receives one.
pub const SNAPSHOT_MAX_BYTES: u64 = 4 << 30;
/// HELLO's flag: its last term is known.
const HELLO_TERM_KNOWN: u16 = 1;

/// Why a primary refused a standby.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The standby speaks another protocol version (or is not a standby).
    #[error("protocol version or magic not understood")]
    Protocol,
    /// The standby's journal goes past the primary's: it holds another history.
    #[error("the standby's journal is ahead of the primary's (another history)")]
    Ahead,
    /// The primary's journal no longer holds the standby's next sequence (retention deleted it):
    /// the standby needs a snapshot first.
    #[error("the primary's journal no longer holds the standby's next sequence")]
    JournalGone,
    /// The primary already serves its maximum number of standbys.
    #[error("the primary serves its maximum number of standbys")]
    Full,
    /// The primary's journal could not be read.
    #[error("the primary could not read its journal")]
    PrimaryJournal,
    /// The standby's last record has another term than the primary's at that sequence: it
    /// holds records of a deposed leader the primary never had (another history).
    #[error("the standby's last record has another term than the primary's (another history)")]
    Diverged,
}

impl RefuseReason {
    fn code(self) -> u16 {
        match self {
            RefuseReason::Protocol => 1,
            RefuseReason::Ahead => 2,
            RefuseReason::JournalGone => 3,
            RefuseReason::Full => 4,
            RefuseReason::PrimaryJournal => 5,
            RefuseReason::Diverged => 6,
        }
    }

    fn from_code(code: u16) -> Option<RefuseReason> {
        Some(match code {
            1 => RefuseReason::Protocol,
            2 => RefuseReason::Ahead,
            3 => RefuseReason::JournalGone,
            4 => RefuseReason::Full,
            5 => RefuseReason::PrimaryJournal,
            6 => RefuseReason::Diverged,
            _ => return None,
        })
    }
}

/// One decoded frame; a RECORD's payload is in the reader's buffer.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame<'a> {
    /// A standby's opening.
    Hello {
        /// The protocol version it speaks.
        version: u16,
        /// The first sequence it wants.
        next_seq: Seq,
        /// The term of its record `next_seq - 1`; `None` when its journal does not know it (no
        /// record, or only a snapshot).
        last_term: Option<u64>,
    },
    /// One journal record.
    Record {
        /// Its sequence.
        seq: Seq,
        /// The term of the leader that sequenced it (its journal record's).
        term: u64,
        /// The primary's durable sequence when it was sent (for lag).
        primary_durable_seq: Seq,
        /// The journal payload (not yet validated).
        payload: &'a [u8],
    },
    /// Nothing to send: the primary's durable sequence.
    Heartbeat {
        /// The primary's durable sequence.
        primary_durable_seq: Seq,
    },
    /// The standby's durable sequence.
    Ack {
        /// Every record up to it is durable in the standby's journal.
        durable_seq: Seq,
    },
    /// The primary refuses this standby.
    Refuse {
        /// Why.
        reason: RefuseReason,
        /// The primary's durable sequence.
        primary_durable_seq: Seq,
    },
    /// The primary's leadership term (0: it runs without etcd).
    Term {
        /// The term.
        term: u64,
    },
    /// An engine image follows in CHUNKs: the state after `seq`.
    Snapshot {
        /// The sequence of the last command the image holds.
        seq: Seq,
        /// Bytes of the image (at most [`SNAPSHOT_MAX_BYTES`]).
        image_bytes: u64,
    },
    /// The next bytes of the image.
    Chunk {
        /// They.
        bytes: &'a [u8],
    },
}

/// Bytes on the stream that are not a valid frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The stream failed or ended.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// An unknown frame kind.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// A body length out of the kind's bounds, or a nonzero reserved byte.
    #[error("frame kind {kind}: body of {length} bytes is out of bounds")]
    Length {
        /// The kind.
        kind: u8,
        /// The announced length.
        length: usize,
    },
    /// A REFUSE with a code this release does not know.
    #[error("refusal code {0} not understood")]
    RefuseCode(u16),
}

fn u64_at(body: &[u8], at: usize) -> Seq {
    let mut le = [0_u8; 8];
    le.copy_from_slice(&body[at..at + 8]);
    u64::from_le_bytes(le)
}

/// Reads one frame into `buf` (reused; never grown past [`BODY_MAX_BYTES`]).
pub async fn read_frame<'a, R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &'a mut Vec<u8>,
) -> Result<Frame<'a>, WireError> {
    let mut header = [0_u8; HEADER_BYTES];
    reader.read_exact(&mut header).await?;
    let kind = header[0];
    let length = usize::from(u16::from_le_bytes([header[2], header[3]]));
    let fits = match kind {
        KIND_HELLO => length == 24,
        KIND_RECORD => length > RECORD_PREFIX_BYTES && length <= BODY_MAX_BYTES,
        KIND_HEARTBEAT | KIND_ACK | KIND_TERM => length == 8,
        KIND_SNAPSHOT => length == 16,
        KIND_CHUNK => length > 0 && length <= BODY_MAX_BYTES,
        KIND_REFUSE => length == 10,
        other => return Err(WireError::Kind(other)),
    };
    if !fits || header[1] != 0 {
        return Err(WireError::Length { kind, length });
    }
    buf.clear();
    buf.resize(length, 0);
    reader.read_exact(buf).await?;
    let body: &'a [u8] = buf;
    Ok(match kind {
        KIND_HELLO => {
            let magic = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
            let version = u16::from_le_bytes([body[4], body[5]]);
            let flags = u16::from_le_bytes([body[6], body[7]]);
            // A wrong magic reads as an unknown version: the primary refuses both alike.
            Frame::Hello {
                version: if magic == MAGIC && flags <= HELLO_TERM_KNOWN {
                    version
                } else {
                    0
                },
                next_seq: u64_at(body, 8),
                last_term: (flags == HELLO_TERM_KNOWN).then(|| u64_at(body, 16)),
            }
        }
        KIND_RECORD => Frame::Record {
            seq: u64_at(body, 0),
            term: u64_at(body, 8),
            primary_durable_seq: u64_at(body, 16),
            payload: &body[RECORD_PREFIX_BYTES..],
        },
        KIND_HEARTBEAT => Frame::Heartbeat {
            primary_durable_seq: u64_at(body, 0),
        },
        KIND_ACK => Frame::Ack {
            durable_seq: u64_at(body, 0),
        },
        KIND_TERM => Frame::Term {
            term: u64_at(body, 0),
        },
        KIND_SNAPSHOT => Frame::Snapshot {
            seq: u64_at(body, 0),
            image_bytes: u64_at(body, 8),
        },
        KIND_CHUNK => Frame::Chunk { bytes: body },
        _ => {
            let code = u16::from_le_bytes([body[0], body[1]]);
            Frame::Refuse {
                reason: RefuseReason::from_code(code).ok_or(WireError::RefuseCode(code))?,
                primary_durable_seq: u64_at(body, 2),
            }
        }
    })
}

fn push_header(out: &mut Vec<u8>, kind: u8, body_bytes: usize) {
    assert!(body_bytes <= BODY_MAX_BYTES);
    // Lossless: bounded above, and BODY_MAX_BYTES fits in u16 (compile-time assert).
    let length = (body_bytes as u16).to_le_bytes();
    out.extend_from_slice(&[kind, 0, length[0], length[1]]);
}

/// Appends a frame to `out` (a buffer written to the stream in one go).
pub fn encode(out: &mut Vec<u8>, frame: &Frame<'_>) {
    match *frame {
        Frame::Hello {
            version,
            next_seq,
            last_term,
        } => {
            push_header(out, KIND_HELLO, 24);
            out.extend_from_slice(&MAGIC.to_le_bytes());
            out.extend_from_slice(&version.to_le_bytes());
            let flags = if last_term.is_some() {
                HELLO_TERM_KNOWN
            } else {
                0
            };
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&next_seq.to_le_bytes());
            out.extend_from_slice(&last_term.unwrap_or(0).to_le_bytes());
        }
        Frame::Record {
            seq,
            term,
            primary_durable_seq,
            payload,
        } => {
            assert!(!payload.is_empty() && payload.len() <= PAYLOAD_MAX_BYTES);
            push_header(out, KIND_RECORD, RECORD_PREFIX_BYTES + payload.len());
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&term.to_le_bytes());
            out.extend_from_slice(&primary_durable_seq.to_le_bytes());
            out.extend_from_slice(payload);
        }
        Frame::Heartbeat {
            primary_durable_seq,
        } => {
            push_header(out, KIND_HEARTBEAT, 8);
            out.extend_from_slice(&primary_durable_seq.to_le_bytes());
        }
        Frame::Ack { durable_seq } => {
            push_header(out, KIND_ACK, 8);
            out.extend_from_slice(&durable_seq.to_le_bytes());
        }
        Frame::Term { term } => {
            push_header(out, KIND_TERM, 8);
            out.extend_from_slice(&term.to_le_bytes());
        }
        Frame::Snapshot { seq, image_bytes } => {
            push_header(out, KIND_SNAPSHOT, 16);
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&image_bytes.to_le_bytes());
        }
        Frame::Chunk { bytes } => {
            assert!(!bytes.is_empty() && bytes.len() <= BODY_MAX_BYTES);
            push_header(out, KIND_CHUNK, bytes.len());
            out.extend_from_slice(bytes);
        }
        Frame::Refuse {
            reason,
            primary_durable_seq,
        } => {
            push_header(out, KIND_REFUSE, 10);
            out.extend_from_slice(&reason.code().to_le_bytes());
            out.extend_from_slice(&primary_durable_seq.to_le_bytes());
        }
    }
}

/// Writes one frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &Frame<'_>,
) -> Result<(), WireError> {
    let mut out = Vec::with_capacity(HEADER_BYTES + 16);
    encode(&mut out, frame);
    writer.write_all(&out).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_lengths_are_refused_unread() {
        let frames = [
            Frame::Hello {
                version: PROTOCOL_VERSION,
                next_seq: 7,
                last_term: Some(3),
            },
            Frame::Hello {
                version: PROTOCOL_VERSION,
                next_seq: 1,
                last_term: None,
            },
            Frame::Record {
                seq: 9,
                term: 4,
                primary_durable_seq: 12,
                payload: b"abc",
            },
            Frame::Heartbeat {
                primary_durable_seq: 3,
            },
            Frame::Ack { durable_seq: 4 },
            Frame::Term { term: 6 },
            Frame::Snapshot {
                seq: 40,
                image_bytes: 9_000,
            },
            Frame::Chunk { bytes: b"image" },
            Frame::Refuse {
                reason: RefuseReason::JournalGone,
                primary_durable_seq: 5,
            },
        ];
        let mut out = Vec::new();
        for frame in &frames {
            encode(&mut out, frame);
        }
        let mut reader = &out[..];
        let mut buf = Vec::new();
        for frame in &frames {
            assert_eq!(&read_frame(&mut reader, &mut buf).await.unwrap(), frame);
        }
        // A RECORD announcing more than the bound is refused from its header alone.
        let mut reader = &[KIND_RECORD, 0, 0xff, 0xff][..];
        assert!(matches!(
            read_frame(&mut reader, &mut buf).await,
            Err(WireError::Length { length: 65535, .. })
        ));
        let mut reader = &[9_u8, 0, 0, 0][..];
        assert!(matches!(
            read_frame(&mut reader, &mut buf).await,
            Err(WireError::Kind(9))
        ));
        assert!(buf.capacity() <= BODY_MAX_BYTES);
    }
}
