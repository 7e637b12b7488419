//! A seeded generator of realistic command flows for tests and benchmarks; the engine never uses
//! it. The flow follows what real venues see: a random-walk mid price, depth that thins out with
//! distance from the touch (power law), most orders cancelled before they fill, a share of IOC
//! orders and of modifies, many accounts.

use std::collections::HashMap;

use crate::command::{
    CancelReplace, CommandKind, Envelope, FeeRates, MarketRisk, MarketSize, MarketSpec, NewOrder,
    OrderKind, OrderRef, SelfTradePrevention, TimeInForce,
};
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::event::Event;
use crate::ids::{
    AccountId, Amount, ClientOrderId, CurrencyId, DepositId, MarketId, Price, Qty, Side,
    TimestampNs,
};

/// xorshift64*: tiny, fast and good enough to shape a workload.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Shape of the flow.
#[derive(Clone, Debug)]
pub struct FlowParams {
    /// Seed of the generator.
    pub seed: u64,
    /// Trading accounts.
    pub accounts: u32,
    /// Markets (all trade the same pair of currencies).
    pub markets: u32,
    /// Percent of commands that cancel a previously placed order.
    pub cancel_percent: u64,
    /// Percent that modify one.
    pub replace_percent: u64,
    /// Percent that are IOC orders crossing the spread.
    pub ioc_percent: u64,
    /// Percent that are market orders.
    pub market_percent: u64,
    /// Orders the generator remembers as cancel/replace targets; also the standing depth it
    /// keeps: above it, a new passive order becomes a cancel instead.
    pub tracked_orders: usize,
    /// How the mid price moves.
    pub shape: FlowShape,
}

/// How the mid price of a flow moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowShape {
    /// A random walk of about a tick every 32 commands.
    Realistic,
    /// The random walk, interrupted every cycle by a sweep of the mid to twice its level and back
    /// (a flash crash mirrored upwards): `quiet_commands` of random walk, then `sweep_commands`
    /// rising linearly to 2x, then as many falling back. Prices move far from the last trade,
    /// which is what a band applied to passive orders gets wrong.
    FlashCrash {
        /// Random-walk commands between sweeps.
        quiet_commands: u64,
        /// Commands of each half of the sweep (up, then down).
        sweep_commands: u64,
    },
}

impl FlowShape {
    /// The flash crash `bench matching --flow flash-crash` runs: a sweep every 60 000 commands,
    /// 20 ticks per command at a mid of 100 000, fast enough that quotes outrun the last trade
    /// by more than the flow's 20 % band.
    pub const FLASH_CRASH: FlowShape = FlowShape::FlashCrash {
        quiet_commands: 50_000,
        sweep_commands: 5_000,
    };
}

impl Default for FlowParams {
    fn default() -> Self {
        FlowParams {
            seed: 42,
            accounts: 1_000,
            markets: 1,
            cancel_percent: 30,
            replace_percent: 10,
            ioc_percent: 8,
            market_percent: 2,
            tracked_orders: 20_000,
            shape: FlowShape::Realistic,
        }
    }
}

/// Accounts in `bench matching`'s flow.
pub const BENCH_ACCOUNTS: u32 = 10_000;

/// The engine limits `bench matching` runs with (risk and ledger on), shared with the tools that
/// replay its flow (`hotpath/examples/engine_flow.rs`).
pub fn bench_engine_config() -> EngineConfig {
    EngineConfig {
        max_accounts: BENCH_ACCOUNTS,
        max_currencies: 4,
        max_markets: 4,
        max_orders: 1 << 20,
        // Every price the flows can quote (mids from 50 000 to ~200 000 ticks, quotes up to 500
        // ticks away): the flash crash leaves passive orders resting along the whole sweep, and
        // the flow stops tracking (never cancels) orders the mid has passed, so they stay.
        max_levels_per_side: 1 << 18,
        max_open_orders_per_account: 10_000,
        ..EngineConfig::default()
    }
}

/// `bench matching`'s engine and one-market flow, with the flow's setup applied.
pub fn bench_prepare(seed: u64, shape: FlowShape) -> Result<(Engine, Flow), &'static str> {
    let mut engine = Engine::new(bench_engine_config())?;
    let mut flow = Flow::new(FlowParams {
        seed,
        accounts: BENCH_ACCOUNTS,
        markets: 1,
        shape,
        ..FlowParams::default()
    });
    let mut events = Vec::new();
    for command in flow.setup() {
        engine.apply(&command, &mut events);
        events.clear();
    }
    Ok((engine, flow))
}

const BASE: CurrencyId = CurrencyId(0);
const QUOTE: CurrencyId = CurrencyId(1);
const MID_START: u64 = 100_000;

/// The generator.
#[derive(Debug)]
pub struct Flow {
    params: FlowParams,
    rng: Rng,
    ts_ns: u64,
    mids: Vec<u64>,
    next_client: u64,
    /// (account, client id, market, side, price) of orders that may still be live.
    tracked: Vec<(AccountId, ClientOrderId, MarketId, Side, u64)>,
    /// Position in `tracked` by (account, client id), so fills seen in `observe` untrack.
    positions: HashMap<(u32, u64), usize>,
    /// Trading commands generated so far (the flash crash's clock).
    trading_commands: u64,
    /// Mid of each market when its current sweep began.
    sweep_bases: Vec<u64>,
}

impl Flow {
    /// A flow with these parameters.
    pub fn new(params: FlowParams) -> Flow {
        Flow {
            rng: Rng::new(params.seed),
            ts_ns: 1_700_000_000_000_000_000,
            mids: vec![MID_START; params.markets as usize],
            next_client: 1,
            tracked: Vec::with_capacity(params.tracked_orders),
            positions: HashMap::with_capacity(params.tracked_orders),
            trading_commands: 0,
            sweep_bases: vec![MID_START; params.markets as usize],
            params,
        }
    }

    fn command(&mut self, kind: CommandKind) -> Envelope {
        // About one command per microsecond of simulated time.
        self.ts_ns += 1_000;
        Envelope {
            ts: TimestampNs(self.ts_ns),
            actor: crate::Actor::System,
            kind,
        }
    }

    /// Currencies, markets and generous deposits for every account.
    pub fn setup(&mut self) -> Vec<Envelope> {
        let mut out = vec![
            self.command(CommandKind::CurrencyAdd { currency: BASE }),
            self.command(CommandKind::CurrencyAdd { currency: QUOTE }),
        ];
        for m in 0..self.params.markets {
            out.push(self.command(CommandKind::MarketAdd(MarketSpec {
                market: MarketId(m),
                base: BASE,
                quote: QUOTE,
                base_per_lot: 1_000,
                quote_per_tick_lot: 1,
                risk: MarketRisk {
                    max_price: Price(10_000_000),
                    max_qty: Qty(1_000_000),
                    max_notional: Amount(1 << 50),
                    band_bps: 2_000,
                    reference_price: Price(MID_START),
                },
                fees: FeeRates {
                    maker_ppm: 100,
                    taker_ppm: 200,
                },
            })));
        }
        for a in 0..self.params.accounts {
            for currency in [BASE, QUOTE] {
                out.push(self.command(CommandKind::Deposit {
                    account: AccountId(a),
                    currency,
                    amount: Amount(1 << 50),
                    deposit: DepositId(u64::from(a) << 16 | u64::from(currency.0)),
                }));
            }
        }
        out
    }

    /// Tells the generator what the engine did, as a client learns of its fills and cancels:
    /// orders that ended are no longer cancel or replace targets.
    pub fn observe(&mut self, events: &[Event]) {
        for e in events {
            let key = match e {
                Event::OrderFilled {
                    account,
                    client_order_id,
                    ..
                }
                | Event::OrderCancelled {
                    account,
                    client_order_id,
                    ..
                } => (account.0, client_order_id.0),
                _ => continue,
            };
            if let Some(i) = self.positions.remove(&key) {
                self.untrack(i);
            }
        }
    }

    /// Removes entry `i` from `tracked` (swap-remove, keeping `positions` in step).
    fn untrack(&mut self, i: usize) -> (AccountId, ClientOrderId, MarketId, Side, u64) {
        let entry = self.tracked.swap_remove(i);
        self.positions.remove(&(entry.0.0, entry.1.0));
        if let Some(moved) = self.tracked.get(i) {
            self.positions.insert((moved.0.0, moved.1.0), i);
        }
        entry
    }

    /// Removes and returns a tracked order that is probably still live: one the mid has moved
    /// through was probably filled, so it is dropped and another tried (a few times at most).
    fn pick_live(
        &mut self,
        m: usize,
        mid: u64,
    ) -> Option<(AccountId, ClientOrderId, MarketId, Side, u64)> {
        for _ in 0..4 {
            if self.tracked.is_empty() {
                return None;
            }
            let i = self.rng.below(self.tracked.len() as u64) as usize;
            let entry = self.untrack(i);
            let (_, _, market, side, price) = entry;
            let market_mid = if market.0 as usize == m {
                mid
            } else {
                self.mids[market.0 as usize]
            };
            let passed = match side {
                Side::Buy => price >= market_mid,
                Side::Sell => price <= market_mid,
            };
            if !passed {
                return Some(entry);
            }
        }
        None
    }

    /// Moves market `m`'s mid along the flash crash's sweep, if the flow has one and it is on.
    fn sweep(&mut self, m: usize) {
        let FlowShape::FlashCrash {
            quiet_commands,
            sweep_commands,
        } = self.params.shape
        else {
            return;
        };
        assert!(
            sweep_commands > 1,
            "a sweep needs two commands per half at least"
        );
        let at = self.trading_commands % (quiet_commands + 2 * sweep_commands);
        if at < quiet_commands {
            return;
        }
        if at == quiet_commands {
            self.sweep_bases[m] = self.mids[m];
        }
        let base = self.sweep_bases[m];
        // Steps up from the base: rising for the first half (to 2x on its last command), falling
        // for the second (to the base on its last).
        let into = at - quiet_commands;
        let rise = if into < sweep_commands {
            into
        } else {
            2 * sweep_commands - 1 - into
        };
        self.mids[m] = base + base * rise / (sweep_commands - 1);
    }

    /// Depth offset from the touch in ticks: power law, most near the touch.
    fn offset(&mut self) -> u64 {
        // 1 / u with u uniform in (0, 1], capped: P(offset > k) ~ 1/k.
        let u = self.rng.below(1_000) + 1;
        (1_000 / u).min(500)
    }

    /// The next trading command.
    pub fn next_command(&mut self) -> Envelope {
        let p = self.params.clone();
        let m = self.rng.below(u64::from(p.markets)) as usize;
        // Random walk of the mid price: a tick every ~32 commands, as on a liquid book where most
        // messages are quotes, not price moves.
        match self.rng.below(64) {
            0 => self.mids[m] += 1,
            1 => self.mids[m] = self.mids[m].saturating_sub(1).max(MID_START / 2),
            _ => {}
        }
        self.sweep(m);
        self.trading_commands += 1;
        let mid = self.mids[m];
        let roll = self.rng.below(100);
        let deep = self.tracked.len() >= p.tracked_orders;
        if (roll < p.cancel_percent || deep && roll < 100 - p.ioc_percent - p.market_percent)
            && let Some((account, client, _, _, _)) = self.pick_live(m, mid)
        {
            return self.command(CommandKind::Cancel {
                account,
                target: OrderRef::Client(client),
            });
        }
        if roll < p.cancel_percent + p.replace_percent && !self.tracked.is_empty() {
            let i = self.rng.below(self.tracked.len() as u64) as usize;
            let (account, client, _, side, price) = self.tracked[i];
            let (new_price, new_qty) = if self.rng.percent(50) {
                (None, Qty(1 + self.rng.below(5)))
            } else {
                let step = 1 + self.rng.below(3);
                let price = match side {
                    Side::Buy => price.saturating_sub(step).max(1),
                    Side::Sell => price + step,
                };
                self.tracked[i].4 = price;
                (Some(Price(price)), Qty(1 + self.rng.below(10)))
            };
            return self.command(CommandKind::CancelReplace(CancelReplace {
                account,
                target: OrderRef::Client(client),
                new_price,
                new_qty,
            }));
        }
        let account = AccountId(self.rng.below(u64::from(p.accounts)) as u32);
        let side = if self.rng.percent(50) {
            Side::Buy
        } else {
            Side::Sell
        };
        let client = ClientOrderId(self.next_client);
        self.next_client += 1;
        let qty = Qty(1 + self.rng.below(10));
        let aggressive = roll >= 100 - p.ioc_percent - p.market_percent;
        let (kind, tif) = if roll >= 100 - p.market_percent {
            (
                OrderKind::Market {
                    size: MarketSize::Qty(qty),
                },
                TimeInForce::Ioc,
            )
        } else if aggressive {
            let through = self.rng.below(5);
            let price = match side {
                Side::Buy => mid + through,
                Side::Sell => mid - through,
            };
            (
                OrderKind::Limit {
                    price: Price(price),
                    qty,
                },
                TimeInForce::Ioc,
            )
        } else {
            // Passive: rests away from the mid on its own side (a few cross by one tick).
            let offset = self.offset();
            let price = match side {
                Side::Buy => mid.saturating_sub(offset).max(1),
                Side::Sell => mid + offset,
            };
            if self.tracked.len() < p.tracked_orders {
                self.tracked
                    .push((account, client, MarketId(m as u32), side, price));
            }
            (
                OrderKind::Limit {
                    price: Price(price),
                    qty,
                },
                TimeInForce::Gtc,
            )
        };
        self.command(CommandKind::NewOrder(NewOrder {
            account,
            market: MarketId(m as u32),
            client_order_id: client,
            side,
            kind,
            tif,
            stp: SelfTradePrevention::CancelNewest,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mids of market 0 after each of `commands` trading commands.
    fn mids(shape: FlowShape, commands: u64) -> Vec<u64> {
        let mut flow = Flow::new(FlowParams {
            shape,
            ..FlowParams::default()
        });
        flow.setup();
        (0..commands)
            .map(|_| {
                flow.next_command();
                flow.mids[0]
            })
            .collect()
    }

    /// The flash crash sweeps the mid to twice its level and back within a cycle; the realistic
    /// flow never moves that far.
    #[test]
    fn flash_crash_sweeps_to_twice_the_mid_and_back() {
        let FlowShape::FlashCrash {
            quiet_commands,
            sweep_commands,
        } = FlowShape::FLASH_CRASH
        else {
            unreachable!("the flash crash is a sweep")
        };
        let cycle = quiet_commands + 2 * sweep_commands;
        let crash = mids(FlowShape::FLASH_CRASH, cycle + 1);
        let base = crash[quiet_commands as usize];
        let top = *crash.iter().max().unwrap();
        assert_eq!(top, 2 * base, "the sweep tops out at twice the mid");
        assert_eq!(crash[cycle as usize - 1], base, "and comes back");
        let calm = mids(FlowShape::Realistic, cycle + 1);
        assert!(*calm.iter().max().unwrap() < MID_START + MID_START / 10);
    }
}
