//! Peregrine's identity service, the part Barong played in the OPEX stack: users, their
//! sessions, e-mail verification, password reset, lockouts, the mapping of each verified user
//! to one trading account, and a hash-chained audit trail of every sensitive action.
//!
//! Owns:
//! - its own relational store ([`store`]): MySQL/MariaDB in production, SQLite embedded, with
//!   the schema's migrations;
//! - the user life cycle ([`Identity`]): sign-up with argon2id password hashes, codes sent by
//!   e-mail over SMTP ([`mail`]), login with per-account and per-address lockout, sessions
//!   with sliding expiry and CSRF tokens, and the `AccountId` each verified user trades with;
//! - the Barong-shaped HTTP API ([`http::router`]) under `/api/v2/barong/identity` and
//!   `/api/v2/barong/resource`, which the appliance mounts, with Prometheus metrics;
//! - the audit chain ([`audit`]) and its verification;
//! - KYC ([`kyc`]): labels, the levels they give and the level gate of actions, profiles under
//!   review, documents sealed with OpenBao transit data keys, the provider webhook;
//! - RBAC ([`rbac`]): roles x typed permissions, read from the store, every decision audited;
//! - four-eyes ([`four_eyes`]): the check every approval of another operator's proposal makes
//!   (permission, never the proposer, audited), and the store of manual balance adjustments
//!   awaiting it (the control API journals the approved ones);
//! - two-factor authentication with TOTP kept in OpenBao's totp engine (one key per user),
//!   required at login once enabled; OpenBao sealed or gone is 503
//!   `identity.vault_unavailable` for 2FA, never a 500, and sessions go on (their tokens
//!   signed meanwhile by an in-memory standby key: [`jwt`]);
//! - identity's OpenBao set-up and least-privilege policy ([`vault`]);
//! - access JWTs (≤ 60 s, EdDSA, signed by OpenBao transit, or by a standby key born in memory
//!   while OpenBao cannot answer) with their JWKS, and the pure
//!   in-memory [`jwt::Verifier`] and [`jwt::Refresher`] the gateways verify them with ([`jwt`]);
//! - self-service API keys ([`api_keys`]: HMAC secrets as transit ciphertext, ed25519 keys for
//!   the QUIC logon, scopes, allowlists, expiry) and the ordered event feed
//!   ([`key_feed`]) the gateways' in-memory caches follow.
//!
//! Never does:
//! - keep or log a secret in clear: passwords are argon2id hashes, session ids, CSRF tokens and
//!   e-mailed codes are stored as SHA-256 digests and compared in constant time; TOTP secrets
//!   and the transit JWT signing key never leave OpenBao; the standby JWT key never leaves
//!   the process's memory;
//! - keep a KYC document in clear, or send one to the journal: content is AES-256-GCM
//!   ciphertext under a data key only OpenBao can unwrap;
//! - sit on the order path: gateways verify tokens from memory ([`jwt::Verifier`]), never by
//!   a call to identity or OpenBao per request;
//! - make the first user an administrator: operators are made on the host
//!   ([`Identity::create_operator`]);
//! - depend on a gateway, the control plane or the persistence internals: only on the hot
//!   path's id types (`peregrine/tests/layering.rs` checks it).

pub mod api_keys;
pub mod audit;
mod clock;
pub mod config;
pub mod error;
pub mod four_eyes;
pub mod http;
mod identity;
pub mod jwt;
pub mod key_feed;
pub mod kyc;
pub mod mail;
pub mod metrics;
pub mod password;
pub mod rbac;
mod second_factor;
pub mod secret;
pub mod store;
pub mod vault;

pub use clock::Clock;
pub use config::IdentityConfig;
pub use error::AuthError;
pub use identity::{Identity, LoggedIn, SessionAuth, SessionView, Source};
pub use store::{Role, Store, StoreError, User, UserState};
