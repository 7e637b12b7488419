//! Places one limit order and prints every report for a few seconds.
//!
//! ```sh
//! cargo run -p peregrine-client --example place -- \
//!     <server addr> <server cert sha256 hex> <key id> <ed25519 seed hex> \
//!     <market> <buy|sell> <price ticks> <qty lots> [client order id]
//! ```
//!
//! The server prints its certificate fingerprint at start; the seed is the private half of a key
//! registered in the gateway's `keys` configuration (`SigningKey::public_key_hex` gives the
//! public half to register).

use std::process::ExitCode;
use std::time::Duration;

use peregrine_client::{Client, KeyId, Order, ServerTrust, SigningKey};
use peregrine_hotpath::{ClientOrderId, MarketId, Price, Qty, Side};
use peregrine_proto::hex::parse_hex_32;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [
        addr,
        fingerprint,
        key_id,
        seed,
        market,
        side,
        price,
        qty,
        rest @ ..,
    ] = &args[..]
    else {
        return Err(
            "usage: place <addr> <cert sha256 hex> <key id> <seed hex> <market> \
                    <buy|sell> <price> <qty> [client order id]"
                .into(),
        );
    };
    let fingerprint = parse_hex_32(fingerprint).ok_or("the fingerprint must be 64 hex digits")?;
    let seed = parse_hex_32(seed).ok_or("the seed must be 64 hex digits")?;
    let side = match side.as_str() {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        _ => return Err("side must be buy or sell".into()),
    };
    let client_order_id = match rest.first() {
        Some(id) => id.parse()?,
        None => 1,
    };
    let client = Client::connect(
        addr.parse()?,
        ServerTrust::Fingerprint(fingerprint),
        KeyId(key_id.parse()?),
        SigningKey::from_seed(&seed)?,
    )
    .await?;
    println!(
        "logged on: account {} session {}",
        client.account(),
        client.session().0
    );
    let mut reports = client.reports().ok_or("reports already taken")?;
    let placed = client
        .place(Order::limit(
            ClientOrderId(client_order_id),
            MarketId(market.parse()?),
            side,
            Price(price.parse()?),
            Qty(qty.parse()?),
        ))
        .await?;
    println!("placed: {placed:?}");
    println!("ping: {:?}", client.ping().await?);
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(report)) = tokio::time::timeout_at(until, reports.recv()).await {
        println!("report: {report:?}");
    }
    client.logout().await?;
    Ok(())
}
