//! Who may call the control API, and the one decision every route makes before it acts:
//! [`Access::admit`] for the route's typed [`Permission`], audited allowed or denied.
//!
//! Three credentials, in `Authorization: Bearer <...>`:
//! - **an operator's access JWT**, issued by identity to a staff user (any role but member and
//!   trader) and verified here from memory ([`Refresher`]: no call to identity or OpenBao per
//!   request). Its `otp` claim must be true: an operator without 2FA is refused, whatever the
//!   role. Then the role's permission decides ([`Authorizer`]), and the journal names the
//!   operator ([`OperatorId`] = the user's key in identity's store).
//! - **the host-only break-glass token** (a file only the appliance's user reads): accepted
//!   only from a loopback address, every use audited as `break_glass`, journaled as
//!   [`BREAK_GLASS_OPERATOR`]. It may do everything but the four-eyes steps, which need two
//!   people. It exists for the host's own scripts and for when identity cannot issue tokens.
//! - **the wallet daemons' token**: chain deposits, withdrawals' funds and reading the status
//!   (least privilege: a stolen wallet token credits nothing an operator could not see on
//!   chain), journaled as the wallet service.
//!
//! Every call is audited in identity's chain: actor (uid, `break_glass`, `service:wallet` or
//! `anonymous`), action (`rbac.<permission>`, `break_glass.<permission>`, ...), target, source
//! address and outcome. With `[auth]` off there is no chain: only break-glass and wallet
//! tokens are accepted, and their uses are logged.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use peregrine_auth::Identity;
use peregrine_auth::Role;
use peregrine_auth::Source;
use peregrine_auth::jwt::Refresher;
use peregrine_auth::rbac::{Authorizer, Permission, Principal};
use peregrine_hotpath::{Actor, OperatorId, Service};

use crate::error::ControlError;

/// The journal's actor for the break-glass token: no user has key 0 (keys start at 1).
pub const BREAK_GLASS_OPERATOR: OperatorId = OperatorId(0);
/// The audit actor of the break-glass token.
pub const BREAK_GLASS_ACTOR: &str = "break_glass";
/// The audit actor of the wallet daemons' token.
pub const WALLET_ACTOR: &str = "service:wallet";
/// The audit actor of a request without a usable credential.
const ANONYMOUS_ACTOR: &str = "anonymous";
/// Operators whose store key the API remembers (uid -> key): one per staff user, few.
const OPERATOR_IDS_MAX: usize = 4096;

/// Operators' access tokens: identity's verifier, its role table and its audit chain.
#[derive(Debug)]
pub struct Operators {
    identity: Arc<Identity>,
    tokens: Arc<Refresher>,
    authorizer: Authorizer,
    /// uid -> the user's store key, read once per operator (keys never change).
    ids: Mutex<HashMap<String, OperatorId>>,
}

impl Operators {
    /// Operators verified by `tokens` and authorized by `authorizer`, audited in `identity`.
    pub fn new(identity: Arc<Identity>, tokens: Arc<Refresher>, authorizer: Authorizer) -> Self {
        Operators {
            identity,
            tokens,
            authorizer,
            ids: Mutex::new(HashMap::new()),
        }
    }

    /// The identity service (its store holds the adjustments).
    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// The role table.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// The operator's journal id: the user's key in identity's store, read once per uid.
    async fn operator_id(&self, uid: &str) -> Result<OperatorId, ControlError> {
        if let Some(id) = self.lock_ids().get(uid) {
            return Ok(*id);
        }
        let user = self
            .identity
            .store()
            .user_by_uid(uid)
            .await
            .map_err(|_| ControlError::StoreUnavailable)?
            .ok_or(ControlError::Unauthorized)?;
        // A key beyond u32 cannot be journaled as an operator: refuse rather than wrap.
        let id = u32::try_from(user.id)
            .map(OperatorId)
            .map_err(|_| ControlError::Unauthorized)?;
        let mut ids = self.lock_ids();
        if ids.len() >= OPERATOR_IDS_MAX {
            ids.clear();
        }
        ids.insert(uid.to_owned(), id);
        Ok(id)
    }

    fn lock_ids(&self) -> std::sync::MutexGuard<'_, HashMap<String, OperatorId>> {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The credentials the control API accepts.
#[derive(Debug, Default)]
pub struct Access {
    /// Operators' access JWTs; `None` with `[auth]` off.
    pub operators: Option<Operators>,
    /// The host-only break-glass token.
    pub break_glass: Option<Arc<str>>,
    /// The wallet daemons' token: chain deposits only.
    pub wallet: Option<Arc<str>>,
}

/// Who a request was admitted as.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Caller {
    /// A staff user with 2FA, by access token.
    Operator {
        /// The public id (the audit's actor, an adjustment's creator or reviewer).
        uid: String,
        /// The role.
        role: Role,
        /// The journal's id for them.
        id: OperatorId,
    },
    /// The host-only break-glass token, from loopback.
    BreakGlass,
    /// The wallet daemons' token.
    Wallet,
}

impl Caller {
    /// Who the journal names as the command's author.
    pub fn actor(&self) -> Actor {
        match self {
            Caller::Operator { id, .. } => Actor::Operator(*id),
            Caller::BreakGlass => Actor::Operator(BREAK_GLASS_OPERATOR),
            Caller::Wallet => Actor::Service(Service::Wallet),
        }
    }
}

/// The caller's address, from the connection (`unknown` without one: never loopback).
#[derive(Clone, Debug)]
pub struct Client(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Client, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(Client(address))
    }
}

impl Client {
    /// The address as identity's audit records it.
    pub(crate) fn source(&self) -> Source {
        Source {
            address: self
                .0
                .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
            user_agent: String::new(),
        }
    }
}

/// Constant-time equality of a presented token and a configured one.
fn same_secret(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `permission` is one of the four-eyes steps, which need two people: never the
/// break-glass token's.
fn needs_a_person(permission: Permission) -> bool {
    matches!(
        permission,
        Permission::AdjustmentCreate | Permission::AdjustmentApprove
    )
}

impl Access {
    /// Admits the request for `permission` on `target`, or refuses it: 401 without a valid
    /// credential, 403 when the credential may not. Audited either way.
    pub async fn admit(
        &self,
        headers: &HeaderMap,
        client: &Client,
        permission: Permission,
        target: &str,
    ) -> Result<Caller, ControlError> {
        let source = client.source();
        let Some(presented) = bearer(headers) else {
            self.audit(
                ANONYMOUS_ACTOR,
                "control.auth",
                target,
                &source,
                Some(CODE_401),
            )
            .await;
            return Err(ControlError::Unauthorized);
        };
        // Both static tokens are compared whatever the first answers: the time does not tell
        // which one matched.
        let break_glass = self
            .break_glass
            .as_deref()
            .is_some_and(|token| same_secret(presented, token));
        let wallet = self
            .wallet
            .as_deref()
            .is_some_and(|token| same_secret(presented, token));
        if break_glass {
            return self
                .admit_break_glass(client, &source, permission, target)
                .await;
        }
        if wallet {
            return self.admit_wallet(&source, permission, target).await;
        }
        self.admit_operator(presented, &source, permission, target)
            .await
    }

    async fn admit_break_glass(
        &self,
        client: &Client,
        source: &Source,
        permission: Permission,
        target: &str,
    ) -> Result<Caller, ControlError> {
        let action = format!("break_glass.{}", permission.as_str());
        let refusal = if !client.0.is_some_and(|ip| ip.is_loopback()) {
            // Not from this host: as if the token were wrong (no hint that it is right).
            Some(ControlError::Unauthorized)
        } else if needs_a_person(permission) {
            Some(ControlError::Forbidden(permission))
        } else {
            None
        };
        let code = refusal.as_ref().map(ControlError::code);
        self.audit(BREAK_GLASS_ACTOR, &action, target, source, code.as_deref())
            .await;
        match refusal {
            Some(error) => Err(error),
            None => Ok(Caller::BreakGlass),
        }
    }

    async fn admit_wallet(
        &self,
        source: &Source,
        permission: Permission,
        target: &str,
    ) -> Result<Caller, ControlError> {
        let action = format!("service.{}", permission.as_str());
        // Least privilege: chain deposits' credits, withdrawals' funds and the status (read
        // only: the reconciliation compares its liabilities with the chain), nothing else.
        let allowed = matches!(
            permission,
            Permission::DepositCredit | Permission::WithdrawalFunds | Permission::ExchangeRead
        );
        let refusal = (!allowed).then_some(ControlError::Forbidden(permission));
        let code = refusal.as_ref().map(ControlError::code);
        self.audit(WALLET_ACTOR, &action, target, source, code.as_deref())
            .await;
        match refusal {
            Some(error) => Err(error),
            None => Ok(Caller::Wallet),
        }
    }

    async fn admit_operator(
        &self,
        token: &str,
        source: &Source,
        permission: Permission,
        target: &str,
    ) -> Result<Caller, ControlError> {
        let Some(operators) = &self.operators else {
            self.audit(
                ANONYMOUS_ACTOR,
                "control.auth",
                target,
                source,
                Some(CODE_401),
            )
            .await;
            return Err(ControlError::Unauthorized);
        };
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = match operators.tokens.current().verify(token, now_s) {
            Ok(claims) => claims,
            Err(error) => {
                let identity = &operators.identity;
                let action = "control.auth";
                identity
                    .audit_code(ANONYMOUS_ACTOR, action, target, source, Some(error.code()))
                    .await;
                return Err(ControlError::Unauthorized);
            }
        };
        let uid = claims.sub.as_str();
        let role = Role::parse(&claims.role).filter(|role| role.is_operator());
        let refusal = match role {
            None => Some(ControlError::NotOperator),
            Some(_) if !claims.otp => Some(ControlError::SecondFactorRequired),
            Some(_) => None,
        };
        let role = match (role, refusal) {
            (Some(role), None) => role,
            (_, refusal) => {
                let error = refusal.unwrap_or(ControlError::NotOperator);
                let action = format!("rbac.{}", permission.as_str());
                let code = error.code();
                operators
                    .identity
                    .audit_code(uid, &action, target, source, Some(&code))
                    .await;
                return Err(error);
            }
        };
        let principal = Principal { uid, role };
        operators
            .authorizer
            .authorize_principal(&operators.identity, principal, permission, target, source)
            .await
            .map_err(|_| ControlError::Forbidden(permission))?;
        let id = operators.operator_id(uid).await?;
        Ok(Caller::Operator {
            uid: uid.to_owned(),
            role,
            id,
        })
    }

    /// An audit record in identity's chain, or (with `[auth]` off) a log line.
    async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        source: &Source,
        code: Option<&str>,
    ) {
        match &self.operators {
            Some(operators) => {
                operators
                    .identity
                    .audit_code(actor, action, target, source, code)
                    .await;
            }
            None => tracing::warn!(
                actor,
                action,
                target,
                source = %source.address,
                refused = code.unwrap_or(""),
                "control API call (no identity: not in an audit chain)"
            ),
        }
    }
}

/// The code audited for a request without a usable credential.
const CODE_401: &str = "control.auth.invalid_token";

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bearer_headers(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Bearer {token}").parse().unwrap();
        headers.insert(axum::http::header::AUTHORIZATION, value);
        headers
    }

    fn access() -> Access {
        Access {
            operators: None,
            break_glass: Some("b".repeat(64).into()),
            wallet: Some("w".repeat(64).into()),
        }
    }

    #[tokio::test]
    async fn break_glass_is_for_this_host_and_never_for_four_eyes() {
        let access = access();
        let headers = bearer_headers(&"b".repeat(64));
        let here = Client(Some(IpAddr::from([127, 0, 0, 1])));
        let remote = Client(Some(IpAddr::from([10, 0, 0, 1])));
        let market = Permission::MarketManage;
        let admitted = access.admit(&headers, &here, market, "market:btcusd").await;
        assert_eq!(admitted.unwrap(), Caller::BreakGlass);
        let from_afar = access
            .admit(&headers, &remote, market, "market:btcusd")
            .await;
        assert!(matches!(from_afar, Err(ControlError::Unauthorized)));
        let unknown = access.admit(&headers, &Client(None), market, "x").await;
        assert!(matches!(unknown, Err(ControlError::Unauthorized)));
        for step in [Permission::AdjustmentCreate, Permission::AdjustmentApprove] {
            let refused = access.admit(&headers, &here, step, "adjustments").await;
            assert!(matches!(refused, Err(ControlError::Forbidden(p)) if p == step));
        }
    }

    #[tokio::test]
    async fn the_wallet_token_credits_deposits_only_and_nothing_else_passes() {
        let access = access();
        let here = Client(Some(IpAddr::from([127, 0, 0, 1])));
        let wallet = bearer_headers(&"w".repeat(64));
        let credit = access
            .admit(&wallet, &here, Permission::DepositCredit, "deposits")
            .await;
        assert_eq!(credit.unwrap(), Caller::Wallet);
        let halt = access
            .admit(&wallet, &here, Permission::MarketManage, "market:btcusd")
            .await;
        assert!(matches!(halt, Err(ControlError::Forbidden(_))));
        // A near miss, and a JWT-looking token with no identity to verify it.
        for token in ["b".repeat(63), "a.b.c".to_owned()] {
            let headers = bearer_headers(&token);
            let refused = access
                .admit(&headers, &here, Permission::ExchangeRead, "status")
                .await;
            assert!(matches!(refused, Err(ControlError::Unauthorized)));
        }
        let none = access
            .admit(&HeaderMap::new(), &here, Permission::ExchangeRead, "status")
            .await;
        assert!(matches!(none, Err(ControlError::Unauthorized)));
    }
}
