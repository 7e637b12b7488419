//! Runtime rules under four-eyes against `peregrine up` (the binary) over real HTTP, with
//! identity on the real OpenBao and SMTP and its SQLite store, TOTP operators:
//!
//! - withdrawal limits by KYC level: a proposer cannot approve their own limits; once a second
//!   operator approves them, a level-1 user's withdrawal above level 1's limit is refused with
//!   `withdraw.limit_exceeded` naming the limit and what remains, nothing recorded or held,
//!   while a level-2 user's passes (the wallet store on SQLite, its hot wallet recorded by the
//!   test: no chain is reached before the daemon takes a request);
//! - fee volume tiers: a proposer cannot approve their own schedule; once approved, the
//!   fee-tier job places both traders, whose trailing volume (read from the replica) is above
//!   the threshold, in the tier, and the next trade pays that tier's fee; after a restart the
//!   tiers are replayed from the journal (the job journals nothing more) and the fee holds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;
#[allow(unused_imports)]
use crate::users;

use std::time::{Duration, Instant};

use peregrine_wallet::chain::Address;
use peregrine_wallet::keys::DerivationPath;
use peregrine_wallet::store::WalletStore;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::{Up, now_ms, write_config};
use users::{enable_2fa, operator};

/// How long a read waits for a change to show.
const SETTLE: Duration = Duration::from_secs(10);

use crate::users::{control, operator_token};

/// Proposes `body` at `route` as `proposer`, sees the proposer's own approval refused, and
/// approves it as `approver`; the approved proposal.
async fn four_eyes(up: &Up, route: &str, body: Value, proposer: &str, approver: &str) -> Value {
    let (status, created) = control(up, Method::POST, route, proposer, body).await;
    assert_eq!(
        (status, &created["state"]),
        (201, &json!("pending")),
        "{created}"
    );
    let approve = format!("{route}/{}/approve", created["id"]);
    let (status, own) = control(up, Method::POST, &approve, proposer, json!({})).await;
    assert_eq!(
        (status, &own["errors"][0]),
        (403, &json!("control.adjustment.own_proposal")),
        "{own}"
    );
    let (status, listed) = control(up, Method::GET, route, approver, json!({})).await;
    assert_eq!(status, 200, "{listed}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == created["id"])
    );
    let (status, approved) = control(up, Method::POST, &approve, approver, json!({})).await;
    assert_eq!(
        (status, &approved["state"]),
        (200, &json!("approved")),
        "{approved}"
    );
    approved
}

const WITHDRAWS: &str = "/api/v2/peatio/account/withdraws";
const BENEFICIARIES: &str = "/api/v2/peatio/account/beneficiaries";

/// A user with 2FA, a withdraw key, 1 eth and an active beneficiary; (key id, secret, the
/// otpauth URL, the beneficiary id, uid).
struct Withdrawer {
    kid: String,
    secret: String,
    url: String,
    beneficiary: u64,
    uid: String,
}

impl Withdrawer {
    fn key(&self) -> (&str, &str) {
        (&self.kid, &self.secret)
    }

    async fn start(up: &Up, deposit_id: u64) -> Withdrawer {
        let rest = &up.rest;
        let email = format!("{}@example.com", users::unique("limits"));
        let (session, account, uid) = users::new_verified_user(rest, &email).await;
        users::early_in_a_totp_period().await;
        let url = enable_2fa(&session).await;
        let (kid, secret) = users::create_hmac_key(&session, &url, &["read", "withdraw"], 1).await;
        up.deposit(account, "eth", "1", deposit_id).await;
        let key = (kid.as_str(), secret.as_str());
        let payee = Address::parse_eth("0xffcf8fdee72ac11b5c542428b35eef5769c409f0").unwrap();
        let beneficiary =
            json!({"currency": "eth", "name": "cold", "data": {"address": payee.eip55()}});
        let deadline = Instant::now() + SETTLE;
        let body = loop {
            // The new key reaches the bridge's cache within a poll of identity's key feed.
            let (status, body) =
                users::signed(rest, key, "POST", BENEFICIARIES, Some(&beneficiary)).await;
            if status == 201 {
                break body;
            }
            assert!(Instant::now() < deadline, "no beneficiary: {status} {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Withdrawer {
            beneficiary: body["id"].as_u64().unwrap(),
            kid,
            secret,
            url,
            uid,
        }
    }

    /// Asks for `amount` eth with the TOTP code of `period`.
    async fn withdraw(&self, up: &Up, amount: &str, period: i64) -> (u16, Value) {
        let ask = json!({"currency": "eth", "amount": amount, "beneficiary_id": self.beneficiary,
            "otp": users::totp(&self.url, period)});
        users::signed(&up.rest, self.key(), "POST", WITHDRAWS, Some(&ask)).await
    }

    /// The user's eth (balance, locked).
    async fn eth(&self, up: &Up) -> (String, String) {
        let path = "/api/v2/peatio/account/balances/eth";
        let (status, body) = users::signed(&up.rest, self.key(), "GET", path, None).await;
        assert_eq!(status, 200, "{body}");
        (
            body["balance"].as_str().unwrap().to_owned(),
            body["locked"].as_str().unwrap().to_owned(),
        )
    }
}

/// Waits until the current TOTP period is over (the next one's code is then fresh).
async fn next_totp_period() {
    let period = || now_ms() / 30_000;
    let now = period();
    while period() == now {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_one_user_over_its_limit_is_refused_and_a_level_two_user_passes() {
    let dir = tempfile::tempdir().unwrap();
    // Ether's configured policy is generous: the KYC limits are what binds.
    let wallets = "[wallets]\nenabled = true\nbeneficiary_activation_delay_ms = 0\n\n\
         [[wallets.currencies]]\ncode = \"eth\"\ndecimals = 18\nconfirmations = 1\n\n\
         [wallets.currencies.withdraw]\nlimit_24h = \"10\"\nlimit_30d = \"20\"\n\
         approval_above = \"5\"\napprovals = 1\n\n";
    let auth = users::auth_section(dir.path(), 1);
    write_config(dir.path(), &[], &format!("{auth}{wallets}"));
    let up = Up::start(dir.path());
    let store_url = format!("sqlite://{}", dir.path().join("data/wallets.db").display());
    let store = WalletStore::open(&store_url).await.unwrap();
    let hot = Address::parse_eth("0x90f8bf6a479f320ead074411a4b0e7944ea8c9c1").unwrap();
    store
        .set_hot_wallet("eth", "eth", &hot, &DerivationPath::hot(60).unwrap())
        .await
        .unwrap();

    let proposer = operator_token(&up, dir.path(), "accountant").await;
    let approver = operator_token(&up, dir.path(), "accountant").await;
    let limit = |level: u8, day: &str, month: &str| json!({"level": level, "currency": "eth", "limit_24h": day, "limit_30d": month});
    let route = "withdraw-limits";
    let (status, body) = control(&up, Method::POST, route, &proposer, limit(0, "1", "1")).await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("level")),
        "{body}"
    );
    let (status, body) = control(&up, Method::POST, route, &proposer, limit(1, "2", "1")).await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("limit_30d")),
        "{body}"
    );
    four_eyes(&up, route, limit(1, "0.1", "0.2"), &proposer, &approver).await;
    four_eyes(&up, route, limit(2, "1", "2"), &proposer, &approver).await;

    let (ops, _) = operator(dir.path(), &up.rest, "compliance").await;
    let first = Withdrawer::start(&up, 1).await;
    let second = Withdrawer::start(&up, 2).await;
    let phone = json!({ "uid": second.uid, "key": "phone", "value": "verified" });
    let (status, body) = ops.post("/admin/users/labels", &phone).await;
    assert_eq!((status, &body["level"]), (201, &json!(2)), "{body}");

    // Level 1: 0.2 is over its 0.1 a day; refused by name, nothing recorded or held.
    let (status, body) = first.withdraw(&up, "0.2", 1).await;
    assert_eq!(
        (status, &body["errors"][0]),
        (422, &json!("withdraw.limit_exceeded")),
        "{body}"
    );
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let message = if message.is_empty() {
        body.to_string()
    } else {
        message
    };
    assert!(
        message.contains("level 1") && message.contains("24 h") && message.contains("0.1"),
        "{message}"
    );
    assert!(message.contains("remaining"), "{message}");
    let (status, list) = users::signed(&up.rest, first.key(), "GET", WITHDRAWS, None).await;
    assert_eq!(
        (status, list.as_array().map(Vec::len)),
        (200, Some(0)),
        "{list}"
    );
    assert_eq!(first.eth(&up).await, ("1".to_owned(), "0".to_owned()));

    // Level 2: the same amount passes (its code fresh: the key used the period before).
    next_totp_period().await;
    let deadline = Instant::now() + SETTLE;
    let body = loop {
        let (status, body) = second.withdraw(&up, "0.2", 1).await;
        // The level reaches the desk with identity's next read; the gate's cache may lag.
        if status == 201 || Instant::now() > deadline {
            assert_eq!(status, 201, "{body}");
            break body;
        }
        assert_ne!(body["errors"][0], "identity.otp.already_used", "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["state"], "approved", "{body}");
    up.stop();
}

/// The static REST keys of the two traders: (key, secret, account).
const MAKER: (&str, &str, u32) = ("tier-maker", "tier-maker-secret-of-32-bytes-000", 3);
const TAKER: (&str, &str, u32) = ("tier-taker", "tier-taker-secret-of-32-bytes-000", 4);

use support::peatio_rest as rest;

/// The maker sells 0.01 btc at 50 000 and the taker buys it: 500 usd of volume each.
async fn trade(up: &Up) {
    for (who, side) in [(MAKER, "sell"), (TAKER, "buy")] {
        let body = json!({"market": "btcusd", "side": side, "volume": "0.01", "price": "50000"});
        let (status, body) = rest(up, who, Method::POST, "/market/orders", Some(body)).await;
        assert_eq!(status, 201, "{body}");
    }
}

/// The available balance of `currency` over REST, once it equals `want` (bounded wait).
async fn until_balance(up: &Up, who: (&str, &str, u32), currency: &str, want: &str) {
    let want: Decimal = want.parse().unwrap();
    let started = Instant::now();
    loop {
        let path = format!("/account/balances/{currency}");
        let (status, body) = rest(up, who, Method::GET, &path, None).await;
        let got = body["balance"]
            .as_str()
            .and_then(|b| b.parse::<Decimal>().ok());
        if status == 200 && got == Some(want) {
            return;
        }
        assert!(
            started.elapsed() < SETTLE,
            "{currency}: {body}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the sample `name` (with its labels) in `up`'s metrics, 0 when absent.
async fn metric(up: &Up, name: &str) -> f64 {
    let text = up.metrics().await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until the fee-tier job has run `runs` more times.
async fn job_runs(up: &Up, runs: f64) {
    let ok = "peregrine_fee_tier_runs_total{outcome=\"ok\"}";
    let from = metric(up, ok).await;
    let started = Instant::now();
    while metric(up, ok).await < from + runs {
        assert!(started.elapsed() < SETTLE, "the fee-tier job does not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traders_above_the_volume_threshold_pay_the_tier_fee_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys: String = [MAKER, TAKER]
        .iter()
        .map(|(key, secret, account)| {
            format!(
                "[[rest.keys]]\nkey = \"{key}\"\nsecret = \"{secret}\"\naccount = {account}\n\n"
            )
        })
        .collect();
    // The replica is on by default (SQLite in the data directory): the job reads it.
    let extra = format!(
        "{keys}[control]\nfee_tier_interval_ms = 100\n\n{}",
        support::identity::identity_section(dir.path())
    );
    write_config(dir.path(), &[], &extra);
    let up = Up::start(dir.path());
    up.deposit(MAKER.2, "btc", "1", 1).await;
    up.deposit(TAKER.2, "usd", "100000", 2).await;
    let proposer = operator_token(&up, dir.path(), "accountant").await;
    let approver = operator_token(&up, dir.path(), "accountant").await;

    // Tier 1 of btcusd trades free; 400 usd of trailing volume puts an account in tier 1.
    let free = json!({"market": "btcusd", "group": 1, "maker_fee": "0", "taker_fee": "0"});
    let change = four_eyes(&up, "fees", free, &proposer, &approver).await;
    // An approval that crashed between the journal and the store (its sequence never
    // recorded): the retry finds the update in the views and journals nothing again.
    let seq = change["applied_seq"].as_u64().unwrap();
    let identity = format!("sqlite://{}", dir.path().join("data/identity.db").display());
    let db = sqlx::SqlitePool::connect(&identity).await.unwrap();
    sqlx::query("UPDATE proposals SET applied_seq = NULL WHERE kind = 'fee_change' AND id = ?")
        .bind(change["id"].as_i64().unwrap())
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let approve = format!("fees/{}/approve", change["id"]);
    let (status, body) = control(&up, Method::POST, &approve, &approver, json!({})).await;
    assert_eq!(
        (status, body["applied_seq"].as_u64()),
        (200, Some(seq)),
        "{body}"
    );
    let bad = json!({"currency": "usd", "thresholds": [{"volume": "400", "tier": 1},
        {"volume": "300", "tier": 2}]});
    let (status, body) = control(&up, Method::POST, "fee-tiers", &proposer, bad).await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("thresholds")),
        "{body}"
    );
    let tiers = json!({"currency": "usd", "thresholds": [{"volume": "400", "tier": 1}],
        "groups": [{"group": "vip", "tier": 2}]});
    four_eyes(&up, "fee-tiers", tiers, &proposer, &approver).await;

    // The first trade at the catalog's fees (taker 0.2 % of the btc, maker 0.1 % of the usd).
    trade(&up).await;
    until_balance(&up, TAKER, "btc", "0.00998").await;
    until_balance(&up, MAKER, "usd", "499.5").await;
    // 500 usd each: the job moves both to tier 1, once.
    let changes = "peregrine_fee_tier_changes_total";
    let started = Instant::now();
    while metric(&up, changes).await < 2.0 {
        if started.elapsed() > SETTLE {
            let text = up.metrics().await;
            let lines: Vec<&str> = text.lines().filter(|l| l.contains("fee_tier")).collect();
            let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            let log: Vec<&str> = log.lines().filter(|l| l.contains("fee")).collect();
            panic!("the traders never moved to tier 1: {lines:#?} {log:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    job_runs(&up, 3.0).await;
    assert_eq!(metric(&up, changes).await, 2.0, "a tier journaled again");
    trade(&up).await;
    until_balance(&up, TAKER, "btc", "0.01998").await;
    until_balance(&up, MAKER, "usd", "999.5").await;

    // After a restart the tiers come from the journal: the job finds nothing to change.
    up.stop();
    let up = Up::start(dir.path());
    job_runs(&up, 3.0).await;
    assert_eq!(metric(&up, changes).await, 0.0, "the restart lost a tier");
    trade(&up).await;
    until_balance(&up, TAKER, "btc", "0.02998").await;
    until_balance(&up, MAKER, "usd", "1499.5").await;
    up.stop();
}
