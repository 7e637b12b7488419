//! Shared helpers of the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_hotpath::{Engine, EngineConfig, Envelope, Event};
use peregrine_persist::{JournalConfig, Snapshotter};

pub fn engine_config() -> EngineConfig {
    EngineConfig {
        max_accounts: 64,
        max_currencies: 4,
        max_markets: 2,
        max_orders: 1 << 14,
        max_levels_per_side: 1_024,
        max_open_orders_per_account: 1_000,
        ..EngineConfig::default()
    }
}

/// The first `count` commands of the seeded flow (setup first).
pub fn flow_commands(seed: u64, count: usize) -> Vec<Envelope> {
    let mut flow = Flow::new(FlowParams {
        seed,
        accounts: 50,
        markets: 1,
        tracked_orders: 10_000,
        ..FlowParams::default()
    });
    let mut out = flow.setup();
    out.truncate(count);
    while out.len() < count {
        out.push(flow.next_command());
    }
    out
}

pub fn reference_engine(commands: &[Envelope]) -> Engine {
    let mut engine = Engine::new(engine_config()).unwrap();
    let mut events: Vec<Event> = Vec::new();
    for command in commands {
        engine.apply(command, &mut events);
        events.clear();
    }
    engine
}

/// Small segments so tests rotate often; snapshots off unless a test turns them on.
pub fn small_config(dir: &Path) -> JournalConfig {
    let mut config = JournalConfig::new(dir);
    config.segment_bytes = 64 << 10;
    config.queue_bytes = 256 << 10;
    config.snapshot_every_commands = 0;
    config.snapshot_every = None;
    config
}

/// Waits (bounded) until the snapshot of `seq` is on disk, so a test's fast loop takes every
/// due snapshot instead of skipping those due while one is in flight.
pub fn wait_written(snapshotter: &Snapshotter, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while snapshotter.written_seq() < seq {
        assert!(Instant::now() < deadline, "snapshot {seq} not written");
        assert!(
            snapshotter.failure().is_none(),
            "{:?}",
            snapshotter.failure()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
