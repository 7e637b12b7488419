//! The HTTP side: `/v1/<path>` on 127.0.0.1, bodies bounded, each request answered by the
//! core on a blocking thread (it may fsync the state).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body as HttpBody, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};

use crate::api::Body;
use crate::core::{self, Answer, Core};

/// The largest request body read (OpenBao's is 32 MiB; Peregrine's requests are a few KiB).
pub const BODY_BYTES_MAX: usize = 1 << 20;
/// The most bytes of an oversize body read and discarded before the 413 is sent, so the
/// client sees the answer instead of a reset connection; beyond it the connection is cut.
const DISCARD_BYTES_MAX: usize = 64 << 20;

const _: () = assert!(DISCARD_BYTES_MAX > BODY_BYTES_MAX);

pub(crate) fn router(core: Arc<Core>) -> Router {
    Router::new().fallback(handle).with_state(core)
}

async fn handle(State(core): State<Arc<Core>>, request: Request) -> Response {
    let timer = core.metrics.request_duration_seconds.start_timer();
    let metrics = core.metrics.clone();
    let response = answer(core, request).await;
    timer.observe_duration();
    let status = response.status();
    metrics
        .requests_total
        .with_label_values(&[status.as_str()])
        .inc();
    response
}

async fn answer(core: Arc<Core>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(path) = parts.uri.path().strip_prefix("/v1/").map(str::to_owned) else {
        return reply(core::Answer::from(crate::api::ApiError::not_found()));
    };
    let token = parts
        .headers
        .get("x-vault-token")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bytes = match read_bounded(body).await {
        Ok(bytes) => bytes,
        Err(answer) => return reply(answer),
    };
    let body = match parse_body(&bytes) {
        Ok(body) => body,
        Err(answer) => return reply(answer),
    };
    let method = parts.method.clone();
    let request = core::Request {
        method: parts.method,
        path: path.clone(),
        token,
        body,
    };
    let answer = tokio::task::spawn_blocking(move || core.handle(request)).await;
    let answer = answer
        .unwrap_or_else(|_| Answer::from(crate::api::ApiError::internal("the request failed")));
    tracing::debug!(%method, %path, status = answer.status, "dev secret store request");
    reply(answer)
}

/// The body, at most [`BODY_BYTES_MAX`]; past it, the rest is drained (up to
/// [`DISCARD_BYTES_MAX`]) and the answer is OpenBao's 413.
async fn read_bounded(mut body: HttpBody) -> Result<Bytes, Answer> {
    let too_large = || Answer {
        status: 413,
        body: Some(json!({ "errors": ["http: request body too large"] })),
    };
    let mut kept = Vec::new();
    let mut seen: usize = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Answer::from(crate::api::ApiError::bad(
                "the request body could not be read",
            )));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > DISCARD_BYTES_MAX {
            return Err(too_large());
        }
        if seen <= BODY_BYTES_MAX {
            kept.extend_from_slice(&data);
        }
    }
    if seen > BODY_BYTES_MAX {
        return Err(too_large());
    }
    Ok(Bytes::from(kept))
}

/// An empty body is no parameters; anything else must be a JSON object.
fn parse_body(bytes: &[u8]) -> Result<Body, Answer> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Body::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(body)) => Ok(body),
        Ok(_) => Err(Answer::from(crate::api::ApiError::bad(
            "failed to decode JSON input: not an object",
        ))),
        Err(error) => Err(Answer::from(crate::api::ApiError::bad(format!(
            "failed to decode JSON input: {error}"
        )))),
    }
}

fn reply(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match answer.body {
        None => status.into_response(),
        Some(body) => {
            let mut response = (status, body.to_string()).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
    }
}
