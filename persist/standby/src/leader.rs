//! Leadership through an etcd lease, and the term (fencing token) it yields.
//!
//! Keys, under the pair's `prefix`:
//! - `<prefix>leader` = the primary's node name, attached to the primary's lease. Created only
//!   if absent (a transaction), so at most one node holds it; its create revision is the
//!   leader's **term**, greater for every later leader.
//! - `<prefix>candidates/<node>` = a standby's durable sequence, under the standby's own lease:
//!   when the leader key is gone, the candidate with the highest durable sequence (then the
//!   lowest name) takes it ([`Candidacy`]).
//!
//! # Fencing in time
//!
//! The holder counts its lease from when it *sent* the grant or the last successful keep-alive,
//! plus the TTL etcd answered: etcd counts from when it received the request, later, so the
//! holder's deadline passes no later than etcd's expiry. [`Leadership::lost`] resolves at that
//! deadline (or when etcd says the lease is gone), and `up` then stops acknowledging (it
//! exits): a deposed primary stops before another node can take the key.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::Seq;
use crate::etcd::{Etcd, EtcdError, Held, LeaseId};

/// Candidates compared at a vacancy, at most (more are ignored: a pair has one or two).
pub const CANDIDATES_MAX: usize = 16;

/// Where and as whom to lead.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// The etcd cluster.
    pub etcd: Etcd,
    /// Every key of this pair starts with it (e.g. `/peregrine/prod/`).
    pub prefix: String,
    /// This node's name (unique in the pair).
    pub node: String,
    /// The lease's time to live: a dead primary is replaced after about this long.
    pub lease_ttl: Duration,
}

impl LeaderConfig {
    /// The leader key.
    pub fn leader_key(&self) -> String {
        format!("{}leader", self.prefix)
    }

    fn candidates_prefix(&self) -> String {
        format!("{}candidates/", self.prefix)
    }

    fn ttl_s(&self) -> u64 {
        self.lease_ttl.as_secs().max(1)
    }

    /// How often a holder renews and a candidate looks: a third of the TTL, at least 50 ms.
    pub fn renew_every(&self) -> Duration {
        (self.lease_ttl / 3).max(Duration::from_millis(50))
    }
}

/// A held leadership: the term, and a watch that turns true once it may be lost.
#[derive(Debug)]
pub struct Leadership {
    term: u64,
    lease: LeaseId,
    etcd: Etcd,
    lost: watch::Receiver<bool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// The term (the leader key's create revision).
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Resolves once the lease is gone or may be (its deadline passed without a renewal).
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Whether [`Leadership::lost`] would resolve now.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Gives the leadership up at once (a planned stop): the key goes with the lease.
    pub async fn resign(self) {
        self.keeper.abort();
        if let Err(error) = self.etcd.revoke(self.lease).await {
            tracing::warn!(%error, "leadership: revoking the lease failed; it expires instead");
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// One attempt to lead: `Ok(Ok(leadership))`, or `Ok(Err(holder))` when another node holds
/// the key (`None`: it went between the two reads).
pub async fn try_lead(
    config: &LeaderConfig,
) -> Result<Result<Leadership, Option<Held>>, EtcdError> {
    let sent = Instant::now();
    let lease = config.etcd.grant(config.ttl_s()).await?;
    match config
        .etcd
        .create(&config.leader_key(), &config.node, lease)
        .await
    {
        Ok(Ok(term)) => {
            let (tell, lost) = watch::channel(false);
            let deadline = sent + config.lease_ttl.max(Duration::from_secs(1));
            let keeper = tokio::spawn(keep(config.clone(), lease, deadline, tell));
            tracing::info!(term, node = %config.node, "leadership taken");
            Ok(Ok(Leadership {
                term,
                lease,
                etcd: config.etcd.clone(),
                lost,
                keeper,
            }))
        }
        Ok(Err(holder)) => {
            let _ = config.etcd.revoke(lease).await;
            Ok(Err(holder))
        }
        Err(error) => {
            let _ = config.etcd.revoke(lease).await;
            Err(error)
        }
    }
}

/// Renews the lease every third of its TTL; says `lost` at the deadline without a renewal or
/// when etcd says the lease is gone.
async fn keep(
    config: LeaderConfig,
    lease: LeaseId,
    mut deadline: Instant,
    lost: watch::Sender<bool>,
) {
    // Bounded by the lease: each pass renews it or ends at its deadline.
    loop {
        let renew_at = (Instant::now() + config.renew_every()).min(deadline);
        tokio::time::sleep_until(renew_at).await;
        let sent = Instant::now();
        let renewed = tokio::select! {
            renewed = config.etcd.keep_alive(lease) => renewed,
            () = tokio::time::sleep_until(deadline) => {
                tracing::error!("leadership: no renewal before the lease's deadline");
                let _ = lost.send(true);
                return;
            }
        };
        match renewed {
            Ok(Some(ttl_s)) => deadline = sent + Duration::from_secs(ttl_s),
            Ok(None) => {
                tracing::error!("leadership: etcd says the lease is gone");
                let _ = lost.send(true);
                return;
            }
            Err(error) => tracing::warn!(%error, "leadership: renewal failed; retrying"),
        }
        if Instant::now() >= deadline {
            tracing::error!("leadership: the lease's deadline passed");
            let _ = lost.send(true);
            return;
        }
    }
}

/// A standby's candidacy: publishes its durable sequence, watches the leader key, and takes it
/// when it is free and no candidate has a higher durable sequence.
#[derive(Debug)]
pub struct Candidacy {
    config: LeaderConfig,
    lease: Option<LeaseId>,
    published: Option<Seq>,
    /// Whether the last look found a leader.
    leader_present: bool,
    /// The highest term seen (a primary of an older term is deposed).
    pub term_seen: u64,
}

impl Candidacy {
    /// A candidacy of `config.node`.
    pub fn new(config: LeaderConfig) -> Candidacy {
        Candidacy {
            config,
            lease: None,
            published: None,
            leader_present: true,
            term_seen: 0,
        }
    }

    /// How often to look: a third of the lease time.
    pub fn renew_every(&self) -> Duration {
        self.config.renew_every()
    }

    /// The lease time.
    pub fn lease_ttl(&self) -> Duration {
        self.config.lease_ttl
    }

    /// Whether the last [`Candidacy::step`] found a leader.
    pub fn leader_present(&self) -> bool {
        self.leader_present
    }

    /// Publishes `durable_seq` (under the candidate's lease, renewed here).
    async fn publish(&mut self, durable_seq: Seq) -> Result<(), EtcdError> {
        let etcd = &self.config.etcd;
        let alive = match self.lease {
            Some(lease) => etcd.keep_alive(lease).await?.is_some(),
            None => false,
        };
        if !alive {
            self.lease = Some(etcd.grant(self.config.ttl_s()).await?);
            self.published = None;
        }
        if self.published != Some(durable_seq) {
            let key = format!("{}{}", self.config.candidates_prefix(), self.config.node);
            let lease = self.lease.unwrap_or(0);
            etcd.put(&key, &durable_seq.to_string(), lease).await?;
            self.published = Some(durable_seq);
        }
        Ok(())
    }

    /// Whether this node is the best candidate with `durable_seq`: no other candidate has a
    /// higher one, nor the same one and a lower name.
    async fn is_best(&self, durable_seq: Seq) -> Result<bool, EtcdError> {
        let prefix = self.config.candidates_prefix();
        let candidates = self.config.etcd.prefixed(&prefix).await?;
        Ok(candidates.iter().take(CANDIDATES_MAX).all(|(key, value)| {
            let name = key.strip_prefix(&prefix).unwrap_or(key);
            let seq: Seq = value.parse().unwrap_or(0);
            name == self.config.node
                || seq < durable_seq
                || (seq == durable_seq && name > self.config.node.as_str())
        }))
    }

    /// One look: publishes `durable_seq`, and when the leader key is free and this node is the
    /// best candidate (or `grace_over`: the better one did not take it in time), tries to take
    /// it. `Some(leadership)` once taken.
    pub async fn step(
        &mut self,
        durable_seq: Seq,
        grace_over: bool,
    ) -> Result<Option<Leadership>, EtcdError> {
        self.publish(durable_seq).await?;
        if let Some(holder) = self.config.etcd.get(&self.config.leader_key()).await? {
            self.term_seen = self.term_seen.max(holder.term);
            self.leader_present = true;
            return Ok(None);
        }
        self.leader_present = false;
        if !grace_over && !self.is_best(durable_seq).await? {
            return Ok(None);
        }
        match try_lead(&self.config).await? {
            Ok(leadership) => {
                self.term_seen = self.term_seen.max(leadership.term());
                if let Some(lease) = self.lease.take() {
                    let _ = self.config.etcd.revoke(lease).await;
                }
                Ok(Some(leadership))
            }
            Err(holder) => {
                if let Some(holder) = holder {
                    self.term_seen = self.term_seen.max(holder.term);
                }
                Ok(None)
            }
        }
    }

    /// Withdraws (a standby that stops).
    pub async fn withdraw(mut self) {
        if let Some(lease) = self.lease.take() {
            let _ = self.config.etcd.revoke(lease).await;
        }
    }
}
