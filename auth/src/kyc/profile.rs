//! Profiles and their review: the transitions are a table ([`next`]); every write is a
//! compare-and-set on the state read, so two reviewers (or a reviewer and the webhook) cannot
//! both move one profile.

use super::level::PRIVATE_SCOPE;
use super::{Kyc, KycError};
use crate::identity::Source;
use crate::rbac::Permission;
use crate::store::{LabelChange, ProfileFields, ProfileRow, ProfileState, StoreError, User};

/// The private label a review sets (`verified` or `rejected`), as Barong's `profile` label.
pub const PROFILE_LABEL: &str = "profile";
/// Longest free-text field, characters.
pub const FIELD_CHARS_MAX: usize = 255;
/// Longest `metadata`, bytes.
pub const METADATA_BYTES_MAX: usize = 1024;

/// What a caller does to a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileEvent {
    /// The user changes the fields.
    Edit,
    /// The user hands it in.
    Submit,
    /// A reviewer accepts it.
    Verify,
    /// A reviewer refuses it.
    Reject,
}

/// The state `event` moves a profile in `state` to, or `None` when it may not.
pub fn next(state: ProfileState, event: ProfileEvent) -> Option<ProfileState> {
    use ProfileEvent as E;
    use ProfileState as S;
    match (state, event) {
        (S::Drafted | S::Rejected, E::Edit) => Some(S::Drafted),
        (S::Drafted | S::Rejected, E::Submit) => Some(S::Submitted),
        (S::Submitted, E::Verify) => Some(S::Verified),
        (S::Submitted, E::Reject) => Some(S::Rejected),
        _ => None,
    }
}

/// The state an event aims at, for the refusal's message.
pub(crate) fn aim(event: ProfileEvent) -> ProfileState {
    match event {
        ProfileEvent::Edit => ProfileState::Drafted,
        ProfileEvent::Submit => ProfileState::Submitted,
        ProfileEvent::Verify => ProfileState::Verified,
        ProfileEvent::Reject => ProfileState::Rejected,
    }
}

/// Checks the fields' shapes; a submitted profile must also be complete.
pub fn check_fields(fields: &ProfileFields, submitting: bool) -> Result<(), KycError> {
    let text = [
        ("first_name", &fields.first_name),
        ("last_name", &fields.last_name),
        ("address", &fields.address),
        ("city", &fields.city),
        ("postcode", &fields.postcode),
    ];
    for (field, value) in text {
        if value.as_ref().is_some_and(|v| {
            v.trim().is_empty()
                || v.chars().count() > FIELD_CHARS_MAX
                || v.chars().any(char::is_control)
        }) {
            return Err(KycError::InvalidParams { field });
        }
    }
    if let Some(dob) = &fields.dob
        && !is_date(dob)
    {
        return Err(KycError::InvalidParams { field: "dob" });
    }
    let country_ok =
        |c: &String| (2..=3).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_uppercase());
    if fields.country.as_ref().is_some_and(|c| !country_ok(c)) {
        return Err(KycError::InvalidParams { field: "country" });
    }
    if let Some(metadata) = &fields.metadata
        && (metadata.len() > METADATA_BYTES_MAX
            || serde_json::from_str::<serde_json::Value>(metadata).is_err())
    {
        return Err(KycError::InvalidParams { field: "metadata" });
    }
    if submitting {
        let required = [
            ("first_name", &fields.first_name),
            ("last_name", &fields.last_name),
            ("dob", &fields.dob),
            ("country", &fields.country),
        ];
        if let Some((field, _)) = required.iter().find(|(_, v)| v.is_none()) {
            return Err(KycError::InvalidParams { field });
        }
    }
    Ok(())
}

/// `YYYY-MM-DD` with a month 01-12 and a day 01-31.
pub fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    let month = (bytes[5] - b'0') * 10 + (bytes[6] - b'0');
    let day = (bytes[8] - b'0') * 10 + (bytes[9] - b'0');
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

impl Kyc {
    /// The user's profile.
    pub async fn profile(&self, user: &User) -> Result<ProfileRow, KycError> {
        self.identity
            .store()
            .profile_of(user.id)
            .await?
            .ok_or(KycError::ProfileNotFound)
    }

    /// Creates the user's profile, drafted (or submitted at once when `submit`).
    pub async fn create_profile(
        &self,
        user: &User,
        fields: &ProfileFields,
        submit: bool,
        source: &Source,
    ) -> Result<ProfileRow, KycError> {
        let result = async {
            check_fields(fields, submit)?;
            let state = if submit {
                ProfileState::Submitted
            } else {
                ProfileState::Drafted
            };
            let now_ms = self.identity.now_ms();
            match self
                .identity
                .store()
                .insert_profile(user.id, fields, state, now_ms)
                .await
            {
                Err(StoreError::Duplicate) => return Err(KycError::ProfileExists),
                other => other?,
            }
            self.count_transition(state);
            self.profile(user).await
        }
        .await;
        self.audited(&user.uid, "kyc.profile.create", &user.uid, source, result)
            .await
    }

    /// Changes the user's own profile (drafted or rejected), and submits it when `submit`.
    pub async fn update_profile(
        &self,
        user: &User,
        fields: &ProfileFields,
        submit: bool,
        source: &Source,
    ) -> Result<ProfileRow, KycError> {
        let event = if submit {
            ProfileEvent::Submit
        } else {
            ProfileEvent::Edit
        };
        let result = async {
            check_fields(fields, submit)?;
            self.transition(user, event, Some(fields)).await?;
            self.profile(user).await
        }
        .await;
        let action = if submit {
            "kyc.profile.submit"
        } else {
            "kyc.profile.update"
        };
        self.audited(&user.uid, action, &user.uid, source, result)
            .await
    }

    /// Moves `user`'s profile by `event` (a compare-and-set on the state read); the state
    /// reached. Verify and reject also set the private `profile` label, and so the level.
    pub(crate) async fn transition(
        &self,
        user: &User,
        event: ProfileEvent,
        fields: Option<&ProfileFields>,
    ) -> Result<ProfileState, KycError> {
        let current = self.profile(user).await?;
        let to = next(current.state, event).ok_or(KycError::ProfileTransition {
            from: current.state,
            to: aim(event),
        })?;
        let now_ms = self.identity.now_ms();
        let moved = self
            .identity
            .store()
            .update_profile(user.id, fields, current.state, to, now_ms)
            .await?;
        if !moved {
            // Another writer moved it first: refuse as from the state it is in now.
            let now = self.profile(user).await?.state;
            return Err(KycError::ProfileTransition {
                from: now,
                to: aim(event),
            });
        }
        if matches!(to, ProfileState::Verified | ProfileState::Rejected) {
            let change = LabelChange {
                key: PROFILE_LABEL,
                scope: PRIVATE_SCOPE,
                value: Some(to.as_str()),
            };
            self.apply_labels(user.id, &[change]).await?;
        }
        self.count_transition(to);
        Ok(to)
    }

    fn count_transition(&self, to: ProfileState) {
        self.metrics
            .profile_transitions_total
            .with_label_values(&[to.as_str()])
            .inc();
    }

    /// A reviewer verifies or rejects a submitted profile; needs
    /// [`Permission::KycProfileReview`].
    pub async fn review_profile(
        &self,
        actor: &User,
        uid: &str,
        verdict: ProfileEvent,
        source: &Source,
    ) -> Result<ProfileState, KycError> {
        self.authorize(actor, Permission::KycProfileReview, uid, source)
            .await?;
        let result = async {
            if !matches!(verdict, ProfileEvent::Verify | ProfileEvent::Reject) {
                return Err(KycError::InvalidParams { field: "state" });
            }
            let user = self.user_by_uid(uid).await?;
            self.transition(&user, verdict, None).await
        }
        .await;
        self.audited(&actor.uid, "kyc.profile.review", uid, source, result)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_table_s_transitions_are_allowed() {
        use ProfileEvent as E;
        use ProfileState as S;
        let states = [S::Drafted, S::Submitted, S::Verified, S::Rejected];
        let events = [E::Edit, E::Submit, E::Verify, E::Reject];
        let mut allowed = Vec::new();
        for state in states {
            for event in events {
                if let Some(to) = next(state, event) {
                    allowed.push((state, event, to));
                }
            }
        }
        assert_eq!(
            allowed,
            [
                (S::Drafted, E::Edit, S::Drafted),
                (S::Drafted, E::Submit, S::Submitted),
                (S::Submitted, E::Verify, S::Verified),
                (S::Submitted, E::Reject, S::Rejected),
                (S::Rejected, E::Edit, S::Drafted),
                (S::Rejected, E::Submit, S::Submitted),
            ]
        );
    }

    #[test]
    fn fields_are_checked() {
        assert!(is_date("1990-02-28"));
        for bad in ["1990-13-01", "1990-2-28", "19900228xx", "1990-02-00"] {
            assert!(!is_date(bad), "{bad}");
        }
        let mut fields = ProfileFields::default();
        assert!(check_fields(&fields, false).is_ok());
        assert!(check_fields(&fields, true).is_err());
        fields.country = Some("fr".to_owned());
        assert!(check_fields(&fields, false).is_err());
        fields.country = Some("FRA".to_owned());
        fields.metadata = Some("{not json".to_owned());
        assert!(check_fields(&fields, false).is_err());
    }
}
