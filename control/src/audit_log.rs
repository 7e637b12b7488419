//! The audit chain for operators: `GET /control/v1/audit` pages it newest first with filters
//! (actor, action prefix, outcome, time), `GET /control/v1/audit/verify` walks it from the
//! first record and names the first broken one — what `peregrine audit verify` does on the
//! host, behind `audit.read`. Both reads are themselves audited (as every control call is).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use peregrine_auth::audit::{BrokenReason, ChainStatus, Outcome};
use peregrine_auth::rbac::Permission;
use peregrine_auth::store::{AuditFilter, AuditRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::Client;
use crate::api::ControlState;
use crate::error::{ControlError, ErrorBody};

/// Most records one page answers.
pub const AUDIT_PAGE_ROWS_MAX: u32 = 500;
/// Records a page answers when the caller names no limit.
const AUDIT_PAGE_ROWS_DEFAULT: u32 = 100;
/// Longest filter text, bytes (the columns are short).
const FILTER_BYTES_MAX: usize = 128;

/// Which records, and where the page starts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Exactly this actor: a uid, `break_glass`, `service:wallet`, `anonymous`.
    actor: Option<String>,
    /// Actions starting with this text, e.g. `rbac.market` or `four_eyes.`.
    action: Option<String>,
    /// `allowed` or `denied`.
    outcome: Option<String>,
    /// At or after, Unix ms.
    from_ms: Option<i64>,
    /// Before, Unix ms.
    to_ms: Option<i64>,
    /// Records before this sequence number (the previous page's `next_before`); the newest
    /// when absent.
    before: Option<i64>,
    /// 1 to 500; 100 by default.
    limit: Option<u32>,
}

/// One record.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditJson {
    /// Position in the chain, from 1.
    seq: i64,
    /// Unix ms.
    at_ms: i64,
    /// Who.
    actor: String,
    /// What (`rbac.market.manage`, `identity.session.create`, ...).
    action: String,
    /// On what.
    target: String,
    /// From where.
    source: String,
    /// `allowed` or `denied`.
    outcome: &'static str,
    /// The refusal's code.
    code: String,
}

/// A page, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPageJson {
    /// The records.
    records: Vec<AuditJson>,
    /// `before` for the next (older) page; null on the last.
    next_before: Option<i64>,
}

/// The chain's state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VerifyJson {
    /// Every record links and hashes right.
    intact: bool,
    /// Records checked (when intact).
    records: Option<u64>,
    /// The first broken record's sequence number.
    broken_seq: Option<i64>,
    /// How it breaks the chain: `gap`, `prev_hash_mismatch` or `hash_mismatch`.
    reason: Option<&'static str>,
}

fn checked_text<'a>(name: &str, value: Option<&'a str>) -> Result<Option<&'a str>, ControlError> {
    let Some(text) = value.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    // `%` and `_` would be LIKE wildcards in the store's query: a filter is literal text.
    let wildcard = name == "action" && text.contains(['%', '_']);
    if text.len() > FILTER_BYTES_MAX || wildcard {
        return Err(ControlError::BadRequest(format!(
            "{name}: at most {FILTER_BYTES_MAX} bytes, no `%` or `_`"
        )));
    }
    Ok(Some(text))
}

fn record(row: AuditRow) -> AuditJson {
    AuditJson {
        seq: row.seq,
        at_ms: row.entry.at_ms,
        actor: row.entry.actor,
        action: row.entry.action,
        target: row.entry.target,
        source: row.entry.source,
        outcome: row.entry.outcome.as_str(),
        code: row.entry.code,
    }
}

/// Pages the audit chain newest first, filtered by actor, action prefix, outcome and time.
#[utoipa::path(get, path = "/control/v1/audit", operation_id = "audit_list", tag = "control",
    params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = AuditPageJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPageJson>, ControlError> {
    let access = &state.access;
    access
        .admit(&headers, &client, Permission::AuditRead, "audit")
        .await?;
    let Query(query) = query.map_err(|e| ControlError::BadRequest(e.body_text()))?;
    let outcome = match query.outcome.as_deref().filter(|o| !o.is_empty()) {
        None => None,
        Some(text) => Some(Outcome::parse(text).ok_or_else(|| {
            ControlError::BadRequest(format!("outcome `{text}`: expected allowed or denied"))
        })?),
    };
    let limit = query.limit.unwrap_or(AUDIT_PAGE_ROWS_DEFAULT);
    if !(1..=AUDIT_PAGE_ROWS_MAX).contains(&limit) {
        return Err(ControlError::BadRequest(format!(
            "limit {limit}: 1 to {AUDIT_PAGE_ROWS_MAX}"
        )));
    }
    let before = query.before.unwrap_or(i64::MAX);
    if before < 1 {
        return Err(ControlError::BadRequest(format!("before {before}: from 1")));
    }
    let filter = AuditFilter {
        actor: checked_text("actor", query.actor.as_deref())?,
        action: checked_text("action", query.action.as_deref())?,
        outcome,
        from_ms: query.from_ms,
        to_ms: query.to_ms,
    };
    let operators = state
        .access
        .operators
        .as_ref()
        .ok_or(ControlError::StoreUnavailable)?;
    let rows = operators
        .identity()
        .store()
        .audit_search(&filter, before, limit)
        .await
        .map_err(|_| ControlError::StoreUnavailable)?;
    let full = u32::try_from(rows.len()).unwrap_or(u32::MAX) == limit;
    let next_before = rows.last().filter(|_| full).map(|row| row.seq);
    Ok(Json(AuditPageJson {
        records: rows.into_iter().map(record).collect(),
        next_before,
    }))
}

/// Walks the audit chain from its first record: intact (with the count) or the first broken
/// record's sequence number and how it breaks the chain (removed, relinked or changed).
#[utoipa::path(get, path = "/control/v1/audit/verify", operation_id = "audit_verify", tag = "control",
    security(("bearer" = [])),
    responses((status = 200, body = VerifyJson), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn verify(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
) -> Result<Json<VerifyJson>, ControlError> {
    let access = &state.access;
    access
        .admit(&headers, &client, Permission::AuditRead, "audit")
        .await?;
    let operators = access
        .operators
        .as_ref()
        .ok_or(ControlError::StoreUnavailable)?;
    let status = peregrine_auth::audit::verify(operators.identity().store())
        .await
        .map_err(|_| ControlError::StoreUnavailable)?;
    let json = match status {
        ChainStatus::Intact { records } => VerifyJson {
            intact: true,
            records: Some(records),
            broken_seq: None,
            reason: None,
        },
        ChainStatus::Broken { seq, reason } => VerifyJson {
            intact: false,
            records: None,
            broken_seq: Some(seq),
            reason: Some(match reason {
                BrokenReason::Gap => "gap",
                BrokenReason::PrevHashMismatch => "prev_hash_mismatch",
                BrokenReason::HashMismatch => "hash_mismatch",
                _ => "unknown",
            }),
        },
        _ => return Err(ControlError::StoreUnavailable),
    };
    Ok(Json(json))
}
