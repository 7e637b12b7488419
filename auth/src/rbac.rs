//! Role-based access control: each [`Role`] holds a set of typed [`Permission`]s — actions,
//! not URL prefixes as in Barong, so renaming a route cannot open or close an action. The
//! role -> permission table is seeded by migration 0003 and read from the store once at start
//! ([`Rbac::load`]); a decision is then a bit test in memory. [`Authorizer::authorize`] also writes
//! the decision, allowed or denied, to the audit chain.

use crate::audit::Outcome;
use crate::identity::{Identity, Source};
use crate::store::{Role, Store, StoreError, User};

/// An action a role may be granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Permission {
    /// Read any user's record.
    UserRead,
    /// Disable, ban or unlock a user; change a role.
    UserManage,
    /// Verify or reject a submitted KYC profile.
    KycProfileReview,
    /// Set or remove a user's private KYC labels.
    KycLabelWrite,
    /// Read another user's KYC documents (compliance only: not even superadmin).
    KycDocumentReadAny,
    /// Read and verify the audit chain.
    AuditRead,
    /// Halt and resume markets.
    MarketManage,
    /// Switch an account's kill switch, cancel its orders.
    AccountKillSwitch,
    /// Read any account's balances.
    BalanceReadAny,
    /// Credit deposits.
    DepositCredit,
    /// Approve or reject withdrawals.
    WithdrawalReview,
    /// Place and cancel one's own orders.
    OrderTrade,
    /// Request one's own withdrawals.
    WithdrawalRequest,
    /// Create, list and revoke one's own API keys.
    ApiKeyManage,
    /// Read the exchange's state through the control API (status).
    ExchangeRead,
    /// Propose a manual balance adjustment (pending until a second operator approves it).
    AdjustmentCreate,
    /// Approve or reject another operator's pending adjustment.
    AdjustmentApprove,
    /// List adjustments.
    AdjustmentRead,
    /// Hold, settle and release a withdrawal's funds: the wallet daemons' service token only,
    /// granted to no role (a person moves funds only through four-eyes adjustments).
    WithdrawalFunds,
    /// Change a market's state (enabled, hidden, disabled, locked) and risk parameters.
    ReferenceManage,
    /// Propose a fee change (pending until a second operator approves it).
    FeeCreate,
    /// Approve or reject another operator's pending fee change.
    FeeApprove,
    /// Create currencies and markets at runtime. Granted by this build to superadmin, admin
    /// and technical (see [`BUILT_IN_GRANTS`]), not by a table row.
    ReferenceCreate,
    /// Read the financial reports (balances and liabilities, on-chain assets against them,
    /// fee revenue, daily volume).
    ReportRead,
    /// Propose withdrawal limits of a KYC level (pending until a second operator approves).
    LimitCreate,
    /// Approve or reject another operator's pending withdrawal limits.
    LimitApprove,
}

impl Permission {
    /// Every permission, in bit order.
    pub const ALL: [Permission; 26] = [
        Permission::UserRead,
        Permission::UserManage,
        Permission::KycProfileReview,
        Permission::KycLabelWrite,
        Permission::KycDocumentReadAny,
        Permission::AuditRead,
        Permission::MarketManage,
        Permission::AccountKillSwitch,
        Permission::BalanceReadAny,
        Permission::DepositCredit,
        Permission::WithdrawalReview,
        Permission::OrderTrade,
        Permission::WithdrawalRequest,
        Permission::ApiKeyManage,
        Permission::ExchangeRead,
        Permission::AdjustmentCreate,
        Permission::AdjustmentApprove,
        Permission::AdjustmentRead,
        Permission::WithdrawalFunds,
        Permission::ReferenceManage,
        Permission::FeeCreate,
        Permission::FeeApprove,
        Permission::ReferenceCreate,
        Permission::ReportRead,
        Permission::LimitCreate,
        Permission::LimitApprove,
    ];

    /// The stored name (the `permissions.action` column and the audit record's action).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::UserRead => "user.read",
            Permission::UserManage => "user.manage",
            Permission::KycProfileReview => "kyc.profile.review",
            Permission::KycLabelWrite => "kyc.label.write",
            Permission::KycDocumentReadAny => "kyc.document.read_any",
            Permission::AuditRead => "audit.read",
            Permission::MarketManage => "market.manage",
            Permission::AccountKillSwitch => "account.kill_switch",
            Permission::BalanceReadAny => "balance.read_any",
            Permission::DepositCredit => "deposit.credit",
            Permission::WithdrawalReview => "withdrawal.review",
            Permission::OrderTrade => "order.trade",
            Permission::WithdrawalRequest => "withdrawal.request",
            Permission::ApiKeyManage => "api_key.manage",
            Permission::ExchangeRead => "exchange.read",
            Permission::AdjustmentCreate => "adjustment.create",
            Permission::AdjustmentApprove => "adjustment.approve",
            Permission::AdjustmentRead => "adjustment.read",
            Permission::WithdrawalFunds => "withdrawal.funds",
            Permission::ReferenceManage => "reference.manage",
            Permission::FeeCreate => "fee.create",
            Permission::FeeApprove => "fee.approve",
            Permission::ReferenceCreate => "reference.create",
            Permission::ReportRead => "report.read",
            Permission::LimitCreate => "limit.create",
            Permission::LimitApprove => "limit.approve",
        }
    }

    /// The permission named `value`.
    pub fn parse(value: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == value)
    }

    fn bit(self) -> u32 {
        let index = Permission::ALL
            .iter()
            .position(|p| *p == self)
            .unwrap_or(Permission::ALL.len());
        assert!(index < Permission::ALL.len());
        1 << index
    }
}

/// Grants held by every store, beside its `permissions` rows: permissions added without an
/// auth migration of their own (the table's seeds are migrations 0003 to 0005). A store may
/// also carry them as rows (a later migration): granting twice is one bit.
pub const BUILT_IN_GRANTS: [(Role, Permission); 6] = [
    (Role::Superadmin, Permission::ReportRead),
    (Role::Admin, Permission::ReportRead),
    (Role::Accountant, Permission::ReportRead),
    (Role::Superadmin, Permission::ReferenceCreate),
    (Role::Admin, Permission::ReferenceCreate),
    (Role::Technical, Permission::ReferenceCreate),
];

// A role's permissions are one u32 bit set.
const _: () = assert!(Permission::ALL.len() <= 32);

fn role_index(role: Role) -> usize {
    let index = Role::ALL
        .iter()
        .position(|r| *r == role)
        .unwrap_or(Role::ALL.len());
    assert!(index < Role::ALL.len());
    index
}

/// The role -> permission table, in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rbac {
    grants: [u32; Role::ALL.len()],
}

/// Who acts: a user's public id and role, from a session's user or an access token's claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Principal<'a> {
    /// The public id (`ID...`).
    pub uid: &'a str,
    /// The role.
    pub role: Role,
}

/// A refusal by [`Authorizer::authorize`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the role {role} may not {permission}", role = role.as_str(), permission = permission.as_str())]
#[non_exhaustive]
pub struct Forbidden {
    /// The caller's role.
    pub role: Role,
    /// What was asked.
    pub permission: Permission,
}

impl Forbidden {
    /// The stable code.
    pub const CODE: &'static str = "authz.forbidden";
}

impl Rbac {
    /// A table from (role, permission) rows.
    pub fn from_rows(rows: impl IntoIterator<Item = (Role, Permission)>) -> Rbac {
        let mut rbac = Rbac::default();
        for (role, permission) in rows {
            rbac.grants[role_index(role)] |= permission.bit();
        }
        rbac
    }

    /// Reads the table from the store, plus [`BUILT_IN_GRANTS`]. A row naming a role or a permission this build does
    /// not know is an error, not skipped: the table is then not what the operator thinks.
    pub async fn load(store: &Store) -> Result<Rbac, StoreError> {
        let rows = store.role_permissions().await?;
        let mut parsed = Vec::with_capacity(rows.len());
        for (role, action) in rows {
            let role_parsed = Role::parse(&role).ok_or(StoreError::UnknownValue {
                column: "permissions.role",
                value: role,
            })?;
            let permission = Permission::parse(&action).ok_or(StoreError::UnknownValue {
                column: "permissions.action",
                value: action,
            })?;
            parsed.push((role_parsed, permission));
        }
        parsed.extend(BUILT_IN_GRANTS);
        Ok(Rbac::from_rows(parsed))
    }

    /// Whether `role` holds `permission` (no audit: for reads of the table).
    pub fn allows(&self, role: Role, permission: Permission) -> bool {
        self.grants[role_index(role)] & permission.bit() != 0
    }

    /// The permissions `role` holds, in [`Permission::ALL`]'s order.
    pub fn permissions_of(&self, role: Role) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.allows(role, *p))
            .collect()
    }
}

/// The table with its decision counter: what actions consult.
#[derive(Clone, Debug)]
pub struct Authorizer {
    table: Rbac,
    /// Decisions by permission and outcome (`rbac_decisions_total`).
    decisions_total: prometheus::IntCounterVec,
}

impl Authorizer {
    /// An authorizer over `table`, its counter registered in `registry`.
    pub fn new(
        table: Rbac,
        registry: &prometheus::Registry,
    ) -> Result<Authorizer, prometheus::Error> {
        let decisions_total = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "auth_rbac_decisions_total",
                "RBAC decisions by permission and outcome",
            ),
            &["permission", "outcome"],
        )?;
        registry.register(Box::new(decisions_total.clone()))?;
        Ok(Authorizer {
            table,
            decisions_total,
        })
    }

    /// The table.
    pub fn table(&self) -> &Rbac {
        &self.table
    }

    /// Decides whether `actor` may do `permission` on `target`, and records the decision
    /// (actor, action, target, source, outcome) in the audit chain, allowed or denied.
    pub async fn authorize(
        &self,
        identity: &Identity,
        actor: &User,
        permission: Permission,
        target: &str,
        source: &Source,
    ) -> Result<(), Forbidden> {
        let principal = Principal {
            uid: &actor.uid,
            role: actor.role,
        };
        self.authorize_principal(identity, principal, permission, target, source)
            .await
    }

    /// [`Authorizer::authorize`] for a principal known by uid and role only (an access
    /// token's claims, verified without a store read).
    pub async fn authorize_principal(
        &self,
        identity: &Identity,
        actor: Principal<'_>,
        permission: Permission,
        target: &str,
        source: &Source,
    ) -> Result<(), Forbidden> {
        let allowed = self.table.allows(actor.role, permission);
        let outcome = if allowed {
            Outcome::Allowed
        } else {
            Outcome::Denied
        };
        self.decisions_total
            .with_label_values(&[permission.as_str(), outcome.as_str()])
            .inc();
        let code = (!allowed).then_some(Forbidden::CODE);
        let action = format!("rbac.{}", permission.as_str());
        identity
            .audit_code(actor.uid, &action, target, source, code)
            .await;
        if allowed {
            Ok(())
        } else {
            Err(Forbidden {
                role: actor.role,
                permission,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bits_are_distinct() {
        let mut seen = 0u32;
        for permission in Permission::ALL {
            assert_eq!(Permission::parse(permission.as_str()), Some(permission));
            assert_eq!(seen & permission.bit(), 0);
            seen |= permission.bit();
        }
        assert_eq!(Permission::parse("kyc.document"), None);
    }

    #[test]
    fn a_grant_is_per_role() {
        let rbac = Rbac::from_rows([(Role::Compliance, Permission::KycDocumentReadAny)]);
        assert!(rbac.allows(Role::Compliance, Permission::KycDocumentReadAny));
        assert!(!rbac.allows(Role::Superadmin, Permission::KycDocumentReadAny));
        assert!(!rbac.allows(Role::Compliance, Permission::UserManage));
        assert_eq!(
            rbac.permissions_of(Role::Compliance),
            [Permission::KycDocumentReadAny]
        );
    }
}
