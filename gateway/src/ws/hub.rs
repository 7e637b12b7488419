//! Subscriptions and fan-out. The feed task publishes each batch of [`Update`]s under the
//! bridge's lock; every message is rendered once and queued to each subscriber's bounded
//! queue. A connection whose queue is full is closed with a reason (slow consumer), never
//! buffered without bound and never silently skipped while it stays open: a client that
//! receives increments has received all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::ws::Utf8Bytes;
use peregrine_hotpath::{AccountId, MarketId};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use super::streams::Stream;
use crate::catalog::Catalog;
use crate::market_data::{MarketData, Update};
use crate::rest::config::RestConfig;
use crate::rest::metrics::Metrics;
use crate::rest::time::now_ms;
use crate::rest::types::{self, BalanceJson, OrderJson, OwnTradeJson, TickerJson};
use peregrine_views::{FundsChange, FundsKind};

/// A connection id.
pub type ConnId = u64;

/// Deposit ids from here on are the wallet daemon's (`2^62 + its row id`; the control API and
/// the wallet crate say the same).
pub const WALLET_DEPOSIT_IDS_FROM: u64 = 1 << 62;

/// Tells a connection task to close, with which WebSocket close code, and why.
#[derive(Debug, Default)]
pub struct Kill {
    reason: Mutex<Option<(u16, String)>>,
    notify: Notify,
}

impl Kill {
    /// Asks the connection to close with `code` (1008 policy, 1001 going away) and `reason`.
    pub fn kill(&self, code: u16, reason: String) {
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some((code, reason));
        // A stored permit: the task sees it even if it is not waiting right now.
        self.notify.notify_one();
    }

    /// Waits for a kill; returns the close code and the reason.
    pub async fn wait(&self) -> (u16, String) {
        self.notify.notified().await;
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or((super::CLOSE_POLICY, String::new()))
    }
}

#[derive(Debug)]
struct Conn {
    queue: mpsc::Sender<Utf8Bytes>,
    kill: Arc<Kill>,
    account: Option<AccountId>,
    streams: Vec<Stream>,
}

/// Connections and their subscriptions.
#[derive(Debug)]
pub struct Hub {
    metrics: Metrics,
    next_id: ConnId,
    conns: HashMap<ConnId, Conn>,
    /// Subscribers by stream (private streams keyed by account).
    subscribers: HashMap<(Option<AccountId>, Stream), Vec<ConnId>>,
}

/// A message for the client.
pub fn message(value: &Value) -> Utf8Bytes {
    Utf8Bytes::from(value.to_string())
}

impl Hub {
    /// No connections.
    pub fn new(metrics: Metrics) -> Hub {
        Hub {
            metrics,
            next_id: 1,
            conns: HashMap::new(),
            subscribers: HashMap::new(),
        }
    }

    /// Adds a connection with its queue; `account` for an authenticated one.
    pub fn register(
        &mut self,
        queue: mpsc::Sender<Utf8Bytes>,
        kill: Arc<Kill>,
        account: Option<AccountId>,
    ) -> ConnId {
        let id = self.next_id;
        self.next_id += 1;
        self.conns.insert(
            id,
            Conn {
                queue,
                kill,
                account,
                streams: Vec::new(),
            },
        );
        id
    }

    /// Removes a connection and its subscriptions.
    pub fn remove(&mut self, id: ConnId) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        for stream in conn.streams {
            self.unlink(id, conn.account, stream);
        }
    }

    fn key(account: Option<AccountId>, stream: Stream) -> (Option<AccountId>, Stream) {
        (if stream.is_private() { account } else { None }, stream)
    }

    fn unlink(&mut self, id: ConnId, account: Option<AccountId>, stream: Stream) {
        let key = Hub::key(account, stream);
        if let Some(list) = self.subscribers.get_mut(&key) {
            list.retain(|c| *c != id);
            if list.is_empty() {
                self.subscribers.remove(&key);
            }
        }
    }

    /// Queues `text` to connection `id`; a full queue closes it as a slow consumer.
    pub fn send(&mut self, id: ConnId, text: Utf8Bytes) -> bool {
        let Some(conn) = self.conns.get(&id) else {
            return false;
        };
        match conn.queue.try_send(text) {
            Ok(()) => {
                self.metrics.ws_messages_total.inc();
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.ws_slow_consumers_total.inc();
                let capacity = conn.queue.max_capacity();
                conn.kill.kill(
                    super::CLOSE_POLICY,
                    format!("slow consumer: {capacity} messages queued; reconnect and resubscribe"),
                );
                self.remove(id);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.remove(id);
                false
            }
        }
    }

    fn send_all(&mut self, key: (Option<AccountId>, Stream), text: &Utf8Bytes) {
        let Some(list) = self.subscribers.get(&key) else {
            return;
        };
        // Cloned: a slow consumer's removal edits the list.
        for id in list.clone() {
            self.send(id, text.clone());
        }
    }

    fn has(&self, key: &(Option<AccountId>, Stream)) -> bool {
        self.subscribers.contains_key(key)
    }

    /// Subscribes `id` to `streams` (already parsed); answers the streams it now has.
    /// Book streams get a snapshot first, queued before any later increment.
    pub fn subscribe(
        &mut self,
        id: ConnId,
        streams: &[Stream],
        limit: usize,
        data: &MarketData,
        catalog: &Catalog,
        snapshot_levels: usize,
    ) -> Result<Vec<Stream>, String> {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Err("connection closed".to_owned());
        };
        let fresh: Vec<Stream> = streams
            .iter()
            .copied()
            .filter(|s| !conn.streams.contains(s))
            .collect();
        if conn.streams.len() + fresh.len() > limit {
            return Err(format!("at most {limit} streams per connection"));
        }
        let account = conn.account;
        conn.streams.extend(fresh.iter().copied());
        let now: Vec<Stream> = conn.streams.clone();
        for stream in &fresh {
            self.subscribers
                .entry(Hub::key(account, *stream))
                .or_default()
                .push(id);
        }
        let names: Vec<String> = now.iter().map(|s| s.name(catalog)).collect();
        let reply = json!({"success": {"message": "subscribed", "streams": names}});
        if !self.send(id, message(&reply)) {
            return Ok(now);
        }
        for stream in fresh {
            if let Stream::ObSnap(market) | Stream::ObInc(market) = stream {
                let snapshot = snapshot(data, catalog, market, snapshot_levels);
                if !self.send(id, snapshot) {
                    break;
                }
            }
        }
        Ok(now)
    }

    /// Ends `id`'s subscriptions to `streams`.
    pub fn unsubscribe(&mut self, id: ConnId, streams: &[Stream], catalog: &Catalog) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let account = conn.account;
        conn.streams.retain(|s| !streams.contains(s));
        let names: Vec<String> = conn.streams.iter().map(|s| s.name(catalog)).collect();
        for stream in streams {
            self.unlink(id, account, *stream);
        }
        let reply = json!({"success": {"message": "unsubscribed", "streams": names}});
        self.send(id, message(&reply));
    }

    /// Closes every connection (shutdown): code 1001, going away.
    pub fn close_all(&mut self, reason: &str) {
        for conn in self.conns.values() {
            conn.kill.kill(super::CLOSE_GOING_AWAY, reason.to_owned());
        }
        self.conns.clear();
        self.subscribers.clear();
    }

    /// Fans out one batch of updates.
    pub fn publish(
        &mut self,
        updates: &[Update],
        data: &MarketData,
        catalog: &Catalog,
        config: &RestConfig,
    ) {
        if self.conns.is_empty() {
            return;
        }
        for update in updates {
            match update {
                Update::Trade { market, trade } => {
                    let key = (None, Stream::Trades(*market));
                    if let (true, Some(m)) = (self.has(&key), catalog.market_by_id(*market)) {
                        let stream = key.1.name(catalog);
                        let text = message(&json!({ stream: {"trades": [{
                            "tid": trade.id.0,
                            "taker_type": types::side_name(trade.taker_side),
                            "date": trade.ts_ns / 1_000_000_000,
                            "price": types::price(m, trade.price),
                            "amount": types::qty(m, trade.qty),
                        }]}}));
                        self.send_all(key, &text);
                    }
                }
                Update::Level { market, change } => {
                    let key = (None, Stream::ObInc(*market));
                    if let (true, Some(m)) = (self.has(&key), catalog.market_by_id(*market)) {
                        let stream = key.1.name(catalog);
                        let side = match change.side {
                            peregrine_hotpath::Side::Buy => "bids",
                            peregrine_hotpath::Side::Sell => "asks",
                        };
                        let level = [types::price(m, change.price), types::qty(m, change.qty)];
                        let text = message(&json!({ stream: {
                            side: level,
                            "sequence": change.sequence,
                        }}));
                        self.send_all(key, &text);
                    }
                }
                Update::Snapshot { market } => {
                    for key in [
                        (None, Stream::ObSnap(*market)),
                        (None, Stream::ObInc(*market)),
                    ] {
                        if self.has(&key) {
                            let text = snapshot(data, catalog, *market, config.ws_snapshot_levels);
                            self.send_all(key, &text);
                        }
                    }
                }
                Update::Kline {
                    market,
                    period,
                    candle,
                } => {
                    let key = (None, Stream::Kline(*market, *period));
                    if let (true, Some(m)) = (self.has(&key), catalog.market_by_id(*market)) {
                        let stream = key.1.name(catalog);
                        let row = types::kline(m, candle);
                        self.send_all(key, &message(&json!({ stream: row })));
                    }
                }
                Update::Order(record) => {
                    let key = (Some(record.account), Stream::Order);
                    if let (true, Some(m)) = (self.has(&key), catalog.market_by_id(record.market)) {
                        let order = OrderJson::new(m, record);
                        self.send_all(key, &message(&json!({ "order": order })));
                    }
                }
                Update::OwnTrade { account, trade } => {
                    let key = (Some(*account), Stream::Trade);
                    if let (true, Some(m)) = (self.has(&key), catalog.market_by_id(trade.market)) {
                        let trade = OwnTradeJson::new(m, catalog, trade);
                        self.send_all(key, &message(&json!({ "trade": trade })));
                    }
                }
                Update::Balance {
                    account,
                    currency,
                    available,
                    locked,
                } => {
                    let key = (Some(*account), Stream::Balance);
                    if let (true, Some(c)) = (self.has(&key), catalog.currency_by_id(*currency)) {
                        let balance = BalanceJson {
                            currency: c.code.clone(),
                            balance: types::amount(Some(c), *available),
                            locked: types::amount(Some(c), *locked),
                        };
                        self.send_all(key, &message(&json!({ "balance": balance })));
                    }
                }
                Update::Funds(funds) => self.publish_funds(funds, catalog),
            }
        }
    }

    /// A deposit credited to the account's `deposit` stream, a withdrawal's step to its
    /// `withdraw` stream, shaped like the REST lists' entries (`account/deposits`,
    /// `account/withdraws`) as far as the journal knows them.
    fn publish_funds(&mut self, funds: &FundsChange, catalog: &Catalog) {
        let (stream, state) = match funds.kind {
            FundsKind::Deposited => (Stream::Deposit, "credited"),
            FundsKind::WithdrawalHeld => (Stream::Withdraw, "held"),
            FundsKind::WithdrawalSettled => (Stream::Withdraw, "settled"),
            FundsKind::WithdrawalReleased => (Stream::Withdraw, "released"),
            _ => return,
        };
        let key = (Some(funds.account), stream);
        let Some(currency) = catalog.currency_by_id(funds.currency) else {
            return;
        };
        if !self.has(&key) {
            return;
        }
        let mut entry = json!({
            "id": funds.id,
            "currency": currency.code,
            "amount": types::amount(Some(currency), funds.amount),
            "fee": types::amount(Some(currency), peregrine_hotpath::Amount(0)),
            "state": state,
            "at": funds.ts_ns / 1_000_000,
        });
        if funds.kind == FundsKind::Deposited {
            // A chain deposit's id in `account/deposits` is the wallet's row: the journal's
            // id less the wallet's range bit; an operator's credit keeps its own.
            let chain = funds.id & WALLET_DEPOSIT_IDS_FROM != 0;
            entry["id"] = json!(funds.id & !WALLET_DEPOSIT_IDS_FROM);
            entry["source"] = json!(if chain { "chain" } else { "operator" });
        }
        let name = stream.name(catalog);
        self.send_all(key, &message(&json!({ name: entry })));
    }

    /// Pushes every market's ticker to `global.tickers`.
    pub fn publish_tickers(&mut self, data: &MarketData, catalog: &Catalog) {
        let key = (None, Stream::Tickers);
        if !self.has(&key) {
            return;
        }
        let now_s = now_ms() / 1_000;
        let tickers: serde_json::Map<String, Value> = catalog
            .markets()
            .iter()
            .map(|m| {
                let ticker = TickerJson::new(m, &data.ticker(m.spec.market, now_s), now_s);
                let mut value = serde_json::to_value(&ticker.ticker).unwrap_or(Value::Null);
                if let Value::Object(fields) = &mut value {
                    fields.insert("name".into(), Value::from(m.name.clone()));
                    fields.insert("at".into(), Value::from(now_s));
                }
                (m.name.clone(), value)
            })
            .collect();
        self.send_all(key, &message(&json!({ "global.tickers": tickers })));
    }
}

/// A book snapshot message: `{"<market>.ob-snap":{"asks":[[p,a]...],"bids":...,"sequence":n}}`.
fn snapshot(data: &MarketData, catalog: &Catalog, market: MarketId, levels: usize) -> Utf8Bytes {
    let Some(m) = catalog.market_by_id(market) else {
        return message(&json!({"error": {"message": "unknown market"}}));
    };
    let book = data.book(market, levels, levels).unwrap_or_default();
    let pairs = |side: &[(peregrine_hotpath::Price, peregrine_hotpath::Qty)]| {
        side.iter()
            .map(|(p, q)| [types::price(m, *p), types::qty(m, *q)])
            .collect::<Vec<_>>()
    };
    let stream = Stream::ObSnap(market).name(catalog);
    message(&json!({ stream: {
        "asks": pairs(&book.asks),
        "bids": pairs(&book.bids),
        "sequence": book.sequence,
    }}))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod shutdown_tests {
    use super::*;

    /// Shutdown's close is 1001 (going away), not 1008 (policy violation): a client should
    /// reconnect, not think it misbehaved.
    #[tokio::test]
    async fn close_all_closes_with_going_away() {
        let registry = prometheus::Registry::new();
        let mut hub = Hub::new(Metrics::new(&registry).unwrap());
        let (queue, _outbound) = mpsc::channel(1);
        let kill = Arc::new(Kill::default());
        hub.register(queue, kill.clone(), None);
        hub.close_all("server shutting down");
        assert_eq!(
            kill.wait().await,
            (
                super::super::CLOSE_GOING_AWAY,
                "server shutting down".to_owned()
            )
        );
    }
}
