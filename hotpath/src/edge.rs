//! The decimal edge: conversions between the decimal prices, quantities and amounts clients
//! speak and the integer ticks, lots and minor units the engine uses. A value that is not an
//! exact multiple of its unit is rejected, never rounded; gateways call these, the engine never
//! sees a decimal.

use rust_decimal::Decimal;

use crate::ids::{Amount, Price, Qty};

/// Why a decimal could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// Zero or below.
    #[error("{what} must be positive")]
    NotPositive {
        /// Which value.
        what: &'static str,
    },
    /// Not a multiple of the unit.
    #[error("{what} {value} is not a multiple of {unit}")]
    NotMultiple {
        /// Which value.
        what: &'static str,
        /// The value given.
        value: Decimal,
        /// Its unit.
        unit: Decimal,
    },
    /// Too large for the engine's integers.
    #[error("{what} {value} is too large")]
    TooLarge {
        /// Which value.
        what: &'static str,
        /// The value given.
        value: Decimal,
    },
    /// A market's units that do not fit together.
    #[error("invalid units: {0}")]
    InvalidUnits(&'static str),
}

/// A currency's precision: amounts are integers of `10^-scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrencyScale {
    /// Decimal places of the minor unit (e.g. 8 for satoshi).
    pub scale: u32,
}

impl CurrencyScale {
    /// The minor unit as a decimal.
    pub fn unit(self) -> Decimal {
        Decimal::new(1, self.scale)
    }

    /// A decimal amount in minor units; must be exact and non-negative.
    pub fn to_minor(self, value: Decimal) -> Result<Amount, EdgeError> {
        if value.is_sign_negative() {
            return Err(EdgeError::NotPositive { what: "amount" });
        }
        units(value, self.unit(), "amount").map(Amount)
    }

    /// Minor units as a decimal.
    pub fn to_decimal(self, amount: Amount) -> Decimal {
        Decimal::from(amount.0) * self.unit()
    }
}

/// A market's units: tick size (quote per base) and lot size (base), with both currencies'
/// scales. From them follow the engine's `base_per_lot` and `quote_per_tick_lot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketUnits {
    /// Price increment, in quote per one base unit.
    pub tick: Decimal,
    /// Quantity increment, in base units.
    pub lot: Decimal,
    /// Base currency precision.
    pub base: CurrencyScale,
    /// Quote currency precision.
    pub quote: CurrencyScale,
}

impl MarketUnits {
    /// Base minor units per lot and quote minor units per tick per lot; both must be integers.
    pub fn engine_units(&self) -> Result<(u64, u64), EdgeError> {
        if self.tick <= Decimal::ZERO || self.lot <= Decimal::ZERO {
            return Err(EdgeError::InvalidUnits("tick and lot must be positive"));
        }
        let base_per_lot = units(self.lot, self.base.unit(), "lot").map_err(|_| {
            EdgeError::InvalidUnits("lot is not a whole number of base minor units")
        })?;
        let tick_lot = self
            .tick
            .checked_mul(self.lot)
            .ok_or(EdgeError::InvalidUnits("tick * lot overflows"))?;
        let quote_per_tick_lot = units(tick_lot, self.quote.unit(), "tick*lot").map_err(|_| {
            EdgeError::InvalidUnits("tick * lot is not a whole number of quote minor units")
        })?;
        Ok((base_per_lot, quote_per_tick_lot))
    }

    /// A decimal price in ticks; must be a positive exact multiple of the tick.
    pub fn price(&self, value: Decimal) -> Result<Price, EdgeError> {
        if value <= Decimal::ZERO {
            return Err(EdgeError::NotPositive { what: "price" });
        }
        units(value, self.tick, "price").map(Price)
    }

    /// A decimal quantity in lots; must be a positive exact multiple of the lot.
    pub fn qty(&self, value: Decimal) -> Result<Qty, EdgeError> {
        if value <= Decimal::ZERO {
            return Err(EdgeError::NotPositive { what: "quantity" });
        }
        units(value, self.lot, "quantity").map(Qty)
    }

    /// Ticks as a decimal price.
    pub fn price_decimal(&self, price: Price) -> Decimal {
        Decimal::from(price.0) * self.tick
    }

    /// Lots as a decimal quantity.
    pub fn qty_decimal(&self, qty: Qty) -> Decimal {
        Decimal::from(qty.0) * self.lot
    }
}

/// `value / unit` when it is a whole number that fits u64.
/// The largest integer an edge accepts for an id, a quantity or an amount: `i64::MAX`, so that
/// everything the engine accepted can also be stored by the SQL replica (signed 64-bit columns)
/// and printed by every client. Larger values are refused at the edge as too large, never
/// accepted and then lost downstream.
pub const EDGE_INTEGER_MAX: u64 = i64::MAX as u64;

/// The longest decimal text an edge parses: 28 significant digits, a point and slack.
pub const DECIMAL_TEXT_BYTES_MAX: usize = 40;

/// Why a decimal text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecimalTextError {
    /// Nothing given.
    #[error("is empty")]
    Empty,
    /// Longer than [`DECIMAL_TEXT_BYTES_MAX`].
    #[error("is too long (at most {DECIMAL_TEXT_BYTES_MAX} characters)")]
    TooLong,
    /// Written with an exponent (`1e3`): every edge takes plain decimal notation only, so a
    /// value means the same everywhere.
    #[error("has an exponent; write it in plain decimal notation")]
    Exponent,
    /// A sign: edges take positive values only.
    #[error("has a sign; write a positive decimal number")]
    Sign,
    /// Anything else that is not `digits[.digits]`.
    #[error("is not a decimal number")]
    NotDecimal,
    /// More than the engine's integers can hold.
    #[error("is too large")]
    TooLarge,
}

/// The one parser of decimal text at every edge (REST, the control API): plain notation,
/// `digits[.digits]`, no sign, no exponent, bounded length.
pub fn parse_decimal(text: &str) -> Result<Decimal, DecimalTextError> {
    if text.is_empty() {
        return Err(DecimalTextError::Empty);
    }
    if text.len() > DECIMAL_TEXT_BYTES_MAX {
        return Err(DecimalTextError::TooLong);
    }
    if text.bytes().any(|b| b == b'e' || b == b'E') {
        return Err(DecimalTextError::Exponent);
    }
    if text.starts_with(['-', '+']) {
        return Err(DecimalTextError::Sign);
    }
    let points = text.bytes().filter(|&b| b == b'.').count();
    let plain = points <= 1
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !text.starts_with('.')
        && !text.ends_with('.');
    if !plain {
        return Err(DecimalTextError::NotDecimal);
    }
    // Digits only, bounded: the only failure left is a value beyond Decimal's 96 bits.
    text.parse::<Decimal>()
        .map_err(|_| DecimalTextError::TooLarge)
}

fn units(value: Decimal, unit: Decimal, what: &'static str) -> Result<u64, EdgeError> {
    let quotient = value
        .checked_div(unit)
        .ok_or(EdgeError::TooLarge { what, value })?;
    if !quotient.fract().is_zero() {
        return Err(EdgeError::NotMultiple { what, value, unit });
    }
    let whole: u64 = quotient
        .try_into()
        .map_err(|_| EdgeError::TooLarge { what, value })?;
    if whole > EDGE_INTEGER_MAX {
        return Err(EdgeError::TooLarge { what, value });
    }
    Ok(whole)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn decimal_text_is_plain_notation_only() {
        assert_eq!(parse_decimal("1000"), Ok(d("1000")));
        assert_eq!(parse_decimal("0.00000001"), Ok(d("0.00000001")));
        assert_eq!(parse_decimal("1e3"), Err(DecimalTextError::Exponent));
        assert_eq!(parse_decimal("1E3"), Err(DecimalTextError::Exponent));
        assert_eq!(parse_decimal("-1"), Err(DecimalTextError::Sign));
        assert_eq!(parse_decimal("+1"), Err(DecimalTextError::Sign));
        assert_eq!(parse_decimal(""), Err(DecimalTextError::Empty));
        for bad in ["1.2.3", ".5", "5.", "0x10", "1 000", "NaN"] {
            assert_eq!(
                parse_decimal(bad),
                Err(DecimalTextError::NotDecimal),
                "{bad}"
            );
        }
        assert_eq!(
            parse_decimal(&"9".repeat(DECIMAL_TEXT_BYTES_MAX + 1)),
            Err(DecimalTextError::TooLong)
        );
        assert_eq!(
            parse_decimal(&"9".repeat(30)),
            Err(DecimalTextError::TooLarge)
        );
    }

    #[test]
    fn amounts_beyond_i64_are_too_large_at_the_edge() {
        let eighteen = CurrencyScale { scale: 18 };
        // 9.3 tokens of 18 decimals: 9.3e18 minor units, above i64::MAX (about 9.22e18).
        assert!(matches!(
            eighteen.to_minor(d("9.3")),
            Err(EdgeError::TooLarge { .. })
        ));
        assert_eq!(
            eighteen.to_minor(d("9.2")),
            Ok(Amount(9_200_000_000_000_000_000))
        );
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn btc_usd() -> MarketUnits {
        MarketUnits {
            tick: d("0.01"),
            lot: d("0.00001"),
            base: CurrencyScale { scale: 8 },
            quote: CurrencyScale { scale: 2 },
        }
    }

    #[test]
    fn exact_values_convert_both_ways() {
        let m = btc_usd();
        assert_eq!(
            m.engine_units(),
            Err(EdgeError::InvalidUnits(
                "tick * lot is not a whole number of quote minor units"
            ))
        );
        let m = MarketUnits {
            quote: CurrencyScale { scale: 8 },
            ..m
        };
        assert_eq!(m.engine_units().unwrap(), (1_000, 10));
        assert_eq!(m.price(d("65432.10")).unwrap(), Price(6_543_210));
        assert_eq!(m.qty(d("0.12345")).unwrap(), Qty(12_345));
        assert_eq!(m.price_decimal(Price(6_543_210)), d("65432.10"));
        assert_eq!(m.qty_decimal(Qty(12_345)), d("0.12345"));
        assert_eq!(
            CurrencyScale { scale: 8 }.to_minor(d("1.5")).unwrap(),
            Amount(150_000_000)
        );
        assert_eq!(
            CurrencyScale { scale: 8 }.to_decimal(Amount(1)),
            d("0.00000001")
        );
    }

    #[test]
    fn inexact_values_are_rejected_not_rounded() {
        let m = btc_usd();
        assert!(matches!(
            m.price(d("65432.101")),
            Err(EdgeError::NotMultiple { what: "price", .. })
        ));
        assert!(matches!(
            m.qty(d("0.000015")),
            Err(EdgeError::NotMultiple {
                what: "quantity",
                ..
            })
        ));
        assert!(matches!(
            m.price(d("0")),
            Err(EdgeError::NotPositive { .. })
        ));
        assert!(matches!(m.qty(d("-1")), Err(EdgeError::NotPositive { .. })));
        assert!(matches!(
            CurrencyScale { scale: 2 }.to_minor(d("0.001")),
            Err(EdgeError::NotMultiple { .. })
        ));
        assert!(matches!(
            CurrencyScale { scale: 0 }.to_minor(d("-1")),
            Err(EdgeError::NotPositive { .. })
        ));
        assert!(matches!(
            m.qty(d("79228162514264337593543950335")),
            Err(EdgeError::TooLarge { .. })
        ));
    }
}
