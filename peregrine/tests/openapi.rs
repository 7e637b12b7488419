//! The OpenAPI documents a running `peregrine up` serves, the REST bridge's, identity's and the
//! control API's, are valid OpenAPI 3 by an independent validator (PyPI `openapi-spec-validator`,
//! which `scripts/test` installs into `.services/venv`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Up, http_client, write_config};

/// The validator's command, installed by `scripts/test` (never into the system Python).
fn validator() -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../.services/venv/bin/openapi-spec-validator");
    assert!(
        path.exists(),
        "{} is missing: run scripts/test once (it installs PyPI openapi-spec-validator into \
         .services/venv)",
        path.display()
    );
    path
}

/// Runs the validator on `document`; panics with its output when it refuses.
fn assert_valid(name: &str, document: &serde_json::Value, dir: &Path) {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(document).unwrap()).unwrap();
    let output = Command::new(validator()).arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("OK"),
        "the {name} OpenAPI document is invalid:\n{stdout}\n{stderr}"
    );
}

async fn get_json(url: &str, token: Option<&str>) -> serde_json::Value {
    let mut request = http_client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_rest_and_control_documents_are_valid_openapi() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[], "");
    let up = Up::start(dir.path());

    let rest = get_json(&format!("{}/api/v2/openapi.json", up.rest), None).await;
    assert!(rest["openapi"].as_str().unwrap().starts_with("3."));
    assert_valid("rest", &rest, dir.path());

    // The control document is public (it holds no secret): tools fetch it without the token.
    let control = get_json(&format!("{}/control/v1/openapi.json", up.http), None).await;
    assert!(control["openapi"].as_str().unwrap().starts_with("3."));
    assert_valid("control", &control, dir.path());

    // Identity's, on the REST listener: valid, and every operation it lists is served.
    let identity = get_json(&format!("{}/api/v2/barong/openapi.json", up.rest), None).await;
    assert_valid("identity", &identity, dir.path());
    let paths = identity["paths"].as_object().unwrap();
    let operations: usize = paths
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(operations, peregrine_auth::http::openapi::OPERATIONS.len());
    for (path, item) in paths {
        let concrete = path.replace(['{', '}'], "");
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = http_client()
                .request(method.clone(), format!("{}{concrete}", up.rest))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert!(
                !matches!(status, 404 | 405) || !body.contains("request."),
                "{method} {path} is documented but not served: {status} {body}"
            );
        }
    }
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_control_routes_and_methods_answer_the_json_error() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &[], "");
    let up = Up::start(dir.path());
    let client = http_client();
    for (method, path, status, code) in [
        (
            "GET",
            "/control/v1/nope",
            404,
            "control.request.route_not_found",
        ),
        (
            "POST",
            "/control/v1/markets/btcusd/halt/now",
            404,
            "control.request.route_not_found",
        ),
        ("GET", "/control/v1", 404, "control.request.route_not_found"),
        (
            "DELETE",
            "/control/v1/status",
            405,
            "control.request.method_not_allowed",
        ),
        (
            "GET",
            "/control/v1/deposits",
            405,
            "control.request.method_not_allowed",
        ),
        (
            "POST",
            "/control/v1/accounts/x/kill-switch",
            400,
            "control.request.malformed",
        ),
    ] {
        let response = client
            .request(method.parse().unwrap(), format!("{}{path}", up.http))
            .bearer_auth(&up.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert_eq!(body["errors"][0], code, "{method} {path}: {body}");
    }
    up.stop();
}
