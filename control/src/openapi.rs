//! The control API's OpenAPI 3.1 document, served at [`OPENAPI_PATH`] (without the token: it
//! holds no secret, and tools fetch it before they have one).

use axum::Json;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;
use crate::error::{ErrorBody, ErrorDetail};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/control/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Peregrine control API",
        description = "Operations: deposits credited by operators, market halts and resumes, \
            account kill switches, mass cancels and status. Every route but this document \
            takes `Authorization: Bearer <token>` (the token file is printed at start). \
            Amounts are decimal strings without exponents. Errors are \
            `{\"errors\":[code],\"error\":{\"code\",\"message\"}}` with dotted codes \
            (`control.market.doesnt_exist`); an engine reject is `control.command.<reason>` \
            with `reason` and `reason_code`."
    ),
    servers((url = "/", description = "the operator HTTP listener (paths are absolute)")),
    paths(api::status, api::deposit, api::market_state, api::kill_switch, api::cancel_all,
        openapi_json),
    components(schemas(ErrorBody, ErrorDetail, api::MarketAction)),
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
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
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
    ControlDoc::openapi()
}

/// `GET` [`OPENAPI_PATH`].
pub(crate) async fn serve() -> Json<Document> {
    Json(document())
}
