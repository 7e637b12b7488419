//! The one table of what the edges tell about an engine reject: a snake-case name (the control
//! API's `reason`), a Peatio-style error code (REST's `errors`, the QUIC code's name the SDK
//! shows) and a sentence for a person. Every edge reads it from here, so they cannot disagree;
//! it sits beside the enum so that a new reason cannot ship without its text (the `match` is
//! exhaustive inside this crate).

use crate::event::RejectReason;

/// The text of one reject reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RejectText {
    /// Stable snake-case name, e.g. `insufficient_balance`; unique per reason.
    pub name: &'static str,
    /// Stable Peatio-style code, `scope.subject.reason` (`server.capacity` for the exchange's own
    /// capacity), e.g.
    /// `market.account.insufficient_balance` (Peatio's own where Peatio has one). Reasons a
    /// client cannot act on differently share one (`market.order.invalid_volume` for a zero and
    /// a too large volume); operator commands' reasons are `admin.*`.
    pub code: &'static str,
    /// One sentence for a person, without a trailing period.
    pub message: &'static str,
}

const fn text(name: &'static str, code: &'static str, message: &'static str) -> RejectText {
    RejectText {
        name,
        code,
        message,
    }
}

impl RejectReason {
    /// Every reason, in code order (code `i + 1` at index `i`). A new reason goes at the end.
    pub const ALL: [RejectReason; 36] = {
        use RejectReason as R;
        [
            R::UnknownAccount,
            R::UnknownMarket,
            R::UnknownCurrency,
            R::UnknownOrder,
            R::MarketHalted,
            R::InsufficientBalance,
            R::ZeroQty,
            R::QtyTooLarge,
            R::InvalidPrice,
            R::PriceOutOfBand,
            R::NotionalTooLarge,
            R::TooManyOpenOrders,
            R::RateLimited,
            R::KillSwitchActive,
            R::DuplicateClientOrderId,
            R::PostOnlyWouldTake,
            R::FokNotFillable,
            R::InvalidOrderType,
            R::BookFull,
            R::OrderCapacity,
            R::StopWouldTriggerNow,
            R::MarketExists,
            R::InvalidMarketSpec,
            R::CurrencyExists,
            R::DuplicateWithdrawal,
            R::UnknownWithdrawal,
            R::WithdrawalCapacity,
            R::AmountOverflow,
            R::ZeroAmount,
            R::InvalidFee,
            R::InvalidReplace,
            R::InvalidMarketSize,
            R::CurrencyOutOfRange,
            R::DuplicateDeposit,
            R::IdempotencyKeyExpired,
            R::MarketDisabled,
        ]
    };

    /// The reason of wire code `code`, if this release knows it.
    pub const fn from_code(code: u16) -> Option<RejectReason> {
        let index = code as usize;
        if index == 0 || index > RejectReason::ALL.len() {
            return None;
        }
        Some(RejectReason::ALL[index - 1])
    }

    /// Its name, code and message.
    pub const fn text(self) -> RejectText {
        use RejectReason as R;
        match self {
            R::UnknownAccount => text(
                "unknown_account",
                "market.account.doesnt_exist",
                "the account does not exist",
            ),
            R::UnknownMarket => text(
                "unknown_market",
                "market.market.doesnt_exist",
                "the market does not exist",
            ),
            R::UnknownCurrency => text(
                "unknown_currency",
                "market.currency.doesnt_exist",
                "the currency does not exist",
            ),
            R::UnknownOrder => text(
                "unknown_order",
                "market.order.not_found",
                "no such open order of this account",
            ),
            R::MarketHalted => text(
                "market_halted",
                "market.order.market_halted",
                "the market is halted: trading is paused until an operator resumes it",
            ),
            R::InsufficientBalance => text(
                "insufficient_balance",
                "market.account.insufficient_balance",
                "the available balance is insufficient",
            ),
            R::ZeroQty => text(
                "zero_volume",
                "market.order.invalid_volume",
                "the volume must be positive",
            ),
            R::QtyTooLarge => text(
                "volume_too_large",
                "market.order.invalid_volume",
                "the volume is above the market's maximum",
            ),
            R::InvalidPrice => text(
                "invalid_price",
                "market.order.invalid_price",
                "the price must be positive and at most the market's maximum",
            ),
            R::PriceOutOfBand => text(
                "price_out_of_band",
                "market.order.invalid_price",
                "a buy above (or a sell below) the market's price band around its reference price",
            ),
            R::NotionalTooLarge => text(
                "notional_too_large",
                "market.order.notional_too_large",
                "price times volume is above the market's maximum",
            ),
            R::TooManyOpenOrders => text(
                "open_orders_limit",
                "market.order.open_orders_limit",
                "the account has too many open orders",
            ),
            R::RateLimited => text(
                "rate_limited",
                "market.order.rate_limited",
                "orders are sent faster than the account's rate limit; slow down",
            ),
            R::KillSwitchActive => text(
                "kill_switch_active",
                "market.trade.not_permitted",
                "trading is disabled for this account (kill switch)",
            ),
            R::DuplicateClientOrderId => text(
                "duplicate_client_id",
                "market.order.duplicate_client_id",
                "an open order of this account already has this client id",
            ),
            R::PostOnlyWouldTake => text(
                "post_only_would_take",
                "market.order.post_only_would_take",
                "the post-only order would have traded at once",
            ),
            R::FokNotFillable => text(
                "fok_not_fillable",
                "market.order.fok_not_fillable",
                "the fill-or-kill order cannot be filled completely",
            ),
            R::InvalidOrderType => text(
                "invalid_type",
                "market.order.invalid_type",
                "this order type and time in force do not go together",
            ),
            R::BookFull => text(
                "book_full",
                "server.capacity",
                "the book has no room for another price level",
            ),
            R::OrderCapacity => text(
                "order_capacity",
                "server.capacity",
                "the exchange has no room for another order; retry later",
            ),
            R::StopWouldTriggerNow => text(
                "stop_would_trigger_now",
                "market.order.stop_would_trigger",
                "the stop price is already reached",
            ),
            R::MarketExists => text(
                "market_exists",
                "admin.market.exists",
                "a market with this id already exists",
            ),
            R::InvalidMarketSpec => text(
                "invalid_market_spec",
                "admin.market.invalid_spec",
                "the market specification is invalid",
            ),
            R::CurrencyExists => text(
                "currency_exists",
                "admin.currency.exists",
                "the currency is already registered",
            ),
            R::DuplicateWithdrawal => text(
                "duplicate_withdrawal",
                "admin.withdrawal.duplicate",
                "this withdrawal id was used before",
            ),
            R::UnknownWithdrawal => text(
                "unknown_withdrawal",
                "admin.withdrawal.doesnt_exist",
                "no such pending withdrawal",
            ),
            R::WithdrawalCapacity => text(
                "withdrawal_capacity",
                "admin.withdrawal.capacity",
                "too many pending withdrawals",
            ),
            R::AmountOverflow => text(
                "amount_overflow",
                "market.amount.overflow",
                "the amount is too large for the balance to hold",
            ),
            R::ZeroAmount => text(
                "zero_amount",
                "admin.amount.zero",
                "the amount must be positive",
            ),
            R::InvalidFee => text(
                "invalid_fee",
                "admin.fee.invalid",
                "the fee tier or rate is invalid",
            ),
            R::InvalidReplace => text(
                "invalid_replace",
                "market.order.invalid_replace",
                "the replace changes nothing or targets a stop or market order",
            ),
            R::InvalidMarketSize => text(
                "invalid_market_size",
                "market.order.invalid_type",
                "a quote amount is only for buys, and a stop-market buy needs one",
            ),
            R::CurrencyOutOfRange => text(
                "currency_out_of_range",
                "admin.currency.out_of_range",
                "the currency id is outside the configured range",
            ),
            R::DuplicateDeposit => text(
                "duplicate_deposit",
                "admin.deposit.duplicate",
                "this deposit id was credited before",
            ),
            R::IdempotencyKeyExpired => text(
                "idempotency_key_expired",
                "admin.idempotency_key.expired",
                "the id is older than the oldest the exchange remembers, so it cannot be proven new",
            ),
            R::MarketDisabled => text(
                "market_disabled",
                "market.order.market_disabled",
                "the market is disabled: it takes no new orders, only cancels",
            ),
        }
    }

    /// Stable snake-case name, e.g. `insufficient_balance` (the control API's `reason`).
    pub const fn name(self) -> &'static str {
        self.text().name
    }

    /// Stable Peatio-style error code, e.g. `market.account.insufficient_balance` (REST's
    /// `errors`, the SDK's name of the QUIC reject code).
    pub const fn error_code(self) -> &'static str {
        self.text().code
    }

    /// One sentence for a person, without a trailing period.
    pub const fn message(self) -> &'static str {
        self.text().message
    }
}

// `ALL` lists every code from 1 without a gap, so `from_code` is an index.
const _: () = {
    let mut i = 0;
    while i < RejectReason::ALL.len() {
        assert!(RejectReason::ALL[i].code() as usize == i + 1);
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_unique_name_a_scoped_code_and_a_message() {
        let mut names = std::collections::HashSet::new();
        for reason in RejectReason::ALL {
            let RejectText {
                name,
                code,
                message,
            } = reason.text();
            assert!(names.insert(name), "{reason:?}: name {name} twice");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{reason:?}: {name}"
            );
            // `scope.subject.reason`, or `server.<reason>` for the exchange's own limits.
            let parts = code.split('.').count();
            assert!(
                parts == 3 || code.starts_with("server."),
                "{reason:?}: {code}"
            );
            assert!(parts >= 2, "{reason:?}: {code}");
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.'),
                "{reason:?}: {code}"
            );
            assert!(!message.is_empty() && !message.ends_with('.'), "{reason:?}");
            assert_eq!(RejectReason::from_code(reason.code()), Some(reason));
        }
        assert_eq!(RejectReason::from_code(0), None);
        assert_eq!(RejectReason::from_code(37), None);
    }
}
