//! What the cluster tells the world: the engines' client-facing events (order ids made global)
//! and the escrow transfers between risk and matching shards, each tagged with the sequence of
//! the command that caused it, ending with exactly one `Completed` per command.

use crate::cluster::shard_ids::MatchingShardIndex;
use crate::event::{Event, RejectReason};
use crate::ids::{AccountId, Amount, CurrencyId};

/// One event of the cluster's stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClusterEvent {
    /// Sequence of the command (1 for the cluster's first command, then one per command).
    pub seq: u64,
    /// What happened.
    pub kind: ClusterEventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClusterEventKind {
    /// An engine event. Order ids are global; never `Event::Rejected` (see `Completed`). The
    /// balance changes a matching shard's events carry ([`Event::balance_changes`]) are of its
    /// escrow ledger; master balances change by the risk shards' funds events and the two
    /// escrow events.
    Engine(Event),
    /// Funds left the account's master balance (risk shard) as the escrow of an order or a
    /// replace, on their way to a matching shard.
    EscrowSent {
        /// Owner.
        account: AccountId,
        /// Currency.
        currency: CurrencyId,
        /// Amount.
        amount: Amount,
        /// Destination.
        shard: MatchingShardIndex,
    },
    /// Funds that became available on a matching shard (proceeds, unused escrow, released locks)
    /// were swept back; the risk shard credits them to the master balance at the batch's end.
    EscrowReturned {
        /// Owner.
        account: AccountId,
        /// Currency.
        currency: CurrencyId,
        /// Amount.
        amount: Amount,
        /// Origin.
        shard: MatchingShardIndex,
    },
    /// The command's outcome; always its last event. A rejected command changed nothing in the
    /// end: its only other events are escrow sent and returned in full.
    Completed {
        /// Why it was refused, or `None` when it was accepted.
        rejected: Option<RejectReason>,
    },
}
