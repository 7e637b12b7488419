//! The retail page at `/` in real Chromium (Debian's, driven by npm playwright-core; both
//! installed by scripts/test, found through CHROMIUM_BIN and PLAYWRIGHT_CORE_DIR) against
//! `peregrine up` with identity on the real OpenBao and SMTP server: two users sign up, verify
//! with the mailed code, log in, are credited through the control API, trade against each other
//! on the page, and each sees the trade and the new balances (`tests/browser/retail.mjs`). The
//! account reaches the page over the private Ranger WebSocket with the session's access JWT
//! (15 s tokens here, renewed on the open socket); the script fails if the page polls.
//! Screenshots go to `<CARGO_TARGET_TMPDIR>/retail_page/`.
//!
//! The browser script asks this test for what only it does, one line each on its stdout (`ASK
//! code <email>`, `ASK deposit <account> <currency> <amount>`), and reads the answer on stdin.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::Up;
use support::identity::{env, identity_section, mailed_code};
use support::write_config;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The whole browser scenario, start to screenshots.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(90);

/// Credits `amount` of `currency` to `account` through the control API: the one place this
/// test uses it (the control API's authentication may change; adapt it here).
async fn credit(up: &Up, account: u32, currency: &str, amount: &str, deposit_id: u64) {
    up.deposit(account, currency, amount, deposit_id).await;
}

/// Answers one `ASK ...` line of the browser script.
async fn answer(up: &Up, words: &[&str], deposits: &mut u64) -> String {
    match words {
        ["code", email] => mailed_code(email).await,
        ["deposit", account, currency, amount] => {
            *deposits += 1;
            credit(up, account.parse().unwrap(), currency, amount, *deposits).await;
            "OK".to_owned()
        }
        other => format!("ERR unknown request {other:?}"),
    }
}

/// Runs `tests/browser/retail.mjs` against `page_url` with screenshots to `out_dir`, answering
/// its requests; panics unless it ends with `DONE` and exit 0.
async fn run_browser_scenario(up: &Up, page_url: &str, out_dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/retail.mjs");
    let mut child = tokio::process::Command::new("node")
        .arg(&script)
        .env("PAGE_URL", page_url)
        .env("OUT_DIR", out_dir)
        .env("PLAYWRIGHT_CORE_DIR", env("PLAYWRIGHT_CORE_DIR"))
        .env("CHROMIUM_BIN", env("CHROMIUM_BIN"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node {}: {e}", script.display()));
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
    let (mut done, mut deposits) = (false, 0u64);
    while let Some(line) = tokio::time::timeout_at(deadline, lines.next_line())
        .await
        .expect("the browser scenario took too long")
        .unwrap()
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.split_first() {
            Some((&"ASK", request)) => {
                let reply = answer(up, request, &mut deposits).await;
                stdin
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .unwrap();
            }
            Some((&"DONE", _)) => done = true,
            _ => eprintln!("[retail.mjs stdout] {line}"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_sign_up_and_trade_with_each_other_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    // Short tokens: the scenario outlives several, so the page must renew on its socket.
    let auth =
        identity_section(dir.path()).replacen("[auth]\n", "[auth]\naccess_token_ttl_s = 15\n", 1);
    write_config(dir.path(), &[], &auth);
    let up = Up::start(dir.path());
    let page_url = up
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("page  "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no page line: {:?}", up.lines))
        .to_owned();
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("retail_page");
    std::fs::create_dir_all(&out_dir).unwrap();
    run_browser_scenario(&up, &page_url, &out_dir).await;
    for name in ["retail-buyer.png", "retail-seller.png"] {
        let size = std::fs::metadata(out_dir.join(name)).unwrap().len();
        assert!(size > 10_000, "{name} is {size} bytes");
    }
    // The page's own requests are counted.
    let metrics = up.metrics().await;
    assert!(
        metrics.contains("peregrine_web_requests_total{route=\"/app.js\",status=\"200\"}"),
        "no page metrics"
    );
    up.stop();
}
