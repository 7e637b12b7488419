//! Markets spread over several matching shards while every account's balances stay consistent,
//! deterministic and conserved: risk shards by account, matching shards by market.
//!
//! # Roles
//!
//! Both roles reuse [`Engine`] unchanged:
//!
//! - `R` **risk shards** (account `a` on shard `a % R`): an engine that holds the accounts' master
//!   balances (deposits and withdrawals run there) and never holds an order. Each also keeps a
//!   view of every market (units, risk parameters, last trade price) and a bounded index of its
//!   accounts' live orders across matching shards by client id.
//! - `M` **matching shards** (market `m` on shard `m % M`): an engine with those markets whose
//!   ledger holds only escrow, the funds that resting orders carry.
//!
//! # One order's path
//!
//! 1. **R1** (phase 1, the account's risk shard): checks the account, the market (its view),
//!    client-id uniqueness across shards and the index's bound, then computes the escrow with the
//!    engine's lock formula (buy limit `price * qty * quote_per_tick_lot`, market buy by budget
//!    the budget, market buy by quantity at the protection price of its view, sell the base;
//!    nothing for an order the engine would refuse for size or notional, which the matching
//!    engine then refuses for its own reason). It refuses `InsufficientBalance` when the master
//!    balance lacks the escrow, else moves it out (an internal withdrawal) and forwards it with
//!    the order.
//! 2. **ME** (phase 2, the market's matching shard): credits the escrow (an internal deposit),
//!    applies the order with the real engine, then sweeps out everything that became available on
//!    it for any account (proceeds, leftover escrow after a fill, cancel or reject) and returns
//!    it. No account has available funds there between commands, so an order locks only its own
//!    escrow and a refused order gets its whole escrow back.
//! 3. **R2** (phase 3, each account's risk shard): credits the returned funds to the master
//!    balances and updates the client-id index and the market views.
//!
//! A replace carries as much of the order's full new lock as the master balance has; the
//! matching engine uses `new lock - current lock` of it (its own check) and the rest comes back in
//! the same batch. Fees stay where the engine collects them: in each matching engine's fee total
//! per currency ([`Cluster::fees_collected`]).
//!
//! # Determinism with concurrency: lockstep batches
//!
//! The caller cuts the command stream into batches (and would journal the boundaries). Each batch
//! runs three phases: risk shards screen their commands in sequence order (in parallel), matching
//! shards apply what was routed to them in sequence order (in parallel), risk shards settle the
//! returns in (sequence, matching shard, emission) order (in parallel). Phase 1 of a batch sees
//! phase 3 of every earlier batch, never a later one. The outputs merge in a canonical order (per
//! command: risk shard events, then matching shards in index order, then one `Completed`), so the
//! stream depends only on the commands and the batch boundaries. [`Cluster::apply_batch`] is the
//! single-threaded reference; [`ClusterRuntime`] runs each shard on its own thread and yields the
//! same stream. Order ids are global: a matching engine's local id tagged with its shard in the
//! top bits ([`global_order_id`]).
//!
//! What depends on batch boundaries (documented, deterministic): R1 sees markets added, risk
//! updates and last prices of earlier batches only (a market buy by quantity whose escrow, from
//! an older reference, does not cover the matching engine's protection price is refused
//! `InsufficientBalance` with its escrow returned); proceeds and released funds are spendable from
//! the next batch on; a client id is free again from the batch after its order ended; a refused
//! withdrawal hold frees its id at the end of its batch.
//!
//! Differences from one engine, all documented here: the order-rate limit and the open orders per
//! account are enforced per matching shard; the kill switch is a flag on every matching shard
//! (set by a broadcast), so an order sent while it is on travels to its shard and comes back
//! refused; R1's checks (account, market, client id, balance) come before the matching engine's,
//! so a command with several faults may name another of them than one engine would; and
//! withdrawal ids are unique among pending withdrawals cluster-wide (the coordinator routes
//! settle and release by id). An account's funds in one currency must fit `u64` across its master
//! balance and escrows: a return that would overflow its master balance is a broken invariant
//! (asserted), as a trade overflowing a balance is in one engine.
//!
//! # Routing and outcomes
//!
//! See the `coordinator` module: account commands go to the account's risk shard, market
//! commands to the market's matching shard, `Cancel` by id to the shard in the id's tag;
//! `MassCancel` of all markets, `KillSwitch` and `AccountFeeTier` go to every matching shard and
//! merge into one outcome (one `MassCancelled` with the total count); `CurrencyAdd` goes to every
//! engine. Every command gets exactly one [`ClusterEventKind::Completed`], its last event.
//!
//! # Conservation
//!
//! For every currency: the sum over all engines of available + locked + fees collected, plus the
//! escrow in flight between phases, equals external deposits minus external withdrawals; at batch
//! boundaries nothing is in flight. [`Cluster::audit`] checks it, plus each engine's own audit,
//! plus that no matching engine holds available funds and that the client-id index matches the
//! live orders exactly.

mod audit;
mod coordinator;
mod escrow;
mod event;
mod matching;
mod risk;
mod runtime;
mod shard_ids;
mod sorted_runs;
mod work;

pub use audit::ClusterAuditError;
pub use coordinator::ExternalTotals;
pub use event::{ClusterEvent, ClusterEventKind};
pub use runtime::{ClusterRuntime, ClusterRuntimeConfig, ClusterSubmitError};
pub use shard_ids::{
    MAX_MATCHING_SHARDS, MAX_RISK_SHARDS, MatchingShardIndex, ORDER_ID_TAG_SHIFT, RiskShardIndex,
    global_order_id, matching_shard_of, risk_shard_of, split_order_id,
};

use crate::command::Envelope;
use crate::config::EngineConfig;
use crate::engine::{Engine, OrderView};
use crate::ids::{AccountId, CurrencyId, OrderId};
use crate::ledger::Balance;
use coordinator::Coordinator;
use matching::MatchingShard;
use risk::RiskShard;
use work::BatchBuffers;

/// Largest batch a cluster accepts.
pub const MAX_BATCH_COMMANDS: u32 = 1 << 20;

/// Shape and limits of a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Limits of every matching engine. Risk engines use its accounts, currencies, pending
    /// withdrawals, rate settings and `balance_events`, and hold no orders or markets.
    pub engine: EngineConfig,
    /// Risk shards (`1..=MAX_RISK_SHARDS`).
    pub risk_shards: u16,
    /// Matching shards (`1..=MAX_MATCHING_SHARDS`).
    pub matching_shards: u16,
    /// Commands in one batch, at most; buffers are allocated for it up front.
    pub max_batch_commands: u32,
    /// Live orders (plus orders in flight) of one risk shard's accounts over all matching shards:
    /// the bound of its client-id index. A new order beyond it is refused `OrderCapacity`.
    pub max_live_orders_per_risk_shard: u32,
}

impl ClusterConfig {
    /// A cluster of `risk_shards` x `matching_shards` engines with `engine`'s limits, batches of
    /// up to 4096 commands, and an index as large as one engine's order capacity.
    pub fn new(engine: EngineConfig, risk_shards: u16, matching_shards: u16) -> ClusterConfig {
        ClusterConfig {
            max_live_orders_per_risk_shard: engine.max_orders,
            engine,
            risk_shards,
            matching_shards,
            max_batch_commands: 4_096,
        }
    }

    /// Checks that the cluster can be built.
    pub fn validate(&self) -> Result<(), &'static str> {
        self.engine.validate()?;
        if self.risk_shards == 0 || self.risk_shards > MAX_RISK_SHARDS {
            return Err("risk_shards must be in 1..=MAX_RISK_SHARDS");
        }
        if self.matching_shards == 0 || self.matching_shards > MAX_MATCHING_SHARDS {
            return Err("matching_shards must be in 1..=MAX_MATCHING_SHARDS");
        }
        if self.max_batch_commands == 0 || self.max_batch_commands > MAX_BATCH_COMMANDS {
            return Err("max_batch_commands must be in 1..=MAX_BATCH_COMMANDS");
        }
        if self.max_live_orders_per_risk_shard == 0 {
            return Err("max_live_orders_per_risk_shard must be positive");
        }
        Ok(())
    }

    /// A risk engine's limits: no orders or markets, so almost nothing beyond the balances.
    fn risk_engine(&self) -> EngineConfig {
        EngineConfig {
            max_markets: 1,
            max_orders: 1,
            max_levels_per_side: 1,
            ..self.engine.clone()
        }
    }

    /// A matching engine's limits: balance events on, since the sweep reads them.
    fn matching_engine(&self) -> EngineConfig {
        EngineConfig {
            balance_events: true,
            ..self.engine.clone()
        }
    }
}

/// Why the cluster refused a call (never a command: commands are refused with events).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The configuration is unusable.
    #[error("invalid cluster configuration: {0}")]
    InvalidConfig(&'static str),
    /// A batch longer than `max_batch_commands`.
    #[error("batch of {len} commands exceeds the maximum of {max}")]
    BatchTooLarge {
        /// Commands in the batch.
        len: usize,
        /// The configured maximum.
        max: u32,
    },
}

/// The sans-IO, single-threaded reference executor of the cross-shard pipeline.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    risk: Vec<RiskShard>,
    matching: Vec<MatchingShard>,
    coordinator: Coordinator,
    buffers: BatchBuffers,
}

impl Cluster {
    /// Creates a cluster with every engine and buffer allocated.
    pub fn new(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        config.validate().map_err(ClusterError::InvalidConfig)?;
        let risk = (0..config.risk_shards)
            .map(|i| {
                let engine = Engine::new(config.risk_engine())?;
                Ok(RiskShard::new(
                    RiskShardIndex(i),
                    engine,
                    config.matching_shards,
                    config.engine.max_markets,
                    config.max_live_orders_per_risk_shard,
                ))
            })
            .collect::<Result<Vec<_>, &'static str>>()
            .map_err(ClusterError::InvalidConfig)?;
        let matching = (0..config.matching_shards)
            .map(|i| {
                let engine = Engine::new(config.matching_engine())?;
                Ok(MatchingShard::new(
                    MatchingShardIndex(i),
                    engine,
                    config.risk_shards,
                ))
            })
            .collect::<Result<Vec<_>, &'static str>>()
            .map_err(ClusterError::InvalidConfig)?;
        let max_withdrawals =
            config.engine.max_pending_withdrawals as usize * config.risk_shards as usize;
        Ok(Cluster {
            coordinator: Coordinator::new(
                config.risk_shards,
                config.matching_shards,
                max_withdrawals,
                config.engine.max_currencies,
            ),
            buffers: BatchBuffers::new(
                config.risk_shards,
                config.matching_shards,
                config.max_batch_commands as usize,
            ),
            risk,
            matching,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Applies one batch: phase 1 on every risk shard, phase 2 on every matching shard, phase 3 on
    /// every risk shard, then appends the merged events to `out` (each command's events end with
    /// one `Completed`).
    pub fn apply_batch(
        &mut self,
        commands: &[Envelope],
        out: &mut Vec<ClusterEvent>,
    ) -> Result<(), ClusterError> {
        check_batch(&self.config, commands)?;
        let first_seq = self.coordinator.route(commands, &mut self.buffers);
        for (shard, risk) in self.risk.iter_mut().enumerate() {
            risk.screen(
                &self.buffers.risk_in[shard],
                &mut self.buffers.risk_out[shard],
            );
        }
        self.coordinator.gather_matching(&mut self.buffers);
        for (shard, matching) in self.matching.iter_mut().enumerate() {
            matching.run(
                &self.buffers.match_in[shard],
                &mut self.buffers.match_out[shard],
            );
        }
        self.coordinator.gather_settlements(&mut self.buffers);
        for (shard, risk) in self.risk.iter_mut().enumerate() {
            risk.settle(&self.buffers.settle_in[shard]);
        }
        self.coordinator
            .merge(commands, first_seq, &mut self.buffers, out);
        Ok(())
    }

    /// An account's master balance (on its risk shard).
    pub fn balance(&self, account: AccountId, currency: CurrencyId) -> Balance {
        let shard = risk_shard_of(account, self.config.risk_shards);
        self.risk[shard.0 as usize]
            .engine
            .balance(account, currency)
    }

    /// A risk shard's engine (master balances and pending withdrawals).
    pub fn risk_engine(&self, shard: RiskShardIndex) -> Option<&Engine> {
        self.risk.get(shard.0 as usize).map(|r| &r.engine)
    }

    /// A matching shard's engine (books; its ledger holds escrow only). Its order ids are local.
    pub fn matching_engine(&self, shard: MatchingShardIndex) -> Option<&Engine> {
        self.matching.get(shard.0 as usize).map(|m| &m.engine)
    }

    /// A live order by global id, with its global id.
    pub fn order(&self, id: OrderId) -> Option<OrderView> {
        let (shard, local) = split_order_id(id);
        let engine = &self.matching.get(shard.0 as usize)?.engine;
        engine.order(local).map(|view| OrderView { id, ..view })
    }

    /// Fees collected in a currency, over every matching engine.
    pub fn fees_collected(&self, currency: CurrencyId) -> u128 {
        if currency.0 >= self.config.engine.max_currencies {
            return 0;
        }
        self.matching
            .iter()
            .map(|m| m.engine.ledger().totals(currency).fees)
            .sum()
    }

    /// External deposits and settled withdrawals of a currency.
    pub fn external_totals(&self, currency: CurrencyId) -> ExternalTotals {
        self.coordinator.external(currency)
    }

    /// Batches applied.
    pub fn batches_applied(&self) -> u64 {
        self.coordinator.batches()
    }

    /// Commands applied (the sequence of the last one).
    pub fn commands_applied(&self) -> u64 {
        self.coordinator.commands()
    }
}

fn check_batch(config: &ClusterConfig, commands: &[Envelope]) -> Result<(), ClusterError> {
    if commands.len() > config.max_batch_commands as usize {
        return Err(ClusterError::BatchTooLarge {
            len: commands.len(),
            max: config.max_batch_commands,
        });
    }
    Ok(())
}
