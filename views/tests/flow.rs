//! The views' books and balances equal the engine's after every command of a long seeded flow
//! (the random flow places, cancels, replaces, sweeps and triggers stops in two markets).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_hotpath::{AccountId, CommandKind, CurrencyId, Engine, EngineConfig, Event, Side};
use peregrine_views::{Change, Views};

const COMMANDS: usize = 20_000;

#[test]
fn the_views_books_follow_the_engine_through_a_random_flow() {
    let config = EngineConfig {
        max_accounts: 256,
        max_currencies: 8,
        max_markets: 4,
        max_orders: 1 << 15,
        max_levels_per_side: 1_024,
        max_open_orders_per_account: 1_000,
        order_rate_per_sec: 0,
        balance_events: true,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config).unwrap();
    let mut flow = Flow::new(FlowParams {
        seed: 5,
        accounts: 100,
        markets: 2,
        tracked_orders: 2_000,
        ioc_percent: 15,
        ..FlowParams::default()
    });
    let mut views = Views::default();
    let mut events: Vec<Event> = Vec::new();
    let mut changes = Vec::new();
    let setup = flow.setup();
    for seq in 1..=(setup.len() + COMMANDS) as u64 {
        let command = match setup.get(seq as usize - 1) {
            Some(command) => command.clone(),
            None => flow.next_command(),
        };
        events.clear();
        engine.apply(&command, &mut events);
        flow.observe(&events);
        if let CommandKind::NewOrder(order) = &command.kind {
            views.sequenced(seq, command.ts, order);
        }
        for event in &events {
            views.apply_event(seq, command.ts, event, &mut changes);
        }
        views.applied(seq, &mut changes);
        check_balances(&engine, &views, &events, &changes, seq);
        changes.clear();
        for market in engine.market_ids() {
            let book = views.book(market).unwrap().snapshot(usize::MAX, usize::MAX);
            for (side, levels) in [(Side::Buy, &book.bids), (Side::Sell, &book.asks)] {
                assert_eq!(
                    levels,
                    &engine.depth(market, side, usize::MAX),
                    "market {market:?} {side:?} after command {seq}: {command:?} -> {events:?}"
                );
            }
        }
    }
}

/// The command's `Change::Balance`s are the cells its events changed, once each, in (account,
/// currency) order, as the engine holds them; and every balance the engine holds is the views'.
fn check_balances(engine: &Engine, views: &Views, events: &[Event], changes: &[Change], seq: u64) {
    let mut cells: Vec<(AccountId, CurrencyId)> = events
        .iter()
        .flat_map(|e| {
            let changes = e.balance_changes();
            let cells: Vec<_> = changes
                .as_slice()
                .iter()
                .map(|c| (c.account, c.currency))
                .collect();
            cells
        })
        .collect();
    cells.sort_unstable();
    cells.dedup();
    let reported: Vec<_> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Balance {
                account,
                currency,
                available,
                locked,
            } => Some(((*account, *currency), (*available, *locked))),
            _ => None,
        })
        .collect();
    let expected: Vec<_> = cells
        .iter()
        .map(|&(account, currency)| {
            let b = engine.balance(account, currency);
            let amounts = (
                peregrine_hotpath::Amount(b.available),
                peregrine_hotpath::Amount(b.locked),
            );
            ((account, currency), amounts)
        })
        .collect();
    assert_eq!(reported, expected, "balance changes of command {seq}");
    for (account, currency, b) in engine.ledger().nonzero() {
        let view = views.balance(account, currency);
        assert_eq!(
            (view.available.0, view.locked.0),
            (b.available, b.locked),
            "{account:?} {currency:?} after command {seq}"
        );
    }
}
