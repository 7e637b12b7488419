//! The `/control/v1` routes.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use peregrine_core::catalog::Catalog;
use peregrine_core::{EngineHandle, Executed, Request, SubmitError};
use peregrine_hotpath::edge::{EDGE_INTEGER_MAX, parse_decimal};
use peregrine_hotpath::{AccountId, Actor, CommandKind, DepositId, OperatorId, Side};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ControlError;

/// Largest request body: control requests are a few hundred bytes.
pub const BODY_BYTES_MAX: usize = 16 * 1024;
/// Longest a request waits for its command's outcome (durable in `durable` mode): past it the
/// exchange is not keeping up and the caller gets `unavailable` (the command may still apply).
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(10);

/// What the routes need.
#[derive(Clone, Debug)]
pub struct ControlState {
    /// The sequencer.
    pub engine: Arc<EngineHandle>,
    /// Names and units.
    pub catalog: Arc<Catalog>,
    /// The bearer token operators present.
    pub token: Arc<str>,
}

/// The routes, to be merged into the operator HTTP server.
pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/control/v1/status", get(status))
        .route("/control/v1/deposits", post(deposit))
        .route("/control/v1/markets/{market}/{action}", post(market_state))
        .route(
            "/control/v1/accounts/{account}/kill-switch",
            post(kill_switch),
        )
        .route(
            "/control/v1/accounts/{account}/cancel-all",
            post(cancel_all),
        )
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DepositRequest {
    account: u32,
    currency: String,
    /// Decimal string, exact in the currency's minor units.
    amount: String,
    /// The wallet's or operator's reference, for traceability.
    deposit_id: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KillSwitchRequest {
    on: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelAllRequest {
    market: Option<String>,
    side: Option<String>,
}

async fn status(
    State(state): State<ControlState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ControlError> {
    authorize(&state, &headers)?;
    let engine_seq = state
        .engine
        .stats()
        .last_seq
        .load(std::sync::atomic::Ordering::Acquire);
    // From the views: released (in `durable` mode, durable) state, never the matching thread.
    let (views_seq, live_orders, markets, kill_switches) = state.engine.read(|views| {
        let markets: Vec<Value> = state
            .catalog
            .markets()
            .iter()
            .map(|market| {
                let view = views.market(market.spec.market).unwrap_or_default();
                json!({
                    "name": market.name,
                    "id": market.spec.market.0,
                    "state": if view.halted { "halted" } else { "enabled" },
                    "last_price": view
                        .last_price
                        .map(|p| market.units.price_decimal(p).normalize().to_string()),
                })
            })
            .collect();
        let mut kill_switches: Vec<u32> = views.kill_switches().map(|a| a.0).collect();
        kill_switches.sort_unstable();
        (
            views.applied_seq(),
            views.orders().open_count(),
            markets,
            kill_switches,
        )
    });
    Ok(Json(json!({
        "applied_seq": views_seq,
        "engine_seq": engine_seq,
        "live_orders": live_orders,
        "markets": markets,
        "kill_switches": kill_switches,
    })))
}

async fn deposit(
    State(state): State<ControlState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ControlError> {
    authorize(&state, &headers)?;
    let request: DepositRequest = parse_body(body).await?;
    let currency = state
        .catalog
        .currency(&request.currency)
        .ok_or_else(|| ControlError::UnknownCurrency(request.currency.clone()))?;
    let amount: Decimal = parse_decimal(&request.amount).map_err(|error| {
        ControlError::Unprocessable(format!("amount `{}` {error}", request.amount))
    })?;
    if request.deposit_id > EDGE_INTEGER_MAX {
        return Err(ControlError::Unprocessable(format!(
            "deposit_id {} is too large (at most {EDGE_INTEGER_MAX})",
            request.deposit_id
        )));
    }
    let minor = currency
        .scale
        .to_minor(amount)
        .map_err(|e| ControlError::Unprocessable(format!("amount: {e}")))?;
    let executed = execute(
        &state,
        CommandKind::Deposit {
            account: AccountId(request.account),
            currency: currency.id,
            amount: minor,
            deposit: DepositId(request.deposit_id),
        },
    )
    .await?;
    Ok(Json(json!({ "seq": executed.seq })))
}

/// `POST /control/v1/markets/{market}/{halt|resume}`.
async fn market_state(
    State(state): State<ControlState>,
    headers: HeaderMap,
    Path((market, action)): Path<(String, String)>,
) -> Result<Json<Value>, ControlError> {
    authorize(&state, &headers)?;
    let market = market_id(&state, &market)?;
    let command = match action.as_str() {
        "halt" => CommandKind::MarketHalt { market },
        "resume" => CommandKind::MarketResume { market },
        other => {
            return Err(ControlError::BadRequest(format!(
                "market action `{other}`: expected halt or resume"
            )));
        }
    };
    let executed = execute(&state, command).await?;
    Ok(Json(json!({ "seq": executed.seq })))
}

async fn kill_switch(
    State(state): State<ControlState>,
    headers: HeaderMap,
    Path(account): Path<u32>,
    body: Body,
) -> Result<Json<Value>, ControlError> {
    authorize(&state, &headers)?;
    let request: KillSwitchRequest = parse_body(body).await?;
    let executed = execute(
        &state,
        CommandKind::KillSwitch {
            account: AccountId(account),
            on: request.on,
        },
    )
    .await?;
    Ok(Json(json!({ "seq": executed.seq })))
}

async fn cancel_all(
    State(state): State<ControlState>,
    headers: HeaderMap,
    Path(account): Path<u32>,
    body: Body,
) -> Result<Json<Value>, ControlError> {
    authorize(&state, &headers)?;
    let request: CancelAllRequest = parse_body(body).await?;
    let market = request
        .market
        .as_deref()
        .map(|name| market_id(&state, name))
        .transpose()?;
    let side = match request.side.as_deref() {
        None => None,
        Some("buy") => Some(Side::Buy),
        Some("sell") => Some(Side::Sell),
        Some(other) => {
            return Err(ControlError::BadRequest(format!(
                "side `{other}`: expected buy or sell"
            )));
        }
    };
    let executed = execute(
        &state,
        CommandKind::MassCancel {
            account: AccountId(account),
            market,
            side,
        },
    )
    .await?;
    let cancelled = executed.events.iter().find_map(|event| match event {
        peregrine_hotpath::Event::MassCancelled { count, .. } => Some(*count),
        _ => None,
    });
    Ok(Json(
        json!({ "seq": executed.seq, "cancelled": cancelled.unwrap_or(0) }),
    ))
}

/// Checks the bearer token in constant time (no early exit on the first differing byte).
fn authorize(state: &ControlState, headers: &HeaderMap) -> Result<(), ControlError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ControlError::Unauthorized)?;
    let (a, b) = (presented.as_bytes(), state.token.as_bytes());
    let differs = a.len() != b.len() || a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) != 0;
    if differs {
        return Err(ControlError::Unauthorized);
    }
    Ok(())
}

fn market_id(
    state: &ControlState,
    name: &str,
) -> Result<peregrine_hotpath::MarketId, ControlError> {
    state
        .catalog
        .market(name)
        .map(|m| m.spec.market)
        .ok_or_else(|| ControlError::UnknownMarket(name.to_owned()))
}

/// Reads at most [`BODY_BYTES_MAX`] bytes and parses them; an empty body is `{}`.
async fn parse_body<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, ControlError> {
    let bytes = axum::body::to_bytes(body, BODY_BYTES_MAX)
        .await
        .map_err(|_| ControlError::BodyTooLarge(BODY_BYTES_MAX))?;
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
    serde_json::from_slice(bytes).map_err(|e| ControlError::BadRequest(format!("body: {e}")))
}

/// The actor of every control command while the API has one shared bearer token: operator 0.
/// Per-operator identities come with the operators' own credentials.
const SHARED_TOKEN_OPERATOR: OperatorId = OperatorId(0);

/// Sequences `command` and waits for its outcome; an engine reject is an error.
async fn execute(state: &ControlState, command: CommandKind) -> Result<Executed, ControlError> {
    let actor = Actor::Operator(SHARED_TOKEN_OPERATOR);
    let ticket = state
        .engine
        .submit(Request::new(actor, command))
        .map_err(|e| match e {
            SubmitError::Busy => ControlError::Busy,
            _ => ControlError::Unavailable,
        })?;
    let executed = tokio::time::timeout(OUTCOME_TIMEOUT, ticket)
        .await
        .map_err(|_| ControlError::Unavailable)?
        .map_err(|_| ControlError::Unavailable)?;
    match executed.rejected() {
        Some(reason) => Err(ControlError::Rejected(reason)),
        None => Ok(executed),
    }
}
