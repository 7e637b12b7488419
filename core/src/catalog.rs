//! The catalog: currencies and markets by name, with the decimal units the edges speak
//! (`btc`, `btcusd`, tick `0.01`, lot `0.0001`) and the engine's integer ids and units behind
//! them. Declared in configuration, like Peatio's seeded `currencies.yml` and `markets.yml`;
//! `peregrine up` adds what the engine lacks as journaled commands at start.
//!
//! Parse, don't validate: a [`Catalog`] that exists has unique names and ids, markets whose
//! currencies exist, and units that convert exactly to engine units.
//!
//! Currencies and markets may also be created at runtime (`CommandKind::CurrencyCreate`,
//! `MarketCreate`, carrying their names and units): the engine keeps them
//! ([`Engine::runtime_reference`], in its snapshots too), [`Catalog::with_runtime`] adds them
//! to the configured ones at start, and a [`SharedCatalog`] is what every reader holds: each
//! request loads the current catalog once, and a creation publishes a new one.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use peregrine_hotpath::config::{MAX_CURRENCIES_DEFAULT, MAX_MARKETS_DEFAULT};
use peregrine_hotpath::edge::{CurrencyScale, MarketUnits};
use peregrine_hotpath::{
    Amount, BAND_BPS_MAX, CURRENCY_PRECISION_MAX, CommandKind, CurrencyCreate, CurrencyId, Engine,
    FeeRates, MarketCreate, MarketId, MarketRisk, MarketSpec, Price, Qty, REFERENCE_NAME_BYTES_MAX,
    RuntimeReference,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest currency code or market name.
pub const NAME_BYTES_MAX: usize = REFERENCE_NAME_BYTES_MAX;
/// Decimal places of a currency's minor unit, at most (u64 minor units stay meaningful).
pub const PRECISION_MAX: u32 = CURRENCY_PRECISION_MAX as u32;
/// Most currencies a catalog holds (configured and created at runtime): ids are below it.
pub const CURRENCIES_MAX: usize = 64;
/// Most markets a catalog holds (configured and created at runtime): ids are below it.
pub const MARKETS_MAX: usize = 256;

// Every id the catalog hands out must be one the appliance's engine has room for.
const _: () = assert!(CURRENCIES_MAX <= MAX_CURRENCIES_DEFAULT as usize);
const _: () = assert!(MARKETS_MAX <= MAX_MARKETS_DEFAULT as usize);

/// A currency as configured (`[[currencies]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurrencyDef {
    /// Lower-case code, e.g. `btc`.
    pub code: String,
    /// The engine's dense id.
    pub id: u16,
    /// Decimal places of the minor unit (8 for satoshi, 2 for cents).
    pub precision: u32,
}

/// A market as configured (`[[markets]]`). Decimals are written as strings (`"0.01"`) so no
/// binary float ever rounds them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketDef {
    /// Lower-case name, e.g. `btcusd`.
    pub name: String,
    /// The engine's dense id.
    pub id: u32,
    /// Base currency code.
    pub base: String,
    /// Quote currency code.
    pub quote: String,
    /// Price increment (quote per one base).
    #[serde(with = "decimal_string")]
    pub tick: Decimal,
    /// Amount increment (base).
    #[serde(with = "decimal_string")]
    pub lot: Decimal,
    /// Highest acceptable price.
    #[serde(with = "decimal_string")]
    pub max_price: Decimal,
    /// Largest amount of one order (base).
    #[serde(with = "decimal_string")]
    pub max_amount: Decimal,
    /// Largest notional of one order (quote).
    #[serde(with = "decimal_string")]
    pub max_notional: Decimal,
    /// Price band in basis points of the reference price, on the aggressive side only (a buy
    /// above reference + band or a sell below reference - band is refused; passive prices are
    /// free); absent or 0 is no band, at most `BAND_BPS_MAX` (100 000).
    #[serde(default)]
    pub band_bps: u32,
    /// Reference price until the first trade.
    #[serde(with = "decimal_string")]
    pub reference_price: Decimal,
    /// Maker fee, parts per million.
    pub maker_fee_ppm: u32,
    /// Taker fee, parts per million.
    pub taker_fee_ppm: u32,
}

/// Why a catalog was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// A name is empty, too long or not lower-case ASCII alphanumeric.
    #[error("`{0}`: names are 1 to {NAME_BYTES_MAX} lower-case letters or digits")]
    BadName(String),
    /// Two entries share a name or an id.
    #[error("duplicate {what} `{name}`")]
    Duplicate {
        /// "currency code", "currency id", ...
        what: &'static str,
        /// The repeated value.
        name: String,
    },
    /// A market names a currency that is not in the catalog.
    #[error("market `{market}`: unknown currency `{currency}`")]
    UnknownCurrency {
        /// The market.
        market: String,
        /// The code.
        currency: String,
    },
    /// The catalog would hold more currencies or markets than [`CURRENCIES_MAX`] or
    /// [`MARKETS_MAX`] (or an id at or above it).
    #[error("{what}: at most {limit}")]
    Full {
        /// "currencies" or "markets".
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A value does not convert to engine units.
    #[error("{entry}: {reason}")]
    Invalid {
        /// The currency or market.
        entry: String,
        /// Why.
        reason: String,
    },
    /// The engine already has this id with other parameters: changing a live market's units
    /// would silently rescale every price and amount, so it is refused.
    #[error(
        "market `{0}` exists in the journal with other currencies or units (tick, lot); a live market's units cannot change: add a new market instead"
    )]
    Conflict(String),
}

/// A currency with its engine id and scale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Currency {
    /// Code.
    pub code: String,
    /// For people (`BTC` for a configured `btc`; as given when created at runtime).
    pub display_name: String,
    /// Engine id.
    pub id: CurrencyId,
    /// Minor-unit scale.
    pub scale: CurrencyScale,
}

/// A market with its engine specification and units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Market {
    /// Name.
    pub name: String,
    /// Base currency code.
    pub base: String,
    /// Quote currency code.
    pub quote: String,
    /// Decimal ↔ engine units.
    pub units: MarketUnits,
    /// What the engine is told.
    pub spec: MarketSpec,
}

/// Currencies and markets, by name and by engine id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    currencies: Vec<Currency>,
    markets: Vec<Market>,
    currency_by_code: HashMap<String, usize>,
    market_by_name: HashMap<String, usize>,
}

impl Catalog {
    /// Parses the configured definitions.
    pub fn new(currencies: &[CurrencyDef], markets: &[MarketDef]) -> Result<Catalog, CatalogError> {
        let currencies_fit = currencies.len() <= CURRENCIES_MAX
            && currencies
                .iter()
                .all(|c| usize::from(c.id) < CURRENCIES_MAX);
        if !currencies_fit {
            return Err(CatalogError::Full {
                what: "currencies",
                limit: CURRENCIES_MAX,
            });
        }
        let markets_fit =
            markets.len() <= MARKETS_MAX && markets.iter().all(|m| (m.id as usize) < MARKETS_MAX);
        if !markets_fit {
            return Err(CatalogError::Full {
                what: "markets",
                limit: MARKETS_MAX,
            });
        }
        let mut catalog = Catalog::default();
        let mut currency_ids = HashMap::new();
        for def in currencies {
            check_name(&def.code)?;
            if def.precision > PRECISION_MAX {
                return Err(CatalogError::Invalid {
                    entry: def.code.clone(),
                    reason: format!("precision {} is above {PRECISION_MAX}", def.precision),
                });
            }
            if currency_ids.insert(def.id, ()).is_some() {
                return Err(duplicate("currency id", def.id));
            }
            let index = catalog.currencies.len();
            if catalog
                .currency_by_code
                .insert(def.code.clone(), index)
                .is_some()
            {
                return Err(duplicate("currency code", &def.code));
            }
            catalog.currencies.push(Currency {
                code: def.code.clone(),
                display_name: def.code.to_uppercase(),
                id: CurrencyId(def.id),
                scale: CurrencyScale {
                    scale: def.precision,
                },
            });
        }
        let mut market_ids = HashMap::new();
        for def in markets {
            check_name(&def.name)?;
            if market_ids.insert(def.id, ()).is_some() {
                return Err(duplicate("market id", def.id));
            }
            let market = catalog.parse_market(def)?;
            let index = catalog.markets.len();
            if catalog
                .market_by_name
                .insert(def.name.clone(), index)
                .is_some()
            {
                return Err(duplicate("market name", &def.name));
            }
            catalog.markets.push(market);
        }
        Ok(catalog)
    }

    fn parse_market(&self, def: &MarketDef) -> Result<Market, CatalogError> {
        let currency = |code: &str| {
            self.currency(code)
                .cloned()
                .ok_or_else(|| CatalogError::UnknownCurrency {
                    market: def.name.clone(),
                    currency: code.to_owned(),
                })
        };
        let (base, quote) = (currency(&def.base)?, currency(&def.quote)?);
        if def.band_bps > BAND_BPS_MAX {
            return Err(invalid(
                &def.name,
                "band_bps above 100000 (10x the reference); 0 or absent is no band",
            ));
        }
        if base.id == quote.id {
            return Err(invalid(&def.name, "base and quote are the same currency"));
        }
        let units = MarketUnits {
            tick: def.tick,
            lot: def.lot,
            base: base.scale,
            quote: quote.scale,
        };
        let (base_per_lot, quote_per_tick_lot) = units
            .engine_units()
            .map_err(|e| invalid(&def.name, &e.to_string()))?;
        let field = |what: &str, e: peregrine_hotpath::edge::EdgeError| {
            invalid(&def.name, &format!("{what}: {e}"))
        };
        let max_price: Price = units
            .price(def.max_price)
            .map_err(|e| field("max_price", e))?;
        let max_qty: Qty = units
            .qty(def.max_amount)
            .map_err(|e| field("max_amount", e))?;
        let max_notional: Amount = quote
            .scale
            .to_minor(def.max_notional)
            .map_err(|e| field("max_notional", e))?;
        let reference_price = units
            .price(def.reference_price)
            .map_err(|e| field("reference_price", e))?;
        let spec = MarketSpec {
            market: MarketId(def.id),
            base: base.id,
            quote: quote.id,
            base_per_lot,
            quote_per_tick_lot,
            risk: MarketRisk {
                max_price,
                max_qty,
                max_notional,
                band_bps: def.band_bps,
                reference_price,
            },
            fees: FeeRates {
                maker_ppm: def.maker_fee_ppm,
                taker_ppm: def.taker_fee_ppm,
            },
        };
        Ok(Market {
            name: def.name.clone(),
            base: def.base.clone(),
            quote: def.quote.clone(),
            units,
            spec,
        })
    }

    /// Currencies in configuration order.
    pub fn currencies(&self) -> &[Currency] {
        &self.currencies
    }

    /// Markets in configuration order.
    pub fn markets(&self) -> &[Market] {
        &self.markets
    }

    /// A currency by code.
    pub fn currency(&self, code: &str) -> Option<&Currency> {
        self.currency_by_code
            .get(code)
            .map(|&index| &self.currencies[index])
    }

    /// A currency by engine id.
    pub fn currency_by_id(&self, id: CurrencyId) -> Option<&Currency> {
        self.currencies.iter().find(|c| c.id == id)
    }

    /// A market by name.
    pub fn market(&self, name: &str) -> Option<&Market> {
        self.market_by_name
            .get(name)
            .map(|&index| &self.markets[index])
    }

    /// A market by engine id.
    pub fn market_by_id(&self, id: MarketId) -> Option<&Market> {
        self.markets.iter().find(|m| m.spec.market == id)
    }

    /// This catalog with the entries `reference` holds (the engine's runtime-created ones, in
    /// the order they were created). A configured entry with the same code, name or id as one
    /// of them is refused: the journal already gave it to another.
    pub fn with_runtime(mut self, reference: &RuntimeReference) -> Result<Catalog, CatalogError> {
        for currency in &reference.currencies {
            self.add_currency(currency)?;
        }
        for market in &reference.markets {
            self.add_market(market)?;
        }
        Ok(self)
    }

    /// Adds a currency created at runtime, checked as configuration is.
    pub fn add_currency(&mut self, create: &CurrencyCreate) -> Result<(), CatalogError> {
        check_name(&create.code)?;
        if self.currencies.len() >= CURRENCIES_MAX
            || usize::from(create.currency.0) >= CURRENCIES_MAX
        {
            return Err(CatalogError::Full {
                what: "currencies",
                limit: CURRENCIES_MAX,
            });
        }
        if u32::from(create.precision) > PRECISION_MAX {
            return Err(invalid(&create.code, "precision is above 18"));
        }
        if self.currency_by_id(create.currency).is_some() {
            return Err(duplicate("currency id", create.currency.0));
        }
        if self.currency(&create.code).is_some() {
            return Err(duplicate("currency code", &create.code));
        }
        self.currency_by_code
            .insert(create.code.clone(), self.currencies.len());
        self.currencies.push(Currency {
            code: create.code.clone(),
            display_name: create.display_name.clone(),
            id: create.currency,
            scale: CurrencyScale {
                scale: u32::from(create.precision),
            },
        });
        Ok(())
    }

    /// Adds a market created at runtime: its currencies must be in the catalog and its decimal
    /// tick and lot must give exactly the engine units its specification carries.
    pub fn add_market(&mut self, create: &MarketCreate) -> Result<(), CatalogError> {
        check_name(&create.name)?;
        let spec = &create.spec;
        if self.markets.len() >= MARKETS_MAX || spec.market.0 as usize >= MARKETS_MAX {
            return Err(CatalogError::Full {
                what: "markets",
                limit: MARKETS_MAX,
            });
        }
        if self.market_by_id(spec.market).is_some() {
            return Err(duplicate("market id", spec.market.0));
        }
        if self.market(&create.name).is_some() {
            return Err(duplicate("market name", &create.name));
        }
        let currency = |id: CurrencyId| {
            self.currency_by_id(id)
                .cloned()
                .ok_or_else(|| CatalogError::UnknownCurrency {
                    market: create.name.clone(),
                    currency: id.0.to_string(),
                })
        };
        let (base, quote) = (currency(spec.base)?, currency(spec.quote)?);
        let (Some(tick), Some(lot)) = (create.tick.decimal(), create.lot.decimal()) else {
            return Err(invalid(&create.name, "tick or lot out of range"));
        };
        let units = MarketUnits {
            tick,
            lot,
            base: base.scale,
            quote: quote.scale,
        };
        let engine_units = units
            .engine_units()
            .map_err(|e| invalid(&create.name, &e.to_string()))?;
        if engine_units != (spec.base_per_lot, spec.quote_per_tick_lot) {
            return Err(CatalogError::Conflict(create.name.clone()));
        }
        self.market_by_name
            .insert(create.name.clone(), self.markets.len());
        self.markets.push(Market {
            name: create.name.clone(),
            base: base.code,
            quote: quote.code,
            units,
            spec: spec.clone(),
        });
        Ok(())
    }

    /// The id the next currency created gets (one above the highest), if there is room.
    pub fn next_currency_id(&self) -> Option<CurrencyId> {
        let next = self
            .currencies
            .iter()
            .map(|c| usize::from(c.id.0) + 1)
            .max()
            .unwrap_or(0);
        let room = self.currencies.len() < CURRENCIES_MAX && next < CURRENCIES_MAX;
        room.then(|| CurrencyId(u16::try_from(next).unwrap_or(u16::MAX)))
    }

    /// The id the next market created gets (one above the highest), if there is room.
    pub fn next_market_id(&self) -> Option<MarketId> {
        let next = self
            .markets
            .iter()
            .map(|m| m.spec.market.0 as usize + 1)
            .max()
            .unwrap_or(0);
        let room = self.markets.len() < MARKETS_MAX && next < MARKETS_MAX;
        room.then(|| MarketId(u32::try_from(next).unwrap_or(u32::MAX)))
    }

    /// The commands that bring `engine` up to this catalog (currencies first, then markets), in
    /// configuration order. A market the engine has with another specification is a conflict.
    pub fn missing_in(&self, engine: &Engine) -> Result<Vec<CommandKind>, CatalogError> {
        let mut commands = Vec::new();
        for currency in &self.currencies {
            if !engine.ledger().is_registered(currency.id) {
                commands.push(CommandKind::CurrencyAdd {
                    currency: currency.id,
                });
            }
        }
        for market in &self.markets {
            match engine.market_spec(market.spec.market) {
                None => commands.push(CommandKind::MarketAdd(market.spec.clone())),
                // Risk and fees may have been changed by later commands; the units may not.
                Some(live)
                    if live.base != market.spec.base
                        || live.quote != market.spec.quote
                        || live.base_per_lot != market.spec.base_per_lot
                        || live.quote_per_tick_lot != market.spec.quote_per_tick_lot =>
                {
                    return Err(CatalogError::Conflict(market.name.clone()));
                }
                Some(_) => {}
            }
        }
        Ok(commands)
    }
}

/// The catalog every reader shares: each request [`SharedCatalog::load`]s it once and reads
/// that snapshot throughout (a creation in between is seen by the next request, never half
/// way through one); a creation [`SharedCatalog::store`]s a new one. Loads take no lock.
#[derive(Clone, Debug)]
pub struct SharedCatalog(Arc<ArcSwap<Catalog>>);

impl SharedCatalog {
    /// Shares `catalog`.
    pub fn new(catalog: Catalog) -> SharedCatalog {
        SharedCatalog(Arc::new(ArcSwap::from_pointee(catalog)))
    }

    /// The current catalog.
    pub fn load(&self) -> Arc<Catalog> {
        self.0.load_full()
    }

    /// Publishes `catalog`: every later load sees it.
    pub fn store(&self, catalog: Catalog) {
        self.0.store(Arc::new(catalog));
    }
}

impl From<Arc<Catalog>> for SharedCatalog {
    fn from(catalog: Arc<Catalog>) -> SharedCatalog {
        SharedCatalog(Arc::new(ArcSwap::new(catalog)))
    }
}

impl From<Catalog> for SharedCatalog {
    fn from(catalog: Catalog) -> SharedCatalog {
        SharedCatalog::new(catalog)
    }
}

fn check_name(name: &str) -> Result<(), CatalogError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(CatalogError::BadName(name.to_owned()))
    }
}

fn duplicate(what: &'static str, name: impl ToString) -> CatalogError {
    CatalogError::Duplicate {
        what,
        name: name.to_string(),
    }
}

fn invalid(entry: &str, reason: &str) -> CatalogError {
    CatalogError::Invalid {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Decimals as strings only: a TOML float like `0.1` is refused rather than trusted.
mod decimal_string {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.normalize().to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse::<Decimal>()
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a decimal number: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btc_usd() -> (Vec<CurrencyDef>, Vec<MarketDef>) {
        let currencies = vec![
            CurrencyDef {
                code: "btc".into(),
                id: 1,
                precision: 8,
            },
            CurrencyDef {
                code: "usd".into(),
                id: 2,
                // Micro-dollars: a 0.01 tick on a 0.0001 lot moves 0.000001 usd.
                precision: 6,
            },
        ];
        let markets = vec![MarketDef {
            name: "btcusd".into(),
            id: 1,
            base: "btc".into(),
            quote: "usd".into(),
            tick: "0.01".parse().unwrap(),
            lot: "0.0001".parse().unwrap(),
            max_price: "1000000".parse().unwrap(),
            max_amount: "100".parse().unwrap(),
            max_notional: "10000000".parse().unwrap(),
            band_bps: 1_000,
            reference_price: "50000".parse().unwrap(),
            maker_fee_ppm: 1_000,
            taker_fee_ppm: 2_000,
        }];
        (currencies, markets)
    }

    #[test]
    fn converts_units_and_finds_by_name_and_id() {
        let (currencies, markets) = btc_usd();
        let catalog = Catalog::new(&currencies, &markets).unwrap();
        let market = catalog.market("btcusd").unwrap();
        // 0.0001 btc = 10_000 sat; 0.01 usd * 0.0001 = 1 micro-dollar.
        assert_eq!(market.spec.base_per_lot, 10_000);
        assert_eq!(market.spec.quote_per_tick_lot, 1);
        assert!(catalog.market_by_id(MarketId(1)).is_some());
        assert_eq!(catalog.currency("usd").unwrap().id, CurrencyId(2));
        assert!(catalog.market("ethusd").is_none());
    }

    /// Applies `commands` to `engine` as the system, returning every event.
    fn apply_all(engine: &mut Engine, commands: Vec<CommandKind>) -> Vec<peregrine_hotpath::Event> {
        let mut events = Vec::new();
        for kind in commands {
            engine.apply(
                &peregrine_hotpath::Envelope {
                    ts: peregrine_hotpath::TimestampNs(1),
                    actor: peregrine_hotpath::Actor::System,
                    kind,
                },
                &mut events,
            );
        }
        events
    }

    /// A band of 0 (what an absent `band_bps` parses to) is a market without band, which the
    /// engine adds; a band above `BAND_BPS_MAX` is refused at parse time.
    #[test]
    fn band_zero_is_no_band_and_too_wide_is_refused() {
        let (currencies, mut markets) = btc_usd();
        markets[0].band_bps = 0;
        let catalog = Catalog::new(&currencies, &markets).unwrap();
        let mut engine = Engine::new(peregrine_hotpath::EngineConfig::small()).unwrap();
        let commands = catalog.missing_in(&engine).unwrap();
        let events = apply_all(&mut engine, commands);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, peregrine_hotpath::Event::MarketAdded { .. })),
            "{events:?}"
        );
        markets[0].band_bps = BAND_BPS_MAX + 1;
        let error = Catalog::new(&currencies, &markets).unwrap_err();
        assert!(matches!(error, CatalogError::Invalid { .. }), "{error}");
    }

    #[test]
    fn refuses_inexact_units_duplicates_and_unknown_currencies() {
        let (mut currencies, mut markets) = btc_usd();
        assert!(Catalog::new(&currencies, &markets).is_ok());
        // In cents, tick*lot is 0.000001 usd: refused rather than rounded.
        currencies[1].precision = 2;
        let error = Catalog::new(&currencies, &markets).unwrap_err();
        assert!(matches!(error, CatalogError::Invalid { .. }), "{error}");
        currencies[1].precision = 6;
        let mut twice = markets.clone();
        twice.push(markets[0].clone());
        assert!(matches!(
            Catalog::new(&currencies, &twice),
            Err(CatalogError::Duplicate { .. })
        ));
        markets[0].quote = "eur".into();
        assert!(matches!(
            Catalog::new(&currencies, &markets),
            Err(CatalogError::UnknownCurrency { .. })
        ));
        let mut bad = currencies.clone();
        bad[0].code = "BTC".into();
        assert!(matches!(
            Catalog::new(&bad, &[]),
            Err(CatalogError::BadName(_))
        ));
    }

    #[test]
    fn missing_in_adds_what_the_engine_lacks_and_refuses_unit_changes() {
        let (currencies, mut markets) = btc_usd();
        let catalog = Catalog::new(&currencies, &markets).unwrap();
        let mut engine = Engine::new(peregrine_hotpath::EngineConfig::small()).unwrap();
        let commands = catalog.missing_in(&engine).unwrap();
        assert_eq!(commands.len(), 3);
        let events = apply_all(&mut engine, commands);
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, peregrine_hotpath::Event::Rejected { .. })),
            "{events:?}"
        );
        assert!(catalog.missing_in(&engine).unwrap().is_empty());
        markets[0].lot = "0.001".parse().unwrap();
        let changed = Catalog::new(&currencies, &markets).unwrap();
        assert!(matches!(
            changed.missing_in(&engine),
            Err(CatalogError::Conflict(_))
        ));
    }
}
