//! `auth`: what authenticating one request costs a gateway, in process, nothing but memory (no
//! store, no OpenBao, no socket), and what a login costs identity.
//!
//! - The reported latency: an HMAC API-key order request, open loop — the headers as a server
//!   holds them after parsing, the SHA-256 of a 64-byte order body, the HMAC-SHA256 over the
//!   nonce, method, path and body digest, the constant-time comparison, the nonce and scope
//!   checks (`KeyStore::authenticate`). Every request carries a new, increasing nonce, signed before
//!   the run (signing is the client's cost).
//! - `params.jwt_remembered_ns`: an access JWT the verifier has seen before (the usual case: a
//!   client sends its one token with every request for up to 60 s): the constant-time compare
//!   with the remembered token and the claims' times (`jwt::Verifier::verify`).
//! - `params.jwt_signature_ns`: a JWT seen for the first time: base64url, JSON, and one ed25519
//!   signature check.
//! - `params.logins_per_sec`: argon2id password verifications per second on one thread, with
//!   the parameters identity hashes with (`params.argon2`).
//!
//! The JWT and login parts are timed per call (closed loop): each is one CPU-bound call with no
//! queue in front of it. The floor is one clock read.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use peregrine_auth::api_keys::Scopes;
use peregrine_auth::jwt::{TokenConfig, Verifier};
use peregrine_auth::password;
use peregrine_gateway::rest::RestKey;
use peregrine_gateway::rest::auth::{KeyStore, RequestFacts, body_sha256, sign_request};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;

use crate::args::{BenchArgs, WorkloadFlag};
use crate::error::BenchError;
use crate::floor;
use crate::open_loop::{OpenLoopConfig, run_open_loop};
use crate::recorder::LatencyRecorder;
use crate::registry::Workload;
use crate::report::Report;

/// The registry entry.
pub const WORKLOAD: Workload = Workload {
    name: NAME,
    summary: "HMAC API-key request verification in process (open loop); JWT verification and argon2id logins/s in params; floor = one clock read",
    flags: &[WorkloadFlag::Rate],
    run,
};

const NAME: &str = "auth";
/// Offered rate of HMAC requests: a busy gateway's share of one core.
pub const RATE_DEFAULT_OPS_PER_SEC: u64 = 50_000;
/// Requests signed before the run (warmup and measured phase together); each ~100 bytes.
const SIGNED_REQUESTS_MAX: u64 = 2_000_000;
/// Timed calls of each JWT path.
const JWT_CALLS: usize = 20_000;
/// Distinct tokens for the first-sight path (each verified once).
const JWT_FRESH_TOKENS: usize = 2_000;
/// Timed password verifications (argon2id at ~20 ms each on this machine).
const LOGINS: usize = 40;

const API_KEY: &str = "bench-key";
const API_SECRET: &str = "0123456789abcdef0123456789abcdef";
const ORDER_PATH: &str = "/api/v2/peatio/market/orders";
const ORDER_BODY: &[u8] = br#"{"market":"btcusd","side":"buy","volume":"0.01","price":"50000"}"#;
const PASSWORD: &str = "correct horse battery staple";

const _: () = assert!(JWT_FRESH_TOKENS <= JWT_CALLS);

fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    let config = OpenLoopConfig::from_args(NAME, args, RATE_DEFAULT_OPS_PER_SEC)?;
    let floor_ns = floor::clock_read_ns();
    let hmac = hmac_requests(&config)?;
    let jwt_remembered = jwt_latency(false)?;
    let jwt_signature = jwt_latency(true)?;
    let (logins_per_sec, login) = logins()?;
    Ok(Report::from_open_loop(&config, &hmac, Some(floor_ns))
        .with_param("jwt_remembered_ns", summary_json(&jwt_remembered)?)
        .with_param("jwt_signature_ns", summary_json(&jwt_signature)?)
        .with_param("logins_per_sec", logins_per_sec)
        .with_param("login_ns", summary_json(&login)?)
        .with_param(
            "argon2",
            json!({
                "algorithm": "argon2id",
                "memory_kib": password::ARGON2_MEMORY_KIB,
                "iterations": password::ARGON2_ITERATIONS,
                "lanes": password::ARGON2_LANES,
            }),
        ))
}

/// The HMAC part, open loop.
fn hmac_requests(config: &OpenLoopConfig) -> Result<crate::open_loop::OpenLoopOutcome, BenchError> {
    let phases = config.warmup + config.duration;
    let requests_n = (phases.as_secs_f64() * config.rate_ops_per_sec.get() as f64).ceil() as u64;
    if requests_n > SIGNED_REQUESTS_MAX {
        return Err(BenchError::invalid(
            "--rate",
            format!("rate x (warmup + duration) must be at most {SIGNED_REQUESTS_MAX} requests"),
        ));
    }
    let now_ms = now_ms()?;
    // Nonces are milliseconds near now, one per request, strictly increasing.
    let first_nonce_ms = now_ms;
    let signatures: Vec<String> = (0..requests_n)
        .map(|i| {
            sign_request(
                API_SECRET,
                first_nonce_ms + i,
                "POST",
                ORDER_PATH,
                ORDER_BODY,
            )
        })
        .collect();
    let window_ms = requests_n + 60_000;
    let store = KeyStore::new(
        &[RestKey {
            key: API_KEY.into(),
            secret: API_SECRET.into(),
            account: 7,
            legacy_signature: false,
        }],
        window_ms,
    );
    let mut next: u64 = 0;
    run_open_loop(config, |_| {
        let index = next;
        next += 1;
        let signature = signatures
            .get(index as usize)
            .ok_or_else(|| BenchError::invalid("--rate", "more requests than were signed"))?;
        let headers = headers(first_nonce_ms + index, signature)?;
        let facts = RequestFacts {
            method: "POST",
            path: ORDER_PATH,
            body_sha256: body_sha256(ORDER_BODY),
            peer: None,
            scope: Scopes::TRADE,
        };
        store
            .authenticate(&headers, &facts, now_ms + index)
            .map(|_| ())
            .map_err(|error| BenchError::workload(NAME, format!("refused: {error:?}")))
    })
}

fn headers(nonce_ms: u64, signature: &str) -> Result<HeaderMap, BenchError> {
    let value =
        |text: &str| HeaderValue::from_str(text).map_err(|error| BenchError::workload(NAME, error));
    let mut headers = HeaderMap::new();
    headers.insert("x-auth-apikey", HeaderValue::from_static(API_KEY));
    headers.insert("x-auth-nonce", value(&nonce_ms.to_string())?);
    headers.insert("x-auth-signature", value(signature)?);
    Ok(headers)
}

/// Per-call latency of `Verifier::verify`: the same token again and again, or (`fresh`) each
/// of `JWT_FRESH_TOKENS` tokens once, round after round on a new verifier.
fn jwt_latency(fresh: bool) -> Result<LatencyRecorder, BenchError> {
    let pair = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .and_then(|pkcs8| {
            Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| ring::error::Unspecified)
        })
        .map_err(|_| BenchError::workload(NAME, "ed25519 key generation failed"))?;
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "identity-jwt-v1",
        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}]});
    let verifier_of = || {
        Verifier::from_jwks(jwks.to_string().as_bytes(), TokenConfig::default())
            .map_err(|error| BenchError::workload(NAME, error))
    };
    let now_s = now_ms()? / 1000;
    let tokens_n = if fresh { JWT_FRESH_TOKENS } else { 1 };
    let tokens: Vec<String> = (0..tokens_n).map(|jti| token(&pair, now_s, jti)).collect();
    let mut verifier = verifier_of()?;
    // The remembered path is measured once the token is remembered.
    if !fresh {
        verifier
            .verify(&tokens[0], now_s)
            .map_err(|error| BenchError::workload(NAME, error))?;
    }
    let mut recorder = LatencyRecorder::new()?;
    for call in 0..JWT_CALLS {
        if fresh && call > 0 && call % JWT_FRESH_TOKENS == 0 {
            verifier = verifier_of()?;
        }
        let token = &tokens[call % tokens_n];
        let started = Instant::now();
        let verified = verifier.verify(token, now_s);
        let elapsed_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        verified.map_err(|error| BenchError::workload(NAME, error))?;
        recorder.record_ns(elapsed_ns);
    }
    Ok(recorder)
}

fn token(pair: &Ed25519KeyPair, now_s: u64, jti: usize) -> String {
    let header = URL_SAFE_NO_PAD
        .encode(json!({"alg": "EdDSA", "typ": "JWT", "kid": "identity-jwt-v1"}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"iss": "peregrine-identity", "aud": "peregrine",
        "sub": "ID0123456789", "email": "a@example.com", "role": "member", "level": 1,
        "account": 1024, "iat": now_s, "nbf": now_s, "exp": now_s + 60, "jti": jti.to_string()})
        .to_string(),
    );
    let input = format!("{header}.{claims}");
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(pair.sign(input.as_bytes()))
    )
}

/// argon2id verifications of a correct password: logins per second on one thread and each
/// verification's latency.
fn logins() -> Result<(f64, LatencyRecorder), BenchError> {
    let phc = password::hash(PASSWORD, &SystemRandom::new())
        .map_err(|error| BenchError::workload(NAME, error))?;
    let mut recorder = LatencyRecorder::new()?;
    let started = Instant::now();
    for _ in 0..LOGINS {
        let call = Instant::now();
        let verified = password::verify(PASSWORD, &phc);
        let elapsed_ns = u64::try_from(call.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if !verified {
            return Err(BenchError::workload(NAME, "the password did not verify"));
        }
        recorder.record_ns(elapsed_ns);
    }
    let logins_per_sec = LOGINS as f64 / started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    Ok((logins_per_sec, recorder))
}

fn summary_json(recorder: &LatencyRecorder) -> Result<serde_json::Value, BenchError> {
    Ok(serde_json::to_value(recorder.summary())?)
}

fn now_ms() -> Result<u64, BenchError> {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|error| BenchError::workload(NAME, error))?;
    Ok(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reports_every_part_with_argon2_parameters() {
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_millis(200);
        args.warmup = Duration::from_millis(50);
        args.rate_ops_per_sec = Some(5_000);
        let report = run(&args).unwrap();
        assert_eq!(report.workload, NAME);
        assert_eq!(report.params["ops_abandoned_count"], 0);
        assert_eq!(report.params["ops_count"], 1_000);
        for part in ["jwt_remembered_ns", "jwt_signature_ns", "login_ns"] {
            let p99 = report.params[part]["p99"].as_u64().unwrap();
            assert!(p99 > 0, "{part}");
        }
        assert!(report.params["logins_per_sec"].as_f64().unwrap() > 0.0);
        assert_eq!(
            report.params["argon2"]["memory_kib"],
            password::ARGON2_MEMORY_KIB
        );
    }

    #[test]
    fn refuses_more_requests_than_it_signs() {
        let mut args = BenchArgs::new(NAME);
        args.duration = Duration::from_secs(60);
        args.rate_ops_per_sec = Some(1_000_000);
        assert!(matches!(
            run(&args),
            Err(BenchError::InvalidArgument { flag: "--rate", .. })
        ));
    }
}
