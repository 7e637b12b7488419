//! Places one limit order by market name and decimal price and quantity, prints the account's
//! balances of the market's currencies and every report for a few seconds, then logs out.
//!
//! ```sh
//! cargo run -p peregrine-client --example place -- \
//!     <server addr> <server cert sha256 hex> <key id> <private key hex> \
//!     <market> <buy|sell> <price> <quantity> [client order id]
//! # e.g.
//! cargo run -p peregrine-client --example place -- \
//!     127.0.0.1:4433 "$FINGERPRINT" 1 "$PRIVATE_KEY" btcusd buy 50000 0.01
//! ```
//!
//! `peregrine up` prints the certificate fingerprint (the `quic` line); `peregrine keygen`
//! prints a key pair: the `[[quic.keys]]` entry for `peregrine.toml` and the private key for
//! this program. The client order id defaults to a fresh time-based one, so runs never collide.
//! Every exit path closes the QUIC session, so a failed run does not hold the key's session slot.

use std::process::ExitCode;
use std::time::Duration;

use peregrine_client::{Client, ClientError, KeyId, ServerTrust, SigningKey};
use peregrine_hotpath::{ClientOrderId, Side};
use peregrine_proto::hex::parse_hex_32;

/// How long reports are printed after the order was placed.
const REPORTS_FOR: Duration = Duration::from_secs(3);

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

/// The parsed command line.
struct Args {
    addr: std::net::SocketAddr,
    fingerprint: [u8; 32],
    key_id: KeyId,
    market: String,
    side: Side,
    price: String,
    qty: String,
    client_order_id: Option<ClientOrderId>,
}

/// The command line and the signing key (kept apart: the key moves into the client).
fn parse_args() -> Result<(Args, SigningKey), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [
        addr,
        fingerprint,
        key_id,
        key,
        market,
        side,
        price,
        qty,
        rest @ ..,
    ] = &args[..]
    else {
        return Err(
            "usage: place <addr> <cert sha256 hex> <key id> <private key hex> <market> \
                    <buy|sell> <price> <quantity> [client order id]"
                .into(),
        );
    };
    let signing_key = SigningKey::from_seed_hex(key)?;
    let args = Args {
        addr: addr.parse()?,
        fingerprint: parse_hex_32(fingerprint).ok_or("the fingerprint must be 64 hex digits")?,
        key_id: KeyId(key_id.parse()?),
        market: market.clone(),
        side: match side.as_str() {
            "buy" => Side::Buy,
            "sell" => Side::Sell,
            _ => return Err("side must be buy or sell".into()),
        },
        price: price.clone(),
        qty: qty.clone(),
        client_order_id: match rest.first() {
            Some(id) => Some(ClientOrderId(id.parse()?)),
            None => None,
        },
    };
    Ok((args, signing_key))
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (args, signing_key) = parse_args()?;
    let client = Client::connect(
        args.addr,
        ServerTrust::Fingerprint(args.fingerprint),
        args.key_id,
        signing_key,
    )
    .await?;
    println!(
        "logged on: account {} session {}; markets: {}",
        client.account(),
        client.session().0,
        client
            .directory()
            .markets()
            .iter()
            .map(|m| m.name.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let traded = trade(&client, &args).await;
    // Log out on every path, failed or not: the server frees the key's session at once.
    let logged_out = client.logout().await;
    traded?;
    Ok(logged_out?)
}

async fn trade(client: &Client, args: &Args) -> Result<(), ClientError> {
    let mut order = client.limit(&args.market, args.side, &args.price, &args.qty)?;
    if let Some(id) = args.client_order_id {
        order.client_order_id = id;
    }
    let market = client.market(&args.market)?;
    let (base, quote) = (market.base, market.quote);
    let mut reports = client
        .reports()
        .ok_or_else(|| ClientError::Protocol("reports already taken".into()))?;
    println!("client order id {}", order.client_order_id.0);
    println!("placed: {}", client.place(order).await?);
    for currency in [base, quote] {
        let code = client.directory().currency_by_id(currency).map(|c| c.code);
        if let Some(code) = code {
            println!("balance {}", client.balance(code.as_str()).await?);
        }
    }
    let until = tokio::time::Instant::now() + REPORTS_FOR;
    while let Ok(Some(report)) = tokio::time::timeout_at(until, reports.recv()).await {
        println!("report: {report:?}");
    }
    Ok(())
}
