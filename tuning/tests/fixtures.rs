//! Every rule against fixture `/proc` and `/sys` trees: a tuned host passes every rule, and
//! breaking one setting fails exactly the rule that guards it. Apply and revert write only
//! under the fixture root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use peregrine_tuning::apply::{self, STATE_FILE_DEFAULT};
use peregrine_tuning::{CpuSet, Host, Plan, Rule, Status, Target, audit};

const UDP_BUFFER_BYTES: u64 = 8 << 20;

fn put(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A 4-CPU host tuned for shard cores 2-3, with an NVMe journal disk whose interrupts are 40
/// and 41, and one NIC.
fn tuned() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(
        root,
        "proc/cmdline",
        "ro quiet isolcpus=managed_irq,domain,2-3 nohz_full=2-3 rcu_nocbs=2-3 -- init-arg",
    );
    put(root, "sys/devices/system/cpu/online", "0-3");
    put(root, "sys/devices/system/cpu/isolated", "2-3");
    for irq in [24, 25, 40, 41] {
        put(root, &format!("proc/irq/{irq}/smp_affinity_list"), "0-1");
    }
    put(root, "proc/irq/41/effective_affinity_list", "1");
    put(root, "proc/irq/default_smp_affinity", "3");
    for cpu in [2, 3] {
        let base = format!("sys/devices/system/cpu/cpu{cpu}");
        put(
            root,
            &format!("{base}/cpufreq/scaling_governor"),
            "performance",
        );
        for (state, name, latency, disable) in
            [(0, "POLL", 0, 0), (1, "C1", 1, 0), (2, "C6", 85, 1)]
        {
            let state_dir = format!("{base}/cpuidle/state{state}");
            put(root, &format!("{state_dir}/name"), name);
            put(root, &format!("{state_dir}/latency"), &latency.to_string());
            put(root, &format!("{state_dir}/disable"), &disable.to_string());
        }
    }
    put(
        root,
        "sys/kernel/mm/transparent_hugepage/enabled",
        "always madvise [never]",
    );
    put(root, "proc/sys/vm/swappiness", "1");
    let clock = "sys/devices/system/clocksource/clocksource0";
    put(root, &format!("{clock}/current_clocksource"), "tsc");
    put(
        root,
        &format!("{clock}/available_clocksource"),
        "tsc hpet acpi_pm",
    );
    put(root, "proc/sys/net/core/busy_poll", "50");
    put(root, "proc/sys/net/core/busy_read", "50");
    put(
        root,
        "proc/sys/net/core/rmem_max",
        &UDP_BUFFER_BYTES.to_string(),
    );
    put(
        root,
        "proc/sys/net/core/wmem_max",
        &UDP_BUFFER_BYTES.to_string(),
    );
    put(
        root,
        "proc/self/limits",
        "Limit                     Soft Limit           Hard Limit           Units\n\
         Max locked memory         unlimited            unlimited            bytes\n",
    );
    put(root, "sys/class/net/eth0/device/vendor", "0x1ae0");
    put(root, "sys/class/net/lo/mtu", "65536");
    put(
        root,
        "ethtool/eth0",
        "Coalesce parameters for eth0:\nAdaptive RX: off  TX: off\nrx-usecs: 0\ntx-usecs: 0\n",
    );
    let pci = "sys/devices/pci0000:00/0000:00:04.0";
    put(root, &format!("{pci}/nvme/nvme0/nvme0n1/size"), "1000");
    put(root, &format!("{pci}/msi_irqs/40"), "msix");
    put(root, &format!("{pci}/msi_irqs/41"), "msix");
    std::fs::create_dir_all(root.join("sys/block")).unwrap();
    std::os::unix::fs::symlink(
        "../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1",
        root.join("sys/block/nvme0n1"),
    )
    .unwrap();
    dir
}

fn target() -> Target {
    Target {
        shard_cores: CpuSet::parse_list("2-3").unwrap(),
        udp_buffer_bytes: UDP_BUFFER_BYTES,
        journal_disk: Some("nvme0n1".to_owned()),
    }
}

fn statuses(root: &Path) -> BTreeMap<Rule, Status> {
    audit(&Host::new(root), &target())
        .into_iter()
        .map(|f| (f.rule, f.status))
        .collect()
}

/// One way to break each rule's setting.
fn breakages() -> Vec<(Rule, &'static str, &'static str)> {
    vec![
        (
            Rule::Isolcpus,
            "proc/cmdline",
            "ro isolcpus=2 nohz_full=2-3 rcu_nocbs=2-3",
        ),
        (
            Rule::NohzFull,
            "proc/cmdline",
            "isolcpus=domain,2-3 rcu_nocbs=2-3",
        ),
        (
            Rule::RcuNocbs,
            "proc/cmdline",
            "isolcpus=2-3 nohz_full=2-3 rcu_nocbs=1",
        ),
        (Rule::IrqAffinity, "proc/irq/24/smp_affinity_list", "0-3"),
        (
            Rule::Governor,
            "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor",
            "powersave",
        ),
        (
            Rule::CStates,
            "sys/devices/system/cpu/cpu2/cpuidle/state2/disable",
            "0",
        ),
        (
            Rule::TransparentHugepages,
            "sys/kernel/mm/transparent_hugepage/enabled",
            "[always] madvise never",
        ),
        (Rule::Swappiness, "proc/sys/vm/swappiness", "60"),
        (
            Rule::Clocksource,
            "sys/devices/system/clocksource/clocksource0/current_clocksource",
            "hpet",
        ),
        (Rule::BusyPoll, "proc/sys/net/core/busy_poll", "0"),
        (Rule::BusyRead, "proc/sys/net/core/busy_read", "0"),
        (Rule::UdpRmemMax, "proc/sys/net/core/rmem_max", "212992"),
        (Rule::UdpWmemMax, "proc/sys/net/core/wmem_max", "212992"),
        (
            Rule::Memlock,
            "proc/self/limits",
            "Max locked memory         65536                65536                bytes",
        ),
        (
            Rule::NicCoalescing,
            "ethtool/eth0",
            "Adaptive RX: on  TX: on\nrx-usecs: 50\n",
        ),
        (
            Rule::JournalIrqs,
            "proc/irq/41/effective_affinity_list",
            "2",
        ),
    ]
}

#[test]
fn a_tuned_host_passes_every_rule() {
    let dir = tuned();
    let found = statuses(dir.path());
    for rule in Rule::ALL {
        assert_eq!(found[&rule], Status::Pass, "{}", rule.name());
    }
}

#[test]
fn breaking_one_setting_fails_the_rule_that_guards_it() {
    let breakages = breakages();
    assert_eq!(breakages.len(), Rule::ALL.len(), "one breakage per rule");
    for (rule, path, text) in breakages {
        let dir = tuned();
        put(dir.path(), path, text);
        let found = statuses(dir.path());
        assert_eq!(
            found[&rule],
            Status::Fail,
            "{} after {path} = {text}",
            rule.name()
        );
        // Each breakage touches one rule's setting; an IRQ on a shard core is also one of the
        // journal disk's only when it is interrupt 40 or 41.
        let others: Vec<&str> = found
            .iter()
            .filter(|(r, s)| **r != rule && **s != Status::Pass)
            .map(|(r, _)| r.name())
            .collect();
        assert!(others.is_empty(), "{}: also failed {others:?}", rule.name());
    }
}

#[test]
fn unpinned_or_unexposed_settings_are_skipped_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let unpinned = Target {
        shard_cores: CpuSet::new(),
        journal_disk: None,
        ..target()
    };
    let findings = audit(&Host::new(dir.path()), &unpinned);
    assert!(
        findings.iter().all(|f| f.status == Status::Skip),
        "{findings:?}"
    );
}

fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_symlink() {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                files.insert(relative, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn apply_fixes_the_run_time_settings_and_revert_restores_them() {
    let dir = tuned();
    let root = dir.path();
    for (rule, path, text) in breakages() {
        if rule != Rule::Isolcpus {
            put(root, path, text);
        }
    }
    put(root, "proc/cmdline", "ro quiet");
    let untuned = snapshot(root);
    let host = Host::new(root);
    let plan = Plan::from_findings(&audit(&host, &target()));
    assert_eq!(snapshot(root), untuned, "planning writes nothing");
    assert!(
        plan.kernel_args.contains(&"nohz_full=2-3".to_owned()),
        "{plan:?}"
    );
    assert!(
        plan.manual.iter().any(|m| m.starts_with("memlock")),
        "{plan:?}"
    );

    let state = root.join(STATE_FILE_DEFAULT);
    let outcome = apply::apply(&host, &plan, &state).unwrap();
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    let after = statuses(root);
    // Everything but the kernel command line, the process limit, the NIC (ethtool, by hand)
    // and the journal disk's interrupts (below) is fixed at run time.
    let by_hand = [
        Rule::Isolcpus,
        Rule::NohzFull,
        Rule::RcuNocbs,
        Rule::Memlock,
        Rule::NicCoalescing,
        Rule::JournalIrqs,
    ];
    for rule in Rule::ALL.into_iter().filter(|r| !by_hand.contains(r)) {
        assert_eq!(after[&rule], Status::Pass, "{} after apply", rule.name());
    }
    // The journal disk's interrupt was asked to move; where it lands (effective affinity) is
    // the kernel's to say, and a managed queue stays put until isolcpus=managed_irq.
    assert!(
        plan.changes
            .iter()
            .any(|c| c.path == "proc/irq/41/smp_affinity_list")
    );
    assert!(
        plan.kernel_args
            .contains(&"isolcpus=managed_irq,domain,2-3".to_owned())
    );
    assert_eq!(
        after[&Rule::Isolcpus],
        Status::Fail,
        "the command line needs a reboot"
    );
    // A second apply finds nothing more to change and keeps the first recorded values.
    let again = Plan::from_findings(&audit(&host, &target()));
    apply::apply(&host, &again, &state).unwrap();

    let reverted = apply::revert(&host, &state).unwrap();
    assert!(reverted.failed.is_empty(), "{:?}", reverted.failed);
    assert!(!state.exists(), "a complete revert removes the state file");
    let mut restored = snapshot(root);
    restored.retain(|path, _| !path.starts_with("var/"));
    // Kernel files read back the selected THP mode only; the fixture keeps the whole line.
    let thp = "sys/kernel/mm/transparent_hugepage/enabled";
    assert_eq!(restored.remove(thp).as_deref(), Some("always"));
    let mut expected = untuned;
    expected.remove(thp);
    assert_eq!(restored, expected);
}

#[test]
fn a_state_file_cannot_point_revert_outside_the_kernel_attributes() {
    let dir = tuned();
    let host = Host::new(dir.path());
    let state = dir.path().join("state.json");
    for path in ["../../etc/passwd", "/etc/passwd", "etc/shadow"] {
        let text = serde_json::json!({
            "version": 1,
            "changes": [{ "path": path, "previous": "x" }],
        });
        std::fs::write(&state, text.to_string()).unwrap();
        assert!(apply::revert(&host, &state).is_err(), "{path}");
    }
}
