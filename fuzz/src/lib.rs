//! What the fuzz targets (`fuzz_targets/*.rs`) and the seed generator (`make-seeds`) share: the
//! engine limits and market units the targets parse against, and a real command flow.
//!
//! Owns: fixtures for fuzzing. Never does: fuzzing itself (libFuzzer drives the targets), or
//! anything the appliance runs.

use std::path::{Path, PathBuf};

use peregrine_hotpath::edge::{CurrencyScale, MarketUnits};
use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_hotpath::{EngineConfig, Envelope, Event};
use rust_decimal::Decimal;

/// The targets' fuzz names, in the order `scripts/fuzz` runs them.
pub const TARGETS: [&str; 5] = [
    "proto_codec",
    "proto_session",
    "rest_order",
    "journal_record",
    "snapshot_restore",
];

/// The configured capacities a snapshot is restored within: the engine's small configuration,
/// so that one restore (which allocates what the snapshot's capacities ask for, once they are
/// checked against these) costs microseconds and a fuzzer run makes many; a snapshot asking for
/// more is refused before any allocation, exactly as with the appliance's larger defaults.
pub fn engine_limits() -> EngineConfig {
    EngineConfig::small()
}

/// Market units of real shapes (the embedded catalog's btcusd and an 18-decimal token), for the
/// conversions after the decimal parser.
pub fn market_units() -> [MarketUnits; 2] {
    [
        MarketUnits {
            tick: Decimal::new(1, 2),
            lot: Decimal::new(1, 5),
            base: CurrencyScale { scale: 8 },
            quote: CurrencyScale { scale: 2 },
        },
        MarketUnits {
            tick: Decimal::new(1, 8),
            lot: Decimal::new(1, 0),
            base: CurrencyScale { scale: 18 },
            quote: CurrencyScale { scale: 18 },
        },
    ]
}

/// Commands of a real flow (currencies, markets, deposits, then trading) with the events the
/// engine gave each, applied to an engine of [`engine_limits`]; the engine is returned too.
pub fn real_flow(commands: usize) -> (peregrine_hotpath::Engine, Vec<(Envelope, Vec<Event>)>) {
    let config = EngineConfig {
        max_currencies: 4,
        max_markets: 2,
        max_orders: 1 << 10,
        ..engine_limits()
    };
    let Ok(mut engine) = peregrine_hotpath::Engine::new(config) else {
        unreachable!("the fuzz limits are a valid engine configuration")
    };
    let mut flow = Flow::new(FlowParams {
        seed: 7,
        accounts: 8,
        markets: 2,
        tracked_orders: 64,
        ..FlowParams::default()
    });
    let mut applied = Vec::with_capacity(commands);
    let mut setup = flow.setup().into_iter();
    while applied.len() < commands {
        let command = setup.next().unwrap_or_else(|| flow.next_command());
        let mut events = Vec::new();
        engine.apply(&command, &mut events);
        flow.observe(&events);
        applied.push((command, events));
    }
    (engine, applied)
}

/// A directory of this process under the system's temporary directory, for targets that must
/// go through a file (the snapshot reader takes a path).
pub fn scratch_dir(target: &str) -> PathBuf {
    std::env::temp_dir().join(format!("peregrine-fuzz-{target}-{}", std::process::id()))
}

/// `bytes` as a snapshot file in `dir`, named after the sequence its header claims (so the
/// reader's name check passes and it goes on to the body), or after 1 when it is too short.
pub fn write_snapshot_file(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let mut seq_le = [0_u8; 8];
    if let Some(field) = bytes.get(8..16) {
        seq_le.copy_from_slice(field);
    }
    let seq = u64::from_le_bytes(seq_le).max(1);
    let path = peregrine_persist::snapshot::snapshot_path(dir, seq);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// The byte script the `proto_session` target runs: two bytes choose the session's limits, then
/// each operation is one op byte and its argument bytes. The seed generator writes scripts of
/// real sessions in it.
pub mod session_script {
    /// Feed the next `n` bytes (one length byte, then the bytes) as input from the peer.
    pub const FEED: u8 = 0;
    /// Answer every pending action; one byte per action picks the outcome (0 = success).
    pub const ANSWER: u8 = 1;
    /// Advance the clock by one byte times [`TICK_STEP_NS`] and check the idle timeout.
    pub const TICK: u8 = 2;
    /// Report the completion (`Done`) of the oldest in-flight command.
    pub const DONE: u8 = 3;
    /// Mark the output as sent.
    pub const FLUSH: u8 = 4;
    /// Operations: an op byte is taken modulo this.
    pub const OPS: u8 = 5;
    /// The clock step of [`TICK`]: 255 steps pass the default idle timeout.
    pub const TICK_STEP_NS: u64 = 50_000_000;
    /// Operations one script may run; the rest of a longer input is ignored.
    pub const OPS_MAX: usize = 4_096;

    /// A script's prefix with the default limits.
    pub const DEFAULT_LIMITS: [u8; 2] = [0, 0];

    /// Appends a [`FEED`] of `bytes` (split into feeds of at most 255 bytes).
    pub fn feed(script: &mut Vec<u8>, bytes: &[u8]) {
        for chunk in bytes.chunks(usize::from(u8::MAX)) {
            script.push(FEED);
            // Lossless: chunks are at most 255 bytes.
            script.push(chunk.len() as u8);
            script.extend_from_slice(chunk);
        }
    }

    /// Appends an [`ANSWER`] of success to up to `actions` pending actions.
    pub fn answer_success(script: &mut Vec<u8>, actions: usize) {
        script.push(ANSWER);
        script.extend(std::iter::repeat_n(0, actions));
    }
}

/// The REST target's fixtures: the one key its key store holds and the clock it checks nonces
/// against, so a seed can carry a valid signature.
pub mod rest {
    /// The key id.
    pub const KEY: &str = "fuzz-key";
    /// Its secret.
    pub const SECRET: &str = "fuzz-secret";
    /// The time of every authentication, in milliseconds since the epoch.
    pub const NOW_MS: u64 = 1_700_000_000_000;
    /// The nonce window.
    pub const WINDOW_MS: u64 = 5_000;
    /// First byte of an input that is a JSON order body; the rest is the body.
    pub const MODE_ORDER: u8 = 0;
    /// First byte of an input that is authentication headers: key, nonce and signature, each
    /// ended by a newline.
    pub const MODE_AUTH: u8 = 1;
}
