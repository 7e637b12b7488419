//! Ranger-style WebSocket streams at `/api/v2/ranger/public` and `/api/v2/ranger/private`
//! (the latter authenticated on the upgrade request with the REST API-key headers, or with
//! identity's access JWT: `Authorization: Bearer <token>`, or — browsers cannot set headers on
//! a WebSocket — the subprotocols `peregrine.jwt, <token>`, answered with `peregrine.jwt`).
//!
//! A connection opened with a JWT lives only as long as its token (≤ 60 s): the client sends
//! `{"event":"token","token":"<fresh JWT>"}` of the same user before it expires, answered by
//! `{"success":{"message":"token accepted","expires_at":<Unix s>}}`; when the last token
//! expires the connection is closed with 1008 `access token expired`. So a session logged out
//! or a user disabled stops receiving within a token's life, as its REST calls do.
//!
//! Protocol: streams are named on the URL (`?stream=btcusd.trades&stream=...`) and/or by
//! messages `{"event":"subscribe","streams":[...]}` / `{"event":"unsubscribe",...}`, answered
//! by `{"success":{"message":"subscribed","streams":[...]}}` or `{"error":{"message":...}}`.
//! Streams: see [`streams::Stream`]. Book increments carry a per-market `sequence` that
//! advances by one per message; a snapshot (`ob-snap`) comes first on subscription and again
//! after the server re-seeds (the client replaces its book then).
//!
//! Bounds: each connection has a queue of `ws_buffer_messages`; a connection that falls that
//! far behind, or whose socket does not take a message within [`SEND_TIMEOUT`], is closed
//! with code 1008 and the reason; at shutdown every connection is closed with 1001 (going
//! away). Inbound messages are limited to [`INBOUND_BYTES_MAX`].

pub mod hub;
pub mod streams;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{
    CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade,
    rejection::WebSocketUpgradeRejection,
};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use peregrine_hotpath::AccountId;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::rest::Bridge;
use crate::rest::error::ApiError;
use hub::{ConnId, Kill, message};
use streams::Stream;

/// Largest inbound message (subscriptions are small).
pub const INBOUND_BYTES_MAX: usize = 16 * 1024;
/// Longest one message may take to go out before the connection counts as stalled.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Close code for slow consumers and protocol abuse (policy violation).
pub(crate) const CLOSE_POLICY: u16 = 1008;
/// Close code at shutdown (going away).
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a message over [`INBOUND_BYTES_MAX`] (RFC 6455 §7.4.1: message too big).
const CLOSE_TOO_BIG: u16 = 1009;
/// The subprotocol naming an access JWT as the next subprotocol (a browser's only header).
pub const JWT_PROTOCOL: &str = "peregrine.jwt";

/// The user a JWT-authenticated connection belongs to, and when its token expires.
#[derive(Debug)]
struct TokenLease {
    sub: String,
    account: AccountId,
    expires_at_s: u64,
}

impl TokenLease {
    /// When the token expires, on the monotonic clock (now if already past).
    fn deadline(&self) -> tokio::time::Instant {
        let left_ms = self
            .expires_at_s
            .saturating_mul(1000)
            .saturating_sub(crate::rest::time::now_ms());
        tokio::time::Instant::now() + Duration::from_millis(left_ms)
    }
}

/// The access JWT of an upgrade request: `Authorization: Bearer`, or the subprotocol after
/// [`JWT_PROTOCOL`].
fn upgrade_token(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.or_else(|| {
        let offered = headers
            .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)?
            .to_str()
            .ok()?;
        let mut protocols = offered.split(',').map(str::trim);
        // Bounded by the header's size: a linear scan for the marker.
        protocols.find(|p| *p == JWT_PROTOCOL)?;
        protocols.next().filter(|token| !token.is_empty())
    })
}

/// Public streams (`GET /api/v2/ranger/public`, a WebSocket upgrade).
pub(crate) async fn public_stream(
    State(bridge): State<Arc<Bridge>>,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    accept(bridge, None, None, query, upgrade)
}

/// Public and private (`order`, `trade`, `balance`, `deposit`, `withdraw`) streams
/// (`GET /api/v2/ranger/private`, a WebSocket upgrade); an access JWT or API-key headers
/// required on the upgrade request.
pub(crate) async fn private_stream(
    State(bridge): State<Arc<Bridge>>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    uri: axum::http::Uri,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Some(token) = upgrade_token(&headers) {
        return match bridge.verify_token(token) {
            Ok((account, claims)) => {
                let lease = TokenLease {
                    sub: claims.sub,
                    account,
                    expires_at_s: claims.exp,
                };
                accept(bridge, Some(lease.account), Some(lease), query, upgrade)
            }
            Err(error) => error.into_response(),
        };
    }
    // The upgrade is a read: its signature covers `GET`, the path and query, an empty body.
    // The peer's address, as for REST: a key with an allowlist opens a stream only from it
    // (no address known, e.g. a server without connect info, refuses such a key).
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |p| p.as_str());
    let peer = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let facts = crate::rest::auth::RequestFacts {
        method: "GET",
        path,
        body_sha256: crate::rest::auth::body_sha256(b""),
        peer,
        scope: peregrine_auth::api_keys::Scopes::READ,
    };
    match bridge.authenticate(&headers, &facts) {
        Ok((account, _actor)) => accept(bridge, Some(account), None, query, upgrade),
        Err(error) => error.into_response(),
    }
}

fn accept(
    bridge: Arc<Bridge>,
    account: Option<AccountId>,
    lease: Option<TokenLease>,
    query: Option<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::bad_request("ranger.upgrade_required", rejection.body_text())
                .into_response();
        }
    };
    let initial = match query_streams(&bridge, query.as_deref(), account.is_some()) {
        Ok(streams) => streams,
        Err(reason) => {
            return ApiError::bad_request("ranger.invalid_stream", reason).into_response();
        }
    };
    let max = bridge.config.ws_connections_max;
    let admitted = bridge
        .ws_connections
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok();
    if !admitted {
        return ApiError::unavailable("ranger.too_many_connections", "connection limit reached")
            .into_response();
    }
    bridge.metrics.ws_connections.inc();
    upgrade
        .protocols([JWT_PROTOCOL])
        .max_message_size(INBOUND_BYTES_MAX)
        .max_frame_size(INBOUND_BYTES_MAX)
        .on_upgrade(move |socket| async move {
            connection(&bridge, socket, account, lease, initial).await;
            bridge.ws_connections.fetch_sub(1, Ordering::AcqRel);
            bridge.metrics.ws_connections.dec();
        })
}

/// `stream=` parameters of the URL.
fn query_streams(
    bridge: &Bridge,
    query: Option<&str>,
    private: bool,
) -> Result<Vec<Stream>, String> {
    let mut streams = Vec::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "stream" && key != "stream[]" && key != "stream%5B%5D" {
            continue;
        }
        for name in value.split(',').filter(|n| !n.is_empty()) {
            streams.push(Stream::parse(&bridge.catalog.load(), name, private)?);
        }
    }
    if streams.len() > bridge.config.ws_streams_max {
        return Err(format!(
            "at most {} streams per connection",
            bridge.config.ws_streams_max
        ));
    }
    Ok(streams)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientMessage {
    event: String,
    #[serde(default)]
    streams: Vec<String>,
    /// A fresh access JWT (`event: token`).
    #[serde(default)]
    token: Option<String>,
}

async fn connection(
    bridge: &Arc<Bridge>,
    mut socket: WebSocket,
    account: Option<AccountId>,
    mut lease: Option<TokenLease>,
    initial: Vec<Stream>,
) {
    let (queue, mut outbound) = mpsc::channel(bridge.config.ws_buffer_messages);
    let kill = Arc::new(Kill::default());
    let id = bridge.lock().hub.register(queue, kill.clone(), account);
    let mut stop = bridge.shutdown.subscribe();
    if !initial.is_empty() {
        subscribe(bridge, id, &initial);
    }
    // Without a token the deadline is never armed (the branch below is disabled).
    let expiry = tokio::time::sleep_until(lease.as_ref().map_or_else(
        || tokio::time::Instant::now() + SEND_TIMEOUT,
        TokenLease::deadline,
    ));
    tokio::pin!(expiry);
    let close = loop {
        tokio::select! {
            biased;
            killed = kill.wait() => break Some(killed),
            () = crate::rest::stopped(&mut stop) => break Some((CLOSE_GOING_AWAY, "server shutting down".into())),
            () = &mut expiry, if lease.is_some() => {
                bridge.metrics.ws_token_expiries_total.inc();
                break Some((CLOSE_POLICY, "access token expired".into()));
            }
            text = outbound.recv() => {
                let Some(text) = text else { break None };
                match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break None,
                    Err(_) => break Some((CLOSE_POLICY, "slow consumer: send timed out".into())),
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Some(deadline) = on_message(bridge, id, account.is_some(), &mut lease, &text) {
                        expiry.as_mut().reset(deadline);
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let error = json!({"error": {"message": "send JSON text messages"}});
                    bridge.lock().hub.send(id, message(&error));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Err(error)) if is_too_big(&error) => break Some((
                    CLOSE_TOO_BIG,
                    format!("messages are at most {INBOUND_BYTES_MAX} bytes"),
                )),
                Some(Ok(Message::Close(_)) | Err(_)) | None => break None,
            },
        }
    };
    bridge.lock().hub.remove(id);
    if let Some((code, reason)) = close {
        tracing::debug!(id, code, %reason, "closing WebSocket connection");
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
    }
}

/// Whether a receive failed because the message or frame exceeded the inbound limit.
fn is_too_big(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|inner| inner.downcast_ref::<tungstenite::Error>())
        .is_some_and(|inner| matches!(inner, tungstenite::Error::Capacity(_)))
}

/// Handles one client message; the new expiry when it renewed the connection's token.
fn on_message(
    bridge: &Bridge,
    id: ConnId,
    private: bool,
    lease: &mut Option<TokenLease>,
    text: &str,
) -> Option<tokio::time::Instant> {
    let parsed: Result<ClientMessage, String> =
        serde_json::from_str(text).map_err(|e| format!("invalid message: {e}"));
    if let Ok(ClientMessage { event, token, .. }) = &parsed
        && event == "token"
    {
        return renew(bridge, id, lease, token.as_deref().unwrap_or_default());
    }
    let outcome = parsed.and_then(|msg| {
        let streams = msg
            .streams
            .iter()
            .map(|name| Stream::parse(&bridge.catalog.load(), name, private))
            .collect::<Result<Vec<_>, _>>()?;
        match msg.event.as_str() {
            "subscribe" => {
                subscribe(bridge, id, &streams);
                Ok(())
            }
            "unsubscribe" => {
                bridge
                    .lock()
                    .hub
                    .unsubscribe(id, &streams, &bridge.catalog.load());
                Ok(())
            }
            other => Err(format!(
                "event is `subscribe`, `unsubscribe` or `token`, not `{other}`"
            )),
        }
    });
    if let Err(reason) = outcome {
        let error = json!({"error": {"message": reason}});
        bridge.lock().hub.send(id, message(&error));
    }
    None
}

/// Renews a JWT connection's lease with `token` (same user and account, verified now); the
/// new deadline, or `None` with an error message sent (the old deadline stands).
fn renew(
    bridge: &Bridge,
    id: ConnId,
    lease: &mut Option<TokenLease>,
    token: &str,
) -> Option<tokio::time::Instant> {
    let outcome = match (lease.as_mut(), bridge.verify_token(token)) {
        (None, _) => Err("this connection is not authenticated by an access token".to_owned()),
        (Some(_), Err(error)) => Err(error.message),
        (Some(held), Ok((account, claims)))
            if claims.sub != held.sub || account != held.account =>
        {
            Err("the token is another user's".to_owned())
        }
        (Some(held), Ok((_, claims))) => {
            // Never shortened: a token older than the one held only confirms the user.
            held.expires_at_s = held.expires_at_s.max(claims.exp);
            Ok(held.expires_at_s)
        }
    };
    let outcome_label = if outcome.is_ok() {
        "accepted"
    } else {
        "refused"
    };
    bridge
        .metrics
        .ws_token_renewals_total
        .with_label_values(&[outcome_label])
        .inc();
    let reply = match &outcome {
        Ok(expires_at) => {
            json!({"success": {"message": "token accepted", "expires_at": expires_at}})
        }
        Err(reason) => json!({"error": {"message": reason}}),
    };
    bridge.lock().hub.send(id, message(&reply));
    outcome
        .ok()
        .and_then(|_| lease.as_ref().map(TokenLease::deadline))
}

fn subscribe(bridge: &Bridge, id: ConnId, streams: &[Stream]) {
    let mut shared = bridge.lock();
    let shared = &mut *shared;
    let result = shared.hub.subscribe(
        id,
        streams,
        bridge.config.ws_streams_max,
        &shared.data,
        &bridge.catalog.load(),
        bridge.config.ws_snapshot_levels,
    );
    if let Err(reason) = result {
        let error = json!({"error": {"message": reason}});
        shared.hub.send(id, message(&error));
    }
}
