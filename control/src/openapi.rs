//! The control API's OpenAPI 3.1 document, served at [`OPENAPI_PATH`] (without the token: it
//! holds no secret, and tools fetch it before they have one).

use axum::Json;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::{adjustments, api, reference};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/control/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Peregrine control API",
        description = "Operations: deposits credited by operators, market halts and resumes, \
            account kill switches, mass cancels, status, manual balance adjustments under \
            four-eyes (one operator proposes, another approves), market states and risk \
            parameters, and fee changes under four-eyes. Every route but this document \
            takes `Authorization: Bearer <credential>`: an operator's access JWT from identity \
            (`POST /api/v2/barong/resource/tokens`; a staff role with 2FA enabled; each route \
            needs one permission of the role), or on the host itself the break-glass token \
            (its file is printed at start; loopback only, every use audited). \
            Amounts are decimal strings without exponents. Errors are \
            `{\"errors\":[code],\"error\":{\"code\",\"message\"}}` with dotted codes \
            (`control.market.doesnt_exist`); an engine reject is `control.command.<reason>` \
            with `reason` and `reason_code`."
    ),
    servers((url = "/", description = "the operator HTTP listener (paths are absolute)")),
    paths(api::status, api::deposit, api::market_state, api::kill_switch, api::cancel_all,
        adjustments::create, adjustments::list, adjustments::review,
        crate::withdrawals::withdrawal, reference::patch_market, reference::propose_fee,
        reference::list_fees, reference::review_fee, openapi_json),
    components(schemas(ErrorBody, ErrorDetail, api::MarketAction, adjustments::ReviewAction)),
    modifiers(&Bearer),
    tags((name = "control", description = "operator commands, each a journaled command"))
)]
struct ControlDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut Document) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "an operator's access JWT (EdDSA, from identity), or on the host \
                             the break-glass token",
                        ))
                        .build(),
                ),
            );
        openapi.security = Some(Vec::new());
    }
}

/// This document.
#[utoipa::path(get, path = "/control/v1/openapi.json", tag = "control",
    responses((status = 200, description = "the OpenAPI 3.1 document")))]
#[allow(dead_code)]
fn openapi_json() {}

/// The document.
pub fn document() -> Document {
    let mut document = ControlDoc::openapi();
    document.merge(crate::console_api::ConsoleDoc::openapi());
    document.merge(crate::catalog_api::CatalogDoc::openapi());
    document.merge(crate::reports::ReportsDoc::openapi());
    document.merge(crate::rules::RulesDoc::openapi());
    document
}

/// `GET` [`OPENAPI_PATH`].
pub(crate) async fn serve() -> Json<Document> {
    Json(document())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;

    /// The statuses documented for `method path`, ascending.
    fn documented(document: &serde_json::Value, path: &str, method: &str) -> Vec<String> {
        let responses = document["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} is not documented"));
        responses.keys().cloned().collect()
    }

    /// Each operation documents what its handler can answer, and nothing else: the statuses
    /// of every `ControlError` the handler can return (`api.rs`), beside each line why.
    #[test]
    fn each_operation_documents_the_statuses_its_handler_answers() {
        // The console's operations are checked beside their routes (`console_api`).
        let document = serde_json::to_value(ControlDoc::openapi()).unwrap();
        // Every operation but the document admits its caller first: 401 without a valid
        // credential, 403 without the permission, 503 when identity's store cannot name the
        // operator.
        let cases: [(&str, &str, &[&str]); 14] = [
            // Admission, then a read of the views: nothing else can fail.
            ("/control/v1/status", "get", &["200", "401", "403", "503"]),
            // Body (400, 413), currency (404), amount or engine reject (422), queue (503).
            (
                "/control/v1/deposits",
                "post",
                &["200", "400", "401", "403", "404", "413", "422", "503"],
            ),
            // No body; the action (400), the market (404), engine reject (422), queue (503).
            (
                "/control/v1/markets/{market}/{action}",
                "post",
                &["200", "400", "401", "403", "404", "422", "503"],
            ),
            // Account path and body (400, 413), engine reject (422), queue (503).
            (
                "/control/v1/accounts/{account}/kill-switch",
                "post",
                &["200", "400", "401", "403", "413", "422", "503"],
            ),
            // As the kill switch, plus the market filter (404).
            (
                "/control/v1/accounts/{account}/cancel-all",
                "post",
                &["200", "400", "401", "403", "404", "413", "422", "503"],
            ),
            // Body (400, 413), currency (404), amount or reason (422), store (503).
            (
                "/control/v1/adjustments",
                "post",
                &["201", "400", "401", "403", "404", "413", "422", "503"],
            ),
            // The state filter (400), store (503).
            (
                "/control/v1/adjustments",
                "get",
                &["200", "400", "401", "403", "503"],
            ),
            // Path and action (400), own proposal (403), id (404), reviewed (409), engine
            // reject (422).
            (
                "/control/v1/adjustments/{id}/{action}",
                "post",
                &["200", "400", "401", "403", "404", "409", "422", "503"],
            ),
            // The wallet's token only (403), id and action and body (400, 413), currency
            // (404), amount or engine reject (422), queue or store (503).
            (
                "/control/v1/withdrawals/{id}/{action}",
                "post",
                &["200", "400", "401", "403", "404", "413", "422", "503"],
            ),
            // Path and body (400, 413), market (404), a field or engine reject (422), queue
            // (503).
            (
                "/control/v1/markets/{market}",
                "patch",
                &["200", "400", "401", "403", "404", "413", "422", "503"],
            ),
            // Body (400, 413), market (404), a field (422), store (503); 403 also for a caller
            // that names no operator.
            (
                "/control/v1/fees",
                "post",
                &["201", "400", "401", "403", "404", "413", "422", "503"],
            ),
            // The state filter (400), store (503).
            (
                "/control/v1/fees",
                "get",
                &["200", "400", "401", "403", "503"],
            ),
            // As an adjustment's review.
            (
                "/control/v1/fees/{id}/{action}",
                "post",
                &["200", "400", "401", "403", "404", "409", "422", "503"],
            ),
            ("/control/v1/openapi.json", "get", &["200"]),
        ];
        assert_cases(&document, &cases);
    }

    /// Each of `cases` (path, method, statuses) is documented with exactly its statuses, and
    /// `document` has no other operation.
    pub(crate) fn assert_cases(document: &serde_json::Value, cases: &[(&str, &str, &[&str])]) {
        for (path, method, statuses) in cases {
            assert_eq!(
                documented(document, path, method),
                *statuses,
                "{method} {path}"
            );
        }
        let operations: usize = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(operations, cases.len(), "an operation without a case here");
    }
}
