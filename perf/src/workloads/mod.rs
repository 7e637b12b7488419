//! One module per workload; each exports `pub const WORKLOAD: Workload`, listed in
//! [`registry::WORKLOADS`](crate::registry::WORKLOADS).

pub mod auth;
pub mod e2e;
pub mod failover;
pub mod fanout;
pub mod journal;
pub mod matching;
pub mod noop;
pub mod replication;
pub mod rest;
pub mod standby_pair;
pub mod wallets;
pub mod ws;
