//! The OpenAPI 3.1 document, generated from the handlers' annotations: [`routes`] registers each
//! handler in the router and its operation in the document at once, so the two cannot drift.
//!
//! What every operation can answer besides its own results (a busy server, a bad query, a
//! failed signature, a body that is not JSON) is added by [`complete`] from what the operation
//! takes, so each operation lists every status the server can give it.
//!
//! The Ranger WebSocket routes are served but are not HTTP operations (a `101` upgrade, then
//! messages): they are described in the `ranger` tag rather than listed as plain GETs.

use std::sync::Arc;

use axum::Router;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, Object, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::tag::Tag;
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, Response};
use utoipa::{Modify, Number, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE};
use super::{Bridge, deposits, orders, public, transactions, withdraws};
use crate::ws;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v2/openapi.json";
/// The public WebSocket route.
pub const RANGER_PUBLIC_PATH: &str = "/api/v2/ranger/public";
/// The private WebSocket route.
pub const RANGER_PRIVATE_PATH: &str = "/api/v2/ranger/private";

/// The security schemes, one per header; an authenticated operation requires all three.
const SECURITY_SCHEMES: [(&str, &str); 3] = [
    ("apikey", HEADER_KEY),
    ("nonce", HEADER_NONCE),
    ("signature", HEADER_SIGNATURE),
];

const RANGER_DESCRIPTION: &str = "Ranger-style WebSocket streams. Not HTTP operations, so not \
    listed under paths: open a WebSocket (`GET` with `Upgrade: websocket`, answered `101`) to \
    `/api/v2/ranger/public` (market data) or `/api/v2/ranger/private` (market data plus the \
    `order`, `trade` and `balance` streams of the account; on the upgrade request the three \
    X-Auth headers, or identity's access JWT as `Authorization: Bearer` or as the subprotocols \
    `peregrine.jwt, <token>` (answered `peregrine.jwt`), `401` without them; a JWT connection \
    is closed (1008) when its token expires unless the client sends \
    `{\"event\":\"token\",\"token\":\"<fresh JWT>\"}` first). Name streams on the URL \
    (`?stream=btcusd.trades&stream=btcusd.ob-inc`) or send \
    `{\"event\":\"subscribe\",\"streams\":[...]}`. A request without the upgrade headers is \
    answered `400` `ranger.upgrade_required`; past the connection limit, `503`.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Peregrine REST API",
        description = "Peatio API v2 compatible REST bridge. Amounts and prices are decimal \
            strings (JSON numbers are accepted in requests, read exactly; no exponents). \
            Authenticated routes take X-Auth-Apikey, X-Auth-Nonce (Unix ms, strictly \
            increasing per key, within the server's window) and X-Auth-Signature = \
            hex(HMAC-SHA256(secret, nonce + METHOD + path-and-query + \
            hex(SHA-256(body)))); Barong's nonce + key only from a key created or configured \
            legacy. Errors are \
            `{\"errors\":[code],\"error\":{\"code\",\"message\"}}`."
    ),
    servers((url = "/", description = "this server (paths are absolute)")),
    paths(openapi_json),
    modifiers(&Security),
    tags((name = "public", description = "market data, no authentication"),
        (name = "market", description = "orders and own trades (API-key signed)"),
        (name = "account", description = "balances, transactions and chain deposits (API-key signed)"))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, header) in SECURITY_SCHEMES {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(header))),
            );
        }
        // No requirement by default: public operations need none, signed ones name theirs.
        openapi.security = Some(Vec::new());
        let mut ranger = Tag::new("ranger");
        ranger.description = Some(RANGER_DESCRIPTION.to_owned());
        openapi.tags.get_or_insert_with(Vec::new).push(ranger);
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v2/openapi.json", tag = "public",
    responses((status = 200, description = "the OpenAPI 3.1 document")))]
#[allow(dead_code)]
async fn openapi_json() {}

/// Every route with its operation (the WebSocket routes without one: see [`RANGER_DESCRIPTION`]).
fn routes() -> OpenApiRouter<Arc<Bridge>> {
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
        .routes(routes!(deposits::deposit_address))
        .routes(routes!(deposits::deposits))
        .routes(routes!(
            withdraws::beneficiaries,
            withdraws::create_beneficiary
        ))
        .routes(routes!(withdraws::delete_beneficiary))
        .routes(routes!(withdraws::create_withdraw, withdraws::withdraws))
        .route(RANGER_PUBLIC_PATH, axum::routing::get(ws::public_stream))
        .route(RANGER_PRIVATE_PATH, axum::routing::get(ws::private_stream))
}

/// The router and the completed document.
pub(crate) fn split() -> (Router<Arc<Bridge>>, Document) {
    let (router, mut document) = routes().split_for_parts();
    complete(&mut document);
    (router, document)
}

/// The document alone (for tools and tests).
pub fn document() -> Document {
    split().1
}

/// Adds to every operation the answers the server gives it outside its handler: `503` (too
/// many requests in flight) and `408` (a request over the time limit) to all; `401` and `403`
/// (a key's scopes or address allowlist) to signed ones; `400` (an unknown or malformed parameter) and `422` (a value out of range) to those
/// with parameters, `404` to those naming a resource (a path parameter, or a `market` or
/// `currency` filter); `400`, `413`, `415` and `422` to those with a JSON body. Unsigned
/// integer parameters get the maximum of their Rust type (above it the server cannot parse
/// them and answers `400`).
fn complete(document: &mut Document) {
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            complete_operation(operation);
        }
    }
}

fn complete_operation(operation: &mut Operation) {
    let signed = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    for parameter in parameters.iter_mut() {
        if let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut() {
            bound_unsigned(schema);
        }
    }
    let has_parameters = !parameters.is_empty();
    let names_resource = parameters.iter().any(|p| {
        matches!(p.parameter_in, ParameterIn::Path)
            || ["market", "currency"].contains(&p.name.as_str())
    });
    if parameters.is_empty() {
        operation.parameters = None;
    }
    let has_body = operation.request_body.is_some();
    let mut add = |status: &str, why: &str, wanted: bool| {
        if wanted {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| error_response(why));
        }
    };
    add(
        "503",
        "the server is busy or not taking commands; retry",
        true,
    );
    add(
        "408",
        "the request took longer than the server's limit",
        true,
    );
    add(
        "401",
        "missing, unknown or badly signed API-key headers",
        signed,
    );
    add(
        "403",
        "the API key's scopes or address allowlist do not allow this request",
        signed,
    );
    add("400", "a parameter is unknown or malformed", has_parameters);
    add("422", "a parameter's value is refused", has_parameters);
    add("404", "no such resource", names_resource);
    add("400", "the body is not JSON", has_body);
    add("413", "the body is larger than the limit", has_body);
    add("415", "the body is not sent as application/json", has_body);
    add(
        "422",
        "the body has the wrong shape or a value is refused",
        has_body,
    );
}

/// utoipa writes an unsigned Rust integer as `minimum: 0` with the format of its signed twin
/// (`int32` for `u32`, `int64` or none for `u64` and `usize`), which tools read as the signed
/// range; the server takes the whole unsigned range and refuses values above it, so the
/// document says so.
fn bound_unsigned(schema: &mut Object) {
    // Every integer parameter of this API is unsigned, and has a minimum (0 or 1) saying so.
    let unsigned = match &schema.minimum {
        Some(Number::Int(n)) => *n >= 0,
        Some(Number::UInt(_)) => true,
        Some(Number::Float(f)) => *f >= 0.0,
        None => false,
    };
    let integer = matches!(schema.schema_type, SchemaType::Type(Type::Integer));
    if !(unsigned && integer) || schema.maximum.is_some() {
        return;
    }
    let int32 = matches!(
        schema.format,
        Some(SchemaFormat::KnownFormat(KnownFormat::Int32))
    );
    let (maximum, format) = if int32 {
        (u64::from(u32::MAX), "uint32")
    } else {
        (u64::MAX, "uint64")
    };
    schema.maximum = usize::try_from(maximum).ok().map(Number::UInt);
    // `int32`/`int64` would bound it as signed.
    schema.format = Some(SchemaFormat::Custom(format.to_owned()));
}

fn error_response(description: &str) -> RefOr<Response> {
    let mut response = Response::new(description);
    response.content.insert(
        "application/json".to_owned(),
        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
    );
    RefOr::T(response)
}
