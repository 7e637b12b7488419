//! Writes the fuzz targets' seed corpora from real encodings into `fuzz/seeds/<target>/`: frames
//! the codec and a live session produce, session scripts of real logons and orders, REST bodies
//! and signed headers, journal records of a real command flow and a segment header, and a real
//! engine's snapshot (file and body). Deterministic: the same release writes the same seeds.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --features make-seeds --bin make-seeds [DIR]`
//! (DIR defaults to `fuzz/seeds`). Commit what changed; keep seeds small (each under 16 KiB).

use std::path::PathBuf;

use peregrine_fuzz::session_script::{self, DEFAULT_LIMITS};
use peregrine_fuzz::{real_flow, rest};
use peregrine_hotpath::{
    AccountId, ClientOrderId, MarketId, MarketSize, OrderId, OrderKind, OrderRef, Price, Qty,
    SelfTradePrevention, Side, TimeInForce, TradeId,
};
use peregrine_persist::payload::{self, Scratch};
use peregrine_persist::record;
use peregrine_persist::segment::SegmentHeader;
use peregrine_proto::codec::{Decoded, decode_reply, encode_reply, encode_request};
use peregrine_proto::frame::{Fill, KeyId, Liquidity, Reply, Request, RequestId, SessionId};
use peregrine_proto::limits::SessionLimits;
use peregrine_proto::session::{Action, LoggedOn, Report, Session};

/// Largest seed written: seeds are starting points, not test data.
const SEED_BYTES_MAX: usize = 16 << 10;
/// Commands of the real flow whose records seed the journal target.
const FLOW_COMMANDS: usize = 48;
/// Commands applied before the engine is snapshotted for the snapshot target.
const SNAPSHOT_COMMANDS: usize = 200;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("fuzz/seeds"), PathBuf::from);
    let mut seeds = Seeds { root, written: 0 };
    proto_seeds(&mut seeds)?;
    rest_seeds(&mut seeds)?;
    journal_seeds(&mut seeds)?;
    snapshot_seeds(&mut seeds)?;
    println!(
        "{} seeds written under {}",
        seeds.written,
        seeds.root.display()
    );
    Ok(())
}

struct Seeds {
    root: PathBuf,
    written: usize,
}

impl Seeds {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
        if bytes.len() > SEED_BYTES_MAX {
            return Err(format!("seed {target}/{name} is {} bytes", bytes.len()).into());
        }
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
        self.written += 1;
        Ok(())
    }
}

fn requests() -> Vec<(&'static str, Request)> {
    let order = |kind, tif| Request::NewOrder {
        req: RequestId(3),
        client_order_id: ClientOrderId(11),
        market: MarketId(0),
        side: Side::Buy,
        kind,
        tif,
        stp: SelfTradePrevention::CancelNewest,
    };
    let limit = OrderKind::Limit {
        price: Price(3_000_000),
        qty: Qty(5),
    };
    let market_buy = OrderKind::Market {
        size: MarketSize::Qty(Qty(2)),
    };
    vec![
        ("hello", Request::Hello),
        (
            "logon",
            Request::Logon {
                key_id: KeyId(1),
                signature: [0x5a; 64],
            },
        ),
        ("new-limit", order(limit, TimeInForce::Gtc)),
        ("new-market", order(market_buy, TimeInForce::Ioc)),
        (
            "cancel",
            Request::Cancel {
                req: RequestId(4),
                target: OrderRef::Client(ClientOrderId(11)),
            },
        ),
        (
            "cancel-replace",
            Request::CancelReplace {
                req: RequestId(5),
                target: OrderRef::Id(OrderId(9)),
                new_price: Some(Price(2_999_000)),
                new_qty: Qty(4),
            },
        ),
        (
            "mass-cancel",
            Request::MassCancel {
                req: RequestId(6),
                market: Some(MarketId(0)),
                side: None,
            },
        ),
        (
            "order-status",
            Request::OrderStatus {
                req: RequestId(7),
                client_order_id: ClientOrderId(11),
            },
        ),
        (
            "subscribe",
            Request::Subscribe {
                req: RequestId(8),
                market: MarketId(0),
            },
        ),
        ("heartbeat", Request::Heartbeat { nonce: 42 }),
        ("logout", Request::Logout),
    ]
}

/// The codec's and the session's seeds: each request encoded, every reply a live session wrote
/// for them, and session scripts of the same traffic.
fn proto_seeds(seeds: &mut Seeds) -> Result<()> {
    let mut traffic = Vec::new();
    for (name, request) in requests() {
        let mut frame = Vec::new();
        encode_request(&request, &mut frame).map_err(|e| format!("{name}: {e:?}"))?;
        seeds.write("proto_codec", &format!("request-{name}"), &frame)?;
        traffic.push(frame);
    }
    let mut fill = Vec::new();
    encode_reply(
        &Reply::Fill(Fill {
            seq: 3,
            order: OrderId(9),
            client_order_id: ClientOrderId(11),
            trade: TradeId(1),
            market: MarketId(0),
            side: Side::Buy,
            liquidity: Liquidity::Maker,
            price: Price(3_000_000),
            qty: Qty(5),
            fee: 15,
        }),
        &mut fill,
    )
    .map_err(|e| format!("fill: {e:?}"))?;
    seeds.write("proto_codec", "reply-fill", &fill)?;
    let output = live_session_output(&traffic);
    let mut rest_of_output = &output[..];
    while let Ok(Decoded::Frame(reply, used_bytes)) = decode_reply(rest_of_output) {
        let name = format!("{reply:?}");
        let name = name.split([' ', '(', '{']).next().unwrap_or("reply");
        seeds.write(
            "proto_codec",
            &format!("reply-{}", name.to_lowercase()),
            &rest_of_output[..used_bytes],
        )?;
        rest_of_output = &rest_of_output[used_bytes..];
    }
    session_scripts(seeds, &traffic)
}

/// What a session answers to `traffic`, every action granted.
fn live_session_output(traffic: &[Vec<u8>]) -> Vec<u8> {
    let mut session = Session::new(SessionLimits::default(), [7; 32], 0);
    let mut seq = 0;
    for frame in traffic {
        let _ = session.on_bytes(1, frame);
        while let Some(action) = session.poll_action() {
            let _ = match action {
                Action::Logon { .. } => session.on_logon_result(Ok(LoggedOn {
                    account: AccountId(1),
                    session: SessionId(1),
                })),
                Action::Submit { request_id, .. } => {
                    seq += 1;
                    let result = session.on_submit_result(request_id, Ok(seq));
                    session.on_report(&Report::Done { seq });
                    result
                }
                Action::Status { request_id, .. } => session
                    .on_status_result(request_id, peregrine_proto::session::OrderStatus::UNKNOWN),
                Action::Subscribe { request_id, .. } => {
                    session.on_subscribe_result(request_id, Ok(()))
                }
                _ => Ok(()),
            };
        }
    }
    session.output().to_vec()
}

fn session_scripts(seeds: &mut Seeds, traffic: &[Vec<u8>]) -> Result<()> {
    // Every frame fed on its own, each answered with success, and its completion reported.
    let mut whole = DEFAULT_LIMITS.to_vec();
    for frame in traffic {
        session_script::feed(&mut whole, frame);
        session_script::answer_success(&mut whole, 2);
        whole.push(session_script::DONE);
    }
    whole.push(session_script::FLUSH);
    seeds.write("proto_session", "whole-frames", &whole)?;
    // The same bytes in one stream cut at odd points, under small limits.
    let stream: Vec<u8> = traffic.concat();
    let mut split = vec![0x4b, 0x27];
    for chunk in stream.chunks(13) {
        session_script::feed(&mut split, chunk);
        session_script::answer_success(&mut split, 1);
    }
    split.extend([session_script::TICK, 200, session_script::FLUSH]);
    seeds.write("proto_session", "split-stream-small-limits", &split)?;
    Ok(())
}

fn rest_seeds(seeds: &mut Seeds) -> Result<()> {
    let bodies: [(&str, &str); 4] = [
        (
            "limit",
            r#"{"market":"btcusd","side":"buy","volume":"0.015","price":"30000.01","client_id":"17"}"#,
        ),
        (
            "market-quote",
            r#"{"market":"btcusd","side":"buy","ord_type":"market","quote_amount":"250.5"}"#,
        ),
        (
            "stop-limit",
            r#"{"market":"ethusd","side":"sell","ord_type":"stop_limit","volume":"1","price":"1999.5","stop_price":"2000","time_in_force":"post_only"}"#,
        ),
        ("decimal", "123456789012345678.000000001"),
    ];
    for (name, body) in bodies {
        let mut seed = vec![rest::MODE_ORDER];
        seed.extend_from_slice(body.as_bytes());
        seeds.write("rest_order", &format!("order-{name}"), &seed)?;
    }
    let nonce_ms = rest::NOW_MS;
    // The request the fuzz target checks the headers against: an empty order POST.
    let signature = peregrine_gateway::rest::auth::sign_request(
        rest::SECRET,
        nonce_ms,
        "POST",
        "/api/v2/peatio/market/orders",
        b"",
    );
    let headers = format!("{}\n{nonce_ms}\n{signature}\n", rest::KEY);
    let mut seed = vec![rest::MODE_AUTH];
    seed.extend_from_slice(headers.as_bytes());
    seeds.write("rest_order", "auth-signed", &seed)
}

/// Records of a real flow's commands as the journal writes them, and a segment's header.
fn journal_seeds(seeds: &mut Seeds) -> Result<()> {
    let (_, applied) = real_flow(FLOW_COMMANDS);
    let mut scratch = Scratch::new();
    let mut records = Vec::new();
    for (index, (command, _)) in applied.iter().enumerate() {
        payload::encode(command, &mut scratch).map_err(|e| format!("payload: {e}"))?;
        record::encode(&mut records, index as u64 + 1, 1, &scratch);
    }
    // The setup (currencies, markets, deposits) and the trading that follows, separately.
    let setup_bytes = records.len() / 2 / record::RECORD_ALIGN_BYTES * record::RECORD_ALIGN_BYTES;
    let Some(first_trading) = first_record_at_or_after(&records, setup_bytes) else {
        return Err("no record boundary in the flow".into());
    };
    seeds.write("journal_record", "records-setup", &records[..first_trading])?;
    seeds.write(
        "journal_record",
        "records-trading",
        &records[first_trading..],
    )?;
    seeds.write(
        "journal_record",
        "segment-header",
        &SegmentHeader::new().encode(),
    )
}

/// The offset of the first record boundary at or after `at` in `records`.
fn first_record_at_or_after(records: &[u8], at: usize) -> Option<usize> {
    let mut offset = 0;
    while offset < at {
        match record::parse(&records[offset..]) {
            record::Parsed::Record { record_bytes, .. } => offset += record_bytes,
            _ => return None,
        }
    }
    Some(offset)
}

/// A real engine's snapshot, as a file (header and body) and as the bare engine image.
fn snapshot_seeds(seeds: &mut Seeds) -> Result<()> {
    let (engine, _) = real_flow(SNAPSHOT_COMMANDS);
    let body = engine.snapshot().map_err(|e| format!("snapshot: {e:?}"))?;
    seeds.write("snapshot_restore", "engine-image", &body)?;
    let dir = tempdir()?;
    let seq = SNAPSHOT_COMMANDS as u64;
    let path = peregrine_persist::snapshot::write_snapshot(&dir, seq, &body)?;
    let file = std::fs::read(&path)?;
    std::fs::remove_dir_all(&dir)?;
    seeds.write("snapshot_restore", "snapshot-file", &file)
}

fn tempdir() -> Result<PathBuf> {
    let dir = peregrine_fuzz::scratch_dir("make-seeds");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
