//! The routes the operator console needs beyond the first slice — login and token renewal,
//! the audit chain, withdrawal requests awaiting approval, users and their sessions, orders
//! and trades search — and their part of the OpenAPI document (merged into
//! [`crate::openapi::document`]). Each handler lives in its own module; this one only lists
//! them, so the route table and the document name the same set.

use axum::Router;
use axum::routing::{delete, get, post};
use utoipa::OpenApi;

use crate::api::ControlState;
use crate::{audit_log, login, search, users, withdrawal_requests};

/// The console's routes (state still to be given).
pub(crate) fn routes() -> Router<ControlState> {
    Router::new()
        .route("/control/v1/login", post(login::login))
        .route("/control/v1/login/refresh", post(login::refresh))
        .route("/control/v1/login/logout", post(login::logout))
        .route("/control/v1/audit", get(audit_log::list))
        .route("/control/v1/audit/verify", get(audit_log::verify))
        .route(
            "/control/v1/withdrawal-requests",
            get(withdrawal_requests::list),
        )
        .route(
            "/control/v1/withdrawal-requests/{id}/{action}",
            post(withdrawal_requests::review),
        )
        .route("/control/v1/users", get(users::search))
        .route("/control/v1/users/{uid}/sessions", get(users::sessions))
        .route(
            "/control/v1/users/{uid}/sessions/{session}",
            delete(users::revoke_session),
        )
        .route("/control/v1/users/{uid}/{action}", post(users::lock))
        .route("/control/v1/orders", get(search::orders))
        .route("/control/v1/trades", get(search::trades))
}

#[derive(OpenApi)]
#[openapi(paths(
    login::login,
    login::refresh,
    login::logout,
    audit_log::list,
    audit_log::verify,
    withdrawal_requests::list,
    withdrawal_requests::review,
    users::search,
    users::lock,
    users::sessions,
    users::revoke_session,
    search::orders,
    search::trades
))]
pub(crate) struct ConsoleDoc;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// Each console operation documents what its handler can answer: admission (401, 403,
    /// 503 when identity's store cannot name the operator) and, beside each line, the rest.
    #[test]
    fn each_console_operation_documents_the_statuses_its_handler_answers() {
        let document = serde_json::to_value(ConsoleDoc::openapi()).unwrap();
        let cases: [(&str, &str, &[&str]); 13] = [
            // Body (400, 413), identity's refusals (401, 403, 422 parameters, 429 lockout,
            // 503 OpenBao or store).
            (
                "/control/v1/login",
                "post",
                &["200", "400", "401", "403", "413", "422", "429", "503"],
            ),
            // Body (400, 413), session (401), not an operator (403), store (503).
            (
                "/control/v1/login/refresh",
                "post",
                &["200", "400", "401", "403", "413", "503"],
            ),
            (
                "/control/v1/login/logout",
                "post",
                &["204", "400", "401", "413", "503"],
            ),
            // Filters (400).
            (
                "/control/v1/audit",
                "get",
                &["200", "400", "401", "403", "503"],
            ),
            (
                "/control/v1/audit/verify",
                "get",
                &["200", "401", "403", "503"],
            ),
            // State filter (400), no wallets (503).
            (
                "/control/v1/withdrawal-requests",
                "get",
                &["200", "400", "401", "403", "503"],
            ),
            // Path (400), own request (403), id (404), not awaiting or reviewed (409), no
            // wallets (422), wallet store down (503).
            (
                "/control/v1/withdrawal-requests/{id}/{action}",
                "post",
                &["200", "400", "401", "403", "404", "409", "422", "503"],
            ),
            (
                "/control/v1/users",
                "get",
                &["200", "400", "401", "403", "503"],
            ),
            // Action (400), uid (404), wrong state (409).
            (
                "/control/v1/users/{uid}/{action}",
                "post",
                &["200", "400", "401", "403", "404", "409", "503"],
            ),
            (
                "/control/v1/users/{uid}/sessions",
                "get",
                &["200", "400", "401", "403", "404", "503"],
            ),
            (
                "/control/v1/users/{uid}/sessions/{session}",
                "delete",
                &["204", "400", "401", "403", "404", "503"],
            ),
            // Filters (400), market (404), replica off (503).
            (
                "/control/v1/orders",
                "get",
                &["200", "400", "401", "403", "404", "503"],
            ),
            (
                "/control/v1/trades",
                "get",
                &["200", "400", "401", "403", "404", "503"],
            ),
        ];
        for (path, method, statuses) in cases {
            let responses = document["paths"][path][method]["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} is not documented"));
            let documented: Vec<&String> = responses.keys().collect();
            assert_eq!(documented, statuses, "{method} {path}");
        }
        let operations: usize = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(operations, cases.len(), "an operation without a case here");
    }

    /// Operation ids are unique across the merged document (utoipa names an operation after
    /// its handler, and several modules have a `list` or a `review`): OpenAPI requires it.
    #[test]
    fn operation_ids_are_unique_in_the_served_document() {
        let document = serde_json::to_value(crate::openapi::document()).unwrap();
        let mut ids: Vec<&str> = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        let all = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all, "{ids:?}");
    }
}
