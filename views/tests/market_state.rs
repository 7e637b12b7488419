//! The views follow a market's state and risk parameters from the events, and take them from
//! the engine at a seed (a restart from a snapshot), as the public market list reads them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use peregrine_hotpath::{
    Actor, Amount, CommandKind, CurrencyId, Engine, EngineConfig, Envelope, Event, FeeRates,
    MarketId, MarketRisk, MarketSpec, MarketState, MarketUpdate, Price, Qty, TimestampNs,
};
use peregrine_views::{Change, Views};

const M: MarketId = MarketId(0);

fn risk(max_qty: u64) -> MarketRisk {
    MarketRisk {
        max_price: Price(1_000_000),
        max_qty: Qty(max_qty),
        max_notional: Amount(1 << 40),
        band_bps: 0,
        reference_price: Price(100),
    }
}

/// Applies `kind` to the engine and the views; the views' changes.
fn apply(engine: &mut Engine, views: &mut Views, seq: u64, kind: CommandKind) -> Vec<Change> {
    let command = Envelope {
        ts: TimestampNs(seq),
        actor: Actor::System,
        kind,
    };
    let (mut events, mut changes): (Vec<Event>, Vec<Change>) = (Vec::new(), Vec::new());
    engine.apply(&command, &mut events);
    assert!(!matches!(events[0], Event::Rejected { .. }), "{events:?}");
    for event in &events {
        views.apply_event(seq, command.ts, event, &mut changes);
    }
    views.applied(seq, &mut changes);
    changes
}

#[test]
fn states_and_risk_follow_the_events_and_a_seed() {
    let mut engine = Engine::new(EngineConfig::small()).unwrap();
    let mut views = Views::default();
    let setup = [
        CommandKind::CurrencyAdd {
            currency: CurrencyId(0),
        },
        CommandKind::CurrencyAdd {
            currency: CurrencyId(1),
        },
        CommandKind::MarketAdd(MarketSpec {
            market: M,
            base: CurrencyId(0),
            quote: CurrencyId(1),
            base_per_lot: 1,
            quote_per_tick_lot: 1,
            risk: risk(10),
            fees: FeeRates::default(),
        }),
    ];
    let mut seq = 0;
    for kind in setup {
        seq += 1;
        apply(&mut engine, &mut views, seq, kind);
    }
    for (state, name, halted) in [
        (MarketState::Hidden, "hidden", false),
        (MarketState::Disabled, "disabled", true),
        (MarketState::Locked, "halted", true),
        (MarketState::Enabled, "enabled", false),
        (MarketState::Disabled, "disabled", true),
    ] {
        seq += 1;
        let changes = apply(
            &mut engine,
            &mut views,
            seq,
            CommandKind::MarketStateSet { market: M, state },
        );
        let view = views.market(M).unwrap();
        assert_eq!(
            (view.state, view.state_name(), view.halted),
            (state, name, halted)
        );
        assert!(
            changes.contains(&Change::MarketState { market: M, halted }),
            "{changes:?}"
        );
    }
    seq += 1;
    let update = CommandKind::MarketUpdate(MarketUpdate {
        market: M,
        risk: risk(20),
    });
    apply(&mut engine, &mut views, seq, update);
    assert_eq!(views.market(M).unwrap().risk, Some(risk(20)));
    // A restart from a snapshot: fresh views seeded from the engine.
    let mut seeded = Views::default();
    seeded.seed(&engine, seq);
    let view = seeded.market(M).unwrap();
    assert_eq!(
        (view.state, view.halted, view.risk),
        (MarketState::Disabled, true, Some(risk(20)))
    );
}
