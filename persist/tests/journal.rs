//! Journal, recovery and snapshot behaviour on real files in temporary directories.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use common::{engine_config, flow_commands, reference_engine, small_config, wait_written};
use peregrine_hotpath::Event;
use peregrine_persist::record::{self, Parsed};
use peregrine_persist::segment::list_segments;
use peregrine_persist::snapshot::list_snapshots;
use peregrine_persist::writer::COMMIT_TIMES_MAX;
use peregrine_persist::{JournalError, RecoveryError, Snapshotter, WriterIdle, open, recover};

const WAIT: Duration = Duration::from_secs(10);

fn append_all(journal: &peregrine_persist::Journal, commands: &[peregrine_hotpath::Envelope]) {
    for command in commands {
        // Busy is back-pressure: wait for the writer to make room.
        loop {
            match journal.append(command) {
                Ok(_) => break,
                Err(JournalError::Busy { .. }) => {
                    journal
                        .wait_durable_after(journal.durable_seq(), Duration::from_millis(1))
                        .unwrap();
                }
                Err(other) => panic!("{other}"),
            }
        }
    }
}

#[test]
fn round_trip_recovers_the_same_engine() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let commands = flow_commands(1, 3_000);
    let (recovered, writer) = open(&config, engine_config()).unwrap();
    assert_eq!(recovered.last_seq, 0);
    append_all(writer.journal(), &commands);
    let durable = writer.shutdown().unwrap();
    assert_eq!(durable, 3_000);
    let recovered = recover(&config, engine_config()).unwrap();
    assert_eq!(recovered.last_seq, 3_000);
    assert_eq!(recovered.report.replayed_count, 3_000);
    assert!(recovered.report.torn_tail.is_none());
    assert!(
        recovered.report.segments_count > 1,
        "small segments must rotate"
    );
    let reference = reference_engine(&commands);
    assert_eq!(
        recovered.engine.snapshot().unwrap(),
        reference.snapshot().unwrap()
    );
    recovered.engine.audit().unwrap();
    // Appending after a reopen continues the sequence.
    let (recovered, writer) = open(&config, engine_config()).unwrap();
    assert_eq!(recovered.last_seq, 3_000);
    assert_eq!(writer.journal().append(&commands[0]).unwrap(), 3_001);
    assert_eq!(writer.shutdown().unwrap(), 3_001);
    assert_eq!(recover(&config, engine_config()).unwrap().last_seq, 3_001);
}

#[test]
fn group_commit_with_many_producers_is_gap_free() {
    const PRODUCERS: usize = 8;
    const PER_PRODUCER: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (_, writer) = open(&config, engine_config()).unwrap();
    let commands = Arc::new(flow_commands(2, 200));
    let mut threads = Vec::new();
    for producer in 0..PRODUCERS {
        let journal = writer.journal().clone();
        let commands = Arc::clone(&commands);
        threads.push(std::thread::spawn(move || {
            let mut seqs = Vec::with_capacity(PER_PRODUCER);
            for i in 0..PER_PRODUCER {
                let command = &commands[(producer + i) % commands.len()];
                loop {
                    match journal.append(command) {
                        Ok(seq) => {
                            seqs.push(seq);
                            break;
                        }
                        Err(JournalError::Busy { .. }) => std::thread::yield_now(),
                        Err(other) => panic!("{other}"),
                    }
                }
            }
            // Durable mode: wait for our last record, as a gateway would before acking.
            let last = *seqs.last().unwrap();
            assert!(journal.wait_durable(last, WAIT).unwrap() >= last);
            seqs
        }));
    }
    let mut all: Vec<u64> = Vec::new();
    for thread in threads {
        let seqs = thread.join().unwrap();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "per-producer order");
        all.extend(seqs);
    }
    all.sort_unstable();
    let total = (PRODUCERS * PER_PRODUCER) as u64;
    assert_eq!(all, (1..=total).collect::<Vec<_>>());
    let stats = writer.journal().stats();
    let commits = stats
        .commits_count
        .load(std::sync::atomic::Ordering::Relaxed);
    let batch_max = stats
        .batch_records_max
        .load(std::sync::atomic::Ordering::Relaxed);
    println!("{total} records in {commits} group commits, largest batch {batch_max}");
    assert!(commits < total, "records must share commits under load");
    assert_eq!(writer.shutdown().unwrap(), total);
    let recovered = recover(&config, engine_config()).unwrap();
    assert_eq!(recovered.last_seq, total);
}

#[test]
fn a_spinning_pinned_writer_commits_the_same_journal_and_records_commit_times() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.writer_idle = WriterIdle::Spin;
    config.writer_core = Some(0);
    let commands = flow_commands(3, 3_000);
    let (_, writer) = open(&config, engine_config()).unwrap();
    let journal = writer.journal().clone();
    let started = std::time::Instant::now();
    let mut times = Vec::new();
    // In two halves with an idle pause between: the spinning writer must pick work up again.
    append_all(&journal, &commands[..1_500]);
    assert_eq!(journal.wait_durable(1_500, WAIT).unwrap(), 1_500);
    journal.drain_commit_times(&mut times);
    std::thread::sleep(Duration::from_millis(20));
    append_all(&journal, &commands[1_500..]);
    assert_eq!(journal.wait_durable(3_000, WAIT).unwrap(), 3_000);
    journal.drain_commit_times(&mut times);
    // Every commit is recorded once, in order, ending at the durable sequence, at times after
    // the start and in order.
    assert!(!times.is_empty());
    assert!(
        times
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
    assert_eq!(times.last().unwrap().0, 3_000);
    assert!(times.iter().any(|&(seq, _)| seq == 1_500));
    assert!(times[0].1 >= started);
    let commits = journal
        .stats()
        .commits_count
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(times.len() as u64, commits);
    // Drained: nothing left until the next commit.
    let mut again = Vec::new();
    journal.drain_commit_times(&mut again);
    assert!(again.is_empty());
    // A spinning writer still drains and stops on shutdown.
    assert_eq!(writer.shutdown().unwrap(), 3_000);
    let recovered = recover(&config, engine_config()).unwrap();
    assert_eq!(recovered.last_seq, 3_000);
    assert_eq!(
        recovered.engine.snapshot().unwrap(),
        reference_engine(&commands).snapshot().unwrap()
    );
}

#[test]
fn commit_times_keep_only_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let commands = flow_commands(4, 200);
    let (_, writer) = open(&config, engine_config()).unwrap();
    let journal = writer.journal().clone();
    let total = COMMIT_TIMES_MAX as u64 + 100;
    // One record per commit: wait for each before the next.
    for seq in 1..=total {
        journal
            .append(&commands[seq as usize % commands.len()])
            .unwrap();
        assert_eq!(journal.wait_durable(seq, WAIT).unwrap(), seq);
    }
    let mut times = Vec::new();
    journal.drain_commit_times(&mut times);
    assert_eq!(times.len(), COMMIT_TIMES_MAX);
    assert_eq!(times[0].0, total - COMMIT_TIMES_MAX as u64 + 1);
    assert_eq!(times.last().unwrap().0, total);
    writer.shutdown().unwrap();
}

/// Offset of the end of the last record in the newest segment.
fn tail_of(dir: &std::path::Path) -> (std::path::PathBuf, usize, u64) {
    let (_, path) = list_segments(dir).unwrap().pop().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let mut offset = peregrine_persist::segment::SEGMENT_HEADER_BYTES;
    let mut last = 0;
    while let Parsed::Record {
        seq, record_bytes, ..
    } = record::parse(&bytes[offset..])
    {
        offset += record_bytes;
        last = seq;
    }
    (path, offset, last)
}

#[test]
fn torn_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let commands = flow_commands(3, 500);
    let (_, writer) = open(&config, engine_config()).unwrap();
    append_all(writer.journal(), &commands);
    assert_eq!(writer.shutdown().unwrap(), 500);
    let (path, offset, last) = tail_of(dir.path());
    assert_eq!(last, 500);
    // A record for 501 cut in the middle, as a crash during its write leaves it.
    let mut framed = Vec::new();
    record::encode(&mut framed, 501, 0, &[7_u8; 100]);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&framed[..60], offset as u64).unwrap();
    drop(file);
    let recovered = recover(&config, engine_config()).unwrap();
    assert_eq!(recovered.last_seq, 500);
    let torn = recovered
        .report
        .torn_tail
        .clone()
        .expect("torn tail reported");
    println!("torn tail: {torn:?}");
    assert_eq!(torn.path, path);
    assert_eq!(torn.offset, offset as u64);
    assert!(torn.zeroed_bytes >= 60);
    // Garbage instead of a record is a torn tail too.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(b"\xde\xad\xbe\xef garbage", offset as u64)
        .unwrap();
    drop(file);
    let (recovered, writer) = open(&config, engine_config()).unwrap();
    assert!(recovered.report.torn_tail.is_some());
    // Appends continue where the valid data ended.
    append_all(writer.journal(), &commands[..10]);
    assert_eq!(writer.shutdown().unwrap(), 510);
    let recovered = recover(&config, engine_config()).unwrap();
    assert_eq!(recovered.last_seq, 510);
    assert!(recovered.report.torn_tail.is_none());
}

#[test]
fn corruption_before_the_tail_is_refused_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.segment_bytes = 1 << 20;
    let commands = flow_commands(4, 400);
    let (_, writer) = open(&config, engine_config()).unwrap();
    append_all(writer.journal(), &commands);
    writer.shutdown().unwrap();
    let (_, path) = list_segments(dir.path()).unwrap().pop().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // Find record 200 and flip one payload byte.
    let mut offset = peregrine_persist::segment::SEGMENT_HEADER_BYTES;
    loop {
        let Parsed::Record {
            seq, record_bytes, ..
        } = record::parse(&bytes[offset..])
        else {
            panic!("record missing")
        };
        if seq == 200 {
            break;
        }
        offset += record_bytes;
    }
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[bytes[offset + 20] ^ 0xFF], offset as u64 + 20)
        .unwrap();
    drop(file);
    let error = recover(&config, engine_config()).unwrap_err();
    let message = error.to_string();
    println!("{message}");
    match &error {
        RecoveryError::Corrupt {
            path: bad,
            offset: at,
            ..
        } => {
            assert_eq!(bad, &path);
            assert_eq!(*at, offset as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(&format!("byte {offset}")), "{message}");
}

#[test]
fn snapshot_plus_tail_equals_the_uninterrupted_engine() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.snapshot_every_commands = 700;
    config.snapshots_kept = 2;
    let commands = flow_commands(5, 5_000);
    let (recovered, writer) = open(&config, engine_config()).unwrap();
    let mut engine = recovered.engine;
    let journal = writer.journal().clone();
    let mut snapshotter = Snapshotter::start(&config, journal.clone(), 0);
    let mut events: Vec<Event> = Vec::new();
    for command in &commands {
        let seq = loop {
            match journal.append(command) {
                Ok(seq) => break seq,
                Err(JournalError::Busy { .. }) => std::thread::yield_now(),
                Err(other) => panic!("{other}"),
            }
        };
        engine.apply(command, &mut events);
        events.clear();
        if snapshotter.maybe_take(&engine, seq).unwrap().is_some() {
            wait_written(&snapshotter, seq);
        }
    }
    let pauses = snapshotter.finish().unwrap();
    println!(
        "snapshot pauses: {} taken, max {} us, mean {} us",
        pauses.count,
        pauses.max_ns / 1_000,
        pauses.total_ns / pauses.count.max(1) / 1_000
    );
    assert_eq!(pauses.count, 5_000 / 700);
    assert_eq!(writer.shutdown().unwrap(), 5_000);
    let snapshots = list_snapshots(dir.path()).unwrap();
    assert_eq!(snapshots.len(), 2, "retention keeps two");
    let recovered = recover(&config, engine_config()).unwrap();
    let (_, snapshot_seq) = recovered.report.snapshot.clone().expect("snapshot used");
    assert_eq!(snapshot_seq, snapshots[1].0);
    assert_eq!(recovered.report.replayed_count, 5_000 - snapshot_seq);
    let reference = reference_engine(&commands);
    assert_eq!(
        recovered.engine.snapshot().unwrap(),
        reference.snapshot().unwrap()
    );
    assert_eq!(engine.snapshot().unwrap(), reference.snapshot().unwrap());
    recovered.engine.audit().unwrap();
    // A damaged newest snapshot falls back to the older one (its segments were retained).
    std::fs::write(&snapshots[1].1, b"not a snapshot").unwrap();
    let recovered = recover(&config, engine_config()).unwrap();
    assert_eq!(recovered.report.snapshot.unwrap().1, snapshots[0].0);
    assert_eq!(recovered.report.snapshots_skipped.len(), 1);
    assert_eq!(
        recovered.engine.snapshot().unwrap(),
        reference.snapshot().unwrap()
    );
}

#[test]
fn retention_deletes_only_covered_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.snapshot_every_commands = 1_500;
    config.snapshots_kept = 1;
    let commands = flow_commands(6, 6_000);
    let (recovered, writer) = open(&config, engine_config()).unwrap();
    let mut engine = recovered.engine;
    let journal = writer.journal().clone();
    let mut snapshotter = Snapshotter::start(&config, journal.clone(), 0);
    let mut events: Vec<Event> = Vec::new();
    for command in &commands {
        let seq = loop {
            match journal.append(command) {
                Ok(seq) => break seq,
                Err(JournalError::Busy { .. }) => std::thread::yield_now(),
                Err(other) => panic!("{other}"),
            }
        };
        engine.apply(command, &mut events);
        events.clear();
        if snapshotter.maybe_take(&engine, seq).unwrap().is_some() {
            wait_written(&snapshotter, seq);
        }
    }
    snapshotter.finish().unwrap();
    writer.shutdown().unwrap();
    let snapshots = list_snapshots(dir.path()).unwrap();
    assert_eq!(snapshots.len(), 1);
    let snapshot_seq = snapshots[0].0;
    let segments = list_segments(dir.path()).unwrap();
    assert!(segments[0].0 > 1, "old segments were deleted");
    // The oldest remaining segment still holds the record right after the snapshot.
    assert!(
        segments[0].0 <= snapshot_seq + 1,
        "{segments:?} vs {snapshot_seq}"
    );
    let recovered = recover(&config, engine_config()).unwrap();
    assert_eq!(recovered.last_seq, 6_000);
    assert_eq!(
        recovered.engine.snapshot().unwrap(),
        reference_engine(&commands).snapshot().unwrap()
    );
}

#[test]
fn a_full_queue_returns_busy() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.queue_bytes = 4_096;
    let commands = flow_commands(7, 100);
    let (_, writer) = open(&config, engine_config()).unwrap();
    let journal = writer.journal();
    let mut accepted = Vec::new();
    let mut busy = 0_u64;
    // Bounded: a fixed number of attempts, far faster than the device commits.
    for i in 0..20_000 {
        match journal.append(&commands[i % commands.len()]) {
            Ok(seq) => accepted.push(seq),
            Err(JournalError::Busy {
                queued_bytes,
                queue_bytes,
            }) => {
                assert_eq!(queue_bytes, 4_096);
                assert!(queued_bytes <= queue_bytes);
                busy += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    println!("{} accepted, {busy} busy", accepted.len());
    assert!(busy > 0, "a 4 KiB queue must fill");
    assert_eq!(
        accepted,
        (1..=accepted.len() as u64).collect::<Vec<_>>(),
        "busy never consumes a sequence"
    );
    let last = accepted.len() as u64;
    assert_eq!(writer.shutdown().unwrap(), last);
    assert_eq!(recover(&config, engine_config()).unwrap().last_seq, last);
}

#[test]
fn a_missing_segment_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let commands = flow_commands(8, 3_000);
    let (_, writer) = open(&config, engine_config()).unwrap();
    append_all(writer.journal(), &commands);
    writer.shutdown().unwrap();
    let segments = list_segments(dir.path()).unwrap();
    assert!(segments.len() >= 3);
    std::fs::remove_file(&segments[1].1).unwrap();
    let error = recover(&config, engine_config()).unwrap_err();
    assert!(matches!(error, RecoveryError::Gap { .. }), "{error:?}");
}

#[test]
fn ack_modes_gate_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    let commands = flow_commands(9, 10);
    let (_, writer) = open(&config, engine_config()).unwrap();
    let journal = writer.journal();
    assert_eq!(journal.ack_mode(), peregrine_persist::AckMode::Durable);
    let seq = journal.append(&commands[0]).unwrap();
    // Durable: ackable exactly when the record is durable.
    assert_eq!(journal.is_ackable(seq), journal.durable_seq() >= seq);
    assert!(journal.wait_durable(seq, WAIT).unwrap() >= seq);
    assert!(journal.is_ackable(seq));
    writer.shutdown().unwrap();

    config.ack_mode = peregrine_persist::AckMode::Fast;
    let (_, writer) = open(&config, engine_config()).unwrap();
    let journal = writer.journal();
    let seq = journal.append(&commands[1]).unwrap();
    assert_eq!(seq, 2);
    // Fast: ackable at once, durable later all the same.
    assert!(journal.is_ackable(seq));
    assert!(journal.wait_durable(seq, WAIT).unwrap() >= seq);
    assert_eq!(writer.shutdown().unwrap(), 2);
    // A closed journal refuses appends with a typed error.
    let (_, writer) = open(&config, engine_config()).unwrap();
    let journal = writer.journal().clone();
    writer.shutdown().unwrap();
    assert!(matches!(
        journal.append(&commands[2]),
        Err(JournalError::Closed)
    ));
}

/// Random damage (flipped bytes, garbage runs, truncation) anywhere in a segment or snapshot
/// never panics recovery: it either recovers a prefix (reporting a torn tail) or refuses with a
/// typed error.
#[test]
fn random_damage_never_panics_recovery() {
    let source = tempfile::tempdir().unwrap();
    let mut config = small_config(source.path());
    config.snapshot_every_commands = 150;
    config.snapshots_kept = 1;
    config.delete_covered_segments = false;
    let commands = flow_commands(10, 400);
    let (recovered, writer) = open(&config, engine_config()).unwrap();
    let mut engine = recovered.engine;
    let journal = writer.journal().clone();
    let mut snapshotter = Snapshotter::start(&config, journal.clone(), 0);
    let mut events: Vec<Event> = Vec::new();
    for command in &commands {
        let seq = journal.append(command).unwrap();
        engine.apply(command, &mut events);
        events.clear();
        if snapshotter.maybe_take(&engine, seq).unwrap().is_some() {
            wait_written(&snapshotter, seq);
        }
    }
    snapshotter.finish().unwrap();
    writer.shutdown().unwrap();
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(source.path())
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .filter(|(name, _)| name.ends_with(".journal") || name.ends_with(".snapshot"))
        .collect();
    assert!(files.iter().any(|(name, _)| name.ends_with(".snapshot")));
    let mut rng = peregrine_hotpath::sim::Rng::new(99);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..150 {
        let dir = tempfile::tempdir().unwrap();
        let victim = rng.below(files.len() as u64) as usize;
        for (index, (name, bytes)) in files.iter().enumerate() {
            let mut bytes = bytes.clone();
            if index == victim {
                // Damage within the written part, where it matters.
                let used = bytes.iter().rposition(|&b| b != 0).unwrap_or(0) + 1;
                let at = rng.below(used as u64) as usize;
                match rng.below(3) {
                    0 => bytes[at] ^= 1 << rng.below(8),
                    1 => {
                        let end = (at + 1 + rng.below(64) as usize).min(bytes.len());
                        for byte in &mut bytes[at..end] {
                            *byte = rng.next_u64() as u8;
                        }
                    }
                    _ => bytes.truncate(at),
                }
            }
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let mut damaged = config.clone();
        damaged.dir = dir.path().to_path_buf();
        match recover(&damaged, engine_config()) {
            Ok(recovered) => {
                assert!(recovered.last_seq <= 400);
                recovered.engine.audit().unwrap();
                // What it recovered is exactly a prefix of what was journaled.
                let prefix = &commands[..recovered.last_seq as usize];
                assert_eq!(
                    recovered.engine.snapshot().unwrap(),
                    reference_engine(prefix).snapshot().unwrap()
                );
                ok += 1;
            }
            Err(error) => {
                assert!(!error.to_string().is_empty());
                refused += 1;
            }
        }
    }
    println!("random damage: {ok} recovered, {refused} refused");
}

#[test]
fn a_durable_waker_is_called_after_every_commit() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let commands = flow_commands(5, 100);
    let (_, writer) = open(&config, engine_config()).unwrap();
    let journal = writer.journal().clone();
    // The waker sees the watermark already moved: it records what it saw.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicU64::new(0));
    let (waker_journal, waker_seen, waker_calls) =
        (journal.clone(), Arc::clone(&seen), Arc::clone(&calls));
    assert!(
        journal
            .set_durable_waker(Box::new(move || {
                waker_calls.fetch_add(1, Ordering::Relaxed);
                waker_seen.lock().unwrap().push(waker_journal.durable_seq());
            }))
            .is_ok()
    );
    assert!(journal.set_durable_waker(Box::new(|| {})).is_err());
    for (index, command) in commands.iter().enumerate() {
        let seq = journal.append(command).unwrap();
        assert_eq!(seq, index as u64 + 1);
        assert_eq!(journal.wait_durable(seq, WAIT).unwrap(), seq);
    }
    // Wakes run after the waiters are released: wait for the last one.
    let deadline = std::time::Instant::now() + WAIT;
    while seen.lock().unwrap().last() != Some(&100) {
        assert!(
            std::time::Instant::now() < deadline,
            "no wake for the last commit"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let seen = seen.lock().unwrap().clone();
    let commits = journal
        .stats()
        .commits_count
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(calls.load(Ordering::Relaxed), commits);
    // One record per commit here (each waited for): a wake per record, in order.
    assert_eq!(seen, (1..=100).collect::<Vec<u64>>());
    writer.shutdown().unwrap();
}

/// A failed snapshot write (here the temporary file cannot be created: a directory sits at its
/// path, as a full disk would refuse it) is retried after a back-off, and a success clears the
/// failure: snapshots never stay disabled until a restart.
#[test]
fn a_failed_snapshot_write_is_retried_and_cleared_by_a_success() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.snapshot_every_commands = 10;
    let commands = flow_commands(11, 20);
    let (recovered, writer) = open(&config, engine_config()).unwrap();
    let mut engine = recovered.engine;
    let journal = writer.journal().clone();
    let mut snapshotter = Snapshotter::start(&config, journal.clone(), 0);
    let blocker = dir.path().join("00000000000000000010.snapshot-tmp");
    std::fs::create_dir(&blocker).unwrap();
    let mut events: Vec<Event> = Vec::new();
    for command in &commands[..10] {
        journal.append(command).unwrap();
        engine.apply(command, &mut events);
    }
    assert!(snapshotter.maybe_take(&engine, 10).unwrap().is_some());
    let deadline = std::time::Instant::now() + WAIT;
    while snapshotter.health().failures_total == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never failed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let failed = snapshotter.health();
    assert_eq!(failed.consecutive_failures, 1);
    assert!(failed.last_failure.is_some());
    for command in &commands[10..] {
        journal.append(command).unwrap();
        engine.apply(command, &mut events);
    }
    // Due by count, but the back-off holds the next attempt off for a while.
    assert!(!snapshotter.is_due(20), "retried without a back-off");
    std::thread::sleep(failed.retry_backoff() + Duration::from_millis(50));
    assert!(snapshotter.is_due(20));
    snapshotter.maybe_take(&engine, 20).unwrap().unwrap();
    // Not `wait_written`: the old failure stands until this write succeeds.
    while snapshotter.written_seq() < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the retry was not written"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let health = snapshotter.health();
    assert_eq!(health.last_failure, None);
    assert_eq!((health.consecutive_failures, health.failures_total), (0, 1));
    assert!(snapshotter.failure().is_none());
    snapshotter.finish().unwrap();
    writer.shutdown().unwrap();
    std::fs::remove_dir(&blocker).unwrap();
    let recovered = recover(&config, engine_config()).unwrap();
    assert_eq!(recovered.report.snapshot.map(|(_, seq)| seq), Some(20));
}

/// A torn final record whose header was lost (the rest of it, or stray bytes, after an
/// all-zero header) is a torn tail: recovery truncates and reports it with its offset, and the
/// writer then appends there. It used to block every start while `replay` accepted it.
#[test]
fn bytes_after_a_lost_record_header_are_a_torn_tail_the_writer_can_append_after() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let commands = flow_commands(12, 300);
    let (_, writer) = open(&config, engine_config()).unwrap();
    append_all(writer.journal(), &commands[..200]);
    writer.shutdown().unwrap();
    let (path, offset, last) = tail_of(dir.path());
    assert_eq!(last, 200);
    // Record 201 with its header lost: only its payload reached the disk.
    let mut framed = Vec::new();
    record::encode(&mut framed, 201, 0, &[7_u8; 100]);
    let header_bytes = record::HEADER_BYTES;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&framed[header_bytes..], (offset + header_bytes) as u64)
        .unwrap();
    drop(file);
    let (recovered, writer) = open(&config, engine_config()).unwrap();
    let torn = recovered
        .report
        .torn_tail
        .clone()
        .expect("torn tail reported");
    assert_eq!((torn.path.clone(), torn.offset), (path, offset as u64));
    assert!(torn.zeroed_bytes >= 100, "{torn:?}");
    append_all(writer.journal(), &commands[200..]);
    assert_eq!(writer.shutdown().unwrap(), 300);
    assert_eq!(recover(&config, engine_config()).unwrap().last_seq, 300);
}

/// A newest segment shorter than a segment (cut at the end of its data, as a copy or a full
/// disk leaves it) is extended with zeros and reported; the writer appends to it.
#[test]
fn a_short_newest_segment_is_extended_and_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let commands = flow_commands(13, 200);
    let (_, writer) = open(&config, engine_config()).unwrap();
    append_all(writer.journal(), &commands[..100]);
    writer.shutdown().unwrap();
    let (path, offset, _) = tail_of(dir.path());
    // Cut mid-block, just after the data.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(offset as u64 + 40).unwrap();
    drop(file);
    let (recovered, writer) = open(&config, engine_config()).unwrap();
    assert_eq!(recovered.last_seq, 100);
    assert_eq!(
        recovered.report.segment_extended,
        Some((path.clone(), offset as u64 + 40, config.segment_bytes))
    );
    append_all(writer.journal(), &commands[100..]);
    assert_eq!(writer.shutdown().unwrap(), 200);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        config.segment_bytes
    );
    assert_eq!(recover(&config, engine_config()).unwrap().last_seq, 200);
}

/// A snapshot whose capacities exceed the configured ones (a damaged but checksum-valid one
/// drove a start to 8 GB) is refused before anything is allocated for it, and skipped with the
/// reason; the journal is replayed instead.
#[test]
fn a_snapshot_larger_than_the_configured_engine_is_skipped_unallocated() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.snapshot_every_commands = 100;
    let commands = flow_commands(14, 150);
    let (_, writer) = open(&config, engine_config()).unwrap();
    let journal = writer.journal().clone();
    // The engine that snapshots claims a much larger order capacity than configured.
    let mut engine = peregrine_hotpath::Engine::new(peregrine_hotpath::EngineConfig {
        max_orders: engine_config().max_orders * 1_024,
        ..engine_config()
    })
    .unwrap();
    let mut snapshotter = Snapshotter::start(&config, journal.clone(), 0);
    let mut events: Vec<Event> = Vec::new();
    for command in &commands {
        let seq = journal.append(command).unwrap();
        engine.apply(command, &mut events);
        if snapshotter.maybe_take(&engine, seq).unwrap().is_some() {
            wait_written(&snapshotter, seq);
        }
    }
    snapshotter.finish().unwrap();
    writer.shutdown().unwrap();
    let recovered = recover(&config, engine_config()).unwrap();
    assert_eq!(recovered.report.snapshot, None);
    let (_, reason) = &recovered.report.snapshots_skipped[0];
    assert!(reason.contains("max_orders"), "{reason}");
    assert_eq!(recovered.report.replayed_count, 150);
    assert_eq!(recovered.engine.config(), &engine_config());
}

/// Acknowledged commands lost from the journal's end (a zeroed last page, a deleted segment)
/// used to go unnoticed, and their sequences and order ids were reused. The durable tip,
/// written beside the segments, shows the loss: the start is refused naming both ends, unless
/// the operator accepts it, after which the tip follows the journal.
#[test]
fn a_journal_that_lost_its_durable_end_is_refused_unless_the_loss_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.segment_bytes = 1 << 20;
    let commands = flow_commands(15, 300);
    let (_, writer) = open(&config, engine_config()).unwrap();
    append_all(writer.journal(), &commands);
    assert_eq!(writer.shutdown().unwrap(), 300);
    assert_eq!(
        peregrine_persist::tip::read_tip(dir.path()).unwrap(),
        Some(300)
    );

    // Zero everything from record 251 on, as a lost page write would.
    let (path, _, _) = tail_of(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let mut offset = peregrine_persist::segment::SEGMENT_HEADER_BYTES;
    for _ in 0..250 {
        offset += record::encoded_record_bytes(&bytes[offset..]);
    }
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&vec![0_u8; bytes.len() - offset], offset as u64)
        .unwrap();
    drop(file);
    let error = recover(&config, engine_config()).unwrap_err();
    assert!(
        matches!(
            error,
            RecoveryError::LostTail {
                tip: 300,
                journal_end: 250,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("50 acknowledged commands are lost"),
        "{error}"
    );

    config.accept_lost_tail = true;
    let recovered = recover(&config, engine_config()).unwrap();
    assert_eq!(recovered.last_seq, 250);
    assert_eq!(recovered.report.lost_tail, Some((300, 250)));
    // Accepted once: the tip follows the journal, and later starts need no flag.
    config.accept_lost_tail = false;
    assert_eq!(recover(&config, engine_config()).unwrap().last_seq, 250);

    // The only segment deleted: everything is lost, and that is refused too.
    let (_, writer) = open(&config, engine_config()).unwrap();
    append_all(writer.journal(), &commands[..10]);
    writer.shutdown().unwrap();
    for (_, path) in list_segments(dir.path()).unwrap() {
        std::fs::remove_file(path).unwrap();
    }
    let error = recover(&config, engine_config()).unwrap_err();
    assert!(
        matches!(
            error,
            RecoveryError::LostTail {
                tip: 260,
                journal_end: 0,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn pre_sequenced_records_refuse_gaps_and_replays_and_copy_the_journal() {
    let source_dir = tempfile::tempdir().unwrap();
    let copy_dir = tempfile::tempdir().unwrap();
    let commands = flow_commands(5, 500);
    let (_, source) = open(&small_config(source_dir.path()), engine_config()).unwrap();
    append_all(source.journal(), &commands);
    source.shutdown().unwrap();

    let (_, copy) = open(&small_config(copy_dir.path()), engine_config()).unwrap();
    let journal = copy.journal();
    let mut tailer = peregrine_persist::follow::Tailer::new(
        source_dir.path(),
        1,
        peregrine_persist::follow::TornRecord::IsEnd,
    );
    let mut scratch = peregrine_persist::payload::Scratch::new();
    let mut copied = 0_u64;
    while let Some((seq, command)) = tailer.next(u64::MAX).unwrap() {
        peregrine_persist::payload::encode(&command, &mut scratch).unwrap();
        if seq == 10 {
            // A record two ahead is a gap, one already held is a replay: neither is appended.
            assert!(matches!(
                journal.append_sequenced(seq + 1, tailer.term(), &scratch),
                Err(JournalError::SequenceGap {
                    expected: 10,
                    got: 11
                })
            ));
            assert!(matches!(
                journal.append_sequenced(seq - 1, tailer.term(), &scratch),
                Err(JournalError::SequenceBehind {
                    expected: 10,
                    got: 9
                })
            ));
            assert_eq!(journal.appended_seq(), 9);
        }
        assert_eq!(
            journal
                .append_sequenced(seq, tailer.term(), &scratch)
                .unwrap(),
            seq
        );
        copied = seq;
    }
    assert_eq!(copied, commands.len() as u64);
    assert_eq!(copy.shutdown().unwrap(), copied);
    // The copy recovers to the same engine as the source.
    let source_engine = recover(&small_config(source_dir.path()), engine_config()).unwrap();
    let copy_engine = recover(&small_config(copy_dir.path()), engine_config()).unwrap();
    assert_eq!(copy_engine.last_seq, copied);
    assert_eq!(
        copy_engine.engine.snapshot().unwrap(),
        source_engine.engine.snapshot().unwrap()
    );
}
