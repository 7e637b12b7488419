//! What a KYC document upload and read cost: a data key from OpenBao transit, AES-256-GCM,
//! the store (embedded SQLite) — and the unwrap and open on read. Needs the OpenBao of
//! `scripts/test` (VAULT_ADDR, VAULT_TOKEN). Run:
//! `cargo run -p peregrine-auth --example document_seal -- [ROUNDS] [SIZE_KIB]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use peregrine_auth::kyc::Kyc;
use peregrine_auth::kyc::document::UploadRequest;
use peregrine_auth::{Clock, Identity, IdentityConfig, Role, Source, Store};
use peregrine_secrets::sys::Engine;
use peregrine_secrets::{BaoToken, OpenBao};

fn percentiles(mut micros: Vec<u128>) -> String {
    micros.sort_unstable();
    let at = |p: f64| micros[((micros.len() as f64 * p) as usize).min(micros.len() - 1)];
    format!("p50 {} us, p99 {} us", at(0.50), at(0.99))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: u32 = args.next().map_or(100, |a| a.parse().expect("ROUNDS"));
    let size_kib: usize = args.next().map_or(1024, |a| a.parse().expect("SIZE_KIB"));
    let env = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let bao = OpenBao::new(&env("VAULT_ADDR"), BaoToken::new(env("VAULT_TOKEN"))).unwrap();
    let mount = format!("kyc-bench-{}", std::process::id());
    bao.ensure_engine(&mount, Engine::Transit).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("identity.db").display());
    let mut config = IdentityConfig::default();
    config.kyc.transit_mount = mount;
    config.kyc.documents_per_user_max = rounds;
    config.kyc.document_bytes_max = size_kib * 1024 + 8;
    let registry = prometheus::Registry::new();
    let store = Store::open(&url).await.unwrap();
    let identity = Arc::new(Identity::new(store, config, Clock::System, &registry).unwrap());
    let kyc = Kyc::start(identity.clone(), bao, &registry).await.unwrap();
    let user = identity
        .create_operator("bench@example.com", "a long bench password", Role::Member)
        .await
        .unwrap();
    let mut content = b"%PDF-".to_vec();
    content.resize(size_kib * 1024, 0x42);
    let request: UploadRequest =
        serde_json::from_str(r#"{"doc_type":"passport","doc_number":"X1","doc_expire":null}"#)
            .unwrap();
    let source = Source::default();
    let (mut uploads, mut reads, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let body = Bytes::from(content.clone());
        let started = Instant::now();
        let meta = kyc
            .upload_document(
                &user,
                &request,
                Some("application/pdf"),
                Some(body.len() as u64),
                |_| async { Ok(body) },
                &source,
            )
            .await
            .unwrap();
        uploads.push(started.elapsed().as_micros());
        ids.push(meta.id);
    }
    for id in ids {
        let started = Instant::now();
        let (_, opened) = kyc.read_document(&user, id, &source).await.unwrap();
        reads.push(started.elapsed().as_micros());
        assert_eq!(opened.len(), content.len());
    }
    println!(
        "{size_kib} KiB documents, {rounds} rounds: upload (data key + seal + store + audit) {}; \
         read (unwrap + open + audit) {}",
        percentiles(uploads),
        percentiles(reads)
    );
}
