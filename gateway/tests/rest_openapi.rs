#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The OpenAPI document served at /api/v2/openapi.json lists every route, and every route it
//! lists is served.

mod rest_support;

use reqwest::StatusCode;
use rest_support::{Harness, read};

/// Every route of the bridge.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v2/openapi.json"),
    ("get", "/api/v2/peatio/public/markets"),
    ("get", "/api/v2/peatio/public/markets/tickers"),
    ("get", "/api/v2/peatio/public/markets/{market}/tickers"),
    ("get", "/api/v2/peatio/public/markets/{market}/order-book"),
    ("get", "/api/v2/peatio/public/markets/{market}/depth"),
    ("get", "/api/v2/peatio/public/markets/{market}/trades"),
    ("get", "/api/v2/peatio/public/markets/{market}/k-line"),
    ("get", "/api/v2/peatio/public/currencies"),
    ("get", "/api/v2/peatio/public/currencies/{id}"),
    ("get", "/api/v2/peatio/public/timestamp"),
    ("get", "/api/v2/peatio/public/health/alive"),
    ("get", "/api/v2/peatio/public/health/ready"),
    ("get", "/api/v2/peatio/public/trading_fees"),
    ("post", "/api/v2/peatio/market/orders"),
    ("get", "/api/v2/peatio/market/orders"),
    ("get", "/api/v2/peatio/market/orders/{id}"),
    ("get", "/api/v2/peatio/market/orders/cid/{client_id}"),
    ("post", "/api/v2/peatio/market/orders/{id}/cancel"),
    (
        "post",
        "/api/v2/peatio/market/orders/cid/{client_id}/cancel",
    ),
    ("post", "/api/v2/peatio/market/orders/cancel"),
    ("get", "/api/v2/peatio/market/trades"),
    ("get", "/api/v2/peatio/account/balances"),
    ("get", "/api/v2/peatio/account/balances/{currency}"),
    ("get", "/api/v2/peatio/account/transactions"),
    ("get", "/api/v2/peatio/account/deposit_address/{currency}"),
    ("get", "/api/v2/peatio/account/deposits"),
    ("get", "/api/v2/peatio/account/beneficiaries"),
    ("post", "/api/v2/peatio/account/beneficiaries"),
    ("delete", "/api/v2/peatio/account/beneficiaries/{id}"),
    ("get", "/api/v2/peatio/account/withdraws"),
    ("post", "/api/v2/peatio/account/withdraws"),
];

/// The WebSocket routes: served, and described in the `ranger` tag rather than listed as plain
/// GET operations (they answer 101 and then speak WebSocket, not HTTP).
const WEBSOCKET_ROUTES: &[&str] = &["/api/v2/ranger/public", "/api/v2/ranger/private"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let h = Harness::start().await;
    let (status, doc) = h.get("/api/v2/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            assert!(
                ROUTES.contains(&(method.as_str(), path.as_str())),
                "documented but not in the route list: {method} {path}"
            );
            documented += 1;
        }
    }
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "route not documented: {method} {path}"
        );
    }
    assert_eq!(documented, ROUTES.len());
    // True to the server: a path parameter is in the path (the query ones were once declared
    // `in: path`), and a signed operation needs all three headers and says it may answer 401.
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let in_path = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    parameter["in"],
                    if in_path { "path" } else { "query" },
                    "{method} {path} {name}"
                );
            }
            if let Some(security) = operation["security"].as_array() {
                assert_eq!(
                    security[0].as_object().unwrap().len(),
                    3,
                    "{method} {path}: {security:?}"
                );
                assert!(operation["responses"]["401"].is_object(), "{method} {path}");
                // A key's scopes or allowlist can refuse any signed request.
                assert!(operation["responses"]["403"].is_object(), "{method} {path}");
            }
        }
    }
    for scheme in ["apikey", "nonce", "signature"] {
        assert!(doc["components"]["securitySchemes"][scheme].is_object());
    }
    let ranger = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tag| tag["name"] == "ranger")
        .unwrap();
    for path in WEBSOCKET_ROUTES {
        assert!(paths.get(*path).is_none(), "{path} listed as an operation");
        assert!(ranger["description"].as_str().unwrap().contains(path));
        // Served: a plain GET is told to upgrade, not that the route does not exist.
        let (status, body) = read(
            h.http
                .get(format!("{}{path}", h.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
            "{path}: {status} {body}"
        );
        assert_ne!(body["error"]["code"], "request.route_not_found", "{path}");
    }

    // Each is served: no route answers the router's own "no such route".
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{market}", "btcusd")
            .replace("{id}", "1")
            .replace("{client_id}", "1")
            .replace("{currency}", "btc")
            .replace("/currencies/1", "/currencies/btc");
        let url = format!("{}{concrete}", h.base);
        let request = match *method {
            "get" => h.http.get(url),
            _ => h.http.post(url),
        };
        let (status, body) = read(request.send().await.unwrap()).await;
        assert_ne!(
            body["error"]["code"], "request.route_not_found",
            "{method} {path} is documented but not served"
        );
        assert!(
            !status.is_server_error() || *path == "/api/v2/peatio/public/health/ready",
            "{method} {path}: {status}"
        );
    }
}
