//! The OpenAPI 3 document, generated from the handlers' annotations: [`routes`] registers each
//! handler in the router and its operation in the document at once, so the two cannot drift.

use std::sync::Arc;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Bridge, orders, public, transactions};
use crate::ws;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v2/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Peregrine REST API",
        description = "Peatio API v2 compatible REST bridge. Amounts and prices are decimal \
            strings. Authenticated routes take X-Auth-Apikey, X-Auth-Nonce (Unix ms, strictly \
            increasing per key, within the server's window) and X-Auth-Signature = \
            hex(HMAC-SHA256(secret, nonce + key))."
    ),
    paths(openapi_json),
    modifiers(&Security),
    tags((name = "public"), (name = "market"), (name = "account"), (name = "ranger"))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, header) in [
            ("apikey", "X-Auth-Apikey"),
            ("nonce", "X-Auth-Nonce"),
            ("signature", "X-Auth-Signature"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(header))),
            );
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v2/openapi.json", tag = "public",
    responses((status = 200, description = "the OpenAPI 3 document")))]
#[allow(dead_code)]
async fn openapi_json() {}

/// Every route with its operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<Bridge>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(public::markets))
        .routes(routes!(public::currencies))
        .routes(routes!(public::currency))
        .routes(routes!(public::tickers))
        .routes(routes!(public::ticker))
        .routes(routes!(public::order_book))
        .routes(routes!(public::depth))
        .routes(routes!(public::trades))
        .routes(routes!(public::k_line))
        .routes(routes!(public::timestamp))
        .routes(routes!(public::alive))
        .routes(routes!(public::ready))
        .routes(routes!(public::trading_fees))
        .routes(routes!(orders::create_order, orders::list_orders))
        .routes(routes!(orders::get_order))
        .routes(routes!(orders::get_order_by_client_id))
        .routes(routes!(orders::cancel_order))
        .routes(routes!(orders::cancel_order_by_client_id))
        .routes(routes!(orders::cancel_all))
        .routes(routes!(orders::own_trades))
        .routes(routes!(orders::balances))
        .routes(routes!(orders::balance))
        .routes(routes!(transactions::transactions))
        .routes(routes!(ws::public_stream))
        .routes(routes!(ws::private_stream))
}

/// The document alone (for tools).
pub fn document() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}
