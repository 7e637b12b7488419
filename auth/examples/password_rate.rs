//! How fast argon2id with the service's parameters hashes and verifies on this machine: the
//! bound on logins per second (each login verifies one hash). Run in release:
//! `cargo run --release -p peregrine-auth --example password_rate -- [ROUNDS] [THREADS]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use peregrine_auth::password;
use ring::rand::SystemRandom;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(50, |a| a.parse().expect("ROUNDS"));
    let threads: usize = args.next().map_or(1, |a| a.parse().expect("THREADS"));
    let rng = SystemRandom::new();
    let phc = password::hash("correct horse battery", &rng).unwrap();
    let mut micros: Vec<u128> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            assert!(password::verify("correct horse battery", &phc));
            started.elapsed().as_micros()
        })
        .collect();
    micros.sort_unstable();
    let percentile = |p: f64| micros[((micros.len() as f64 * p) as usize).min(micros.len() - 1)];
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..rounds {
                    assert!(password::verify("correct horse battery", &phc));
                }
            });
        }
    });
    let per_second = (rounds * threads) as f64 / started.elapsed().as_secs_f64();
    println!(
        "argon2id m={} KiB t={} p={}: verify p50 {} us, p99 {} us, max {} us ({rounds} rounds); \
         {per_second:.1} verifications/s on {threads} thread(s)",
        password::ARGON2_MEMORY_KIB,
        password::ARGON2_ITERATIONS,
        password::ARGON2_LANES,
        percentile(0.50),
        percentile(0.99),
        micros[micros.len() - 1],
    );
}
