//! The control API's static bearer tokens (the host-only break-glass token, the wallet
//! daemons' token): read from a file, or made (32 random bytes, hex) and written with mode 0600
//! on first start so only the appliance's user can read it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};

/// Random bytes in a fresh token.
const TOKEN_BYTES: usize = 32;
/// Shortest token accepted from an operator's file: shorter ones are guessable.
const TOKEN_CHARS_MIN: usize = 32;
/// Longest file read.
const FILE_BYTES_MAX: u64 = 4096;

/// The token in `path`, made first if the file does not exist.
pub fn load_or_create(path: &Path) -> std::io::Result<String> {
    if !path.exists() {
        let mut bytes = [0u8; TOKEN_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| std::io::Error::other("no system randomness"))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(token.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    if std::fs::metadata(path)?.len() > FILE_BYTES_MAX {
        return Err(std::io::Error::other(format!(
            "larger than {FILE_BYTES_MAX} bytes"
        )));
    }
    let token = std::fs::read_to_string(path)?.trim().to_owned();
    if token.len() < TOKEN_CHARS_MIN || token.chars().any(|c| c.is_whitespace()) {
        return Err(std::io::Error::other(format!(
            "the token must be at least {TOKEN_CHARS_MIN} characters without spaces"
        )));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_private_token_once_and_refuses_a_short_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.token");
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.len(), 2 * TOKEN_BYTES);
        assert_eq!(load_or_create(&path).unwrap(), first);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "short\n").unwrap();
        assert!(load_or_create(&path).is_err());
    }
}
