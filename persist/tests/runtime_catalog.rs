//! Currencies and markets created at runtime in the journal: a replay from zero and a recovery
//! from a snapshot taken after them rebuild the same table of names (the catalog's source),
//! and the market they created keeps trading.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{engine_config, flow_commands, small_config, wait_written};
use peregrine_hotpath::{
    AccountId, Actor, Amount, CommandKind, CurrencyCreate, CurrencyId, DepositId, Engine, Envelope,
    Event, FeeRates, MarketCreate, MarketId, MarketRisk, MarketSpec, MarketState, OperatorId,
    Price, Qty, UnitDecimal,
};
use peregrine_persist::{JournalError, Snapshotter, open, recover};

const NEW_CURRENCY: CurrencyId = CurrencyId(3);
const NEW_MARKET: MarketId = MarketId(1);
/// Where in the flow the currency, then the market, is created.
const CREATE_AT: usize = 500;

fn currency() -> CurrencyCreate {
    CurrencyCreate {
        currency: NEW_CURRENCY,
        code: "sol".into(),
        display_name: "Solana".into(),
        precision: 9,
    }
}

fn market() -> MarketCreate {
    MarketCreate {
        spec: MarketSpec {
            market: NEW_MARKET,
            base: NEW_CURRENCY,
            quote: CurrencyId(1),
            base_per_lot: 1_000,
            quote_per_tick_lot: 1,
            risk: MarketRisk {
                max_price: Price(1_000_000),
                max_qty: Qty(1_000_000),
                max_notional: Amount(1 << 50),
                band_bps: 0,
                reference_price: Price(1_000),
            },
            fees: FeeRates {
                maker_ppm: 100,
                taker_ppm: 200,
            },
        },
        name: "solusd".into(),
        tick: UnitDecimal {
            mantissa: 1,
            scale: 3,
        },
        lot: UnitDecimal {
            mantissa: 1,
            scale: 6,
        },
        state: MarketState::Hidden,
    }
}

/// The seeded flow with the creations and a deposit in the new currency by operator 7.
fn commands(count: usize) -> Vec<Envelope> {
    let mut out = flow_commands(5, count);
    let ts = out[CREATE_AT].ts;
    let by_operator = |kind| Envelope {
        ts,
        actor: Actor::Operator(OperatorId(7)),
        kind,
    };
    let created = [
        CommandKind::CurrencyCreate(Box::new(currency())),
        CommandKind::MarketCreate(Box::new(market())),
        CommandKind::Deposit {
            account: AccountId(1),
            currency: NEW_CURRENCY,
            amount: Amount(5_000),
            deposit: DepositId(1 << 40),
        },
    ];
    let tail = out.split_off(CREATE_AT);
    out.extend(created.into_iter().map(by_operator));
    out.extend(tail);
    out
}

fn reference(commands: &[Envelope]) -> Engine {
    let mut engine = Engine::new(engine_config()).unwrap();
    let mut events: Vec<Event> = Vec::new();
    for command in commands {
        engine.apply(command, &mut events);
        assert!(
            !matches!(
                &command.kind,
                CommandKind::CurrencyCreate(_) | CommandKind::MarketCreate(_)
            ) || !events.iter().any(|e| matches!(e, Event::Rejected { .. })),
            "creation refused: {events:?}"
        );
        events.clear();
    }
    engine
}

fn append(journal: &peregrine_persist::Journal, command: &Envelope) -> u64 {
    loop {
        match journal.append(command) {
            Ok(seq) => return seq,
            Err(JournalError::Busy { .. }) => {
                journal
                    .wait_durable_after(journal.durable_seq(), Duration::from_millis(1))
                    .unwrap();
            }
            Err(other) => panic!("{other}"),
        }
    }
}

#[test]
fn a_replay_from_zero_rebuilds_the_created_entries() {
    let commands = commands(2_000);
    let engine = reference(&commands);
    assert_eq!(engine.runtime_reference().currencies, vec![currency()]);
    assert_eq!(engine.runtime_reference().markets, vec![market()]);
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (_, writer) = open(&config, engine_config()).unwrap();
    for command in &commands {
        append(writer.journal(), command);
    }
    writer.shutdown().unwrap();
    let recovered = recover(&config, engine_config()).unwrap();
    assert!(recovered.report.snapshot.is_none());
    assert_eq!(
        recovered.engine.runtime_reference(),
        engine.runtime_reference()
    );
    assert_eq!(
        recovered.engine.market_state(NEW_MARKET),
        Some(MarketState::Hidden)
    );
    assert_eq!(
        recovered.engine.snapshot().unwrap(),
        engine.snapshot().unwrap()
    );
}

#[test]
fn a_snapshot_after_the_creations_restores_them_without_the_commands() {
    let commands = commands(2_000);
    let engine = reference(&commands);
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.snapshot_every_commands = 1_000;
    let (recovered, writer) = open(&config, engine_config()).unwrap();
    let mut live = recovered.engine;
    let journal = writer.journal().clone();
    let mut snapshotter = Snapshotter::start(&config, journal.clone(), 0);
    let mut out = Vec::new();
    for command in &commands {
        let seq = append(&journal, command);
        live.apply(command, &mut out);
        out.clear();
        if snapshotter.maybe_take(&live, seq).unwrap().is_some() {
            wait_written(&snapshotter, seq);
        }
    }
    snapshotter.finish().unwrap();
    writer.shutdown().unwrap();
    let recovered = recover(&config, engine_config()).unwrap();
    let (_, snapshot_seq) = recovered.report.snapshot.clone().expect("snapshot used");
    assert!(snapshot_seq as usize > CREATE_AT + 3, "{snapshot_seq}");
    assert_eq!(
        recovered.engine.runtime_reference(),
        engine.runtime_reference()
    );
    // The snapshot alone: no command of the creations was replayed after it.
    let images = peregrine_persist::snapshot::list_snapshots(dir.path()).unwrap();
    let (_, first) = images.first().unwrap();
    let (seq, body) = peregrine_persist::snapshot::read_snapshot(first).unwrap();
    assert!(seq as usize > CREATE_AT + 3);
    let restored = Engine::restore(&body).unwrap();
    assert_eq!(restored.runtime_reference().markets, vec![market()]);
    assert_eq!(restored.market_state(NEW_MARKET), Some(MarketState::Hidden));
    assert_eq!(
        recovered.engine.snapshot().unwrap(),
        engine.snapshot().unwrap()
    );
}
