//! Hot standby, first stage: journal shipping from a primary to standbys over mutual TLS.
//!
//! Owns: the shipping protocol ([`wire`]), both of its ends ([`primary::Shipper`] and
//! [`standby::run`]), their TLS setup ([`tls`]) and metrics. Never does: sequence commands (the
//! primary's journal does; a standby only copies its sequences), read the hot path's memory (the
//! primary's shipper reads the journal files back, like the replica), or decide leadership (a
//! later stage, through an etcd lease).
//!
//! # What is shipped
//!
//! Durable records only: a tailer thread per standby reads the primary's journal files up to
//! [`Journal::durable_seq`](peregrine_persist::Journal::durable_seq), so a standby never holds a
//! record the primary could lose in a crash. Each RECORD frame carries the sequence, the
//! primary's durable sequence (for lag) and the journal payload (the rkyv archive of the
//! command).
//!
//! # What a standby does with it
//!
//! It recovers its own journal at start (snapshot + replay, as any node does), says HELLO with
//! the sequence after its journal's end, and for each record: checks the payload decodes, appends
//! it at the primary's sequence with
//! [`Journal::append_sequenced`](peregrine_persist::Journal::append_sequenced) (a gap or a
//! replay is a typed error and stops the standby rather than let it diverge), applies it to its
//! engine (the same deterministic engine, so its state equals the primary's at every sequence)
//! and takes snapshots on the same schedule settings as its config says.
//!
//! # When it is acknowledged
//!
//! The standby sends ACK with its own journal's durable sequence after every group commit of
//! its writer. The primary hands the highest acknowledged sequence of any standby to its journal
//! ([`Journal::note_replicated`](peregrine_persist::Journal::note_replicated)), and the number
//! of standbys connected
//! ([`Journal::set_standbys_connected`](peregrine_persist::Journal::set_standbys_connected)).
//! In ack mode [`AckMode::Replicated`](peregrine_persist::AckMode::Replicated) the durability
//! gate (core's output router, through
//! [`Journal::ackable_seq`](peregrine_persist::Journal::ackable_seq)) releases a command's
//! effects only once it is durable here and a standby acknowledged it; with no standby
//! connected it degrades to `durable` (logged) or holds everything, per
//! [`WithoutStandby`](peregrine_persist::WithoutStandby).
//!
//! # Failures
//!
//! - Standby killed or disconnected: the primary's session ends, the slot is freed, the
//!   primary keeps trading (in `replicated` mode: degrading to `durable` with a warning, or
//!   holding acknowledgements until a standby is back, per config). The standby, restarted,
//!   recovers its journal and resumes from its end; records it had queued but not made durable
//!   are simply shipped again.
//! - Primary killed: the standby keeps what it made durable and reconnects every
//!   `reconnect_every` (failover is a later stage).
//! - A certificate the CA did not sign, or none: the TLS handshake fails; the primary counts
//!   `ship_sessions_total{outcome="tls_refused"}`, the standby stops with
//!   [`standby::StandbyError::Authentication`] (a configuration error, not retried).
//! - A standby whose journal is ahead of the primary's (another history), or whose next record
//!   the primary's retention already deleted: refused with a reason; the standby stops (catch-up
//!   from a snapshot is not built yet).
//! - Silence: the primary heartbeats every `heartbeat_every` when idle; a standby that hears
//!   nothing for [`standby::PRIMARY_SILENCE_MAX`] reconnects.
//!
//! Lag, records and seconds, on both sides: [`lag::LagClock`], `ship_lag_*` and
//! `standby_lag_*`.

//! # Coordination (next stage): etcd through its JSON gateway
//!
//! Leadership will be an etcd lease (`scripts/test` provides etcd 3.4 on loopback,
//! `ETCD_ENDPOINTS`). The plan is etcd's v3 JSON gateway (`POST /v3/lease/grant`,
//! `/v3/lease/keepalive`, `/v3/kv/txn` for put-if-absent under the lease) over the `reqwest`
//! already built for OpenBao, not the `etcd-client` crate: that one adds about 20 crates (tonic,
//! prost, h2, petgraph, pulldown-cmark, ...) and needs `protoc` on every build machine, for three
//! calls. Measured: `perf/RESULTS.md`.
//!
//! # Not built yet
//!
//! - Terms and fencing: records do not carry the leader's term yet (a record format bump: a
//!   version 3 record with a `u64` term after the sequence; version 2 segments would still be
//!   read, their records taken as term 0), so a standby cannot yet refuse a deposed primary.
//! - Leadership and failover through the etcd lease; the SDK's resume by client order id.
//! - Catch-up from a snapshot when the primary's journal no longer holds the standby's start
//!   (refused today with [`wire::RefuseReason::JournalGone`]); the primary should also hold its
//!   retention for connected standbys (a retention floor, as the replica does).
//! - `peregrine up --standby-of <addr>` and a `[standby]` config section: the two ends run in
//!   tests (`standby-test-node`) and in `peregrine bench e2e --ack replicated`, not in `up`; so
//!   the lag shows in these metrics but not yet on the appliance's `/metrics` and
//!   `/health/ready`.

pub mod lag;
pub mod metrics;
pub mod primary;
pub mod standby;
pub mod tls;
pub mod wire;

pub use peregrine_persist::Seq;
pub use primary::{Replication, Shipper, ShipperConfig};
pub use standby::{StandbyConfig, StandbyError, Stopped};
pub use tls::{TlsError, TlsFiles};
