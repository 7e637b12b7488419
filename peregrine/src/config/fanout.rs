//! `[fanout]`: publishing every durable command's changes to NATS JetStream, for bridge nodes
//! (see `peregrine_fanout`). Off by default: `up` on a bare machine needs no NATS.

use serde::{Deserialize, Deserializer, Serialize};

/// Longest stream name or subject prefix.
pub const NAME_BYTES_MAX: usize = 32;

/// The `[fanout]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FanoutSection {
    /// Publish to `url`.
    pub enabled: bool,
    /// The NATS server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The JetStream stream (created if absent).
    #[serde(deserialize_with = "stream_name")]
    pub stream: String,
    /// A token every subject starts with (`<prefix>.md.btcusd.trades`), for several appliances
    /// on one NATS; empty: none.
    #[serde(deserialize_with = "prefix")]
    pub prefix: String,
    /// How often every book is written to the snapshot bucket (`<stream>_BOOKS`), ms: a
    /// bridge that starts or resynchronises replays at most this much of the stream.
    pub snapshot_interval_ms: u64,
    /// Copies JetStream keeps of the stream and the snapshot bucket, 1 to 5 (3 on a 3-node
    /// cluster); applied when the stream is created.
    pub replicas: usize,
}

impl Default for FanoutSection {
    fn default() -> Self {
        Self {
            enabled: false,
            url: "nats://127.0.0.1:4222".to_owned(),
            stream: "PEREGRINE".to_owned(),
            prefix: String::new(),
            snapshot_interval_ms: 1_000,
            replicas: 1,
        }
    }
}

pub(crate) fn stream_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = String::deserialize(deserializer)?;
    check_name(&value, "stream name", NAME_BYTES_MAX).map_err(serde::de::Error::custom)?;
    Ok(value)
}

/// Refuses `value` unless it is 1 to `bytes_max` of `A-Z a-z 0-9 _ -` (a name other systems
/// take as one path segment or token: NATS streams, OpenBao mounts and policies).
pub(crate) fn check_name(value: &str, what: &str, bytes_max: usize) -> Result<(), String> {
    let valid = !value.is_empty()
        && value.len() <= bytes_max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a {what} (1 to {bytes_max} of A-Z a-z 0-9 _ -)"
        ))
    }
}

fn prefix<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = String::deserialize(deserializer)?;
    // The fan-out's own rule for a token, so config and subjects cannot disagree.
    if !value.is_empty() && !peregrine_fanout::subject::is_token(&value) {
        return Err(serde::de::Error::custom(format!(
            "{value:?} is not a subject token (up to {} of a-z 0-9 _ -)",
            peregrine_fanout::subject::MARKET_NAME_BYTES_MAX
        )));
    }
    Ok(value)
}
