//! What shards hand each other between the phases of a batch. Internal: the coordinator builds
//! and merges these, the shards fill them. Every list is cleared and refilled, never dropped, so
//! the steady state reuses its capacity.

use crate::cluster::event::ClusterEventKind;
use crate::command::{Envelope, MarketRisk, MarketSpec};
use crate::event::RejectReason;
use crate::ids::{AccountId, Amount, ClientOrderId, CurrencyId, MarketId, OrderId, Price};

/// A command for a risk shard (phase 1), in sequence order.
#[derive(Clone, Debug)]
pub(crate) struct RiskItem {
    pub seq: u64,
    pub command: Envelope,
}

/// Funds moved out of a master balance that travel with a command to its matching shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Escrow {
    pub account: AccountId,
    pub currency: CurrencyId,
    pub amount: Amount,
}

/// A command for a matching shard (phase 2). Order ids in it are local to that shard.
#[derive(Clone, Debug)]
pub(crate) struct MatchWork {
    pub seq: u64,
    pub command: Envelope,
    /// Credited to the account on the matching engine just before the command.
    pub escrow: Option<Escrow>,
    /// A new order whose client id the risk shard reserved: released if the order is refused.
    pub reserved: bool,
}

/// How a shard finished its part of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Done and accepted.
    Accepted,
    /// Passed on to a matching shard, which gives the outcome.
    Forwarded,
    /// Refused; the shard changed nothing (escrow, if any, is returned).
    Rejected(RejectReason),
}

/// One item of a shard's output stream.
#[derive(Clone, Debug)]
pub(crate) enum Item {
    Event(ClusterEventKind),
    /// The shard's last item for this command.
    Done(Verdict),
}

/// An item tagged with its command's sequence; shard outputs are in sequence order.
#[derive(Clone, Debug)]
pub(crate) struct Emitted {
    pub seq: u64,
    pub item: Item,
}

/// What a matching shard sends a risk shard for phase 3.
#[derive(Clone, Debug)]
pub(crate) struct Return {
    pub seq: u64,
    /// The matching shard that emitted it.
    pub shard: u16,
    /// Emission order within (seq, shard).
    pub emission: u32,
    pub kind: ReturnKind,
}

/// The content of a return.
#[derive(Clone, Debug)]
pub(crate) enum ReturnKind {
    /// Swept funds: credit them to the master balance.
    Credit {
        account: AccountId,
        currency: CurrencyId,
        amount: Amount,
    },
    /// The order reserved under this client id was accepted with this global id and price.
    Accepted {
        account: AccountId,
        client: ClientOrderId,
        order: OrderId,
        price: Price,
    },
    /// A replace changed the order's price.
    Replaced {
        account: AccountId,
        order: OrderId,
        price: Price,
    },
    /// The order ended (filled or cancelled): its client id is free again.
    Ended {
        account: AccountId,
        client: ClientOrderId,
        order: OrderId,
    },
    /// The new order was refused: drop the reservation of its client id.
    Unreserve {
        account: AccountId,
        client: ClientOrderId,
    },
    /// Market news, sent to every risk shard: a market now exists.
    MarketAdded(MarketSpec),
    /// Market news: new risk parameters.
    MarketUpdated { market: MarketId, risk: MarketRisk },
    /// Market news: the last trade price (the reference of bands and market-order escrows).
    LastPrice { market: MarketId, price: Price },
}

/// A risk shard's phase-1 output.
#[derive(Debug, Default)]
pub(crate) struct ScreenOut {
    pub events: Vec<Emitted>,
    /// Per matching shard, the commands forwarded to it, in sequence order.
    pub work: Vec<Vec<MatchWork>>,
}

impl ScreenOut {
    pub fn new(matching_shards: u16, capacity: usize) -> ScreenOut {
        ScreenOut {
            events: Vec::with_capacity(capacity * 2),
            work: (0..matching_shards)
                .map(|_| Vec::with_capacity(capacity))
                .collect(),
        }
    }

    pub fn clear(&mut self) {
        self.events.clear();
        self.work.iter_mut().for_each(Vec::clear);
    }
}

/// A matching shard's phase-2 output.
#[derive(Debug, Default)]
pub(crate) struct MatchOut {
    pub events: Vec<Emitted>,
    /// Per risk shard, its returns in (sequence, emission) order.
    pub returns: Vec<Vec<Return>>,
}

impl MatchOut {
    pub fn new(risk_shards: u16, capacity: usize) -> MatchOut {
        MatchOut {
            events: Vec::with_capacity(capacity * 4),
            returns: (0..risk_shards)
                .map(|_| Vec::with_capacity(capacity * 2))
                .collect(),
        }
    }

    pub fn clear(&mut self) {
        self.events.clear();
        self.returns.iter_mut().for_each(Vec::clear);
    }
}

/// Everything one batch moves between phases, allocated once for the batch size.
#[derive(Debug, Default)]
pub(crate) struct BatchBuffers {
    /// Phase-1 input per risk shard.
    pub risk_in: Vec<Vec<RiskItem>>,
    /// Phase-1 output per risk shard.
    pub risk_out: Vec<ScreenOut>,
    /// Commands the coordinator routes straight to a matching shard (no account funds).
    pub direct: Vec<Vec<MatchWork>>,
    /// Phase-2 input per matching shard, in sequence order.
    pub match_in: Vec<Vec<MatchWork>>,
    /// Phase-2 output per matching shard.
    pub match_out: Vec<MatchOut>,
    /// Phase-3 input per risk shard, in (sequence, matching shard, emission) order.
    pub settle_in: Vec<Vec<Return>>,
    /// Commands the coordinator refused itself, in sequence order.
    pub rejects: Vec<(u64, RejectReason)>,
    /// Merge cursors: one per risk shard, then one per matching shard.
    pub cursors: Vec<usize>,
    /// Runs lent to the phase-2 merge: the direct commands, then each risk shard's.
    pub work_runs: Vec<Vec<MatchWork>>,
    /// Runs lent to the phase-3 merge: each matching shard's returns.
    pub return_runs: Vec<Vec<Return>>,
}

impl BatchBuffers {
    pub fn new(risk_shards: u16, matching_shards: u16, batch: usize) -> BatchBuffers {
        let (r, m) = (risk_shards as usize, matching_shards as usize);
        BatchBuffers {
            risk_in: (0..r).map(|_| Vec::with_capacity(batch)).collect(),
            risk_out: (0..r)
                .map(|_| ScreenOut::new(matching_shards, batch))
                .collect(),
            direct: (0..m).map(|_| Vec::with_capacity(batch)).collect(),
            match_in: (0..m).map(|_| Vec::with_capacity(batch)).collect(),
            match_out: (0..m).map(|_| MatchOut::new(risk_shards, batch)).collect(),
            settle_in: (0..r).map(|_| Vec::with_capacity(batch * 2)).collect(),
            rejects: Vec::with_capacity(batch),
            cursors: vec![0; r + m],
            work_runs: (0..=r).map(|_| Vec::new()).collect(),
            return_runs: (0..m).map(|_| Vec::new()).collect(),
        }
    }
}
