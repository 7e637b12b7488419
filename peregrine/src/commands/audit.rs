//! `peregrine audit verify`: walks the identity service's audit chain from its first record
//! and names the first broken one (changed, removed or inserted). Exit 0 when intact, 1 when
//! broken or unreadable.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::admin::IdentityStoreArgs;
use peregrine_auth::StoreError;
use peregrine_auth::audit::{self, BrokenReason, ChainStatus};

/// Flags of `peregrine audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// `peregrine audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the identity audit chain; name the first broken record.
    Verify(VerifyArgs),
}

/// Flags of `peregrine audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: IdentityStoreArgs,
}

/// Why the chain was not found intact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A record breaks the chain.
    #[error("audit: the chain is broken at record {seq}: {}", reason_text(*.reason))]
    Broken {
        /// The first broken record's sequence number.
        seq: i64,
        /// How it breaks the chain.
        reason: BrokenReason,
    },
    /// The store could not be read.
    #[error("audit: identity store: {0}")]
    Store(#[from] StoreError),
    /// No store at the default path (a SQLite file is never created by a check).
    #[error("audit: no identity store at {0}")]
    Missing(PathBuf),
    /// The check ended in a status this build cannot name (a newer library).
    #[error("audit: the check ended in a status this build does not know")]
    UnknownStatus,
    /// The runtime could not start.
    #[error("audit: {0}")]
    Io(#[from] std::io::Error),
}

fn reason_text(reason: BrokenReason) -> &'static str {
    match reason {
        BrokenReason::Gap => "missing (removed)",
        BrokenReason::PrevHashMismatch => "does not link to the record before it",
        BrokenReason::HashMismatch => "its content was changed",
        _ => "unknown fault",
    }
}

/// Runs `peregrine audit`.
pub fn run(args: &AuditArgs) -> Result<(), AuditError> {
    match &args.command {
        AuditCommand::Verify(args) => verify(args),
    }
}

fn verify(args: &VerifyArgs) -> Result<(), AuditError> {
    let database_url = args.store.url();
    let default_file = args.store.data_dir.join("identity.db");
    if args.store.database_url.is_none() && !default_file.exists() {
        // A check never creates the store it checks.
        return Err(AuditError::Missing(default_file));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        let store = peregrine_auth::Store::open(&database_url).await?;
        let status = audit::verify(&store).await;
        store.close().await;
        status
    })?;
    match status {
        ChainStatus::Intact { records } => {
            println!("audit: intact, {records} records in {database_url}");
            Ok(())
        }
        ChainStatus::Broken { seq, reason } => Err(AuditError::Broken { seq, reason }),
        _ => Err(AuditError::UnknownStatus),
    }
}
