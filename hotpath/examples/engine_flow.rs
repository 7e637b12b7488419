//! Replays `bench matching`'s seeded flow straight into `Engine::apply`: no pacing, no threads,
//! no clock reads. For instruction counts (`scripts/instructions` runs it under callgrind with
//! `--toggle-collect` on `apply_batch`) and for digests of the event stream and the final
//! snapshot, which compare two builds command for command.
//!
//! `cargo run --release -p peregrine-hotpath --example engine_flow -- [--flow flash-crash]
//! [--seed N] [--warmup N] [--commands N] [--no-balance-events] [--digest]`

use std::collections::BTreeMap;
use std::process::ExitCode;

use peregrine_hotpath::sim::{self, FlowShape};
use peregrine_hotpath::{Engine, Envelope, Event};

/// Commands applied between two observations of their events, as in `bench matching`'s
/// throughput phase.
const BATCH_COMMANDS: usize = 1_024;
/// `bench matching`'s default seed (`peregrine_perf::args::SEED_DEFAULT`).
const SEED_DEFAULT: u64 = 0x5EED;

/// The command line.
struct Cli {
    /// `realistic` or `flash-crash`.
    flow: String,
    seed: u64,
    /// Commands applied one at a time before the measured batches.
    warmup: u64,
    /// Measured commands, rounded down to whole batches of 1 024.
    commands: u64,
    balance_events: bool,
    /// Print digests of every event and of the final snapshot, and rejects by reason.
    digest: bool,
}

/// Why the command line was refused.
#[derive(Debug)]
enum UsageError {
    Unknown(String),
    MissingValue(&'static str),
    NotANumber(&'static str, String),
    UnknownFlow(String),
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsageError::Unknown(flag) => write!(f, "unknown argument {flag:?}"),
            UsageError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            UsageError::NotANumber(flag, value) => write!(f, "{flag} {value:?} is not a number"),
            UsageError::UnknownFlow(flow) => write!(f, "unknown flow {flow:?}"),
        }
    }
}

fn number(flag: &'static str, value: Option<String>) -> Result<u64, UsageError> {
    let value = value.ok_or(UsageError::MissingValue(flag))?;
    value
        .parse()
        .map_err(|_| UsageError::NotANumber(flag, value))
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Cli, UsageError> {
    let mut cli = Cli {
        flow: "realistic".to_string(),
        seed: SEED_DEFAULT,
        warmup: 100_000,
        commands: 199_680,
        balance_events: true,
        digest: false,
    };
    // Bounded by the arguments given.
    while let Some(flag) = argv.next() {
        match flag.as_str() {
            "--flow" => cli.flow = argv.next().ok_or(UsageError::MissingValue("--flow"))?,
            "--seed" => cli.seed = number("--seed", argv.next())?,
            "--warmup" => cli.warmup = number("--warmup", argv.next())?,
            "--commands" => cli.commands = number("--commands", argv.next())?,
            "--no-balance-events" => cli.balance_events = false,
            "--digest" => cli.digest = true,
            _ => return Err(UsageError::Unknown(flag)),
        }
    }
    Ok(cli)
}

fn shape(flow: &str) -> Result<FlowShape, UsageError> {
    match flow {
        "realistic" => Ok(FlowShape::Realistic),
        "flash-crash" => Ok(FlowShape::FLASH_CRASH),
        _ => Err(UsageError::UnknownFlow(flow.to_string())),
    }
}

/// FNV-1a, 64 bits: a stable digest (the std hasher is not guaranteed across releases).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// What the replay saw, when `--digest` asks for it.
struct Digest {
    events: Fnv,
    event_count: u64,
    rejects: BTreeMap<String, u64>,
    text: String,
}

impl Digest {
    fn add(&mut self, events: &[Event]) {
        use std::fmt::Write;
        for event in events {
            self.text.clear();
            // Debug output covers every field of every event.
            let _ = write!(self.text, "{event:?}");
            self.events.write(self.text.as_bytes());
            self.event_count += 1;
            if let Event::Rejected { reason } = event {
                *self.rejects.entry(reason.to_string()).or_default() += 1;
            }
        }
    }
}

/// The measured code: callgrind collects inside this function only.
#[inline(never)]
fn apply_batch(engine: &mut Engine, batch: &[Envelope], events: &mut Vec<Event>) {
    for command in batch {
        engine.apply(command, events);
    }
}

fn main() -> ExitCode {
    let prepared = parse(std::env::args().skip(1)).and_then(|cli| Ok((shape(&cli.flow)?, cli)));
    let (shape, cli) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!(
                "error: {error}\nusage: engine_flow [--flow realistic|flash-crash] [--seed N] \
                 [--warmup N] [--commands N] [--no-balance-events] [--digest]"
            );
            return ExitCode::FAILURE;
        }
    };
    let (mut engine, mut flow) = match sim::bench_prepare(cli.seed, shape, cli.balance_events) {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut digest = cli.digest.then(|| Digest {
        events: Fnv::new(),
        event_count: 0,
        rejects: BTreeMap::new(),
        text: String::new(),
    });
    let mut events: Vec<Event> = Vec::with_capacity(BATCH_COMMANDS * 16);
    for _ in 0..cli.warmup {
        engine.apply(&flow.next_command(), &mut events);
        if let Some(d) = digest.as_mut() {
            d.add(&events);
        }
        flow.observe(&events);
        events.clear();
    }
    let batches = cli.commands / BATCH_COMMANDS as u64;
    let mut batch = Vec::with_capacity(BATCH_COMMANDS);
    for _ in 0..batches {
        batch.clear();
        batch.extend((0..BATCH_COMMANDS).map(|_| flow.next_command()));
        events.clear();
        apply_batch(&mut engine, &batch, &mut events);
        if let Some(d) = digest.as_mut() {
            d.add(&events);
        }
        flow.observe(&events);
    }
    if let Err(error) = engine.audit() {
        eprintln!("error: the engine fails its audit: {error}");
        return ExitCode::FAILURE;
    }
    println!(
        "flow={} seed={} warmup={} commands={} balance_events={} live_orders={}",
        cli.flow,
        cli.seed,
        cli.warmup,
        batches * BATCH_COMMANDS as u64,
        cli.balance_events,
        engine.live_orders()
    );
    if let Some(d) = digest {
        let snapshot = match engine.snapshot() {
            Ok(bytes) => bytes,
            Err(error) => {
                eprintln!("error: snapshot: {error}");
                return ExitCode::FAILURE;
            }
        };
        let mut image = Fnv::new();
        image.write(&snapshot);
        println!(
            "events={} events_digest={:016x} snapshot_bytes={} snapshot_digest={:016x}",
            d.event_count,
            d.events.0,
            snapshot.len(),
            image.0
        );
        println!("rejects={:?}", d.rejects);
    }
    ExitCode::SUCCESS
}
