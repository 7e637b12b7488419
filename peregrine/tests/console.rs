//! The operator console (`/console`) and the control routes it uses, against `peregrine up` with
//! identity and the wallet store on real MariaDB (databases of this test's own), TOTP and
//! token signing on the real OpenBao, and the console in real Chromium (Debian's, driven by npm
//! playwright-core; CHROMIUM_BIN and PLAYWRIGHT_CORE_DIR).
//!
//! The browser scenario (`tests/browser/console.mjs`): a superadmin logs in with e-mail,
//! password and TOTP code, halts and resumes a market, approves a withdrawal request that a
//! second operator (an accountant) asked for above the approval threshold and an adjustment
//! that the accountant proposed — neither of which the accountant may approve (refused here
//! over HTTP first) — finds the four actions in the audit log page, whose chain verifies, and
//! the credited amount in the Reports page's liabilities (table and CSV download).
//! Screenshots go to `<CARGO_TARGET_TMPDIR>/console/`.
//!
//! The withdrawal request is recorded in the wallet store as the REST bridge records one (the
//! store's `request_withdrawal`, under a policy that wants one approval above 0.1 eth): the
//! bridge's own path (a user with 2FA and KYC, an active beneficiary, the daemon's hot wallet
//! on a chain) is `tests/wallets.rs`'s; here only the review matters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use peregrine_hotpath::{AccountId, CurrencyId};
use peregrine_wallet::chain::Address;
use peregrine_wallet::keys::DerivationPath;
use peregrine_wallet::policy::{CurrencyPolicy, WithdrawPolicy};
use peregrine_wallet::requests::WithdrawRequest;
use peregrine_wallet::store::WalletStore;
use reqwest::Method;
use serde_json::{Value, json};
use support::identity::{
    PASSWORD, Session, enable_2fa, env, identity_section, log_in, new_verified_user, now_s, send,
    totp, unique,
};
use support::{FreshDatabase, Up, http_client, write_config};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The whole browser scenario, start to screenshots (a TOTP period may be waited out).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// The account the withdrawal and the adjustment are for.
const ACCOUNT: u32 = 42;
/// The embedded catalog's ether: id 2, 9 decimal places (chain: 18).
const ETH: CurrencyId = CurrencyId(2);
const ETH_CHAIN_PER_MINOR: u128 = 1_000_000_000;

/// `up` with identity (MariaDB `identity`, real OpenBao, real SMTP) and the wallets on
/// (MariaDB `wallets`, ether).
fn config(dir: &Path, identity: &FreshDatabase, wallets: &FreshDatabase) {
    let auth = identity_section(dir).replacen(
        "[auth]\n",
        &format!("[auth]\ndatabase_url = \"{}\"\n", identity.url),
        1,
    );
    let wallets = format!(
        "\n[wallets]\nenabled = true\nstore_url = \"{}\"\n\n[[wallets.currencies]]\n\
         code = \"eth\"\ndecimals = 18\nconfirmations = 1\n",
        wallets.url
    );
    write_config(dir, &[], &format!("{auth}{wallets}"));
}

/// An operator made on the host, with 2FA on.
struct Operator {
    email: String,
    uid: String,
    otp_url: String,
    /// The TOTP period (Unix s / 30) whose code enabling 2FA spent.
    spent_period: i64,
}

async fn operator(up: &Up, dir: &Path, store_url: &str, role: &str) -> Operator {
    let email = format!("{}@example.com", unique(role));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .env_clear()
        .env("PEREGRINE_OPERATOR_PASSWORD", PASSWORD)
        .current_dir(dir)
        .args([
            "admin",
            "create-operator",
            "--email",
            &email,
            "--role",
            role,
        ])
        .args(["--database-url", store_url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let session = log_in(&up.rest, &json!({ "email": email, "password": PASSWORD })).await;
    let (status, me) = session
        .call(Method::GET, "/resource/users/me", &json!({}))
        .await;
    assert_eq!(status, 200, "{me}");
    let spent_period = now_s() / 30;
    let otp_url = enable_2fa(&session).await;
    Operator {
        email,
        uid: me["uid"].as_str().unwrap().to_owned(),
        otp_url,
        spent_period,
    }
}

/// A code of `operator`'s that no earlier login or enrolment spent (OpenBao takes a code once):
/// waits for the next period when the current one's code was used, and for a period with
/// enough left to be typed and checked.
async fn fresh_code(operator: &mut Operator) -> String {
    loop {
        let now = now_s();
        if now / 30 > operator.spent_period && now % 30 < 20 {
            operator.spent_period = now / 30;
            return totp(&operator.otp_url, 0);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `POST /control/v1/login` over HTTP; status and body.
async fn control_login(up: &Up, body: &Value) -> (u16, Value) {
    let request = http_client()
        .post(format!("{}/control/v1/login", up.http))
        .json(body);
    let (status, body, _) = send(request).await;
    (status, body)
}

/// An operator's access token from the control API's login.
async fn token(up: &Up, operator: &mut Operator) -> String {
    let code = fresh_code(operator).await;
    let credentials = json!({ "email": operator.email, "password": PASSWORD, "otp_code": code });
    let (status, body) = control_login(up, &credentials).await;
    assert_eq!(status, 200, "login: {body}");
    assert_eq!(body["uid"], operator.uid.as_str());
    body["token"].as_str().unwrap().to_owned()
}

/// `method path` on the control API with `token`; status and body.
async fn control(
    up: &Up,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http_client()
        .request(method, format!("{}{path}", up.http))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let (status, body, _) = send(request).await;
    (status, body)
}

/// Records a withdrawal of 0.5 eth from [`ACCOUNT`] asked for by `requester`, above the policy's
/// approval threshold (0.1 eth, `approvals` approvals): `awaiting_approval`. Its id.
async fn awaiting_withdrawal(store_url: &str, requester: &str, approvals: u8) -> u64 {
    let store = WalletStore::open(store_url).await.unwrap();
    let hot = Address::parse_eth("0x90f8bf6a479f320ead074411a4b0e7944ea8c9c1").unwrap();
    let payee = Address::parse_eth("0xffcf8fdee72ac11b5c542428b35eef5769c409f0").unwrap();
    store
        .set_hot_wallet("eth", "eth", &hot, &DerivationPath::hot(60).unwrap())
        .await
        .unwrap();
    let now_ms = now_s() * 1000;
    let beneficiary = store
        .add_beneficiary(AccountId(ACCOUNT), "eth", "cold storage", &payee, now_ms, 0)
        .await
        .unwrap();
    let rules = CurrencyPolicy {
        limit_24h_minor: 10_000_000_000,
        limit_30d_minor: 10_000_000_000,
        approval_above_minor: 100_000_000,
        approvals_required: approvals,
    };
    let policy = WithdrawPolicy::deny_all().with("eth", rules).unwrap();
    let request = WithdrawRequest {
        account: AccountId(ACCOUNT),
        requested_by: requester.to_owned(),
        currency: "eth".to_owned(),
        currency_id: ETH,
        amount_minor: 500_000_000,
        chain_per_minor: ETH_CHAIN_PER_MINOR,
        beneficiary_id: beneficiary.id,
        now_ms,
    };
    let recorded = store
        .request_withdrawal("eth", &policy, &request)
        .await
        .unwrap();
    assert_eq!(recorded.state.name(), "awaiting_approval");
    store.close().await;
    recorded.id
}

/// Answers one `ASK ...` line of the browser script.
async fn answer(words: &[&str], operator: &mut Operator) -> String {
    match words {
        ["otp"] => fresh_code(operator).await,
        other => format!("ERR unknown request {other:?}"),
    }
}

/// Runs `tests/browser/console.mjs` with `env`, answering its requests; panics unless it ends
/// with `DONE` and exit 0.
async fn run_browser_scenario(env_vars: &[(&str, String)], operator: &mut Operator) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console.mjs");
    let mut command = tokio::process::Command::new("node");
    command
        .arg(&script)
        .env("PLAYWRIGHT_CORE_DIR", env("PLAYWRIGHT_CORE_DIR"))
        .env("CHROMIUM_BIN", env("CHROMIUM_BIN"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (name, value) in env_vars {
        command.env(name, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node {}: {e}", script.display()));
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
    let mut done = false;
    while let Some(line) = tokio::time::timeout_at(deadline, lines.next_line())
        .await
        .expect("the browser scenario took too long")
        .unwrap()
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.split_first() {
            Some((&"ASK", request)) => {
                let reply = answer(request, operator).await;
                stdin
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .unwrap();
            }
            Some((&"DONE", _)) => done = true,
            _ => eprintln!("[console.mjs stdout] {line}"),
        }
    }
    let status = tokio::time::timeout_at(deadline, child.wait())
        .await
        .expect("the browser did not exit")
        .unwrap();
    assert!(
        status.success() && done,
        "the browser scenario failed: {status}"
    );
}

/// The console's line in `up`'s summary.
fn console_url(up: &Up) -> String {
    up.lines
        .iter()
        .find_map(|l| l.strip_prefix("console  "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no console line: {:?}", up.lines))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reviews_on_the_console_what_a_second_operator_proposed() {
    let dir = tempfile::tempdir().unwrap();
    let identity_db = FreshDatabase::new("console_identity");
    let wallets_db = FreshDatabase::new("console_wallets");
    config(dir.path(), &identity_db, &wallets_db);
    let up = Up::start(dir.path());
    let mut admin = operator(&up, dir.path(), &identity_db.url, "superadmin").await;
    let mut accountant = operator(&up, dir.path(), &identity_db.url, "accountant").await;

    // The accountant proposes a credit and asks for a withdrawal; may approve neither.
    let accountant_token = token(&up, &mut accountant).await;
    let proposal = json!({ "account": ACCOUNT, "currency": "usd", "amount": "250",
        "reason": "refund of ticket 4711" });
    let (status, adjustment) = control(
        &up,
        &accountant_token,
        Method::POST,
        "/control/v1/adjustments",
        Some(proposal),
    )
    .await;
    assert_eq!(status, 201, "{adjustment}");
    let adjustment = adjustment["id"].as_i64().unwrap();
    let withdrawal = awaiting_withdrawal(&wallets_db.url, &accountant.uid, 1).await;
    let own = format!("/control/v1/withdrawal-requests/{withdrawal}/approve");
    let (status, body) = control(&up, &accountant_token, Method::POST, &own, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("control.withdrawal_request.own_request")),
        "{body}"
    );
    let own = format!("/control/v1/adjustments/{adjustment}/approve");
    let (status, body) = control(&up, &accountant_token, Method::POST, &own, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("control.adjustment.own_proposal")),
        "{body}"
    );

    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&out_dir).unwrap();
    let vars = [
        ("CONSOLE_URL", console_url(&up)),
        ("OUT_DIR", out_dir.display().to_string()),
        ("EMAIL", admin.email.clone()),
        ("UID", admin.uid.clone()),
        ("WITHDRAWAL", withdrawal.to_string()),
        ("ADJUSTMENT", adjustment.to_string()),
    ];
    run_browser_scenario(&vars, &mut admin).await;
    for name in [
        "console-status.png",
        "console-withdrawals.png",
        "console-audit.png",
        "console-reports.png",
    ] {
        let size = std::fs::metadata(out_dir.join(name)).unwrap().len();
        assert!(size > 10_000, "{name} is {size} bytes");
    }

    // What the page showed is what the stores hold.
    let store = WalletStore::open(&wallets_db.url).await.unwrap();
    let reviewed = store
        .withdrawal_for_review(withdrawal)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reviewed.state.name(), "approved");
    assert_eq!(reviewed.approvers, vec![admin.uid.clone()]);
    store.close().await;
    let admin_token = token(&up, &mut admin).await;
    let path = "/control/v1/adjustments?state=approved";
    let (status, approved) = control(&up, &admin_token, Method::GET, path, None).await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved[0]["id"], adjustment);
    assert_eq!(approved[0]["reviewer"], admin.uid.as_str());
    let status = up.control_status().await;
    assert_eq!(status["markets"][0]["state"], "enabled", "{status}");
    up.stop();
}

/// The error code of a control answer.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_routes_refuse_members_missing_permissions_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let identity_db = FreshDatabase::new("console_refusals");
    let wallets_db = FreshDatabase::new("console_refusals_wallets");
    config(dir.path(), &identity_db, &wallets_db);
    let up = Up::start(dir.path());
    let mut admin = operator(&up, dir.path(), &identity_db.url, "superadmin").await;
    let mut technical = operator(&up, dir.path(), &identity_db.url, "technical").await;
    let email = format!("{}@example.com", unique("member"));
    let (member, _, member_uid) = new_verified_user(&up.rest, &email).await;

    // A member: no console login, and its own access token opens no console route.
    let credentials = json!({ "email": email, "password": PASSWORD });
    let (status, body) = control_login(&up, &credentials).await;
    assert_eq!(
        (status, code(&body)),
        (403, "control.auth.not_operator"),
        "{body}"
    );
    let (status, body) = member.post("/resource/tokens", &json!({})).await;
    assert_eq!(status, 201, "{body}");
    let member_token = body["token"].as_str().unwrap().to_owned();
    let admin_token = token(&up, &mut admin).await;
    let technical_token = token(&up, &mut technical).await;
    let reads = [
        "/control/v1/audit",
        "/control/v1/audit/verify",
        "/control/v1/withdrawal-requests",
        "/control/v1/users?email=",
        "/control/v1/orders?account=1",
    ];
    for path in reads {
        let (status, body) = control(&up, &member_token, Method::GET, path, None).await;
        assert_eq!(
            (status, code(&body)),
            (403, "control.auth.not_operator"),
            "{path}"
        );
        // `technical` halts markets; it reads no audit, users, withdrawals or accounts.
        let (status, body) = control(&up, &technical_token, Method::GET, path, None).await;
        assert_eq!(
            (status, code(&body)),
            (403, "control.auth.forbidden"),
            "{path}: {body}"
        );
    }
    let lock = format!("/control/v1/users/{member_uid}/lock");
    let (status, body) = control(&up, &technical_token, Method::POST, &lock, None).await;
    assert_eq!(
        (status, code(&body)),
        (403, "control.auth.forbidden"),
        "{body}"
    );

    bad_input_is_a_typed_error(&up, &admin_token).await;
    one_review_per_operator(&up, &admin_token, &wallets_db.url, &member_uid).await;
    lock_ends_sessions_and_unlock_lets_the_user_back(&up, &admin_token, &email, &member_uid).await;
    audit_filters_and_verification(&up, &admin_token, &technical.uid, &identity_db.url).await;
    up.stop();
}

/// Malformed ids and filters: 400 `control.request.malformed`; unknown ones 404; nothing
/// changes.
async fn bad_input_is_a_typed_error(up: &Up, token: &str) {
    let cases: [(Method, &str, u16, &str); 14] = [
        (
            Method::GET,
            "/control/v1/audit?outcome=maybe",
            400,
            "control.request.malformed",
        ),
        (
            Method::GET,
            "/control/v1/audit?limit=0",
            400,
            "control.request.malformed",
        ),
        (
            Method::GET,
            "/control/v1/audit?limit=many",
            400,
            "control.request.malformed",
        ),
        (
            Method::GET,
            "/control/v1/audit?action=rbac%25",
            400,
            "control.request.malformed",
        ),
        (
            Method::GET,
            "/control/v1/withdrawal-requests?state=lost",
            400,
            "control.request.malformed",
        ),
        (
            Method::POST,
            "/control/v1/withdrawal-requests/abc/approve",
            400,
            "control.request.malformed",
        ),
        (
            Method::POST,
            "/control/v1/withdrawal-requests/1/frobnicate",
            400,
            "control.request.malformed",
        ),
        (
            Method::POST,
            "/control/v1/withdrawal-requests/999999/approve",
            404,
            "control.withdrawal_request.doesnt_exist",
        ),
        (
            Method::GET,
            "/control/v1/users?email=a_b",
            400,
            "control.request.malformed",
        ),
        (
            Method::POST,
            "/control/v1/users/IDNOSUCHUSER/lock",
            404,
            "control.user.doesnt_exist",
        ),
        (
            Method::GET,
            "/control/v1/orders",
            400,
            "control.request.malformed",
        ),
        (
            Method::GET,
            "/control/v1/orders?account=1&from_ms=5&to_ms=1",
            400,
            "control.request.malformed",
        ),
        (
            Method::GET,
            "/control/v1/trades?account=1&market=nope",
            404,
            "control.market.doesnt_exist",
        ),
        (
            Method::GET,
            "/control/v1/trades?account=1&limit=100000",
            400,
            "control.request.malformed",
        ),
    ];
    for (method, path, status, wanted) in cases {
        let (got, body) = control(up, token, method.clone(), path, None).await;
        assert_eq!(
            (got, code(&body)),
            (status, wanted),
            "{method} {path}: {body}"
        );
    }
    // A good search answers, empty: the account never traded.
    let (status, body) =
        control(up, token, Method::GET, "/control/v1/orders?account=1", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([]));
}

/// A rejected request never moves and takes no other review; an operator reviews a request
/// once (a second approval or a rejection after an approval is refused, nothing changes).
async fn one_review_per_operator(up: &Up, token: &str, store_url: &str, requester: &str) {
    let review = |id: u64, action: &str| format!("/control/v1/withdrawal-requests/{id}/{action}");
    let rejected = awaiting_withdrawal(store_url, requester, 1).await;
    let (status, body) = control(up, token, Method::POST, &review(rejected, "reject"), None).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("rejected")),
        "{body}"
    );
    let (status, body) = control(up, token, Method::POST, &review(rejected, "approve"), None).await;
    assert_eq!(
        (status, code(&body)),
        (409, "control.withdrawal_request.not_awaiting_approval"),
        "{body}"
    );
    let path = "/control/v1/withdrawal-requests?state=rejected";
    let (status, list) = control(up, token, Method::GET, path, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list[0]["id"], rejected, "{list}");
    assert_eq!(list[0]["amount"], "0.5", "{list}");

    let two = awaiting_withdrawal(store_url, requester, 2).await;
    let (status, body) = control(up, token, Method::POST, &review(two, "approve"), None).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("awaiting_approval")),
        "{body}"
    );
    for action in ["approve", "reject"] {
        let (status, body) = control(up, token, Method::POST, &review(two, action), None).await;
        assert_eq!(
            (status, code(&body)),
            (409, "control.withdrawal_request.already_reviewed"),
            "{action}: {body}"
        );
    }
    let path = "/control/v1/withdrawal-requests";
    let (_, list) = control(up, token, Method::GET, path, None).await;
    let waiting = list
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == two)
        .unwrap();
    assert_eq!(
        waiting["approvers"].as_array().unwrap().len(),
        1,
        "{waiting}"
    );
}

/// A lock revokes the user's sessions and refuses its logins; an unlock lets it log in again;
/// an operator lists and revokes a session.
async fn lock_ends_sessions_and_unlock_lets_the_user_back(
    up: &Up,
    token: &str,
    email: &str,
    uid: &str,
) {
    let found = format!("/control/v1/users?email={}", &email[..12]);
    let (status, users) = control(up, token, Method::GET, &found, None).await;
    assert_eq!(status, 200, "{users}");
    assert_eq!(users[0]["uid"], uid, "{users}");
    assert_eq!(users[0]["state"], "active");
    let credentials = json!({ "email": email, "password": PASSWORD });
    let session = log_in(&up.rest, &credentials).await;
    let (status, body) = control(
        up,
        token,
        Method::POST,
        &format!("/control/v1/users/{uid}/lock"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "locked");
    assert!(body["sessions_revoked"].as_u64().unwrap() >= 2, "{body}");
    let (status, _) = session
        .call(Method::GET, "/resource/users/me", &json!({}))
        .await;
    assert_eq!(status, 401, "a locked user's session is over");
    let (status, body, _) = send(
        http_client()
            .post(format!("{}/api/v2/barong/identity/sessions", up.rest))
            .json(&credentials),
    )
    .await;
    assert_eq!(status, 403, "a locked user cannot log in: {body}");
    let again = format!("/control/v1/users/{uid}/lock");
    let (status, body) = control(up, token, Method::POST, &again, None).await;
    assert_eq!(
        (status, code(&body)),
        (409, "control.user.wrong_state"),
        "{body}"
    );
    let unlock = format!("/control/v1/users/{uid}/unlock");
    let (status, body) = control(up, token, Method::POST, &unlock, None).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("active")),
        "{body}"
    );

    // Back in; an operator sees the session and ends it.
    let session: Session = log_in(&up.rest, &credentials).await;
    let sessions = format!("/control/v1/users/{uid}/sessions");
    let (status, list) = control(up, token, Method::GET, &sessions, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let revoke = format!("{sessions}/{}", list[0]["id"].as_str().unwrap());
    let (status, _) = control(up, token, Method::DELETE, &revoke, None).await;
    assert_eq!(status, 204);
    let (status, _) = session
        .call(Method::GET, "/resource/users/me", &json!({}))
        .await;
    assert_eq!(status, 401, "the revoked session is over");
    let (status, body) = control(up, token, Method::DELETE, &revoke, None).await;
    assert_eq!(
        (status, code(&body)),
        (404, "control.session.doesnt_exist"),
        "{body}"
    );
}

/// The audit page filters by actor and outcome; the chain verifies, and a record changed in
/// the database is named.
async fn audit_filters_and_verification(up: &Up, token: &str, refused: &str, store_url: &str) {
    let path = format!("/control/v1/audit?actor={refused}&outcome=denied&action=rbac.");
    let (status, page) = control(up, token, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{page}");
    let records = page["records"].as_array().unwrap();
    assert!(!records.is_empty(), "{page}");
    assert!(
        records
            .iter()
            .all(|r| r["actor"] == refused && r["outcome"] == "denied")
    );
    assert!(
        records.iter().any(|r| r["action"] == "rbac.audit.read"),
        "{page}"
    );
    let seqs: Vec<i64> = records.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    // Paging: one record a page, the second page starts below the first.
    let (_, first) = control(up, token, Method::GET, &format!("{path}&limit=1"), None).await;
    let before = first["next_before"].as_i64().unwrap();
    let (_, second) = control(
        up,
        token,
        Method::GET,
        &format!("{path}&limit=1&before={before}"),
        None,
    )
    .await;
    assert!(
        second["records"][0]["seq"].as_i64().unwrap() < before,
        "{second}"
    );

    let (status, chain) = control(up, token, Method::GET, "/control/v1/audit/verify", None).await;
    assert_eq!(status, 200, "{chain}");
    assert_eq!(chain["intact"], true, "{chain}");
    let pool = sqlx::MySqlPool::connect(store_url).await.unwrap();
    sqlx::query("UPDATE audit SET target = 'forged' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (status, chain) = control(up, token, Method::GET, "/control/v1/audit/verify", None).await;
    assert_eq!(status, 200, "{chain}");
    assert_eq!(
        (&chain["intact"], &chain["broken_seq"], &chain["reason"]),
        (&json!(false), &json!(3), &json!("hash_mismatch")),
        "{chain}"
    );
}
