//! How the publisher and the consumers reach NATS beyond its URL: TLS trusting one CA file, and
//! a user name and password. Both sides of the fan-out build their connections from one
//! [`NatsAccess`], so an appliance and its bridges cannot disagree on how they connect.
//!
//! With `tls_ca_pem` the connection must be TLS, and only the certificates in that file are
//! trusted (no system roots: a fan-out talks to its own NATS). Without it the connection
//! follows the server (plain on loopback). A server that refuses the credentials, or a
//! certificate the file does not vouch for, fails the session; the caller's readiness shows
//! the error and it retries with back-off, as for any outage.
//!
//! Not here: NKEY and `.creds` (JWT) authentication, which needs async-nats' `nkeys`
//! feature (another crate in the build); user and password over TLS covers a private NATS.

use std::path::PathBuf;
use std::time::Duration;

/// A NATS user's name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct UserPassword {
    /// The user.
    pub user: String,
    /// The password (never printed).
    pub password: String,
}

impl std::fmt::Debug for UserPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPassword")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// TLS trust and credentials for NATS connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatsAccess {
    /// A PEM file of the CA (or the server's certificate) to trust; set: TLS required.
    pub tls_ca_pem: Option<PathBuf>,
    /// Credentials; `None`: none sent.
    pub credentials: Option<UserPassword>,
}

impl NatsAccess {
    /// Connection options with this access and `timeout` on connecting.
    pub fn options(&self, timeout: Duration) -> async_nats::ConnectOptions {
        let mut options = match &self.credentials {
            Some(credentials) => async_nats::ConnectOptions::with_user_and_password(
                credentials.user.clone(),
                credentials.password.clone(),
            ),
            None => async_nats::ConnectOptions::new(),
        };
        if let Some(ca) = &self.tls_ca_pem {
            options = options.require_tls(true).add_root_certificates(ca.clone());
        }
        options.connection_timeout(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_printed() {
        let access = NatsAccess {
            tls_ca_pem: None,
            credentials: Some(UserPassword {
                user: "bridge".into(),
                password: "hunter2-hunter2".into(),
            }),
        };
        let shown = format!("{access:?}");
        assert!(
            shown.contains("bridge") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
