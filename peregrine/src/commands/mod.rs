//! What each subcommand does, and how failures map to exit codes.

pub mod admin;
pub mod audit;
pub mod bench;
pub mod bridge;
pub mod keygen;
pub mod replay;
pub mod tuning;
pub mod up;
pub mod wallets;

use crate::cli::{Cli, Command};

/// Exit code for a configuration (usage) error, the same code clap uses for bad flags.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for any other failure.
pub const EXIT_FAILURE: u8 = 1;

/// A failed command. `Display` is one line, without the `error: ` prefix.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Up(#[from] up::UpError),
    #[error(transparent)]
    Bridge(#[from] bridge::BridgeError),
    #[error("bench: {0}")]
    Bench(#[from] bench::BenchError),
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    #[error(transparent)]
    Tuning(#[from] tuning::TuningError),
    #[error(transparent)]
    Keygen(#[from] keygen::KeygenError),
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error("wallets: {0}")]
    Wallets(#[from] wallets::WalletsError),
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Up(e) if e.is_config_error() => EXIT_CONFIG,
            Self::Bridge(e) if e.is_config_error() => EXIT_CONFIG,
            Self::Bench(e) if bench::is_usage_error(e) => EXIT_CONFIG,
            Self::Replay(replay::ReplayError::Config(_)) => EXIT_CONFIG,
            Self::Tuning(e) => e.exit_code(),
            Self::Admin(e) if e.is_usage_error() => EXIT_CONFIG,
            Self::Wallets(e) if e.is_config_error() => EXIT_CONFIG,
            Self::Up(_)
            | Self::Bridge(_)
            | Self::Bench(_)
            | Self::Replay(_)
            | Self::Keygen(_)
            | Self::Admin(_)
            | Self::Audit(_)
            | Self::Wallets(_) => EXIT_FAILURE,
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CommandError> {
    match cli.command {
        Command::Up(args) => up::run(&args, std::env::vars_os())?,
        Command::Bridge(args) => bridge::run(&args, std::env::vars_os())?,
        Command::Bench(args) => bench::run(&args)?,
        Command::Replay(args) => replay::run(&args, std::env::vars_os())?,
        Command::Tuning(args) => tuning::run(&args, std::env::vars_os())?,
        Command::Keygen(args) => keygen::run(&args)?,
        Command::Admin(args) => admin::run(&args)?,
        Command::Audit(args) => audit::run(&args)?,
        Command::Wallets(args) => wallets::run(&args, std::env::vars_os())?,
    }
    Ok(())
}
