//! The REST bridge's test harness: a real engine (shard, sequencer, optionally a durable
//! journal) set up through `EngineHandle::submit`, the real server on 127.0.0.1:0, and real
//! HTTP and WebSocket clients.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use peregrine_core::{EngineHandle, Request};
use peregrine_gateway::catalog::{Catalog, CurrencyDef, MarketDef};
use peregrine_gateway::rest::auth::{sign, sign_request};
use peregrine_gateway::rest::{RestConfig, RestKey, RestServer, serve};
use peregrine_hotpath::runtime::{IdlePolicy, Shard, ShardConfig};
use peregrine_hotpath::{AccountId, Amount, CommandKind, DepositId, Engine, EngineConfig};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(5);
/// Accounts 1..=ACCOUNTS are funded with 10 btc and 1,000,000 usd each.
pub const ACCOUNTS: u32 = 3;

pub fn catalog() -> Catalog {
    let currencies = vec![
        CurrencyDef {
            code: "btc".into(),
            id: 1,
            precision: 8,
        },
        CurrencyDef {
            code: "usd".into(),
            id: 2,
            precision: 6,
        },
    ];
    let markets = vec![MarketDef {
        name: "btcusd".into(),
        id: 1,
        base: "btc".into(),
        quote: "usd".into(),
        tick: "0.01".parse().unwrap(),
        lot: "0.0001".parse().unwrap(),
        max_price: "1000000".parse().unwrap(),
        max_amount: "100".parse().unwrap(),
        max_notional: "10000000".parse().unwrap(),
        band_bps: 1_000,
        reference_price: "50000".parse().unwrap(),
        maker_fee_ppm: 1_000,
        taker_fee_ppm: 2_000,
    }];
    Catalog::new(&currencies, &markets).unwrap()
}

pub fn key_name(account: u32) -> String {
    format!("key-{account}")
}

pub fn secret(account: u32) -> String {
    format!("secret-of-account-{account}")
}

fn shard_config() -> ShardConfig {
    ShardConfig {
        core: None,
        idle: IdlePolicy::Park {
            spins: 100,
            park_us: 200,
        },
        input_capacity: 4_096,
        query_capacity: 1_024,
        output_capacity: 65_536,
    }
}

pub struct Harness {
    pub server: Option<RestServer>,
    pub engine: Arc<EngineHandle>,
    pub base: String,
    pub ws_base: String,
    pub http: reqwest::Client,
    pub registry: prometheus::Registry,
    nonce: AtomicU64,
    _journal: Option<(peregrine_persist::JournalWriter, tempfile::TempDir)>,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(RestConfig::default(), false).await
    }

    /// Starts with `config` (listen and keys are set here); `durable` journals to a temporary
    /// directory in durable mode and routes with a task on the test's runtime, as `peregrine up`
    /// does (the other harnesses keep the router thread, so both placements are exercised).
    pub async fn start_with(config: RestConfig, durable: bool) -> Harness {
        Harness::start_journaled(config, durable.then(peregrine_persist::io::WriteGate::new)).await
    }

    /// Starts in durable mode with `gate` on the journal writer's kernel calls (closing it
    /// stalls the disk), or without a journal when `gate` is `None`.
    pub async fn start_journaled(
        mut config: RestConfig,
        gate: Option<peregrine_persist::io::WriteGate>,
    ) -> Harness {
        let catalog = Arc::new(catalog());
        let (engine, journal) = if let Some(gate) = gate {
            let dir = tempfile::tempdir().unwrap();
            let mut journal_config = peregrine_persist::JournalConfig::new(dir.path());
            journal_config.segment_bytes = 4 << 20;
            let faults = peregrine_persist::io::FaultPlan::new().with_gate(gate);
            let (recovered, writer) =
                peregrine_persist::open_with_faults(&journal_config, EngineConfig::small(), faults)
                    .unwrap();
            let shard =
                Shard::start_at(recovered.engine, recovered.last_seq, &shard_config()).unwrap();
            let journal = writer.journal().clone();
            let engine = EngineHandle::start_placed(
                shard,
                Some(journal),
                peregrine_core::Views::default(),
                peregrine_core::RouterPlacement::Task(tokio::runtime::Handle::current()),
            )
            .unwrap();
            (engine, Some((writer, dir)))
        } else {
            let shard =
                Shard::start(Engine::new(EngineConfig::small()).unwrap(), &shard_config()).unwrap();
            (EngineHandle::start(shard).unwrap(), None)
        };
        let setup_catalog = catalog.clone();
        let mut commands = engine
            .query(move |e| setup_catalog.missing_in(e))
            .unwrap()
            .unwrap();
        for account in 1..=ACCOUNTS {
            for (currency, amount) in [(1, 1_000_000_000), (2, 1_000_000_000_000)] {
                commands.push(CommandKind::Deposit {
                    account: AccountId(account),
                    currency: peregrine_hotpath::CurrencyId(currency),
                    amount: Amount(amount),
                    deposit: DepositId(u64::from(account) << 16 | u64::from(currency)),
                });
            }
        }
        for command in commands {
            let executed = engine
                .submit(Request::new(peregrine_hotpath::Actor::System, command))
                .unwrap()
                .await
                .unwrap();
            assert_eq!(executed.rejected(), None, "{executed:?}");
        }
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.keys = (1..=ACCOUNTS)
            .map(|account| RestKey {
                key: key_name(account),
                secret: secret(account),
                account,
                // Opted in: `auth_headers` signs Barong's `nonce + key`, not knowing the
                // request it goes with (the error tests send hand-made requests with it).
                // `get_as` and `post_as` sign the whole request.
                legacy_signature: true,
            })
            .collect();
        // As in the appliance: every name gets the `peregrine_` prefix.
        let registry =
            prometheus::Registry::new_custom(Some("peregrine".to_owned()), None).unwrap();
        let server = serve(config, engine.clone(), catalog, &registry)
            .await
            .unwrap();
        let addr = server.local_addr();
        let harness = Harness {
            server: Some(server),
            engine,
            base: format!("http://{addr}"),
            ws_base: format!("ws://{addr}"),
            http: reqwest::Client::new(),
            registry,
            nonce: AtomicU64::new(0),
            _journal: journal,
        };
        harness.wait_ready().await;
        harness
    }

    async fn wait_ready(&self) {
        // Generous: on a loaded machine the first seed may take a while; normally milliseconds.
        tokio::time::timeout(4 * WAIT, async {
            loop {
                let (status, _) = self.get("/api/v2/peatio/public/health/ready").await;
                if status == StatusCode::OK {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the market-data feed never became ready");
    }

    /// A fresh nonce: now, but strictly above every nonce given before.
    pub fn nonce(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut last = self.nonce.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .nonce
                .compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The three auth headers for `account`.
    pub fn auth_headers(&self, account: u32) -> Vec<(&'static str, String)> {
        let nonce = self.nonce();
        auth_headers_at(account, nonce)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        read(response).await
    }

    /// The three auth headers for `account`, signed over the whole request.
    pub fn signed_headers(
        &self,
        account: u32,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        let nonce = self.nonce();
        let signature = sign_request(&secret(account), nonce, method, path, body);
        vec![
            ("X-Auth-Apikey", key_name(account)),
            ("X-Auth-Nonce", nonce.to_string()),
            ("X-Auth-Signature", signature),
        ]
    }

    pub async fn get_as(&self, account: u32, path: &str) -> (StatusCode, Value) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        for (name, value) in self.signed_headers(account, "GET", path, b"") {
            request = request.header(name, value);
        }
        read(request.send().await.unwrap()).await
    }

    pub async fn post_as(&self, account: u32, path: &str, body: &Value) -> (StatusCode, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        for (name, value) in self.signed_headers(account, "POST", path, &bytes) {
            request = request.header(name, value);
        }
        read(request.body(bytes).send().await.unwrap()).await
    }

    /// Places an order; expects 201 and returns the order.
    pub async fn place(&self, account: u32, body: Value) -> Value {
        let (status, order) = self
            .post_as(account, "/api/v2/peatio/market/orders", &body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        order
    }

    /// Every balance of `account` as (currency, available, locked) strings.
    pub async fn balances(&self, account: u32) -> Vec<(String, String, String)> {
        let (status, list) = self
            .get_as(account, "/api/v2/peatio/account/balances")
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list.as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["currency"].as_str().unwrap().to_owned(),
                    b["balance"].as_str().unwrap().to_owned(),
                    b["locked"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    pub async fn ws_public(&self, query: &str) -> Ws {
        let url = format!("{}/api/v2/ranger/public{query}", self.ws_base);
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Ws { stream }
    }

    pub async fn ws_private(&self, account: u32, query: &str) -> Result<Ws, tungstenite::Error> {
        let url = format!("{}/api/v2/ranger/private{query}", self.ws_base);
        let mut request = url.into_client_request().unwrap();
        for (name, value) in self.auth_headers(account) {
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Ws { stream })
    }

    pub fn metric(&self, name: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|family| family.name() == name)
            .flat_map(|family| family.get_metric().iter())
            .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
            .sum()
    }
}

pub fn auth_headers_at(account: u32, nonce: u64) -> Vec<(&'static str, String)> {
    let key = key_name(account);
    vec![
        ("X-Auth-Apikey", key.clone()),
        ("X-Auth-Nonce", nonce.to_string()),
        ("X-Auth-Signature", sign(&secret(account), nonce, &key)),
    ]
}

pub async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// The error code of an error body (and checks the body's shape).
pub fn code(body: &Value) -> &str {
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(body["errors"][0].as_str(), Some(code), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    code
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn send(&mut self, value: Value) {
        self.stream
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    /// The next text message as JSON; panics on close or timeout.
    pub async fn next(&mut self) -> Value {
        match self.next_message().await {
            Message::Text(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    pub async fn next_message(&mut self) -> Message {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.stream.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(message)) => return message,
                    other => panic!("stream ended: {other:?}"),
                }
            }
        })
        .await
        .expect("no message in time")
    }

    /// The next message carrying `key`, skipping others.
    pub async fn next_with(&mut self, key: &str) -> Value {
        loop {
            let message = self.next().await;
            if let Some(value) = message.get(key) {
                return value.clone();
            }
        }
    }
}
