//! Currencies and markets created while the appliance runs: `POST /control/v1/currencies` and
//! `POST /control/v1/markets` (permission `reference.create`).
//!
//! Each creation is ONE journaled command carrying everything the edges need (code, display
//! name and precision; name, decimal tick and lot, engine units, limits, fees and the initial
//! state), so a replay from zero or a snapshot rebuilds the catalog without configuration.
//! Every value is checked before anything is journaled and a bad one is 422
//! `control.reference.invalid_field` naming the field (a duplicate code or name, an unknown
//! currency, a precision out of range, a limit beyond the engine's maxima, a catalog already
//! holding `CURRENCIES_MAX` currencies or `MARKETS_MAX` markets). Once the engine accepts the
//! command the shared catalog is replaced, so the next request of every edge (REST, WebSocket,
//! the control API) sees the entry; in-flight requests keep the catalog they loaded.
//!
//! A market starts `hidden` unless told otherwise (`disabled` also lets it be checked before
//! it opens; `PATCH /control/v1/markets/{market}` with `{"state": "enabled"}` opens it). Ids
//! are the next free ones, chosen here: creations are serialised, so two never pick the same.
//! Each call is decided and audited with its actor by [`crate::access`] (target `currencies`
//! or `markets`), the command carries the actor into the journal, and the routes count in the
//! control API's per-route metrics (`control_requests_total{route="/control/v1/markets"}`).

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use peregrine_auth::rbac::Permission;
use peregrine_core::catalog::{CURRENCIES_MAX, Catalog, CatalogError, MARKETS_MAX};
use peregrine_hotpath::edge::{CurrencyScale, MarketUnits, parse_decimal};
use peregrine_hotpath::{
    BAND_BPS_MAX, CommandKind, CurrencyCreate, DISPLAY_NAME_BYTES_MAX, FeeRates, MarketCreate,
    MarketRisk, MarketSpec, MarketState, UnitDecimal, check_spec, reference_name_ok,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::access::Client;
use crate::api::{ControlState, execute_as, parse_body};
use crate::error::{ControlError, ErrorBody};
use crate::reference::parse_rate;

/// Creations one at a time: each picks the next free id from the catalog it loaded and
/// publishes the catalog with its entry before the next one loads it.
static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) fn routes() -> Router<ControlState> {
    Router::new()
        .route("/control/v1/currencies", post(create_currency))
        .route("/control/v1/markets", post(create_market))
}

#[derive(OpenApi)]
#[openapi(paths(create_currency, create_market))]
pub(crate) struct CatalogDoc;

/// A currency to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CurrencyRequest {
    /// Lower-case code, 1 to 16 letters or digits, e.g. `sol`; unused so far.
    code: String,
    /// For people, 1 to 64 bytes without control characters, e.g. `Solana`.
    name: String,
    /// Decimal places of the minor unit (8 for satoshi, 2 for cents), at most 18.
    #[schema(format = "uint32", maximum = 4294967295_u64)]
    precision: u32,
}

/// A created currency.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CurrencyJson {
    /// Code.
    code: String,
    /// For people.
    name: String,
    /// Decimal places of the minor unit.
    precision: u32,
    /// The engine's id.
    id: u16,
    /// The journal sequence of the `CurrencyCreate` command.
    seq: u64,
}

/// A market to create. Decimals are strings (`"0.01"`), exact in the units named.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MarketRequest {
    /// Lower-case name, 1 to 16 letters or digits, e.g. `solusd`; unused so far.
    name: String,
    /// Base currency code.
    base: String,
    /// Quote currency code (not the base).
    quote: String,
    /// Price increment, quote per one base: the price precision.
    tick: String,
    /// Amount increment and minimum amount, in base: the amount precision (a multiple of the
    /// base's minor unit).
    lot: String,
    /// Highest acceptable price (a multiple of the tick).
    max_price: String,
    /// Largest amount of one order (a multiple of the lot).
    max_amount: String,
    /// Largest notional of one order, in the quote currency.
    max_notional: String,
    /// Price band in basis points of the reference price, on the aggressive side; 0 (the
    /// default) is no band, at most 100000.
    #[serde(default)]
    #[schema(format = "uint32", maximum = 4294967295_u64)]
    band_bps: u32,
    /// Reference price until the first trade (a multiple of the tick, at most `max_price`).
    reference_price: String,
    /// Maker rate of fee group 0, a decimal fraction (`"0.001"` is 0.1 %), at most `"0.1"`;
    /// default 0. Later changes go through four-eyes (`POST /control/v1/fees`).
    #[serde(default)]
    maker_fee: Option<String>,
    /// Taker rate of fee group 0, as `maker_fee`.
    #[serde(default)]
    taker_fee: Option<String>,
    /// The state it starts in: `hidden` (the default), `disabled`, `enabled` or `locked`.
    #[serde(default)]
    state: Option<String>,
}

/// A created market.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MarketJson {
    /// Name.
    name: String,
    /// The engine's id.
    id: u32,
    /// Base currency code.
    base: String,
    /// Quote currency code.
    quote: String,
    /// Price increment.
    tick: String,
    /// Amount increment.
    lot: String,
    /// The state it starts in.
    state: &'static str,
    /// The journal sequence of the `MarketCreate` command.
    seq: u64,
}

/// Creates a currency: one journaled `CurrencyCreate` command.
#[utoipa::path(post, path = "/control/v1/currencies", tag = "control",
    request_body = CurrencyRequest, security(("bearer" = [])),
    responses((status = 201, body = CurrencyJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn create_currency(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<CurrencyJson>), ControlError> {
    let caller = state
        .access
        .admit(&headers, &client, Permission::ReferenceCreate, "currencies")
        .await?;
    let request: CurrencyRequest = parse_body(body).await?;
    let _one_at_a_time = CREATING.lock().await;
    let catalog = state.catalog.load();
    let create = currency_command(&catalog, &request)?;
    let mut next = (*catalog).clone();
    next.add_currency(&create).map_err(catalog_refusal)?;
    let command = CommandKind::CurrencyCreate(Box::new(create.clone()));
    let executed = execute_as(&state, caller.actor(), command).await?;
    state.catalog.store(next);
    tracing::info!(code = %create.code, id = create.currency.0, seq = executed.seq,
        actor = %caller.actor(), "currency created");
    let json = CurrencyJson {
        code: create.code,
        name: create.display_name,
        precision: u32::from(create.precision),
        id: create.currency.0,
        seq: executed.seq,
    };
    Ok((StatusCode::CREATED, Json(json)))
}

/// The command of `request`, every field checked against `catalog`.
fn currency_command(
    catalog: &Catalog,
    request: &CurrencyRequest,
) -> Result<CurrencyCreate, ControlError> {
    if !reference_name_ok(&request.code) {
        return Err(invalid("code", "1 to 16 lower-case letters or digits"));
    }
    if catalog.currency(&request.code).is_some() {
        return Err(invalid("code", "a currency with this code exists"));
    }
    let name = request.name.trim();
    if name.is_empty() || name.len() > DISPLAY_NAME_BYTES_MAX || name.chars().any(char::is_control)
    {
        return Err(invalid("name", "1 to 64 bytes without control characters"));
    }
    let precision = u8::try_from(request.precision)
        .ok()
        .filter(|p| u32::from(*p) <= peregrine_core::catalog::PRECISION_MAX)
        .ok_or_else(|| invalid("precision", "at most 18 decimal places"))?;
    let currency = catalog.next_currency_id().ok_or_else(|| {
        invalid(
            "code",
            &format!("the catalog holds the most currencies it can ({CURRENCIES_MAX})"),
        )
    })?;
    Ok(CurrencyCreate {
        currency,
        code: request.code.clone(),
        display_name: name.to_owned(),
        precision,
    })
}

/// Creates a market: one journaled `MarketCreate` command.
#[utoipa::path(post, path = "/control/v1/markets", tag = "control",
    request_body = MarketRequest, security(("bearer" = [])),
    responses((status = 201, body = MarketJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn create_market(
    State(state): State<ControlState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<MarketJson>), ControlError> {
    let caller = state
        .access
        .admit(&headers, &client, Permission::ReferenceCreate, "markets")
        .await?;
    let request: MarketRequest = parse_body(body).await?;
    let _one_at_a_time = CREATING.lock().await;
    let catalog = state.catalog.load();
    let create = market_command(&catalog, &request)?;
    let mut next = (*catalog).clone();
    next.add_market(&create).map_err(catalog_refusal)?;
    let command = CommandKind::MarketCreate(Box::new(create.clone()));
    let executed = execute_as(&state, caller.actor(), command).await?;
    state.catalog.store(next);
    tracing::info!(market = %create.name, id = create.spec.market.0, seq = executed.seq,
        actor = %caller.actor(), "market created");
    let text = |d: Option<Decimal>| d.unwrap_or_default().normalize().to_string();
    let json = MarketJson {
        name: create.name.clone(),
        id: create.spec.market.0,
        base: request.base,
        quote: request.quote,
        tick: text(create.tick.decimal()),
        lot: text(create.lot.decimal()),
        state: create.state.as_str(),
        seq: executed.seq,
    };
    Ok((StatusCode::CREATED, Json(json)))
}

/// The command of `request`, every field checked against `catalog` and the engine's limits.
fn market_command(
    catalog: &Catalog,
    request: &MarketRequest,
) -> Result<MarketCreate, ControlError> {
    if !reference_name_ok(&request.name) {
        return Err(invalid("name", "1 to 16 lower-case letters or digits"));
    }
    if catalog.market(&request.name).is_some() {
        return Err(invalid("name", "a market with this name exists"));
    }
    let currency = |field: &'static str, code: &str| {
        catalog
            .currency(code)
            .cloned()
            .ok_or_else(|| invalid(field, "no such currency"))
    };
    let (base, quote) = (
        currency("base", &request.base)?,
        currency("quote", &request.quote)?,
    );
    if base.id == quote.id {
        return Err(invalid("quote", "is the base currency"));
    }
    let state = match &request.state {
        None => MarketState::Hidden,
        Some(text) => MarketState::parse(text)
            .ok_or_else(|| invalid("state", "is not enabled, hidden, disabled or locked"))?,
    };
    let (units, tick, lot) = market_units(request, base.scale, quote.scale)?;
    let (base_per_lot, quote_per_tick_lot) = units
        .engine_units()
        .map_err(|e| invalid("tick", &e.to_string()))?;
    let spec = MarketSpec {
        market: catalog.next_market_id().ok_or_else(|| {
            invalid(
                "name",
                &format!("the catalog holds the most markets it can ({MARKETS_MAX})"),
            )
        })?,
        base: base.id,
        quote: quote.id,
        base_per_lot,
        quote_per_tick_lot,
        risk: market_risk(request, &units, quote.scale)?,
        fees: FeeRates {
            maker_ppm: optional_rate("maker_fee", request.maker_fee.as_deref())?,
            taker_ppm: optional_rate("taker_fee", request.taker_fee.as_deref())?,
        },
    };
    // What the engine checks (sizes, fees, maxima whose largest order fits u64).
    check_spec(&spec)
        .map_err(|field| invalid(field.as_str(), "is out of range for this market"))?;
    Ok(MarketCreate {
        spec,
        name: request.name.clone(),
        tick,
        lot,
        state,
    })
}

/// The decimal tick and lot, each checked by its own field.
fn market_units(
    request: &MarketRequest,
    base: CurrencyScale,
    quote: CurrencyScale,
) -> Result<(MarketUnits, UnitDecimal, UnitDecimal), ControlError> {
    let unit = |field: &'static str, text: &str| {
        let value = decimal(field, text)?;
        UnitDecimal::of(value)
            .map(|unit| (value, unit))
            .ok_or_else(|| invalid(field, "must be positive, at most 28 decimal places"))
    };
    let (tick, tick_unit) = unit("tick", &request.tick)?;
    let (lot, lot_unit) = unit("lot", &request.lot)?;
    // A lot finer than the base's minor unit cannot be settled.
    match base.to_minor(lot) {
        Ok(amount) if amount.0 > 0 => {}
        _ => {
            return Err(invalid(
                "lot",
                "must be a multiple of the base's minor unit",
            ));
        }
    }
    let units = MarketUnits {
        tick,
        lot,
        base,
        quote,
    };
    Ok((units, tick_unit, lot_unit))
}

/// The risk parameters, each in the units of its field.
fn market_risk(
    request: &MarketRequest,
    units: &MarketUnits,
    quote: CurrencyScale,
) -> Result<MarketRisk, ControlError> {
    if request.band_bps > BAND_BPS_MAX {
        return Err(invalid("band_bps", "at most 100000; 0 is no band"));
    }
    let max_price = units
        .price(decimal("max_price", &request.max_price)?)
        .map_err(|e| invalid("max_price", &e.to_string()))?;
    let max_qty = units
        .qty(decimal("max_amount", &request.max_amount)?)
        .map_err(|e| invalid("max_amount", &e.to_string()))?;
    let max_notional = quote
        .to_minor(decimal("max_notional", &request.max_notional)?)
        .map_err(|e| invalid("max_notional", &e.to_string()))?;
    let reference_price = units
        .price(decimal("reference_price", &request.reference_price)?)
        .map_err(|e| invalid("reference_price", &e.to_string()))?;
    Ok(MarketRisk {
        max_price,
        max_qty,
        max_notional,
        band_bps: request.band_bps,
        reference_price,
    })
}

fn optional_rate(field: &'static str, text: Option<&str>) -> Result<u32, ControlError> {
    text.map_or(Ok(0), |text| parse_rate(field, text))
}

fn decimal(field: &'static str, text: &str) -> Result<Decimal, ControlError> {
    parse_decimal(text).map_err(|e| invalid(field, &e.to_string()))
}

/// The catalog's own check refused what the fields above passed: a duplicate id or name
/// (named by the catalog) or units that do not round-trip.
fn catalog_refusal(error: CatalogError) -> ControlError {
    let field = match &error {
        CatalogError::Duplicate { what, .. } if what.starts_with("currency") => "code",
        CatalogError::UnknownCurrency { .. } => "base",
        CatalogError::Invalid { .. } | CatalogError::Conflict(_) => "tick",
        _ => "name",
    };
    invalid(field, &error.to_string())
}

fn invalid(field: &'static str, why: &str) -> ControlError {
    ControlError::InvalidField {
        field,
        why: why.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use peregrine_core::catalog::{CurrencyDef, MarketDef};

    fn catalog() -> Catalog {
        let currencies = [("btc", 0, 8), ("usd", 1, 6)].map(|(code, id, precision)| CurrencyDef {
            code: code.into(),
            id,
            precision,
        });
        let markets = [MarketDef {
            name: "btcusd".into(),
            id: 0,
            base: "btc".into(),
            quote: "usd".into(),
            tick: "0.01".parse().unwrap(),
            lot: "0.0001".parse().unwrap(),
            max_price: "1000000".parse().unwrap(),
            max_amount: "1000".parse().unwrap(),
            max_notional: "100000000".parse().unwrap(),
            band_bps: 0,
            reference_price: "50000".parse().unwrap(),
            maker_fee_ppm: 1_000,
            taker_fee_ppm: 2_000,
        }];
        Catalog::new(&currencies, &markets).unwrap()
    }

    fn market(name: &str) -> MarketRequest {
        MarketRequest {
            name: name.into(),
            base: "btc".into(),
            quote: "usd".into(),
            tick: "0.1".into(),
            lot: "0.001".into(),
            max_price: "100000".into(),
            max_amount: "100".into(),
            max_notional: "10000000".into(),
            band_bps: 0,
            reference_price: "40000".into(),
            maker_fee: None,
            taker_fee: Some("0.002".into()),
            state: None,
        }
    }

    fn refused_field(result: Result<MarketCreate, ControlError>) -> &'static str {
        match result {
            Err(ControlError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_market_request_becomes_a_command_the_catalog_takes() {
        let catalog = catalog();
        let create = market_command(&catalog, &market("btcusd2")).unwrap();
        assert_eq!(create.spec.market.0, 1);
        assert_eq!(create.state, MarketState::Hidden);
        assert_eq!(create.spec.fees.taker_ppm, 2_000);
        let mut next = catalog.clone();
        next.add_market(&create).unwrap();
        assert_eq!(next.market("btcusd2").unwrap().base, "btc");
    }

    /// A field's name and how to spoil it.
    type BadMarket = (&'static str, fn(&mut MarketRequest));

    #[test]
    fn each_bad_market_value_names_its_field() {
        let catalog = catalog();
        let cases: [BadMarket; 10] = [
            ("name", |r| r.name = "btcusd".into()),
            ("name", |r| r.name = "BTC-USD".into()),
            ("base", |r| r.base = "doge".into()),
            ("quote", |r| r.quote = "btc".into()),
            ("lot", |r| r.lot = "0.000000001".into()),
            ("tick", |r| r.tick = "-1".into()),
            ("max_price", |r| r.max_price = "100000.05".into()),
            ("band_bps", |r| r.band_bps = 100_001),
            ("taker_fee", |r| r.taker_fee = Some("0.5".into())),
            ("state", |r| r.state = Some("open".into())),
        ];
        for (field, spoil) in cases {
            let mut request = market("newmarket");
            spoil(&mut request);
            assert_eq!(refused_field(market_command(&catalog, &request)), field);
        }
    }

    #[test]
    fn each_bad_currency_value_names_its_field() {
        let catalog = catalog();
        let request = |code: &str, name: &str, precision: u32| CurrencyRequest {
            code: code.into(),
            name: name.into(),
            precision,
        };
        let good = currency_command(&catalog, &request("sol", "Solana", 9)).unwrap();
        assert_eq!((good.currency.0, good.precision), (2, 9));
        for (bad, field) in [
            (request("btc", "Bitcoin", 8), "code"),
            (request("So l", "Solana", 9), "code"),
            (request("sol", " ", 9), "name"),
            (request("sol", "Solana", 19), "precision"),
            (request("sol", "Solana", 256), "precision"),
        ] {
            match currency_command(&catalog, &bad) {
                Err(ControlError::InvalidField { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
