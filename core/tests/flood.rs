//! Liveness under overload: commands and queries flooded together from many tasks, past every
//! queue's capacity, with a durable journal and the router as a task (as `peregrine up` runs).
//! The excess is refused with `Busy` at once; afterwards the exchange serves normally.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use peregrine_core::engine::{EngineHandle, OrderTracker, RouterPlacement};
use peregrine_hotpath::runtime::{IdlePolicy, Shard, ShardConfig};
use peregrine_hotpath::{
    AccountId, Actor, Amount, CommandKind, CurrencyId, DepositId, EngineConfig,
};
use peregrine_proto::session::SubmitError;

/// Tasks submitting commands, and tasks (threads) querying, at once.
const SUBMITTERS: u64 = 16;
const QUERIERS: u64 = 16;
/// How long the flood lasts.
const FLOOD: Duration = Duration::from_millis(500);
/// Requests one flooding task makes at most (bounds the outcomes it keeps).
const REQUESTS_PER_TASK_MAX: usize = 100_000;
/// Longest anything in the test may take before it counts as stuck.
const STUCK: Duration = Duration::from_secs(20);

fn deposit(n: u64) -> CommandKind {
    CommandKind::Deposit {
        account: AccountId(1),
        currency: CurrencyId(1),
        amount: Amount(1),
        deposit: DepositId(n),
    }
}

fn tiny_queues() -> ShardConfig {
    let mut config = ShardConfig::default();
    config.idle = IdlePolicy::Park {
        spins: 10,
        park_us: 100,
    };
    config.input_capacity = 8;
    config.query_capacity = 4;
    // Two output batches: the shard stalls at once if the router stops taking outputs.
    config.output_capacity = 64;
    config
}

#[derive(Debug, Default)]
struct Counts {
    submitted: AtomicU64,
    executed: AtomicU64,
    busy: AtomicU64,
    queried: AtomicU64,
    query_refused: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_commands_and_queries_gets_busy_then_serves_normally() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let journal_config = peregrine_persist::JournalConfig::new(dir.path());
    let (recovered, writer) = peregrine_persist::open(&journal_config, EngineConfig::small())
        .expect("an empty journal opens");
    let shard = Shard::start_at(recovered.engine, recovered.last_seq, &tiny_queues())
        .expect("the shard starts");
    let engine = EngineHandle::start_placed(
        shard,
        Some(writer.journal().clone()),
        OrderTracker::new(),
        RouterPlacement::Task(tokio::runtime::Handle::current()),
    )
    .expect("the engine side starts");
    let counts = Arc::new(Counts::default());
    let until = std::time::Instant::now() + FLOOD;
    let next_deposit = Arc::new(AtomicU64::new(1));

    let mut tasks = Vec::new();
    for _ in 0..SUBMITTERS {
        let (engine, counts, next) = (engine.clone(), counts.clone(), next_deposit.clone());
        tasks.push(tokio::spawn(async move {
            let mut waiting = Vec::with_capacity(1_024);
            for _ in 0..REQUESTS_PER_TASK_MAX {
                if std::time::Instant::now() >= until {
                    break;
                }
                tokio::task::yield_now().await;
                counts.submitted.fetch_add(1, Ordering::Relaxed);
                let n = next.fetch_add(1, Ordering::Relaxed);
                match engine.execute(Actor::System, None, deposit(n)) {
                    Ok(outcome) => waiting.push(outcome),
                    Err(SubmitError::Busy) => {
                        counts.busy.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => panic!("only Busy may refuse a command here: {error}"),
                }
            }
            for outcome in waiting {
                if outcome.await.is_ok() {
                    counts.executed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for _ in 0..QUERIERS {
        let (engine, counts) = (engine.clone(), counts.clone());
        // Queries block their caller (bounded), so they run where blocking is allowed.
        tasks.push(tokio::task::spawn_blocking(move || {
            for _ in 0..REQUESTS_PER_TASK_MAX {
                if std::time::Instant::now() >= until {
                    break;
                }
                match engine
                    .shard()
                    .query(Duration::from_millis(5), |engine| engine.live_orders())
                {
                    Ok(_) => counts.queried.fetch_add(1, Ordering::Relaxed),
                    Err(_) => counts.query_refused.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(STUCK, task)
            .await
            .expect("a flooding task got stuck")
            .expect("a flooding task panicked");
    }
    let busy = counts.busy.load(Ordering::Relaxed);
    let executed = counts.executed.load(Ordering::Relaxed);
    eprintln!(
        "submitted {}, executed {executed}, busy {busy}, queried {}, queries refused {}",
        counts.submitted.load(Ordering::Relaxed),
        counts.queried.load(Ordering::Relaxed),
        counts.query_refused.load(Ordering::Relaxed)
    );
    assert!(busy > 0, "the flood never exceeded the command queue");
    assert_eq!(executed + busy, counts.submitted.load(Ordering::Relaxed));
    assert!(
        !engine.is_failed(),
        "the flood made the engine side give up"
    );

    // After the flood: a command is taken and executed, durably.
    let after = next_deposit.fetch_add(1, Ordering::Relaxed);
    let outcome = engine
        .execute(Actor::System, None, deposit(after))
        .expect("a command after the flood is taken");
    let executed = tokio::time::timeout(STUCK, outcome)
        .await
        .expect("the command after the flood is executed in time")
        .expect("the command after the flood has an outcome");
    assert!(executed.seq > 0);
    assert!(!engine.is_failed());
    engine.shutdown();
    drop(engine);
    writer.shutdown().expect("the journal closes");
}
