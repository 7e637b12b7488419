//! Currencies and markets created at runtime (`CurrencyCreate`, `MarketCreate`): applied as
//! `CurrencyAdd` and `MarketAdd` are, their names kept in the engine and its snapshots, every
//! bad value refused with nothing changed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code asserts by unwrapping.

mod common;
use common::*;
use peregrine_hotpath::*;

const SOL: CurrencyId = CurrencyId(2);
const SOLUSD: MarketId = MarketId(1);

fn sol() -> CurrencyCreate {
    CurrencyCreate {
        currency: SOL,
        code: "sol".into(),
        display_name: "Solana".into(),
        precision: 9,
    }
}

fn solusd(state: MarketState) -> MarketCreate {
    MarketCreate {
        spec: MarketSpec {
            market: SOLUSD,
            base: SOL,
            ..spec()
        },
        name: "solusd".into(),
        tick: UnitDecimal {
            mantissa: 1,
            scale: 2,
        },
        lot: UnitDecimal {
            mantissa: 1,
            scale: 6,
        },
        state,
    }
}

fn create_currency(create: CurrencyCreate) -> CommandKind {
    CommandKind::CurrencyCreate(Box::new(create))
}

fn create_market(create: MarketCreate) -> CommandKind {
    CommandKind::MarketCreate(Box::new(create))
}

#[test]
fn created_entries_emit_the_add_events_and_the_initial_state() {
    let mut f = Fixture::new();
    let events = f.ok(create_currency(sol()));
    assert_eq!(events, vec![Event::CurrencyAdded { currency: SOL }]);
    let events = f.ok(create_market(solusd(MarketState::Hidden)));
    assert_eq!(
        events,
        vec![
            Event::MarketAdded { market: SOLUSD },
            Event::MarketStateChanged {
                market: SOLUSD,
                state: MarketState::Hidden
            },
        ]
    );
    assert_eq!(f.engine.market_state(SOLUSD), Some(MarketState::Hidden));
    // An enabled market says nothing of its state: it is the default.
    let mut g = Fixture::new();
    g.ok(create_currency(sol()));
    let events = g.ok(create_market(solusd(MarketState::Enabled)));
    assert_eq!(events, vec![Event::MarketAdded { market: SOLUSD }]);
    let reference = f.engine.runtime_reference();
    assert_eq!(reference.currencies, vec![sol()]);
    assert_eq!(reference.markets, vec![solusd(MarketState::Hidden)]);
}

#[test]
fn a_snapshot_carries_the_created_entries_and_the_market_trades_after_it() {
    let mut f = Fixture::new();
    f.ok(create_currency(sol()));
    f.ok(create_market(solusd(MarketState::Disabled)));
    let restored = Engine::restore(&f.engine.snapshot().unwrap()).unwrap();
    assert_eq!(restored.runtime_reference(), f.engine.runtime_reference());
    assert_eq!(restored.market_state(SOLUSD), Some(MarketState::Disabled));
    assert_eq!(restored.snapshot().unwrap(), f.engine.snapshot().unwrap());
    // The restored engine refuses the same names again: the table is state, not decoration.
    f.engine = restored;
    f.rejected(
        create_currency(CurrencyCreate {
            currency: CurrencyId(3),
            ..sol()
        }),
        RejectReason::CurrencyExists,
    );
    // Opened, the new market trades between two funded accounts.
    f.ok(CommandKind::MarketStateSet {
        market: SOLUSD,
        state: MarketState::Enabled,
    });
    for (account, currency, amount) in [(1, SOL, 1_000_000), (2, USD, 1_000_000)] {
        f.ok(CommandKind::Deposit {
            account: AccountId(account),
            currency,
            amount: Amount(amount),
            deposit: next_deposit_id(),
        });
    }
    let limit = |account: u32, side: Side| {
        CommandKind::NewOrder(NewOrder {
            account: AccountId(account),
            market: SOLUSD,
            client_order_id: ClientOrderId(u64::from(account)),
            side,
            kind: OrderKind::Limit {
                price: Price(10_000),
                qty: Qty(1),
            },
            tif: TimeInForce::Gtc,
            stp: SelfTradePrevention::CancelNewest,
        })
    };
    f.ok(limit(1, Side::Sell));
    let events = f.ok(limit(2, Side::Buy));
    assert_eq!(trades(&events).len(), 1, "{events:?}");
}

#[test]
fn bad_creations_are_refused_and_change_nothing() {
    let mut f = Fixture::new();
    f.ok(create_currency(sol()));
    let bad_currencies = [
        // The code again, under another id.
        (
            CurrencyCreate {
                currency: CurrencyId(3),
                ..sol()
            },
            RejectReason::CurrencyExists,
        ),
        // A configured currency's id.
        (
            CurrencyCreate {
                currency: BTC,
                code: "wbtc".into(),
                ..sol()
            },
            RejectReason::CurrencyExists,
        ),
        (
            CurrencyCreate {
                currency: CurrencyId(3),
                code: "Bad Code".into(),
                ..sol()
            },
            RejectReason::CurrencyOutOfRange,
        ),
        (
            CurrencyCreate {
                currency: CurrencyId(3),
                code: "ada".into(),
                precision: CURRENCY_PRECISION_MAX + 1,
                ..sol()
            },
            RejectReason::CurrencyOutOfRange,
        ),
    ];
    for (create, reason) in bad_currencies {
        f.rejected(create_currency(create), reason);
    }
    f.ok(create_market(solusd(MarketState::Hidden)));
    let renamed = |name: &str, market: u32| MarketCreate {
        name: name.into(),
        spec: MarketSpec {
            market: MarketId(market),
            base: SOL,
            ..spec()
        },
        ..solusd(MarketState::Hidden)
    };
    f.rejected(
        create_market(renamed("solusd", 2)),
        RejectReason::MarketExists,
    );
    f.rejected(
        create_market(renamed("solbtc", 1)),
        RejectReason::MarketExists,
    );
    f.rejected(
        create_market(renamed("SOL/USD", 2)),
        RejectReason::InvalidMarketSpec,
    );
    let mut unknown = renamed("adausd", 2);
    unknown.spec.base = CurrencyId(3);
    f.rejected(create_market(unknown), RejectReason::UnknownCurrency);
    let mut zero_tick = renamed("solusd2", 2);
    zero_tick.tick.mantissa = 0;
    f.rejected(create_market(zero_tick), RejectReason::InvalidMarketSpec);
    assert_eq!(f.engine.runtime_reference().currencies.len(), 1);
    assert_eq!(f.engine.runtime_reference().markets.len(), 1);
}
