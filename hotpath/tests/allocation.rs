//! The engine allocates nothing in the steady state: after warm-up, applying a realistic flow
//! (new orders, cancels, replaces, IOC and market orders, trades, balance events) makes no heap
//! allocation. A counting global allocator proves it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code asserts by unwrapping.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_hotpath::*;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_trading_allocates_nothing() {
    let mut engine = Engine::new(EngineConfig {
        max_accounts: 1_000,
        max_currencies: 4,
        max_markets: 4,
        max_orders: 1 << 16,
        ..EngineConfig::default()
    })
    .unwrap();
    let mut flow = Flow::new(FlowParams {
        accounts: 1_000,
        markets: 2,
        tracked_orders: 5_000,
        ..FlowParams::default()
    });
    let mut events = Vec::with_capacity(1 << 16);
    for c in flow.setup() {
        engine.apply(&c, &mut events);
        events.clear();
    }
    // Warm-up: books, slab and indices reach their working size.
    for _ in 0..200_000 {
        engine.apply(&flow.next_command(), &mut events);
        flow.observe(&events);
        events.clear();
    }
    let commands: Vec<Envelope> = (0..100_000).map(|_| flow.next_command()).collect();
    let mut trades = 0;
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for c in &commands {
        engine.apply(c, &mut events);
        trades += events
            .iter()
            .filter(|e| matches!(e, Event::Trade(_)))
            .count();
        events.clear();
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(trades > 1_000, "the flow must trade: {trades}");
    assert_eq!(allocations, 0, "heap allocations while trading");
}
