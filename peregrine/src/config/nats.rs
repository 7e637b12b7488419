//! `[nats]`: how the appliance's publisher (`[fanout]`) and the bridges (`[bridge]`) connect to
//! NATS beyond its URL: TLS trusting one CA file, and a user with a password read from a file
//! (never written in the configuration). Empty: plain and anonymous, for a NATS on loopback.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Longest password file read: a password is a line.
pub const PASSWORD_FILE_BYTES_MAX: u64 = 4_096;

/// The `[nats]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSection {
    /// A PEM file of the CA (or the server's certificate) to trust: the connection must then
    /// be TLS and only this file is trusted. Empty: whatever the server offers (plain).
    pub tls_ca_pem: String,
    /// The NATS user (with `password_file`); empty: no credentials.
    pub user: String,
    /// A file holding the user's password (its first line).
    pub password_file: String,
}

/// Why `[nats]` could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// One of `user` and `password_file` without the other.
    #[error("[nats]: set both user and password_file, or neither")]
    HalfCredentials,
    /// The password file could not be read, or is empty or too large.
    #[error("[nats] password_file {path}: {reason}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl NatsSection {
    /// Checks the fields agree (no file is read).
    pub fn validate(&self) -> Result<(), NatsError> {
        if self.user.is_empty() != self.password_file.is_empty() {
            return Err(NatsError::HalfCredentials);
        }
        Ok(())
    }

    /// The fan-out's access: the CA file, and the password read from its file now.
    pub fn access(&self) -> Result<peregrine_fanout::NatsAccess, NatsError> {
        self.validate()?;
        let tls_ca_pem = (!self.tls_ca_pem.is_empty()).then(|| PathBuf::from(&self.tls_ca_pem));
        let credentials = if self.user.is_empty() {
            None
        } else {
            Some(peregrine_fanout::UserPassword {
                user: self.user.clone(),
                password: read_password(&PathBuf::from(&self.password_file))?,
            })
        };
        Ok(peregrine_fanout::NatsAccess {
            tls_ca_pem,
            credentials,
        })
    }
}

/// The first line of `path`, bounded by [`PASSWORD_FILE_BYTES_MAX`] before it is read.
fn read_password(path: &std::path::Path) -> Result<String, NatsError> {
    let refused = |reason: String| NatsError::PasswordFile {
        path: path.to_path_buf(),
        reason,
    };
    let length = std::fs::metadata(path)
        .map_err(|e| refused(e.to_string()))?
        .len();
    if length > PASSWORD_FILE_BYTES_MAX {
        return Err(refused(format!(
            "{length} bytes, more than {PASSWORD_FILE_BYTES_MAX}"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| refused(e.to_string()))?;
    let password = text.lines().next().unwrap_or_default().trim_end();
    if password.is_empty() {
        return Err(refused("empty".to_owned()));
    }
    Ok(password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_whole_from_a_file_of_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nats-password");
        std::fs::write(&file, "s3cret-password\n").unwrap();
        let section = NatsSection {
            tls_ca_pem: "/etc/peregrine/nats-ca.pem".to_owned(),
            user: "bridge".to_owned(),
            password_file: file.display().to_string(),
        };
        let access = section.access().unwrap();
        assert_eq!(
            access.credentials.map(|c| (c.user, c.password)),
            Some(("bridge".to_owned(), "s3cret-password".to_owned()))
        );
        assert!(access.tls_ca_pem.is_some());
        let half = NatsSection {
            password_file: String::new(),
            ..section.clone()
        };
        assert!(matches!(half.validate(), Err(NatsError::HalfCredentials)));
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(
            section.access(),
            Err(NatsError::PasswordFile { .. })
        ));
        assert_eq!(
            NatsSection::default().access().unwrap(),
            peregrine_fanout::NatsAccess::default()
        );
    }
}
