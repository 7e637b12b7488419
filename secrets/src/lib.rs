//! The OpenBao client: the one place Peregrine talks to its secret store (OpenBao, the open
//! Vault, over its HTTP API), shared by identity and the wallet daemons.
//!
//! Owns:
//! - [`OpenBao`]: requests with a bounded time and a bounded response size, and the typed
//!   classification of every failure ([`BaoError`]) — above all "OpenBao cannot answer now"
//!   (unreachable, sealed, standby: [`BaoError::is_unavailable`]), which callers turn into a
//!   503 instead of Barong's 500 (opendax #92, #145);
//! - the engines Peregrine uses: transit ([`transit`]: sign with ed25519, encrypt, decrypt,
//!   data keys, rotation), TOTP ([`totp`]: a code already used is a verdict, not a fatal error
//!   as in barong #545), KV v2 ([`kv`]), and the system calls to set them up ([`sys`]: health,
//!   mounts, policies, scoped tokens).
//!
//! Never does:
//! - keep, log or print a token or a secret it carries ([`BaoToken`] and [`SecretBytes`] print
//!   as `<redacted>`);
//! - choose policies: each component gets its own token with its own policy (least privilege);
//!   this crate only carries it;
//! - retry: a caller decides whether an unavailable store means 503 now or a later attempt.

mod client;
mod error;
pub mod kv;
pub mod sys;
pub mod totp;
pub mod transit;
mod values;

pub use client::{OpenBao, REQUEST_TIMEOUT_MS, RESPONSE_BYTES_MAX};
pub use error::BaoError;
pub use values::{BaoToken, SecretBytes};
