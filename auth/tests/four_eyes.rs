//! Four-eyes against real MariaDB: an adjustment is stored pending; its creator may not review
//! it (refused by the check, audited, and by the store's conditional update too); a second
//! operator's review moves it once; a role without the review permission is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use peregrine_auth::audit::Outcome;
use peregrine_auth::four_eyes::{OWN_PROPOSAL_CODE, ReviewRefused};
use peregrine_auth::rbac::{Permission, Principal};
use peregrine_auth::store::{AdjustmentState, NewAdjustment};
use peregrine_auth::{Role, Source};
use support::start;

fn principal(user: &peregrine_auth::User) -> Principal<'_> {
    Principal {
        uid: &user.uid,
        role: user.role,
    }
}

#[tokio::test]
async fn the_creator_never_reviews_and_a_second_operator_reviews_once() {
    let h = start("four_eyes", |_| {}).await;
    let (creator, reviewer, support_role) = (
        h.user(&h.operator(Role::Accountant).await).await,
        h.user(&h.operator(Role::Accountant).await).await,
        h.user(&h.operator(Role::Support).await).await,
    );
    let store = h.identity.store();
    let new = NewAdjustment {
        account: 7,
        currency: "usd",
        amount: "-12.5",
        reason: "chargeback",
        creator: &creator.uid,
        now_ms: 1,
    };
    let id = store.insert_adjustment(&new).await.unwrap();
    let second = store.insert_adjustment(&new).await.unwrap();
    assert!(second > id);
    let pending = store
        .adjustments_in(AdjustmentState::Pending, 10)
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|a| a.id).collect::<Vec<_>>(),
        [id, second]
    );
    assert_eq!(pending[0].amount, "-12.5");

    let authorizer = h.kyc.authorizer();
    let source = Source {
        address: "127.0.0.1".to_owned(),
        user_agent: String::new(),
    };
    let approve = Permission::AdjustmentApprove;
    let target = format!("adjustment:{id}");
    let own = authorizer
        .authorize_review(
            &h.identity,
            principal(&creator),
            &creator.uid,
            approve,
            &target,
            &source,
        )
        .await;
    assert_eq!(own, Err(ReviewRefused::OwnProposal));
    let unprivileged = authorizer
        .authorize_review(
            &h.identity,
            principal(&support_role),
            &creator.uid,
            approve,
            &target,
            &source,
        )
        .await;
    assert!(matches!(unprivileged, Err(ReviewRefused::Forbidden(_))));
    let rows = store.audit_page(0, 10_000).await.unwrap();
    let refused = rows
        .iter()
        .find(|r| r.entry.action == "four_eyes.adjustment.approve")
        .unwrap();
    assert_eq!(
        (
            refused.entry.actor.as_str(),
            refused.entry.outcome,
            refused.entry.code.as_str()
        ),
        (creator.uid.as_str(), Outcome::Denied, OWN_PROPOSAL_CODE)
    );
    assert_eq!(refused.entry.target, target);

    // The store refuses the creator too, whatever a caller checked before.
    let approved = AdjustmentState::Approved;
    assert!(
        !store
            .review_adjustment(id, &creator.uid, approved, 2)
            .await
            .unwrap()
    );
    authorizer
        .authorize_review(
            &h.identity,
            principal(&reviewer),
            &creator.uid,
            approve,
            &target,
            &source,
        )
        .await
        .unwrap();
    assert!(
        store
            .review_adjustment(id, &reviewer.uid, approved, 3)
            .await
            .unwrap()
    );
    // Reviewed once: neither a second approval nor a rejection moves it again.
    assert!(
        !store
            .review_adjustment(id, &reviewer.uid, approved, 4)
            .await
            .unwrap()
    );
    let rejected = AdjustmentState::Rejected;
    assert!(
        !store
            .review_adjustment(id, &reviewer.uid, rejected, 5)
            .await
            .unwrap()
    );
    let row = store.adjustment(id).await.unwrap().unwrap();
    assert_eq!(row.state, approved);
    assert_eq!(row.reviewer.as_deref(), Some(reviewer.uid.as_str()));
    assert_eq!(
        (row.creator.as_str(), row.reviewed_at_ms),
        (creator.uid.as_str(), Some(3))
    );
    let pending = store
        .adjustments_in(AdjustmentState::Pending, 10)
        .await
        .unwrap();
    assert_eq!(pending.iter().map(|a| a.id).collect::<Vec<_>>(), [second]);
}
