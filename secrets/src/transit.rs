//! The transit engine: keys that never leave OpenBao — ed25519 signing (identity's JWTs) and
//! AES-GCM encryption (secrets at rest, documents' data keys).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{check_name, data_str, malformed};
use crate::{BaoError, OpenBao, SecretBytes};

/// The type of a transit key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// Ed25519 signatures.
    Ed25519,
    /// AES-256-GCM encryption (OpenBao's default).
    Aes256Gcm96,
}

impl KeyType {
    fn name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
        }
    }
}

/// A signature and the key version that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The key version (OpenBao's `vault:v<N>:` prefix).
    pub key_version: u32,
    /// The raw signature bytes (64 for ed25519).
    pub bytes: Vec<u8>,
}

/// One version of an asymmetric key's public part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyVersion {
    /// The version.
    pub version: u32,
    /// The raw public key (32 bytes for ed25519).
    pub public_key: Vec<u8>,
}

/// A data key: its plaintext for local use, and its ciphertext to store beside the data.
#[derive(Debug)]
pub struct DataKey {
    /// 32 bytes, zeroed on drop.
    pub plaintext: SecretBytes,
    /// OpenBao's `vault:v<N>:...` wrapping of it.
    pub ciphertext: String,
}

/// The bound on key versions read (rotation keeps old versions for verification).
pub const KEY_VERSIONS_MAX: usize = 64;

impl OpenBao {
    /// Creates `name` in the transit engine at `mount` if it does not exist (idempotent: an
    /// existing key is left as it is, whatever its type — the caller checks with
    /// [`OpenBao::transit_public_keys`]).
    pub async fn transit_ensure_key(
        &self,
        mount: &str,
        name: &str,
        key_type: KeyType,
    ) -> Result<(), BaoError> {
        let path = format!("{}/keys/{}", check_name(mount)?, check_name(name)?);
        let body = json!({ "type": key_type.name() });
        self.call(Method::POST, &path, Some(&body)).await?;
        Ok(())
    }

    /// Adds a new version of `name`; the new version signs or encrypts from now on.
    pub async fn transit_rotate(&self, mount: &str, name: &str) -> Result<(), BaoError> {
        let path = format!("{}/keys/{}/rotate", check_name(mount)?, check_name(name)?);
        self.call(Method::POST, &path, None).await?;
        Ok(())
    }

    /// Signs `input` with the latest version of the ed25519 key `name`.
    pub async fn transit_sign(
        &self,
        mount: &str,
        name: &str,
        input: &[u8],
    ) -> Result<Signature, BaoError> {
        let path = format!("{}/sign/{}", check_name(mount)?, check_name(name)?);
        let body = json!({ "input": STANDARD.encode(input) });
        let answer = self.call(Method::POST, &path, Some(&body)).await?;
        let (key_version, bytes) = parse_wrapped(data_str(&answer, &path, "signature")?, &path)?;
        Ok(Signature { key_version, bytes })
    }

    /// The public keys of every version of the asymmetric key `name`, oldest first.
    pub async fn transit_public_keys(
        &self,
        mount: &str,
        name: &str,
    ) -> Result<Vec<PublicKeyVersion>, BaoError> {
        let path = format!("{}/keys/{}", check_name(mount)?, check_name(name)?);
        let answer = self.call(Method::GET, &path, None).await?;
        let keys = answer
            .as_ref()
            .and_then(|value| value.pointer("/data/keys"))
            .and_then(Value::as_object)
            .ok_or_else(|| malformed(&path, "data.keys"))?;
        let mut versions = Vec::with_capacity(keys.len().min(KEY_VERSIONS_MAX));
        for (version, key) in keys.iter().take(KEY_VERSIONS_MAX) {
            let version = version
                .parse()
                .map_err(|_| malformed(&path, "a key version"))?;
            let public_key = key
                .get("public_key")
                .and_then(Value::as_str)
                .and_then(|encoded| STANDARD.decode(encoded).ok())
                .ok_or_else(|| malformed(&path, "public_key (not an asymmetric key?)"))?;
            versions.push(PublicKeyVersion {
                version,
                public_key,
            });
        }
        versions.sort_by_key(|key| key.version);
        Ok(versions)
    }

    /// Encrypts `plaintext` with the key `name`; the `vault:v<N>:...` ciphertext.
    pub async fn transit_encrypt(
        &self,
        mount: &str,
        name: &str,
        plaintext: &[u8],
    ) -> Result<String, BaoError> {
        let path = format!("{}/encrypt/{}", check_name(mount)?, check_name(name)?);
        let body = json!({ "plaintext": STANDARD.encode(plaintext) });
        let answer = self.call(Method::POST, &path, Some(&body)).await?;
        Ok(data_str(&answer, &path, "ciphertext")?.to_owned())
    }

    /// Decrypts a ciphertext made by [`OpenBao::transit_encrypt`] with the key `name`.
    pub async fn transit_decrypt(
        &self,
        mount: &str,
        name: &str,
        ciphertext: &str,
    ) -> Result<SecretBytes, BaoError> {
        let path = format!("{}/decrypt/{}", check_name(mount)?, check_name(name)?);
        let body = json!({ "ciphertext": ciphertext });
        let answer = self.call(Method::POST, &path, Some(&body)).await?;
        let plaintext = STANDARD
            .decode(data_str(&answer, &path, "plaintext")?)
            .map_err(|_| malformed(&path, "plaintext is not base64"))?;
        Ok(SecretBytes::new(plaintext))
    }

    /// A new 256-bit data key wrapped by the key `name` (envelope encryption: the data is
    /// encrypted locally, only the wrapped key goes to OpenBao to be opened).
    pub async fn transit_data_key(&self, mount: &str, name: &str) -> Result<DataKey, BaoError> {
        let path = format!(
            "{}/datakey/plaintext/{}",
            check_name(mount)?,
            check_name(name)?
        );
        let answer = self.call(Method::POST, &path, None).await?;
        let plaintext = STANDARD
            .decode(data_str(&answer, &path, "plaintext")?)
            .map_err(|_| malformed(&path, "plaintext is not base64"))?;
        Ok(DataKey {
            plaintext: SecretBytes::new(plaintext),
            ciphertext: data_str(&answer, &path, "ciphertext")?.to_owned(),
        })
    }
}

/// Splits OpenBao's `vault:v<N>:<base64>` into the version and the bytes.
fn parse_wrapped(wrapped: &str, path: &str) -> Result<(u32, Vec<u8>), BaoError> {
    let rest = wrapped
        .strip_prefix("vault:v")
        .ok_or_else(|| malformed(path, "vault:v prefix"))?;
    let (version, encoded) = rest
        .split_once(':')
        .ok_or_else(|| malformed(path, "vault:v<N>: prefix"))?;
    let version = version
        .parse()
        .map_err(|_| malformed(path, "key version"))?;
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| malformed(path, "base64 after the prefix"))?;
    Ok((version, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_values_name_their_key_version() {
        assert_eq!(
            parse_wrapped("vault:v3:AAEC", "p").ok(),
            Some((3, vec![0, 1, 2]))
        );
        for bad in ["v3:AAEC", "vault:vx:AAEC", "vault:v3AAEC", "vault:v3:!!"] {
            assert!(parse_wrapped(bad, "p").is_err(), "{bad}");
        }
    }
}
