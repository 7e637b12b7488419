//! Measures one small durable write on this machine, for each way the journal could do it:
//! `cargo run --release -p peregrine-persist --example sync_floor -- [DIR] [SAMPLES]`.
//! Prints the median and p99 in microseconds per method.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

use peregrine_persist::io::{AlignedBuf, BLOCK_BYTES, SyncMethod, Uring, fallocate, zero_fill};

const FILE_BYTES: u64 = 64 << 20;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "/tmp".into()));
    let samples: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(500);
    // SPIN=1: a second thread spin-yields meanwhile, as the bench's pacer does on a 2-core VM.
    if std::env::var("SPIN").is_ok() {
        std::thread::spawn(|| {
            loop {
                std::thread::yield_now();
            }
        });
    }
    let mut buf = AlignedBuf::new(BLOCK_BYTES);
    buf.bytes_mut()[..512].fill(0xAB);
    for (name, direct, zeroed, method, same) in [
        (
            "uring O_DIRECT write+fdatasync, zero-filled, same block",
            true,
            true,
            Some(SyncMethod::WriteThenFdatasync),
            true,
        ),
        (
            "uring O_DIRECT RWF_DSYNC, zero-filled",
            true,
            true,
            Some(SyncMethod::WriteDsync),
            false,
        ),
        (
            "uring O_DIRECT RWF_DSYNC, fallocate only",
            true,
            false,
            Some(SyncMethod::WriteDsync),
            false,
        ),
        (
            "uring O_DIRECT write+fdatasync, zero-filled",
            true,
            true,
            Some(SyncMethod::WriteThenFdatasync),
            false,
        ),
        (
            "uring O_DIRECT write+fdatasync, fallocate only",
            true,
            false,
            Some(SyncMethod::WriteThenFdatasync),
            false,
        ),
        (
            "uring buffered write+fdatasync, zero-filled",
            false,
            true,
            Some(SyncMethod::WriteThenFdatasync),
            false,
        ),
        (
            "pwrite buffered + fdatasync, zero-filled",
            false,
            true,
            None,
            false,
        ),
    ] {
        let path = dir.join(format!("sync-floor-{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let file = if direct {
            peregrine_persist::io::open_direct(&path, true)?
        } else {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?
        };
        fallocate(&file, FILE_BYTES)?;
        if zeroed {
            zero_fill(&file, 0, FILE_BYTES)?;
        }
        file.sync_all()?;
        let mut ring = Uring::new()?;
        let mut times_ns = Vec::with_capacity(samples);
        for i in 0..samples {
            let offset = if same {
                0
            } else {
                (i * BLOCK_BYTES) as u64 % FILE_BYTES
            };
            let start = Instant::now();
            match method {
                Some(method) => ring.write_durable(&file, buf.bytes(), offset, method)?,
                None => {
                    file.write_all_at(buf.bytes(), offset)?;
                    file.sync_data()?;
                }
            }
            times_ns.push(start.elapsed().as_nanos() as u64);
        }
        times_ns.sort_unstable();
        println!(
            "{name:50} 4 KiB: median {:>7.1} us  p99 {:>7.1} us",
            times_ns[samples / 2] as f64 / 1e3,
            times_ns[samples * 99 / 100] as f64 / 1e3
        );
        drop(file);
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
