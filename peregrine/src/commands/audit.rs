//! `peregrine audit verify`: walks the identity service's audit chain from its first record
//! and names the first broken one (changed, removed or inserted), then checks every audit head
//! `up` anchored in the journal (`AuditAnchor` commands of `service:identity`): the table must
//! still hold each anchored record with its anchored hash, so records cut off the end, or a
//! chain rewritten, after an anchor are named too. Exit 0 when intact, 1 when broken or
//! unreadable.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::admin::IdentityStoreArgs;
use peregrine_auth::audit::{self, Anchor, AnchorStatus, BrokenReason, ChainStatus};
use peregrine_auth::{Store, StoreError};
use peregrine_hotpath::{Actor, CommandKind, Service};
use peregrine_persist::follow::{FollowError, Tailer, TornRecord};

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

    /// The journal holding the anchors [default: <data dir>/journal]
    #[arg(long, value_name = "DIR")]
    pub journal_dir: Option<PathBuf>,
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
    /// An anchored record is gone or differs: the table was cut or rewritten after the anchor.
    #[error(
        "audit: record {seq}, anchored at journal seq {journal_seq}, {}",
        anchor_text(*.status)
    )]
    Anchor {
        /// The anchored record's sequence number.
        seq: i64,
        /// Where the journal anchored it.
        journal_seq: u64,
        /// What the table holds instead.
        status: AnchorStatus,
    },
    /// The journal could not be read.
    #[error("audit: journal: {0}")]
    Journal(#[from] FollowError),
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

fn anchor_text(status: AnchorStatus) -> &'static str {
    match status {
        AnchorStatus::Missing => "is missing: the audit table was cut after the anchor",
        AnchorStatus::Differs => "has another hash: the audit chain was rewritten after the anchor",
        _ => "does not hold",
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
    let journal = args
        .journal_dir
        .clone()
        .unwrap_or_else(|| args.store.data_dir.join(crate::exchange::JOURNAL_SUBDIR));
    runtime.block_on(async {
        let store = Store::open(&database_url).await?;
        let checked = verify_store(&store, &database_url, &journal).await;
        store.close().await;
        checked
    })
}

async fn verify_store(store: &Store, url: &str, journal: &Path) -> Result<(), AuditError> {
    match audit::verify(store).await? {
        ChainStatus::Intact { records } => println!("audit: intact, {records} records in {url}"),
        ChainStatus::Broken { seq, reason } => return Err(AuditError::Broken { seq, reason }),
        _ => return Err(AuditError::UnknownStatus),
    }
    if !journal.is_dir() {
        println!(
            "audit: no journal at {}: anchors not checked",
            journal.display()
        );
        return Ok(());
    }
    let (anchors, last) = check_anchors(store, journal).await?;
    match last {
        Some(anchor) => println!(
            "audit: {anchors} anchors in {} hold (last: record {} at journal seq {})",
            journal.display(),
            anchor.seq,
            anchor.journal_seq
        ),
        None => println!("audit: no anchor in {}", journal.display()),
    }
    Ok(())
}

/// Checks every anchor of the journal in `dir` against the table: how many, and the last.
async fn check_anchors(store: &Store, dir: &Path) -> Result<(u64, Option<Anchor>), AuditError> {
    let segments =
        peregrine_persist::segment::list_segments(dir).map_err(|source| FollowError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    let Some((first_seq, _)) = segments.first() else {
        return Ok((0, None));
    };
    // A live journal's unfinished last record reads as its end, as recovery would cut it.
    let mut tailer = Tailer::new(dir, *first_seq, TornRecord::IsEnd);
    let (mut anchors, mut last) = (0u64, None);
    // Bounded by the journal's records: each pass reads one or ends.
    while let Some((journal_seq, command)) = tailer.next(u64::MAX)? {
        let CommandKind::AuditAnchor(anchored) = command.kind else {
            continue;
        };
        if command.actor != Actor::Service(Service::Identity) {
            continue;
        }
        let seq = i64::try_from(anchored.seq).unwrap_or(i64::MAX);
        let anchor = Anchor {
            journal_seq,
            seq,
            hash: anchored.hash,
        };
        match audit::check_anchor(store, &anchor).await? {
            AnchorStatus::Holds => {}
            status => {
                return Err(AuditError::Anchor {
                    seq,
                    journal_seq,
                    status,
                });
            }
        }
        anchors += 1;
        last = Some(anchor);
    }
    Ok((anchors, last))
}
