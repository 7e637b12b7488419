//! Reference data at runtime: market states, risk and fee changes as commands, every bad value
//! refused with the field it is about and nothing changed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code asserts by unwrapping.

mod common;
use common::*;
use peregrine_hotpath::*;

use Side::*;

fn set_state(state: MarketState) -> CommandKind {
    CommandKind::MarketStateSet { market: M, state }
}

fn replace(account: u32, id: OrderId, qty: u64) -> CommandKind {
    CommandKind::CancelReplace(CancelReplace {
        account: AccountId(account),
        target: OrderRef::Id(id),
        new_price: None,
        new_qty: Qty(qty),
    })
}

fn sell(f: &mut Fixture, price: u64) -> CommandKind {
    f.order(
        1,
        Sell,
        OrderKind::Limit {
            price: Price(price),
            qty: Qty(1),
        },
        TimeInForce::Gtc,
    )
}

/// What each state takes: (new orders, replaces) refused with this reason, or accepted.
const CASES: [(MarketState, Option<RejectReason>); 4] = [
    (MarketState::Enabled, None),
    (MarketState::Hidden, None),
    (MarketState::Disabled, Some(RejectReason::MarketDisabled)),
    (MarketState::Locked, Some(RejectReason::MarketHalted)),
];

#[test]
fn each_state_refuses_new_orders_and_replaces_as_documented_and_always_cancels() {
    for (state, refusal) in CASES {
        let mut f = Fixture::new();
        f.fund(1, 100_000, 0);
        f.fund(2, 0, 10_000_000);
        let resting = order_id(&f.limit(1, Sell, 11_000, 2));
        let events = f.ok(set_state(state));
        assert_eq!(events, vec![Event::MarketStateChanged { market: M, state }]);
        assert_eq!(f.engine.market_state(M), Some(state));
        assert_eq!(state.refuses_orders(), refusal.is_some(), "{state:?}");
        // Better than the resting order, so a crossing buy takes this one first.
        let order = sell(&mut f, 10_900);
        match refusal {
            Some(reason) => {
                f.rejected(order, reason);
                f.rejected(replace(1, resting, 1), reason);
                // A crossing buy would trade: refused too.
                let buy = f.order(
                    2,
                    Buy,
                    OrderKind::Limit {
                        price: Price(11_000),
                        qty: Qty(1),
                    },
                    TimeInForce::Ioc,
                );
                f.rejected(buy, reason);
            }
            None => {
                f.ok(order);
                f.ok(replace(1, resting, 1));
                assert_eq!(trades(&f.limit(2, Buy, 11_000, 1)).len(), 1, "{state:?}");
            }
        }
        // Cancels work in every state: no funds are ever trapped in a book.
        f.ok(CommandKind::Cancel {
            account: AccountId(1),
            target: OrderRef::Id(resting),
        });
        f.ok(set_state(MarketState::Enabled));
        let again = sell(&mut f, 11_000);
        f.ok(again);
    }
}

#[test]
fn halt_is_locked_and_resume_is_enabled() {
    let mut f = Fixture::new();
    f.ok(set_state(MarketState::Disabled));
    f.ok(CommandKind::MarketHalt { market: M });
    assert_eq!(f.engine.market_state(M), Some(MarketState::Locked));
    f.ok(CommandKind::MarketResume { market: M });
    assert_eq!(f.engine.market_state(M), Some(MarketState::Enabled));
    f.rejected(
        CommandKind::MarketStateSet {
            market: MarketId(5),
            state: MarketState::Hidden,
        },
        RejectReason::UnknownMarket,
    );
}

#[test]
fn states_risk_and_fees_survive_a_snapshot_restore() {
    let mut f = Fixture::new();
    f.ok(set_state(MarketState::Disabled));
    let new_risk = MarketRisk {
        max_price: Price(2_000_000),
        band_bps: 100,
        ..risk()
    };
    f.ok(CommandKind::MarketUpdate(MarketUpdate {
        market: M,
        risk: new_risk,
    }));
    let rates = FeeRates {
        maker_ppm: 250,
        taker_ppm: 750,
    };
    f.ok(CommandKind::FeeScheduleUpdate {
        market: M,
        tier: 3,
        rates,
    });
    let mut restored = Engine::restore(&f.engine.snapshot().unwrap()).unwrap();
    assert_eq!(restored.market_state(M), Some(MarketState::Disabled));
    assert_eq!(restored.market_risk(M), Some(new_risk));
    assert_eq!(restored.fee_rates(M, 3), Some(rates));
    assert_eq!(restored.fee_rates(M, 0), Some(FeeRates::default()));
    assert_eq!(restored.fee_rates(M, MAX_FEE_TIERS as u8), None);
    // The restored market still refuses orders, with the disabled reason.
    let mut out = Vec::new();
    let kind = sell(&mut f, 11_000);
    restored.apply(
        &Envelope {
            ts: TimestampNs(f.ts + 1),
            actor: Actor::System,
            kind,
        },
        &mut out,
    );
    assert_eq!(
        out,
        vec![Event::Rejected {
            reason: RejectReason::MarketDisabled
        }]
    );
}

/// Each bad value, the field it is refused for, and the engine refusing it unchanged.
#[test]
fn a_bad_market_value_names_its_field_and_changes_nothing() {
    type Edit = fn(&mut MarketSpec);
    let cases: [(Edit, SpecField); 11] = [
        (|s| s.quote = s.base, SpecField::Quote),
        (|s| s.base_per_lot = 0, SpecField::BasePerLot),
        (|s| s.quote_per_tick_lot = 0, SpecField::QuotePerTickLot),
        (|s| s.fees.maker_ppm = MAX_FEE_PPM + 1, SpecField::MakerFee),
        (|s| s.fees.taker_ppm = MAX_FEE_PPM + 1, SpecField::TakerFee),
        (|s| s.risk.max_price = Price(0), SpecField::MaxPrice),
        (|s| s.risk.max_qty = Qty(0), SpecField::MaxQty),
        (|s| s.risk.max_notional = Amount(0), SpecField::MaxNotional),
        (|s| s.risk.band_bps = BAND_BPS_MAX + 1, SpecField::BandBps),
        (
            |s| s.risk.reference_price = Price(s.risk.max_price.0 + 1),
            SpecField::ReferencePrice,
        ),
        (|s| s.risk.max_qty = Qty(u64::MAX), SpecField::MaxQty),
    ];
    let mut f = Fixture::new();
    assert_eq!(check_spec(&spec()), Ok(()));
    for (edit, field) in cases {
        let mut bad = spec();
        bad.market = MarketId(1);
        edit(&mut bad);
        assert_eq!(check_spec(&bad), Err(field), "{bad:?}");
        f.rejected(
            CommandKind::MarketAdd(bad.clone()),
            RejectReason::InvalidMarketSpec,
        );
        assert_eq!(f.engine.market_spec(MarketId(1)), None);
        // The risk part of it, as an update of the existing market.
        let risk_field = check_risk(bad.base_per_lot, bad.quote_per_tick_lot, &bad.risk);
        if bad.base_per_lot != 0 && bad.quote_per_tick_lot != 0 && risk_field.is_err() {
            assert_eq!(risk_field, Err(field));
            f.rejected(
                CommandKind::MarketUpdate(MarketUpdate {
                    market: M,
                    risk: bad.risk,
                }),
                RejectReason::InvalidMarketSpec,
            );
        }
    }
    // A maximum price whose largest order's quote amount passes u64 names the price.
    let huge = MarketRisk {
        max_price: Price(u64::MAX),
        ..risk()
    };
    assert_eq!(check_risk(BPL, QPTL, &huge), Err(SpecField::MaxPrice));
    assert_eq!(SpecField::MaxQty.as_str(), "max_amount");
}

#[test]
fn a_bad_fee_is_refused_and_changes_nothing() {
    let mut f = Fixture::new();
    let bad = FeeRates {
        maker_ppm: 0,
        taker_ppm: MAX_FEE_PPM + 1,
    };
    f.rejected(
        CommandKind::FeeScheduleUpdate {
            market: M,
            tier: 0,
            rates: bad,
        },
        RejectReason::InvalidFee,
    );
    f.rejected(
        CommandKind::FeeScheduleUpdate {
            market: M,
            tier: MAX_FEE_TIERS as u8,
            rates: FeeRates::default(),
        },
        RejectReason::InvalidFee,
    );
    assert_eq!(f.engine.fee_rates(M, 0), Some(FeeRates::default()));
}

#[test]
fn a_fee_change_applies_from_the_next_fill() {
    let mut f = Fixture::new();
    f.fund(1, 100_000, 0);
    f.fund(2, 0, 10_000_000);
    f.limit(1, Sell, 10_000, 1);
    assert_eq!(trades(&f.limit(2, Buy, 10_000, 1))[0].taker_fee, Amount(0));
    f.ok(CommandKind::FeeScheduleUpdate {
        market: M,
        tier: 0,
        rates: FeeRates {
            maker_ppm: 1_000,
            taker_ppm: 2_000,
        },
    });
    f.limit(1, Sell, 10_000, 1);
    let trade = trades(&f.limit(2, Buy, 10_000, 1))[0].clone();
    // 0.2 % of the 1 000 sats the taker received, 0.1 % of the maker's 10 000 cents.
    assert_eq!(trade.taker_fee, Amount(2));
    assert_eq!(trade.maker_fee, Amount(10));
}
