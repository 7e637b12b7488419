//! Crash test: a child process journals a seeded flow in durable mode and prints `ack <seq>`
//! once durable; it is killed with SIGKILL at random moments over many cycles. After each kill,
//! recovery must hold every acknowledged sequence, gap-free, with an engine that passes its
//! audit; at the end the engine must equal the uninterrupted one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{engine_config, flow_commands, reference_engine, small_config};
use peregrine_hotpath::sim::Rng;
use peregrine_persist::recover;

/// Kill cycles; bounded also by `TOTAL_MAX` so the test stays well under 30 s.
const CYCLES: usize = 25;
const TOTAL_MAX: Duration = Duration::from_secs(20);

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_command() {
    let dir = tempfile::tempdir().unwrap();
    let seed = 11;
    let mut rng = Rng::new(0xC0FFEE);
    let started = Instant::now();
    let mut acked_max = 0_u64;
    let mut cycles = 0;
    let mut config = small_config(dir.path());
    config.segment_bytes = 256 << 10;
    while cycles < CYCLES && started.elapsed() < TOTAL_MAX {
        cycles += 1;
        let mut child = Command::new(env!("CARGO_BIN_EXE_persist-crash-child"))
            .arg(dir.path())
            .arg(seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut max = 0_u64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(seq) = line.strip_prefix("ack ") {
                    max = max.max(seq.parse().unwrap());
                }
            }
            max
        });
        std::thread::sleep(Duration::from_millis(50 + rng.below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        acked_max = acked_max.max(acked);
        let recovered = recover(&config, engine_config()).unwrap();
        assert!(
            recovered.last_seq >= acked_max,
            "cycle {cycles}: acked {acked_max} but recovered only {}",
            recovered.last_seq
        );
        recovered.engine.audit().unwrap();
        if let Some(torn) = &recovered.report.torn_tail {
            println!("cycle {cycles}: torn tail truncated: {torn:?}");
        }
    }
    let recovered = recover(&config, engine_config()).unwrap();
    println!(
        "{cycles} kills, {} commands recovered, {acked_max} acknowledged, snapshot {:?}",
        recovered.last_seq, recovered.report.snapshot
    );
    assert!(acked_max > 0, "the child acknowledged something");
    let reference = reference_engine(&flow_commands(seed, recovered.last_seq as usize));
    assert_eq!(
        recovered.engine.snapshot().unwrap(),
        reference.snapshot().unwrap()
    );
}
