//! `peregrine tuning check|apply|revert`: audit the host for the pinned hot path, apply the
//! run-time fixes (dry run unless `--yes`), and undo them.
//!
//! The shard cores come from `--cores` or the configuration (`hotpath.core`, `journal.core`),
//! the UDP buffer size from `quic.transport.udp_buffer_bytes`, the journal disk from
//! `--journal-disk` or the device holding `data.dir`.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use peregrine_tuning::apply::{self, ApplyError, STATE_FILE_DEFAULT};
use peregrine_tuning::cpus::CpuSetError;
use peregrine_tuning::{CpuId, CpuSet, Host, Plan, Target};

use crate::cli::ConfigArgs;
use crate::config::{self, Config, ConfigError};

/// Exit code of `check --strict` when a rule fails: distinct from a failed command (1) and a
/// usage error (2), so a deploy script can tell "untuned" from "broken".
pub const EXIT_UNTUNED: u8 = 3;

/// Flags of `peregrine tuning`.
#[derive(Debug, clap::Args)]
pub struct TuningArgs {
    #[command(subcommand)]
    pub action: TuningAction,
}

/// What to do with the host.
#[derive(Debug, clap::Subcommand)]
pub enum TuningAction {
    /// Audit the host: expected, actual and the fix for each setting (exit 0 when the audit ran)
    Check(CheckArgs),
    /// Print the plan of run-time fixes and the kernel command line; `--yes` applies them
    Apply(ApplyArgs),
    /// Restore the values the last `apply --yes` replaced
    Revert(RevertArgs),
}

/// The host and what runs on it.
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Root of the host's /proc and /sys (a captured or fixture tree for tests)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Shard cores, as a CPU list (`2-3`) [default: hotpath.core and journal.core]
    #[arg(long, value_name = "LIST")]
    pub cores: Option<String>,
    /// Block device holding the journal (`nvme0n1`) [default: the device of data.dir]
    #[arg(long, value_name = "NAME")]
    pub journal_disk: Option<String>,
}

/// Flags of `tuning check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
    /// Exit 3 when any rule fails
    #[arg(long)]
    pub strict: bool,
}

/// Flags of `tuning apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// Apply the plan (without it, only print it)
    #[arg(long)]
    pub yes: bool,
    /// State file recording the replaced values [default: <root>/var/lib/peregrine/tuning-state.json]
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

/// Flags of `tuning revert`.
#[derive(Debug, clap::Args)]
pub struct RevertArgs {
    /// Root of the host's /proc and /sys
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// State file written by `apply --yes` [default: <root>/var/lib/peregrine/tuning-state.json]
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

/// Why a tuning command failed.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("tuning: --cores: {0}")]
    Cores(#[from] CpuSetError),
    #[error("tuning: {0}")]
    State(#[from] ApplyError),
    #[error("tuning: {failed} of {total} writes failed (listed above)")]
    Writes { failed: usize, total: usize },
    #[error("tuning: {0} rules fail (--strict)")]
    Untuned(usize),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
}

impl TuningError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::Cores(_) => super::EXIT_CONFIG,
            Self::Untuned(_) => EXIT_UNTUNED,
            Self::State(_) | Self::Writes { .. } | Self::Stdout(_) => super::EXIT_FAILURE,
        }
    }
}

/// Runs `peregrine tuning`. `env` is the process environment.
pub fn run(
    args: &TuningArgs,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(), TuningError> {
    match &args.action {
        TuningAction::Check(check) => run_check(check, env),
        TuningAction::Apply(apply) => run_apply(apply, env),
        TuningAction::Revert(revert) => run_revert(revert),
    }
}

/// The cores the configuration pins hot threads to.
pub fn pinned_cores(config: &Config) -> CpuSet {
    [config.hotpath.core, config.journal.core]
        .into_iter()
        .filter_map(|core| u32::try_from(core).ok())
        .filter(|core| *core < peregrine_tuning::cpus::CPUS_MAX)
        .map(CpuId)
        .collect()
}

fn target(
    args: &HostArgs,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(Host, Target), TuningError> {
    let loaded = config::load(&args.config.file_choice(), env, &args.config.overrides())?;
    let host = Host::new(&args.root);
    let shard_cores = match &args.cores {
        Some(list) => CpuSet::parse_list(list)?,
        None => pinned_cores(&loaded.config),
    };
    let journal_disk = args
        .journal_disk
        .clone()
        .or_else(|| peregrine_tuning::audit::disk_of(&host, &loaded.config.data.dir));
    let udp_buffer_bytes =
        u64::try_from(loaded.config.quic.transport.udp_buffer_bytes).unwrap_or(u64::MAX);
    let target = Target {
        shard_cores,
        udp_buffer_bytes,
        journal_disk,
    };
    Ok((host, target))
}

fn print(text: &str) -> Result<(), TuningError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(TuningError::Stdout)
}

fn run_check(
    args: &CheckArgs,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(), TuningError> {
    let (host, target) = target(&args.host, env)?;
    let findings = peregrine_tuning::audit(&host, &target);
    if args.json {
        print(&format!(
            "{}\n",
            peregrine_tuning::report::json(&target, &findings)
        ))?;
    } else {
        print(&peregrine_tuning::report::table(&target, &findings))?;
    }
    let failed = peregrine_tuning::report::Tally::of(&findings).fail;
    if args.strict && failed > 0 {
        return Err(TuningError::Untuned(failed));
    }
    Ok(())
}

fn state_path(root: &std::path::Path, state: Option<&PathBuf>) -> PathBuf {
    state
        .cloned()
        .unwrap_or_else(|| root.join(STATE_FILE_DEFAULT))
}

fn plan_text(plan: &Plan, applying: bool) -> String {
    let mut text = String::new();
    if plan.changes.is_empty() {
        text.push_str("nothing to change at run time\n");
    } else {
        let verb = if applying { "applying" } else { "would write" };
        for change in &plan.changes {
            text.push_str(&format!(
                "{verb}  /{}  {} -> {}  ({})\n",
                change.path,
                change.from,
                change.to,
                change.rule.name()
            ));
        }
    }
    if !plan.kernel_args.is_empty() {
        text.push_str(&format!(
            "kernel command line (add, then reboot): {}\n",
            plan.kernel_args.join(" ")
        ));
    }
    for manual in &plan.manual {
        text.push_str(&format!("by hand: {manual}\n"));
    }
    if !applying && !plan.changes.is_empty() {
        text.push_str("dry run: nothing written; `peregrine tuning apply --yes` applies it\n");
    }
    text
}

fn run_apply(
    args: &ApplyArgs,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(), TuningError> {
    let (host, target) = target(&args.host, env)?;
    let plan = Plan::from_findings(&peregrine_tuning::audit(&host, &target));
    print(&plan_text(&plan, args.yes))?;
    if !args.yes || plan.changes.is_empty() {
        return Ok(());
    }
    let state = state_path(&args.host.root, args.state.as_ref());
    let outcome = apply::apply(&host, &plan, &state)?;
    report_outcome(&outcome, "applied", &state)
}

fn run_revert(args: &RevertArgs) -> Result<(), TuningError> {
    let host = Host::new(&args.root);
    let state = state_path(&args.root, args.state.as_ref());
    let outcome = apply::revert(&host, &state)?;
    report_outcome(&outcome, "restored", &state)
}

fn report_outcome(
    outcome: &apply::Outcome,
    verb: &str,
    state: &std::path::Path,
) -> Result<(), TuningError> {
    let mut text = String::new();
    for (path, error) in &outcome.failed {
        text.push_str(&format!("failed  /{path}: {error}\n"));
    }
    let total = outcome.written.len() + outcome.failed.len();
    text.push_str(&format!(
        "{verb} {} of {total}; state file {}\n",
        outcome.written.len(),
        state.display()
    ));
    print(&text)?;
    if outcome.failed.is_empty() {
        Ok(())
    } else {
        Err(TuningError::Writes {
            failed: outcome.failed.len(),
            total,
        })
    }
}
