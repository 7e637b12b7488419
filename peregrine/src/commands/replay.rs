//! `peregrine replay`: rebuilds the engine from the journal in the data directory (newest valid
//! snapshot + replay of the journal after it), audits it and prints what it found. A torn tail
//! is truncated and reported (as at start-up); corruption before the tail or a sequence gap
//! fails with the file and byte offset.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use std::collections::BTreeMap;

use peregrine_hotpath::{Actor, CurrencyId, Envelope, Event};
use peregrine_persist::{JournalConfig, RecoveryError};

use crate::cli::ConfigArgs;
use crate::config::{self, ConfigError};

pub use crate::exchange::{JOURNAL_SUBDIR, engine_config};

/// Flags of `peregrine replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Journal directory to replay [default: <data.dir>/journal]
    #[arg(long, visible_alias = "from", value_name = "DIR")]
    pub journal_dir: Option<PathBuf>,
    /// Also print every replayed command: sequence, timestamp, actor and what it asked for
    #[arg(long)]
    pub commands: bool,
}

/// Distinct actors counted in the summary; the rest are summed as "others" (a journal written
/// by many API keys must not make the summary unbounded).
const ACTORS_LISTED_MAX: usize = 64;

/// Commands replayed per actor.
#[derive(Debug, Default)]
struct ActorTally {
    counts: BTreeMap<String, u64>,
    others: u64,
}

impl ActorTally {
    fn count(&mut self, actor: &Actor) {
        let name = actor.to_string();
        if let Some(count) = self.counts.get_mut(&name) {
            *count += 1;
        } else if self.counts.len() < ACTORS_LISTED_MAX {
            self.counts.insert(name, 1);
        } else {
            self.others += 1;
        }
    }

    fn line(&self) -> String {
        let mut parts: Vec<String> = self
            .counts
            .iter()
            .map(|(actor, count)| format!("{actor} {count}"))
            .collect();
        if self.others > 0 {
            parts.push(format!("others {}", self.others));
        }
        if parts.is_empty() {
            return "none".to_owned();
        }
        parts.join(", ")
    }
}

/// Why `replay` failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("replay: {0}")]
    Recovery(#[from] RecoveryError),
    #[error("replay: the rebuilt engine fails its audit: {0}")]
    Audit(peregrine_hotpath::AuditError),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
}

/// The journal settings for replaying `dir` (recovery reads only the directory).
pub fn journal_config(dir: &Path) -> JournalConfig {
    JournalConfig::new(dir)
}

/// Runs `peregrine replay`.
pub fn run(
    args: &ReplayArgs,
    env: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<(), ReplayError> {
    let loaded = config::load(&args.config.file_choice(), env, &args.config.overrides())?;
    let dir = args
        .journal_dir
        .clone()
        .unwrap_or_else(|| loaded.config.data.dir.join(JOURNAL_SUBDIR));
    let started = Instant::now();
    let mut tally = ActorTally::default();
    let mut stdout_error: Option<std::io::Error> = None;
    let recovered = {
        let mut out = std::io::stdout().lock();
        let mut observe = |seq: u64, command: &Envelope, _: &[Event]| {
            tally.count(&command.actor);
            if args.commands && stdout_error.is_none() {
                let line = writeln!(
                    out,
                    "command  {seq}  ts {}  {}  {:?}",
                    command.ts, command.actor, command.kind
                );
                stdout_error = line.err();
            }
        };
        peregrine_persist::recover_observed(&journal_config(&dir), engine_config(), &mut observe)?
    };
    if let Some(error) = stdout_error {
        return Err(ReplayError::Stdout(error));
    }
    let elapsed = started.elapsed();
    recovered.engine.audit().map_err(ReplayError::Audit)?;
    let report = &recovered.report;
    let mut out = std::io::stdout().lock();
    let mut print = || -> std::io::Result<()> {
        writeln!(out, "journal  {}", dir.display())?;
        match &report.snapshot {
            Some((path, seq)) => writeln!(out, "snapshot  {} (seq {seq})", path.display())?,
            None => writeln!(out, "snapshot  none")?,
        }
        for (path, reason) in &report.snapshots_skipped {
            writeln!(out, "skipped snapshot  {}: {reason}", path.display())?;
        }
        writeln!(
            out,
            "replayed  {} commands from {} segments in {:.3} s",
            report.replayed_count,
            report.segments_count,
            elapsed.as_secs_f64()
        )?;
        writeln!(out, "last seq  {}", recovered.last_seq)?;
        writeln!(out, "actors  {}", tally.line())?;
        if let Some((path, from, to)) = &report.segment_extended {
            writeln!(
                out,
                "short segment extended  {} from {from} to {to} bytes",
                path.display()
            )?;
        }
        if let Some(torn) = &report.torn_tail {
            writeln!(
                out,
                "torn tail truncated  {} at byte {} ({} bytes zeroed): {}",
                torn.path.display(),
                torn.offset,
                torn.zeroed_bytes,
                torn.reason
            )?;
        }
        let engine = &recovered.engine;
        writeln!(
            out,
            "engine  {} markets, {} live orders, audit ok",
            engine.market_ids().len(),
            engine.live_orders()
        )?;
        let ledger = engine.ledger();
        for currency in 0..ledger.currency_slots() {
            let currency = CurrencyId(currency);
            if ledger.is_registered(currency) {
                writeln!(
                    out,
                    "currency {}  {:?}",
                    currency.0,
                    ledger.totals(currency)
                )?;
            }
        }
        out.flush()
    };
    print().map_err(ReplayError::Stdout)
}

#[cfg(test)]
mod tests {
    use peregrine_hotpath::sim::{Flow, FlowParams};

    use super::*;

    fn args(journal_dir: &Path) -> ReplayArgs {
        ReplayArgs {
            config: ConfigArgs::default(),
            journal_dir: Some(journal_dir.to_path_buf()),
            commands: false,
        }
    }

    #[test]
    fn replays_a_journal_and_refuses_a_corrupt_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = journal_config(dir.path());
        config.segment_bytes = 1 << 20;
        let (_, writer) = peregrine_persist::open(&config, engine_config()).unwrap();
        let mut flow = Flow::new(FlowParams::default());
        let mut commands = flow.setup();
        commands.truncate(20);
        commands.extend((0..200).map(|_| flow.next_command()));
        for command in &commands {
            writer.journal().append(command).unwrap();
        }
        // A live journal is refused: replay would truncate the running writer's tail.
        let error = run(&args(dir.path()), Vec::new()).unwrap_err();
        assert!(error.to_string().contains("in use"), "{error}");
        assert_eq!(writer.shutdown().unwrap(), 220);
        run(&args(dir.path()), Vec::new()).unwrap();

        // Damage record 10's payload: valid records follow, so replay must refuse.
        let segment = dir.path().join("00000000000000000001.journal");
        let mut bytes = std::fs::read(&segment).unwrap();
        let mut offset = peregrine_persist::segment::SEGMENT_HEADER_BYTES;
        for _ in 0..9 {
            offset += peregrine_persist::record::encoded_record_bytes(&bytes[offset..]);
        }
        bytes[offset + 20] ^= 0xFF;
        std::fs::write(&segment, &bytes).unwrap();
        let error = run(&args(dir.path()), Vec::new()).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("00000000000000000001.journal"),
            "{message}"
        );
        assert!(message.contains(&format!("byte {offset}")), "{message}");
    }
}
