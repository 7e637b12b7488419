//! What a caller hands the sequencer ([`Request`]), what it gets back ([`Ticket`], or a
//! [`SubmitError`] at once) and what the ticket resolves to ([`Executed`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use peregrine_hotpath::{
    AccountId, Actor, ClientOrderId, CommandKind, Event, RejectReason, TimestampNs,
};
use tokio::sync::oneshot;

use crate::subscriptions::SubscriptionId;
use peregrine_views::OrderStatus;

/// A command to sequence: the journaled [`peregrine_hotpath::Envelope`] less its timestamp
/// (the sequencer's clock assigns it), plus what the core needs around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Who issued it (journaled with the command).
    pub actor: Actor,
    /// The command.
    pub kind: CommandKind,
    /// A new order's account and client order id: subject to the duplicate check.
    pub new_order: Option<(AccountId, ClientOrderId)>,
    /// A subscription that also hears this command's [`Notice::Rejected`] and
    /// [`Notice::Done`], in order with its other notices.
    ///
    /// [`Notice::Rejected`]: crate::Notice::Rejected
    /// [`Notice::Done`]: crate::Notice::Done
    pub reply_to: Option<SubscriptionId>,
}

impl Request {
    /// `kind` issued by `actor`, with no duplicate check and no subscription told.
    pub fn new(actor: Actor, kind: CommandKind) -> Request {
        Request {
            actor,
            kind,
            new_order: None,
            reply_to: None,
        }
    }

    /// Subjects the request to the duplicate check of `account`'s `client_order_id`.
    pub fn new_order(mut self, account: AccountId, client_order_id: ClientOrderId) -> Request {
        self.new_order = Some((account, client_order_id));
        self
    }

    /// Has `subscription` hear the command's reject and completion.
    pub fn reply_to(mut self, subscription: SubscriptionId) -> Request {
        self.reply_to = Some(subscription);
        self
    }
}

/// Why a command was not sequenced. Nothing was journaled in any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// A queue on the way (journal or engine) is full: retry later.
    #[error("the engine is busy")]
    Busy,
    /// The client order id is already known for this account; its status is attached.
    #[error("duplicate client order id")]
    Duplicate(OrderStatus),
    /// The exchange cannot take commands (its journal failed, or it is shutting down).
    #[error("the exchange is unavailable")]
    Unavailable,
}

/// One command's outcome: every event it produced, released per the acknowledgement mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The command's sequence number.
    pub seq: u64,
    /// The command's timestamp (Unix nanoseconds, assigned by the sequencer).
    pub ts: TimestampNs,
    /// Its events, in order (a reject is one `Event::Rejected`).
    pub events: Vec<Event>,
    /// What its events changed in the views, in order, closed by the record of every order it
    /// touched (empty when nobody asked for the events).
    pub changes: Vec<peregrine_views::Change>,
}

impl Executed {
    /// The reject reason, if the engine rejected the command.
    pub fn rejected(&self) -> Option<RejectReason> {
        self.events.iter().find_map(|event| match event {
            Event::Rejected { reason } => Some(*reason),
            _ => None,
        })
    }
}

/// The core stopped before the command's outcome could be told (shutdown). The command may
/// still have been applied: it was journaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the exchange stopped before the command's outcome was known")]
pub struct Abandoned;

/// A sequenced command: resolves to its [`Executed`] once it may be acknowledged (durable in
/// `durable` mode). Dropping it is fine: the command stands, and the router then does not
/// collect its events for nobody.
#[derive(Debug)]
pub struct Ticket {
    seq: u64,
    outcome: oneshot::Receiver<Executed>,
}

impl Ticket {
    pub(crate) fn new(seq: u64, outcome: oneshot::Receiver<Executed>) -> Ticket {
        debug_assert!(seq > 0, "sequence numbers start at 1");
        Ticket { seq, outcome }
    }

    /// The command's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The outcome if it is known now, without waiting (for threads that poll).
    pub fn try_outcome(&mut self) -> Option<Result<Executed, Abandoned>> {
        match self.outcome.try_recv() {
            Ok(executed) => Some(Ok(executed)),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(Abandoned)),
        }
    }
}

impl Future for Ticket {
    type Output = Result<Executed, Abandoned>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.outcome).poll(cx).map_err(|_| Abandoned)
    }
}
