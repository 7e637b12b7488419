#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `peregrine/2` codec: every message round-trips, arbitrary bytes never panic, and the
//! framing choice (fixed-size LE structs vs rkyv archived frames) is measured.

use std::hint::black_box;
use std::time::Instant;

use peregrine_hotpath::edge::{CurrencyScale, MarketUnits};
use peregrine_hotpath::*;
use peregrine_proto::codec::{
    Decoded, FrameError, decode_reply, decode_request, encode_reply, encode_request,
};
use peregrine_proto::directory::{
    CURRENCIES_MAX, CurrencyInfo, Directory, DirectoryError, MARKETS_MAX, MarketInfo, Name,
};
use peregrine_proto::frame::{
    Cancelled, Fill, KeyId, Liquidity, MAX_FRAME_BYTES, MarketSeq, OrderState, PROTOCOL_VERSION,
    RejectCode, Replaced, Reply, Request, RequestId, SessionId,
};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn requests() -> Vec<Request> {
    let order = |kind, tif| Request::NewOrder {
        req: RequestId(7),
        client_order_id: ClientOrderId(u64::MAX),
        market: MarketId(3),
        side: Side::Sell,
        kind,
        tif,
        stp: SelfTradePrevention::CancelBoth,
    };
    vec![
        Request::Hello,
        Request::Logon {
            key_id: KeyId(42),
            signature: [9; 64],
        },
        order(
            OrderKind::Limit {
                price: Price(100),
                qty: Qty(5),
            },
            TimeInForce::Gtc,
        ),
        order(
            OrderKind::Market {
                size: MarketSize::QuoteBudget(Amount(77)),
            },
            TimeInForce::Ioc,
        ),
        order(
            OrderKind::StopLimit {
                trigger: Price(1),
                price: Price(2),
                qty: Qty(3),
            },
            TimeInForce::PostOnly,
        ),
        order(
            OrderKind::StopMarket {
                trigger: Price(1),
                size: MarketSize::Qty(Qty(4)),
            },
            TimeInForce::Fok,
        ),
        Request::Cancel {
            req: RequestId(1),
            target: OrderRef::Id(OrderId(5)),
        },
        Request::CancelReplace {
            req: RequestId(2),
            target: OrderRef::Client(ClientOrderId(6)),
            new_price: Some(Price(9)),
            new_qty: Qty(1),
        },
        Request::CancelReplace {
            req: RequestId(2),
            target: OrderRef::Id(OrderId(6)),
            new_price: None,
            new_qty: Qty(1),
        },
        Request::MassCancel {
            req: RequestId(3),
            market: Some(MarketId(1)),
            side: None,
        },
        Request::MassCancel {
            req: RequestId(3),
            market: None,
            side: Some(Side::Buy),
        },
        Request::OrderStatus {
            req: RequestId(4),
            client_order_id: ClientOrderId(8),
        },
        Request::Subscribe {
            req: RequestId(5),
            market: MarketId(2),
        },
        Request::Unsubscribe {
            req: RequestId(5),
            market: MarketId(2),
        },
        Request::Balance {
            req: RequestId(6),
            currency: CurrencyId(65_535),
        },
        Request::Heartbeat { nonce: 99 },
        Request::Logout,
    ]
}

fn decimal(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn btcusd() -> MarketInfo {
    MarketInfo::new(
        MarketId(7),
        Name::new("btcusd").unwrap(),
        (CurrencyId(0), CurrencyId(2)),
        MarketUnits {
            tick: decimal("0.01"),
            lot: decimal("0.0001"),
            base: CurrencyScale { scale: 8 },
            quote: CurrencyScale { scale: 6 },
        },
    )
    .unwrap()
}

fn replies() -> Vec<Reply> {
    vec![
        Reply::Challenge { nonce: [3; 32] },
        Reply::LogonAck {
            account: AccountId(1),
            session: SessionId(2),
            heartbeat_ms: 3,
            max_in_flight: 4,
            rate_per_sec: 5,
            currencies: u16::try_from(CURRENCIES_MAX).unwrap(),
            markets: u16::try_from(MARKETS_MAX).unwrap(),
        },
        Reply::Currency(CurrencyInfo::new(CurrencyId(2), Name::new("usd").unwrap(), 6).unwrap()),
        Reply::Currency(
            CurrencyInfo::new(CurrencyId(3), Name::new("a234567890abcdef").unwrap(), 18).unwrap(),
        ),
        Reply::Market(btcusd()),
        Reply::Balance {
            req: RequestId(6),
            currency: CurrencyId(2),
            available: Amount(u64::MAX),
            locked: Amount(1),
        },
        Reply::Ack {
            req: RequestId(1),
            seq: 2,
            order: OrderId(3),
            client_order_id: ClientOrderId(4),
        },
        Reply::Reject {
            req: RequestId(1),
            seq: 0,
            code: RejectCode::BUSY,
        },
        Reply::Fill(Fill {
            seq: 1,
            order: OrderId(2),
            client_order_id: ClientOrderId(3),
            trade: TradeId(4),
            market: MarketId(5),
            side: Side::Buy,
            liquidity: Liquidity::Taker,
            price: Price(6),
            qty: Qty(7),
            fee: 8,
        }),
        Reply::Cancelled(Cancelled {
            seq: 1,
            order: OrderId(2),
            client_order_id: ClientOrderId(3),
            remaining: Qty(4),
            reason: CancelReason::SelfTrade,
        }),
        Reply::Replaced(Replaced {
            seq: 1,
            order: OrderId(2),
            client_order_id: ClientOrderId(3),
            price: Price(4),
            qty: Qty(5),
            priority_kept: true,
        }),
        Reply::MassCancelled {
            req: RequestId(1),
            seq: 2,
            count: 3,
        },
        Reply::Done {
            req: RequestId(1),
            seq: 2,
        },
        Reply::Status {
            req: RequestId(1),
            client_order_id: ClientOrderId(2),
            order: OrderId(3),
            seq: 4,
            filled: Qty(5),
            state: OrderState::Rejected,
            code: RejectCode::engine(RejectReason::InsufficientBalance),
        },
        Reply::Trade {
            market: MarketId(1),
            market_seq: MarketSeq(2),
            trade: TradeId(3),
            price: Price(4),
            qty: Qty(5),
            taker_side: Side::Sell,
        },
        Reply::BookLevel {
            market: MarketId(1),
            market_seq: MarketSeq(2),
            side: Side::Buy,
            price: Price(4),
            qty: Qty(0),
            snapshot: true,
        },
        Reply::Snapshot {
            market: MarketId(1),
            market_seq: MarketSeq(2),
            bids: 3,
            asks: 4,
        },
        Reply::Heartbeat { nonce: 1 },
        Reply::Logout {
            code: RejectCode::ABUSE,
        },
    ]
}

#[test]
fn every_message_round_trips_and_fits_a_frame() {
    for request in requests() {
        let mut bytes = Vec::new();
        encode_request(&request, &mut bytes).unwrap();
        assert!(bytes.len() <= MAX_FRAME_BYTES);
        assert_eq!(
            decode_request(&bytes).unwrap(),
            Decoded::Frame(request.clone(), bytes.len())
        );
        // Every strict prefix is incomplete, never an error.
        for cut in 0..bytes.len() {
            assert_eq!(decode_request(&bytes[..cut]).unwrap(), Decoded::Incomplete);
        }
    }
    for reply in replies() {
        let mut bytes = Vec::new();
        encode_reply(&reply, &mut bytes).unwrap();
        assert!(bytes.len() <= MAX_FRAME_BYTES);
        assert_eq!(
            decode_reply(&bytes).unwrap(),
            Decoded::Frame(reply.clone(), bytes.len())
        );
    }
}

#[test]
fn rejects_bad_frames_with_typed_errors() {
    let mut bytes = Vec::new();
    encode_request(&Request::Heartbeat { nonce: 1 }, &mut bytes).unwrap();
    let mut large = bytes.clone();
    large[..2].copy_from_slice(&4000u16.to_le_bytes());
    assert_eq!(
        decode_request(&large[..2]),
        Err(FrameError::TooLarge { len_bytes: 4000 })
    );
    let mut version = bytes.clone();
    version[3] = 1;
    assert_eq!(decode_request(&version), Err(FrameError::Version(1)));
    let mut kind = bytes.clone();
    kind[2] = 0x7F;
    assert_eq!(decode_request(&kind), Err(FrameError::UnknownKind(0x7F)));
    // A reply kind is not a request.
    kind[2] = 0x83;
    assert!(matches!(
        decode_request(&kind),
        Err(FrameError::UnknownKind(0x83))
    ));
    let mut short = bytes.clone();
    short[..2].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(
        decode_request(&short),
        Err(FrameError::TooShort { len_bytes: 2 })
    );
    // A bad side byte in a new order.
    let mut order = Vec::new();
    encode_request(&requests()[2], &mut order).unwrap();
    order[24] = 9;
    assert_eq!(decode_request(&order), Err(FrameError::Field("side")));
    // Non-zero padding in a cancel.
    let mut cancel = Vec::new();
    encode_request(&requests()[6], &mut cancel).unwrap();
    cancel[13] = 1;
    assert_eq!(decode_request(&cancel), Err(FrameError::Field("padding")));
    assert_eq!(
        FrameError::TooLarge { len_bytes: 999 }.code(),
        RejectCode::FRAME_TOO_LARGE
    );
}

/// Encodes `reply`, changes the bytes, and decodes them again.
fn tampered(
    reply: &Reply,
    change: impl FnOnce(&mut Vec<u8>),
) -> Result<Decoded<Reply>, FrameError> {
    let mut bytes = Vec::new();
    encode_reply(reply, &mut bytes).unwrap();
    change(&mut bytes);
    decode_reply(&bytes)
}

#[test]
fn logon_directory_counts_are_bounded_before_use() {
    let ack = replies()[1].clone();
    // Byte 28..30 is `currencies`, 30..32 `markets`.
    let over = |at: usize, value: usize| {
        tampered(&ack, |b| {
            b[at..at + 2].copy_from_slice(&u16::try_from(value).unwrap().to_le_bytes());
        })
    };
    assert_eq!(
        over(28, CURRENCIES_MAX + 1),
        Err(FrameError::Field("currencies"))
    );
    assert_eq!(over(30, MARKETS_MAX + 1), Err(FrameError::Field("markets")));
    assert!(matches!(over(30, MARKETS_MAX), Ok(Decoded::Frame(..))));
    let mut too_many = ack;
    if let Reply::LogonAck { markets, .. } = &mut too_many {
        *markets = u16::try_from(MARKETS_MAX + 1).unwrap();
    }
    assert!(encode_reply(&too_many, &mut Vec::new()).is_err());
}

#[test]
fn directory_frames_parse_only_valid_names_and_units() {
    let market = Reply::Market(btcusd());
    // Name bytes are 36..52: an upper-case letter, a byte after the NUL padding, no name.
    assert_eq!(
        tampered(&market, |b| b[36] = b'B'),
        Err(FrameError::Field("name"))
    );
    assert_eq!(
        tampered(&market, |b| b[51] = b'x'),
        Err(FrameError::Field("name"))
    );
    assert_eq!(
        tampered(&market, |b| b[36..52].fill(0)),
        Err(FrameError::Field("name"))
    );
    // Byte 14 is the tick's scale, 20..28 its mantissa: a zero tick, a scale beyond 28, and
    // 0.010 (the same value as 0.01, a second encoding) are all refused.
    assert_eq!(
        tampered(&market, |b| b[20..28].fill(0)),
        Err(FrameError::Field("tick"))
    );
    assert_eq!(
        tampered(&market, |b| b[14] = 29),
        Err(FrameError::Field("tick"))
    );
    let second_encoding = tampered(&market, |b| {
        b[14] = 3;
        b[20..28].copy_from_slice(&10u64.to_le_bytes());
    });
    assert_eq!(second_encoding, Err(FrameError::Field("units")));
    // A tick*lot that is not a whole number of quote minor units.
    assert_eq!(
        tampered(&market, |b| b[13] = 0),
        Err(FrameError::Field("units"))
    );
    let currency = &replies()[2];
    assert_eq!(
        tampered(currency, |b| b[6] = 19),
        Err(FrameError::Field("scale"))
    );
    assert_eq!(Name::new(""), Err(DirectoryError::Name));
    assert_eq!(Name::new("a234567890abcdefg"), Err(DirectoryError::Name));
    assert_eq!(Name::new("btc-usd"), Err(DirectoryError::Name));
}

#[test]
fn a_directory_has_bounded_counts_unique_entries_and_known_currencies() {
    let usd = CurrencyInfo::new(CurrencyId(2), Name::new("usd").unwrap(), 6).unwrap();
    let cents = CurrencyInfo::new(CurrencyId(2), Name::new("usd").unwrap(), 2).unwrap();
    let btc = CurrencyInfo::new(CurrencyId(0), Name::new("btc").unwrap(), 8).unwrap();
    let directory = Directory::new(vec![btc, usd], vec![btcusd()]).unwrap();
    assert_eq!(directory.market("btcusd"), Some(&btcusd()));
    assert_eq!(directory.currency("usd"), Some(&usd));
    assert_eq!(
        Directory::new(vec![usd], vec![btcusd()]),
        Err(DirectoryError::UnknownCurrency)
    );
    // A market whose quote scale is not its quote currency's.
    assert_eq!(
        Directory::new(vec![btc, cents], vec![btcusd()]),
        Err(DirectoryError::Units("currency scale"))
    );
    assert_eq!(
        Directory::new(vec![btc, usd, usd], vec![]),
        Err(DirectoryError::Duplicate("currency"))
    );
    assert_eq!(
        Directory::new(vec![btc, usd], vec![btcusd(), btcusd()]),
        Err(DirectoryError::Duplicate("market"))
    );
    let many = (0..=CURRENCIES_MAX)
        .map(|i| {
            let id = u16::try_from(i).unwrap();
            CurrencyInfo::new(CurrencyId(id), Name::new(&format!("c{i}")).unwrap(), 2).unwrap()
        })
        .collect();
    assert!(matches!(
        Directory::new(many, vec![]),
        Err(DirectoryError::TooMany { .. })
    ));
}

#[test]
fn reject_codes_read_as_names_and_messages() {
    assert_eq!(RejectCode::SESSION_LIMIT.name(), "quic.session.limit");
    assert_eq!(
        RejectCode::SESSION_LIMIT.to_string(),
        "the key already has its allowed number of sessions (quic.session.limit)"
    );
    let insufficient = RejectCode::engine(RejectReason::InsufficientBalance);
    assert_eq!(
        insufficient.to_string(),
        "the available balance is insufficient (market.account.insufficient_balance)"
    );
    // Every gateway code from Busy to the last one has a name of its own.
    for code in 1001..=1022 {
        assert_ne!(RejectCode(code).name(), "unknown", "code {code}");
    }
    assert_eq!(RejectCode(1999).to_string(), "unknown reject code 1999");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 20_000,
        // Integration tests have no lib.rs beside them to anchor a regressions file.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Decoded::Frame(request, len)) = decode_request(&bytes) {
            prop_assert!(len <= bytes.len() && len <= MAX_FRAME_BYTES);
            // Whatever parses re-encodes to the same bytes: one encoding per message.
            let mut again = Vec::new();
            encode_request(&request, &mut again).unwrap();
            prop_assert_eq!(&again[..], &bytes[..len]);
        }
        if let Ok(Decoded::Frame(reply, len)) = decode_reply(&bytes) {
            let mut again = Vec::new();
            encode_reply(&reply, &mut again).unwrap();
            prop_assert_eq!(&again[..], &bytes[..len]);
        }
    }

    #[test]
    fn valid_headers_with_arbitrary_bodies_never_panic(
        kind in any::<u8>(),
        len in 4u16..=128,
        body in proptest::collection::vec(any::<u8>(), 124),
    ) {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.push(kind);
        bytes.push(PROTOCOL_VERSION);
        bytes.extend_from_slice(&body[..usize::from(len) - 4]);
        let _ = decode_request(&bytes);
        let _ = decode_reply(&bytes);
    }
}

/// The NewOrder as an rkyv archived frame, for the framing comparison.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct RkyvNewOrder {
    req: u64,
    client_order_id: u64,
    market: u32,
    side: u8,
    order_type: u8,
    tif: u8,
    stp: u8,
    price: u64,
    trigger: u64,
    size: u64,
}

fn rkyv_request(a: &ArchivedRkyvNewOrder) -> Request {
    let side = match a.side {
        0 => Side::Buy,
        1 => Side::Sell,
        _ => panic!("side"),
    };
    let tif = match a.tif {
        1 => TimeInForce::Gtc,
        2 => TimeInForce::Ioc,
        3 => TimeInForce::Fok,
        4 => TimeInForce::PostOnly,
        _ => panic!("tif"),
    };
    let stp = match a.stp {
        1 => SelfTradePrevention::CancelNewest,
        2 => SelfTradePrevention::CancelOldest,
        3 => SelfTradePrevention::CancelBoth,
        _ => panic!("stp"),
    };
    assert!(a.order_type == 1 && a.trigger.to_native() == 0);
    Request::NewOrder {
        req: RequestId(a.req.to_native()),
        client_order_id: ClientOrderId(a.client_order_id.to_native()),
        market: MarketId(a.market.to_native()),
        side,
        kind: OrderKind::Limit {
            price: Price(a.price.to_native()),
            qty: Qty(a.size.to_native()),
        },
        tif,
        stp,
    }
}

/// Encode + decode of a NewOrder, fixed-size LE vs rkyv (`access` with bytecheck, then the same
/// enum checks the fixed decoder does), alternating trials and keeping each one's best, so a
/// loaded machine skews both alike. Prints ns per frame; run with `--nocapture` to see them.
#[test]
fn framing_cost() {
    const TRIALS: usize = 15;
    const ROUNDS: u32 = 50_000;
    let request = requests()[2].clone();
    let value = RkyvNewOrder {
        req: 7,
        client_order_id: u64::MAX,
        market: 3,
        side: 1,
        order_type: 1,
        tif: 1,
        stp: 3,
        price: 100,
        trigger: 0,
        size: 5,
    };
    let mut bytes = Vec::with_capacity(128);
    // A reused aligned buffer, as a real sender would keep one.
    let mut archived_bytes = rkyv::util::AlignedVec::<16>::with_capacity(128);
    let (mut fixed_ns, mut rkyv_ns) = (u128::MAX, u128::MAX);
    let (mut encode_ns, mut decode_ns) = (u128::MAX, u128::MAX);
    for _ in 0..TRIALS {
        let start = Instant::now();
        for _ in 0..ROUNDS {
            bytes.clear();
            encode_request(black_box(&request), &mut bytes).unwrap();
            black_box(decode_request(black_box(&bytes)).unwrap());
        }
        fixed_ns = fixed_ns.min(start.elapsed().as_nanos() / u128::from(ROUNDS));
        let start = Instant::now();
        for _ in 0..ROUNDS {
            black_box(decode_request(black_box(&bytes)).unwrap());
        }
        decode_ns = decode_ns.min(start.elapsed().as_nanos() / u128::from(ROUNDS));
        let start = Instant::now();
        for _ in 0..ROUNDS {
            bytes.clear();
            encode_request(black_box(&request), &mut bytes).unwrap();
            black_box(&bytes);
        }
        encode_ns = encode_ns.min(start.elapsed().as_nanos() / u128::from(ROUNDS));

        let start = Instant::now();
        for _ in 0..ROUNDS {
            archived_bytes.clear();
            archived_bytes = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(
                black_box(&value),
                archived_bytes,
            )
            .unwrap();
            let archived =
                rkyv::access::<ArchivedRkyvNewOrder, rkyv::rancor::Error>(&archived_bytes).unwrap();
            // The same domain checks, into the same `Request`, as the fixed decoder.
            black_box(rkyv_request(archived));
        }
        rkyv_ns = rkyv_ns.min(start.elapsed().as_nanos() / u128::from(ROUNDS));
    }
    println!(
        "framing_cost: fixed LE encode+decode {fixed_ns} ns (encode {encode_ns} ns, decode {decode_ns} ns, {} B); rkyv to_bytes_in+access \
         {rkyv_ns} ns ({} B + 4 B header)",
        bytes.len(),
        archived_bytes.len()
    );
}
