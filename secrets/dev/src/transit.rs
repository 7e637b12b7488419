//! The transit engine: ed25519 signing keys and AES-256-GCM encryption keys, versioned, with
//! OpenBao's `vault:v<N>:<base64>` signatures and ciphertexts and its error messages.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::api::{ApiError, Body, Reply, b64, now_s, opt_str, opt_u64, random, rfc3339};
use crate::state::{KEY_VERSIONS_MAX, KeyKind, KeyVersion, TRANSIT_KEYS_MAX, TransitKey};

type Keys = BTreeMap<String, TransitKey>;

/// Bytes of an AES-256 key.
const AES_KEY_BYTES: usize = 32;

/// `POST keys/<name>`: creates the key unless it exists (an existing key is kept, whatever
/// type was asked), and answers its description.
pub(crate) fn create(keys: &mut Keys, name: &str, body: &Body) -> Result<Reply, ApiError> {
    if !keys.contains_key(name) {
        let kind = match opt_str(body, "type")?.unwrap_or("aes256-gcm96") {
            "ed25519" => KeyKind::Ed25519,
            "aes256-gcm96" => KeyKind::Aes256Gcm96,
            other => return Err(ApiError::bad(format!("unknown key type {other}"))),
        };
        insert(keys, name, kind)?;
    }
    read(keys, name)
}

fn insert(keys: &mut Keys, name: &str, kind: KeyKind) -> Result<(), ApiError> {
    if keys.len() >= TRANSIT_KEYS_MAX {
        return Err(ApiError::bad(format!(
            "the dev secret store keeps at most {TRANSIT_KEYS_MAX} transit keys per mount"
        )));
    }
    let version = new_version(kind)?;
    let key = TransitKey {
        kind,
        versions: vec![version],
    };
    keys.insert(name.to_owned(), key);
    Ok(())
}

fn new_version(kind: KeyKind) -> Result<KeyVersion, ApiError> {
    let created_s = now_s();
    match kind {
        KeyKind::Ed25519 => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| ApiError::internal("ed25519 key generation failed"))?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|_| ApiError::internal("ed25519 key generation failed"))?;
            Ok(KeyVersion {
                secret: pkcs8.as_ref().to_vec(),
                public: pair.public_key().as_ref().to_vec(),
                created_s,
            })
        }
        KeyKind::Aes256Gcm96 => Ok(KeyVersion {
            secret: random::<AES_KEY_BYTES>()?.to_vec(),
            public: Vec::new(),
            created_s,
        }),
    }
}

/// `GET keys/<name>`: the description, with each version's public key (ed25519) or creation
/// time (AES), as OpenBao gives them.
pub(crate) fn read(keys: &Keys, name: &str) -> Result<Reply, ApiError> {
    let key = keys.get(name).ok_or_else(ApiError::not_found)?;
    let mut versions = Map::new();
    for (index, version) in key.versions.iter().enumerate() {
        let entry = match key.kind {
            KeyKind::Ed25519 => json!({
                "certificate_chain": "",
                "creation_time": rfc3339(version.created_s),
                "name": "ed25519",
                "public_key": b64(&version.public),
            }),
            KeyKind::Aes256Gcm96 => json!(version.created_s),
        };
        versions.insert((index + 1).to_string(), entry);
    }
    let signs = key.kind == KeyKind::Ed25519;
    Ok(Reply::Data(json!({
        "allow_plaintext_backup": false,
        "auto_rotate_period": 0,
        "deletion_allowed": false,
        "derived": false,
        "exportable": false,
        "imported_key": false,
        "keys": versions,
        "latest_version": key.versions.len(),
        "min_available_version": 0,
        "min_decryption_version": 1,
        "min_encryption_version": 0,
        "name": name,
        "soft_deleted": false,
        "supports_decryption": !signs,
        "supports_derivation": true,
        "supports_encryption": !signs,
        "supports_signing": signs,
        "type": key.kind.name(),
    })))
}

/// `POST keys/<name>/rotate`: a new latest version.
pub(crate) fn rotate(keys: &mut Keys, name: &str) -> Result<Reply, ApiError> {
    let key = keys
        .get_mut(name)
        .ok_or_else(|| ApiError::bad("key not found"))?;
    if key.versions.len() >= KEY_VERSIONS_MAX {
        return Err(ApiError::bad(format!(
            "the dev secret store keeps at most {KEY_VERSIONS_MAX} versions of a key"
        )));
    }
    let version = new_version(key.kind)?;
    key.versions.push(version);
    read(keys, name)
}

/// `POST sign/<name>`: an ed25519 signature of the base64 `input` by the latest version.
pub(crate) fn sign(keys: &Keys, name: &str, body: &Body) -> Result<Reply, ApiError> {
    let key = keys
        .get(name)
        .ok_or_else(|| ApiError::bad("signing key not found"))?;
    if key.kind != KeyKind::Ed25519 {
        return Err(ApiError::bad(format!(
            "key type {} does not support signing",
            key.kind.name()
        )));
    }
    let input = STANDARD
        .decode(opt_str(body, "input")?.unwrap_or(""))
        .map_err(|error| ApiError::bad(format!("unable to decode input as base64: {error}")))?;
    let (number, version) = latest(key)?;
    let pair = Ed25519KeyPair::from_pkcs8(&version.secret)
        .map_err(|_| ApiError::internal("a stored ed25519 key is malformed"))?;
    let signature = pair.sign(&input);
    Ok(Reply::Data(json!({
        "key_version": number,
        "signature": format!("vault:v{number}:{}", b64(signature.as_ref())),
    })))
}

/// The latest version and its number.
fn latest(key: &TransitKey) -> Result<(usize, &KeyVersion), ApiError> {
    key.versions
        .last()
        .map(|version| (key.versions.len(), version))
        .ok_or_else(|| ApiError::internal("a stored key has no version"))
}

fn aes_key(key: &TransitKey, action: &str) -> Result<(), ApiError> {
    match key.kind {
        KeyKind::Aes256Gcm96 => Ok(()),
        KeyKind::Ed25519 => Err(ApiError::bad(format!(
            "message {action} not supported for key type ed25519"
        ))),
    }
}

/// `POST encrypt/<name>`: creates an AES key of that name first if none exists (OpenBao's
/// upsert, which is why encrypting an absent key needs the `create` capability).
pub(crate) fn encrypt(keys: &mut Keys, name: &str, body: &Body) -> Result<Reply, ApiError> {
    let plaintext =
        opt_str(body, "plaintext")?.ok_or_else(|| ApiError::bad("missing plaintext to encrypt"))?;
    let plaintext = Zeroizing::new(
        STANDARD
            .decode(plaintext)
            .map_err(|_| ApiError::bad("failed to base64-decode plaintext"))?,
    );
    if !keys.contains_key(name) {
        insert(keys, name, KeyKind::Aes256Gcm96)?;
    }
    let key = keys
        .get(name)
        .ok_or_else(|| ApiError::bad("encryption key not found"))?;
    aes_key(key, "encryption")?;
    let (number, ciphertext) = seal(key, &plaintext)?;
    Ok(Reply::Data(json!({
        "ciphertext": ciphertext,
        "key_version": number,
    })))
}

/// `vault:v<N>:base64(nonce || ciphertext || tag)` of `plaintext` under the latest version.
fn seal(key: &TransitKey, plaintext: &[u8]) -> Result<(usize, String), ApiError> {
    let (number, version) = latest(key)?;
    let nonce = random::<NONCE_LEN>()?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    let mut body = sealed.split_off(NONCE_LEN);
    cipher(version)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
        .map_err(|_| ApiError::internal("encryption failed"))?;
    sealed.extend_from_slice(&body);
    Ok((number, format!("vault:v{number}:{}", b64(&sealed))))
}

fn cipher(version: &KeyVersion) -> Result<LessSafeKey, ApiError> {
    UnboundKey::new(&AES_256_GCM, &version.secret)
        .map(LessSafeKey::new)
        .map_err(|_| ApiError::internal("a stored AES key is malformed"))
}

/// `POST decrypt/<name>`: the base64 plaintext of a `vault:v<N>:` ciphertext; any change to
/// the ciphertext fails its authentication (400, as OpenBao).
pub(crate) fn decrypt(keys: &Keys, name: &str, body: &Body) -> Result<Reply, ApiError> {
    let ciphertext = opt_str(body, "ciphertext")?
        .ok_or_else(|| ApiError::bad("missing ciphertext to decrypt"))?;
    let key = keys
        .get(name)
        .ok_or_else(|| ApiError::bad("encryption key not found"))?;
    aes_key(key, "decryption")?;
    let rest = ciphertext
        .strip_prefix("vault:v")
        .ok_or_else(|| ApiError::bad("invalid ciphertext: no prefix"))?;
    let (number, encoded) = rest
        .split_once(':')
        .ok_or_else(|| ApiError::bad("invalid ciphertext: wrong number of fields"))?;
    let number: usize = number
        .parse()
        .map_err(|_| ApiError::bad("invalid ciphertext: version number could not be decoded"))?;
    let mut sealed = STANDARD
        .decode(encoded)
        .map_err(|_| ApiError::bad("invalid ciphertext: could not decode base64"))?;
    if number > key.versions.len() {
        return Err(ApiError::bad("invalid ciphertext: version is too new"));
    }
    if number == 0 || sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(ApiError::bad("invalid ciphertext length"));
    }
    let version = &key.versions[number - 1];
    let mut body = Zeroizing::new(sealed.split_off(NONCE_LEN));
    let nonce = Nonce::try_assume_unique_for_key(&sealed)
        .map_err(|_| ApiError::bad("invalid ciphertext length"))?;
    let plaintext = cipher(version)?
        .open_in_place(nonce, Aad::empty(), body.as_mut())
        .map_err(|_| ApiError::bad("cipher: message authentication failed"))?;
    Ok(Reply::Data(json!({ "plaintext": b64(plaintext) })))
}

/// `POST datakey/<plaintext|wrapped>/<name>`: a new random key of `bits` (256 by default)
/// wrapped by the latest version; with its plaintext when asked for.
pub(crate) fn data_key(
    keys: &Keys,
    name: &str,
    with_plaintext: bool,
    body: &Body,
) -> Result<Reply, ApiError> {
    let key = keys
        .get(name)
        .ok_or_else(|| ApiError::bad("encryption key not found"))?;
    aes_key(key, "encryption")?;
    let bytes = match opt_u64(body, "bits")?.unwrap_or(256) {
        128 => 16,
        256 => 32,
        512 => 64,
        _ => return Err(ApiError::bad("invalid bits")),
    };
    let fresh = Zeroizing::new(random::<64>()?);
    let plaintext = &fresh[..bytes];
    let (number, ciphertext) = seal(key, plaintext)?;
    let mut data = json!({ "ciphertext": ciphertext, "key_version": number });
    if with_plaintext {
        data["plaintext"] = Value::String(b64(plaintext));
    }
    Ok(Reply::Data(data))
}
