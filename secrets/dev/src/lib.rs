//! The embedded development secret store: an in-process server speaking the subset of
//! OpenBao's HTTP API that [`peregrine_secrets::OpenBao`] uses, so identity and the wallet
//! daemons run unchanged, with the one client, when `peregrine up` starts on a bare machine
//! without an OpenBao.
//!
//! **A development store.** Its master key sits in a file on the same disk as the state it
//! protects: whoever reads the directory reads every secret. Production uses OpenBao (sealed
//! by its operators' keys or a KMS, audited, replicated).
//!
//! Owns:
//! - the engines, with OpenBao's paths, JSON, status codes and error messages: transit
//!   (ed25519 signing and AES-256-GCM encryption keys, versioned, rotated, `vault:v<N>:`
//!   values, data keys), TOTP (RFC 6238: SHA-1, 6 digits, 30 s, skew ±1, a code valid once,
//!   `otpauth://` URL and QR PNG), KV v2 (`data/` paths with check-and-set);
//! - the system paths: health, mounts, ACL policies (the HCL subset Peregrine writes; any
//!   other construct is refused when written — see [`policy`]), scoped tokens, seal;
//! - the directory (`data/secrets/` under `up`): `master.key` (32 random bytes, mode 0600),
//!   `state.bin` (everything, sealed with AES-256-GCM under the master key, written to a
//!   temporary file, fsynced and renamed), and a lock that keeps a second process out. A
//!   wrong master key or a changed state file is a typed [`DevSecretsError`], never a panic;
//! - its metrics (requests by status and their latency, state saves and their latency) when
//!   started with [`DevSecrets::start_with_metrics`].
//!
//! How `peregrine up` uses it when no OpenBao is configured (the components then run exactly
//! as they do against OpenBao):
//!
//! ```text
//! let secrets = DevSecrets::start(&data_dir.join("secrets")).await?;
//! let admin = secrets.root_client()?;
//! let identity_token = peregrine_auth::vault::provision(&admin, &vault_config).await?;
//! // identity: Vault { client: admin.with_token(identity_token), config: vault_config }
//! // readiness: secrets.is_running(); on stop: secrets.shutdown().await
//! ```
//!
//! Never does:
//! - listen anywhere but 127.0.0.1 (an ephemeral port);
//! - serve as a production store, or stand in for OpenBao in the tests of the parts that use
//!   it (those run against a real OpenBao; this crate's own tests hold it to OpenBao's
//!   behaviour by running one scenario list against both);
//! - persist tokens: the root token is random at each start (compared in constant time) and
//!   scoped tokens live in memory, so a component provisions its token at each start of `up`;
//! - keep history: a KV path keeps its latest version, a TOTP key its recently used codes.

mod api;
mod core;
mod error;
mod file;
mod kv;
mod metrics;
pub mod policy;
mod qr;
mod server;
mod state;
mod sys;
mod totp;
mod transit;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use peregrine_secrets::BaoToken;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

pub use error::DevSecretsError;
pub use file::{MASTER_KEY_BYTES, STATE_BYTES_MAX};
pub use server::BODY_BYTES_MAX;
pub use state::{KV_ENTRIES_MAX, MOUNTS_MAX, POLICIES_MAX, TOTP_KEYS_MAX, TRANSIT_KEYS_MAX};
pub use sys::{TOKEN_TTL_S_MAX, TOKENS_MAX};

/// A running dev store.
pub struct DevSecrets {
    addr: SocketAddr,
    root_token: Zeroizing<String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    /// Cleared when the server task ends, however it ends (for readiness without the handle).
    serving: Arc<AtomicBool>,
}

impl std::fmt::Debug for DevSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevSecrets({}, <root token redacted>)", self.addr)
    }
}

impl DevSecrets {
    /// Opens (or makes) the store under `dir` and serves it on 127.0.0.1 at an ephemeral
    /// port, with a new random root token. Needs a Tokio runtime.
    pub async fn start(dir: &Path) -> Result<DevSecrets, DevSecretsError> {
        DevSecrets::start_with_metrics(dir, &prometheus::Registry::new()).await
    }

    /// [`DevSecrets::start`], with the store's metrics (`devsecrets_requests_total`,
    /// `devsecrets_request_duration_seconds`, `devsecrets_state_saves_total`,
    /// `devsecrets_state_save_seconds`) registered in `registry`.
    pub async fn start_with_metrics(
        dir: &Path,
        registry: &prometheus::Registry,
    ) -> Result<DevSecrets, DevSecretsError> {
        let metrics = metrics::Metrics::new(registry)
            .map_err(|error| DevSecretsError::Metrics(error.to_string()))?;
        let mut random = [0u8; sys::TOKEN_RANDOM_BYTES];
        SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| DevSecretsError::Random)?;
        let root = Zeroizing::new(format!("s.{}", URL_SAFE_NO_PAD.encode(random)));
        let core = Arc::new(core::Core::open(dir, root.clone(), metrics)?);
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(DevSecretsError::Bind)?;
        let addr = listener.local_addr().map_err(DevSecretsError::Bind)?;
        assert!(addr.ip().is_loopback(), "the dev store binds loopback only");
        let (shutdown, stop) = oneshot::channel::<()>();
        let app = server::router(core);
        let serving = Arc::new(AtomicBool::new(true));
        // Cleared on drop, so a panic in the server task clears it too.
        let serving_guard = ServingGuard(Arc::clone(&serving));
        let task = tokio::spawn(async move {
            let _serving = serving_guard;
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "dev secret store: the server stopped");
            }
        });
        tracing::info!(%addr, dir = %dir.display(), "dev secret store: serving (development only)");
        Ok(DevSecrets {
            addr,
            root_token: root,
            shutdown: Some(shutdown),
            task,
            serving,
        })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, what [`peregrine_secrets::OpenBao::new`] takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The root token of this run (new at each start).
    pub fn root_token(&self) -> BaoToken {
        BaoToken::new(self.root_token.as_str())
    }

    /// A client of this store acting with the root token (for set-up: mounts, keys,
    /// policies, the components' own tokens).
    pub fn root_client(&self) -> Result<peregrine_secrets::OpenBao, peregrine_secrets::BaoError> {
        peregrine_secrets::OpenBao::new(&self.url(), self.root_token())
    }

    /// The root token's text, for a tool outside the client (a developer's `bao` CLI through
    /// `VAULT_TOKEN`). Never log it.
    pub fn root_token_text(&self) -> &str {
        &self.root_token
    }

    /// Whether the server task still runs (for readiness).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// A check of [`DevSecrets::is_running`] that outlives this borrow (a readiness probe).
    pub fn running_flag(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let serving = Arc::clone(&self.serving);
        move || serving.load(Ordering::Acquire)
    }

    /// Stops serving and waits until the server has stopped (and released the directory's
    /// lock).
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

impl Drop for DevSecrets {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Clears the serving flag when the server task's future is dropped (it returned or panicked).
struct ServingGuard(Arc<AtomicBool>);

impl Drop for ServingGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
