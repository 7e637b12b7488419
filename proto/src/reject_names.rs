//! Names and human messages of reject and close codes, so clients show
//! `the key already has its allowed number of sessions (quic.session.limit)` instead of `1009`.
//! Names are Peatio-style (`scope.subject.reason`) and stable; messages may be reworded.
//!
//! Engine codes (1..=999) read the engine's one table ([`peregrine_hotpath::reject_text`]), the
//! table REST's error codes and the control API's reasons come from too; the gateway's codes
//! are listed here, and those that stand for an engine reason take its text.

use peregrine_hotpath::RejectReason;

use crate::frame::RejectCode;

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
        RejectReason::DuplicateClientOrderId.error_code(),
        RejectReason::DuplicateClientOrderId.message(),
    ),
    (
        RejectCode::UNKNOWN_MARKET,
        RejectReason::UnknownMarket.error_code(),
        RejectReason::UnknownMarket.message(),
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
        RejectReason::UnknownCurrency.error_code(),
        RejectReason::UnknownCurrency.message(),
    ),
    (
        RejectCode::LEVEL_TOO_LOW,
        "identity.level_too_low",
        "the account's KYC level is too low to place orders",
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
            Some(RejectReason::from_code(self.0).map_or(
                // A reason of a newer engine than this release.
                ("market.order.rejected", "rejected by the engine"),
                |reason| (reason.error_code(), reason.message()),
            ))
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
