//! Peregrine's host tuning: audit and apply the kernel and CPU settings the hot path wants.
//!
//! Owns: reading and (on request) writing host settings. Never does: change anything without an
//! explicit apply, and never runs on the hot path.
