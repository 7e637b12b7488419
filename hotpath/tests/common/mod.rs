//! Test fixture: an engine with two currencies, one market and funded accounts.
#![allow(dead_code)] // Each test crate uses a different part of the fixture.

use peregrine_hotpath::*;

pub const BTC: CurrencyId = CurrencyId(0);
pub const USD: CurrencyId = CurrencyId(1);
pub const M: MarketId = MarketId(0);
/// Base minor units per lot.
pub const BPL: u64 = 1_000;
/// Quote minor units per tick per lot.
pub const QPTL: u64 = 1;

pub fn risk() -> MarketRisk {
    MarketRisk {
        max_price: Price(1_000_000),
        max_qty: Qty(1_000_000),
        max_notional: Amount(1_000_000_000_000),
        band_bps: 5_000,
        reference_price: Price(10_000),
    }
}

pub fn spec() -> MarketSpec {
    MarketSpec {
        market: M,
        base: BTC,
        quote: USD,
        base_per_lot: BPL,
        quote_per_tick_lot: QPTL,
        risk: risk(),
        fees: FeeRates {
            maker_ppm: 0,
            taker_ppm: 0,
        },
    }
}

pub struct Fixture {
    pub engine: Engine,
    pub events: Vec<Event>,
    pub ts: u64,
    pub next_client_id: u64,
}

impl Fixture {
    pub fn with_config(config: EngineConfig) -> Fixture {
        let mut f = Fixture {
            engine: Engine::new(config).unwrap(),
            events: Vec::new(),
            ts: 1_000_000_000,
            next_client_id: 1,
        };
        f.ok(CommandKind::CurrencyAdd { currency: BTC });
        f.ok(CommandKind::CurrencyAdd { currency: USD });
        f.ok(CommandKind::MarketAdd(spec()));
        f
    }

    pub fn new() -> Fixture {
        Fixture::with_config(EngineConfig::small())
    }

    /// Applies a command and returns its events; checks the full audit afterwards.
    pub fn apply(&mut self, kind: CommandKind) -> Vec<Event> {
        self.ts += 1_000;
        self.events.clear();
        let cmd = Envelope {
            ts: TimestampNs(self.ts),
            actor: peregrine_hotpath::Actor::System,
            kind,
        };
        self.engine.apply(&cmd, &mut self.events);
        self.engine.audit().unwrap();
        self.events.clone()
    }

    /// Applies and asserts acceptance.
    pub fn ok(&mut self, kind: CommandKind) -> Vec<Event> {
        let events = self.apply(kind.clone());
        assert!(
            !matches!(events.first(), Some(Event::Rejected { .. })),
            "rejected: {kind:?} -> {events:?}"
        );
        events
    }

    /// Applies and asserts the reject reason, and that nothing else happened.
    pub fn rejected(&mut self, kind: CommandKind, reason: RejectReason) {
        let before = self.engine.snapshot().unwrap();
        let events = self.apply(kind);
        assert_eq!(events, vec![Event::Rejected { reason }]);
        let after = self.engine.snapshot().unwrap();
        // Only the command counter moves on a reject.
        let mut restored_before = Engine::restore(&before).unwrap();
        let mut sink = Vec::new();
        restored_before.apply(
            &Envelope {
                ts: TimestampNs(self.ts),
                actor: peregrine_hotpath::Actor::System,
                kind: CommandKind::MarketHalt {
                    market: MarketId(999),
                },
            },
            &mut sink,
        );
        assert_eq!(
            restored_before.snapshot().unwrap(),
            after,
            "a rejected command changed state"
        );
    }

    pub fn fund(&mut self, account: u32, btc: u64, usd: u64) {
        if btc > 0 {
            self.ok(CommandKind::Deposit {
                account: AccountId(account),
                currency: BTC,
                amount: Amount(btc),
                deposit: next_deposit_id(),
            });
        }
        if usd > 0 {
            self.ok(CommandKind::Deposit {
                account: AccountId(account),
                currency: USD,
                amount: Amount(usd),
                deposit: next_deposit_id(),
            });
        }
    }

    pub fn order(
        &mut self,
        account: u32,
        side: Side,
        kind: OrderKind,
        tif: TimeInForce,
    ) -> CommandKind {
        let client = self.next_client_id;
        self.next_client_id += 1;
        CommandKind::NewOrder(NewOrder {
            account: AccountId(account),
            market: M,
            client_order_id: ClientOrderId(client),
            side,
            kind,
            tif,
            stp: SelfTradePrevention::CancelNewest,
        })
    }

    pub fn limit(&mut self, account: u32, side: Side, price: u64, qty: u64) -> Vec<Event> {
        let kind = self.order(
            account,
            side,
            OrderKind::Limit {
                price: Price(price),
                qty: Qty(qty),
            },
            TimeInForce::Gtc,
        );
        self.ok(kind)
    }

    pub fn balance(&self, account: u32, currency: CurrencyId) -> (u64, u64) {
        let b = self.engine.balance(AccountId(account), currency);
        (b.available, b.locked)
    }
}

pub fn order_id(events: &[Event]) -> OrderId {
    for e in events {
        if let Event::OrderAccepted { order, .. } = e {
            return *order;
        }
    }
    panic!("no OrderAccepted in {events:?}")
}

pub fn trades(events: &[Event]) -> Vec<Trade> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Trade(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

pub fn cancels(events: &[Event]) -> Vec<(OrderId, CancelReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::OrderCancelled { order, reason, .. } => Some((*order, *reason)),
            _ => None,
        })
        .collect()
}

/// A deposit id not used before in this test process (deposit ids are idempotency keys).
pub fn next_deposit_id() -> DepositId {
    // Far above the small ids tests write out, so the two never collide.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 40);
    DepositId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}
