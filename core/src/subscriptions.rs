//! Subscriptions: bounded queues of [`Notice`]s the router fills and never waits on. A
//! subscriber that falls its queue's capacity behind is closed and told so
//! ([`CloseReason::Lagged`] after its queued notices): never silently dropped, and never a
//! reason for the router to block or buffer without bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use peregrine_hotpath::{AccountId, MarketId};
use tokio::sync::mpsc;

use crate::notice::Notice;

/// Subscriptions open at once, at most.
pub const SUBSCRIPTIONS_MAX: usize = 65_536;
/// Subscriptions to every command's events ([`Interest::Executed`]) at once, at most.
pub const EXECUTED_SUBSCRIPTIONS_MAX: usize = 64;
/// Largest queue of one subscription, in notices.
pub const SUBSCRIPTION_NOTICES_MAX: usize = 1 << 20;

/// Identifies one subscription (for `reply_to`, following markets, unsubscribing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub u64);

/// What a subscription hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Interest {
    /// Everything that happens to `account`'s orders, the reject and completion of commands
    /// submitted with `reply_to` this subscription, and market data of the markets it follows.
    Account(AccountId),
    /// Every command's [`crate::Executed`], in sequence order.
    Executed,
}

/// Why a subscription ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// It fell its queue's capacity behind: notices after the queued ones were not kept, so
    /// its consumer must resynchronise.
    #[error("the subscriber fell behind")]
    Lagged,
    /// The core is shutting down.
    #[error("the exchange is shutting down")]
    ShuttingDown,
    /// It was unsubscribed.
    #[error("unsubscribed")]
    Unsubscribed,
}

const OPEN: u8 = 0;
const LAGGED: u8 = 1;
const SHUTTING_DOWN: u8 = 2;

/// Why a subscription could not be opened or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// Too many subscriptions of this kind.
    #[error("at most {limit} such subscriptions")]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// No such market.
    #[error("unknown market")]
    UnknownMarket,
    /// No such subscription (closed or never opened).
    #[error("unknown subscription")]
    UnknownSubscription,
    /// The core is shutting down.
    #[error("the exchange is shutting down")]
    Unavailable,
}

/// The subscriber's end: notices in order, then why it ended.
#[derive(Debug)]
pub struct Subscription {
    id: SubscriptionId,
    notices: mpsc::Receiver<Notice>,
    reason: Arc<AtomicU8>,
}

impl Subscription {
    /// Its id.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// The next notice, or why the subscription ended once every queued notice was taken.
    pub async fn recv(&mut self) -> Result<Notice, CloseReason> {
        match self.notices.recv().await {
            Some(notice) => Ok(notice),
            None => Err(self.close_reason()),
        }
    }

    /// The next notice if one is queued now. `None` when there is none, or the subscription
    /// ended ([`Subscription::recv`] then says why).
    pub fn try_recv(&mut self) -> Option<Notice> {
        self.notices.try_recv().ok()
    }

    fn close_reason(&self) -> CloseReason {
        match self.reason.load(Ordering::Acquire) {
            LAGGED => CloseReason::Lagged,
            SHUTTING_DOWN => CloseReason::ShuttingDown,
            _ => CloseReason::Unsubscribed,
        }
    }
}

#[derive(Debug)]
struct Entry {
    notices: mpsc::Sender<Notice>,
    reason: Arc<AtomicU8>,
    interest: Interest,
}

/// Every open subscription, indexed by what it hears. Lives under the router's state lock.
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    entries: HashMap<SubscriptionId, Entry>,
    by_account: HashMap<AccountId, Vec<SubscriptionId>>,
    by_market: HashMap<MarketId, Vec<SubscriptionId>>,
    executed: Vec<SubscriptionId>,
    next_id: u64,
    /// The ids one delivery goes to, copied so that `deliver` may close a lagging subscriber
    /// while they are walked; reused, so a delivery allocates nothing once warm.
    scratch: Vec<SubscriptionId>,
}

impl Subscribers {
    /// Opens a subscription with room for `capacity` notices (clamped to
    /// 1..=[`SUBSCRIPTION_NOTICES_MAX`]).
    pub(crate) fn open(
        &mut self,
        interest: Interest,
        capacity: usize,
    ) -> Result<Subscription, SubscribeError> {
        if self.entries.len() >= SUBSCRIPTIONS_MAX {
            return Err(SubscribeError::TooMany {
                limit: SUBSCRIPTIONS_MAX,
            });
        }
        if interest == Interest::Executed && self.executed.len() >= EXECUTED_SUBSCRIPTIONS_MAX {
            return Err(SubscribeError::TooMany {
                limit: EXECUTED_SUBSCRIPTIONS_MAX,
            });
        }
        self.next_id += 1;
        let id = SubscriptionId(self.next_id);
        let (sender, notices) = mpsc::channel(capacity.clamp(1, SUBSCRIPTION_NOTICES_MAX));
        let reason = Arc::new(AtomicU8::new(OPEN));
        match interest {
            Interest::Account(account) => self.by_account.entry(account).or_default().push(id),
            Interest::Executed => self.executed.push(id),
        }
        let entry = Entry {
            notices: sender,
            reason: Arc::clone(&reason),
            interest,
        };
        self.entries.insert(id, entry);
        Ok(Subscription {
            id,
            notices,
            reason,
        })
    }

    /// Whether `id` is open.
    pub(crate) fn contains(&self, id: SubscriptionId) -> bool {
        self.entries.contains_key(&id)
    }

    /// Whether anyone wants every command's events.
    pub(crate) fn wants_executed(&self) -> bool {
        !self.executed.is_empty()
    }

    /// Has `id` hear `market`'s data from now on.
    pub(crate) fn follow(&mut self, id: SubscriptionId, market: MarketId) {
        let followers = self.by_market.entry(market).or_default();
        if !followers.contains(&id) {
            followers.push(id);
        }
    }

    /// Stops `id` hearing `market`'s data.
    pub(crate) fn unfollow(&mut self, id: SubscriptionId, market: MarketId) {
        if let Some(followers) = self.by_market.get_mut(&market) {
            followers.retain(|s| *s != id);
        }
    }

    /// Ends `id`, telling its subscriber `reason` once it has taken what is queued.
    pub(crate) fn close(&mut self, id: SubscriptionId, reason: CloseReason) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        let code = match reason {
            CloseReason::Lagged => LAGGED,
            CloseReason::ShuttingDown => SHUTTING_DOWN,
            CloseReason::Unsubscribed => OPEN,
        };
        // Set before the sender drops (below), so the subscriber reads it after its last notice.
        entry.reason.store(code, Ordering::Release);
        match entry.interest {
            Interest::Account(account) => {
                if let Some(list) = self.by_account.get_mut(&account) {
                    list.retain(|s| *s != id);
                    if list.is_empty() {
                        self.by_account.remove(&account);
                    }
                }
            }
            Interest::Executed => self.executed.retain(|s| *s != id),
        }
        for followers in self.by_market.values_mut() {
            followers.retain(|s| *s != id);
        }
    }

    /// Ends every subscription with `reason`.
    pub(crate) fn close_all(&mut self, reason: CloseReason) {
        let ids: Vec<SubscriptionId> = self.entries.keys().copied().collect();
        for id in ids {
            self.close(id, reason);
        }
        debug_assert!(self.entries.is_empty() && self.executed.is_empty());
    }

    /// Queues `notice` for `id`; a full queue closes it as lagged, a dropped one is forgotten.
    pub(crate) fn deliver(&mut self, id: SubscriptionId, notice: Notice) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        match entry.notices.try_send(notice) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(subscription = id.0, "subscriber fell behind: closing it");
                self.close(id, CloseReason::Lagged);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.close(id, CloseReason::Unsubscribed),
        }
    }

    /// Queues `notice` for every subscription of `account`.
    pub(crate) fn deliver_account(&mut self, account: AccountId, notice: &Notice) {
        let mut ids = std::mem::take(&mut self.scratch);
        ids.clear();
        if let Some(listed) = self.by_account.get(&account) {
            ids.extend_from_slice(listed);
        }
        self.deliver_all(ids, notice);
    }

    /// Queues `notice` for every follower of `market`.
    pub(crate) fn deliver_market(&mut self, market: MarketId, notice: &Notice) {
        let mut ids = std::mem::take(&mut self.scratch);
        ids.clear();
        if let Some(listed) = self.by_market.get(&market) {
            ids.extend_from_slice(listed);
        }
        self.deliver_all(ids, notice);
    }

    /// Queues `notice` (a command's events) for every [`Interest::Executed`] subscription.
    pub(crate) fn deliver_executed(&mut self, notice: &Notice) {
        debug_assert!(matches!(notice, Notice::Executed(_)));
        let mut ids = std::mem::take(&mut self.scratch);
        ids.clear();
        ids.extend_from_slice(&self.executed);
        self.deliver_all(ids, notice);
    }

    /// Delivers `notice` to each of `ids` (the scratch list, handed back after).
    fn deliver_all(&mut self, ids: Vec<SubscriptionId>, notice: &Notice) {
        for &id in &ids {
            self.deliver(id, notice.clone());
        }
        self.scratch = ids;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_closes_the_subscription_as_lagged_after_its_notices() {
        let mut subscribers = Subscribers::default();
        let mut subscription = subscribers
            .open(Interest::Account(AccountId(1)), 2)
            .expect("room for a subscription");
        for seq in 1..=3 {
            subscribers.deliver_account(AccountId(1), &Notice::Done { seq });
        }
        assert!(!subscribers.contains(subscription.id()));
        assert_eq!(subscription.recv().await, Ok(Notice::Done { seq: 1 }));
        assert_eq!(subscription.recv().await, Ok(Notice::Done { seq: 2 }));
        assert_eq!(subscription.recv().await, Err(CloseReason::Lagged));
    }

    #[tokio::test]
    async fn closing_all_tells_every_subscriber_it_is_shutting_down() {
        let mut subscribers = Subscribers::default();
        let mut executed = subscribers.open(Interest::Executed, 4).expect("room");
        assert!(subscribers.wants_executed());
        subscribers.close_all(CloseReason::ShuttingDown);
        assert!(!subscribers.wants_executed());
        assert_eq!(executed.recv().await, Err(CloseReason::ShuttingDown));
    }
}
