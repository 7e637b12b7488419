//! `[replication]` and `[standby]`: a hot standby that follows this appliance's journal over
//! mutual TLS (see `peregrine_standby`), and which side of the pair this process is.
//!
//! A primary ships when `replication.listen` is set; `journal.ack = "replicated"` then holds each
//! acknowledgement until a standby has the command durable. A process is a standby when
//! `standby.of` is set (`up --standby-of ADDR`): it journals and applies the primary's records
//! and opens no gateway. Both sides read their certificate, key and the pair's CA from
//! `[replication]`.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

/// Bound on `replication.standbys_max`.
pub const STANDBYS_MAX: usize = 16;
/// Bound on the `*_ms` intervals of both sections: a minute.
pub const INTERVAL_MAX_MS: u64 = 60_000;
/// Bound on `replication.ready_lag_max_ms`: a day.
pub const READY_LAG_MAX_MS_MAX: u64 = 86_400_000;
/// Bound on `replication.standby_retention_records_max`: about 100 to 200 GiB of journal.
pub const STANDBY_RETENTION_RECORDS_MAX_MAX: u64 = 1_000_000_000;

/// The `[replication]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationSection {
    /// The primary's shipping address (`host:port`); empty: no shipping.
    pub listen: String,
    /// PEM: the CA that signs the pair's certificates (and nothing else is trusted).
    pub ca_cert: PathBuf,
    /// PEM: this node's certificate chain.
    pub cert: PathBuf,
    /// PEM: this node's private key.
    pub key: PathBuf,
    /// Standbys served at once.
    #[serde(deserialize_with = "standbys_max")]
    pub standbys_max: usize,
    /// A standby hears from the primary at least this often (a heartbeat when idle), ms.
    #[serde(deserialize_with = "interval_ms")]
    pub heartbeat_every_ms: u64,
    /// With `journal.ack = "replicated"` and no standby connected: `degrade` (acknowledge on
    /// the local durable write, with a warning) or `refuse` (hold acknowledgements).
    pub without_standby: WithoutStandbyName,
    /// `/health/ready` fails (on both sides) while the oldest record the standby lacks is
    /// older than this.
    #[serde(deserialize_with = "ready_lag_max_ms")]
    pub ready_lag_max_ms: u64,
    /// Journal retention keeps every record a connected standby has not acknowledged, up to
    /// this many records behind the primary's durable end; a standby further behind holds
    /// nothing back (the disk does not fill for a stuck standby) and catches up from a
    /// snapshot once retention deleted what it lacks.
    #[serde(deserialize_with = "standby_retention_records_max")]
    pub standby_retention_records_max: u64,
}

impl Default for ReplicationSection {
    fn default() -> Self {
        Self {
            listen: String::new(),
            ca_cert: PathBuf::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
            standbys_max: 2,
            heartbeat_every_ms: 100,
            without_standby: WithoutStandbyName::Degrade,
            ready_lag_max_ms: 10_000,
            standby_retention_records_max:
                peregrine_standby::primary::RETENTION_RECORDS_MAX_DEFAULT,
        }
    }
}

impl ReplicationSection {
    /// Whether this node ships its journal.
    pub fn ships(&self) -> bool {
        !self.listen.is_empty()
    }

    /// The TLS material, for either side.
    pub fn tls_files(&self) -> peregrine_standby::TlsFiles {
        peregrine_standby::TlsFiles {
            ca_cert: self.ca_cert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

/// `replication.without_standby` in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WithoutStandbyName {
    #[default]
    Degrade,
    Refuse,
}

impl WithoutStandbyName {
    /// The journal's policy.
    pub fn policy(self) -> peregrine_persist::WithoutStandby {
        match self {
            Self::Degrade => peregrine_persist::WithoutStandby::Degrade,
            Self::Refuse => peregrine_persist::WithoutStandby::Refuse,
        }
    }
}

/// The `[standby]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StandbySection {
    /// The primary's shipping address (`host:port`); empty: this node is not a standby;
    /// [`FOLLOW_LEADER`]: lead if the lease is free, else follow its holder at
    /// `leadership.peer_address`. Flag: `up --standby-of ADDR`.
    pub of: String,
    /// The DNS name or address the primary's certificate carries.
    pub primary_name: String,
    /// Wait between a failed session with the primary and the next attempt, ms.
    #[serde(deserialize_with = "interval_ms")]
    pub reconnect_every_ms: u64,
}

impl Default for StandbySection {
    fn default() -> Self {
        Self {
            of: String::new(),
            primary_name: "localhost".to_owned(),
            reconnect_every_ms: 200,
        }
    }
}

/// `standby.of` (`up --standby-of leader`) of a pair whose role is chosen by etcd at start:
/// the node that finds the lease free takes it and trades; one that finds it held follows the
/// holder, at the address `leadership.peer_address` gives for the holder's node name. The
/// same configuration then serves both nodes (a Kubernetes StatefulSet's pods).
pub const FOLLOW_LEADER: &str = "leader";

/// The `{node}` placeholder of `leadership.peer_address` and `standby.primary_name`.
pub const NODE_PLACEHOLDER: &str = "{node}";

impl StandbySection {
    /// Whether this node is a standby (or, with [`FOLLOW_LEADER`], may be one).
    pub fn is_standby(&self) -> bool {
        !self.of.is_empty()
    }

    /// Whether the role is chosen at start through the leadership lease.
    pub fn follows_leader(&self) -> bool {
        self.of == FOLLOW_LEADER
    }
}

/// `value` if it lies in `min..=max`, else a refusal naming the range.
fn within<T: PartialOrd + std::fmt::Display, E: serde::de::Error>(
    value: T,
    min: T,
    max: T,
) -> Result<T, E> {
    if value < min || value > max {
        return Err(E::custom(format!("{value} is outside {min} to {max}")));
    }
    Ok(value)
}

fn standbys_max<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    within(usize::deserialize(deserializer)?, 1, STANDBYS_MAX)
}

fn interval_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    within(u64::deserialize(deserializer)?, 1, INTERVAL_MAX_MS)
}

fn ready_lag_max_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    within(u64::deserialize(deserializer)?, 1, READY_LAG_MAX_MS_MAX)
}

fn standby_retention_records_max<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<u64, D::Error> {
    within(
        u64::deserialize(deserializer)?,
        1,
        STANDBY_RETENTION_RECORDS_MAX_MAX,
    )
}

/// Bound on `leadership.lease_ttl_ms`: a minute.
pub const LEASE_TTL_MAX_MS: u64 = 60_000;
/// Least `leadership.lease_ttl_ms`: etcd counts leases in whole seconds.
pub const LEASE_TTL_MIN_MS: u64 = 1_000;

/// The `[leadership]` section: who of the pair trades, through an etcd lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeadershipSection {
    /// etcd's client endpoints, `http://host:port[,...]`; empty: no leadership (a primary
    /// trades without a lease and a standby never takes over).
    pub etcd: String,
    /// Every key of this pair starts with it.
    pub prefix: String,
    /// This node's name, unique in the pair (needed with `etcd`).
    pub node: String,
    /// The lease's time to live, ms (whole seconds, 1 s to 60 s): a primary cut off from etcd
    /// and its standby is replaced after about this long (it stops acknowledging sooner, 0.4 s
    /// after its last renewal); a crashed one is replaced at once, its lease revoked by the
    /// standby.
    #[serde(deserialize_with = "lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// With `standby.of = "leader"`: the shipping address of the node named `{node}`, e.g.
    /// `{node}.appliance.peregrine-hotpath.svc:7100`.
    pub peer_address: String,
}

impl Default for LeadershipSection {
    fn default() -> Self {
        Self {
            etcd: String::new(),
            prefix: "/peregrine/default/".to_owned(),
            node: String::new(),
            lease_ttl_ms: 2_000,
            peer_address: String::new(),
        }
    }
}

impl LeadershipSection {
    /// Whether leadership goes through etcd.
    pub fn enabled(&self) -> bool {
        !self.etcd.is_empty()
    }

    /// The shipping address of the pair's node `node` (`peer_address` with `{node}` replaced).
    pub fn peer_of(&self, node: &str) -> String {
        self.peer_address.replace(NODE_PLACEHOLDER, node)
    }
}

fn lease_ttl_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = within(
        u64::deserialize(deserializer)?,
        LEASE_TTL_MIN_MS,
        LEASE_TTL_MAX_MS,
    )?;
    if value % 1_000 != 0 {
        return Err(serde::de::Error::custom(format!(
            "{value} is not whole seconds"
        )));
    }
    Ok(value)
}
