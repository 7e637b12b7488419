#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The sans-IO session, driven without sockets: logon, limits, back-pressure and bad input.

use std::sync::Arc;

use peregrine_hotpath::edge::{CurrencyScale, MarketUnits};
use peregrine_hotpath::ledger::Balance;
use peregrine_hotpath::*;
use peregrine_proto::codec::{Decoded, decode_reply, encode_request};
use peregrine_proto::directory::{CurrencyInfo, Directory, MarketInfo, Name};
use peregrine_proto::frame::{
    CHALLENGE_BYTES, KeyId, OrderState, RejectCode, Reply, Request, RequestId, SIGNATURE_BYTES,
    SessionId,
};
use peregrine_proto::limits::SessionLimits;
use peregrine_proto::session::{
    ACTIONS_MAX, Action, LoggedOn, OrderStatus, Report, Session, SessionError, SubmitError,
};
use proptest::prelude::*;

/// The engine side of these tests: accepts key 1 with signature [1; 64], sequences from 1, and
/// can be told to be busy. [`feed`] performs the session's actions with it.
#[derive(Default)]
struct TestBackend {
    next_seq: u64,
    busy: bool,
    submitted: Vec<CommandKind>,
    seen: Vec<ClientOrderId>,
}

impl TestBackend {
    fn logon(
        &mut self,
        key_id: KeyId,
        _challenge: &[u8; CHALLENGE_BYTES],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> Result<LoggedOn, RejectCode> {
        match (key_id, signature[0]) {
            (KeyId(1), 1) => Ok(LoggedOn {
                account: AccountId(5),
                session: SessionId(1),
                directory: Arc::new(directory()),
            }),
            (KeyId(1), _) => Err(RejectCode::BAD_SIGNATURE),
            _ => Err(RejectCode::UNKNOWN_KEY),
        }
    }

    fn submit(
        &mut self,
        _account: AccountId,
        new_order: Option<ClientOrderId>,
        command: CommandKind,
    ) -> Result<u64, SubmitError> {
        if self.busy {
            return Err(SubmitError::Busy);
        }
        if let Some(id) = new_order {
            if self.seen.contains(&id) {
                return Err(SubmitError::Duplicate(OrderStatus {
                    state: OrderState::Live,
                    ..OrderStatus::UNKNOWN
                }));
            }
            self.seen.push(id);
        }
        self.submitted.push(command);
        self.next_seq += 1;
        Ok(self.next_seq)
    }

    /// Performs one action and feeds its result back to `session`.
    fn perform(&mut self, session: &mut Session, action: Action) -> Result<(), SessionError> {
        match action {
            Action::Logon {
                key_id,
                challenge,
                signature,
            } => session.on_logon_result(self.logon(key_id, &challenge, &signature)),
            Action::Submit {
                request_id,
                account,
                new_order,
                command,
            } => session.on_submit_result(request_id, self.submit(account, new_order, command)),
            Action::Status { request_id, .. } => {
                session.on_status_result(request_id, OrderStatus::UNKNOWN)
            }
            Action::Subscribe { request_id, .. } => session.on_subscribe_result(request_id, Ok(())),
            Action::Unsubscribe { .. } => Ok(()),
            Action::Balance {
                request_id,
                currency,
                ..
            } => session.on_balance_result(
                request_id,
                Ok(Balance {
                    available: 100 + u64::from(currency.0),
                    locked: 5,
                }),
            ),
            action => panic!("unknown action {action:?}"),
        }
    }
}

/// Currencies `btc` (0) and `usd` (1), market `btcusd` (0).
fn directory() -> Directory {
    let currency = |id, code, scale| {
        CurrencyInfo::new(CurrencyId(id), Name::new(code).unwrap(), scale).unwrap()
    };
    let units = MarketUnits {
        tick: "0.01".parse().unwrap(),
        lot: "0.0001".parse().unwrap(),
        base: CurrencyScale { scale: 8 },
        quote: CurrencyScale { scale: 6 },
    };
    let btcusd = MarketInfo::new(
        MarketId(0),
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

/// The driver: bytes in, then every action performed until none is left; the first error wins.
fn feed(
    session: &mut Session,
    now_ns: u64,
    bytes: &[u8],
    backend: &mut TestBackend,
) -> Result<(), SessionError> {
    let mut result = session.on_bytes(now_ns, bytes);
    while let Some(action) = session.poll_action() {
        let performed = backend.perform(session, action);
        result = result.and(performed);
    }
    result
}

fn bytes(requests: &[Request]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in requests {
        encode_request(r, &mut out).unwrap();
    }
    out
}

fn replies(session: &mut Session) -> Vec<Reply> {
    let mut out = Vec::new();
    let mut at = 0;
    let buffer = session.output().to_vec();
    while let Ok(Decoded::Frame(reply, len)) = decode_reply(&buffer[at..]) {
        out.push(reply);
        at += len;
    }
    assert_eq!(at, buffer.len());
    session.clear_output();
    out
}

fn order(req: u64, id: u64) -> Request {
    Request::NewOrder {
        req: RequestId(req),
        client_order_id: ClientOrderId(id),
        market: MarketId(0),
        side: Side::Buy,
        kind: OrderKind::Limit {
            price: Price(10),
            qty: Qty(1),
        },
        tif: TimeInForce::Gtc,
        stp: SelfTradePrevention::CancelNewest,
    }
}

fn logged_on(limits: SessionLimits, backend: &mut TestBackend) -> Session {
    let mut s = Session::new(limits, [0; 32], 0);
    feed(
        &mut s,
        0,
        &bytes(&[
            Request::Hello,
            Request::Logon {
                key_id: KeyId(1),
                signature: [1; 64],
            },
        ]),
        backend,
    )
    .unwrap();
    let r = replies(&mut s);
    assert!(matches!(r[0], Reply::Challenge { .. }));
    assert!(matches!(
        r[1],
        Reply::LogonAck {
            account: AccountId(5),
            currencies: 2,
            markets: 1,
            ..
        }
    ));
    // The directory follows the ack: every currency, then every market.
    let listed = directory();
    assert_eq!(r[2], Reply::Currency(listed.currencies()[0]));
    assert_eq!(r[3], Reply::Currency(listed.currencies()[1]));
    assert_eq!(r[4], Reply::Market(listed.markets()[0]));
    assert_eq!(r.len(), 5);
    s
}

#[test]
fn balance_of_a_listed_currency_is_asked_and_answered_in_order() {
    let mut backend = TestBackend::default();
    let mut s = logged_on(SessionLimits::default(), &mut backend);
    let balance = |req, currency| Request::Balance {
        req: RequestId(req),
        currency: CurrencyId(currency),
    };
    // An unlisted currency is refused without asking the engine side; the heartbeat behind a
    // balance read is answered after it (parsing waits for the result).
    let input = bytes(&[
        balance(1, 9),
        balance(2, 1),
        Request::Heartbeat { nonce: 3 },
    ]);
    s.on_bytes(1, &input).unwrap();
    let Some(Action::Balance {
        request_id,
        account,
        currency,
    }) = s.poll_action()
    else {
        panic!("no balance action");
    };
    assert_eq!(
        (request_id, account, currency),
        (RequestId(2), AccountId(5), CurrencyId(1))
    );
    assert!(s.awaits_result());
    assert_eq!(
        s.on_balance_result(RequestId(1), Err(RejectCode::BUSY)),
        Err(SessionError::UnexpectedResult)
    );
    let answer = Balance {
        available: 7,
        locked: 1,
    };
    s.on_balance_result(RequestId(2), Ok(answer)).unwrap();
    assert_eq!(
        replies(&mut s),
        vec![
            Reply::Reject {
                req: RequestId(1),
                seq: 0,
                code: RejectCode::UNKNOWN_CURRENCY,
            },
            Reply::Balance {
                req: RequestId(2),
                currency: CurrencyId(1),
                available: Amount(7),
                locked: Amount(1),
            },
            Reply::Heartbeat { nonce: 3 },
        ]
    );
    // A failed read is a reject of that request; the session stays open.
    feed(&mut s, 2, &bytes(&[balance(4, 0)]), &mut backend).unwrap();
    assert!(matches!(
        replies(&mut s)[..],
        [Reply::Balance {
            available: Amount(100),
            ..
        }]
    ));
    s.on_bytes(3, &bytes(&[balance(5, 0)])).unwrap();
    assert!(matches!(s.poll_action(), Some(Action::Balance { .. })));
    s.on_balance_result(RequestId(5), Err(RejectCode::BUSY))
        .unwrap();
    assert_eq!(
        replies(&mut s),
        vec![Reply::Reject {
            req: RequestId(5),
            seq: 0,
            code: RejectCode::BUSY,
        }]
    );
    assert_eq!(s.close_reason(), None);
}

#[test]
fn logon_then_order_ack_and_done() {
    let mut backend = TestBackend::default();
    let mut s = logged_on(SessionLimits::default(), &mut backend);
    // A frame split across two reads.
    let frame = bytes(&[order(7, 70)]);
    feed(&mut s, 1, &frame[..10], &mut backend).unwrap();
    feed(&mut s, 1, &frame[10..], &mut backend).unwrap();
    assert_eq!(s.in_flight(), 1);
    assert!(matches!(
        &backend.submitted[0],
        CommandKind::NewOrder(NewOrder {
            account: AccountId(5),
            ..
        })
    ));
    s.on_report(&Report::Accepted {
        seq: 1,
        order: OrderId(9),
        client_order_id: ClientOrderId(70),
    });
    s.on_report(&Report::Done { seq: 1 });
    assert_eq!(
        replies(&mut s),
        vec![
            Reply::Ack {
                req: RequestId(7),
                seq: 1,
                order: OrderId(9),
                client_order_id: ClientOrderId(70)
            },
            Reply::Done {
                req: RequestId(7),
                seq: 1
            }
        ]
    );
    assert_eq!(s.in_flight(), 0);
    // A resend of the same client order id answers with the original's status.
    feed(&mut s, 2, &bytes(&[order(8, 70)]), &mut backend).unwrap();
    assert!(matches!(
        replies(&mut s)[..],
        [Reply::Status {
            req: RequestId(8),
            state: OrderState::Live,
            ..
        }]
    ));
}

#[test]
fn refuses_orders_before_logon_and_bad_logons() {
    let mut backend = TestBackend::default();
    let mut s = Session::new(SessionLimits::default(), [0; 32], 0);
    let error = feed(&mut s, 0, &bytes(&[order(1, 1)]), &mut backend).unwrap_err();
    assert_eq!(error, SessionError::Closed(RejectCode::NOT_LOGGED_ON));
    assert!(matches!(
        replies(&mut s)[..],
        [Reply::Reject {
            code: RejectCode::NOT_LOGGED_ON,
            ..
        }]
    ));
    for (key, sig, code) in [
        (1, 0, RejectCode::BAD_SIGNATURE),
        (2, 1, RejectCode::UNKNOWN_KEY),
    ] {
        let mut s = Session::new(SessionLimits::default(), [0; 32], 0);
        let logon = Request::Logon {
            key_id: KeyId(key),
            signature: [sig; 64],
        };
        assert!(feed(&mut s, 0, &bytes(&[Request::Hello, logon]), &mut backend).is_err());
        assert_eq!(s.close_reason(), Some(code));
        assert!(backend.submitted.is_empty());
    }
}

#[test]
fn malformed_frame_is_a_typed_error_and_closes() {
    let mut backend = TestBackend::default();
    let mut s = logged_on(SessionLimits::default(), &mut backend);
    let error = feed(&mut s, 1, &[4, 0, 0x7E, 2], &mut backend).unwrap_err();
    assert!(matches!(error, SessionError::Frame(_)));
    assert!(matches!(
        replies(&mut s)[..],
        [Reply::Reject {
            code: RejectCode::MALFORMED,
            ..
        }]
    ));
    assert!(feed(&mut s, 1, &bytes(&[order(1, 1)]), &mut backend).is_err());
    assert!(backend.submitted.is_empty());
}

#[test]
fn limits_reject_then_abuse_closes() {
    let mut backend = TestBackend::default();
    let limits = SessionLimits {
        max_in_flight: 2,
        rate_per_sec: 1_000,
        burst: 3,
        max_violations: 3,
        ..SessionLimits::default()
    };
    let mut s = logged_on(limits, &mut backend);
    // Two in flight fill the window; the third is refused without being submitted.
    feed(
        &mut s,
        0,
        &bytes(&[order(1, 1), order(2, 2), order(3, 3)]),
        &mut backend,
    )
    .unwrap();
    assert_eq!(backend.submitted.len(), 2);
    assert!(matches!(
        replies(&mut s)[..],
        [Reply::Reject {
            req: RequestId(3),
            code: RejectCode::TOO_MANY_IN_FLIGHT,
            ..
        }]
    ));
    // The burst of 3 is spent: rate limited; the third violation in a row is abuse.
    feed(&mut s, 0, &bytes(&[order(4, 4), order(5, 5)]), &mut backend).unwrap_err();
    let r = replies(&mut s);
    assert!(matches!(
        r[..],
        [
            Reply::Reject {
                code: RejectCode::RATE_LIMITED,
                ..
            },
            Reply::Reject {
                code: RejectCode::RATE_LIMITED,
                ..
            },
            Reply::Logout {
                code: RejectCode::ABUSE
            }
        ]
    ));
    assert_eq!(s.close_reason(), Some(RejectCode::ABUSE));
}

#[test]
fn busy_is_a_reject_not_a_drop() {
    let mut backend = TestBackend {
        busy: true,
        ..TestBackend::default()
    };
    let mut s = logged_on(SessionLimits::default(), &mut backend);
    feed(&mut s, 0, &bytes(&[order(1, 1)]), &mut backend).unwrap();
    assert_eq!(
        replies(&mut s),
        vec![Reply::Reject {
            req: RequestId(1),
            seq: 0,
            code: RejectCode::BUSY
        }]
    );
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn heartbeat_echoes_and_idle_times_out() {
    let mut backend = TestBackend::default();
    let mut s = logged_on(SessionLimits::default(), &mut backend);
    feed(
        &mut s,
        0,
        &bytes(&[Request::Heartbeat { nonce: 5 }]),
        &mut backend,
    )
    .unwrap();
    assert_eq!(replies(&mut s), vec![Reply::Heartbeat { nonce: 5 }]);
    s.on_tick(1_000_000_000);
    assert_eq!(s.close_reason(), None);
    s.on_tick(60_000_000_000);
    assert_eq!(s.close_reason(), Some(RejectCode::IDLE_TIMEOUT));
}

/// The whole exchange by hand, no backend and no sockets: every action is checked as it is
/// polled and every result fed back explicitly.
#[test]
fn actions_and_results_drive_logon_submit_and_report() {
    let mut s = Session::new(SessionLimits::default(), [3; 32], 0);
    s.on_bytes(0, &bytes(&[Request::Hello])).unwrap();
    assert_eq!(s.poll_action(), None);
    assert_eq!(replies(&mut s), vec![Reply::Challenge { nonce: [3; 32] }]);

    // The logon and an order arrive together: the order waits for the logon's result.
    let logon = Request::Logon {
        key_id: KeyId(1),
        signature: [1; 64],
    };
    s.on_bytes(1, &bytes(&[logon, order(7, 70)])).unwrap();
    assert_eq!(
        s.poll_action(),
        Some(Action::Logon {
            key_id: KeyId(1),
            challenge: [3; 32],
            signature: [1; 64],
        })
    );
    assert_eq!(s.poll_action(), None);
    assert!(s.awaits_result());
    assert!(s.output().is_empty());
    assert_eq!(
        s.on_submit_result(RequestId(7), Ok(1)),
        Err(SessionError::UnexpectedResult)
    );
    s.on_logon_result(Ok(LoggedOn {
        account: AccountId(5),
        session: SessionId(2),
        directory: Arc::default(),
    }))
    .unwrap();
    assert_eq!(s.account(), Some(AccountId(5)));

    // The order was parsed once the logon was granted.
    let Some(Action::Submit {
        request_id,
        account,
        new_order,
        command,
    }) = s.poll_action()
    else {
        panic!("no submit action");
    };
    assert_eq!(
        (request_id, account, new_order),
        (RequestId(7), AccountId(5), Some(ClientOrderId(70)))
    );
    assert!(matches!(
        command,
        CommandKind::NewOrder(NewOrder {
            account: AccountId(5),
            client_order_id: ClientOrderId(70),
            ..
        })
    ));
    assert_eq!(s.poll_action(), None);
    assert_eq!(s.in_flight(), 0);
    assert_eq!(
        s.on_submit_result(RequestId(8), Ok(41)),
        Err(SessionError::UnexpectedResult)
    );
    s.on_submit_result(RequestId(7), Ok(41)).unwrap();
    assert_eq!(s.in_flight(), 1);
    assert!(!s.awaits_result());

    // The engine's reports carry the request id of the command they answer.
    s.on_report(&Report::Accepted {
        seq: 41,
        order: OrderId(9),
        client_order_id: ClientOrderId(70),
    });
    s.on_report(&Report::Done { seq: 41 });
    assert_eq!(
        replies(&mut s),
        vec![
            Reply::LogonAck {
                account: AccountId(5),
                session: SessionId(2),
                heartbeat_ms: SessionLimits::default().heartbeat_ms,
                max_in_flight: SessionLimits::default().max_in_flight,
                rate_per_sec: SessionLimits::default().rate_per_sec,
                currencies: 0,
                markets: 0,
            },
            Reply::Ack {
                req: RequestId(7),
                seq: 41,
                order: OrderId(9),
                client_order_id: ClientOrderId(70),
            },
            Reply::Done {
                req: RequestId(7),
                seq: 41,
            },
        ]
    );
    assert_eq!(s.in_flight(), 0);
}

/// Replies leave in request order even when an earlier request waits for the engine side, and
/// later requests see its outcome (here: a busy engine keeps the in-flight window empty).
#[test]
fn a_pending_result_holds_later_requests_back_in_order() {
    let limits = SessionLimits {
        max_in_flight: 1,
        ..SessionLimits::default()
    };
    let mut backend = TestBackend::default();
    let mut s = logged_on(limits, &mut backend);
    let input = bytes(&[
        order(1, 1),
        Request::Heartbeat { nonce: 9 },
        Request::OrderStatus {
            req: RequestId(2),
            client_order_id: ClientOrderId(1),
        },
        order(3, 3),
    ]);
    s.on_bytes(5, &input).unwrap();
    assert!(matches!(
        s.poll_action(),
        Some(Action::Submit {
            request_id: RequestId(1),
            ..
        })
    ));
    assert_eq!(s.poll_action(), None);
    assert!(s.output().is_empty());
    s.on_submit_result(RequestId(1), Err(SubmitError::Busy))
        .unwrap();
    // The heartbeat was answered, then parsing stopped at the status request.
    assert_eq!(
        s.poll_action(),
        Some(Action::Status {
            request_id: RequestId(2),
            account: AccountId(5),
            client_order_id: ClientOrderId(1),
        })
    );
    s.on_status_result(RequestId(2), OrderStatus::UNKNOWN)
        .unwrap();
    // Busy sequenced nothing, so the window of one still has room for order 3.
    assert!(matches!(
        s.poll_action(),
        Some(Action::Submit {
            request_id: RequestId(3),
            ..
        })
    ));
    s.on_submit_result(RequestId(3), Ok(1)).unwrap();
    let r = replies(&mut s);
    assert!(
        matches!(
            r[..],
            [
                Reply::Reject {
                    req: RequestId(1),
                    code: RejectCode::BUSY,
                    ..
                },
                Reply::Heartbeat { nonce: 9 },
                Reply::Status {
                    req: RequestId(2),
                    state: OrderState::Unknown,
                    ..
                },
            ]
        ),
        "{r:?}"
    );
    assert_eq!(s.in_flight(), 1);
}

/// Unsubscribes need no result; the subscribe before them does, and a result the session did not
/// ask for changes nothing.
#[test]
fn subscribe_awaits_its_result_and_unsubscribe_is_queued() {
    let mut backend = TestBackend::default();
    let mut s = logged_on(SessionLimits::default(), &mut backend);
    let subscribe = |req, market| Request::Subscribe {
        req: RequestId(req),
        market: MarketId(market),
    };
    let unsubscribe = |req, market| Request::Unsubscribe {
        req: RequestId(req),
        market: MarketId(market),
    };
    s.on_bytes(
        0,
        &bytes(&[subscribe(1, 4), unsubscribe(2, 4), unsubscribe(3, 4)]),
    )
    .unwrap();
    assert_eq!(
        s.poll_action(),
        Some(Action::Subscribe {
            request_id: RequestId(1),
            market: MarketId(4),
        })
    );
    assert_eq!(
        s.on_subscribe_result(RequestId(2), Ok(())),
        Err(SessionError::UnexpectedResult)
    );
    assert_eq!(
        s.on_status_result(RequestId(1), OrderStatus::UNKNOWN),
        Err(SessionError::UnexpectedResult)
    );
    assert!(s.subscriptions().is_empty());
    s.on_subscribe_result(RequestId(1), Ok(())).unwrap();
    // Only the first unsubscribe had something to stop.
    assert_eq!(
        s.poll_action(),
        Some(Action::Unsubscribe {
            market: MarketId(4)
        })
    );
    assert_eq!(s.poll_action(), None);
    assert!(s.subscriptions().is_empty());
    assert_eq!(
        replies(&mut s),
        vec![
            Reply::Done {
                req: RequestId(1),
                seq: 0
            },
            Reply::Done {
                req: RequestId(2),
                seq: 0
            },
            Reply::Done {
                req: RequestId(3),
                seq: 0
            },
        ]
    );
}

/// A refused logon closes the session; what followed it in the same read is never parsed.
#[test]
fn a_refused_logon_closes_before_the_rest_is_parsed() {
    let mut s = Session::new(SessionLimits::default(), [0; 32], 0);
    let logon = Request::Logon {
        key_id: KeyId(1),
        signature: [0; 64],
    };
    s.on_bytes(0, &bytes(&[Request::Hello, logon, Request::Logout]))
        .unwrap();
    assert!(matches!(s.poll_action(), Some(Action::Logon { .. })));
    assert_eq!(
        s.on_logon_result(Err(RejectCode::BAD_SIGNATURE)),
        Err(SessionError::Closed(RejectCode::BAD_SIGNATURE))
    );
    assert_eq!(s.poll_action(), None);
    let r = replies(&mut s);
    assert!(
        matches!(
            r[..],
            [
                Reply::Challenge { .. },
                Reply::Reject {
                    code: RejectCode::BAD_SIGNATURE,
                    ..
                }
            ]
        ),
        "{r:?}"
    );
    assert_eq!(
        s.on_logon_result(Err(RejectCode::BAD_SIGNATURE)),
        Err(SessionError::Closed(RejectCode::BAD_SIGNATURE))
    );
}

/// A request of a small alphabet, so that runs hit duplicates, limits and repeated markets;
/// rarely a logout.
fn request_strategy() -> impl Strategy<Value = Request> {
    prop_oneof![
        4 => (1..50u64, 1..6u64).prop_map(|(req, id)| order(req, id)),
        2 => (1..50u64, 1..6u64).prop_map(|(req, id)| Request::Cancel {
            req: RequestId(req),
            target: OrderRef::Client(ClientOrderId(id)),
        }),
        2 => (1..50u64, 1..6u64).prop_map(|(req, id)| Request::OrderStatus {
            req: RequestId(req),
            client_order_id: ClientOrderId(id),
        }),
        2 => (1..50u64, 0..4u32).prop_map(|(req, market)| Request::Subscribe {
            req: RequestId(req),
            market: MarketId(market),
        }),
        2 => (1..50u64, 0..4u32).prop_map(|(req, market)| Request::Unsubscribe {
            req: RequestId(req),
            market: MarketId(market),
        }),
        2 => any::<u64>().prop_map(|nonce| Request::Heartbeat { nonce }),
        1 => Just(Request::Logout),
    ]
}

/// Feeds `input` in chunks ending at `cuts`, performing actions after each, and checks the
/// action queue bound on the way. Returns the replies and how the session ended.
fn run_split(input: &[u8], cuts: &[usize], busy: bool) -> (Vec<Reply>, Option<RejectCode>) {
    let limits = SessionLimits {
        max_in_flight: 3,
        burst: 20,
        max_subscriptions: 2,
        ..SessionLimits::default()
    };
    let mut backend = TestBackend {
        busy,
        ..TestBackend::default()
    };
    let mut s = logged_on(limits, &mut backend);
    let mut at = 0;
    for &cut in cuts.iter().chain([input.len()].iter()) {
        let cut = cut.clamp(at, input.len());
        let _ = s.on_bytes(1, &input[at..cut]);
        assert!(s.pending_actions() <= ACTIONS_MAX);
        while let Some(action) = s.poll_action() {
            let _ = backend.perform(&mut s, action);
            assert!(s.pending_actions() <= ACTIONS_MAX);
        }
        assert!(!s.awaits_result() || s.close_reason().is_some());
        at = cut;
    }
    (replies(&mut s), s.close_reason())
}

proptest! {
    /// However the bytes are split, the session answers the same replies in the same order.
    #[test]
    fn replies_do_not_depend_on_how_input_is_split(
        requests in proptest::collection::vec(request_strategy(), 0..40),
        mut cuts in proptest::collection::vec(0..2_000usize, 0..8),
        busy in any::<bool>(),
    ) {
        let input = bytes(&requests);
        cuts.sort_unstable();
        let whole = run_split(&input, &[], busy);
        let split = run_split(&input, &cuts, busy);
        prop_assert_eq!(whole, split);
    }
}

/// The metric label of each frame counted (received or sent), with its count; zeros left out.
fn counted(counts: &[u32]) -> Vec<(&'static str, u32)> {
    peregrine_proto::counts::FRAME_KINDS
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|((_, name), n)| (*name, *n))
        .collect()
}

#[test]
fn frames_errors_and_order_entry_answers_are_counted_for_the_driver() {
    let mut backend = TestBackend::default();
    let mut s = logged_on(SessionLimits::default(), &mut backend);
    let counts = s.take_counts();
    assert_eq!(
        counted(&counts.frames_received),
        [("hello", 1), ("logon", 1)]
    );
    assert_eq!(
        counted(&counts.frames_sent),
        [
            ("challenge", 1),
            ("logon_ack", 1),
            ("currency", 2),
            ("market", 1)
        ]
    );
    // Taken: the counts restart at zero.
    assert_eq!(s.take_counts(), Default::default());

    // Two orders parsed at 100 ns: the first is sequenced (answered by its `Done`), the second
    // refused busy before sequencing (answered by its `Reject` at once).
    feed(&mut s, 100, &bytes(&[order(1, 1)]), &mut backend).unwrap();
    backend.busy = true;
    feed(&mut s, 150, &bytes(&[order(2, 2)]), &mut backend).unwrap();
    assert_eq!(s.answered_received_ns(), [150]);
    s.on_report(&Report::Done { seq: 1 });
    assert_eq!(s.answered_received_ns(), [150, 100]);
    let counts = s.take_counts();
    assert_eq!(counted(&counts.frames_received), [("new_order", 2)]);
    assert_eq!(counted(&counts.frames_sent), [("reject", 1), ("done", 1)]);
    // Sent: the timings go with the output.
    replies(&mut s);
    assert!(s.answered_received_ns().is_empty());

    // A heartbeat is no order entry; a second logon is a protocol error that closes.
    feed(
        &mut s,
        200,
        &bytes(&[Request::Heartbeat { nonce: 1 }]),
        &mut backend,
    )
    .unwrap();
    assert!(s.answered_received_ns().is_empty());
    let _ = feed(&mut s, 300, &bytes(&[Request::Hello]), &mut backend);
    let counts = s.take_counts();
    let errors: Vec<_> = peregrine_proto::counts::PROTOCOL_ERROR_KINDS
        .iter()
        .zip(counts.protocol_errors)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| (*name, n))
        .collect();
    assert_eq!(errors, [("unexpected", 1)]);

    // A malformed frame counts by its kind of error.
    let mut fresh = Session::new(SessionLimits::default(), [0; 32], 0);
    let _ = fresh.on_bytes(0, &[4, 0, 0x01, 9]);
    assert_eq!(
        fresh.take_counts().protocol_errors[2],
        1,
        "unsupported_version"
    );
}
