//! The `/control/v1` routes.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{any, get, post};
use peregrine_core::catalog::Catalog;
use peregrine_core::{EngineHandle, Executed, Request, SubmitError};
use peregrine_hotpath::edge::{EDGE_INTEGER_MAX, parse_decimal};
use peregrine_hotpath::{AccountId, Actor, CommandKind, DepositId, OperatorId, Service, Side};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ControlError, ErrorBody};

/// Largest request body: control requests are a few hundred bytes.
pub const BODY_BYTES_MAX: usize = 16 * 1024;
/// Longest a request waits for its command's outcome (durable in `durable` mode): past it the
/// exchange is not keeping up and the caller gets `unavailable` (the command may still apply).
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// Deposit ids from here up are the wallet daemons' (`2^62 + row id` of their store): only the
/// wallet credential may use them, and it may use nothing else, so an operator's id can never
/// collide with a chain deposit's (a collision would make one of the two a "duplicate", never
/// credited).
pub const WALLET_DEPOSIT_IDS_FROM: u64 = 1 << 62;

const _: () = assert!(WALLET_DEPOSIT_IDS_FROM <= EDGE_INTEGER_MAX);

/// What the routes need.
#[derive(Clone, Debug)]
pub struct ControlState {
    /// The sequencer.
    pub engine: Arc<EngineHandle>,
    /// Names and units.
    pub catalog: Arc<Catalog>,
    /// The bearer token operators present.
    pub token: Arc<str>,
    /// The wallet daemons' bearer token, when they run: it may only credit chain deposits
    /// (`POST /control/v1/deposits` with ids from [`WALLET_DEPOSIT_IDS_FROM`]), as the wallet
    /// service.
    pub wallet_token: Option<Arc<str>>,
    /// Requests by route and status, and their duration.
    pub metrics: crate::metrics::ControlMetrics,
}

/// The routes, to be merged into the operator HTTP server. Unknown routes under `/control/v1`
/// and methods a route does not take answer the JSON error body too (never axum's plain text).
/// Every request is counted and timed in `state.metrics` (the layer comes last, so it covers
/// every route and fallback above it).
pub fn router(state: ControlState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/control/v1/status", get(status))
        .route("/control/v1/deposits", post(deposit))
        .route(
            "/control/v1/withdrawals/{id}/{action}",
            post(crate::withdrawals::withdrawal),
        )
        .route("/control/v1/markets/{market}/{action}", post(market_state))
        .route(
            "/control/v1/accounts/{account}/kill-switch",
            post(kill_switch),
        )
        .route(
            "/control/v1/accounts/{account}/cancel-all",
            post(cancel_all),
        )
        .route(crate::openapi::OPENAPI_PATH, get(crate::openapi::serve))
        .route("/control/v1", any(not_found))
        .route("/control/v1/{*rest}", any(not_found))
        .method_not_allowed_fallback(|| async { ControlError::MethodNotAllowed })
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
}

async fn not_found() -> ControlError {
    ControlError::NotFound
}

/// A deposit to credit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DepositRequest {
    /// The account credited.
    #[schema(format = "uint32", maximum = 4294967295_u64)]
    account: u32,
    /// Currency code, e.g. `btc`.
    currency: String,
    /// Decimal string, exact in the currency's minor units (no exponent).
    amount: String,
    /// The wallet's or operator's reference, for traceability and idempotency: a deposit id
    /// is credited once. Operators' ids are below 2^62; from 2^62 to 2^63-1 they are the
    /// wallet daemons' (their token only).
    #[schema(format = "uint64", maximum = 9223372036854775807_u64)]
    deposit_id: u64,
}

/// The kill switch's new state.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KillSwitchRequest {
    /// On: the account's open orders are cancelled and new ones refused.
    on: bool,
}

/// Which open orders to cancel (an empty body: all of them).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelAllRequest {
    /// Only in this market.
    market: Option<String>,
    /// Only this side: `buy` or `sell`.
    side: Option<String>,
}

/// A command's place in the journal.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SeqJson {
    /// The journal sequence of the command.
    pub(crate) seq: u64,
}

/// A mass cancel's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CancelAllJson {
    /// The journal sequence of the command.
    seq: u64,
    /// Orders cancelled.
    cancelled: u32,
}

/// The exchange's state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatusJson {
    /// The last command released to the views (in `durable` mode: durable).
    applied_seq: u64,
    /// The last command the engine applied (ahead of `applied_seq` by what awaits the disk).
    engine_seq: u64,
    /// Open orders across all markets.
    live_orders: u32,
    /// Every market.
    markets: Vec<MarketStatusJson>,
    /// Accounts whose kill switch is on, ascending.
    kill_switches: Vec<u32>,
}

/// One market in the status.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MarketStatusJson {
    /// Name, e.g. `btcusd`.
    name: String,
    /// Engine id.
    id: u32,
    /// `enabled`, or `halted` while an operator has halted it.
    state: &'static str,
    /// The last trade price (decimal string), null before the first trade.
    last_price: Option<String>,
}

/// What `POST /control/v1/markets/{market}/{action}` does (the handler reads the path segment
/// and refuses anything else with 400).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub(crate) enum MarketAction {
    /// Stop taking orders and matching.
    Halt,
    /// Take orders and match again.
    Resume,
}

/// The exchange's state: the last applied command, open orders, each market's state (enabled
/// or halted) and last price, and the accounts whose kill switch is on. It reads the views
/// (never the matching thread), so it answers while the engine is busy or stopped: only a
/// missing or wrong token fails it.
#[utoipa::path(get, path = "/control/v1/status", tag = "control",
    security(("bearer" = [])),
    responses((status = 200, body = StatusJson), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub(crate) async fn status(
    State(state): State<ControlState>,
    headers: HeaderMap,
) -> Result<Json<StatusJson>, ControlError> {
    authorize(&state, &headers)?;
    let engine_seq = state
        .engine
        .stats()
        .last_seq
        .load(std::sync::atomic::Ordering::Acquire);
    // From the views: released (in `durable` mode, durable) state, never the matching thread.
    let status = state.engine.read(|views| {
        let markets = state
            .catalog
            .markets()
            .iter()
            .map(|market| {
                let view = views.market(market.spec.market).unwrap_or_default();
                MarketStatusJson {
                    name: market.name.clone(),
                    id: market.spec.market.0,
                    state: if view.halted { "halted" } else { "enabled" },
                    last_price: view
                        .last_price
                        .map(|p| market.units.price_decimal(p).normalize().to_string()),
                }
            })
            .collect();
        let mut kill_switches: Vec<u32> = views.kill_switches().map(|a| a.0).collect();
        kill_switches.sort_unstable();
        StatusJson {
            applied_seq: views.applied_seq(),
            engine_seq,
            live_orders: u32::try_from(views.orders().open_count()).unwrap_or(u32::MAX),
            markets,
            kill_switches,
        }
    });
    Ok(Json(status))
}

/// Credits a deposit (once per `deposit_id`). Operators' ids are below 2^62 (above: 422
/// `control.deposit.wallet_id`); the wallet daemons' token credits ids from 2^62 only.
#[utoipa::path(post, path = "/control/v1/deposits", tag = "control",
    request_body = DepositRequest, security(("bearer" = [])),
    responses((status = 200, body = SeqJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn deposit(
    State(state): State<ControlState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SeqJson>, ControlError> {
    let caller = caller(&state, &headers)?;
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
    let wallet_id = request.deposit_id >= WALLET_DEPOSIT_IDS_FROM;
    match (caller, wallet_id) {
        (Caller::Operator, true) => {
            return Err(ControlError::WalletDepositId(request.deposit_id));
        }
        (Caller::Wallet, false) => return Err(ControlError::Forbidden),
        _ => {}
    }
    let minor = currency
        .scale
        .to_minor(amount)
        .map_err(|e| ControlError::Unprocessable(format!("amount: {e}")))?;
    let actor = match caller {
        Caller::Operator => Actor::Operator(SHARED_TOKEN_OPERATOR),
        Caller::Wallet => Actor::Service(Service::Wallet),
    };
    let executed = execute_as(
        &state,
        actor,
        CommandKind::Deposit {
            account: AccountId(request.account),
            currency: currency.id,
            amount: minor,
            deposit: DepositId(request.deposit_id),
        },
    )
    .await?;
    Ok(Json(SeqJson { seq: executed.seq }))
}

/// Halts a market (no new orders, no matching) or resumes it.
#[utoipa::path(post, path = "/control/v1/markets/{market}/{action}", tag = "control",
    params(("market" = String, Path, description = "market name, e.g. btcusd"),
        ("action" = MarketAction, Path, description = "halt or resume")),
    security(("bearer" = [])),
    responses((status = 200, body = SeqJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn market_state(
    State(state): State<ControlState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<SeqJson>, ControlError> {
    authorize(&state, &headers)?;
    let Path((market, action)) = path.map_err(path_error)?;
    let market = market_id(&state, &market)?;
    let action = match action.as_str() {
        "halt" => MarketAction::Halt,
        "resume" => MarketAction::Resume,
        other => {
            return Err(ControlError::BadRequest(format!(
                "market action `{other}`: expected halt or resume"
            )));
        }
    };
    let command = match action {
        MarketAction::Halt => CommandKind::MarketHalt { market },
        MarketAction::Resume => CommandKind::MarketResume { market },
    };
    let executed = execute(&state, command).await?;
    Ok(Json(SeqJson { seq: executed.seq }))
}

/// Turns an account's kill switch on (its open orders are cancelled, new ones refused) or off.
#[utoipa::path(post, path = "/control/v1/accounts/{account}/kill-switch", tag = "control",
    params(("account" = u32, Path, description = "account id", format = "uint32",
        maximum = 4294967295_u64)),
    request_body = KillSwitchRequest, security(("bearer" = [])),
    responses((status = 200, body = SeqJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn kill_switch(
    State(state): State<ControlState>,
    headers: HeaderMap,
    account: Result<Path<u32>, PathRejection>,
    body: Body,
) -> Result<Json<SeqJson>, ControlError> {
    authorize(&state, &headers)?;
    let Path(account) = account.map_err(path_error)?;
    let request: KillSwitchRequest = parse_body(body).await?;
    let executed = execute(
        &state,
        CommandKind::KillSwitch {
            account: AccountId(account),
            on: request.on,
        },
    )
    .await?;
    Ok(Json(SeqJson { seq: executed.seq }))
}

/// Cancels an account's open orders, optionally only in one market and/or side.
#[utoipa::path(post, path = "/control/v1/accounts/{account}/cancel-all", tag = "control",
    params(("account" = u32, Path, description = "account id", format = "uint32",
        maximum = 4294967295_u64)),
    request_body(content = Option<CancelAllRequest>,
        description = "filters; no body (or `{}`) cancels all"),
    security(("bearer" = [])),
    responses((status = 200, body = CancelAllJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn cancel_all(
    State(state): State<ControlState>,
    headers: HeaderMap,
    account: Result<Path<u32>, PathRejection>,
    body: Body,
) -> Result<Json<CancelAllJson>, ControlError> {
    authorize(&state, &headers)?;
    let Path(account) = account.map_err(path_error)?;
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
    Ok(Json(CancelAllJson {
        seq: executed.seq,
        cancelled: cancelled.unwrap_or(0),
    }))
}

/// Who presented a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The operators' token: every route.
    Operator,
    /// The wallet daemons' token: chain deposits and withdrawals' funds only.
    Wallet,
}

/// Checks the bearer token in constant time (no early exit on the first differing byte) and
/// refuses the wallet's token on every route but deposits.
fn authorize(state: &ControlState, headers: &HeaderMap) -> Result<(), ControlError> {
    match caller(state, headers)? {
        Caller::Operator => Ok(()),
        Caller::Wallet => Err(ControlError::Forbidden),
    }
}

/// Whose token `headers` carry.
pub(crate) fn caller(state: &ControlState, headers: &HeaderMap) -> Result<Caller, ControlError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ControlError::Unauthorized)?;
    // Both compared whatever the first answers: the time does not tell which token matched.
    let operator = same_secret(presented, &state.token);
    let wallet = state
        .wallet_token
        .as_deref()
        .is_some_and(|token| same_secret(presented, token));
    match (operator, wallet) {
        (true, _) => Ok(Caller::Operator),
        (false, true) => Ok(Caller::Wallet),
        (false, false) => Err(ControlError::Unauthorized),
    }
}

/// Constant-time equality of a presented token and a configured one.
fn same_secret(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

/// A path segment that does not parse (an account id that is not a `u32`) as the JSON error.
pub(crate) fn path_error(rejection: PathRejection) -> ControlError {
    ControlError::BadRequest(format!("path: {}", rejection.body_text()))
}

/// Reads at most [`BODY_BYTES_MAX`] bytes and parses them; an empty body is `{}`.
pub(crate) async fn parse_body<T: serde::de::DeserializeOwned>(
    body: Body,
) -> Result<T, ControlError> {
    let bytes = axum::body::to_bytes(body, BODY_BYTES_MAX)
        .await
        .map_err(|_| ControlError::BodyTooLarge(BODY_BYTES_MAX))?;
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ControlError::BadRequest(format!("body: {e}")))?;
    // serde reads a struct from an array too (`[1, "usd", ...]`); the API takes objects only.
    if !value.is_object() {
        return Err(ControlError::BadRequest(
            "body: expected a JSON object".to_owned(),
        ));
    }
    serde_json::from_value(value).map_err(|e| ControlError::BadRequest(format!("body: {e}")))
}

/// The actor of every control command while the API has one shared bearer token: operator 0.
/// Per-operator identities come with the operators' own credentials.
const SHARED_TOKEN_OPERATOR: OperatorId = OperatorId(0);

/// Sequences `command` as the operator and waits for its outcome; an engine reject is an error.
async fn execute(state: &ControlState, command: CommandKind) -> Result<Executed, ControlError> {
    execute_as(state, Actor::Operator(SHARED_TOKEN_OPERATOR), command).await
}

/// [`execute`] as `actor`.
pub(crate) async fn execute_as(
    state: &ControlState,
    actor: Actor,
    command: CommandKind,
) -> Result<Executed, ControlError> {
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
