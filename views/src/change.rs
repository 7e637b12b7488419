//! What one event changed in the views, for the edges to fan out in order.

use peregrine_hotpath::{
    AccountId, Amount, ClientOrderId, CurrencyId, MarketId, OrderId, Price, Qty, Side, TradeId,
};

use crate::book::LevelChange;
use crate::order::OrderRecord;

/// A public trade, with the sequence of the book change it made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TradeChange {
    /// Market.
    pub market: MarketId,
    /// The book's sequence after the maker level's change this trade made.
    pub book_seq: u64,
    /// Trade id.
    pub trade: TradeId,
    /// Price.
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
    /// Quote minor units exchanged.
    pub quote_amount: Amount,
    /// The incoming order's side.
    pub taker_side: Side,
    /// Sequencer time of the command, Unix ns.
    pub ts_ns: u64,
}

/// One side of a trade, as its owner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct FillChange {
    /// Engine sequence of the command.
    pub seq: u64,
    /// Owner.
    pub account: AccountId,
    /// The owner's order.
    pub order: OrderId,
    /// Its client id (0 if it had none or is unknown).
    pub client_order_id: ClientOrderId,
    /// Trade id.
    pub trade: TradeId,
    /// Market.
    pub market: MarketId,
    /// The owner's side.
    pub side: Side,
    /// Whether the owner's order was resting.
    pub maker: bool,
    /// The incoming order's side.
    pub taker_side: Side,
    /// Price.
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
    /// Quote minor units exchanged.
    pub quote_amount: Amount,
    /// Fee charged to the owner.
    pub fee: Amount,
    /// Sequencer time of the command, Unix ns.
    pub ts_ns: u64,
}

/// One change, in the order the events made them.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[non_exhaustive]
pub enum Change {
    /// A book level's new total.
    Level {
        /// Market.
        market: MarketId,
        /// The change, with the book's new sequence.
        change: LevelChange,
    },
    /// A public trade (after the level change it made).
    Trade(TradeChange),
    /// A fill of one account's order.
    Fill(FillChange),
    /// An order's record after a command (once per command per order, after the command's
    /// other changes).
    Order(Box<OrderRecord>),
    /// A balance after a change.
    Balance {
        /// Account.
        account: AccountId,
        /// Currency.
        currency: CurrencyId,
        /// Free.
        available: Amount,
        /// Held.
        locked: Amount,
    },
    /// A market was halted or resumed.
    MarketState {
        /// Market.
        market: MarketId,
        /// Halted now.
        halted: bool,
    },
    /// Funds entered or left an account through a wallet (its balance change follows).
    Funds(FundsChange),
}

/// What a wallet did to an account's funds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[non_exhaustive]
pub enum FundsKind {
    /// A deposit was credited (`id` is its deposit id).
    Deposited,
    /// Funds were held for a withdrawal (`id` is the withdrawal's).
    WithdrawalHeld,
    /// The withdrawal left the exchange.
    WithdrawalSettled,
    /// The withdrawal's held funds returned to available.
    WithdrawalReleased,
}

impl FundsKind {
    /// Whether it is a withdrawal's step (else a deposit).
    pub fn is_withdrawal(self) -> bool {
        !matches!(self, FundsKind::Deposited)
    }
}

/// A deposit credited or a withdrawal's step, from the journaled command's event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct FundsChange {
    /// What happened.
    pub kind: FundsKind,
    /// The deposit's or the withdrawal's id.
    pub id: u64,
    /// Account.
    pub account: AccountId,
    /// Currency.
    pub currency: CurrencyId,
    /// Amount, minor units.
    pub amount: Amount,
    /// Sequencer time of the command, Unix ns.
    pub ts_ns: u64,
}
