//! Peregrine's operations control API: deposits credited by operators, market halts and
//! resumes, account kill switches, mass cancels and status, under `/control/v1` on the
//! operator HTTP listener; and the wallet daemons' door for chain deposits and withdrawals'
//! holds, settles and releases ([`withdrawals`]), their token's only routes.
//!
//! Owns: the ops-facing surface. Never does: trade on anyone's behalf or bypass the journal; every
//! change it makes is a sequenced command like any other, answered once it may be acknowledged
//! (after its journal record is durable in `durable` mode).
//!
//! Every request but the OpenAPI document (`/control/v1/openapi.json`, [`openapi`]) carries
//! `Authorization: Bearer <token>`. Errors are JSON `{"errors": [code], "error": {"code",
//! "message"}}` with a stable dotted code (see [`ControlError::code`]): 400
//! `control.request.malformed`, 401 `control.auth.invalid_token`, 403 `control.auth.forbidden`
//! (the wallet daemons' token outside chain deposits), 404
//! `control.market.doesnt_exist`/`control.currency.doesnt_exist`/`control.request.route_not_found`,
//! 413 `control.request.body_too_large`, 422 `control.deposit.wallet_id` (an operator's deposit id
//! in the wallets' range, from 2^62), 422 `control.command.<reason>` (the engine refused;
//! `reason` and `reason_code` too), 503 `control.server.busy`/`control.server.unavailable`.
//!
//! Every request counts in `peregrine_control_requests_total{route,status}` and
//! `peregrine_control_request_duration_seconds{route}` ([`metrics`]).

pub mod api;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod withdrawals;

pub use api::{BODY_BYTES_MAX, ControlState, router};
pub use error::ControlError;
pub use metrics::ControlMetrics;
