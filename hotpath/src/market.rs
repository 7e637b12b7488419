//! A market's state: its specification, risk parameters, fee tiers, book sides and pending stops,
//! and the exact integer arithmetic that turns ticks and lots into currency amounts.

use crate::book::BookSide;
use crate::command::{FeeRates, MarketRisk, MarketSpec, MarketState};
use crate::event::RejectReason;
use crate::ids::{Price, Qty, Side};

/// Fee tiers per market.
pub const MAX_FEE_TIERS: usize = 8;
/// Highest fee rate accepted: 10 %.
pub const MAX_FEE_PPM: u32 = 100_000;
/// Basis points in one.
const BPS: u128 = 10_000;
/// Widest price band a market may have, in basis points (10x the reference); 0 is no band.
pub const BAND_BPS_MAX: u32 = 100_000;
const _: () = assert!(BAND_BPS_MAX as u128 >= BPS && (BAND_BPS_MAX as u128) < u32::MAX as u128);
/// Parts per million in one.
const PPM: u128 = 1_000_000;

/// A pending stop, ordered so that the next one to trigger is at the end of its vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StopEntry {
    pub trigger: Price,
    /// Engine order id: older first among equal triggers.
    pub id: u64,
    pub slot: u32,
}

/// One market.
#[derive(Clone, Debug)]
pub(crate) struct Market {
    pub spec: MarketSpec,
    pub risk: MarketRisk,
    pub fees: [FeeRates; MAX_FEE_TIERS],
    /// Whether new orders are refused: `state.refuses_orders()`, kept as a flag of its own
    /// (written only through `set_state`) so the order path tests one byte, as it did before
    /// there were states.
    pub halted: bool,
    /// Enabled, hidden, disabled or locked; chooses the refusal when `halted`.
    state: MarketState,
    /// Last trade price. Written only through `set_last_price` (and `risk` through `set_risk`),
    /// which keep `band` in step.
    pub last_price: Option<Price>,
    /// `band_limits` of the reference, the band and the maximum price: computed when one of
    /// them changes (a trade at a new price, a risk update) instead of for every order and
    /// replace, which paid a multiply-divide and the clamps each time (measured, session 10 in
    /// perf/RESULTS.md).
    band: (Price, Price),
    pub bids: BookSide,
    pub asks: BookSide,
    /// Buy stops trigger when last >= trigger: lowest trigger at the end.
    pub buy_stops: Vec<StopEntry>,
    /// Sell stops trigger when last <= trigger: highest trigger at the end.
    pub sell_stops: Vec<StopEntry>,
    pub stops_capacity: usize,
}

impl Market {
    pub fn new(spec: MarketSpec, levels_per_side: u32, stops_capacity: u32) -> Market {
        Market {
            band: band_limits(
                spec.risk.reference_price,
                spec.risk.band_bps,
                spec.risk.max_price,
            ),
            risk: spec.risk,
            fees: [spec.fees; MAX_FEE_TIERS],
            spec,
            halted: false,
            state: MarketState::Enabled,
            last_price: None,
            bids: BookSide::new(Side::Buy, levels_per_side),
            asks: BookSide::new(Side::Sell, levels_per_side),
            buy_stops: Vec::with_capacity(stops_capacity as usize),
            sell_stops: Vec::with_capacity(stops_capacity as usize),
            stops_capacity: stops_capacity as usize,
        }
    }

    /// Checks a specification: sizes positive and every amount the market can produce fits u64.
    pub fn validate_spec(spec: &MarketSpec) -> bool {
        check_spec(spec).is_ok()
    }

    /// Checks risk parameters against the market's sizes.
    pub fn validate_risk(base_per_lot: u64, quote_per_tick_lot: u64, risk: &MarketRisk) -> bool {
        check_risk(base_per_lot, quote_per_tick_lot, risk).is_ok()
    }

    /// The market's state.
    #[inline]
    pub fn state(&self) -> MarketState {
        self.state
    }

    /// Sets the state, and with it whether new orders are refused.
    pub fn set_state(&mut self, state: MarketState) {
        self.state = state;
        self.halted = state.refuses_orders();
    }

    /// Why a new order or a replace is refused while `halted`: out of the order path's way,
    /// which tests only the flag.
    #[cold]
    pub fn refusal(&self) -> RejectReason {
        debug_assert!(self.halted, "refusal asked of a market that takes orders");
        match self.state {
            MarketState::Disabled => RejectReason::MarketDisabled,
            _ => RejectReason::MarketHalted,
        }
    }

    /// Base minor units of `qty` lots. Fits u64 by `validate_risk` for any qty <= max_qty.
    #[inline]
    pub fn base_amount(&self, qty: Qty) -> u64 {
        qty.0 * self.spec.base_per_lot
    }

    /// Quote minor units of `qty` lots at `price`. Fits u64 for price <= max_price, qty <= max_qty.
    #[inline]
    pub fn quote_amount(&self, price: Price, qty: Qty) -> u64 {
        price.0 * qty.0 * self.spec.quote_per_tick_lot
    }

    /// The price risk checks compare against: last trade, or the configured reference.
    #[inline]
    pub fn reference(&self) -> Price {
        self.last_price.unwrap_or(self.risk.reference_price)
    }

    /// The price band around the reference: (lowest price a sell may take at, highest price a
    /// buy may take at), within 1..=max_price; the whole range when the market has no band.
    #[inline]
    pub fn band(&self) -> (Price, Price) {
        debug_assert_eq!(
            self.band,
            band_limits(self.reference(), self.risk.band_bps, self.risk.max_price),
            "stale band: last price or risk written without its setter"
        );
        self.band
    }

    /// Records the last trade price (`None` only when restoring a market that never traded).
    #[inline]
    pub fn set_last_price(&mut self, price: Option<Price>) {
        // Most trades are at the price of the one before: nothing to recompute.
        if self.last_price != price {
            self.last_price = price;
            self.band = band_limits(self.reference(), self.risk.band_bps, self.risk.max_price);
        }
    }

    /// Replaces the risk parameters.
    pub fn set_risk(&mut self, risk: MarketRisk) {
        self.risk = risk;
        self.band = band_limits(self.reference(), risk.band_bps, risk.max_price);
    }

    /// Whether a limit price on `side` is inside the band. Only the side that can trade at once
    /// is bounded: a buy's price against the band's top, a sell's against its bottom. A buy far
    /// below the reference (or a sell far above) can only rest, and resting away from the last
    /// trade is what quotes do while prices move fast (a flash crash).
    #[inline]
    pub fn within_band(&self, side: Side, price: Price) -> bool {
        let (low, high) = self.band();
        match side {
            Side::Buy => price <= high,
            Side::Sell => price >= low,
        }
    }

    /// The worst price a market order on `side` may trade at.
    #[inline]
    pub fn protection_price(&self, side: Side) -> Price {
        let (low, high) = self.band();
        match side {
            Side::Buy => high,
            Side::Sell => low,
        }
    }

    #[inline]
    pub fn opposite(&mut self, side: Side) -> &mut BookSide {
        match side {
            Side::Buy => &mut self.asks,
            Side::Sell => &mut self.bids,
        }
    }

    #[inline]
    pub fn own(&mut self, side: Side) -> &mut BookSide {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    #[inline]
    pub fn own_ref(&self, side: Side) -> &BookSide {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    #[inline]
    pub fn opposite_ref(&self, side: Side) -> &BookSide {
        match side {
            Side::Buy => &self.asks,
            Side::Sell => &self.bids,
        }
    }

    /// Whether an order on `side` at `limit` would trade with the best opposite level.
    #[inline]
    pub fn crosses(&self, side: Side, limit: Price) -> bool {
        match self.opposite_ref(side).best() {
            None => false,
            Some(level) => match side {
                Side::Buy => level.price <= limit,
                Side::Sell => level.price >= limit,
            },
        }
    }

    /// Whether a stop on `side` at `trigger` is already reached by the last price.
    pub fn stop_reached(&self, side: Side, trigger: Price) -> bool {
        let last = self.reference();
        match side {
            Side::Buy => last >= trigger,
            Side::Sell => last <= trigger,
        }
    }

    /// Inserts a pending stop; the caller checked capacity.
    pub fn push_stop(&mut self, side: Side, entry: StopEntry) {
        let stops = match side {
            Side::Buy => &mut self.buy_stops,
            Side::Sell => &mut self.sell_stops,
        };
        debug_assert!(stops.len() < self.stops_capacity);
        let index = stops.partition_point(|e| stop_before(side, e, &entry));
        stops.insert(index, entry);
    }

    /// Removes a pending stop.
    pub fn remove_stop(&mut self, side: Side, trigger: Price, id: u64) {
        let stops = match side {
            Side::Buy => &mut self.buy_stops,
            Side::Sell => &mut self.sell_stops,
        };
        let probe = StopEntry {
            trigger,
            id,
            slot: 0,
        };
        let index = stops.partition_point(|e| stop_before(side, e, &probe));
        assert!(
            index < stops.len() && stops[index].id == id,
            "pending stop missing"
        );
        stops.remove(index);
    }

    /// Pops the next stop whose trigger the last price has reached, buys first.
    pub fn pop_reached_stop(&mut self) -> Option<StopEntry> {
        let last = self.last_price?;
        if self.buy_stops.last().is_some_and(|e| last >= e.trigger) {
            return self.buy_stops.pop();
        }
        if self.sell_stops.last().is_some_and(|e| last <= e.trigger) {
            return self.sell_stops.pop();
        }
        None
    }

    /// Whether a pending stop's trigger is reached by the last price: never between commands
    /// (`Engine::run_stops` triggers every reached stop after each trade), so a command that
    /// does not trade need not look.
    pub fn has_reached_stop(&self) -> bool {
        let Some(last) = self.last_price else {
            return false;
        };
        self.buy_stops.last().is_some_and(|e| last >= e.trigger)
            || self.sell_stops.last().is_some_and(|e| last <= e.trigger)
    }

    pub fn stops_full(&self, side: Side) -> bool {
        match side {
            Side::Buy => self.buy_stops.len() >= self.stops_capacity,
            Side::Sell => self.sell_stops.len() >= self.stops_capacity,
        }
    }
}

/// Vector order of stops: entries that trigger later come first, so the next to trigger is last.
fn stop_before(side: Side, a: &StopEntry, b: &StopEntry) -> bool {
    match side {
        // Lower trigger fires first; among equals, the older (smaller id) first.
        Side::Buy => a.trigger > b.trigger || (a.trigger == b.trigger && a.id > b.id),
        // Higher trigger fires first; among equals, the older first.
        Side::Sell => a.trigger < b.trigger || (a.trigger == b.trigger && a.id > b.id),
    }
}

/// The field of a market specification or risk update a value was refused for: what the
/// engine's `InvalidMarketSpec` is about, named for the operator who sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpecField {
    /// Base and quote are the same currency.
    Quote,
    /// Zero base units per lot.
    BasePerLot,
    /// Zero quote units per tick-lot.
    QuotePerTickLot,
    /// A maker fee above [`MAX_FEE_PPM`].
    MakerFee,
    /// A taker fee above [`MAX_FEE_PPM`].
    TakerFee,
    /// Zero maximum price, or one whose largest order's quote amount would not fit u64.
    MaxPrice,
    /// Zero maximum quantity, or one whose largest order's base amount would not fit u64.
    MaxQty,
    /// Zero maximum notional.
    MaxNotional,
    /// A band above [`BAND_BPS_MAX`].
    BandBps,
    /// A zero reference price, or one above the maximum price.
    ReferencePrice,
}

impl SpecField {
    /// The field's name in the control API's requests: `max_price`, `band_bps`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            SpecField::Quote => "quote",
            SpecField::BasePerLot => "lot",
            SpecField::QuotePerTickLot => "tick",
            SpecField::MakerFee => "maker_fee",
            SpecField::TakerFee => "taker_fee",
            SpecField::MaxPrice => "max_price",
            SpecField::MaxQty => "max_amount",
            SpecField::MaxNotional => "max_notional",
            SpecField::BandBps => "band_bps",
            SpecField::ReferencePrice => "reference_price",
        }
    }
}

impl core::fmt::Display for SpecField {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a specification as `MarketAdd` does (sizes positive, fees at most [`MAX_FEE_PPM`],
/// every amount the market can produce fits u64), naming the first field refused.
pub fn check_spec(spec: &MarketSpec) -> Result<(), SpecField> {
    if spec.base == spec.quote {
        return Err(SpecField::Quote);
    }
    if spec.base_per_lot == 0 {
        return Err(SpecField::BasePerLot);
    }
    if spec.quote_per_tick_lot == 0 {
        return Err(SpecField::QuotePerTickLot);
    }
    if spec.fees.maker_ppm > MAX_FEE_PPM {
        return Err(SpecField::MakerFee);
    }
    if spec.fees.taker_ppm > MAX_FEE_PPM {
        return Err(SpecField::TakerFee);
    }
    check_risk(spec.base_per_lot, spec.quote_per_tick_lot, &spec.risk)
}

/// Checks risk parameters against a market's sizes as `MarketAdd` and `MarketUpdate` do,
/// naming the first field refused.
pub fn check_risk(
    base_per_lot: u64,
    quote_per_tick_lot: u64,
    risk: &MarketRisk,
) -> Result<(), SpecField> {
    if risk.max_price.0 == 0 {
        return Err(SpecField::MaxPrice);
    }
    if risk.max_qty.0 == 0 {
        return Err(SpecField::MaxQty);
    }
    if risk.max_notional.0 == 0 {
        return Err(SpecField::MaxNotional);
    }
    // 0 is "no band"; above the maximum a band bounds nothing a sane market trades at.
    if risk.band_bps > BAND_BPS_MAX {
        return Err(SpecField::BandBps);
    }
    if risk.reference_price.0 == 0 || risk.reference_price > risk.max_price {
        return Err(SpecField::ReferencePrice);
    }
    // The largest order's amounts must fit u64 so no trade can overflow.
    let base = u128::from(risk.max_qty.0) * u128::from(base_per_lot);
    if base > u128::from(u64::MAX) {
        return Err(SpecField::MaxQty);
    }
    // Three u64 factors can overflow even u128: checked, so huge values are refused, never
    // a panic (or, without overflow checks, a wrapped product that passes).
    let quote = u128::from(risk.max_price.0)
        .checked_mul(u128::from(risk.max_qty.0))
        .and_then(|quote| quote.checked_mul(u128::from(quote_per_tick_lot)));
    match quote {
        Some(quote) if quote <= u128::from(u64::MAX) => Ok(()),
        _ => Err(SpecField::MaxPrice),
    }
}

/// The band's limits around `reference`: reference -/+ `band_bps`, within 1..=max_price; (1,
/// max_price) for no band (`band_bps` 0). Shared by the engine and the cluster's escrow, whose
/// protection prices must agree.
#[inline]
pub(crate) fn band_limits(reference: Price, band_bps: u32, max_price: Price) -> (Price, Price) {
    if band_bps == 0 {
        return (Price(1), max_price);
    }
    let reference = reference.0;
    let band_bps = u64::from(band_bps);
    // u64 arithmetic when the product fits (always, for real prices): a division by a
    // constant then compiles to a multiply, where u128 calls `__udivti3` (measured ~1 % of
    // a command). Same result either way.
    let delta = match reference.checked_mul(band_bps) {
        Some(product) => product / BPS as u64,
        // Above u64 only for bands over 100 %, where the bottom is 1 and the top max_price.
        None => {
            (u128::from(reference) * u128::from(band_bps) / BPS).min(u128::from(u64::MAX)) as u64
        }
    };
    // A band of 100 % or more leaves no bottom but the smallest price; an addition past u64 is
    // above max_price anyway, so saturating then clamping is exact.
    let low = reference.saturating_sub(delta).max(1);
    let high = reference.saturating_add(delta).min(max_price.0);
    (Price(low), Price(high))
}

/// Fee on `amount` received at `ppm`, rounded down (in the payer's favour, never above amount).
#[inline]
pub fn fee(amount: u64, ppm: u32) -> u64 {
    // u64 when the product fits (division by a constant becomes a multiply; u128 division is a
    // `__udivti3` call, twice per trade); the same value either way.
    match amount.checked_mul(u64::from(ppm)) {
        Some(product) => product / PPM as u64,
        None => (u128::from(amount) * u128::from(ppm) / PPM) as u64,
    }
}

/// Largest number of lots a budget buys at `price`, given quote per tick-lot.
#[inline]
pub fn lots_for_budget(budget: u64, price: Price, quote_per_tick_lot: u64) -> u64 {
    match price.0.checked_mul(quote_per_tick_lot) {
        Some(0) => 0,
        Some(lot_cost) => budget / lot_cost,
        // A lot costs more than any u64 budget.
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Amount, CurrencyId, MarketId};
    use crate::sim::Rng;

    /// The u128 formulas the u64 fast paths replace: they must agree everywhere.
    fn fee_wide(amount: u64, ppm: u32) -> u64 {
        (u128::from(amount) * u128::from(ppm) / PPM) as u64
    }

    fn lots_wide(budget: u64, price: Price, quote_per_tick_lot: u64) -> u64 {
        let lot_cost = u128::from(price.0) * u128::from(quote_per_tick_lot);
        if lot_cost == 0 {
            return 0;
        }
        (u128::from(budget) / lot_cost).min(u128::from(u64::MAX)) as u64
    }

    fn band_wide(reference: u64, band_bps: u32, max_price: u64) -> (u64, u64) {
        let reference = u128::from(reference);
        if band_bps == 0 {
            return (1, max_price);
        }
        let delta = reference * u128::from(band_bps) / BPS;
        let low = reference.saturating_sub(delta).max(1) as u64;
        let high = (reference + delta).min(u128::from(max_price)) as u64;
        (low, high)
    }

    /// Random values of every magnitude, plus the edges.
    fn values(rng: &mut Rng) -> Vec<u64> {
        let mut v = vec![0, 1, 2, u64::MAX, u64::MAX - 1, 1 << 32, (1 << 32) - 1];
        for _ in 0..2_000 {
            let bits = rng.below(65);
            v.push(if bits == 64 {
                rng.next_u64()
            } else {
                rng.next_u64() & ((1u64 << bits) - 1)
            });
        }
        v
    }

    #[test]
    fn fast_fee_and_lots_match_the_wide_formulas() {
        let mut rng = Rng::new(3);
        let v = values(&mut rng);
        for (i, &a) in v.iter().enumerate() {
            for ppm in [0, 1, 100, 200, 99_999, MAX_FEE_PPM, u32::MAX] {
                assert_eq!(fee(a, ppm), fee_wide(a, ppm), "fee({a}, {ppm})");
            }
            let b = v[(i * 7 + 3) % v.len()];
            let c = v[(i * 13 + 5) % v.len()];
            assert_eq!(
                lots_for_budget(a, Price(b), c),
                lots_wide(a, Price(b), c),
                "lots_for_budget({a}, {b}, {c})"
            );
        }
    }

    #[test]
    fn fast_band_matches_the_wide_formula() {
        let mut rng = Rng::new(4);
        let v = values(&mut rng);
        for (i, &reference) in v.iter().enumerate() {
            if reference == 0 {
                continue;
            }
            let max_price = v[(i * 11 + 1) % v.len()].max(reference);
            for band_bps in [0, 1, 7, 2_000, 9_999, 10_000, 25_000, BAND_BPS_MAX] {
                let market = Market::new(
                    MarketSpec {
                        market: MarketId(0),
                        base: CurrencyId(0),
                        quote: CurrencyId(1),
                        base_per_lot: 1,
                        quote_per_tick_lot: 1,
                        risk: MarketRisk {
                            max_price: Price(max_price),
                            max_qty: Qty(1),
                            max_notional: Amount(1),
                            band_bps,
                            reference_price: Price(reference),
                        },
                        fees: FeeRates {
                            maker_ppm: 0,
                            taker_ppm: 0,
                        },
                    },
                    1,
                    1,
                );
                let (low, high) = market.band();
                assert_eq!(
                    (low.0, high.0),
                    band_wide(reference, band_bps, max_price),
                    "band({reference}, {band_bps}, {max_price})"
                );
            }
        }
    }
}
