//! Identity's audit chain head, anchored in the journal: every `[auth]
//! audit_anchor_interval_ms`, and once more when `up` stops, the head (the last record's
//! sequence number and hash) is submitted as an `AuditAnchor` command by `service:identity`
//! when it moved since the last anchor. `peregrine audit verify` then proves the audit table
//! still holds every anchored record with its anchored hash: records cut off the end, or a
//! chain rewritten, after an anchor show (the hash chain alone cannot see a cut end).
//!
//! The anchor is the identity store's word journaled by the exchange: it never blocks an
//! audit write, and a refused or timed-out submission is retried at the next tick.

use std::sync::Arc;
use std::time::Duration;

use peregrine_auth::Store;
use peregrine_core::{EngineHandle, Request};
use peregrine_hotpath::{Actor, AuditAnchor, CommandKind, Service};
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a periodic anchor's submission may wait for its outcome (a journal commit); a
/// late one is retried at the next tick.
const ANCHOR_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the anchor at shutdown may wait for its commit: nothing retries it, so it gets
/// longer (a loaded machine's fsync), and identity's `stop` waits for it ([`STOP_WAIT`]).
const SHUTDOWN_ANCHOR_TIMEOUT: Duration = Duration::from_secs(5);
/// How long identity's `stop` waits for this task: the shutdown anchor's timeout, and the
/// head's read, with room.
pub const STOP_WAIT: Duration = Duration::from_secs(7);
const _: () = assert!(SHUTDOWN_ANCHOR_TIMEOUT.as_secs() < STOP_WAIT.as_secs());
const _: () = assert!(ANCHOR_TIMEOUT.as_secs() <= SHUTDOWN_ANCHOR_TIMEOUT.as_secs());

/// Why an anchor was not journaled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// The head could not be read.
    #[error("audit head: {0}")]
    Store(#[from] peregrine_auth::StoreError),
    /// The head's hash is not 32 bytes (a damaged row: `audit verify` names it).
    #[error("audit record {0} has a malformed hash")]
    Hash(i64),
    /// The engine did not take the command.
    #[error("journaling the anchor: {0}")]
    Submit(String),
}

/// What one tick did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchored {
    /// The head was journaled (its sequence number).
    Journaled(i64),
    /// The head had not moved since the last anchor (or the chain is empty).
    Unchanged,
}

/// `auth_audit_anchors_total{outcome}`: `journaled`, `unchanged` or `failed`.
#[derive(Clone, Debug)]
pub struct AnchorMetrics {
    anchors_total: IntCounterVec,
}

impl AnchorMetrics {
    /// Registers the metric.
    pub fn new(registry: &Registry) -> Result<AnchorMetrics, prometheus::Error> {
        let anchors_total = IntCounterVec::new(
            Opts::new(
                "auth_audit_anchors_total",
                "audit chain heads anchored in the journal, by outcome",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(anchors_total.clone()))?;
        for outcome in ["journaled", "unchanged", "failed"] {
            anchors_total.with_label_values(&[outcome]);
        }
        Ok(AnchorMetrics { anchors_total })
    }
}

/// Journals the head if it moved past `last` (updated on success), waiting at most
/// `timeout` for the commit.
pub async fn anchor_once(
    store: &Store,
    engine: &EngineHandle,
    last: &mut Option<i64>,
    timeout: Duration,
) -> Result<Anchored, AnchorError> {
    let Some((seq, hash)) = store.audit_head().await? else {
        return Ok(Anchored::Unchanged);
    };
    if *last == Some(seq) {
        return Ok(Anchored::Unchanged);
    }
    let hash = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| AnchorError::Hash(seq))?;
    let anchor = AuditAnchor {
        seq: u64::try_from(seq).map_err(|_| AnchorError::Hash(seq))?,
        hash,
    };
    let request = Request::new(
        Actor::Service(Service::Identity),
        CommandKind::AuditAnchor(anchor),
    );
    let ticket = engine
        .submit(request)
        .map_err(|e| AnchorError::Submit(e.to_string()))?;
    let executed = tokio::time::timeout(timeout, ticket)
        .await
        .map_err(|_| AnchorError::Submit("no outcome in time".to_owned()))?
        .map_err(|e| AnchorError::Submit(e.to_string()))?;
    if let Some(reason) = executed.rejected() {
        return Err(AnchorError::Submit(format!("{reason:?}")));
    }
    *last = Some(seq);
    Ok(Anchored::Journaled(seq))
}

/// Anchors every `interval` until `stop` turns true, then once more (the head at shutdown).
pub fn spawn(
    store: Store,
    engine: Arc<EngineHandle>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    metrics: AnchorMetrics,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = None;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Bounded by `stop`: each pass waits a tick or ends.
        loop {
            let stopping = tokio::select! {
                _ = ticks.tick() => false,
                _ = stop.wait_for(|&stop| stop) => true,
            };
            let timeout = if stopping {
                SHUTDOWN_ANCHOR_TIMEOUT
            } else {
                ANCHOR_TIMEOUT
            };
            let outcome = match anchor_once(&store, &engine, &mut last, timeout).await {
                Ok(Anchored::Journaled(seq)) if stopping => {
                    tracing::info!(seq, "audit head anchored in the journal at shutdown");
                    "journaled"
                }
                Ok(Anchored::Journaled(seq)) => {
                    tracing::debug!(seq, "audit head anchored in the journal");
                    "journaled"
                }
                Ok(Anchored::Unchanged) => "unchanged",
                Err(error) if stopping => {
                    tracing::error!(%error, "audit head not anchored at shutdown");
                    "failed"
                }
                Err(error) => {
                    tracing::warn!(%error, "audit head not anchored");
                    "failed"
                }
            };
            metrics.anchors_total.with_label_values(&[outcome]).inc();
            if stopping {
                return;
            }
        }
    })
}
