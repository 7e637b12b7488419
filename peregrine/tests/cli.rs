//! Runs the built `peregrine` binary as an operator would.

// Helpers outside `#[test]` functions are still test code: they may unwrap and panic, which
// is how a test reports failure (clippy.toml allows it only inside `#[test]` bodies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bound on waiting for the binary to start or stop: generous for a loaded 2-core CI machine.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// The binary with an empty environment (no stray `PEREGRINE_*` or `RUST_LOG`), run in `dir`
/// so a `peregrine.toml` elsewhere cannot leak in.
fn peregrine(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_peregrine"));
    command.env_clear().current_dir(dir);
    command
}

fn stderr_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "expected one line on stderr: {stderr:?}"
    );
    stderr.trim_end().to_owned()
}

#[test]
fn print_config_prints_effective_toml() {
    let dir = tempfile::tempdir().unwrap();
    let output = peregrine(dir.path())
        .args(["up", "--print-config", "--listen", "127.0.0.1:9999"])
        .env("PEREGRINE_LOG__FORMAT", "json")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let table: toml::Table = text.parse().unwrap();
    assert_eq!(table["http"]["listen"].as_str(), Some("127.0.0.1:9999"));
    assert_eq!(table["log"]["format"].as_str(), Some("json"));
    assert_eq!(table["data"]["dir"].as_str(), Some("./data"));
    assert!(
        !dir.path().join("data").exists(),
        "--print-config must not create anything"
    );
}

#[test]
fn print_config_redacts_rest_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-secret-of-at-least-16-bytes-0001";
    std::fs::write(
        dir.path().join("peregrine.toml"),
        format!("[[rest.keys]]\nkey = \"k1\"\nsecret = \"{secret}\"\naccount = 3\n"),
    )
    .unwrap();
    let output = peregrine(dir.path())
        .args(["up", "--print-config"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.contains(secret), "{text}");
    let table: toml::Table = text.parse().unwrap();
    assert_eq!(
        table["rest"]["keys"][0]["secret"].as_str(),
        Some("<redacted>")
    );
    assert_eq!(table["rest"]["keys"][0]["key"].as_str(), Some("k1"));
}

#[test]
fn invalid_value_in_file_is_refused_with_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("peregrine.toml"),
        "[http]\nlisten = \"localhost\"\n",
    )
    .unwrap();
    let output = peregrine(dir.path()).arg("up").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let line = stderr_line(&output);
    assert_eq!(
        line,
        "error: config peregrine.toml:2: invalid value for `http.listen`: invalid socket \
         address syntax"
    );
}

#[test]
fn invalid_value_in_env_is_refused_with_key_and_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = peregrine(dir.path())
        .arg("up")
        .env("PEREGRINE_LOG__LEVEL", "loud")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let line = stderr_line(&output);
    assert!(line.starts_with("error: config: invalid value for `log.level` from PEREGRINE_LOG__LEVEL: unknown variant `loud`"), "{line}");
}

#[test]
fn unknown_key_is_refused_with_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("custom.toml");
    std::fs::write(&config, "[http]\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let output = peregrine(dir.path())
        .args(["up", "--config", "custom.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr_line(&output),
        "error: config custom.toml:2: unknown key `http.lisen` (expected one of: listen, \
         shutdown_timeout_ms)"
    );
}

#[test]
fn missing_explicit_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = peregrine(dir.path())
        .args(["up", "--config", "absent.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_line(&output).starts_with("error: config absent.toml: cannot read:"));
}

/// Kills the child if the test fails before stopping it, so no server outlives the test.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads stdout until the `http  http://ADDR  (…)` summary line; returns the base URL.
fn wait_for_http_url(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        // Drains to the end even once nobody listens: a closed pipe would fail the child's
        // later writes.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let line = receiver
            .recv_timeout(remaining)
            .unwrap_or_else(|e| panic!("no http line on stdout ({e}); saw {seen:?}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"http") {
            assert_eq!(words[2..], ["(/health/alive", "/health/ready", "/metrics)"]);
            return words[1].to_owned();
        }
        seen.push(line);
    }
}

fn wait_with_timeout(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "peregrine did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn up_serves_health_and_metrics_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let child = peregrine(dir.path())
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "state",
            "--log-format",
            "json",
        ])
        // The QUIC default port would collide with other tests (and a developer's `up`).
        .env("PEREGRINE_QUIC__LISTEN", "127.0.0.1:0")
        .env("PEREGRINE_REST__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let url = wait_for_http_url(&mut running.0);
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    assert!(dir.path().join("state").is_dir());

    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let alive = client
        .get(format!("{url}/health/alive"))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200);

    let ready = client
        .get(format!("{url}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body = ready.text().await.unwrap();
    assert!(
        body.starts_with("ready\n") && body.contains("ok http\n") && body.contains("ok journal\n"),
        "{body}"
    );

    let metrics = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("peregrine_build_info{version=\""), "{text}");
    assert!(
        text.contains(
            "peregrine_http_requests_total{method=\"GET\",route=\"/health/alive\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("peregrine_http_request_duration_seconds_bucket"),
        "{text}"
    );
    // The journal is recovered (empty here), the default catalog (3 currencies, 2 markets) is
    // journaled as the first 5 commands, and both journal and engine are exported.
    assert!(text.contains("peregrine_journal_durable_seq 5"), "{text}");
    assert!(text.contains("peregrine_engine_applied_seq 5"), "{text}");
    assert!(body.contains("ok engine\n"), "{body}");

    let pid = running.0.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let status = wait_with_timeout(&mut running.0);
    assert!(status.success(), "exit after SIGTERM: {status:?}");
}

#[test]
fn bench_is_wired_to_the_harness() {
    let dir = tempfile::tempdir().unwrap();
    let output = peregrine(dir.path())
        .args([
            "bench",
            "noop",
            "--json",
            "--duration",
            "0.2",
            "--warmup",
            "0",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["workload"], "noop", "{report}");

    let output = peregrine(dir.path())
        .args(["bench", "no-such-workload"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_line(&output).starts_with("error: bench: unknown workload"));
}

/// `peregrine replay --from DIR` (the spelling) rebuilds an empty journal and audits it.
#[test]
fn replay_from_an_empty_journal_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["replay", "--from"])
        .arg(&journal)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("replayed"), "{stdout}");
}

/// Writes a journal of commands by several actors to `dir`.
fn journal_by_actors(dir: &Path) -> Vec<peregrine_hotpath::Actor> {
    use peregrine_hotpath::{
        AccountId, Actor, ApiKeyId, CommandKind, Envelope, OperatorId, Service, TimestampNs,
    };
    let actors = vec![
        Actor::System,
        Actor::Operator(OperatorId(4)),
        Actor::ApiKey(ApiKeyId(17)),
        Actor::Service(Service::Wallet),
        Actor::ApiKey(ApiKeyId(17)),
    ];
    let config = peregrine_persist::JournalConfig::new(dir);
    let engine_config = peregrine::commands::replay::engine_config();
    let (_, writer) = peregrine_persist::open(&config, engine_config).unwrap();
    for (index, actor) in actors.iter().enumerate() {
        let envelope = Envelope {
            ts: TimestampNs(1_000 + index as u64),
            actor: *actor,
            kind: CommandKind::KillSwitch {
                account: AccountId(3),
                on: index % 2 == 0,
            },
        };
        writer.journal().append(&envelope).unwrap();
    }
    writer.shutdown().unwrap();
    actors
}

/// `replay` says who issued what: a tally per actor, and with `--commands` every command.
#[test]
fn replay_prints_the_actors_of_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    journal_by_actors(&journal);
    let output = peregrine(dir.path())
        .args(["replay", "--commands", "--from"])
        .arg(&journal)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("actors  api-key:17 2, operator:4 1, service:wallet 1, system 1"),
        "{stdout}"
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("command"))
        .collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(
        lines[1].starts_with("command  2  ts 1001  operator:4  KillSwitch"),
        "{stdout}"
    );
}

/// The appliance's configuration in the Kubernetes manifests is one the binary accepts, and
/// it runs the pair as the README says: both pods choose their role through etcd's lease
/// (`standby.of = "leader"`), acknowledge only what the standby has too, and name themselves
/// by the pod name the StatefulSet gives (`PEREGRINE_LEADERSHIP__NODE`).
#[test]
fn the_kubernetes_appliance_configuration_loads_and_runs_a_leased_pair() {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/base/appliance/configmap.yaml");
    let manifest = std::fs::read_to_string(manifest).unwrap();
    // The block scalar under `peregrine.toml: |`, its four-space indent removed.
    let toml: String = manifest
        .lines()
        .skip_while(|line| line.trim() != "peregrine.toml: |")
        .skip(1)
        .take_while(|line| line.is_empty() || line.starts_with("    "))
        .map(|line| format!("{}\n", line.strip_prefix("    ").unwrap_or(line)))
        .collect();
    assert!(
        toml.contains("[leadership]"),
        "no configuration found:\n{toml}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pod.toml"), toml).unwrap();
    let output = peregrine(dir.path())
        .args(["up", "--config", "pod.toml", "--print-config"])
        .env("PEREGRINE_LEADERSHIP__NODE", "appliance-0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "refused: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "of = \"leader\"",
        "node = \"appliance-0\"",
        "ack = \"replicated\"",
        "peer_address = \"{node}.appliance.peregrine-hotpath.svc:7100\"",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
    // Without the pod's name the pair cannot tell its nodes apart: refused.
    let output = peregrine(dir.path())
        .args(["up", "--config", "pod.toml", "--print-config"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr_line(&output).contains("leadership.node"));
}
