//! `apply` and `revert`: the run-time part of the fixes, with the previous values kept in a
//! state file so `revert` restores exactly what `apply` changed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::audit::{Change, Finding, Status};
use crate::host::{Host, HostError};

/// The state file's format version.
pub const STATE_VERSION: u64 = 1;
/// Most changes a state file may hold (every IRQ of a large host, with room to spare).
pub const STATE_CHANGES_MAX: usize = 65_536;
/// Largest state file read, bytes.
pub const STATE_BYTES_MAX: u64 = 16 << 20;
/// The state file's place under the root, unless given.
pub const STATE_FILE_DEFAULT: &str = "var/lib/peregrine/tuning-state.json";

/// What `apply` would do: run-time writes, the kernel command line for the rest, and fixes
/// that need an operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub kernel_args: Vec<String>,
    pub manual: Vec<String>,
}

impl Plan {
    /// The plan for the failed findings: one change per path (the first rule to ask wins),
    /// kernel arguments without repeats.
    pub fn from_findings(findings: &[Finding]) -> Self {
        let mut plan = Plan::default();
        let mut paths = BTreeSet::new();
        for finding in findings.iter().filter(|f| f.status == Status::Fail) {
            for change in &finding.changes {
                if paths.insert(change.path.clone()) {
                    plan.changes.push(change.clone());
                }
            }
            for arg in &finding.kernel_args {
                if !plan.kernel_args.contains(arg) {
                    plan.kernel_args.push(arg.clone());
                }
            }
            if finding.changes.is_empty() && finding.kernel_args.is_empty() {
                plan.manual
                    .push(format!("{}: {}", finding.rule.name(), finding.fix));
            }
        }
        plan
    }
}

/// Why apply or revert stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error("state file {}: {source}", path.display())]
    StateIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {}: {reason}", path.display())]
    StateInvalid { path: PathBuf, reason: String },
    #[error("no state file at {} (nothing applied, or already reverted)", path.display())]
    NoState { path: PathBuf },
}

/// One recorded previous value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub path: String,
    pub value: String,
}

/// What apply or revert did: the writes that succeeded and those that failed (e.g. a managed
/// interrupt refuses a new affinity).
#[derive(Debug, Default)]
pub struct Outcome {
    pub written: Vec<Previous>,
    pub failed: Vec<(String, HostError)>,
}

/// Writes every change of `plan` and records the value it replaced in `state`. A state file
/// left by an earlier apply is extended: the first recorded value of a path is kept, so
/// `revert` goes back to the host as it was before any apply.
pub fn apply(host: &Host, plan: &Plan, state: &Path) -> Result<Outcome, ApplyError> {
    let mut recorded = if state.exists() {
        read_state(host, state)?
    } else {
        Vec::new()
    };
    let mut outcome = Outcome::default();
    for change in &plan.changes {
        match host.write(&change.path, &change.to) {
            Ok(()) => {
                let previous = Previous {
                    path: change.path.clone(),
                    value: change.from.clone(),
                };
                if !recorded.iter().any(|p| p.path == previous.path) {
                    recorded.push(previous.clone());
                }
                outcome.written.push(previous);
            }
            Err(error) => outcome.failed.push((change.path.clone(), error)),
        }
    }
    if !recorded.is_empty() {
        write_state(state, &recorded)?;
    }
    Ok(outcome)
}

/// Restores every value recorded in `state`, newest first, and removes the state file when
/// all were restored (what could not be restored stays in it for another try).
pub fn revert(host: &Host, state: &Path) -> Result<Outcome, ApplyError> {
    if !state.exists() {
        return Err(ApplyError::NoState {
            path: state.to_owned(),
        });
    }
    let recorded = read_state(host, state)?;
    let mut outcome = Outcome::default();
    let mut left = Vec::new();
    for previous in recorded.iter().rev() {
        match host.write(&previous.path, &previous.value) {
            Ok(()) => outcome.written.push(previous.clone()),
            Err(error) => {
                left.push(previous.clone());
                outcome.failed.push((previous.path.clone(), error));
            }
        }
    }
    let io = |source| ApplyError::StateIo {
        path: state.to_owned(),
        source,
    };
    if left.is_empty() {
        std::fs::remove_file(state).map_err(io)?;
    } else {
        left.reverse();
        write_state(state, &left)?;
    }
    Ok(outcome)
}

fn write_state(state: &Path, recorded: &[Previous]) -> Result<(), ApplyError> {
    assert!(
        recorded.len() <= STATE_CHANGES_MAX,
        "more changes than a state file holds"
    );
    let io = |source| ApplyError::StateIo {
        path: state.to_owned(),
        source,
    };
    let changes: Vec<Value> = recorded
        .iter()
        .map(|p| json!({ "path": p.path, "previous": p.value }))
        .collect();
    let text = json!({ "version": STATE_VERSION, "changes": changes }).to_string();
    if let Some(dir) = state.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Written aside and renamed: a crash mid-write must not lose the values to revert to.
    let temporary = state.with_extension("json.tmp");
    std::fs::write(&temporary, text).map_err(io)?;
    std::fs::rename(&temporary, state).map_err(io)
}

/// Reads a state file. Its paths are checked before use: only kernel attributes under the
/// root's `proc/` or `sys/` may be written back.
fn read_state(host: &Host, state: &Path) -> Result<Vec<Previous>, ApplyError> {
    let invalid = |reason: &str| ApplyError::StateInvalid {
        path: state.to_owned(),
        reason: reason.to_owned(),
    };
    let size = std::fs::metadata(state)
        .map_err(|source| ApplyError::StateIo {
            path: state.to_owned(),
            source,
        })?
        .len();
    if size > STATE_BYTES_MAX {
        return Err(invalid("larger than STATE_BYTES_MAX"));
    }
    let text = std::fs::read_to_string(state).map_err(|source| ApplyError::StateIo {
        path: state.to_owned(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| invalid(&e.to_string()))?;
    if value["version"].as_u64() != Some(STATE_VERSION) {
        return Err(invalid("unknown version"));
    }
    let changes = value["changes"]
        .as_array()
        .ok_or_else(|| invalid("no changes array"))?;
    if changes.len() > STATE_CHANGES_MAX {
        return Err(invalid("more than STATE_CHANGES_MAX changes"));
    }
    let mut recorded = Vec::with_capacity(changes.len());
    for change in changes {
        let (Some(path), Some(previous)) = (change["path"].as_str(), change["previous"].as_str())
        else {
            return Err(invalid("a change without path or previous"));
        };
        let kernel = path.starts_with("proc/") || path.starts_with("sys/");
        if !kernel || host.path(path).is_err() {
            return Err(invalid(&format!("{path:?} is not a kernel attribute path")));
        }
        recorded.push(Previous {
            path: path.to_owned(),
            value: previous.to_owned(),
        });
    }
    Ok(recorded)
}
