//! A private OpenBao server for the tests of `peregrine up` (never the shared one on 8200):
//! not dev mode but raft storage under a temporary directory, initialised with one unseal
//! key, so a test can seal it, stop it and start it again with its keys and tokens.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use peregrine_secrets::{BaoToken, OpenBao};
use serde_json::{Value, json};

use crate::support::http_client;

/// How long OpenBao may take to start, and `up` to notice it answers again.
pub const RECOVERY_WITHIN: Duration = Duration::from_secs(30);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run under scripts/test"))
}

/// A private OpenBao server (not dev mode: file storage survives a restart), initialised with
/// one unseal key.
pub struct FileBao {
    child: Option<Child>,
    home: PathBuf,
    port: u16,
    unseal_key: String,
    pub root_token: String,
}

impl FileBao {
    /// Starts, initialises and unseals a new server under `home`.
    pub async fn start(home: &Path) -> FileBao {
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (port, cluster_port) = (free_port(), free_port());
        // Raft: OpenBao's integrated storage (it has no `file` backend).
        std::fs::create_dir_all(home.join("storage")).unwrap();
        let config = format!(
            "storage \"raft\" {{\n path = \"{}\"\n node_id = \"n1\"\n}}\n\
             listener \"tcp\" {{\n address = \"127.0.0.1:{port}\"\n tls_disable = true\n}}\n\
             api_addr = \"http://127.0.0.1:{port}\"\n\
             cluster_addr = \"http://127.0.0.1:{cluster_port}\"\n",
            home.join("storage").display()
        );
        std::fs::write(home.join("bao.hcl"), config).unwrap();
        let mut bao = FileBao {
            child: None,
            home: home.to_owned(),
            port,
            unseal_key: String::new(),
            root_token: String::new(),
        };
        bao.spawn().await;
        let (status, init) = bao
            .call(
                "PUT",
                "sys/init",
                Some(json!({"secret_shares": 1, "secret_threshold": 1})),
            )
            .await;
        assert_eq!(status, 200, "{init}");
        bao.unseal_key = init["keys"][0].as_str().unwrap().to_owned();
        bao.root_token = init["root_token"].as_str().unwrap().to_owned();
        bao.unseal().await;
        bao
    }

    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server process and waits until it answers (sealed).
    pub async fn spawn(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(env("BAO_BIN"))
            .arg("server")
            .arg(format!("-config={}", self.home.join("bao.hcl").display()))
            .env("HOME", &self.home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + RECOVERY_WITHIN;
        while self.health().await.is_none() {
            assert!(
                Instant::now() < deadline,
                "the private OpenBao did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `sys/health`'s answer, or `None` while nothing answers.
    pub async fn health(&self) -> Option<Value> {
        let url = format!("{}/v1/sys/health", self.addr());
        let response = http_client().get(url).send().await.ok()?;
        response.json().await.ok()
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = http_client()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/v1/{path}", self.addr()),
            )
            .header("X-Vault-Token", &self.root_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Unseals and waits until it serves as the active node.
    pub async fn unseal(&self) {
        let body = json!({ "key": self.unseal_key });
        let (status, answer) = self.call("PUT", "sys/unseal", Some(body)).await;
        assert_eq!(status, 200, "{answer}");
        let deadline = Instant::now() + RECOVERY_WITHIN;
        loop {
            let health = self.health().await.unwrap_or(Value::Null);
            if health["sealed"] == false && health["standby"] == false {
                return;
            }
            assert!(Instant::now() < deadline, "not active: {health}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn seal(&self) {
        let (status, answer) = self.call("PUT", "sys/seal", None).await;
        assert_eq!(status, 204, "{answer}");
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for FileBao {
    fn drop(&mut self) {
        self.kill();
    }
}

impl FileBao {
    /// A client of this server with its root token.
    pub fn root(&self) -> OpenBao {
        OpenBao::new(&self.addr(), BaoToken::new(self.root_token.clone())).unwrap()
    }
}
