//! Reference data changes (market states, risk, fees) in the journal: replay reproduces them
//! event for event, and a snapshot taken after them restores them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{engine_config, flow_commands, small_config, wait_written};
use peregrine_hotpath::{
    Actor, CommandKind, Engine, Envelope, Event, FeeRates, MarketId, MarketRisk, MarketState,
    MarketUpdate, OperatorId, Price,
};
use peregrine_persist::{JournalError, Snapshotter, open, recover, recover_observed};

const M: MarketId = MarketId(0);
/// Flow commands between two reference data changes.
const CHANGE_EVERY_COMMANDS: usize = 97;

/// The `i`-th reference data change: every state in turn (so orders are refused for a while,
/// then trade again), a band and a maximum price that move, and fees of two tiers.
fn change(i: usize) -> CommandKind {
    match i % 4 {
        0 => CommandKind::MarketStateSet {
            market: M,
            state: MarketState::ALL[(i / 4) % MarketState::ALL.len()],
        },
        1 => CommandKind::MarketUpdate(MarketUpdate {
            market: M,
            risk: MarketRisk {
                max_price: Price(10_000_000 + i as u64),
                max_qty: peregrine_hotpath::Qty(1_000_000),
                max_notional: peregrine_hotpath::Amount(1 << 50),
                band_bps: 1_000 + (i as u32 % 7) * 500,
                reference_price: Price(1_000_000),
            },
        }),
        _ => CommandKind::FeeScheduleUpdate {
            market: M,
            tier: (i % 2) as u8,
            rates: FeeRates {
                maker_ppm: (i as u32 * 37) % 1_000,
                taker_ppm: (i as u32 * 53) % 2_000,
            },
        },
    }
}

/// The seeded flow with a change, by operator 7, every [`CHANGE_EVERY_COMMANDS`] commands.
fn commands(count: usize) -> Vec<Envelope> {
    let mut out = Vec::with_capacity(count + count / CHANGE_EVERY_COMMANDS);
    for (i, command) in flow_commands(11, count).into_iter().enumerate() {
        if i > 3 && i % CHANGE_EVERY_COMMANDS == 0 {
            out.push(Envelope {
                ts: command.ts,
                actor: Actor::Operator(OperatorId(7)),
                kind: change(i / CHANGE_EVERY_COMMANDS),
            });
        }
        out.push(command);
    }
    out
}

/// Every command's events, uninterrupted.
fn reference(commands: &[Envelope]) -> (Engine, Vec<Vec<Event>>) {
    let mut engine = Engine::new(engine_config()).unwrap();
    let mut all = Vec::with_capacity(commands.len());
    for command in commands {
        let mut events = Vec::new();
        engine.apply(command, &mut events);
        all.push(events);
    }
    (engine, all)
}

fn append(journal: &peregrine_persist::Journal, command: &Envelope) -> u64 {
    loop {
        match journal.append(command) {
            Ok(seq) => return seq,
            Err(JournalError::Busy { .. }) => {
                journal
                    .wait_durable_after(journal.durable_seq(), Duration::from_millis(1))
                    .unwrap();
            }
            Err(other) => panic!("{other}"),
        }
    }
}

#[test]
fn replay_reproduces_every_reference_change_event_for_event() {
    let commands = commands(4_000);
    let (engine, events) = reference(&commands);
    // The changes did something: a refused order while disabled or locked, and a fee charged.
    let refused = events.iter().flatten().any(|e| {
        matches!(e, Event::Rejected { reason }
            if *reason == peregrine_hotpath::RejectReason::MarketDisabled)
    });
    assert!(refused, "no order met a disabled market");
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (_, writer) = open(&config, engine_config()).unwrap();
    for command in &commands {
        append(writer.journal(), command);
    }
    writer.shutdown().unwrap();
    let mut replayed: Vec<Vec<Event>> = Vec::new();
    let recovered = recover_observed(&config, engine_config(), &mut |seq, command, out| {
        assert_eq!(command, &commands[seq as usize - 1]);
        replayed.push(out.to_vec());
    })
    .unwrap();
    assert_eq!(replayed.len(), commands.len());
    assert!(replayed == events, "replay emitted other events");
    assert_eq!(
        recovered.engine.snapshot().unwrap(),
        engine.snapshot().unwrap()
    );
    assert_eq!(recovered.engine.market_state(M), engine.market_state(M));
    assert_eq!(recovered.engine.fee_rates(M, 1), engine.fee_rates(M, 1));
}

#[test]
fn a_snapshot_taken_after_changes_restores_them() {
    let commands = commands(3_000);
    let (engine, _) = reference(&commands);
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.snapshot_every_commands = 1_000;
    let (recovered, writer) = open(&config, engine_config()).unwrap();
    let mut live = recovered.engine;
    let journal = writer.journal().clone();
    let mut snapshotter = Snapshotter::start(&config, journal.clone(), 0);
    let mut taken = Vec::new();
    let mut out = Vec::new();
    for command in &commands {
        let seq = append(&journal, command);
        live.apply(command, &mut out);
        out.clear();
        if snapshotter.maybe_take(&live, seq).unwrap().is_some() {
            taken.push((seq, live.market_state(M), live.fee_rates(M, 0)));
            wait_written(&snapshotter, seq);
        }
    }
    snapshotter.finish().unwrap();
    writer.shutdown().unwrap();
    assert!(taken.len() >= 2, "{taken:?}");
    // States differ between snapshots: each restores its own, then replay catches up.
    let recovered = recover(&config, engine_config()).unwrap();
    let (_, snapshot_seq) = recovered.report.snapshot.clone().expect("snapshot used");
    assert!(snapshot_seq > 0 && recovered.report.replayed_count < commands.len() as u64);
    assert_eq!(
        recovered.engine.snapshot().unwrap(),
        engine.snapshot().unwrap()
    );
    // The snapshot alone holds the state and fees of its time.
    let (seq, state, fees) = *taken.last().unwrap();
    let (at_snapshot, _) = reference(&commands[..seq as usize]);
    assert_eq!(at_snapshot.market_state(M), state);
    assert_eq!(at_snapshot.fee_rates(M, 0), fees);
    let images = peregrine_persist::snapshot::list_snapshots(dir.path()).unwrap();
    let (newest_seq, newest) = images.last().unwrap();
    assert_eq!(*newest_seq, seq);
    let (_, body) = peregrine_persist::snapshot::read_snapshot(newest).unwrap();
    let restored = Engine::restore(&body).unwrap();
    assert_eq!(restored.market_state(M), state);
    assert_eq!(restored.fee_rates(M, 0), fees);
    assert_eq!(
        restored.snapshot().unwrap(),
        at_snapshot.snapshot().unwrap()
    );
}
