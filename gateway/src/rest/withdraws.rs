//! Withdrawals asked for over REST, Peatio's `account/beneficiaries` and `account/withdraws`,
//! through a [`WithdrawDesk`] (the gateway depends on neither the wallet crate nor identity's
//! users: the appliance plugs in a desk that records requests in the wallet store and checks
//! TOTP codes through identity, [`super::Bridge::serve_withdraws`]). Without a desk (`[wallets]`
//! off) nothing is withdrawn: 422 `withdraw.unsupported`.
//!
//! A request passes, in order: the key's `withdraw` scope (API keys; an access JWT is a
//! signed-in session), the KYC level `[auth] withdraw_level_min` demands (403
//! `identity.level_too_low`), a body of the right shape, the desk's policy (422 with the
//! policy's code: `withdraw.limit_24h_exceeded`, `withdraw.beneficiary_not_active`, ...:
//! checked first, so a refused request does not spend the user's code), a fresh TOTP code of
//! the account's user (identity's codes: 403 `identity.session.invalid_otp`, 422
//! `identity.otp.already_used`, ...; 503 `identity.vault_unavailable` while OpenBao cannot
//! answer), then the policy again under the account's lock. A refusal changes nothing. The gateway never holds or sends funds: the wallet daemon
//! does, once the policy (and its approvals) passed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use peregrine_hotpath::{AccountId, Amount};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Bridge;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, WithdrawAuthenticated};
use super::public::{LIST_LIMIT_MAX, limit, page};
use super::types::DecimalText;

/// Withdrawals a list reaches at most (`page * limit`): deeper pages are refused.
pub const WITHDRAWS_DEPTH_MAX: usize = 10_000;
/// Longest TOTP code accepted (6 digits; more is not a code).
pub const OTP_CHARS_MAX: usize = 16;

/// Why the desk refused or could not answer; the answer's status, stable code and message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DeskError {
    /// HTTP status (422 a refusal, 403 not allowed, 404 unknown, 503 cannot answer now).
    pub status: u16,
    /// Stable code.
    pub code: &'static str,
    /// For a person.
    pub message: String,
}

impl From<DeskError> for ApiError {
    fn from(error: DeskError) -> ApiError {
        let status =
            StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, error.code, error.message)
    }
}

/// A boxed future of the desk (object-safe: the bridge holds a `dyn WithdrawDesk`).
pub type DeskFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DeskError>> + Send + 'a>>;

/// A beneficiary as the desk holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeneficiaryRecord {
    /// Id.
    pub id: u64,
    /// Currency code.
    pub currency: String,
    /// The owner's name for it.
    pub name: String,
    /// The payee's address (EIP-55 on Ethereum).
    pub address: String,
    /// `pending`, `active` or `archived`.
    pub state: String,
    /// When it becomes (or became) usable, Unix ms.
    pub active_at_ms: i64,
}

/// A withdrawal as the desk holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawRecord {
    /// Id.
    pub id: u64,
    /// Currency code.
    pub currency: String,
    /// In the currency's minor units.
    pub amount_minor: u64,
    /// The payee's address.
    pub address: String,
    /// The beneficiary paid.
    pub beneficiary_id: Option<u64>,
    /// The state's name (see the wallet crate's withdrawal states).
    pub state: String,
    /// The transaction, once signed.
    pub txid: Option<String>,
    /// Unix ms.
    pub created_at_ms: i64,
}

/// What a withdrawal request carries to the desk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawAsk<'a> {
    /// The account debited.
    pub account: AccountId,
    /// Currency code.
    pub currency: &'a str,
    /// In the currency's minor units.
    pub amount_minor: u64,
    /// The payee.
    pub beneficiary_id: u64,
    /// The TOTP code.
    pub otp: &'a str,
}

/// Beneficiaries and withdrawal requests, as the bridge serves them.
pub trait WithdrawDesk: Send + Sync + std::fmt::Debug {
    /// Whether `currency` may be withdrawn on a chain here (has a policy).
    fn has_currency(&self, currency: &str) -> bool;

    /// The account's live beneficiaries (only `currency`'s when given).
    fn beneficiaries<'a>(
        &'a self,
        account: AccountId,
        currency: Option<&'a str>,
    ) -> DeskFuture<'a, Vec<BeneficiaryRecord>>;

    /// Records a beneficiary of the account; `address` as the user typed it (validated here).
    fn create_beneficiary<'a>(
        &'a self,
        account: AccountId,
        currency: &'a str,
        name: &'a str,
        address: &'a str,
    ) -> DeskFuture<'a, BeneficiaryRecord>;

    /// Archives the account's beneficiary `id`; false when it has none live by that id.
    fn delete_beneficiary(&self, account: AccountId, id: u64) -> DeskFuture<'_, bool>;

    /// Checks the policy, then the TOTP code of the account's user, then decides (again, under
    /// the account's lock) and records the withdrawal.
    fn request<'a>(&'a self, ask: WithdrawAsk<'a>) -> DeskFuture<'a, WithdrawRecord>;

    /// The account's withdrawals, newest first: `limit` after skipping `offset`.
    fn withdrawals<'a>(
        &'a self,
        account: AccountId,
        currency: Option<&'a str>,
        limit: u32,
        offset: u64,
    ) -> DeskFuture<'a, Vec<WithdrawRecord>>;
}

/// A beneficiary.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BeneficiaryJson {
    /// Id, for `beneficiary_id`.
    pub id: u64,
    /// Currency code.
    pub currency: String,
    /// The name given.
    pub name: String,
    /// `pending` (its activation delay is not over), `active`, `archived`.
    pub state: String,
    /// Peatio's data: the address.
    pub data: BeneficiaryDataJson,
    /// When it becomes usable, Unix ms.
    pub active_at: i64,
}

/// A beneficiary's payee.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BeneficiaryDataJson {
    /// The address (EIP-55 checksum case on Ethereum).
    pub address: String,
}

/// A new beneficiary.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBeneficiary {
    /// Currency code.
    pub currency: String,
    /// A name, 1 to 64 characters.
    pub name: String,
    /// Peatio's data: the address.
    pub data: BeneficiaryDataJson,
}

/// A withdrawal request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWithdraw {
    /// Currency code.
    pub currency: String,
    /// Decimal, exact in the currency's precision.
    #[schema(example = "0.1")]
    pub amount: DecimalText,
    /// One of the account's active beneficiaries in the currency.
    pub beneficiary_id: u64,
    /// A fresh TOTP code of the account's user.
    pub otp: String,
}

/// A withdrawal.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WithdrawJson {
    /// Id.
    pub id: u64,
    /// Currency code.
    pub currency: String,
    /// Decimal string.
    pub amount: String,
    /// Fee (decimal string; none is taken yet).
    pub fee: String,
    /// The payee's address.
    pub rid: String,
    /// The beneficiary paid.
    pub beneficiary_id: Option<u64>,
    /// `awaiting_approval`, `approved`, `held`, `signed`, `broadcast`, `settled`, `released`
    /// or `rejected`.
    pub state: String,
    /// The transaction, once signed.
    pub blockchain_txid: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

/// Filters of the lists.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WithdrawsQuery {
    /// Only this currency.
    pub currency: Option<String>,
    /// Per page, at most 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Page, from 1.
    #[param(minimum = 1)]
    pub page: Option<usize>,
}

/// Only this currency.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BeneficiariesQuery {
    /// Only this currency.
    pub currency: Option<String>,
}

/// The desk, or 422 `withdraw.unsupported` with `[wallets]` off.
fn desk(bridge: &Bridge) -> Result<&dyn WithdrawDesk, ApiError> {
    bridge.withdraws.get().map(AsRef::as_ref).ok_or_else(|| {
        ApiError::unprocessable(
            "withdraw.unsupported",
            "nothing is withdrawn on a chain here",
        )
    })
}

/// The desk, when the catalog's `code` is withdrawn on a chain (has a policy).
fn chain_currency<'a>(bridge: &'a Bridge, code: &str) -> Result<&'a dyn WithdrawDesk, ApiError> {
    if bridge.catalog.load().currency(code).is_none() {
        return Err(ApiError::not_found(
            "account.currency.doesnt_exist",
            format!("no currency `{code}`"),
        ));
    }
    let desk = desk(bridge)?;
    if !desk.has_currency(code) {
        return Err(ApiError::unprocessable(
            "withdraw.currency_not_withdrawable",
            format!("`{code}` cannot be withdrawn here"),
        ));
    }
    Ok(desk)
}

fn beneficiary_json(record: BeneficiaryRecord) -> BeneficiaryJson {
    BeneficiaryJson {
        id: record.id,
        currency: record.currency,
        name: record.name,
        state: record.state,
        data: BeneficiaryDataJson {
            address: record.address,
        },
        active_at: record.active_at_ms,
    }
}

fn withdraw_json(bridge: &Bridge, record: WithdrawRecord) -> WithdrawJson {
    let catalog = bridge.catalog.load();
    let currency = catalog.currency(&record.currency);
    WithdrawJson {
        id: record.id,
        amount: super::types::amount(currency, Amount(record.amount_minor)),
        currency: record.currency,
        fee: "0".to_owned(),
        rid: record.address,
        beneficiary_id: record.beneficiary_id,
        state: record.state,
        blockchain_txid: record.txid,
        created_at: record.created_at_ms,
    }
}

/// The account's beneficiaries (Peatio `GET account/beneficiaries`).
#[utoipa::path(get, path = "/api/v2/peatio/account/beneficiaries", tag = "account",
    params(BeneficiariesQuery), security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = [BeneficiaryJson]), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn beneficiaries(
    State(bridge): State<Arc<Bridge>>,
    WithdrawAuthenticated(account, _): WithdrawAuthenticated,
    ApiQuery(q): ApiQuery<BeneficiariesQuery>,
) -> Result<Json<Vec<BeneficiaryJson>>, ApiError> {
    if let Some(code) = q.currency.as_deref() {
        chain_currency(&bridge, code)?;
    }
    let Some(desk) = bridge.withdraws.get() else {
        return Ok(Json(Vec::new()));
    };
    let list = desk.beneficiaries(account, q.currency.as_deref()).await?;
    Ok(Json(list.into_iter().map(beneficiary_json).collect()))
}

/// Adds a beneficiary (Peatio `POST account/beneficiaries`): usable once the configured
/// activation delay has passed (`state` `pending` until then). Needs the `withdraw` scope.
#[utoipa::path(post, path = "/api/v2/peatio/account/beneficiaries", tag = "account",
    request_body = CreateBeneficiary, security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 201, body = BeneficiaryJson), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn create_beneficiary(
    State(bridge): State<Arc<Bridge>>,
    WithdrawAuthenticated(account, _): WithdrawAuthenticated,
    ApiJson(body): ApiJson<CreateBeneficiary>,
) -> Result<(StatusCode, Json<BeneficiaryJson>), ApiError> {
    bridge.check_withdraw_level(account)?;
    let desk = chain_currency(&bridge, &body.currency)?;
    let record = desk
        .create_beneficiary(account, &body.currency, &body.name, &body.data.address)
        .await?;
    Ok((StatusCode::CREATED, Json(beneficiary_json(record))))
}

/// Archives a beneficiary (Peatio `DELETE account/beneficiaries/{id}`).
#[utoipa::path(delete, path = "/api/v2/peatio/account/beneficiaries/{id}", tag = "account",
    params(("id" = u64, Path, description = "beneficiary id")),
    security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 204, description = "archived"), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn delete_beneficiary(
    State(bridge): State<Arc<Bridge>>,
    WithdrawAuthenticated(account, _): WithdrawAuthenticated,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    if desk(&bridge)?.delete_beneficiary(account, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "withdraw.beneficiary_not_found",
            format!("no beneficiary {id} of this account"),
        ))
    }
}

/// Asks for a withdrawal (Peatio `POST account/withdraws`): the `withdraw` scope, the KYC
/// level, a fresh TOTP code and an active beneficiary; then the policy records it `approved`
/// or `awaiting_approval` (above the threshold, until operators approve). Funds are held by
/// the wallet daemon when it takes the withdrawal, not by this call.
#[utoipa::path(post, path = "/api/v2/peatio/account/withdraws", tag = "account",
    request_body = CreateWithdraw, security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 201, body = WithdrawJson), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn create_withdraw(
    State(bridge): State<Arc<Bridge>>,
    WithdrawAuthenticated(account, _): WithdrawAuthenticated,
    ApiJson(body): ApiJson<CreateWithdraw>,
) -> Result<(StatusCode, Json<WithdrawJson>), ApiError> {
    bridge.check_withdraw_level(account)?;
    let desk = chain_currency(&bridge, &body.currency)?;
    let invalid = |message: String| ApiError::unprocessable("withdraw.invalid_amount", message);
    let value = peregrine_hotpath::edge::parse_decimal(&body.amount)
        .map_err(|error| invalid(format!("amount `{}` {error}", &*body.amount)))?;
    let amount = bridge
        .catalog
        .load()
        .currency(&body.currency)
        .map(|currency| currency.scale.to_minor(value))
        .transpose()
        .map_err(|error| invalid(format!("amount `{}`: {error}", &*body.amount)))?
        .unwrap_or(Amount(0));
    if body.otp.len() > OTP_CHARS_MAX {
        return Err(ApiError::forbidden(
            "identity.session.invalid_otp",
            "the code is not a TOTP code",
        ));
    }
    let record = desk
        .request(WithdrawAsk {
            account,
            currency: &body.currency,
            amount_minor: amount.0,
            beneficiary_id: body.beneficiary_id,
            otp: &body.otp,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(withdraw_json(&bridge, record))))
}

/// The account's withdrawals with their states, newest first (Peatio `GET account/withdraws`).
#[utoipa::path(get, path = "/api/v2/peatio/account/withdraws", tag = "account",
    params(WithdrawsQuery), security(("apikey" = [], "nonce" = [], "signature" = [])),
    responses((status = 200, body = [WithdrawJson]), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn withdraws(
    State(bridge): State<Arc<Bridge>>,
    WithdrawAuthenticated(account, _): WithdrawAuthenticated,
    ApiQuery(q): ApiQuery<WithdrawsQuery>,
) -> Result<Json<Vec<WithdrawJson>>, ApiError> {
    let per_page = limit(q.limit, 100, LIST_LIMIT_MAX)?;
    let page = page(q.page)?;
    let offset = (page - 1).saturating_mul(per_page);
    let depth = offset.saturating_add(per_page);
    if depth > WITHDRAWS_DEPTH_MAX {
        return Err(ApiError::unprocessable(
            "history.too_deep",
            format!("page * limit reaches row {depth}; lists go {WITHDRAWS_DEPTH_MAX} rows deep"),
        ));
    }
    if let Some(code) = q.currency.as_deref() {
        chain_currency(&bridge, code)?;
    }
    let Some(desk) = bridge.withdraws.get() else {
        return Ok(Json(Vec::new()));
    };
    let per_page = u32::try_from(per_page).unwrap_or(u32::MAX);
    let offset = u64::try_from(offset).unwrap_or(u64::MAX);
    let rows = desk
        .withdrawals(account, q.currency.as_deref(), per_page, offset)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| withdraw_json(&bridge, row))
            .collect(),
    ))
}
