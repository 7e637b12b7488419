//! Peregrine's wallet daemons: deposits, withdrawals and hot/warm/cold wallets on real chains.
//!
//! Owns: chain I/O and custody workflows. Never does: change a balance except through a sequenced
//! deposit or withdrawal command, and never holds a cold-wallet key.
