//! Hot standby: journal shipping from a primary to standbys over mutual TLS, and leadership
//! through an etcd lease.
//!
//! Owns: the shipping protocol ([`wire`]), both of its ends ([`primary::Shipper`] and
//! [`standby::run`]), their TLS setup ([`tls`]) and metrics, and leadership through an etcd
//! lease ([`leader`], over etcd's JSON gateway: [`etcd`]). Never does: sequence commands (the
//! primary's journal does; a standby only copies its sequences), read the hot path's memory (the
//! primary's shipper reads the journal files back, like the replica), or open gateways (the
//! appliance's `up` does, on the side that leads).
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
//!   `reconnect_every`; with leadership, the best standby takes over at once (the dead
//!   primary's port refuses it, so it revokes that term's lease), or once the lease expires
//!   when the primary is unreachable rather than gone.
//! - A certificate the CA did not sign, or none: the TLS handshake fails; the primary counts
//!   `ship_sessions_total{outcome="tls_refused"}`, the standby stops with
//!   [`standby::StandbyError::Authentication`] (a configuration error, not retried).
//! - A standby whose journal is ahead of the primary's, or whose last record has another term
//!   than the primary's at that sequence (another history: a deposed primary rejoining with
//!   the records it wrote after losing its lease): refused with a reason; the standby stops.
//! - A standby whose next record the primary's retention already deleted (one added to a
//!   primary that has traded for a while): the primary sends its newest snapshot
//!   ([`wire::Frame::Snapshot`]), the standby closes its journal, makes that image its start
//!   (its old segments and snapshots go) and follows from the record after it
//!   (`ship_snapshots_total`, `standby_snapshots_installed_total`). Refused
//!   ([`wire::RefuseReason::JournalGone`]) when no snapshot covers the gap: the standby retries
//!   every `reconnect_every` until one does.
//! - A connected standby that falls behind: retention keeps every record after the last one it
//!   acknowledged (the shipper's [`RetentionFloor`](peregrine_persist::snapshot::RetentionFloor)
//!   reader, `ship_retention_held_records`), up to
//!   [`ShipperConfig::retention_records_max`] records behind; past that it holds nothing back
//!   (`ship_retention_released_total`: a stuck standby does not fill the disk), and once
//!   retention deletes a record it lacks its session ends
//!   ([`wire::RefuseReason::JournalGone`]) and it reconnects for the newest snapshot.
//! - Silence: the primary heartbeats every `heartbeat_every` when idle; a standby that hears
//!   nothing for [`standby::PRIMARY_SILENCE_MAX`] reconnects.
//!
//! Lag, records and seconds, on both sides: [`lag::LagClock`], `ship_lag_*` and
//! `standby_lag_*`.

//! # Leadership, terms and failover
//!
//! [`leader`]: the primary holds `<prefix>leader` under an etcd lease it renews every
//! [`leader::RENEW_EVERY`], and fences itself [`leader::ACK_FENCE`] after it *sent* its last
//! successful renewal, well before etcd could expire the lease ([`leader::Leadership::lost`];
//! `up` then exits). The key's
//! create revision is the leader's **term**: the shipper tells it first to every standby
//! ([`wire::Frame::Term`], protocol version 2), and a standby that has seen a newer term (its
//! etcd candidacy, [`leader::Candidacy`]) refuses the session, so a deposed primary cannot have
//! its records accepted. At a vacancy the candidate with the highest durable sequence takes the
//! key; `up` then stops the standby ([`standby::run_until`]: what was received is journaled and
//! applied, the journal closed) and opens the same journal as the primary.
//!
//! A SIGKILLed or crashed primary is not waited for: its session ends and its shipping port
//! then refuses the standby's immediate reconnection (its kernel answers for the gone process;
//! [`standby::Followed::gone`]), so the candidate revokes the lease of that term at once
//! ([`leader::Candidacy::depose`]) instead of waiting a TTL plus etcd's half-second expiry
//! sweep. Safe even when that sign lies (a primary alive after all): the successor opens its
//! gateways only [`leader::ACK_FENCE`] + [`leader::EXIT_SLACK`] after the key went
//! ([`leader::Leadership::acknowledge_from`]), and the old holder, unable to renew, has exited
//! by then. A partitioned primary gives no such sign: the lease expires as before.
//!
//! etcd's JSON gateway over `reqwest` rather than the `etcd-client` crate: that one adds about
//! 20 crates (tonic, prost, h2, petgraph, ...) and needs `protoc` on every build machine, for a
//! handful of calls. Measured: `perf/RESULTS.md`.
//!
//! Every journal record carries the term that sequenced it (journal format 3; `up` raises the
//! journal's term to its leadership's before any command), RECORD frames carry it (protocol
//! version 3), and a standby checks it per record ([`standby::StaleTerm`]): a record older than
//! its journal's newest term, or from a primary deposed while its session was open, is refused
//! (`standby_stale_term_records_total`).
//!
//! # Not built yet
//!
//! - A deposed primary's journal is refused as another history ([`wire::RefuseReason::Diverged`])
//!   but not truncated to the common prefix: it rejoins with an empty data directory.
//! - The SDK's resume by client order id after a failover.

pub mod etcd;
pub mod lag;
pub mod leader;
pub mod metrics;
pub mod primary;
pub mod private_etcd;
pub mod standby;
pub mod tls;
pub mod wire;

pub use peregrine_persist::Seq;
pub use primary::{Replication, Shipper, ShipperConfig};
pub use standby::{StandbyConfig, StandbyError, Stopped};
pub use tls::{TlsError, TlsFiles};
