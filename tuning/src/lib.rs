//! Peregrine's host tuning: audit and apply the kernel and CPU settings the hot path wants.
//!
//! Owns: reading and (on request) writing host settings, always through a root path (`/` on a
//! real host, a fixture tree in tests): [`audit::audit`] checks every [`audit::Rule`] against
//! the cores the shard is pinned to and prints expected, actual and the fix; [`apply::apply`]
//! writes the run-time part (sysctls, IRQ affinity, governor, idle states, THP, clocksource)
//! and records the previous values for [`apply::revert`]; the rest is a kernel command line.
//!
//! Never does: change anything without an explicit apply, write outside `proc/` and `sys/`
//! under its root (and the state file), or run on the hot path.

pub mod apply;
pub mod audit;
pub mod cpus;
pub mod host;
pub mod report;

pub use apply::{Plan, apply, revert};
pub use audit::{Finding, Rule, Status, Target, audit};
pub use cpus::{CpuId, CpuSet};
pub use host::Host;

/// The shard cores of `cores` that the kernel command line under `host` does not isolate
/// (`isolcpus`); empty when all are. What `peregrine up` warns about at start.
pub fn unisolated(host: &Host, cores: &CpuSet) -> CpuSet {
    let cmdline = host
        .read("proc/cmdline")
        .ok()
        .flatten()
        .map(|text| audit::parse_cmdline(&text))
        .unwrap_or_default();
    let isolated_by_cmdline = audit::cmdline_cpus(&cmdline, "isolcpus").unwrap_or_default();
    let isolated_by_sysfs = host
        .read("sys/devices/system/cpu/isolated")
        .ok()
        .flatten()
        .and_then(|text| CpuSet::parse_list(&text).ok())
        .unwrap_or_default();
    cores
        .difference(&isolated_by_cmdline)
        .difference(&isolated_by_sysfs)
}
