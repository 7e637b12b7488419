//! `/metrics` of a real `peregrine up` counts what its QUIC server and control API did: a QUIC
//! session (logon, an order, a refused logon, a logout) and control calls (answered, refused,
//! unknown routes) move their series, scraped over HTTP like Prometheus does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use peregrine_client::{Client, KeyId, Placed, ServerTrust};
use peregrine_hotpath::Side;
use support::{Trader, Up, http_client, write_config};

/// The value of the series `name{labels}` (exactly as exported, labels sorted), 0 if absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}

/// Scrapes `/metrics` until `series` has `expected` (bounded), and returns that scrape.
async fn scrape_until(up: &Up, series: &str, expected: f64) -> String {
    let deadline = std::time::Instant::now() + support::PROCESS_TIMEOUT;
    loop {
        let text = up.metrics().await;
        if value(&text, series) == expected {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} never {expected}:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_sessions_and_control_calls_move_their_series() {
    let dir = tempfile::tempdir().unwrap();
    let trader = Trader::new(7);
    write_config(dir.path(), &[trader], "");
    let up = Up::start(dir.path());
    let before = up.metrics().await;
    // Every frame type and protocol error is exported from the start, at zero.
    for series in [
        "peregrine_quic_frames_received_total{type=\"new_order\"}",
        "peregrine_quic_frames_sent_total{type=\"ack\"}",
        "peregrine_quic_protocol_errors_total{kind=\"unknown_kind\"}",
        "peregrine_quic_connections_open",
    ] {
        assert!(
            before.contains(&format!("{series} 0")),
            "{series}:\n{before}"
        );
    }

    // Control: a deposit (200), a refused token (401), an unknown route (404).
    up.deposit(7, "usd", "100000", 1).await;
    let refused = http_client()
        .get(format!("{}/control/v1/status", up.http))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let (status, _) = up.control("no-such-route", serde_json::json!({})).await;
    assert_eq!(status, 404);

    // QUIC: a logon, one order, one logon with an unregistered key.
    let client = up.connect(&trader).await;
    let order = client.limit("btcusd", Side::Buy, "50000", "0.01").unwrap();
    let placed = client.place(order).await.unwrap();
    assert!(matches!(placed, Placed::Ack { .. }), "{placed}");
    let stranger = Trader::new(99);
    let refused = Client::connect(
        up.quic,
        ServerTrust::Fingerprint(up.fingerprint),
        KeyId(stranger.key_id),
        stranger.signing_key(),
    )
    .await;
    assert!(refused.is_err());
    // `place` returns at the ack; the order's `Done` may leave in a later write.
    scrape_until(&up, "peregrine_quic_order_entry_seconds_count", 1.0).await;
    // The refused logon's connection ends once its reject is out.
    let during = scrape_until(&up, "peregrine_quic_connections_open", 1.0).await;
    client.logout().await.unwrap();

    for (series, expected) in [
        ("peregrine_quic_connections_open", 1.0),
        ("peregrine_quic_logons_total{outcome=\"accepted\"}", 1.0),
        (
            "peregrine_quic_logons_total{outcome=\"quic.key.unknown\"}",
            1.0,
        ),
        ("peregrine_quic_frames_received_total{type=\"logon\"}", 2.0),
        (
            "peregrine_quic_frames_received_total{type=\"new_order\"}",
            1.0,
        ),
        ("peregrine_quic_frames_sent_total{type=\"ack\"}", 1.0),
        ("peregrine_quic_frames_sent_total{type=\"done\"}", 1.0),
        ("peregrine_quic_order_entry_seconds_count", 1.0),
        (
            "peregrine_control_requests_total{route=\"/control/v1/deposits\",status=\"200\"}",
            1.0,
        ),
        (
            "peregrine_control_requests_total{route=\"/control/v1/status\",status=\"401\"}",
            1.0,
        ),
        (
            "peregrine_control_requests_total{route=\"/control/v1/{*rest}\",status=\"404\"}",
            1.0,
        ),
        (
            "peregrine_control_request_duration_seconds_count{route=\"/control/v1/deposits\"}",
            1.0,
        ),
    ] {
        assert_eq!(value(&during, series), expected, "{series}:\n{during}");
    }
    assert!(value(&during, "peregrine_quic_order_entry_seconds_sum") > 0.0);
    assert_eq!(
        value(&during, "peregrine_quic_connections_accepted_total"),
        2.0
    );

    // After the logout the connection is closed, by the client's logout.
    let after = scrape_until(&up, "peregrine_quic_connections_open", 0.0).await;
    assert_eq!(
        value(
            &after,
            "peregrine_quic_connections_closed_total{reason=\"quic.session.logout\"}"
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        value(
            &after,
            "peregrine_quic_frames_received_total{type=\"logout\"}"
        ),
        1.0
    );
    up.stop();
}

/// The journal writer's group commits show as a `_seconds` histogram read at each scrape: the
/// deposits' commits are counted (at least as many as `journal_commits_total`, which is copied
/// once a second), the buckets are cumulative and end at the count, and the sum is positive.
/// The engine's applies are sampled one in 64 by sequence into `engine_apply_seconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_commits_and_engine_applies_show_as_seconds_histograms() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[], "");
    let up = Up::start(dir.path());
    for deposit in 1..=64 {
        up.deposit(7, "usd", "100", deposit).await;
    }
    let text = up.metrics().await;
    let applies = value(&text, "peregrine_engine_apply_seconds_count");
    assert!(
        (1.0..=2.0).contains(&applies),
        "one in 64 of ~70 commands:\n{text}"
    );
    assert!(value(&text, "peregrine_engine_apply_seconds_sum") > 0.0);
    let count = value(&text, "peregrine_journal_commit_seconds_count");
    assert!(count >= 3.0, "{text}");
    assert!(count >= value(&text, "peregrine_journal_commits_total"));
    assert!(value(&text, "peregrine_journal_commit_seconds_sum") > 0.0);
    let buckets: Vec<f64> = text
        .lines()
        .filter(|line| line.starts_with("peregrine_journal_commit_seconds_bucket{"))
        .map(|line| line.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 25, "24 bounds and +Inf:\n{text}");
    assert!(
        buckets.windows(2).all(|pair| pair[0] <= pair[1]),
        "{buckets:?}"
    );
    assert_eq!(
        value(
            &text,
            "peregrine_journal_commit_seconds_bucket{le=\"+Inf\"}"
        ),
        count
    );
    assert_eq!(
        value(
            &text,
            "peregrine_journal_commit_seconds_bucket{le=\"0.000001\"}"
        ),
        buckets[0]
    );
    up.stop();
}
