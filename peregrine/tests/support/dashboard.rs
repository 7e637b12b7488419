//! The Grafana dashboard (`deploy/grafana/peregrine.json`) against real scrapes: each row's
//! description names the process whose `/metrics` its panels read (`peregrine-scrape:<job>`),
//! and the test that runs that process checks that every metric each panel's queries name is
//! in its scrape — a renamed or removed metric fails here, not on an operator's empty graph.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// Where a row says which process it reads.
const SCRAPE_TAG: &str = "peregrine-scrape:";

/// The dashboard's panels, in order.
fn panels() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/peregrine.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    dashboard["panels"].as_array().unwrap().clone()
}

/// The series names of a Prometheus text scrape (`name` of `name{labels} value`).
pub fn exported(scrape: &str) -> BTreeSet<&str> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect()
}

/// Every `peregrine_...` metric name in a PromQL expression.
pub fn metric_names(expr: &str) -> Vec<&str> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    expr.match_indices("peregrine_")
        .filter(|(at, _)| !expr[..*at].ends_with(is_name))
        .map(|(at, _)| {
            let rest = &expr[at..];
            &rest[..rest.find(|c| !is_name(c)).unwrap_or(rest.len())]
        })
        .collect()
}

/// Every job the rows name.
pub fn jobs() -> BTreeSet<String> {
    panels()
        .iter()
        .filter_map(|panel| panel["description"].as_str())
        .filter_map(|text| text.strip_prefix(SCRAPE_TAG))
        .map(str::to_owned)
        .collect()
}

/// Asserts that each metric named by the panels of `job`'s rows is in `scrape`; returns how
/// many panels were checked (at least one).
pub fn assert_panels_exported(job: &str, scrape: &str) -> usize {
    let names = exported(scrape);
    let mut row_job = None;
    let mut checked = 0;
    let mut missing = Vec::new();
    for panel in panels() {
        if panel["type"] == "row" {
            let tag = panel["description"].as_str().unwrap_or_default();
            row_job = Some(tag.strip_prefix(SCRAPE_TAG).unwrap_or_default().to_owned());
            continue;
        }
        let row = row_job.as_deref().expect("every panel sits in a row");
        assert!(!row.is_empty(), "a row without {SCRAPE_TAG}<job>");
        if row != job {
            continue;
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let named = metric_names(expr);
            assert!(!named.is_empty(), "{expr} names no peregrine metric");
            for name in named {
                if !names.contains(name) {
                    missing.push(format!("{} ({}): {name}", panel["title"], expr));
                }
            }
        }
        checked += 1;
    }
    assert!(
        missing.is_empty(),
        "not exported by {job}:\n{}",
        missing.join("\n")
    );
    assert!(checked > 0, "no panel reads {job}");
    checked
}
