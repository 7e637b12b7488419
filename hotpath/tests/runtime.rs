//! The shard runtime: same events as the bare engine, back-pressure instead of loss, queries
//! between commands, pinning, both idle policies, concurrent producers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code asserts by unwrapping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peregrine_hotpath::runtime::{
    Busy, IdlePolicy, Output, Outputs, RuntimeError, Shard, ShardConfig,
};
use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_hotpath::*;

fn config() -> EngineConfig {
    EngineConfig {
        max_accounts: 64,
        max_currencies: 4,
        max_markets: 4,
        max_orders: 1 << 16,
        ..EngineConfig::default()
    }
}

fn commands(n: usize) -> Vec<Envelope> {
    let mut flow = Flow::new(FlowParams {
        accounts: 50,
        markets: 2,
        tracked_orders: 2_000,
        ..FlowParams::default()
    });
    let mut commands = flow.setup();
    commands.extend((0..n).map(|_| flow.next_command()));
    commands
}

/// Events per command from the bare engine.
fn direct(commands: &[Envelope]) -> Vec<Vec<Event>> {
    let mut engine = Engine::new(config()).unwrap();
    commands
        .iter()
        .map(|c| {
            let mut events = Vec::new();
            engine.apply(c, &mut events);
            events
        })
        .collect()
}

/// Drains `n` commands' outputs, grouped per command, checking sequence continuity.
fn collect(outputs: &mut Outputs, n: usize) -> Vec<Vec<Event>> {
    let mut out = Vec::with_capacity(n);
    let mut current = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < n {
        let item = outputs.next_deadline(deadline).expect("outputs in time");
        match item {
            Output::Event { seq, event } => {
                assert_eq!(seq as usize, out.len() + 1);
                current.push(event);
            }
            Output::Done { seq } => {
                assert_eq!(seq as usize, out.len() + 1);
                out.push(std::mem::take(&mut current));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

fn submit_all(shard: &Shard, commands: &[Envelope]) {
    for (i, c) in commands.iter().enumerate() {
        let mut command = c.clone();
        // Bounded retry: the consumer here runs after, so the queue must be large enough.
        loop {
            match shard.submit(i as u64 + 1, command) {
                Ok(()) => break,
                Err(Busy(back)) => {
                    command = back;
                    std::thread::yield_now();
                }
            }
        }
    }
}

#[test]
fn shard_emits_exactly_the_engines_events_in_both_idle_policies() {
    let commands = commands(5_000);
    let expected = direct(&commands);
    for idle in [
        IdlePolicy::Spin,
        IdlePolicy::Park {
            spins: 100,
            park_us: 200,
        },
    ] {
        let mut shard = Shard::start(
            Engine::new(config()).unwrap(),
            &ShardConfig {
                idle,
                input_capacity: 1 << 14,
                query_capacity: 1_024,
                output_capacity: 1 << 16,
                core: None,
            },
        )
        .unwrap();
        let consumer = {
            let mut output = shard.take_outputs().unwrap();
            std::thread::spawn(move || {
                let mut items = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut done = 0;
                while done < 5_000 + 104 {
                    let item = output.next_deadline(deadline).expect("outputs in time");
                    if matches!(item, Output::Done { .. }) {
                        done += 1;
                    }
                    items.push(item);
                }
                items
            })
        };
        submit_all(&shard, &commands);
        let items = consumer.join().unwrap();
        let mut got: Vec<Vec<Event>> = vec![Vec::new(); commands.len()];
        let mut last_done = 0;
        for item in items {
            match item {
                Output::Event { seq, event } => got[seq as usize - 1].push(event),
                Output::Done { seq } => {
                    assert_eq!(seq, last_done + 1, "Done out of order");
                    last_done = seq;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, expected, "{idle:?}");
        let engine = shard.stop().unwrap();
        engine.audit().unwrap();
    }
}

#[test]
fn full_queues_return_busy_and_lose_nothing() {
    let commands = commands(2_000);
    let expected = direct(&commands);
    // A tiny output queue and no consumer yet: the shard stalls, the input fills, callers see Busy.
    let mut shard = Shard::start(
        Engine::new(config()).unwrap(),
        &ShardConfig {
            idle: IdlePolicy::Spin,
            input_capacity: 8,
            query_capacity: 1_024,
            output_capacity: 4,
            core: None,
        },
    )
    .unwrap();
    let mut outputs = shard.take_outputs().unwrap();
    let mut next = 0usize;
    let mut busy = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while busy == 0 && Instant::now() < deadline {
        match shard.submit(next as u64 + 1, commands[next].clone()) {
            Ok(()) => next += 1,
            Err(Busy(_)) => busy += 1,
        }
    }
    assert!(busy > 0, "never saw Busy");
    // Input 8 + two output batches of 512 items: the shard stalls within a few hundred commands.
    assert!(next < 1_000, "accepted {next} without back-pressure");
    assert!(
        shard
            .stats()
            .busy_total
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    // Now consume while submitting the rest: every command's events arrive, in order.
    let consumer = {
        let n = commands.len();
        std::thread::spawn(move || {
            let mut got: Vec<Vec<Event>> = vec![Vec::new(); n];
            let mut done = 0;
            let deadline = Instant::now() + Duration::from_secs(30);
            while done < n {
                match outputs.next_deadline(deadline).expect("outputs in time") {
                    Output::Event { seq, event } => got[seq as usize - 1].push(event),
                    Output::Done { .. } => done += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
            got
        })
    };
    submit_all_from(&shard, &commands, next);
    assert_eq!(consumer.join().unwrap(), expected);
    shard.stop().unwrap().audit().unwrap();
}

fn submit_all_from(shard: &Shard, commands: &[Envelope], from: usize) {
    for (i, c) in commands.iter().enumerate().skip(from) {
        let mut command = c.clone();
        loop {
            match shard.submit(i as u64 + 1, command) {
                Ok(()) => break,
                Err(Busy(back)) => {
                    command = back;
                    std::thread::yield_now();
                }
            }
        }
    }
}

#[test]
fn queries_see_command_boundaries_and_stop_returns_the_engine() {
    let commands = commands(1_000);
    let mut shard = Shard::start(Engine::new(config()).unwrap(), &ShardConfig::default()).unwrap();
    let mut outputs = shard.take_outputs().unwrap();
    submit_all(&shard, &commands);
    let got = collect(&mut outputs, commands.len());
    assert_eq!(got, direct(&commands));
    let applied = shard
        .query(Duration::from_secs(5), |e| e.commands_applied())
        .unwrap();
    assert_eq!(applied, commands.len() as u64);
    let live = shard
        .query(Duration::from_secs(5), |e| e.live_orders())
        .unwrap();
    let engine = shard.stop().unwrap();
    assert_eq!(engine.live_orders(), live);
    let mut reference = Engine::new(config()).unwrap();
    let mut sink = Vec::new();
    for c in &commands {
        reference.apply(c, &mut sink);
    }
    assert_eq!(engine.snapshot().unwrap(), reference.snapshot().unwrap());
}

#[test]
fn pins_to_an_existing_core_and_refuses_a_missing_one() {
    let shard = Shard::start(
        Engine::new(config()).unwrap(),
        &ShardConfig {
            core: Some(0),
            ..ShardConfig::default()
        },
    )
    .unwrap();
    shard.stop().unwrap();
    let err = Shard::start(
        Engine::new(config()).unwrap(),
        &ShardConfig {
            core: Some(100_000),
            ..ShardConfig::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, RuntimeError::NoSuchCore { core: 100_000, .. }),
        "{err}"
    );
    let err = Shard::start(
        Engine::new(config()).unwrap(),
        &ShardConfig {
            input_capacity: 0,
            ..ShardConfig::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, RuntimeError::ZeroCapacity));
}

#[test]
fn concurrent_producers_through_a_sequencer_keep_the_ledger_whole() {
    // Four gateway threads share one sequencer (a mutex around seq + submit), a consumer drains.
    let commands = Arc::new(commands(8_000));
    let setup = 104;
    let mut shard = Shard::start(Engine::new(config()).unwrap(), &ShardConfig::default()).unwrap();
    let mut outputs = shard.take_outputs().unwrap();
    let shard = Arc::new(shard);
    let seq = Arc::new(Mutex::new(0u64));
    // Setup first, in order.
    for c in &commands[..setup] {
        let mut s = seq.lock().unwrap();
        *s += 1;
        shard.submit(*s, c.clone()).unwrap();
    }
    let consumer = {
        let n = commands.len();
        std::thread::spawn(move || {
            let (mut done, mut last) = (0, 0);
            let deadline = Instant::now() + Duration::from_secs(30);
            while done < n {
                if let Output::Done { seq } =
                    outputs.next_deadline(deadline).expect("outputs in time")
                {
                    assert!(seq > last);
                    last = seq;
                    done += 1;
                }
            }
        })
    };
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let (commands, shard, seq) = (commands.clone(), shard.clone(), seq.clone());
            std::thread::spawn(move || {
                for c in commands[setup..].iter().skip(p).step_by(4) {
                    let mut command = c.clone();
                    loop {
                        let mut s = seq.lock().unwrap();
                        match shard.submit(*s + 1, command) {
                            Ok(()) => {
                                *s += 1;
                                break;
                            }
                            Err(Busy(back)) => {
                                command = back;
                                drop(s);
                                std::thread::yield_now();
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    consumer.join().unwrap();
    let shard = Arc::into_inner(shard).unwrap();
    let engine = shard.stop().unwrap();
    assert_eq!(engine.commands_applied(), commands.len() as u64);
    engine.audit().unwrap();
}

#[test]
fn a_waker_is_called_for_every_batch_handed_over() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let cmds = commands(2_000);
    let mut shard = Shard::start(Engine::new(config()).unwrap(), &ShardConfig::default()).unwrap();
    let mut outputs = shard.take_outputs().unwrap();
    let wakes = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&wakes);
    assert!(
        outputs
            .set_waker(Box::new(move || {
                counter.fetch_add(1, Ordering::Relaxed);
            }))
            .is_ok()
    );
    // One waker per shard: a second is handed back, and the first stays.
    assert!(outputs.set_waker(Box::new(|| {})).is_err());
    assert_eq!(wakes.load(Ordering::Relaxed), 0, "nothing handed over yet");
    // One command at a time: each one's outputs are a batch of their own, handed over (and so
    // woken for) before the next command arrives.
    let mut seen = Vec::new();
    for (index, command) in cmds.iter().take(50).enumerate() {
        shard.submit(index as u64 + 1, command.clone()).unwrap();
        seen.push(collect_one(&mut outputs, index as u64 + 1));
        assert!(
            wakes.load(Ordering::Relaxed) > index as u64,
            "command {} was handed over without a wake",
            index + 1
        );
    }
    // In bulk: the events are unchanged, and wakes come per hand-over, not per item.
    submit_all_from(&shard, &cmds, 50);
    for seq in 51..=cmds.len() as u64 {
        seen.push(collect_one(&mut outputs, seq));
    }
    assert_eq!(seen, direct(&cmds));
    let wakes_total = wakes.load(Ordering::Relaxed);
    let items: usize = seen.iter().map(|events| events.len() + 1).sum();
    assert!(wakes_total >= 50);
    assert!(
        wakes_total <= items as u64,
        "at most one wake per hand-over: {wakes_total} for {items} items"
    );
    shard.stop().unwrap();
}

/// The outputs of command `seq` up to its `Done`.
fn collect_one(outputs: &mut Outputs, seq: u64) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events = Vec::new();
    loop {
        match outputs.next_deadline(deadline).expect("outputs in time") {
            Output::Event { seq: got, event } => {
                assert_eq!(got, seq);
                events.push(event);
            }
            Output::Done { seq: got } => {
                assert_eq!(got, seq);
                return events;
            }
            _ => panic!("unknown output"),
        }
    }
}

#[test]
fn queries_have_a_queue_of_their_own_and_never_take_a_commands_room() {
    let commands = commands(4);
    let shard = Shard::start(
        Engine::new(config()).unwrap(),
        &ShardConfig {
            idle: IdlePolicy::Park {
                spins: 10,
                park_us: 100,
            },
            input_capacity: 2,
            query_capacity: 1,
            output_capacity: 1_024,
            core: None,
        },
    )
    .unwrap();
    // Hold the shard thread inside a query until released.
    let (held_tx, held_rx) = crossbeam_channel::bounded::<()>(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
    shard
        .try_query(Box::new(move |_| {
            held_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(Duration::from_secs(10));
        }))
        .unwrap();
    held_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    // The query queue fills and refuses at once...
    shard.try_query(Box::new(|_| {})).unwrap();
    assert!(shard.try_query(Box::new(|_| {})).is_err());
    // ...while the command queue still has all its room, and only its own capacity bounds it.
    assert!(!shard.input_full());
    shard.submit(1, commands[0].clone()).unwrap();
    shard.submit(2, commands[1].clone()).unwrap();
    assert!(shard.input_full());
    assert!(matches!(shard.submit(3, commands[2].clone()), Err(Busy(_))));
    release_tx.send(()).unwrap();
    // Both queues drain: the blocking query answers, every accepted command is applied.
    shard
        .query(Duration::from_secs(5), |engine| engine.live_orders())
        .unwrap();
    let stats = Arc::clone(shard.stats());
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats.last_seq.load(std::sync::atomic::Ordering::Acquire) < 2 {
        assert!(Instant::now() < deadline, "the commands were not applied");
        std::thread::sleep(Duration::from_millis(1));
    }
    shard.stop().unwrap();
}
