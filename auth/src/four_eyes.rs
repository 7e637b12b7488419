//! Four-eyes: what one operator proposes (a manual balance adjustment, a large withdrawal, a
//! fee or limit change) takes effect only once a second operator, holding the review
//! permission, approves it — never the proposer. [`Authorizer::authorize_review`] is the one
//! check every such approval and rejection makes, wherever its proposal is stored: the RBAC
//! decision (audited, allowed or denied), then the proposer's own review refused (audited as
//! denied, [`OWN_PROPOSAL_CODE`]). The store's conditional update should repeat the
//! creator-is-not-reviewer condition, so a race cannot pass between check and write.

use crate::identity::{Identity, Source};
use crate::rbac::{Authorizer, Forbidden, Permission, Principal};

/// The audit and error code of a proposer reviewing their own proposal.
pub const OWN_PROPOSAL_CODE: &str = "authz.four_eyes.own_proposal";

/// Why a review was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReviewRefused {
    /// The reviewer's role lacks the review permission.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The reviewer proposed it: a second operator must review it.
    #[error("the operator who proposed it may not review it: a second operator must")]
    OwnProposal,
}

impl Authorizer {
    /// Whether `reviewer` may review (approve or reject, both under `permission`) what
    /// `creator` (a uid) proposed, `target` naming it; both checks are audited.
    pub async fn authorize_review(
        &self,
        identity: &Identity,
        reviewer: Principal<'_>,
        creator: &str,
        permission: Permission,
        target: &str,
        source: &Source,
    ) -> Result<(), ReviewRefused> {
        self.authorize_principal(identity, reviewer, permission, target, source)
            .await?;
        refuse_own_proposal(identity, reviewer.uid, creator, permission, target, source).await
    }
}

/// The second half of [`Authorizer::authorize_review`], for a caller that made the RBAC
/// decision already: refuses (and audits as `four_eyes.<permission>`, denied) a reviewer who
/// is the creator.
pub async fn refuse_own_proposal(
    identity: &Identity,
    reviewer: &str,
    creator: &str,
    permission: Permission,
    target: &str,
    source: &Source,
) -> Result<(), ReviewRefused> {
    if reviewer != creator {
        return Ok(());
    }
    let action = format!("four_eyes.{}", permission.as_str());
    identity
        .audit_code(reviewer, &action, target, source, Some(OWN_PROPOSAL_CODE))
        .await;
    Err(ReviewRefused::OwnProposal)
}
