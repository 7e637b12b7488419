//! The directory a server sends at logon: every currency and market with its name and decimal
//! units, so a client speaks `btcusd` and `"0.01"` while the wire carries ids, ticks and lots.
//!
//! Parse, don't validate: a [`Name`], [`CurrencyInfo`], [`MarketInfo`] or [`Directory`] only
//! exists once every field was checked (name syntax, scales in range, units that convert to
//! engine integers, counts within [`CURRENCIES_MAX`] and [`MARKETS_MAX`], unique ids and names).

use peregrine_hotpath::edge::{CurrencyScale, MarketUnits};
use peregrine_hotpath::{CurrencyId, MarketId};
use rust_decimal::Decimal;

/// Bytes of a name on the wire (NUL-padded); the catalog's longest name.
pub const NAME_BYTES: usize = 16;
/// Currencies one directory lists at most (bounds the frames after `LogonAck`).
pub const CURRENCIES_MAX: usize = 256;
/// Markets one directory lists at most (bounds the frames after `LogonAck`).
pub const MARKETS_MAX: usize = 1_024;
/// Decimal places of a currency's minor unit, at most (as the catalog allows).
pub const CURRENCY_SCALE_MAX: u32 = 18;
/// Decimal places of a tick or lot, at most (what `rust_decimal` represents).
pub const UNIT_SCALE_MAX: u32 = 28;

// Both counts travel as u16 in `LogonAck`.
const _: () = assert!(CURRENCIES_MAX <= MARKETS_MAX && MARKETS_MAX <= u16::MAX as usize);
const _: () = assert!(CURRENCY_SCALE_MAX <= UNIT_SCALE_MAX && UNIT_SCALE_MAX <= u8::MAX as u32);

/// Why a directory entry is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// A name is empty, longer than [`NAME_BYTES`] or not lower-case ASCII letters and digits.
    #[error("names are 1 to {NAME_BYTES} lower-case ASCII letters or digits")]
    Name,
    /// A scale is out of range, or a tick or lot is not positive or not normalised.
    #[error("invalid decimal units of `{0}`")]
    Units(&'static str),
    /// More entries than the protocol lists at logon.
    #[error("more than {limit} {what}")]
    TooMany {
        /// "currencies" or "markets".
        what: &'static str,
        /// The bound.
        limit: usize,
    },
    /// Two entries share an id or a name.
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// A market names a currency the directory does not list.
    #[error("a market names an unlisted currency")]
    UnknownCurrency,
}

/// A currency code or market name: 1 to [`NAME_BYTES`] lower-case ASCII letters or digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name {
    bytes: [u8; NAME_BYTES],
    len: u8,
}

impl Name {
    /// Checks `text`.
    pub fn new(text: &str) -> Result<Name, DirectoryError> {
        let valid = (1..=NAME_BYTES).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(DirectoryError::Name);
        }
        let mut bytes = [0u8; NAME_BYTES];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(Name {
            bytes,
            len: u8::try_from(text.len()).map_err(|_| DirectoryError::Name)?,
        })
    }

    /// The wire form: the name, then NUL bytes up to [`NAME_BYTES`]; nothing else parses.
    pub fn from_wire(bytes: [u8; NAME_BYTES]) -> Result<Name, DirectoryError> {
        let len = bytes.iter().position(|b| *b == 0).unwrap_or(NAME_BYTES);
        let (name, padding) = bytes.split_at(len);
        if padding.iter().any(|b| *b != 0) {
            return Err(DirectoryError::Name);
        }
        Name::new(std::str::from_utf8(name).map_err(|_| DirectoryError::Name)?)
    }

    /// The wire form.
    pub fn wire(&self) -> [u8; NAME_BYTES] {
        self.bytes
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters and digits are ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A currency: its engine id, code and minor-unit scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrencyInfo {
    /// Engine id.
    pub currency: CurrencyId,
    /// Code, e.g. `btc`.
    pub code: Name,
    /// Decimal places of the minor unit (at most [`CURRENCY_SCALE_MAX`]).
    pub scale: CurrencyScale,
}

impl CurrencyInfo {
    /// Checks the scale.
    pub fn new(currency: CurrencyId, code: Name, scale: u32) -> Result<Self, DirectoryError> {
        if scale > CURRENCY_SCALE_MAX {
            return Err(DirectoryError::Units("currency scale"));
        }
        Ok(CurrencyInfo {
            currency,
            code,
            scale: CurrencyScale { scale },
        })
    }
}

/// A market: its engine id, name, currencies and decimal units (tick and lot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketInfo {
    /// Engine id.
    pub market: MarketId,
    /// Name, e.g. `btcusd`.
    pub name: Name,
    /// Base currency.
    pub base: CurrencyId,
    /// Quote currency.
    pub quote: CurrencyId,
    /// Tick, lot and both currencies' scales; they convert exactly to engine units.
    pub units: MarketUnits,
}

impl MarketInfo {
    /// Checks the units: scales in range, tick and lot positive and normalised (one encoding
    /// per value), and convertible to the engine's integers.
    pub fn new(
        market: MarketId,
        name: Name,
        (base, quote): (CurrencyId, CurrencyId),
        units: MarketUnits,
    ) -> Result<Self, DirectoryError> {
        for (unit, what) in [(units.tick, "tick"), (units.lot, "lot")] {
            let normalised = unit.normalize();
            if unit <= Decimal::ZERO || unit.scale() > UNIT_SCALE_MAX {
                return Err(DirectoryError::Units(what));
            }
            if unit.scale() != normalised.scale() || unit.mantissa() > i128::from(u64::MAX) {
                return Err(DirectoryError::Units(what));
            }
        }
        if units.base.scale > CURRENCY_SCALE_MAX || units.quote.scale > CURRENCY_SCALE_MAX {
            return Err(DirectoryError::Units("currency scale"));
        }
        units
            .engine_units()
            .map_err(|_| DirectoryError::Units("engine units"))?;
        Ok(MarketInfo {
            market,
            name,
            base,
            quote,
            units,
        })
    }
}

/// A positive decimal as the wire carries it: mantissa and scale, normalised.
pub(crate) fn unit_decimal(mantissa: u64, scale: u8) -> Option<Decimal> {
    if u32::from(scale) > UNIT_SCALE_MAX || mantissa == 0 {
        return None;
    }
    Decimal::try_from_i128_with_scale(i128::from(mantissa), u32::from(scale)).ok()
}

/// The wire parts of a unit [`MarketInfo::new`] accepted (positive, normalised, fits a u64).
pub(crate) fn unit_parts(unit: Decimal) -> (u64, u8) {
    (
        u64::try_from(unit.mantissa()).unwrap_or(0),
        u8::try_from(unit.scale()).unwrap_or(u8::MAX),
    )
}

/// Every currency and market a server lists at logon, in its order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directory {
    currencies: Vec<CurrencyInfo>,
    markets: Vec<MarketInfo>,
}

impl Directory {
    /// Checks the counts, that ids and names are unique, and that markets name listed
    /// currencies with their scales.
    pub fn new(
        currencies: Vec<CurrencyInfo>,
        markets: Vec<MarketInfo>,
    ) -> Result<Directory, DirectoryError> {
        if currencies.len() > CURRENCIES_MAX {
            return Err(DirectoryError::TooMany {
                what: "currencies",
                limit: CURRENCIES_MAX,
            });
        }
        if markets.len() > MARKETS_MAX {
            return Err(DirectoryError::TooMany {
                what: "markets",
                limit: MARKETS_MAX,
            });
        }
        for (i, c) in currencies.iter().enumerate() {
            let earlier = currencies.get(..i).unwrap_or_default();
            if earlier
                .iter()
                .any(|e| e.currency == c.currency || e.code == c.code)
            {
                return Err(DirectoryError::Duplicate("currency"));
            }
        }
        for (i, m) in markets.iter().enumerate() {
            let earlier = markets.get(..i).unwrap_or_default();
            if earlier
                .iter()
                .any(|e| e.market == m.market || e.name == m.name)
            {
                return Err(DirectoryError::Duplicate("market"));
            }
            let scale_of = |id: CurrencyId| {
                let listed = currencies.iter().find(|c| c.currency == id);
                listed
                    .map(|c| c.scale)
                    .ok_or(DirectoryError::UnknownCurrency)
            };
            if scale_of(m.base)? != m.units.base || scale_of(m.quote)? != m.units.quote {
                return Err(DirectoryError::Units("currency scale"));
            }
        }
        Ok(Directory {
            currencies,
            markets,
        })
    }

    /// The currencies, in the server's order.
    pub fn currencies(&self) -> &[CurrencyInfo] {
        &self.currencies
    }

    /// The markets, in the server's order.
    pub fn markets(&self) -> &[MarketInfo] {
        &self.markets
    }

    /// A currency by code.
    pub fn currency(&self, code: &str) -> Option<&CurrencyInfo> {
        self.currencies.iter().find(|c| c.code.as_str() == code)
    }

    /// A currency by id.
    pub fn currency_by_id(&self, id: CurrencyId) -> Option<&CurrencyInfo> {
        self.currencies.iter().find(|c| c.currency == id)
    }

    /// A market by name.
    pub fn market(&self, name: &str) -> Option<&MarketInfo> {
        self.markets.iter().find(|m| m.name.as_str() == name)
    }

    /// A market by id.
    pub fn market_by_id(&self, id: MarketId) -> Option<&MarketInfo> {
        self.markets.iter().find(|m| m.market == id)
    }
}
