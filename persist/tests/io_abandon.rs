//! The one case where a durable write gives up with its operations in flight: `io_uring_enter`
//! failing for good before the kernel took the SQEs. The ring is abandoned (never entered
//! again) and every owner of the buffer the kernel may still read leaks it instead of freeing
//! it. A binary of its own: it counts frees through its global allocator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{engine_config, flow_commands, small_config};
use peregrine_persist::io::{
    AlignedBuf, BLOCK_BYTES, EnterFault, EnterFaultTiming, FaultPlan, SyncMethod, Uring,
    WriteError, fallocate, open_direct, zero_fill,
};
use peregrine_persist::{JournalError, JournalWriter, recover};

/// Frees of an allocation sized within `[WATCH_MIN_BYTES, WATCH_MAX_BYTES]` are counted.
struct CountingFrees;

static WATCH_MIN_BYTES: AtomicUsize = AtomicUsize::new(usize::MAX);
static WATCH_MAX_BYTES: AtomicUsize = AtomicUsize::new(0);
static WATCHED_FREES_COUNT: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the count on the side
// allocates nothing.
unsafe impl GlobalAlloc for CountingFrees {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let size = layout.size();
        if size >= WATCH_MIN_BYTES.load(Ordering::Relaxed)
            && size <= WATCH_MAX_BYTES.load(Ordering::Relaxed)
        {
            WATCHED_FREES_COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingFrees = CountingFrees;

/// The writer's queue bound in the writer test: a size no other allocation of the test has.
/// The writer's aligned buffer holds the queue plus two blocks, rounded up to a block, plus a
/// block of alignment slack: its allocation falls in `(QUEUE_BYTES + 2 blocks, + 4 blocks]`,
/// where the queue's own allocations (`QUEUE_BYTES` exactly) do not.
const QUEUE_BYTES: usize = 200_000;
/// Bound on a test's wait for the journal writer.
const WAIT: Duration = Duration::from_secs(10);

/// Every `io_uring_enter` fails with `errno` without entering the kernel.
fn refused_for_good(errno: i32) -> FaultPlan {
    FaultPlan::new().with_enter_fault(EnterFault {
        errno,
        timing: EnterFaultTiming::InsteadOfCall,
        skip_count: 0,
        fail_count: u32::MAX,
    })
}

/// `io_uring_enter` refusing every call, so the queued SQEs (pointing into the buffer) can be
/// neither submitted nor cancelled: the write is abandoned with them counted, the ring refuses
/// further writes without entering the kernel, and the file is untouched. `EIO` is given up on
/// at once; `EINTR` only after bounded retries.
#[test]
fn a_submission_refused_for_good_abandons_the_ring() {
    let cases = [
        (SyncMethod::WriteDsync, 1),
        (SyncMethod::WriteThenFdatasync, 2),
    ];
    for errno in [libc::EIO, libc::EINTR] {
        for (method, ops_count) in cases {
            for spin in [false, true] {
                let what = format!("errno {errno} {method:?} spin {spin}");
                abandon_once(errno, method, spin, ops_count, &what);
            }
        }
    }
}

fn abandon_once(errno: i32, method: SyncMethod, spin: bool, ops_count: u32, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scratch");
    let file = open_direct(&path, true).unwrap();
    fallocate(&file, 16 * BLOCK_BYTES as u64).unwrap();
    zero_fill(&file, 0, 16 * BLOCK_BYTES as u64).unwrap();
    let mut ring = Uring::with_faults(spin, Some(refused_for_good(errno))).unwrap();
    let mut buf = AlignedBuf::new(BLOCK_BYTES);
    buf.bytes_mut().fill(0xA5);
    match ring.write_durable(&file, buf.bytes(), 0, method) {
        Err(WriteError::Abandoned {
            in_flight_count,
            source,
        }) => {
            assert_eq!(in_flight_count, ops_count, "{what}");
            assert_eq!(source.raw_os_error(), Some(errno), "{what}");
        }
        other => panic!("{what}: {other:?}"),
    }
    assert!(ring.is_abandoned(), "{what}");
    assert_eq!(ring.in_flight_count(), ops_count, "{what}");
    let injected_count = ring.faults().unwrap().injected_count();
    if errno == libc::EIO {
        assert_eq!(
            injected_count, 1,
            "{what}: a persistent error is not retried"
        );
    } else {
        assert!(injected_count > 1, "{what}: an interrupt is retried first");
    }
    assert!(matches!(
        ring.write_durable(&file, buf.bytes(), 0, method),
        Err(WriteError::RingAbandoned)
    ));
    assert_eq!(
        ring.faults().unwrap().injected_count(),
        injected_count,
        "{what}: an abandoned ring never enters the kernel again"
    );
    assert!(std::fs::read(&path).unwrap().iter().all(|&byte| byte == 0));
    // What an owner of an abandoned write's buffer must do.
    std::mem::forget(buf);
}

/// Runs a writer on a fresh journal in a new directory with `faults`, appends one command and
/// waits for it; returns the wait's outcome and shutdown's.
fn one_commit(faults: Option<FaultPlan>) -> (Result<u64, JournalError>, Result<u64, JournalError>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.queue_bytes = QUEUE_BYTES;
    let recovered = recover(&config, engine_config()).unwrap();
    let command = flow_commands(21, 1).remove(0);
    let writer = match faults {
        Some(faults) => JournalWriter::start_with_faults(&config, &recovered.tail, faults),
        None => JournalWriter::start(&config, &recovered.tail),
    }
    .unwrap();
    let seq = writer.journal().append(&command).unwrap();
    let waited = writer.journal().wait_durable(seq, WAIT);
    (waited, writer.shutdown())
}

/// The journal writer whose write is abandoned stops, tells its producers why, and never frees
/// its aligned buffer (the allocator sees no free of that size), where a writer that simply
/// stops frees it.
#[test]
fn an_abandoned_write_stops_the_writer_and_leaks_its_buffer() {
    WATCH_MIN_BYTES.store(QUEUE_BYTES + 2 * BLOCK_BYTES + 1, Ordering::Relaxed);
    WATCH_MAX_BYTES.store(QUEUE_BYTES + 4 * BLOCK_BYTES, Ordering::Relaxed);
    // The control: a healthy writer frees its buffer at shutdown, so the count does see it.
    let (waited, shut) = one_commit(None);
    assert_eq!(waited.unwrap(), 1);
    assert_eq!(shut.unwrap(), 1);
    assert_eq!(
        WATCHED_FREES_COUNT.load(Ordering::Relaxed),
        1,
        "the buffer's free is seen"
    );

    WATCHED_FREES_COUNT.store(0, Ordering::Relaxed);
    let (waited, shut) = one_commit(Some(refused_for_good(libc::EIO)));
    match waited {
        Err(JournalError::WriterFailed(why)) => assert!(why.contains("abandoned"), "{why}"),
        other => panic!("the writer went on: {other:?}"),
    }
    assert!(matches!(shut, Err(JournalError::WriterFailed(_))));
    assert_eq!(
        WATCHED_FREES_COUNT.load(Ordering::Relaxed),
        0,
        "the buffer the kernel may still read was freed"
    );
}
