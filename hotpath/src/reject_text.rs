//! What the edges tell a person about an engine reject: a stable snake-case name (the last part
//! of the REST and control error codes) and a sentence. Kept beside the enum so that a new
//! reason cannot ship without both (the matches are exhaustive inside this crate).

use crate::event::RejectReason;

impl RejectReason {
    /// Stable snake-case name, e.g. `insufficient_balance`.
    pub const fn name(self) -> &'static str {
        use RejectReason as R;
        match self {
            R::UnknownAccount => "unknown_account",
            R::UnknownMarket => "unknown_market",
            R::UnknownCurrency => "unknown_currency",
            R::UnknownOrder => "unknown_order",
            R::MarketHalted => "market_halted",
            R::InsufficientBalance => "insufficient_balance",
            R::ZeroQty => "zero_volume",
            R::QtyTooLarge => "volume_too_large",
            R::InvalidPrice => "invalid_price",
            R::PriceOutOfBand => "price_out_of_band",
            R::NotionalTooLarge => "notional_too_large",
            R::TooManyOpenOrders => "open_orders_limit",
            R::RateLimited => "rate_limited",
            R::KillSwitchActive => "kill_switch_active",
            R::DuplicateClientOrderId => "duplicate_client_id",
            R::PostOnlyWouldTake => "post_only_would_take",
            R::FokNotFillable => "fok_not_fillable",
            R::InvalidOrderType => "invalid_type",
            R::BookFull => "book_full",
            R::OrderCapacity => "order_capacity",
            R::StopWouldTriggerNow => "stop_would_trigger_now",
            R::MarketExists => "market_exists",
            R::InvalidMarketSpec => "invalid_market_spec",
            R::CurrencyExists => "currency_exists",
            R::DuplicateWithdrawal => "duplicate_withdrawal",
            R::UnknownWithdrawal => "unknown_withdrawal",
            R::WithdrawalCapacity => "withdrawal_capacity",
            R::AmountOverflow => "amount_overflow",
            R::ZeroAmount => "zero_amount",
            R::InvalidFee => "invalid_fee",
            R::InvalidReplace => "invalid_replace",
            R::InvalidMarketSize => "invalid_market_size",
            R::CurrencyOutOfRange => "currency_out_of_range",
            R::DuplicateDeposit => "duplicate_deposit",
            R::IdempotencyKeyExpired => "idempotency_key_expired",
        }
    }

    /// One sentence for a person, without a trailing period.
    pub const fn message(self) -> &'static str {
        use RejectReason as R;
        match self {
            R::UnknownAccount => "the account does not exist",
            R::UnknownMarket => "the market does not exist",
            R::UnknownCurrency => "the currency does not exist",
            R::UnknownOrder => "no such open order of this account",
            R::MarketHalted => {
                "the market is halted: trading is paused until an operator resumes it"
            }
            R::InsufficientBalance => "the available balance is insufficient",
            R::ZeroQty => "the volume must be positive",
            R::QtyTooLarge => "the volume is above the market's maximum",
            R::InvalidPrice => "the price must be positive and at most the market's maximum",
            R::PriceOutOfBand => {
                "a buy above (or a sell below) the market's price band around its reference price"
            }
            R::NotionalTooLarge => "price times volume is above the market's maximum",
            R::TooManyOpenOrders => "the account has too many open orders",
            R::RateLimited => "orders are sent faster than the account's rate limit; slow down",
            R::KillSwitchActive => "trading is disabled for this account (kill switch)",
            R::DuplicateClientOrderId => "an open order of this account already has this client id",
            R::PostOnlyWouldTake => "the post-only order would have traded at once",
            R::FokNotFillable => "the fill-or-kill order cannot be filled completely",
            R::InvalidOrderType => "this order type and time in force do not go together",
            R::BookFull => "the book has no room for another price level",
            R::OrderCapacity => "the exchange has no room for another order; retry later",
            R::StopWouldTriggerNow => "the stop price is already reached",
            R::MarketExists => "a market with this id already exists",
            R::InvalidMarketSpec => "the market specification is invalid",
            R::CurrencyExists => "the currency is already registered",
            R::DuplicateWithdrawal => "this withdrawal id was used before",
            R::UnknownWithdrawal => "no such pending withdrawal",
            R::WithdrawalCapacity => "too many pending withdrawals",
            R::AmountOverflow => "the amount is too large for the balance to hold",
            R::ZeroAmount => "the amount must be positive",
            R::InvalidFee => "the fee tier or rate is invalid",
            R::InvalidReplace => "the replace changes nothing or targets a stop or market order",
            R::InvalidMarketSize => {
                "a quote amount is only for buys, and a stop-market buy needs one"
            }
            R::CurrencyOutOfRange => "the currency id is outside the configured range",
            R::DuplicateDeposit => "this deposit id was credited before",
            R::IdempotencyKeyExpired => {
                "the id is older than the oldest the exchange remembers, so it cannot be proven new"
            }
        }
    }
}
