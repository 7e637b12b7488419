//! The core's protocol-neutral vocabulary in `peregrine/2` terms: [`Notice`]s become session
//! [`Report`]s, core order statuses and submit errors become the protocol's. Every mapping is
//! total, so the wire never depends on how the core names things.

use peregrine_core::{
    CloseReason, Liquidity as CoreLiquidity, MarketNotice, Notice, OrderState as CoreState,
    OrderStatus as CoreStatus, SubmitError as CoreSubmitError,
};
use peregrine_proto::frame::{
    Cancelled, Fill, Liquidity, MarketSeq, OrderState, RejectCode, Replaced, Reply,
};
use peregrine_proto::session::{OrderStatus, Report, SubmitError};

/// The report a session sends for `notice`; `None` for notices sessions do not subscribe to.
pub(crate) fn report(notice: Notice) -> Option<Report> {
    Some(match notice {
        Notice::Accepted {
            seq,
            order,
            client_order_id,
        } => Report::Accepted {
            seq,
            order,
            client_order_id,
        },
        Notice::Rejected { seq, reason } => Report::Rejected {
            seq,
            code: RejectCode::engine(reason),
        },
        Notice::Fill(fill) => Report::Fill(Fill {
            seq: fill.seq,
            order: fill.order,
            client_order_id: fill.client_order_id,
            trade: fill.trade,
            market: fill.market,
            side: fill.side,
            liquidity: liquidity(fill.liquidity),
            price: fill.price,
            qty: fill.qty,
            fee: fill.fee,
        }),
        Notice::Cancelled {
            seq,
            order,
            client_order_id,
            remaining,
            reason,
        } => Report::Cancelled(Cancelled {
            seq,
            order,
            client_order_id,
            remaining,
            reason,
        }),
        Notice::Replaced {
            seq,
            order,
            client_order_id,
            price,
            qty,
            priority_kept,
        } => Report::Replaced(Replaced {
            seq,
            order,
            client_order_id,
            price,
            qty,
            priority_kept,
        }),
        Notice::MassCancelled { seq, count } => Report::MassCancelled { seq, count },
        Notice::Done { seq } => Report::Done { seq },
        Notice::Market(market) => Report::Market(market_reply(market)?),
        _ => return None,
    })
}

/// A market-data notice as the frame that carries it.
fn market_reply(notice: MarketNotice) -> Option<Reply> {
    Some(match notice {
        MarketNotice::Snapshot {
            market,
            market_seq,
            bids,
            asks,
        } => Reply::Snapshot {
            market,
            market_seq: MarketSeq(market_seq.0),
            bids,
            asks,
        },
        MarketNotice::BookLevel {
            market,
            market_seq,
            side,
            price,
            qty,
            snapshot,
        } => Reply::BookLevel {
            market,
            market_seq: MarketSeq(market_seq.0),
            side,
            price,
            qty,
            snapshot,
        },
        MarketNotice::Trade {
            market,
            market_seq,
            trade,
            price,
            qty,
            taker_side,
        } => Reply::Trade {
            market,
            market_seq: MarketSeq(market_seq.0),
            trade,
            price,
            qty,
            taker_side,
        },
        _ => return None,
    })
}

fn liquidity(liquidity: CoreLiquidity) -> Liquidity {
    match liquidity {
        CoreLiquidity::Maker => Liquidity::Maker,
        _ => Liquidity::Taker,
    }
}

/// Why the core ended a session's subscription, as the session's close code.
pub(crate) fn close_code(reason: CloseReason) -> RejectCode {
    match reason {
        CloseReason::ShuttingDown => RejectCode::SHUTTING_DOWN,
        // Lagged, or dropped by the core for any other reason: the session's reports stop,
        // so it must not stay open as if nothing was lost.
        _ => RejectCode::SLOW_CONSUMER,
    }
}

/// A core order status in protocol terms (None: the core knows no such order).
pub(crate) fn status(status: Option<CoreStatus>) -> OrderStatus {
    let Some(status) = status else {
        return OrderStatus::UNKNOWN;
    };
    OrderStatus {
        order: status.order,
        seq: status.seq,
        filled: status.filled,
        state: match status.state {
            CoreState::Sequenced => OrderState::Pending,
            CoreState::Open | CoreState::Untriggered => OrderState::Live,
            CoreState::Filled => OrderState::Filled,
            CoreState::Cancelled => OrderState::Cancelled,
            CoreState::Rejected => OrderState::Rejected,
            _ => OrderState::Unknown,
        },
        code: status.reject.map_or(RejectCode(0), RejectCode::engine),
    }
}

/// A core submit error in protocol terms.
pub(crate) fn submit_error(error: CoreSubmitError) -> SubmitError {
    match error {
        CoreSubmitError::Busy => SubmitError::Busy,
        CoreSubmitError::Duplicate(original) => SubmitError::Duplicate(status(Some(original))),
        _ => SubmitError::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use peregrine_hotpath::{OrderId, Qty, RejectReason};

    use super::*;

    #[test]
    fn statuses_keep_their_state_and_engine_code() {
        let core = CoreStatus {
            order: OrderId(7),
            seq: 3,
            filled: Qty(2),
            state: CoreState::Rejected,
            reject: Some(RejectReason::InsufficientBalance),
        };
        let wire = status(Some(core));
        assert_eq!(wire.state, OrderState::Rejected);
        assert_eq!(
            wire.code,
            RejectCode::engine(RejectReason::InsufficientBalance)
        );
        assert_eq!(status(None), OrderStatus::UNKNOWN);
    }

    #[test]
    fn lag_closes_as_a_slow_consumer_and_shutdown_as_shutting_down() {
        assert_eq!(close_code(CloseReason::Lagged), RejectCode::SLOW_CONSUMER);
        assert_eq!(
            close_code(CloseReason::ShuttingDown),
            RejectCode::SHUTTING_DOWN
        );
    }
}
