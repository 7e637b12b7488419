//! Operators' reports under `/control/v1/reports/...`, each under the `report.read` permission
//! and audited like every control call, each as JSON or CSV (`?format=csv` or `Accept:
//! text/csv`; [`format`]):
//!
//! - `balances`: per currency, every account's available and held (open orders, withdrawal
//!   holds) summed, and their total, the liabilities; `balances/accounts`: per account and
//!   currency, filtered by account and currency, paged by a cursor ([`balances`]). From the
//!   views: the released state, as of `applied_seq`.
//! - `assets`: per currency, the liabilities now against what the wallets' last
//!   reconciliation found on chain (the wallet store's `wallet_reconciliations`, written by
//!   the wallet daemon after each run, read through [`ReconciliationBook`]). Without
//!   `[wallets]` it answers the liabilities alone and says so.
//! - `fees`: fee revenue per market and per currency over a time range; `volume`: base and
//!   quote volume and trade count per market and UTC day over a date range ([`trades`]). From
//!   the replica's trades, as of its `high_water_seq`; without a replica 503.
//!
//! Every list is bounded by a named limit; a range beyond its limit, or empty, is 422.

pub(crate) mod balances;
pub(crate) mod format;
pub(crate) mod trades;

use axum::http::HeaderMap;
use peregrine_auth::rbac::Permission;
use peregrine_core::catalog::Catalog;

use crate::access::Client;
use crate::api::ControlState;
use crate::error::ControlError;
use crate::withdrawal_requests::QueueFuture;

/// A currency's last reconciliation as the wallet store recorded it, chain units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedAssets {
    /// Currency code.
    pub currency: String,
    /// Decimals of the chain's unit.
    pub chain_decimals: u32,
    /// The hot wallet's balance.
    pub hot: u128,
    /// The warm address's.
    pub warm: u128,
    /// The cold address's.
    pub cold: u128,
    /// The deposit addresses' (and gas on token addresses, for the chain's coin).
    pub deposit_addresses: u128,
    /// What the ledger owed when it ran.
    pub liabilities: u128,
    /// On chain minus owed.
    pub difference: i128,
    /// The largest difference not reported.
    pub tolerance: u128,
    /// When it ran, Unix ms.
    pub reconciled_at_ms: i64,
}

/// The wallet store's last reconciliations, read only: handed in by the appliance when
/// `[wallets]` is on (this crate does not depend on the wallet daemons').
pub trait ReconciliationBook: Send + Sync + std::fmt::Debug {
    /// Each reconciled currency's last outcome, by currency.
    fn last(&self) -> QueueFuture<'_, Vec<RecordedAssets>>;
}

/// Admits the caller to `report` (audited as `report:<name>`).
async fn admit(
    state: &ControlState,
    client: &Client,
    headers: &HeaderMap,
    report: &str,
) -> Result<(), ControlError> {
    let target = format!("report:{report}");
    state
        .access
        .admit(headers, client, Permission::ReportRead, &target)
        .await
        .map(|_| ())
}

/// A report's query parameters, or 400 naming what does not parse.
fn parameters<T>(
    query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ControlError> {
    query
        .map(|axum::extract::Query(q)| q)
        .map_err(|e| ControlError::BadRequest(e.body_text()))
}

/// The catalog the reports name currencies and markets from.
/// The catalog as it is now (currencies and markets may be created at runtime): one load per
/// request, so a report never mixes two versions.
fn catalog(state: &ControlState) -> std::sync::Arc<Catalog> {
    state.catalog.load()
}

/// The reports' routes (state still to be given).
pub(crate) fn routes() -> axum::Router<ControlState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/control/v1/reports/balances", get(balances::balances))
        .route(
            "/control/v1/reports/balances/accounts",
            get(balances::accounts),
        )
        .route("/control/v1/reports/assets", get(balances::assets))
        .route("/control/v1/reports/fees", get(trades::fees))
        .route("/control/v1/reports/volume", get(trades::volume))
}

/// The reports' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    balances::balances,
    balances::accounts,
    balances::assets,
    trades::fees,
    trades::volume
))]
pub(crate) struct ReportsDoc;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use utoipa::OpenApi;

    use super::*;

    /// Each report documents what its handler can answer: admission (401, 403, 503 when
    /// identity's store cannot name the operator) and, beside each line, the rest; and both
    /// representations of its 200.
    #[test]
    fn each_report_documents_the_statuses_its_handler_answers() {
        let document = serde_json::to_value(ReportsDoc::openapi()).unwrap();
        let cases: [(&str, &[&str]); 5] = [
            // A bad `format` (400).
            (
                "/control/v1/reports/balances",
                &["200", "400", "401", "403", "503"],
            ),
            // Filters and cursor (400), currency (404).
            (
                "/control/v1/reports/balances/accounts",
                &["200", "400", "401", "403", "404", "503"],
            ),
            // Format (400), the wallet store (503).
            (
                "/control/v1/reports/assets",
                &["200", "400", "401", "403", "503"],
            ),
            // Parameters (400), market (404), range (422), replica (503).
            (
                "/control/v1/reports/fees",
                &["200", "400", "401", "403", "404", "422", "503"],
            ),
            (
                "/control/v1/reports/volume",
                &["200", "400", "401", "403", "404", "422", "503"],
            ),
        ];
        for (path, statuses) in cases {
            let responses = document["paths"][path]["get"]["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("GET {path} is not documented"));
            let documented: Vec<&String> = responses.keys().collect();
            assert_eq!(documented, statuses, "GET {path}");
            let content = responses["200"]["content"].as_object().unwrap();
            let types: Vec<&String> = content.keys().collect();
            assert_eq!(types, ["application/json", "text/csv"], "GET {path}");
        }
        assert_eq!(document["paths"].as_object().unwrap().len(), cases.len());
    }
}
