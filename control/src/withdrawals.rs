//! `POST /control/v1/withdrawals/{id}/{action}`: the wallet daemons' door to the engine for a
//! withdrawal's funds — `hold` (before anything is signed), `settle` (its receipt has its
//! confirmations) and `release` (its transaction failed) — each a journaled command keyed by
//! the withdrawal id, sequenced as the wallet service. The wallet daemons' token only: no
//! operator moves a withdrawal's funds, and none marks one done without the daemon's receipt.
//! A retry after a crash is answered by the engine (`duplicate_withdrawal` for a second hold,
//! `unknown_withdrawal` once settled or released), which the daemon reads as "done before".

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use peregrine_auth::rbac::Permission;
use peregrine_hotpath::edge::{EDGE_INTEGER_MAX, parse_decimal};
use peregrine_hotpath::{AccountId, Actor, CommandKind, Service, WithdrawalId};
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::access::{Caller, Client};
use crate::api::{ControlState, SeqJson, execute_as, parse_body, path_error};
use crate::error::{ControlError, ErrorBody};

/// What a hold takes (settle and release take an empty body: the engine knows the hold).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldRequest {
    /// The account whose funds are held.
    #[schema(format = "uint32", maximum = 4294967295_u64)]
    account: Option<u32>,
    /// Currency code.
    currency: Option<String>,
    /// Decimal string, exact in the currency's minor units.
    amount: Option<String>,
}

/// Holds, settles or releases a withdrawal's funds (the wallet daemons' token only).
#[utoipa::path(post, path = "/control/v1/withdrawals/{id}/{action}", tag = "control",
    params(("id" = u64, Path, description = "the wallet's withdrawal id", format = "uint64",
            maximum = 9223372036854775807_u64),
        ("action" = String, Path, description = "hold, settle or release")),
    request_body(content = Option<HoldRequest>,
        description = "hold: account, currency, amount; settle and release: none"),
    security(("bearer" = [])),
    responses((status = 200, body = SeqJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn withdrawal(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    path: Result<Path<(u64, String)>, PathRejection>,
    body: Body,
) -> Result<Json<SeqJson>, ControlError> {
    let caller = state
        .access
        .admit(
            &headers,
            &client,
            Permission::WithdrawalFunds,
            "withdrawals",
        )
        .await?;
    // No role holds the permission; the break-glass token must not move funds either.
    if !matches!(caller, Caller::Wallet) {
        return Err(ControlError::Forbidden(Permission::WithdrawalFunds));
    }
    let Path((id, action)) = path.map_err(path_error)?;
    if id > EDGE_INTEGER_MAX {
        return Err(ControlError::BadRequest(format!(
            "withdrawal id {id} is too large (at most {EDGE_INTEGER_MAX})"
        )));
    }
    let withdrawal = WithdrawalId(id);
    let request: HoldRequest = parse_body(body).await?;
    let command = match action.as_str() {
        "hold" => hold(&state, withdrawal, request)?,
        "settle" => CommandKind::WithdrawalSettle { withdrawal },
        "release" => CommandKind::WithdrawalRelease { withdrawal },
        other => {
            return Err(ControlError::BadRequest(format!(
                "withdrawal action `{other}`: expected hold, settle or release"
            )));
        }
    };
    let executed = execute_as(&state, Actor::Service(Service::Wallet), command).await?;
    Ok(Json(SeqJson { seq: executed.seq }))
}

fn hold(
    state: &ControlState,
    withdrawal: WithdrawalId,
    request: HoldRequest,
) -> Result<CommandKind, ControlError> {
    let missing = |field: &str| ControlError::BadRequest(format!("body: a hold needs `{field}`"));
    let account = request.account.ok_or_else(|| missing("account"))?;
    let code = request.currency.ok_or_else(|| missing("currency"))?;
    let text = request.amount.ok_or_else(|| missing("amount"))?;
    let currency = state
        .catalog
        .load()
        .currency(&code)
        .cloned()
        .ok_or_else(|| ControlError::UnknownCurrency(code.clone()))?;
    let amount: Decimal = parse_decimal(&text)
        .map_err(|error| ControlError::Unprocessable(format!("amount `{text}` {error}")))?;
    let amount = currency
        .scale
        .to_minor(amount)
        .map_err(|e| ControlError::Unprocessable(format!("amount: {e}")))?;
    Ok(CommandKind::WithdrawalHold {
        account: AccountId(account),
        currency: currency.id,
        amount,
        withdrawal,
    })
}
