//! Runtime reference data: a market's state and risk parameters
//! (`PATCH /control/v1/markets/{market}`), and fee changes under four-eyes
//! (`POST /control/v1/fees`, `GET /control/v1/fees`, `POST /control/v1/fees/{id}/{action}`).
//!
//! Every change is a journaled command named after the operator who made it, so a replay (and
//! a snapshot taken after it) reproduces it: `MarketUpdate` and `MarketStateSet` for a market,
//! `FeeScheduleUpdate` for an approved fee change (as the approver; the proposer stays in the
//! store and the audit). Each sets absolute values, so a retried request sets the same values
//! again and changes nothing more: the command is its own idempotency key. A fee change is
//! keyed by its id in the store, which records the journal sequence it became
//! (`applied_seq`): an approval retried after a crash applies it then, never a second time.
//!
//! A bad value is refused before anything is journaled, with `control.reference.invalid_field`
//! naming the field (`field` in the error body too): a decimal that is not an exact multiple
//! of the market's tick or lot, a maximum price or amount lowered (resting orders were
//! accepted under it), or whatever [`peregrine_hotpath::check_risk`] refuses. The engine checks
//! again and refuses with `control.command.invalid_market_spec`, so nothing that passes here
//! unchecked can change its state.
//!
//! Market states (see `peregrine_hotpath`'s docs): `enabled` (listed, trading), `hidden`
//! (trading, left out of the public market list), `disabled` (left out of the list; new
//! orders and replaces refused with `market.order.market_disabled`), `locked` (listed as
//! `halted`; new orders and replaces refused with `market.order.market_halted`: a halt).
//! Cancels work in every state.
//!
//! Fee groups are the engine's fee tiers (`0..MAX_FEE_TIERS`; every account starts in group
//! 0): rates are decimal fractions of the amount received (`"0.001"` is 0.1 %), exact in parts
//! per million, at most `MAX_FEE_PPM` (10 %).

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use peregrine_auth::rbac::Permission;
use peregrine_auth::store::{FeeChangeRow, NewFeeChange, ProposalKind, ProposalState};
use peregrine_core::catalog::Market;
use peregrine_hotpath::edge::parse_decimal;
use peregrine_hotpath::{
    CommandKind, FeeRates, MAX_FEE_PPM, MAX_FEE_TIERS, MarketRisk, MarketState, MarketUpdate,
    check_risk,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Caller, Client};
use crate::adjustments::{now_ms, operators};
use crate::api::{ControlState, execute_as, parse_body, path_error};
use crate::error::{ControlError, ErrorBody};
use crate::proposals::{self, uid_of};

/// Most fee changes one list answers.
pub const FEE_LIST_ROWS_MAX: i64 = 500;
/// Parts per million in one: a fee rate's decimal scale.
const PPM: u32 = 1_000_000;

/// A change of a market: any of its state and risk parameters (at least one).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MarketPatch {
    /// `enabled`, `hidden`, `disabled` or `locked`.
    state: Option<String>,
    /// Highest acceptable price (decimal string, a multiple of the tick); may only rise.
    max_price: Option<String>,
    /// Largest amount of one order (decimal string, a multiple of the lot); may only rise.
    max_amount: Option<String>,
    /// Largest notional of one order, in the quote currency (decimal string).
    max_notional: Option<String>,
    /// Price band in basis points of the reference price; 0 is no band.
    #[schema(format = "uint32", maximum = 4294967295_u64)]
    band_bps: Option<u32>,
    /// Reference price until the first trade (decimal string, a multiple of the tick).
    reference_price: Option<String>,
}

/// A market's state and risk parameters, as this request left them.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MarketRefJson {
    /// Name, e.g. `btcusd`.
    market: String,
    /// `enabled`, `hidden`, `disabled` or `locked`.
    state: &'static str,
    /// Highest acceptable price.
    max_price: String,
    /// Largest amount of one order.
    max_amount: String,
    /// Largest notional of one order.
    max_notional: String,
    /// Price band, basis points.
    band_bps: u32,
    /// Reference price until the first trade.
    reference_price: String,
    /// The journal sequence of the last command this request applied.
    seq: u64,
}

/// Changes a market's state and/or risk parameters: each a journaled command.
#[utoipa::path(patch, path = "/control/v1/markets/{market}", tag = "control",
    params(("market" = String, Path, description = "market name, e.g. btcusd")),
    request_body = MarketPatch, security(("bearer" = [])),
    responses((status = 200, body = MarketRefJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn patch_market(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<MarketRefJson>, ControlError> {
    let target = path
        .as_ref()
        .map_or_else(|_| "market".to_owned(), |p| format!("market:{}", p.0));
    let caller = state
        .access
        .admit(&headers, &client, Permission::ReferenceManage, &target)
        .await?;
    let Path(name) = path.map_err(path_error)?;
    let market = state
        .catalog
        .load()
        .market(&name)
        .ok_or_else(|| ControlError::UnknownMarket(name.clone()))?
        .clone();
    let patch: MarketPatch = parse_body(body).await?;
    let new_state = patch
        .state
        .as_deref()
        .map(|s| {
            MarketState::parse(s)
                .ok_or_else(|| invalid("state", "is not enabled, hidden, disabled or locked"))
        })
        .transpose()?;
    let current = current_risk(&state, &market);
    let risk = patched_risk(&state, &market, current, &patch)?;
    if new_state.is_none() && !patch.touches_risk() {
        return Err(ControlError::BadRequest(
            "body: nothing to change (state, max_price, max_amount, max_notional, band_bps, \
             reference_price)"
                .to_owned(),
        ));
    }
    let id = market.spec.market;
    let mut seq = 0;
    if patch.touches_risk() {
        let update = CommandKind::MarketUpdate(MarketUpdate { market: id, risk });
        seq = execute_as(&state, caller.actor(), update).await?.seq;
    }
    if let Some(new_state) = new_state {
        let set = CommandKind::MarketStateSet {
            market: id,
            state: new_state,
        };
        seq = execute_as(&state, caller.actor(), set).await?.seq;
    }
    // What this request set, else what the views show (released state).
    let shown = new_state.unwrap_or_else(|| {
        state
            .engine
            .read(|views| views.market(id).map(|v| v.state))
            .unwrap_or_default()
    });
    Ok(Json(MarketRefJson::of(&state, &market, shown, risk, seq)))
}

impl MarketPatch {
    fn touches_risk(&self) -> bool {
        self.max_price.is_some()
            || self.max_amount.is_some()
            || self.max_notional.is_some()
            || self.band_bps.is_some()
            || self.reference_price.is_some()
    }
}

impl MarketRefJson {
    fn of(
        state: &ControlState,
        market: &Market,
        shown: MarketState,
        risk: MarketRisk,
        seq: u64,
    ) -> MarketRefJson {
        let units = &market.units;
        let notional = state.catalog.load().currency(&market.quote).map_or_else(
            || Decimal::from(risk.max_notional.0),
            |c| c.scale.to_decimal(risk.max_notional),
        );
        MarketRefJson {
            market: market.name.clone(),
            state: shown.as_str(),
            max_price: units.price_decimal(risk.max_price).normalize().to_string(),
            max_amount: units.qty_decimal(risk.max_qty).normalize().to_string(),
            max_notional: notional.normalize().to_string(),
            band_bps: risk.band_bps,
            reference_price: units
                .price_decimal(risk.reference_price)
                .normalize()
                .to_string(),
            seq,
        }
    }
}

/// The market's risk parameters as the views last saw them (released state), else the
/// catalog's.
fn current_risk(state: &ControlState, market: &Market) -> MarketRisk {
    state
        .engine
        .read(|views| views.market(market.spec.market).and_then(|v| v.risk))
        .unwrap_or(market.spec.risk)
}

/// `current` with the patch's values, each checked and named when refused.
fn patched_risk(
    state: &ControlState,
    market: &Market,
    current: MarketRisk,
    patch: &MarketPatch,
) -> Result<MarketRisk, ControlError> {
    let units = &market.units;
    let decimal = |field: &'static str, text: &str| {
        parse_decimal(text).map_err(|e| invalid(field, &e.to_string()))
    };
    let mut risk = current;
    if let Some(text) = &patch.max_price {
        risk.max_price = units
            .price(decimal("max_price", text)?)
            .map_err(|e| invalid("max_price", &e.to_string()))?;
    }
    if let Some(text) = &patch.max_amount {
        risk.max_qty = units
            .qty(decimal("max_amount", text)?)
            .map_err(|e| invalid("max_amount", &e.to_string()))?;
    }
    if let Some(text) = &patch.max_notional {
        let quote = state
            .catalog
            .load()
            .currency(&market.quote)
            .cloned()
            .ok_or_else(|| ControlError::UnknownCurrency(market.quote.clone()))?;
        risk.max_notional = quote
            .scale
            .to_minor(decimal("max_notional", text)?)
            .map_err(|e| invalid("max_notional", &e.to_string()))?;
    }
    if let Some(band_bps) = patch.band_bps {
        risk.band_bps = band_bps;
    }
    if let Some(text) = &patch.reference_price {
        risk.reference_price = units
            .price(decimal("reference_price", text)?)
            .map_err(|e| invalid("reference_price", &e.to_string()))?;
    }
    // Resting orders were accepted under the old maxima: every amount they can produce must
    // stay bounded, so the maxima only rise (the engine refuses the same).
    if risk.max_price < current.max_price {
        return Err(invalid("max_price", "may only be raised"));
    }
    if risk.max_qty < current.max_qty {
        return Err(invalid("max_amount", "may only be raised"));
    }
    let (base_per_lot, quote_per_tick_lot) =
        (market.spec.base_per_lot, market.spec.quote_per_tick_lot);
    check_risk(base_per_lot, quote_per_tick_lot, &risk)
        .map_err(|field| invalid(field.as_str(), "is out of range for this market"))?;
    Ok(risk)
}

fn invalid(field: &'static str, why: &str) -> ControlError {
    ControlError::InvalidField {
        field,
        why: why.to_owned(),
    }
}

/// A fee change to propose: one market's rates for one fee group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeeChangeRequest {
    /// Market name, e.g. `btcusd`.
    market: String,
    /// The fee group (`0` is everyone's until moved; at most 7).
    #[schema(maximum = 7)]
    group: u8,
    /// Maker rate, a decimal fraction of the amount received (`"0.001"` is 0.1 %), at most
    /// `"0.1"`, exact in millionths.
    maker_fee: String,
    /// Taker rate, as `maker_fee`.
    taker_fee: String,
}

/// Which fee changes to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FeeListQuery {
    /// `pending` (the default), `approved` or `rejected`.
    state: Option<String>,
}

/// A fee change.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FeeChangeJson {
    /// Its id.
    id: i64,
    /// Market name.
    market: String,
    /// The fee group.
    group: u8,
    /// Maker rate (decimal fraction).
    maker_fee: String,
    /// Taker rate (decimal fraction).
    taker_fee: String,
    /// `pending`, `approved` or `rejected`.
    state: String,
    /// The proposing operator's uid.
    creator: String,
    /// Proposed, Unix ms.
    created_at_ms: i64,
    /// The reviewing operator's uid.
    reviewer: Option<String>,
    /// Reviewed, Unix ms.
    reviewed_at_ms: Option<i64>,
    /// The journal sequence of the `FeeScheduleUpdate` it became, once applied.
    applied_seq: Option<u64>,
}

impl FeeChangeJson {
    fn of(row: FeeChangeRow) -> FeeChangeJson {
        FeeChangeJson {
            id: row.id,
            market: row.market,
            group: row.group,
            maker_fee: rate_text(row.maker_ppm),
            taker_fee: rate_text(row.taker_ppm),
            state: row.state.as_str().to_owned(),
            creator: row.creator,
            created_at_ms: row.created_at_ms,
            reviewer: row.reviewer,
            reviewed_at_ms: row.reviewed_at_ms,
            applied_seq: row.applied_seq,
        }
    }
}

/// A rate in parts per million as a decimal fraction (`1000` -> `0.001`).
fn rate_text(ppm: u32) -> String {
    (Decimal::from(ppm) / Decimal::from(PPM))
        .normalize()
        .to_string()
}

/// Parses a rate (decimal fraction) into parts per million: exact, at most `MAX_FEE_PPM`.
pub(crate) fn parse_rate(field: &'static str, text: &str) -> Result<u32, ControlError> {
    let value = parse_decimal(text).map_err(|e| invalid(field, &e.to_string()))?;
    let ppm = value * Decimal::from(PPM);
    if value.is_sign_negative() || ppm.fract() != Decimal::ZERO {
        return Err(invalid(
            field,
            "must be a non-negative fraction exact in millionths",
        ));
    }
    let ppm = u32::try_from(ppm.trunc().mantissa())
        .ok()
        .filter(|ppm| *ppm <= MAX_FEE_PPM)
        .ok_or_else(|| invalid(field, "is above the highest fee, 0.1"))?;
    Ok(ppm)
}

/// Proposes a fee change; it is pending until a second operator approves it.
#[utoipa::path(post, path = "/control/v1/fees", tag = "control",
    request_body = FeeChangeRequest, security(("bearer" = [])),
    responses((status = 201, body = FeeChangeJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn propose_fee(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<FeeChangeJson>), ControlError> {
    let caller = state
        .access
        .admit(&headers, &client, Permission::FeeCreate, "fees")
        .await?;
    let creator = uid_of(&caller, Permission::FeeCreate)?;
    let request: FeeChangeRequest = parse_body(body).await?;
    if state.catalog.load().market(&request.market).is_none() {
        return Err(ControlError::UnknownMarket(request.market));
    }
    if usize::from(request.group) >= MAX_FEE_TIERS {
        return Err(invalid("group", "is above the highest fee group, 7"));
    }
    let new = NewFeeChange {
        market: &request.market,
        group: request.group,
        maker_ppm: parse_rate("maker_fee", &request.maker_fee)?,
        taker_ppm: parse_rate("taker_fee", &request.taker_fee)?,
        creator,
        now_ms: now_ms(),
    };
    let store = operators(&state)?.identity().store();
    let id = store
        .insert_fee_change(&new)
        .await
        .map_err(|_| ControlError::StoreUnavailable)?;
    let row = load(&state, id).await?;
    Ok((StatusCode::CREATED, Json(FeeChangeJson::of(row))))
}

/// Lists fee changes in one state (pending by default), oldest first, at most 500.
#[utoipa::path(get, path = "/control/v1/fees", tag = "control",
    params(FeeListQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<FeeChangeJson>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn list_fees(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    query: Result<Query<FeeListQuery>, QueryRejection>,
) -> Result<Json<Vec<FeeChangeJson>>, ControlError> {
    state
        .access
        .admit(&headers, &client, Permission::ExchangeRead, "fees")
        .await?;
    let Query(query) = query.map_err(proposals::query_error)?;
    let wanted = proposals::listed_state(query.state.as_deref())?;
    let rows = operators(&state)?
        .identity()
        .store()
        .fee_changes_in(wanted, FEE_LIST_ROWS_MAX)
        .await
        .map_err(|_| ControlError::StoreUnavailable)?;
    Ok(Json(rows.into_iter().map(FeeChangeJson::of).collect()))
}

async fn load(state: &ControlState, id: i64) -> Result<FeeChangeRow, ControlError> {
    operators(state)?
        .identity()
        .store()
        .fee_change(id)
        .await
        .map_err(|_| ControlError::StoreUnavailable)?
        .ok_or(ControlError::UnknownFeeChange(id))
}

/// Approves another operator's pending fee change and journals it, as the approver (retried
/// on an approved and applied one, it applies nothing more and answers the same change); or
/// rejects it: it will never apply. The creator can never review it (refused and audited).
#[utoipa::path(post, path = "/control/v1/fees/{id}/{action}", tag = "control",
    params(("id" = i64, Path, description = "fee change id"),
        ("action" = crate::adjustments::ReviewAction, Path, description = "approve or reject")),
    security(("bearer" = [])),
    responses((status = 200, body = FeeChangeJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn review_fee(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    path: Result<Path<(i64, String)>, PathRejection>,
) -> Result<Json<FeeChangeJson>, ControlError> {
    let kind = ProposalKind::FeeChange;
    let admitted = proposals::admit_review(
        &state,
        &client,
        &headers,
        path,
        kind,
        Permission::FeeApprove,
    )
    .await?;
    let reviewer = proposals::uid_of(&admitted.caller, Permission::FeeApprove)?;
    let reviewed = proposals::review(&state, reviewer, admitted.row, admitted.to).await?;
    let row = load(&state, reviewed.id).await?;
    if admitted.to == ProposalState::Approved {
        return apply(&state, &admitted.caller, row).await.map(Json);
    }
    Ok(Json(FeeChangeJson::of(row)))
}

/// Journals an approved change's `FeeScheduleUpdate` (as the approver) unless it was applied
/// already, and records the sequence it became.
///
/// The crash window between the journal and the store: the change is claimed first (the
/// sequence the views had applied is recorded). A retry that finds a claim and no sequence
/// does not journal again when the views saw this (market, group) updated to these rates after
/// the claim (it records that sequence), nor when a newer change of the same market and group
/// was claimed since (journaling this one would undo it: 409 `control.fee_change.superseded`).
async fn apply(
    state: &ControlState,
    caller: &Caller,
    row: FeeChangeRow,
) -> Result<FeeChangeJson, ControlError> {
    assert_eq!(row.state, ProposalState::Approved);
    if row.applied_seq.is_some() {
        return Ok(FeeChangeJson::of(row));
    }
    let market = state
        .catalog
        .load()
        .market(&row.market)
        .cloned()
        .ok_or_else(|| ControlError::UnknownMarket(row.market.clone()))?;
    let (market_id, rates) = (
        market.spec.market,
        FeeRates {
            maker_ppm: row.maker_ppm,
            taker_ppm: row.taker_ppm,
        },
    );
    let store = operators(state)?.identity().store();
    let unavailable = |_| ControlError::StoreUnavailable;
    let floor = state.engine.read(|views| views.applied_seq());
    let claimed = store
        .claim_fee_change(row.id, floor)
        .await
        .map_err(unavailable)?;
    if let (Some(_), Some(claimed)) = (row.claimed_seq, claimed) {
        if let Some(newer) = store
            .fee_change_superseded_by(&row)
            .await
            .map_err(unavailable)?
        {
            return Err(ControlError::FeeChangeSuperseded {
                id: row.id,
                by: newer.id,
            });
        }
        let seen = state
            .engine
            .read(|views| views.fee_update(market_id, row.group))
            .filter(|(seen, seq)| *seen == rates && *seq > claimed);
        if let Some((_, seq)) = seen {
            store
                .fee_change_applied(row.id, seq)
                .await
                .map_err(unavailable)?;
            return Ok(FeeChangeJson::of(load(state, row.id).await?));
        }
    }
    let command = CommandKind::FeeScheduleUpdate {
        market: market_id,
        tier: row.group,
        rates,
    };
    let executed = execute_as(state, caller.actor(), command).await?;
    store
        .fee_change_applied(row.id, executed.seq)
        .await
        .map_err(unavailable)?;
    let row = load(state, row.id).await?;
    Ok(FeeChangeJson::of(row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_exactly_in_millionths_and_name_the_field() {
        assert_eq!(parse_rate("maker_fee", "0.001").ok(), Some(1_000));
        assert_eq!(parse_rate("maker_fee", "0").ok(), Some(0));
        assert_eq!(parse_rate("maker_fee", "0.1").ok(), Some(MAX_FEE_PPM));
        for bad in ["0.1000001", "0.0000001", "-0.001", "1", "x", ""] {
            match parse_rate("taker_fee", bad) {
                Err(ControlError::InvalidField { field, .. }) => assert_eq!(field, "taker_fee"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(rate_text(1_000), "0.001");
        assert_eq!(rate_text(0), "0");
    }
}
