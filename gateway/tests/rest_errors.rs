#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Bad input to the REST bridge: each gets a typed 4xx with a stable code and changes nothing.

mod rest_support;

use reqwest::StatusCode;
use rest_support::{Harness, auth_headers_at, code, read};
use serde_json::{Value, json};

const ORDERS: &str = "/api/v2/peatio/market/orders";

fn valid_order() -> Value {
    json!({"market": "btcusd", "side": "buy", "volume": "0.1", "price": "50000"})
}

async fn post_with(h: &Harness, headers: &[(&str, String)], body: &Value) -> (StatusCode, Value) {
    let mut request = h.http.post(format!("{}{ORDERS}", h.base)).json(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    read(request.send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failures_are_401_and_place_nothing() {
    let h = Harness::start().await;
    let order = valid_order();
    // No headers.
    let (status, body) = post_with(&h, &[], &order).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "authz.missing_headers")
    );
    // Unknown key.
    let mut headers = h.auth_headers(1);
    headers[0].1 = "key-99".into();
    let (status, body) = post_with(&h, &headers, &order).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "authz.invalid_api_key")
    );
    // Signed with another account's secret.
    let mut headers = h.auth_headers(1);
    headers[2].1 = auth_headers_at(2, headers[1].1.parse().unwrap())[2]
        .1
        .clone();
    let (status, body) = post_with(&h, &headers, &order).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "authz.invalid_signature")
    );
    // A nonce from a minute ago, correctly signed.
    let stale = h.nonce() - 60_000;
    let (status, body) = post_with(&h, &auth_headers_at(1, stale), &order).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "authz.nonce_expired")
    );
    // A captured request replayed: the first succeeds, the identical second is refused.
    let captured = h.auth_headers(1);
    let (status, first) = post_with(&h, &captured, &order).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, body) = post_with(&h, &captured, &order).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "authz.nonce_reused")
    );
    // So is an older nonce within the window.
    let older = captured[1].1.parse::<u64>().unwrap() - 1;
    let (status, body) = post_with(&h, &auth_headers_at(1, older), &order).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "authz.nonce_reused")
    );
    // Exactly one order exists: the accepted one.
    let (_, orders) = h.get_as(1, ORDERS).await;
    assert_eq!(orders.as_array().unwrap().len(), 1);
    assert_eq!(orders[0]["id"], first["id"]);
    assert!(h.metric("peregrine_rest_auth_failures_total") >= 6.0);
    // Private streams refuse an unsigned upgrade.
    let refused =
        tokio_tungstenite::connect_async(format!("{}/api/v2/ranger/private", h.ws_base)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_typed_4xx_and_change_nothing() {
    let h = Harness::start().await;
    let before = h.balances(1).await;
    let raw = |body: &'static str, content_type: &'static str| {
        let mut request = h
            .http
            .post(format!("{}{ORDERS}", h.base))
            .header("content-type", content_type)
            .body(body);
        for (name, value) in h.auth_headers(1) {
            request = request.header(name, value);
        }
        request
    };
    let (status, body) = read(
        raw("{\"market\": ", "application/json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "request.malformed_json")
    );
    let (status, body) = read(raw("{}", "text/plain").send().await.unwrap()).await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "request.unsupported_media_type"
        )
    );
    let big: &'static str = Box::leak(
        format!(
            "{{\"market\":\"btcusd\",\"pad\":\"{}\"}}",
            "x".repeat(64 * 1024)
        )
        .into_boxed_str(),
    );
    let response = raw(big, "application/json").send().await.unwrap();
    // The unread body leaves the connection unusable: the answer must say so, or the next
    // request on the pooled connection fails with no answer (CI saw `IncompleteMessage`).
    assert_eq!(
        response
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close")
    );
    let (status, body) = read(response).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "request.body_too_large")
    );

    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"market": "btcusd"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "request.invalid_body",
        ),
        (
            json!({"market": "btcusd", "side": "buy", "volume": "1", "price": "50000", "bogus": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "request.invalid_body",
        ),
        // A number is read as written (see `json_numbers_are_read_as_their_literal_text`):
        // this one is not a multiple of the lot.
        (
            json!({"market": "btcusd", "side": "buy", "volume": 0.00001, "price": "50000"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_volume",
        ),
        (
            json!({"market": "ethusd", "side": "buy", "volume": "1", "price": "50000"}),
            StatusCode::NOT_FOUND,
            "market.market.doesnt_exist",
        ),
        (
            json!({"market": "btcusd", "side": "buy", "volume": "0.1", "price": "50000.001"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_price",
        ),
        (
            json!({"market": "btcusd", "side": "buy", "volume": "0.00001", "price": "50000"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_volume",
        ),
        (
            json!({"market": "btcusd", "side": "buy", "volume": "-1", "price": "50000"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_volume",
        ),
        (
            json!({"market": "btcusd", "side": "buy", "volume": "1e-1", "price": "50000"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_volume",
        ),
        (
            json!({"market": "btcusd", "side": "hold", "volume": "1", "price": "50000"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_side",
        ),
        (
            json!({"market": "btcusd", "side": "buy", "volume": "1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_price",
        ),
        (
            json!({"market": "btcusd", "side": "buy", "volume": "1", "price": "1", "ord_type": "iceberg"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_type",
        ),
        (
            json!({"market": "btcusd", "side": "buy", "volume": "1", "price": "1", "client_id": "x1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_client_id",
        ),
        // Well formed, refused by the engine's risk checks: a buy above the price band (a
        // passive buy far below it would rest).
        (
            json!({"market": "btcusd", "side": "buy", "volume": "1", "price": "60000"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_price",
        ),
        (
            json!({"market": "btcusd", "side": "buy", "volume": "99", "price": "50000"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.account.insufficient_balance",
        ),
    ];
    for (body, status, expected) in cases {
        let (got, answer) = h.post_as(1, ORDERS, &body).await;
        assert_eq!((got, code(&answer)), (status, expected), "{body}");
    }

    // Bad queries and paths.
    for (path, status, expected) in [
        (
            "/api/v2/peatio/public/markets/btcusd/trades?limit=abc",
            StatusCode::BAD_REQUEST,
            "request.invalid_query",
        ),
        (
            "/api/v2/peatio/public/markets/btcusd/trades?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "request.invalid_limit",
        ),
        (
            "/api/v2/peatio/public/markets/btcusd/depth?limit=5000",
            StatusCode::UNPROCESSABLE_ENTITY,
            "request.invalid_limit",
        ),
        (
            "/api/v2/peatio/public/markets/btcusd/k-line?period=2",
            StatusCode::UNPROCESSABLE_ENTITY,
            "public.k_line.invalid_period",
        ),
        (
            "/api/v2/peatio/public/markets/btcusd/order-book?nope=1",
            StatusCode::BAD_REQUEST,
            "request.invalid_query",
        ),
        (
            "/api/v2/peatio/public/markets/nope/order-book",
            StatusCode::NOT_FOUND,
            "market.market.doesnt_exist",
        ),
        (
            "/api/v2/peatio/public/currencies/doge",
            StatusCode::NOT_FOUND,
            "public.currency.doesnt_exist",
        ),
        (
            "/api/v2/peatio/public/nothing",
            StatusCode::NOT_FOUND,
            "request.route_not_found",
        ),
        (
            "/api/v2/ranger/public",
            StatusCode::BAD_REQUEST,
            "ranger.upgrade_required",
        ),
    ] {
        let (got, answer) = h.get(path).await;
        assert_eq!((got, code(&answer)), (status, expected), "{path}");
    }
    let (status, body) = h.get_as(1, "/api/v2/peatio/market/orders/notanumber").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "request.invalid_path")
    );
    let (status, body) = h.get_as(1, "/api/v2/peatio/market/orders?state=gone").await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "market.order.invalid_state"
        )
    );
    let response = h
        .http
        .delete(format!("{}{ORDERS}", h.base))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "request.method_not_allowed")
    );

    // Nothing changed.
    assert_eq!(h.balances(1).await, before);
    let (_, orders) = h.get_as(1, ORDERS).await;
    assert_eq!(orders, json!([]));
    let (_, book) = h.get("/api/v2/peatio/public/markets/btcusd/depth").await;
    assert_eq!(
        (book["asks"].clone(), book["bids"].clone()),
        (json!([]), json!([]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_bounded_and_a_stalled_body_holds_only_its_slot() {
    use tokio::io::AsyncWriteExt;

    let config = peregrine_gateway::rest::RestConfig {
        requests_in_flight_max: 1,
        ..Default::default()
    };
    let h = Harness::start_with(config, false).await;
    // A signed request whose body never finishes arriving holds the only slot.
    let addr = h.base.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut head = format!(
        "POST {ORDERS} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n"
    );
    for (name, value) in h.auth_headers(1) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n{\"market\":");
    stalled.write_all(head.as_bytes()).await.unwrap();
    let busy = tokio::time::timeout(rest_support::WAIT, async {
        loop {
            let (status, body) = h.get("/api/v2/peatio/public/timestamp").await;
            if status == StatusCode::SERVICE_UNAVAILABLE {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("never refused while the only slot was held");
    assert_eq!(code(&busy), "server.busy");
    // The stalled client goes away: its slot comes back.
    drop(stalled);
    tokio::time::timeout(rest_support::WAIT, async {
        while h.get("/api/v2/peatio/public/timestamp").await.0 != StatusCode::OK {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the slot never came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_rejects_have_peatio_style_codes_and_plain_messages() {
    let h = Harness::start().await;
    // More than account 1 holds (1,000,000 usd): Peatio's own code.
    let too_big = json!({"market": "btcusd", "side": "buy", "volume": "99", "price": "50000"});
    let (status, body) = post_with(&h, &h.auth_headers(1), &too_big).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "market.account.insufficient_balance", "{body}");
    assert_eq!(body["errors"][0], "market.account.insufficient_balance");
    assert_eq!(
        body["error"]["message"],
        "the available balance is insufficient"
    );

    let halt = peregrine_hotpath::CommandKind::MarketHalt {
        market: peregrine_hotpath::MarketId(1),
    };
    let executed = h
        .engine
        .submit(peregrine_core::Request::new(
            peregrine_hotpath::Actor::System,
            halt,
        ))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(executed.rejected(), None);
    let (status, body) = post_with(&h, &h.auth_headers(1), &valid_order()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Not `market.market.halted` (a doubled prefix), nor the engine's enum and number.
    assert_eq!(code(&body), "market.order.market_halted", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("the market is halted"), "{message}");
    assert!(
        !message.contains("MarketHalted") && !message.contains("code"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_numbers_are_read_as_their_literal_text() {
    let h = Harness::start().await;
    // As Peatio takes them: numbers, not only strings.
    let body = json!({"market": "btcusd", "side": "buy", "volume": 0.1, "price": 50000.01});
    let (status, order) = post_with(&h, &h.auth_headers(1), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["origin_volume"], "0.1");
    assert_eq!(order["price"], "50000.01");

    // Exactly as written, never through f64 (which would round this to 50000.01 and accept it):
    // not a multiple of the 0.01 tick.
    // As written, never through f64 (which would round this to 50000.01 and accept it): not a
    // multiple of the 0.01 tick. Then the one parser's rules, for numbers too: no exponent, no
    // sign, and nothing but numbers and strings.
    for (price, volume, says) in [
        ("50000.010000000000000001", "0.1", "not a multiple"),
        ("50000", "1e-3", "exponent"),
        ("50000", "-1", "sign"),
        ("50000", "true", "expected a decimal"),
    ] {
        let raw =
            format!(r#"{{"market":"btcusd","side":"buy","volume":{volume},"price":{price}}}"#);
        let mut request = h
            .http
            .post(format!("{}{ORDERS}", h.base))
            .header("content-type", "application/json")
            .body(raw.clone());
        for (name, value) in h.auth_headers(1) {
            request = request.header(name, value);
        }
        let (status, body) = read(request.send().await.unwrap()).await;
        assert!(status.is_client_error(), "{raw}: {status} {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{raw}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactions_page_past_the_list_depth_is_refused_not_a_server_error() {
    let h = Harness::start().await;
    // Found by schemathesis: the database failed on the offset and the bridge answered 503.
    let path = "/api/v2/peatio/account/transactions?page=1120933914835185920&limit=268";
    let (status, body) = h.get_as(1, path).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "history.too_deep"),
        "{body}"
    );
}
