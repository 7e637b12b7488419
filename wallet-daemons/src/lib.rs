//! Peregrine's wallet daemons: deposits, withdrawals and hot/warm/cold wallets on real chains.
//!
//! Owns: chain I/O and custody workflows —
//! - the chain adapter ([`chain::Chain`]: head, blocks with their hash and parent hash, native
//!   and token transfers to watched addresses, fee estimate, raw transaction broadcast,
//!   receipts, nonces) and its Ethereum implementation over JSON-RPC ([`chain::eth::EthRpc`]);
//! - the signer's transactions ([`chain::eth_tx`]: EIP-1559, RLP, deterministic low-s
//!   signatures, the transaction id known before broadcast);
//! - keys ([`keys`]): one HD seed per currency in OpenBao's KV v2 engine, created once with
//!   check-and-set, BIP-32/44 derivation, a private key in memory only inside
//!   [`keys::SeedVault::with_key`] and zeroed after; the wallets' own OpenBao policy
//!   ([`keys::wallet_policy`]);
//! - deposit addresses per (currency, account) with their derivation paths ([`addresses`]);
//! - the wallet store ([`store`]: MySQL/MariaDB or SQLite, its own tables and migrations);
//! - the deposit watcher ([`deposits`]) and the credit through the journaled `Deposit` command
//!   ([`ledger`]; from a daemon process, through the appliance's control API with the wallet
//!   token: [`appliance`]), with metrics ([`metrics`]);
//! - deposit addresses asked for on the REST bridge and derived by the daemon
//!   ([`addresses::DepositAddresses::derive_requested`]: the appliance holds no seed);
//! - withdrawals' request side ([`requests`]: beneficiaries with an EIP-55 address and an
//!   activation delay, requests decided by the default-deny [`policy`] — per-account limits
//!   over 24 hours and 30 days, a threshold above which one or two operators approve, never
//!   the requester, never one operator twice — under a per-(account, currency) lock);
//! - withdrawals' chain side ([`withdrawals`]: the journaled hold before signing, the signed
//!   bytes persisted before broadcast, settle or release only on a receipt; one transaction per
//!   withdrawal whatever crashes, replaced at a higher fee when stuck unmined: [`bumps`]),
//!   driven by [`withdrawals::Signer::step`]. The states and
//!   their transitions, request to settled, are drawn in [`withdrawals`]. Token withdrawals are
//!   the same withdrawals paid by an ERC-20 `transfer` ([`withdrawals::Signer::with_tokens`]);
//! - collection and hot / warm / cold ([`collect`], its transactions in [`transfers`]): sweeps
//!   of deposit addresses whose deposits are all credited to the hot wallet, a token address's
//!   gas topped up first and swept only once the top-up is confirmed (waiting, never skipped),
//!   the hot wallet's excess above `hot_max` to the warm address (up to `warm_max`) then the
//!   cold one — addresses only, no key on the host; the same persist-before-broadcast states
//!   as a withdrawal, one transaction per row whatever crashes;
//! - reconciliation ([`reconcile`]): the chain's balances (hot, warm, cold, deposit
//!   addresses, gas on token addresses) against the ledger's liabilities per currency, read
//!   from the appliance's views ([`ledger::Liabilities`]), with its gauge.
//!
//! Never does: change a balance except through a sequenced deposit or withdrawal command (each
//! deposit carries its idempotency key, so a retry never credits twice), hold funds for a
//! withdrawal the policy (and its approvals) did not pass, hold a cold-wallet
//! key, keep a private key or seed in memory past one derivation or signature, or read another
//! component's secrets (its OpenBao token has the wallet policy only).
//!
//! # Deposit states
//!
//! A deposit is one (transaction, leg) paying a deposit address — the leg is the transaction's
//! value (`-1` in the store) or a token `Transfer` event's log index:
//!
//! ```text
//!            block recorded                tip − block + 1 ≥ confirmations
//!   (none) ────────────────► seen ─────────────────────────────────────► confirmed
//!     │                       │ ▲                                            │ Deposit command:
//!     │ < 1 minor unit        │ │ mined again                                │ applied or duplicate
//!     ▼                       ▼ │ in a new block                             ▼
//!    dust ──block left──► orphaned ◄── block left the chain            credited
//!                                                          (refused for good: rejected)
//! ```
//!
//! `seen` and `dust` deposits whose block leaves the chain become `orphaned`; an orphaned
//! transfer mined again is `seen` (or `dust`) again in its new block, under the same row and
//! so the same idempotency key.
//!
//! A `credited` deposit carries the id of the sweep that collected it ([`collect`]) once one
//! is signed; a sweep that fails or is dropped lets its deposits go, to be collected again.
//!
//! `confirmed` is written before the command is submitted and `credited` after its outcome, so
//! a crash between the two resubmits under the same key (the engine answers "duplicate"). A
//! reorganisation deeper than a currency's confirmations leaves `confirmed` and `credited`
//! deposits as they are and counts them in `wallet_deep_reorg_deposits_total` for an operator.
//!
//! # Why not alloy
//!
//! The issue names the `alloy` crates. The smallest set that does this crate's job (a provider
//! over HTTP, RPC types, a local signer) compiles about 100 more units and costs about 84 more
//! CPU seconds of a clean release build than JSON-RPC over the workspace's `reqwest`, and
//! brings a second `reqwest` (0.13) and `hyper` stack and the `sol!` macro machinery (measured:
//! `perf/RESULTS.md`). What is used of Ethereum here is ten JSON-RPC methods, Keccak-256 and
//! secp256k1: `reqwest`, `sha3` and `k256` (which alloy's signer uses as well) do it with 11
//! new crates, about 12 CPU seconds.
//!
//! # Still to come
//!
//! An operator's rejection of a withdrawal awaiting approval and the control API's approval
//! route (approval is [`store::WalletStore::approve_withdrawal`], taking the approver's uid),
//! beneficiary activation by a mailed code, fee bumps of the collector's transactions stuck
//! unmined (an ether sweep sends the balance less the fee: its replacement must send less),
//! refilling the hot wallet from warm (an operator's transfer:
//! no warm key is on the host) and Ranger `deposit` events. The daemon process (`peregrine
//! wallets run`) and the Peatio deposit and withdrawal routes (TOTP through identity, the KYC
//! level, the `withdraw` scope) live in the `peregrine` and gateway crates.

pub mod addresses;
pub mod appliance;
pub mod bumps;
pub mod chain;
pub mod collect;
pub mod deposits;
pub mod keys;
pub mod ledger;
pub mod metrics;
pub mod policy;
pub mod reconcile;
pub mod requests;
pub mod store;
pub mod transfers;
pub mod withdrawals;
