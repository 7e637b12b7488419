//! Peregrine's authentication and authorisation: users, API keys, JWT, 2FA/TOTP, KYC and RBAC.
//!
//! Owns: identities and their secrets (kept in Vault). Never does: log or return a secret, or sit
//! on the order path's critical latency (gateways verify with cached keys).
