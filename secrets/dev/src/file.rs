//! The files under the store's directory: the master key (0600), the sealed state, and the
//! lock that keeps a second process out.
//!
//! The state file is `MAGIC || key check (16) || nonce (12) || AES-256-GCM(state JSON)`, with
//! the magic as associated data. The key check (an HMAC of a constant under the master key)
//! tells "another master key" from "tampered", so the operator is told which one happened.
//! Writes go to a temporary file, are fsynced, renamed over the old state and the directory
//! is fsynced: a crash leaves the old state or the new one, never half of one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::DevSecretsError;

/// The largest state file read: the bounds on keys and entries keep a real one far below.
pub const STATE_BYTES_MAX: usize = 64 << 20;
/// Bytes of the master key (AES-256).
pub const MASTER_KEY_BYTES: usize = 32;
const MAGIC: &[u8] = b"peregrine-devsecrets state v1\n";
const KEY_CHECK_BYTES: usize = 16;
const KEY_CHECK_LABEL: &[u8] = b"peregrine-devsecrets master key check v1";
const HEADER_BYTES: usize = MAGIC.len() + KEY_CHECK_BYTES + NONCE_LEN;
const KEY_FILE: &str = "master.key";
const STATE_FILE: &str = "state.bin";
const STATE_TEMP_FILE: &str = "state.bin.tmp";
const LOCK_FILE: &str = "lock";

const _: () = assert!(KEY_CHECK_BYTES <= 32 && STATE_BYTES_MAX > HEADER_BYTES);

/// The directory of one store, locked for this process, with its master key.
pub(crate) struct StoreDir {
    dir: PathBuf,
    key: LessSafeKey,
    key_check: [u8; KEY_CHECK_BYTES],
    /// Held for the lock; released when dropped.
    _lock: File,
}

impl StoreDir {
    /// Opens (or makes, 0700) `dir`, takes its lock, and reads or makes the master key.
    pub(crate) fn open(dir: &Path) -> Result<StoreDir, DevSecretsError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(DevSecretsError::io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(DevSecretsError::io(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(DevSecretsError::InUse(dir.to_owned()));
        }
        let secret = master_key(dir)?;
        let key =
            UnboundKey::new(&AES_256_GCM, secret.as_ref()).map_err(|_| DevSecretsError::Random)?;
        let check = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret.as_ref()),
            KEY_CHECK_LABEL,
        );
        let mut key_check = [0u8; KEY_CHECK_BYTES];
        key_check.copy_from_slice(&check.as_ref()[..KEY_CHECK_BYTES]);
        Ok(StoreDir {
            dir: dir.to_owned(),
            key: LessSafeKey::new(key),
            key_check,
            _lock: lock,
        })
    }

    /// The state's JSON, or `None` when no state was written yet.
    pub(crate) fn read(&self) -> Result<Option<Zeroizing<Vec<u8>>>, DevSecretsError> {
        let path = self.dir.join(STATE_FILE);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(DevSecretsError::io(&path)(error)),
        };
        let len = file.metadata().map_err(DevSecretsError::io(&path))?.len();
        if len > STATE_BYTES_MAX as u64 {
            return Err(DevSecretsError::StateTooLarge {
                path,
                len,
                limit_bytes: STATE_BYTES_MAX,
            });
        }
        // Bounded by the check above; `take` also bounds a file that grows meanwhile.
        let mut sealed = Vec::with_capacity(len as usize);
        file.take(STATE_BYTES_MAX as u64)
            .read_to_end(&mut sealed)
            .map_err(DevSecretsError::io(&path))?;
        self.open_sealed(sealed, &path).map(Some)
    }

    fn open_sealed(
        &self,
        mut sealed: Vec<u8>,
        path: &Path,
    ) -> Result<Zeroizing<Vec<u8>>, DevSecretsError> {
        if sealed.len() < HEADER_BYTES || !sealed.starts_with(MAGIC) {
            return Err(DevSecretsError::StateTampered(path.to_owned()));
        }
        let check = &sealed[MAGIC.len()..MAGIC.len() + KEY_CHECK_BYTES];
        if !bool::from(subtle::ConstantTimeEq::ct_eq(check, &self.key_check[..])) {
            return Err(DevSecretsError::WrongMasterKey(path.to_owned()));
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&sealed[MAGIC.len() + KEY_CHECK_BYTES..HEADER_BYTES])
                .map_err(|_| DevSecretsError::StateTampered(path.to_owned()))?;
        let mut body = Zeroizing::new(sealed.split_off(HEADER_BYTES));
        let len = self
            .key
            .open_in_place(nonce, Aad::from(MAGIC), body.as_mut())
            .map_err(|_| DevSecretsError::StateTampered(path.to_owned()))?
            .len();
        body.truncate(len);
        Ok(body)
    }

    /// Seals `json` and replaces the state file with it atomically.
    pub(crate) fn write(&self, json: &[u8]) -> Result<(), DevSecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| DevSecretsError::Random)?;
        let mut sealed = Vec::with_capacity(HEADER_BYTES + json.len() + AES_256_GCM.tag_len());
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&self.key_check);
        sealed.extend_from_slice(&nonce);
        let mut body = json.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(MAGIC),
                &mut body,
            )
            .map_err(|_| DevSecretsError::Random)?;
        sealed.extend_from_slice(&body);
        if sealed.len() > STATE_BYTES_MAX {
            return Err(DevSecretsError::StateTooLarge {
                path: self.dir.join(STATE_FILE),
                len: sealed.len() as u64,
                limit_bytes: STATE_BYTES_MAX,
            });
        }
        let temp = self.dir.join(STATE_TEMP_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&temp)
            .map_err(DevSecretsError::io(&temp))?;
        file.write_all(&sealed)
            .map_err(DevSecretsError::io(&temp))?;
        file.sync_all().map_err(DevSecretsError::io(&temp))?;
        drop(file);
        let path = self.dir.join(STATE_FILE);
        std::fs::rename(&temp, &path).map_err(DevSecretsError::io(&path))?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(DevSecretsError::io(&self.dir))
    }
}

/// Reads the master key beside the state, or makes one when neither exists.
fn master_key(dir: &Path) -> Result<Zeroizing<[u8; MASTER_KEY_BYTES]>, DevSecretsError> {
    let path = dir.join(KEY_FILE);
    let mut key = Zeroizing::new([0u8; MASTER_KEY_BYTES]);
    match File::open(&path) {
        Ok(mut file) => {
            let meta = file.metadata().map_err(DevSecretsError::io(&path))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(DevSecretsError::MasterKeyPermissions { path, mode });
            }
            if meta.len() != MASTER_KEY_BYTES as u64 {
                return Err(DevSecretsError::MasterKeyLength {
                    path,
                    len: meta.len(),
                });
            }
            file.read_exact(key.as_mut())
                .map_err(DevSecretsError::io(&path))?;
            Ok(key)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let state = dir.join(STATE_FILE);
            if state.exists() {
                return Err(DevSecretsError::MasterKeyMissing { state, key: path });
            }
            SystemRandom::new()
                .fill(key.as_mut())
                .map_err(|_| DevSecretsError::Random)?;
            let mut file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(DevSecretsError::io(&path))?;
            file.write_all(key.as_ref())
                .and_then(|()| file.sync_all())
                .map_err(DevSecretsError::io(&path))?;
            tracing::info!(path = %path.display(), "dev secret store: new master key");
            Ok(key)
        }
        Err(error) => Err(DevSecretsError::io(&path)(error)),
    }
}
