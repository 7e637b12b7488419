//! A database outage under load: the appliance keeps journaling, the replicator keeps its
//! position, readiness reports the stall, and the replica catches up with nothing lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::{Exchange, TestDb, assert_replica_matches, wait_replicated};
use peregrine_replica::{DurableSource, Replicator};

/// Rounds of commands per measurement, and commands per round: enough to smooth a scheduler
/// hiccup, few enough that the replica catches up in seconds.
const ROUNDS: usize = 5;
const ROUND_COMMANDS: usize = 4_000;

/// Journals (and applies) flow commands as fast as it can, in rounds; returns the median
/// round's commands per second.
fn journal_rate(exchange: &mut Exchange) -> f64 {
    let mut rates: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            exchange.run(ROUND_COMMANDS);
            ROUND_COMMANDS as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[ROUNDS / 2]
}

#[test]
fn outage_keeps_trading_and_the_replica_catches_up() {
    let db = TestDb::new("outage");
    let proxy = Proxy::start(&db.url);
    let mut exchange = Exchange::new(31, |_| {});
    exchange.run(0);
    let mut config = exchange.replica_config(&proxy.url(&db.url));
    config.ready_lag_max = Duration::from_millis(300);
    let handle = Replicator::start(
        config,
        DurableSource::Journal(exchange.journal.clone()),
        &prometheus::Registry::new(),
    )
    .unwrap();
    wait_replicated(&handle, exchange.last_seq, Duration::from_secs(20));

    let normal_per_sec = journal_rate(&mut exchange);
    proxy.cut();
    let cut_at = Instant::now();
    let before_outage = exchange.last_seq;
    let outage_per_sec = journal_rate(&mut exchange);
    // Keep the outage going past the readiness bound.
    while cut_at.elapsed() < Duration::from_millis(800) {
        exchange.run(50);
        std::thread::sleep(Duration::from_millis(5));
    }
    exchange.wait_durable();
    let during = handle.high_water_seq();
    assert!(
        during < exchange.last_seq,
        "nothing more was replicated during the outage ({during} of {})",
        exchange.last_seq
    );
    assert!(!handle.is_connected());
    let readiness = handle.readiness();
    assert!(readiness.is_err(), "readiness reports the stall");
    assert!(handle.lag().commands > 0);
    proxy.restore();
    let restored_at = Instant::now();
    let after_per_sec = journal_rate(&mut exchange);
    exchange.wait_durable();
    wait_replicated(&handle, exchange.last_seq, Duration::from_secs(60));
    let catch_up = restored_at.elapsed();
    handle.readiness().unwrap();
    handle.stop().unwrap();
    assert_replica_matches(&db.url, &exchange);
    eprintln!(
        "journal+engine throughput: normal {normal_per_sec:.0}/s, during outage \
         {outage_per_sec:.0}/s ({:+.1}%), after {after_per_sec:.0}/s; outage from seq \
         {before_outage}, readiness said {readiness:?}; caught up {} commands in {catch_up:?}",
        (outage_per_sec / normal_per_sec - 1.0) * 100.0,
        exchange.last_seq - before_outage
    );
}
