//! What a session counts for its driver's metrics: frames received and sent by kind, protocol
//! errors by kind, and when each answered order-entry request arrived. Sans-IO like the
//! session: plain numbers, taken by the driver ([`crate::session::Session::take_counts`]),
//! which owns the metrics registry and the clock.
//!
//! Counts are dense arrays indexed by [`frame_kind_index`], not maps: taking them is a copy of a
//! few hundred bytes, and a label's value always comes from [`FRAME_KINDS`] or
//! [`PROTOCOL_ERROR_KINDS`] (bounded metric cardinality, never peer data).

use crate::codec::{FrameError, kind};

/// Every frame kind byte with its metric label. Requests are below 0x80, replies at or above;
/// `heartbeat` and `logout` go both ways under one byte.
pub const FRAME_KINDS: [(u8, &str); FRAME_KIND_COUNT] = [
    (kind::HELLO, "hello"),
    (kind::LOGON, "logon"),
    (kind::NEW_ORDER, "new_order"),
    (kind::CANCEL, "cancel"),
    (kind::CANCEL_REPLACE, "cancel_replace"),
    (kind::MASS_CANCEL, "mass_cancel"),
    (kind::ORDER_STATUS, "order_status"),
    (kind::SUBSCRIBE, "subscribe"),
    (kind::UNSUBSCRIBE, "unsubscribe"),
    (kind::BALANCE, "balance"),
    (kind::HEARTBEAT, "heartbeat"),
    (kind::LOGOUT, "logout"),
    (kind::CHALLENGE, "challenge"),
    (kind::LOGON_ACK, "logon_ack"),
    (kind::ACK, "ack"),
    (kind::REJECT, "reject"),
    (kind::FILL, "fill"),
    (kind::CANCELLED, "cancelled"),
    (kind::REPLACED, "replaced"),
    (kind::DONE, "done"),
    (kind::STATUS, "status"),
    (kind::MASS_CANCELLED, "mass_cancelled"),
    (kind::TRADE, "trade"),
    (kind::BOOK_LEVEL, "book_level"),
    (kind::SNAPSHOT, "snapshot"),
    (kind::CURRENCY, "currency"),
    (kind::MARKET, "market"),
    (kind::BALANCE_REPLY, "balance"),
];

/// Frame kinds of `peregrine/2`.
pub const FRAME_KIND_COUNT: usize = 28;

/// Dense index of each kind byte in [`FRAME_KINDS`]; [`NO_KIND`] for bytes that are no kind.
/// Built at compile time, so every kind byte appears once.
const KIND_INDEX: [u8; 256] = {
    let mut table = [NO_KIND; 256];
    let mut i = 0;
    while i < FRAME_KIND_COUNT {
        let kind = FRAME_KINDS[i].0 as usize;
        assert!(table[kind] == NO_KIND, "a kind byte is listed twice");
        table[kind] = i as u8;
        i += 1;
    }
    table
};
const NO_KIND: u8 = u8::MAX;
const _: () = assert!(FRAME_KIND_COUNT < NO_KIND as usize);

/// The index of `kind` in [`FRAME_KINDS`], if it is a kind.
pub const fn frame_kind_index(kind: u8) -> Option<usize> {
    match KIND_INDEX[kind as usize] {
        NO_KIND => None,
        index => Some(index as usize),
    }
}

/// Why a session counted a protocol error, with its metric label: the frame errors
/// ([`FrameError`]), then requests the session's state does not allow, then input beyond
/// [`crate::session::INPUT_MAX_BYTES`].
pub const PROTOCOL_ERROR_KINDS: [&str; PROTOCOL_ERROR_COUNT] = [
    "frame_too_large",
    "frame_too_short",
    "unsupported_version",
    "unknown_kind",
    "bad_length",
    "bad_field",
    "not_logged_on",
    "unexpected",
    "input_overflow",
];

/// Kinds of protocol error.
pub const PROTOCOL_ERROR_COUNT: usize = 9;

/// A protocol error, as an index into [`PROTOCOL_ERROR_KINDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame that does not parse.
    Frame(FrameError),
    /// A request before logon.
    NotLoggedOn,
    /// A request not valid in the session's state (a second `Hello` or `Logon`).
    Unexpected,
    /// More unparsed input than the session buffers.
    InputOverflow,
}

impl ProtocolError {
    /// Its index in [`PROTOCOL_ERROR_KINDS`].
    pub const fn index(self) -> usize {
        match self {
            ProtocolError::Frame(FrameError::TooLarge { .. }) => 0,
            ProtocolError::Frame(FrameError::TooShort { .. }) => 1,
            ProtocolError::Frame(FrameError::Version(_)) => 2,
            ProtocolError::Frame(FrameError::UnknownKind(_)) => 3,
            ProtocolError::Frame(FrameError::Length { .. }) => 4,
            ProtocolError::Frame(FrameError::Field(_)) => 5,
            ProtocolError::NotLoggedOn => 6,
            ProtocolError::Unexpected => 7,
            ProtocolError::InputOverflow => 8,
        }
    }
}

/// Order-entry requests whose arrival a session remembers between two
/// [`crate::session::Session::clear_output`]s; beyond it, further answers go untimed (the
/// timings are a sample, never a reason to grow without bound).
pub const ANSWERED_MAX: usize = 4_096;

/// What a session counted since its driver last took the counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCounts {
    /// Frames parsed, by [`frame_kind_index`].
    pub frames_received: [u32; FRAME_KIND_COUNT],
    /// Frames queued for the peer, by [`frame_kind_index`].
    pub frames_sent: [u32; FRAME_KIND_COUNT],
    /// Protocol errors, by [`ProtocolError::index`].
    pub protocol_errors: [u32; PROTOCOL_ERROR_COUNT],
}

impl SessionCounts {
    /// Counts one frame of `kind` received (a kind byte the codec parsed).
    pub(crate) fn received(&mut self, kind: u8) {
        if let Some(index) = frame_kind_index(kind) {
            self.frames_received[index] = self.frames_received[index].saturating_add(1);
        }
    }

    /// Counts one frame of `kind` sent (a kind byte the codec wrote).
    pub(crate) fn sent(&mut self, kind: u8) {
        if let Some(index) = frame_kind_index(kind) {
            self.frames_sent[index] = self.frames_sent[index].saturating_add(1);
        }
    }

    /// Counts one protocol error.
    pub(crate) fn error(&mut self, error: ProtocolError) {
        let index = error.index();
        self.protocol_errors[index] = self.protocol_errors[index].saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_index_and_others_none() {
        for (index, (kind, name)) in FRAME_KINDS.iter().enumerate() {
            assert_eq!(frame_kind_index(*kind), Some(index), "{name}");
        }
        let kinds = (0..=u8::MAX)
            .filter(|k| frame_kind_index(*k).is_some())
            .count();
        assert_eq!(kinds, FRAME_KIND_COUNT);
    }

    #[test]
    fn protocol_error_indexes_are_distinct_and_in_range() {
        let errors = [
            ProtocolError::Frame(FrameError::TooLarge { len_bytes: 0 }),
            ProtocolError::Frame(FrameError::TooShort { len_bytes: 0 }),
            ProtocolError::Frame(FrameError::Version(0)),
            ProtocolError::Frame(FrameError::UnknownKind(0)),
            ProtocolError::Frame(FrameError::Length {
                kind: 0,
                len_bytes: 0,
                expected_bytes: 0,
            }),
            ProtocolError::Frame(FrameError::Field("x")),
            ProtocolError::NotLoggedOn,
            ProtocolError::Unexpected,
            ProtocolError::InputOverflow,
        ];
        let mut seen = [false; PROTOCOL_ERROR_COUNT];
        for error in errors {
            assert!(!seen[error.index()], "{error:?}");
            seen[error.index()] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
