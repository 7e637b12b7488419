//! Peregrine's order entry: binary QUIC for HFT clients and a REST/WebSocket bridge for retail.
//!
//! Owns: sessions, framing, authentication of requests and fan-out of events to clients; the
//! REST bridge's in-memory API-key cache, fed by identity's key events
//! ([`rest::key_follower`]).
//! Never does: matching or balance arithmetic (that is the hot path's), never trusts bytes
//! from the network without validation, and never calls identity or OpenBao per request.
//!
//! - [`quic`]: the `peregrine/2` protocol, its sans-IO session and the quinn server.
//! - [`catalog`]: re-exported from `peregrine-core`, which owns the sequencer, the router of
//!   the engine's outputs and the catalog; the edges here map its notices to their protocols.
//! - [`rest`]: the REST bridge for retail (Peatio API v2 shapes), its server and OpenAPI; on
//!   a bridge node, the relay of signed order entry and balances to the appliance
//!   ([`rest::relay`]), which authenticates them (a bridge never acts for an account).
//! - [`ws`]: Ranger-style WebSocket streams served by the same server.
//! - [`levels`]: the KYC level gate both edges check before a new order is sequenced.
//! - [`market_data`]: sans-IO derivation of trades, books, candles, tickers and account
//!   history from the engine's event tap.

pub use peregrine_core::catalog;
pub mod levels;
pub mod market_data;
pub mod quic;
pub mod rest;
pub mod ws;
