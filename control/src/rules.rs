//! Runtime rules under four-eyes: withdrawal limits by KYC level
//! (`/control/v1/withdraw-limits`) and the fee volume tiers (`/control/v1/fee-tiers`). One
//! operator proposes, a second approves (never the proposer: [`crate::proposals`]); an approved
//! proposal is in force at once (the newest approved per key: a level and currency, the one
//! schedule), read by the withdrawal desk and the fee-tier job ([`crate::fee_tiers`]).
//!
//! A limit is one level's 24-hour and 30-day limits in one currency, decimal strings exact in
//! the currency's units, the 30-day one at least the 24-hour one; levels 1 to [`LEVEL_MAX`]
//! (level 0 never withdraws once a currency has limits). The fee volume tiers are a currency
//! (volumes count the markets quoted in it), thresholds of trailing 30-day traded volume, each
//! naming a fee tier (ascending, at most `MAX_FEE_TIERS`), and user groups (the private
//! `fee_group` label) pinned to a tier.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use peregrine_auth::rbac::Permission;
use peregrine_auth::store::{
    FeeTierSchedule, GroupTier, Proposal, ProposalKind, ProposalRow, VolumeTier, WithdrawLimit,
};
use peregrine_core::catalog::Currency;
use peregrine_hotpath::edge::parse_decimal;
use peregrine_hotpath::{Amount, MAX_FEE_TIERS};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::access::Client;
use crate::adjustments::{now_ms, operators};
use crate::api::{ControlState, parse_body};
use crate::error::{ControlError, ErrorBody};
use crate::proposals;

/// The highest KYC level a limit names.
pub const LEVEL_MAX: u8 = 15;
/// Pinned groups one schedule names, at most.
pub const GROUPS_MAX: usize = 32;
/// Longest group name, characters.
pub const GROUP_CHARS_MAX: usize = 64;
/// Most proposals one list answers.
pub const LIST_ROWS_MAX: i64 = 500;

/// The routes (state still to be given).
pub(crate) fn routes() -> Router<ControlState> {
    Router::new()
        .route(
            "/control/v1/withdraw-limits",
            post(propose_limit).get(list_limits),
        )
        .route(
            "/control/v1/withdraw-limits/{id}/{action}",
            post(review_limit),
        )
        .route("/control/v1/fee-tiers", post(propose_tiers).get(list_tiers))
        .route("/control/v1/fee-tiers/{id}/{action}", post(review_tiers))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        propose_limit,
        list_limits,
        review_limit,
        propose_tiers,
        list_tiers,
        review_tiers
    ),
    components(schemas(VolumeTierJson, GroupTierJson))
)]
pub(crate) struct RulesDoc;

/// Which proposals to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RulesListQuery {
    /// `pending` (the default), `approved` or `rejected`.
    state: Option<String>,
}

/// A proposal's review, as every rule shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReviewJson {
    /// Its id.
    id: i64,
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
}

impl ReviewJson {
    fn of(row: &ProposalRow) -> ReviewJson {
        ReviewJson {
            id: row.id,
            state: row.state.as_str().to_owned(),
            creator: row.creator.clone(),
            created_at_ms: row.created_at_ms,
            reviewer: row.reviewer.clone(),
            reviewed_at_ms: row.reviewed_at_ms,
        }
    }
}

/// Withdrawal limits to propose: one KYC level's, in one currency.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WithdrawLimitRequest {
    /// The KYC level (1 to 15; level 0 never withdraws).
    #[schema(minimum = 1, maximum = 15)]
    level: u8,
    /// Currency code, e.g. `eth`.
    currency: String,
    /// Most withdrawn over the last 24 hours, a decimal string exact in the currency's units.
    limit_24h: String,
    /// Most withdrawn over the last 30 days (at least `limit_24h`), as `limit_24h`.
    limit_30d: String,
}

/// Withdrawal limits proposed, and their review.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WithdrawLimitJson {
    #[serde(flatten)]
    review: ReviewJson,
    /// The KYC level.
    level: u8,
    /// Currency code.
    currency: String,
    /// Most withdrawn over the last 24 hours.
    limit_24h: String,
    /// Most withdrawn over the last 30 days.
    limit_30d: String,
}

impl WithdrawLimitJson {
    fn of(proposal: Proposal<WithdrawLimit>) -> WithdrawLimitJson {
        let value = proposal.value;
        WithdrawLimitJson {
            review: ReviewJson::of(&proposal.row),
            level: value.level,
            currency: value.currency,
            limit_24h: value.limit_24h,
            limit_30d: value.limit_30d,
        }
    }
}

/// A threshold of trailing 30-day traded volume and the tier it gives.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VolumeTierJson {
    /// Volume in the schedule's currency, a decimal string.
    volume: String,
    /// The fee tier (0 to 7).
    #[schema(maximum = 7)]
    tier: u8,
}

/// A user group (the private `fee_group` label's value) pinned to a tier.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupTierJson {
    /// The group, 1 to 64 characters of `a-z`, `0-9`, `-`, `_`.
    group: String,
    /// The fee tier (0 to 7).
    #[schema(maximum = 7)]
    tier: u8,
}

/// The fee volume tiers to propose (the whole schedule: it replaces the one in force).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeeTiersRequest {
    /// The currency volumes count in: trades of the markets quoted in it count.
    currency: String,
    /// Thresholds, volumes ascending, at most 8.
    thresholds: Vec<VolumeTierJson>,
    /// Pinned groups, at most 32, each named once.
    #[serde(default)]
    groups: Vec<GroupTierJson>,
}

/// Fee volume tiers proposed, and their review.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FeeTiersJson {
    #[serde(flatten)]
    review: ReviewJson,
    /// The currency volumes count in.
    currency: String,
    /// Thresholds, ascending.
    thresholds: Vec<VolumeTierJson>,
    /// Pinned groups.
    groups: Vec<GroupTierJson>,
}

impl FeeTiersJson {
    fn of(proposal: Proposal<FeeTierSchedule>) -> FeeTiersJson {
        let value = proposal.value;
        FeeTiersJson {
            review: ReviewJson::of(&proposal.row),
            currency: value.currency,
            thresholds: value
                .thresholds
                .into_iter()
                .map(|t| VolumeTierJson {
                    volume: t.volume,
                    tier: t.tier,
                })
                .collect(),
            groups: value
                .groups
                .into_iter()
                .map(|g| GroupTierJson {
                    group: g.group,
                    tier: g.tier,
                })
                .collect(),
        }
    }
}

fn invalid(field: &'static str, why: &str) -> ControlError {
    ControlError::InvalidField {
        field,
        why: why.to_owned(),
    }
}

/// `text` as an exact, non-negative amount of `currency`, refused by `field`.
pub(crate) fn amount_of(
    currency: &Currency,
    field: &'static str,
    text: &str,
) -> Result<Amount, ControlError> {
    let value = parse_decimal(text).map_err(|e| invalid(field, &e.to_string()))?;
    if value.is_sign_negative() {
        return Err(invalid(field, "must not be negative"));
    }
    currency
        .scale
        .to_minor(value)
        .map_err(|e| invalid(field, &e.to_string()))
}

/// The currency as the catalog holds it now (it may have been created at runtime).
fn currency(state: &ControlState, code: &str) -> Result<Currency, ControlError> {
    state
        .catalog
        .load()
        .currency(code)
        .cloned()
        .ok_or_else(|| ControlError::UnknownCurrency(code.to_owned()))
}

fn checked_limit(
    state: &ControlState,
    request: WithdrawLimitRequest,
) -> Result<WithdrawLimit, ControlError> {
    if request.level == 0 || request.level > LEVEL_MAX {
        return Err(invalid(
            "level",
            "must be 1 to 15 (level 0 never withdraws)",
        ));
    }
    let unit = currency(state, &request.currency)?;
    let day = amount_of(&unit, "limit_24h", &request.limit_24h)?;
    let month = amount_of(&unit, "limit_30d", &request.limit_30d)?;
    if month < day {
        return Err(invalid("limit_30d", "must be at least limit_24h"));
    }
    Ok(WithdrawLimit {
        level: request.level,
        currency: request.currency,
        limit_24h: request.limit_24h,
        limit_30d: request.limit_30d,
    })
}

fn checked_tiers(
    state: &ControlState,
    request: FeeTiersRequest,
) -> Result<FeeTierSchedule, ControlError> {
    let unit = currency(state, &request.currency)?;
    if request.thresholds.len() > MAX_FEE_TIERS {
        return Err(invalid("thresholds", "at most 8"));
    }
    let mut previous: Option<Amount> = None;
    for threshold in &request.thresholds {
        let volume = amount_of(&unit, "thresholds", &threshold.volume)?;
        if previous.is_some_and(|p| p >= volume) {
            return Err(invalid("thresholds", "volumes must ascend"));
        }
        previous = Some(volume);
    }
    let tiers = request.thresholds.iter().map(|t| t.tier);
    if tiers
        .chain(request.groups.iter().map(|g| g.tier))
        .any(|tier| usize::from(tier) >= MAX_FEE_TIERS)
    {
        return Err(invalid("tier", "is above the highest fee tier, 7"));
    }
    check_groups(&request.groups)?;
    Ok(FeeTierSchedule {
        currency: request.currency,
        thresholds: request
            .thresholds
            .into_iter()
            .map(|t| VolumeTier {
                volume: t.volume,
                tier: t.tier,
            })
            .collect(),
        groups: request
            .groups
            .into_iter()
            .map(|g| GroupTier {
                group: g.group,
                tier: g.tier,
            })
            .collect(),
    })
}

fn check_groups(groups: &[GroupTierJson]) -> Result<(), ControlError> {
    if groups.len() > GROUPS_MAX {
        return Err(invalid("groups", "at most 32"));
    }
    let named = |g: &str| {
        (1..=GROUP_CHARS_MAX).contains(&g.chars().count())
            && g.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    if !groups.iter().all(|g| named(&g.group)) {
        return Err(invalid(
            "groups",
            "a group is 1 to 64 characters of a-z, 0-9, - and _",
        ));
    }
    let mut names: Vec<&str> = groups.iter().map(|g| g.group.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() != groups.len() {
        return Err(invalid("groups", "each group is named once"));
    }
    Ok(())
}

/// Stores `payload` pending as `creator`'s proposal of `kind`; the proposal.
async fn propose<T: Serialize + DeserializeOwned>(
    state: &ControlState,
    creator: &str,
    kind: ProposalKind,
    payload: &T,
) -> Result<Proposal<T>, ControlError> {
    let store = operators(state)?.identity().store();
    let unavailable = |_| ControlError::StoreUnavailable;
    let id = store
        .propose(kind, payload, creator, now_ms())
        .await
        .map_err(unavailable)?;
    store
        .proposal_of(kind, id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| proposals::unknown(kind, id))
}

async fn list<T: DeserializeOwned>(
    state: &ControlState,
    client: &Client,
    headers: &HeaderMap,
    query: Result<Query<RulesListQuery>, QueryRejection>,
    kind: ProposalKind,
) -> Result<Vec<Proposal<T>>, ControlError> {
    state
        .access
        .admit(headers, client, Permission::ExchangeRead, kind.as_str())
        .await?;
    let Query(query) = query.map_err(proposals::query_error)?;
    let wanted = proposals::listed_state(query.state.as_deref())?;
    operators(state)?
        .identity()
        .store()
        .proposals_of(kind, wanted, LIST_ROWS_MAX)
        .await
        .map_err(|_| ControlError::StoreUnavailable)
}

/// Reviews a rule: an approval puts it in force (nothing is journaled: the rule is read where
/// it applies), a rejection ends it.
async fn review<T: DeserializeOwned>(
    state: &ControlState,
    client: &Client,
    headers: &HeaderMap,
    path: Result<Path<(i64, String)>, PathRejection>,
    kind: ProposalKind,
    permission: Permission,
) -> Result<Proposal<T>, ControlError> {
    let admitted = proposals::admit_review(state, client, headers, path, kind, permission).await?;
    let reviewer = proposals::uid_of(&admitted.caller, permission)?;
    let row = proposals::review(state, reviewer, admitted.row, admitted.to).await?;
    tracing::info!(
        kind = kind.as_str(),
        id = row.id,
        state = row.state.as_str(),
        reviewer,
        "rule reviewed"
    );
    operators(state)?
        .identity()
        .store()
        .proposal_of(kind, row.id)
        .await
        .map_err(|_| ControlError::StoreUnavailable)?
        .ok_or_else(|| proposals::unknown(kind, row.id))
}

/// Proposes one KYC level's withdrawal limits in one currency; pending until a second operator
/// approves them.
#[utoipa::path(post, path = "/control/v1/withdraw-limits", tag = "control",
    request_body = WithdrawLimitRequest, security(("bearer" = [])),
    responses((status = 201, body = WithdrawLimitJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn propose_limit(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<WithdrawLimitJson>), ControlError> {
    let permission = Permission::LimitCreate;
    let caller = state
        .access
        .admit(&headers, &client, permission, "withdraw_limit")
        .await?;
    let creator = proposals::uid_of(&caller, permission)?;
    let request: WithdrawLimitRequest = parse_body(body).await?;
    let limit = checked_limit(&state, request)?;
    let proposal = propose(&state, creator, ProposalKind::WithdrawLimit, &limit).await?;
    Ok((StatusCode::CREATED, Json(WithdrawLimitJson::of(proposal))))
}

/// Lists withdrawal-limit proposals in one state (pending by default), oldest first, at most
/// 500; the approved ones, newest per level and currency, are in force.
#[utoipa::path(get, path = "/control/v1/withdraw-limits", tag = "control",
    params(RulesListQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<WithdrawLimitJson>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn list_limits(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    query: Result<Query<RulesListQuery>, QueryRejection>,
) -> Result<Json<Vec<WithdrawLimitJson>>, ControlError> {
    let kind = ProposalKind::WithdrawLimit;
    let rows = list(&state, &client, &headers, query, kind).await?;
    Ok(Json(rows.into_iter().map(WithdrawLimitJson::of).collect()))
}

/// Approves another operator's pending withdrawal limits (in force at once) or rejects them.
/// The proposer can never review them (refused and audited).
#[utoipa::path(post, path = "/control/v1/withdraw-limits/{id}/{action}", tag = "control",
    params(("id" = i64, Path, description = "proposal id"),
        ("action" = crate::adjustments::ReviewAction, Path, description = "approve or reject")),
    security(("bearer" = [])),
    responses((status = 200, body = WithdrawLimitJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn review_limit(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    path: Result<Path<(i64, String)>, PathRejection>,
) -> Result<Json<WithdrawLimitJson>, ControlError> {
    let (kind, permission) = (ProposalKind::WithdrawLimit, Permission::LimitApprove);
    let proposal = review(&state, &client, &headers, path, kind, permission).await?;
    Ok(Json(WithdrawLimitJson::of(proposal)))
}

/// Proposes the fee volume tiers (the whole schedule); pending until a second operator
/// approves it.
#[utoipa::path(post, path = "/control/v1/fee-tiers", tag = "control",
    request_body = FeeTiersRequest, security(("bearer" = [])),
    responses((status = 201, body = FeeTiersJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn propose_tiers(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<FeeTiersJson>), ControlError> {
    let permission = Permission::FeeCreate;
    let caller = state
        .access
        .admit(&headers, &client, permission, "fee_tiers")
        .await?;
    let creator = proposals::uid_of(&caller, permission)?;
    let request: FeeTiersRequest = parse_body(body).await?;
    let schedule = checked_tiers(&state, request)?;
    let proposal = propose(&state, creator, ProposalKind::FeeTiers, &schedule).await?;
    Ok((StatusCode::CREATED, Json(FeeTiersJson::of(proposal))))
}

/// Lists fee-tier proposals in one state (pending by default), oldest first, at most 500; the
/// newest approved is in force.
#[utoipa::path(get, path = "/control/v1/fee-tiers", tag = "control",
    params(RulesListQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<FeeTiersJson>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn list_tiers(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    query: Result<Query<RulesListQuery>, QueryRejection>,
) -> Result<Json<Vec<FeeTiersJson>>, ControlError> {
    let rows = list(&state, &client, &headers, query, ProposalKind::FeeTiers).await?;
    Ok(Json(rows.into_iter().map(FeeTiersJson::of).collect()))
}

/// Approves another operator's pending fee volume tiers (in force from the tier job's next
/// run) or rejects them. The proposer can never review them (refused and audited).
#[utoipa::path(post, path = "/control/v1/fee-tiers/{id}/{action}", tag = "control",
    params(("id" = i64, Path, description = "proposal id"),
        ("action" = crate::adjustments::ReviewAction, Path, description = "approve or reject")),
    security(("bearer" = [])),
    responses((status = 200, body = FeeTiersJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn review_tiers(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    path: Result<Path<(i64, String)>, PathRejection>,
) -> Result<Json<FeeTiersJson>, ControlError> {
    let (kind, permission) = (ProposalKind::FeeTiers, Permission::FeeApprove);
    let proposal = review(&state, &client, &headers, path, kind, permission).await?;
    Ok(Json(FeeTiersJson::of(proposal)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// Each rules operation documents what its handler can answer: admission (401, 403, 503
    /// when identity's store cannot name the operator) and, beside each line, the rest.
    #[test]
    fn each_rules_operation_documents_the_statuses_its_handler_answers() {
        let document = serde_json::to_value(RulesDoc::openapi()).unwrap();
        // Body (400, 413), currency (404), a field (422), store (503).
        let propose: &[&str] = &["201", "400", "401", "403", "404", "413", "422", "503"];
        // The state filter (400).
        let list: &[&str] = &["200", "400", "401", "403", "503"];
        // Path and action (400), own proposal (403), id (404), reviewed (409).
        let review: &[&str] = &["200", "400", "401", "403", "404", "409", "503"];
        let cases: [(&str, &str, &[&str]); 6] = [
            ("/control/v1/withdraw-limits", "post", propose),
            ("/control/v1/withdraw-limits", "get", list),
            ("/control/v1/withdraw-limits/{id}/{action}", "post", review),
            ("/control/v1/fee-tiers", "post", propose),
            ("/control/v1/fee-tiers", "get", list),
            ("/control/v1/fee-tiers/{id}/{action}", "post", review),
        ];
        crate::openapi::tests::assert_cases(&document, &cases);
    }

    #[test]
    fn groups_are_named_once_in_few_safe_characters() {
        let group = |name: &str| GroupTierJson {
            group: name.to_owned(),
            tier: 1,
        };
        assert!(check_groups(&[group("vip"), group("market-maker")]).is_ok());
        for bad in [
            vec![group("vip"), group("vip")],
            vec![group("")],
            vec![group("VIP")],
            vec![group(&"a".repeat(GROUP_CHARS_MAX + 1))],
        ] {
            match check_groups(&bad) {
                Err(ControlError::InvalidField { field, .. }) => assert_eq!(field, "groups"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
