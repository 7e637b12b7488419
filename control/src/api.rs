//! The `/control/v1` routes.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{any, get, patch, post};
use peregrine_auth::rbac::Permission;
use peregrine_core::catalog::SharedCatalog;
use peregrine_core::{EngineHandle, Executed, Request, SubmitError};
use peregrine_hotpath::edge::{EDGE_INTEGER_MAX, parse_decimal};
use peregrine_hotpath::{AccountId, Actor, CommandKind, DepositId, Side};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Access, Caller, Client};
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
/// Deposit and withdrawal ids from here to [`WALLET_DEPOSIT_IDS_FROM`] are approved
/// adjustments' (`2^61 + adjustment id`): no operator's deposit id can collide with one, and
/// they stay within what every replica stores (below 2^63).
pub const ADJUSTMENT_KEYS_FROM: u64 = 1 << 61;

const _: () = assert!(WALLET_DEPOSIT_IDS_FROM <= EDGE_INTEGER_MAX);
const _: () = assert!(ADJUSTMENT_KEYS_FROM < WALLET_DEPOSIT_IDS_FROM);

/// What the routes need.
#[derive(Clone, Debug)]
pub struct ControlState {
    /// The sequencer.
    pub engine: Arc<EngineHandle>,
    /// Names and units: each request loads it once; a creation publishes a new one.
    pub catalog: SharedCatalog,
    /// The credentials accepted and how each call is decided and audited: operators' access
    /// tokens, the host-only break-glass token, the wallet daemons' token (which may only
    /// credit chain deposits, ids from [`WALLET_DEPOSIT_IDS_FROM`]).
    pub access: Arc<Access>,
    /// Requests by route and status, and their duration.
    pub metrics: crate::metrics::ControlMetrics,
    /// Withdrawal requests awaiting operators' approval: the wallet store, when `[wallets]`
    /// is on.
    pub withdrawal_queue: Option<Arc<dyn crate::withdrawal_requests::WithdrawalQueue>>,
    /// The replica, for orders and trades search, when `[replica]` is on.
    pub replica: Option<Arc<peregrine_replica::ReplicaReader>>,
    /// The wallets' last reconciliations (the wallet store), for the assets report, when
    /// `[wallets]` is on.
    pub reconciliations: Option<Arc<dyn crate::reports::ReconciliationBook>>,
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
            "/control/v1/markets/{market}",
            patch(crate::reference::patch_market),
        )
        .route(
            "/control/v1/fees",
            post(crate::reference::propose_fee).get(crate::reference::list_fees),
        )
        .route(
            "/control/v1/fees/{id}/{action}",
            post(crate::reference::review_fee),
        )
        .route(
            "/control/v1/accounts/{account}/kill-switch",
            post(kill_switch),
        )
        .route(
            "/control/v1/accounts/{account}/cancel-all",
            post(cancel_all),
        )
        .route(
            "/control/v1/adjustments",
            post(crate::adjustments::create).get(crate::adjustments::list),
        )
        .route(
            "/control/v1/adjustments/{id}/{action}",
            post(crate::adjustments::review),
        )
        .merge(crate::console_api::routes())
        .merge(crate::catalog_api::routes())
        .merge(crate::reports::routes())
        .merge(crate::rules::routes())
        .route(crate::openapi::OPENAPI_PATH, get(crate::openapi::serve))
        .route("/control/v1", any(not_found))
        .route("/control/v1/{*rest}", any(not_found))
        .method_not_allowed_fallback(|| async { ControlError::MethodNotAllowed })
        .with_state(state)
        .layer(axum::middleware::from_fn(run_to_completion))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
}

/// Runs each request on a task of its own, so a caller that goes away mid-request (a wallet
/// daemon killed while its credit waits) does not cancel it half-way: a command whose admission
/// has begun is carried through to the journal or refused, never dropped at an `.await`. The
/// caller retries with the same idempotency key, which the engine applies once.
async fn run_to_completion(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(ControlError::Unavailable),
    }
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
    /// is credited once. Operators' ids are below 2^61; 2^61 to 2^62 are approved
    /// adjustments'; from 2^62 to 2^63-1 they are the wallet daemons' (their token only).
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
    /// What the ledger owes per currency (every account's available plus locked), for the
    /// wallets' reconciliation against the chain.
    liabilities: Vec<LiabilityJson>,
}

/// One currency's liabilities in the status.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LiabilityJson {
    /// Currency code.
    currency: String,
    /// Decimals of the minor unit.
    precision: u32,
    /// The total in minor units (a decimal integer string: it may exceed 2^53).
    total_minor: String,
}

/// One market in the status.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MarketStatusJson {
    /// Name, e.g. `btcusd`.
    name: String,
    /// Engine id.
    id: u32,
    /// `enabled`, `hidden`, `disabled`, or `halted` while locked (halted).
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
/// or halted) and last price, the accounts whose kill switch is on, and what the ledger owes
/// per currency. It reads the views
/// (never the matching thread), so it answers while the engine is busy or stopped: only the
/// caller's admission fails it.
#[utoipa::path(get, path = "/control/v1/status", tag = "control",
    security(("bearer" = [])),
    responses((status = 200, body = StatusJson), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn status(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
) -> Result<Json<StatusJson>, ControlError> {
    let access = &state.access;
    access
        .admit(&headers, &client, Permission::ExchangeRead, "status")
        .await?;
    let engine_seq = state
        .engine
        .stats()
        .last_seq
        .load(std::sync::atomic::Ordering::Acquire);
    // From the views: released (in `durable` mode, durable) state, never the matching thread.
    let status = state.engine.read(|views| {
        let markets = state
            .catalog
            .load()
            .markets()
            .iter()
            .map(|market| {
                let view = views.market(market.spec.market).unwrap_or_default();
                MarketStatusJson {
                    name: market.name.clone(),
                    id: market.spec.market.0,
                    state: view.state_name(),
                    last_price: view
                        .last_price
                        .map(|p| market.units.price_decimal(p).normalize().to_string()),
                }
            })
            .collect();
        let mut kill_switches: Vec<u32> = views.kill_switches().map(|a| a.0).collect();
        kill_switches.sort_unstable();
        let liabilities = state
            .catalog
            .load()
            .currencies()
            .iter()
            .map(|currency| LiabilityJson {
                currency: currency.code.clone(),
                precision: currency.scale.scale,
                total_minor: views.liabilities(currency.id).to_string(),
            })
            .collect();
        StatusJson {
            liabilities,
            applied_seq: views.applied_seq(),
            engine_seq,
            live_orders: u32::try_from(views.orders().open_count()).unwrap_or(u32::MAX),
            markets,
            kill_switches,
        }
    });
    Ok(Json(status))
}

/// Credits a deposit (once per `deposit_id`). Operators' ids are below 2^61 (422
/// `control.deposit.reserved_id` up to 2^62, the adjustments' range, and
/// `control.deposit.wallet_id` above); the wallet daemons' token credits ids from 2^62 only.
#[utoipa::path(post, path = "/control/v1/deposits", tag = "control",
    request_body = DepositRequest, security(("bearer" = [])),
    responses((status = 200, body = SeqJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn deposit(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SeqJson>, ControlError> {
    let access = &state.access;
    let caller = access
        .admit(&headers, &client, Permission::DepositCredit, "deposits")
        .await?;
    let request: DepositRequest = parse_body(body).await?;
    let currency = state
        .catalog
        .load()
        .currency(&request.currency)
        .cloned()
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
    check_deposit_id(&caller, request.deposit_id)?;
    let minor = currency
        .scale
        .to_minor(amount)
        .map_err(|e| ControlError::Unprocessable(format!("amount: {e}")))?;
    let executed = execute_as(
        &state,
        caller.actor(),
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
    client: Client,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<SeqJson>, ControlError> {
    let target = path
        .as_ref()
        .map_or_else(|_| "market".to_owned(), |p| format!("market:{}", p.0.0));
    let caller = state
        .access
        .admit(&headers, &client, Permission::MarketManage, &target)
        .await?;
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
    let executed = execute_as(&state, caller.actor(), command).await?;
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
    client: Client,
    headers: HeaderMap,
    account: Result<Path<u32>, PathRejection>,
    body: Body,
) -> Result<Json<SeqJson>, ControlError> {
    let target = account_target(&account);
    let caller = state
        .access
        .admit(&headers, &client, Permission::AccountKillSwitch, &target)
        .await?;
    let Path(account) = account.map_err(path_error)?;
    let request: KillSwitchRequest = parse_body(body).await?;
    let executed = execute_as(
        &state,
        caller.actor(),
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
    client: Client,
    headers: HeaderMap,
    account: Result<Path<u32>, PathRejection>,
    body: Body,
) -> Result<Json<CancelAllJson>, ControlError> {
    let target = account_target(&account);
    let caller = state
        .access
        .admit(&headers, &client, Permission::AccountKillSwitch, &target)
        .await?;
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
    let executed = execute_as(
        &state,
        caller.actor(),
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

/// Refuses a deposit id outside the caller's range: the wallet daemons' token credits ids
/// from [`WALLET_DEPOSIT_IDS_FROM`] only; people use ids below [`ADJUSTMENT_KEYS_FROM`] (the
/// range between is approved adjustments').
fn check_deposit_id(caller: &Caller, deposit_id: u64) -> Result<(), ControlError> {
    let wallet_id = deposit_id >= WALLET_DEPOSIT_IDS_FROM;
    match caller {
        Caller::Wallet if !wallet_id => Err(ControlError::Forbidden(Permission::DepositCredit)),
        Caller::Wallet => Ok(()),
        _ if wallet_id => Err(ControlError::WalletDepositId(deposit_id)),
        _ if deposit_id >= ADJUSTMENT_KEYS_FROM => Err(ControlError::ReservedDepositId(deposit_id)),
        _ => Ok(()),
    }
}

/// `account:<id>` for the audit, from the path (or `account` when it does not parse).
fn account_target(account: &Result<Path<u32>, PathRejection>) -> String {
    account
        .as_ref()
        .map_or_else(|_| "account".to_owned(), |p| format!("account:{}", p.0))
}

fn market_id(
    state: &ControlState,
    name: &str,
) -> Result<peregrine_hotpath::MarketId, ControlError> {
    state
        .catalog
        .load()
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

/// Sequences `command` as `actor` and waits for its outcome; an engine reject is an error.
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
