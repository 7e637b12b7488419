//! `peregrine replay`: rebuilds the engine from the journal in the data directory (newest valid
//! snapshot + replay of the journal after it), audits it and prints what it found. A torn tail
//! is truncated and reported (as at start-up); corruption before the tail or a sequence gap
//! fails with the file and byte offset.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use peregrine_hotpath::CurrencyId;
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
    let recovered = peregrine_persist::recover(&journal_config(&dir), engine_config())?;
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
        let mut offset = 0;
        for _ in 0..9 {
            let length = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap());
            offset += peregrine_persist::record::record_bytes(length as usize);
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
