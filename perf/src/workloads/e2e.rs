//! `e2e`: order entry end to end on loopback: the `peregrine-client` SDK sends NewOrders over
//! QUIC (TLS 1.3) to the gateway server, which sequences them into a real hot-path shard and
//! routes the engine's events back; latency is from each order's *scheduled* send to its Ack at
//! the client (open loop, coordinated-omission corrected). Server and client share the process.
//!
//! The floor is one protocol ping (Heartbeat echo) round trip on the same connection, median of
//! `PING_SAMPLES`, measured in the same run before the load: what QUIC + tokio cost on this
//! machine with no engine in the path. `params.order_rtt_unloaded_ns` is the same for orders:
//! the median of `ORDER_RTT_SAMPLES` orders sent one at a time (each awaited before the next),
//! i.e. the order path's own minimum here, which no load can improve on.
//!
//! The flow alternates a sell from account 1 and a buy from account 2 at one price, so every
//! pair trades and the book stays near empty: the measured path includes matching and fills.
//!
//! Every command is journaled (in a fresh directory under the temp dir) before the engine sees
//! it, as in `peregrine up`. `--ack durable` (the default, as in `up`) releases each Ack after
//! its record is durable; `--ack fast` releases it at once. For durable runs the report also
//! carries `fsync_floor_ns`: one 4 KiB durable write on the same device, measured in the run
//! (the target is p99 ≤ floor + 3 × that).
//!
//! Experiment switches, from the environment (not `PEREGRINE_*`, which is the appliance's):
//! `BENCH_E2E_ROUTER=task|thread` (where the gateway routes replies; `task` as in `up`),
//! `BENCH_E2E_CORES=I,E` (tokio and the sender on core I, shard and journal writer on E) and
//! `BENCH_E2E_SHARD_SPIN_CORE=N` (the shard spins on core N instead of parking).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peregrine_client::{Client, KeyId, Order, Placed, RejectCode, ServerTrust, SigningKey};
use peregrine_core::{EngineHandle, Request, RouterPlacement, Views};
use peregrine_gateway::quic::auth::ApiKeyConfig;
use peregrine_gateway::quic::tls::TlsSource;
use peregrine_gateway::quic::{Server, ServerConfig, TransportTuning};
use peregrine_hotpath::runtime::{IdlePolicy, Shard, ShardConfig};
use peregrine_hotpath::{
    AccountId, Amount, ClientOrderId, CommandKind, CurrencyId, DepositId, Engine, EngineConfig,
    FeeRates, MarketId, MarketRisk, MarketSpec, Price, Qty, Side,
};
use peregrine_proto::limits::SessionLimits;

use crate::args::{AckMode, BenchArgs, WorkloadFlag};
use crate::error::BenchError;
use crate::pacer::Pacer;
use crate::recorder::LatencyRecorder;
use crate::registry::Workload;
use crate::report::Report;

/// The registry entry.
pub const WORKLOAD: Workload = Workload {
    name: NAME,
    summary: "NewOrder -> Ack over QUIC on loopback through gateway + shard; floor = QUIC ping",
    flags: &[WorkloadFlag::Rate, WorkloadFlag::Ack],
    run,
};

const NAME: &str = "e2e";
/// Offered rate: a busy HFT session, well below what one shard takes.
pub const RATE_DEFAULT_OPS_PER_SEC: u64 = 20_000;
/// Pings for the floor.
const PING_SAMPLES: usize = 1_000;
/// Orders, one at a time, for the unloaded order round trip.
const ORDER_RTT_SAMPLES: u64 = 500;
const MARKET: MarketId = MarketId(0);
const PRICE: Price = Price(10_000);
/// Orders sent but not yet answered, at most: bounds the tasks and the result buffer.
const IN_FLIGHT_MAX: u64 = 60_000;
/// Tokio workers for server and clients together. One: on a 2-vCPU machine the shard, the
/// router and the pacer need the other core, and one worker avoids cross-thread wake-ups
/// between the client and server halves of a round trip.
const TOKIO_WORKERS: usize = 1;
/// Two cores run the shard, the router, tokio and the pacer: the shard parks when idle
/// (`Spin` measured worse here: 20 k/s p50 2.2 ms, p99 13 ms, as it starves the other threads).
const SHARD_IDLE: IdlePolicy = IdlePolicy::Park {
    spins: 200,
    park_us: 500,
};

fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    let dir = std::env::temp_dir().join(format!("peregrine-bench-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = run_in(args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(args: &BenchArgs, dir: &std::path::Path) -> Result<Report, BenchError> {
    let ack = args.ack.unwrap_or(AckMode::Durable);
    let rate = args.rate_or(RATE_DEFAULT_OPS_PER_SEC)?;
    let mut journal_config = peregrine_persist::JournalConfig::new(dir);
    journal_config.ack_mode = match ack {
        AckMode::Durable => peregrine_persist::AckMode::Durable,
        AckMode::Fast => peregrine_persist::AckMode::Fast,
        // Refuse: every Ack waits for the standby, none slips through on the local write.
        AckMode::Replicated => {
            peregrine_persist::AckMode::Replicated(peregrine_persist::WithoutStandby::Refuse)
        }
    };
    // Snapshots are not what this measures.
    journal_config.snapshot_every_commands = 0;
    journal_config.snapshot_every = None;
    // Experiment switch (not PEREGRINE_*, the appliance's namespace): `BENCH_E2E_CORES=I,E`
    // pins tokio and the sending thread to core I, and the shard and the journal writer to E.
    let cores = match std::env::var("BENCH_E2E_CORES") {
        Err(_) => None,
        Ok(cores) => {
            let invalid = || BenchError::invalid("BENCH_E2E_CORES", "expected IO_CORE,ENGINE_CORE");
            let (io, engine) = cores.split_once(',').ok_or_else(invalid)?;
            Some((
                io.trim().parse::<usize>().map_err(|_| invalid())?,
                engine.trim().parse::<usize>().map_err(|_| invalid())?,
            ))
        }
    };
    journal_config.writer_core = cores.map(|(_, engine)| engine);
    // `BENCH_E2E_SHARD_SPIN_CORE=N`: the shard spins on core N instead of parking (no wake-up
    // on the way in; on two cores it leaves one core for everything else).
    let shard_spin_core = match std::env::var("BENCH_E2E_SHARD_SPIN_CORE") {
        Err(_) => None,
        Ok(core) => Some(core.trim().parse::<usize>().map_err(|_| {
            BenchError::invalid("BENCH_E2E_SHARD_SPIN_CORE", "expected a core number")
        })?),
    };
    let io_core = cores.map(|(io, _)| io);
    let (recovered, writer) = peregrine_persist::open(&journal_config, EngineConfig::default())
        .map_err(|e| BenchError::workload(NAME, e))?;
    if recovered.last_seq != 0 {
        return Err(BenchError::workload(NAME, "the bench journal is not empty"));
    }
    let fsync_floor_ns = peregrine_persist::floor_write_sync_ns(
        dir,
        4_096,
        200,
        peregrine_persist::SyncMethod::WriteDsync,
    )
    .map_err(|e| BenchError::workload(NAME, e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(TOKIO_WORKERS)
        .enable_all()
        .thread_name("e2e-io")
        .on_thread_start(move || {
            if let Some(id) = io_core {
                let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
            }
        })
        .build()
        .map_err(|e| BenchError::workload(NAME, e))?;
    let standby = match ack {
        AckMode::Replicated => Some(super::standby_pair::start(
            &runtime,
            writer.journal(),
            dir,
            &dir.join("standby"),
        )?),
        _ => None,
    };
    let shard = Shard::start(
        Engine::new(EngineConfig::default()).map_err(|e| BenchError::workload(NAME, e))?,
        &ShardConfig {
            core: shard_spin_core.or(cores.map(|(_, engine)| engine)),
            idle: if shard_spin_core.is_some() {
                IdlePolicy::Spin
            } else {
                SHARD_IDLE
            },
            input_capacity: 65_536,
            query_capacity: 1_024,
            output_capacity: 1 << 18,
        },
    )
    .map_err(|e| BenchError::workload(NAME, e))?;
    // As in `peregrine up`, the router is a task on the runtime; `BENCH_E2E_ROUTER=thread`
    // gives it a thread of its own instead (to compare).
    let router = match std::env::var("BENCH_E2E_ROUTER").as_deref() {
        Err(_) | Ok("task") => RouterPlacement::Task(runtime.handle().clone()),
        Ok("thread") => RouterPlacement::Thread,
        Ok(_) => {
            return Err(BenchError::invalid(
                "BENCH_E2E_ROUTER",
                "expected task or thread",
            ));
        }
    };
    let router_name = match router {
        RouterPlacement::Thread => "thread",
        _ => "task",
    };
    let handle = EngineHandle::start_placed(
        shard,
        Some(writer.journal().clone()),
        Views::default(),
        router,
    )
    .map_err(|e| BenchError::workload(NAME, e))?;
    // The market and the funds go through the sequencer and the journal like everything else.
    for command in setup_commands() {
        let outcome = handle
            .submit(Request::new(peregrine_hotpath::Actor::System, command))
            .map_err(|e| BenchError::workload(NAME, e))?;
        let executed = runtime
            .block_on(outcome)
            .map_err(|e| BenchError::workload(NAME, e))?;
        if let Some(reason) = executed.rejected() {
            return Err(BenchError::workload(
                NAME,
                format!("setup rejected: {reason}"),
            ));
        }
    }
    let keys = [1u64, 2]
        .iter()
        .map(|&key| {
            Ok(ApiKeyConfig {
                key_id: key,
                account: u32::try_from(key).unwrap_or_default(),
                public_key: signing_key(key)?.public_key_hex(),
            })
        })
        .collect::<Result<Vec<_>, BenchError>>()?;
    let config = ServerConfig {
        listen: "127.0.0.1:0"
            .parse()
            .map_err(|e| BenchError::workload(NAME, e))?,
        tls: TlsSource::SelfSigned {
            names: vec!["localhost".into()],
        },
        keys,
        limits: SessionLimits {
            max_in_flight: 65_536,
            rate_per_sec: 10_000_000,
            burst: 1_000_000,
            ..SessionLimits::default()
        },
        sessions_per_key: 1,
        transport: TransportTuning::default(),
    };
    let (server, sellers, buyers) = runtime.block_on(async {
        let server = Server::start(config, handle).map_err(|e| BenchError::workload(NAME, e))?;
        let trust = ServerTrust::Fingerprint(server.fingerprint_sha256());
        let connect = |key| {
            let trust = trust.clone();
            let addr = server.local_addr();
            async move {
                Client::connect(addr, trust, KeyId(key), signing_key(key)?)
                    .await
                    .map_err(|e| BenchError::workload(NAME, e))
            }
        };
        let sellers = Arc::new(connect(1).await?);
        let buyers = Arc::new(connect(2).await?);
        Ok::<_, BenchError>((server, sellers, buyers))
    })?;
    let buffers = server.socket_buffers();
    // Only the acks are measured: turn the report streams off.
    drop((sellers.reports(), buyers.reports()));

    // The sending thread joins tokio's core now: pinned earlier, the shard's start would have
    // seen only that core as available.
    if let Some(id) = io_core {
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
    }
    // The floor: protocol pings on the order connection, no load.
    let floor_ns = runtime.block_on(async {
        let mut samples_ns = Vec::with_capacity(PING_SAMPLES);
        for _ in 0..PING_SAMPLES {
            let rtt = sellers
                .ping()
                .await
                .map_err(|e| BenchError::workload(NAME, e))?;
            samples_ns.push(u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX));
        }
        samples_ns.sort_unstable();
        Ok::<_, BenchError>(samples_ns[samples_ns.len() / 2])
    })?;

    // The order path's own minimum: one order at a time, alternating sides so each pair trades.
    let mut next_id = 1u64;
    let order_rtt_unloaded_ns = runtime.block_on(async {
        let mut samples_ns = Vec::with_capacity(ORDER_RTT_SAMPLES as usize);
        for i in 0..ORDER_RTT_SAMPLES {
            let (client, side) = if i % 2 == 0 {
                (&sellers, Side::Sell)
            } else {
                (&buyers, Side::Buy)
            };
            let order = Order::limit(ClientOrderId(next_id), MARKET, side, PRICE, Qty(1));
            next_id += 1;
            let sent = Instant::now();
            match client.place(order).await {
                Ok(Placed::Ack { .. }) => {}
                Ok(other) => {
                    return Err(BenchError::workload(
                        NAME,
                        format!("unloaded order not acked: {other:?}"),
                    ));
                }
                Err(e) => return Err(BenchError::workload(NAME, e)),
            }
            samples_ns.push(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        samples_ns.sort_unstable();
        Ok::<_, BenchError>(samples_ns[samples_ns.len() / 2])
    })?;

    let counters = Arc::new(Counters::default());
    let warmup_count = (args.warmup.as_secs_f64() * rate.get() as f64) as u64;
    let count = (args.duration.as_secs_f64() * rate.get() as f64) as u64;
    // Warmup: same path, not recorded.
    let _ = open_loop(
        &runtime,
        &sellers,
        &buyers,
        rate,
        warmup_count,
        &mut next_id,
        &counters,
    )?;
    counters.reset();
    let start = Instant::now();
    let (results, stats) = open_loop(
        &runtime,
        &sellers,
        &buyers,
        rate,
        count,
        &mut next_id,
        &counters,
    )?;
    let mut recorder = LatencyRecorder::new()?;
    let mut last = start;
    for (scheduled, completed) in &results {
        recorder.record_from_scheduled(*scheduled, *completed);
        last = last.max(*completed);
    }
    let ops_per_sec = results.len() as f64 / last.duration_since(start).as_secs_f64().max(1e-9);
    let lagged = sellers.reports_lagged() + buyers.reports_lagged();
    runtime.block_on(server.shutdown(Duration::from_millis(200)));
    let journal_commits = writer
        .journal()
        .stats()
        .commits_count
        .load(Ordering::Relaxed);
    let durable_seq = writer
        .shutdown()
        .map_err(|e| BenchError::workload(NAME, e))?;
    Ok(
        Report::new(NAME, ops_per_sec, recorder.summary(), Some(floor_ns))
            .with_pacing(&stats)
            .with_recorder(&recorder)
            .with_param(
                "ack",
                match ack {
                    AckMode::Durable => "durable",
                    AckMode::Fast => "fast",
                    AckMode::Replicated => "replicated",
                },
            )
            .with_param("fsync_floor_ns", fsync_floor_ns)
            .with_param("journal_dir", dir.display().to_string())
            .with_param("journal_commits", journal_commits)
            .with_param("journal_durable_seq", durable_seq)
            .with_param(
                "standby_replicated_seq",
                standby.as_ref().map_or(0, |pair| pair.replicated_seq()),
            )
            .with_param("latency_rate_ops_per_sec", rate.get())
            .with_param("latency_orders", count)
            .with_param("acks", counters.acks.load(Ordering::Relaxed))
            .with_param("rejects", counters.rejects.load(Ordering::Relaxed))
            .with_param("busy", counters.busy.load(Ordering::Relaxed))
            .with_param("errors", counters.errors.load(Ordering::Relaxed))
            .with_param("sends_behind_count", stats.sends_behind_count)
            .with_param(
                "floor",
                "median heartbeat round trip, same connection, no load",
            )
            .with_param("ping_samples", PING_SAMPLES as u64)
            .with_param("router", router_name)
            .with_param(
                "shard_idle",
                shard_spin_core.map_or("park".to_owned(), |core| format!("spin on core {core}")),
            )
            .with_param(
                "cores",
                cores.map_or("unpinned".to_owned(), |(io, engine)| {
                    format!("io {io}, shard and journal writer {engine}")
                }),
            )
            .with_param("order_rtt_unloaded_ns", order_rtt_unloaded_ns)
            .with_param(
                "order_rtt_unloaded_over_floor",
                order_rtt_unloaded_ns as f64 / floor_ns.max(1) as f64,
            )
            .with_param("order_rtt_samples", ORDER_RTT_SAMPLES)
            .with_param("udp_buffer_requested_bytes", buffers.requested_bytes as u64)
            .with_param("udp_rcvbuf_bytes", buffers.recv_bytes as u64)
            .with_param("udp_sndbuf_bytes", buffers.send_bytes as u64)
            .with_param("udp_buffers_capped", buffers.capped())
            .with_param("reports_lagged", lagged)
            .with_param("tls", "1.3 (ring), ALPN peregrine/2")
            .with_param("tokio_workers", TOKIO_WORKERS as u64),
    )
}

#[derive(Default)]
struct Counters {
    acks: AtomicU64,
    rejects: AtomicU64,
    busy: AtomicU64,
    errors: AtomicU64,
    outstanding: AtomicU64,
}

impl Counters {
    fn reset(&self) {
        for c in [&self.acks, &self.rejects, &self.busy, &self.errors] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// Sends `count` orders on the pacer's schedule from this thread (the pacer spins for the last
/// microseconds, tokio's timer is too coarse), each awaited by its own task; returns each
/// order's (scheduled, acked) instants.
fn open_loop(
    runtime: &tokio::runtime::Runtime,
    sellers: &Arc<Client>,
    buyers: &Arc<Client>,
    rate: std::num::NonZeroU64,
    count: u64,
    next_id: &mut u64,
    counters: &Arc<Counters>,
) -> Result<(Vec<(Instant, Instant)>, crate::pacer::PacerStats), BenchError> {
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Instant)>();
    let mut pacer = Pacer::new(rate, Instant::now());
    for i in 0..count {
        // Bounded in-flight: wait (charged to the schedule) while too many are unanswered.
        while counters.outstanding.load(Ordering::Acquire) >= IN_FLIGHT_MAX {
            std::thread::yield_now();
        }
        let scheduled = pacer.next_scheduled();
        let (client, side) = if i % 2 == 0 {
            (sellers.clone(), Side::Sell)
        } else {
            (buyers.clone(), Side::Buy)
        };
        let order = Order::limit(ClientOrderId(*next_id), MARKET, side, PRICE, Qty(1));
        *next_id += 1;
        let tx = tx.clone();
        let counters = counters.clone();
        counters.outstanding.fetch_add(1, Ordering::AcqRel);
        runtime.spawn(async move {
            let outcome = client.place(order).await;
            let completed = Instant::now();
            match outcome {
                Ok(Placed::Ack { .. }) => {
                    counters.acks.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send((scheduled, completed));
                }
                Ok(Placed::Rejected {
                    code: RejectCode::BUSY,
                    ..
                }) => {
                    counters.busy.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {
                    counters.rejects.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            counters.outstanding.fetch_sub(1, Ordering::AcqRel);
        });
    }
    drop(tx);
    // Every task sends once or drops its sender; bounded by the client's request timeout.
    let results: Vec<(Instant, Instant)> = rx.iter().collect();
    if counters.errors.load(Ordering::Relaxed) > 0 {
        return Err(BenchError::workload(
            NAME,
            format!(
                "{} orders failed (connection errors or timeouts)",
                counters.errors.load(Ordering::Relaxed)
            ),
        ));
    }
    Ok((results, pacer.stats()))
}

fn signing_key(key: u64) -> Result<SigningKey, BenchError> {
    SigningKey::from_seed(&[u8::try_from(key).unwrap_or(0); 32])
        .map_err(|e| BenchError::workload(NAME, e))
}

/// Two currencies, one market, accounts 1 and 2 funded for any run length.
/// The market and both accounts' funds.
fn setup_commands() -> Vec<CommandKind> {
    let mut setup = vec![
        CommandKind::CurrencyAdd {
            currency: CurrencyId(0),
        },
        CommandKind::CurrencyAdd {
            currency: CurrencyId(1),
        },
        CommandKind::MarketAdd(MarketSpec {
            market: MARKET,
            base: CurrencyId(0),
            quote: CurrencyId(1),
            base_per_lot: 1,
            quote_per_tick_lot: 1,
            risk: MarketRisk {
                max_price: Price(1_000_000),
                max_qty: Qty(1_000_000),
                max_notional: Amount(1 << 50),
                band_bps: 5_000,
                reference_price: PRICE,
            },
            fees: FeeRates {
                maker_ppm: 0,
                taker_ppm: 0,
            },
        }),
    ];
    for account in [1, 2] {
        for currency in [0, 1] {
            setup.push(CommandKind::Deposit {
                account: AccountId(account),
                currency: CurrencyId(currency),
                amount: Amount(1 << 50),
                deposit: DepositId(u64::from(account) << 16 | u64::from(currency)),
            });
        }
    }
    setup
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_over_quic_with_durable_and_fast_acks() {
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_millis(200);
        args.warmup = Duration::from_millis(50);
        args.rate_ops_per_sec = Some(2_000);
        let report = run(&args).unwrap();
        assert_eq!(report.params["ack"], "durable");
        assert_eq!(report.params["latency_orders"], 400);
        assert_eq!(report.params["acks"], 400);
        assert!(report.floor_ns.unwrap() > 0);
        // Setup (7) + unloaded round trips (500) + warmup (100) + measured (400), all in the
        // journal.
        assert_eq!(report.params["journal_durable_seq"], 1_007);
        assert_eq!(report.params["order_rtt_samples"], ORDER_RTT_SAMPLES);
        let unloaded_ns = report.params["order_rtt_unloaded_ns"].as_u64().unwrap();
        assert!(unloaded_ns > 0);
        // An order crosses the same connection as a ping, and the engine besides.
        assert!(unloaded_ns > report.floor_ns.unwrap() / 2, "{unloaded_ns}");
        args.ack = Some(AckMode::Fast);
        let report = run(&args).unwrap();
        assert_eq!(report.params["ack"], "fast");
        assert_eq!(report.params["acks"], 400);
    }
}
