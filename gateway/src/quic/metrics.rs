//! Prometheus metrics of the QUIC server, registered like the REST bridge's
//! ([`crate::rest::metrics`]) on the appliance's registry (exported with its `peregrine_`
//! prefix).
//!
//! Every label value comes from a fixed set — the frame kinds and protocol errors the session
//! counts ([`peregrine_proto::counts`]), the names of reject codes, a few close reasons — never
//! from peer data, so the number of series is bounded. Counters with a label are resolved to
//! their children once, here: the connection task only adds to atomics.

use peregrine_proto::counts::{
    FRAME_KIND_COUNT, FRAME_KINDS, PROTOCOL_ERROR_COUNT, PROTOCOL_ERROR_KINDS, SessionCounts,
};
use peregrine_proto::frame::RejectCode;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Why a connection ended when no session close code says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The session closed with this code (its final frame was sent).
    Session(RejectCode),
    /// The peer closed the stream or the connection.
    PeerClosed,
    /// Writing to the peer failed.
    WriteFailed,
    /// No stream was opened within the idle timeout.
    NoStream,
    /// The server failed (no random bytes for the challenge).
    Internal,
    /// The task was stopped before the connection ended (shutdown).
    Aborted,
}

impl Ended {
    /// The `reason` label: a session code's name (`quic.session.logout`,
    /// `quic.session.idle_timeout`, `server.shutting_down`, `quic.frame.malformed`), else the
    /// cause.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Ended::Session(code) => code.name(),
            Ended::PeerClosed => "peer_closed",
            Ended::WriteFailed => "write_failed",
            Ended::NoStream => "no_stream",
            Ended::Internal => "internal",
            Ended::Aborted => "aborted",
        }
    }
}

/// Order-entry handling latency buckets in seconds: 10 µs doubling to ~1.3 s (18 buckets); a
/// durable ack costs a journal write, the top buckets catch a stalled disk.
fn order_entry_buckets_s() -> Vec<f64> {
    (0..18).map(|i| 10e-6 * f64::from(1u32 << i)).collect()
}

/// The QUIC server's metrics. Cloning shares them.
#[derive(Clone, Debug)]
pub struct QuicMetrics {
    /// Connections whose handshake completed and that have not ended.
    connections_open: IntGauge,
    /// Connections whose handshake completed.
    connections_accepted_total: IntCounter,
    /// Connections ended, by reason (handshake failures included).
    connections_closed_total: IntCounterVec,
    /// Logons, by outcome (`accepted` or the refusal's short name).
    logons_total: IntCounterVec,
    /// Children of `quic_frames_received_total{type}`, by frame kind index.
    frames_received_total: Vec<IntCounter>,
    /// Children of `quic_frames_sent_total{type}`, by frame kind index.
    frames_sent_total: Vec<IntCounter>,
    /// Children of `quic_protocol_errors_total{kind}`, by protocol error index.
    protocol_errors_total: Vec<IntCounter>,
    /// Order entry, frame in to final answer written.
    order_entry_seconds: Histogram,
}

impl QuicMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<QuicMetrics, prometheus::Error> {
        let connections_open = IntGauge::new(
            "quic_connections_open",
            "QUIC connections open (handshake done)",
        )?;
        let connections_accepted_total = IntCounter::new(
            "quic_connections_accepted_total",
            "QUIC connections whose handshake completed",
        )?;
        let connections_closed_total = IntCounterVec::new(
            Opts::new(
                "quic_connections_closed_total",
                "QUIC connections ended, by reason",
            ),
            &["reason"],
        )?;
        let logons_total = IntCounterVec::new(
            Opts::new("quic_logons_total", "QUIC logons, by outcome"),
            &["outcome"],
        )?;
        let frames_received = IntCounterVec::new(
            Opts::new("quic_frames_received_total", "QUIC frames parsed, by type"),
            &["type"],
        )?;
        let frames_sent = IntCounterVec::new(
            Opts::new("quic_frames_sent_total", "QUIC frames sent, by type"),
            &["type"],
        )?;
        let protocol_errors = IntCounterVec::new(
            Opts::new(
                "quic_protocol_errors_total",
                "QUIC protocol errors (bad frames, requests out of order), by kind",
            ),
            &["kind"],
        )?;
        let order_entry_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "quic_order_entry_seconds",
                "QUIC order entry: from the frame read to its final answer (Done, or the Reject \
                 of a command never sequenced) written",
            )
            .buckets(order_entry_buckets_s()),
        )?;
        let kinds = |vec: &IntCounterVec| {
            FRAME_KINDS
                .iter()
                .map(|(_, name)| vec.get_metric_with_label_values(&[name]))
                .collect::<Result<Vec<_>, _>>()
        };
        let metrics = QuicMetrics {
            frames_received_total: kinds(&frames_received)?,
            frames_sent_total: kinds(&frames_sent)?,
            protocol_errors_total: PROTOCOL_ERROR_KINDS
                .iter()
                .map(|name| protocol_errors.get_metric_with_label_values(&[name]))
                .collect::<Result<Vec<_>, _>>()?,
            connections_open,
            connections_accepted_total,
            connections_closed_total,
            logons_total,
            order_entry_seconds,
        };
        assert_eq!(metrics.frames_received_total.len(), FRAME_KIND_COUNT);
        assert_eq!(metrics.protocol_errors_total.len(), PROTOCOL_ERROR_COUNT);
        registry.register(Box::new(metrics.connections_open.clone()))?;
        registry.register(Box::new(metrics.connections_accepted_total.clone()))?;
        registry.register(Box::new(metrics.connections_closed_total.clone()))?;
        registry.register(Box::new(metrics.logons_total.clone()))?;
        registry.register(Box::new(frames_received))?;
        registry.register(Box::new(frames_sent))?;
        registry.register(Box::new(protocol_errors))?;
        registry.register(Box::new(metrics.order_entry_seconds.clone()))?;
        Ok(metrics)
    }

    /// A connection's handshake completed: counted, and open until the guard is dropped.
    pub(crate) fn accepted(&self) -> OpenConnection {
        self.connections_accepted_total.inc();
        self.connections_open.inc();
        OpenConnection {
            metrics: self.clone(),
            ended: Ended::Aborted,
        }
    }

    /// A handshake failed: the connection never opened.
    pub(crate) fn handshake_failed(&self) {
        self.connections_closed_total
            .with_label_values(&["handshake_failed"])
            .inc();
    }

    /// A logon was answered: `Ok` accepted, else refused with the code (its name is the
    /// label: `quic.key.unknown`, `quic.key.bad_signature`, `quic.session.limit`).
    pub(crate) fn logon(&self, outcome: Result<(), RejectCode>) {
        let label = match outcome {
            Ok(()) => "accepted",
            Err(code) => code.name(),
        };
        self.logons_total.with_label_values(&[label]).inc();
    }

    /// Adds what a session counted since the last call.
    pub(crate) fn add(&self, counts: &SessionCounts) {
        let add = |counters: &[IntCounter], counts: &[u32]| {
            for (counter, n) in counters.iter().zip(counts) {
                if *n > 0 {
                    counter.inc_by(u64::from(*n));
                }
            }
        };
        add(&self.frames_received_total, &counts.frames_received);
        add(&self.frames_sent_total, &counts.frames_sent);
        add(&self.protocol_errors_total, &counts.protocol_errors);
    }

    /// Observes order-entry requests parsed at `received_ns` and answered at `now_ns` (one
    /// clock).
    pub(crate) fn answered(&self, now_ns: u64, received_ns: &[u64]) {
        for received in received_ns {
            let elapsed_ns = now_ns.saturating_sub(*received);
            self.order_entry_seconds.observe(elapsed_ns as f64 / 1e9);
        }
    }
}

/// An open connection; counts its end (with the reason last set) when dropped, however its task
/// ends.
#[derive(Debug)]
pub(crate) struct OpenConnection {
    metrics: QuicMetrics,
    ended: Ended,
}

impl OpenConnection {
    /// Why the connection ends, should it end now.
    pub(crate) fn ends(&mut self, ended: Ended) {
        self.ended = ended;
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
        self.metrics
            .connections_closed_total
            .with_label_values(&[self.ended.label()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_the_codes_names() {
        assert_eq!(
            Ended::Session(RejectCode::LOGOUT).label(),
            "quic.session.logout"
        );
        assert_eq!(
            Ended::Session(RejectCode::SHUTTING_DOWN).label(),
            "server.shutting_down"
        );
        assert_eq!(Ended::Session(RejectCode(u16::MAX)).label(), "unknown");
    }

    #[test]
    fn buckets_are_increasing() {
        let buckets = order_entry_buckets_s();
        assert!(buckets.windows(2).all(|w| w[0] < w[1]));
        assert!(buckets.last().is_some_and(|&last| last > 1.0 && last < 2.0));
    }
}
