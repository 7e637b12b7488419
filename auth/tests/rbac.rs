//! RBAC against real MariaDB: the role -> permission table seeded by migration and read from
//! the store, operator actions refused to the roles without them (a typed 403, no state
//! change), and every decision, allowed or denied, in the audit chain with its actor, action,
//! target, source and outcome.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use peregrine_auth::audit::{self, ChainStatus, Outcome};
use peregrine_auth::rbac::{Permission, Rbac};
use peregrine_auth::{Role, Store, StoreError};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection;
use support::start;

#[tokio::test]
async fn the_seeded_table_is_read_from_the_store() {
    let url = support::mysql_url("rbac_table").await;
    let store = Store::open(&url).await.unwrap();
    let rbac = Rbac::load(&store).await.unwrap();
    // Only compliance reads other users' documents.
    for role in Role::ALL {
        assert_eq!(
            rbac.allows(role, Permission::KycDocumentReadAny),
            role == Role::Compliance,
            "{role:?}"
        );
    }
    // Members and traders hold only their own account's permissions; operators do not trade.
    let own = [
        Permission::OrderTrade,
        Permission::WithdrawalRequest,
        Permission::ApiKeyManage,
    ];
    for role in [Role::Member, Role::Trader] {
        assert_eq!(rbac.permissions_of(role), own, "{role:?}");
    }
    for role in [
        Role::Superadmin,
        Role::Admin,
        Role::Compliance,
        Role::Support,
        Role::Technical,
        Role::Accountant,
    ] {
        assert!(!rbac.allows(role, Permission::OrderTrade), "{role:?}");
        assert!(!rbac.permissions_of(role).is_empty(), "{role:?}");
    }
    // Superadmin holds every operator permission but reading documents and moving withdrawal
    // funds (the wallet daemons' service token's alone).
    let superadmin = rbac.permissions_of(Role::Superadmin);
    assert_eq!(superadmin.len(), Permission::ALL.len() - own.len() - 2);
    assert!(
        Role::ALL
            .iter()
            .all(|role| !rbac.allows(*role, Permission::WithdrawalFunds))
    );
    assert!(!rbac.allows(Role::Support, Permission::UserManage));
    assert!(!rbac.allows(Role::Technical, Permission::DepositCredit));

    // A row this build does not know stops the load rather than being skipped.
    let mut db = sqlx::MySqlConnection::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO permissions (role, action) VALUES ('member', 'everything')")
        .execute(&mut db)
        .await
        .unwrap();
    let error = Rbac::load(&store).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownValue { column: "permissions.action", value } if value == "everything"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_member_calling_operator_actions_is_refused_and_every_decision_is_audited() {
    let h = start("rbac_enforced", |_| {}).await;
    let member = h.member("mallory").await;
    let victim = h.member("victim").await;
    let support_role = h.operator(Role::Support).await;
    let victim_level = h.user(&victim).await.level;

    let calls = [
        (
            "PUT",
            "/admin/profiles".to_owned(),
            Some(json!({"uid": victim.uid, "state": "verified"})),
            "rbac.kyc.profile.review",
        ),
        (
            "POST",
            "/admin/users/labels".to_owned(),
            Some(json!({"uid": victim.uid, "key": "document", "value": "verified"})),
            "rbac.kyc.label.write",
        ),
        (
            "GET",
            format!("/admin/users/{}/documents", victim.uid),
            None,
            "rbac.kyc.document.read_any",
        ),
        (
            "GET",
            "/admin/documents/1".to_owned(),
            None,
            "rbac.kyc.document.read_any",
        ),
        (
            "GET",
            "/admin/permissions".to_owned(),
            None,
            "rbac.user.read",
        ),
    ];
    for (method, path, body, action) in &calls {
        let answer = h.call(method, path, body.clone(), Some(&member)).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "authz.forbidden");
        let rows = h.identity.store().audit_page(0, 10_000).await.unwrap();
        let record = rows
            .iter()
            .rev()
            .find(|r| r.entry.action == *action)
            .unwrap_or_else(|| panic!("no {action}"));
        assert_eq!(record.entry.actor, member.uid);
        assert_eq!(record.entry.outcome, Outcome::Denied);
        assert_eq!(record.entry.code, "authz.forbidden");
        assert_eq!(record.entry.source, "127.0.0.1");
        assert!(!record.entry.target.is_empty());
    }
    // Nothing changed for the victim.
    assert_eq!(h.user(&victim).await.level, victim_level);
    assert!(
        h.identity
            .store()
            .profile_of(h.user(&victim).await.id)
            .await
            .unwrap()
            .is_none()
    );

    // Support reads the table (user.read); allowed decisions are audited too.
    let answer = h
        .call("GET", "/admin/permissions", None, Some(&support_role))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body["compliance"],
        json!([
            "user.read",
            "kyc.profile.review",
            "kyc.label.write",
            "kyc.document.read_any",
            "audit.read",
            "exchange.read"
        ])
    );
    assert_eq!(
        answer.body["member"],
        json!(["order.trade", "withdrawal.request", "api_key.manage"])
    );
    let rows = h.identity.store().audit_page(0, 10_000).await.unwrap();
    assert!(rows.iter().any(|r| r.entry.action == "rbac.user.read"
        && r.entry.actor == support_role.uid
        && r.entry.outcome == Outcome::Allowed));
    let text = h.metrics_text();
    assert!(
        text.contains(
            "auth_rbac_decisions_total{outcome=\"denied\",permission=\"kyc.document.read_any\"} 2"
        ),
        "{text}"
    );
    assert!(matches!(
        audit::verify(h.identity.store()).await.unwrap(),
        ChainStatus::Intact { .. }
    ));
}

#[tokio::test]
async fn the_embedded_sqlite_store_seeds_the_same_table_and_levels_labels_alike() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("identity.db").display()
    ))
    .await
    .unwrap();
    let mysql = Store::open(&support::mysql_url("rbac_parity").await)
        .await
        .unwrap();
    assert_eq!(
        Rbac::load(&sqlite).await.unwrap(),
        Rbac::load(&mysql).await.unwrap()
    );
    assert_eq!(
        sqlite.role_permissions().await.unwrap().len(),
        mysql.role_permissions().await.unwrap().len()
    );
    // Labels and the level they give, in one transaction, on both back ends.
    let rules = peregrine_auth::kyc::KycConfig::default().level_rules;
    let level_of = |labels: &[peregrine_auth::store::LabelRow]| {
        peregrine_auth::kyc::level::level_of(&rules, labels)
    };
    for store in [&sqlite, &mysql] {
        let registry = prometheus::Registry::new();
        let identity = peregrine_auth::Identity::new(
            store.clone(),
            peregrine_auth::IdentityConfig::default(),
            peregrine_auth::Clock::System,
            &registry,
        )
        .unwrap();
        let user = identity
            .create_operator("member@example.com", support::PASSWORD, Role::Member)
            .await
            .unwrap();
        let change = |key| peregrine_auth::store::LabelChange {
            key,
            scope: "private",
            value: Some("verified"),
        };
        let changes = [change("email"), change("phone")];
        let (level, removed) = store
            .apply_labels(user.id, &changes, 1, &level_of)
            .await
            .unwrap();
        assert_eq!((level, removed), (2, 0), "{}", store.dialect_name());
        assert_eq!(store.user_by_id(user.id).await.unwrap().unwrap().level, 2);
    }
}
