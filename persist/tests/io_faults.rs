//! Disk and ring faults injected through the ring's fault seam ([`FaultPlan`]): a durable write
//! never returns while the kernel may still be writing from its buffer, rides out interrupted
//! and refused `io_uring_enter` calls, and reports failed completions; the journal writer turns
//! every failure into one its producers see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use common::{engine_config, flow_commands, reference_engine, small_config};
use peregrine_persist::io::{
    AlignedBuf, BLOCK_BYTES, CompletionFault, EnterFault, EnterFaultTiming, FaultPlan, SyncMethod,
    Uring, WriteError, fallocate, open_direct, zero_fill,
};
use peregrine_persist::{Journal, JournalError, JournalWriter, recover};

/// Scratch file size: room for every test write at its offset.
const FILE_BYTES: u64 = 64 << 10;
/// Where the test writes go: not at 0, so a write landing at the wrong offset shows.
const WRITE_OFFSET: u64 = 2 * BLOCK_BYTES as u64;
/// Bound on a test's wait for the journal writer.
const WAIT: Duration = Duration::from_secs(10);

/// Every way the writer drives the ring: each sync method, sleeping or spinning for completions.
const CASES: [(SyncMethod, bool); 4] = [
    (SyncMethod::WriteDsync, false),
    (SyncMethod::WriteThenFdatasync, false),
    (SyncMethod::WriteDsync, true),
    (SyncMethod::WriteThenFdatasync, true),
];

/// A preallocated, zero-filled `O_DIRECT` file, as the journal writes to.
struct Scratch {
    _dir: tempfile::TempDir,
    path: PathBuf,
    file: File,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scratch");
    let file = open_direct(&path, true).unwrap();
    fallocate(&file, FILE_BYTES).unwrap();
    zero_fill(&file, 0, FILE_BYTES).unwrap();
    Scratch {
        _dir: dir,
        path,
        file,
    }
}

/// `blocks` blocks of a pattern no zero-filled file holds by chance.
fn pattern(blocks: usize, seed: u8) -> AlignedBuf {
    let mut buf = AlignedBuf::new(blocks * BLOCK_BYTES);
    for (index, byte) in buf.bytes_mut().iter_mut().enumerate() {
        *byte = (index as u8).wrapping_mul(31) ^ seed | 1;
    }
    buf
}

/// The file's bytes at `offset`, read through the page cache (which `O_DIRECT` writes keep
/// coherent), so what the kernel wrote shows whatever the ring reported.
fn on_disk(path: &PathBuf, offset: u64, len: usize) -> Vec<u8> {
    let all = std::fs::read(path).unwrap();
    all[offset as usize..offset as usize + len].to_vec()
}

fn ring_with(spin: bool, plan: FaultPlan) -> Uring {
    Uring::with_faults(spin, Some(plan)).unwrap()
}

fn enter_fault(errno: i32, timing: EnterFaultTiming, fail_count: u32) -> FaultPlan {
    FaultPlan::new().with_enter_fault(EnterFault {
        errno,
        timing,
        skip_count: 0,
        fail_count,
    })
}

/// Issue #11 item 6, first half: a signal interrupting the wait after the SQEs were submitted
/// used to return `EINTR` with the write still in flight. Now the wait is retried and the write
/// completes.
#[test]
fn an_interrupted_wait_is_retried_and_the_write_lands() {
    for (index, (method, spin)) in CASES.into_iter().enumerate() {
        let scratch = scratch();
        let mut ring = ring_with(
            spin,
            enter_fault(libc::EINTR, EnterFaultTiming::AfterCall, 1),
        );
        let buf = pattern(2, index as u8);
        let result = ring.write_durable(&scratch.file, buf.bytes(), WRITE_OFFSET, method);
        assert!(result.is_ok(), "{method:?} spin {spin}: {result:?}");
        assert_eq!(
            ring.faults().unwrap().injected_count(),
            1,
            "the fault fired"
        );
        assert_eq!(ring.in_flight_count(), 0);
        assert_eq!(
            on_disk(&scratch.path, WRITE_OFFSET, buf.capacity_bytes()),
            buf.bytes()
        );
    }
}

/// `io_uring_enter` refusing the submission (the SQEs stay queued) with an error worth
/// retrying: retried, and the write lands. Before, the call returned the error with the SQEs
/// still queued, for whichever later call to submit them.
#[test]
fn a_refused_submission_is_retried_and_the_write_lands() {
    for errno in [libc::EINTR, libc::EAGAIN, libc::EBUSY] {
        for (method, spin) in CASES {
            let scratch = scratch();
            let plan = enter_fault(errno, EnterFaultTiming::InsteadOfCall, 3);
            let mut ring = ring_with(spin, plan);
            let buf = pattern(1, errno as u8);
            let result = ring.write_durable(&scratch.file, buf.bytes(), WRITE_OFFSET, method);
            assert!(
                result.is_ok(),
                "errno {errno} {method:?} spin {spin}: {result:?}"
            );
            assert_eq!(ring.faults().unwrap().injected_count(), 3);
            assert_eq!(ring.in_flight_count(), 0);
            assert_eq!(
                on_disk(&scratch.path, WRITE_OFFSET, buf.capacity_bytes()),
                buf.bytes()
            );
        }
    }
}

/// Issue #11 item 6, second half: `io_uring_enter` failing for good after it submitted. The
/// call reports the failure only once the kernel completed what it submitted (its completions
/// were reaped: nothing in flight, and the bytes are in the file), so the caller may reuse its
/// buffer. In spin mode the fault hits the non-waiting submit, while the write is surely still
/// running: the old code returned right there.
#[test]
fn a_persistent_enter_error_returns_only_after_the_kernel_completed() {
    for (index, (method, spin)) in CASES.into_iter().enumerate() {
        let scratch = scratch();
        let plan = enter_fault(libc::EIO, EnterFaultTiming::AfterCall, u32::MAX);
        let mut ring = ring_with(spin, plan);
        let buf = pattern(4, index as u8);
        let result = ring.write_durable(&scratch.file, buf.bytes(), WRITE_OFFSET, method);
        assert_eq!(
            ring.in_flight_count(),
            0,
            "{method:?} spin {spin}: returned with operations in flight ({result:?})"
        );
        match result {
            Err(WriteError::Enter(source)) => assert_eq!(source.raw_os_error(), Some(libc::EIO)),
            other => panic!("{method:?} spin {spin}: {other:?}"),
        }
        assert_eq!(
            on_disk(&scratch.path, WRITE_OFFSET, buf.capacity_bytes()),
            buf.bytes(),
            "the kernel finished the write before the call returned"
        );
    }
}

/// A signal storm: every `io_uring_enter` reports `EINTR` after it ran. Each call still
/// submitted or waited, so the write completes and the call returns `Ok` with it durable;
/// before, the first `EINTR` was returned with the write in flight.
#[test]
fn endless_interrupts_do_not_stop_a_write_the_kernel_completes() {
    for (index, (method, spin)) in CASES.into_iter().enumerate() {
        let scratch = scratch();
        let plan = enter_fault(libc::EINTR, EnterFaultTiming::AfterCall, u32::MAX);
        let mut ring = ring_with(spin, plan);
        let buf = pattern(1, 40 + index as u8);
        let result = ring.write_durable(&scratch.file, buf.bytes(), WRITE_OFFSET, method);
        assert!(result.is_ok(), "{method:?} spin {spin}: {result:?}");
        assert!(ring.faults().unwrap().injected_count() >= 1);
        assert_eq!(ring.in_flight_count(), 0);
        assert_eq!(
            on_disk(&scratch.path, WRITE_OFFSET, buf.capacity_bytes()),
            buf.bytes()
        );
    }
}

/// A completion reporting `-EIO` (for the write, or for its linked sync) is an error, with
/// nothing in flight.
#[test]
fn a_failed_completion_is_an_error_with_nothing_in_flight() {
    let faults = [
        (
            CompletionFault::WriteErrno(libc::EIO),
            SyncMethod::WriteDsync,
        ),
        (
            CompletionFault::WriteErrno(libc::EIO),
            SyncMethod::WriteThenFdatasync,
        ),
        (
            CompletionFault::SyncErrno(libc::EIO),
            SyncMethod::WriteThenFdatasync,
        ),
    ];
    for (fault, method) in faults {
        for spin in [false, true] {
            let scratch = scratch();
            let mut ring = ring_with(spin, FaultPlan::new().with_completion_fault(fault));
            let buf = pattern(1, 3);
            let result = ring.write_durable(&scratch.file, buf.bytes(), WRITE_OFFSET, method);
            assert_eq!(
                ring.faults().unwrap().injected_count(),
                1,
                "{fault:?} fired"
            );
            assert_eq!(ring.in_flight_count(), 0);
            match result {
                Err(WriteError::Write(source)) => {
                    assert_eq!(source.raw_os_error(), Some(libc::EIO));
                }
                other => panic!("{fault:?} {method:?} spin {spin}: {other:?}"),
            }
        }
    }
}

/// A short write is resubmitted from where it stopped, and the whole write lands.
#[test]
fn a_short_write_is_resubmitted() {
    for (method, spin) in CASES {
        let scratch = scratch();
        let fault = CompletionFault::WriteShort {
            bytes: BLOCK_BYTES as u32,
        };
        let mut ring = ring_with(spin, FaultPlan::new().with_completion_fault(fault));
        let buf = pattern(3, 9);
        let result = ring.write_durable(&scratch.file, buf.bytes(), WRITE_OFFSET, method);
        assert!(result.is_ok(), "{method:?} spin {spin}: {result:?}");
        assert_eq!(ring.faults().unwrap().injected_count(), 1);
        assert_eq!(
            on_disk(&scratch.path, WRITE_OFFSET, buf.capacity_bytes()),
            buf.bytes()
        );
    }
}

/// Appends every command, waiting out back-pressure; returns the last sequence.
fn append_all(journal: &Journal, commands: &[peregrine_hotpath::Envelope]) -> u64 {
    let mut last = 0;
    for command in commands {
        // Bounded by the writer: each `Busy` waits for a commit or a millisecond.
        loop {
            match journal.append(command) {
                Ok(seq) => {
                    last = seq;
                    break;
                }
                Err(JournalError::Busy { .. }) => {
                    journal
                        .wait_durable_after(journal.durable_seq(), Duration::from_millis(1))
                        .unwrap();
                }
                Err(other) => panic!("{other}"),
            }
        }
    }
    last
}

/// Starts a writer on a fresh journal in `dir` whose ring injects `plan`.
fn faulty_writer(dir: &std::path::Path, plan: FaultPlan) -> JournalWriter {
    let config = small_config(dir);
    let recovered = recover(&config, engine_config()).unwrap();
    JournalWriter::start_with_faults(&config, &recovered.tail, plan).unwrap()
}

/// The journal rides out an interrupted wait: every command becomes durable and recovers.
#[test]
fn the_journal_rides_out_an_interrupted_wait() {
    let dir = tempfile::tempdir().unwrap();
    let plan = enter_fault(libc::EINTR, EnterFaultTiming::AfterCall, 1);
    let writer = faulty_writer(dir.path(), plan);
    let commands = flow_commands(11, 300);
    let last = append_all(writer.journal(), &commands);
    assert_eq!(writer.journal().wait_durable(last, WAIT).unwrap(), last);
    assert_eq!(writer.shutdown().unwrap(), last);
    let recovered = recover(&small_config(dir.path()), engine_config()).unwrap();
    assert_eq!(recovered.last_seq, last);
    assert_eq!(
        recovered.engine.snapshot().unwrap(),
        reference_engine(&commands).snapshot().unwrap()
    );
}

/// After a write fails, producers are told: waiting fails, appending is refused, nothing more
/// becomes durable, and shutdown reports the failure.
fn assert_writer_failed(writer: JournalWriter) {
    let journal = writer.journal().clone();
    let seq = append_all(&journal, &flow_commands(12, 1));
    match journal.wait_durable(seq, WAIT) {
        Err(JournalError::WriterFailed(_)) => {}
        other => panic!("the writer went on: {other:?}"),
    }
    assert!(journal.failed().is_some());
    match journal.append(&flow_commands(12, 2)[1]) {
        Err(JournalError::WriterFailed(_)) => {}
        other => panic!("an append was accepted after the failure: {other:?}"),
    }
    assert_eq!(journal.durable_seq(), 0);
    assert!(matches!(
        writer.shutdown(),
        Err(JournalError::WriterFailed(_))
    ));
}

/// A persistent `io_uring_enter` error after submission stops the journal.
#[test]
fn the_journal_stops_on_a_persistent_enter_error() {
    let dir = tempfile::tempdir().unwrap();
    let plan = enter_fault(libc::EIO, EnterFaultTiming::AfterCall, u32::MAX);
    assert_writer_failed(faulty_writer(dir.path(), plan));
}

/// A write completing with `-EIO` stops the journal.
#[test]
fn the_journal_stops_on_a_failed_completion() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new().with_completion_fault(CompletionFault::WriteErrno(libc::EIO));
    assert_writer_failed(faulty_writer(dir.path(), plan));
}
