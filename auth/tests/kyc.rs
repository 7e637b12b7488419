//! KYC end to end over HTTP on loopback, against real MariaDB, real OpenBao (transit data
//! keys) and real SMTP: profiles and their transitions, labels and levels, the level gate,
//! encrypted documents only their owner (or compliance) reads, uploads refused before their
//! body is read, and the provider webhook's signature and replay window. Every refusal is
//! typed and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use peregrine_auth::Role;
use peregrine_auth::audit::{self, ChainStatus, Outcome};
use peregrine_auth::kyc::webhook::sign;
use peregrine_auth::kyc::{GatedAction, KvLocation, KycError};
use peregrine_auth::store::ProfileState;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use support::{Harness, PrivateBao, Session, start, start_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WEBHOOK_SECRET: &str = "the provider's shared secret, 32 bytes at least";

/// A small PNG (the signature is what the check reads) with a recognisable payload.
fn png(payload: &[u8]) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

async fn upload(
    h: &Harness,
    session: &Session,
    doc_type: &str,
    mime: &str,
    content: Vec<u8>,
) -> support::Answer {
    let request = h
        .request(
            "POST",
            &format!(
                "/resource/documents?doc_type={doc_type}&doc_number=AB123456&doc_expire=2031-01-31"
            ),
            Some(session),
        )
        .header("Content-Type", mime)
        .body(content);
    h.send(request).await
}

async fn level(h: &Harness, session: &Session) -> i64 {
    h.user(session).await.level
}

async fn profile_state(h: &Harness, session: &Session) -> ProfileState {
    let user = h.user(session).await;
    h.identity
        .store()
        .profile_of(user.id)
        .await
        .unwrap()
        .unwrap()
        .state
}

/// The audit records whose action is `action`.
async fn audited(h: &Harness, action: &str) -> Vec<audit::AuditEntry> {
    let rows = h.identity.store().audit_page(0, 10_000).await.unwrap();
    rows.into_iter()
        .map(|row| row.entry)
        .filter(|entry| entry.action == action)
        .collect()
}

fn complete_profile() -> Value {
    json!({"first_name": "Ada", "last_name": "Lovelace", "dob": "1815-12-10",
           "address": "12 St James's Square", "city": "London", "postcode": "SW1Y 4JH",
           "country": "GBR", "metadata": "{\"nationality\":\"GB\"}"})
}

#[tokio::test]
async fn a_profile_moves_drafted_submitted_verified_and_no_other_way() {
    let h = start("kyc_profile", |_| {}).await;
    let alice = h.member("alice").await;
    let compliance = h.operator(Role::Compliance).await;
    let answer = h
        .call("GET", "/resource/profiles/me", None, Some(&alice))
        .await;
    assert_eq!(answer.code(), "resource.profile.doesnt_exist");

    let answer = h
        .call(
            "POST",
            "/resource/profiles",
            Some(json!({"first_name": "Ada"})),
            Some(&alice),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["state"], "drafted");
    let again = h
        .call("POST", "/resource/profiles", Some(json!({})), Some(&alice))
        .await;
    assert_eq!(again.code(), "resource.profile.exist");
    // Submitting an incomplete profile is refused and leaves it drafted.
    let answer = h
        .call(
            "PUT",
            "/resource/profiles",
            Some(json!({"first_name": "Ada", "confirm": true})),
            Some(&alice),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "resource.profile.invalid_params");
    assert_eq!(profile_state(&h, &alice).await, ProfileState::Drafted);
    // A reviewer cannot verify a drafted profile.
    let review = |state: &'static str| json!({"uid": alice.uid, "state": state});
    let answer = h
        .call(
            "PUT",
            "/admin/profiles",
            Some(review("verified")),
            Some(&compliance),
        )
        .await;
    assert_eq!(
        answer.code(),
        "resource.profile.invalid_transition",
        "{}",
        answer.body
    );
    assert_eq!(profile_state(&h, &alice).await, ProfileState::Drafted);

    let mut body = complete_profile();
    body["confirm"] = json!(true);
    let answer = h
        .call("PUT", "/resource/profiles", Some(body), Some(&alice))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["state"], "submitted");
    // Submitted: the user can no longer change it.
    let answer = h
        .call(
            "PUT",
            "/resource/profiles",
            Some(json!({"first_name": "Eve"})),
            Some(&alice),
        )
        .await;
    assert_eq!(answer.code(), "resource.profile.invalid_transition");
    let me = h
        .call("GET", "/resource/profiles/me", None, Some(&alice))
        .await;
    assert_eq!(me.body["first_name"], "Ada");
    assert_eq!(me.body["state"], "submitted");
    // The user cannot review its own profile.
    let answer = h
        .call(
            "PUT",
            "/admin/profiles",
            Some(review("verified")),
            Some(&alice),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.code(), "authz.forbidden");
    assert_eq!(profile_state(&h, &alice).await, ProfileState::Submitted);

    let answer = h
        .call(
            "PUT",
            "/admin/profiles",
            Some(review("verified")),
            Some(&compliance),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["state"], "verified");
    let labels = h.call("GET", "/resource/labels", None, Some(&alice)).await;
    assert!(
        labels
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["key"] == "profile" && l["value"] == "verified" && l["scope"] == "private"),
        "{}",
        labels.body
    );
    // Verified is final: neither a second review nor an edit moves it.
    for (path, body, session) in [
        ("/admin/profiles", review("rejected"), &compliance),
        ("/resource/profiles", json!({"first_name": "Eve"}), &alice),
    ] {
        let answer = h.call("PUT", path, Some(body), Some(session)).await;
        assert_eq!(
            answer.code(),
            "resource.profile.invalid_transition",
            "{path}"
        );
    }
    assert_eq!(profile_state(&h, &alice).await, ProfileState::Verified);
    let reviews = audited(&h, "kyc.profile.review").await;
    assert!(
        reviews
            .iter()
            .any(|e| e.outcome == Outcome::Allowed && e.target == alice.uid)
    );
    assert!(
        reviews.iter().any(
            |e| e.outcome == Outcome::Denied && e.code == "resource.profile.invalid_transition"
        )
    );
    assert!(
        h.metrics_text()
            .contains("auth_kyc_profile_transitions_total{state=\"verified\"} 1")
    );
}

#[tokio::test]
async fn a_rejected_profile_goes_back_to_drafted_when_edited() {
    let h = start("kyc_reject", |_| {}).await;
    let bob = h.member("bob").await;
    let admin = h.operator(Role::Admin).await;
    let mut body = complete_profile();
    body["confirm"] = json!(true);
    let answer = h
        .call("POST", "/resource/profiles", Some(body), Some(&bob))
        .await;
    assert_eq!(answer.body["state"], "submitted", "{}", answer.body);
    let answer = h
        .call(
            "PUT",
            "/admin/profiles",
            Some(json!({"uid": bob.uid, "state": "rejected"})),
            Some(&admin),
        )
        .await;
    assert_eq!(answer.body["state"], "rejected", "{}", answer.body);
    let answer = h
        .call(
            "PUT",
            "/resource/profiles",
            Some(complete_profile()),
            Some(&bob),
        )
        .await;
    assert_eq!(answer.body["state"], "drafted", "{}", answer.body);
}

#[tokio::test]
async fn labels_raise_the_level_by_the_rules_and_public_labels_never_do() {
    let h = start("kyc_labels", |_| {}).await;
    let alice = h.member("alice").await;
    let compliance = h.operator(Role::Compliance).await;
    let support_role = h.operator(Role::Support).await;
    assert_eq!(level(&h, &alice).await, 1, "a verified e-mail is level 1");
    // A user cannot give itself a level label, in any scope.
    let answer = h
        .call(
            "POST",
            "/resource/labels",
            Some(json!({"key": "phone", "value": "verified"})),
            Some(&alice),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(answer.code(), "resource.labels.private");
    let answer = h
        .call(
            "POST",
            "/resource/labels",
            Some(json!({"key": "nickname", "value": "ada"})),
            Some(&alice),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(level(&h, &alice).await, 1);
    let bad = h
        .call(
            "POST",
            "/resource/labels",
            Some(json!({"key": "Bad Key", "value": "x"})),
            Some(&alice),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Support may not write labels; the refusal changes nothing and is audited.
    let set = |key: &str| json!({"uid": alice.uid, "key": key, "value": "verified"});
    let answer = h
        .call(
            "POST",
            "/admin/users/labels",
            Some(set("phone")),
            Some(&support_role),
        )
        .await;
    assert_eq!(answer.code(), "authz.forbidden");
    assert_eq!(level(&h, &alice).await, 1);

    // A document without a phone is still level 1: every lower level's rule must hold.
    let answer = h
        .call(
            "POST",
            "/admin/users/labels",
            Some(set("document")),
            Some(&compliance),
        )
        .await;
    assert_eq!(answer.body["level"], 1, "{}", answer.body);
    let answer = h
        .call(
            "POST",
            "/admin/users/labels",
            Some(set("phone")),
            Some(&compliance),
        )
        .await;
    assert_eq!(answer.body["level"], 3, "{}", answer.body);
    assert_eq!(level(&h, &alice).await, 3);
    let answer = h
        .call(
            "DELETE",
            "/admin/users/labels",
            Some(json!({"uid": alice.uid, "key": "phone"})),
            Some(&compliance),
        )
        .await;
    assert_eq!(answer.body["level"], 1, "{}", answer.body);

    // The level gate: trade at 1, withdraw from 2.
    let user = h.user(&alice).await;
    let source = peregrine_auth::Source::default();
    h.kyc
        .gate(&user, GatedAction::Trade, &source)
        .await
        .unwrap();
    let refused = h.kyc.gate(&user, GatedAction::Withdraw, &source).await;
    assert_too_low(refused, 2, 1);
    let denied = audited(&h, "kyc.gate.withdraw").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].code, "authz.insufficient_level");
    h.call(
        "POST",
        "/admin/users/labels",
        Some(set("phone")),
        Some(&compliance),
    )
    .await;
    let user = h.user(&alice).await;
    h.kyc
        .gate(&user, GatedAction::Withdraw, &source)
        .await
        .unwrap();

    let labels = h
        .call("DELETE", "/resource/labels/nickname", None, Some(&alice))
        .await;
    assert_eq!(labels.status, StatusCode::OK, "{}", labels.body);
    let again = h
        .call("DELETE", "/resource/labels/nickname", None, Some(&alice))
        .await;
    assert_eq!(again.code(), "resource.labels.not_found");
    assert!(matches!(
        audit::verify(h.identity.store()).await.unwrap(),
        ChainStatus::Intact { .. }
    ));
}

#[tokio::test]
async fn the_gate_follows_configured_levels() {
    let h = start("kyc_gate", |kyc| {
        kyc.trade_level_min = 2;
        kyc.withdraw_level_min = 3;
    })
    .await;
    let alice = h.member("alice").await;
    let user = h.user(&alice).await;
    let source = peregrine_auth::Source::default();
    let refused = h.kyc.gate(&user, GatedAction::Trade, &source).await;
    assert_too_low(refused, 2, 1);
}

fn assert_too_low(result: Result<(), KycError>, required_want: i64, level_want: i64) {
    match result {
        Err(KycError::LevelTooLow { required, level }) => {
            assert_eq!((required, level), (required_want, level_want));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn documents_are_sealed_with_a_transit_data_key_and_only_their_owner_reads_them() {
    let h = start("kyc_documents", |_| {}).await;
    let alice = h.member("alice").await;
    let bob = h.member("bob").await;
    let compliance = h.operator(Role::Compliance).await;
    let superadmin = h.operator(Role::Superadmin).await;
    let content = png(b"alice's passport scan: P<GBRLOVELACE<<ADA");
    let answer = upload(&h, &alice, "passport", "image/png", content.clone()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let id = answer.body["id"].as_i64().unwrap();
    assert_eq!(answer.body["size"], content.len());

    // At rest: the wrapped data key and AES-GCM ciphertext, never the content.
    let mut db = sqlx::MySqlConnection::connect(&h.database_url)
        .await
        .unwrap();
    let (wrapped, nonce, ciphertext): (String, Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT wrapped_key, nonce, ciphertext FROM documents WHERE id = ?")
            .bind(id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert!(wrapped.starts_with("vault:v1:"), "{wrapped}");
    assert_eq!(nonce.len(), 12);
    assert_eq!(ciphertext.len(), content.len() + 16);
    assert!(
        !ciphertext
            .windows(8)
            .any(|w| w == b"passport" || w == b"LOVELACE")
    );

    let read = h
        .call(
            "GET",
            &format!("/resource/documents/{id}"),
            None,
            Some(&alice),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.bytes, content);
    assert_eq!(read.headers["content-type"], "image/png");
    assert_eq!(read.headers["cache-control"], "no-store");

    // Bob asks for Alice's document by id: "not found", as an id that does not exist; the
    // attempt is audited and nothing changes.
    let before = h
        .identity
        .store()
        .documents_of(h.user(&alice).await.id)
        .await
        .unwrap();
    for path in [
        format!("/resource/documents/{id}"),
        format!("/resource/documents/{}", id + 1000),
    ] {
        let answer = h.call("GET", &path, None, Some(&bob)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.code(), "resource.documents.doesnt_exist");
        assert!(!answer.bytes.windows(8).any(|w| w == b"LOVELACE"));
    }
    let bobs = h.call("GET", "/resource/documents", None, Some(&bob)).await;
    assert_eq!(bobs.body, json!([]));
    let after = h
        .identity
        .store()
        .documents_of(h.user(&alice).await.id)
        .await
        .unwrap();
    assert_eq!(before, after);
    let reads = audited(&h, "kyc.document.read").await;
    assert!(
        reads.iter().any(|e| e.actor == bob.uid
            && e.target == id.to_string()
            && e.outcome == Outcome::Denied)
    );

    // Compliance reads other users' documents; no other role does, not even superadmin.
    let answer = h
        .call(
            "GET",
            &format!("/admin/documents/{id}"),
            None,
            Some(&compliance),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.bytes, content);
    let list = h
        .call(
            "GET",
            &format!("/admin/users/{}/documents", alice.uid),
            None,
            Some(&compliance),
        )
        .await;
    assert_eq!(list.body.as_array().unwrap().len(), 1, "{}", list.body);
    for session in [&superadmin, &bob] {
        let answer = h
            .call(
                "GET",
                &format!("/admin/documents/{id}"),
                None,
                Some(session),
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(answer.code(), "authz.forbidden");
        assert!(answer.bytes.len() < 200);
    }
    let denied = audited(&h, "rbac.kyc.document.read_any").await;
    assert!(denied.iter().any(|e| e.actor == superadmin.uid
        && e.outcome == Outcome::Denied
        && e.code == "authz.forbidden"));
    assert!(
        denied
            .iter()
            .any(|e| e.actor == compliance.uid && e.outcome == Outcome::Allowed)
    );

    // A ciphertext moved to Bob's row does not open for Bob: it is bound to its owner.
    let bob_doc = upload(&h, &bob, "passport", "image/png", png(b"bob"))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    sqlx::query("UPDATE documents SET wrapped_key = ?, nonce = ?, ciphertext = ? WHERE id = ?")
        .bind(&wrapped)
        .bind(&nonce)
        .bind(&ciphertext)
        .bind(bob_doc)
        .execute(&mut db)
        .await
        .unwrap();
    let answer = h
        .call(
            "GET",
            &format!("/resource/documents/{bob_doc}"),
            None,
            Some(&bob),
        )
        .await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!answer.bytes.windows(8).any(|w| w == b"LOVELACE"));
    let text = h.metrics_text();
    assert!(
        text.contains("auth_kyc_documents_total{operation=\"upload\",outcome=\"ok\"} 2"),
        "{text}"
    );
    assert!(text.contains("auth_kyc_document_seal_seconds_count 2"));
    assert!(text.contains("route=\"/api/v2/barong/resource/documents/{id}\""));
}

#[tokio::test]
async fn uploads_are_refused_by_type_and_size_before_the_body_is_read() {
    let h = start("kyc_uploads", |kyc| kyc.document_bytes_max = 4096).await;
    let alice = h.member("alice").await;
    let cases = [
        (
            "passport",
            "text/html",
            png(b"x"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "resource.documents.invalid_content_type",
        ),
        (
            "passport",
            "image/svg+xml",
            png(b"x"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "resource.documents.invalid_content_type",
        ),
        (
            "tax_return",
            "image/png",
            png(b"x"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resource.documents.invalid_type",
        ),
        (
            "passport",
            "image/png",
            png(&[0; 4096]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "resource.documents.too_large",
        ),
        (
            "passport",
            "application/pdf",
            png(b"x"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resource.documents.content_mismatch",
        ),
    ];
    for (doc_type, mime, content, status, code) in cases {
        let answer = upload(&h, &alice, doc_type, mime, content).await;
        assert_eq!(answer.status, status, "{doc_type} {mime}: {}", answer.body);
        assert_eq!(answer.code(), code);
    }
    let user = h.user(&alice).await;
    assert!(
        h.identity
            .store()
            .documents_of(user.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(audited(&h, "kyc.document.upload").await.len(), 5);

    // A declared gigabyte is refused at once, from the headers: the server answers without
    // waiting for (or buffering) a byte of the body. Chunked, with no length: the same.
    let gigabyte = "Content-Length: 1073741824";
    let reply = raw_upload(&h, &alice, gigabyte).await;
    assert!(reply.starts_with("http/1.1 413"), "{reply}");
    assert!(reply.contains("connection: close"), "{reply}");
    let reply = raw_upload(&h, &alice, "Transfer-Encoding: chunked").await;
    assert!(reply.starts_with("http/1.1 411"), "{reply}");
    // Refused for want of a session, before the body: the connection closes too.
    let anonymous = h
        .send(
            h.request(
                "POST",
                "/resource/documents?doc_type=passport&doc_number=1",
                None,
            )
            .header("Content-Type", "image/png")
            .body(png(b"x")),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers["connection"], "close");
    assert!(
        h.identity
            .store()
            .documents_of(user.id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Sends an upload's head with `framing` and no body; the reply's head, lower-cased.
async fn raw_upload(h: &Harness, session: &Session, framing: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let head = format!(
        "POST /api/v2/barong/resource/documents?doc_type=passport&doc_number=1 HTTP/1.1\r\n\
         Host: x\r\nCookie: peregrine_session={}\r\nX-CSRF-Token: {}\r\n\
         Content-Type: image/png\r\n{framing}\r\n\r\n",
        session.cookie, session.csrf
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut reply = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut reply))
        .await
        .expect("answered before the body")
        .unwrap();
    String::from_utf8_lossy(&reply[..read]).to_ascii_lowercase()
}

async fn webhook(h: &Harness, body: &Value, at_ms: i64, secret: &str) -> support::Answer {
    let body = serde_json::to_vec(body).unwrap();
    let timestamp = at_ms.to_string();
    let signature = sign(secret.as_bytes(), &timestamp, &body);
    let request = h
        .request("POST", "/identity/kyc/webhook", None)
        .header("Content-Type", "application/json")
        .header("X-KYC-Timestamp", timestamp)
        .header("X-KYC-Signature", signature)
        .body(body);
    h.send(request).await
}

#[tokio::test]
async fn the_webhook_takes_only_fresh_signed_events_and_sets_private_labels() {
    let h = start("kyc_webhook", |kyc| {
        kyc.webhook_secret = Some(WEBHOOK_SECRET.to_owned())
    })
    .await;
    let alice = h.member("alice").await;
    let now = h.identity.now_ms();
    let window = h.kyc.config().webhook_window_ms;
    let event = |id: &str| json!({"event_id": id, "uid": alice.uid, "labels": [{"key": "phone", "value": "verified"}]});
    let refusals = [
        (
            webhook(
                &h,
                &event("e1"),
                now,
                "another secret of more than 32 bytes",
            )
            .await,
            "kyc.webhook.invalid_signature",
        ),
        (
            webhook(&h, &event("e1"), now - window - 1, WEBHOOK_SECRET).await,
            "kyc.webhook.stale",
        ),
        (
            webhook(&h, &event("e1"), now + window + 1, WEBHOOK_SECRET).await,
            "kyc.webhook.stale",
        ),
    ];
    for (answer, code) in refusals {
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
        assert_eq!(answer.code(), code);
    }
    let unsigned = h
        .send(
            h.request("POST", "/identity/kyc/webhook", None)
                .json(&event("e1")),
        )
        .await;
    assert_eq!(unsigned.code(), "kyc.webhook.invalid_signature");
    // A signature over another body does not carry over.
    let body = serde_json::to_vec(&event("e1")).unwrap();
    let signature = sign(WEBHOOK_SECRET.as_bytes(), &now.to_string(), b"{}");
    let swapped = h
        .send(
            h.request("POST", "/identity/kyc/webhook", None)
                .header("X-KYC-Timestamp", now.to_string())
                .header("X-KYC-Signature", signature)
                .body(body),
        )
        .await;
    assert_eq!(swapped.code(), "kyc.webhook.invalid_signature");
    assert_eq!(
        level(&h, &alice).await,
        1,
        "no refused call changed anything"
    );

    let answer = webhook(&h, &event("e1"), now, WEBHOOK_SECRET).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(level(&h, &alice).await, 2);
    // The same event again, even freshly signed, is a replay.
    h.identity
        .store()
        .apply_labels(
            h.user(&alice).await.id,
            &[peregrine_auth::store::LabelChange {
                key: "phone",
                scope: "private",
                value: None,
            }],
            now,
            &|_| 1,
        )
        .await
        .unwrap();
    let replay = webhook(&h, &event("e1"), now + 1, WEBHOOK_SECRET).await;
    assert_eq!(replay.status, StatusCode::CONFLICT);
    assert_eq!(replay.code(), "kyc.webhook.replayed");
    assert_eq!(level(&h, &alice).await, 1);

    // A verdict the profile cannot take (it is only drafted) changes nothing, labels
    // included; the same event is accepted once the profile is submitted: it was not
    // remembered as seen.
    h.call(
        "POST",
        "/resource/profiles",
        Some(complete_profile()),
        Some(&alice),
    )
    .await;
    let verdict = json!({"event_id": "e2", "uid": alice.uid, "profile": "verified",
                         "labels": [{"key": "document", "value": "verified"}]});
    let early = webhook(&h, &verdict, now, WEBHOOK_SECRET).await;
    assert_eq!(
        early.code(),
        "resource.profile.invalid_transition",
        "{}",
        early.body
    );
    let has_document = || async {
        let user = h.user(&alice).await;
        let labels = h.identity.store().labels_of(user.id).await.unwrap();
        labels.iter().any(|l| l.key == "document")
    };
    assert!(!has_document().await);
    let mut profile = complete_profile();
    profile["confirm"] = json!(true);
    h.call("PUT", "/resource/profiles", Some(profile), Some(&alice))
        .await;
    assert_eq!(profile_state(&h, &alice).await, ProfileState::Submitted);
    let answer = webhook(&h, &verdict, now, WEBHOOK_SECRET).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(profile_state(&h, &alice).await, ProfileState::Verified);
    assert!(has_document().await);
    let calls = audited(&h, "kyc.webhook").await;
    assert_eq!(
        calls
            .iter()
            .filter(|e| e.outcome == Outcome::Allowed)
            .count(),
        2
    );
    assert_eq!(
        calls
            .iter()
            .filter(|e| e.outcome == Outcome::Denied)
            .count(),
        7
    );
    assert!(
        h.metrics_text()
            .contains("auth_kyc_webhooks_total{outcome=\"kyc.webhook.replayed\"} 1")
    );
}

#[tokio::test]
async fn a_sealed_or_stopped_openbao_answers_503_and_changes_nothing() {
    let private = PrivateBao::start().await;
    let h = start_with("kyc_vault_down", private.client.clone(), |_| {}).await;
    let alice = h.member("alice").await;
    let content = png(b"sealed before the seal");
    let answer = upload(&h, &alice, "passport", "image/png", content.clone()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let id = answer.body["id"].as_i64().unwrap();
    let user = h.user(&alice).await;

    private.client.seal().await.unwrap();
    let read = h
        .call(
            "GET",
            &format!("/resource/documents/{id}"),
            None,
            Some(&alice),
        )
        .await;
    let upload_sealed = upload(&h, &alice, "selfie", "image/png", png(b"x")).await;
    drop(private);
    let upload_stopped = upload(&h, &alice, "selfie", "image/png", png(b"x")).await;
    for answer in [&read, &upload_sealed, &upload_stopped] {
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.body
        );
        assert_eq!(answer.code(), "identity.vault_unavailable");
        assert_eq!(answer.headers["retry-after"], "1");
    }
    assert_eq!(
        h.identity
            .store()
            .documents_of(user.id)
            .await
            .unwrap()
            .len(),
        1
    );
    let denied = audited(&h, "kyc.document.upload").await;
    assert_eq!(
        denied
            .iter()
            .filter(|e| e.code == "identity.vault_unavailable")
            .count(),
        2
    );
    // What needs no OpenBao goes on.
    let listed = h
        .call("GET", "/resource/documents", None, Some(&alice))
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let labels = h.call("GET", "/resource/labels", None, Some(&alice)).await;
    assert_eq!(labels.status, StatusCode::OK);
}

/// `{"secret": secret}`, the KV document of the webhook secret.
fn secret_document(secret: &str) -> serde_json::Map<String, Value> {
    let mut document = serde_json::Map::new();
    document.insert("secret".to_owned(), json!(secret));
    document
}

/// A webhook call signed with each secret in turn until one is answered 200 (bounded: the
/// follower reads KV every 100 ms).
async fn until_accepted(h: &Harness, body: &Value, secret: &str) -> Duration {
    let started = std::time::Instant::now();
    loop {
        let answer = webhook(h, body, h.identity.now_ms(), secret).await;
        if answer.status == StatusCode::OK {
            return started.elapsed();
        }
        assert_eq!(
            answer.code(),
            "kyc.webhook.invalid_signature",
            "{}",
            answer.body
        );
        assert!(started.elapsed() < Duration::from_secs(5), "never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_webhook_secret_comes_from_openbao_kv_and_rotates_without_a_restart() {
    const OLD: &str = "the provider's first secret, 32 bytes or more";
    const NEW: &str = "the provider's second secret, 32 bytes or more";
    const GRACE_MS: i64 = 60_000;
    let root = support::bao();
    let mount = support::unique("kyc-kv");
    root.ensure_engine(&mount, peregrine_secrets::sys::Engine::KvV2)
        .await
        .unwrap();
    let path = "kyc/webhook";
    root.kv_put(&mount, path, &secret_document(OLD))
        .await
        .unwrap();
    let h = start("kyc_webhook_kv", |kyc| {
        kyc.webhook_secret_kv = Some(KvLocation::new(&mount, path));
        kyc.webhook_secret_refresh_ms = 100;
        kyc.webhook_secret_grace_ms = GRACE_MS;
    })
    .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let kyc = h.kyc.clone();
    let follower = tokio::spawn(async move { kyc.follow_webhook_secret(stopped).await });
    let alice = h.member("alice").await;
    let event = |id: &str| json!({"event_id": id, "uid": alice.uid, "labels": [{"key": "phone", "value": "verified"}]});

    // Read at start: the KV secret signs, another does not.
    let refused = webhook(&h, &event("k1"), h.identity.now_ms(), NEW).await;
    assert_eq!(refused.code(), "kyc.webhook.invalid_signature");
    let answer = webhook(&h, &event("k1"), h.identity.now_ms(), OLD).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    // Rotated in KV: the new secret is taken without a restart, the old one still signs.
    root.kv_put(&mount, path, &secret_document(NEW))
        .await
        .unwrap();
    until_accepted(&h, &event("k2"), NEW).await;
    let answer = webhook(&h, &event("k3"), h.identity.now_ms(), OLD).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "old secret in the grace window: {}",
        answer.body
    );

    // The grace window over: only the new secret signs.
    h.clock.advance_ms(GRACE_MS);
    let refused = webhook(&h, &event("k4"), h.identity.now_ms(), OLD).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert_eq!(refused.code(), "kyc.webhook.invalid_signature");
    let answer = webhook(&h, &event("k4"), h.identity.now_ms(), NEW).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    // A malformed document is refused by the reader; the secret held stays.
    root.kv_put(&mount, path, &secret_document("short"))
        .await
        .unwrap();
    let invalid = || {
        h.kyc
            .metrics()
            .webhook_secret_reads_total
            .with_label_values(&["kyc.webhook.secret_invalid"])
            .get()
    };
    let started = std::time::Instant::now();
    while invalid() == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "never read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = webhook(&h, &event("k5"), h.identity.now_ms(), NEW).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    stop.send_replace(true);
    follower.await.unwrap();
}
