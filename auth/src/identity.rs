//! The identity service: the user life cycle over the store, without HTTP (the router in
//! [`crate::http`] only translates). Every sensitive action, allowed or denied, is audited.

use std::time::Instant;

use ring::rand::SystemRandom;

use crate::audit::{AuditEntry, Outcome};
use crate::clock::Clock;
use crate::config::IdentityConfig;
use crate::error::AuthError;
use crate::mail::{self, Message};
use crate::metrics::Metrics;
use crate::password;
use crate::secret::{self, digest_of, matches_digest};
use crate::store::{
    CodePurpose, CodeRow, NewSession, NewUser, Role, SessionRow, Store, StoreError, User, UserState,
};
use crate::vault::Vault;

/// Longest User-Agent kept with a session, bytes.
const USER_AGENT_BYTES_MAX: usize = 255;
/// argon2id computations at once. Each holds `ARGON2_MEMORY_KIB` (19 MiB) for tens of
/// milliseconds: unbounded, a flood of logins would fill the blocking pool (512 threads, 10 GB);
/// bounded, they queue, and the lockouts cut a flood from one address or at one account short.
pub const PASSWORD_HASHES_CONCURRENT_MAX: usize = 4;
/// Tries at a fresh random uid when one collides.
const UID_ROUNDS_MAX: u32 = 4;

/// Where a request came from.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// The client's IP address.
    pub address: String,
    /// The client's User-Agent.
    pub user_agent: String,
}

/// A successful login.
#[derive(Debug)]
#[non_exhaustive]
pub struct LoggedIn {
    /// The user.
    pub user: User,
    /// The user's trading account.
    pub account: Option<u32>,
    /// The new session's id (for the cookie; stored only as its digest).
    pub session_id: String,
    /// The new session's CSRF token (for the client's `X-CSRF-Token` header).
    pub csrf_token: String,
    /// The new session's public handle.
    pub handle: String,
}

/// A request authenticated by its session.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionAuth {
    /// The user.
    pub user: User,
    /// The session.
    pub session: SessionRow,
}

/// A session as its owner sees it.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct SessionView {
    /// The handle to revoke it by.
    pub id: String,
    /// User-Agent at login.
    pub user_agent: String,
    /// Address at login.
    pub ip: String,
    /// Login time, Unix ms.
    pub created_at_ms: i64,
    /// Last use, Unix ms.
    pub last_seen_ms: i64,
    /// Expiry if unused, Unix ms.
    pub expires_at_ms: i64,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// The identity service.
#[derive(Debug)]
pub struct Identity {
    store: Store,
    config: IdentityConfig,
    clock: Clock,
    rng: SystemRandom,
    metrics: Metrics,
    hashing: tokio::sync::Semaphore,
    /// OpenBao, for 2FA, tokens and API-key secrets; `None`: those are off.
    vault: Option<Vault>,
    /// The access-token issuer (with the vault).
    tokens: Option<crate::jwt::Issuer>,
}

/// Lower-cases and trims an e-mail address; `InvalidEmail` when it is not one.
fn normalise_email(email: &str) -> Result<String, AuthError> {
    let email = email.trim().to_ascii_lowercase();
    if mail::valid_address(&email) {
        Ok(email)
    } else {
        Err(AuthError::InvalidEmail)
    }
}

impl Identity {
    /// A service over `store`, its metrics registered in `registry`.
    pub fn new(
        store: Store,
        config: IdentityConfig,
        clock: Clock,
        registry: &prometheus::Registry,
    ) -> Result<Identity, prometheus::Error> {
        Ok(Identity {
            store,
            config,
            clock,
            rng: SystemRandom::new(),
            metrics: Metrics::new(registry)?,
            hashing: tokio::sync::Semaphore::new(PASSWORD_HASHES_CONCURRENT_MAX),
            vault: None,
            tokens: None,
        })
    }

    /// The same service with OpenBao: 2FA, access tokens and API keys on.
    pub fn with_vault(mut self, vault: Vault, tokens: crate::jwt::TokenConfig) -> Identity {
        self.tokens = Some(crate::jwt::Issuer::new(vault.clone(), tokens));
        self.vault = Some(vault);
        self
    }

    /// OpenBao, or `VaultNotConfigured`.
    pub(crate) fn vault(&self) -> Result<&Vault, AuthError> {
        self.vault.as_ref().ok_or(AuthError::VaultNotConfigured)
    }

    /// The token issuer, or `VaultNotConfigured`.
    pub fn tokens(&self) -> Result<&crate::jwt::Issuer, AuthError> {
        self.tokens.as_ref().ok_or(AuthError::VaultNotConfigured)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Now, Unix ms.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Writes an audit record; a failure to write is logged and counted, never hidden behind
    /// the action's own answer.
    async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        source: &Source,
        result: Result<(), &AuthError>,
    ) {
        self.audit_code(
            actor,
            action,
            target,
            source,
            result.err().map(AuthError::code),
        )
        .await;
    }

    /// Writes an audit record: denied with `code`, or allowed when `code` is `None` (for
    /// refusals typed outside [`AuthError`], e.g. KYC's, RBAC's and the control API's).
    pub async fn audit_code(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        source: &Source,
        code: Option<&str>,
    ) {
        let (outcome, code) = match code {
            None => (Outcome::Allowed, ""),
            Some(code) => (Outcome::Denied, code),
        };
        let entry = AuditEntry {
            at_ms: self.now_ms(),
            actor: actor.chars().take(64).collect(),
            action: action.to_owned(),
            target: target.chars().take(255).collect(),
            source: source.address.chars().take(64).collect(),
            outcome,
            code: code.to_owned(),
        };
        match self.store.append_audit(&entry).await {
            Ok(_) => self
                .metrics
                .audit_records_total
                .with_label_values(&[outcome.as_str()])
                .inc(),
            Err(error) => {
                self.metrics.audit_failures_total.inc();
                tracing::error!(%error, action, actor, "audit record not written");
            }
        }
    }

    /// Audits `result` of `action` and passes it on.
    pub(crate) async fn audited<T>(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        source: &Source,
        result: Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        self.audit(actor, action, target, source, result.as_ref().map(|_| ()))
            .await;
        result
    }

    /// Refuses with `RateLimited` when `key` is over its limit, else counts this request.
    async fn rate_limit(&self, key: &str, limit: i64) -> Result<(), AuthError> {
        let now_ms = self.now_ms();
        let current = self.store.throttle(key).await?;
        let locked_ms = current.locked_for_ms(now_ms);
        if locked_ms > 0 {
            return Err(AuthError::RateLimited {
                retry_after_s: ceil_seconds(locked_ms),
            });
        }
        let window_ms = self.config.failure_window_ms;
        self.store
            .count_event(key, now_ms, window_ms, limit, window_ms)
            .await?;
        Ok(())
    }

    /// argon2id off the runtime's workers.
    async fn hash_password(&self, password: &str) -> Result<String, AuthError> {
        let password = password.to_owned();
        let rng = self.rng.clone();
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| AuthError::TaskLost)?;
        let started = Instant::now();
        let phc = tokio::task::spawn_blocking(move || password::hash(&password, &rng))
            .await
            .map_err(|_| AuthError::TaskLost)??;
        self.metrics
            .password_hash_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(phc)
    }

    /// Whether `password` matches `user`'s hash, or (no user) the time of a mismatch.
    async fn verify_password(
        &self,
        password: &str,
        user: Option<&User>,
    ) -> Result<bool, AuthError> {
        let password = password.to_owned();
        let phc = user.map(|u| u.password_hash.clone());
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| AuthError::TaskLost)?;
        let started = Instant::now();
        let matched = tokio::task::spawn_blocking(move || match phc {
            Some(phc) => password::verify(&password, &phc),
            None => {
                password::verify_dummy(&password);
                false
            }
        })
        .await
        .map_err(|_| AuthError::TaskLost)?;
        self.metrics
            .password_hash_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(matched)
    }

    /// Signs a user up: a pending member, and a verification code sent to the address.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        source: &Source,
    ) -> Result<User, AuthError> {
        let target = email.trim().to_ascii_lowercase();
        let result = self.sign_up_inner(email, password, source).await;
        let actor = result
            .as_ref()
            .map_or("anonymous", |user| user.uid.as_str());
        let actor = actor.to_owned();
        self.audited(&actor, "identity.user.create", &target, source, result)
            .await
    }

    async fn sign_up_inner(
        &self,
        email: &str,
        password: &str,
        source: &Source,
    ) -> Result<User, AuthError> {
        let email = normalise_email(email)?;
        password::check_policy(password)?;
        let limit = self.config.requests_per_source_max;
        self.rate_limit(&format!("signup.ip:{}", source.address), limit)
            .await?;
        let phc = self.hash_password(password).await?;
        let user = self
            .insert_user(&email, &phc, Role::Member, UserState::Pending, 0)
            .await?;
        self.send_code(&user, CodePurpose::Email).await?;
        Ok(user)
    }

    /// Inserts a user under a fresh uid (drawn again on the rare collision).
    async fn insert_user(
        &self,
        email: &str,
        phc: &str,
        role: Role,
        state: UserState,
        level: i64,
    ) -> Result<User, AuthError> {
        for _ in 0..UID_ROUNDS_MAX {
            let uid = format!(
                "ID{}",
                secret::hex(&secret::random_bytes::<5>(&self.rng)?).to_ascii_uppercase()
            );
            let new = NewUser {
                uid: &uid,
                email,
                password_hash: phc,
                role,
                state,
                level,
                now_ms: self.now_ms(),
            };
            match self.store.insert_user(&new).await {
                Ok(id) => {
                    return self
                        .store
                        .user_by_id(id)
                        .await?
                        .ok_or(AuthError::Store(StoreError::Contention { what: "users" }));
                }
                Err(StoreError::Duplicate) => {
                    if self.store.user_by_email(email).await?.is_some() {
                        return Err(AuthError::EmailTaken);
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(AuthError::Store(StoreError::Contention {
            what: "user uid",
        }))
    }

    /// Makes a new code for `purpose`, stores its digest and mails it (or logs it when no
    /// mail server is configured). Limited per address.
    async fn send_code(&self, user: &User, purpose: CodePurpose) -> Result<(), AuthError> {
        let limit = self.config.mails_per_address_max;
        self.rate_limit(&format!("mail.email:{}", user.email), limit)
            .await?;
        let code = secret::new_code(&self.rng)?;
        let now_ms = self.now_ms();
        let expires_at_ms = now_ms + self.config.code_ttl_ms;
        self.store
            .replace_code(user.id, purpose, &digest_of(&code), now_ms, expires_at_ms)
            .await?;
        let (subject, what) = match purpose {
            CodePurpose::Email => ("Confirm your e-mail address", "confirm your e-mail address"),
            CodePurpose::Password => ("Reset your password", "reset your password"),
        };
        let minutes = self.config.code_ttl_ms / 60_000;
        let message = Message {
            to: user.email.clone(),
            subject: subject.to_owned(),
            body: format!(
                "Your code to {what} is {code}\n\nIt is valid for {minutes} minutes. \
                 If you did not ask for it, ignore this message.\n"
            ),
        };
        let Some(config) = &self.config.mail else {
            // A development appliance without a mail server: the operator reads the log.
            tracing::info!(email = %user.email, code = %code, ?purpose, "no SMTP configured: code");
            self.metrics
                .mails_total
                .with_label_values(&["logged"])
                .inc();
            return Ok(());
        };
        match mail::send(config, &message).await {
            Ok(()) => {
                self.metrics.mails_total.with_label_values(&["sent"]).inc();
                Ok(())
            }
            Err(error) => {
                self.metrics
                    .mails_total
                    .with_label_values(&["failed"])
                    .inc();
                tracing::warn!(%error, "code mail not sent");
                Err(error.into())
            }
        }
    }

    /// Sends a new verification code to a pending user; says nothing about whether the
    /// address is registered.
    pub async fn resend_email_code(&self, email: &str, source: &Source) -> Result<(), AuthError> {
        let email = normalise_email(email)?;
        let limit = self.config.requests_per_source_max;
        self.rate_limit(&format!("code.ip:{}", source.address), limit)
            .await?;
        if let Some(user) = self.store.user_by_email(&email).await?
            && user.state == UserState::Pending
        {
            self.send_code(&user, CodePurpose::Email).await?;
        }
        Ok(())
    }

    /// Checks a presented code against the user's live one for `purpose` and consumes it.
    async fn check_code(
        &self,
        user: &User,
        purpose: CodePurpose,
        code: &str,
    ) -> Result<(), AuthError> {
        let Some(CodeRow {
            id,
            digest,
            attempts,
            expires_at_ms,
        }) = self.store.current_code(user.id, purpose).await?
        else {
            return Err(AuthError::InvalidCode);
        };
        if attempts >= self.config.code_attempts_max {
            return Err(AuthError::InvalidCode);
        }
        if expires_at_ms <= self.now_ms() {
            return Err(AuthError::CodeExpired);
        }
        if !matches_digest(code.trim(), &digest) {
            self.store.count_code_attempt(id).await?;
            return Err(AuthError::InvalidCode);
        }
        if !self.store.consume_code(id).await? {
            return Err(AuthError::InvalidCode);
        }
        Ok(())
    }

    /// Verifies a pending user's e-mail with the mailed code: the user becomes active, level
    /// 1, with a trading account.
    pub async fn confirm_email(
        &self,
        email: &str,
        code: &str,
        source: &Source,
    ) -> Result<(User, u32), AuthError> {
        let target = email.trim().to_ascii_lowercase();
        let result = self.confirm_email_inner(email, code).await;
        let actor = result
            .as_ref()
            .map_or("anonymous".to_owned(), |(u, _)| u.uid.clone());
        self.audited(
            &actor,
            "identity.user.verify_email",
            &target,
            source,
            result,
        )
        .await
    }

    async fn confirm_email_inner(&self, email: &str, code: &str) -> Result<(User, u32), AuthError> {
        let email = normalise_email(email)?;
        let user = self.store.user_by_email(&email).await?;
        let Some(user) = user.filter(|u| u.state == UserState::Pending) else {
            return Err(AuthError::InvalidCode);
        };
        self.check_code(&user, CodePurpose::Email, code).await?;
        let (first, end) = (self.config.account_id_first, self.config.account_id_end);
        let account = self
            .store
            .activate_user(user.id, self.now_ms(), first, end)
            .await?
            .ok_or(AuthError::AccountsExhausted)?;
        let user = self
            .store
            .user_by_id(user.id)
            .await?
            .ok_or(AuthError::InvalidCode)?;
        Ok((user, account))
    }

    /// Logs in with e-mail and password. Refused while the account or the address is locked
    /// out; each failure counts towards both lockouts. A session id presented with the login
    /// (a cookie set before) is revoked, never carried over: the new session's id is fresh.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        presented_session: Option<&str>,
        source: &Source,
    ) -> Result<LoggedIn, AuthError> {
        self.login_2fa(email, password, None, presented_session, source)
            .await
    }

    /// [`Identity::login`] with the one-time code a user with 2FA enabled must add: without
    /// it `MissingOtp`; a wrong code counts as a failed login; OpenBao unavailable is
    /// `VaultUnavailable` (503) for such a user, while users without 2FA log in as usual.
    pub async fn login_2fa(
        &self,
        email: &str,
        password: &str,
        otp_code: Option<&str>,
        presented_session: Option<&str>,
        source: &Source,
    ) -> Result<LoggedIn, AuthError> {
        let target = email.trim().to_ascii_lowercase();
        let result = self
            .login_inner(&target, password, otp_code, presented_session, source)
            .await;
        let outcome = result.as_ref().map_or_else(|e| e.code(), |_| "ok");
        self.metrics
            .logins_total
            .with_label_values(&[outcome])
            .inc();
        let actor = result
            .as_ref()
            .map_or("anonymous".to_owned(), |l| l.user.uid.clone());
        self.audited(&actor, "identity.session.create", &target, source, result)
            .await
    }

    async fn login_inner(
        &self,
        email: &str,
        password: &str,
        otp_code: Option<&str>,
        presented_session: Option<&str>,
        source: &Source,
    ) -> Result<LoggedIn, AuthError> {
        let email_key = format!("login.email:{email}");
        let address_key = format!("login.ip:{}", source.address);
        let now_ms = self.now_ms();
        for key in [&address_key, &email_key] {
            let locked_ms = self.store.throttle(key).await?.locked_for_ms(now_ms);
            if locked_ms > 0 {
                return Err(AuthError::LockedOut {
                    retry_after_s: ceil_seconds(locked_ms),
                });
            }
        }
        let user = match normalise_email(email) {
            Ok(email) => self.store.user_by_email(&email).await?,
            Err(_) => None,
        };
        if !self.verify_password(password, user.as_ref()).await? {
            self.count_login_failure(&email_key, &address_key).await?;
            return Err(AuthError::InvalidCredentials);
        }
        let Some(user) = user else {
            return Err(AuthError::InvalidCredentials);
        };
        match user.state {
            UserState::Active => {}
            UserState::Pending => return Err(AuthError::NotActive),
            _ => return Err(AuthError::Disabled),
        }
        if user.otp_enabled {
            match self.check_otp(&user, otp_code).await {
                Err(AuthError::InvalidOtp) => {
                    self.count_login_failure(&email_key, &address_key).await?;
                    return Err(AuthError::InvalidOtp);
                }
                other => other?,
            }
        }
        self.store.clear_throttle(&email_key).await?;
        if let Some(presented) = presented_session {
            // Fixation: whatever session the client came with ends here.
            self.store
                .revoke_session_digest(&digest_of(presented), self.now_ms())
                .await?;
        }
        self.open_session(user, source).await
    }

    async fn count_login_failure(
        &self,
        email_key: &str,
        address_key: &str,
    ) -> Result<(), AuthError> {
        let config = &self.config;
        let now_ms = self.now_ms();
        let (window, lock) = (config.failure_window_ms, config.lockout_ms);
        self.store
            .count_event(
                email_key,
                now_ms,
                window,
                config.login_failures_per_account_max,
                lock,
            )
            .await?;
        self.store
            .count_event(
                address_key,
                now_ms,
                window,
                config.login_failures_per_address_max,
                lock,
            )
            .await?;
        Ok(())
    }

    async fn open_session(&self, user: User, source: &Source) -> Result<LoggedIn, AuthError> {
        let session_id = secret::new_token(&self.rng)?;
        let csrf_token = secret::new_token(&self.rng)?;
        let handle = secret::new_handle(&self.rng)?;
        let now_ms = self.now_ms();
        let user_agent: String = truncate(&source.user_agent, USER_AGENT_BYTES_MAX);
        let digest = digest_of(&session_id);
        let csrf_digest = digest_of(&csrf_token);
        let session = NewSession {
            digest: &digest,
            handle: &handle,
            user_id: user.id,
            csrf_digest: &csrf_digest,
            user_agent: &user_agent,
            source: &truncate(&source.address, 64),
            now_ms,
            expires_at_ms: now_ms + self.config.session_idle_ms,
            absolute_expires_at_ms: now_ms + self.config.session_absolute_ms,
        };
        self.store
            .insert_session(&session, self.config.sessions_per_user_max)
            .await?;
        let account = self.store.account_of(user.id).await?;
        Ok(LoggedIn {
            user,
            account,
            session_id,
            csrf_token,
            handle,
        })
    }

    /// The session with this id, if live and its user active; pushes its expiry back.
    pub async fn authenticate(&self, session_id: &str) -> Result<SessionAuth, AuthError> {
        if session_id.len() != 2 * secret::TOKEN_BYTES
            || !session_id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(AuthError::InvalidSession);
        }
        let now_ms = self.now_ms();
        let digest = digest_of(session_id);
        let Some(session) = self.store.live_session(&digest, now_ms).await? else {
            return Err(AuthError::InvalidSession);
        };
        let user = self.store.user_by_id(session.user_id).await?;
        let Some(user) = user.filter(|u| u.state == UserState::Active) else {
            return Err(AuthError::InvalidSession);
        };
        if now_ms - session.last_seen_ms >= self.config.session_touch_interval_ms {
            let expires_at_ms = now_ms + self.config.session_idle_ms;
            self.store
                .touch_session(&digest, now_ms, expires_at_ms)
                .await?;
        }
        Ok(SessionAuth { user, session })
    }

    /// Checks the CSRF token a state-changing request carries against its session's.
    pub fn check_csrf(auth: &SessionAuth, token: Option<&str>) -> Result<(), AuthError> {
        let token = token.ok_or(AuthError::MissingCsrf)?;
        if matches_digest(token, &auth.session.csrf_digest) {
            Ok(())
        } else {
            Err(AuthError::CsrfMismatch)
        }
    }

    /// Audits a refusal made before a service call (a missing session or CSRF token).
    pub async fn audit_refusal(
        &self,
        action: &str,
        auth: Option<&SessionAuth>,
        source: &Source,
        error: &AuthError,
    ) {
        let actor = auth.map_or("anonymous", |a| a.user.uid.as_str());
        self.audit(actor, action, "", source, Err(error)).await;
    }

    /// Ends the request's session.
    pub async fn logout(&self, auth: &SessionAuth, source: &Source) -> Result<(), AuthError> {
        let result = self
            .store
            .revoke_session_by_handle(auth.user.id, &auth.session.handle, self.now_ms())
            .await
            .map(|_| ())
            .map_err(AuthError::from);
        let uid = &auth.user.uid;
        self.audited(
            uid,
            "identity.session.delete",
            &auth.session.handle,
            source,
            result,
        )
        .await
    }

    /// The user's live sessions.
    pub async fn sessions(&self, auth: &SessionAuth) -> Result<Vec<SessionView>, AuthError> {
        let rows = self.store.sessions_of(auth.user.id, self.now_ms()).await?;
        Ok(rows
            .into_iter()
            .map(|row| SessionView {
                current: row.handle == auth.session.handle,
                id: row.handle,
                user_agent: row.user_agent,
                ip: row.source,
                created_at_ms: row.created_at_ms,
                last_seen_ms: row.last_seen_ms,
                expires_at_ms: row.expires_at_ms.min(row.absolute_expires_at_ms),
            })
            .collect())
    }

    /// Revokes one of the user's own sessions by handle; another user's is `SessionNotFound`,
    /// exactly as a handle that does not exist.
    pub async fn revoke_session(
        &self,
        auth: &SessionAuth,
        handle: &str,
        source: &Source,
    ) -> Result<(), AuthError> {
        let revoked = self
            .store
            .revoke_session_by_handle(auth.user.id, handle, self.now_ms())
            .await;
        let result = match revoked {
            Ok(true) => Ok(()),
            Ok(false) => Err(AuthError::SessionNotFound),
            Err(error) => Err(error.into()),
        };
        self.audited(
            &auth.user.uid,
            "identity.session.revoke",
            handle,
            source,
            result,
        )
        .await
    }

    /// Mails a password-reset code to an active user; says nothing about whether the address
    /// is registered.
    pub async fn request_password_reset(
        &self,
        email: &str,
        source: &Source,
    ) -> Result<(), AuthError> {
        let email = normalise_email(email)?;
        let limit = self.config.requests_per_source_max;
        self.rate_limit(&format!("code.ip:{}", source.address), limit)
            .await?;
        let user = self.store.user_by_email(&email).await?;
        let result = match user.filter(|u| u.state == UserState::Active) {
            Some(user) => self.send_code(&user, CodePurpose::Password).await,
            None => Ok(()),
        };
        self.audited(
            "anonymous",
            "identity.password.reset_request",
            &email,
            source,
            result,
        )
        .await
    }

    /// Sets a new password with a mailed reset code; every session of the user ends and the
    /// account's login lockout is lifted.
    pub async fn reset_password(
        &self,
        email: &str,
        code: &str,
        password: &str,
        confirm: &str,
        source: &Source,
    ) -> Result<(), AuthError> {
        let target = email.trim().to_ascii_lowercase();
        let result = self
            .reset_password_inner(&target, code, password, confirm)
            .await;
        self.audited(
            "anonymous",
            "identity.password.reset",
            &target,
            source,
            result,
        )
        .await
    }

    async fn reset_password_inner(
        &self,
        email: &str,
        code: &str,
        password: &str,
        confirm: &str,
    ) -> Result<(), AuthError> {
        let email = normalise_email(email)?;
        password::check_policy(password)?;
        if password != confirm {
            return Err(AuthError::PasswordMismatch);
        }
        let user = self.store.user_by_email(&email).await?;
        let Some(user) = user.filter(|u| u.state == UserState::Active) else {
            return Err(AuthError::InvalidCode);
        };
        self.check_code(&user, CodePurpose::Password, code).await?;
        let phc = self.hash_password(password).await?;
        let now_ms = self.now_ms();
        self.store.set_password_hash(user.id, &phc, now_ms).await?;
        self.store.revoke_sessions_of(user.id, None, now_ms).await?;
        self.store
            .clear_throttle(&format!("login.email:{email}"))
            .await?;
        Ok(())
    }

    /// Changes the password of the request's user; the user's other sessions end. A wrong
    /// current password counts towards the account's login lockout.
    pub async fn change_password(
        &self,
        auth: &SessionAuth,
        old: &str,
        new: &str,
        confirm: &str,
        source: &Source,
    ) -> Result<(), AuthError> {
        let result = self
            .change_password_inner(auth, old, new, confirm, source)
            .await;
        let uid = &auth.user.uid;
        self.audited(uid, "identity.password.change", uid, source, result)
            .await
    }

    async fn change_password_inner(
        &self,
        auth: &SessionAuth,
        old: &str,
        new: &str,
        confirm: &str,
        source: &Source,
    ) -> Result<(), AuthError> {
        password::check_policy(new)?;
        if new != confirm {
            return Err(AuthError::PasswordMismatch);
        }
        if !self.verify_password(old, Some(&auth.user)).await? {
            let email_key = format!("login.email:{}", auth.user.email);
            let address_key = format!("login.ip:{}", source.address);
            self.count_login_failure(&email_key, &address_key).await?;
            return Err(AuthError::WrongPassword);
        }
        let phc = self.hash_password(new).await?;
        let now_ms = self.now_ms();
        self.store
            .set_password_hash(auth.user.id, &phc, now_ms)
            .await?;
        self.store
            .revoke_sessions_of(auth.user.id, Some(&auth.session.digest), now_ms)
            .await?;
        Ok(())
    }

    /// Makes an operator on the host (`peregrine admin create-operator`): active, verified,
    /// with `role`. The only way an operator comes to exist; sign-up makes members only.
    pub async fn create_operator(
        &self,
        email: &str,
        password: &str,
        role: Role,
    ) -> Result<User, AuthError> {
        let source = Source {
            address: "host".to_owned(),
            user_agent: String::new(),
        };
        let target = email.trim().to_ascii_lowercase();
        let result = async {
            let email = normalise_email(email)?;
            password::check_policy(password)?;
            let phc = self.hash_password(password).await?;
            self.insert_user(&email, &phc, role, UserState::Active, 1)
                .await
        }
        .await;
        self.audited("host", "identity.operator.create", &target, &source, result)
            .await
    }
}

/// Milliseconds rounded up to whole seconds (a client told "0 s" would retry at once).
fn ceil_seconds(ms: i64) -> i64 {
    (ms + 999) / 1000
}

/// The longest prefix of `text` of at most `bytes_max` bytes that ends on a character.
fn truncate(text: &str, bytes_max: usize) -> String {
    let mut end = text.len().min(bytes_max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
