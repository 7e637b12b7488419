//! The identity service end to end over HTTP on loopback, against real MariaDB (and SQLite)
//! and a real SMTP server (aiosmtpd, provisioned by `scripts/test`): the user life cycle and
//! the attacks it must refuse, each with a typed error and no state change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use peregrine_auth::audit::{self, BrokenReason, ChainStatus};
use peregrine_auth::mail::MailConfig;
use peregrine_auth::{Clock, Identity, IdentityConfig, Role, Store, UserState};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

mod second_factor_support;
use second_factor_support as support;

use support::{PASSWORD, email, mailed_code, mysql_url, required_env};

struct Harness {
    identity: Arc<Identity>,
    clock: Clock,
    base: String,
    http: reqwest::Client,
    registry: prometheus::Registry,
    database_url: String,
    _dir: Option<tempfile::TempDir>,
}

enum Backend {
    MySql(&'static str),
    Sqlite,
}

async fn start(backend: Backend, tune: impl FnOnce(&mut IdentityConfig)) -> Harness {
    let (database_url, dir) = match backend {
        Backend::MySql(suffix) => (mysql_url(suffix).await, None),
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("identity.db").display());
            (url, Some(dir))
        }
    };
    let store = Store::open(&database_url).await.unwrap();
    let mut config = IdentityConfig::default();
    config.cookie_secure = false;
    config.mail = Some(MailConfig::new(
        required_env("SMTP_ADDR"),
        "noreply@peregrine.test",
    ));
    tune(&mut config);
    config.validate().unwrap();
    let clock = Clock::manual(1_796_432_523_000);
    let registry = prometheus::Registry::new();
    let identity = Arc::new(Identity::new(store, config, clock.clone(), &registry).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = peregrine_auth::http::router(identity.clone())
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    Harness {
        identity,
        clock,
        base: format!("http://{addr}/api/v2/barong"),
        http,
        registry,
        database_url,
        _dir: dir,
    }
}

/// An answer: status and JSON body.
struct Answer {
    status: StatusCode,
    body: Value,
    set_cookie: Option<String>,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["errors"][0].as_str().unwrap_or("")
    }
}

/// A logged-in client's credentials.
#[derive(Clone)]
struct Session {
    cookie: String,
    csrf: String,
}

impl Harness {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        session: Option<&Session>,
        csrf: Option<&str>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(session) = session {
            request = request.header("Cookie", format!("peregrine_session={}", session.cookie));
        }
        if let Some(csrf) = csrf {
            request = request.header("X-CSRF-Token", csrf);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            set_cookie,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call("POST", path, Some(body), None, None).await
    }

    async fn login(&self, email: &str, password: &str) -> Answer {
        self.post(
            "/identity/sessions",
            json!({"email": email, "password": password}),
        )
        .await
    }

    async fn login_ok(&self, email: &str, password: &str) -> Session {
        let answer = self.login(email, password).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        session_of(&answer)
    }

    /// Signs up and verifies `email`; its session.
    async fn verified_user(&self, email: &str) -> Session {
        let answer = self
            .post(
                "/identity/users",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let code = mailed_code(email, "confirm your e-mail").await;
        let answer = self
            .post(
                "/identity/users/email/confirm_code",
                json!({"email": email, "token": code}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        self.login_ok(email, PASSWORD).await
    }

    async fn me(&self, session: &Session) -> Answer {
        self.call("GET", "/resource/users/me", None, Some(session), None)
            .await
    }

    async fn user_state(&self, email: &str) -> UserState {
        let store = self.identity.store();
        store.user_by_email(email).await.unwrap().unwrap().state
    }
}

fn session_of(answer: &Answer) -> Session {
    let cookie = answer.set_cookie.as_deref().expect("a Set-Cookie");
    let id = cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("peregrine_session=")
        .unwrap()
        .to_owned();
    Session {
        cookie: id,
        csrf: answer.body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

/// Count of mails to `to` received so far.
fn mails_to(to: &str) -> usize {
    let dir = PathBuf::from(required_env("SMTP_MAIL_DIR"));
    ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains(&format!("To: <{to}>"))
        })
        .count()
}

async fn life_cycle(harness: &Harness) {
    let email = email("alice");
    let answer = harness
        .post(
            "/identity/users",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["state"], "pending");
    assert_eq!(answer.body["role"], "member");
    // Not verified yet: no login.
    let answer = harness.login(&email, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "identity.session.not_active");
    assert!(answer.set_cookie.is_none());
    let code = mailed_code(&email, "confirm your e-mail").await;
    // A wrong code changes nothing.
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let answer = harness
        .post(
            "/identity/users/email/confirm_code",
            json!({"email": email, "token": wrong}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "identity.user.invalid_code");
    assert_eq!(harness.user_state(&email).await, UserState::Pending);
    let answer = harness
        .post(
            "/identity/users/email/confirm_code",
            json!({"email": email, "token": code}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["state"], "active");
    assert_eq!(answer.body["level"], 1);
    let account = answer.body["account_id"].as_u64().unwrap();
    assert!(account >= 1024, "{account}");
    // The code is single use.
    let again = harness
        .post(
            "/identity/users/email/confirm_code",
            json!({"email": email, "token": code}),
        )
        .await;
    assert_eq!(again.code(), "identity.user.invalid_code");

    let answer = harness.login(&email, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let cookie = answer.set_cookie.clone().unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/api/v2"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let session = session_of(&answer);
    let me = harness.me(&session).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["account_id"].as_u64(), Some(account));
    let sessions = harness
        .call("GET", "/resource/sessions", None, Some(&session), None)
        .await;
    assert_eq!(sessions.body.as_array().unwrap().len(), 1);
    assert_eq!(sessions.body[0]["current"], true);
    let out = harness
        .call(
            "DELETE",
            "/identity/sessions",
            None,
            Some(&session),
            Some(&session.csrf),
        )
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(harness.me(&session).await.code(), "authz.invalid_session");
    // The account mapping is durable: a second login shows the same account.
    let session = harness.login_ok(&email, PASSWORD).await;
    assert_eq!(
        harness.me(&session).await.body["account_id"].as_u64(),
        Some(account)
    );
    // Metrics were counted by route template.
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&harness.registry.gather())
        .unwrap();
    assert!(
        text.contains(
            "auth_requests_total{route=\"/api/v2/barong/identity/sessions\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(text.contains("auth_logins_total{outcome=\"ok\"}"));
    // And every step is in an intact audit chain.
    let status = audit::verify(harness.identity.store()).await.unwrap();
    assert!(
        matches!(status, ChainStatus::Intact { records } if records >= 8),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_new_user_signs_up_verifies_and_logs_in_on_mariadb() {
    let harness = start(Backend::MySql("life_cycle"), |_| {}).await;
    life_cycle(&harness).await;
}

#[tokio::test]
async fn a_new_user_signs_up_verifies_and_logs_in_on_sqlite() {
    let harness = start(Backend::Sqlite, |_| {}).await;
    life_cycle(&harness).await;
}

#[tokio::test]
async fn brute_force_login_locks_the_account_then_the_address() {
    let harness = start(Backend::MySql("lockout"), |c| {
        c.login_failures_per_account_max = 5;
        c.login_failures_per_address_max = 8;
    })
    .await;
    let victim = email("victim");
    harness.verified_user(&victim).await;
    for _ in 0..5 {
        let answer = harness.login(&victim, "wrong password!").await;
        assert_eq!(answer.code(), "identity.session.invalid_login_params");
    }
    // Locked: even the right password opens no session.
    let answer = harness.login(&victim, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.code(), "identity.session.locked_out");
    assert!(answer.set_cookie.is_none());
    let user = harness
        .identity
        .store()
        .user_by_email(&victim)
        .await
        .unwrap()
        .unwrap();
    let live = harness
        .identity
        .store()
        .sessions_of(user.id, harness.identity.now_ms())
        .await
        .unwrap();
    assert_eq!(live.len(), 1, "only the session from before the attack");
    // Past the lockout the owner gets in.
    harness
        .clock
        .advance_ms(harness.identity.config().lockout_ms + 1);
    harness.login_ok(&victim, PASSWORD).await;
    // Spraying other accounts from one address locks the address out.
    for n in 0..8 {
        let answer = harness
            .login(&email(&format!("spray{n}")), "wrong password!")
            .await;
        assert_eq!(answer.code(), "identity.session.invalid_login_params");
    }
    let answer = harness.login(&victim, PASSWORD).await;
    assert_eq!(answer.code(), "identity.session.locked_out");
}

#[tokio::test]
async fn login_never_keeps_a_session_id_the_client_brought() {
    let harness = start(Backend::MySql("fixation"), |_| {}).await;
    let attacker = email("attacker");
    let victim = email("fixated");
    let planted = harness.verified_user(&attacker).await;
    harness.verified_user(&victim).await;
    // The victim logs in with the attacker's session cookie planted in the browser.
    let answer = harness
        .call(
            "POST",
            "/identity/sessions",
            Some(json!({"email": victim, "password": PASSWORD})),
            Some(&planted),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let fresh = session_of(&answer);
    assert_ne!(fresh.cookie, planted.cookie);
    assert_eq!(harness.me(&fresh).await.body["email"], victim.as_str());
    // The planted id is dead: it can neither act as the victim nor as the attacker.
    assert_eq!(harness.me(&planted).await.code(), "authz.invalid_session");
    // A made-up id is never adopted either.
    let made_up = Session {
        cookie: "ab".repeat(32),
        csrf: String::new(),
    };
    assert_eq!(harness.me(&made_up).await.code(), "authz.invalid_session");
}

#[tokio::test]
async fn a_state_change_without_the_csrf_token_is_refused() {
    let harness = start(Backend::MySql("csrf"), |_| {}).await;
    let email = email("csrf");
    let session = harness.verified_user(&email).await;
    let change = json!({
        "old_password": PASSWORD, "new_password": "a brand new password", "confirm_password": "a brand new password"
    });
    let answer = harness
        .call(
            "PUT",
            "/resource/users/password",
            Some(change.clone()),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "authz.missing_csrf_token");
    let forged = "0".repeat(64);
    let answer = harness
        .call(
            "PUT",
            "/resource/users/password",
            Some(change.clone()),
            Some(&session),
            Some(&forged),
        )
        .await;
    assert_eq!(answer.code(), "authz.csrf_token_mismatch");
    let answer = harness
        .call("DELETE", "/identity/sessions", None, Some(&session), None)
        .await;
    assert_eq!(answer.code(), "authz.missing_csrf_token");
    // Nothing changed: the old password and the session still work.
    assert_eq!(harness.me(&session).await.status, StatusCode::OK);
    harness.login_ok(&email, PASSWORD).await;
    // With the token it goes through.
    let answer = harness
        .call(
            "PUT",
            "/resource/users/password",
            Some(change),
            Some(&session),
            Some(&session.csrf),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    harness.login_ok(&email, "a brand new password").await;
}

#[tokio::test]
async fn a_user_cannot_revoke_another_users_session() {
    let harness = start(Backend::MySql("revoke"), |_| {}).await;
    let a = harness.verified_user(&email("usera")).await;
    let b = harness.verified_user(&email("userb")).await;
    let listed = harness
        .call("GET", "/resource/sessions", None, Some(&b), None)
        .await;
    let b_handle = listed.body[0]["id"].as_str().unwrap().to_owned();
    let answer = harness
        .call(
            "DELETE",
            &format!("/resource/sessions/{b_handle}"),
            None,
            Some(&a),
            Some(&a.csrf),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "resource.session.not_found");
    assert_eq!(
        harness.me(&b).await.status,
        StatusCode::OK,
        "B's session survives"
    );
    // B revokes its own.
    let answer = harness
        .call(
            "DELETE",
            &format!("/resource/sessions/{b_handle}"),
            None,
            Some(&b),
            Some(&b.csrf),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(harness.me(&b).await.code(), "authz.invalid_session");
    assert_eq!(harness.me(&a).await.status, StatusCode::OK);
}

#[tokio::test]
async fn sessions_slide_until_idle_or_absolute_expiry() {
    let harness = start(Backend::MySql("expiry"), |c| {
        c.session_idle_ms = 30 * 60_000;
        c.session_absolute_ms = 2 * 60 * 60_000;
    })
    .await;
    let config = harness.identity.config().clone();
    let address = email("slider");
    let session = harness.verified_user(&address).await;
    // Used just inside the idle limit, again and again: alive past the first idle expiry.
    let step = config.session_idle_ms - config.session_touch_interval_ms - 1;
    for _ in 0..3 {
        harness.clock.advance_ms(step);
        assert_eq!(harness.me(&session).await.status, StatusCode::OK);
    }
    // Idle too long: gone.
    harness.clock.advance_ms(config.session_idle_ms);
    assert_eq!(harness.me(&session).await.code(), "authz.invalid_session");
    // However busy, a session ends at its absolute expiry.
    let busy = harness.login_ok(&address, PASSWORD).await;
    let mut used_ms = 0;
    while used_ms + step < config.session_absolute_ms {
        harness.clock.advance_ms(step);
        used_ms += step;
        assert_eq!(
            harness.me(&busy).await.status,
            StatusCode::OK,
            "at {used_ms} ms"
        );
    }
    harness.clock.advance_ms(step);
    assert_eq!(harness.me(&busy).await.code(), "authz.invalid_session");
}

#[tokio::test]
async fn a_disabled_users_session_stops_working() {
    let harness = start(Backend::MySql("disabled"), |_| {}).await;
    let email = email("disabled");
    let session = harness.verified_user(&email).await;
    let user = harness
        .identity
        .store()
        .user_by_email(&email)
        .await
        .unwrap()
        .unwrap();
    harness
        .identity
        .store()
        .set_user_state(user.id, UserState::Disabled, harness.identity.now_ms())
        .await
        .unwrap();
    assert_eq!(harness.me(&session).await.code(), "authz.invalid_session");
    assert_eq!(
        harness.login(&email, PASSWORD).await.code(),
        "identity.session.banned"
    );
}

#[tokio::test]
async fn a_password_reset_ends_every_session_and_codes_cannot_be_guessed() {
    let harness = start(Backend::MySql("reset"), |c| c.code_attempts_max = 3).await;
    let email = email("reset");
    let session = harness.verified_user(&email).await;
    let answer = harness
        .post(
            "/identity/users/password/generate_code",
            json!({"email": email}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let code = mailed_code(&email, "reset your password").await;
    let reset = |token: &str| {
        json!({"email": email, "reset_password_token": token,
               "password": "another good password", "confirm_password": "another good password"})
    };
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..3 {
        let answer = harness
            .post("/identity/users/password/confirm_code", reset(wrong))
            .await;
        assert_eq!(answer.code(), "identity.user.invalid_code");
    }
    // Three wrong guesses void the code: the right one no longer works.
    let answer = harness
        .post("/identity/users/password/confirm_code", reset(&code))
        .await;
    assert_eq!(answer.code(), "identity.user.invalid_code");
    assert_eq!(harness.me(&session).await.status, StatusCode::OK);
    harness.login_ok(&email, PASSWORD).await;
    // A fresh code works once, and ends every session.
    let mails_before = mails_to(&email);
    harness
        .post(
            "/identity/users/password/generate_code",
            json!({"email": email}),
        )
        .await;
    while mails_to(&email) == mails_before {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let code = mailed_code(&email, "reset your password").await;
    let answer = harness
        .post("/identity/users/password/confirm_code", reset(&code))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(harness.me(&session).await.code(), "authz.invalid_session");
    assert_eq!(
        harness.login(&email, PASSWORD).await.code(),
        "identity.session.invalid_login_params"
    );
    harness.login_ok(&email, "another good password").await;
    // The code worked once: used again, it is refused.
    let answer = harness
        .post("/identity/users/password/confirm_code", reset(&code))
        .await;
    assert_eq!(answer.code(), "identity.user.invalid_code");
    // Unknown addresses get the same answer as known ones, and no mail.
    let unknown = email.replace("reset", "nobody");
    let answer = harness
        .post(
            "/identity/users/password/generate_code",
            json!({"email": unknown}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(mails_to(&unknown), 0);
}

#[tokio::test]
async fn audit_verification_names_the_first_tampered_record() {
    let harness = start(Backend::MySql("audit"), |_| {}).await;
    harness.verified_user(&email("audited")).await;
    harness.login(&email("nobody"), "wrong password!").await;
    let store = harness.identity.store();
    let ChainStatus::Intact { records } = audit::verify(store).await.unwrap() else {
        panic!("a fresh chain is intact");
    };
    assert!(records >= 4, "{records}");
    let rows = store.audit_page(0, 100).await.unwrap();
    assert!(
        rows.iter()
            .any(|r| r.entry.outcome == audit::Outcome::Denied
                && r.entry.code == "identity.session.invalid_login_params")
    );
    let mut db = sqlx::MySqlConnection::connect(&harness.database_url)
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET actor = 'someone else' WHERE seq = 3")
        .execute(&mut db)
        .await
        .unwrap();
    assert_eq!(
        audit::verify(store).await.unwrap(),
        ChainStatus::Broken {
            seq: 3,
            reason: BrokenReason::HashMismatch
        }
    );
    sqlx::query("DELETE FROM audit WHERE seq = 3")
        .execute(&mut db)
        .await
        .unwrap();
    assert_eq!(
        audit::verify(store).await.unwrap(),
        ChainStatus::Broken {
            seq: 3,
            reason: BrokenReason::Gap
        }
    );
}

#[tokio::test]
async fn operators_are_made_on_the_host_never_by_sign_up() {
    let harness = start(Backend::MySql("operator"), |_| {}).await;
    // The first user to sign up is a member like any other.
    let first = email("first");
    harness.verified_user(&first).await;
    let first = harness
        .identity
        .store()
        .user_by_email(&first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.role, Role::Member);
    let operator = harness
        .identity
        .create_operator(&email("ops"), PASSWORD, Role::Superadmin)
        .await
        .unwrap();
    assert_eq!(operator.role, Role::Superadmin);
    assert_eq!(operator.state, UserState::Active);
}

#[tokio::test]
async fn code_mails_are_rate_limited_per_address() {
    let harness = start(Backend::MySql("mail_limit"), |c| {
        c.mails_per_address_max = 3
    })
    .await;
    let email = email("limited");
    let answer = harness
        .post(
            "/identity/users",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    mailed_code(&email, "confirm your e-mail").await;
    let resend = || {
        harness.post(
            "/identity/users/email/generate_code",
            json!({"email": email}),
        )
    };
    assert_eq!(resend().await.status, StatusCode::CREATED);
    assert_eq!(resend().await.status, StatusCode::CREATED);
    // A fourth mail within the window is refused, and none is sent.
    let answer = resend().await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    assert_eq!(answer.code(), "identity.rate_limited");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mails_to(&email), 3);
    // After the window, mail flows again.
    harness
        .clock
        .advance_ms(harness.identity.config().failure_window_ms + 1);
    assert_eq!(resend().await.status, StatusCode::CREATED);
}
