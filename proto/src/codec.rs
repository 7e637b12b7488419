//! Byte layout of `peregrine/2` frames: fixed-size little-endian structs behind a 4-byte header,
//! parsed with explicit bounds checks (no `unsafe`, no pointer casts, no panics on any input).
//!
//! Header: `len: u16` (whole frame, header included), `kind: u8`, `version: u8`. Each kind has
//! exactly one length; padding bytes must be zero; every enum byte is checked. Fixed-size frames
//! won over rkyv archived frames on encode+decode time (see `PROTOCOL.md`, measured by the
//! `framing_cost` test), and they need no alignment of the receive buffer.

use peregrine_hotpath::edge::{CurrencyScale, MarketUnits};
use peregrine_hotpath::{
    AccountId, Amount, CancelReason, ClientOrderId, CurrencyId, MarketId, MarketSize, OrderId,
    OrderKind, OrderRef, Price, Qty, SelfTradePrevention, Side, TimeInForce, TradeId,
};

use crate::directory::{
    CURRENCIES_MAX, CurrencyInfo, MARKETS_MAX, MarketInfo, NAME_BYTES, Name, unit_decimal,
    unit_parts,
};
use crate::frame::{
    CHALLENGE_BYTES, Cancelled, Fill, KeyId, Liquidity, MAX_FRAME_BYTES, MarketSeq, OrderState,
    PROTOCOL_VERSION, RejectCode, Replaced, Reply, Request, RequestId, SIGNATURE_BYTES, SessionId,
};

/// Bytes of the frame header.
pub const HEADER_BYTES: usize = 4;
/// Offset of the kind byte in the header.
pub const KIND_AT: usize = 2;
const _: () = assert!(KIND_AT < HEADER_BYTES);

/// Why bytes are not a valid frame. Every variant closes the session (the stream cannot be
/// resynchronised after a bad frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The declared length is above [`MAX_FRAME_BYTES`].
    #[error("frame of {len_bytes} bytes exceeds the maximum of {MAX_FRAME_BYTES}")]
    TooLarge {
        /// Declared length.
        len_bytes: usize,
    },
    /// The declared length is below the header's.
    #[error("frame length {len_bytes} is shorter than the header")]
    TooShort {
        /// Declared length.
        len_bytes: usize,
    },
    /// Another protocol version.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// No message has this kind byte in this direction.
    #[error("unknown message kind {0:#04x}")]
    UnknownKind(u8),
    /// The length does not match the kind's fixed length.
    #[error("message kind {kind:#04x} must be {expected_bytes} bytes, not {len_bytes}")]
    Length {
        /// Kind byte.
        kind: u8,
        /// Declared length.
        len_bytes: usize,
        /// The kind's length.
        expected_bytes: usize,
    },
    /// A field holds a value outside its domain (an enum byte, a flag, non-zero padding).
    #[error("invalid value in field `{0}`")]
    Field(&'static str),
}

impl FrameError {
    /// The reject code sent to the peer before closing.
    pub fn code(self) -> RejectCode {
        match self {
            FrameError::TooLarge { .. } => RejectCode::FRAME_TOO_LARGE,
            FrameError::Version(_) => RejectCode::UNSUPPORTED_VERSION,
            _ => RejectCode::MALFORMED,
        }
    }
}

/// A message that cannot be put on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A value (an engine enum variant newer than this protocol version) has no wire code.
    #[error("`{0}` has no wire representation in peregrine/2")]
    Unsupported(&'static str),
}

/// What a decoder found at the front of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded<T> {
    /// Not a whole frame yet: read more bytes.
    Incomplete,
    /// One message and the bytes it took.
    Frame(T, usize),
}

// Kind bytes. Requests are below 0x80, replies at or above; Heartbeat and Logout go both ways.
// `crate::counts::FRAME_KINDS` names each for metrics.
pub(crate) mod kind {
    pub const HELLO: u8 = 0x01;
    pub const LOGON: u8 = 0x02;
    pub const NEW_ORDER: u8 = 0x10;
    pub const CANCEL: u8 = 0x11;
    pub const CANCEL_REPLACE: u8 = 0x12;
    pub const MASS_CANCEL: u8 = 0x13;
    pub const ORDER_STATUS: u8 = 0x14;
    pub const SUBSCRIBE: u8 = 0x15;
    pub const UNSUBSCRIBE: u8 = 0x16;
    pub const BALANCE: u8 = 0x17;
    pub const HEARTBEAT: u8 = 0x20;
    pub const LOGOUT: u8 = 0x21;
    pub const CHALLENGE: u8 = 0x81;
    pub const LOGON_ACK: u8 = 0x82;
    pub const ACK: u8 = 0x83;
    pub const REJECT: u8 = 0x84;
    pub const FILL: u8 = 0x85;
    pub const CANCELLED: u8 = 0x86;
    pub const REPLACED: u8 = 0x87;
    pub const DONE: u8 = 0x88;
    pub const STATUS: u8 = 0x89;
    pub const MASS_CANCELLED: u8 = 0x8A;
    pub const TRADE: u8 = 0x8B;
    pub const BOOK_LEVEL: u8 = 0x8C;
    pub const SNAPSHOT: u8 = 0x8D;
    pub const CURRENCY: u8 = 0x8E;
    pub const MARKET: u8 = 0x8F;
    pub const BALANCE_REPLY: u8 = 0x90;
}

/// The fixed frame length of a request kind.
fn request_len(kind: u8) -> Option<usize> {
    Some(match kind {
        kind::HELLO | kind::LOGOUT => 4,
        kind::LOGON => 4 + 8 + SIGNATURE_BYTES,
        kind::NEW_ORDER => 4 + 8 + 8 + 4 + 4 + 8 + 8 + 8,
        kind::CANCEL => 4 + 8 + 8 + 8,
        kind::CANCEL_REPLACE => 4 + 8 + 8 + 8 + 8 + 8,
        kind::MASS_CANCEL
        | kind::ORDER_STATUS
        | kind::SUBSCRIBE
        | kind::UNSUBSCRIBE
        | kind::BALANCE => 4 + 8 + 8,
        kind::HEARTBEAT => 4 + 8,
        _ => return None,
    })
}

/// The fixed frame length of a reply kind.
fn reply_len(kind: u8) -> Option<usize> {
    Some(match kind {
        kind::CHALLENGE => 4 + CHALLENGE_BYTES,
        kind::LOGON_ACK => 4 + 4 + 4 + 8 + 4 + 4 + 2 + 2 + 4,
        kind::CURRENCY => 4 + 2 + 1 + 1 + NAME_BYTES,
        kind::MARKET => 4 + 4 + 2 + 2 + 4 + 4 + 8 + 8 + NAME_BYTES,
        kind::BALANCE_REPLY => 4 + 8 + 8 + 8 + 8,
        kind::ACK => 4 + 8 + 8 + 8 + 8,
        kind::REJECT | kind::MASS_CANCELLED => 4 + 8 + 8 + 8,
        kind::FILL => 4 + 8 * 8,
        kind::CANCELLED => 4 + 8 * 5,
        kind::REPLACED => 4 + 8 * 6,
        kind::DONE => 4 + 8 + 8,
        kind::STATUS => 4 + 8 * 6,
        kind::TRADE => 4 + 8 * 5,
        kind::BOOK_LEVEL => 4 + 8 * 4,
        kind::SNAPSHOT => 4 + 8 * 3,
        kind::HEARTBEAT | kind::LOGOUT => 4 + 8,
        _ => return None,
    })
}

/// Reads the header at the front of `bytes`: the frame's kind and length once it is whole.
fn frame<'a>(
    bytes: &'a [u8],
    len_of: fn(u8) -> Option<usize>,
) -> Result<Option<(u8, Reader<'a>)>, FrameError> {
    let [l0, l1, kind, version, ..] = *bytes else {
        // Check what is there already so an oversized declaration fails before more arrives.
        if let [l0, l1, ..] = *bytes {
            check_len(usize::from(u16::from_le_bytes([l0, l1])))?;
        }
        return Ok(None);
    };
    let len_bytes = usize::from(u16::from_le_bytes([l0, l1]));
    check_len(len_bytes)?;
    if version != PROTOCOL_VERSION {
        return Err(FrameError::Version(version));
    }
    let expected_bytes = len_of(kind).ok_or(FrameError::UnknownKind(kind))?;
    if len_bytes != expected_bytes {
        return Err(FrameError::Length {
            kind,
            len_bytes,
            expected_bytes,
        });
    }
    match bytes.get(HEADER_BYTES..len_bytes) {
        None => Ok(None),
        Some(body) => Ok(Some((kind, Reader { body, at: 0 }))),
    }
}

fn check_len(len_bytes: usize) -> Result<(), FrameError> {
    if len_bytes > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len_bytes });
    }
    if len_bytes < HEADER_BYTES {
        return Err(FrameError::TooShort { len_bytes });
    }
    Ok(())
}

/// Decodes the request at the front of `bytes`.
pub fn decode_request(bytes: &[u8]) -> Result<Decoded<Request>, FrameError> {
    let Some((kind, mut r)) = frame(bytes, request_len)? else {
        return Ok(Decoded::Incomplete);
    };
    let request = match kind {
        kind::HELLO => Request::Hello,
        kind::LOGON => Request::Logon {
            key_id: KeyId(r.u64()?),
            signature: r.array()?,
        },
        kind::NEW_ORDER => {
            let req = RequestId(r.u64()?);
            let client_order_id = ClientOrderId(r.u64()?);
            let market = MarketId(r.u32()?);
            let side = side(r.u8()?)?;
            let order_type = r.u8()?;
            let tif = tif(r.u8()?)?;
            let stp = stp(r.u8()?)?;
            let price = Price(r.u64()?);
            let trigger = Price(r.u64()?);
            let size = r.u64()?;
            let kind = order_kind(order_type, price, trigger, size)?;
            Request::NewOrder {
                req,
                client_order_id,
                market,
                side,
                kind,
                tif,
                stp,
            }
        }
        kind::CANCEL => {
            let req = RequestId(r.u64()?);
            let by = r.u8()?;
            r.zero(7)?;
            Request::Cancel {
                req,
                target: order_ref(by, r.u64()?)?,
            }
        }
        kind::CANCEL_REPLACE => {
            let req = RequestId(r.u64()?);
            let by = r.u8()?;
            let has_price = flag(r.u8()?, "has_price")?;
            r.zero(6)?;
            let target = order_ref(by, r.u64()?)?;
            let price = Price(r.u64()?);
            let new_qty = Qty(r.u64()?);
            if !has_price && price.0 != 0 {
                return Err(FrameError::Field("new_price"));
            }
            Request::CancelReplace {
                req,
                target,
                new_price: has_price.then_some(price),
                new_qty,
            }
        }
        kind::MASS_CANCEL => {
            let req = RequestId(r.u64()?);
            let market = MarketId(r.u32()?);
            let has_market = flag(r.u8()?, "has_market")?;
            let side = match r.u8()? {
                SIDE_ANY => None,
                byte => Some(side(byte)?),
            };
            r.zero(2)?;
            if !has_market && market.0 != 0 {
                return Err(FrameError::Field("market"));
            }
            Request::MassCancel {
                req,
                market: has_market.then_some(market),
                side,
            }
        }
        kind::ORDER_STATUS => Request::OrderStatus {
            req: RequestId(r.u64()?),
            client_order_id: ClientOrderId(r.u64()?),
        },
        kind::SUBSCRIBE | kind::UNSUBSCRIBE => {
            let req = RequestId(r.u64()?);
            let market = MarketId(r.u32()?);
            r.zero(4)?;
            if kind == kind::SUBSCRIBE {
                Request::Subscribe { req, market }
            } else {
                Request::Unsubscribe { req, market }
            }
        }
        kind::BALANCE => {
            let req = RequestId(r.u64()?);
            let currency = CurrencyId(r.u16()?);
            r.zero(6)?;
            Request::Balance { req, currency }
        }
        kind::HEARTBEAT => Request::Heartbeat { nonce: r.u64()? },
        kind::LOGOUT => Request::Logout,
        other => return Err(FrameError::UnknownKind(other)),
    };
    Ok(Decoded::Frame(request, r.finish()?))
}

/// Decodes the reply at the front of `bytes`.
pub fn decode_reply(bytes: &[u8]) -> Result<Decoded<Reply>, FrameError> {
    let Some((kind, mut r)) = frame(bytes, reply_len)? else {
        return Ok(Decoded::Incomplete);
    };
    let reply = match kind {
        kind::CHALLENGE => Reply::Challenge { nonce: r.array()? },
        kind::LOGON_ACK => logon_ack(&mut r)?,
        kind::CURRENCY => Reply::Currency(currency_info(&mut r)?),
        kind::MARKET => Reply::Market(market_info(&mut r)?),
        kind::BALANCE_REPLY => {
            let req = RequestId(r.u64()?);
            let currency = CurrencyId(r.u16()?);
            r.zero(6)?;
            Reply::Balance {
                req,
                currency,
                available: Amount(r.u64()?),
                locked: Amount(r.u64()?),
            }
        }
        kind::ACK => Reply::Ack {
            req: RequestId(r.u64()?),
            seq: r.u64()?,
            order: OrderId(r.u64()?),
            client_order_id: ClientOrderId(r.u64()?),
        },
        kind::REJECT => {
            let req = RequestId(r.u64()?);
            let seq = r.u64()?;
            let code = RejectCode(r.u16()?);
            r.zero(6)?;
            Reply::Reject { req, seq, code }
        }
        kind::FILL => {
            let seq = r.u64()?;
            let order = OrderId(r.u64()?);
            let client_order_id = ClientOrderId(r.u64()?);
            let trade = TradeId(r.u64()?);
            let market = MarketId(r.u32()?);
            let side = side(r.u8()?)?;
            let liquidity = match r.u8()? {
                1 => Liquidity::Maker,
                2 => Liquidity::Taker,
                _ => return Err(FrameError::Field("liquidity")),
            };
            r.zero(2)?;
            Reply::Fill(Fill {
                seq,
                order,
                client_order_id,
                trade,
                market,
                side,
                liquidity,
                price: Price(r.u64()?),
                qty: Qty(r.u64()?),
                fee: r.u64()?,
            })
        }
        kind::CANCELLED => {
            let seq = r.u64()?;
            let order = OrderId(r.u64()?);
            let client_order_id = ClientOrderId(r.u64()?);
            let remaining = Qty(r.u64()?);
            let reason = cancel_reason(r.u8()?)?;
            r.zero(7)?;
            Reply::Cancelled(Cancelled {
                seq,
                order,
                client_order_id,
                remaining,
                reason,
            })
        }
        kind::REPLACED => {
            let seq = r.u64()?;
            let order = OrderId(r.u64()?);
            let client_order_id = ClientOrderId(r.u64()?);
            let price = Price(r.u64()?);
            let qty = Qty(r.u64()?);
            let priority_kept = flag(r.u8()?, "priority_kept")?;
            r.zero(7)?;
            Reply::Replaced(Replaced {
                seq,
                order,
                client_order_id,
                price,
                qty,
                priority_kept,
            })
        }
        kind::DONE => Reply::Done {
            req: RequestId(r.u64()?),
            seq: r.u64()?,
        },
        kind::STATUS => {
            let req = RequestId(r.u64()?);
            let client_order_id = ClientOrderId(r.u64()?);
            let order = OrderId(r.u64()?);
            let seq = r.u64()?;
            let filled = Qty(r.u64()?);
            let state = order_state(r.u8()?)?;
            r.zero(1)?;
            let code = RejectCode(r.u16()?);
            r.zero(4)?;
            Reply::Status {
                req,
                client_order_id,
                order,
                seq,
                filled,
                state,
                code,
            }
        }
        kind::MASS_CANCELLED => {
            let req = RequestId(r.u64()?);
            let seq = r.u64()?;
            let count = r.u32()?;
            r.zero(4)?;
            Reply::MassCancelled { req, seq, count }
        }
        kind::TRADE => {
            let market = MarketId(r.u32()?);
            let taker_side = side(r.u8()?)?;
            r.zero(3)?;
            Reply::Trade {
                market,
                taker_side,
                market_seq: MarketSeq(r.u64()?),
                trade: TradeId(r.u64()?),
                price: Price(r.u64()?),
                qty: Qty(r.u64()?),
            }
        }
        kind::BOOK_LEVEL => {
            let market = MarketId(r.u32()?);
            let side = side(r.u8()?)?;
            let snapshot = flag(r.u8()?, "snapshot")?;
            r.zero(2)?;
            Reply::BookLevel {
                market,
                side,
                snapshot,
                market_seq: MarketSeq(r.u64()?),
                price: Price(r.u64()?),
                qty: Qty(r.u64()?),
            }
        }
        kind::SNAPSHOT => {
            let market = MarketId(r.u32()?);
            r.zero(4)?;
            Reply::Snapshot {
                market,
                market_seq: MarketSeq(r.u64()?),
                bids: r.u32()?,
                asks: r.u32()?,
            }
        }
        kind::HEARTBEAT => Reply::Heartbeat { nonce: r.u64()? },
        kind::LOGOUT => {
            let code = RejectCode(r.u16()?);
            r.zero(6)?;
            Reply::Logout { code }
        }
        other => return Err(FrameError::UnknownKind(other)),
    };
    Ok(Decoded::Frame(reply, r.finish()?))
}

/// Appends the frame of `request` to `out`.
pub fn encode_request(request: &Request, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut w = Writer::start(out);
    match request {
        Request::Hello => w.kind(kind::HELLO),
        Request::Logon { key_id, signature } => {
            w.kind(kind::LOGON);
            w.u64(key_id.0);
            w.bytes(signature);
        }
        Request::NewOrder {
            req,
            client_order_id,
            market,
            side,
            kind: order_kind,
            tif,
            stp,
        } => {
            let (order_type, price, trigger, size) = order_kind_fields(order_kind)?;
            w.kind(kind::NEW_ORDER);
            w.u64(req.0);
            w.u64(client_order_id.0);
            w.u32(market.0);
            w.u8(*side as u8);
            w.u8(order_type);
            w.u8(tif_code(*tif)?);
            w.u8(stp_code(*stp)?);
            w.u64(price.0);
            w.u64(trigger.0);
            w.u64(size);
        }
        Request::Cancel { req, target } => {
            let (by, id) = order_ref_fields(target);
            w.kind(kind::CANCEL);
            w.u64(req.0);
            w.u8(by);
            w.zero(7);
            w.u64(id);
        }
        Request::CancelReplace {
            req,
            target,
            new_price,
            new_qty,
        } => {
            let (by, id) = order_ref_fields(target);
            w.kind(kind::CANCEL_REPLACE);
            w.u64(req.0);
            w.u8(by);
            w.u8(u8::from(new_price.is_some()));
            w.zero(6);
            w.u64(id);
            w.u64(new_price.map_or(0, |p| p.0));
            w.u64(new_qty.0);
        }
        Request::MassCancel { req, market, side } => {
            w.kind(kind::MASS_CANCEL);
            w.u64(req.0);
            w.u32(market.map_or(0, |m| m.0));
            w.u8(u8::from(market.is_some()));
            w.u8(side.map_or(SIDE_ANY, |s| s as u8));
            w.zero(2);
        }
        Request::OrderStatus {
            req,
            client_order_id,
        } => {
            w.kind(kind::ORDER_STATUS);
            w.u64(req.0);
            w.u64(client_order_id.0);
        }
        Request::Subscribe { req, market } | Request::Unsubscribe { req, market } => {
            w.kind(if matches!(request, Request::Subscribe { .. }) {
                kind::SUBSCRIBE
            } else {
                kind::UNSUBSCRIBE
            });
            w.u64(req.0);
            w.u32(market.0);
            w.zero(4);
        }
        Request::Balance { req, currency } => {
            w.kind(kind::BALANCE);
            w.u64(req.0);
            w.u16(currency.0);
            w.zero(6);
        }
        Request::Heartbeat { nonce } => {
            w.kind(kind::HEARTBEAT);
            w.u64(*nonce);
        }
        Request::Logout => w.kind(kind::LOGOUT),
    }
    w.finish(request_len);
    Ok(())
}

/// Appends the frame of `reply` to `out`.
pub fn encode_reply(reply: &Reply, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut w = Writer::start(out);
    match reply {
        Reply::Challenge { nonce } => {
            w.kind(kind::CHALLENGE);
            w.bytes(nonce);
        }
        Reply::LogonAck {
            account,
            session,
            heartbeat_ms,
            max_in_flight,
            rate_per_sec,
            currencies,
            markets,
        } => {
            if usize::from(*currencies) > CURRENCIES_MAX || usize::from(*markets) > MARKETS_MAX {
                return Err(EncodeError::Unsupported("a directory above its bounds"));
            }
            w.kind(kind::LOGON_ACK);
            w.u32(account.0);
            w.u32(*heartbeat_ms);
            w.u64(session.0);
            w.u32(*max_in_flight);
            w.u32(*rate_per_sec);
            w.u16(*currencies);
            w.u16(*markets);
            w.zero(4);
        }
        Reply::Currency(c) => {
            w.kind(kind::CURRENCY);
            w.u16(c.currency.0);
            // `CurrencyInfo::new` bounds the scale by CURRENCY_SCALE_MAX.
            w.u8(u8::try_from(c.scale.scale).unwrap_or(u8::MAX));
            w.zero(1);
            w.bytes(&c.code.wire());
        }
        Reply::Market(m) => {
            let (tick, tick_scale) = unit_parts(m.units.tick);
            let (lot, lot_scale) = unit_parts(m.units.lot);
            w.kind(kind::MARKET);
            w.u32(m.market.0);
            w.u16(m.base.0);
            w.u16(m.quote.0);
            w.u8(u8::try_from(m.units.base.scale).unwrap_or(u8::MAX));
            w.u8(u8::try_from(m.units.quote.scale).unwrap_or(u8::MAX));
            w.u8(tick_scale);
            w.u8(lot_scale);
            w.zero(4);
            w.u64(tick);
            w.u64(lot);
            w.bytes(&m.name.wire());
        }
        Reply::Balance {
            req,
            currency,
            available,
            locked,
        } => {
            w.kind(kind::BALANCE_REPLY);
            w.u64(req.0);
            w.u16(currency.0);
            w.zero(6);
            w.u64(available.0);
            w.u64(locked.0);
        }
        Reply::Ack {
            req,
            seq,
            order,
            client_order_id,
        } => {
            w.kind(kind::ACK);
            w.u64(req.0);
            w.u64(*seq);
            w.u64(order.0);
            w.u64(client_order_id.0);
        }
        Reply::Reject { req, seq, code } => {
            w.kind(kind::REJECT);
            w.u64(req.0);
            w.u64(*seq);
            w.u16(code.0);
            w.zero(6);
        }
        Reply::Fill(Fill {
            seq,
            order,
            client_order_id,
            trade,
            market,
            side,
            liquidity,
            price,
            qty,
            fee,
        }) => {
            w.kind(kind::FILL);
            w.u64(*seq);
            w.u64(order.0);
            w.u64(client_order_id.0);
            w.u64(trade.0);
            w.u32(market.0);
            w.u8(*side as u8);
            w.u8(*liquidity as u8);
            w.zero(2);
            w.u64(price.0);
            w.u64(qty.0);
            w.u64(*fee);
        }
        Reply::Cancelled(Cancelled {
            seq,
            order,
            client_order_id,
            remaining,
            reason,
        }) => {
            w.kind(kind::CANCELLED);
            w.u64(*seq);
            w.u64(order.0);
            w.u64(client_order_id.0);
            w.u64(remaining.0);
            w.u8(cancel_reason_code(*reason)?);
            w.zero(7);
        }
        Reply::Replaced(Replaced {
            seq,
            order,
            client_order_id,
            price,
            qty,
            priority_kept,
        }) => {
            w.kind(kind::REPLACED);
            w.u64(*seq);
            w.u64(order.0);
            w.u64(client_order_id.0);
            w.u64(price.0);
            w.u64(qty.0);
            w.u8(u8::from(*priority_kept));
            w.zero(7);
        }
        Reply::MassCancelled { req, seq, count } => {
            w.kind(kind::MASS_CANCELLED);
            w.u64(req.0);
            w.u64(*seq);
            w.u32(*count);
            w.zero(4);
        }
        Reply::Done { req, seq } => {
            w.kind(kind::DONE);
            w.u64(req.0);
            w.u64(*seq);
        }
        Reply::Status {
            req,
            client_order_id,
            order,
            seq,
            filled,
            state,
            code,
        } => {
            w.kind(kind::STATUS);
            w.u64(req.0);
            w.u64(client_order_id.0);
            w.u64(order.0);
            w.u64(*seq);
            w.u64(filled.0);
            w.u8(*state as u8);
            w.zero(1);
            w.u16(code.0);
            w.zero(4);
        }
        Reply::Trade {
            market,
            market_seq,
            trade,
            price,
            qty,
            taker_side,
        } => {
            w.kind(kind::TRADE);
            w.u32(market.0);
            w.u8(*taker_side as u8);
            w.zero(3);
            w.u64(market_seq.0);
            w.u64(trade.0);
            w.u64(price.0);
            w.u64(qty.0);
        }
        Reply::BookLevel {
            market,
            market_seq,
            side,
            price,
            qty,
            snapshot,
        } => {
            w.kind(kind::BOOK_LEVEL);
            w.u32(market.0);
            w.u8(*side as u8);
            w.u8(u8::from(*snapshot));
            w.zero(2);
            w.u64(market_seq.0);
            w.u64(price.0);
            w.u64(qty.0);
        }
        Reply::Snapshot {
            market,
            market_seq,
            bids,
            asks,
        } => {
            w.kind(kind::SNAPSHOT);
            w.u32(market.0);
            w.zero(4);
            w.u64(market_seq.0);
            w.u32(*bids);
            w.u32(*asks);
        }
        Reply::Heartbeat { nonce } => {
            w.kind(kind::HEARTBEAT);
            w.u64(*nonce);
        }
        Reply::Logout { code } => {
            w.kind(kind::LOGOUT);
            w.u16(code.0);
            w.zero(6);
        }
    }
    w.finish(reply_len);
    Ok(())
}

const SIDE_ANY: u8 = 0xFF;

fn logon_ack(r: &mut Reader<'_>) -> Result<Reply, FrameError> {
    let account = AccountId(r.u32()?);
    let heartbeat_ms = r.u32()?;
    let session = SessionId(r.u64()?);
    let max_in_flight = r.u32()?;
    let rate_per_sec = r.u32()?;
    let currencies = r.u16()?;
    let markets = r.u16()?;
    r.zero(4)?;
    // The counts size what the client reads next: bounded before anyone trusts them.
    if usize::from(currencies) > CURRENCIES_MAX {
        return Err(FrameError::Field("currencies"));
    }
    if usize::from(markets) > MARKETS_MAX {
        return Err(FrameError::Field("markets"));
    }
    Ok(Reply::LogonAck {
        account,
        session,
        heartbeat_ms,
        max_in_flight,
        rate_per_sec,
        currencies,
        markets,
    })
}

fn currency_info(r: &mut Reader<'_>) -> Result<CurrencyInfo, FrameError> {
    let currency = CurrencyId(r.u16()?);
    let scale = r.u8()?;
    r.zero(1)?;
    let code = Name::from_wire(r.array()?).map_err(|_| FrameError::Field("code"))?;
    CurrencyInfo::new(currency, code, u32::from(scale)).map_err(|_| FrameError::Field("scale"))
}

fn market_info(r: &mut Reader<'_>) -> Result<MarketInfo, FrameError> {
    let market = MarketId(r.u32()?);
    let base = CurrencyId(r.u16()?);
    let quote = CurrencyId(r.u16()?);
    let base_scale = r.u8()?;
    let quote_scale = r.u8()?;
    let tick_scale = r.u8()?;
    let lot_scale = r.u8()?;
    r.zero(4)?;
    let tick = unit_decimal(r.u64()?, tick_scale).ok_or(FrameError::Field("tick"))?;
    let lot = unit_decimal(r.u64()?, lot_scale).ok_or(FrameError::Field("lot"))?;
    let name = Name::from_wire(r.array()?).map_err(|_| FrameError::Field("name"))?;
    let units = MarketUnits {
        tick,
        lot,
        base: CurrencyScale {
            scale: u32::from(base_scale),
        },
        quote: CurrencyScale {
            scale: u32::from(quote_scale),
        },
    };
    MarketInfo::new(market, name, (base, quote), units).map_err(|_| FrameError::Field("units"))
}

fn side(byte: u8) -> Result<Side, FrameError> {
    match byte {
        0 => Ok(Side::Buy),
        1 => Ok(Side::Sell),
        _ => Err(FrameError::Field("side")),
    }
}

fn flag(byte: u8, field: &'static str) -> Result<bool, FrameError> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(FrameError::Field(field)),
    }
}

fn tif(byte: u8) -> Result<TimeInForce, FrameError> {
    match byte {
        1 => Ok(TimeInForce::Gtc),
        2 => Ok(TimeInForce::Ioc),
        3 => Ok(TimeInForce::Fok),
        4 => Ok(TimeInForce::PostOnly),
        _ => Err(FrameError::Field("tif")),
    }
}

fn tif_code(tif: TimeInForce) -> Result<u8, EncodeError> {
    match tif {
        TimeInForce::Gtc => Ok(1),
        TimeInForce::Ioc => Ok(2),
        TimeInForce::Fok => Ok(3),
        TimeInForce::PostOnly => Ok(4),
        _ => Err(EncodeError::Unsupported("TimeInForce")),
    }
}

fn stp(byte: u8) -> Result<SelfTradePrevention, FrameError> {
    match byte {
        1 => Ok(SelfTradePrevention::CancelNewest),
        2 => Ok(SelfTradePrevention::CancelOldest),
        3 => Ok(SelfTradePrevention::CancelBoth),
        _ => Err(FrameError::Field("stp")),
    }
}

fn stp_code(stp: SelfTradePrevention) -> Result<u8, EncodeError> {
    match stp {
        SelfTradePrevention::CancelNewest => Ok(1),
        SelfTradePrevention::CancelOldest => Ok(2),
        SelfTradePrevention::CancelBoth => Ok(3),
        _ => Err(EncodeError::Unsupported("SelfTradePrevention")),
    }
}

const LIMIT: u8 = 1;
const MARKET_QTY: u8 = 2;
const MARKET_BUDGET: u8 = 3;
const STOP_LIMIT: u8 = 4;
const STOP_MARKET_QTY: u8 = 5;
const STOP_MARKET_BUDGET: u8 = 6;

fn order_kind(
    order_type: u8,
    price: Price,
    trigger: Price,
    size: u64,
) -> Result<OrderKind, FrameError> {
    // Fields a type does not use must be zero: one encoding per order.
    let unused = |value: Price, field| {
        if value.0 == 0 {
            Ok(())
        } else {
            Err(FrameError::Field(field))
        }
    };
    Ok(match order_type {
        LIMIT => {
            unused(trigger, "trigger")?;
            OrderKind::Limit {
                price,
                qty: Qty(size),
            }
        }
        MARKET_QTY | MARKET_BUDGET => {
            unused(trigger, "trigger")?;
            unused(price, "price")?;
            OrderKind::Market {
                size: market_size(order_type == MARKET_BUDGET, size),
            }
        }
        STOP_LIMIT => OrderKind::StopLimit {
            trigger,
            price,
            qty: Qty(size),
        },
        STOP_MARKET_QTY | STOP_MARKET_BUDGET => {
            unused(price, "price")?;
            OrderKind::StopMarket {
                trigger,
                size: market_size(order_type == STOP_MARKET_BUDGET, size),
            }
        }
        _ => return Err(FrameError::Field("order_type")),
    })
}

fn market_size(budget: bool, size: u64) -> MarketSize {
    if budget {
        MarketSize::QuoteBudget(Amount(size))
    } else {
        MarketSize::Qty(Qty(size))
    }
}

/// `(order_type, price, trigger, size)` of an order kind.
fn order_kind_fields(kind: &OrderKind) -> Result<(u8, Price, Price, u64), EncodeError> {
    let sized = |size: &MarketSize, by_qty, by_budget| match size {
        MarketSize::Qty(q) => (by_qty, q.0),
        MarketSize::QuoteBudget(a) => (by_budget, a.0),
    };
    Ok(match kind {
        OrderKind::Limit { price, qty } => (LIMIT, *price, Price(0), qty.0),
        OrderKind::Market { size } => {
            let (t, s) = sized(size, MARKET_QTY, MARKET_BUDGET);
            (t, Price(0), Price(0), s)
        }
        OrderKind::StopLimit {
            trigger,
            price,
            qty,
        } => (STOP_LIMIT, *price, *trigger, qty.0),
        OrderKind::StopMarket { trigger, size } => {
            let (t, s) = sized(size, STOP_MARKET_QTY, STOP_MARKET_BUDGET);
            (t, Price(0), *trigger, s)
        }
        _ => return Err(EncodeError::Unsupported("OrderKind")),
    })
}

const BY_ORDER_ID: u8 = 1;
const BY_CLIENT_ID: u8 = 2;

fn order_ref(by: u8, id: u64) -> Result<OrderRef, FrameError> {
    match by {
        BY_ORDER_ID => Ok(OrderRef::Id(OrderId(id))),
        BY_CLIENT_ID => Ok(OrderRef::Client(ClientOrderId(id))),
        _ => Err(FrameError::Field("by")),
    }
}

fn order_ref_fields(target: &OrderRef) -> (u8, u64) {
    match target {
        OrderRef::Id(id) => (BY_ORDER_ID, id.0),
        OrderRef::Client(id) => (BY_CLIENT_ID, id.0),
    }
}

fn cancel_reason(byte: u8) -> Result<CancelReason, FrameError> {
    Ok(match byte {
        1 => CancelReason::Requested,
        2 => CancelReason::MassCancel,
        3 => CancelReason::KillSwitch,
        4 => CancelReason::Unfilled,
        5 => CancelReason::SelfTrade,
        6 => CancelReason::BudgetExhausted,
        7 => CancelReason::StopRejected,
        _ => return Err(FrameError::Field("reason")),
    })
}

fn cancel_reason_code(reason: CancelReason) -> Result<u8, EncodeError> {
    match reason {
        CancelReason::Requested
        | CancelReason::MassCancel
        | CancelReason::KillSwitch
        | CancelReason::Unfilled
        | CancelReason::SelfTrade
        | CancelReason::BudgetExhausted
        | CancelReason::StopRejected => Ok(reason as u8),
        _ => Err(EncodeError::Unsupported("CancelReason")),
    }
}

fn order_state(byte: u8) -> Result<OrderState, FrameError> {
    Ok(match byte {
        1 => OrderState::Pending,
        2 => OrderState::Live,
        3 => OrderState::Filled,
        4 => OrderState::Cancelled,
        5 => OrderState::Rejected,
        6 => OrderState::Unknown,
        _ => return Err(FrameError::Field("state")),
    })
}

/// Bounds-checked little-endian reads over one frame's body.
struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let end = self.at.checked_add(N).ok_or(FrameError::Field("length"))?;
        let bytes = self
            .body
            .get(self.at..end)
            .ok_or(FrameError::Field("length"))?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn zero(&mut self, count: usize) -> Result<(), FrameError> {
        let end = self
            .at
            .checked_add(count)
            .ok_or(FrameError::Field("length"))?;
        let padding = self
            .body
            .get(self.at..end)
            .ok_or(FrameError::Field("length"))?;
        if padding.iter().any(|b| *b != 0) {
            return Err(FrameError::Field("padding"));
        }
        self.at = end;
        Ok(())
    }

    /// The frame's total length, once every body byte was read.
    fn finish(self) -> Result<usize, FrameError> {
        if self.at != self.body.len() {
            return Err(FrameError::Field("length"));
        }
        Ok(HEADER_BYTES + self.at)
    }
}

/// Builds one frame in a stack buffer, then appends it to the output in one copy.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    frame: [u8; MAX_FRAME_BYTES],
    at: usize,
}

impl<'a> Writer<'a> {
    fn start(out: &'a mut Vec<u8>) -> Self {
        let mut frame = [0u8; MAX_FRAME_BYTES];
        frame[3] = PROTOCOL_VERSION;
        Writer {
            out,
            frame,
            at: HEADER_BYTES,
        }
    }

    fn kind(&mut self, kind: u8) {
        self.frame[2] = kind;
    }

    fn bytes(&mut self, v: &[u8]) {
        // The layouts are fixed and at most MAX_FRAME_BYTES (checked by `finish` and the
        // round-trip tests); an overrun here is a bug in this file, never input-driven.
        self.frame[self.at..self.at + v.len()].copy_from_slice(v);
        self.at += v.len();
    }

    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    fn zero(&mut self, count: usize) {
        // The buffer starts zeroed.
        self.at += count;
    }

    fn finish(mut self, len_of: fn(u8) -> Option<usize>) {
        let kind = self.frame[2];
        debug_assert_eq!(
            Some(self.at),
            len_of(kind),
            "frame layout of kind {kind:#04x}"
        );
        assert!(self.at <= MAX_FRAME_BYTES);
        let len = u16::try_from(self.at).unwrap_or(u16::MAX);
        self.frame[..2].copy_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(&self.frame[..self.at]);
    }
}
