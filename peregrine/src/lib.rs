//! The Peregrine appliance: the `peregrine` binary's modules.
//!
//! - [`cli`]: the command line (`up`, `bench`, `replay`, `tuning`).
//! - [`commands`]: what each subcommand does; exit codes.
//! - [`config`]: defaults, `peregrine.toml`, `PEREGRINE_*` overrides, flags.
//! - [`http`]: the operator HTTP server (`/health/alive`, `/health/ready`, `/metrics`).
//! - [`exchange`]: the trading core `up` runs (journal, shard, sequencer, catalog, snapshots).
//! - [`metrics`]: the shared Prometheus registry; [`journal_metrics`] and [`engine_metrics`]
//!   copy the core's counters into it.
//! - [`identity`]: identity (`[auth]`) in `up`: its routes on the REST listener, the key
//!   feeds and JWT verifier of the gateways.
//! - [`control_token`]: the control API's static token files (break-glass, wallet daemons).
//! - [`readiness`]: the registry of readiness checks behind `/health/ready`.
//! - [`logging`]: `tracing` to stderr, human or JSON.
//! - [`shutdown`]: SIGINT / SIGTERM.
//! - [`standby`]: the hot standby in `up`: shipping on a primary, `--standby-of` on a standby.
//! - [`supervisor`]: restarts dead background threads, or shows them on readiness.
//! - [`wallets`]: the appliance's side of `[wallets]` (the wallet token, chain deposits on the
//!   REST bridge); the daemon itself is [`commands::wallets`].

pub mod audit_anchor;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control_token;
pub mod demo;
pub mod engine_metrics;
pub mod exchange;
pub mod http;
pub mod identity;
pub mod journal_metrics;
pub mod logging;
pub mod metrics;
pub mod readiness;
pub mod secret_store;
pub mod shutdown;
pub mod standby;
pub mod supervisor;
pub mod wallets;
pub mod withdraw_limits;
