//! Withdrawals' request side, in the wallet store: beneficiaries (a user's payees, usable after
//! an activation delay), requests decided by the [`WithdrawPolicy`] under a per-(account,
//! currency) lock, operators' approvals, and the user's list. The appliance (the REST bridge)
//! records requests here; the daemon, which holds the seeds, takes `approved` ones to the
//! signer ([`crate::withdrawals`]).
//!
//! A refused request changes nothing: the beneficiary, the policy and the hot wallet are all
//! checked inside the transaction that would insert the row.

use peregrine_hotpath::{AccountId, CurrencyId};

use crate::chain::Address;
use crate::keys::DerivationPath;
use crate::policy::{PolicyRefusal, Verdict, WINDOW_24H_MS, WINDOW_30D_MS, WithdrawPolicy};
use crate::store::{ROWS_MAX, StoreError, Tx, WalletStore, on_pool, on_tx, to_i64, to_u64};
use crate::withdrawals::WithdrawalState;

/// Live (not archived) beneficiaries one account may have in one currency.
pub const BENEFICIARIES_MAX: u32 = 100;
/// Longest beneficiary name, characters.
pub const BENEFICIARY_NAME_CHARS_MAX: usize = 64;
/// Longest requester or approver id (identity's uid), bytes.
pub const ACTOR_BYTES_MAX: usize = 64;

/// A beneficiary's state as shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BeneficiaryState {
    /// Created, its activation delay not over: not usable yet.
    Pending,
    /// Usable.
    Active,
    /// Deleted by its owner: never usable again.
    Archived,
}

impl BeneficiaryState {
    /// The shown name (Peatio's).
    pub fn name(self) -> &'static str {
        match self {
            BeneficiaryState::Pending => "pending",
            BeneficiaryState::Active => "active",
            BeneficiaryState::Archived => "archived",
        }
    }
}

/// A stored beneficiary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Beneficiary {
    /// Row id.
    pub id: u64,
    /// Owner.
    pub account: AccountId,
    /// Currency code.
    pub currency: String,
    /// The owner's name for it.
    pub name: String,
    /// Where withdrawals to it go.
    pub address: Address,
    /// When it was created, Unix ms.
    pub created_at_ms: i64,
    /// When it became (or becomes) usable, Unix ms.
    pub active_at_ms: i64,
    /// Deleted by its owner.
    pub archived: bool,
}

impl Beneficiary {
    /// Its state at `now_ms`.
    pub fn state(&self, now_ms: i64) -> BeneficiaryState {
        if self.archived {
            BeneficiaryState::Archived
        } else if now_ms < self.active_at_ms {
            BeneficiaryState::Pending
        } else {
            BeneficiaryState::Active
        }
    }
}

/// Why a beneficiary was not created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BeneficiaryError {
    /// The name is empty or too long.
    #[error("the name must be 1 to {BENEFICIARY_NAME_CHARS_MAX} characters")]
    Name,
    /// The account has [`BENEFICIARIES_MAX`] live ones in the currency.
    #[error("at most {BENEFICIARIES_MAX} beneficiaries per currency")]
    TooMany,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A withdrawal asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawRequest {
    /// The account debited.
    pub account: AccountId,
    /// Who asked (identity's uid): never an approver of it.
    pub requested_by: String,
    /// Currency code.
    pub currency: String,
    /// The engine's currency.
    pub currency_id: CurrencyId,
    /// In the engine's minor units.
    pub amount_minor: u64,
    /// Chain units per minor unit (10^(chain decimals - engine precision)).
    pub chain_per_minor: u128,
    /// The payee: one of the account's active beneficiaries in the currency.
    pub beneficiary_id: u64,
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// Why a request was refused; nothing was recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No such beneficiary of this account (or archived).
    #[error("no beneficiary {0} of this account")]
    BeneficiaryNotFound(u64),
    /// The beneficiary's activation delay is not over.
    #[error("beneficiary {0} is not active yet")]
    BeneficiaryPending(u64),
    /// The beneficiary is for another currency.
    #[error("beneficiary {0} takes another currency")]
    BeneficiaryCurrency(u64),
    /// The policy refused it.
    #[error(transparent)]
    Policy(#[from] PolicyRefusal),
    /// The daemon has not recorded the currency's hot wallet (it has not run yet).
    #[error("no hot wallet for {0} yet: the wallet daemon has not started")]
    NoHotWallet(String),
    /// The amount does not fit the chain's units.
    #[error("the amount does not fit the chain's units")]
    Overflow,
    /// The requester id is empty or too long.
    #[error("the requester id must be 1 to {ACTOR_BYTES_MAX} bytes")]
    Requester,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RequestError {
    /// The stable code (REST answers it; the `reason` label of the refusals counter).
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::BeneficiaryNotFound(_) => "withdraw.beneficiary_not_found",
            RequestError::BeneficiaryPending(_) => "withdraw.beneficiary_not_active",
            RequestError::BeneficiaryCurrency(_) => "withdraw.beneficiary_currency_mismatch",
            RequestError::Policy(refusal) => refusal.code(),
            RequestError::NoHotWallet(_) => "withdraw.hot_wallet_missing",
            RequestError::Overflow => "withdraw.amount_too_large",
            RequestError::Requester => "withdraw.requester_invalid",
            RequestError::Store(_) => "withdraw.unavailable",
        }
    }
}

/// Why an approval was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// No such withdrawal.
    #[error("no withdrawal {0}")]
    NotFound(u64),
    /// It is not awaiting approval.
    #[error("withdrawal {id} is {state:?}, not awaiting approval")]
    State {
        /// Which.
        id: u64,
        /// Its state.
        state: WithdrawalState,
    },
    /// The approver asked for it.
    #[error("the requester of withdrawal {0} cannot approve it")]
    SelfApproval(u64),
    /// The approver approved it before.
    #[error("this operator already approved withdrawal {0}")]
    AlreadyApproved(u64),
    /// The approver id is empty or too long.
    #[error("the approver id must be 1 to {ACTOR_BYTES_MAX} bytes")]
    Approver,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApprovalError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApprovalError::NotFound(_) => "withdraw.not_found",
            ApprovalError::State { .. } => "withdraw.not_awaiting_approval",
            ApprovalError::SelfApproval(_) => "withdraw.self_approval",
            ApprovalError::AlreadyApproved(_) => "withdraw.already_approved",
            ApprovalError::Approver => "withdraw.approver_invalid",
            ApprovalError::Store(_) => "withdraw.unavailable",
        }
    }
}

/// A withdrawal as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawalView {
    /// Row id.
    pub id: u64,
    /// Currency code.
    pub currency: String,
    /// In the engine's minor units.
    pub amount_minor: u64,
    /// The payee's address.
    pub to: String,
    /// The beneficiary paid, when requested through one.
    pub beneficiary_id: Option<u64>,
    /// State.
    pub state: WithdrawalState,
    /// The transaction, once signed.
    pub txid: Option<String>,
    /// Unix ms.
    pub created_at_ms: i64,
}

type ViewTuple = (
    i64,
    String,
    i64,
    String,
    Option<i64>,
    String,
    Option<String>,
    i64,
);
const VIEW_COLUMNS: &str =
    "id, currency, amount_minor, to_address, beneficiary_id, state, txid, created_at_ms";

fn view_row(tuple: ViewTuple) -> Result<WithdrawalView, StoreError> {
    let (id, currency, minor, to, beneficiary, state, txid, created_at_ms) = tuple;
    Ok(WithdrawalView {
        id: to_u64("id", id)?,
        currency,
        amount_minor: to_u64("amount_minor", minor)?,
        to,
        beneficiary_id: beneficiary
            .map(|b| to_u64("beneficiary_id", b))
            .transpose()?,
        state: WithdrawalState::parse(&state)?,
        txid,
        created_at_ms,
    })
}

fn valid_actor(actor: &str) -> bool {
    !actor.is_empty() && actor.len() <= ACTOR_BYTES_MAX
}

type BeneficiaryTuple = (i64, i64, String, String, String, i64, i64, bool);
const BENEFICIARY_COLUMNS: &str =
    "id, account, currency, name, address, created_at_ms, active_at_ms, archived";

fn beneficiary_row(tuple: BeneficiaryTuple) -> Result<Beneficiary, StoreError> {
    let (id, account, currency, name, address, created_at_ms, active_at_ms, archived) = tuple;
    let bad = |column: &'static str, value: String| StoreError::UnknownValue { column, value };
    Ok(Beneficiary {
        id: to_u64("id", id)?,
        account: AccountId(
            u32::try_from(account).map_err(|_| bad("account", account.to_string()))?,
        ),
        currency,
        name,
        address: Address::parse_eth(&address).ok_or_else(|| bad("address", address.clone()))?,
        created_at_ms,
        active_at_ms,
        archived,
    })
}

impl WalletStore {
    /// Records a beneficiary of `account`, usable from `now_ms + delay_ms`.
    pub async fn add_beneficiary(
        &self,
        account: AccountId,
        currency: &str,
        name: &str,
        address: &Address,
        now_ms: i64,
        delay_ms: i64,
    ) -> Result<Beneficiary, BeneficiaryError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > BENEFICIARY_NAME_CHARS_MAX {
            return Err(BeneficiaryError::Name);
        }
        let live = self.beneficiaries(account, Some(currency)).await?;
        if live.len() >= BENEFICIARIES_MAX as usize {
            return Err(BeneficiaryError::TooMany);
        }
        let active_at_ms = now_ms.saturating_add(delay_ms.max(0));
        const SQL: &str = "INSERT INTO wallet_beneficiaries (account, currency, name, address, \
             created_at_ms, active_at_ms, archived) VALUES (?, ?, ?, ?, ?, ?, FALSE)";
        macro_rules! bound {
            () => {
                sqlx::query(SQL)
                    .bind(i64::from(account.0))
                    .bind(currency)
                    .bind(name)
                    .bind(address.as_str())
                    .bind(now_ms)
                    .bind(active_at_ms)
            };
        }
        let id = match &self.pool {
            crate::store::Pool::MySql(pool) => bound!()
                .execute(pool)
                .await
                .map_err(StoreError::from)?
                .last_insert_id(),
            crate::store::Pool::Sqlite(pool) => {
                let rowid = bound!()
                    .execute(pool)
                    .await
                    .map_err(StoreError::from)?
                    .last_insert_rowid();
                to_u64("id", rowid)?
            }
        };
        Ok(Beneficiary {
            id,
            account,
            currency: currency.to_owned(),
            name: name.to_owned(),
            address: address.clone(),
            created_at_ms: now_ms,
            active_at_ms,
            archived: false,
        })
    }

    /// The live beneficiaries of `account` (only `currency`'s when given), oldest first.
    pub async fn beneficiaries(
        &self,
        account: AccountId,
        currency: Option<&str>,
    ) -> Result<Vec<Beneficiary>, StoreError> {
        let filter = if currency.is_some() {
            " AND currency = ?"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {BENEFICIARY_COLUMNS} FROM wallet_beneficiaries WHERE account = ? \
             AND archived = FALSE{filter} ORDER BY id LIMIT ?"
        );
        let rows: Vec<BeneficiaryTuple> = on_pool!(self, |pool, _mysql| {
            let mut query = sqlx::query_as(&sql).bind(i64::from(account.0));
            if let Some(currency) = currency {
                query = query.bind(currency);
            }
            query.bind(i64::from(ROWS_MAX)).fetch_all(pool).await?
        });
        rows.into_iter().map(beneficiary_row).collect()
    }

    /// Beneficiary `id` if it is `account`'s (archived ones too).
    pub async fn beneficiary(
        &self,
        account: AccountId,
        id: u64,
    ) -> Result<Option<Beneficiary>, StoreError> {
        let sql = format!(
            "SELECT {BENEFICIARY_COLUMNS} FROM wallet_beneficiaries WHERE id = ? AND account = ?"
        );
        let row: Option<BeneficiaryTuple> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(&sql)
                .bind(to_i64(id))
                .bind(i64::from(account.0))
                .fetch_optional(pool)
                .await?
        });
        row.map(beneficiary_row).transpose()
    }

    /// Archives `account`'s beneficiary `id`; false when it has none live by that id.
    pub async fn archive_beneficiary(
        &self,
        account: AccountId,
        id: u64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE wallet_beneficiaries SET archived = TRUE WHERE id = ? \
             AND account = ? AND archived = FALSE";
        Ok(on_pool!(self, |pool, _mysql| {
            sqlx::query(SQL)
                .bind(to_i64(id))
                .bind(i64::from(account.0))
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Records the hot wallet `currency` pays from on `chain` (the daemon, at start).
    pub async fn set_hot_wallet(
        &self,
        chain: &str,
        currency: &str,
        address: &Address,
        path: &DerivationPath,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool, mysql| {
            let tail = if mysql {
                " ON DUPLICATE KEY UPDATE address = VALUES(address), path = VALUES(path)"
            } else {
                " ON CONFLICT (chain, currency) DO UPDATE SET address = excluded.address, \
                 path = excluded.path"
            };
            let sql = format!(
                "INSERT INTO wallet_hot_wallets (chain, currency, address, path) \
                 VALUES (?, ?, ?, ?){tail}"
            );
            sqlx::query(&sql)
                .bind(chain)
                .bind(currency)
                .bind(address.as_str())
                .bind(path.to_string())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The hot wallet `currency` pays from on `chain`, once the daemon recorded it.
    pub async fn hot_wallet(
        &self,
        chain: &str,
        currency: &str,
    ) -> Result<Option<(Address, DerivationPath)>, StoreError> {
        const SQL: &str =
            "SELECT address, path FROM wallet_hot_wallets WHERE chain = ? AND currency = ?";
        let row: Option<(String, String)> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL)
                .bind(chain)
                .bind(currency)
                .fetch_optional(pool)
                .await?
        });
        let Some((address, path)) = row else {
            return Ok(None);
        };
        let bad = |column: &'static str, value: &str| StoreError::UnknownValue {
            column,
            value: value.to_owned(),
        };
        Ok(Some((
            Address::parse_eth(&address).ok_or_else(|| bad("address", &address))?,
            path.parse().map_err(|_| bad("path", &path))?,
        )))
    }
}

/// What a recorded request became.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The withdrawal's id.
    pub id: u64,
    /// `approved` or `awaiting_approval`.
    pub state: WithdrawalState,
}

/// States a limit counts (see [`crate::policy`]).
const COUNTED_STATES: &str =
    "'awaiting_approval', 'approved', 'held', 'signed', 'broadcast', 'settled'";

/// What an account used of a currency since a time: (account, currency, since_ms) bound.
fn used_sql(mysql: bool) -> String {
    let cast = if mysql { "SIGNED" } else { "INTEGER" };
    format!(
        "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS {cast}) FROM wallet_withdrawals \
         WHERE account = ? AND currency = ? AND created_at_ms > ? AND state IN ({COUNTED_STATES})"
    )
}

impl WalletStore {
    /// Decides and records `request` on `chain` under `policy`, in one transaction that holds
    /// the (account, currency) lock row: the beneficiary, the limits and the hot wallet are
    /// read and the row inserted with no other request of the same account and currency in
    /// between. Refused: nothing recorded.
    pub async fn request_withdrawal(
        &self,
        chain: &str,
        policy: &WithdrawPolicy,
        request: &WithdrawRequest,
    ) -> Result<Recorded, RequestError> {
        let (to, from, path, amount_chain) = self.checked(chain, policy, request).await?;
        let insert = InsertRequest {
            chain,
            request,
            to: &to,
            from: &from,
            path: &path.to_string(),
            amount_chain: &amount_chain.to_string(),
        };
        self.decide_and_insert(policy, &insert).await
    }

    /// What [`WalletStore::request_withdrawal`] would refuse, without the lock and without
    /// recording anything: run before asking for the TOTP code, so a request the policy
    /// refuses does not spend the user's code. (The request itself checks again, locked.)
    pub async fn check_withdrawal(
        &self,
        chain: &str,
        policy: &WithdrawPolicy,
        request: &WithdrawRequest,
    ) -> Result<(), RequestError> {
        self.checked(chain, policy, request).await?;
        // A read-only transaction, rolled back when dropped.
        let mut tx = self.begin().await?;
        let used = used_in_windows(&mut tx, request).await?;
        policy.decide(&request.currency, request.amount_minor, used[0], used[1])?;
        Ok(())
    }

    /// The request's parts checked outside the lock: the payee (an active beneficiary of the
    /// account in the currency), the hot wallet, the amount in chain units.
    async fn checked(
        &self,
        chain: &str,
        policy: &WithdrawPolicy,
        request: &WithdrawRequest,
    ) -> Result<(Address, Address, DerivationPath, u128), RequestError> {
        if !valid_actor(&request.requested_by) {
            return Err(RequestError::Requester);
        }
        // Cheap refusals first: no policy, nothing to withdraw, over a limit on its own.
        policy.decide(&request.currency, request.amount_minor, 0, 0)?;
        let amount_chain = u128::from(request.amount_minor)
            .checked_mul(request.chain_per_minor)
            .ok_or(RequestError::Overflow)?;
        let beneficiary = self
            .beneficiary(request.account, request.beneficiary_id)
            .await?
            .filter(|b| !b.archived)
            .ok_or(RequestError::BeneficiaryNotFound(request.beneficiary_id))?;
        if beneficiary.currency != request.currency {
            return Err(RequestError::BeneficiaryCurrency(beneficiary.id));
        }
        if beneficiary.state(request.now_ms) != BeneficiaryState::Active {
            return Err(RequestError::BeneficiaryPending(beneficiary.id));
        }
        let (from, path) = self
            .hot_wallet(chain, &request.currency)
            .await?
            .ok_or_else(|| RequestError::NoHotWallet(request.currency.clone()))?;
        Ok((beneficiary.address, from, path, amount_chain))
    }

    /// The locked part of [`WalletStore::request_withdrawal`]: take the (account, currency)
    /// lock, sum what the account used under it, let the policy decide, insert the row.
    async fn decide_and_insert(
        &self,
        policy: &WithdrawPolicy,
        insert: &InsertRequest<'_>,
    ) -> Result<Recorded, RequestError> {
        let request = insert.request;
        let mut tx = self.begin().await?;
        take_request_lock(&mut tx, request).await?;
        let used = used_in_windows(&mut tx, request).await?;
        let verdict = policy.decide(&request.currency, request.amount_minor, used[0], used[1])?;
        let (state, required) = match verdict {
            Verdict::AwaitingApproval { required } => (WithdrawalState::AwaitingApproval, required),
            _ => (WithdrawalState::Approved, 0),
        };
        let id = insert_request_row(&mut tx, insert, state, required).await?;
        tx.commit().await?;
        Ok(Recorded { id, state })
    }
}

/// Takes the (account, currency) lock row of `request`: the write takes the row's lock
/// (InnoDB) or the database's (SQLite) first, so the sums read after it are read under it.
async fn take_request_lock(tx: &mut Tx, request: &WithdrawRequest) -> Result<(), StoreError> {
    on_tx!(tx, |conn, mysql| {
        let lock = if mysql {
            "INSERT INTO wallet_withdraw_locks (account, currency, requests) VALUES (?, ?, 1) \
             ON DUPLICATE KEY UPDATE requests = requests + 1"
        } else {
            "INSERT INTO wallet_withdraw_locks (account, currency, requests) VALUES (?, ?, 1) \
             ON CONFLICT (account, currency) DO UPDATE SET requests = requests + 1"
        };
        sqlx::query(lock)
            .bind(i64::from(request.account.0))
            .bind(&request.currency)
            .execute(&mut *conn)
            .await?;
    });
    Ok(())
}

/// What the account of `request` used of its currency over the last 24 hours and 30 days
/// (the states a limit counts), read in `tx`.
async fn used_in_windows(tx: &mut Tx, request: &WithdrawRequest) -> Result<[u64; 2], StoreError> {
    let mut used = [0u64; 2];
    for (slot, window) in used.iter_mut().zip([WINDOW_24H_MS, WINDOW_30D_MS]) {
        let (total,): (i64,) = on_tx!(tx, |conn, mysql| {
            sqlx::query_as(&used_sql(mysql))
                .bind(i64::from(request.account.0))
                .bind(&request.currency)
                .bind(request.now_ms.saturating_sub(window))
                .fetch_one(&mut *conn)
                .await?
        });
        *slot = to_u64("sum", total)?;
    }
    Ok(used)
}

/// Inserts the decided request in `state` (`approved` or `awaiting_approval`, needing
/// `required` approvals); its id.
async fn insert_request_row(
    tx: &mut Tx,
    insert: &InsertRequest<'_>,
    state: WithdrawalState,
    required: u8,
) -> Result<u64, StoreError> {
    debug_assert!(matches!(
        state,
        WithdrawalState::Approved | WithdrawalState::AwaitingApproval
    ));
    let request = insert.request;
    let (id,): (i64,) = on_tx!(tx, |conn, mysql| {
        sqlx::query(
            "INSERT INTO wallet_withdrawals (chain, currency, currency_id, account, \
             amount_minor, from_address, path, to_address, amount_chain, state, \
             beneficiary_id, requested_by, created_at_ms, approvals_required) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(insert.chain)
        .bind(&request.currency)
        .bind(i64::from(request.currency_id.0))
        .bind(i64::from(request.account.0))
        .bind(to_i64(request.amount_minor))
        .bind(insert.from.as_str())
        .bind(insert.path)
        .bind(insert.to.as_str())
        .bind(insert.amount_chain)
        .bind(state.name())
        .bind(to_i64(request.beneficiary_id))
        .bind(&request.requested_by)
        .bind(request.now_ms)
        .bind(i64::from(required))
        .execute(&mut *conn)
        .await?;
        let last = if mysql {
            "SELECT CAST(LAST_INSERT_ID() AS SIGNED)"
        } else {
            "SELECT last_insert_rowid()"
        };
        sqlx::query_as(last).fetch_one(&mut *conn).await?
    });
    to_u64("id", id)
}

/// The row [`WalletStore::decide_and_insert`] writes.
struct InsertRequest<'a> {
    chain: &'a str,
    request: &'a WithdrawRequest,
    to: &'a Address,
    from: &'a Address,
    path: &'a str,
    amount_chain: &'a str,
}

impl WalletStore {
    /// Operator `approver`'s approval of withdrawal `id`: refused to its requester, to an
    /// operator who approved it before, and outside `awaiting_approval`. The approval that
    /// reaches the number the policy demanded makes it `approved` (the daemon then holds it);
    /// the state after the call.
    pub async fn approve_withdrawal(
        &self,
        id: u64,
        approver: &str,
        now_ms: i64,
    ) -> Result<WithdrawalState, ApprovalError> {
        if !valid_actor(approver) {
            return Err(ApprovalError::Approver);
        }
        on_pool!(self, |pool, mysql| {
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            let lock = if mysql { " FOR UPDATE" } else { "" };
            let select = format!(
                "SELECT state, requested_by, approvals_required FROM wallet_withdrawals \
                 WHERE id = ?{lock}"
            );
            let row: Option<(String, Option<String>, i64)> = sqlx::query_as(&select)
                .bind(to_i64(id))
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            let (state, requested_by, required) = row.ok_or(ApprovalError::NotFound(id))?;
            let state = WithdrawalState::parse(&state)?;
            if state != WithdrawalState::AwaitingApproval {
                return Err(ApprovalError::State { id, state });
            }
            if requested_by.as_deref() == Some(approver) {
                return Err(ApprovalError::SelfApproval(id));
            }
            let inserted = sqlx::query(
                "INSERT INTO wallet_withdrawal_approvals (withdrawal_id, approver, \
                 approved_at_ms) VALUES (?, ?, ?)",
            )
            .bind(to_i64(id))
            .bind(approver)
            .bind(now_ms)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    return Err(ApprovalError::AlreadyApproved(id));
                }
                Err(error) => return Err(StoreError::from(error).into()),
            }
            let (count,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM wallet_withdrawal_approvals WHERE withdrawal_id = ?",
            )
            .bind(to_i64(id))
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            let next = if count >= required {
                sqlx::query(
                    "UPDATE wallet_withdrawals SET state = 'approved' WHERE id = ? \
                     AND state = 'awaiting_approval'",
                )
                .bind(to_i64(id))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
                WithdrawalState::Approved
            } else {
                WithdrawalState::AwaitingApproval
            };
            tx.commit().await.map_err(StoreError::from)?;
            Ok(next)
        })
    }

    /// One page of `account`'s withdrawals (only `currency`'s when given), newest first.
    pub async fn withdrawals_page(
        &self,
        account: AccountId,
        currency: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<WithdrawalView>, StoreError> {
        let filter = if currency.is_some() {
            " AND currency = ?"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {VIEW_COLUMNS} FROM wallet_withdrawals WHERE account = ?{filter} \
             ORDER BY id DESC LIMIT ? OFFSET ?"
        );
        let rows: Vec<ViewTuple> = on_pool!(self, |pool, _mysql| {
            let mut query = sqlx::query_as(&sql).bind(i64::from(account.0));
            if let Some(currency) = currency {
                query = query.bind(currency);
            }
            query
                .bind(i64::from(limit.min(ROWS_MAX)))
                .bind(to_i64(offset))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(view_row).collect()
    }

    /// `account`'s withdrawal `id`.
    pub async fn withdrawal_of(
        &self,
        account: AccountId,
        id: u64,
    ) -> Result<Option<WithdrawalView>, StoreError> {
        let sql =
            format!("SELECT {VIEW_COLUMNS} FROM wallet_withdrawals WHERE id = ? AND account = ?");
        let row: Option<ViewTuple> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(&sql)
                .bind(to_i64(id))
                .bind(i64::from(account.0))
                .fetch_optional(pool)
                .await?
        });
        row.map(view_row).transpose()
    }

    /// Withdrawals of `chain` the daemon still has to move (`approved` to `broadcast`),
    /// oldest first, at most `limit`.
    pub async fn open_withdrawals(&self, chain: &str, limit: u32) -> Result<Vec<u64>, StoreError> {
        const SQL: &str = "SELECT id FROM wallet_withdrawals WHERE chain = ? \
             AND state IN ('approved', 'held', 'signed', 'broadcast') ORDER BY id LIMIT ?";
        let rows: Vec<(i64,)> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL)
                .bind(chain)
                .bind(i64::from(limit.min(ROWS_MAX)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(|(id,)| to_u64("id", id)).collect()
    }

    /// Withdrawals of `chain` per state.
    pub async fn withdrawal_counts(
        &self,
        chain: &str,
    ) -> Result<Vec<(WithdrawalState, u64)>, StoreError> {
        const SQL: &str =
            "SELECT state, COUNT(*) FROM wallet_withdrawals WHERE chain = ? GROUP BY state";
        let rows: Vec<(String, i64)> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL).bind(chain).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(state, count)| Ok((WithdrawalState::parse(&state)?, to_u64("count", count)?)))
            .collect()
    }
}

/// A withdrawal as an operator reviews it (the control API's queue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewView {
    /// Row id.
    pub id: u64,
    /// The account debited.
    pub account: AccountId,
    /// Currency code.
    pub currency: String,
    /// In the engine's minor units.
    pub amount_minor: u64,
    /// The payee's address.
    pub to: String,
    /// State.
    pub state: WithdrawalState,
    /// Who asked (identity's uid), when a person did.
    pub requested_by: Option<String>,
    /// Approvals the policy demands.
    pub approvals_required: u32,
    /// The operators who approved it so far (uids, in order).
    pub approvers: Vec<String>,
    /// Unix ms.
    pub created_at_ms: i64,
}

type ReviewTuple = (
    i64,
    i64,
    String,
    i64,
    String,
    String,
    Option<String>,
    i64,
    i64,
);
const REVIEW_COLUMNS: &str = "id, account, currency, amount_minor, to_address, state, \
     requested_by, approvals_required, created_at_ms";

impl WalletStore {
    /// Up to `limit` withdrawals in `state`, oldest first, with their approvers: what the
    /// operators' queue shows (`awaiting_approval` is the one to act on).
    pub async fn withdrawals_for_review(
        &self,
        state: WithdrawalState,
        limit: u32,
    ) -> Result<Vec<ReviewView>, StoreError> {
        let sql = format!(
            "SELECT {REVIEW_COLUMNS} FROM wallet_withdrawals WHERE state = ? ORDER BY id LIMIT ?"
        );
        let rows: Vec<ReviewTuple> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(&sql)
                .bind(state.name())
                .bind(i64::from(limit.min(ROWS_MAX)))
                .fetch_all(pool)
                .await?
        });
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            let mut view = review_row(row)?;
            view.approvers = self.approvers_of(view.id).await?;
            views.push(view);
        }
        Ok(views)
    }

    /// The withdrawal `id` as an operator reviews it.
    pub async fn withdrawal_for_review(&self, id: u64) -> Result<Option<ReviewView>, StoreError> {
        let sql = format!("SELECT {REVIEW_COLUMNS} FROM wallet_withdrawals WHERE id = ?");
        let row: Option<ReviewTuple> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(&sql)
                .bind(to_i64(id))
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else {
            return Ok(None);
        };
        let mut view = review_row(row)?;
        view.approvers = self.approvers_of(view.id).await?;
        Ok(Some(view))
    }

    async fn approvers_of(&self, id: u64) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT approver FROM wallet_withdrawal_approvals \
             WHERE withdrawal_id = ? ORDER BY approved_at_ms, approver";
        let rows: Vec<(String,)> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL).bind(to_i64(id)).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|(approver,)| approver).collect())
    }

    /// Operator `rejecter`'s rejection of withdrawal `id`: refused to its requester, to an
    /// operator who approved it (one person, one review), and outside `awaiting_approval`.
    /// Nothing is held while a withdrawal awaits approval (the daemon holds only `approved`
    /// ones), so a rejection releases nothing in the engine: the row becomes `rejected`, which
    /// no daemon takes and no limit counts. Who rejected it is in the control API's audit.
    pub async fn reject_withdrawal(
        &self,
        id: u64,
        rejecter: &str,
    ) -> Result<WithdrawalState, ApprovalError> {
        if !valid_actor(rejecter) {
            return Err(ApprovalError::Approver);
        }
        on_pool!(self, |pool, mysql| {
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            let lock = if mysql { " FOR UPDATE" } else { "" };
            let select =
                format!("SELECT state, requested_by FROM wallet_withdrawals WHERE id = ?{lock}");
            let row: Option<(String, Option<String>)> = sqlx::query_as(&select)
                .bind(to_i64(id))
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            let (state, requested_by) = row.ok_or(ApprovalError::NotFound(id))?;
            let state = WithdrawalState::parse(&state)?;
            if state != WithdrawalState::AwaitingApproval {
                return Err(ApprovalError::State { id, state });
            }
            if requested_by.as_deref() == Some(rejecter) {
                return Err(ApprovalError::SelfApproval(id));
            }
            let (approved,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM wallet_withdrawal_approvals \
                 WHERE withdrawal_id = ? AND approver = ?",
            )
            .bind(to_i64(id))
            .bind(rejecter)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            if approved > 0 {
                return Err(ApprovalError::AlreadyApproved(id));
            }
            sqlx::query(
                "UPDATE wallet_withdrawals SET state = 'rejected' WHERE id = ? \
                 AND state = 'awaiting_approval'",
            )
            .bind(to_i64(id))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            tx.commit().await.map_err(StoreError::from)?;
            Ok(WithdrawalState::Rejected)
        })
    }
}

fn review_row(tuple: ReviewTuple) -> Result<ReviewView, StoreError> {
    let (id, account, currency, minor, to, state, requested_by, required, created_at_ms) = tuple;
    let bad = |column: &'static str, value: i64| StoreError::UnknownValue {
        column,
        value: value.to_string(),
    };
    Ok(ReviewView {
        id: to_u64("id", id)?,
        account: AccountId(u32::try_from(account).map_err(|_| bad("account", account))?),
        currency,
        amount_minor: to_u64("amount_minor", minor)?,
        to,
        state: WithdrawalState::parse(&state)?,
        requested_by,
        approvals_required: u32::try_from(required)
            .map_err(|_| bad("approvals_required", required))?,
        approvers: Vec::new(),
        created_at_ms,
    })
}
