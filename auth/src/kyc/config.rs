//! KYC settings (the `kyc` section of [`crate::IdentityConfig`]): the level rules, the level
//! each gated action needs, the document limits, the OpenBao transit key and the provider
//! webhook's secret and replay window.

/// Most level rules.
pub const LEVEL_RULES_MAX: usize = 16;
/// Most document types allowed.
pub const DOCUMENT_TYPES_MAX: usize = 16;
/// The largest document any configuration may allow, bytes (the MySQL column is a
/// MEDIUMBLOB, 16 MiB, and the packet must also hold the statement).
pub const DOCUMENT_BYTES_LIMIT: usize = 12 * 1024 * 1024;

/// The fastest the webhook secret may be re-read, ms (one KV read each time).
pub const WEBHOOK_SECRET_REFRESH_MS_MIN: u64 = 100;

/// A document in an OpenBao KV v2 mount.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KvLocation {
    /// The KV v2 mount.
    pub mount: String,
    /// The document's path in it.
    pub path: String,
}

impl KvLocation {
    /// `path` in `mount`.
    pub fn new(mount: &str, path: &str) -> KvLocation {
        KvLocation {
            mount: mount.to_owned(),
            path: path.to_owned(),
        }
    }
}

/// A label that gives a level: the user has it (private scope) with `value`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LevelRule {
    /// The label's key (`email`, `phone`, `document`).
    pub key: String,
    /// The value it must hold (`verified`).
    pub value: String,
    /// The level it gives, when every rule of every lower level holds too.
    pub level: i64,
}

impl LevelRule {
    /// A rule.
    pub fn new(key: &str, value: &str, level: i64) -> LevelRule {
        LevelRule {
            key: key.to_owned(),
            value: value.to_owned(),
            level,
        }
    }
}

/// An action gated by the KYC level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatedAction {
    /// Placing orders.
    Trade,
    /// Withdrawing funds.
    Withdraw,
}

impl GatedAction {
    /// The audited name.
    pub fn as_str(self) -> &'static str {
        match self {
            GatedAction::Trade => "trade",
            GatedAction::Withdraw => "withdraw",
        }
    }
}

/// Settings of [`crate::kyc::Kyc`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KycConfig {
    /// How labels give levels (Barong's defaults: email 1, phone 2, document 3).
    pub level_rules: Vec<LevelRule>,
    /// The level trading needs.
    pub trade_level_min: i64,
    /// The level withdrawing needs.
    pub withdraw_level_min: i64,
    /// Document types a user may upload.
    pub document_types: Vec<String>,
    /// The largest document, bytes, refused before it is read.
    pub document_bytes_max: usize,
    /// Documents one user may hold.
    pub documents_per_user_max: u32,
    /// The OpenBao transit mount that wraps documents' data keys.
    pub transit_mount: String,
    /// The transit key (AES-256-GCM) there.
    pub transit_key: String,
    /// A fixed provider webhook HMAC-SHA256 key (embedding and tests; `up` never sets it:
    /// its secret comes from [`Self::webhook_secret_kv`]). Neither set turns the webhook off.
    pub webhook_secret: Option<String>,
    /// Where in OpenBao KV v2 the webhook secret lives (field `secret`), followed every
    /// [`Self::webhook_secret_refresh_ms`].
    pub webhook_secret_kv: Option<KvLocation>,
    /// How long a rotated-out webhook secret is still accepted, ms.
    pub webhook_secret_grace_ms: i64,
    /// How often the KV secret is read, ms.
    pub webhook_secret_refresh_ms: u64,
    /// A webhook call's timestamp must be within this of now, either way; its event id is
    /// remembered at least this long.
    pub webhook_window_ms: i64,
}

impl Default for KycConfig {
    fn default() -> KycConfig {
        KycConfig {
            level_rules: vec![
                LevelRule::new("email", "verified", 1),
                LevelRule::new("phone", "verified", 2),
                LevelRule::new("document", "verified", 3),
            ],
            trade_level_min: 1,
            withdraw_level_min: 2,
            document_types: [
                "passport",
                "identity_card",
                "driver_license",
                "utility_bill",
                "selfie",
            ]
            .map(str::to_owned)
            .to_vec(),
            document_bytes_max: 8 * 1024 * 1024,
            documents_per_user_max: 16,
            transit_mount: "transit".to_owned(),
            transit_key: "kyc-documents".to_owned(),
            webhook_secret: None,
            webhook_secret_kv: None,
            webhook_secret_grace_ms: 10 * 60_000,
            webhook_secret_refresh_ms: 5_000,
            webhook_window_ms: 5 * 60_000,
        }
    }
}

impl KycConfig {
    /// The level `action` needs.
    pub fn level_min(&self, action: GatedAction) -> i64 {
        match action {
            GatedAction::Trade => self.trade_level_min,
            GatedAction::Withdraw => self.withdraw_level_min,
        }
    }

    /// Checks the settings' relations; the reason names the field.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.level_rules.is_empty() || self.level_rules.len() > LEVEL_RULES_MAX {
            return Err("kyc.level_rules must hold 1 to 16 rules");
        }
        let top = self.level_rules.iter().map(|r| r.level).max().unwrap_or(0);
        // Levels are consecutive from 1: a gap would make every level above it unreachable.
        let consecutive = (1..=top).all(|level| self.level_rules.iter().any(|r| r.level == level));
        if !consecutive || self.level_rules.iter().any(|r| r.level < 1) {
            return Err("kyc.level_rules levels must run 1, 2, ... without a gap");
        }
        if self.trade_level_min < 0 || self.withdraw_level_min < 0 {
            return Err("kyc.trade_level_min and kyc.withdraw_level_min must not be negative");
        }
        if self.document_types.is_empty() || self.document_types.len() > DOCUMENT_TYPES_MAX {
            return Err("kyc.document_types must hold 1 to 16 types");
        }
        if self.document_bytes_max == 0 || self.document_bytes_max > DOCUMENT_BYTES_LIMIT {
            return Err("kyc.document_bytes_max must be 1 byte to 12 MiB");
        }
        if self.documents_per_user_max == 0 {
            return Err("kyc.documents_per_user_max must be positive");
        }
        if self.webhook_window_ms <= 0 {
            return Err("kyc.webhook_window_ms must be positive");
        }
        if self.webhook_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err("kyc.webhook_secret must have at least 32 bytes");
        }
        if self.webhook_secret.is_some() && self.webhook_secret_kv.is_some() {
            return Err("kyc.webhook_secret and kyc.webhook_secret_kv exclude each other");
        }
        if self.webhook_secret_grace_ms < 0
            || self.webhook_secret_refresh_ms < WEBHOOK_SECRET_REFRESH_MS_MIN
        {
            return Err("kyc.webhook_secret_grace_ms must be >= 0, refresh_ms >= 100");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_gaps_are_refused() {
        assert_eq!(KycConfig::default().validate(), Ok(()));
        let mut config = KycConfig::default();
        config.level_rules.remove(1);
        assert!(config.validate().is_err());
        let config = KycConfig {
            document_bytes_max: DOCUMENT_BYTES_LIMIT + 1,
            ..KycConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
