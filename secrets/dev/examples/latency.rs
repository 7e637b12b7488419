//! Client-observed latency of the calls identity and the wallets make, through the one
//! client, against the dev store and (when VAULT_ADDR and VAULT_TOKEN are set) the real
//! OpenBao: `cargo run -p peregrine-devsecrets --example latency -- [samples]`.
//! One JSON line per server and call: p50, p99 and max in microseconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use peregrine_devsecrets::DevSecrets;
use peregrine_secrets::sys::Engine;
use peregrine_secrets::transit::KeyType;
use peregrine_secrets::{BaoToken, OpenBao};
use serde_json::json;

/// Samples taken when none is given.
const SAMPLES_DEFAULT: usize = 1_000;
/// The most samples (each is a round trip, some an fsync).
const SAMPLES_MAX: usize = 100_000;

fn report(server: &str, call: &str, mut micros: Vec<u64>) {
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize];
    println!(
        "{}",
        json!({
            "server": server,
            "call": call,
            "samples": micros.len(),
            "p50_us": at(0.5),
            "p99_us": at(0.99),
            "max_us": micros[micros.len() - 1],
        })
    );
}

async fn measure(server: &str, bao: &OpenBao, samples: usize) {
    let suffix = std::process::id();
    let (transit, kv) = (
        format!("latency-transit-{suffix}"),
        format!("latency-kv-{suffix}"),
    );
    bao.ensure_engine(&transit, Engine::Transit).await.unwrap();
    bao.ensure_engine(&kv, Engine::KvV2).await.unwrap();
    bao.transit_ensure_key(&transit, "jwt", KeyType::Ed25519)
        .await
        .unwrap();
    bao.transit_ensure_key(&transit, "aes", KeyType::Aes256Gcm96)
        .await
        .unwrap();
    let mut sign = Vec::with_capacity(samples);
    let mut encrypt = Vec::with_capacity(samples);
    let mut put = Vec::with_capacity(samples);
    let document = json!({ "seed": "00" }).as_object().unwrap().clone();
    for _ in 0..samples {
        let start = Instant::now();
        bao.transit_sign(&transit, "jwt", b"header.claims")
            .await
            .unwrap();
        sign.push(start.elapsed().as_micros() as u64);
        let start = Instant::now();
        bao.transit_encrypt(&transit, "aes", b"secret")
            .await
            .unwrap();
        encrypt.push(start.elapsed().as_micros() as u64);
        let start = Instant::now();
        bao.kv_put(&kv, "seeds/eth", &document).await.unwrap();
        put.push(start.elapsed().as_micros() as u64);
    }
    report(server, "transit_sign", sign);
    report(server, "transit_encrypt", encrypt);
    report(server, "kv_put", put);
}

#[tokio::main]
async fn main() {
    let samples = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or(SAMPLES_DEFAULT)
        .clamp(1, SAMPLES_MAX);
    let dir = tempfile::tempdir().unwrap();
    let store = DevSecrets::start(dir.path()).await.unwrap();
    let dev = OpenBao::new(&store.url(), store.root_token()).unwrap();
    measure("devsecrets", &dev, samples).await;
    store.shutdown().await;
    if let (Ok(addr), Ok(token)) = (std::env::var("VAULT_ADDR"), std::env::var("VAULT_TOKEN")) {
        let real = OpenBao::new(&addr, BaoToken::new(token)).unwrap();
        measure("openbao", &real, samples).await;
    }
}
