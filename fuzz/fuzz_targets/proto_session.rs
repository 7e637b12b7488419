//! The sans-IO session driven by bytes from a peer, as the QUIC server drives it: input split at
//! arbitrary points, the driver's results (logon, submit, status, subscribe) chosen by the
//! input, time passing, completions. Nothing panics, every bound holds after every step, and
//! the output is always a sequence of whole, valid reply frames.

#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use peregrine_fuzz::session_script::{self as op, OPS_MAX, TICK_STEP_NS};
use peregrine_hotpath::AccountId;
use peregrine_proto::codec::{Decoded, decode_reply};
use peregrine_proto::directory::Directory;
use peregrine_proto::frame::{MAX_FRAME_BYTES, RejectCode, SessionId};
use peregrine_proto::limits::SessionLimits;
use peregrine_proto::session::{
    ACTIONS_MAX, Action, LoggedOn, OUTPUT_MAX_BYTES, OrderStatus, Report, SUBSCRIPTIONS_MAX,
    Session, SubmitError,
};

/// The input as a cursor: every read past the end is `None`, ending the script.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// Limits from two bytes: 0 is the defaults; otherwise small ones, so the limits are reached.
fn limits(a: u8, b: u8) -> SessionLimits {
    if a == 0 {
        return SessionLimits::default();
    }
    SessionLimits {
        max_in_flight: u32::from(a % 8),
        rate_per_sec: u32::from(b % 16) * 100,
        burst: u32::from(b / 16),
        max_violations: u32::from(a / 8 % 4),
        heartbeat_ms: 1_000,
        idle_timeout_ms: u32::from(a / 32) * 1_000,
        max_subscriptions: u32::from(b % 5),
    }
}

/// The driver: answers actions as the engine side would, with outcomes the input picks.
struct Driver {
    session: Session,
    limits: SessionLimits,
    now_ns: u64,
    next_seq: u64,
    /// Sequences submitted and not yet reported done, oldest first.
    in_flight: VecDeque<u64>,
}

impl Driver {
    fn answer(&mut self, action: Action, outcome: u8) {
        // Errors are the session's answer to a result it did not ask for, or a closed session:
        // both are fine here; the invariants below are what is checked.
        let _ = match action {
            Action::Logon { .. } => self.session.on_logon_result(match outcome % 4 {
                3 => Err(RejectCode::BAD_SIGNATURE),
                _ => Ok(LoggedOn {
                    account: AccountId(u32::from(outcome)),
                    session: SessionId(1),
                    // The directory's own parsing is the codec target's; an empty one here.
                    directory: std::sync::Arc::new(Directory::default()),
                }),
            }),
            Action::Submit { request_id, .. } => {
                let result = match outcome % 4 {
                    0 => {
                        self.next_seq += 1;
                        self.in_flight.push_back(self.next_seq);
                        Ok(self.next_seq)
                    }
                    1 => Err(SubmitError::Busy),
                    2 => Err(SubmitError::Unavailable),
                    _ => Err(SubmitError::Duplicate(OrderStatus::UNKNOWN)),
                };
                self.session.on_submit_result(request_id, result)
            }
            Action::Status { request_id, .. } => self
                .session
                .on_status_result(request_id, OrderStatus::UNKNOWN),
            Action::Subscribe { request_id, .. } => {
                let result = match outcome % 2 {
                    0 => Ok(()),
                    _ => Err(RejectCode::UNKNOWN_MARKET),
                };
                self.session.on_subscribe_result(request_id, result)
            }
            _ => Ok(()),
        };
    }

    fn step(&mut self, input: &mut Input<'_>) -> Option<()> {
        match input.byte()? % op::OPS {
            op::FEED => {
                let n = usize::from(input.byte()?);
                let bytes = input.bytes(n);
                let _ = self.session.on_bytes(self.now_ns, bytes);
            }
            op::ANSWER => {
                while let Some(action) = self.session.poll_action() {
                    let outcome = input.byte().unwrap_or(0);
                    self.answer(action, outcome);
                }
            }
            op::TICK => {
                self.now_ns += u64::from(input.byte()?) * TICK_STEP_NS;
                self.session.on_tick(self.now_ns);
            }
            op::DONE => {
                if let Some(seq) = self.in_flight.pop_front() {
                    self.session.on_report(&Report::Done { seq });
                }
            }
            _ => {
                check_output(self.session.output());
                self.session.clear_output();
            }
        }
        Some(())
    }

    fn check(&self, was_closed: bool) {
        let session = &self.session;
        assert!(session.pending_actions() <= ACTIONS_MAX);
        assert!(session.in_flight() <= self.limits.max_in_flight as usize);
        let subscriptions_max = self.limits.max_subscriptions.min(SUBSCRIPTIONS_MAX) as usize;
        assert!(session.subscriptions().len() <= subscriptions_max);
        assert!(session.output().len() <= OUTPUT_MAX_BYTES + MAX_FRAME_BYTES);
        assert!(
            !was_closed || session.close_reason().is_some(),
            "a closed session reopened"
        );
    }
}

/// The output is whole reply frames, each valid.
fn check_output(mut output: &[u8]) {
    while !output.is_empty() {
        match decode_reply(output) {
            Ok(Decoded::Frame(_, used_bytes)) => output = &output[used_bytes..],
            other => panic!("the session wrote an invalid reply: {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let (Some(a), Some(b)) = (input.byte(), input.byte()) else {
        return;
    };
    let limits = limits(a, b);
    let mut driver = Driver {
        session: Session::new(limits, [7; 32], 0),
        limits,
        now_ns: 0,
        next_seq: 0,
        in_flight: VecDeque::new(),
    };
    for _ in 0..OPS_MAX {
        let was_closed = driver.session.close_reason().is_some();
        if driver.step(&mut input).is_none() {
            break;
        }
        driver.check(was_closed);
    }
    check_output(driver.session.output());
});
