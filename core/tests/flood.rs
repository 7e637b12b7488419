//! Liveness under overload: commands and queries flooded together from many tasks, past every
//! queue's capacity, with a durable journal and the router as a task (as `peregrine up` runs).
//! The excess is refused with `Busy` at once; afterwards the exchange serves normally.
//!
//! What it guards against: when queries shared the shard's command queue, a query could take
//! the slot the sequencer had just found free, between its `input_full` check and its submit
//! of an already journaled command. The sequencer then waited for room (`submit_wait`, 5 s) on
//! a tokio worker under the routing lock, the router task blocked on that lock, the shard
//! stalled on its full output queue, and the handle marked itself failed: every command after
//! that was `Unavailable`. With queries routed through the command queue again and
//! `submit_wait` restored, this test fails that way (the blocking queriers below are what take
//! freed slots the fastest).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use peregrine_core::{EngineHandle, QueryError, Request, RouterPlacement, SubmitError, Views};
use peregrine_hotpath::runtime::{IdlePolicy, Shard, ShardConfig};
use peregrine_hotpath::{
    AccountId, Actor, Amount, CommandKind, CurrencyId, DepositId, EngineConfig,
};

/// Tasks submitting commands, tasks querying without waiting (`ask`), and threads querying
/// with a blocking wait for room (`query`, as the snapshot driver does), all at once.
const SUBMITTERS: u64 = 16;
const QUERIERS: u64 = 16;
const BLOCKING_QUERIERS: u64 = 16;
/// How long the flood lasts.
const FLOOD: Duration = Duration::from_millis(1_000);
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
    ShardConfig {
        idle: IdlePolicy::Park {
            spins: 10,
            park_us: 100,
        },
        input_capacity: 8,
        query_capacity: 4,
        // Two output batches: the shard stalls at once if the router stops taking outputs.
        output_capacity: 64,
        ..ShardConfig::default()
    }
}

#[derive(Debug, Default)]
struct Counts {
    submitted: AtomicU64,
    executed: AtomicU64,
    busy: AtomicU64,
    queried: AtomicU64,
    query_refused: AtomicU64,
}

fn count_answer(counts: &Counts, answer: Result<u32, QueryError>) {
    assert!(
        matches!(answer, Ok(_) | Err(QueryError::Busy)),
        "only Busy may refuse a query here: {answer:?}"
    );
    let counter = match answer {
        Ok(_) => &counts.queried,
        Err(_) => &counts.query_refused,
    };
    counter.fetch_add(1, Ordering::Relaxed);
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
        Views::default(),
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
                match engine.submit(Request::new(Actor::System, deposit(n))) {
                    Ok(ticket) => waiting.push(ticket),
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
        tasks.push(tokio::spawn(async move {
            let mut asked = Vec::with_capacity(1_024);
            for _ in 0..REQUESTS_PER_TASK_MAX {
                if std::time::Instant::now() >= until {
                    break;
                }
                tokio::task::yield_now().await;
                // Queued at once or refused at once: the answers are awaited after the flood.
                asked.push(engine.ask(|engine| engine.live_orders()));
                if asked.len() == asked.capacity() {
                    for answer in asked.drain(..) {
                        count_answer(&counts, answer.await);
                    }
                }
            }
            for answer in asked {
                count_answer(&counts, answer.await);
            }
        }));
    }
    for _ in 0..BLOCKING_QUERIERS {
        let (engine, counts) = (engine.clone(), counts.clone());
        // Blocking callers wait for room in the query queue: they take every slot freed.
        tasks.push(tokio::task::spawn_blocking(move || {
            while std::time::Instant::now() < until {
                let answer = engine.query(|engine| engine.live_orders());
                assert!(answer.is_ok(), "a blocking query failed: {answer:?}");
                counts.queried.fetch_add(1, Ordering::Relaxed);
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
    assert!(
        counts.query_refused.load(Ordering::Relaxed) > 0,
        "the flood never exceeded the query queue"
    );
    assert!(counts.queried.load(Ordering::Relaxed) > 0);
    assert_eq!(executed + busy, counts.submitted.load(Ordering::Relaxed));
    assert!(
        !engine.is_failed(),
        "the flood made the engine side give up"
    );

    // After the flood: a command is taken and executed, durably.
    let after = next_deposit.fetch_add(1, Ordering::Relaxed);
    let outcome = engine
        .submit(Request::new(Actor::System, deposit(after)))
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
