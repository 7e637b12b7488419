//! Peregrine's operations control API: deposits credited by operators, market halts and
//! resumes, account kill switches, mass cancels, status, manual balance adjustments under
//! four-eyes, market states and risk parameters and fee changes under four-eyes
//! ([`reference`]), currencies and markets created at runtime (`catalog_api`), under
//! `/control/v1` on the operator HTTP listener; and the wallet daemons' door
//! for chain deposits and withdrawals' holds, settles and releases ([`withdrawals`]), their
//! token's only routes. For the operator console (`peregrine-web`'s `/console`, on the same
//! listener): operators' login and token renewal ([`login`]), the audit chain paged and
//! verified ([`audit_log`]), withdrawal requests awaiting approval ([`withdrawal_requests`]),
//! users, their locks and sessions ([`users`]), orders and trades by account ([`search`]);
//! the financial reports, JSON or CSV ([`reports`]).
//!
//! Owns: the ops-facing surface and the decision on each call ([`access`]: operators' access
//! JWTs verified from memory, each route one typed permission of identity's RBAC, every call
//! audited in identity's chain; a host-only break-glass token; the wallet daemons' token).
//! Never does: trade on anyone's behalf or bypass the journal; every change it makes is a
//! sequenced command like any other, named after the operator who made it, answered once it
//! may be acknowledged (after its journal record is durable in `durable` mode). It never
//! reaches an edge (gateway, wire protocol): identity's crate is its only way to users.
//!
//! Every request but the OpenAPI document (`/control/v1/openapi.json`, [`openapi`]) carries
//! `Authorization: Bearer <credential>`. Errors are JSON `{"errors": [code], "error": {"code",
//! "message"}}` with a stable dotted code (see [`ControlError::code`]): 400
//! `control.request.malformed`, 401 `control.auth.invalid_token`, 403 `control.auth.forbidden`
//! (the role lacks the route's permission; the wallet daemons' token outside chain deposits),
//! `control.auth.not_operator`, `control.auth.second_factor_required`,
//! `control.adjustment.own_proposal` (any four-eyes proposal's creator reviewing it),
//! `control.withdrawal_request.own_request`, 404
//! `control.withdrawal_request.doesnt_exist`/`control.user.doesnt_exist`/`control.session.doesnt_exist`/
//! `control.market.doesnt_exist`/`control.currency.doesnt_exist`/`control.adjustment.doesnt_exist`/`control.fee_change.doesnt_exist`/`control.request.route_not_found`,
//! 409 `control.adjustment.not_pending`/`control.fee_change.not_pending`/`control.withdrawal_request.not_awaiting_approval`/
//! `control.withdrawal_request.already_reviewed`/`control.user.wrong_state`, 422
//! `control.reference.invalid_field` (with `field`), 413 `control.request.body_too_large`, 422
//! `control.deposit.wallet_id` (an operator's deposit id in the wallets' range, from 2^62) and
//! `control.deposit.reserved_id` (in the adjustments' range, 2^61 to 2^62), 422
//! `control.command.<reason>` (the engine refused; `reason` and `reason_code` too), 503
//! `control.server.busy`/`control.server.unavailable`/`control.store.unavailable`/
//! `control.wallets.unavailable`/`control.replica.unavailable`, 422 `control.wallets.unsupported` (no
//! `[wallets]`). The login keeps identity's
//! codes (`identity.session.invalid_otp`, ...).
//!
//! Every request counts in `peregrine_control_requests_total{route,status}` and
//! `peregrine_control_request_duration_seconds{route}` ([`metrics`]).

pub mod access;
pub mod adjustments;
pub mod api;
pub mod audit_log;
mod catalog_api;
mod console_api;
pub mod error;
pub mod fee_tiers;
pub mod login;
pub mod metrics;
pub mod openapi;
mod proposals;
pub mod reference;
pub mod reports;
pub mod rules;
pub mod search;
pub mod users;
pub mod withdrawal_requests;
pub mod withdrawals;

pub use access::{Access, Caller, Operators};
pub use api::{BODY_BYTES_MAX, ControlState, router};
pub use error::ControlError;
pub use metrics::ControlMetrics;
pub use reports::{ReconciliationBook, RecordedAssets};
pub use withdrawal_requests::{QueueError, QueueFuture, QueuedWithdrawal, WithdrawalQueue};
