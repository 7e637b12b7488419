//! What a subscription hears: [`Notice`]s, in the protocol-neutral vocabulary of the engine.
//! Edges (the QUIC server, the REST bridge) translate them into their own frames.

use std::sync::Arc;

use peregrine_hotpath::{
    CancelReason, ClientOrderId, MarketId, OrderId, Price, Qty, RejectReason, Side, TradeId,
};

use crate::request::Executed;

/// `book` as notices: a snapshot header, then every level, best first on both sides, all at
/// the book's sequence.
pub(crate) fn book_snapshot(market: MarketId, book: &peregrine_views::Book) -> Vec<MarketNotice> {
    let levels = book.snapshot(usize::MAX, usize::MAX);
    let market_seq = MarketSeq(levels.sequence);
    let mut notices = Vec::with_capacity(1 + levels.bids.len() + levels.asks.len());
    notices.push(MarketNotice::Snapshot {
        market,
        market_seq,
        bids: u32::try_from(levels.bids.len()).unwrap_or(u32::MAX),
        asks: u32::try_from(levels.asks.len()).unwrap_or(u32::MAX),
    });
    let level = |side, (price, qty): &(Price, Qty)| MarketNotice::BookLevel {
        market,
        market_seq,
        side,
        price: *price,
        qty: *qty,
        snapshot: true,
    };
    notices.extend(levels.bids.iter().map(|l| level(Side::Buy, l)));
    notices.extend(levels.asks.iter().map(|l| level(Side::Sell, l)));
    notices
}

/// A market's book sequence (the views' one book): each level change increments it by one, so
/// a gap means a lost notice and the subscriber resyncs from a snapshot. A trade carries the
/// sequence of the maker level's change it made (sent just before it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MarketSeq(pub u64);

/// Maker or taker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Liquidity {
    /// The order was resting.
    Maker,
    /// The order was incoming.
    Taker,
}

/// One side of a trade, as its owner hears it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    /// Engine sequence.
    pub seq: u64,
    /// Exchange id of the owner's order.
    pub order: OrderId,
    /// Its client id (0 if not tracked).
    pub client_order_id: ClientOrderId,
    /// Trade id.
    pub trade: TradeId,
    /// Market.
    pub market: MarketId,
    /// The owner's side.
    pub side: Side,
    /// Maker or taker.
    pub liquidity: Liquidity,
    /// Price.
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
    /// Fee charged, in the fee currency's minor units.
    pub fee: u64,
}

/// Market data of one market (subscriptions that follow it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MarketNotice {
    /// The start of a snapshot: `bids` then `asks` snapshot levels follow, best first.
    Snapshot {
        /// Market.
        market: MarketId,
        /// Market-data sequence the snapshot is at.
        market_seq: MarketSeq,
        /// Bid levels that follow.
        bids: u32,
        /// Ask levels that follow.
        asks: u32,
    },
    /// A level's new total (0: the level is gone).
    BookLevel {
        /// Market.
        market: MarketId,
        /// Market-data sequence.
        market_seq: MarketSeq,
        /// Side.
        side: Side,
        /// Price.
        price: Price,
        /// Total quantity now at the level.
        qty: Qty,
        /// Part of a snapshot (else a delta).
        snapshot: bool,
    },
    /// A trade.
    Trade {
        /// Market.
        market: MarketId,
        /// Market-data sequence.
        market_seq: MarketSeq,
        /// Trade id.
        trade: TradeId,
        /// Price.
        price: Price,
        /// Quantity.
        qty: Qty,
        /// The incoming order's side.
        taker_side: Side,
    },
}

/// One item of a subscription, in sequence order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A new order of the account was accepted.
    Accepted {
        /// Engine sequence.
        seq: u64,
        /// Exchange id.
        order: OrderId,
        /// Client id.
        client_order_id: ClientOrderId,
    },
    /// A command submitted with `reply_to` this subscription was rejected by the engine.
    Rejected {
        /// Engine sequence.
        seq: u64,
        /// Why.
        reason: RejectReason,
    },
    /// An order of the account traded.
    Fill(Fill),
    /// An order of the account was cancelled.
    Cancelled {
        /// Engine sequence.
        seq: u64,
        /// Exchange id.
        order: OrderId,
        /// Client id.
        client_order_id: ClientOrderId,
        /// Quantity left unfilled.
        remaining: Qty,
        /// Why.
        reason: CancelReason,
    },
    /// An order of the account was replaced.
    Replaced {
        /// Engine sequence.
        seq: u64,
        /// Exchange id.
        order: OrderId,
        /// Client id.
        client_order_id: ClientOrderId,
        /// New price.
        price: Price,
        /// New quantity.
        qty: Qty,
        /// Whether the order kept its time priority.
        priority_kept: bool,
    },
    /// A mass cancel of the account finished.
    MassCancelled {
        /// Engine sequence.
        seq: u64,
        /// Orders cancelled.
        count: u32,
    },
    /// A command submitted with `reply_to` this subscription is complete (after its other
    /// notices).
    Done {
        /// Engine sequence.
        seq: u64,
    },
    /// Market data of a followed market.
    Market(MarketNotice),
    /// A command's every event ([`crate::Interest::Executed`]).
    Executed(Arc<Executed>),
}
