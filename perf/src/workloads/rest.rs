//! `rest`: order placement through the REST bridge over HTTP/1.1 on loopback, open loop:
//! signed `POST /api/v2/peatio/market/orders` from `LANES` keep-alive lanes (one API key and
//! account each; a lane sends its requests in order, so nonces stay increasing per key); latency
//! is from each order's *scheduled* send to its `201 Created` at the client, so a request that
//! waited for its lane is charged the wait (coordinated-omission corrected). The answer comes
//! after the engine executed the order and the market-data feed applied it.
//!
//! Even lanes sell and odd lanes buy one lot at one price, so orders pair off and trade: the
//! measured path includes matching, fills and the feed. The floor is the median round trip of
//! `GET /api/v2/peatio/public/timestamp` on the same client, no load: HTTP + axum alone.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use peregrine_core::{EngineHandle, Request};
use peregrine_gateway::catalog::{Catalog, CurrencyDef, MarketDef};
use peregrine_gateway::rest::auth::sign_request;
use peregrine_gateway::rest::{RestConfig, RestKey, RestServer, serve};
use peregrine_hotpath::runtime::{IdlePolicy, Shard, ShardConfig};
use peregrine_hotpath::{
    AccountId, Amount, CommandKind, CurrencyId, DepositId, Engine, EngineConfig,
};
use tokio::sync::mpsc;

use crate::args::{BenchArgs, WorkloadFlag};
use crate::error::BenchError;
use crate::pacer::{Pacer, PacerStats};
use crate::recorder::LatencyRecorder;
use crate::registry::Workload;
use crate::report::Report;

/// The registry entry.
pub const WORKLOAD: Workload = Workload {
    name: NAME,
    summary: "signed POST order -> 201 over HTTP on loopback through the REST bridge + shard; floor = GET timestamp",
    flags: &[WorkloadFlag::Rate],
    run,
};

const NAME: &str = "rest";
/// Offered rate: a busy retail venue.
pub const RATE_DEFAULT_OPS_PER_SEC: u64 = 2_000;
/// Concurrent keep-alive connections, one API key each.
const LANES: u32 = 32;
/// Requests queued per lane before the pacer waits (charged to the schedule).
const LANE_QUEUE: usize = 4_096;
/// Round trips for the floor.
const PING_SAMPLES: usize = 500;
/// Where orders go; each is signed over nonce, method, this path and the body's SHA-256.
const ORDERS_PATH: &str = "/api/v2/peatio/market/orders";
/// Tokio workers for server and clients together (see `e2e`: the shard and router threads
/// need the other core).
pub(crate) const TOKIO_WORKERS: usize = 1;
/// The one market.
pub(crate) const MARKET: &str = "btcusd";
/// The one price, in the market's decimals.
pub(crate) const PRICE: &str = "50000";

/// A funded engine behind a running REST bridge.
pub(crate) struct Fixture {
    pub server: RestServer,
    pub engine: Arc<EngineHandle>,
    pub base: String,
}

pub(crate) fn key_name(lane: u32) -> String {
    format!("bench-{lane}")
}

pub(crate) fn secret(lane: u32) -> String {
    format!("bench-secret-{lane:08}")
}

fn catalog() -> Result<Catalog, BenchError> {
    let d = |s: &str| s.parse().map_err(|e| BenchError::workload(NAME, e));
    Catalog::new(
        &[
            CurrencyDef {
                code: "btc".into(),
                id: 0,
                precision: 8,
            },
            CurrencyDef {
                code: "usd".into(),
                id: 1,
                precision: 6,
            },
        ],
        &[MarketDef {
            name: MARKET.into(),
            id: 0,
            base: "btc".into(),
            quote: "usd".into(),
            tick: d("0.01")?,
            lot: d("0.0001")?,
            max_price: d("1000000")?,
            max_amount: d("100")?,
            max_notional: d("100000000")?,
            band_bps: 1_000,
            reference_price: d(PRICE)?,
            maker_fee_ppm: 0,
            taker_fee_ppm: 0,
        }],
    )
    .map_err(|e| BenchError::workload(NAME, e))
}

/// Starts a shard, the sequencer, funds accounts `1..=accounts` through `execute`, and the
/// bridge on 127.0.0.1:0 with one key per account.
pub(crate) async fn start(name: &'static str, accounts: u32) -> Result<Fixture, BenchError> {
    let fail = |e: String| BenchError::workload(name, e);
    let shard = Shard::start(
        Engine::new(EngineConfig {
            max_accounts: 64,
            max_currencies: 4,
            max_markets: 4,
            max_orders: 1 << 20,
            max_levels_per_side: 1_024,
            max_open_orders_per_account: 1 << 19,
            ..EngineConfig::default()
        })
        .map_err(|e| fail(e.to_string()))?,
        &ShardConfig {
            core: None,
            idle: IdlePolicy::Park {
                spins: 200,
                park_us: 500,
            },
            input_capacity: 65_536,
            query_capacity: 1_024,
            output_capacity: 1 << 18,
        },
    )
    .map_err(|e| fail(e.to_string()))?;
    let engine = EngineHandle::start(shard).map_err(|e| fail(e.to_string()))?;
    let catalog = Arc::new(catalog()?);
    let for_query = catalog.clone();
    let mut commands = engine
        .query(move |e| for_query.missing_in(e))
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(e.to_string()))?;
    for account in 1..=accounts {
        for (currency, amount) in [(0, 1u64 << 56), (1, 1u64 << 62)] {
            commands.push(CommandKind::Deposit {
                account: AccountId(account),
                currency: CurrencyId(currency),
                amount: Amount(amount),
                deposit: DepositId(u64::from(account) << 16 | u64::from(currency)),
            });
        }
    }
    for command in commands {
        let executed = engine
            .submit(Request::new(peregrine_hotpath::Actor::System, command))
            .map_err(|e| fail(e.to_string()))?
            .await
            .map_err(|e| fail(e.to_string()))?;
        if let Some(reason) = executed.rejected() {
            return Err(fail(format!("setup rejected: {reason}")));
        }
    }
    let config = RestConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        keys: (1..=accounts)
            .map(|lane| RestKey {
                key: key_name(lane),
                secret: secret(lane),
                account: lane,
                legacy_signature: false,
            })
            .collect(),
        ..RestConfig::default()
    };
    let registry = prometheus::Registry::new();
    let server = serve(config, engine.clone(), catalog, &registry)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let base = format!("http://{}", server.local_addr());
    Ok(Fixture {
        server,
        engine,
        base,
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Default)]
struct Counters {
    created: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
}

fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    let rate = args.rate_or(RATE_DEFAULT_OPS_PER_SEC)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(TOKIO_WORKERS)
        .enable_all()
        .thread_name("rest-io")
        .build()
        .map_err(|e| BenchError::workload(NAME, e))?;
    let fixture = runtime.block_on(start(NAME, LANES))?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(LANES as usize)
        .build()
        .map_err(|e| BenchError::workload(NAME, e))?;
    let floor_ns = runtime.block_on(async {
        let url = format!("{}/api/v2/peatio/public/timestamp", fixture.base);
        let mut samples_ns = Vec::with_capacity(PING_SAMPLES);
        for _ in 0..PING_SAMPLES {
            let started = Instant::now();
            let response = http
                .get(&url)
                .send()
                .await
                .map_err(|e| BenchError::workload(NAME, e))?;
            let _ = response.bytes().await;
            samples_ns.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        samples_ns.sort_unstable();
        Ok::<_, BenchError>(samples_ns[samples_ns.len() / 2])
    })?;
    let counters = Arc::new(Counters::default());
    let warmup = (args.warmup.as_secs_f64() * rate.get() as f64) as u64;
    let count = (args.duration.as_secs_f64() * rate.get() as f64) as u64;
    let _ = open_loop(&runtime, &http, &fixture.base, rate, warmup, &counters)?;
    for c in [&counters.created, &counters.refused, &counters.errors] {
        c.store(0, Ordering::Relaxed);
    }
    let start = Instant::now();
    let (results, pacer_stats) = open_loop(&runtime, &http, &fixture.base, rate, count, &counters)?;
    let mut recorder = LatencyRecorder::new()?;
    let mut last = start;
    for (scheduled, completed) in &results {
        recorder.record_from_scheduled(*scheduled, *completed);
        last = last.max(*completed);
    }
    let ops_per_sec = results.len() as f64 / last.duration_since(start).as_secs_f64().max(1e-9);
    let errors = counters.errors.load(Ordering::Relaxed);
    runtime.block_on(fixture.server.shutdown());
    drop(fixture.engine);
    if errors > 0 {
        return Err(BenchError::workload(
            NAME,
            format!("{errors} requests failed (connection errors)"),
        ));
    }
    Ok(
        Report::new(NAME, ops_per_sec, recorder.summary(), Some(floor_ns))
            .with_pacing(&pacer_stats)
            .with_recorder(&recorder)
            .with_param("latency_rate_ops_per_sec", rate.get())
            .with_param("latency_orders", count)
            .with_param("created", counters.created.load(Ordering::Relaxed))
            .with_param("refused", counters.refused.load(Ordering::Relaxed))
            .with_param("sends_behind_count", pacer_stats.sends_behind_count)
            .with_param("lanes", u64::from(LANES))
            .with_param("floor", "median GET /public/timestamp round trip, no load")
            .with_param("transport", "HTTP/1.1 keep-alive, JSON, HMAC-SHA256 signed")
            .with_param("tokio_workers", TOKIO_WORKERS as u64),
    )
}

/// Sends `count` orders on the pacer's schedule (this thread), spread over the lanes; returns
/// each created order's (scheduled, answered) instants and the sends that fell behind.
fn open_loop(
    runtime: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    base: &str,
    rate: NonZeroU64,
    count: u64,
    counters: &Arc<Counters>,
) -> Result<(Vec<(Instant, Instant)>, PacerStats), BenchError> {
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(Instant, Instant)>();
    let mut lanes = Vec::with_capacity(LANES as usize);
    let mut tasks = Vec::with_capacity(LANES as usize);
    for lane in 1..=LANES {
        let (tx, mut rx) = mpsc::channel::<Instant>(LANE_QUEUE);
        lanes.push(tx);
        let (http, done_tx, counters) = (http.clone(), done_tx.clone(), counters.clone());
        let url = format!("{base}{ORDERS_PATH}");
        let side = if lane % 2 == 0 { "sell" } else { "buy" };
        let body = format!(
            r#"{{"market":"{MARKET}","side":"{side}","volume":"0.0001","price":"{PRICE}"}}"#
        );
        tasks.push(runtime.spawn(async move {
            let (key, secret) = (key_name(lane), secret(lane));
            let mut nonce = 0u64;
            while let Some(scheduled) = rx.recv().await {
                nonce = now_ms().max(nonce + 1);
                let response = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("X-Auth-Apikey", &key)
                    .header("X-Auth-Nonce", nonce.to_string())
                    .header(
                        "X-Auth-Signature",
                        sign_request(&secret, nonce, "POST", ORDERS_PATH, body.as_bytes()),
                    )
                    .body(body.clone())
                    .send()
                    .await;
                match response {
                    Ok(response) => {
                        let status = response.status();
                        let _ = response.bytes().await;
                        if status == reqwest::StatusCode::CREATED {
                            counters.created.fetch_add(1, Ordering::Relaxed);
                            let _ = done_tx.send((scheduled, Instant::now()));
                        } else {
                            counters.refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    drop(done_tx);
    let mut pacer = Pacer::new(rate, Instant::now());
    for i in 0..count {
        let scheduled = pacer.next_scheduled();
        let lane = &lanes[(i % u64::from(LANES)) as usize];
        // A full lane makes the pacer wait: the wait shows as latency from `scheduled`.
        if lane.blocking_send(scheduled).is_err() {
            return Err(BenchError::workload(NAME, "a lane stopped"));
        }
    }
    drop(lanes);
    runtime.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
    });
    let results: Vec<(Instant, Instant)> = done_rx.try_iter().collect();
    Ok((results, pacer.stats()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn places_orders_over_http() {
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_millis(200);
        args.warmup = Duration::from_millis(50);
        args.rate_ops_per_sec = Some(500);
        let report = run(&args).unwrap();
        assert_eq!(report.params["latency_orders"], 100);
        assert_eq!(report.params["created"], 100);
        assert!(report.floor_ns.unwrap() > 0);
    }
}
