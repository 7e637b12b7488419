//! Test-only child for the SIGKILL crash test (`tests/crash.rs`): recovers the journal in the
//! directory given as the first argument, then journals the seeded flow (seed in the second
//! argument) after the recovered sequence in durable mode, applying each command to the engine
//! and taking snapshots, and prints `ack <seq>` on stdout only once `seq` is durable. Runs until
//! killed (or a bounded number of commands).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_hotpath::{EngineConfig, Event};
use peregrine_persist::{JournalConfig, JournalError, Snapshotter, open};

/// Bound on the commands one run journals.
const COMMANDS_MAX: u64 = 2_000_000;

fn main() {
    if let Err(error) = run() {
        eprintln!("crash child: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: persist-crash-child DIR SEED")?);
    let seed: u64 = args.next().ok_or("missing seed")?.parse()?;
    let mut config = JournalConfig::new(dir);
    config.segment_bytes = 256 << 10;
    config.queue_bytes = 256 << 10;
    config.snapshot_every_commands = 3_000;
    config.snapshot_every = None;
    config.snapshots_kept = 2;
    let engine_config = EngineConfig {
        max_accounts: 64,
        max_currencies: 4,
        max_markets: 2,
        max_orders: 1 << 14,
        max_levels_per_side: 1_024,
        max_open_orders_per_account: 1_000,
        ..EngineConfig::default()
    };
    let (recovered, writer) = open(&config, engine_config)?;
    let mut engine = recovered.engine;
    let start_seq = recovered.last_seq;
    let journal = writer.journal().clone();
    let mut snapshotter = Snapshotter::start(&config, journal.clone(), start_seq);

    let acks = journal.clone();
    std::thread::spawn(move || {
        let mut seen = acks.durable_seq();
        let stdout = std::io::stdout();
        loop {
            match acks.wait_durable_after(seen, Duration::from_millis(100)) {
                Ok(durable) if durable > seen => {
                    seen = durable;
                    let mut out = stdout.lock();
                    if writeln!(out, "ack {durable}")
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });

    let mut flow = Flow::new(FlowParams {
        seed,
        accounts: 50,
        markets: 1,
        tracked_orders: 10_000,
        ..FlowParams::default()
    });
    let mut setup = flow.setup().into_iter();
    let mut produced = 0_u64;
    let mut next = || {
        produced += 1;
        setup.next().unwrap_or_else(|| flow.next_command())
    };
    // Skip what the journal already holds: the flow is deterministic.
    for _ in 0..start_seq {
        next();
    }
    let mut events: Vec<Event> = Vec::with_capacity(1_024);
    for _ in 0..COMMANDS_MAX {
        let command = next();
        let seq = loop {
            match journal.append(&command) {
                Ok(seq) => break seq,
                Err(JournalError::Busy { .. }) => {
                    journal.wait_durable_after(journal.durable_seq(), Duration::from_millis(1))?;
                }
                Err(other) => return Err(other.into()),
            }
        };
        engine.apply(&command, &mut events);
        events.clear();
        snapshotter.maybe_take(&engine, seq)?;
    }
    snapshotter.finish()?;
    writer.shutdown()?;
    Ok(())
}
