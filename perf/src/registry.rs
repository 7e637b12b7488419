//! Every workload `peregrine bench` knows, by name.

use crate::args::{BenchArgs, WorkloadFlag};
use crate::error::BenchError;
use crate::report::Report;
use crate::workloads;

/// Every registered workload. To add one, add its module under `workloads/` and one line here.
pub const WORKLOADS: &[Workload] = &[
    workloads::noop::WORKLOAD,
    workloads::matching::WORKLOAD,
    workloads::journal::WORKLOAD,
    workloads::e2e::WORKLOAD,
    workloads::replication::WORKLOAD,
    workloads::rest::WORKLOAD,
    workloads::ws::WORKLOAD,
    workloads::auth::WORKLOAD,
    workloads::wallets::WORKLOAD,
    workloads::fanout::WORKLOAD,
    workloads::failover::WORKLOAD,
];

/// One benchmark workload: a name, the workload-specific flags it accepts, and how to run it.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// The name typed after `peregrine bench`.
    pub name: &'static str,
    /// One line saying what it measures.
    pub summary: &'static str,
    /// Workload-specific flags it uses; any other given is refused.
    pub flags: &'static [WorkloadFlag],
    /// Runs it and returns the report (the harness prints it).
    pub run: fn(&BenchArgs) -> Result<Report, BenchError>,
}

impl Workload {
    /// Refuses a workload-specific flag this workload does not use, so it is never silently
    /// ignored.
    pub fn check_flags(&self, args: &BenchArgs) -> Result<(), BenchError> {
        let unsupported = args
            .workload_flags_given()
            .into_iter()
            .find(|flag| !self.flags.contains(flag));
        match unsupported {
            None => Ok(()),
            Some(flag) => Err(BenchError::UnsupportedFlag {
                workload: self.name,
                flag: flag.name(),
                supported: self.flags.iter().map(|flag| flag.name()).collect(),
            }),
        }
    }
}

/// The workload called `name`.
pub fn find(name: &str) -> Result<&'static Workload, BenchError> {
    WORKLOADS
        .iter()
        .find(|workload| workload.name == name)
        .ok_or_else(|| BenchError::UnknownWorkload {
            name: name.to_owned(),
            known: names(),
        })
}

/// Every workload name, in registry order.
pub fn names() -> Vec<&'static str> {
    WORKLOADS.iter().map(|workload| workload.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_nonempty() {
        let mut names = names();
        assert!(names.contains(&"noop"));
        assert!(
            names
                .iter()
                .all(|name| !name.is_empty() && !name.contains(char::is_whitespace))
        );
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "duplicate workload name");
    }

    #[test]
    fn unknown_workload_lists_the_known_ones() {
        let error = find("nope").unwrap_err();
        match &error {
            BenchError::UnknownWorkload { name, known } => {
                assert_eq!(name, "nope");
                assert!(known.contains(&"noop"));
            }
            other => panic!("unexpected error {other:?}"),
        }
        let message = error.to_string();
        assert!(message.contains("\"nope\""), "{message}");
        assert!(message.contains("noop"), "{message}");
    }

    #[test]
    fn refuses_a_flag_the_workload_does_not_use() {
        let noop = find("noop").unwrap();
        let mut args = BenchArgs::new("noop");
        args.rate_ops_per_sec = Some(1_000);
        noop.check_flags(&args).unwrap();
        args.shards = Some(4);
        let error = noop.check_flags(&args).unwrap_err();
        assert!(
            matches!(
                error,
                BenchError::UnsupportedFlag {
                    workload: "noop",
                    flag: "--shards",
                    ..
                }
            ),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("--shards") && message.contains("--rate"),
            "{message}"
        );
    }
}
