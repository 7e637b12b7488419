//! Every edge tells an engine reject the same way: REST's error code, the QUIC reject code's
//! name the SDK shows, and the control API's `reason` all come from the engine's one table, with
//! the same sentence.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use peregrine_control::ControlError;
use peregrine_gateway::rest::error::ApiError;
use peregrine_hotpath::RejectReason;
use peregrine_proto::frame::RejectCode;

#[test]
fn rest_quic_and_control_agree_on_every_reject_reason() {
    for reason in RejectReason::ALL {
        let text = reason.text();
        let rest = ApiError::rejected(reason);
        assert_eq!(
            (rest.code, rest.message.as_str()),
            (text.code, text.message)
        );

        let quic = RejectCode::engine(reason);
        assert_eq!((quic.name(), quic.message()), (rest.code, text.message));
        assert_eq!(
            quic.to_string(),
            format!("{} ({})", text.message, text.code)
        );

        let control = ControlError::Rejected(reason);
        assert_eq!(control.code(), format!("control.command.{}", text.name));
        assert_eq!(control.to_string(), text.message);
    }
}

#[test]
fn gateway_codes_for_engine_reasons_read_as_those_reasons() {
    for (code, reason) in [
        (RejectCode::DUPLICATE, RejectReason::DuplicateClientOrderId),
        (RejectCode::UNKNOWN_MARKET, RejectReason::UnknownMarket),
        (RejectCode::UNKNOWN_CURRENCY, RejectReason::UnknownCurrency),
    ] {
        assert_eq!(code.to_string(), RejectCode::engine(reason).to_string());
    }
    assert_eq!(
        ApiError::unknown_market("x").code,
        RejectCode::UNKNOWN_MARKET.name()
    );
}
