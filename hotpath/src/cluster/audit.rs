//! The cluster audit: each engine's own invariants, conservation per currency across engines
//! against the externally deposited and withdrawn funds, no funds left available on a matching
//! engine, and a client-id index that matches the live orders exactly. O(state): tests, recovery
//! and replay, never the hot path. Valid at batch boundaries (nothing in flight).

use crate::audit::AuditError;
use crate::cluster::Cluster;
use crate::cluster::shard_ids::{MatchingShardIndex, global_order_id, risk_shard_of};
use crate::ids::CurrencyId;

/// A broken cluster invariant. Always a bug: no input can cause one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterAuditError {
    /// A risk engine's own audit failed.
    #[error("risk shard {shard}: {source}")]
    RiskEngine {
        /// Which shard.
        shard: u16,
        /// What broke.
        source: AuditError,
    },
    /// A matching engine's own audit failed.
    #[error("matching shard {shard}: {source}")]
    MatchingEngine {
        /// Which shard.
        shard: u16,
        /// What broke.
        source: AuditError,
    },
    /// Funds were created or lost across shards.
    #[error(
        "currency {currency}: engines hold {held} (available + locked + fees), external deposits - withdrawals is {external}"
    )]
    Conservation {
        /// Currency concerned.
        currency: CurrencyId,
        /// Sum over engines.
        held: u128,
        /// External net.
        external: i128,
    },
    /// A matching engine holds available funds at a batch boundary (a sweep was missed).
    #[error("matching shard {shard} holds {available} available in currency {currency}")]
    Unswept {
        /// Which shard.
        shard: u16,
        /// Currency concerned.
        currency: CurrencyId,
        /// Amount left.
        available: u128,
    },
    /// The client-id index disagrees with the live orders.
    #[error("client-id index: {0}")]
    Index(String),
}

impl Cluster {
    /// Checks every cluster invariant (see the module docs); call between batches.
    pub fn audit(&self) -> Result<(), ClusterAuditError> {
        for risk in &self.risk {
            risk.engine
                .audit()
                .map_err(|source| ClusterAuditError::RiskEngine {
                    shard: risk.index.0,
                    source,
                })?;
        }
        for matching in &self.matching {
            matching
                .engine
                .audit()
                .map_err(|source| ClusterAuditError::MatchingEngine {
                    shard: matching.index.0,
                    source,
                })?;
        }
        for c in 0..self.config.engine.max_currencies {
            let currency = CurrencyId(c);
            let engines = self
                .risk
                .iter()
                .map(|r| &r.engine)
                .chain(self.matching.iter().map(|m| &m.engine));
            let mut held = 0u128;
            for engine in engines {
                let t = engine.ledger().totals(currency);
                held += t.available + t.locked + t.fees;
            }
            let external = self.coordinator.external(currency);
            let net = external.deposited as i128 - external.withdrawn as i128;
            if held as i128 != net {
                return Err(ClusterAuditError::Conservation {
                    currency,
                    held,
                    external: net,
                });
            }
            for matching in &self.matching {
                let available = matching.engine.ledger().totals(currency).available;
                if available != 0 {
                    return Err(ClusterAuditError::Unswept {
                        shard: matching.index.0,
                        currency,
                        available,
                    });
                }
            }
        }
        self.audit_index()
    }

    /// Every live order of every matching engine is indexed under its account's risk shard with
    /// its global id, and the index holds nothing else (no reservation outlives its batch).
    fn audit_index(&self) -> Result<(), ClusterAuditError> {
        let mut live = 0usize;
        for matching in &self.matching {
            let engine = &matching.engine;
            for slot in engine.orders.slots_by_account() {
                let o = engine.orders.get(slot);
                let global = global_order_id(MatchingShardIndex(matching.index.0), o.id);
                let risk = risk_shard_of(o.account, self.config.risk_shards);
                if !self.risk[risk.0 as usize].indexes(o.account, o.client_order_id, global) {
                    return Err(ClusterAuditError::Index(format!(
                        "order {global} of account {} (client id {}) is not indexed",
                        o.account, o.client_order_id
                    )));
                }
                live += 1;
            }
        }
        let (by_client, by_id) = self
            .risk
            .iter()
            .map(|r| r.indexed_orders())
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        if by_client != live || by_id != live {
            return Err(ClusterAuditError::Index(format!(
                "{live} live orders, index holds {by_client} by client id and {by_id} by id"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests assert by unwrapping.

    use super::*;
    use crate::cluster::escrow::{credit, debit};
    use crate::cluster::{ClusterConfig, ClusterEvent};
    use crate::command::{
        CommandKind, Envelope, FeeRates, MarketRisk, MarketSpec, NewOrder, OrderKind,
        SelfTradePrevention, TimeInForce,
    };
    use crate::config::EngineConfig;
    use crate::ids::{
        AccountId, Amount, ClientOrderId, DepositId, MarketId, Price, Qty, Side, TimestampNs,
    };

    /// A cluster (2 risk, 2 matching shards) with two funded accounts on different risk shards
    /// and one resting order of each on market 1 (matching shard 1).
    fn busy_cluster() -> Cluster {
        let mut cluster = Cluster::new(ClusterConfig::new(EngineConfig::small(), 2, 2)).unwrap();
        let command = |kind| Envelope {
            ts: TimestampNs(1),
            actor: crate::Actor::System,
            kind,
        };
        let spec = MarketSpec {
            market: MarketId(1),
            base: CurrencyId(0),
            quote: CurrencyId(1),
            base_per_lot: 10,
            quote_per_tick_lot: 1,
            risk: MarketRisk {
                max_price: Price(1_000),
                max_qty: Qty(1_000),
                max_notional: Amount(1_000_000),
                band_bps: 5_000,
                reference_price: Price(100),
            },
            fees: FeeRates::default(),
        };
        let mut setup = vec![
            command(CommandKind::CurrencyAdd {
                currency: CurrencyId(0),
            }),
            command(CommandKind::CurrencyAdd {
                currency: CurrencyId(1),
            }),
            command(CommandKind::MarketAdd(spec)),
        ];
        for account in [1, 2] {
            for currency in [0, 1] {
                setup.push(command(CommandKind::Deposit {
                    account: AccountId(account),
                    currency: CurrencyId(currency),
                    amount: Amount(10_000),
                    deposit: DepositId(u64::from(account) << 8 | u64::from(currency)),
                }));
            }
        }
        let mut out: Vec<ClusterEvent> = Vec::new();
        cluster.apply_batch(&setup, &mut out).unwrap();
        let orders: Vec<Envelope> = [(1, Side::Buy, 90), (2, Side::Sell, 110)]
            .into_iter()
            .map(|(account, side, price)| {
                command(CommandKind::NewOrder(NewOrder {
                    account: AccountId(account),
                    market: MarketId(1),
                    client_order_id: ClientOrderId(7),
                    side,
                    kind: OrderKind::Limit {
                        price: Price(price),
                        qty: Qty(5),
                    },
                    tif: TimeInForce::Gtc,
                    stp: SelfTradePrevention::CancelNewest,
                }))
            })
            .collect();
        cluster.apply_batch(&orders, &mut out).unwrap();
        cluster.audit().unwrap();
        assert_eq!(cluster.matching[1].engine.live_orders(), 2);
        cluster
    }

    #[test]
    fn audit_catches_funds_lost_on_a_matching_shard() {
        let mut cluster = busy_cluster();
        // Each engine stays self-consistent (an internal withdrawal), but the funds vanish.
        let matching = &mut cluster.matching[1].engine;
        credit(matching, AccountId(1), CurrencyId(1), Amount(1)).unwrap();
        debit(matching, AccountId(1), CurrencyId(1), Amount(1)).unwrap();
        cluster.audit().unwrap();
        let risk = &mut cluster.risk[1].engine;
        debit(risk, AccountId(1), CurrencyId(1), Amount(3)).unwrap();
        assert!(matches!(
            cluster.audit(),
            Err(ClusterAuditError::Conservation { .. })
        ));
    }

    #[test]
    fn audit_catches_an_unswept_balance() {
        let mut cluster = busy_cluster();
        // Funds moved from a master balance to a matching engine and left available there.
        debit(
            &mut cluster.risk[0].engine,
            AccountId(2),
            CurrencyId(0),
            Amount(5),
        )
        .unwrap();
        credit(
            &mut cluster.matching[1].engine,
            AccountId(2),
            CurrencyId(0),
            Amount(5),
        )
        .unwrap();
        assert!(matches!(
            cluster.audit(),
            Err(ClusterAuditError::Unswept { shard: 1, .. })
        ));
    }

    #[test]
    fn audit_catches_an_index_that_lost_an_order() {
        let mut cluster = busy_cluster();
        let order = crate::cluster::shard_ids::global_order_id(
            crate::cluster::MatchingShardIndex(1),
            cluster.matching[1]
                .engine
                .order_by_client(AccountId(2), ClientOrderId(7))
                .unwrap()
                .id,
        );
        cluster.risk[0].forget(AccountId(2), ClientOrderId(7), order);
        assert!(matches!(cluster.audit(), Err(ClusterAuditError::Index(_))));
    }
}
