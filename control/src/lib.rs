//! Peregrine's operations control API: deposits credited by operators, market halts and
//! resumes, account kill switches, mass cancels and status, under `/control/v1` on the
//! operator HTTP listener.
//!
//! Owns: the ops-facing surface. Never does: trade on anyone's behalf or bypass the journal; every
//! change it makes is a sequenced command like any other, answered once it may be acknowledged
//! (after its journal record is durable in `durable` mode).
//!
//! Every request carries `Authorization: Bearer <token>`. Errors are JSON
//! `{"error": {"code": "...", "message": "..."}}` with a stable `code`: 400 `bad_request`,
//! 401 `unauthorized`, 404 `unknown_market`/`unknown_currency`, 413 `body_too_large`,
//! 422 `rejected` (the engine refused; `reason` and `reason_code` say why), 503 `busy`/
//! `unavailable`.

pub mod api;
pub mod error;

pub use api::{BODY_BYTES_MAX, ControlState, router};
pub use error::ControlError;
