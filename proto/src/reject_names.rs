//! Names and human messages of reject and close codes, so clients show
//! `the key already has its allowed number of sessions (quic.session_limit)` instead of `1009`.
//! Names are Peatio-style (`scope.subject.reason`) and stable; messages may be reworded.

use crate::frame::RejectCode;

/// Name and message of each engine reason code (1..=999), by code.
const ENGINE: &[(u16, &str, &str)] = &[
    (1, "market.account.unknown", "the account is unknown"),
    (2, "market.market.doesnt_exist", "no such market"),
    (3, "market.currency.doesnt_exist", "no such currency"),
    (4, "market.order.not_found", "no such order"),
    (5, "market.halted", "the market is halted"),
    (
        6,
        "market.account.insufficient_balance",
        "insufficient balance",
    ),
    (7, "market.order.invalid_volume", "the quantity is zero"),
    (
        8,
        "market.order.invalid_volume",
        "the quantity is too large",
    ),
    (9, "market.order.invalid_price", "the price is not valid"),
    (
        10,
        "market.order.invalid_price",
        "the price is outside the market's band",
    ),
    (
        11,
        "market.order.notional_too_large",
        "the order's notional is too large",
    ),
    (
        12,
        "market.order.too_many_open_orders",
        "too many open orders",
    ),
    (
        13,
        "market.order.rate_limited",
        "the account's order rate is exceeded",
    ),
    (
        14,
        "market.account.kill_switch",
        "the account's kill switch is on",
    ),
    (
        15,
        "market.order.duplicate_client_id",
        "the client order id was used before",
    ),
    (
        16,
        "market.order.post_only_would_take",
        "a post-only order would take liquidity",
    ),
    (
        17,
        "market.order.fok_not_fillable",
        "a fill-or-kill order cannot fill in full",
    ),
    (
        18,
        "market.order.invalid_type",
        "the order type is not valid here",
    ),
    (19, "server.capacity", "the order book is full"),
    (
        20,
        "server.capacity",
        "the engine's order capacity is reached",
    ),
    (
        21,
        "market.order.stop_would_trigger",
        "the stop would trigger at once",
    ),
    (28, "market.amount.overflow", "an amount overflows"),
    (
        31,
        "market.order.invalid_replace",
        "the replace is not valid for this order",
    ),
    (
        32,
        "market.order.invalid_type",
        "the market order's size is not valid",
    ),
];

/// Name and message of each gateway code (1000 and up), by code.
const GATEWAY: &[(RejectCode, &str, &str)] = &[
    (RejectCode::BUSY, "server.busy", "the engine is busy: retry"),
    (
        RejectCode::RATE_LIMITED,
        "quic.rate_limited",
        "the session's message rate is exceeded",
    ),
    (
        RejectCode::TOO_MANY_IN_FLIGHT,
        "quic.too_many_in_flight",
        "too many requests await an answer",
    ),
    (
        RejectCode::MALFORMED,
        "quic.frame.malformed",
        "a frame could not be parsed",
    ),
    (
        RejectCode::FRAME_TOO_LARGE,
        "quic.frame.too_large",
        "a frame is too large",
    ),
    (
        RejectCode::NOT_LOGGED_ON,
        "quic.session.not_logged_on",
        "the request needs a logon first",
    ),
    (
        RejectCode::UNKNOWN_KEY,
        "quic.key.unknown",
        "the key id is not registered",
    ),
    (
        RejectCode::BAD_SIGNATURE,
        "quic.key.bad_signature",
        "the logon signature does not verify",
    ),
    (
        RejectCode::SESSION_LIMIT,
        "quic.session.limit",
        "the key already has its allowed number of sessions",
    ),
    (
        RejectCode::UNSUPPORTED_VERSION,
        "quic.frame.unsupported_version",
        "unsupported protocol version",
    ),
    (
        RejectCode::UNEXPECTED,
        "quic.session.unexpected",
        "the request is not valid now",
    ),
    (
        RejectCode::TOO_MANY_SUBSCRIPTIONS,
        "quic.subscription.too_many",
        "too many market-data subscriptions",
    ),
    (
        RejectCode::ABUSE,
        "quic.session.abuse",
        "too many limit violations in a row",
    ),
    (
        RejectCode::SLOW_CONSUMER,
        "quic.session.slow_consumer",
        "the client did not keep up with its reports",
    ),
    (
        RejectCode::SHUTTING_DOWN,
        "server.shutting_down",
        "the gateway is shutting down",
    ),
    (
        RejectCode::IDLE_TIMEOUT,
        "quic.session.idle_timeout",
        "nothing was received within the idle timeout",
    ),
    (
        RejectCode::DUPLICATE,
        "market.order.duplicate_client_id",
        "the client order id was used before",
    ),
    (
        RejectCode::UNKNOWN_MARKET,
        "market.market.doesnt_exist",
        "no such market",
    ),
    (
        RejectCode::LOGOUT,
        "quic.session.logout",
        "the client logged out",
    ),
    (
        RejectCode::UNAVAILABLE,
        "server.unavailable",
        "the exchange cannot take commands now",
    ),
    (
        RejectCode::UNKNOWN_CURRENCY,
        "market.currency.doesnt_exist",
        "no such currency",
    ),
];

impl RejectCode {
    /// The stable Peatio-style name, e.g. `quic.session.limit`; `unknown` for a code this
    /// release does not know (a newer server).
    pub fn name(self) -> &'static str {
        self.entry().map_or("unknown", |(name, _)| name)
    }

    /// A human message, e.g. `the key already has its allowed number of sessions`.
    pub fn message(self) -> &'static str {
        self.entry()
            .map_or("unknown reject code", |(_, message)| message)
    }

    fn entry(self) -> Option<(&'static str, &'static str)> {
        if self.is_engine() {
            ENGINE.iter().find(|(code, ..)| *code == self.0).map_or(
                // Engine codes of administrative commands, never sent to a trading client.
                Some(("market.order.rejected", "rejected by the engine")),
                |(_, name, message)| Some((*name, *message)),
            )
        } else {
            GATEWAY
                .iter()
                .find(|(code, ..)| *code == self)
                .map(|(_, name, message)| (*name, *message))
        }
    }
}

impl std::fmt::Display for RejectCode {
    /// `message (name)`; the number only for a code this release does not know.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.entry() {
            Some((name, message)) => write!(f, "{message} ({name})"),
            None => write!(f, "unknown reject code {}", self.0),
        }
    }
}

impl std::fmt::Debug for RejectCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RejectCode({} {})", self.0, self.name())
    }
}
