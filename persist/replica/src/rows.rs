//! The rows of one batch, table by table, typed: what the mapper produces and the statement
//! builder writes. Tables keyed by an engine id that change over time (orders, markets,
//! accounts) are coalesced per batch, so a row is written once per batch with its last state.

use std::collections::BTreeMap;

use peregrine_hotpath::{
    AccountId, Amount, ClientOrderId, CurrencyId, DepositId, FeeRates, MarketId, MarketRisk,
    MarketSpec, OrderId, Price, Qty, Side, Trade, WithdrawalId,
};
use peregrine_persist::Seq;

/// A currency registered in this batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrencyRow {
    /// Which.
    pub currency: CurrencyId,
    /// Decimal places of its minor unit, when the configuration knows them.
    pub scale: Option<u8>,
    /// The command that added it.
    pub added_seq: Seq,
}

/// A market added in this batch, with its state at the end of the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketRow {
    /// The specification it was added with (risk updated by later commands of the batch).
    pub spec: MarketSpec,
    /// Halted at the end of the batch.
    pub halted: bool,
    /// The command that added it.
    pub added_seq: Seq,
    /// The last command that changed it.
    pub updated_seq: Seq,
}

/// A change to a market added in an earlier batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketChange<T> {
    /// The new value.
    pub value: T,
    /// The command that made it.
    pub updated_seq: Seq,
}

/// What an order's state is after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OrderStatus {
    /// Resting in the book.
    Open,
    /// A stop waiting for its trigger.
    PendingStop,
    /// Fully filled.
    Filled,
    /// Cancelled (by its owner, a mass cancel, the kill switch, IOC/market remainder, ...).
    Cancelled,
}

impl OrderStatus {
    /// The value of `orders.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::PendingStop => "pending_stop",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// The status whose `orders.status` value is `text`.
    pub fn parse(text: &str) -> Option<OrderStatus> {
        [
            OrderStatus::Open,
            OrderStatus::PendingStop,
            OrderStatus::Filled,
            OrderStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// An order's changing columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderState {
    /// Status.
    pub status: OrderStatus,
    /// Current limit price.
    pub price: Price,
    /// Quantity still open (0 once filled; what was left when cancelled).
    pub open_qty: Qty,
    /// The last command that changed it.
    pub updated_seq: Seq,
}

/// An order accepted in this batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRow {
    /// Engine's id.
    pub order: OrderId,
    /// Owner.
    pub account: AccountId,
    /// Market.
    pub market: MarketId,
    /// Client's id.
    pub client_order_id: ClientOrderId,
    /// Side.
    pub side: Side,
    /// `limit`, `market`, `stop_limit`, `stop_market` (from the command; `None` if unknown).
    pub order_type: Option<&'static str>,
    /// `gtc`, `ioc`, `fok`, `post_only`.
    pub time_in_force: Option<&'static str>,
    /// Stop trigger.
    pub trigger_price: Option<Price>,
    /// Quote budget of a market buy by budget.
    pub quote_budget: Option<Amount>,
    /// Price at acceptance.
    pub accepted_price: Price,
    /// Quantity at acceptance.
    pub accepted_qty: Qty,
    /// State at the end of the batch.
    pub state: OrderState,
    /// The command that placed it.
    pub created_seq: Seq,
    /// Its timestamp.
    pub created_ts_ns: u64,
}

/// One step in an order's life (the history table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderEventRow {
    /// The command.
    pub seq: Seq,
    /// Position of the event in the command's events.
    pub event_index: u32,
    /// Which order.
    pub order: OrderId,
    /// `accepted`, `rested`, `triggered`, `filled`, `cancelled`, `replaced`.
    pub kind: &'static str,
    /// Price the event carries (0 if none).
    pub price: Price,
    /// Quantity the event carries (0 if none).
    pub qty: Qty,
    /// Why it was cancelled.
    pub reason: Option<&'static str>,
    /// The command's timestamp.
    pub ts_ns: u64,
}

/// A trade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradeRow {
    /// The command.
    pub seq: Seq,
    /// The trade as the engine emitted it.
    pub trade: Trade,
    /// The command's timestamp.
    pub ts_ns: u64,
}

/// Who a ledger entry moves money for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Party {
    /// A balance cell of an account.
    Account(AccountId),
    /// The world outside the exchange: deposits come from it, settled withdrawals go to it.
    External,
    /// Fees collected by the exchange.
    Fees,
}

impl Party {
    /// The value of `ledger_entries.party`.
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Account(_) => "account",
            Party::External => "external",
            Party::Fees => "fees",
        }
    }
}

/// One balance movement. The entries of one (seq, currency) sum to zero (double entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRow {
    /// The command that moved it.
    pub seq: Seq,
    /// Position among the command's entries.
    pub entry_index: u32,
    /// Whose.
    pub party: Party,
    /// Currency.
    pub currency: CurrencyId,
    /// Change of the available amount.
    pub available_delta: i128,
    /// Change of the locked amount.
    pub locked_delta: i128,
    /// Available after (account cells only).
    pub available_after: Option<Amount>,
    /// Locked after (account cells only).
    pub locked_after: Option<Amount>,
    /// The command kind that caused it (`new_order`, `deposit`, ...).
    pub cause: &'static str,
    /// The command's timestamp.
    pub ts_ns: u64,
}

/// A credited deposit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepositRow {
    /// The command.
    pub seq: Seq,
    /// The wallet service's id.
    pub deposit: DepositId,
    /// Account.
    pub account: AccountId,
    /// Currency.
    pub currency: CurrencyId,
    /// Amount.
    pub amount: Amount,
    /// The command's timestamp.
    pub ts_ns: u64,
}

/// A withdrawal step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawalRow {
    /// The command.
    pub seq: Seq,
    /// The wallet service's id.
    pub withdrawal: WithdrawalId,
    /// Account.
    pub account: AccountId,
    /// Currency.
    pub currency: CurrencyId,
    /// Amount.
    pub amount: Amount,
    /// `held`, `settled`, `released`.
    pub state: &'static str,
    /// The command's timestamp.
    pub ts_ns: u64,
}

/// Everything one transaction writes, for the commands `first_seq..=last_seq`.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// First command (0 while empty).
    pub first_seq: Seq,
    /// Last command; the high-water mark once committed.
    pub last_seq: Seq,
    /// Timestamp of the first command (for the lag in seconds).
    pub first_ts_ns: u64,
    /// Timestamp of the last command.
    pub last_ts_ns: u64,
    /// Commands in the batch.
    pub commands_count: usize,
    /// Events the follower emitted for them.
    pub events_count: usize,
    /// Currencies added.
    pub currencies: Vec<CurrencyRow>,
    /// Markets added.
    pub markets_new: BTreeMap<MarketId, MarketRow>,
    /// Risk changes of older markets.
    pub market_risks: BTreeMap<MarketId, MarketChange<MarketRisk>>,
    /// Halts and resumes of older markets.
    pub market_halts: BTreeMap<MarketId, MarketChange<bool>>,
    /// Fee tiers set.
    pub fee_tiers: BTreeMap<(MarketId, u8), MarketChange<FeeRates>>,
    /// Accounts this replicator has not written yet, with the first command that touched them.
    pub accounts_new: BTreeMap<AccountId, Seq>,
    /// Fee tier changes.
    pub account_tiers: BTreeMap<AccountId, MarketChange<u8>>,
    /// Kill switch changes.
    pub account_kills: BTreeMap<AccountId, MarketChange<bool>>,
    /// Orders accepted in this batch.
    pub orders_new: BTreeMap<OrderId, OrderRow>,
    /// State changes of orders accepted earlier.
    pub order_states: BTreeMap<OrderId, OrderState>,
    /// Order history.
    pub order_events: Vec<OrderEventRow>,
    /// Trades.
    pub trades: Vec<TradeRow>,
    /// Ledger entries.
    pub ledger: Vec<LedgerRow>,
    /// Deposits.
    pub deposits: Vec<DepositRow>,
    /// Withdrawal steps.
    pub withdrawals: Vec<WithdrawalRow>,
}

impl Batch {
    /// Rows the batch writes (one per row of every table, high-water mark excluded).
    pub fn rows_count(&self) -> usize {
        self.currencies.len()
            + self.markets_new.len()
            + self.market_risks.len()
            + self.market_halts.len()
            + self.fee_tiers.len()
            + self.accounts_new.len()
            + self.account_tiers.len()
            + self.account_kills.len()
            + self.orders_new.len()
            + self.order_states.len()
            + self.order_events.len()
            + self.trades.len()
            + self.ledger.len()
            + self.deposits.len()
            + self.withdrawals.len()
    }

    /// Whether it holds no command.
    pub fn is_empty(&self) -> bool {
        self.commands_count == 0
    }
}
