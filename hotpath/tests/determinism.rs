//! The same commands always yield the same events and state, also across snapshot + replay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code asserts by unwrapping.

use std::hash::{DefaultHasher, Hash, Hasher};

use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_hotpath::*;

fn commands(n: usize, seed: u64) -> Vec<Envelope> {
    let mut flow = Flow::new(FlowParams {
        seed,
        accounts: 50,
        markets: 2,
        tracked_orders: 2_000,
        ..FlowParams::default()
    });
    let mut commands = flow.setup();
    for _ in 0..n {
        commands.push(flow.next_command());
    }
    commands
}

fn config() -> EngineConfig {
    EngineConfig {
        max_accounts: 64,
        max_currencies: 4,
        max_markets: 4,
        max_orders: 1 << 16,
        ..EngineConfig::default()
    }
}

/// Applies `commands` and returns a hash of every event.
fn run(engine: &mut Engine, commands: &[Envelope]) -> (u64, usize) {
    let mut hasher = DefaultHasher::new();
    let mut events = Vec::with_capacity(256);
    let mut count = 0;
    for command in commands {
        events.clear();
        engine.apply(command, &mut events);
        count += events.len();
        events.hash(&mut hasher);
    }
    (hasher.finish(), count)
}

#[test]
fn long_run_is_deterministic_and_snapshot_plus_replay_equals_it() {
    let commands = commands(60_000, 7);
    let half = commands.len() / 2;

    let mut a = Engine::new(config()).unwrap();
    let (first_a, _) = run(&mut a, &commands[..half]);
    let (second_a, events) = run(&mut a, &commands[half..]);
    a.audit().unwrap();

    let mut b = Engine::new(config()).unwrap();
    let (first_b, _) = run(&mut b, &commands[..half]);
    let snapshot = b.snapshot().unwrap();
    let (second_b, _) = run(&mut b, &commands[half..]);
    assert_eq!((first_a, second_a), (first_b, second_b), "two runs differ");

    let mut c = Engine::restore(&snapshot).unwrap();
    let (second_c, _) = run(&mut c, &commands[half..]);
    assert_eq!(
        second_a, second_c,
        "snapshot + replay differs from the uninterrupted run"
    );
    assert_eq!(
        a.snapshot().unwrap(),
        c.snapshot().unwrap(),
        "final states differ"
    );

    // The flow is realistic enough to exercise matching: there were trades and cancels.
    assert!(events > commands.len() / 2, "too few events: {events}");
    assert!(a.live_orders() > 0);
}

#[test]
fn different_seeds_give_different_streams() {
    // Guards the test above against a hash of nothing.
    let mut a = Engine::new(config()).unwrap();
    let mut b = Engine::new(config()).unwrap();
    assert_ne!(
        run(&mut a, &commands(2_000, 1)).0,
        run(&mut b, &commands(2_000, 2)).0
    );
}

#[test]
fn corrupt_snapshot_is_refused_with_an_error() {
    let mut a = Engine::new(config()).unwrap();
    run(&mut a, &commands(2_000, 3));
    let mut bytes = a.snapshot().unwrap();
    assert!(Engine::restore(&bytes[..bytes.len() / 2]).is_err());
    let n = bytes.len();
    bytes[n - 8..].copy_from_slice(&[0xff; 8]);
    assert!(Engine::restore(&bytes).is_err());
    assert!(Engine::restore(&[]).is_err());
}
