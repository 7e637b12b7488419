//! The operators' reports and the orders and trades search against `peregrine up` (the binary)
//! over real HTTP: the replica and the wallet store on MariaDB (databases of this test's own),
//! identity on the real OpenBao with its SQLite store, two accounts trading btcusd over REST
//! with static keys, an operator with 2FA reading the reports.
//!
//! The numbers are the ones the trades imply: fees (the buyer pays in btc, the seller in usd,
//! the taker 0.2 % and the maker 0.1 %), volumes, balances and liabilities after the deposits
//! and trades (fees leave the accounts), held funds of an open order; each CSV parses back to
//! the JSON's numbers. On-chain assets come from `peregrine wallets reconcile` (the real
//! command) against the suite's anvil, whose outcome the wallet store keeps and the report
//! reads. The search finds exactly the orders and trades each filter names. Without a replica
//! and wallets, a second appliance refuses what it cannot answer and says so; members and
//! operators without `report.read` get 403, bad ranges 422.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;
// Shared with wallets.rs, which uses the rest of what it re-exports.
#[allow(unused_imports)]
use crate::users;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peregrine_wallet::chain::Address;
use peregrine_wallet::chain::eth::EthRpc;
use peregrine_wallet::keys::DerivationPath;
use peregrine_wallet::store::WalletStore;
use reqwest::Method;
use serde_json::{Value, json};
use support::identity::{identity_section, new_verified_user, unique};
use support::{FreshDatabase, Up, http_client, write_config};
use users::{Session, enable_2fa, operator};

/// The static REST keys of the two traders: (key, secret, account).
const MAKER: (&str, &str, u32) = ("rep-maker", "rep-maker-secret-of-32-bytes-0000", 3);
const TAKER: (&str, &str, u32) = ("rep-taker", "rep-taker-secret-of-32-bytes-0000", 4);
/// How long a read waits for the views or the replica to show a change.
const SETTLE: Duration = Duration::from_secs(10);
/// One ether in wei.
const ETHER: u128 = 1_000_000_000_000_000_000;

fn rest_keys() -> String {
    [MAKER, TAKER]
        .iter()
        .map(|(key, secret, account)| {
            format!(
                "[[rest.keys]]\nkey = \"{key}\"\nsecret = \"{secret}\"\naccount = {account}\n\n"
            )
        })
        .collect()
}

/// A signed REST request that must succeed; its JSON.
async fn rest(up: &Up, who: (&str, &str, u32), method: Method, path: &str, body: Value) -> Value {
    let (status, body) = support::peatio_rest(up, who, method, path, Some(body)).await;
    assert!(status < 300, "{path}: {status} {body}");
    body
}

/// Places a btcusd limit order; its id.
async fn order(up: &Up, who: (&str, &str, u32), side: &str, volume: &str, price: &str) -> u64 {
    let body = json!({"market": "btcusd", "side": side, "volume": volume, "price": price});
    let placed = rest(up, who, Method::POST, "/market/orders", body).await;
    placed["id"].as_u64().unwrap()
}

/// An operator with `role` and 2FA; a fresh access token.
async fn operator_token(up: &Up, dir: &Path, role: &str) -> String {
    let (session, _uid): (Session, String) = operator(dir, &up.rest, role).await;
    enable_2fa(&session).await;
    let (status, body) = session.post("/resource/tokens", &json!({})).await;
    assert_eq!(status, 201, "token: {body}");
    body["token"].as_str().unwrap().to_owned()
}

/// `GET {http}{path}` with `token` (and `accept`); status, content type and body text.
async fn get(up: &Up, token: &str, path: &str, accept: &str) -> (u16, String, String) {
    let response = http_client()
        .get(format!("{}{path}", up.http))
        .bearer_auth(token)
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

/// `GET {http}{path}` as JSON; panics unless 200.
async fn report(up: &Up, token: &str, path: &str) -> Value {
    let (status, _, body) = get(up, token, path, "application/json").await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// `GET {http}{path}` refused with `status` and `code`.
async fn refused(up: &Up, token: &str, path: &str, status: u16, code: &str) {
    let (got, _, body) = get(up, token, path, "application/json").await;
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (status, Some(code)),
        "{path}: {body}"
    );
}

/// RFC 4180 back to rows of fields (quoted fields, doubled quotes, CRLF line ends).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => assert_eq!(chars.next(), Some('\n'), "CR without LF"),
            (false, '\n') => panic!("a line ends without CR"),
            (false, c) => field.push(c),
        }
        if !quoted && c == '\r' {
            row.push(std::mem::take(&mut field));
            rows.push(std::mem::take(&mut row));
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "the last line lacks CRLF"
    );
    rows
}

/// The CSV of `path` (asked for by `Accept`): its header and rows as objects of strings.
async fn csv(up: &Up, token: &str, path: &str) -> (Vec<String>, Vec<Value>) {
    let (status, kind, text) = get(up, token, path, "text/csv").await;
    assert_eq!(status, 200, "{path}: {text}");
    assert!(kind.starts_with("text/csv"), "{path}: {kind}");
    let mut rows = parse_csv(&text).into_iter();
    let header = rows.next().unwrap();
    let objects = rows
        .map(|fields| {
            assert_eq!(fields.len(), header.len(), "{path}: {text}");
            Value::Object(
                header
                    .iter()
                    .cloned()
                    .zip(fields.into_iter().map(Value::String))
                    .collect(),
            )
        })
        .collect();
    (header, objects)
}

/// Today's UTC date, `YYYY-MM-DD` (the trades' day, unless the test runs across midnight).
fn today() -> String {
    let output = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn ms_now() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// `up` with the two traders, identity, the replica and the wallet store on MariaDB, ether on
/// the suite's anvil.
fn config(dir: &Path, replica: &FreshDatabase, wallets: &FreshDatabase) {
    let section = format!(
        "[replica]\nurl = \"{}\"\n\n[wallets]\nenabled = true\nstore_url = \"{}\"\n\
         rpc_url = \"{}\"\ncontrol_url = \"\"\n\n[[wallets.currencies]]\n\
         code = \"eth\"\ndecimals = 18\nconfirmations = 1\nreconcile_tolerance = \"0\"\n\n",
        replica.url,
        wallets.url,
        support::identity::env("ETH_RPC_URL"),
    );
    write_config(
        dir,
        &[],
        &format!("{}{}{section}", rest_keys(), identity_section(dir)),
    );
}

/// `wallets.toml`: `up`'s configuration with its control API's address, for `peregrine wallets
/// reconcile` (which reads the ledger's liabilities from it).
fn wallets_config(dir: &Path, up: &Up) {
    let text = std::fs::read_to_string(dir.join("peregrine.toml"))
        .unwrap()
        .replace(
            "control_url = \"\"",
            &format!("control_url = \"{}\"", up.http),
        );
    std::fs::write(dir.join("wallets.toml"), text).unwrap();
}

/// The trades: the maker sells 0.01 btc at 50 000 to the taker's buy (the taker buys: it pays
/// 0.2 % of 0.01 btc, the maker 0.1 % of 500 usd); then the taker's resting buy of 0.02 at
/// 49 000 is hit by the maker's sell (the taker sells: 0.2 % of 980 usd; the buyer, maker now,
/// 0.1 % of 0.02 btc); then a buy of 0.01 at 45 000 rests (450 usd held). The times between
/// the phases, Unix ms, and the orders: (maker's, taker's).
async fn trade(up: &Up) -> (u64, Vec<u64>, Vec<u64>) {
    let first_sell = order(up, MAKER, "sell", "0.01", "50000").await;
    let first_buy = order(up, TAKER, "buy", "0.01", "50000").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = ms_now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let resting_buy = order(up, TAKER, "buy", "0.02", "49000").await;
    let second_sell = order(up, MAKER, "sell", "0.02", "49000").await;
    let open_buy = order(up, TAKER, "buy", "0.01", "45000").await;
    (
        between,
        vec![first_sell, second_sell],
        vec![first_buy, resting_buy, open_buy],
    )
}

/// Waits until the replica holds every command the views applied.
async fn replicated(up: &Up, token: &str) {
    let started = Instant::now();
    loop {
        let applied = up.control_status().await["applied_seq"].as_u64().unwrap();
        let path = "/control/v1/reports/fees?from_ms=0&to_ms=1000";
        let high_water = report(up, token, path).await["high_water_seq"]
            .as_u64()
            .unwrap();
        if high_water >= applied {
            return;
        }
        assert!(
            started.elapsed() < SETTLE,
            "the replica stays at {high_water} < {applied}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The currency `code`'s entry of a report's `currencies`.
fn currency<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["currencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["currency"] == code)
        .unwrap_or_else(|| panic!("no {code} in {report}"))
}

async fn balances_are_what_the_trades_left(up: &Up, token: &str) {
    let balances = report(up, token, "/control/v1/reports/balances").await;
    // btc: 1 deposited less 0.00004 of fees; usd: 100 000 less 2.46; eth: 1.5, untouched.
    let want = [
        ("btc", 8, 2, "0.99996000", "0.00000000", "0.99996000"),
        ("eth", 9, 1, "1.500000000", "0.000000000", "1.500000000"),
        ("usd", 6, 2, "99547.540000", "450.000000", "99997.540000"),
    ];
    let (header, rows) = csv(up, token, "/control/v1/reports/balances").await;
    assert_eq!(
        header,
        [
            "currency",
            "precision",
            "accounts",
            "available",
            "held",
            "total"
        ]
    );
    for (code, precision, accounts, available, held, total) in want {
        let entry = currency(&balances, code);
        assert_eq!(
            (
                &entry["precision"],
                &entry["accounts"],
                &entry["available"],
                &entry["held"]
            ),
            (
                &json!(precision),
                &json!(accounts),
                &json!(available),
                &json!(held)
            ),
            "{code}: {entry}"
        );
        assert_eq!(entry["total"], total, "{code}");
        let line = rows.iter().find(|r| r["currency"] == code).unwrap();
        let back = json!({"currency": code, "precision": precision.to_string(),
            "accounts": accounts.to_string(), "available": available, "held": held,
            "total": total});
        assert_eq!(line, &back, "the CSV says what the JSON says");
    }
    // The status's liabilities are the same totals, in minor units.
    let status = up.control_status().await;
    let usd = currency(&json!({"currencies": status["liabilities"]}), "usd").clone();
    assert_eq!(usd["total_minor"], "99997540000");
}

async fn balances_by_account_filter_and_page(up: &Up, token: &str) {
    let path = "/control/v1/reports/balances/accounts?account=4&limit=2";
    let first = report(up, token, path).await;
    // Account 4: btc 0.01 + 0.02 less 0.00004 of fees; usd less 500, 980 and 450 held.
    let rows = first["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{first}");
    assert_eq!(
        rows[0],
        json!({"account": 4, "currency": "btc", "available": "0.02996000",
        "held": "0.00000000", "total": "0.02996000"})
    );
    assert_eq!(rows[1]["currency"], "eth");
    let next = first["next_after"].as_u64().unwrap();
    let path = format!("/control/v1/reports/balances/accounts?account=4&limit=2&after={next}");
    let second = report(up, token, &path).await;
    assert_eq!(
        second["rows"],
        json!([{"account": 4, "currency": "usd",
        "available": "98070.000000", "held": "450.000000", "total": "98520.000000"}])
    );
    assert_eq!(second["next_after"], Value::Null);
    let path = "/control/v1/reports/balances/accounts?currency=usd";
    let (header, usd) = csv(up, token, path).await;
    assert_eq!(
        header,
        ["account", "currency", "available", "held", "total"]
    );
    let accounts: Vec<(&str, &str)> = usd
        .iter()
        .map(|r| (r["account"].as_str().unwrap(), r["total"].as_str().unwrap()))
        .collect();
    assert_eq!(accounts, [("3", "1477.540000"), ("4", "98520.000000")]);
    refused(
        up,
        token,
        "/control/v1/reports/balances/accounts?currency=doge",
        404,
        "control.currency.doesnt_exist",
    )
    .await;
}

async fn fees_and_volume_are_what_the_trades_paid(up: &Up, token: &str, started_ms: u64) {
    let range = format!("from_ms={started_ms}&to_ms={}", ms_now() + 60_000);
    let fees = report(up, token, &format!("/control/v1/reports/fees?{range}")).await;
    assert_eq!(
        fees["markets"],
        json!([{"market": "btcusd", "base": "btc", "quote": "usd",
        "trades": 2, "base_fees": "0.00004000", "quote_fees": "2.460000"}]),
        "{fees}"
    );
    for (code, fee) in [
        ("btc", "0.00004000"),
        ("eth", "0.000000000"),
        ("usd", "2.460000"),
    ] {
        assert_eq!(currency(&fees, code)["fees"], fee, "{code}");
    }
    let (header, rows) = csv(
        up,
        token,
        &format!("/control/v1/reports/fees?{range}&format=csv"),
    )
    .await;
    assert_eq!(
        header,
        ["group", "market", "currency", "precision", "trades", "fees"]
    );
    let back: Vec<[&str; 4]> = rows
        .iter()
        .map(|r| ["group", "market", "currency", "fees"].map(|k| r[k].as_str().unwrap()))
        .collect();
    assert_eq!(
        back,
        [
            ["market", "btcusd", "btc", "0.00004000"],
            ["market", "btcusd", "usd", "2.460000"],
            ["total", "", "btc", "0.00004000"],
            ["total", "", "eth", "0.000000000"],
            ["total", "", "usd", "2.460000"]
        ]
    );
    // Before the trades: nothing.
    let before = started_ms - 3_600_000;
    let path =
        format!("/control/v1/reports/fees?from_ms={before}&to_ms={started_ms}&market=btcusd");
    assert_eq!(report(up, token, &path).await["markets"], json!([]));

    let day = today();
    let path = format!("/control/v1/reports/volume?from={day}&to={day}");
    let volume = report(up, token, &path).await;
    let row = json!({"date": day, "market": "btcusd", "base": "btc", "quote": "usd",
        "trades": 2, "base_volume": "0.03000000", "quote_volume": "1480.000000"});
    assert_eq!(volume["rows"], json!([row]), "{volume}");
    assert_eq!(volume["truncated"], false);
    let (header, rows) = csv(up, token, &format!("{path}&market=btcusd")).await;
    assert_eq!(
        header,
        [
            "date",
            "market",
            "base",
            "quote",
            "trades",
            "base_volume",
            "quote_volume"
        ]
    );
    let mut back = row.clone();
    back["trades"] = json!("2");
    assert_eq!(rows, [back]);
}

async fn assets_come_from_the_last_reconciliation(
    up: &Up,
    dir: &Path,
    store_url: &str,
    token: &str,
) {
    let assets = report(up, token, "/control/v1/reports/assets").await;
    assert_eq!(assets["wallets"], true);
    assert_eq!(
        currency(&assets, "eth")["assets"],
        "not_reconciled",
        "{assets}"
    );
    // A hot wallet of its own on the suite's anvil, holding 2 ether.
    let hot_hex = format!(
        "0x{:0>40}",
        format!(
            "{:x}",
            ms_now() * 1000 + u64::from(std::process::id() % 1000)
        )
    );
    let hot = Address::parse_eth(&hot_hex).unwrap();
    let rpc = EthRpc::new(&support::identity::env("ETH_RPC_URL")).unwrap();
    let _: Value = rpc
        .call(
            "anvil_setBalance",
            json!([hot.as_str(), format!("0x{:x}", 2 * ETHER)]),
        )
        .await
        .unwrap();
    let store = WalletStore::open(store_url).await.unwrap();
    store
        .set_hot_wallet("eth", "eth", &hot, &DerivationPath::hot(60).unwrap())
        .await
        .unwrap();
    store.close().await;
    // 2 on chain against 1.5 owed: beyond the zero tolerance, so the command exits non-zero.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["wallets", "reconcile", "--config", "wallets.toml", "--json"])
        .current_dir(dir)
        .output()
        .unwrap();
    let printed: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(
        printed["currencies"][0]["difference"], "0.500000000000000000",
        "{printed}"
    );
    let assets = report(up, token, "/control/v1/reports/assets").await;
    let eth = currency(&assets, "eth");
    assert_eq!(
        [
            &eth["assets"],
            &eth["liabilities"],
            &eth["on_chain"],
            &eth["hot"],
            &eth["reconciled_liabilities"],
            &eth["difference"],
            &eth["exceeds"]
        ],
        [
            &json!("reconciled"),
            &json!("1.500000000"),
            &json!("2.000000000000000000"),
            &json!("2.000000000000000000"),
            &json!("1.500000000000000000"),
            &json!("0.500000000000000000"),
            &json!(true)
        ],
        "{eth}"
    );
    assert_eq!(currency(&assets, "usd")["assets"], "not_reconciled");
    let (_, rows) = csv(up, token, "/control/v1/reports/assets?format=csv").await;
    let eth = rows.iter().find(|r| r["currency"] == "eth").unwrap();
    assert_eq!(
        (&eth["on_chain"], &eth["difference"], &eth["exceeds"]),
        (
            &json!("2.000000000000000000"),
            &json!("0.500000000000000000"),
            &json!("true")
        )
    );
}

/// The ids of a search's rows.
async fn ids(up: &Up, token: &str, path: &str) -> Vec<u64> {
    let page = report(up, token, path).await;
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect()
}

async fn search_finds_exactly_the_orders_and_trades(
    up: &Up,
    token: &str,
    (between, maker, taker): (u64, Vec<u64>, Vec<u64>),
) {
    let orders = "/control/v1/orders";
    // Newest first.
    let all: Vec<u64> = taker.iter().rev().copied().collect();
    assert_eq!(ids(up, token, &format!("{orders}?account=4")).await, all);
    assert_eq!(
        ids(up, token, &format!("{orders}?account=4&state=open")).await,
        [taker[2]]
    );
    assert_eq!(
        ids(
            up,
            token,
            &format!("{orders}?account=4&state=filled&market=btcusd")
        )
        .await,
        [taker[1], taker[0]]
    );
    assert_eq!(
        ids(up, token, &format!("{orders}?account=4&market=ethusd")).await,
        [0u64; 0]
    );
    assert_eq!(
        ids(up, token, &format!("{orders}?account=4&to_ms={between}")).await,
        [taker[0]]
    );
    assert_eq!(
        ids(up, token, &format!("{orders}?account=3&from_ms={between}")).await,
        [maker[1]]
    );
    let page = report(up, token, &format!("{orders}?account=4&state=open")).await;
    assert_eq!(
        (&page["rows"][0]["price"], &page["rows"][0]["open_quantity"]),
        (&json!("45000"), &json!("0.01"))
    );

    let trades = "/control/v1/trades";
    let fills = report(up, token, &format!("{trades}?account=3")).await;
    let rows = fills["rows"].as_array().unwrap();
    let seen: Vec<(u64, &str, bool, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["order"].as_u64().unwrap(),
                r["side"].as_str().unwrap(),
                r["maker"].as_bool().unwrap(),
                r["price"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (maker[1], "sell", false, "49000"),
            (maker[0], "sell", true, "50000")
        ]
    );
    let early = report(
        up,
        token,
        &format!("{trades}?account=4&market=btcusd&to_ms={between}"),
    )
    .await;
    assert_eq!(early["rows"].as_array().unwrap().len(), 1, "{early}");
    assert_eq!(
        (&early["rows"][0]["order"], &early["rows"][0]["quantity"]),
        (&json!(taker[0]), &json!("0.01"))
    );
    let late = report(up, token, &format!("{trades}?account=4&from_ms={between}")).await;
    assert_eq!(late["rows"][0]["order"], taker[1], "{late}");
    assert_eq!(late["rows"].as_array().unwrap().len(), 1);
    refused(
        up,
        token,
        &format!("{trades}?account=4&state=open"),
        400,
        "control.request.malformed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_and_search_show_what_the_trades_did() {
    let dir = tempfile::tempdir().unwrap();
    let replica = FreshDatabase::new("reports_replica");
    let wallets = FreshDatabase::new("reports_wallets");
    config(dir.path(), &replica, &wallets);
    let up = Up::start(dir.path());
    wallets_config(dir.path(), &up);
    let started_ms = ms_now();
    up.deposit(MAKER.2, "btc", "1", 1).await;
    up.deposit(TAKER.2, "usd", "100000", 2).await;
    up.deposit(TAKER.2, "eth", "1.5", 3).await;
    let placed = trade(&up).await;
    let accountant = operator_token(&up, dir.path(), "accountant").await;
    replicated(&up, &accountant).await;

    balances_are_what_the_trades_left(&up, &accountant).await;
    balances_by_account_filter_and_page(&up, &accountant).await;
    fees_and_volume_are_what_the_trades_paid(&up, &accountant, started_ms).await;
    assets_come_from_the_last_reconciliation(&up, dir.path(), &wallets.url, &accountant).await;
    let admin = operator_token(&up, dir.path(), "admin").await;
    search_finds_exactly_the_orders_and_trades(&up, &admin, placed).await;
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_refuse_who_may_not_read_them_and_bad_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let section = "[replica]\nenabled = false\n\n";
    write_config(
        dir.path(),
        &[],
        &format!("{}{section}", identity_section(dir.path())),
    );
    let up = Up::start(dir.path());
    let accountant = operator_token(&up, dir.path(), "accountant").await;
    let technical = operator_token(&up, dir.path(), "technical").await;
    let email = format!("{}@example.com", unique("member"));
    let (member, _, _) = new_verified_user(&up.rest, &email).await;
    let (status, body) = member.post("/resource/tokens", &json!({})).await;
    assert_eq!(status, 201, "{body}");
    let member = body["token"].as_str().unwrap().to_owned();

    let reports = [
        "/control/v1/reports/balances",
        "/control/v1/reports/balances/accounts",
        "/control/v1/reports/assets",
        "/control/v1/reports/fees?from_ms=0&to_ms=1000",
        "/control/v1/reports/volume?from=2026-01-01&to=2026-01-02",
    ];
    for path in reports {
        refused(&up, &member, path, 403, "control.auth.not_operator").await;
        // `technical` halts markets; it reads no report.
        refused(&up, &technical, path, 403, "control.auth.forbidden").await;
    }
    let unprocessable = [
        "/control/v1/reports/fees?from_ms=1000&to_ms=1000",
        "/control/v1/reports/fees?from_ms=0&to_ms=31622400001",
        "/control/v1/reports/volume?from=2026-01-02&to=2026-01-01",
        "/control/v1/reports/volume?from=2025-01-01&to=2026-01-02",
        "/control/v1/reports/volume?from=2026-02-30&to=2026-03-01",
        "/control/v1/reports/volume?from=yesterday&to=2026-03-01",
    ];
    for path in unprocessable {
        refused(&up, &accountant, path, 422, "control.request.invalid_value").await;
    }
    for path in [
        "/control/v1/reports/fees?from_ms=0",
        "/control/v1/reports/balances?format=xml",
        "/control/v1/reports/balances/accounts?limit=0",
    ] {
        refused(&up, &accountant, path, 400, "control.request.malformed").await;
    }
    refused(
        &up,
        &accountant,
        "/control/v1/reports/volume?from=2026-01-01&to=2026-01-01&market=x",
        404,
        "control.market.doesnt_exist",
    )
    .await;
    // No replica: the trades' reports cannot answer; the views' still do.
    refused(
        &up,
        &accountant,
        "/control/v1/reports/fees?from_ms=0&to_ms=1000",
        503,
        "control.replica.unavailable",
    )
    .await;
    let assets = report(&up, &accountant, "/control/v1/reports/assets").await;
    assert_eq!(assets["wallets"], false);
    assert!(
        assets["note"]
            .as_str()
            .unwrap()
            .contains("liabilities only"),
        "{assets}"
    );
    let usd = currency(&assets, "usd");
    assert_eq!(
        (&usd["assets"], &usd["liabilities"], &usd["on_chain"]),
        (&json!("wallets_off"), &json!("0.000000"), &Value::Null)
    );
    up.stop();
}
