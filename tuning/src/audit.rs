//! What each rule expects, what the host has, and the fix: [`audit`] runs every [`Rule`].

use crate::cpus::{CpuId, CpuSet};
use crate::host::{Host, HostError};

/// Swappiness above this lets the kernel page out the appliance's memory under pressure; a
/// page fault on the hot path costs tens of microseconds.
pub const SWAPPINESS_MAX: u64 = 10;
/// What `apply` sets swappiness to.
pub const SWAPPINESS_APPLIED: u64 = 1;
/// `net.core.busy_poll` / `busy_read`, microseconds: poll the NIC queue this long before
/// sleeping, so a packet arriving just after a poll is not delayed by a wake-up.
pub const BUSY_POLL_US_MIN: u64 = 50;
/// Idle states deeper than this exit latency, microseconds, must be disabled on shard cores: a
/// spinning shard never idles, but a parked one pays the exit latency on the next order.
pub const CSTATE_EXIT_LATENCY_US_MAX: u64 = 2;
/// Locked-memory limit, bytes: kernels before 5.12 charge io_uring rings to it, and the
/// journal's ring must never fail to set up for want of it.
pub const MEMLOCK_BYTES_MIN: u64 = 8 << 20;
/// NIC receive interrupt coalescing, microseconds: the delay adds to every order's latency; a
/// few microseconds still batches a burst.
pub const NIC_RX_USECS_MAX: u64 = 8;
/// Items named in one `actual` text before "and N more".
pub const LISTED_MAX: usize = 8;

const _: () = assert!(SWAPPINESS_APPLIED <= SWAPPINESS_MAX);

/// One audited setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Rule {
    Isolcpus,
    NohzFull,
    RcuNocbs,
    IrqAffinity,
    Governor,
    CStates,
    TransparentHugepages,
    Swappiness,
    Clocksource,
    BusyPoll,
    BusyRead,
    UdpRmemMax,
    UdpWmemMax,
    Memlock,
    NicCoalescing,
    JournalIrqs,
}

impl Rule {
    pub const ALL: [Rule; 16] = [
        Rule::Isolcpus,
        Rule::NohzFull,
        Rule::RcuNocbs,
        Rule::IrqAffinity,
        Rule::Governor,
        Rule::CStates,
        Rule::TransparentHugepages,
        Rule::Swappiness,
        Rule::Clocksource,
        Rule::BusyPoll,
        Rule::BusyRead,
        Rule::UdpRmemMax,
        Rule::UdpWmemMax,
        Rule::Memlock,
        Rule::NicCoalescing,
        Rule::JournalIrqs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::Isolcpus => "isolcpus",
            Rule::NohzFull => "nohz_full",
            Rule::RcuNocbs => "rcu_nocbs",
            Rule::IrqAffinity => "irq_affinity",
            Rule::Governor => "cpu_governor",
            Rule::CStates => "c_states",
            Rule::TransparentHugepages => "transparent_hugepages",
            Rule::Swappiness => "swappiness",
            Rule::Clocksource => "clocksource",
            Rule::BusyPoll => "busy_poll",
            Rule::BusyRead => "busy_read",
            Rule::UdpRmemMax => "udp_rmem_max",
            Rule::UdpWmemMax => "udp_wmem_max",
            Rule::Memlock => "memlock",
            Rule::NicCoalescing => "nic_coalescing",
            Rule::JournalIrqs => "journal_irqs",
        }
    }
}

/// The verdict on one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    Pass,
    Fail,
    /// Not checkable here (no shard core configured, or the host does not expose it).
    Skip,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// A run-time change that fixes (part of) a finding: write `to` where `from` is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub rule: Rule,
    /// Relative to the host's root, e.g. `proc/sys/vm/swappiness`.
    pub path: String,
    pub from: String,
    pub to: String,
}

/// The audit's answer for one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub status: Status,
    pub expected: String,
    pub actual: String,
    /// Empty when the rule passes.
    pub fix: String,
    /// What `apply` may write at run time.
    pub changes: Vec<Change>,
    /// Kernel command-line parameters the fix needs (applied only by a reboot).
    pub kernel_args: Vec<String>,
}

impl Finding {
    fn pass(rule: Rule, expected: impl Into<String>, actual: impl Into<String>) -> Self {
        Self::new(
            rule,
            Status::Pass,
            expected.into(),
            actual.into(),
            String::new(),
        )
    }

    fn fail(rule: Rule, expected: String, actual: String, fix: String) -> Self {
        assert!(!fix.is_empty(), "a failed rule names its fix");
        Self::new(rule, Status::Fail, expected, actual, fix)
    }

    fn skip(rule: Rule, expected: impl Into<String>, why: impl Into<String>) -> Self {
        Self::new(
            rule,
            Status::Skip,
            expected.into(),
            why.into(),
            String::new(),
        )
    }

    fn new(rule: Rule, status: Status, expected: String, actual: String, fix: String) -> Self {
        Self {
            rule,
            status,
            expected,
            actual,
            fix,
            changes: Vec::new(),
            kernel_args: Vec::new(),
        }
    }

    fn with_changes(mut self, changes: Vec<Change>) -> Self {
        self.changes = changes;
        self
    }

    fn with_kernel_args(mut self, args: Vec<String>) -> Self {
        self.kernel_args = args;
        self
    }
}

/// What the hot path will run with on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Cores the matching shard (and other pinned hot threads) run on; empty when unpinned.
    pub shard_cores: CpuSet,
    /// SO_RCVBUF/SO_SNDBUF the QUIC server asks for (`quic.transport.udp_buffer_bytes`).
    pub udp_buffer_bytes: u64,
    /// Block device holding the journal (`nvme0n1`), when known.
    pub journal_disk: Option<String>,
}

/// Facts several rules share, read once.
struct Context<'a> {
    host: &'a Host,
    target: &'a Target,
    cmdline: Vec<(String, Option<String>)>,
    online: CpuSet,
}

/// Audits the host under `host` for `target`: one finding per [`Rule`], in [`Rule::ALL`]
/// order. A file the audit cannot read makes that rule a skip naming the error.
pub fn audit(host: &Host, target: &Target) -> Vec<Finding> {
    let cmdline = host
        .read("proc/cmdline")
        .ok()
        .flatten()
        .map(|text| parse_cmdline(&text))
        .unwrap_or_default();
    let online = host
        .read("sys/devices/system/cpu/online")
        .ok()
        .flatten()
        .and_then(|text| CpuSet::parse_list(&text).ok())
        .unwrap_or_default();
    let context = Context {
        host,
        target,
        cmdline,
        online,
    };
    let findings: Vec<Finding> = Rule::ALL
        .iter()
        .map(|rule| {
            check(&context, *rule).unwrap_or_else(|error| {
                Finding::skip(*rule, "readable", format!("cannot read: {error}"))
            })
        })
        .collect();
    assert_eq!(findings.len(), Rule::ALL.len());
    findings
}

fn check(context: &Context<'_>, rule: Rule) -> Result<Finding, HostError> {
    let needs_cores = matches!(
        rule,
        Rule::Isolcpus
            | Rule::NohzFull
            | Rule::RcuNocbs
            | Rule::IrqAffinity
            | Rule::Governor
            | Rule::CStates
            | Rule::JournalIrqs
    );
    if needs_cores && context.target.shard_cores.is_empty() {
        return Ok(Finding::skip(
            rule,
            "shard cores pinned",
            "no shard core configured (hotpath.core = -1; or pass --cores)",
        ));
    }
    match rule {
        Rule::Isolcpus | Rule::NohzFull | Rule::RcuNocbs => Ok(kernel_isolation(context, rule)),
        Rule::IrqAffinity => irq_affinity(context),
        Rule::Governor => governor(context),
        Rule::CStates => c_states(context),
        Rule::TransparentHugepages => transparent_hugepages(context.host),
        Rule::Swappiness => swappiness(context.host),
        Rule::Clocksource => clocksource(context.host),
        Rule::BusyPoll => sysctl_at_least(
            context.host,
            rule,
            "proc/sys/net/core/busy_poll",
            BUSY_POLL_US_MIN,
        ),
        Rule::BusyRead => sysctl_at_least(
            context.host,
            rule,
            "proc/sys/net/core/busy_read",
            BUSY_POLL_US_MIN,
        ),
        Rule::UdpRmemMax => sysctl_at_least(
            context.host,
            rule,
            "proc/sys/net/core/rmem_max",
            context.target.udp_buffer_bytes,
        ),
        Rule::UdpWmemMax => sysctl_at_least(
            context.host,
            rule,
            "proc/sys/net/core/wmem_max",
            context.target.udp_buffer_bytes,
        ),
        Rule::Memlock => memlock(context.host),
        Rule::NicCoalescing => nic_coalescing(context.host),
        Rule::JournalIrqs => journal_irqs(context),
    }
}

/// `name=value` (or bare `name`) parameters of a kernel command line, up to the `--` that
/// starts init's arguments.
pub fn parse_cmdline(text: &str) -> Vec<(String, Option<String>)> {
    text.split_whitespace()
        .take_while(|word| *word != "--")
        .map(|word| match word.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (word.to_owned(), None),
        })
        .collect()
}

/// The CPUs a command-line parameter names (the last occurrence wins, as in the kernel).
/// `isolcpus` may lead with flags (`managed_irq,domain,2-3`); they are skipped.
pub fn cmdline_cpus(cmdline: &[(String, Option<String>)], name: &str) -> Option<CpuSet> {
    let value = cmdline
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())?;
    let list: Vec<&str> = value
        .split(',')
        .filter(|part| !part.starts_with(|c: char| c.is_ascii_alphabetic()))
        .collect();
    CpuSet::parse_list(&list.join(",")).ok()
}

/// The kernel parameters that isolate `cores`: off the scheduler's balancing and managed
/// interrupts, without the tick, and without RCU callbacks.
pub fn isolation_args(cores: &CpuSet) -> Vec<String> {
    let list = cores.to_list();
    vec![
        format!("isolcpus=managed_irq,domain,{list}"),
        format!("nohz_full={list}"),
        format!("rcu_nocbs={list}"),
    ]
}

fn kernel_isolation(context: &Context<'_>, rule: Rule) -> Finding {
    let cores = &context.target.shard_cores;
    let (name, arg) = match rule {
        Rule::Isolcpus => ("isolcpus", format!("isolcpus=managed_irq,domain,{cores}")),
        Rule::NohzFull => ("nohz_full", format!("nohz_full={cores}")),
        _ => ("rcu_nocbs", format!("rcu_nocbs={cores}")),
    };
    let expected = format!("{name} covers {cores}");
    match cmdline_cpus(&context.cmdline, name) {
        Some(set) if set.covers(cores) => Finding::pass(rule, expected, format!("{name}={set}")),
        found => {
            let actual = found.map_or_else(|| "absent".to_owned(), |s| format!("{name}={s}"));
            let fix = format!("kernel command line: {arg} (reboot)");
            Finding::fail(rule, expected, actual, fix).with_kernel_args(vec![arg])
        }
    }
}

/// `items` joined by spaces, at most [`LISTED_MAX`] of them.
fn listed(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(LISTED_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    if items.len() > LISTED_MAX {
        text.push_str(&format!(" and {} more", items.len() - LISTED_MAX));
    }
    text
}

/// Online CPUs that are not shard cores: where interrupts and housekeeping belong.
fn housekeeping(context: &Context<'_>) -> CpuSet {
    context.online.difference(&context.target.shard_cores)
}

/// The affinity-list changes that move `irqs` (id, current list) to the housekeeping cores.
fn irq_moves(rule: Rule, irqs: &[(u32, CpuSet)], housekeeping: &CpuSet) -> Vec<Change> {
    irqs.iter()
        .map(|(irq, current)| Change {
            rule,
            path: format!("proc/irq/{irq}/smp_affinity_list"),
            from: current.to_list(),
            to: housekeeping.to_list(),
        })
        .collect()
}

fn irq_affinity(context: &Context<'_>) -> Result<Finding, HostError> {
    let host = context.host;
    let cores = &context.target.shard_cores;
    let mut offending: Vec<(u32, CpuSet)> = Vec::new();
    for name in host.list("proc/irq")? {
        let Ok(irq) = name.parse::<u32>() else {
            continue;
        };
        let Some(text) = host.read(&format!("proc/irq/{irq}/smp_affinity_list"))? else {
            continue;
        };
        if let Ok(set) = CpuSet::parse_list(&text)
            && !set.intersection(cores).is_empty()
        {
            offending.push((irq, set));
        }
    }
    offending.sort_by_key(|(irq, _)| *irq);
    let default_mask = host
        .read("proc/irq/default_smp_affinity")?
        .and_then(|text| CpuSet::parse_mask(&text).ok());
    let default_bad = default_mask
        .as_ref()
        .is_some_and(|set| !set.intersection(cores).is_empty());
    let expected = format!("no IRQ may run on {cores}");
    if offending.is_empty() && !default_bad {
        return Ok(Finding::pass(
            Rule::IrqAffinity,
            expected,
            "none on shard cores",
        ));
    }
    let names: Vec<String> = offending.iter().map(|(irq, _)| irq.to_string()).collect();
    let mut actual = format!(
        "{} IRQs on shard cores: {}",
        offending.len(),
        listed(&names)
    );
    if default_bad {
        actual.push_str("; default affinity includes them");
    }
    let spare = housekeeping(context);
    if spare.is_empty() {
        let fix = "leave at least one online core out of the shard cores".to_owned();
        return Ok(Finding::fail(Rule::IrqAffinity, expected, actual, fix));
    }
    let mut changes = irq_moves(Rule::IrqAffinity, &offending, &spare);
    if let (true, Some(mask)) = (default_bad, default_mask) {
        changes.push(Change {
            rule: Rule::IrqAffinity,
            path: "proc/irq/default_smp_affinity".to_owned(),
            from: mask.to_mask(),
            to: spare.to_mask(),
        });
    }
    let fix = format!("move them to {spare} (apply; stop irqbalance or ban the shard cores in it)");
    Ok(Finding::fail(Rule::IrqAffinity, expected, actual, fix).with_changes(changes))
}

fn governor(context: &Context<'_>) -> Result<Finding, HostError> {
    let expected = "performance on every shard core";
    let mut seen = 0usize;
    let mut wrong: Vec<String> = Vec::new();
    let mut changes = Vec::new();
    for CpuId(cpu) in context.target.shard_cores.iter() {
        let path = format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor");
        let Some(current) = context.host.read(&path)? else {
            continue;
        };
        seen += 1;
        if current != "performance" {
            wrong.push(format!("cpu{cpu}={current}"));
            changes.push(Change {
                rule: Rule::Governor,
                path,
                from: current,
                to: "performance".to_owned(),
            });
        }
    }
    if seen == 0 {
        let why = "no cpufreq on the shard cores (the hypervisor or firmware sets frequency)";
        return Ok(Finding::skip(Rule::Governor, expected, why));
    }
    if wrong.is_empty() {
        return Ok(Finding::pass(Rule::Governor, expected, "performance"));
    }
    let fix = "set the performance governor (apply)".to_owned();
    Ok(
        Finding::fail(Rule::Governor, expected.to_owned(), listed(&wrong), fix)
            .with_changes(changes),
    )
}

fn c_states(context: &Context<'_>) -> Result<Finding, HostError> {
    let host = context.host;
    let expected =
        format!("idle states over {CSTATE_EXIT_LATENCY_US_MAX} us exit latency disabled");
    let mut seen = 0usize;
    let mut deep: Vec<String> = Vec::new();
    let mut changes = Vec::new();
    for CpuId(cpu) in context.target.shard_cores.iter() {
        let dir = format!("sys/devices/system/cpu/cpu{cpu}/cpuidle");
        for state in host.list(&dir)?.iter().filter(|s| s.starts_with("state")) {
            let base = format!("{dir}/{state}");
            let latency = host.read(&format!("{base}/latency"))?;
            let disable = host.read(&format!("{base}/disable"))?;
            let (Some(latency), Some(disable)) = (latency, disable) else {
                continue;
            };
            seen += 1;
            let latency_us: u64 = latency.parse().unwrap_or(u64::MAX);
            if latency_us > CSTATE_EXIT_LATENCY_US_MAX && disable == "0" {
                let name = host.read(&format!("{base}/name"))?.unwrap_or_default();
                deep.push(format!("cpu{cpu}/{name}({latency_us}us)"));
                changes.push(Change {
                    rule: Rule::CStates,
                    path: format!("{base}/disable"),
                    from: disable,
                    to: "1".to_owned(),
                });
            }
        }
    }
    if seen == 0 {
        return Ok(Finding::skip(
            Rule::CStates,
            expected,
            "no cpuidle states exposed",
        ));
    }
    if deep.is_empty() {
        return Ok(Finding::pass(Rule::CStates, expected, "none enabled"));
    }
    let fix = "disable them (apply); for good: intel_idle.max_cstate=1 processor.max_cstate=1";
    let args = vec![
        "intel_idle.max_cstate=1".to_owned(),
        "processor.max_cstate=1".to_owned(),
    ];
    Ok(
        Finding::fail(Rule::CStates, expected, listed(&deep), fix.to_owned())
            .with_changes(changes)
            .with_kernel_args(args),
    )
}

fn transparent_hugepages(host: &Host) -> Result<Finding, HostError> {
    let path = "sys/kernel/mm/transparent_hugepage/enabled";
    let expected = "never or madvise (no compaction stalls)";
    let Some(text) = host.read(path)? else {
        return Ok(Finding::skip(
            Rule::TransparentHugepages,
            expected,
            "no THP",
        ));
    };
    // The selected mode is the bracketed one: `always [madvise] never`.
    let selected = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or(text.as_str())
        .to_owned();
    if selected == "never" || selected == "madvise" {
        return Ok(Finding::pass(
            Rule::TransparentHugepages,
            expected,
            selected,
        ));
    }
    let change = Change {
        rule: Rule::TransparentHugepages,
        path: path.to_owned(),
        from: selected.clone(),
        to: "never".to_owned(),
    };
    let fix = "set never (apply); for good: transparent_hugepage=never".to_owned();
    Ok(Finding::fail(
        Rule::TransparentHugepages,
        expected.to_owned(),
        selected,
        fix,
    )
    .with_changes(vec![change])
    .with_kernel_args(vec!["transparent_hugepage=never".to_owned()]))
}

fn swappiness(host: &Host) -> Result<Finding, HostError> {
    let path = "proc/sys/vm/swappiness";
    let expected = format!("at most {SWAPPINESS_MAX}");
    let Some(text) = host.read(path)? else {
        return Ok(Finding::skip(
            Rule::Swappiness,
            expected,
            "no vm.swappiness",
        ));
    };
    match text.parse::<u64>() {
        Ok(value) if value <= SWAPPINESS_MAX => Ok(Finding::pass(Rule::Swappiness, expected, text)),
        _ => {
            let change = Change {
                rule: Rule::Swappiness,
                path: path.to_owned(),
                from: text.clone(),
                to: SWAPPINESS_APPLIED.to_string(),
            };
            let fix = format!("sysctl vm.swappiness={SWAPPINESS_APPLIED} (apply)");
            Ok(Finding::fail(Rule::Swappiness, expected, text, fix).with_changes(vec![change]))
        }
    }
}

fn clocksource(host: &Host) -> Result<Finding, HostError> {
    let dir = "sys/devices/system/clocksource/clocksource0";
    let path = format!("{dir}/current_clocksource");
    let expected = "tsc (clock reads stay in the vDSO)";
    let Some(current) = host.read(&path)? else {
        return Ok(Finding::skip(Rule::Clocksource, expected, "no clocksource"));
    };
    if current == "tsc" {
        return Ok(Finding::pass(Rule::Clocksource, expected, current));
    }
    let available = host
        .read(&format!("{dir}/available_clocksource"))?
        .unwrap_or_default();
    let args = vec!["clocksource=tsc".to_owned(), "tsc=reliable".to_owned()];
    let finding = if available.split_whitespace().any(|c| c == "tsc") {
        let change = Change {
            rule: Rule::Clocksource,
            path,
            from: current.clone(),
            to: "tsc".to_owned(),
        };
        let fix = "switch to tsc (apply); for good: clocksource=tsc tsc=reliable".to_owned();
        Finding::fail(Rule::Clocksource, expected.to_owned(), current, fix)
            .with_changes(vec![change])
    } else {
        let fix = "tsc is not offered: clocksource=tsc tsc=reliable, if the TSC is stable".into();
        Finding::fail(Rule::Clocksource, expected.to_owned(), current, fix)
    };
    Ok(finding.with_kernel_args(args))
}

fn sysctl_at_least(host: &Host, rule: Rule, path: &str, min: u64) -> Result<Finding, HostError> {
    let key = path.trim_start_matches("proc/sys/").replace('/', ".");
    let expected = format!("{key} at least {min}");
    let Some(text) = host.read(path)? else {
        return Ok(Finding::skip(rule, expected, format!("no {key}")));
    };
    match text.parse::<u64>() {
        Ok(value) if value >= min => Ok(Finding::pass(rule, expected, text)),
        _ => {
            let change = Change {
                rule,
                path: path.to_owned(),
                from: text.clone(),
                to: min.to_string(),
            };
            let fix = format!("sysctl {key}={min} (apply)");
            Ok(Finding::fail(rule, expected, text, fix).with_changes(vec![change]))
        }
    }
}

fn memlock(host: &Host) -> Result<Finding, HostError> {
    let expected = format!("soft limit at least {MEMLOCK_BYTES_MIN} bytes (io_uring)");
    let Some(limits) = host.read("proc/self/limits")? else {
        return Ok(Finding::skip(
            Rule::Memlock,
            expected,
            "no /proc/self/limits",
        ));
    };
    let soft = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max locked memory"))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned);
    let Some(soft) = soft else {
        return Ok(Finding::skip(
            Rule::Memlock,
            expected,
            "no locked-memory line",
        ));
    };
    let enough = soft == "unlimited" || soft.parse::<u64>().is_ok_and(|v| v >= MEMLOCK_BYTES_MIN);
    if enough {
        return Ok(Finding::pass(Rule::Memlock, expected, soft));
    }
    let fix = "LimitMEMLOCK=infinity in the service unit, or ulimit -l unlimited".to_owned();
    Ok(Finding::fail(Rule::Memlock, expected, soft, fix))
}

/// Adaptive RX and `rx-usecs` from `ethtool -c` output.
pub fn parse_coalesce(text: &str) -> (Option<bool>, Option<u64>) {
    let mut adaptive_rx = None;
    let mut rx_usecs = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Adaptive RX:") {
            adaptive_rx = rest.split_whitespace().next().map(|v| v == "on");
        } else if let Some(rest) = line.strip_prefix("rx-usecs:") {
            rx_usecs = rest.trim().parse().ok();
        }
    }
    (adaptive_rx, rx_usecs)
}

fn nic_coalescing(host: &Host) -> Result<Finding, HostError> {
    let expected = format!("adaptive RX off, rx-usecs at most {NIC_RX_USECS_MAX}");
    let mut seen = 0usize;
    let mut wrong: Vec<String> = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    for iface in host.list("sys/class/net")? {
        // Physical (or paravirtual) NICs have a device; lo, bridges and ifb do not.
        if !host.exists(&format!("sys/class/net/{iface}/device")) {
            continue;
        }
        let Some(text) = host.ethtool_coalesce(&iface) else {
            continue;
        };
        seen += 1;
        let (adaptive, usecs) = parse_coalesce(&text);
        let too_slow = usecs.is_some_and(|u| u > NIC_RX_USECS_MAX);
        if adaptive == Some(true) || too_slow {
            let usecs = usecs.map_or_else(|| "n/a".to_owned(), |u| u.to_string());
            let adaptive = if adaptive == Some(true) { "on" } else { "off" };
            wrong.push(format!("{iface}: adaptive-rx {adaptive}, rx-usecs {usecs}"));
            fixes.push(format!("ethtool -C {iface} adaptive-rx off rx-usecs 0"));
        }
    }
    if seen == 0 {
        let why = "no NIC reports coalescing (ethtool missing or unsupported)";
        return Ok(Finding::skip(Rule::NicCoalescing, expected, why));
    }
    if wrong.is_empty() {
        return Ok(Finding::pass(Rule::NicCoalescing, expected, "low"));
    }
    Ok(Finding::fail(
        Rule::NicCoalescing,
        expected,
        listed(&wrong),
        fixes.join("; "),
    ))
}

/// The MSI interrupts of the device behind `sys/block/<disk>`: the nearest ancestor in sysfs
/// with an `msi_irqs` directory (the PCI function of an NVMe or virtio disk).
fn disk_irqs(host: &Host, disk: &str) -> Result<Vec<u32>, HostError> {
    if disk.is_empty() || disk.contains('/') || disk.starts_with('.') {
        return Ok(Vec::new());
    }
    let Some(mut device) = host.resolve(&format!("sys/block/{disk}")) else {
        return Ok(Vec::new());
    };
    // Bounded by the path's depth: each step drops one component.
    while device.starts_with("sys/devices/") {
        let irqs: Vec<u32> = host
            .list(&format!("{device}/msi_irqs"))?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        if !irqs.is_empty() {
            return Ok(irqs);
        }
        match device.rsplit_once('/') {
            Some((parent, _)) => device = parent.to_owned(),
            None => break,
        }
    }
    Ok(Vec::new())
}

fn journal_irqs(context: &Context<'_>) -> Result<Finding, HostError> {
    let host = context.host;
    let cores = &context.target.shard_cores;
    let expected = format!("the journal disk's interrupts off {cores}");
    let Some(disk) = context.target.journal_disk.as_deref() else {
        let why = "journal disk unknown (data dir not on a block device; or pass --journal-disk)";
        return Ok(Finding::skip(Rule::JournalIrqs, expected, why));
    };
    let irqs = disk_irqs(host, disk)?;
    if irqs.is_empty() {
        let why = format!("no MSI interrupts found for {disk}");
        return Ok(Finding::skip(Rule::JournalIrqs, expected, why));
    }
    let mut offending: Vec<(u32, CpuSet)> = Vec::new();
    for irq in irqs {
        let effective = host.read(&format!("proc/irq/{irq}/effective_affinity_list"))?;
        let configured = host.read(&format!("proc/irq/{irq}/smp_affinity_list"))?;
        let Some(text) = effective.or(configured.clone()) else {
            continue;
        };
        if let Ok(set) = CpuSet::parse_list(&text)
            && !set.intersection(cores).is_empty()
        {
            let current = configured.and_then(|c| CpuSet::parse_list(&c).ok());
            offending.push((irq, current.unwrap_or(set)));
        }
    }
    if offending.is_empty() {
        return Ok(Finding::pass(
            Rule::JournalIrqs,
            expected,
            format!("{disk}: none"),
        ));
    }
    let names: Vec<String> = offending.iter().map(|(irq, _)| irq.to_string()).collect();
    let actual = format!("{disk}: IRQs {} land on shard cores", listed(&names));
    let changes = irq_moves(Rule::JournalIrqs, &offending, &housekeeping(context));
    // Managed (per-queue) NVMe interrupts refuse a new affinity at run time; only
    // isolcpus=managed_irq keeps them off the shard cores.
    let arg = format!("isolcpus=managed_irq,domain,{cores}");
    let fix = format!("move them (apply); managed queues need {arg} (reboot)");
    Ok(Finding::fail(Rule::JournalIrqs, expected, actual, fix)
        .with_changes(changes)
        .with_kernel_args(vec![arg]))
}

/// The block device (whole disk, e.g. `nvme0n1`) holding `path`, found through
/// `sys/dev/block/MAJOR:MINOR` under `host`; `None` on a virtual filesystem.
pub fn disk_of(host: &Host, path: &std::path::Path) -> Option<String> {
    let (major, minor) = device_numbers(path)?;
    if major == 0 {
        return None;
    }
    let device = host.resolve(&format!("sys/dev/block/{major}:{minor}"))?;
    let disk = if host.exists(&format!("{device}/partition")) {
        device.rsplit_once('/')?.0.to_owned()
    } else {
        device
    };
    disk.rsplit('/').next().map(str::to_owned)
}

#[cfg(unix)]
fn device_numbers(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    // A data directory not made yet will live on its nearest existing ancestor's device;
    // bounded by the path's depth.
    let existing = path.ancestors().find(|p| p.exists())?;
    let dev = std::fs::metadata(existing).ok()?.dev();
    // glibc's dev_t encoding (gnu_dev_major / gnu_dev_minor).
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    Some((major, minor))
}

#[cfg(not(unix))]
fn device_numbers(_path: &std::path::Path) -> Option<(u64, u64)> {
    None
}
