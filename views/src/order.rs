//! The one order record: what the command asked for (type, time in force, trigger, size) and
//! what its events did to it (state, fills, average price), kept by [`crate::Views`] and read
//! by every edge — QUIC status, REST memory — in the same shape.

use peregrine_hotpath::{
    AccountId, Amount, CancelReason, ClientOrderId, MarketId, MarketSize, NewOrder, OrderId,
    OrderKind, Price, Qty, RejectReason, Side, TimeInForce,
};

/// The type of an order, as its command asked for it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[non_exhaustive]
pub enum OrderType {
    /// Limit.
    Limit,
    /// Market.
    Market,
    /// Stop-limit.
    StopLimit,
    /// Stop-market.
    StopMarket,
}

/// Where an order stands.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[non_exhaustive]
pub enum OrderState {
    /// Sequenced, outcome not yet known (only between submission and the engine's answer).
    Sequenced,
    /// Refused by the engine; nothing was placed.
    Rejected,
    /// A stop order waiting for its trigger.
    Untriggered,
    /// Open: resting in the book, or being matched.
    Open,
    /// Fully filled.
    Filled,
    /// Cancelled, possibly after partial fills.
    Cancelled,
}

impl OrderState {
    /// Whether nothing more can happen to the order.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderState::Rejected | OrderState::Filled | OrderState::Cancelled
        )
    }
}

/// What the command asked for: the parts of an order no event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OrderTerms {
    /// Type.
    pub kind: OrderType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Stop trigger (stop orders only).
    pub trigger: Option<Price>,
    /// Limit price (limit and stop-limit orders only; a market order has none).
    pub limit: Option<Price>,
    /// Quote budget of a market buy by budget.
    pub budget: Option<Amount>,
}

impl OrderTerms {
    /// The terms of `order`'s command.
    pub fn of(order: &NewOrder) -> OrderTerms {
        let (kind, trigger, limit, size) = match order.kind {
            OrderKind::Limit { price, .. } => (OrderType::Limit, None, Some(price), None),
            OrderKind::Market { size } => (OrderType::Market, None, None, Some(size)),
            OrderKind::StopLimit { trigger, price, .. } => {
                (OrderType::StopLimit, Some(trigger), Some(price), None)
            }
            OrderKind::StopMarket { trigger, size } => {
                (OrderType::StopMarket, Some(trigger), None, Some(size))
            }
            // A kind newer than these views: shown as a limit order with no price until the
            // views learn it.
            _ => (OrderType::Limit, None, None, None),
        };
        let budget = match size {
            Some(MarketSize::QuoteBudget(budget)) => Some(budget),
            _ => None,
        };
        OrderTerms {
            kind,
            tif: order.tif,
            trigger,
            limit,
            budget,
        }
    }

    /// The terms assumed for an order whose command the views did not see (an order accepted
    /// before the views started): a good-till-cancelled limit at its accepted price.
    pub fn assumed(price: Price) -> OrderTerms {
        OrderTerms {
            kind: OrderType::Limit,
            tif: TimeInForce::Gtc,
            trigger: None,
            limit: Some(price),
            budget: None,
        }
    }
}

/// One order, from its command and every event about it.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OrderRecord {
    /// Exchange id (0 until accepted; stays 0 for a rejected order).
    pub id: OrderId,
    /// Sequence of the command that placed it.
    pub seq: u64,
    /// Owner.
    pub account: AccountId,
    /// Market.
    pub market: MarketId,
    /// Client id.
    pub client_order_id: ClientOrderId,
    /// Side.
    pub side: Side,
    /// What the command asked for.
    pub terms: OrderTerms,
    /// The price it rests or would rest at (limit price; for a market order the engine's
    /// protection price, which is never shown as the order's price).
    pub price: Price,
    /// Original quantity plus later increases (0 for a market buy by budget).
    pub origin_qty: Qty,
    /// Quantity still open (what was open when cancelled, for a cancelled order).
    pub remaining_qty: Qty,
    /// Quantity filled.
    pub executed_qty: Qty,
    /// Sum of price × qty over fills, in ticks × lots (for the average price).
    pub executed_tick_lots: u128,
    /// Fills.
    pub trades_count: u32,
    /// Whether it ever rested in the book (only then does its cancel change a book level).
    pub rested: bool,
    /// State.
    pub state: OrderState,
    /// Why the engine refused it.
    pub reject: Option<RejectReason>,
    /// Why it was cancelled.
    pub cancel: Option<CancelReason>,
    /// Sequencer time of the command, Unix ns.
    pub created_ns: u64,
    /// Sequencer time of the last change, Unix ns.
    pub updated_ns: u64,
}

impl OrderRecord {
    /// A freshly sequenced order, outcome unknown.
    pub fn sequenced(seq: u64, ts_ns: u64, order: &NewOrder) -> OrderRecord {
        OrderRecord {
            id: OrderId(0),
            seq,
            account: order.account,
            market: order.market,
            client_order_id: order.client_order_id,
            side: order.side,
            terms: OrderTerms::of(order),
            price: Price(0),
            origin_qty: Qty(0),
            remaining_qty: Qty(0),
            executed_qty: Qty(0),
            executed_tick_lots: 0,
            trades_count: 0,
            rested: false,
            state: OrderState::Sequenced,
            reject: None,
            cancel: None,
            created_ns: ts_ns,
            updated_ns: ts_ns,
        }
    }

    /// The limit price to show: none for market and stop-market orders.
    pub fn shown_price(&self) -> Option<Price> {
        self.terms.limit
    }

    /// Average fill price in ticks, rounded down (None before the first fill).
    pub fn average_price_ticks(&self) -> Option<u128> {
        (self.executed_qty.0 > 0).then(|| self.executed_tick_lots / u128::from(self.executed_qty.0))
    }
}

#[cfg(test)]
mod tests {
    use peregrine_hotpath::SelfTradePrevention;

    use super::*;

    fn order(kind: OrderKind, tif: TimeInForce) -> NewOrder {
        NewOrder {
            account: AccountId(1),
            market: MarketId(0),
            client_order_id: ClientOrderId(7),
            side: Side::Buy,
            kind,
            tif,
            stp: SelfTradePrevention::CancelNewest,
        }
    }

    #[test]
    fn terms_come_from_the_command_and_a_market_order_shows_no_price() {
        let stop = OrderTerms::of(&order(
            OrderKind::StopLimit {
                trigger: Price(90),
                price: Price(95),
                qty: Qty(1),
            },
            TimeInForce::Ioc,
        ));
        assert_eq!(
            (stop.kind, stop.tif, stop.trigger, stop.limit),
            (
                OrderType::StopLimit,
                TimeInForce::Ioc,
                Some(Price(90)),
                Some(Price(95))
            )
        );
        let market = order(
            OrderKind::Market {
                size: MarketSize::QuoteBudget(Amount(500)),
            },
            TimeInForce::Ioc,
        );
        let record = OrderRecord::sequenced(3, 9, &market);
        assert_eq!(record.shown_price(), None);
        assert_eq!(record.terms.budget, Some(Amount(500)));
        assert_eq!(record.state, OrderState::Sequenced);
        assert!(!record.state.is_final());
    }
}
