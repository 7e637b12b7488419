//! Connection set-up: the server trust anchor (a pinned certificate fingerprint or a CA), the
//! logon key, and the QUIC transport tuned like the server's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peregrine_proto::frame::{ALPN, CHALLENGE_BYTES, SIGNATURE_BYTES, logon_message};
use ring::digest::{SHA256, digest};
use ring::signature::{Ed25519KeyPair, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::ClientError;

/// Longest the QUIC handshake may take. A closed UDP port does not answer at all (quinn does
/// not act on ICMP port-unreachable), so without this a wrong address waited for the 30 s
/// transport idle timeout; a loopback or LAN handshake takes well under 10 ms.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How the client recognises the server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerTrust {
    /// The SHA-256 of the server's certificate (DER), as the server prints it at start: for the
    /// self-signed development certificate.
    Fingerprint([u8; 32]),
    /// A CA certificate (PEM) and the name the server's certificate must carry.
    Ca {
        /// The CA certificate(s), PEM.
        pem: Vec<u8>,
        /// DNS name or IP address to check.
        server_name: String,
    },
}

/// An ed25519 signing key (the private half of a registered API key).
pub struct SigningKey(Ed25519KeyPair);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public_key_hex())
    }
}

impl SigningKey {
    /// The key of a 32-byte seed (keep the seed secret).
    pub fn from_seed(seed: &[u8; 32]) -> Result<SigningKey, ClientError> {
        Ed25519KeyPair::from_seed_unchecked(seed)
            .map(SigningKey)
            .map_err(|e| ClientError::Key(e.to_string()))
    }

    /// The key of a seed written as 64 hex digits (what `peregrine keygen` prints as
    /// `private_key`).
    pub fn from_seed_hex(text: &str) -> Result<SigningKey, ClientError> {
        let seed = peregrine_proto::hex::parse_hex_32(text.trim()).ok_or_else(|| {
            ClientError::Key("the private key must be 64 hex digits (an ed25519 seed)".into())
        })?;
        SigningKey::from_seed(&seed)
    }

    /// The public key as 64 hex digits, as the gateway's key configuration wants it.
    pub fn public_key_hex(&self) -> String {
        peregrine_proto::hex::to_hex(self.0.public_key().as_ref())
    }

    /// Signs a logon challenge.
    pub fn sign_challenge(&self, challenge: &[u8; CHALLENGE_BYTES]) -> [u8; SIGNATURE_BYTES] {
        let mut out = [0u8; SIGNATURE_BYTES];
        out.copy_from_slice(self.0.sign(&logon_message(challenge)).as_ref());
        out
    }
}

/// Opens a QUIC connection and its order-entry stream, without logging on: the low-level entry
/// point (tests use it to send raw frames). Returns the endpoint, which must outlive the
/// connection.
pub async fn open_stream(
    addr: SocketAddr,
    trust: &ServerTrust,
) -> Result<
    (
        quinn::Endpoint,
        quinn::Connection,
        quinn::SendStream,
        quinn::RecvStream,
    ),
    ClientError,
> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let (mut tls, server_name) = match trust {
        ServerTrust::Fingerprint(fingerprint) => (
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCert {
                    fingerprint: *fingerprint,
                    provider,
                }))
                .with_no_client_auth(),
            "peregrine".to_owned(),
        ),
        ServerTrust::Ca { pem, server_name } => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ClientError::Tls(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
            }
            (
                builder.with_root_certificates(roots).with_no_client_auth(),
                server_name.clone(),
            )
        }
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport()));
    let bind: SocketAddr = if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let mut endpoint =
        quinn::Endpoint::client(bind).map_err(|e| ClientError::Connection(e.to_string()))?;
    endpoint.set_default_client_config(config);
    let connecting = endpoint
        .connect(addr, &server_name)
        .map_err(|e| ClientError::Connection(e.to_string()))?;
    let connection = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(connected) => connected.map_err(|e| ClientError::Connection(e.to_string()))?,
        Err(_) => {
            return Err(ClientError::ConnectTimeout {
                addr,
                timeout: CONNECT_TIMEOUT,
            });
        }
    };
    let (send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| ClientError::Connection(e.to_string()))?;
    Ok((endpoint, connection, send, recv))
}

/// The client side of the server's tuning (see `proto/PROTOCOL.md`): ACK at once, no GSO batching.
fn transport() -> quinn::TransportConfig {
    let mut c = quinn::TransportConfig::default();
    c.initial_rtt(Duration::from_millis(1));
    c.enable_segmentation_offload(false);
    let mut ack = quinn::AckFrequencyConfig::default();
    ack.ack_eliciting_threshold(quinn::VarInt::from_u32(0));
    ack.max_ack_delay(Some(Duration::from_millis(1)));
    c.ack_frequency_config(Some(ack));
    c.keep_alive_interval(Some(Duration::from_secs(1)));
    c
}

/// Accepts exactly the certificate whose SHA-256 is pinned; still checks the TLS 1.3 handshake
/// signature so the server proves it holds the certificate's key.
#[derive(Debug)]
struct PinnedCert {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if digest(&SHA256, end_entity.as_ref()).as_ref() == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "server certificate fingerprint mismatch".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not allowed".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
