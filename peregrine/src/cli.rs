//! Command-line interface: `peregrine <command> [flags]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::bench::BenchArgs;
use crate::config::{DEFAULT_FILE, FileChoice, LogFormat, LogLevel, Overrides};

const ABOUT: &str = "Peregrine: a low-latency crypto/fiat exchange appliance in one binary.";

const AFTER_HELP: &str = "\
Configuration precedence (later wins): embedded defaults, peregrine.toml (or --config FILE),
PEREGRINE_<SECTION>__<KEY> environment variables, command-line flags.
See peregrine.example.toml for every key, or `peregrine up --print-config`.";

/// The `peregrine` command line.
#[derive(Debug, Parser)]
#[command(name = "peregrine", version, about = ABOUT, after_help = AFTER_HELP)]
#[command(
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// One variant per subcommand. Later: `ctl` (operate a running appliance).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance until SIGINT or SIGTERM (HTTP health and metrics, data directory).
    Up(UpArgs),
    /// Run a stateless bridge node: serve the REST reads and WebSocket streams from the NATS
    /// JetStream stream an appliance publishes with [fanout] ([bridge], [http], [rest]).
    Bridge(BridgeArgs),
    /// Run a benchmark workload and print its report (`--json` for one JSON object).
    Bench(BenchArgs),
    /// Rebuild the engine from the journal (snapshot + replay), audit it and print a summary.
    Replay(crate::commands::replay::ReplayArgs),
    /// Audit this host for the pinned hot path (`check`), fix what can change at run time
    /// (`apply`), undo it (`revert`).
    Tuning(crate::commands::tuning::TuningArgs),
    /// Print a fresh ed25519 key pair for QUIC order entry: the [[quic.keys]] table for
    /// peregrine.toml and the private key for the SDK.
    Keygen(crate::commands::keygen::KeygenArgs),
    /// Identity administration on the host: `create-operator` makes an operator (the only
    /// way one comes to exist; sign-up makes members).
    Admin(crate::commands::admin::AdminArgs),
    /// The identity audit trail: `verify` checks the hash chain and names the first broken
    /// record.
    Audit(crate::commands::audit::AuditArgs),
    /// The wallet daemon: `run` follows the chain of [wallets] and credits confirmed deposits
    /// through the appliance's control API (health and metrics on wallets.listen).
    Wallets(crate::commands::wallets::WalletsArgs),
}

/// Flags of `peregrine up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Start even though the journal lost acknowledged commands at its end (recovery refuses
    /// such a start and says how many); for this start only
    #[arg(long)]
    pub accept_journal_loss: bool,

    /// Start a demo market maker: two accounts of its own, funded by a journaled deposit,
    /// quoting both sides of every market over QUIC around a moving price, so the page at `/`
    /// shows a live book and trades
    #[arg(long)]
    pub demo: bool,

    /// Run as a hot standby of the primary whose [replication] listen address is ADDR
    /// (host:port): follow its journal, open no gateway (standby.of). `leader`: lead if the
    /// etcd lease is free, else follow its holder at [leadership] peer_address
    #[arg(long, value_name = "ADDR")]
    pub standby_of: Option<String>,
}

/// Flags of `peregrine bridge`.
#[derive(Debug, Args)]
pub struct BridgeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Where the configuration comes from, and the flags that override it. Shared by every
/// command that runs the appliance's parts.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Configuration")]
pub struct ConfigArgs {
    /// Configuration file; must exist [default: ./peregrine.toml if present]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory for all persistent state (data.dir) [default: ./data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address of the HTTP health/metrics server; port 0 picks a free one (http.listen)
    /// [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Address of the REST/WebSocket bridge (rest.listen) [default: 127.0.0.1:8081]
    #[arg(long, value_name = "ADDR")]
    pub rest_listen: Option<SocketAddr>,

    /// UDP address of QUIC order entry (quic.listen) [default: 127.0.0.1:4433]
    #[arg(long, value_name = "ADDR")]
    pub quic_listen: Option<SocketAddr>,

    /// Log line format (log.format) [default: human]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Minimum log level; wins over RUST_LOG (log.level) [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
}

impl ConfigArgs {
    pub fn file_choice(&self) -> FileChoice {
        match &self.config {
            Some(path) => FileChoice::Explicit(path.clone()),
            None => FileChoice::IfPresent(PathBuf::from(DEFAULT_FILE)),
        }
    }

    pub fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            rest_listen: self.rest_listen,
            quic_listen: self.quic_listen,
            log_format: self.log_format,
            log_level: self.log_level,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn up_flags_parse() {
        let cli = Cli::try_parse_from([
            "peregrine",
            "up",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--print-config",
        ])
        .unwrap();
        let Command::Up(up) = cli.command else {
            panic!("expected up")
        };
        assert!(up.print_config);
        assert_eq!(up.config.overrides().log_format, Some(LogFormat::Json));
        assert_eq!(
            up.config.file_choice(),
            FileChoice::IfPresent(DEFAULT_FILE.into())
        );
    }
}
