//! Shard indices, the routing rules that map accounts and markets to shards, and the layout of
//! global order ids (a matching engine's local id tagged with its shard in the high bits).

use crate::ids::{AccountId, MarketId, OrderId};

/// Bits of a global order id below the matching-shard tag. A matching engine's local ids must
/// stay below `1 << ORDER_ID_TAG_SHIFT`: the matching shard refuses a new order (`OrderCapacity`)
/// rather than let a local id reach the tag.
pub const ORDER_ID_TAG_SHIFT: u32 = 56;

/// Most matching shards: the tag has `64 - ORDER_ID_TAG_SHIFT` bits.
pub const MAX_MATCHING_SHARDS: u16 = 1 << (64 - ORDER_ID_TAG_SHIFT);

/// Most risk shards: bounds the threads and the fan-out of every batch.
pub const MAX_RISK_SHARDS: u16 = 256;

/// The local part of a global order id.
const LOCAL_ID_MASK: u64 = (1 << ORDER_ID_TAG_SHIFT) - 1;

/// A risk shard: holds the master balances of the accounts `a` with `a % risk_shards == index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RiskShardIndex(pub u16);

/// A matching shard: holds the books of the markets `m` with `m % matching_shards == index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MatchingShardIndex(pub u16);

/// The risk shard of an account: `account % risk_shards`. Fixed for the cluster's life, so an
/// account's master balances never move.
#[inline]
pub fn risk_shard_of(account: AccountId, risk_shards: u16) -> RiskShardIndex {
    debug_assert!(risk_shards > 0);
    RiskShardIndex((account.0 % u32::from(risk_shards)) as u16)
}

/// The matching shard of a market: `market % matching_shards`. Stateless, so admin commands,
/// cancels and mass cancels route without a table.
#[inline]
pub fn matching_shard_of(market: MarketId, matching_shards: u16) -> MatchingShardIndex {
    debug_assert!(matching_shards > 0);
    MatchingShardIndex((market.0 % u32::from(matching_shards)) as u16)
}

/// The cluster-wide id of a matching engine's local order id.
#[inline]
pub fn global_order_id(shard: MatchingShardIndex, local: OrderId) -> OrderId {
    debug_assert!(
        local.0 <= LOCAL_ID_MASK,
        "local order id reaches the shard tag"
    );
    debug_assert!(shard.0 < MAX_MATCHING_SHARDS);
    OrderId(u64::from(shard.0) << ORDER_ID_TAG_SHIFT | (local.0 & LOCAL_ID_MASK))
}

/// The matching shard and local id of a global order id.
#[inline]
pub fn split_order_id(global: OrderId) -> (MatchingShardIndex, OrderId) {
    (
        MatchingShardIndex((global.0 >> ORDER_ID_TAG_SHIFT) as u16),
        OrderId(global.0 & LOCAL_ID_MASK),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_round_trip_and_stay_distinct_across_shards() {
        for shard in [0u16, 1, 2, MAX_MATCHING_SHARDS - 1] {
            for local in [1u64, 0x1234_5678, LOCAL_ID_MASK] {
                let global = global_order_id(MatchingShardIndex(shard), OrderId(local));
                assert_eq!(
                    split_order_id(global),
                    (MatchingShardIndex(shard), OrderId(local))
                );
            }
        }
        let a = global_order_id(MatchingShardIndex(0), OrderId(7));
        let b = global_order_id(MatchingShardIndex(1), OrderId(7));
        assert_ne!(a, b);
    }

    #[test]
    fn routing_is_modulo() {
        assert_eq!(risk_shard_of(AccountId(5), 2), RiskShardIndex(1));
        assert_eq!(matching_shard_of(MarketId(7), 3), MatchingShardIndex(1));
    }
}
