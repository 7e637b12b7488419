//! Full-state snapshots in a canonical form (rkyv), such that restoring a snapshot and replaying
//! the commands after it yields exactly the events and state of the uninterrupted run.
//!
//! The form is canonical rather than a memory image: orders are listed in their accounts' list
//! order and the books as id sequences in priority order, so every observable order (matching,
//! mass cancel) is rebuilt exactly, while slot numbers and hash-map layouts (never observable)
//! are free to differ.

use std::collections::BTreeMap;

use crate::command::{
    FeeRates, MarketRisk, MarketSpec, MarketState, SelfTradePrevention, TimeInForce,
};
use crate::config::EngineConfig;
use crate::engine::{Engine, PendingWithdrawal};
use crate::idempotency::SeenKeys;
use crate::ids::{
    AccountId, ClientOrderId, CurrencyId, MarketId, OrderId, Price, Qty, Side, WithdrawalId,
};
use crate::ledger::{Balance, CurrencyTotals};
use crate::market::{MAX_FEE_TIERS, Market, StopEntry};
use crate::orders::{Kind, NIL, Order, OrderState};
use crate::reference::RuntimeReference;

/// Format version; bumped on any change of the layout below.
pub const SNAPSHOT_VERSION: u32 = 4;

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The bytes are not a valid archive.
    #[error("snapshot bytes are invalid: {0}")]
    Invalid(String),
    /// Written by another format version.
    #[error("snapshot version {found}, expected {SNAPSHOT_VERSION}")]
    Version {
        /// Version in the file.
        found: u32,
    },
    /// A capacity of the snapshot's engine exceeds the configured one.
    #[error("snapshot capacity {name} = {found} exceeds the configured {limit}")]
    Capacity {
        /// The configuration key.
        name: &'static str,
        /// In the snapshot.
        found: u64,
        /// Configured.
        limit: u64,
    },
    /// Valid archive, inconsistent content.
    #[error("snapshot is inconsistent: {0}")]
    Inconsistent(&'static str),
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Image {
    version: u32,
    config: EngineConfig,
    next_order_seq: u64,
    next_trade_id: u64,
    /// Slab slots ever used and the free list, in order: future order ids depend on them.
    slots_high_water: u32,
    free_slots: Vec<u32>,
    commands_applied: u64,
    currencies: Vec<(u16, TotalsImage)>,
    balances: Vec<(u32, u16, u64, u64)>,
    accounts: Vec<(u32, AccountImage)>,
    /// Every live order, in account-list order.
    orders: Vec<OrderImage>,
    markets: Vec<MarketImage>,
    /// Idempotency keys: remembered ids ascending, and the floor (see `idempotency`).
    deposit_keys: KeysImage,
    withdrawal_keys: KeysImage,
    withdrawals: Vec<(u64, u32, u16, u64)>,
    /// Currencies and markets created at runtime, with their names (version 4).
    reference: RuntimeReference,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct KeysImage {
    keys: Vec<u64>,
    floor: Option<u64>,
}

impl KeysImage {
    fn of(seen: &SeenKeys) -> KeysImage {
        KeysImage {
            keys: seen.keys().collect(),
            floor: seen.floor(),
        }
    }

    fn restore(&self, keys_max: u32) -> Result<SeenKeys, SnapshotError> {
        SeenKeys::restore(keys_max as usize, &self.keys, self.floor).ok_or(
            SnapshotError::Inconsistent("idempotency keys out of bounds"),
        )
    }
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct TotalsImage {
    registered: bool,
    deposited: u128,
    withdrawn: u128,
    fees: u128,
    available: u128,
    locked: u128,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct AccountImage {
    open_orders: u32,
    kill_switch: bool,
    fee_tier: u8,
    tokens_nano: u64,
    refilled_ns: u64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct OrderImage {
    id: OrderId,
    account: AccountId,
    market: MarketId,
    client_order_id: ClientOrderId,
    side: Side,
    kind: Kind,
    tif: TimeInForce,
    stp: SelfTradePrevention,
    state: OrderState,
    price: Price,
    trigger: Price,
    qty: Qty,
    locked: u64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct MarketImage {
    spec: MarketSpec,
    risk: MarketRisk,
    fees: Vec<FeeRates>,
    /// The state's code ([`state_code`]): a byte where images before states had `halted: bool`,
    /// whose archived form is the same byte (0 enabled, 1 locked), so those still restore.
    state: u8,
    last_price: Option<Price>,
    /// Order ids in priority order, best first.
    bids: Vec<OrderId>,
    asks: Vec<OrderId>,
    stops_capacity: u32,
}

impl Engine {
    /// Serialises the whole state. Not on the hot path: the caller takes it between commands.
    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        let currencies = (0..self.ledger.currency_slots())
            .map(|c| {
                let t = self.ledger.totals(CurrencyId(c));
                (
                    c,
                    TotalsImage {
                        registered: t.registered,
                        deposited: t.deposited,
                        withdrawn: t.withdrawn,
                        fees: t.fees,
                        available: t.available,
                        locked: t.locked,
                    },
                )
            })
            .filter(|(_, t)| t.registered || t.deposited != 0)
            .collect();
        let balances = self
            .ledger
            .nonzero()
            .map(|(a, c, b)| (a.0, c.0, b.available, b.locked))
            .collect();
        let accounts = self
            .accounts
            .iter()
            .enumerate()
            .filter(|(_, r)| **r != Default::default())
            .map(|(i, r)| {
                (
                    i as u32,
                    AccountImage {
                        open_orders: r.open_orders,
                        kill_switch: r.kill_switch,
                        fee_tier: r.fee_tier,
                        tokens_nano: r.tokens_nano,
                        refilled_ns: r.refilled_ns,
                    },
                )
            })
            .collect();
        let orders = self
            .orders
            .slots_by_account()
            .map(|slot| {
                let o = self.orders.get(slot);
                OrderImage {
                    id: o.id,
                    account: o.account,
                    market: o.market,
                    client_order_id: o.client_order_id,
                    side: o.side,
                    kind: o.kind,
                    tif: o.tif,
                    stp: o.stp,
                    state: o.state,
                    price: o.price,
                    trigger: o.trigger,
                    qty: o.qty,
                    locked: o.locked,
                }
            })
            .collect();
        let markets = self
            .markets
            .iter()
            .flatten()
            .map(|m| MarketImage {
                spec: m.spec.clone(),
                risk: m.risk,
                fees: m.fees.to_vec(),
                state: state_code(m.state()),
                last_price: m.last_price,
                bids: self.side_ids(m, Side::Buy),
                asks: self.side_ids(m, Side::Sell),
                stops_capacity: m.stops_capacity as u32,
            })
            .collect();
        let withdrawals = self
            .withdrawals
            .iter()
            .map(|(id, w)| (id.0, w.account.0, w.currency.0, w.amount))
            .collect();
        let image = Image {
            version: SNAPSHOT_VERSION,
            config: self.config.clone(),
            next_order_seq: self.next_order_seq,
            slots_high_water: self.orders.allocation().0,
            free_slots: self.orders.allocation().1.to_vec(),
            next_trade_id: self.next_trade_id,
            commands_applied: self.commands_applied,
            currencies,
            balances,
            accounts,
            orders,
            markets,
            withdrawals,
            deposit_keys: KeysImage::of(&self.deposit_keys),
            withdrawal_keys: KeysImage::of(&self.withdrawal_keys),
            reference: self.reference.clone(),
        };
        rkyv::to_bytes::<rkyv::rancor::Error>(&image)
            .map(|b| b.to_vec())
            .map_err(|e| SnapshotError::Invalid(e.to_string()))
    }

    fn side_ids(&self, m: &Market, side: Side) -> Vec<OrderId> {
        let mut ids = Vec::new();
        for level in m.own_ref(side).iter_best_first() {
            let mut slot = level.head;
            while slot != NIL {
                let o = self.orders.get(slot);
                ids.push(o.id);
                slot = o.next;
            }
        }
        ids
    }

    /// Rebuilds an engine from snapshot bytes (validated: the bytes may come from a damaged file).
    pub fn restore(bytes: &[u8]) -> Result<Engine, SnapshotError> {
        Engine::restore_checked(bytes, None)
    }

    /// [`Engine::restore`] for bytes read from a file: the snapshot's capacities (which size
    /// every allocation of the engine) must not exceed `limits`, the configured ones, and are
    /// checked before anything is allocated for them. A damaged but checksum-valid snapshot
    /// can then not make the process allocate gigabytes.
    pub fn restore_within(bytes: &[u8], limits: &EngineConfig) -> Result<Engine, SnapshotError> {
        Engine::restore_checked(bytes, Some(limits))
    }

    fn restore_checked(
        bytes: &[u8],
        limits: Option<&EngineConfig>,
    ) -> Result<Engine, SnapshotError> {
        // rkyv needs aligned bytes; copy into an aligned buffer.
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        let image = rkyv::from_bytes::<Image, rkyv::rancor::Error>(&aligned)
            .map_err(|e| SnapshotError::Invalid(e.to_string()))?;
        if image.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version {
                found: image.version,
            });
        }
        use SnapshotError::Inconsistent;
        if let Some(limits) = limits {
            check_capacities(&image.config, limits)?;
        }
        let mut engine = Engine::new(image.config.clone()).map_err(Inconsistent)?;
        let cfg = image.config;
        engine.next_order_seq = image.next_order_seq;
        engine.next_trade_id = image.next_trade_id;
        engine.commands_applied = image.commands_applied;
        for (c, t) in image.currencies {
            if c >= cfg.max_currencies {
                return Err(Inconsistent("currency out of range"));
            }
            engine.ledger.restore_totals(
                CurrencyId(c),
                CurrencyTotals {
                    registered: t.registered,
                    deposited: t.deposited,
                    withdrawn: t.withdrawn,
                    fees: t.fees,
                    available: t.available,
                    locked: t.locked,
                },
            );
        }
        for (a, c, available, locked) in image.balances {
            if a >= cfg.max_accounts || c >= cfg.max_currencies {
                return Err(Inconsistent("balance out of range"));
            }
            engine
                .ledger
                .restore_cell(AccountId(a), CurrencyId(c), Balance { available, locked });
        }
        for (a, r) in image.accounts {
            let Some(slot) = engine.accounts.get_mut(a as usize) else {
                return Err(Inconsistent("account out of range"));
            };
            slot.open_orders = r.open_orders;
            slot.kill_switch = r.kill_switch;
            slot.fee_tier = r.fee_tier;
            slot.tokens_nano = r.tokens_nano;
            slot.refilled_ns = r.refilled_ns;
        }
        let mut books = Vec::with_capacity(image.markets.len());
        for m in image.markets {
            let index = m.spec.market.0 as usize;
            if index >= engine.markets.len() || m.fees.len() != MAX_FEE_TIERS {
                return Err(Inconsistent("market out of range"));
            }
            if m.spec.base.0 >= cfg.max_currencies || m.spec.quote.0 >= cfg.max_currencies {
                return Err(Inconsistent("market currency out of range"));
            }
            // As `MarketAdd` checked it: sizes that make every amount of the market fit u64.
            if !Market::validate_spec(&m.spec) {
                return Err(Inconsistent("market specification invalid"));
            }
            // Sized as `MarketAdd` sizes it, checked before it sizes an allocation.
            if m.stops_capacity > crate::engine::STOPS_PER_SIDE.min(cfg.max_orders) {
                return Err(Inconsistent("market stops capacity over the limit"));
            }
            let mut market = Market::new(m.spec, cfg.max_levels_per_side, m.stops_capacity);
            market.set_risk(m.risk);
            market.fees.copy_from_slice(&m.fees);
            let state = state_of(m.state).ok_or(Inconsistent("market state unknown"))?;
            market.set_state(state);
            market.set_last_price(m.last_price);
            engine.markets[index] = Some(Box::new(market));
            // Books are filled once all orders exist.
            books.push((index, m.bids, m.asks));
        }
        let mut orders = Vec::with_capacity(image.orders.len());
        for o in &image.orders {
            let Some(Some(market)) = engine.markets.get(o.market.0 as usize) else {
                return Err(Inconsistent("order in a missing market"));
            };
            if o.account.0 >= cfg.max_accounts {
                return Err(Inconsistent("order account out of range"));
            }
            // Every amount of an order fits u64 (the engine's arithmetic, the audit's included,
            // relies on it): a damaged snapshot's may not.
            let spec = &market.spec;
            let amounts_fit = o.qty.0.checked_mul(spec.base_per_lot).is_some()
                && o.price
                    .0
                    .checked_mul(o.qty.0)
                    .and_then(|quote| quote.checked_mul(spec.quote_per_tick_lot))
                    .is_some();
            if !amounts_fit {
                return Err(Inconsistent("order amounts overflow"));
            }
            orders.push(Order {
                id: o.id,
                account: o.account,
                market: o.market,
                client_order_id: o.client_order_id,
                spend: match o.side {
                    Side::Buy => spec.quote,
                    Side::Sell => spec.base,
                },
                side: o.side,
                kind: o.kind,
                tif: o.tif,
                stp: o.stp,
                state: o.state,
                price: o.price,
                trigger: o.trigger,
                qty: o.qty,
                locked: o.locked,
                prev: NIL,
                next: NIL,
                acct_prev: NIL,
                acct_next: NIL,
                level_hint: NIL,
            });
        }
        if !engine
            .orders
            .restore(image.slots_high_water, &image.free_slots, &orders)
        {
            return Err(Inconsistent("order slots do not fit together"));
        }
        let mut resting = 0usize;
        for (index, bids, asks) in books {
            for ids in [bids, asks] {
                for id in ids {
                    let slot = engine
                        .orders
                        .find_id(id)
                        .ok_or(Inconsistent("book order missing"))?;
                    let o = *engine.orders.get(slot);
                    if o.state != OrderState::Resting || o.market.0 as usize != index {
                        return Err(Inconsistent("book order not resting there"));
                    }
                    // A book never holds an empty order (`push` asserts it): a damaged
                    // snapshot's must be refused here, not panic there.
                    if o.qty.0 == 0 {
                        return Err(Inconsistent("book order of zero quantity"));
                    }
                    let market = engine.markets[index]
                        .as_deref_mut()
                        .ok_or(Inconsistent("market"))?;
                    if !market.own_ref(o.side).has_room_for(o.price) {
                        return Err(Inconsistent("book side over capacity"));
                    }
                    market.own(o.side).push(&mut engine.orders, slot);
                    resting += 1;
                }
            }
        }
        let mut stops = 0usize;
        for o in &image.orders {
            if o.state == OrderState::PendingStop {
                let slot = engine
                    .orders
                    .find_id(o.id)
                    .ok_or(Inconsistent("stop missing"))?;
                let market = engine.markets[o.market.0 as usize]
                    .as_deref_mut()
                    .ok_or(Inconsistent("market"))?;
                if market.stops_full(o.side) {
                    return Err(Inconsistent("stops over capacity"));
                }
                market.push_stop(
                    o.side,
                    StopEntry {
                        trigger: o.trigger,
                        id: o.id.0,
                        slot,
                    },
                );
                stops += 1;
            }
        }
        if resting + stops != image.orders.len() {
            return Err(Inconsistent("orders neither resting nor pending"));
        }
        let mut withdrawals = BTreeMap::new();
        for (id, a, c, amount) in image.withdrawals {
            if a >= cfg.max_accounts || c >= cfg.max_currencies {
                return Err(Inconsistent("withdrawal out of range"));
            }
            withdrawals.insert(
                WithdrawalId(id),
                PendingWithdrawal {
                    account: AccountId(a),
                    currency: CurrencyId(c),
                    amount,
                },
            );
        }
        engine.withdrawals = withdrawals;
        engine.deposit_keys = image.deposit_keys.restore(cfg.idempotency_keys_max)?;
        engine.withdrawal_keys = image.withdrawal_keys.restore(cfg.idempotency_keys_max)?;
        if image.reference.currencies.len() > usize::from(cfg.max_currencies)
            || image.reference.markets.len() > cfg.max_markets as usize
        {
            return Err(Inconsistent("more runtime reference entries than capacity"));
        }
        engine.reference = image.reference;
        if !engine.reference_consistent() {
            return Err(Inconsistent(
                "runtime reference entry without its currency or market",
            ));
        }
        // A snapshot that does not pass the full audit is not restored.
        engine
            .audit()
            .map_err(|_| Inconsistent("restored state fails the audit"))?;
        Ok(engine)
    }
}

/// Refuses a snapshot whose capacities exceed the configured ones, naming the first that does.
fn check_capacities(found: &EngineConfig, limits: &EngineConfig) -> Result<(), SnapshotError> {
    let pairs: [(&'static str, u64, u64); 8] = [
        (
            "max_accounts",
            found.max_accounts.into(),
            limits.max_accounts.into(),
        ),
        (
            "max_currencies",
            found.max_currencies.into(),
            limits.max_currencies.into(),
        ),
        (
            "max_markets",
            found.max_markets.into(),
            limits.max_markets.into(),
        ),
        (
            "max_orders",
            found.max_orders.into(),
            limits.max_orders.into(),
        ),
        (
            "max_levels_per_side",
            found.max_levels_per_side.into(),
            limits.max_levels_per_side.into(),
        ),
        (
            "max_pending_withdrawals",
            found.max_pending_withdrawals.into(),
            limits.max_pending_withdrawals.into(),
        ),
        (
            "max_open_orders_per_account",
            found.max_open_orders_per_account.into(),
            limits.max_open_orders_per_account.into(),
        ),
        (
            "idempotency_keys_max",
            found.idempotency_keys_max.into(),
            limits.idempotency_keys_max.into(),
        ),
    ];
    match pairs.iter().find(|(_, found, limit)| found > limit) {
        Some(&(name, found, limit)) => Err(SnapshotError::Capacity { name, found, limit }),
        None => Ok(()),
    }
}

/// A market state's code in an image: 0 and 1 are what `halted: false`/`true` were.
fn state_code(state: MarketState) -> u8 {
    match state {
        MarketState::Enabled => 0,
        MarketState::Locked => 1,
        MarketState::Hidden => 2,
        MarketState::Disabled => 3,
    }
}

/// The state of code `code`, if it is one.
fn state_of(code: u8) -> Option<MarketState> {
    MarketState::ALL
        .into_iter()
        .find(|state| state_code(*state) == code)
}
