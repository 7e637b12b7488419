//! `peregrine wallets run`: the wallet daemon as a process. It follows the chain (`[wallets]`),
//! records deposits to the accounts' addresses in the wallet store, credits each confirmed one
//! exactly once through the appliance's control API with the wallet token
//! ([`peregrine_wallet::appliance`]), derives the deposit addresses the REST bridge was
//! asked for, and takes the withdrawals the appliance recorded `approved` through hold, sign,
//! broadcast and settle ([`peregrine_wallet::withdrawals::Signer::step`]) from the hot wallet
//! of each withdrawable currency (printed as `hot  <code>  <address>`), and, in the same task
//! after each signer step, collects: sweeps deposit addresses to the hot wallets (topping up
//! a token address's gas first) and sends the hot wallets' excess to warm or cold
//! ([`peregrine_wallet::collect::Collector::step`]). Health and metrics on `wallets.listen` like the other services; readiness fails
//! while the chain, the store or the appliance cannot be reached (the watcher backs off and
//! resumes from its stored tip: nothing is lost).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::{Args, Subcommand};
use peregrine_hotpath::CurrencyId;
use peregrine_secrets::{BaoToken, OpenBao};
use peregrine_wallet::addresses::DepositAddresses;
use peregrine_wallet::appliance::{ApplianceCurrency, ApplianceLedger};
use peregrine_wallet::bumps::BumpPolicy;
use peregrine_wallet::chain::eth::EthRpc;
use peregrine_wallet::chain::{Address, Asset, Chain};
use peregrine_wallet::collect::{CollectedCurrency, Collector, CollectorConfig, HotWallet, Tiers};
use peregrine_wallet::deposits::{
    DepositWatcher, Pacing, WatchedCurrency, WatcherConfig, WatcherStatus,
};
use peregrine_wallet::keys::{COIN_TYPE_ETH, DerivationPath, SeedVault};
use peregrine_wallet::metrics::WalletMetrics;
use peregrine_wallet::reconcile::{ReconcileError, ReconciledCurrency, Reconciliation, reconcile};
use peregrine_wallet::store::WalletStore;
use peregrine_wallet::withdrawals::Signer;

use crate::cli::ConfigArgs;
use crate::config::{self, Config, ConfigError};
use crate::http::{self, ALIVE_PATH, AppState, METRICS_PATH, READY_PATH};
use crate::logging::{self, LoggingError};
use crate::metrics::{Metrics, MetricsError};
use crate::readiness::{CheckStatus, Readiness, ReadinessError};
use crate::shutdown::StopSignals;

/// Worker threads of the daemon's runtime: the watcher, the address and probe loop, HTTP.
const RUNTIME_WORKER_THREADS: usize = 2;
/// Longest a stop waits for the watcher's step in flight.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest token file read (a token is tens of bytes).
const TOKEN_FILE_BYTES_MAX: u64 = 4096;

/// `peregrine wallets <command>`.
#[derive(Debug, Args)]
pub struct WalletsArgs {
    #[command(subcommand)]
    pub command: WalletsCommand,
}

/// The wallets' subcommands.
#[derive(Debug, Subcommand)]
pub enum WalletsCommand {
    /// Run the wallet daemon until SIGINT or SIGTERM: follow the chain, credit confirmed
    /// deposits through the appliance's control API, derive requested deposit addresses.
    Run(WalletsRunArgs),
    /// Compare the chain's balances (hot, warm, cold, deposit addresses) with the ledger's
    /// liabilities per currency and print the difference; exit 1 when one exceeds its
    /// currency's `reconcile_tolerance`.
    Reconcile(WalletsReconcileArgs),
}

/// Flags of `peregrine wallets reconcile`.
#[derive(Debug, Args)]
pub struct WalletsReconcileArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print JSON (one object, `currencies` an array) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `peregrine wallets run`.
#[derive(Debug, Args)]
pub struct WalletsRunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Why the daemon failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("[wallets] is not enabled in the configuration")]
    Disabled,
    #[error(transparent)]
    Logging(#[from] LoggingError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{} {}: {source}", what, path.display())]
    TokenFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Readiness(#[from] ReadinessError),
    #[error("wallet store: {0}")]
    Store(#[from] peregrine_wallet::store::StoreError),
    #[error("openbao: {0}")]
    Keys(String),
    #[error("chain: {0}")]
    Chain(#[from] peregrine_wallet::chain::ChainError),
    #[error("appliance: {0}")]
    Appliance(#[from] peregrine_wallet::appliance::ApplianceError),
    #[error("watcher: {0}")]
    Watcher(#[from] peregrine_wallet::deposits::WatchError),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("http server: {0}")]
    Http(String),
    #[error("reconciliation: {0}")]
    Reconcile(#[from] ReconcileError),
    #[error("no hot wallet of {0} recorded yet: run `peregrine wallets run` first")]
    NoHotWallet(String),
    #[error("{0} currencies differ from the ledger beyond their tolerance")]
    Unreconciled(usize),
}

impl WalletsError {
    /// Errors the operator fixes in the configuration (exit code 2).
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            Self::Config(_) | Self::Disabled | Self::Logging(LoggingError::Filter(_))
        )
    }
}

/// Runs `peregrine wallets <command>`.
pub fn run(
    args: &WalletsArgs,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(), WalletsError> {
    let run_args = match &args.command {
        WalletsCommand::Run(run_args) => run_args,
        WalletsCommand::Reconcile(reconcile_args) => {
            return reconcile_command(reconcile_args, env);
        }
    };
    let env: Vec<(OsString, OsString)> = env.into_iter().collect();
    let loaded = config::load(
        &run_args.config.file_choice(),
        env.iter().cloned(),
        &run_args.config.overrides(),
    )?;
    if !loaded.config.wallets.enabled {
        return Err(WalletsError::Disabled);
    }
    logging::init_for(
        &loaded.config.log,
        run_args.config.log_level.is_some(),
        &env,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_WORKER_THREADS)
        .thread_name("peregrine-wallets")
        .enable_all()
        .build()
        .map_err(WalletsError::Runtime)?;
    runtime.block_on(daemon(&loaded.config))
}

/// A token from its file (trimmed), bounded in size.
fn read_token(what: &'static str, path: &Path) -> Result<String, WalletsError> {
    let error = |source| WalletsError::TokenFile {
        what,
        path: path.to_owned(),
        source,
    };
    let size_bytes = std::fs::metadata(path).map_err(error)?.len();
    if size_bytes > TOKEN_FILE_BYTES_MAX {
        return Err(error(std::io::Error::other(format!(
            "larger than {TOKEN_FILE_BYTES_MAX} bytes"
        ))));
    }
    Ok(std::fs::read_to_string(path)
        .map_err(error)?
        .trim()
        .to_owned())
}

/// The appliance's control URL and the ledger speaking to it with the wallet token.
fn appliance(
    config: &Config,
    credited: Vec<ApplianceCurrency>,
) -> Result<(String, ApplianceLedger), WalletsError> {
    let (wallets, data_dir) = (&config.wallets, &config.data.dir);
    let control_url = if wallets.control_url.is_empty() {
        format!("http://{}", config.http.listen)
    } else {
        wallets.control_url.clone()
    };
    let token_path = if wallets.control_token_file.as_os_str().is_empty() {
        data_dir.join(&config.control.wallet_token_file)
    } else {
        data_dir.join(&wallets.control_token_file)
    };
    let token = read_token("wallet token file", &token_path)?;
    let ledger = ApplianceLedger::new(&control_url, &token, credited)?;
    Ok((control_url, ledger))
}

/// The watcher's and the ledger's view of each configured currency.
fn currencies(config: &Config) -> (Vec<WatchedCurrency>, Vec<ApplianceCurrency>) {
    let mut watched = Vec::new();
    let mut credited = Vec::new();
    for currency in &config.wallets.currencies {
        // Validated with the configuration: every code is in the catalog.
        let Some(def) = config.currencies.iter().find(|c| c.code == currency.code) else {
            continue;
        };
        let asset = match Address::parse_eth(&currency.contract) {
            Some(contract) => Asset::Token(contract),
            None => Asset::Native,
        };
        watched.push(WatchedCurrency {
            code: currency.code.clone(),
            id: CurrencyId(def.id),
            asset,
            chain_decimals: currency.decimals,
            precision: def.precision,
            confirmations: currency.confirmations,
        });
        credited.push(ApplianceCurrency {
            id: CurrencyId(def.id),
            code: currency.code.clone(),
            precision: def.precision,
        });
    }
    (watched, credited)
}

/// What the watcher's status says for readiness.
fn watcher_check(status: &WatcherStatus) -> CheckStatus {
    match status {
        WatcherStatus::Following { .. } => CheckStatus::Ready,
        WatcherStatus::Starting => CheckStatus::NotReady("no watcher step finished yet".into()),
        WatcherStatus::Failing {
            kind,
            reason,
            failures,
        } => CheckStatus::NotReady(format!("{kind} ({failures} failed steps): {reason}")),
        _ => CheckStatus::NotReady("unknown watcher state".into()),
    }
}

async fn daemon(config: &Config) -> Result<(), WalletsError> {
    let wallets = &config.wallets;
    let data_dir = &config.data.dir;
    let mut signals = StopSignals::install().map_err(WalletsError::Signals)?;
    let listener = tokio::net::TcpListener::bind(wallets.listen)
        .await
        .map_err(|source| WalletsError::Bind {
            addr: wallets.listen,
            source,
        })?;
    let metrics = Metrics::new()?;
    let readiness = Readiness::new();
    let wallet_metrics = WalletMetrics::new(metrics.registry()).map_err(MetricsError::from)?;
    wallet_metrics.start_chain(&wallets.chain);

    let store = WalletStore::open(&wallets.store_url(data_dir)).await?;
    let bao_token = read_token(
        "OpenBao token file",
        &data_dir.join(&wallets.openbao_token_file),
    )?;
    let bao = OpenBao::new(&wallets.openbao_addr, BaoToken::new(bao_token))
        .map_err(|e| WalletsError::Keys(e.to_string()))?;
    let vault = SeedVault::new(bao, &wallets.seed_mount);
    let (watched, credited) = currencies(config);
    for currency in &watched {
        vault
            .ensure_seed(&currency.code)
            .await
            .map_err(|e| WalletsError::Keys(e.to_string()))?;
    }
    let hot = hot_wallets(config, &vault, &store).await?;
    let rpc = EthRpc::new(&wallets.rpc_url)?;
    let start_block = match (wallets.start_block, store.tip(&wallets.chain).await?) {
        (0, None) => rpc.head().await?,
        (block, _) => block,
    };
    let (control_url, ledger) = appliance(config, credited)?;
    let watcher = DepositWatcher::new(
        rpc,
        ledger.clone(),
        store.clone(),
        WatcherConfig {
            chain: wallets.chain.clone(),
            start_block,
            currencies: watched.clone(),
        },
        wallet_metrics.clone(),
    )?;

    let (status_tx, status_rx) = tokio::sync::watch::channel(WatcherStatus::Starting);
    readiness.register_check("chain", move || watcher_check(&status_rx.borrow()))?;
    let appliance = ledger.status();
    readiness.register_check("appliance", move || match appliance.problem() {
        None => CheckStatus::Ready,
        Some(why) => CheckStatus::NotReady(why),
    })?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let pacing = Pacing {
        interval_ms: wallets.interval_ms,
        backoff_ms_max: wallets.backoff_ms_max,
    };
    let watching = tokio::spawn({
        let stop_rx = stop_rx.clone();
        async move { watcher.run(pacing, &status_tx, stop_rx).await }
    });
    let collected = collected(config, &watched, &hot);
    let signing = tokio::spawn(signer_loop(
        (
            wallets.rpc_url.clone(),
            vault.clone(),
            store.clone(),
            wallets.bump_policy(),
        ),
        collected,
        ledger.clone(),
        (wallets.chain.clone(), wallet_metrics.clone()),
        watched
            .iter()
            .map(|c| (c.code.clone(), u64::from(c.confirmations)))
            .collect(),
        Duration::from_millis(wallets.interval_ms),
        stop_rx.clone(),
    ));
    let reconciled = reconciled(config, &watched, &hot)?;
    for currency in &reconciled {
        wallet_metrics.start_currency(&wallets.chain, &currency.code);
    }
    let reconciliation = Arc::new(Mutex::new(None::<String>));
    readiness.register_check("reconciliation", {
        let reconciliation = Arc::clone(&reconciliation);
        move || match &*reconciliation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            None => CheckStatus::Ready,
            Some(why) => CheckStatus::Degraded(why.clone()),
        }
    })?;
    let reconciling = tokio::spawn(reconcile_loop(
        (
            EthRpc::new(&wallets.rpc_url)?,
            store.clone(),
            ledger.clone(),
        ),
        reconciled,
        (wallets.chain.clone(), wallet_metrics.clone()),
        reconciliation,
        Duration::from_millis(wallets.reconcile_interval_ms),
        stop_rx.clone(),
    ));
    // Deposits go on without OpenBao: the signer is degraded, not the daemon.
    readiness.register_check("signer", {
        let vault = vault.clone();
        move || match vault.unavailable() {
            None => CheckStatus::Ready,
            Some(why) => CheckStatus::Degraded(format!("withdrawals wait for the keys: {why}")),
        }
    })?;
    let side = tokio::spawn(side_loop(
        DepositAddresses::new(vault.clone(), store.clone()),
        vault,
        ledger,
        watched.iter().map(|c| c.code.clone()).collect(),
        (wallets.chain.clone(), wallet_metrics),
        Duration::from_millis(wallets.interval_ms),
        stop_rx,
    ));

    let local_addr = listener.local_addr().map_err(|source| WalletsError::Bind {
        addr: wallets.listen,
        source,
    })?;
    let router = http::router(AppState {
        metrics,
        readiness: readiness.clone(),
    });
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(listener, router, async move {
        let _ = http_stop_rx.await;
    }));
    print_summary(local_addr, config, &control_url, start_block, &hot)?;
    tracing::info!(http = %local_addr, chain = %wallets.chain, "wallet daemon up");

    let signal = signals.recv().await;
    tracing::info!(%signal, "stopping");
    stop_tx.send_replace(true);
    let _ = http_stop_tx.send(());
    let stopped = tokio::time::timeout(STOP_TIMEOUT, async {
        let _ = watching.await;
        let _ = signing.await;
        let _ = side.await;
        let _ = reconciling.await;
        let _ = server.await;
    })
    .await;
    if stopped.is_err() {
        tracing::warn!("the wallet daemon's tasks did not stop in time");
    }
    store.close().await;
    Ok(())
}

/// Derives the hot wallet of each currency and records it for the appliance, which holds no
/// seed; (code, address) of each.
async fn hot_wallets(
    config: &Config,
    vault: &SeedVault,
    store: &WalletStore,
) -> Result<Vec<(String, Address)>, WalletsError> {
    let wallets = &config.wallets;
    let path = DerivationPath::hot(COIN_TYPE_ETH).map_err(|e| WalletsError::Keys(e.to_string()))?;
    let mut hot = Vec::new();
    // Every currency has one: withdrawals pay from it and collection sweeps to it.
    for currency in &wallets.currencies {
        let address = vault
            .eth_address(&currency.code, &path)
            .await
            .map_err(|e| WalletsError::Keys(e.to_string()))?;
        store
            .set_hot_wallet(&wallets.chain, &currency.code, &address, &path)
            .await?;
        hot.push((currency.code.clone(), address));
    }
    Ok(hot)
}

/// Every interval until `stop`: one signer step, taking approved withdrawals through hold,
/// sign, broadcast and settle or release ([`Signer::step`]). The signer is made once the node
/// answers (it reads the chain id); a failed step is counted and retried at the next.
async fn signer_loop(
    (rpc_url, vault, store, bumps): (String, SeedVault, WalletStore, BumpPolicy),
    collected: Vec<CollectedCurrency>,
    ledger: ApplianceLedger,
    (chain, metrics): (String, WalletMetrics),
    confirmations: Vec<(String, u64)>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut signer = None;
    let mut collector = None;
    while !*stop.borrow() {
        if collector.is_none() {
            collector =
                start_collector(&rpc_url, &vault, &store, &metrics, &chain, &collected).await;
        }
        if signer.is_none() {
            let made = match EthRpc::new(&rpc_url) {
                Ok(rpc) => {
                    let parts = (vault.clone(), store.clone(), ledger.clone());
                    Signer::new(rpc, parts.0, parts.1, parts.2, metrics.clone(), &chain)
                        .await
                        .map(|signer| signer.with_tokens(tokens(&collected)).with_bumps(bumps))
                }
                Err(error) => Err(error.into()),
            };
            match made {
                Ok(made) => signer = Some(made),
                Err(error) => tracing::warn!(%error, "the signer cannot start yet"),
            }
        }
        if let Some(signer) = &signer {
            let step = signer
                .step(|code| {
                    confirmations
                        .iter()
                        .find(|(known, _)| known == code)
                        .map_or(u64::MAX, |(_, n)| *n)
                })
                .await;
            match step {
                Ok(0) => {}
                Ok(failed) => tracing::warn!(failed, "withdrawals failed a step; retrying"),
                Err(error) => tracing::warn!(%error, "the signer's step failed"),
            }
        }
        // After the signer's step, in the same task: the hot wallet's nonces are taken by one
        // signer at a time. A failed step is counted and logged by the collector.
        if let Some(collector) = &collector {
            let _ = collector.step().await;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            changed = stop.changed() => if changed.is_err() { return; },
        }
    }
}

/// `currency`'s `[[wallets.currencies]]` entry and its tiers in chain units (validated with
/// the configuration).
fn entry_and_tiers<'a>(
    config: &'a Config,
    currency: &WatchedCurrency,
) -> (Option<&'a config::wallets::WalletCurrency>, Option<Tiers>) {
    let section = config
        .wallets
        .currencies
        .iter()
        .find(|c| c.code == currency.code);
    let tiers = section
        .and_then(|section| section.tiers.as_ref())
        .and_then(|tiers| config::wallets::currency_tiers(tiers, currency.chain_decimals).ok());
    (section, tiers)
}

/// What the reconciliation compares: each watched currency with its hot wallet (from `hot`),
/// its warm and cold addresses and its tolerance in chain units (validated with the
/// configuration).
fn reconciled(
    config: &Config,
    watched: &[WatchedCurrency],
    hot: &[(String, Address)],
) -> Result<Vec<ReconciledCurrency>, WalletsError> {
    let mut reconciled = Vec::with_capacity(watched.len());
    for currency in watched {
        let Some((_, address)) = hot.iter().find(|(code, _)| *code == currency.code) else {
            return Err(WalletsError::NoHotWallet(currency.code.clone()));
        };
        let (section, tiers) = entry_and_tiers(config, currency);
        let tolerance = section
            .and_then(|section| {
                config::wallets::to_chain_units(
                    "reconcile_tolerance",
                    &section.reconcile_tolerance,
                    currency.chain_decimals,
                )
                .ok()
            })
            .unwrap_or(0);
        reconciled.push(ReconciledCurrency {
            code: currency.code.clone(),
            id: currency.id,
            asset: currency.asset.clone(),
            chain_decimals: currency.chain_decimals,
            precision: currency.precision,
            hot: address.clone(),
            warm: tiers
                .as_ref()
                .and_then(|t| t.warm.as_ref().map(|(w, _)| w.clone())),
            cold: tiers.and_then(|t| t.cold),
            tolerance,
        });
    }
    Ok(reconciled)
}

/// Every `interval` until `stop`: one reconciliation; a currency beyond its tolerance (or a
/// run that failed) is published in `problem`, which readiness shows as degraded.
async fn reconcile_loop(
    (rpc, store, ledger): (EthRpc, WalletStore, ApplianceLedger),
    currencies: Vec<ReconciledCurrency>,
    (chain, metrics): (String, WalletMetrics),
    problem: Arc<Mutex<Option<String>>>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let outcome = reconcile(&rpc, &store, &ledger, &currencies, (&chain, &metrics)).await;
        let now = match outcome {
            Ok(reports) => {
                let beyond: Vec<String> = reports
                    .iter()
                    .filter(|report| report.exceeds())
                    .map(|report| {
                        let json = report.to_json();
                        format!(
                            "{} differs by {} (tolerance {})",
                            report.currency, json["difference"], json["tolerance"]
                        )
                    })
                    .collect();
                (!beyond.is_empty())
                    .then(|| format!("the chain and the ledger differ: {}", beyond.join("; ")))
            }
            Err(error) => Some(format!("reconciliation failed: {error}")),
        };
        if let Some(why) = &now {
            tracing::warn!(%why, "reconciliation");
        }
        *problem.lock().unwrap_or_else(PoisonError::into_inner) = now;
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            changed = stop.changed() => if changed.is_err() { return; },
        }
    }
}

/// `peregrine wallets reconcile`: one reconciliation with the hot wallets the daemon recorded,
/// printed; [`WalletsError::Unreconciled`] when a currency exceeds its tolerance.
fn reconcile_command(
    args: &WalletsReconcileArgs,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(), WalletsError> {
    let loaded = config::load(&args.config.file_choice(), env, &args.config.overrides())?;
    let config = &loaded.config;
    if !config.wallets.enabled {
        return Err(WalletsError::Disabled);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(WalletsError::Runtime)?;
    let reports = runtime.block_on(async {
        let wallets = &config.wallets;
        let store = WalletStore::open(&wallets.store_url(&config.data.dir)).await?;
        let (watched, credited) = currencies(config);
        let mut hot = Vec::with_capacity(watched.len());
        for currency in &watched {
            if let Some((address, _)) = store.hot_wallet(&wallets.chain, &currency.code).await? {
                hot.push((currency.code.clone(), address));
            }
        }
        let (_, ledger) = appliance(config, credited)?;
        let rpc = EthRpc::new(&wallets.rpc_url)?;
        // A registry of its own: the command prints, the daemon exports.
        let metrics =
            WalletMetrics::new(&prometheus::Registry::new()).map_err(MetricsError::from)?;
        let reports = reconcile(
            &rpc,
            &store,
            &ledger,
            &reconciled(config, &watched, &hot)?,
            (&wallets.chain, &metrics),
        )
        .await;
        store.close().await;
        Ok::<_, WalletsError>(reports?)
    })?;
    print_reconciliation(&reports, args.json)?;
    match reports.iter().filter(|report| report.exceeds()).count() {
        0 => Ok(()),
        beyond => Err(WalletsError::Unreconciled(beyond)),
    }
}

fn print_reconciliation(reports: &[Reconciliation], json: bool) -> Result<(), WalletsError> {
    let text = if json {
        format!("{}\n", peregrine_wallet::reconcile::reports_json(reports))
    } else {
        let mut text = format!(
            "{:<8} {:>26} {:>26} {:>26}  {}\n",
            "currency", "on chain", "liabilities", "difference", "status"
        );
        for report in reports {
            let json = report.to_json();
            let field = |name: &str| json[name].as_str().unwrap_or_default().to_owned();
            let status = if report.exceeds() { "EXCEEDS" } else { "ok" };
            text.push_str(&format!(
                "{:<8} {:>26} {:>26} {:>26}  {status} (tolerance {})\n",
                report.currency,
                field("on_chain"),
                field("liabilities"),
                field("difference"),
                field("tolerance"),
            ));
        }
        text
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(WalletsError::Stdout)
}

/// The token currencies among `collected`: (code, contract).
fn tokens(collected: &[CollectedCurrency]) -> Vec<(String, Address)> {
    collected
        .iter()
        .filter_map(|currency| match &currency.asset {
            Asset::Token(contract) => Some((currency.code.clone(), contract.clone())),
            _ => None,
        })
        .collect()
}

/// The collector, once the node answers (it reads the chain id); `None` (logged) until then.
async fn start_collector(
    rpc_url: &str,
    vault: &SeedVault,
    store: &WalletStore,
    metrics: &WalletMetrics,
    chain: &str,
    currencies: &[CollectedCurrency],
) -> Option<Collector> {
    let rpc = match EthRpc::new(rpc_url) {
        Ok(rpc) => rpc,
        Err(error) => {
            tracing::warn!(%error, "the collector cannot start yet");
            return None;
        }
    };
    let config = CollectorConfig {
        chain: chain.to_owned(),
        currencies: currencies.to_vec(),
    };
    let made = Collector::new(rpc, vault.clone(), store.clone(), metrics.clone(), config).await;
    made.inspect_err(|error| tracing::warn!(%error, "the collector cannot start yet"))
        .ok()
}

/// What the collector sweeps: each watched currency with its hot wallet and, if configured,
/// its tiers (validated with the configuration).
fn collected(
    config: &Config,
    watched: &[WatchedCurrency],
    hot: &[(String, Address)],
) -> Vec<CollectedCurrency> {
    let mut collected = Vec::new();
    let Ok(path) = DerivationPath::hot(COIN_TYPE_ETH) else {
        return collected;
    };
    for currency in watched {
        let Some((_, address)) = hot.iter().find(|(code, _)| *code == currency.code) else {
            continue;
        };
        let (_, tiers) = entry_and_tiers(config, currency);
        collected.push(CollectedCurrency {
            code: currency.code.clone(),
            asset: currency.asset.clone(),
            hot: HotWallet {
                address: address.clone(),
                path: path.clone(),
            },
            confirmations: u64::from(currency.confirmations),
            tiers,
        });
    }
    collected
}

/// Every interval until `stop`: derive the deposit addresses asked for on the REST bridge, and
/// probe the appliance and OpenBao (so readiness shows either gone even while no credit is due
/// and nothing is to be signed; `wallet_signer_up` follows OpenBao).
async fn side_loop(
    addresses: DepositAddresses,
    vault: SeedVault,
    ledger: ApplianceLedger,
    codes: Vec<String>,
    (chain, metrics): (String, WalletMetrics),
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let coin_types: Vec<(&str, u32)> = codes.iter().map(|c| (c.as_str(), COIN_TYPE_ETH)).collect();
    while !*stop.borrow() {
        match addresses.derive_requested(&coin_types).await {
            Ok(0) => {}
            Ok(derived) => tracing::info!(derived, "deposit addresses derived"),
            Err(error) => {
                metrics
                    .signer_errors_total
                    .with_label_values(&[chain.as_str(), "derive"])
                    .inc();
                tracing::warn!(%error, "deriving requested deposit addresses failed");
            }
        }
        if let Some(problem) = ledger.probe().await {
            tracing::warn!(%problem, "appliance probe");
        }
        let keys = vault.probe().await;
        if let Some(problem) = &keys {
            tracing::warn!(%problem, "the signer cannot read its keys: withdrawals wait");
        }
        metrics
            .signer_up
            .with_label_values(&[chain.as_str()])
            .set(i64::from(keys.is_none()));
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            changed = stop.changed() => if changed.is_err() { return; },
        }
    }
}

fn print_summary(
    local_addr: std::net::SocketAddr,
    config: &Config,
    control_url: &str,
    start_block: u64,
    hot: &[(String, Address)],
) -> Result<(), WalletsError> {
    let wallets = &config.wallets;
    let codes: Vec<&str> = wallets.currencies.iter().map(|c| c.code.as_str()).collect();
    let mut stdout = std::io::stdout().lock();
    let mut lines = format!(
        "peregrine {} wallets\nwallets  http://{local_addr}  ({ALIVE_PATH} {READY_PATH} \
         {METRICS_PATH})\nchain  {}  {}  (from block {start_block})\nappliance  {control_url}\n\
         currencies  {}\n",
        env!("CARGO_PKG_VERSION"),
        wallets.chain,
        wallets.rpc_url,
        codes.join(" "),
    );
    // The hot wallets: withdrawals pay from them, collection sweeps to them (and the chain
    // coin's pays the gas top-ups of token addresses).
    for (code, address) in hot {
        lines.push_str(&format!("hot  {code}  {}\n", address.eip55()));
    }
    stdout
        .write_all(lines.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(WalletsError::Stdout)
}
