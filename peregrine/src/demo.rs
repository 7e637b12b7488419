//! The demo market maker of `peregrine up --demo` (Arke's job, minimal): a fresh appliance shows
//! a live book and trades at `/` with no configuration.
//!
//! At start, [`DemoKeys::generate`] makes two fresh ed25519 keys (never written anywhere) for
//! two accounts of its own, a maker and a taker, registered with the QUIC server like
//! `[[quic.keys]]`; [`fund`] credits both with journaled deposits (actor
//! `service:market-maker`, deposit ids fixed per account and currency, so a restart never
//! credits twice). Then [`spawn`] runs a bot on the Rust SDK over QUIC, exactly like an outside
//! client: every [`REFRESH`] it moves each market's reference price one step of a deterministic,
//! bounded random walk, cancels the maker's quotes and quotes [`LEVELS`] levels each side around
//! it; every [`TAKE_EVERY`] refreshes the taker crosses the spread with a small IOC order, so
//! trades print. [`Running::stop`] cancels every quote and logs both sessions out, before the
//! QUIC server stops.
//!
//! Never: trades for anyone else, touches the engine other than by journaled commands, or runs
//! without `--demo`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use peregrine_client::{Client, KeyId, Placed, ServerTrust, SigningKey};
use peregrine_core::catalog::{Catalog, Market};
use peregrine_core::{EngineHandle, Request};
use peregrine_gateway::quic::auth::ApiKeyConfig;
use peregrine_hotpath::{
    AccountId, Actor, CommandKind, DepositId, RejectReason, Service, Side, TimeInForce,
};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use ring::rand::{SecureRandom, SystemRandom};
use rust_decimal::Decimal;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The maker's and the taker's accounts: just below identity's default range (1024 up), above
/// what examples and tests configure by hand.
pub const DEMO_ACCOUNTS: [u32; 2] = [1000, 1001];
/// Their QUIC key ids (static keys win over identity's: these must not be configured).
pub const DEMO_KEY_IDS: [u64; 2] = [0xDE30_0000, 0xDE30_0001];
/// Deposit ids from here up are the demo's: `from + (account << 16) + currency id`, inside the
/// operators' range (below 2^62) at its very top, where no operator counts to.
pub const DEMO_DEPOSIT_IDS_FROM: u64 = (1 << 62) - (1 << 32);
/// How often the quotes move.
pub const REFRESH: Duration = Duration::from_millis(1000);
/// Levels quoted each side.
pub const LEVELS: u32 = 5;
/// The taker crosses once every this many refreshes.
pub const TAKE_EVERY: u64 = 3;
/// Each step of the walk moves the reference by at most this fraction (0.1 %).
const STEP_FRACTION: Decimal = Decimal::from_parts(1, 0, 0, false, 3);
/// The walk stays within this fraction of where it started (±5 %: inside the default markets'
/// 10 % price band around the last trade).
const WALK_BOUND_FRACTION: Decimal = Decimal::from_parts(5, 0, 0, false, 2);
/// Distance between quote levels, as a fraction of the reference (0.05 %).
const LEVEL_SPACING_FRACTION: Decimal = Decimal::from_parts(5, 0, 0, false, 4);
/// Quote currency worth of each level (the quantity is this over the price).
const LEVEL_NOTIONAL: Decimal = Decimal::from_parts(1000, 0, 0, false, 0);
/// The walk starts at the market's configured reference price, or without one at its highest
/// price over this.
const START_DIVISOR: Decimal = Decimal::from_parts(200, 0, 0, false, 0);
/// What each demo account is credited: quote currencies and the others.
const QUOTE_DEPOSIT: Decimal = Decimal::from_parts(10_000_000, 0, 0, false, 0);
const BASE_DEPOSIT: Decimal = Decimal::from_parts(1000, 0, 0, false, 0);
/// Seed of the walk: every demo run moves the same way.
const WALK_SEED: u64 = 0x9E37_79B9_7F4A_7C15;
/// Longest a funding deposit waits for its outcome.
const DEPOSIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the demo did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// `--demo` trades over QUIC.
    #[error("--demo needs QUIC order entry ([quic] enabled = true)")]
    QuicDisabled,
    /// A demo account is inside the range identity gives to users.
    #[error("--demo: account {account} is inside [auth] account_id_first..account_id_end")]
    AccountTaken {
        /// The account.
        account: u32,
    },
    /// No randomness for the keys.
    #[error("--demo: no randomness for its keys")]
    Random,
    /// The SDK refused a key, a logon or a request.
    #[error("--demo: {0}")]
    Client(#[from] peregrine_client::ClientError),
    /// A funding deposit was refused.
    #[error("--demo: the deposit of {currency} was refused: {reason}")]
    Deposit {
        /// The currency.
        currency: String,
        /// Why.
        reason: String,
    },
    /// Its metrics could not be registered.
    #[error("--demo metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The demo's two keys, made at start.
pub struct DemoKeys {
    seeds: [[u8; 32]; 2],
}

impl std::fmt::Debug for DemoKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DemoKeys(..)")
    }
}

impl DemoKeys {
    /// Two fresh keys, checked against identity's account range (`identity`: first..end).
    pub fn generate(identity: Option<std::ops::Range<u32>>) -> Result<DemoKeys, DemoError> {
        if let Some(range) = identity
            && let Some(&account) = DEMO_ACCOUNTS.iter().find(|a| range.contains(a))
        {
            return Err(DemoError::AccountTaken { account });
        }
        let random = SystemRandom::new();
        let mut seeds = [[0u8; 32]; 2];
        for seed in &mut seeds {
            random.fill(seed).map_err(|_| DemoError::Random)?;
        }
        Ok(DemoKeys { seeds })
    }

    /// The `[[quic.keys]]` entries of the two keys.
    pub fn quic_keys(&self) -> Result<Vec<ApiKeyConfig>, DemoError> {
        (0..2)
            .map(|i| {
                Ok(ApiKeyConfig {
                    key_id: DEMO_KEY_IDS[i],
                    account: DEMO_ACCOUNTS[i],
                    public_key: SigningKey::from_seed(&self.seeds[i])?.public_key_hex(),
                })
            })
            .collect()
    }
}

/// Credits each demo account with every currency of the catalog, once (journaled; a restart's
/// deposit is a duplicate and credits nothing).
pub async fn fund(engine: &EngineHandle, catalog: &Catalog) -> Result<(), DemoError> {
    let quotes: Vec<&str> = catalog.markets().iter().map(|m| m.quote.as_str()).collect();
    for account in DEMO_ACCOUNTS {
        for currency in catalog.currencies() {
            let amount = if quotes.contains(&currency.code.as_str()) {
                QUOTE_DEPOSIT
            } else {
                BASE_DEPOSIT
            };
            let refused = |reason: String| DemoError::Deposit {
                currency: currency.code.clone(),
                reason,
            };
            let minor = currency
                .scale
                .to_minor(amount)
                .map_err(|e| refused(e.to_string()))?;
            let deposit = DepositId(
                DEMO_DEPOSIT_IDS_FROM + (u64::from(account) << 16) + u64::from(currency.id.0),
            );
            let command = CommandKind::Deposit {
                account: AccountId(account),
                currency: currency.id,
                amount: minor,
                deposit,
            };
            let ticket = engine
                .submit(Request::new(Actor::Service(Service::MarketMaker), command))
                .map_err(|e| refused(e.to_string()))?;
            let executed = tokio::time::timeout(DEPOSIT_TIMEOUT, ticket)
                .await
                .map_err(|_| refused("no outcome in time".to_owned()))?
                .map_err(|e| refused(e.to_string()))?;
            match executed.rejected() {
                // Funded by an earlier start.
                None | Some(RejectReason::DuplicateDeposit) => {}
                Some(reason) => return Err(refused(format!("{reason:?}"))),
            }
        }
    }
    Ok(())
}

/// The demo's metrics.
#[derive(Clone, Debug)]
struct DemoMetrics {
    /// `demo_orders_total{role, outcome}`: role `maker` or `taker`; `accepted` or `rejected`.
    orders_total: IntCounterVec,
    /// `demo_refresh_seconds{market}`: one refresh of a market's quotes.
    refresh_seconds: HistogramVec,
}

impl DemoMetrics {
    fn register(registry: &Registry) -> Result<DemoMetrics, prometheus::Error> {
        // 100 µs doubling to ~3 s: a cancel and ten orders over loopback QUIC.
        let buckets: Vec<f64> = (0..16).map(|i| 100e-6 * f64::from(1u32 << i)).collect();
        let metrics = DemoMetrics {
            orders_total: IntCounterVec::new(
                Opts::new(
                    "demo_orders_total",
                    "orders the demo market maker placed, by role and outcome",
                ),
                &["role", "outcome"],
            )?,
            refresh_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "demo_refresh_seconds",
                    "time of one refresh of a market's demo quotes (cancel, then quote)",
                )
                .buckets(buckets),
                &["market"],
            )?,
        };
        registry.register(Box::new(metrics.orders_total.clone()))?;
        registry.register(Box::new(metrics.refresh_seconds.clone()))?;
        Ok(metrics)
    }

    fn count(&self, role: &str, placed: &Result<Placed, peregrine_client::ClientError>) {
        let outcome = match placed {
            Ok(Placed::Ack { .. }) => "accepted",
            other => {
                tracing::debug!(role, outcome = ?other, "demo order refused");
                "rejected"
            }
        };
        self.orders_total.with_label_values(&[role, outcome]).inc();
    }
}

/// The running bot.
#[derive(Debug)]
pub struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Cancels the quotes and logs both sessions out; bounded.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            tracing::warn!("the demo market maker did not stop in time");
        }
    }
}

/// One market as the bot sees it.
#[derive(Debug, Clone)]
struct Quoted {
    name: String,
    tick: Decimal,
    lot: Decimal,
    start: Decimal,
    reference: Decimal,
}

/// Logs both keys on to the QUIC server at `addr` (pinned by `fingerprint`) and starts the bot.
pub async fn spawn(
    keys: DemoKeys,
    addr: SocketAddr,
    fingerprint: [u8; 32],
    catalog: &Catalog,
    registry: &Registry,
) -> Result<Running, DemoError> {
    let metrics = DemoMetrics::register(registry)?;
    // A wildcard listen address is reached on loopback.
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let connect = |i: usize| {
        let seed = keys.seeds[i];
        async move {
            let key = SigningKey::from_seed(&seed)?;
            let trust = ServerTrust::Fingerprint(fingerprint);
            Client::connect(addr, trust, KeyId(DEMO_KEY_IDS[i]), key).await
        }
    };
    let maker = connect(0).await?;
    let taker = match connect(1).await {
        Ok(taker) => taker,
        Err(error) => {
            maker.close().await;
            return Err(error.into());
        }
    };
    let markets: Vec<Quoted> = catalog
        .markets()
        .iter()
        .map(|m| {
            let start = round_to(start_price(m), m.units.tick);
            Quoted {
                name: m.name.clone(),
                tick: m.units.tick,
                lot: m.units.lot,
                start,
                reference: start,
            }
        })
        .collect();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(maker, taker, markets, metrics, stopped));
    tracing::info!(accounts = ?DEMO_ACCOUNTS, "demo market maker quoting");
    Ok(Running { stop, task })
}

/// Where a market's walk starts: its reference price (the centre of its price band before the
/// first trade), or a fraction of its highest price when it has none.
fn start_price(market: &Market) -> Decimal {
    let risk = &market.spec.risk;
    if risk.reference_price.0 > 0 {
        market.units.price_decimal(risk.reference_price)
    } else {
        market.units.price_decimal(risk.max_price) / START_DIVISOR
    }
}

async fn run(
    maker: Client,
    taker: Client,
    mut markets: Vec<Quoted>,
    metrics: DemoMetrics,
    mut stopped: watch::Receiver<bool>,
) {
    let mut walk = Walk(WALK_SEED);
    let mut ticks = tokio::time::interval(REFRESH);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for round in 0u64.. {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.wait_for(|&stop| stop) => break,
        }
        for market in &mut markets {
            let moved_up = walk.step(market);
            let started = Instant::now();
            quote(&maker, market, &metrics).await;
            metrics
                .refresh_seconds
                .with_label_values(&[market.name.as_str()])
                .observe(started.elapsed().as_secs_f64());
            if round % TAKE_EVERY == TAKE_EVERY - 1 {
                take(&taker, market, moved_up, &metrics).await;
            }
        }
    }
    // Quotes do not outlive the bot: a stopped appliance's next start quotes afresh.
    if let Err(error) = maker.mass_cancel(None, None).await {
        tracing::warn!(%error, "the demo market maker could not cancel its quotes");
    }
    for client in [maker, taker] {
        if let Err(error) = client.logout().await {
            tracing::warn!(%error, "the demo market maker could not log out");
        }
    }
}

/// Cancels the maker's quotes in `market` and quotes [`LEVELS`] each side of the reference.
async fn quote(maker: &Client, market: &Quoted, metrics: &DemoMetrics) {
    let Ok(info) = maker.market(&market.name) else {
        return;
    };
    if let Err(error) = maker.mass_cancel(Some(info.market), None).await {
        tracing::debug!(%error, market = %market.name, "demo cancel failed");
        return;
    }
    let spacing = round_to(market.reference * LEVEL_SPACING_FRACTION, market.tick).max(market.tick);
    let qty = round_to(LEVEL_NOTIONAL / market.reference, market.lot).max(market.lot);
    for level in 1..=LEVELS {
        let offset = spacing * Decimal::from(level);
        for (side, price) in [
            (Side::Buy, market.reference - offset),
            (Side::Sell, market.reference + offset),
        ] {
            if price <= Decimal::ZERO {
                continue;
            }
            let placed = match maker.limit(&market.name, side, &price.to_string(), &qty.to_string())
            {
                Ok(order) => maker.place(order).await,
                Err(error) => Err(error),
            };
            metrics.count("maker", &placed);
        }
    }
}

/// The taker crosses the spread the way the reference moved, with a quarter of a level.
async fn take(taker: &Client, market: &Quoted, moved_up: bool, metrics: &DemoMetrics) {
    let spacing = round_to(market.reference * LEVEL_SPACING_FRACTION, market.tick).max(market.tick);
    let qty = round_to(
        LEVEL_NOTIONAL / market.reference / Decimal::from(4),
        market.lot,
    )
    .max(market.lot);
    let (side, price) = if moved_up {
        (Side::Buy, market.reference + spacing)
    } else {
        (Side::Sell, market.reference - spacing)
    };
    let placed = match taker.limit(&market.name, side, &price.to_string(), &qty.to_string()) {
        Ok(mut order) => {
            order.tif = TimeInForce::Ioc;
            taker.place(order).await
        }
        Err(error) => Err(error),
    };
    metrics.count("taker", &placed);
}

/// `value` rounded to a multiple of `unit` (toward zero).
fn round_to(value: Decimal, unit: Decimal) -> Decimal {
    if unit <= Decimal::ZERO {
        return value;
    }
    (value / unit).trunc() * unit
}

/// A deterministic random walk (xorshift64): every run moves the same way, within
/// ±[`WALK_BOUND_FRACTION`] of the start.
struct Walk(u64);

impl Walk {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Moves `market`'s reference by up to [`STEP_FRACTION`], up or down; whether it went up.
    fn step(&mut self, market: &mut Quoted) -> bool {
        let draw = self.next();
        let up = draw & 1 == 1;
        // 0..=1000 thousandths of the largest step.
        let size = Decimal::from((draw >> 1) % 1001) / Decimal::from(1000);
        let delta = round_to(market.reference * STEP_FRACTION * size, market.tick);
        let bound = market.start * WALK_BOUND_FRACTION;
        let next = if up {
            market.reference + delta
        } else {
            market.reference - delta
        };
        // Bounded: a step past the bound turns back.
        market.reference = if (next - market.start).abs() > bound {
            if up {
                market.reference - delta
            } else {
                market.reference + delta
            }
        } else {
            next
        };
        debug_assert!((market.reference - market.start).abs() <= bound + delta);
        up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_is_deterministic_and_bounded() {
        let market = Quoted {
            name: "btcusd".to_owned(),
            tick: Decimal::new(1, 2),
            lot: Decimal::new(1, 4),
            start: Decimal::from(50_000),
            reference: Decimal::from(50_000),
        };
        let run = || {
            let (mut walk, mut m) = (Walk(WALK_SEED), market.clone());
            (0..20_000)
                .map(|_| {
                    walk.step(&mut m);
                    m.reference
                })
                .collect::<Vec<_>>()
        };
        let path = run();
        assert_eq!(path, run());
        let bound = market.start * WALK_BOUND_FRACTION + market.start * STEP_FRACTION;
        assert!(path.iter().all(|p| (*p - market.start).abs() <= bound));
        assert!(path.iter().any(|p| *p != market.start), "it moves");
        assert!(path.iter().all(|p| (*p / market.tick).fract().is_zero()));
    }
}
