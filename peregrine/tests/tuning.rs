//! `peregrine tuning check|apply|revert` as an operator runs them: against a fixture tree
//! (`--root`, where apply and revert write) and against this host; and `up`'s one warning.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .env_clear()
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn put(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// An untuned 2-CPU host: sysctls at common distribution defaults, every IRQ on both CPUs.
fn untuned_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "proc/cmdline", "ro quiet");
    put(root, "sys/devices/system/cpu/online", "0-1");
    put(root, "proc/irq/24/smp_affinity_list", "0-1");
    put(root, "proc/irq/default_smp_affinity", "3");
    put(root, "proc/sys/vm/swappiness", "60");
    put(root, "proc/sys/net/core/rmem_max", "212992");
    put(root, "proc/sys/net/core/wmem_max", "212992");
    put(root, "proc/sys/net/core/busy_poll", "0");
    put(root, "proc/sys/net/core/busy_read", "0");
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_prints_a_table_or_json_and_exits_3_only_with_strict() {
    let fixture = untuned_root();
    let root = fixture.path().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let table = run(
        work.path(),
        &["tuning", "check", "--root", root, "--cores", "1"],
    );
    assert_eq!(table.status.code(), Some(0), "{table:?}");
    let stdout = text(&table.stdout);
    let swappiness = stdout
        .lines()
        .find(|l| l.starts_with("swappiness"))
        .unwrap();
    assert!(
        swappiness.contains("FAIL") && swappiness.contains("60"),
        "{stdout}"
    );
    assert!(swappiness.contains("vm.swappiness=1"), "{stdout}");

    let json = run(
        work.path(),
        &["tuning", "check", "--root", root, "--cores", "1", "--json"],
    );
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["shard_cores"], "1");
    let isolcpus = &report["findings"][0];
    assert_eq!(isolcpus["rule"], "isolcpus");
    assert_eq!(isolcpus["status"], "fail");
    assert_eq!(isolcpus["kernel_args"][0], "isolcpus=managed_irq,domain,1");

    let strict = run(
        work.path(),
        &[
            "tuning", "check", "--root", root, "--cores", "1", "--strict",
        ],
    );
    assert_eq!(strict.status.code(), Some(3), "{strict:?}");
    let bad = run(
        work.path(),
        &["tuning", "check", "--root", root, "--cores", "x"],
    );
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

#[test]
fn apply_is_a_dry_run_until_yes_and_revert_restores() {
    let fixture = untuned_root();
    let root = fixture.path().to_str().unwrap();
    let swappiness = fixture.path().join("proc/sys/vm/swappiness");
    let work = tempfile::tempdir().unwrap();
    let args = ["tuning", "apply", "--root", root, "--cores", "1"];

    let dry = run(work.path(), &args);
    assert!(dry.status.success(), "{dry:?}");
    let plan = text(&dry.stdout);
    assert!(
        plan.contains("would write  /proc/sys/vm/swappiness  60 -> 1"),
        "{plan}"
    );
    assert!(plan.contains("nohz_full=1"), "{plan}");
    assert!(plan.contains("dry run"), "{plan}");
    assert_eq!(std::fs::read_to_string(&swappiness).unwrap(), "60");

    let applied = run(work.path(), &[&args[..], &["--yes"]].concat());
    assert!(applied.status.success(), "{applied:?}");
    assert_eq!(std::fs::read_to_string(&swappiness).unwrap(), "1");
    assert_eq!(
        std::fs::read_to_string(fixture.path().join("proc/irq/24/smp_affinity_list")).unwrap(),
        "0"
    );

    let reverted = run(work.path(), &["tuning", "revert", "--root", root]);
    assert!(reverted.status.success(), "{reverted:?}");
    assert_eq!(std::fs::read_to_string(&swappiness).unwrap(), "60");
    assert_eq!(
        std::fs::read_to_string(fixture.path().join("proc/irq/24/smp_affinity_list")).unwrap(),
        "0-1"
    );
    let again = run(work.path(), &["tuning", "revert", "--root", root]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "nothing left to revert: {again:?}"
    );
}

#[test]
fn check_runs_on_this_host() {
    let work = tempfile::tempdir().unwrap();
    let output = run(work.path(), &["tuning", "check", "--cores", "0"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.lines().nth(1).unwrap().starts_with("RULE"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 2 + 16 + 1, "{stdout}");
}

/// `up` pinned to a core this host does not isolate says so once, naming the command; capped UDP
/// buffers go in the same one line, with the sysctl that lifts the cap.
#[test]
fn up_warns_once_about_an_untuned_host() {
    let cores = peregrine_tuning::CpuSet::parse_list("0").unwrap();
    let unisolated = peregrine_tuning::unisolated(&peregrine_tuning::Host::new("/"), &cores);
    let dir = tempfile::tempdir().unwrap();
    // A UDP buffer no host grants, so the capped-buffer part is always there.
    let extra = "[hotpath]\ncore = 0\n\n[quic.transport]\nudp_buffer_bytes = 1073741824\n";
    support::write_config(dir.path(), &[], extra);
    support::Up::start(dir.path()).stop();
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("peregrine tuning check"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("capped the QUIC UDP buffers"),
        "{stderr}"
    );
    // It says what to set, with the configured size.
    assert!(
        warnings[0].contains("sysctl -w net.core.rmem_max=1073741824 net.core.wmem_max=1073741824"),
        "{stderr}"
    );
    assert_eq!(
        warnings[0].contains("pinned cores 0 are not isolated"),
        !unisolated.is_empty(),
        "{stderr}"
    );
}
