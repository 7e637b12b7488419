//! `[[currencies]]` and `[[markets]]`: the catalog (see `peregrine_core::catalog`). The
//! embedded defaults give a bare `peregrine up` two markets to trade; a deployment lists its own.
//! A catalog that does not parse (duplicate names, inexact units) is refused at start.

use peregrine_core::catalog::{CurrencyDef, MarketDef};
use rust_decimal::Decimal;

/// btc (satoshi), eth (gwei), usd (micro-dollar: a 0.01 tick on a 0.0001 lot is 1 micro-dollar).
pub fn default_currencies() -> Vec<CurrencyDef> {
    [("btc", 1, 8), ("eth", 2, 9), ("usd", 3, 6)]
        .into_iter()
        .map(|(code, id, precision)| CurrencyDef {
            code: code.to_owned(),
            id,
            precision,
        })
        .collect()
}

/// btcusd and ethusd.
pub fn default_markets() -> Vec<MarketDef> {
    let decimal = |mantissa: i64, scale: u32| Decimal::new(mantissa, scale);
    vec![
        MarketDef {
            name: "btcusd".to_owned(),
            id: 1,
            base: "btc".to_owned(),
            quote: "usd".to_owned(),
            tick: decimal(1, 2),
            lot: decimal(1, 4),
            max_price: decimal(10_000_000, 0),
            max_amount: decimal(1_000, 0),
            max_notional: decimal(100_000_000, 0),
            band_bps: 1_000,
            reference_price: decimal(50_000, 0),
            maker_fee_ppm: 1_000,
            taker_fee_ppm: 2_000,
        },
        MarketDef {
            name: "ethusd".to_owned(),
            id: 2,
            base: "eth".to_owned(),
            quote: "usd".to_owned(),
            tick: decimal(1, 2),
            lot: decimal(1, 3),
            max_price: decimal(1_000_000, 0),
            max_amount: decimal(10_000, 0),
            max_notional: decimal(100_000_000, 0),
            band_bps: 1_000,
            reference_price: decimal(3_000, 0),
            maker_fee_ppm: 1_000,
            taker_fee_ppm: 2_000,
        },
    ]
}
