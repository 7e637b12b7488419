//! `[fanout]` on a real `peregrine up` and a real NATS with JetStream (`scripts/test` provides
//! it and exports `NATS_URL`): a trade made over QUIC reaches the stream under the market's
//! name, the publisher shows on readiness and on `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use peregrine_client::{Order, Placed};
use peregrine_fanout::Published;
use peregrine_hotpath::{ClientOrderId, MarketId, Price, Qty, Side};
use peregrine_views::Change;
use support::{Trader, Up, http_client, write_config};

const BTCUSD: MarketId = MarketId(1);
/// 50_000.00 usd in ticks of 0.01.
const PRICE: Price = Price(5_000_000);
/// How long the trade may take to reach the stream.
const PUBLISHED_WITHIN: Duration = Duration::from_secs(20);

fn nats_url() -> String {
    match std::env::var("NATS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!("NATS_URL is not set: run the tests with `scripts/test`"),
    }
}

/// The trades published under `subject` so far.
async fn published_trades(stream: &str, subject: &str) -> Vec<(Price, Qty)> {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let context = jetstream::new(client);
    let Ok(stream) = context.get_stream(stream).await else {
        return Vec::new();
    };
    let Ok(message) = stream.get_last_raw_message_by_subject(subject).await else {
        return Vec::new();
    };
    let published = Published::decode(&message.payload).unwrap();
    published
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Trade(trade) => Some((trade.price, trade.qty)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trade_reaches_the_stream_under_the_markets_name() {
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let prefix = format!("up{}-{nanos}", std::process::id());
    let stream = prefix.to_uppercase();
    let (buyer, seller) = (Trader::new(1), Trader::new(2));
    write_config(
        dir.path(),
        &[buyer, seller],
        &format!(
            "[fanout]\nenabled = true\nurl = \"{}\"\nstream = \"{stream}\"\nprefix = \"{prefix}\"\n",
            nats_url()
        ),
    );
    let up = Up::start(dir.path());
    up.deposit(buyer.account, "usd", "100000", 1).await;
    up.deposit(seller.account, "btc", "1", 2).await;
    let buy_client = up.connect(&buyer).await;
    let sell_client = up.connect(&seller).await;
    for (client, id, side) in [(&buy_client, 11, Side::Buy), (&sell_client, 21, Side::Sell)] {
        let placed = client
            .place(Order::limit(
                ClientOrderId(id),
                BTCUSD,
                side,
                PRICE,
                Qty(4_000),
            ))
            .await
            .unwrap();
        assert!(matches!(placed, Placed::Ack { .. }), "{placed:?}");
    }

    let subject = format!("{prefix}.md.btcusd.trades");
    let started = Instant::now();
    loop {
        let trades = published_trades(&stream, &subject).await;
        if !trades.is_empty() {
            assert_eq!(trades, vec![(PRICE, Qty(4_000))]);
            break;
        }
        assert!(
            started.elapsed() < PUBLISHED_WITHIN,
            "no trade on {subject}; ready: {:?}",
            http_client()
                .get(format!("{}/health/ready", up.http))
                .send()
                .await
                .unwrap()
                .text()
                .await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = http_client()
        .get(format!("{}/health/ready", up.http))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);
    let metrics = up.metrics().await;
    let messages = metrics
        .lines()
        .find(|l| l.starts_with("peregrine_fanout_messages_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(messages.is_some_and(|m| m > 0.0), "{metrics}");
    up.stop();
    let client = async_nats::connect(nats_url()).await.unwrap();
    let context = jetstream::new(client);
    context.delete_stream(&stream).await.unwrap();
    let bucket = peregrine_fanout::snapshot::bucket_name(&stream);
    context.delete_key_value(bucket).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_unreachable_trading_goes_on_and_readiness_says_degraded() {
    let dir = tempfile::tempdir().unwrap();
    let buyer = Trader::new(1);
    // Port 1 on loopback: nothing answers.
    write_config(
        dir.path(),
        &[buyer],
        "[fanout]\nenabled = true\nurl = \"nats://127.0.0.1:1\"\n",
    );
    let up = Up::start(dir.path());
    up.deposit(buyer.account, "usd", "100000", 1).await;
    let client = up.connect(&buyer).await;
    let placed = client
        .place(Order::limit(
            ClientOrderId(1),
            BTCUSD,
            Side::Buy,
            PRICE,
            Qty(4_000),
        ))
        .await
        .unwrap();
    assert!(matches!(placed, Placed::Ack { .. }), "{placed:?}");
    let ready = http_client()
        .get(format!("{}/health/ready", up.http))
        .send()
        .await
        .unwrap();
    // The outage shows, but does not take the market's only writer out of service.
    assert_eq!(ready.status(), 200);
    let body = ready.text().await.unwrap();
    assert!(
        body.contains("degraded fanout: fan-out not connected to NATS"),
        "{body}"
    );
    let metrics = up.metrics().await;
    assert!(
        metrics.lines().any(|l| l == "peregrine_fanout_connected 0"),
        "{metrics}"
    );
    up.stop();
}
