#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End to end over real QUIC on 127.0.0.1: the client SDK against the server, the real `Shard`
//! and `Engine`.

use std::sync::Arc;
use std::time::Duration;

use peregrine_client::{
    CONNECT_TIMEOUT, Cancelled, Client, ClientError, CurrencyInfo, Directory, Fill, KeyId,
    Liquidity, MarketInfo, Name, Order, OrderState, Outcome, Placed, RejectCode, Replaced, Reply,
    Request, ServerTrust, SigningKey, open_stream,
};
use peregrine_core::EngineHandle;
use peregrine_gateway::quic::auth::ApiKeyConfig;
use peregrine_gateway::quic::tls::TlsSource;
use peregrine_gateway::quic::{Server, ServerConfig, TransportTuning};
use peregrine_hotpath::edge::{CurrencyScale, MarketUnits};
use peregrine_hotpath::runtime::{IdlePolicy, Shard, ShardConfig};
use peregrine_hotpath::*;
use peregrine_proto::codec::{Decoded, decode_reply, encode_request};
use peregrine_proto::frame::PROTOCOL_VERSION;
use peregrine_proto::limits::SessionLimits;
use tokio::sync::mpsc;

const M: MarketId = MarketId(0);
const WAIT: Duration = Duration::from_secs(5);

fn seed(key: u64) -> [u8; 32] {
    [u8::try_from(key).unwrap(); 32]
}

fn engine() -> Engine {
    let mut engine = Engine::new(EngineConfig::small()).unwrap();
    let mut events = Vec::new();
    let mut apply = |kind| {
        engine.apply(
            &Envelope {
                ts: TimestampNs(1),
                actor: peregrine_hotpath::Actor::System,
                kind,
            },
            &mut events,
        );
        assert!(
            !matches!(events.first(), Some(Event::Rejected { .. })),
            "{events:?}"
        );
        events.clear();
    };
    apply(CommandKind::CurrencyAdd {
        currency: CurrencyId(0),
    });
    apply(CommandKind::CurrencyAdd {
        currency: CurrencyId(1),
    });
    apply(CommandKind::MarketAdd(MarketSpec {
        market: M,
        base: CurrencyId(0),
        quote: CurrencyId(1),
        base_per_lot: 1_000,
        quote_per_tick_lot: 1,
        risk: MarketRisk {
            max_price: Price(1_000_000),
            max_qty: Qty(1_000_000),
            max_notional: Amount(1_000_000_000_000),
            band_bps: 5_000,
            reference_price: Price(10_000),
        },
        fees: FeeRates {
            maker_ppm: 0,
            taker_ppm: 0,
        },
    }));
    for account in 1..=4 {
        for currency in 0..2 {
            apply(CommandKind::Deposit {
                account: AccountId(account),
                currency: CurrencyId(currency),
                amount: Amount(1_000_000_000_000),
                deposit: DepositId(u64::from(account) << 16 | u64::from(currency)),
            });
        }
    }
    engine
}

/// The engine's currencies and market by name: `btc` (0, satoshi), `usd` (1, micro-dollar) and
/// `btcusd` (market 0): 1,000 satoshi per lot is a lot of 0.00001 btc, and one micro-dollar per
/// tick per lot a tick of 0.1 usd.
fn directory() -> Directory {
    let currency = |id, code, scale| {
        CurrencyInfo::new(CurrencyId(id), Name::new(code).unwrap(), scale).unwrap()
    };
    let units = MarketUnits {
        tick: "0.1".parse().unwrap(),
        lot: "0.00001".parse().unwrap(),
        base: CurrencyScale { scale: 8 },
        quote: CurrencyScale { scale: 6 },
    };
    let btcusd = MarketInfo::new(
        M,
        Name::new("btcusd").unwrap(),
        (CurrencyId(0), CurrencyId(1)),
        units,
    )
    .unwrap();
    Directory::new(
        vec![currency(0, "btc", 8), currency(1, "usd", 6)],
        vec![btcusd],
    )
    .unwrap()
}

struct Harness {
    server: Server,
    fingerprint: [u8; 32],
}

impl Harness {
    fn start(limits: SessionLimits, input_capacity: usize) -> Harness {
        let shard = Shard::start(
            engine(),
            &ShardConfig {
                core: None,
                idle: IdlePolicy::Park {
                    spins: 100,
                    park_us: 1_000,
                },
                input_capacity,
                query_capacity: 1_024,
                output_capacity: 65_536,
            },
        )
        .unwrap();
        let engine = EngineHandle::start(shard).unwrap();
        let keys = (1..=4)
            .map(|key| ApiKeyConfig {
                key_id: key,
                account: u32::try_from(key).unwrap(),
                public_key: SigningKey::from_seed(&seed(key)).unwrap().public_key_hex(),
            })
            .collect();
        let server = Server::start_with_directory(
            ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                tls: TlsSource::SelfSigned {
                    names: vec!["localhost".into()],
                },
                keys,
                limits,
                sessions_per_key: 1,
                transport: TransportTuning::default(),
            },
            engine,
            Arc::new(directory()),
            &prometheus::Registry::new(),
        )
        .unwrap();
        let fingerprint = server.fingerprint_sha256();
        Harness {
            server,
            fingerprint,
        }
    }

    fn new() -> Harness {
        Harness::start(SessionLimits::default(), 1_024)
    }

    async fn client(&self, key: u64) -> Client {
        self.try_client(key, seed(key)).await.unwrap()
    }

    async fn try_client(&self, key: u64, seed: [u8; 32]) -> Result<Client, ClientError> {
        Client::connect(
            self.server.local_addr(),
            ServerTrust::Fingerprint(self.fingerprint),
            KeyId(key),
            SigningKey::from_seed(&seed).unwrap(),
        )
        .await
    }

    fn engine(&self) -> &Arc<EngineHandle> {
        self.server.engine()
    }
}

fn limit(id: u64, side: Side, price: u64, qty: u64) -> Order {
    Order::limit(ClientOrderId(id), M, side, Price(price), Qty(qty))
}

async fn ack(client: &Client, order: Order) -> OrderId {
    match client.place(order).await.unwrap() {
        Placed::Ack { order, .. } => order,
        other => panic!("expected an ack, got {other:?}"),
    }
}

/// The next report matching `pick`, skipping others.
async fn expect<T>(
    reports: &mut mpsc::Receiver<Reply>,
    mut pick: impl FnMut(&Reply) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let reply = reports.recv().await.expect("report stream ended");
            if let Some(found) = pick(&reply) {
                return found;
            }
        }
    })
    .await
    .expect("no matching report in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logon_succeeds_and_refuses_bad_signature_unknown_key_and_second_session() {
    let h = Harness::new();
    let first = h.client(1).await;
    assert_eq!(first.account(), AccountId(1));
    let refused = |r: Result<Client, ClientError>| match r {
        Err(ClientError::LogonRefused(code)) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refused(h.try_client(2, seed(3)).await),
        RejectCode::BAD_SIGNATURE
    );
    assert_eq!(
        refused(h.try_client(99, seed(1)).await),
        RejectCode::UNKNOWN_KEY
    );
    assert_eq!(
        refused(h.try_client(1, seed(1)).await),
        RejectCode::SESSION_LIMIT
    );
    // After an orderly logout the key may log on again.
    first.logout().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let again = h.client(1).await;
    assert!(again.ping().await.unwrap() < WAIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_orders_fill_both_sides() {
    let h = Harness::new();
    let maker = h.client(1).await;
    let taker = h.client(2).await;
    let mut maker_reports = maker.reports().unwrap();
    let mut taker_reports = taker.reports().unwrap();
    let resting = ack(&maker, limit(10, Side::Sell, 10_000, 5)).await;
    let incoming = ack(&taker, limit(20, Side::Buy, 10_000, 3)).await;
    let (order, liquidity, qty, price) = expect(&mut maker_reports, |r| match *r {
        Reply::Fill(Fill {
            order,
            liquidity,
            qty,
            price,
            client_order_id: ClientOrderId(10),
            ..
        }) => Some((order, liquidity, qty, price)),
        _ => None,
    })
    .await;
    assert_eq!(
        (order, liquidity, qty, price),
        (resting, Liquidity::Maker, Qty(3), Price(10_000))
    );
    let (order, liquidity) = expect(&mut taker_reports, |r| match *r {
        Reply::Fill(Fill {
            order, liquidity, ..
        }) => Some((order, liquidity)),
        _ => None,
    })
    .await;
    assert_eq!((order, liquidity), (incoming, Liquidity::Taker));
    let status = taker.status(ClientOrderId(20)).await.unwrap();
    assert_eq!((status.state, status.filled), (OrderState::Filled, Qty(3)));
    let status = maker.status(ClientOrderId(10)).await.unwrap();
    assert_eq!((status.state, status.filled), (OrderState::Live, Qty(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_replace_and_mass_cancel() {
    let h = Harness::new();
    let c = h.client(1).await;
    let mut reports = c.reports().unwrap();
    let order = ack(&c, limit(1, Side::Buy, 9_000, 10)).await;
    let done = c
        .replace(
            OrderRef::Client(ClientOrderId(1)),
            Some(Price(9_100)),
            Qty(4),
        )
        .await
        .unwrap();
    assert!(matches!(done, Outcome::Done { .. }));
    let replaced = expect(&mut reports, |r| match *r {
        Reply::Replaced(Replaced {
            order, price, qty, ..
        }) => Some((order, price, qty)),
        _ => None,
    })
    .await;
    assert_eq!(replaced, (order, Price(9_100), Qty(4)));
    assert!(matches!(
        c.cancel(OrderRef::Id(order)).await.unwrap(),
        Outcome::Done { .. }
    ));
    let cancelled = expect(&mut reports, |r| match *r {
        Reply::Cancelled(Cancelled {
            order,
            reason,
            remaining,
            ..
        }) => Some((order, reason, remaining)),
        _ => None,
    })
    .await;
    assert_eq!(cancelled, (order, CancelReason::Requested, Qty(4)));
    // Cancelling it again: the engine's reject code.
    assert_eq!(
        c.cancel(OrderRef::Id(order)).await.unwrap(),
        Outcome::Rejected {
            code: RejectCode::engine(RejectReason::UnknownOrder),
            seq: match c.cancel(OrderRef::Id(order)).await.unwrap() {
                Outcome::Rejected { seq, .. } => seq - 1,
                other => panic!("{other:?}"),
            },
        }
    );
    for id in 2..5 {
        ack(&c, limit(id, Side::Buy, 9_000 + id, 1)).await;
    }
    assert!(matches!(
        c.mass_cancel(Some(M), None).await.unwrap(),
        Outcome::Done { .. }
    ));
    let count = expect(&mut reports, |r| match *r {
        Reply::MassCancelled { count, .. } => Some(count),
        _ => None,
    })
    .await;
    assert_eq!(count, 3);
}

/// Sends raw frames (after an optional logon) and returns the replies until the stream ends.
async fn raw_session(h: &Harness, key: Option<u64>, frames: &[u8]) -> (Vec<Reply>, Option<u32>) {
    let (_endpoint, connection, mut send, mut recv) = open_stream(
        h.server.local_addr(),
        &ServerTrust::Fingerprint(h.fingerprint),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    if let Some(key) = key {
        encode_request(&Request::Hello, &mut out).unwrap();
        send.write_all(&out).await.unwrap();
        let mut buf = [0u8; 36];
        recv.read_exact(&mut buf).await.unwrap();
        let Ok(Decoded::Frame(Reply::Challenge { nonce }, _)) = decode_reply(&buf) else {
            panic!("no challenge");
        };
        out.clear();
        let signature = SigningKey::from_seed(&seed(key))
            .unwrap()
            .sign_challenge(&nonce);
        encode_request(
            &Request::Logon {
                key_id: KeyId(key),
                signature,
            },
            &mut out,
        )
        .unwrap();
    }
    out.extend_from_slice(frames);
    send.write_all(&out).await.unwrap();
    let bytes = tokio::time::timeout(WAIT, recv.read_to_end(1 << 20))
        .await
        .expect("the server did not end the stream")
        .unwrap_or_default();
    let mut replies = Vec::new();
    let mut at = 0;
    while let Ok(Decoded::Frame(reply, len)) = decode_reply(&bytes[at..]) {
        replies.push(reply);
        at += len;
    }
    let code = match tokio::time::timeout(WAIT, connection.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(close)) => {
            Some(u32::try_from(close.error_code.into_inner()).unwrap())
        }
        _ => None,
    };
    (replies, code)
}

fn frames(requests: &[Request]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in requests {
        encode_request(r, &mut out).unwrap();
    }
    out
}

fn new_order(req: u64, id: u64, price: u64) -> Request {
    let o = limit(id, Side::Buy, price, 1);
    Request::NewOrder {
        req: peregrine_client::RequestId(req),
        client_order_id: o.client_order_id,
        market: o.market,
        side: o.side,
        kind: o.kind,
        tif: o.tif,
        stp: o.stp,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_close_only_that_session() {
    let h = Harness::new();
    let healthy = h.client(2).await;
    // Garbage after a valid logon: typed reject, then the connection closes with its code.
    let (replies, code) = raw_session(&h, Some(1), &[4, 0, 0x7E, PROTOCOL_VERSION]).await;
    assert!(
        matches!(
            replies.last(),
            Some(Reply::Reject {
                code: RejectCode::MALFORMED,
                ..
            })
        ),
        "{replies:?}"
    );
    assert_eq!(code, Some(u32::from(RejectCode::MALFORMED.0)));
    // A bad enum byte.
    let mut bad = frames(&[new_order(1, 1, 9_000)]);
    bad[24] = 7;
    let (replies, _) = raw_session(&h, Some(3), &bad).await;
    assert!(
        matches!(
            replies.last(),
            Some(Reply::Reject {
                code: RejectCode::MALFORMED,
                ..
            })
        ),
        "{replies:?}"
    );
    // A frame declaring 4000 bytes, before logon.
    let (replies, code) = raw_session(&h, None, &[0xA0, 0x0F, 0x10, 1]).await;
    assert_eq!(
        replies,
        vec![Reply::Reject {
            req: peregrine_client::RequestId(0),
            seq: 0,
            code: RejectCode::FRAME_TOO_LARGE
        }]
    );
    assert_eq!(code, Some(u32::from(RejectCode::FRAME_TOO_LARGE.0)));
    // An order before logon.
    let (replies, _) = raw_session(&h, None, &frames(&[new_order(1, 1, 9_000)])).await;
    assert!(matches!(
        replies[..],
        [Reply::Reject {
            code: RejectCode::NOT_LOGGED_ON,
            ..
        }]
    ));
    // The server keeps serving others.
    ack(&healthy, limit(1, Side::Buy, 9_000, 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_give_typed_rejects_then_abuse_disconnects() {
    let h = Harness::start(
        SessionLimits {
            max_in_flight: 1,
            rate_per_sec: 1,
            burst: 40,
            max_violations: 30,
            ..SessionLimits::default()
        },
        1_024,
    );
    // 60 orders in one write: the first is in flight when the rest arrive, so TooManyInFlight;
    // the burst of 40 then runs out, so RateLimited; 30 violations in a row close the session.
    let requests: Vec<Request> = (1..=60).map(|i| new_order(i, i, 9_000)).collect();
    let (replies, code) = raw_session(&h, Some(1), &frames(&requests)).await;
    let count = |wanted: RejectCode| {
        replies
            .iter()
            .filter(|r| matches!(r, Reply::Reject { code, .. } if *code == wanted))
            .count()
    };
    assert!(count(RejectCode::TOO_MANY_IN_FLIGHT) >= 1, "{replies:?}");
    assert!(
        matches!(
            replies.last(),
            Some(Reply::Logout {
                code: RejectCode::ABUSE
            })
        ),
        "{replies:?}"
    );
    assert_eq!(code, Some(u32::from(RejectCode::ABUSE.0)));

    // Rate alone: one order at a time, each done before the next.
    let h = Harness::start(
        SessionLimits {
            rate_per_sec: 1,
            burst: 40,
            ..SessionLimits::default()
        },
        1_024,
    );
    let c = h.client(2).await;
    let mut rate_limited = 0;
    for id in 1..=45 {
        match c.place(limit(id, Side::Buy, 9_000, 1)).await.unwrap() {
            Placed::Ack { .. } => {
                // Wait for Done so the in-flight limit stays out of the way.
                c.status(ClientOrderId(id)).await.unwrap();
            }
            Placed::Rejected { code, .. } => {
                assert_eq!(code, RejectCode::RATE_LIMITED);
                rate_limited += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(rate_limited >= 4, "only {rate_limited} rate limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_when_the_shard_input_queue_is_full() {
    let h = Harness::start(SessionLimits::default(), 1);
    let c = h.client(1).await;
    // Hold the shard thread in a query so its one-slot input queue stays full.
    let engine = h.engine().clone();
    let blocker = std::thread::spawn(move || {
        engine
            .query(|_| std::thread::sleep(Duration::from_millis(500)))
            .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Sent concurrently, so all three reach the gateway while the shard is held.
    let (a, b, d) = tokio::join!(
        c.place(limit(1, Side::Buy, 9_000, 1)),
        c.place(limit(2, Side::Buy, 9_000, 1)),
        c.place(limit(3, Side::Buy, 9_000, 1)),
    );
    let outcomes = [a.unwrap(), b.unwrap(), d.unwrap()];
    blocker.join().unwrap();
    let busy = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                Placed::Rejected {
                    code: RejectCode::BUSY,
                    seq: 0
                }
            )
        })
        .count();
    let acked = outcomes
        .iter()
        .filter(|o| matches!(o, Placed::Ack { .. }))
        .count();
    assert!(busy >= 1, "{outcomes:?}");
    assert_eq!(busy + acked, 3, "{outcomes:?}");
    // Once the shard is free again, a retry of a Busy order goes through (Busy is not recorded).
    let retry = outcomes
        .iter()
        .position(|o| matches!(o, Placed::Rejected { .. }))
        .unwrap();
    ack(
        &c,
        limit(u64::try_from(retry).unwrap() + 1, Side::Buy, 9_000, 1),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_and_resend_never_duplicates() {
    let h = Harness::new();
    let first = h.client(1).await;
    let order = ack(&first, limit(77, Side::Buy, 9_000, 2)).await;
    drop(first);
    // The server notices the dropped connection; then the key may log on again.
    let mut second = None;
    for _ in 0..50 {
        match h.try_client(1, seed(1)).await {
            Ok(c) => {
                second = Some(c);
                break;
            }
            Err(ClientError::LogonRefused(RejectCode::SESSION_LIMIT)) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    let second = second.expect("could not log on again");
    match second.place(limit(77, Side::Buy, 9_000, 2)).await.unwrap() {
        Placed::Duplicate(status) => {
            assert_eq!((status.order, status.state), (order, OrderState::Live));
        }
        other => panic!("expected the original's status, got {other:?}"),
    }
    let status = second.status(ClientOrderId(77)).await.unwrap();
    assert_eq!((status.order, status.state), (order, OrderState::Live));
    let open = h
        .engine()
        .query(|engine| engine.open_orders(AccountId(1)))
        .unwrap();
    assert_eq!(open, 1, "the resend placed a second order");
    assert_eq!(
        second.status(ClientOrderId(78)).await.unwrap().state,
        OrderState::Unknown
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_data_snapshot_then_deltas_and_trades() {
    let h = Harness::new();
    let maker = h.client(1).await;
    ack(&maker, limit(1, Side::Sell, 10_100, 5)).await;
    let watcher = h.client(3).await;
    let mut md = watcher.reports().unwrap();
    assert!(matches!(
        watcher.subscribe(M).await.unwrap(),
        Outcome::Done { .. }
    ));
    let (seq, asks) = expect(&mut md, |r| match *r {
        Reply::Snapshot {
            market_seq, asks, ..
        } => Some((market_seq, asks)),
        _ => None,
    })
    .await;
    assert_eq!(asks, 1);
    let level = expect(&mut md, |r| match *r {
        Reply::BookLevel {
            snapshot: true,
            price,
            qty,
            ..
        } => Some((price, qty)),
        _ => None,
    })
    .await;
    assert_eq!(level, (Price(10_100), Qty(5)));
    let taker = h.client(2).await;
    ack(&taker, limit(2, Side::Buy, 10_100, 2)).await;
    // The maker level's change comes first; the trade carries the book sequence it made.
    let (delta_seq, level) = expect(&mut md, |r| match *r {
        Reply::BookLevel {
            snapshot: false,
            market_seq,
            price,
            qty,
            ..
        } => Some((market_seq, (price, qty))),
        _ => None,
    })
    .await;
    assert_eq!(
        delta_seq.0,
        seq.0 + 1,
        "one sequence per book change, no gap"
    );
    assert_eq!(level, (Price(10_100), Qty(3)));
    let (trade_seq, qty) = expect(&mut md, |r| match *r {
        Reply::Trade {
            market_seq, qty, ..
        } => Some((market_seq, qty)),
        _ => None,
    })
    .await;
    assert_eq!(qty, Qty(2));
    assert_eq!(trade_seq, delta_seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_client_stays_logged_on_through_sdk_heartbeats() {
    let h = Harness::start(
        SessionLimits {
            heartbeat_ms: 50,
            idle_timeout_ms: 300,
            ..SessionLimits::default()
        },
        1_024,
    );
    let c = h.client(1).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    ack(&c, limit(1, Side::Buy, 9_000, 1)).await;
    // A raw session that never sends anything after logon is timed out.
    let (_endpoint, connection, mut send, mut recv) = open_stream(
        h.server.local_addr(),
        &ServerTrust::Fingerprint(h.fingerprint),
    )
    .await
    .unwrap();
    send.write_all(&frames(&[Request::Hello])).await.unwrap();
    let bytes = tokio::time::timeout(WAIT, recv.read_to_end(1 << 16))
        .await
        .unwrap()
        .unwrap();
    let mut replies = Vec::new();
    let mut at = 0;
    while let Ok(Decoded::Frame(reply, len)) = decode_reply(&bytes[at..]) {
        replies.push(reply);
        at += len;
    }
    assert!(
        matches!(
            replies.last(),
            Some(Reply::Logout {
                code: RejectCode::IDLE_TIMEOUT
            })
        ),
        "{replies:?}"
    );
    drop(connection);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_by_market_name_and_decimals_trade_in_engine_units() {
    let h = Harness::new();
    let maker = h.client(1).await;
    let taker = h.client(2).await;
    assert_eq!(maker.directory(), &directory());
    let mut reports = maker.reports().unwrap();
    // 1000.0 usd is 10,000 ticks of 0.1; 0.00005 btc is 5 lots of 0.00001.
    let sell = maker
        .limit("btcusd", Side::Sell, "1000.0", "0.00005")
        .unwrap();
    assert_eq!(
        (sell.market, sell.kind),
        (
            M,
            OrderKind::Limit {
                price: Price(10_000),
                qty: Qty(5)
            }
        )
    );
    ack(&maker, sell).await;
    let buy = taker.limit("btcusd", Side::Buy, "1000", "0.00003").unwrap();
    assert_ne!(buy.client_order_id, sell.client_order_id);
    ack(&taker, buy).await;
    let (price, qty) = expect(&mut reports, |r| match *r {
        Reply::Fill(Fill { price, qty, .. }) => Some((price, qty)),
        _ => None,
    })
    .await;
    assert_eq!((price, qty), (Price(10_000), Qty(3)));
    // Wrong names and values are refused before anything is sent, with what was wrong.
    let error = maker.limit("ethusd", Side::Buy, "1", "1").unwrap_err();
    assert!(matches!(error, ClientError::UnknownMarket(_)), "{error}");
    let error = maker
        .limit("btcusd", Side::Buy, "1000.05", "0.00001")
        .unwrap_err();
    assert!(matches!(error, ClientError::Units(_)), "{error}");
    assert!(error.to_string().contains("multiple of 0.1"), "{error}");
    let error = maker
        .limit("btcusd", Side::Buy, "1e3", "0.00001")
        .unwrap_err();
    assert!(matches!(error, ClientError::Decimal { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balance_query_answers_what_the_engine_holds() {
    let h = Harness::new();
    let c = h.client(3).await;
    ack(&c, c.limit("btcusd", Side::Buy, "900", "0.0001").unwrap()).await;
    let over_quic = c.balance("usd").await.unwrap();
    let in_engine = h
        .engine()
        .ask(|e| e.balance(AccountId(3), CurrencyId(1)))
        .await
        .unwrap();
    assert_eq!(
        (over_quic.available_minor.0, over_quic.locked_minor.0),
        (in_engine.available, in_engine.locked)
    );
    // 10 lots at 9,000 ticks, one micro-dollar per tick per lot, are locked: 0.09 usd.
    assert_eq!(over_quic.locked, "0.09".parse().unwrap());
    assert_eq!(over_quic.available, "999999.91".parse().unwrap());
    let error = c.balance("eur").await.unwrap_err();
    assert!(matches!(error, ClientError::UnknownCurrency(_)), "{error}");
    // An id outside the directory is refused by the server with a name.
    match c.balance_of(CurrencyId(9)).await {
        Err(ClientError::Refused(code)) => {
            assert_eq!(code, RejectCode::UNKNOWN_CURRENCY);
            assert!(
                code.to_string().contains("market.currency.doesnt_exist"),
                "{code}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_read_as_names_not_numbers() {
    let h = Harness::new();
    let _first = h.client(1).await;
    let error = h.try_client(1, seed(1)).await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("quic.session.limit"), "{text}");
    assert!(!text.contains("1009"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_closed_port_fails_fast_and_says_so() {
    // A port that was just free: nothing listens on it.
    let addr = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let start = std::time::Instant::now();
    let error = Client::connect(
        addr,
        ServerTrust::Fingerprint([0; 32]),
        KeyId(1),
        SigningKey::from_seed(&seed(1)).unwrap(),
    )
    .await
    .unwrap_err();
    let waited = start.elapsed();
    assert!(
        matches!(error, ClientError::ConnectTimeout { .. }),
        "{error}"
    );
    assert!(
        waited < CONNECT_TIMEOUT + Duration::from_secs(1),
        "{waited:?}"
    );
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_client_frees_its_session_before_its_runtime_ends() {
    let h = Harness::new();
    let (addr, fingerprint) = (h.server.local_addr(), h.fingerprint);
    // A program's life: its own runtime, a session, an error, `close`, then the runtime (the
    // process) ends at once; nothing runs after `close` to send the close for it.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = Client::connect(
                addr,
                ServerTrust::Fingerprint(fingerprint),
                KeyId(1),
                SigningKey::from_seed(&seed(1)).unwrap(),
            )
            .await
            .unwrap();
            assert!(client.limit("nosuchmarket", Side::Buy, "1", "1").is_err());
            client.close().await;
        });
    })
    .join()
    .unwrap();
    // The next run logs on with the same key at once: no `quic.session.limit` while the
    // server waits out the idle timeout.
    let again = h.try_client(1, seed(1)).await;
    assert!(again.is_ok(), "{:?}", again.err());
}
