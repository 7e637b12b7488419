//! User groups for fees: the private KYC label [`FEE_GROUP_LABEL`] (set by operators through
//! the labels API, as any private label) names a user's group, e.g. `vip` or `market-maker`;
//! the fee volume tiers pin a group to a tier. Read here by trading account, for the tier job.

use super::{Store, StoreError, on_pool};

/// The private label naming a user's fee group.
pub const FEE_GROUP_LABEL: &str = "fee_group";

/// A trading account whose user is in a fee group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    /// The trading account.
    pub account: u32,
    /// The group's name (the label's value).
    pub group: String,
}

impl Store {
    /// Accounts above `after` whose users carry the private fee-group label, by account, at
    /// most `limit`.
    pub async fn fee_group_members(
        &self,
        after: u32,
        limit: i64,
    ) -> Result<Vec<GroupMember>, StoreError> {
        const SQL: &str = "SELECT a.account_id, l.label_value FROM labels l \
                           JOIN accounts a ON a.user_id = l.user_id \
                           WHERE l.label_key = ? AND l.scope = 'private' AND a.account_id > ? \
                           ORDER BY a.account_id LIMIT ?";
        let rows: Vec<(i64, String)> = on_pool!(self, |pool, _d| {
            sqlx::query_as(SQL)
                .bind(FEE_GROUP_LABEL)
                .bind(i64::from(after))
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(account, group)| {
                let account = u32::try_from(account).map_err(|_| StoreError::UnknownValue {
                    column: "accounts.account_id",
                    value: account.to_string(),
                })?;
                Ok(GroupMember { account, group })
            })
            .collect()
    }
}
