//! Reference data created at runtime: a currency or a market as ONE journaled command that
//! carries everything the edges need to speak of it (code, name, precision, decimal tick and
//! lot), so the journal alone, or a snapshot, rebuilds the catalog without configuration.
//!
//! The engine applies them as `CurrencyAdd` and `MarketAdd` (same checks, same events) and
//! keeps the payloads in [`RuntimeReference`], which snapshots carry. Names are checked here
//! as well as at the edge: a journal is trusted, but a bad name would stop the next start.

use rust_decimal::Decimal;

use crate::command::{MarketSpec, MarketState};
use crate::engine::Engine;
use crate::event::{Event, RejectReason};
use crate::ids::CurrencyId;

/// Longest currency code or market name, bytes.
pub const REFERENCE_NAME_BYTES_MAX: usize = 16;
/// Longest display name of a currency, bytes.
pub const DISPLAY_NAME_BYTES_MAX: usize = 64;
/// Most decimal places of a currency's minor unit (u64 minor units stay meaningful).
pub const CURRENCY_PRECISION_MAX: u8 = 18;
/// Most decimal places of a tick or lot (a `Decimal`'s scale is at most 28).
pub const UNIT_SCALE_MAX: u8 = 28;

/// A currency created at runtime (`CommandKind::CurrencyCreate`).
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct CurrencyCreate {
    /// The dense id (unused so far).
    pub currency: CurrencyId,
    /// Lower-case code, e.g. `sol`.
    pub code: String,
    /// For people, e.g. `Solana`.
    pub display_name: String,
    /// Decimal places of the minor unit.
    pub precision: u8,
}

/// An exact decimal `mantissa * 10^-scale` (a tick or a lot).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct UnitDecimal {
    /// The digits.
    pub mantissa: u64,
    /// Decimal places.
    pub scale: u8,
}

impl UnitDecimal {
    /// `value` if it is positive and fits (at most [`UNIT_SCALE_MAX`] places, a u64 mantissa).
    pub fn of(value: Decimal) -> Option<UnitDecimal> {
        let value = value.normalize();
        let mantissa = u64::try_from(value.mantissa()).ok()?;
        let scale = u8::try_from(value.scale()).ok()?;
        (mantissa > 0 && scale <= UNIT_SCALE_MAX).then_some(UnitDecimal { mantissa, scale })
    }

    /// The decimal, or `None` when the fields are out of range (a damaged journal).
    pub fn decimal(self) -> Option<Decimal> {
        let mantissa = i64::try_from(self.mantissa).ok()?;
        (self.mantissa > 0 && self.scale <= UNIT_SCALE_MAX)
            .then(|| Decimal::new(mantissa, u32::from(self.scale)))
    }
}

/// A market created at runtime (`CommandKind::MarketCreate`).
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct MarketCreate {
    /// What `MarketAdd` takes (ids, engine units, risk, fees).
    pub spec: MarketSpec,
    /// Lower-case name, e.g. `solusd`.
    pub name: String,
    /// Price increment (quote per one base), decimal.
    pub tick: UnitDecimal,
    /// Amount increment (base), decimal.
    pub lot: UnitDecimal,
    /// The state it starts in (`hidden` or `disabled` lets it be checked before it opens).
    pub state: MarketState,
}

/// The entries created at runtime, in journal order: part of the engine's state.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct RuntimeReference {
    /// Currencies, as created.
    pub currencies: Vec<CurrencyCreate>,
    /// Markets, as created (their risk and fees as created; later changes are the engine's).
    pub markets: Vec<MarketCreate>,
}

/// Whether `name` is 1 to [`REFERENCE_NAME_BYTES_MAX`] lower-case ASCII letters or digits.
pub fn reference_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= REFERENCE_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl Engine {
    /// The currencies and markets created at runtime.
    pub fn runtime_reference(&self) -> &RuntimeReference {
        &self.reference
    }

    pub(crate) fn currency_create(
        &mut self,
        create: &CurrencyCreate,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let fits = reference_name_ok(&create.code)
            && create.display_name.len() <= DISPLAY_NAME_BYTES_MAX
            && create.precision <= CURRENCY_PRECISION_MAX;
        if !fits {
            return Err(RejectReason::CurrencyOutOfRange);
        }
        if self
            .reference
            .currencies
            .iter()
            .any(|c| c.code == create.code)
        {
            return Err(RejectReason::CurrencyExists);
        }
        self.currency_add(create.currency, out)?;
        self.reference.currencies.push(create.clone());
        debug_assert!(self.reference.currencies.len() <= usize::from(self.config.max_currencies));
        Ok(())
    }

    pub(crate) fn market_create(
        &mut self,
        create: &MarketCreate,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let fits = reference_name_ok(&create.name)
            && create.tick.decimal().is_some()
            && create.lot.decimal().is_some();
        if !fits {
            return Err(RejectReason::InvalidMarketSpec);
        }
        if self.reference.markets.iter().any(|m| m.name == create.name) {
            return Err(RejectReason::MarketExists);
        }
        self.market_add(&create.spec, out)?;
        if create.state != MarketState::Enabled {
            // The market exists now: setting its state cannot fail.
            self.market_state_set(create.spec.market, create.state, out)?;
        }
        self.reference.markets.push(create.clone());
        debug_assert!(self.reference.markets.len() <= self.config.max_markets as usize);
        Ok(())
    }

    /// Checks a restored table against the restored ledger and markets.
    pub(crate) fn reference_consistent(&self) -> bool {
        let currencies = self.reference.currencies.iter().all(|c| {
            reference_name_ok(&c.code)
                && c.currency.0 < self.config.max_currencies
                && self.ledger.is_registered(c.currency)
        });
        let markets = self
            .reference
            .markets
            .iter()
            .all(|m| reference_name_ok(&m.name) && self.market_spec(m.spec.market).is_some());
        currencies && markets
    }
}
