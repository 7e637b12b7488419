//! The layering of the workspace, checked over `cargo metadata`: dependencies point down. The
//! hot tier (matching, persistence, the sequencer) never depends on an edge or the control
//! plane, and the client SDK a trading firm links pulls in no server machinery.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Package name -> names of the packages it depends on for normal (non-dev, non-build) use.
fn normal_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let name_of: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut graph = BTreeMap::new();
    for node in metadata["resolve"]["nodes"].as_array().unwrap() {
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|dep| {
                dep["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|kind| kind["kind"].is_null())
            })
            .map(|dep| name_of[dep["pkg"].as_str().unwrap()].to_owned())
            .collect();
        let name = name_of[node["id"].as_str().unwrap()].to_owned();
        graph.entry(name).or_insert_with(BTreeSet::new).extend(deps);
    }
    graph
}

/// Every package `root` reaches through normal dependencies (iterative: no recursion).
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(name) = stack.pop() {
        for dep in graph.get(&name).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                stack.push(dep.clone());
            }
        }
    }
    seen
}

/// The pairs (package, forbidden dependency) the graph breaks.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<(String, String)> {
    const HOT_TIER: &[&str] = &["peregrine-hotpath", "peregrine-persist", "peregrine-core"];
    const ABOVE_HOT_TIER: &[&str] = &[
        "peregrine-gateway",
        "peregrine-control",
        "peregrine-auth",
        "peregrine-wallet",
        "peregrine",
    ];
    const NOT_IN_THE_SDK: &[&str] = &[
        "io-uring",
        "sqlx",
        "axum",
        "peregrine-gateway",
        "peregrine-persist",
    ];
    const EDGES: &[&str] = &["peregrine-gateway", "peregrine-proto"];
    // The views are pure interpretation of events: no I/O, no runtime, no storage below them.
    const NOT_IN_THE_VIEWS: &[&str] = &[
        "peregrine-persist",
        "peregrine-core",
        "tokio",
        "io-uring",
        "sqlx",
        "axum",
    ];
    // Identity stands beside the edges, not on them: it uses the hot path's id types and its
    // own store, never a gateway, the control plane, the journal or the replica's internals
    // (the gateways will depend on it, so an edge back would be a cycle in waiting).
    const NOT_IN_AUTH: &[&str] = &[
        "peregrine-gateway",
        "peregrine-control",
        "peregrine-persist",
        "peregrine-replica",
        "peregrine-wallet",
        "peregrine",
    ];
    let rules: Vec<(&str, &[&str])> = HOT_TIER
        .iter()
        .map(|crate_name| (*crate_name, ABOVE_HOT_TIER))
        .chain([
            ("peregrine-client", NOT_IN_THE_SDK),
            ("peregrine-proto", NOT_IN_THE_SDK),
            // The control plane talks to the engine through core, never through an edge.
            ("peregrine-control", EDGES),
            ("peregrine-views", NOT_IN_THE_VIEWS),
            ("peregrine-auth", NOT_IN_AUTH),
        ])
        .collect();
    let mut found = Vec::new();
    for (package, forbidden) in rules {
        // A crate not (yet) in the workspace has nothing to check.
        if !graph.contains_key(package) {
            continue;
        }
        let deps = reachable(graph, package);
        for name in forbidden {
            if deps.contains(*name) {
                found.push((package.to_owned(), (*name).to_owned()));
            }
        }
    }
    found
}

#[test]
fn dependencies_point_down() {
    let graph = normal_dependencies();
    for package in [
        "peregrine-hotpath",
        "peregrine-persist",
        "peregrine-core",
        "peregrine-views",
        "peregrine-proto",
        "peregrine-client",
        "peregrine-control",
        "peregrine-auth",
    ] {
        assert!(
            graph.contains_key(package),
            "{package} missing from the metadata"
        );
    }
    assert_eq!(violations(&graph), Vec::<(String, String)>::new());
}

/// The check itself can fail: an edge from the hot tier up, or a heavy crate under the SDK,
/// is reported (so the test above is not vacuous).
#[test]
fn an_upward_edge_is_reported() {
    let mut graph = normal_dependencies();
    graph
        .get_mut("peregrine-hotpath")
        .unwrap()
        .insert("peregrine-gateway".to_owned());
    graph
        .get_mut("peregrine-proto")
        .unwrap()
        .insert("sqlx".to_owned());
    let found = violations(&graph);
    assert!(found.contains(&("peregrine-hotpath".into(), "peregrine-gateway".into())));
    // Transitive: persist reaches the gateway through the hot path.
    assert!(found.contains(&("peregrine-persist".into(), "peregrine-gateway".into())));
    assert!(found.contains(&("peregrine-client".into(), "sqlx".into())));
    graph
        .get_mut("peregrine-control")
        .unwrap()
        .insert("peregrine-gateway".to_owned());
    assert!(violations(&graph).contains(&("peregrine-control".into(), "peregrine-gateway".into())));
    graph
        .get_mut("peregrine-views")
        .unwrap()
        .insert("tokio".to_owned());
    assert!(violations(&graph).contains(&("peregrine-views".into(), "tokio".into())));
    graph
        .get_mut("peregrine-auth")
        .unwrap()
        .insert("peregrine-replica".to_owned());
    assert!(violations(&graph).contains(&("peregrine-auth".into(), "peregrine-replica".into())));
}
