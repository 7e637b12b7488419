//! `wallets`: the deposit watcher (`peregrine-wallet`) on a private anvil, crediting an
//! in-process engine through the journaled `Deposit` command, as the wallet crate does.
//!
//! Two phases, both at 1 confirmation:
//! 1. catch-up throughput: [`BLOCKS`] blocks of [`TRANSFERS_PER_BLOCK`] ether transfers each to
//!    [`ADDRESSES`] watched deposit addresses are mined first (anvil with automine off), then a
//!    fresh watcher steps until every deposit is credited: `ops_per_sec` is deposits detected
//!    and credited per second over that catch-up;
//! 2. latency: [`LATENCY_SAMPLES`] times, one transfer is mined in a block of its own while the
//!    watcher runs at its [`WATCH_INTERVAL_MS`] pace; the latency is from the `evm_mine` call
//!    (inclusion) to the balance change in the engine's views (credit). It includes up to one
//!    watcher interval of waiting.
//!
//! `floor_ns` is one JSON-RPC round trip (`eth_blockNumber`) to the node. The store is SQLite in
//! a temporary directory, or a fresh MySQL/MariaDB database with `--database-url`. anvil comes
//! from `ANVIL_BIN` (else `anvil` on the PATH). The daemon process credits over the control
//! API instead of in process: one more loopback HTTP request per deposit.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_core::{EngineHandle, Request};
use peregrine_hotpath::runtime::{Shard, ShardConfig};
use peregrine_hotpath::{AccountId, Actor, CommandKind, CurrencyId, Engine, EngineConfig};
use peregrine_wallet::chain::eth::EthRpc;
use peregrine_wallet::chain::{Address, Asset, Chain};
use peregrine_wallet::deposits::{
    DepositWatcher, Pacing, WatchedCurrency, WatcherConfig, WatcherStatus,
};
use peregrine_wallet::metrics::WalletMetrics;
use peregrine_wallet::store::WalletStore;
use serde_json::{Value, json};

use crate::args::{BenchArgs, WorkloadFlag};
use crate::error::BenchError;
use crate::recorder::LatencyRecorder;
use crate::registry::Workload;
use crate::report::Report;

/// The registry entry.
pub const WORKLOAD: Workload = Workload {
    name: NAME,
    summary: "deposit watcher on anvil: deposits detected+credited/s, inclusion->credit latency; floor = 1 JSON-RPC call",
    flags: &[WorkloadFlag::DatabaseUrl],
    run,
};

const NAME: &str = "wallets";
/// Blocks of the catch-up phase.
pub const BLOCKS: u32 = 20;
/// Ether transfers in each of them.
pub const TRANSFERS_PER_BLOCK: u32 = 100;
/// Watched deposit addresses (accounts 1..=ADDRESSES), paid in turn.
pub const ADDRESSES: u32 = 50;
/// Single-transfer blocks of the latency phase.
pub const LATENCY_SAMPLES: u32 = 50;
/// The watcher's pause between steps in the latency phase.
pub const WATCH_INTERVAL_MS: u64 = 10;
/// Bound on waiting for one credit (or the whole catch-up) before the run is broken.
const CREDIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Wei per transfer: one gwei, the engine's minor unit at precision 9.
const WEI_PER_TRANSFER: u128 = 1_000_000_000;
/// Samples of the floor.
const FLOOR_SAMPLES: u32 = 100;

const _: () = assert!(
    ADDRESSES >= 1 && ADDRESSES < 64,
    "EngineConfig::small has 64 accounts"
);
const _: () = assert!(BLOCKS * TRANSFERS_PER_BLOCK <= 10_000);

fn failed(error: impl std::fmt::Display) -> BenchError {
    BenchError::workload(NAME, error.to_string())
}

/// A private anvil on a free port, killed when dropped.
struct Anvil {
    child: Child,
    url: String,
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_anvil() -> Result<Anvil, BenchError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(failed)?
        .port();
    let bin = std::env::var("ANVIL_BIN").unwrap_or_else(|_| "anvil".to_owned());
    let child = Command::new(&bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--silent",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| failed(format!("cannot start anvil ({bin}; set ANVIL_BIN): {e}")))?;
    let anvil = Anvil {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let rpc = EthRpc::new(&anvil.url).map_err(failed)?;
    for _ in 0..200 {
        if rpc.head().await.is_ok() {
            return Ok(anvil);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(failed("anvil did not answer"))
}

async fn engine() -> Result<Arc<EngineHandle>, BenchError> {
    let engine = Engine::new(EngineConfig::small()).map_err(failed)?;
    let shard = Shard::start(engine, &ShardConfig::default()).map_err(failed)?;
    let engine = EngineHandle::start(shard).map_err(failed)?;
    let command = CommandKind::CurrencyAdd {
        currency: CurrencyId(0),
    };
    let ticket = engine
        .submit(Request::new(Actor::System, command))
        .map_err(failed)?;
    tokio::time::timeout(CREDIT_TIMEOUT, ticket)
        .await
        .map_err(failed)?
        .map_err(failed)?;
    Ok(engine)
}

fn available(engine: &EngineHandle, account: u32) -> u64 {
    engine
        .read(|views| views.balance(AccountId(account), CurrencyId(0)))
        .available
        .0
}

fn total(engine: &EngineHandle) -> u64 {
    (1..=ADDRESSES)
        .map(|account| available(engine, account))
        .sum()
}

/// The deposit address of `account`: any 20 bytes serve (the watcher only needs them stored).
fn address_of(account: u32) -> Address {
    let mut bytes = [0x5au8; 20];
    bytes[16..].copy_from_slice(&account.to_be_bytes());
    Address::from_eth_bytes(&bytes)
}

async fn call(rpc: &EthRpc, method: &'static str, params: Value) -> Result<Value, BenchError> {
    rpc.call::<Value>(method, params).await.map_err(failed)
}

/// Sends `count` transfers (pending: automine is off), paying the addresses in turn.
async fn send_transfers(
    rpc: &EthRpc,
    senders: &[String],
    count: u32,
    first: u32,
) -> Result<(), BenchError> {
    for index in 0..count {
        let n = first + index;
        let from = &senders[n as usize % senders.len()];
        let to = address_of(1 + n % ADDRESSES);
        let tx =
            json!({"from": from, "to": to.as_str(), "value": format!("0x{WEI_PER_TRANSFER:x}")});
        call(rpc, "eth_sendTransaction", json!([tx])).await?;
    }
    Ok(())
}

fn watcher(
    anvil: &Anvil,
    engine: &Arc<EngineHandle>,
    store: &WalletStore,
    start_block: u64,
) -> Result<DepositWatcher<EthRpc, Arc<EngineHandle>>, BenchError> {
    let currency = WatchedCurrency {
        code: "eth".to_owned(),
        id: CurrencyId(0),
        asset: Asset::Native,
        chain_decimals: 18,
        precision: 9,
        confirmations: 1,
    };
    let config = WatcherConfig {
        chain: "eth".to_owned(),
        start_block,
        currencies: vec![currency],
    };
    let metrics = WalletMetrics::new(&prometheus::Registry::new()).map_err(failed)?;
    DepositWatcher::new(
        EthRpc::new(&anvil.url).map_err(failed)?,
        Arc::clone(engine),
        store.clone(),
        config,
        metrics,
    )
    .map_err(failed)
}

fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    args.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(failed)?;
    let dir = tempfile::tempdir().map_err(failed)?;
    let (store_url, fresh) = match &args.database_url {
        None => (
            format!("sqlite:{}", dir.path().join("wallets.db").display()),
            None,
        ),
        Some(server) => {
            let (_, name) = peregrine_replica::admin::split_mysql_url(server).map_err(|_| {
                BenchError::invalid("--database-url", "expected mysql://user@host:port/name")
            })?;
            let url = peregrine_replica::admin::with_database(
                server,
                &format!("{name}_wallets_{}", std::process::id()),
            )
            .map_err(failed)?;
            let _ = peregrine_replica::admin::drop_mysql_database(&url);
            peregrine_replica::admin::create_mysql_database(&url).map_err(failed)?;
            (url.clone(), Some(url))
        }
    };
    let result = runtime.block_on(measure(&store_url));
    if let Some(url) = fresh {
        let _ = peregrine_replica::admin::drop_mysql_database(&url);
    }
    result
}

async fn measure(store_url: &str) -> Result<Report, BenchError> {
    let anvil = start_anvil().await?;
    let rpc = EthRpc::new(&anvil.url).map_err(failed)?;
    let engine = engine().await?;
    let store = WalletStore::open(store_url).await.map_err(failed)?;
    for account in 1..=ADDRESSES {
        store
            .insert_address("eth", account, &address_of(account), "m/0")
            .await
            .map_err(failed)?;
    }
    let senders: Vec<String> =
        serde_json::from_value(call(&rpc, "eth_accounts", json!([])).await?).map_err(failed)?;
    let floor_started = Instant::now();
    for _ in 0..FLOOR_SAMPLES {
        rpc.head().await.map_err(failed)?;
    }
    let floor_ns = floor_started.elapsed().as_nanos() / u128::from(FLOOR_SAMPLES);

    // Phase 1: the blocks exist, then the watcher catches up.
    call(&rpc, "evm_setAutomine", json!([false])).await?;
    let start_block = rpc.head().await.map_err(failed)? + 1;
    for block in 0..BLOCKS {
        send_transfers(
            &rpc,
            &senders,
            TRANSFERS_PER_BLOCK,
            block * TRANSFERS_PER_BLOCK,
        )
        .await?;
        call(&rpc, "evm_mine", json!([])).await?;
    }
    let deposits = u64::from(BLOCKS * TRANSFERS_PER_BLOCK);
    // One minor unit (gwei) per transfer.
    let want = deposits;
    let catch_up = watcher(&anvil, &engine, &store, start_block)?;
    let started = Instant::now();
    while total(&engine) < want {
        catch_up.step().await.map_err(failed)?;
        if started.elapsed() > CREDIT_TIMEOUT {
            return Err(failed(format!(
                "only {} of {want} credited",
                total(&engine)
            )));
        }
    }
    let catch_up_s = started.elapsed().as_secs_f64();
    let ops_per_sec = deposits as f64 / catch_up_s;

    // Phase 2: one transfer per block while the watcher runs at its pace.
    let recorder = latency(&anvil, &rpc, &engine, &store, &senders).await?;
    Ok(Report::new(
        NAME,
        ops_per_sec,
        recorder.summary(),
        u64::try_from(floor_ns).ok(),
    )
    .with_recorder(&recorder)
    .with_param("blocks", BLOCKS)
    .with_param("transfers_per_block", TRANSFERS_PER_BLOCK)
    .with_param("deposits", deposits)
    .with_param("catch_up_seconds", catch_up_s)
    .with_param("confirmations", 1)
    .with_param("latency_samples", LATENCY_SAMPLES)
    .with_param("watch_interval_ms", WATCH_INTERVAL_MS)
    .with_param(
        "store",
        if store_url.starts_with("sqlite") {
            "sqlite"
        } else {
            "mysql"
        },
    ))
}

async fn latency(
    anvil: &Anvil,
    rpc: &EthRpc,
    engine: &Arc<EngineHandle>,
    store: &WalletStore,
    senders: &[String],
) -> Result<LatencyRecorder, BenchError> {
    let running = Arc::new(watcher(anvil, engine, store, 0)?);
    let (status_tx, _status) = tokio::sync::watch::channel(WatcherStatus::Starting);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let pacing = Pacing {
        interval_ms: WATCH_INTERVAL_MS,
        backoff_ms_max: WATCH_INTERVAL_MS * 8,
    };
    let task = tokio::spawn({
        let running = Arc::clone(&running);
        async move { running.run(pacing, &status_tx, stop).await }
    });
    let mut recorder = LatencyRecorder::new()?;
    let first = BLOCKS * TRANSFERS_PER_BLOCK;
    for sample in 0..LATENCY_SAMPLES {
        let account = 1 + (first + sample) % ADDRESSES;
        let before = available(engine, account);
        send_transfers(rpc, senders, 1, first + sample).await?;
        let included = Instant::now();
        call(rpc, "evm_mine", json!([])).await?;
        while available(engine, account) == before {
            if included.elapsed() > CREDIT_TIMEOUT {
                return Err(failed("a deposit was not credited in time"));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let latency_ns = u64::try_from(included.elapsed().as_nanos()).unwrap_or(u64::MAX);
        recorder.record_ns(latency_ns);
    }
    stop_tx.send_replace(true);
    let _ = task.await;
    Ok(recorder)
}
