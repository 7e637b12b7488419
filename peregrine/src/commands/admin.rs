//! `peregrine admin create-operator`: makes an operator of the identity service on the host.
//! It is the only way an operator comes to exist: signing up makes members only, and the
//! first user to sign up is a member like any other (Barong made it superadmin).
//!
//! The password is read from `PEREGRINE_OPERATOR_PASSWORD` or, when that is unset, from the
//! first line of standard input: never from a flag, which `ps` and shell history would show.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use peregrine_auth::{AuthError, Clock, Identity, IdentityConfig, Role, Store, StoreError};

/// The environment variable holding the new operator's password.
const PASSWORD_ENV: &str = "PEREGRINE_OPERATOR_PASSWORD";

/// Flags of `peregrine admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `peregrine admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Make an operator (active, verified) of the identity service; the password is read from
    /// PEREGRINE_OPERATOR_PASSWORD or the first line of standard input.
    CreateOperator(CreateOperatorArgs),
}

/// Flags of `peregrine admin create-operator`.
#[derive(Debug, Args)]
pub struct CreateOperatorArgs {
    /// The operator's e-mail address (the login)
    #[arg(long)]
    pub email: String,

    /// superadmin, admin, accountant, compliance, support or technical
    #[arg(long, default_value = "superadmin")]
    pub role: String,

    #[command(flatten)]
    pub store: IdentityStoreArgs,
}

/// Where the identity store is, for the commands that open it on the host.
#[derive(Debug, Args)]
pub struct IdentityStoreArgs {
    /// The identity store [default: sqlite://<data dir>/identity.db]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,

    /// Directory for all persistent state (data.dir)
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

impl IdentityStoreArgs {
    /// The store's URL: the one given, or the data directory's SQLite file.
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("identity.db").display()))
    }
}

/// Why no operator was made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The role is not an operator's.
    #[error(
        "admin: `{0}` is not an operator role (superadmin, admin, accountant, compliance, support, technical)"
    )]
    Role(String),
    /// No password given.
    #[error("admin: no password: set {PASSWORD_ENV} or give it on standard input")]
    NoPassword,
    /// Reading standard input failed.
    #[error("admin: reading the password: {0}")]
    Read(#[from] std::io::Error),
    /// The store could not be opened.
    #[error("admin: identity store: {0}")]
    Store(#[from] StoreError),
    /// The identity service refused.
    #[error("admin: {} ({})", .0, .0.code())]
    Refused(#[from] AuthError),
    /// The metrics registry refused (never: a fresh registry).
    #[error("admin: metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl AdminError {
    /// Whether the command line itself was wrong.
    pub fn is_usage_error(&self) -> bool {
        matches!(self, AdminError::Role(_) | AdminError::NoPassword)
    }
}

/// Runs `peregrine admin`.
pub fn run(args: &AdminArgs) -> Result<(), AdminError> {
    match &args.command {
        AdminCommand::CreateOperator(args) => create_operator(args),
    }
}

fn create_operator(args: &CreateOperatorArgs) -> Result<(), AdminError> {
    let role = Role::parse(&args.role)
        .filter(|role| role.is_operator())
        .ok_or_else(|| AdminError::Role(args.role.clone()))?;
    let password = match std::env::var(PASSWORD_ENV) {
        Ok(password) if !password.is_empty() => password,
        _ => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            if line.is_empty() {
                return Err(AdminError::NoPassword);
            }
            line
        }
    };
    let database_url = args.store.url();
    if database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&args.store.data_dir)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let user = runtime.block_on(async {
        let store = Store::open(&database_url).await?;
        let registry = prometheus::Registry::new();
        let identity = Identity::new(store, IdentityConfig::default(), Clock::System, &registry)?;
        let user = identity.create_operator(&args.email, &password, role).await;
        identity.store().close().await;
        Ok::<_, AdminError>(user?)
    })?;
    println!(
        "operator {} <{}> role {} in {database_url}",
        user.uid,
        user.email,
        user.role.as_str()
    );
    Ok(())
}
