//! The coordinator: routes a batch's commands to shards, hands each phase's output to the next
//! phase in canonical order, and merges the shards' outputs into one event stream with exactly one
//! outcome per command. Pure and single-threaded: the reference executor and the threaded runtime
//! both drive it, so their streams are equal by construction.
//!
//! Routing:
//! - account funds (`Deposit`, `WithdrawalHold`) and orders that need the master balance or the
//!   client-id index (`NewOrder`, `CancelReplace`, `Cancel` by client id): the account's risk
//!   shard; `WithdrawalSettle`/`Release`: the risk shard that holds the withdrawal (the coordinator
//!   keeps the pending ids, so they are unique cluster-wide);
//! - `Cancel` by id: the matching shard in the id's tag; market commands and `MassCancel` of one
//!   market: the market's matching shard; `MassCancel` of all markets, `KillSwitch` and
//!   `AccountFeeTier`: every matching shard, merged into one outcome (one `MassCancelled` with the
//!   total count, one `KillSwitchSet`, one `AccountFeeTierSet`);
//! - `CurrencyAdd`, `CurrencyCreate`: every engine; the outcome is the first risk shard's.

use std::collections::BTreeMap;

use crate::cluster::event::{ClusterEvent, ClusterEventKind};
use crate::cluster::shard_ids::{
    MatchingShardIndex, RiskShardIndex, matching_shard_of, risk_shard_of, split_order_id,
};
use crate::cluster::sorted_runs::merge_sorted_runs;
use crate::cluster::work::{BatchBuffers, Emitted, Item, MatchWork, RiskItem, Verdict};
use crate::command::{CommandKind, Envelope, OrderRef};
use crate::event::{Event, RejectReason};
use crate::ids::{AccountId, CurrencyId, WithdrawalId};

/// Funds that entered and left the cluster in one currency, counted from accepted deposits and
/// settled withdrawals (independently of the engines' own totals, which also count escrow moves).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExternalTotals {
    /// Deposited from outside.
    pub deposited: u128,
    /// Withdrawn to outside (settled).
    pub withdrawn: u128,
}

/// How a command's shard outputs merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Merge {
    /// Outputs are concatenated (risk shard, then matching shard); the first rejection wins.
    Chain,
    /// Every matching shard ran it: per-shard summaries are summed into one.
    Broadcast,
    /// Every engine ran it identically: the first risk shard speaks for all.
    Primary,
}

impl Merge {
    fn of(kind: &CommandKind) -> Merge {
        match kind {
            CommandKind::MassCancel { market: None, .. }
            | CommandKind::KillSwitch { .. }
            | CommandKind::AccountFeeTier { .. } => Merge::Broadcast,
            CommandKind::CurrencyAdd { .. } | CommandKind::CurrencyCreate(_) => Merge::Primary,
            _ => Merge::Chain,
        }
    }
}

/// Summaries of a broadcast command, emitted once after every shard's events.
#[derive(Debug, Default)]
struct Summary {
    mass_cancelled: Option<(AccountId, u32)>,
    kill_switch: Option<Event>,
    fee_tier: Option<Event>,
}

/// Routing state that outlives a batch.
#[derive(Debug)]
pub(crate) struct Coordinator {
    risk_shards: u16,
    matching_shards: u16,
    /// Sequence of the next command.
    next_seq: u64,
    /// Pending (or just requested) withdrawals: their risk shard and the hold's sequence.
    withdrawals: BTreeMap<WithdrawalId, (RiskShardIndex, u64)>,
    max_withdrawals: usize,
    external: Vec<ExternalTotals>,
    batches: u64,
}

impl Coordinator {
    pub fn new(
        risk_shards: u16,
        matching_shards: u16,
        max_withdrawals: usize,
        currencies: u16,
    ) -> Coordinator {
        Coordinator {
            risk_shards,
            matching_shards,
            next_seq: 1,
            withdrawals: BTreeMap::new(),
            max_withdrawals,
            external: vec![ExternalTotals::default(); currencies as usize],
            batches: 0,
        }
    }

    pub fn external(&self, currency: CurrencyId) -> ExternalTotals {
        self.external
            .get(currency.0 as usize)
            .copied()
            .unwrap_or_default()
    }

    pub fn batches(&self) -> u64 {
        self.batches
    }

    pub fn commands(&self) -> u64 {
        self.next_seq - 1
    }

    /// Routes a batch; returns the sequence of its first command.
    pub fn route(&mut self, commands: &[Envelope], bufs: &mut BatchBuffers) -> u64 {
        bufs.risk_in.iter_mut().for_each(Vec::clear);
        bufs.direct.iter_mut().for_each(Vec::clear);
        bufs.rejects.clear();
        let first_seq = self.next_seq;
        for (i, command) in commands.iter().enumerate() {
            let seq = first_seq + i as u64;
            if let Err(reason) = self.route_one(seq, command, bufs) {
                bufs.rejects.push((seq, reason));
            }
        }
        self.next_seq += commands.len() as u64;
        first_seq
    }

    fn route_one(
        &mut self,
        seq: u64,
        command: &Envelope,
        bufs: &mut BatchBuffers,
    ) -> Result<(), RejectReason> {
        let risk = |account: AccountId| risk_shard_of(account, self.risk_shards).0 as usize;
        let to_risk = |bufs: &mut BatchBuffers, shard: usize| {
            bufs.risk_in[shard].push(RiskItem {
                seq,
                command: command.clone(),
            });
        };
        let direct = |bufs: &mut BatchBuffers, shard: MatchingShardIndex, command: Envelope| {
            bufs.direct[shard.0 as usize].push(MatchWork {
                seq,
                command,
                escrow: None,
                reserved: false,
            });
        };
        let by_market = |market| matching_shard_of(market, self.matching_shards);
        match &command.kind {
            CommandKind::NewOrder(o) => to_risk(bufs, risk(o.account)),
            CommandKind::CancelReplace(r) => to_risk(bufs, risk(r.account)),
            CommandKind::Cancel {
                account,
                target: OrderRef::Client(_),
            } => to_risk(bufs, risk(*account)),
            CommandKind::Deposit { account, .. } => to_risk(bufs, risk(*account)),
            CommandKind::Cancel {
                account,
                target: OrderRef::Id(id),
            } => {
                let (shard, local) = split_order_id(*id);
                if shard.0 >= self.matching_shards {
                    return Err(RejectReason::UnknownOrder);
                }
                let local = Envelope {
                    ts: command.ts,
                    actor: command.actor,
                    kind: CommandKind::Cancel {
                        account: *account,
                        target: OrderRef::Id(local),
                    },
                };
                direct(bufs, shard, local);
            }
            CommandKind::WithdrawalHold {
                account,
                withdrawal,
                ..
            } => {
                if self.withdrawals.contains_key(withdrawal) {
                    return Err(RejectReason::DuplicateWithdrawal);
                }
                if self.withdrawals.len() >= self.max_withdrawals {
                    return Err(RejectReason::WithdrawalCapacity);
                }
                let shard = risk_shard_of(*account, self.risk_shards);
                self.withdrawals.insert(*withdrawal, (shard, seq));
                to_risk(bufs, shard.0 as usize);
            }
            CommandKind::WithdrawalSettle { withdrawal }
            | CommandKind::WithdrawalRelease { withdrawal } => {
                let (shard, _) = self
                    .withdrawals
                    .remove(withdrawal)
                    .ok_or(RejectReason::UnknownWithdrawal)?;
                to_risk(bufs, shard.0 as usize);
            }
            CommandKind::CurrencyAdd { .. } | CommandKind::CurrencyCreate(_) => {
                for shard in 0..self.risk_shards as usize {
                    to_risk(bufs, shard);
                }
                for shard in 0..self.matching_shards {
                    direct(bufs, MatchingShardIndex(shard), command.clone());
                }
            }
            CommandKind::MassCancel {
                market: Some(market),
                ..
            } => direct(bufs, by_market(*market), command.clone()),
            CommandKind::MassCancel { market: None, .. }
            | CommandKind::KillSwitch { .. }
            | CommandKind::AccountFeeTier { .. } => {
                for shard in 0..self.matching_shards {
                    direct(bufs, MatchingShardIndex(shard), command.clone());
                }
            }
            CommandKind::MarketAdd(spec) => direct(bufs, by_market(spec.market), command.clone()),
            CommandKind::MarketCreate(create) => {
                direct(bufs, by_market(create.spec.market), command.clone())
            }
            CommandKind::MarketUpdate(update) => {
                direct(bufs, by_market(update.market), command.clone())
            }
            CommandKind::MarketHalt { market }
            | CommandKind::MarketResume { market }
            | CommandKind::MarketStateSet { market, .. }
            | CommandKind::FeeScheduleUpdate { market, .. } => {
                direct(bufs, by_market(*market), command.clone())
            }
            // No state anywhere: the first risk shard accepts it.
            CommandKind::AuditAnchor(_) => to_risk(bufs, 0),
        }
        Ok(())
    }

    /// Phase-2 input: per matching shard, the coordinator's direct commands and every risk
    /// shard's forwarded ones, in sequence order (each sequence appears once per shard).
    pub fn gather_matching(&self, bufs: &mut BatchBuffers) {
        let BatchBuffers {
            risk_out,
            direct,
            match_in,
            work_runs,
            ..
        } = bufs;
        debug_assert_eq!(work_runs.len(), risk_out.len() + 1);
        for (shard, input) in match_in.iter_mut().enumerate() {
            // Runs are lent and given back empty: their capacity stays with their owner.
            work_runs[0] = std::mem::take(&mut direct[shard]);
            for (r, out) in risk_out.iter_mut().enumerate() {
                work_runs[1 + r] = std::mem::take(&mut out.work[shard]);
            }
            merge_sorted_runs(work_runs, input, |work| work.seq);
            direct[shard] = std::mem::take(&mut work_runs[0]);
            for (r, out) in risk_out.iter_mut().enumerate() {
                out.work[shard] = std::mem::take(&mut work_runs[1 + r]);
            }
            debug_assert!(input.windows(2).all(|w| w[0].seq < w[1].seq));
        }
    }

    /// Phase-3 input: per risk shard, the matching shards' returns in (sequence, matching shard,
    /// emission) order.
    pub fn gather_settlements(&self, bufs: &mut BatchBuffers) {
        let BatchBuffers {
            match_out,
            settle_in,
            return_runs,
            ..
        } = bufs;
        debug_assert_eq!(return_runs.len(), match_out.len());
        for (shard, input) in settle_in.iter_mut().enumerate() {
            for (m, out) in match_out.iter_mut().enumerate() {
                return_runs[m] = std::mem::take(&mut out.returns[shard]);
            }
            // Runs are in matching-shard order, so equal sequences keep it.
            merge_sorted_runs(return_runs, input, |r| r.seq);
            for (m, out) in match_out.iter_mut().enumerate() {
                out.returns[shard] = std::mem::take(&mut return_runs[m]);
            }
            debug_assert!(input.windows(2).all(|w| {
                (w[0].seq, w[0].shard, w[0].emission) < (w[1].seq, w[1].shard, w[1].emission)
            }));
        }
    }

    /// Merges the shards' outputs of a batch into `out`: per command in sequence order, the risk
    /// shard's events, then each matching shard's in shard order, then `Completed`.
    pub fn merge(
        &mut self,
        commands: &[Envelope],
        first_seq: u64,
        bufs: &mut BatchBuffers,
        out: &mut Vec<ClusterEvent>,
    ) {
        let risk_count = self.risk_shards as usize;
        bufs.cursors.iter_mut().for_each(|c| *c = 0);
        let mut reject_at = 0;
        for (i, command) in commands.iter().enumerate() {
            let seq = first_seq + i as u64;
            let start = out.len();
            let merge = Merge::of(&command.kind);
            let mut own_reject = None;
            if let Some(&(s, reason)) = bufs.rejects.get(reject_at)
                && s == seq
            {
                own_reject = Some(reason);
                reject_at += 1;
            }
            let mut first_reject = None;
            let mut accepted = false;
            let mut summary = Summary::default();
            for source in 0..bufs.cursors.len() {
                let events = if source < risk_count {
                    &mut bufs.risk_out[source].events
                } else {
                    &mut bufs.match_out[source - risk_count].events
                };
                let cursor = &mut bufs.cursors[source];
                let keep = match merge {
                    Merge::Primary => source == 0,
                    Merge::Chain | Merge::Broadcast => true,
                };
                // Bounded by the source's length: every step advances the cursor.
                while let Some(Emitted { seq: s, item }) = events.get_mut(*cursor)
                    && *s == seq
                {
                    *cursor += 1;
                    if !keep {
                        continue;
                    }
                    // Moved out, not cloned: each item is merged once.
                    match std::mem::replace(item, Item::Done(Verdict::Forwarded)) {
                        Item::Done(Verdict::Accepted) => accepted = true,
                        Item::Done(Verdict::Forwarded) => {}
                        Item::Done(Verdict::Rejected(reason)) => {
                            first_reject.get_or_insert(reason);
                        }
                        Item::Event(kind) => {
                            if merge == Merge::Broadcast && summary.absorb(&kind) {
                                continue;
                            }
                            out.push(ClusterEvent { seq, kind });
                        }
                    }
                }
            }
            let rejected = own_reject.or(match merge {
                // Broadcast checks are the same on every engine: all refuse or none does.
                Merge::Broadcast if accepted => None,
                _ => first_reject,
            });
            assert!(
                accepted || rejected.is_some(),
                "command {seq} got no outcome from its shards"
            );
            if rejected.is_none() {
                summary.emit(seq, out);
                self.count_external(&out[start..]);
            } else if let CommandKind::WithdrawalHold { withdrawal, .. } = &command.kind
                && self
                    .withdrawals
                    .get(withdrawal)
                    .is_some_and(|&(_, s)| s == seq)
            {
                // The hold failed: its id is free again from the next batch on.
                self.withdrawals.remove(withdrawal);
            }
            out.push(ClusterEvent {
                seq,
                kind: ClusterEventKind::Completed { rejected },
            });
        }
        debug_assert_eq!(reject_at, bufs.rejects.len());
        debug_assert!(
            (0..risk_count).all(|r| bufs.cursors[r] == bufs.risk_out[r].events.len())
                && (0..bufs.match_out.len())
                    .all(|m| bufs.cursors[risk_count + m] == bufs.match_out[m].events.len()),
            "shard output left unmerged"
        );
        self.batches += 1;
    }

    fn count_external(&mut self, events: &[ClusterEvent]) {
        for event in events {
            let (currency, amount, deposit) = match event.kind {
                ClusterEventKind::Engine(Event::Deposited {
                    currency, amount, ..
                }) => (currency, amount, true),
                ClusterEventKind::Engine(Event::WithdrawalSettled {
                    currency, amount, ..
                }) => (currency, amount, false),
                _ => continue,
            };
            if let Some(totals) = self.external.get_mut(currency.0 as usize) {
                if deposit {
                    totals.deposited += u128::from(amount.0);
                } else {
                    totals.withdrawn += u128::from(amount.0);
                }
            }
        }
    }
}

impl Summary {
    /// Takes a broadcast's per-shard summary event; false for any other event.
    fn absorb(&mut self, kind: &ClusterEventKind) -> bool {
        let ClusterEventKind::Engine(event) = kind else {
            return false;
        };
        match event {
            Event::MassCancelled { account, count } => {
                let total = self.mass_cancelled.get_or_insert((*account, 0));
                total.1 += count;
            }
            Event::KillSwitchSet { .. } => self.kill_switch = Some(event.clone()),
            Event::AccountFeeTierSet { .. } => self.fee_tier = Some(event.clone()),
            _ => return false,
        }
        true
    }

    fn emit(self, seq: u64, out: &mut Vec<ClusterEvent>) {
        let mass = self
            .mass_cancelled
            .map(|(account, count)| Event::MassCancelled { account, count });
        for event in [mass, self.kill_switch, self.fee_tier]
            .into_iter()
            .flatten()
        {
            out.push(ClusterEvent {
                seq,
                kind: ClusterEventKind::Engine(event),
            });
        }
    }
}
