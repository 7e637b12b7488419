//! `peregrine keygen`: a fresh ed25519 key pair for QUIC order entry, printed as the
//! `[[quic.keys]]` table `peregrine.toml` takes and the private key the SDK loads
//! (`SigningKey::from_seed_hex`, the `<private key hex>` argument of the `place` example).
//!
//! The whole output is valid TOML: the private key is on a comment line, so appending the
//! output to `peregrine.toml` registers the public half only. Keep the private key secret.

use std::io::Write;

use clap::Args;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// Bytes of an ed25519 seed (the private key).
const SEED_BYTES: usize = 32;

/// Flags of `peregrine keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The key id clients log on with (quic.keys.key_id)
    #[arg(long, default_value_t = 1)]
    pub key_id: u64,

    /// The account the key trades for (quic.keys.account)
    #[arg(long, default_value_t = 1)]
    pub account: u32,
}

/// Why no key was printed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeygenError {
    /// The OS random source failed.
    #[error("keygen: the OS random source failed")]
    Random,
    /// ring refused the seed (never for 32 random bytes).
    #[error("keygen: {0}")]
    Key(ring::error::KeyRejected),
    /// Standard output is gone.
    #[error("keygen: writing the key: {0}")]
    Write(#[from] std::io::Error),
}

/// Prints a fresh key pair to standard output.
pub fn run(args: &KeygenArgs) -> Result<(), KeygenError> {
    let mut seed = [0u8; SEED_BYTES];
    SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| KeygenError::Random)?;
    let text = key_text(args, &seed)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// The printed form of the key pair of `seed`.
fn key_text(args: &KeygenArgs, seed: &[u8; SEED_BYTES]) -> Result<String, KeygenError> {
    let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(KeygenError::Key)?;
    let public_key = peregrine_proto::hex::to_hex(pair.public_key().as_ref());
    let private_key = peregrine_proto::hex::to_hex(seed);
    Ok(format!(
        "# An ed25519 key pair for QUIC order entry, made by `peregrine keygen`.\n\
         # Server: add this table to peregrine.toml.\n\
         [[quic.keys]]\n\
         key_id = {key_id}\n\
         account = {account}\n\
         public_key = \"{public_key}\"\n\
         \n\
         # Client (secret; never in peregrine.toml): the ed25519 seed the SDK loads with\n\
         # SigningKey::from_seed_hex, e.g. the <private key hex> argument of examples/place.rs.\n\
         # private_key = \"{private_key}\"\n",
        key_id = args.key_id,
        account = args.account,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_is_the_seeds() {
        let args = KeygenArgs {
            key_id: 3,
            account: 9,
        };
        let text = key_text(&args, &[7; SEED_BYTES]).unwrap();
        let pair = Ed25519KeyPair::from_seed_unchecked(&[7; SEED_BYTES]).unwrap();
        let public = peregrine_proto::hex::to_hex(pair.public_key().as_ref());
        assert!(text.contains(&format!("public_key = \"{public}\"")));
        assert!(text.contains(&format!("# private_key = \"{}\"", "07".repeat(32))));
    }
}
