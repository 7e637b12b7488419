//! Every end-to-end test of the appliance in one test binary: each module was a test binary of
//! its own, and linking some thirty binaries of the whole appliance dominated the suite's build
//! on 2 cores. nextest still runs each test in a process of its own. A file added to this
//! folder must be declared below; `every_test_file_is_a_module` fails otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bao_support;
mod support;
#[path = "support/users.rs"]
#[allow(unused_imports)]
mod users;
#[path = "../../wallet-daemons/tests/support/mod.rs"]
mod wallet_support;

mod admin;
mod audit;
mod bridge;
mod catalog;
mod cli;
mod collection;
mod console;
mod crash;
mod dashboard;
mod demo;
mod deploy_policies;
mod fanout;
mod four_eyes_rules;
mod layering;
mod logging;
mod metrics;
mod new_user;
mod openapi;
mod openbao_outage;
mod operators;
mod reference;
mod refusals;
mod reject_names;
mod reports;
mod rest;
mod restart_market_data;
mod retail_page;
mod sdk;
mod services;
mod snapshots;
mod standby;
mod supervision;
mod trading;
mod tuning;
mod wallets;

/// `autotests = false` builds only this binary: a test file that is not declared above would
/// silently never run.
#[test]
fn every_test_file_is_a_module() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let declared = include_str!("e2e.rs");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs") && stem != "e2e" {
            assert!(
                declared.contains(&format!("\nmod {stem};\n")),
                "peregrine/tests/{stem}.rs is not declared in tests/e2e.rs"
            );
        }
    }
}
