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
//! holder's deadline passes no later than etcd's expiry. The holder fences itself sooner than
//! that: [`Leadership::lost`] resolves [`ACK_FENCE`] after the send of the last successful
//! renewal (or when etcd says the lease is gone), and `up` then stops acknowledging (it exits).
//! So a deposed primary stops before etcd can expire its lease for another node, and before a
//! successor that *revoked* its lease ([`Candidacy::depose`]: the primary's process is gone)
//! acknowledges anything: the successor waits [`ACK_FENCE`] + [`EXIT_SLACK`] after the
//! revocation ([`Leadership::acknowledge_from`]), and any renewal the old holder could still
//! count was sent before that revocation.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::Seq;
use crate::etcd::{Etcd, EtcdError, Held, LeaseId};

/// Candidates compared at a vacancy, at most (more are ignored: a pair has one or two).
pub const CANDIDATES_MAX: usize = 16;
/// The shortest lease etcd grants: it counts TTLs in whole seconds.
pub const LEASE_TTL_MIN: Duration = Duration::from_secs(1);
/// A holder renews its lease this often, and a candidate looks at the leader key this often.
pub const RENEW_EVERY: Duration = Duration::from_millis(100);
/// A holder acknowledges nothing later than this after it *sent* its last successful renewal:
/// it exits at that deadline. Two renewals in a row may fail or be slow before it does.
pub const ACK_FENCE: Duration = Duration::from_millis(400);
/// Time for a fenced holder to have stopped once its deadline passed: a timer that fires late on
/// a loaded host, an acknowledgement mid-write when the process exits.
pub const EXIT_SLACK: Duration = Duration::from_millis(150);
// A renewal every RENEW_EVERY, two of them lost, still keeps the holder within its fence.
const _: () = assert!(RENEW_EVERY.as_millis() * 3 <= ACK_FENCE.as_millis());
// The holder stops before etcd can expire its lease for anyone else (etcd counts the TTL from
// when it received the renewal, after its send).
const _: () = assert!(ACK_FENCE.as_millis() + EXIT_SLACK.as_millis() < LEASE_TTL_MIN.as_millis());

/// Where and as whom to lead.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// The etcd cluster.
    pub etcd: Etcd,
    /// Every key of this pair starts with it (e.g. `/peregrine/prod/`).
    pub prefix: String,
    /// This node's name (unique in the pair).
    pub node: String,
    /// The lease's time to live: a primary cut off from everyone is replaced after about this
    /// long (a crashed one sooner: [`Candidacy::depose`]).
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

    /// How often a holder renews and a candidate looks: [`RENEW_EVERY`] (well within the
    /// fence, far within any lease etcd grants).
    pub fn renew_every(&self) -> Duration {
        RENEW_EVERY
    }
}

/// A held leadership: the term, and a watch that turns true once it may be lost.
#[derive(Debug)]
pub struct Leadership {
    term: u64,
    /// When this holder may first acknowledge: after the fence of a predecessor whose lease it
    /// revoked, else at once.
    acknowledge_from: Instant,
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

    /// When this holder may first acknowledge: `up` opens no gateway before. A leadership taken
    /// after [`Candidacy::depose`] revoked the previous holder's lease waits for that holder's
    /// fence ([`ACK_FENCE`] + [`EXIT_SLACK`] after the revocation).
    pub fn acknowledge_from(&self) -> Instant {
        self.acknowledge_from
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
            let deadline = sent + ACK_FENCE;
            let keeper = tokio::spawn(keep(config.clone(), lease, deadline, tell));
            tracing::info!(term, node = %config.node, "leadership taken");
            Ok(Ok(Leadership {
                term,
                acknowledge_from: Instant::now(),
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

/// Renews the lease every [`RENEW_EVERY`]; says `lost` at the fence ([`ACK_FENCE`] after the
/// last successful renewal's send) or when etcd says the lease is gone.
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
            // Never past what etcd answered (at least LEASE_TTL_MIN for a live lease).
            Ok(Some(ttl_s)) => deadline = sent + ACK_FENCE.min(Duration::from_secs(ttl_s)),
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
    /// Whether this candidacy asked etcd to revoke a leader's lease: a leadership it takes then
    /// waits for the old holder's fence.
    revoked: bool,
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
            revoked: false,
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
            Ok(mut leadership) => {
                if self.revoked {
                    // Taken after the key vanished, so after the old holder's last renewal
                    // was sent: its fence has passed by then, whoever ended its lease and when.
                    leadership.acknowledge_from = Instant::now() + ACK_FENCE + EXIT_SLACK;
                }
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

    /// Revokes the lease of the leader of `term`, whose process is gone (its shipping port
    /// refused a connection right after its session ended): the key goes now, not when etcd
    /// expires the lease (a TTL after its last renewal, plus up to etcd's half-second expiry
    /// sweep). Nothing is revoked when the key holds another term (a newer leader) or none.
    /// Safe even if the holder is alive after all: a leadership this candidacy takes from then
    /// on acknowledges only after the holder's fence ([`Leadership::acknowledge_from`]), and the
    /// holder, unable to renew, exits at it. `Ok(true)` once revoked.
    pub async fn depose(&mut self, term: u64) -> Result<bool, EtcdError> {
        let Some(holder) = self.config.etcd.get(&self.config.leader_key()).await? else {
            return Ok(false);
        };
        self.term_seen = self.term_seen.max(holder.term);
        if term == 0 || holder.term != term || holder.lease == 0 {
            return Ok(false);
        }
        // Before the call: etcd may act on it even if its answer is lost.
        self.revoked = true;
        self.config.etcd.revoke(holder.lease).await?;
        tracing::warn!(
            term,
            leader = %holder.value,
            "leadership: the leader's process is gone (its port refuses connections); its \
             lease revoked"
        );
        Ok(true)
    }

    /// Withdraws (a standby that stops).
    pub async fn withdraw(mut self) {
        if let Some(lease) = self.lease.take() {
            let _ = self.config.etcd.revoke(lease).await;
        }
    }
}
