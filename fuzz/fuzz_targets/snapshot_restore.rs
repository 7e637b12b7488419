//! Snapshot restore on bytes from a file: the snapshot file reader (header, version, length,
//! checksum, name) and, on what it accepts, and on the raw input as an engine image too,
//! `Engine::restore_within` the configured capacities. Nothing panics, and nothing is allocated
//! beyond what the limits allow (libFuzzer's RSS limit catches that); a restored engine
//! snapshots to bytes that restore to the same snapshot.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use peregrine_fuzz::{engine_limits, scratch_dir, write_snapshot_file};
use peregrine_hotpath::{Engine, EngineConfig};
use peregrine_persist::snapshot::read_snapshot;

fn restore(image: &[u8], limits: &EngineConfig) {
    let Ok(engine) = Engine::restore_within(image, limits) else {
        return;
    };
    let Ok(again) = engine.snapshot() else {
        panic!("a restored engine does not snapshot");
    };
    let Ok(restored) = Engine::restore_within(&again, limits) else {
        panic!("an engine's own snapshot does not restore");
    };
    assert_eq!(
        restored.snapshot().ok(),
        Some(again),
        "snapshot does not round-trip"
    );
}

fuzz_target!(|data: &[u8]| {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = scratch_dir("snapshot_restore");
        let _ = std::fs::create_dir_all(&dir);
        dir
    });
    let limits = engine_limits();
    restore(data, &limits);
    let Ok(path) = write_snapshot_file(dir, data) else {
        return;
    };
    let read = read_snapshot(&path);
    let _ = std::fs::remove_file(&path);
    if let Ok((_, body)) = read {
        restore(&body, &limits);
    }
});
