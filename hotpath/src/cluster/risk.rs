//! A risk shard: the master balances of its accounts (an `Engine` that holds no orders), its view
//! of every market, and the index of its accounts' live orders across matching shards.
//!
//! Phase 1 (`screen`) takes the shard's commands in sequence order: deposits and withdrawals run
//! on the engine; a new order or a replace has its escrow moved out of the master balance and is
//! forwarded to its matching shard; a cancel by client id is routed with the index. Phase 3
//! (`settle`) credits swept funds and applies order and market news, in (sequence, matching
//! shard, emission) order.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::cluster::escrow::{MarketView, credit, debit};
use crate::cluster::event::ClusterEventKind;
use crate::cluster::shard_ids::{
    MatchingShardIndex, RiskShardIndex, matching_shard_of, split_order_id,
};
use crate::cluster::work::{
    Emitted, Escrow, Item, MatchWork, Return, ReturnKind, RiskItem, ScreenOut, Verdict,
};
use crate::command::{CancelReplace, CommandKind, Envelope, NewOrder, OrderKind, OrderRef};
use crate::engine::Engine;
use crate::event::{Event, RejectReason};
use crate::ids::{AccountId, Amount, ClientOrderId, MarketId, OrderId, Price, Side};

/// Hashes the index's integer keys with a multiply-xorshift, as the engine's client index does:
/// unkeyed and fast (SipHash was a tenth of a risk shard's time). Safe to be unkeyed because the
/// maps are only looked up, never iterated, so the hash never shapes the output.
#[derive(Clone, Copy, Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A live (or reserved) order of one of the shard's accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LiveOrder {
    shard: MatchingShardIndex,
    market: MarketId,
    side: Side,
    /// Limit price (0 for market and stop-market orders), kept for replaces that keep it.
    price: Price,
    /// Global id; 0 while reserved (forwarded, not yet accepted).
    order: OrderId,
}

/// One risk shard.
#[derive(Debug)]
pub(crate) struct RiskShard {
    pub(crate) index: RiskShardIndex,
    pub(crate) engine: Engine,
    matching_shards: u16,
    views: Vec<Option<MarketView>>,
    /// Live and reserved orders by (account, client id): client ids are unique per account
    /// across all matching shards, and a cancel by client id finds its shard. Looked up, never
    /// iterated.
    by_client: IdMap<(AccountId, ClientOrderId), LiveOrder>,
    /// Client id of each accepted order by global id, for replaces by id. Looked up only.
    by_id: IdMap<OrderId, ClientOrderId>,
    /// Bound of `by_client`: a new order beyond it is refused (`OrderCapacity`).
    index_capacity: usize,
    /// Events of one engine command (scratch).
    events: Vec<Event>,
}

impl RiskShard {
    pub fn new(
        index: RiskShardIndex,
        engine: Engine,
        matching_shards: u16,
        max_markets: u32,
        index_capacity: u32,
    ) -> RiskShard {
        RiskShard {
            index,
            engine,
            matching_shards,
            views: vec![None; max_markets as usize],
            by_client: IdMap::with_capacity_and_hasher(index_capacity as usize, Default::default()),
            by_id: IdMap::with_capacity_and_hasher(index_capacity as usize, Default::default()),
            index_capacity: index_capacity as usize,
            events: Vec::with_capacity(64),
        }
    }

    /// Live orders the index knows (reserved ones included).
    pub fn indexed_orders(&self) -> (usize, usize) {
        (self.by_client.len(), self.by_id.len())
    }

    /// Whether the index holds this accepted order under this client id.
    pub fn indexes(&self, account: AccountId, client: ClientOrderId, order: OrderId) -> bool {
        self.by_client
            .get(&(account, client))
            .is_some_and(|live| live.order == order)
            && self.by_id.get(&order) == Some(&client)
    }

    /// Drops an order from the index (tests of the audit).
    #[cfg(test)]
    pub fn forget(&mut self, account: AccountId, client: ClientOrderId, order: OrderId) {
        self.by_client.remove(&(account, client));
        self.by_id.remove(&order);
    }

    // ---- phase 1 ----

    /// Phase 1: the shard's commands of one batch, in sequence order.
    pub fn screen(&mut self, input: &[RiskItem], out: &mut ScreenOut) {
        out.clear();
        debug_assert_eq!(out.work.len(), self.matching_shards as usize);
        debug_assert!(input.windows(2).all(|w| w[0].seq < w[1].seq));
        for item in input {
            let verdict = match &item.command.kind {
                CommandKind::NewOrder(o) => self.new_order(item.seq, &item.command, o, out),
                CommandKind::Cancel {
                    account,
                    target: OrderRef::Client(client),
                } => self.cancel_by_client(item.seq, &item.command, *account, *client, out),
                CommandKind::CancelReplace(r) => self.replace(item.seq, &item.command, r, out),
                CommandKind::CurrencyAdd { .. }
                | CommandKind::CurrencyCreate(_)
                | CommandKind::Deposit { .. }
                | CommandKind::WithdrawalHold { .. }
                | CommandKind::WithdrawalSettle { .. }
                | CommandKind::WithdrawalRelease { .. } => self.apply_local(item, out),
                // The coordinator's routing (`Coordinator::route_one`) sends a risk shard only
                // the kinds above, whatever the input: any other kind here is a routing bug.
                _ => unreachable!("command routed to a risk shard that does not take it"),
            };
            let verdict = verdict.unwrap_or_else(Verdict::Rejected);
            out.events.push(Emitted {
                seq: item.seq,
                item: Item::Done(verdict),
            });
        }
    }

    /// Deposits, withdrawals and currency registration: the engine's own handlers.
    fn apply_local(
        &mut self,
        item: &RiskItem,
        out: &mut ScreenOut,
    ) -> Result<Verdict, RejectReason> {
        self.events.clear();
        self.engine.apply(&item.command, &mut self.events);
        if let [Event::Rejected { reason }] = self.events[..] {
            return Err(reason);
        }
        for event in self.events.drain(..) {
            debug_assert!(!matches!(event, Event::Rejected { .. }));
            out.events.push(Emitted {
                seq: item.seq,
                item: Item::Event(ClusterEventKind::Engine(event)),
            });
        }
        Ok(Verdict::Accepted)
    }

    fn check_account(&self, account: AccountId) -> Result<(), RejectReason> {
        if account.0 < self.engine.config().max_accounts {
            Ok(())
        } else {
            Err(RejectReason::UnknownAccount)
        }
    }

    /// Moves `amount` out of the master balance and records it as sent.
    fn send_escrow(
        &mut self,
        seq: u64,
        escrow: Escrow,
        shard: MatchingShardIndex,
        out: &mut ScreenOut,
    ) {
        debug_assert!(escrow.amount.0 > 0);
        let moved = debit(
            &mut self.engine,
            escrow.account,
            escrow.currency,
            escrow.amount,
        );
        // The caller checked the available balance, the account and the currency.
        assert!(moved.is_ok(), "escrow debit failed after its checks");
        out.events.push(Emitted {
            seq,
            item: Item::Event(ClusterEventKind::EscrowSent {
                account: escrow.account,
                currency: escrow.currency,
                amount: escrow.amount,
                shard,
            }),
        });
    }

    fn new_order(
        &mut self,
        seq: u64,
        command: &Envelope,
        o: &NewOrder,
        out: &mut ScreenOut,
    ) -> Result<Verdict, RejectReason> {
        self.check_account(o.account)?;
        let view = self
            .views
            .get(o.market.0 as usize)
            .copied()
            .flatten()
            .ok_or(RejectReason::UnknownMarket)?;
        let key = (o.account, o.client_order_id);
        if self.by_client.contains_key(&key) {
            return Err(RejectReason::DuplicateClientOrderId);
        }
        if self.by_client.len() >= self.index_capacity {
            return Err(RejectReason::OrderCapacity);
        }
        let currency = view.spend_currency(o.side);
        let amount = Amount(view.order_escrow(o));
        if self.engine.balance(o.account, currency).available < amount.0 {
            return Err(RejectReason::InsufficientBalance);
        }

        // ---- execute: nothing below fails ----
        let shard = matching_shard_of(o.market, self.matching_shards);
        let escrow = Escrow {
            account: o.account,
            currency,
            amount,
        };
        if amount.0 > 0 {
            self.send_escrow(seq, escrow, shard, out);
        }
        let price = match o.kind {
            OrderKind::Limit { price, .. } | OrderKind::StopLimit { price, .. } => price,
            OrderKind::Market { .. } | OrderKind::StopMarket { .. } => Price(0),
        };
        self.by_client.insert(
            key,
            LiveOrder {
                shard,
                market: o.market,
                side: o.side,
                price,
                order: OrderId(0),
            },
        );
        out.work[shard.0 as usize].push(MatchWork {
            seq,
            command: command.clone(),
            escrow: (amount.0 > 0).then_some(escrow),
            reserved: true,
        });
        Ok(Verdict::Forwarded)
    }

    fn cancel_by_client(
        &mut self,
        seq: u64,
        command: &Envelope,
        account: AccountId,
        client: ClientOrderId,
        out: &mut ScreenOut,
    ) -> Result<Verdict, RejectReason> {
        self.check_account(account)?;
        let live = self
            .by_client
            .get(&(account, client))
            .ok_or(RejectReason::UnknownOrder)?;
        out.work[live.shard.0 as usize].push(MatchWork {
            seq,
            command: command.clone(),
            escrow: None,
            reserved: false,
        });
        Ok(Verdict::Forwarded)
    }

    /// A replace carries as much of the full new lock as the master balance has: the matching
    /// engine then needs `new lock - current lock` of it, exactly its own check, and the rest
    /// returns in the same batch.
    fn replace(
        &mut self,
        seq: u64,
        command: &Envelope,
        r: &CancelReplace,
        out: &mut ScreenOut,
    ) -> Result<Verdict, RejectReason> {
        self.check_account(r.account)?;
        let live = match r.target {
            OrderRef::Client(client) => self.by_client.get(&(r.account, client)).copied(),
            OrderRef::Id(id) => self
                .by_id
                .get(&id)
                .and_then(|client| self.by_client.get(&(r.account, *client)))
                .filter(|live| live.order == id)
                .copied(),
        }
        .ok_or(RejectReason::UnknownOrder)?;
        let view = self
            .views
            .get(live.market.0 as usize)
            .copied()
            .flatten()
            .ok_or(RejectReason::UnknownMarket)?;
        let currency = view.spend_currency(live.side);
        let price = r.new_price.unwrap_or(live.price);
        let lock = view.replace_lock(live.side, price, r.new_qty);
        let available = self.engine.balance(r.account, currency).available;
        let amount = Amount(lock.min(u128::from(available)) as u64);

        // ---- execute ----
        let escrow = Escrow {
            account: r.account,
            currency,
            amount,
        };
        if amount.0 > 0 {
            self.send_escrow(seq, escrow, live.shard, out);
        }
        let mut command = command.clone();
        if let (CommandKind::CancelReplace(local), OrderRef::Id(id)) = (&mut command.kind, r.target)
        {
            local.target = OrderRef::Id(split_order_id(id).1);
        }
        out.work[live.shard.0 as usize].push(MatchWork {
            seq,
            command,
            escrow: (amount.0 > 0).then_some(escrow),
            reserved: false,
        });
        Ok(Verdict::Forwarded)
    }

    // ---- phase 3 ----

    /// Phase 3: returns from the matching shards, in (sequence, shard, emission) order.
    pub fn settle(&mut self, input: &[Return]) {
        debug_assert!(input.windows(2).all(|w| {
            (w[0].seq, w[0].shard, w[0].emission) < (w[1].seq, w[1].shard, w[1].emission)
        }));
        for ret in input {
            match ret.kind {
                ReturnKind::Credit {
                    account,
                    currency,
                    amount,
                } => {
                    // The funds left this cell (or another cell of the cluster) and the engine
                    // bounds every cell to u64 as it does for trades: an overflow is a bug.
                    let credited = credit(&mut self.engine, account, currency, amount);
                    assert!(
                        credited.is_ok(),
                        "master balance credit failed: {credited:?}"
                    );
                }
                ReturnKind::Accepted {
                    account,
                    client,
                    order,
                    price,
                } => {
                    let live = self.by_client.get_mut(&(account, client));
                    debug_assert!(live.as_ref().is_some_and(|l| l.order.0 == 0));
                    if let Some(live) = live {
                        live.order = order;
                        live.price = price;
                        self.by_id.insert(order, client);
                    }
                }
                ReturnKind::Replaced {
                    account,
                    order,
                    price,
                } => {
                    if let Some(client) = self.by_id.get(&order)
                        && let Some(live) = self.by_client.get_mut(&(account, *client))
                    {
                        live.price = price;
                    }
                }
                ReturnKind::Ended {
                    account,
                    client,
                    order,
                } => {
                    let removed = self.by_client.remove(&(account, client));
                    debug_assert!(removed.is_some_and(|l| l.order == order));
                    self.by_id.remove(&order);
                }
                ReturnKind::Unreserve { account, client } => {
                    let removed = self.by_client.remove(&(account, client));
                    debug_assert!(removed.is_some_and(|l| l.order.0 == 0));
                }
                ReturnKind::MarketAdded(ref spec) => {
                    if let Some(view) = self.views.get_mut(spec.market.0 as usize) {
                        *view = Some(MarketView::from_spec(spec));
                    }
                }
                ReturnKind::MarketUpdated { market, risk } => {
                    if let Some(Some(view)) = self.views.get_mut(market.0 as usize) {
                        view.risk = risk;
                    }
                }
                ReturnKind::LastPrice { market, price } => {
                    if let Some(Some(view)) = self.views.get_mut(market.0 as usize) {
                        view.last_price = Some(price);
                    }
                }
            }
        }
    }
}
