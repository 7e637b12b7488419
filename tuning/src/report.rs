//! The audit as a table for people and as JSON for tools.

use serde_json::{Value, json};

use crate::audit::{Finding, Status, Target};
use crate::cpus::CpuSet;

/// Counts of findings by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
}

impl Tally {
    pub fn of(findings: &[Finding]) -> Self {
        let mut tally = Self::default();
        for finding in findings {
            match finding.status {
                Status::Pass => tally.pass += 1,
                Status::Fail => tally.fail += 1,
                Status::Skip => tally.skip += 1,
            }
        }
        tally
    }
}

/// Widest column of expected/actual text before the table stops aligning on it.
const COLUMN_CHARS_MAX: usize = 48;

/// One line per finding: rule, status, expected, actual, fix; then a tally line.
pub fn table(target: &Target, findings: &[Finding]) -> String {
    let widths = [
        column_width(findings.iter().map(|f| f.rule.name().len()), "RULE"),
        "STATUS".len(),
        column_width(
            findings.iter().map(|f| f.expected.chars().count()),
            "EXPECTED",
        ),
        column_width(findings.iter().map(|f| f.actual.chars().count()), "ACTUAL"),
    ];
    let mut text = format!(
        "shard cores: {}  UDP buffer requested: {} bytes  journal disk: {}\n",
        target.shard_cores,
        target.udp_buffer_bytes,
        target.journal_disk.as_deref().unwrap_or("unknown"),
    );
    let header = ["RULE", "STATUS", "EXPECTED", "ACTUAL"];
    text.push_str(&row(&widths, &header, "FIX"));
    for finding in findings {
        let cells = [
            finding.rule.name(),
            finding.status.name(),
            finding.expected.as_str(),
            finding.actual.as_str(),
        ];
        text.push_str(&row(&widths, &cells, &finding.fix));
    }
    let tally = Tally::of(findings);
    text.push_str(&format!(
        "{} passed, {} failed, {} skipped{}\n",
        tally.pass,
        tally.fail,
        tally.skip,
        if tally.fail > 0 {
            "; `peregrine tuning apply` shows the plan"
        } else {
            ""
        }
    ));
    text
}

fn column_width(lengths: impl Iterator<Item = usize>, header: &str) -> usize {
    lengths
        .chain([header.len()])
        .max()
        .unwrap_or(0)
        .min(COLUMN_CHARS_MAX)
}

fn row(widths: &[usize; 4], cells: &[&str; 4], fix: &str) -> String {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        line.push_str(&format!("{cell:<width$}  "));
    }
    line.push_str(fix);
    format!("{}\n", line.trim_end())
}

/// The audit as one JSON object.
pub fn json(target: &Target, findings: &[Finding]) -> Value {
    let tally = Tally::of(findings);
    let findings: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "rule": f.rule.name(),
                "status": f.status.name().to_ascii_lowercase(),
                "expected": f.expected,
                "actual": f.actual,
                "fix": f.fix,
                "kernel_args": f.kernel_args,
                "changes": f.changes.iter().map(|c| json!({
                    "path": c.path, "from": c.from, "to": c.to,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "shard_cores": list_or_null(&target.shard_cores),
        "udp_buffer_bytes": target.udp_buffer_bytes,
        "journal_disk": target.journal_disk,
        "findings": findings,
        "summary": { "pass": tally.pass, "fail": tally.fail, "skip": tally.skip },
    })
}

fn list_or_null(set: &CpuSet) -> Value {
    if set.is_empty() {
        Value::Null
    } else {
        Value::String(set.to_list())
    }
}
