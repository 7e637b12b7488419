//! Replays `bench matching`'s seeded flow straight into `Engine::apply`: no pacing, no threads,
//! no clock reads. For instruction counts (`scripts/instructions` runs it under callgrind with
//! `--toggle-collect` on `apply_batch`) and for digests of the event stream and the final
//! snapshot, which compare two builds command for command.
//!
//! `cargo run --release -p peregrine-hotpath --example engine_flow -- [--flow flash-crash]
//! [--seed N] [--warmup N] [--commands N] [--digest [--legacy]]`
//!
//! `--legacy` digests the events as event format 1 wrote them: each event without the balance
//! fields format 2 added, and after each accepted command one `Balance` event per cell its
//! events changed (in (account, currency) order, the state after the command, from a shadow
//! ledger that applies [`Event::balance_changes`] to the balances the flow started with).
//! Equal to the digests of a format-1 build, it shows
//! that the new events carry exactly what the old ones did.

use std::collections::BTreeMap;
use std::process::ExitCode;

use peregrine_hotpath::sim::{self, FlowShape};
use peregrine_hotpath::{Engine, Envelope, Event};

/// Commands applied between two observations of their events, as in `bench matching`'s
/// throughput phase.
const BATCH_COMMANDS: usize = 1_024;
/// `bench matching`'s default seed (`peregrine_perf::args::SEED_DEFAULT`).
const SEED_DEFAULT: u64 = 0x5EED;

/// The command line.
struct Cli {
    /// `realistic` or `flash-crash`.
    flow: String,
    seed: u64,
    /// Commands applied one at a time before the measured batches.
    warmup: u64,
    /// Measured commands, rounded down to whole batches of 1 024.
    commands: u64,
    /// Digest the events rendered in event format 1 (see the module doc).
    legacy: bool,
    /// Print digests of every event and of the final snapshot, and rejects by reason.
    digest: bool,
}

/// Why the command line was refused.
#[derive(Debug)]
enum UsageError {
    Unknown(String),
    MissingValue(&'static str),
    NotANumber(&'static str, String),
    UnknownFlow(String),
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsageError::Unknown(flag) => write!(f, "unknown argument {flag:?}"),
            UsageError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            UsageError::NotANumber(flag, value) => write!(f, "{flag} {value:?} is not a number"),
            UsageError::UnknownFlow(flow) => write!(f, "unknown flow {flow:?}"),
        }
    }
}

fn number(flag: &'static str, value: Option<String>) -> Result<u64, UsageError> {
    let value = value.ok_or(UsageError::MissingValue(flag))?;
    value
        .parse()
        .map_err(|_| UsageError::NotANumber(flag, value))
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Cli, UsageError> {
    let mut cli = Cli {
        flow: "realistic".to_string(),
        seed: SEED_DEFAULT,
        warmup: 100_000,
        commands: 199_680,
        legacy: false,
        digest: false,
    };
    // Bounded by the arguments given.
    while let Some(flag) = argv.next() {
        match flag.as_str() {
            "--flow" => cli.flow = argv.next().ok_or(UsageError::MissingValue("--flow"))?,
            "--seed" => cli.seed = number("--seed", argv.next())?,
            "--warmup" => cli.warmup = number("--warmup", argv.next())?,
            "--commands" => cli.commands = number("--commands", argv.next())?,
            "--digest" => cli.digest = true,
            "--legacy" => cli.legacy = true,
            _ => return Err(UsageError::Unknown(flag)),
        }
    }
    Ok(cli)
}

fn shape(flow: &str) -> Result<FlowShape, UsageError> {
    match flow {
        "realistic" => Ok(FlowShape::Realistic),
        "flash-crash" => Ok(FlowShape::FLASH_CRASH),
        _ => Err(UsageError::UnknownFlow(flow.to_string())),
    }
}

/// FNV-1a, 64 bits: a stable digest (the std hasher is not guaranteed across releases).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// What the replay saw, when `--digest` asks for it.
struct Digest {
    events: Fnv,
    event_count: u64,
    rejects: BTreeMap<String, u64>,
    text: String,
    /// `--legacy`: the shadow ledger.
    legacy: Option<legacy::Shadow>,
}

impl Digest {
    /// Adds the events of one command.
    fn add(&mut self, events: &[Event]) {
        use std::fmt::Write;
        for event in events {
            self.text.clear();
            // Debug output covers every field of every event.
            match self.legacy.as_mut() {
                None => {
                    let _ = write!(self.text, "{event:?}");
                }
                Some(shadow) => {
                    let _ = write!(self.text, "{}", legacy::render(event));
                    shadow.apply(event);
                }
            }
            self.events.write(self.text.as_bytes());
            self.event_count += 1;
            if let Event::Rejected { reason } = event {
                *self.rejects.entry(reason.to_string()).or_default() += 1;
            }
        }
        if let Some(shadow) = self.legacy.as_mut() {
            for balance in shadow.command_balances() {
                self.events.write(balance.as_bytes());
                self.event_count += 1;
            }
        }
    }
}

/// The measured code: callgrind collects inside this function only.
#[inline(never)]
fn apply_batch(engine: &mut Engine, batch: &[Envelope], events: &mut Vec<Event>) {
    for command in batch {
        engine.apply(command, events);
    }
}

fn main() -> ExitCode {
    let prepared = parse(std::env::args().skip(1)).and_then(|cli| Ok((shape(&cli.flow)?, cli)));
    let (shape, cli) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!(
                "error: {error}\nusage: engine_flow [--flow realistic|flash-crash] [--seed N] \
                 [--warmup N] [--commands N] [--digest [--legacy]]"
            );
            return ExitCode::FAILURE;
        }
    };
    let (mut engine, mut flow) = match sim::bench_prepare(cli.seed, shape) {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut digest = cli.digest.then(|| Digest {
        events: Fnv::new(),
        event_count: 0,
        rejects: BTreeMap::new(),
        text: String::new(),
        legacy: cli.legacy.then(|| legacy::Shadow::new(&engine)),
    });
    let mut events: Vec<Event> = Vec::with_capacity(BATCH_COMMANDS * 16);
    for _ in 0..cli.warmup {
        engine.apply(&flow.next_command(), &mut events);
        if let Some(d) = digest.as_mut() {
            d.add(&events);
        }
        flow.observe(&events);
        events.clear();
    }
    let batches = cli.commands / BATCH_COMMANDS as u64;
    let mut batch = Vec::with_capacity(BATCH_COMMANDS);
    for _ in 0..batches {
        batch.clear();
        batch.extend((0..BATCH_COMMANDS).map(|_| flow.next_command()));
        events.clear();
        match digest.as_mut() {
            None => apply_batch(&mut engine, &batch, &mut events),
            // One command at a time, to digest each command's events (the same events: the
            // batch's commands are drawn before any of them is applied).
            Some(d) => {
                for command in &batch {
                    let start = events.len();
                    engine.apply(command, &mut events);
                    d.add(&events[start..]);
                }
            }
        }
        flow.observe(&events);
    }
    if let Err(error) = engine.audit() {
        eprintln!("error: the engine fails its audit: {error}");
        return ExitCode::FAILURE;
    }
    println!(
        "flow={} seed={} warmup={} commands={} live_orders={}",
        cli.flow,
        cli.seed,
        cli.warmup,
        batches * BATCH_COMMANDS as u64,
        engine.live_orders()
    );
    if let Some(d) = digest {
        if let Some(legacy::Shadow { error: Some(e), .. }) = &d.legacy {
            eprintln!("error: a balance change: {e}");
            return ExitCode::FAILURE;
        }
        let snapshot = match engine.snapshot() {
            Ok(bytes) => bytes,
            Err(error) => {
                eprintln!("error: snapshot: {error}");
                return ExitCode::FAILURE;
            }
        };
        let mut image = Fnv::new();
        image.write(&snapshot);
        println!(
            "events={} events_digest={:016x} snapshot_bytes={} snapshot_digest={:016x}",
            d.event_count,
            d.events.0,
            snapshot.len(),
            image.0
        );
        println!("rejects={:?}", d.rejects);
    }
    ExitCode::SUCCESS
}

/// Event format 1, rendered from format-2 events: the old `Debug` text of each event, and the
/// `Balance` events a format-1 engine appended to each accepted command.
mod legacy {
    use std::collections::HashMap;
    use std::fmt::Write;

    use peregrine_hotpath::{
        AccountId, Amount, CancelReason, ClientOrderId, CurrencyId, Engine, Event, MarketId,
        OrderId, Price, Qty, Side, TradeId,
    };

    /// The format-1 variants whose fields changed, with their old fields only (the `Debug`
    /// derive prints variant and field names, so the text is what format 1 printed).
    // Read only through the `Debug` derive, which dead-code analysis ignores.
    #[allow(dead_code)]
    #[derive(Debug)]
    enum Old {
        OrderAccepted {
            order: OrderId,
            account: AccountId,
            market: MarketId,
            client_order_id: ClientOrderId,
            side: Side,
            price: Price,
            qty: Qty,
        },
        OrderRested {
            order: OrderId,
            market: MarketId,
            side: Side,
            price: Price,
            qty: Qty,
        },
        Trade(Trade),
        OrderFilled {
            order: OrderId,
            account: AccountId,
            client_order_id: ClientOrderId,
        },
        OrderCancelled {
            order: OrderId,
            account: AccountId,
            client_order_id: ClientOrderId,
            market: MarketId,
            side: Side,
            price: Price,
            remaining: Qty,
            reason: CancelReason,
        },
        OrderReplaced {
            order: OrderId,
            account: AccountId,
            market: MarketId,
            side: Side,
            old_price: Price,
            old_qty: Qty,
            price: Price,
            qty: Qty,
            priority_kept: bool,
        },
        Balance {
            account: AccountId,
            currency: CurrencyId,
            available: Amount,
            locked: Amount,
        },
    }

    /// Format 1's trade.
    #[allow(dead_code)]
    #[derive(Debug)]
    struct Trade {
        trade: TradeId,
        market: MarketId,
        price: Price,
        qty: Qty,
        taker_side: Side,
        maker_order: OrderId,
        taker_order: OrderId,
        maker_account: AccountId,
        taker_account: AccountId,
        base_amount: Amount,
        quote_amount: Amount,
        maker_fee: Amount,
        taker_fee: Amount,
    }

    /// An event's format-1 `Debug` text.
    pub fn render(event: &Event) -> String {
        let old = match *event {
            Event::OrderAccepted {
                order,
                account,
                market,
                client_order_id,
                side,
                price,
                qty,
                ..
            } => Old::OrderAccepted {
                order,
                account,
                market,
                client_order_id,
                side,
                price,
                qty,
            },
            Event::OrderRested {
                order,
                market,
                side,
                price,
                qty,
                ..
            } => Old::OrderRested {
                order,
                market,
                side,
                price,
                qty,
            },
            Event::Trade(ref t) => Old::Trade(Trade {
                trade: t.trade,
                market: t.market,
                price: t.price,
                qty: t.qty,
                taker_side: t.taker_side,
                maker_order: t.maker_order,
                taker_order: t.taker_order,
                maker_account: t.maker_account,
                taker_account: t.taker_account,
                base_amount: t.base_amount,
                quote_amount: t.quote_amount,
                maker_fee: t.maker_fee,
                taker_fee: t.taker_fee,
            }),
            Event::OrderFilled {
                order,
                account,
                client_order_id,
                ..
            } => Old::OrderFilled {
                order,
                account,
                client_order_id,
            },
            Event::OrderCancelled {
                order,
                account,
                client_order_id,
                market,
                side,
                price,
                remaining,
                reason,
                ..
            } => Old::OrderCancelled {
                order,
                account,
                client_order_id,
                market,
                side,
                price,
                remaining,
                reason,
            },
            Event::OrderReplaced {
                order,
                account,
                market,
                side,
                old_price,
                old_qty,
                price,
                qty,
                priority_kept,
                ..
            } => Old::OrderReplaced {
                order,
                account,
                market,
                side,
                old_price,
                old_qty,
                price,
                qty,
                priority_kept,
            },
            _ => return format!("{event:?}"),
        };
        format!("{old:?}")
    }

    /// Balances as the events left them, from the engine's at the start.
    pub struct Shadow {
        cells: HashMap<(AccountId, CurrencyId), (Amount, Amount)>,
        /// Cells the current command changed.
        touched: Vec<(AccountId, CurrencyId)>,
        /// The first change that did not apply (the digest is then meaningless).
        pub error: Option<String>,
    }

    impl Shadow {
        pub fn new(engine: &Engine) -> Shadow {
            let cells = engine
                .ledger()
                .nonzero()
                .map(|(a, c, b)| ((a, c), (Amount(b.available), Amount(b.locked))))
                .collect();
            Shadow {
                cells,
                touched: Vec::new(),
                error: None,
            }
        }

        pub fn apply(&mut self, event: &Event) {
            for change in event.balance_changes().as_slice() {
                let cell = (change.account, change.currency);
                let (available, locked) = self.cells.get(&cell).copied().unwrap_or_default();
                match change.apply_to(available, locked) {
                    Some(after) => {
                        self.cells.insert(cell, after);
                    }
                    None => {
                        let error = format!("{change:?} does not apply to {cell:?}");
                        self.error.get_or_insert(error);
                    }
                }
                self.touched.push(cell);
            }
        }

        /// The current command's `Balance` events, as format 1 wrote them; forgets the command.
        pub fn command_balances(&mut self) -> Vec<String> {
            self.touched.sort_unstable();
            self.touched.dedup();
            let mut out = Vec::with_capacity(self.touched.len());
            for &(account, currency) in &self.touched {
                let (available, locked) = self.cells[&(account, currency)];
                let mut text = String::new();
                let old = Old::Balance {
                    account,
                    currency,
                    available,
                    locked,
                };
                let _ = write!(text, "{old:?}");
                out.push(text);
            }
            self.touched.clear();
            out
        }
    }
}
