#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The sans-IO session, driven without sockets: logon, limits, back-pressure and bad input.

use peregrine_hotpath::*;
use peregrine_proto::codec::{Decoded, decode_reply, encode_request};
use peregrine_proto::frame::{
    CHALLENGE_BYTES, KeyId, OrderState, RejectCode, Reply, Request, RequestId, SIGNATURE_BYTES,
    SessionId,
};
use peregrine_proto::limits::SessionLimits;
use peregrine_proto::session::{Backend, OrderStatus, Report, Session, SessionError, SubmitError};

/// A backend that accepts key 1 with signature [1; 64], sequences from 1, and can be told to be
/// busy.
#[derive(Default)]
struct TestBackend {
    next_seq: u64,
    busy: bool,
    submitted: Vec<CommandKind>,
    seen: Vec<ClientOrderId>,
}

impl Backend for TestBackend {
    fn logon(
        &mut self,
        key_id: KeyId,
        _challenge: &[u8; CHALLENGE_BYTES],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> Result<(AccountId, SessionId), RejectCode> {
        match (key_id, signature[0]) {
            (KeyId(1), 1) => Ok((AccountId(5), SessionId(1))),
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

    fn status(&mut self, _account: AccountId, _id: ClientOrderId) -> OrderStatus {
        OrderStatus::UNKNOWN
    }

    fn subscribe(&mut self, _market: MarketId) -> Result<(), RejectCode> {
        Ok(())
    }

    fn unsubscribe(&mut self, _market: MarketId) {}
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
    s.on_bytes(
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
            ..
        }
    ));
    s
}

#[test]
fn logon_then_order_ack_and_done() {
    let mut backend = TestBackend::default();
    let mut s = logged_on(SessionLimits::default(), &mut backend);
    // A frame split across two reads.
    let frame = bytes(&[order(7, 70)]);
    s.on_bytes(1, &frame[..10], &mut backend).unwrap();
    s.on_bytes(1, &frame[10..], &mut backend).unwrap();
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
    s.on_bytes(2, &bytes(&[order(8, 70)]), &mut backend)
        .unwrap();
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
    let error = s
        .on_bytes(0, &bytes(&[order(1, 1)]), &mut backend)
        .unwrap_err();
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
        assert!(
            s.on_bytes(0, &bytes(&[Request::Hello, logon]), &mut backend)
                .is_err()
        );
        assert_eq!(s.close_reason(), Some(code));
        assert!(backend.submitted.is_empty());
    }
}

#[test]
fn malformed_frame_is_a_typed_error_and_closes() {
    let mut backend = TestBackend::default();
    let mut s = logged_on(SessionLimits::default(), &mut backend);
    let error = s.on_bytes(1, &[4, 0, 0x7E, 1], &mut backend).unwrap_err();
    assert!(matches!(error, SessionError::Frame(_)));
    assert!(matches!(
        replies(&mut s)[..],
        [Reply::Reject {
            code: RejectCode::MALFORMED,
            ..
        }]
    ));
    assert!(s.on_bytes(1, &bytes(&[order(1, 1)]), &mut backend).is_err());
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
    s.on_bytes(
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
    s.on_bytes(0, &bytes(&[order(4, 4), order(5, 5)]), &mut backend)
        .unwrap_err();
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
    s.on_bytes(0, &bytes(&[order(1, 1)]), &mut backend).unwrap();
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
    s.on_bytes(0, &bytes(&[Request::Heartbeat { nonce: 5 }]), &mut backend)
        .unwrap();
    assert_eq!(replies(&mut s), vec![Reply::Heartbeat { nonce: 5 }]);
    s.on_tick(1_000_000_000);
    assert_eq!(s.close_reason(), None);
    s.on_tick(60_000_000_000);
    assert_eq!(s.close_reason(), Some(RejectCode::IDLE_TIMEOUT));
}
