#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The server configuration as the binary will read it (TOML), with defaults and refusals.

use peregrine_gateway::quic::ServerConfig;
use peregrine_gateway::quic::auth::KeyRegistry;
use peregrine_gateway::quic::tls::{Identity, TlsSource};
use peregrine_proto::limits::SessionLimits;

#[test]
fn parses_keys_tls_and_defaults() {
    let config: ServerConfig = toml::from_str(
        r#"
        listen = "127.0.0.1:7100"
        tls = { source = "self_signed", names = ["localhost"] }
        sessions_per_key = 2
        [[keys]]
        key_id = 1
        account = 7
        public_key = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
        [limits]
        rate_per_sec = 100
        [transport]
        initial_rtt_us = 500
        "#,
    )
    .unwrap();
    assert_eq!(config.keys.len(), 1);
    assert_eq!(config.sessions_per_key, 2);
    assert_eq!(config.limits.rate_per_sec, 100);
    assert_eq!(
        config.limits.max_in_flight,
        SessionLimits::default().max_in_flight
    );
    assert_eq!(config.transport.initial_rtt_us, 500);
    assert!(matches!(config.tls, TlsSource::SelfSigned { .. }));
    KeyRegistry::new(&config.keys).unwrap();

    let files: ServerConfig = toml::from_str(
        r#"
        listen = "[::1]:7100"
        tls = { source = "files", cert_chain_pem = "/etc/peregrine/cert.pem", private_key_pem = "/etc/peregrine/key.pem" }
        "#,
    )
    .unwrap();
    assert_eq!(files.sessions_per_key, 1);
    assert!(matches!(files.tls, TlsSource::Files { .. }));
}

#[test]
fn refuses_unknown_keys_and_bad_public_keys() {
    let unknown = toml::from_str::<ServerConfig>(
        r#"
        listen = "127.0.0.1:7100"
        tls = { source = "self_signed", names = [] }
        typo = 1
        "#,
    );
    assert!(unknown.is_err());
    let config: ServerConfig = toml::from_str(
        r#"
        listen = "127.0.0.1:7100"
        tls = { source = "self_signed", names = [] }
        [[keys]]
        key_id = 1
        account = 7
        public_key = "not hex"
        "#,
    )
    .unwrap();
    let error = KeyRegistry::new(&config.keys).unwrap_err();
    assert!(error.to_string().contains("64 hex digits"), "{error}");
}

#[test]
fn loads_production_pem_files_and_fingerprints_the_leaf() {
    let certified = rcgen::generate_simple_self_signed(vec!["gw.example".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_chain_pem = dir.path().join("cert.pem");
    let private_key_pem = dir.path().join("key.pem");
    std::fs::write(&cert_chain_pem, certified.cert.pem()).unwrap();
    std::fs::write(&private_key_pem, certified.signing_key.serialize_pem()).unwrap();
    let identity = Identity::load(&TlsSource::Files {
        cert_chain_pem: cert_chain_pem.clone(),
        private_key_pem: private_key_pem.clone(),
    })
    .unwrap();
    assert_eq!(identity.chain.len(), 1);
    let expected = ring::digest::digest(&ring::digest::SHA256, certified.cert.der());
    assert_eq!(identity.fingerprint_sha256().as_slice(), expected.as_ref());
    identity.quic_server_config().unwrap();
    // A missing file names itself.
    let error = Identity::load(&TlsSource::Files {
        cert_chain_pem: dir.path().join("missing.pem"),
        private_key_pem,
    })
    .unwrap_err();
    assert!(error.to_string().contains("missing.pem"), "{error}");
}
