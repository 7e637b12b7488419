//! TLS 1.3 material: a self-signed development certificate (rcgen) or a production chain and key
//! from PEM files, and the rustls server configuration with ALPN `peregrine/2`.

use std::path::PathBuf;
use std::sync::Arc;

use ring::digest::{SHA256, digest};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use peregrine_proto::frame::ALPN;

/// Where the server's certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "source")]
#[non_exhaustive]
pub enum TlsSource {
    /// Generate a self-signed certificate at start (development); clients pin its SHA-256
    /// fingerprint, which the caller prints.
    SelfSigned {
        /// Subject alternative names (DNS names or IP addresses).
        names: Vec<String>,
    },
    /// A certificate chain and its private key, PEM files (production).
    Files {
        /// Certificate chain, leaf first.
        cert_chain_pem: PathBuf,
        /// PKCS#8, PKCS#1 or SEC1 private key.
        private_key_pem: PathBuf,
    },
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rcgen failed.
    #[error("could not generate the development certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file could not be read or parsed.
    #[error("could not read {path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn refused the rustls configuration.
    #[error("QUIC crypto configuration: {0}")]
    Quic(String),
}

/// File names of the development certificate under its directory.
pub const DEV_CERT_FILE: &str = "dev-cert.pem";
/// File name of the development certificate's key.
pub const DEV_KEY_FILE: &str = "dev-key.pem";

/// The development identity kept in `dir`: made once (self-signed for `names`, key file mode
/// 0600) and reused after, so the fingerprint clients pin survives restarts. Returns the
/// [`TlsSource::Files`] that loads it.
pub fn ensure_dev_certificate(
    dir: &std::path::Path,
    names: &[String],
) -> Result<TlsSource, TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let cert_chain_pem = dir.join(DEV_CERT_FILE);
    let private_key_pem = dir.join(DEV_KEY_FILE);
    let io = |path: &std::path::Path, e: std::io::Error| TlsError::Pem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if !cert_chain_pem.exists() || !private_key_pem.exists() {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let certified = rcgen::generate_simple_self_signed(names.to_vec())?;
        // Key first, then the certificate: a crash between leaves no certificate, so the next
        // start makes a fresh pair instead of pairing a new key with an old certificate.
        for (path, text, mode) in [
            (
                &private_key_pem,
                certified.signing_key.serialize_pem(),
                0o600,
            ),
            (&cert_chain_pem, certified.cert.pem(), 0o644),
        ] {
            let tmp = path.with_extension("pem.tmp");
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&tmp)
                .map_err(|e| io(&tmp, e))?;
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| io(&tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
        }
    }
    Ok(TlsSource::Files {
        cert_chain_pem,
        private_key_pem,
    })
}

/// A certificate chain with its key.
#[derive(Debug)]
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Loads or generates the identity.
    pub fn load(source: &TlsSource) -> Result<Self, TlsError> {
        match source {
            TlsSource::SelfSigned { names } => {
                let certified = rcgen::generate_simple_self_signed(names.clone())?;
                Ok(Identity {
                    chain: vec![certified.cert.der().clone()],
                    key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                        certified.signing_key.serialize_der(),
                    )),
                })
            }
            TlsSource::Files {
                cert_chain_pem,
                private_key_pem,
            } => {
                let pem = |path: &PathBuf, reason: String| TlsError::Pem {
                    path: path.clone(),
                    reason,
                };
                let chain = CertificateDer::pem_file_iter(cert_chain_pem)
                    .map_err(|e| pem(cert_chain_pem, e.to_string()))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| pem(cert_chain_pem, e.to_string()))?;
                if chain.is_empty() {
                    return Err(pem(cert_chain_pem, "no certificate".into()));
                }
                let key = PrivateKeyDer::from_pem_file(private_key_pem)
                    .map_err(|e| pem(private_key_pem, e.to_string()))?;
                Ok(Identity { chain, key })
            }
        }
    }

    /// SHA-256 of the leaf certificate (DER): what clients pin.
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Some(leaf) = self.chain.first() {
            out.copy_from_slice(digest(&SHA256, leaf.as_ref()).as_ref());
        }
        out
    }

    /// The quinn crypto configuration: TLS 1.3 only, ring provider, ALPN `peregrine/2`.
    pub fn quic_server_config(
        &self,
    ) -> Result<Arc<quinn::crypto::rustls::QuicServerConfig>, TlsError> {
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        // 0-RTT would let a replayed first flight place orders twice: off.
        tls.max_early_data_size = 0;
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| TlsError::Quic(e.to_string()))?;
        Ok(Arc::new(quic))
    }
}
